//! The frequency governor against fixture sysfs trees (copied to temporary directories before any write).
//!
//! The fixture `phone44` is a 4+4 phone (Kirin 970-like): policy0 = cpus 0-3, 509000..1844000 kHz;
//! policy4 = cpus 4-7, 682000..2362000 kHz; both under schedutil with min/max at the hardware limits.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use asymo_ep::asym::energy::{self, EnergyMeter, MeasureConfig};
use asymo_ep::asym::freq::{
    BackendChoice, FreqOption, FreqRequest, GovError, GovMode, Governor, GovernorConfig, LogFn, LogLevel,
};
use asymo_ep::asym::reuse::{ConvShape, GemmWork, ModelReuse, ReuseAccumulator, ReuseClass};
use parking_lot::Mutex;

const HOUR: Duration = Duration::from_secs(3600);
const L_MIN: &str = "509000";
const L_MAX: &str = "1844000";
const B_MIN: &str = "682000";
const B_MAX: &str = "2362000";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("provider/asym/fixtures/governor")
}

/// A temporary copy of a fixture tree, removed on drop.
struct Tree {
    root: PathBuf,
}

static SERIAL: AtomicUsize = AtomicUsize::new(0);

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).unwrap();
        }
    }
}

impl Tree {
    fn new(name: &str) -> Tree {
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("asymo-gov-{}-{n}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        copy_dir(&fixtures().join(name), &root);
        Tree { root }
    }

    fn policy(&self, n: u32) -> PathBuf {
        self.root.join(format!("devices/system/cpu/cpufreq/policy{n}"))
    }

    fn read(&self, n: u32, attr: &str) -> String {
        fs::read_to_string(self.policy(n).join(attr)).unwrap().trim().to_string()
    }

    fn min_max(&self, n: u32) -> (String, String) {
        (self.read(n, "scaling_min_freq"), self.read(n, "scaling_max_freq"))
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join(".asymo-ep-state")
    }

    fn state_files(&self) -> usize {
        fs::read_dir(self.state_dir())
            .map(|d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "state")).count())
            .unwrap_or(0)
    }

    /// Shorthand for an expected journal entry.
    fn w(&self, n: u32, attr: &str, v: &str) -> (PathBuf, String) {
        (self.policy(n).join(attr), v.to_string())
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        // Read-only fixtures must become writable again to be removed (as root this is moot, but be tidy).
        let _ = chmod_tree(&self.root, 0o755, 0o644);
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn chmod_tree(dir: &Path, dmode: u32, fmode: u32) -> std::io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            chmod_tree(&e.path(), dmode, fmode)?;
            fs::set_permissions(e.path(), fs::Permissions::from_mode(dmode))?;
        } else {
            fs::set_permissions(e.path(), fs::Permissions::from_mode(fmode))?;
        }
    }
    Ok(())
}

type Lines = Arc<Mutex<Vec<(LogLevel, String)>>>;

fn logger() -> (LogFn, Lines) {
    let lines: Lines = Arc::default();
    let l = lines.clone();
    (Arc::new(move |lvl, msg: &str| l.lock().push((lvl, msg.to_string()))), lines)
}

fn config(tree: &Tree, log: LogFn) -> GovernorConfig {
    let mut c = GovernorConfig::new(&tree.root, log);
    c.backend = BackendChoice::Sysfs;
    c.record_writes = true;
    c.signal_handlers = false;
    c
}

fn latency(hold: Duration) -> FreqRequest {
    FreqRequest { mode: GovMode::Latency, freq: FreqOption::Auto, hold }
}

fn energy_mode() -> FreqRequest {
    FreqRequest { mode: GovMode::Energy, freq: FreqOption::Auto, hold: HOUR }
}

fn conv_net() -> ModelReuse {
    let mut acc = ReuseAccumulator::default();
    for (c_in, c_out, hw) in [(64, 64, 56), (64, 128, 28), (128, 256, 14), (256, 512, 7)] {
        acc.add_conv(ConvShape { batch: 1, c_in, c_out, groups: 1, kernel_size: 9, out_size: hw * hw });
    }
    let r = acc.finish();
    assert_eq!(r.class, ReuseClass::ComputeBound);
    r
}

