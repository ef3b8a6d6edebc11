//! Energy–frequency profiles: energy per unit of work against frequency, per cluster and per reuse class, measured
//! where the platform exposes energy, stored as the `"energy"` object of the JSON profile.
//!
//! The curves drive `mode=energy`: for a model of a given reuse class the governor pins each cluster at the
//! frequency with the least energy per unit of work. They are only ever *measured* ([`measure_curves`]); there are
//! no built-in or extrapolated numbers, and `mode=energy` without them is an error.
//!
//! # Profile format (the `"energy"` key of the profile; the rest of the file belongs to the cost model)
//! ```json
//! "energy": {
//!   "version": 1,
//!   "source": "rapl: package-0",              // which meter measured it
//!   "unit": "GFLOP",                          // what the workload's returned work amount counts
//!   "clusters": [
//!     { "policy": "policy0", "cpus": [0, 1, 2, 3],
//!       "compute": [ { "khz": 509000, "j_per_unit": 0.91, "s_per_unit": 0.210 }, ... ],
//!       "memory":  [ { "khz": 509000, "j_per_unit": 1.30, "s_per_unit": 0.350 }, ... ] },
//!     ...
//!   ]
//! }
//! ```
//! Curves are sorted by frequency. Clusters are matched to the device by their CPU list.
//!
//! # Meters
//! - powercap RAPL (`/sys/class/powercap/intel-rapl:N/energy_uj`, wraparound at `max_energy_range_uj`): the `psys`
//!   (platform) zone when present, else the sum of the package zones. Usually readable by root only.
//! - Android/Linux battery (`/sys/class/power_supply/*/{power_now | current_now × voltage_now}`), sampled on a
//!   background thread while discharging. Fuel gauges average over ~1 s: use long measurement windows.
//!
//! Both measure the whole package or device, idle parts included — which is the energy a run really costs.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::freq::Governor;
use super::reuse::ReuseClass;

/// One measured point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EnergyPoint {
    pub khz: u32,
    /// Joules per unit of work.
    pub j_per_unit: f64,
    /// Seconds per unit of work.
    pub s_per_unit: f64,
}

/// The curves of one cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterCurves {
    pub policy: String,
    pub cpus: Vec<usize>,
    pub compute: Vec<EnergyPoint>,
    pub memory: Vec<EnergyPoint>,
}

impl ClusterCurves {
    pub fn curve(&self, class: ReuseClass) -> &[EnergyPoint] {
        match class {
            ReuseClass::ComputeBound => &self.compute,
            ReuseClass::MemoryBound => &self.memory,
        }
    }

    /// The frequency with the least energy per unit of work for `class` (ties: the faster one). None if the curve
    /// is empty.
    pub fn least_energy_khz(&self, class: ReuseClass) -> Option<u32> {
        self.curve(class)
            .iter()
            .min_by(|a, b| a.j_per_unit.total_cmp(&b.j_per_unit).then(b.khz.cmp(&a.khz)))
            .map(|p| p.khz)
    }
}

/// The `"energy"` object of a profile.
#[derive(Clone, Debug, PartialEq)]
pub struct EnergyProfile {
    pub source: String,
    pub unit: String,
    pub clusters: Vec<ClusterCurves>,
}

pub const FORMAT_VERSION: u64 = 1;

/// Errors of measuring, reading and writing energy profiles.
#[derive(Debug)]
pub enum EnergyError {
    /// The platform exposes no energy counter we can read; says what was tried.
    NoMeter(String),
    /// Frequencies cannot be stepped (no writable cpufreq).
    CannotSetFrequency(String),
    Io(PathBuf, io::Error),
    /// The JSON is not a valid energy profile; says where.
    Format(String),
    /// The workload reported no work.
    Workload(String),
}

impl fmt::Display for EnergyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnergyError::NoMeter(s) | EnergyError::CannotSetFrequency(s) | EnergyError::Workload(s) => f.write_str(s),
            EnergyError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            EnergyError::Format(s) => write!(f, "energy profile: {s}"),
        }
    }
}

impl std::error::Error for EnergyError {}

// ---------------------------------------------------------------------------------------------------------------
// JSON

