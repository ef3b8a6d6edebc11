//! `asymo-profile`: measure this machine and write the JSON profile the EP loads with `profile=<path>`.
//!
//! - Always: the cost model (per core class and kernel kind, `time = a·flops + b·bytes + c`), each class timed on a
//!   thread pinned to its first CPU.
//! - With `--energy`: energy per GFLOP against frequency, per cpufreq policy, for a compute-bound GEMM and a
//!   memory-bound GEMV (the curves `mode=energy` needs). Needs writable cpufreq and an energy meter (RAPL or a
//!   discharging battery); without them it fails at once, naming what is missing.
//!
//! Each part replaces only its own keys of the profile: re-running without `--energy` keeps measured curves.
//! Progress goes to stderr, the summary to stdout. Exit codes: 0 ok, 1 measurement or I/O failure, 2 bad usage.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use asymo_ep::asym::cost::{self, CalibrationOptions, CostModel, KernelKind};
use asymo_ep::asym::energy::{self, EnergyProfile, MeasureConfig, WorkItem};
use asymo_ep::asym::freq::{Governor, GovernorConfig, LogFn, LogLevel};
use asymo_ep::asym::reuse::ReuseClass;
use asymo_ep::asym::topology::{self, Topology, TopologyOptions};
use asymo_ep::kernels::{gemm_block, AOperand, BOperand, MatMut, MatRef, Scratch};

const USAGE: &str = "\
asymo-profile: measure this machine for the AsyMo execution provider and write its JSON profile
(load it with the session option profile=<path>).

Usage: asymo-profile [OPTIONS]

Cost model (always measured):
  --out PATH            profile to write (default: asymo-profile.json); keys it does not own are kept
  --budget-ms N         time budget of the cost calibration in milliseconds (default: 2000)
  --topology SPEC       declare the core classes instead of detecting them, e.g. 0-3:1024,4-7:462
                        (then only the fastest class is timed; the others are scaled by capacity)
  --cores LIST          only these CPUs, e.g. 0,2-3 (default: all the process may use)
  --sysfs-root DIR      sysfs mount point for topology, cpufreq and energy meters (default: /sys)

Energy-frequency curves (for mode=energy):
  --energy              also measure energy per GFLOP at each frequency of each cpufreq policy, for a
                        compute-bound GEMM and a memory-bound GEMV (needs writable cpufreq, usually root,
                        and an energy meter: powercap RAPL or a discharging battery). Frequencies are
                        restored afterwards, also on Ctrl-C.
  --energy-seconds S    measuring time per point (default: 1 with RAPL, 10 with a battery fuel gauge)
  --energy-points N     at most N frequencies per policy, evenly spread (default: 8)
  --energy-settle-ms N  wait after each frequency change (default: 200)
  --energy-gemm-size N  compute-bound workload: N×N×N GEMM blocks per thread (default: 256)
  --energy-gemv-size N  memory-bound workload: 1×N×N GEMV over an N×N matrix, split over the policy's
                        CPUs (default: 4096, 64 MiB)

  -h, --help            this help

Exit status: 0 success, 1 measurement or file error, 2 bad usage.
";

/// Parsed command line.
#[derive(Clone, Debug, PartialEq)]
struct Args {
    out: PathBuf,
    budget: Duration,
    topology: Option<String>,
    cores: Option<String>,
    sysfs_root: Option<PathBuf>,
    energy: bool,
    /// Per point; `None`: by meter.
    energy_seconds: Option<f64>,
    energy_points: usize,
    energy_settle: Duration,
    gemm_size: usize,
    gemv_size: usize,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            out: PathBuf::from("asymo-profile.json"),
            budget: Duration::from_millis(2000),
            topology: None,
            cores: None,
            sysfs_root: None,
            energy: false,
            energy_seconds: None,
            energy_points: 8,
            energy_settle: Duration::from_millis(200),
            gemm_size: 256,
            gemv_size: 4096,
        }
    }
}

impl Args {
    fn sysfs_root(&self) -> PathBuf {
        self.sysfs_root.clone().unwrap_or_else(|| PathBuf::from("/sys"))
    }
}