fn lstm() -> ModelReuse {
    let r = ModelReuse::from_work((0..20).flat_map(|_| [GemmWork::gemm(2048, 1, 256), GemmWork::gemm(2048, 1, 512)]));
    assert_eq!(r.class, ReuseClass::MemoryBound);
    r
}

fn profile() -> energy::EnergyProfile {
    energy::read_energy(&fixtures().join("phone44-profile.json")).unwrap().unwrap()
}

#[test]
fn latency_runs_write_exactly_once_and_restore() {
    let t = Tree::new("phone44");
    let (log, _) = logger();
    let g = Governor::new(config(&t, log));
    assert_eq!(g.backend_name(), "cpufreq-minmax");
    assert_eq!(g.clusters().len(), 2);
    assert_eq!(g.clusters()[1].cpus, [4, 5, 6, 7]);
    let plan = g.prepare(&latency(HOUR), &conv_net(), None).unwrap();
    assert!(!plan.is_inert());
    assert!(plan.summary().contains("policy4 >= 2362000 kHz"), "{}", plan.summary());

    for i in 0..5 {
        let tok = g.run_start(&plan);
        assert_eq!(t.min_max(0), (L_MAX.into(), L_MAX.into()), "run {i}");
        assert_eq!(t.min_max(4), (B_MAX.into(), B_MAX.into()), "run {i}");
        g.run_end(tok);
        assert!(g.hold_pending());
    }
    // Raised once, at the first run; the hour-long hold never expired.
    assert_eq!(g.take_writes(), [t.w(0, "scaling_min_freq", L_MAX), t.w(4, "scaling_min_freq", B_MAX)]);
    assert_eq!(t.state_files(), 1, "a state file records the originals while settings are changed");

    drop(g);
    assert_eq!(t.min_max(0), (L_MIN.into(), L_MAX.into()));
    assert_eq!(t.min_max(4), (B_MIN.into(), B_MAX.into()));
    assert_eq!(t.read(0, "scaling_governor"), "schedutil");
    assert_eq!(t.state_files(), 0);
}

#[test]
fn latency_hold_zero_raises_and_releases_every_run() {
    let t = Tree::new("phone44");
    let (log, _) = logger();
    let g = Governor::new(config(&t, log));
    let plan = g.prepare(&latency(Duration::ZERO), &lstm(), None).unwrap();
    for _ in 0..3 {
        g.run_end(g.run_start(&plan));
    }
    let cycle = [
        t.w(0, "scaling_min_freq", L_MAX),
        t.w(4, "scaling_min_freq", B_MAX),
        t.w(0, "scaling_min_freq", L_MIN),
        t.w(4, "scaling_min_freq", B_MIN),
    ];
    let expect: Vec<_> = (0..3).flat_map(|_| cycle.iter().cloned()).collect();
    assert_eq!(g.take_writes(), expect);
    assert!(!g.is_raised());
    drop(g);
    assert_eq!(t.min_max(4), (B_MIN.into(), B_MAX.into()));
}

#[test]
fn hold_timer_releases_and_a_new_run_cancels_it() {
    let t = Tree::new("phone44");
    let (log, _) = logger();
    let g = Governor::new(config(&t, log));

    // A new run cancels the pending release.
    let long = g.prepare(&latency(HOUR), &conv_net(), None).unwrap();
    g.run_end(g.run_start(&long));
    assert!(g.hold_pending());
    let tok = g.run_start(&long);
    assert!(!g.hold_pending());
    assert_eq!(g.active_runs(), 1);
    g.run_end(tok);
    g.release_now();
    assert!(!g.is_raised());
    assert_eq!(t.min_max(0), (L_MIN.into(), L_MAX.into()));
    g.take_writes();

    // A short hold expires by itself (no assertion on how long it took).
    let short = g.prepare(&latency(Duration::from_millis(5)), &conv_net(), None).unwrap();
    g.run_end(g.run_start(&short));
    assert!(g.wait_released(Duration::from_secs(60)));
    assert_eq!(
        g.take_writes(),
        [
            t.w(0, "scaling_min_freq", L_MAX),
            t.w(4, "scaling_min_freq", B_MAX),
            t.w(0, "scaling_min_freq", L_MIN),
            t.w(4, "scaling_min_freq", B_MIN),
        ]
    );
}

