//! Governor logic through the uclamp backend, with fake sched_setattr/sched_getattr (the kernel here has no uclamp).
//! The sysfs backend is tested against fixture trees in tests/governor.rs.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::uclamp::SchedOps;
use super::*;
use crate::asym::reuse::{GemmWork, ModelReuse};

#[derive(Default)]
struct FakeSched {
    supported: bool,
    /// tid → (util_min, util_max); a missing tid is a thread that exited (ESRCH).
    threads: Mutex<HashMap<i32, (u32, u32)>>,
    calls: Mutex<Vec<(i32, u32, u32)>>,
}

impl SchedOps for FakeSched {
    fn probe(&self) -> Result<(), String> {
        if self.supported {
            Ok(())
        } else {
            Err("the kernel has no utilization clamping (sched_setattr: Operation not supported)".into())
        }
    }
    fn get(&self, tid: i32) -> io::Result<(u32, u32)> {
        self.threads.lock().get(&tid).copied().ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))
    }
    fn set(&self, tid: i32, min: u32, max: u32) -> io::Result<()> {
        let mut t = self.threads.lock();
        let e = t.get_mut(&tid).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
        *e = (min, max);
        self.calls.lock().push((tid, min, max));
        Ok(())
    }
}

fn fake(supported: bool, tids: &[i32]) -> Arc<FakeSched> {
    let f = FakeSched { supported, ..Default::default() };
    f.threads.lock().extend(tids.iter().map(|&t| (t, (0, 1024))));
    Arc::new(f)
}

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("provider/asym/fixtures/governor")
}

fn quiet() -> LogFn {
    Arc::new(|_, _: &str| {})
}

/// The phone fixture is only read here (uclamp never writes sysfs), so it is used in place.
fn cfg(tree: &str, backend: BackendChoice) -> GovernorConfig {
    let mut c = GovernorConfig::new(fixture().join(tree), quiet());
    c.backend = backend;
    c.signal_handlers = false;
    // Keep state files (none are written by uclamp) out of the source tree.
    c.state_dir = Some(std::env::temp_dir().join(format!("asymo-gov-unit-{}", std::process::id())));
    c
}

fn model() -> ModelReuse {
    ModelReuse::from_work([GemmWork::gemm(512, 512, 512)])
}

fn latency(hold: Duration) -> FreqRequest {
    FreqRequest { mode: GovMode::Latency, freq: FreqOption::Auto, hold }
}

#[test]
fn uclamp_raises_registered_threads_and_restores_them() {
    let f = fake(true, &[100, 101, 102]);
    let g = Governor::with_sched(cfg("phone44", BackendChoice::Uclamp), f.clone());
    assert_eq!(g.backend_name(), "uclamp");
    let r_little = g.register_thread(100, Some(1));
    let r_big = g.register_thread(101, Some(5));
    assert!(f.calls.lock().is_empty(), "registering while idle changes nothing");

    let plan = g.prepare(&latency(Duration::ZERO), &model(), None).unwrap();
    let tok = g.run_start(&plan);
    assert_eq!(f.threads.lock()[&100], (1024, 1024));
    assert_eq!(f.threads.lock()[&101], (1024, 1024));
    // A thread registering during a run gets the current clamp at once.
    let r_late = g.register_thread(102, None);
    assert_eq!(f.threads.lock()[&102], (1024, 1024));
    g.run_end(tok);
    for t in [100, 101, 102] {
        assert_eq!(f.threads.lock()[&t], (0, 1024), "tid {t}");
    }

    // A pinned frequency maps to a utilization per cluster: 1210000 of 1844000 (little), 1210000 of 2362000 (big).
    let pinned = g
        .prepare(&FreqRequest { freq: FreqOption::Khz(1_300_000), ..latency(Duration::ZERO) }, &model(), None)
        .unwrap();
    let tok = g.run_start(&pinned);
    let little = uclamp::util_for(1_210_000, 1_844_000);
    let big = uclamp::util_for(1_210_000, 2_362_000);
    assert_eq!(f.threads.lock()[&100], (little, little));
    assert_eq!(f.threads.lock()[&101], (big, big));
    assert_eq!(f.threads.lock()[&102], (little, little), "unknown cpu: the highest request");

    // A thread that exited is dropped; unregistering restores.
    f.threads.lock().remove(&102);
    drop(r_big);
    assert_eq!(f.threads.lock()[&101], (0, 1024));
    g.run_end(tok);
    assert_eq!(g.registered_threads(), 1);
    drop((r_little, r_late));
    assert_eq!(g.registered_threads(), 0);
}

