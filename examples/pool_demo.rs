//! Synthetic GEMM jobs over the AsyMo pool, under several schedules, with or without a busy process on CPU 1.
//!
//! ```text
//! cargo run --release --example pool_demo -- [--interfere [--duty 50]] [--runs 30] [--block 10] [--size 128,784,576] [--cores 0,1] [--empty]
//! ```
//! Modes are interleaved in blocks (`--block` consecutive runs of A, then of B, …, repeated) so drifting machine
//! load hits them alike while each mode still runs back to back as an inference would. For each mode:
//! median / p90 job time, and per worker: tasks run, tasks stolen, busy time, and its planned share of the columns.
//! `--interfere` starts a child process spinning on CPU 1 (this binary re-executed with `--spin`), busy `--duty`
//! percent (default 100) of every 10 ms.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use asymo_ep::asym::cost::KernelKind;
use asymo_ep::asym::partition::GemmProblem;
use asymo_ep::asym::topology::pin_current_thread;
use asymo_ep::asym::{AsymConfig, Runtime};
use asymo_ep::kernels::{gemm_block, AOperand, BOperand, MatMut, MatRef, PackedB};

struct Busy(Child);
impl Drop for Busy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |k: &str| args.iter().position(|a| a == k).and_then(|i| args.get(i + 1)).cloned();
    let duty: u32 = get("--duty").map(|s| s.parse().expect("--duty PERCENT")).unwrap_or(100).min(100);
    if args.iter().any(|a| a == "--spin") {
        // Busy `duty`% of every 10 ms period, pinned to CPU 1.
        pin_current_thread(1);
        let period = Duration::from_millis(10);
        let busy = period * duty / 100;
        let mut x = 0u64;
        loop {
            let t0 = Instant::now();
            while t0.elapsed() < busy {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            if busy < period {
                std::thread::sleep(period - busy);
            }
        }
    }
    let runs: usize = get("--runs").map(|s| s.parse().expect("--runs N")).unwrap_or(30);
    let size: Vec<usize> = get("--size")
        .unwrap_or_else(|| "128,784,576".into())
        .split(',')
        .map(|s| s.parse().expect("--size M,N,K"))
        .collect();
    let (m, n, k) = (size[0], size[1], size[2]);
    let block: usize = get("--block").map(|s| s.parse().expect("--block N")).unwrap_or(10).max(1);
    let cores = get("--cores").unwrap_or_else(|| "0,1".into());
    let interfere = args.iter().any(|a| a == "--interfere");

    let a: Vec<f32> = (0..m * k).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i % 11) as f32 - 5.0) * 0.01).collect();
    let pb = PackedB::pack(MatRef::row_major(&b, k, n));
    let mut c = vec![0.0f32; m * n];

    let modes: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("1 core (cpu0)", vec![("cores", "0".into())]),
        ("equal", vec![("cores", cores.clone()), ("schedule", "equal".into()), ("steal", "0".into())]),
        ("asymo", vec![("cores", cores.clone()), ("steal", "0".into()), ("adapt", "0".into())]),
        ("asymo+steal", vec![("cores", cores.clone()), ("adapt", "0".into())]),
        ("asymo+steal+adapt", vec![("cores", cores.clone())]),
    ];
    let rts: Vec<Runtime> = modes
        .iter()
        .map(|(_, opts)| {
            let cfg = AsymConfig::from_options(opts.iter().map(|(k, v)| (*k, v.as_str()))).expect("options");
            Runtime::new(&cfg).unwrap_or_else(|e| panic!("runtime: {e}"))
        })
        .collect();
    let rt0 = &rts[1];
    println!(
        "topology {} | cost model {} ({})",
        rt0.topology().fingerprint(),
        rt0.cost_model().source,
        rt0.cost_model().cpu_model
    );
    println!(
        "job: GEMM {m}x{n}x{k} ({:.0} MFLOP), {runs} runs per mode in blocks of {block}, interference on CPU 1: {}",
        2.0 * (m * n * k) as f64 / 1e6,
        if interfere { format!("{duty}% busy") } else { "none".into() }
    );

    let _busy = interfere.then(|| {
        let exe = std::env::current_exe().expect("current exe");
        Busy(Command::new(exe).args(["--spin", "--duty", &duty.to_string()]).spawn().expect("spawn busy child"))
    });
    if interfere {
        std::thread::sleep(Duration::from_millis(50));
    }
    let prob = GemmProblem::new(KernelKind::Gemm, 1, m, n, k).tile(4, 16);
    let cm = MatMut::row_major(&mut c, m, n);
    let am = MatRef::row_major(&a, m, k);
    let empty = args.iter().any(|a| a == "--empty");
    let job = |t: &asymo_ep::asym::partition::Task, ctx: &mut asymo_ep::asym::pool::WorkerCtx<'_>| {
        if empty {
            return; // measures the pool's per-job overhead (plan lookup, dispatch, wake-up, completion)
        }
        gemm_block(AOperand::View(am), BOperand::Packed(&pb), cm, k, t.rows.clone(), t.cols.clone(), &[], ctx.scratch);
    };
    // Warm-up.
    for rt in &rts {
        for _ in 0..3 {
            rt.run(&rt.plan(&prob), &job).unwrap();
        }
    }
    let before: Vec<_> = rts.iter().map(|rt| rt.pool().stats()).collect();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); rts.len()];
    for _ in 0..runs.div_ceil(block) {
        for (i, rt) in rts.iter().enumerate() {
            for _ in 0..block {
                let t0 = Instant::now();
                let plan = rt.plan(&prob);
                rt.run(&plan, &job).unwrap();
                times[i].push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    println!("{:<20} {:>9} {:>9}   per worker: cpu tasks stolen busy_ms share", "mode", "median_ms", "p90_ms");
    for (i, (name, _)) in modes.iter().enumerate() {
        let mut t = times[i].clone();
        t.sort_by(f64::total_cmp);
        let med = t[t.len() / 2];
        let p90 = t[(t.len() * 9 / 10).min(t.len() - 1)];
        let plan = rts[i].plan(&prob);
        let after = rts[i].pool().stats();
        let mut line = format!("{name:<20} {med:>9.3} {p90:>9.3}  ");
        for (w, (s1, s0)) in after.iter().zip(&before[i]).enumerate() {
            line.push_str(&format!(
                " | cpu{} {:>4} {:>4} {:>7.1} {:.2}",
                s1.cpu,
                s1.tasks - s0.tasks,
                s1.stolen - s0.stolen,
                (s1.busy_secs - s0.busy_secs) * 1e3,
                plan.worker_share[w]
            ));
        }
        println!("{line}");
    }
    let single = {
        let mut t = times[0].clone();
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    println!("ideal with CPU 1 at half speed: {:.2} ms (1-core median / 1.5)", single / 1.5);
}