#[test]
fn energy_mode_picks_least_energy_frequency_per_cluster_and_class() {
    let t = Tree::new("phone44");
    let (log, _) = logger();
    let g = Governor::new(config(&t, log));
    let prof = profile();
    let conv = g.prepare(&energy_mode(), &conv_net(), Some(&prof)).unwrap();
    let rnn = g.prepare(&energy_mode(), &lstm(), Some(&prof)).unwrap();
    assert!(conv.summary().contains("policy0 pinned at 1402000 kHz"), "{}", conv.summary());
    assert!(rnn.summary().contains("policy4 pinned at 1210000 kHz"), "{}", rnn.summary());

    let a = g.run_start(&conv);
    assert_eq!(t.min_max(0), ("1402000".into(), "1402000".into()));
    assert_eq!(t.min_max(4), ("1652000".into(), "1652000".into()));
    // Pinning below the current maximum: min first, then max (min <= max at every step).
    assert_eq!(
        g.take_writes(),
        [
            t.w(0, "scaling_min_freq", "1402000"),
            t.w(0, "scaling_max_freq", "1402000"),
            t.w(4, "scaling_min_freq", "1652000"),
            t.w(4, "scaling_max_freq", "1652000"),
        ]
    );
    // A concurrent memory-bound run does not lower what the compute-bound one needs.
    let b = g.run_start(&rnn);
    assert!(g.take_writes().is_empty());
    g.run_end(a);
    assert_eq!(t.min_max(0), ("1018000".into(), "1018000".into()));
    assert_eq!(t.min_max(4), ("1210000".into(), "1210000".into()));
    // Going back up (compute run while the memory-bound one is active): max first, then min.
    g.take_writes();
    let c = g.run_start(&conv);
    assert_eq!(
        g.take_writes(),
        [
            t.w(0, "scaling_max_freq", "1402000"),
            t.w(0, "scaling_min_freq", "1402000"),
            t.w(4, "scaling_max_freq", "1652000"),
            t.w(4, "scaling_min_freq", "1652000"),
        ]
    );
    g.run_end(c);
    g.run_end(b);
    g.release_now();
    assert_eq!(t.min_max(0), (L_MIN.into(), L_MAX.into()));
    assert_eq!(t.min_max(4), (B_MIN.into(), B_MAX.into()));
}

#[test]
fn energy_mode_without_curves_is_an_error() {
    let t = Tree::new("phone44");
    let (log, _) = logger();
    let g = Governor::new(config(&t, log));
    let e = g.prepare(&energy_mode(), &conv_net(), None).unwrap_err();
    assert!(matches!(e, GovError::NoEnergyCurves(_)));
    assert!(e.to_string().contains("asymo-profile --energy"), "{e}");
    // Curves of another device.
    let mut other = profile();
    other.clusters[1].cpus = vec![4, 5];
    let e = g.prepare(&energy_mode(), &conv_net(), Some(&other)).unwrap_err();
    assert!(matches!(e, GovError::ProfileMismatch(_)), "{e}");
    // freq=max / <kHz> / off in energy mode need no curves.
    for freq in [FreqOption::Max, FreqOption::Khz(1_300_000), FreqOption::Off] {
        g.prepare(&FreqRequest { freq, ..energy_mode() }, &conv_net(), None).unwrap();
    }
    assert!(g.take_writes().is_empty());
}