fn points_to_json(points: &[EnergyPoint]) -> Value {
    Value::Array(
        points
            .iter()
            .map(|p| json!({ "khz": p.khz, "j_per_unit": p.j_per_unit, "s_per_unit": p.s_per_unit }))
            .collect(),
    )
}

fn points_from_json(v: Option<&Value>, at: &str) -> Result<Vec<EnergyPoint>, EnergyError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let arr = v.as_array().ok_or_else(|| EnergyError::Format(format!("{at}: expected an array")))?;
    let mut out = Vec::with_capacity(arr.len());
    for (i, p) in arr.iter().enumerate() {
        let num = |k: &str| {
            p.get(k)
                .and_then(Value::as_f64)
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| EnergyError::Format(format!("{at}[{i}].{k}: expected a non-negative number")))
        };
        let khz = p
            .get("khz")
            .and_then(Value::as_u64)
            .filter(|&k| k > 0 && k <= u32::MAX as u64)
            .ok_or_else(|| EnergyError::Format(format!("{at}[{i}].khz: expected a positive integer")))?;
        out.push(EnergyPoint { khz: khz as u32, j_per_unit: num("j_per_unit")?, s_per_unit: num("s_per_unit")? });
    }
    out.sort_by_key(|p| p.khz);
    Ok(out)
}

impl EnergyProfile {
    /// The curves of the cluster with exactly these CPUs.
    pub fn cluster_for(&self, cpus: &[usize]) -> Option<&ClusterCurves> {
        self.clusters.iter().find(|c| c.cpus == cpus)
    }

    pub fn to_json(&self) -> Value {
        let clusters: Vec<Value> = self
            .clusters
            .iter()
            .map(|c| {
                json!({
                    "policy": c.policy,
                    "cpus": c.cpus,
                    "compute": points_to_json(&c.compute),
                    "memory": points_to_json(&c.memory),
                })
            })
            .collect();
        json!({ "version": FORMAT_VERSION, "source": self.source, "unit": self.unit, "clusters": clusters })
    }

    pub fn from_json(v: &Value) -> Result<EnergyProfile, EnergyError> {
        let o = v.as_object().ok_or_else(|| EnergyError::Format("\"energy\": expected an object".into()))?;
        match o.get("version").and_then(Value::as_u64) {
            Some(FORMAT_VERSION) => {}
            other => {
                return Err(EnergyError::Format(format!(
                    "energy.version: expected {FORMAT_VERSION}, found {other:?}; re-measure with asymo-profile --energy"
                )))
            }
        }
        let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let arr = o
            .get("clusters")
            .and_then(Value::as_array)
            .ok_or_else(|| EnergyError::Format("energy.clusters: expected an array".into()))?;
        let mut clusters = Vec::with_capacity(arr.len());
        for (i, c) in arr.iter().enumerate() {
            let at = format!("energy.clusters[{i}]");
            let mut cpus: Vec<usize> = c
                .get("cpus")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x as usize)).collect())
                .ok_or_else(|| EnergyError::Format(format!("{at}.cpus: expected an array of cpu numbers")))?;
            cpus.sort_unstable();
            clusters.push(ClusterCurves {
                policy: c.get("policy").and_then(Value::as_str).unwrap_or("").to_string(),
                cpus,
                compute: points_from_json(c.get("compute"), &format!("{at}.compute"))?,
                memory: points_from_json(c.get("memory"), &format!("{at}.memory"))?,
            });
        }
        Ok(EnergyProfile { source: s("source"), unit: s("unit"), clusters })
    }
}

/// The energy curves of a profile given as JSON text: `Ok(None)` when it has no `"energy"` object.
pub fn parse_energy(profile_json: &str) -> Result<Option<EnergyProfile>, EnergyError> {
    let v: Value =
        serde_json::from_str(profile_json).map_err(|e| EnergyError::Format(format!("not valid JSON: {e}")))?;
    match v.get("energy") {
        None | Some(Value::Null) => Ok(None),
        Some(e) => EnergyProfile::from_json(e).map(Some),
    }
}

/// The energy curves of the profile file at `path`: `Ok(None)` when it has none.
pub fn read_energy(path: &Path) -> Result<Option<EnergyProfile>, EnergyError> {
    let text = fs::read_to_string(path).map_err(|e| EnergyError::Io(path.to_path_buf(), e))?;
    parse_energy(&text)
}