#[derive(Debug, PartialEq)]
enum Command {
    Help,
    Run(Args),
}

/// A whole number in `lo..=hi`; the error names the flag.
fn parse_int(flag: &str, v: &str, lo: u64, hi: u64, what: &str) -> Result<u64, String> {
    match v.trim().parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        Ok(_) => Err(format!("{flag} {v:?}: {what} must be between {lo} and {hi}")),
        Err(_) => Err(format!("{flag} {v:?}: expected {what} (a whole number)")),
    }
}

fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut a = Args::default();
    let mut energy_only: Vec<&'static str> = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        if arg == "--energy" {
            a.energy = true;
            continue;
        }
        if arg.starts_with("--energy=") {
            return Err("--energy takes no value".into());
        }
        if !arg.starts_with('-') {
            return Err(format!("unexpected argument {arg:?} (options start with --)"));
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        const WITH_VALUE: &[(&str, &str)] = &[
            ("--out", "PATH"),
            ("--budget-ms", "N"),
            ("--topology", "SPEC"),
            ("--cores", "LIST"),
            ("--sysfs-root", "DIR"),
            ("--energy-seconds", "S"),
            ("--energy-points", "N"),
            ("--energy-settle-ms", "N"),
            ("--energy-gemm-size", "N"),
            ("--energy-gemv-size", "N"),
        ];
        let Some(&(flag, meta)) = WITH_VALUE.iter().find(|(f, _)| *f == flag) else {
            return Err(format!("unknown flag {flag:?}"));
        };
        let v = match inline.or_else(|| it.next()) {
            Some(v) if !v.is_empty() => v,
            _ => return Err(format!("{flag} needs a value ({flag} {meta})")),
        };
        match flag {
            "--out" => {
                let p = PathBuf::from(&v);
                if p.is_dir() {
                    return Err(format!("--out {v:?}: is a directory (expected the profile's file path)"));
                }
                a.out = p;
            }
            "--budget-ms" => {
                a.budget = Duration::from_millis(parse_int(flag, &v, 1, 3_600_000, "milliseconds")?);
            }
            "--topology" => {
                if v.trim() != "auto" {
                    Topology::parse_override(&v).map_err(|e| format!("--topology {v:?}: {}", e.0))?;
                }
                a.topology = Some(v);
            }
            "--cores" => {
                if v.trim() != "all" {
                    let l = topology::parse_cpu_list(&v).map_err(|e| format!("--cores {v:?}: {}", e.0))?;
                    if l.is_empty() {
                        return Err(format!("--cores {v:?}: no CPUs"));
                    }
                }
                a.cores = Some(v);
            }
            "--sysfs-root" => {
                let p = PathBuf::from(&v);
                if !p.is_dir() {
                    return Err(format!("--sysfs-root {v:?}: not a directory"));
                }
                a.sysfs_root = Some(p);
            }
            "--energy-seconds" => {
                let s =
                    v.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0).ok_or_else(
                        || format!("--energy-seconds {v:?}: expected seconds > 0 (at most 3600), e.g. 1.5"),
                    )?;
                a.energy_seconds = Some(s);
                energy_only.push(flag);
            }
            "--energy-points" => {
                a.energy_points = parse_int(flag, &v, 1, 1000, "a number of frequencies")? as usize;
                energy_only.push(flag);
            }
            "--energy-settle-ms" => {
                a.energy_settle = Duration::from_millis(parse_int(flag, &v, 0, 60_000, "milliseconds")?);
                energy_only.push(flag);
            }
            "--energy-gemm-size" => {
                a.gemm_size = parse_int(flag, &v, 1, 4096, "a matrix size")? as usize;
                energy_only.push(flag);
            }
            "--energy-gemv-size" => {
                a.gemv_size = parse_int(flag, &v, 1, 16384, "a matrix size")? as usize;
                energy_only.push(flag);
            }
            _ => unreachable!("every flag of WITH_VALUE is handled"),
        }
    }
    if !a.energy {
        if let Some(f) = energy_only.first() {
            return Err(format!("{f} only applies with --energy"));
        }
    }
    Ok(Command::Run(a))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(a)) => a,
        Err(e) => {
            eprintln!("asymo-profile: {e}\nTry 'asymo-profile --help'.");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("asymo-profile: {e}");
            ExitCode::from(code)
        }
    }
}