#[test]
fn fixed_frequency_is_snapped_per_cluster() {
    let t = Tree::new("phone44");
    let (log, _) = logger();
    let g = Governor::new(config(&t, log));
    let plan = g.prepare(&FreqRequest { freq: FreqOption::Khz(1_300_000), ..latency(HOUR) }, &lstm(), None).unwrap();
    let tok = g.run_start(&plan);
    assert_eq!(t.min_max(0), ("1210000".into(), "1210000".into()));
    assert_eq!(t.min_max(4), ("1210000".into(), "1210000".into()));
    g.run_end(tok);
    drop(g);
    assert_eq!(t.min_max(0), (L_MIN.into(), L_MAX.into()));
}

#[test]
fn read_only_sysfs_is_a_noop_with_one_log_line() {
    let t = Tree::new("phone44");
    chmod_tree(&t.root.join("devices"), 0o755, 0o444).unwrap();
    let (log, lines) = logger();
    let g = Governor::new(config(&t, log));
    assert_eq!(g.backend_name(), "none");
    assert!(g.noop_reason().unwrap().contains("not writable"), "{:?}", g.noop_reason());
    let prof = profile();
    for req in [latency(HOUR), energy_mode(), FreqRequest { freq: FreqOption::Max, ..latency(HOUR) }] {
        let plan = g.prepare(&req, &conv_net(), Some(&prof)).unwrap();
        assert!(plan.is_inert());
        for _ in 0..3 {
            g.run_end(g.run_start(&plan));
        }
    }
    drop(g);
    let lines = lines.lock();
    assert_eq!(lines.len(), 1, "{lines:?}");
    // The first plan asked for the default freq=auto: the notice is information, not a warning.
    assert_eq!(lines[0].0, LogLevel::Info);
    assert_eq!(t.min_max(0), (L_MIN.into(), L_MAX.into()));
    assert_eq!(t.state_files(), 0);
}

#[test]
fn a_read_only_policy_is_left_alone_and_said_so() {
    let t = Tree::new("phone44");
    chmod_tree(&t.policy(4), 0o755, 0o444).unwrap();
    let (log, lines) = logger();
    let g = Governor::new(config(&t, log));
    assert_eq!(g.clusters().len(), 1);
    assert!(lines.lock().iter().any(|(l, m)| *l == LogLevel::Warning && m.contains("policy4")), "{:?}", lines.lock());
    let plan = g.prepare(&latency(Duration::ZERO), &conv_net(), None).unwrap();
    g.run_end(g.run_start(&plan));
    assert_eq!(g.take_writes(), [t.w(0, "scaling_min_freq", L_MAX), t.w(0, "scaling_min_freq", L_MIN)]);
    // Energy curves must still cover the controlled cluster only.
    assert!(!g.prepare(&energy_mode(), &lstm(), Some(&profile())).unwrap().is_inert());
}

#[test]
fn userspace_governor_when_min_max_are_read_only() {
    let t = Tree::new("phone44");
    for n in [0, 4] {
        for a in ["scaling_min_freq", "scaling_max_freq"] {
            fs::set_permissions(t.policy(n).join(a), fs::Permissions::from_mode(0o444)).unwrap();
        }
    }
    let (log, _) = logger();
    let g = Governor::new(config(&t, log));
    assert_eq!(g.backend_name(), "cpufreq");
    let plan = g.prepare(&latency(Duration::ZERO), &conv_net(), None).unwrap();
    g.run_end(g.run_start(&plan));
    assert_eq!(
        g.take_writes(),
        [
            t.w(0, "scaling_governor", "userspace"),
            t.w(0, "scaling_setspeed", L_MAX),
            t.w(4, "scaling_governor", "userspace"),
            t.w(4, "scaling_setspeed", B_MAX),
            t.w(0, "scaling_governor", "schedutil"),
            t.w(4, "scaling_governor", "schedutil"),
        ]
    );
}