#[test]
fn uclamp_without_kernel_support_is_a_noop() {
    let f = fake(false, &[7]);
    let g = Governor::with_sched(cfg("phone44", BackendChoice::Uclamp), f.clone());
    assert_eq!(g.backend_name(), "none");
    assert!(g.noop_reason().unwrap().contains("uclamp"), "{:?}", g.noop_reason());
    let _r = g.register_thread(7, None);
    let plan = g.prepare(&latency(Duration::ZERO), &model(), None).unwrap();
    assert!(plan.is_inert());
    g.run_end(g.run_start(&plan));
    assert!(f.calls.lock().is_empty());
}

/// Auto picks uclamp when cpufreq is read-only; with no cpufreq at all, hints would change nothing: no-op.
#[test]
fn auto_prefers_sysfs_then_uclamp_then_nothing() {
    let f = fake(true, &[]);
    // The fixture files are writable by root in the source tree, and so this would pick sysfs: check on a
    // read-only copy instead.
    let tmp = std::env::temp_dir().join(format!("asymo-gov-auto-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let src = fixture().join("phone44/devices/system/cpu/cpufreq/policy0");
    let dst = tmp.join("devices/system/cpu/cpufreq/policy0");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        std::fs::copy(e.path(), &to).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    let mut c = cfg("phone44", BackendChoice::Auto);
    c.sysfs_root = tmp.clone();
    let g = Governor::with_sched(c.clone(), f.clone());
    assert_eq!(g.backend_name(), "uclamp");
    assert_eq!(g.clusters().len(), 1);
    drop(g);
    let g = Governor::with_sched(cfg("vm-nocpufreq", BackendChoice::Auto), f.clone());
    assert_eq!(g.backend_name(), "none");
    assert!(g.noop_reason().unwrap().contains("no policies"), "{:?}", g.noop_reason());
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn inert_plans_and_foreign_tokens_do_nothing() {
    let f = fake(true, &[1]);
    let g = Governor::with_sched(cfg("phone44", BackendChoice::Uclamp), f.clone());
    let _r = g.register_thread(1, None);
    let off = g.prepare(&FreqRequest { freq: FreqOption::Off, ..latency(Duration::ZERO) }, &model(), None).unwrap();
    assert!(off.is_inert());
    g.run_end(g.run_start(&off));
    // A token of another governor, or an unmatched run_end, is ignored.
    let other = Governor::with_sched(cfg("phone44", BackendChoice::Uclamp), f.clone());
    let p = other.prepare(&latency(Duration::ZERO), &model(), None).unwrap();
    g.run_end(p.token());
    let mine = g.prepare(&latency(Duration::ZERO), &model(), None).unwrap();
    g.run_end(mine.token());
    assert_eq!(g.active_runs(), 0);
    assert!(f.calls.lock().is_empty());
}

#[test]
fn plans_are_interned() {
    let f = fake(true, &[]);
    let g = Governor::with_sched(cfg("phone44", BackendChoice::Uclamp), f);
    let a = g.prepare(&latency(DEFAULT_HOLD), &model(), None).unwrap();
    let b = g.prepare(&latency(DEFAULT_HOLD), &model(), None).unwrap();
    assert_eq!(a.token(), b.token());
    assert_eq!(g.inner.state.lock().plans.len(), 1);
}

#[test]
fn option_parsing() {
    assert_eq!(FreqOption::parse("off"), Ok(FreqOption::Off));
    assert_eq!(FreqOption::parse("auto"), Ok(FreqOption::Auto));
    assert_eq!(FreqOption::parse("max"), Ok(FreqOption::Max));
    assert_eq!(FreqOption::parse("1800000"), Ok(FreqOption::Khz(1_800_000)));
    let e = FreqOption::parse("fast").unwrap_err();
    assert!(e.contains("freq") && e.contains("off, auto, max"), "{e}");
    assert_eq!(GovMode::parse("energy"), Ok(GovMode::Energy));
    assert!(GovMode::parse("eco").unwrap_err().contains("latency, energy"));
    assert_eq!(BackendChoice::parse("uclamp"), Ok(BackendChoice::Uclamp));
    assert!(BackendChoice::parse("x").is_err());
    assert_eq!(parse_hold_ms("0"), Ok(Duration::ZERO));
    assert_eq!(parse_hold_ms("50"), Ok(DEFAULT_HOLD));
    assert!(parse_hold_ms("-1").is_err());
}

#[test]
fn merging_levels() {
    let l = |floor, cap| Some(Level { floor, cap });
    assert_eq!(merge(None, l(5, Some(5))), l(5, Some(5)));
    assert_eq!(merge(l(5, Some(5)), l(3, Some(3))), l(5, Some(5)));
    assert_eq!(merge(l(5, Some(5)), l(9, None)), l(9, None), "an uncapped request lifts the cap");
}
