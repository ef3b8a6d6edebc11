//! Adaptation converging when one worker's core is shared with a busy process started by the test (a shell busy
//! loop pinned to CPU 1 with sched_setaffinity).
//! Asserts only the direction (core 1's share of the work decreases), never timings.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use asymo_ep::asym::cost::KernelKind;
use asymo_ep::asym::partition::GemmProblem;
use asymo_ep::asym::topology::process_affinity;
use asymo_ep::asym::{AsymConfig, Runtime};

/// A busy process pinned to `cpu`, killed when dropped (also if the test panics).
struct BusyProcess(Child);

impl BusyProcess {
    fn start(cpu: usize) -> BusyProcess {
        let child = Command::new("sh").args(["-c", "while :; do :; done"]).spawn().expect("spawn sh");
        // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it; sched_setaffinity reads it for the
        // child's pid, which is alive (we own the Child).
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            assert_eq!(libc::sched_setaffinity(child.id() as libc::pid_t, std::mem::size_of_val(&set), &set), 0);
        }
        BusyProcess(child)
    }
}

impl Drop for BusyProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fixed amount of arithmetic per output element (not a timed spin: time-sharing slows it down).
fn work(units: usize) -> f64 {
    let mut x = 1.0f64;
    for _ in 0..units {
        x = std::hint::black_box(x * 1.000_000_1 + 1e-9);
    }
    x
}

#[test]
fn busy_core_gets_less_work() {
    let mask = process_affinity().unwrap_or_default();
    if !(mask.contains(&0) && mask.contains(&1)) {
        eprintln!("skipped: needs CPUs 0 and 1 in the affinity mask (have {mask:?})");
        return;
    }
    let dir = std::env::temp_dir().join(format!("asymo-adapt-test-{}", std::process::id()));
    let mut cfg = AsymConfig::from_options([("cores", "0,1")]).unwrap();
    cfg.cache_dir = Some(dir.clone());
    cfg.calibration_budget = Duration::from_millis(30);
    cfg.adapt.min_window_secs = 2e-3;
    let rt = Runtime::new(&cfg).unwrap();
    assert_eq!(rt.topology().num_cores(), 2);
    let w1 = rt.topology().worker_of_cpu(1).unwrap();
    let prob = GemmProblem::new(KernelKind::Gemm, 1, 64, 4096, 256).tile(4, 16);
    let initial = rt.plan(&prob).worker_share[w1];
    assert!(initial > 0.4 && initial < 0.6, "symmetric cores start near an even split: {initial}");

    let busy = BusyProcess::start(1);
    let t0 = Instant::now();
    let mut share = initial;
    let mut runs = 0;
    while t0.elapsed() < Duration::from_secs(10) {
        let plan = rt.plan(&prob);
        share = plan.worker_share[w1];
        if share < 0.45 && runs >= 8 {
            break;
        }
        rt.run(&plan, &|t, _ctx| {
            std::hint::black_box(work(t.cols.len() * 300));
        })
        .unwrap();
        runs += 1;
    }
    drop(busy);
    eprintln!("core 1 share {initial:.3} -> {share:.3} after {runs} runs, {:?}", t0.elapsed());
    assert!(share < initial, "core 1's share did not decrease: {initial} -> {share}");
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
}