#[test]
fn concurrent_runs_from_four_threads_share_one_raise() {
    let t = Tree::new("phone44");
    let (log, _) = logger();
    let g = Arc::new(Governor::new(config(&t, log)));
    let plan = g.prepare(&latency(HOUR), &conv_net(), None).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (g, plan) = (&g, &plan);
            s.spawn(move || {
                for _ in 0..200 {
                    let tok = g.run_start(plan);
                    assert!(g.is_raised());
                    g.run_end(tok);
                }
            });
        }
    });
    assert_eq!(g.active_runs(), 0);
    assert_eq!(g.take_writes(), [t.w(0, "scaling_min_freq", L_MAX), t.w(4, "scaling_min_freq", B_MAX)]);
    g.release_now();
    assert_eq!(g.take_writes(), [t.w(0, "scaling_min_freq", L_MIN), t.w(4, "scaling_min_freq", B_MIN)]);

    // With release at every last run end, any interleaving ends at the originals, with raise/release balanced.
    let plan0 = g.prepare(&latency(Duration::ZERO), &conv_net(), None).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (g, plan0) = (&g, &plan0);
            s.spawn(move || {
                for _ in 0..200 {
                    g.run_end(g.run_start(plan0));
                }
            });
        }
    });
    let w = g.take_writes();
    let raises = w.iter().filter(|(_, v)| v == L_MAX).count();
    let releases = w.iter().filter(|(_, v)| v == L_MIN).count();
    assert!(raises >= 1 && raises == releases, "{w:?}");
    assert_eq!(t.min_max(0), (L_MIN.into(), L_MAX.into()));
    assert_eq!(t.min_max(4), (B_MIN.into(), B_MAX.into()));
}

#[test]
fn shared_governor_is_one_per_root() {
    let t = Tree::new("phone44");
    let (log, _) = logger();
    let a = Governor::shared(config(&t, log.clone())).unwrap();
    let b = Governor::shared(config(&t, log.clone())).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let mut other = config(&t, log);
    other.backend = BackendChoice::None;
    assert!(matches!(Governor::shared(other), Err(GovError::Conflict(_))));
    // Plans of two sessions on the shared governor are reference counted together.
    let p1 = a.prepare(&latency(HOUR), &conv_net(), None).unwrap();
    let p2 = b.prepare(&FreqRequest { freq: FreqOption::Khz(1_000_000), ..latency(HOUR) }, &lstm(), None).unwrap();
    let t1 = a.run_start(&p1);
    let t2 = b.run_start(&p2);
    a.run_end(t1);
    // Only the pinned run remains: its cap applies.
    assert_eq!(t.min_max(4), ("682000".into(), "682000".into()));
    b.run_end(t2);
    drop((a, b));
    assert_eq!(t.min_max(4), (B_MIN.into(), B_MAX.into()));
}

