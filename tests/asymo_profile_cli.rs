//! The `asymo-profile` binary end to end: flags, exit codes, the profile it writes, and `--energy` against
//! fixture sysfs trees (copied to temporary directories: the governor writes into them).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use asymo_ep::asym::cost::{CostModel, KernelKind};
use asymo_ep::asym::energy::{self, ClusterCurves, EnergyPoint, EnergyProfile};

/// A temporary directory, removed on drop.
struct Temp(PathBuf);

static SERIAL: AtomicUsize = AtomicUsize::new(0);

impl Temp {
    fn new(tag: &str) -> Temp {
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("asymo-profile-cli-{}-{n}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Temp(d)
    }

    /// A sysfs root assembled from governor fixtures (e.g. `phone44` + `meters`).
    fn sysfs(tag: &str, fixtures: &[&str]) -> Temp {
        let t = Temp::new(tag);
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("provider/asym/fixtures/governor");
        for f in fixtures {
            copy_dir(&src.join(f), &t.0);
        }
        t
    }

    fn path(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

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

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_asymo-profile")).args(args).output().expect("run asymo-profile")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Quick and structurally deterministic: one declared class on CPU 0, 100 ms of calibration.
fn quick<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--budget-ms", "100", "--topology", "0:1024", "--out", out];
    v.extend_from_slice(extra);
    v
}

/// `scaling_min_freq` / `scaling_max_freq` of every policy of a fixture tree.
fn limits(root: &Path) -> Vec<(String, String)> {
    ["policy0", "policy4"]
        .iter()
        .map(|p| {
            let d = root.join("devices/system/cpu/cpufreq").join(p);
            let r = |f: &str| fs::read_to_string(d.join(f)).unwrap().trim().to_string();
            (r("scaling_min_freq"), r("scaling_max_freq"))
        })
        .collect()
}

#[test]
fn help_lists_every_flag() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    let s = text(&o.stdout);
    for f in [
        "--out PATH",
        "--budget-ms N",
        "--topology SPEC",
        "--cores LIST",
        "--sysfs-root DIR",
        "--energy ",
        "--energy-seconds S",
        "--energy-points N",
        "--help",
    ] {
        assert!(s.contains(f), "{f} missing from:\n{s}");
    }
    assert!(o.stderr.is_empty());
}

#[test]
fn short_run_writes_a_loadable_profile() {
    let t = Temp::new("short");
    let out = t.path("sub/profile.json");
    let o = run(&quick(out.to_str().unwrap(), &[]));
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{stderr}");
    let m = CostModel::load(&out).unwrap();
    assert_eq!(m.classes.len(), 1);
    assert_eq!(m.classes[0].cpus, [0]);
    assert_eq!(m.classes[0].kernels.keys().copied().collect::<Vec<_>>(), KernelKind::ALL);
    assert!(m.classes[0].kernels.values().all(|c| c.samples >= 3 && c.a + c.b > 0.0));
    assert_eq!(m.source, "asymo-profile budget 100 ms");
    // Summary on stdout (file, classes, coefficients, R²), progress on stderr.
    assert!(stdout.contains(&format!("wrote {}", out.display())), "{stdout}");
    assert!(stdout.contains("R²") && stdout.contains("gemv"), "{stdout}");
    assert!(stderr.contains("calibrating") && stderr.contains("runs"), "{stderr}");
    assert!(!stdout.contains("energy"), "{stdout}");
}

#[test]
fn bad_flags_exit_2_and_name_the_flag() {
    let t = Temp::new("bad");
    let out = t.path("p.json");
    let out = out.to_str().unwrap();
    for (args, flag) in [
        (&["--budget-ms", "soon"][..], "--budget-ms"),
        (&["--budget-ms", "-5"], "--budget-ms"),
        (&["--budget-ms"], "--budget-ms"),
        (&["--bogus"], "--bogus"),
        (&["--topology", "0-1"], "--topology"),
        (&["--topology", "0:fast"], "--topology"),
        (&["--cores", "1-0"], "--cores"),
        (&["--cores", "100000"], "--cores"),
        (&["--sysfs-root", "/nonexistent/sysfs"], "--sysfs-root"),
        (&["--energy", "--energy-seconds", "0"], "--energy-seconds"),
        (&["--energy", "--energy-points", "many"], "--energy-points"),
        (&["--energy-seconds", "1"], "--energy-seconds"),
    ] {
        let mut a = vec!["--out", out];
        a.extend_from_slice(args);
        let o = run(&a);
        let e = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(e.starts_with("asymo-profile: ") && e.contains(flag), "{args:?}: {e}");
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(!Path::new(out).exists(), "{args:?} wrote a profile");
    }
}

#[test]
fn energy_without_cpufreq_or_meter_fails_fast_and_keeps_the_cost_profile() {
    // A VM like this one: no cpufreq policies, no powercap, no battery.
    let sys = Temp::sysfs("vm", &["vm-nocpufreq"]);
    let out = sys.path("profile.json");
    let o = run(&quick(out.to_str().unwrap(), &["--energy", "--sysfs-root", sys.0.to_str().unwrap()]));
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("--energy: cannot measure energy-frequency curves"), "{e}");
    assert!(e.contains("frequency control") && e.contains("cpufreq: no policies"), "{e}");
    assert!(e.contains("energy meter") && e.contains("powercap") && e.contains("power_supply"), "{e}");
    assert!(e.contains("was written"), "{e}");
    assert!(CostModel::load(&out).is_ok());
    assert_eq!(energy::read_energy(&out).unwrap(), None);