type Failure = (u8, String);

fn run(args: &Args) -> Result<(), Failure> {
    let topt = TopologyOptions {
        topology: args.topology.clone(),
        cores: args.cores.clone(),
        sysfs_root: args.sysfs_root.clone(),
        ..Default::default()
    };
    // A topology that does not fit this machine is a bad value of the flag that asked for it (exit 2).
    let base = Topology::detect(&TopologyOptions { cores: None, ..topt.clone() }).map_err(|e| {
        match (&args.topology, &args.sysfs_root) {
            (Some(t), _) if t.trim() != "auto" => (2, format!("--topology {t:?}: {e}")),
            (_, Some(r)) => (2, format!("--sysfs-root {:?}: {e}", r.display())),
            _ => (1, format!("cannot detect the core classes: {e}")),
        }
    })?;
    let topo = match &args.cores {
        Some(c) => Topology::detect(&topt).map_err(|e| (2, format!("--cores {c:?}: {e}")))?,
        None => base,
    };
    let (fp, cores, ms) = (topo.fingerprint(), topo.num_cores(), args.budget.as_millis());
    eprintln!("asymo-profile: topology {fp} ({cores} cores); calibrating for {ms} ms");

    let model = calibrate(args, &topo, &topt)?;
    model.save(&args.out).map_err(|e| (1, e.to_string()))?;
    print_cost_summary(&model, &args.out);
    match energy::read_energy(&args.out) {
        Ok(Some(e)) if !args.energy => {
            println!("kept the energy curves already in the profile ({}, {} clusters)", e.source, e.clusters.len())
        }
        Ok(_) => {}
        Err(e) => eprintln!("asymo-profile: warning: the profile's \"energy\" object is not valid: {e}"),
    }

    if args.energy {
        let profile = measure_energy(args).map_err(|e| {
            (1, format!("{e}\nThe cost profile {} was written; it has no new energy curves.", args.out.display()))
        })?;
        energy::write_energy(&args.out, &profile).map_err(|e| (1, e.to_string()))?;
        print_energy_summary(&profile, &args.out);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Cost model

fn calibrate(args: &Args, topo: &Topology, topt: &TopologyOptions) -> Result<CostModel, Failure> {
    let workload = asymo_ep::asym::calibration_workload();
    let progress = |line: &str| eprintln!("  {line}");
    let opts = CalibrationOptions {
        budget: args.budget,
        kinds: KernelKind::ALL.to_vec(),
        scale_by_capacity: topt.topology.as_deref().is_some_and(|t| t.trim() != "auto"),
        progress: Some(&progress),
        sysfs_root: args.sysfs_root(),
        ..Default::default()
    };
    let mut model = cost::calibrate(topo, &opts, &workload).map_err(|e| (1, e.to_string()))?;
    model.source = format!("asymo-profile budget {} ms", args.budget.as_millis());
    Ok(model)
}

fn human_bytes(b: u64) -> String {
    match b {
        0 => "?".into(),
        b if b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

fn print_cost_summary(m: &CostModel, out: &Path) {
    println!("wrote {} ({})", out.display(), cost::PROFILE_FORMAT);
    println!(
        "cpu: {}; topology: {}; cache: L1d {}, L2 {}, L3 {}",
        m.cpu_model,
        m.topology,
        human_bytes(m.cache.l1d),
        human_bytes(m.cache.l2),
        human_bytes(m.cache.l3)
    );
    println!(
        "{:<10} {:>8} {:<10} {:<6} {:>9} {:>11} {:>11} {:>10} {:>7} {:>5}",
        "class", "capacity", "cpus", "kernel", "GFLOP/s", "a s/flop", "b s/byte", "c s", "R²", "runs"
    );
    for c in &m.classes {
        for (k, co) in &c.kernels {
            println!(
                "{:<10} {:>8} {:<10} {:<6} {:>9.2} {:>11.3e} {:>11.3e} {:>10.3e} {:>7.3} {:>5}",
                c.name,
                c.capacity,
                topology::fmt_cpu_list(&c.cpus),
                k.as_str(),
                cost::calibration_shapes(*k).last().map_or(0.0, |s| s.flops() / co.predict(s).max(1e-12) * 1e-9),
                co.a,
                co.b,
                co.c,
                co.r2,
                co.samples
            );
        }
    }
    println!("(GFLOP/s: the fit's prediction for the largest calibration shape of each kernel kind)");
}

// ---------------------------------------------------------------------------------------------------------------
// Energy

/// Pinned workloads for [`energy::measure_curves`]: per call, one thread per CPU of the cluster, each running its
/// kernel repeatedly for about `slice`; returns the GFLOP done.
struct EnergyBench {
    gemm_n: usize,
    gemm_a: Vec<f32>,
    gemm_b: Vec<f32>,
    gemv_n: usize,
    gemv_x: Vec<f32>,
    gemv_m: Vec<f32>,
    slice: Duration,
}

impl EnergyBench {
    fn new(gemm_n: usize, gemv_n: usize, slice: Duration) -> EnergyBench {
        let fill = |n: usize, m: usize| (0..n).map(|i| ((i % m) as f32 - (m / 2) as f32) * 0.01).collect::<Vec<f32>>();
        EnergyBench {
            gemm_n,
            gemm_a: fill(gemm_n * gemm_n, 13),
            gemm_b: fill(gemm_n * gemm_n, 7),
            gemv_n,
            gemv_x: fill(gemv_n, 5),
            gemv_m: fill(gemv_n * gemv_n, 11),
            slice,
        }
    }

    /// Run `class`'s kernel on every CPU of `cpus` (one pinned thread each); the GFLOP done and the CPUs that
    /// could not be pinned.
    fn run(&self, cpus: &[usize], class: ReuseClass) -> (f64, Vec<usize>) {
        let threads = cpus.len().max(1);
        let results: Vec<(f64, Option<usize>)> = std::thread::scope(|s| {
            let handles: Vec<_> = cpus
                .iter()
                .enumerate()
                .map(|(i, &cpu)| {
                    s.spawn(move || {
                        let pinned = topology::pin_current_thread(cpu);
                        let flops = match class {
                            ReuseClass::ComputeBound => self.gemm_loop(),
                            ReuseClass::MemoryBound => {
                                let n = self.gemv_n;
                                self.gemv_loop(i * n / threads..(i + 1) * n / threads)
                            }
                        };
                        (flops, (!pinned).then_some(cpu))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("an energy workload thread panicked")).collect()
        });
        let gflop = results.iter().map(|r| r.0).sum::<f64>() * 1e-9;
        (gflop, results.iter().filter_map(|r| r.1).collect())
    }

    /// Compute-bound: a full `n×n×n` GEMM, repeated.
    fn gemm_loop(&self) -> f64 {
        let n = self.gemm_n;
        let mut c = vec![0.0f32; n * n];
        let mut scratch = Scratch::new();
        let t0 = Instant::now();
        let mut flops = 0.0;
        loop {
            let a = MatRef::row_major(&self.gemm_a, n, n);
            let b = MatRef::row_major(&self.gemm_b, n, n);
            let out = MatMut::row_major(&mut c, n, n);
            gemm_block(AOperand::View(a), BOperand::View(b), out, n, 0..n, 0..n, &[], &mut scratch);
            flops += 2.0 * (n * n * n) as f64;
            if t0.elapsed() >= self.slice {
                break;
            }
        }
        std::hint::black_box(&c);
        flops
    }

    /// Memory-bound: columns `cols` of `x[1×n] · M[n×n]`, streaming that part of the matrix, repeated.
    fn gemv_loop(&self, cols: std::ops::Range<usize>) -> f64 {
        let n = self.gemv_n;
        if cols.is_empty() {
            return 0.0;
        }
        let mut y = vec![0.0f32; n];
        let mut scratch = Scratch::new();
        let t0 = Instant::now();
        let mut flops = 0.0;
        loop {
            let x = MatRef::row_major(&self.gemv_x, 1, n);
            let m = MatRef::row_major(&self.gemv_m, n, n);
            let out = MatMut::row_major(&mut y, 1, n);
            gemm_block(AOperand::View(x), BOperand::View(m), out, n, 0..1, cols.clone(), &[], &mut scratch);
            flops += 2.0 * (n * cols.len()) as f64;
            if t0.elapsed() >= self.slice {
                break;
            }
        }
        std::hint::black_box(&y);
        flops
    }
}

fn measure_energy(args: &Args) -> Result<EnergyProfile, String> {
    let root = args.sysfs_root();
    let log: LogFn = Arc::new(|lvl: LogLevel, msg: &str| eprintln!("asymo-profile: governor ({lvl:?}): {msg}"));
    // Signal handlers on (the default): Ctrl-C restores the original frequencies before the process ends.
    let mut gcfg = GovernorConfig::new(&root, log);
    gcfg.signal_handlers = true;
    let gov = Governor::new(gcfg);

    // Fail fast, naming everything that is missing, before allocating or measuring anything.
    let mut missing = Vec::new();
    if let Err(e) = gov.plan_pinned(&vec![None; gov.clusters().len()], Duration::ZERO) {
        missing.push(format!("frequency control: {e}"));
    }
    let meter = match energy::probe_meter(&root) {
        Ok(m) => Some(m),
        Err(e) => {
            missing.push(format!("energy meter: {e}"));
            None
        }
    };
    let Some(mut meter) = meter.filter(|_| missing.is_empty()) else {
        return Err(format!(
            "--energy: cannot measure energy-frequency curves on this machine:\n  - {}",
            missing.join("\n  - ")
        ));
    };

    let battery = !meter.describe().starts_with("rapl");
    let secs = args.energy_seconds.unwrap_or(if battery { 10.0 } else { 1.0 });
    let cfg = MeasureConfig {
        min_duration: Duration::from_secs_f64(secs),
        settle: args.energy_settle,
        max_points: args.energy_points,
        unit: "GFLOP".into(),
    };
    let clusters = gov.clusters().to_vec();
    let points: usize = clusters
        .iter()
        .map(|c| if c.available_khz.is_empty() { args.energy_points.max(2) } else { c.available_khz.len() })
        .map(|n| n.min(args.energy_points))
        .sum();
    eprintln!(
        "asymo-profile: measuring energy with {} on {} policies ({} frequencies × 2 workloads × {secs} s ≈ {:.0} s); \
         Ctrl-C restores the frequencies",
        meter.describe(),
        clusters.len(),
        points,
        points as f64 * (2.0 * secs + cfg.settle.as_secs_f64())
    );
    let bench = EnergyBench::new(args.gemm_size, args.gemv_size, Duration::from_secs_f64(secs / 10.0).min(SLICE_MAX));
    let mut last: Option<(usize, u32, ReuseClass)> = None;
    let mut warned: BTreeSet<usize> = BTreeSet::new();
    let mut workload = |w: &WorkItem<'_>| -> f64 {
        if last != Some((w.cluster, w.khz, w.class)) {
            last = Some((w.cluster, w.khz, w.class));
            eprintln!(
                "  {} (cpus {}) at {} kHz: {}-bound",
                clusters[w.cluster].policy,
                topology::fmt_cpu_list(w.cpus),
                w.khz,
                w.class.key()
            );
        }
        let (gflop, unpinned) = bench.run(w.cpus, w.class);
        let new: Vec<usize> = unpinned.into_iter().filter(|c| warned.insert(*c)).collect();
        if !new.is_empty() {
            eprintln!(
                "asymo-profile: warning: could not pin to CPU {} (offline or outside this process's affinity); \
                 its share ran unpinned",
                topology::fmt_cpu_list(&new)
            );
        }
        gflop
    };
    energy::measure_curves(&gov, meter.as_mut(), &cfg, &mut workload).map_err(|e| e.to_string())
}

/// Longest run of one workload call (the thread start-up it amortizes is ~50 µs).
const SLICE_MAX: Duration = Duration::from_millis(100);

fn print_energy_summary(p: &EnergyProfile, out: &Path) {
    println!("wrote energy curves to {} (meter: {}, unit: {})", out.display(), p.source, p.unit);
    println!("{:<10} {:<10} {:<8} {:>10} {:>12} {:>12}", "policy", "cpus", "workload", "kHz", "J/GFLOP", "s/GFLOP");
    for c in &p.clusters {
        for class in ReuseClass::ALL {
            let best = c.least_energy_khz(class);
            for pt in c.curve(class) {
                println!(
                    "{:<10} {:<10} {:<8} {:>10} {:>12.4} {:>12.4}{}",
                    c.policy,
                    topology::fmt_cpu_list(&c.cpus),
                    class.key(),
                    pt.khz,
                    pt.j_per_unit,
                    pt.s_per_unit,
                    if best == Some(pt.khz) { "  ← least energy" } else { "" }
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Command, String> {
        parse_args(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(parse(&[]).unwrap(), Command::Run(Args::default()));
        assert_eq!(parse(&["--budget-ms", "5", "--help"]).unwrap(), Command::Help);
        let Command::Run(a) = parse(&[
            "--out=x/p.json",
            "--budget-ms",
            "100",
            "--topology",
            "0:1024",
            "--cores",
            "0",
            "--energy",
            "--energy-seconds",
            "0.5",
            "--energy-points=3",
            "--energy-settle-ms",
            "0",
            "--energy-gemm-size",
            "64",
            "--energy-gemv-size",
            "128",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.out, PathBuf::from("x/p.json"));
        assert_eq!(a.budget, Duration::from_millis(100));
        assert_eq!(a.topology.as_deref(), Some("0:1024"));
        assert!(a.energy);
        assert_eq!(a.energy_seconds, Some(0.5));
        assert_eq!((a.energy_points, a.energy_settle, a.gemm_size, a.gemv_size), (3, Duration::ZERO, 64, 128));
    }

    #[test]
    fn bad_usage_names_the_flag() {
        for (args, want) in [
            (&["--budget-ms", "abc"][..], "--budget-ms \"abc\": expected milliseconds"),
            (&["--budget-ms", "0"], "--budget-ms \"0\": milliseconds must be between 1"),
            (&["--budget-ms"], "--budget-ms needs a value"),
            (&["--out="], "--out needs a value"),
            (&["--frobnicate"], "unknown flag \"--frobnicate\""),
            (&["profile.json"], "unexpected argument \"profile.json\""),
            (&["--topology", "0-1"], "--topology \"0-1\": "),
            (&["--cores", "x"], "--cores \"x\": bad CPU number"),
            (&["--sysfs-root", "/nonexistent/sys"], "--sysfs-root \"/nonexistent/sys\": not a directory"),
            (&["--out", "/"], "--out \"/\": is a directory"),
            (&["--energy", "--energy-seconds", "-1"], "--energy-seconds \"-1\": expected seconds > 0"),
            (&["--energy", "--energy-seconds", "nan"], "--energy-seconds \"nan\""),
            (&["--energy", "--energy-points", "0"], "--energy-points \"0\""),
            (&["--energy-points", "4"], "--energy-points only applies with --energy"),
        ] {
            let e = parse(args).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn energy_bench_counts_its_work() {
        let b = EnergyBench::new(8, 16, Duration::ZERO);
        let (g, _) = b.run(&[0], ReuseClass::ComputeBound);
        assert_eq!(g, 2.0 * 512.0 * 1e-9);
        // The GEMV's columns are split over the threads: the total is one full GEMV.
        let (g, _) = b.run(&[0, 0, 0], ReuseClass::MemoryBound);
        assert!((g - 2.0 * 256.0 * 1e-9).abs() < 1e-18, "{g}");
    }
}