/// Everything degrades cleanly on a machine without cpufreq (a fixture of this VM, and the real /sys).
#[test]
fn no_cpufreq_degrades_cleanly() {
    let t = Tree::new("vm-nocpufreq");
    for backend in [BackendChoice::Auto, BackendChoice::Sysfs, BackendChoice::Uclamp, BackendChoice::None] {
        let (log, lines) = logger();
        let mut c = config(&t, log);
        c.backend = backend;
        let g = Governor::new(c);
        if backend != BackendChoice::Uclamp {
            assert_eq!(g.backend_name(), "none", "{backend:?}");
        }
        if g.backend_name() == "none" {
            for req in [latency(HOUR), FreqRequest { freq: FreqOption::Max, ..latency(HOUR) }] {
                let plan = g.prepare(&req, &conv_net(), None).unwrap();
                assert!(plan.is_inert());
                g.run_end(g.run_start(&plan));
            }
            // mode=energy without curves stays a configuration error everywhere.
            assert!(g.prepare(&energy_mode(), &conv_net(), None).is_err());
            assert!(g.prepare(&energy_mode(), &conv_net(), Some(&profile())).unwrap().is_inert());
            assert_eq!(lines.lock().len(), 1, "{backend:?}: {:?}", lines.lock());
        }
    }

    // The real /sys: on this VM there is no cpufreq, so nothing is ever written. (On a device where frequencies
    // are controllable, only probe: this test must not change the machine.)
    let (log, _) = logger();
    let mut c = GovernorConfig::new("/sys", log);
    c.signal_handlers = false;
    let g = Governor::new(c);
    if g.backend_name() == "none" {
        let plan = g.prepare(&latency(HOUR), &conv_net(), None).unwrap();
        assert!(plan.is_inert());
        g.run_end(g.run_start(&plan));
    } else {
        eprintln!("note: this machine has frequency control ({}); not exercising it", g.backend_name());
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Killed and signalled processes: the test binary re-runs itself as a child.

const CHILD_ENV: &str = "ASYMO_GOV_CHILD_ROOT";
const CHILD_HOW: &str = "ASYMO_GOV_CHILD_HOW";
static HOST_SAW_SIGINT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Child side (ignored in normal runs): raise frequencies on the given tree, then die as told.
#[test]
#[ignore]
fn child_raise_then_die() {
    let Ok(root) = std::env::var(CHILD_ENV) else { return };
    let how = std::env::var(CHILD_HOW).unwrap();
    let (log, _) = logger();
    let mut c = GovernorConfig::new(&root, log);
    c.backend = BackendChoice::Sysfs;
    c.signal_handlers = how != "kill";
    if how == "sigint-chained" {
        // The host's own handler, installed before ours (like Python's): it only sets a flag.
        extern "C" fn host_handler(_: libc::c_int) {
            HOST_SAW_SIGINT.store(true, Ordering::SeqCst);
        }
        // SAFETY: installing a plain async-signal-safe handler.
        unsafe { libc::signal(libc::SIGINT, host_handler as *const () as libc::sighandler_t) };
    }
    let g = Box::leak(Box::new(Governor::new(c)));
    let plan = g.prepare(&energy_mode(), &conv_net(), Some(&profile())).unwrap();
    let tok = g.run_start(&plan);
    let pol0 = Path::new(&root).join("devices/system/cpu/cpufreq/policy0/scaling_min_freq");
    let min0 = || fs::read_to_string(&pol0).unwrap().trim().to_string();
    if how == "sigint-chained" {
        assert_eq!(min0(), "1402000");
        // SAFETY: raising a signal at ourselves; our handler restores and chains the host's.
        unsafe { libc::raise(libc::SIGINT) };
        assert!(HOST_SAW_SIGINT.load(Ordering::SeqCst), "the previous handler was chained");
        assert_eq!(min0(), L_MIN, "restored by the handler");
        // The process lives on: the next run re-applies (the governor noticed the restore), Drop restores.
        g.run_end(tok);
        let tok = g.run_start(&plan);
        assert_eq!(min0(), "1402000");
        g.run_end(tok);
        // SAFETY: the governor was leaked above and is not used after this.
        drop(unsafe { Box::from_raw(g as *mut Governor) });
        assert_eq!(min0(), L_MIN);
        std::process::exit(0);
    }
    // SAFETY: raising a signal at ourselves; the handler (if any) restores and re-raises.
    match how.as_str() {
        "kill" => unsafe { libc::raise(libc::SIGKILL) },
        "term" => unsafe { libc::raise(libc::SIGTERM) },
        "exit" => std::process::exit(3),
        _ => unreachable!(),
    };
    // Not reached for kill/term.
    std::process::exit(99);
}

fn run_child(t: &Tree, how: &str) -> std::process::ExitStatus {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_raise_then_die", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &t.root)
        .env(CHILD_HOW, how)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
}

#[test]
fn killed_process_leftover_is_undone_by_the_next_load() {
    let t = Tree::new("phone44");
    let status = run_child(&t, "kill");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    // The dead child left its pinned settings and its state file.
    assert_eq!(t.min_max(0), ("1402000".into(), "1402000".into()));
    assert_eq!(t.state_files(), 1);

    let (log, lines) = logger();
    let g = Governor::new(config(&t, log));
    assert_eq!(t.min_max(0), (L_MIN.into(), L_MAX.into()));
    assert_eq!(t.min_max(4), (B_MIN.into(), B_MAX.into()));
    assert_eq!(t.state_files(), 0);
    assert!(lines.lock().iter().any(|(_, m)| m.contains("dead process")), "{:?}", lines.lock());
    // And the originals it now knows are the real ones.
    assert_eq!(g.clusters()[0].max_khz, 1_844_000);
}

#[test]
fn sigterm_restores_then_terminates() {
    let t = Tree::new("phone44");
    let status = run_child(&t, "term");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert_eq!(t.min_max(0), (L_MIN.into(), L_MAX.into()));
    assert_eq!(t.min_max(4), (B_MIN.into(), B_MAX.into()));
    assert_eq!(t.state_files(), 0);
}

#[test]
fn sigint_chains_the_hosts_handler_and_the_process_lives_on() {
    let t = Tree::new("phone44");
    let status = run_child(&t, "sigint-chained");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(t.min_max(0), (L_MIN.into(), L_MAX.into()));
    assert_eq!(t.min_max(4), (B_MIN.into(), B_MAX.into()));
    assert_eq!(t.state_files(), 0);
}

#[test]
fn exit_without_drop_restores_via_atexit() {
    let t = Tree::new("phone44");
    let status = run_child(&t, "exit");
    assert_eq!(status.code(), Some(3), "{status:?}");
    assert_eq!(t.min_max(0), (L_MIN.into(), L_MAX.into()));
    assert_eq!(t.min_max(4), (B_MIN.into(), B_MAX.into()));
    assert_eq!(t.state_files(), 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Energy measurement

/// A meter that reports what the workload says it spent.
struct FakeMeter {
    spent: Arc<Mutex<f64>>,
}

impl EnergyMeter for FakeMeter {
    fn describe(&self) -> String {
        "fake".into()
    }
    fn start(&mut self) -> std::io::Result<()> {
        *self.spent.lock() = 0.0;
        Ok(())
    }
    fn stop(&mut self) -> std::io::Result<f64> {
        Ok(*self.spent.lock())
    }
}

#[test]
fn measure_curves_steps_every_frequency_and_restores() {
    let t = Tree::new("phone44");
    let (log, _) = logger();
    let g = Governor::new(config(&t, log));
    let spent = Arc::new(Mutex::new(0.0));
    let mut meter = FakeMeter { spent: spent.clone() };
    let cfg =
        MeasureConfig { min_duration: Duration::ZERO, settle: Duration::ZERO, max_points: 100, unit: "GFLOP".into() };
    let mut seen = Vec::new();
    let mut workload = |w: &energy::WorkItem<'_>| -> f64 {
        // The cluster really is pinned at the announced frequency.
        let n = if w.cluster == 0 { 0 } else { 4 };
        assert_eq!(t.min_max(n), (w.khz.to_string(), w.khz.to_string()));
        seen.push((w.cluster, w.khz, w.class));
        // Energy per unit: compute-bound has a sweet spot near 1.4 GHz, memory-bound prefers the lowest.
        let ghz = w.khz as f64 / 1e6;
        *spent.lock() += match w.class {
            ReuseClass::ComputeBound => (ghz - 1.4).powi(2) + 1.0,
            ReuseClass::MemoryBound => ghz,
        };
        1.0
    };
    let profile = energy::measure_curves(&g, &mut meter, &cfg, &mut workload).unwrap();
    assert_eq!(seen.len(), (7 + 9) * 2);
    assert_eq!(profile.source, "fake");
    assert_eq!(profile.clusters.len(), 2);
    assert_eq!(profile.clusters[0].compute.len(), 7);
    assert_eq!(profile.clusters[0].least_energy_khz(ReuseClass::ComputeBound), Some(1_402_000));
    assert_eq!(profile.clusters[1].least_energy_khz(ReuseClass::ComputeBound), Some(1_364_000));
    assert_eq!(profile.clusters[1].least_energy_khz(ReuseClass::MemoryBound), Some(682_000));
    assert_eq!(t.min_max(0), (L_MIN.into(), L_MAX.into()));
    assert_eq!(t.min_max(4), (B_MIN.into(), B_MAX.into()));

    // The measured profile round-trips through a profile file, next to the cost model's keys.
    let path = t.root.join("profile.json");
    fs::write(&path, r#"{"cost": {"x": 1}}"#).unwrap();
    energy::write_energy(&path, &profile).unwrap();
    assert_eq!(energy::read_energy(&path).unwrap().unwrap(), profile);
    let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["cost"]["x"], 1);
    // And drives energy mode.
    let plan = g.prepare(&energy_mode(), &lstm(), Some(&profile)).unwrap();
    assert!(plan.summary().contains("policy4 pinned at 682000 kHz"), "{}", plan.summary());
}

#[test]
fn measuring_without_writable_cpufreq_is_a_clear_error() {
    let t = Tree::new("vm-nocpufreq");
    let (log, _) = logger();
    let g = Governor::new(config(&t, log));
    let mut meter = FakeMeter { spent: Arc::default() };
    let e = energy::measure_curves(&g, &mut meter, &MeasureConfig::default(), &mut |_| 1.0).unwrap_err();
    assert!(e.to_string().contains("cannot step CPU frequencies"), "{e}");
    // And no meter on this tree either.
    let e = energy::probe_meter(&t.root).err().unwrap().to_string();
    assert!(e.contains("powercap") && e.contains("power_supply"), "{e}");
}

#[test]
fn rapl_meter_handles_wraparound() {
    let t = Tree::new("meters");
    let mut m = energy::RaplMeter::probe(&t.root).unwrap();
    assert_eq!(m.describe(), "rapl: package-0");
    m.start().unwrap();
    // The counter (max range 262143328850 µJ) wraps: 262143000000 → 671150 is 1000000 µJ later.
    fs::write(t.root.join("class/powercap/intel-rapl:0/energy_uj"), "671150\n").unwrap();
    let j = m.stop().unwrap();
    assert!((j - 1.0).abs() < 1e-9, "{j}");
    // probe_meter prefers RAPL.
    assert!(energy::probe_meter(&t.root).unwrap().describe().starts_with("rapl"));
}

#[test]
fn battery_meter_needs_discharging() {
    let t = Tree::new("meters");
    let mut m = energy::BatteryMeter::probe(&t.root, Duration::from_millis(1)).unwrap();
    m.start().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let j = m.stop().unwrap();
    // 1.5 A × 4 V = 6 W, constant: energy is 6 W × the sampled time, positive.
    assert!(j > 0.0);
    fs::write(t.root.join("class/power_supply/battery/status"), "Charging\n").unwrap();
    let e = energy::BatteryMeter::probe(&t.root, Duration::from_millis(1)).err().unwrap();
    assert!(e.contains("Discharging"), "{e}");
}

/// Not a test of time: prints the hook overhead (BENCHMARKS.md) — `cargo test --release --test governor
/// hook_overhead -- --ignored --nocapture`.
#[test]
#[ignore]
fn hook_overhead() {
    let t = Tree::new("phone44");
    let (log, _) = logger();
    let g = Governor::new(config(&t, log));
    let off = g.prepare(&FreqRequest { freq: FreqOption::Off, ..latency(HOUR) }, &conv_net(), None).unwrap();
    let on = g.prepare(&latency(HOUR), &conv_net(), None).unwrap();
    for (name, plan) in [("off", &off), ("latency, already raised", &on)] {
        let n = 1_000_000;
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            g.run_end(g.run_start(std::hint::black_box(plan)));
        }
        println!("{name}: run_start + run_end = {:.1} ns", t0.elapsed().as_nanos() as f64 / n as f64);
    }
}