/// Store `profile` as the `"energy"` object of the profile file at `path`, keeping every other key (the cost
/// model's); creates the file if needed. Written to a temporary file and renamed, so a reader never sees half a
/// profile. An existing file that is not a JSON object is an error and is left alone.
pub fn write_energy(path: &Path, profile: &EnergyProfile) -> Result<(), EnergyError> {
    let value = profile.to_json();
    super::profile::update(path, |root| {
        root.insert("energy".into(), value);
    })
    .map_err(|e| match e {
        super::profile::FileError::Io(p, e) => EnergyError::Io(p, e),
        e @ super::profile::FileError::Format(..) => EnergyError::Format(e.to_string()),
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Meters

/// A source of energy readings over an interval.
pub trait EnergyMeter: Send {
    /// E.g. `"rapl: package-0"`; stored as the profile's `source`.
    fn describe(&self) -> String;
    fn start(&mut self) -> io::Result<()>;
    /// Joules since `start`.
    fn stop(&mut self) -> io::Result<f64>;
}

fn read_u64(p: &Path) -> io::Result<u64> {
    fs::read_to_string(p)?
        .trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", p.display())))
}

fn read_i64(p: &Path) -> io::Result<i64> {
    fs::read_to_string(p)?
        .trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", p.display())))
}

struct RaplZone {
    energy: PathBuf,
    max_range: u64,
    start: u64,
}

/// powercap RAPL counters.
pub struct RaplMeter {
    zones: Vec<RaplZone>,
    names: Vec<String>,
}

/// Energy between two readings of a counter that wraps at `max_range` (at most one wrap in between).
pub fn counter_delta(start: u64, end: u64, max_range: u64) -> u64 {
    if end >= start {
        end - start
    } else {
        max_range.saturating_sub(start) + end
    }
}

impl RaplMeter {
    /// Find the top-level RAPL zones under `<sysfs_root>/class/powercap`.
    pub fn probe(sysfs_root: &Path) -> Result<RaplMeter, String> {
        let dir = sysfs_root.join("class/powercap");
        let rd = fs::read_dir(&dir).map_err(|e| format!("powercap: {}: {e}", dir.display()))?;
        let mut zones: Vec<(String, PathBuf)> = Vec::new();
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            // Top-level zones only ("intel-rapl:0"; subzones "intel-rapl:0:1" are parts of it).
            if n.starts_with("intel-rapl:") && n.matches(':').count() == 1 {
                let name = fs::read_to_string(e.path().join("name")).map(|s| s.trim().to_string()).unwrap_or(n);
                zones.push((name, e.path()));
            }
        }
        zones.sort();
        if zones.is_empty() {
            return Err(format!("powercap: no intel-rapl zones under {}", dir.display()));
        }
        // psys covers the whole platform, packages included: use it alone when present.
        if let Some(psys) = zones.iter().find(|(n, _)| n == "psys").cloned() {
            zones = vec![psys];
        }
        let mut out = RaplMeter { zones: Vec::new(), names: Vec::new() };
        for (name, p) in zones {
            let energy = p.join("energy_uj");
            read_u64(&energy).map_err(|e| {
                format!("powercap: cannot read {}: {e} (reading RAPL energy usually needs root)", energy.display())
            })?;
            let max_range = read_u64(&p.join("max_energy_range_uj")).unwrap_or(u64::MAX);
            out.zones.push(RaplZone { energy, max_range, start: 0 });
            out.names.push(name);
        }
        Ok(out)
    }
}

impl EnergyMeter for RaplMeter {
    fn describe(&self) -> String {
        format!("rapl: {}", self.names.join(" + "))
    }

    fn start(&mut self) -> io::Result<()> {
        for z in &mut self.zones {
            z.start = read_u64(&z.energy)?;
        }
        Ok(())
    }

    fn stop(&mut self) -> io::Result<f64> {
        let mut uj = 0u64;
        for z in &self.zones {
            uj += counter_delta(z.start, read_u64(&z.energy)?, z.max_range);
        }
        Ok(uj as f64 * 1e-6)
    }
}

/// A discharging battery, sampled on a background thread.
pub struct BatteryMeter {
    dir: PathBuf,
    interval: Duration,
    running: Option<(Arc<AtomicBool>, JoinHandle<io::Result<f64>>)>,
}

/// Instantaneous power draw in watts from a power_supply directory.
fn battery_watts(dir: &Path) -> io::Result<f64> {
    if let Ok(uw) = read_i64(&dir.join("power_now")) {
        return Ok(uw.unsigned_abs() as f64 * 1e-6);
    }
    // Sign conventions differ between drivers; the magnitude is what matters while discharging.
    let ua = read_i64(&dir.join("current_now"))?.unsigned_abs() as f64;
    let uv = read_i64(&dir.join("voltage_now"))?.unsigned_abs() as f64;
    Ok(ua * uv * 1e-12)
}

impl BatteryMeter {
    /// Find a discharging battery under `<sysfs_root>/class/power_supply`.
    pub fn probe(sysfs_root: &Path, interval: Duration) -> Result<BatteryMeter, String> {
        let dir = sysfs_root.join("class/power_supply");
        let rd = fs::read_dir(&dir).map_err(|e| format!("power_supply: {}: {e}", dir.display()))?;
        let mut why = Vec::new();
        let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            let rd = |f: &str| fs::read_to_string(p.join(f)).map(|s| s.trim().to_string()).unwrap_or_default();
            if rd("type") != "Battery" {
                continue;
            }
            let status = rd("status");
            if status != "Discharging" {
                why.push(format!(
                    "{}: status is '{status}', not Discharging (unplug the charger: the battery current must be the \
                     device's draw)",
                    p.display()
                ));
                continue;
            }
            match battery_watts(&p) {
                Ok(_) => return Ok(BatteryMeter { dir: p, interval, running: None }),
                Err(e) => why.push(format!("{}: no readable power_now or current_now × voltage_now: {e}", p.display())),
            }
        }
        if why.is_empty() {
            why.push(format!("power_supply: no battery under {}", dir.display()));
        }
        Err(why.join("; "))
    }
}

impl EnergyMeter for BatteryMeter {
    fn describe(&self) -> String {
        format!("power_supply: {}", self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
    }

    fn start(&mut self) -> io::Result<()> {
        let _ = self.stop();
        let stop = Arc::new(AtomicBool::new(false));
        let (dir, interval, flag) = (self.dir.clone(), self.interval, stop.clone());
        let first = battery_watts(&dir)?;
        let h = std::thread::Builder::new().name("asymo-energy-meter".into()).spawn(move || {
            // Trapezoidal integration of power over time.
            let (mut joules, mut last_t, mut last_w) = (0.0, Instant::now(), first);
            loop {
                // Relaxed: a plain stop flag; the join below synchronizes the result.
                let done = flag.load(Ordering::Relaxed);
                if !done {
                    std::thread::sleep(interval);
                }
                let now = Instant::now();
                let w = battery_watts(&dir)?;
                joules += 0.5 * (w + last_w) * (now - last_t).as_secs_f64();
                (last_t, last_w) = (now, w);
                if done {
                    return Ok(joules);
                }
            }
        })?;
        self.running = Some((stop, h));
        Ok(())
    }

    fn stop(&mut self) -> io::Result<f64> {
        let Some((flag, h)) = self.running.take() else { return Ok(0.0) };
        flag.store(true, Ordering::Relaxed);
        h.join().map_err(|_| io::Error::other("the battery sampling thread panicked"))?
    }
}

/// The best meter this platform offers under `sysfs_root`: RAPL, else a discharging battery. The error lists why
/// each one is unusable.
pub fn probe_meter(sysfs_root: &Path) -> Result<Box<dyn EnergyMeter>, EnergyError> {
    let rapl = match RaplMeter::probe(sysfs_root) {
        Ok(m) => return Ok(Box::new(m)),
        Err(e) => e,
    };
    let bat = match BatteryMeter::probe(sysfs_root, Duration::from_millis(20)) {
        Ok(m) => return Ok(Box::new(m)),
        Err(e) => e,
    };
    Err(EnergyError::NoMeter(format!("no energy meter on this platform: {rapl}; {bat}")))
}

// ---------------------------------------------------------------------------------------------------------------
// Measuring

/// How long and how densely to measure.
#[derive(Clone, Debug)]
pub struct MeasureConfig {
    /// Minimum measured time per (cluster, frequency, class) point; the workload is repeated until it is reached.
    /// RAPL: ~1 s is plenty; battery fuel gauges: 10 s or more.
    pub min_duration: Duration,
    /// Wait after setting a frequency before measuring.
    pub settle: Duration,
    /// At most this many frequencies per cluster (evenly spaced over the table, lowest and highest included).
    pub max_points: usize,
    /// What the workload's returned amounts count (e.g. "GFLOP"); stored in the profile.
    pub unit: String,
}

impl Default for MeasureConfig {
    fn default() -> Self {
        MeasureConfig {
            min_duration: Duration::from_secs(1),
            settle: Duration::from_millis(200),
            max_points: 8,
            unit: "GFLOP".into(),
        }
    }
}

/// One batch of work the caller runs for [`measure_curves`].
#[derive(Clone, Copy, Debug)]
pub struct WorkItem<'a> {
    /// Index into [`Governor::clusters`].
    pub cluster: usize,
    /// Run on these CPUs only (pin the threads).
    pub cpus: &'a [usize],
    /// Run a kernel of this reuse class (e.g. a large GEMM for compute-bound, a GEMV for memory-bound).
    pub class: ReuseClass,
    /// The frequency the cluster is pinned at (informational).
    pub khz: u32,
}

/// Evenly spaced picks from a sorted list, first and last included.
fn spread(all: &[u32], n: usize) -> Vec<u32> {
    if all.len() <= n || n < 2 {
        return if n == 1 && !all.is_empty() { vec![*all.last().unwrap()] } else { all.to_vec() };
    }
    let mut out: Vec<u32> = (0..n).map(|i| all[i * (all.len() - 1) / (n - 1)]).collect();
    out.dedup();
    out
}

/// Measure energy per unit of work against frequency for every cluster the governor controls and both reuse
/// classes. `workload` runs one batch of the given class on the given CPUs and returns the amount of work done
/// (in `cfg.unit`); it is called repeatedly until `cfg.min_duration` has passed. Frequencies are stepped through
/// the governor (which restores everything afterwards, or on a signal).
pub fn measure_curves(
    gov: &Governor,
    meter: &mut dyn EnergyMeter,
    cfg: &MeasureConfig,
    workload: &mut dyn FnMut(&WorkItem<'_>) -> f64,
) -> Result<EnergyProfile, EnergyError> {
    let clusters = gov.clusters().to_vec();
    let cannot = |e: &dyn fmt::Display| EnergyError::CannotSetFrequency(format!("cannot step CPU frequencies: {e}"));
    // Fail early, before any long measurement, if pinning is impossible.
    gov.plan_pinned(&vec![None; clusters.len()], Duration::ZERO).map_err(|e| cannot(&e))?;
    if clusters.is_empty() {
        return Err(cannot(&"no cpufreq policies"));
    }
    let mut out = Vec::with_capacity(clusters.len());
    for (ci, c) in clusters.iter().enumerate() {
        let table: Vec<u32> = if c.available_khz.is_empty() {
            // No table (e.g. intel_pstate): evenly spaced over the allowed range.
            let n = cfg.max_points.max(2) as u64;
            (0..n).map(|i| (c.min_khz as u64 + (c.max_khz - c.min_khz) as u64 * i / (n - 1)) as u32).collect()
        } else {
            c.available_khz.iter().copied().filter(|&f| f >= c.min_khz && f <= c.max_khz).collect()
        };
        let mut curves =
            ClusterCurves { policy: c.policy.clone(), cpus: c.cpus.clone(), compute: vec![], memory: vec![] };
        for khz in spread(&table, cfg.max_points) {
            let mut pins = vec![None; clusters.len()];
            pins[ci] = Some(khz);
            let plan = gov.plan_pinned(&pins, Duration::ZERO).map_err(|e| cannot(&e))?;
            let token = gov.run_start(&plan);
            std::thread::sleep(cfg.settle);
            let mut result = Ok(());
            for class in ReuseClass::ALL {
                let item = WorkItem { cluster: ci, cpus: &c.cpus, class, khz };
                match measure_point(meter, cfg, &item, workload) {
                    Ok(p) => match class {
                        ReuseClass::ComputeBound => curves.compute.push(p),
                        ReuseClass::MemoryBound => curves.memory.push(p),
                    },
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            gov.run_end(token);
            result?;
        }
        out.push(curves);
    }
    Ok(EnergyProfile { source: meter.describe(), unit: cfg.unit.clone(), clusters: out })
}

fn measure_point(
    meter: &mut dyn EnergyMeter,
    cfg: &MeasureConfig,
    item: &WorkItem<'_>,
    workload: &mut dyn FnMut(&WorkItem<'_>) -> f64,
) -> Result<EnergyPoint, EnergyError> {
    let meter_err = |e: io::Error| EnergyError::NoMeter(format!("energy meter {}: {e}", meter_name(item)));
    meter.start().map_err(meter_err)?;
    let t0 = Instant::now();
    let mut units = 0.0;
    loop {
        units += workload(item);
        if t0.elapsed() >= cfg.min_duration {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let joules = meter.stop().map_err(meter_err)?;
    if !(units > 0.0 && units.is_finite()) {
        return Err(EnergyError::Workload(format!(
            "the workload reported {units} units of work for {} at {} kHz",
            item.class.key(),
            item.khz
        )));
    }
    Ok(EnergyPoint { khz: item.khz, j_per_unit: joules / units, s_per_unit: secs / units })
}

fn meter_name(item: &WorkItem<'_>) -> String {
    format!("(cluster {}, {} kHz)", item.cluster, item.khz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraparound() {
        assert_eq!(counter_delta(100, 250, 1000), 150);
        assert_eq!(counter_delta(900, 50, 1000), 150);
        assert_eq!(counter_delta(0, 0, 1000), 0);
    }

    #[test]
    fn spreading() {
        let t = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(spread(&t, 3), [1, 5, 9]);
        assert_eq!(spread(&t, 20), t);
        assert_eq!(spread(&t, 1), [9]);
        assert_eq!(spread(&[], 4), Vec::<u32>::new());
    }

    fn sample() -> EnergyProfile {
        let p = |khz, j| EnergyPoint { khz, j_per_unit: j, s_per_unit: 1e6 / khz as f64 };
        EnergyProfile {
            source: "test".into(),
            unit: "GFLOP".into(),
            clusters: vec![ClusterCurves {
                policy: "policy0".into(),
                cpus: vec![0, 1],
                compute: vec![p(500, 3.0), p(1000, 2.0), p(1500, 2.0), p(2000, 2.5)],
                memory: vec![p(500, 1.0), p(1000, 1.5)],
            }],
        }
    }

    #[test]
    fn least_energy_prefers_faster_on_ties() {
        let c = &sample().clusters[0];
        assert_eq!(c.least_energy_khz(ReuseClass::ComputeBound), Some(1500));
        assert_eq!(c.least_energy_khz(ReuseClass::MemoryBound), Some(500));
        let empty = ClusterCurves { compute: vec![], ..c.clone() };
        assert_eq!(empty.least_energy_khz(ReuseClass::ComputeBound), None);
    }

    #[test]
    fn json_round_trip_and_errors() {
        let p = sample();
        let text = serde_json::to_string(&json!({ "cost": {"a": 1}, "energy": p.to_json() })).unwrap();
        assert_eq!(parse_energy(&text).unwrap(), Some(p));
        assert_eq!(parse_energy(r#"{"cost": {}}"#).unwrap(), None);
        let bad = r#"{"energy": {"version": 1, "clusters": [{"cpus": [0], "compute": [{"khz": 0, "j_per_unit": 1, "s_per_unit": 1}]}]}}"#;
        let e = parse_energy(bad).unwrap_err().to_string();
        assert!(e.contains("energy.clusters[0].compute[0].khz"), "{e}");
        let e = parse_energy(r#"{"energy": {"version": 9, "clusters": []}}"#).unwrap_err().to_string();
        assert!(e.contains("version"), "{e}");
    }
}