    // And on this machine's real /sys, when it has no cpufreq (the failure is then immediate, whatever the meter).
    if Path::new("/sys/devices/system/cpu/cpufreq/policy0").exists() {
        eprintln!("skipping the live check: this machine has cpufreq");
        return;
    }
    let out = sys.path("live.json");
    let o = run(&quick(out.to_str().unwrap(), &["--energy"]));
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("frequency control") && e.contains("cpufreq"), "{e}");
    assert!(CostModel::load(&out).is_ok());
}

#[test]
fn writable_cpufreq_without_a_meter_is_a_clear_error() {
    let sys = Temp::sysfs("phone", &["phone44"]);
    let before = limits(&sys.0);
    let out = sys.path("profile.json");
    let o = run(&quick(out.to_str().unwrap(), &["--energy", "--sysfs-root", sys.0.to_str().unwrap()]));
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("energy meter: no energy meter") && e.contains("powercap"), "{e}");
    assert!(!e.contains("frequency control"), "cpufreq is writable here: {e}");
    assert_eq!(limits(&sys.0), before);
    assert!(CostModel::load(&out).is_ok());
}

fn sample_energy() -> EnergyProfile {
    let p = |khz, j| EnergyPoint { khz, j_per_unit: j, s_per_unit: 0.25 };
    EnergyProfile {
        source: "rapl: package-0".into(),
        unit: "GFLOP".into(),
        clusters: vec![ClusterCurves {
            policy: "policy0".into(),
            cpus: vec![0, 1],
            compute: vec![p(800_000, 1.5), p(1_600_000, 1.25)],
            memory: vec![p(800_000, 0.5), p(1_600_000, 0.75)],
        }],
    }
}

#[test]
fn rerun_without_energy_keeps_the_curves() {
    let t = Temp::new("keep");
    let out = t.path("profile.json");
    let o = run(&quick(out.to_str().unwrap(), &[]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    energy::write_energy(&out, &sample_energy()).unwrap();
    let first = CostModel::load(&out).unwrap();

    let o = run(&quick(out.to_str().unwrap(), &["--budget-ms", "50"]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("kept the energy curves already in the profile"), "{}", text(&o.stdout));
    assert_eq!(energy::read_energy(&out).unwrap(), Some(sample_energy()));
    let second = CostModel::load(&out).unwrap();
    assert_eq!(second.source, "asymo-profile budget 50 ms");
    assert_ne!(first, second);
}

#[test]
fn energy_on_a_fixture_phone_with_a_meter_measures_and_restores() {
    // Writable cpufreq (4+4 phone) and a RAPL counter: the whole --energy path, with tiny workloads.
    let sys = Temp::sysfs("phone-meter", &["phone44", "meters"]);
    let before = limits(&sys.0);
    let out = sys.path("profile.json");
    let o = run(&quick(
        out.to_str().unwrap(),
        &[
            "--sysfs-root",
            sys.0.to_str().unwrap(),
            "--energy",
            "--energy-seconds",
            "0.001",
            "--energy-points",
            "2",
            "--energy-settle-ms",
            "0",
            "--energy-gemm-size",
            "8",
            "--energy-gemv-size",
            "32",
        ],
    ));
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{stderr}");
    assert_eq!(limits(&sys.0), before, "frequencies restored");
    let e = energy::read_energy(&out).unwrap().expect("energy curves written");
    assert_eq!(e.source, "rapl: package-0");
    assert_eq!(e.unit, "GFLOP");
    let khz = |c: &[EnergyPoint]| c.iter().map(|p| p.khz).collect::<Vec<_>>();
    assert_eq!(e.clusters.len(), 2);
    assert_eq!((e.clusters[0].policy.as_str(), e.clusters[0].cpus.as_slice()), ("policy0", &[0, 1, 2, 3][..]));
    assert_eq!(khz(&e.clusters[0].compute), [509_000, 1_844_000]);
    assert_eq!(khz(&e.clusters[1].memory), [682_000, 2_362_000]);
    assert!(e.clusters.iter().flat_map(|c| c.compute.iter().chain(&c.memory)).all(|p| p.s_per_unit > 0.0));
    // The cost model is still there, next to the curves.
    assert!(CostModel::load(&out).is_ok());
    assert!(stdout.contains("wrote energy curves") && stdout.contains("least energy"), "{stdout}");
    assert!(stderr.contains("policy4 (cpus 4-7) at 2362000 kHz: memory-bound"), "{stderr}");
}
