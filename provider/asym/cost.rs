//! The cost model: per core class and kernel kind, `time(task) = a·flops + b·bytes + c`, fitted by least squares on
//! micro-runs pinned to one core of each class.
//!
//! - [`calibrate`] times a caller-supplied workload (any kernel: a closure over a [`TaskShape`]) on a thread pinned to
//!   the first CPU of each class, within a time budget, and fits the coefficients.
//! - [`CostModel::load`]/[`CostModel::save`] read and write the JSON profile (the `asymo-profile` tool's output,
//!   option `profile=<path>`). A missing or corrupt profile is an error naming the file and the field. `save`
//!   replaces only the cost model's keys ([`COST_KEYS`]) and keeps the others (the `"energy"` curves).
//! - [`load_or_calibrate`] is the quick built-in path: a calibration cached on disk (`$ASYMO_EP_CACHE_DIR`, else
//!   `$XDG_CACHE_HOME/asymo-ep`, else `~/.cache/asymo-ep`) keyed by CPU model and topology fingerprint.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::profile;
use super::topology::{self, CacheSizes, Topology};

/// What kind of kernel a task runs; each class has coefficients per kind (missing kinds fall back to `Gemm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KernelKind {
    /// GEMM over strided or packed operands (MatMul, Gemm, 1×1 convolutions).
    Gemm,
    /// GEMM whose B operand is read through im2col (k×k convolutions).
    Conv,
    /// Matrix–vector shapes (M or N tiny): bandwidth bound.
    Gemv,
    /// Depthwise convolution: `m` channels × `n` output positions × `k` taps. Per flop several times slower than a
    /// GEMM (no reuse across channels), so it has its own coefficients: predicted at GEMM speed, a 14 × 14 × 256
    /// layer looked like 9 µs of work (measured ≈ 50) and never left one core.
    Depthwise,
}

impl KernelKind {
    pub const ALL: [KernelKind; 4] = [KernelKind::Gemm, KernelKind::Conv, KernelKind::Gemv, KernelKind::Depthwise];

    pub fn as_str(self) -> &'static str {
        match self {
            KernelKind::Gemm => "gemm",
            KernelKind::Conv => "conv",
            KernelKind::Gemv => "gemv",
            KernelKind::Depthwise => "depthwise",
        }
    }

    pub fn parse(s: &str) -> Option<KernelKind> {
        KernelKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The shape of one task (one block of one GEMM): `m × n` outputs over a depth of `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskShape {
    pub kind: KernelKind,
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

impl TaskShape {
    pub fn new(kind: KernelKind, m: usize, n: usize, k: usize) -> Self {
        TaskShape { kind, m, n, k }
    }
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }
    /// Bytes of f32 operands touched once: A block, B block, C block (depthwise: weights, and input and output
    /// planes counted as the same size — a strided layer's larger input is left to the fit).
    pub fn bytes(&self) -> f64 {
        let (m, n, k) = (self.m as f64, self.n as f64, self.k as f64);
        match self.kind {
            KernelKind::Depthwise => 4.0 * (m * k + 2.0 * m * n),
            _ => 4.0 * (m * k + k * n + m * n),
        }
    }
}

/// `time = a·flops + b·bytes + c` in seconds, with the fit's quality.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coeffs {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    /// Coefficient of determination of the fit (1 = perfect).
    pub r2: f64,
    pub samples: usize,
}

impl Coeffs {
    pub fn predict(&self, s: &TaskShape) -> f64 {
        self.a * s.flops() + self.b * s.bytes() + self.c
    }
    /// The same model on a core `factor` times slower (every term scaled).
    pub fn scaled(&self, factor: f64) -> Coeffs {
        Coeffs { a: self.a * factor, b: self.b * factor, c: self.c * factor, ..*self }
    }
}

/// Coefficients of one core class.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassCost {
    /// The topology class name this applies to.
    pub name: String,
    pub capacity: u32,
    pub cpus: Vec<usize>,
    pub kernels: BTreeMap<KernelKind, Coeffs>,
}

/// The cost model of one machine: coefficients per class (same order as the topology's classes).
#[derive(Clone, Debug, PartialEq)]
pub struct CostModel {
    pub cpu_model: String,
    /// Topology fingerprint the model was measured on.
    pub topology: String,
    /// How it was obtained: `quick`, `profile`, `prior`, or a tool's description.
    pub source: String,
    pub cache: CacheSizes,
    pub classes: Vec<ClassCost>,
}

/// A cost-model error (fit, calibration, profile I/O); names the file or what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CostError(pub String);

impl fmt::Display for CostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cost model: {}", self.0)
    }
}
impl std::error::Error for CostError {}

/// Nominal seconds per flop of a capacity-1024 core for the capacity prior (≈ 20 GFLOP/s).
const PRIOR_SECS_PER_FLOP: f64 = 1.0 / 20e9;

impl CostModel {
    /// A model from declared capacities only (no measurement): `a` from a nominal 20 GFLOP/s at capacity 1024.
    /// Proportions follow the capacities exactly; absolute times are rough. Used by tests and `schedule=equal`.
    pub fn from_capacities(topo: &Topology) -> CostModel {
        let base = Coeffs { a: PRIOR_SECS_PER_FLOP, b: 0.0, c: 1e-6, r2: 0.0, samples: 0 };
        CostModel::from_reference(topo, base, "prior")
    }

    /// Every class gets `reference` (coefficients of a capacity-1024 core) scaled by `1024 / capacity`, for all
    /// kernel kinds. Used when the topology is declared by the `topology` option (classes are what the user says).
    pub fn from_reference(topo: &Topology, reference: Coeffs, source: &str) -> CostModel {
        let classes = topo
            .classes
            .iter()
            .map(|c| {
                let f = 1024.0 / c.capacity.max(1) as f64;
                ClassCost {
                    name: c.name.clone(),
                    capacity: c.capacity,
                    cpus: c.cpus.clone(),
                    kernels: [(KernelKind::Gemm, reference.scaled(f))].into_iter().collect(),
                }
            })
            .collect();
        CostModel {
            cpu_model: topology::cpu_model(),
            topology: topo.fingerprint(),
            source: source.into(),
            cache: CacheSizes::default(),
            classes,
        }
    }

    /// Predicted seconds for a task of `shape` on a core of `class`.
    pub fn predict(&self, class: usize, shape: &TaskShape) -> f64 {
        let cc = &self.classes[class.min(self.classes.len() - 1)];
        let co = cc
            .kernels
            .get(&shape.kind)
            .or_else(|| cc.kernels.get(&KernelKind::Gemm))
            .or_else(|| cc.kernels.values().next());
        match co {
            Some(co) => co.predict(shape).max(1e-9),
            None => PRIOR_SECS_PER_FLOP * shape.flops() * 1024.0 / cc.capacity.max(1) as f64,
        }
    }

    /// Check that the model covers every class of `topo` (by name), and reorder its classes to match.
    /// A profile measured on a 4+4 phone cannot drive a 1+3+4 one.
    pub fn bind(mut self, topo: &Topology) -> Result<CostModel, CostError> {
        let mut out = Vec::new();
        for c in &topo.classes {
            match self.classes.iter().position(|p| p.name == c.name) {
                Some(i) => out.push(self.classes[i].clone()),
                None => {
                    let have: Vec<&str> = self.classes.iter().map(|p| p.name.as_str()).collect();
                    return Err(CostError(format!(
                        "the profile has no class {:?} (it has {:?}; measured on {:?}, this machine is {:?})",
                        c.name,
                        have,
                        self.topology,
                        topo.fingerprint()
                    )));
                }
            }
        }
        self.classes = out;
        Ok(self)
    }

    /// Read a JSON profile. A missing file, bad JSON, a missing field or a bad value is an error naming the file
    /// and the field. Keys the cost model does not own (e.g. `"energy"`) are ignored.
    pub fn load(path: &Path) -> Result<CostModel, CostError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CostError(format!("cannot read profile {}: {e}", path.display())))?;
        CostModel::from_json(&text).map_err(|e| CostError(format!("profile {}: {}", path.display(), e.0)))
    }

    /// Write the model into the JSON profile at `path`, atomically (temporary file + rename). Only the cost
    /// model's keys ([`COST_KEYS`]) are replaced: every other key of an existing profile (notably the `"energy"`
    /// curves of `asymo-profile --energy`) is kept. An existing file that is not a JSON object is an error and is
    /// left alone.
    pub fn save(&self, path: &Path) -> Result<(), CostError> {
        let Value::Object(ours) = self.to_value() else { unreachable!("to_value builds an object") };
        profile::update(path, |root| {
            for k in COST_KEYS {
                root.remove(*k);
            }
            root.extend(ours);
        })
        .map_err(|e| CostError(format!("cannot write profile {e}")))
    }

    /// The model as the JSON object of a profile (the cost model's keys only).
    pub fn to_value(&self) -> Value {
        let classes: Vec<Value> = self
            .classes
            .iter()
            .map(|c| {
                let kernels: Map<String, Value> = c
                    .kernels
                    .iter()
                    .map(|(k, co)| {
                        let v = json!({ "a": co.a, "b": co.b, "c": co.c, "r2": co.r2, "samples": co.samples });
                        (k.as_str().to_string(), v)
                    })
                    .collect();
                json!({ "name": c.name, "capacity": c.capacity, "cpus": c.cpus, "kernels": kernels })
            })
            .collect();
        json!({
            "format": PROFILE_FORMAT,
            "cpu_model": self.cpu_model,
            "topology": self.topology,
            "source": self.source,
            "cache": { "l1d": self.cache.l1d, "l2": self.cache.l2, "l3": self.cache.l3 },
            "classes": classes,
        })
    }

    /// The model as profile text (pretty JSON, `"format"` first).
    pub fn to_json(&self) -> String {
        let Value::Object(m) = self.to_value() else { unreachable!("to_value builds an object") };
        profile::to_pretty(&m)
    }

    /// Parse profile text (see [`CostModel::from_value`]); bad JSON is an error with its line and column.
    pub fn from_json(text: &str) -> Result<CostModel, CostError> {
        let root = profile::parse_object(text).map_err(CostError)?;
        CostModel::from_value(&Value::Object(root))
    }

    /// Read the cost model's keys of a profile object; errors name the field (`classes[1].kernels.gemm.a`).
    pub fn from_value(v: &Value) -> Result<CostModel, CostError> {
        let e = |m: String| CostError(m);
        let root = v.as_object().ok_or_else(|| e("the profile is not a JSON object".into()))?;
        let fmt = match root.get("format") {
            None => {
                return Err(e(format!(
                    "\"format\": missing (expected {PROFILE_FORMAT:?}; write the profile with asymo-profile)"
                )))
            }
            Some(f) => f.as_str().ok_or_else(|| e(format!("\"format\": expected a string, found {f}")))?,
        };
        if fmt != PROFILE_FORMAT {
            return Err(e(format!("\"format\": {fmt:?} is not {PROFILE_FORMAT:?}")));
        }
        let s = |key: &str| match root.get(key) {
            None => Err(e(format!("{key:?}: missing"))),
            Some(x) => {
                x.as_str().map(str::to_string).ok_or_else(|| e(format!("{key:?}: expected a string, found {x}")))
            }
        };
        let cache = match root.get("cache") {
            None | Some(Value::Null) => CacheSizes::default(),
            Some(Value::Object(c)) => {
                let n = |k: &str| match c.get(k) {
                    None | Some(Value::Null) => Ok(0),
                    Some(x) => as_count(x).ok_or_else(|| e(format!("cache.{k}: expected a byte count, found {x}"))),
                };
                CacheSizes { l1d: n("l1d")?, l2: n("l2")?, l3: n("l3")? }
            }
            Some(x) => return Err(e(format!("\"cache\": expected an object, found {x}"))),
        };
        let arr = match root.get("classes") {
            None => return Err(e("\"classes\": missing".into())),
            Some(c) => c.as_array().ok_or_else(|| e("\"classes\": expected an array".into()))?,
        };
        if arr.is_empty() {
            return Err(e("\"classes\" is empty".into()));
        }
        let mut classes = Vec::with_capacity(arr.len());
        for (i, c) in arr.iter().enumerate() {
            let at = format!("classes[{i}]");
            let c = c.as_object().ok_or_else(|| e(format!("{at}: expected an object")))?;
            let field = |k: &str| c.get(k).ok_or_else(|| e(format!("{at}.{k}: missing")));
            let name = field("name")?.as_str().ok_or_else(|| e(format!("{at}.name: expected a string")))?;
            let capacity = as_count(field("capacity")?)
                .and_then(|x| u32::try_from(x).ok())
                .filter(|&x| x > 0)
                .ok_or_else(|| e(format!("{at}.capacity: expected a positive integer")))?;
            let cpus = field("cpus")?
                .as_array()
                .and_then(|a| a.iter().map(|x| as_count(x).map(|x| x as usize)).collect::<Option<Vec<usize>>>())
                .ok_or_else(|| e(format!("{at}.cpus: expected an array of CPU numbers")))?;
            let kobj = field("kernels")?.as_object().ok_or_else(|| e(format!("{at}.kernels: expected an object")))?;
            let mut kernels = BTreeMap::new();
            for (kname, kv) in kobj {
                let at = format!("{at}.kernels.{kname}");
                let kind = KernelKind::parse(kname).ok_or_else(|| {
                    let known: Vec<&str> = KernelKind::ALL.iter().map(|k| k.as_str()).collect();
                    e(format!("{at}: unknown kernel kind {kname:?} ({})", known.join(", ")))
                })?;
                let kv = kv.as_object().ok_or_else(|| e(format!("{at}: expected an object")))?;
                let coef = |k: &str| match kv.get(k) {
                    None => Err(e(format!("{at}.{k}: missing"))),
                    Some(x) => x
                        .as_f64()
                        .filter(|x| x.is_finite() && *x >= 0.0)
                        .ok_or_else(|| e(format!("{at}.{k}: expected a finite number ≥ 0, found {x}"))),
                };
                let (a, b, c) = (coef("a")?, coef("b")?, coef("c")?);
                if a + b == 0.0 {
                    return Err(e(format!("{at}: a and b are both 0 (time would not grow with work)")));
                }
                let r2 = match kv.get("r2") {
                    None | Some(Value::Null) => 0.0,
                    Some(x) => {
                        x.as_f64().filter(|x| x.is_finite()).ok_or_else(|| e(format!("{at}.r2: expected a number")))?
                    }
                };
                let samples = match kv.get("samples") {
                    None | Some(Value::Null) => 0,
                    Some(x) => as_count(x).ok_or_else(|| e(format!("{at}.samples: expected a count")))? as usize,
                };
                kernels.insert(kind, Coeffs { a, b, c, r2, samples });
            }
            if kernels.is_empty() {
                return Err(e(format!("{at}.kernels: empty")));
            }
            classes.push(ClassCost { name: name.into(), capacity, cpus, kernels });
        }
        Ok(CostModel { cpu_model: s("cpu_model")?, topology: s("topology")?, source: s("source")?, cache, classes })
    }
}

/// A non-negative integer, also when written as an integral float (`1024.0`).
fn as_count(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_f64().filter(|x| *x >= 0.0 && x.fract() == 0.0 && *x < 2f64.powi(53)).map(|x| x as u64))
}

pub const PROFILE_FORMAT: &str = "asymo-profile/1";

/// The top-level keys of a profile that belong to the cost model ([`CostModel::save`] replaces these, keeps others).
pub const COST_KEYS: &[&str] = &["format", "cpu_model", "topology", "source", "cache", "classes"];

/// Least-squares fit of `t = a·flops + b·bytes + c` with `a, b, c ≥ 0` (the best non-negative fit over the subsets
/// of terms). Needs at least 3 samples.
pub fn fit(samples: &[(TaskShape, f64)]) -> Result<Coeffs, CostError> {
    if samples.len() < 3 {
        return Err(CostError(format!("need at least 3 timed runs to fit, got {}", samples.len())));
    }
    if samples.iter().any(|(_, t)| !t.is_finite() || *t < 0.0) {
        return Err(CostError("a timing is negative or not finite".into()));
    }
    // Columns scaled to comparable magnitudes for a well-conditioned solve.
    let sf = samples.iter().map(|(s, _)| s.flops()).fold(0.0, f64::max).max(1.0);
    let sb = samples.iter().map(|(s, _)| s.bytes()).fold(0.0, f64::max).max(1.0);
    let st = samples.iter().map(|(_, t)| *t).fold(0.0, f64::max).max(1e-12);
    let rows: Vec<([f64; 3], f64)> =
        samples.iter().map(|(s, t)| ([s.flops() / sf, s.bytes() / sb, 1.0], t / st)).collect();
    let mean = rows.iter().map(|r| r.1).sum::<f64>() / rows.len() as f64;
    let sst: f64 = rows.iter().map(|r| (r.1 - mean).powi(2)).sum();
    let mut best: Option<([f64; 3], f64)> = None;
    for mask in 1u8..8 {
        let cols: Vec<usize> = (0..3).filter(|i| mask & (1 << i) != 0).collect();
        if !cols.iter().any(|&c| c < 2) {
            continue; // a constant alone is no model
        }
        let Some(x) = solve_ls(&rows, &cols) else { continue };
        if x.iter().any(|&v| v < 0.0) {
            continue;
        }
        let mut full = [0.0; 3];
        for (i, &c) in cols.iter().enumerate() {
            full[c] = x[i];
        }
        let sse: f64 = rows.iter().map(|(r, t)| (r[0] * full[0] + r[1] * full[1] + r[2] * full[2] - t).powi(2)).sum();
        if best.as_ref().is_none_or(|b| sse < b.1 * (1.0 - 1e-12)) {
            best = Some((full, sse));
        }
    }
    let (x, sse) = best.ok_or_else(|| CostError("no non-negative fit (timings do not grow with work)".into()))?;
    let r2 = if sst > 0.0 { 1.0 - sse / sst } else { 1.0 };
    Ok(Coeffs { a: x[0] * st / sf, b: x[1] * st / sb, c: x[2] * st, r2, samples: samples.len() })
}

/// Solve the normal equations for the given columns (Gaussian elimination with partial pivoting).
fn solve_ls(rows: &[([f64; 3], f64)], cols: &[usize]) -> Option<Vec<f64>> {
    let n = cols.len();
    let mut m = vec![vec![0.0; n + 1]; n];
    for (r, t) in rows {
        for i in 0..n {
            for j in 0..n {
                m[i][j] += r[cols[i]] * r[cols[j]];
            }
            m[i][n] += r[cols[i]] * t;
        }
    }
    for i in 0..n {
        let p = (i..n).max_by(|&a, &b| m[a][i].abs().total_cmp(&m[b][i].abs()))?;
        if m[p][i].abs() < 1e-12 {
            return None;
        }
        m.swap(i, p);
        let pivot = m[i].clone();
        for (r, row) in m.iter_mut().enumerate() {
            if r != i {
                let f = row[i] / pivot[i];
                for (x, &y) in row.iter_mut().zip(&pivot).skip(i) {
                    *x -= f * y;
                }
            }
        }
    }
    Some((0..n).map(|i| m[i][n] / m[i][i]).collect())
}

/// Options of a calibration run.
pub struct CalibrationOptions<'a> {
    /// Total wall-time budget (all classes and kinds).
    pub budget: Duration,
    pub kinds: Vec<KernelKind>,
    /// Measure only the fastest class and derive the others from declared capacities (declared topologies).
    pub scale_by_capacity: bool,
    /// Progress lines (the profile tool prints them).
    pub progress: Option<&'a (dyn Fn(&str) + Sync)>,
    /// Largest task shape to time (bounds memory and time per run); `None` = the built-in ladder.
    pub max_flops: Option<f64>,
    /// Where cache sizes are read (`<root>/devices/system/cpu/cpuN/cache`).
    pub sysfs_root: PathBuf,
}

impl Default for CalibrationOptions<'_> {
    fn default() -> Self {
        CalibrationOptions {
            budget: Duration::from_millis(100),
            kinds: vec![KernelKind::Gemm],
            scale_by_capacity: false,
            progress: None,
            max_flops: None,
            sysfs_root: PathBuf::from("/sys"),
        }
    }
}

/// Shapes timed by calibration, small to large, mixing compute-heavy and bandwidth-heavy blocks so the flops and
/// bytes terms are separable.
pub fn calibration_shapes(kind: KernelKind) -> Vec<TaskShape> {
    let dims: &[(usize, usize, usize)] = match kind {
        KernelKind::Gemv => {
            &[(1, 64, 64), (1, 256, 128), (1, 128, 512), (1, 512, 256), (1, 1024, 512), (1, 512, 1024), (1, 2048, 512)]
        }
        // Channels × positions × taps; positions and taps are squares (the workload runs square maps, "same" pads).
        KernelKind::Depthwise => &[
            (4, 3136, 9),
            (16, 196, 9),
            (8, 12544, 9),
            (32, 784, 9),
            (64, 49, 9),
            (32, 3136, 9),
            (128, 196, 9),
            (64, 784, 25),
            (256, 49, 9),
            (128, 784, 9),
            (512, 196, 9),
        ],
        _ => &[
            (8, 16, 16),
            (4, 128, 64),
            (16, 32, 128),
            (32, 64, 32),
            (2, 512, 128),
            (64, 64, 64),
            (16, 256, 64),
            (48, 96, 144),
            (8, 512, 256),
            (96, 128, 128),
            (64, 256, 192),
            (128, 192, 256),
        ],
    };
    dims.iter().map(|&(m, n, k)| TaskShape::new(kind, m, n, k)).collect()
}

/// Time `workload` on a thread pinned to the first CPU of each class (or only the fastest, see
/// [`CalibrationOptions::scale_by_capacity`]) and fit per class and kind. Each shape is run once to warm up, then
/// timed up to three times (the minimum is kept), until the class's share of the budget is spent.
pub fn calibrate(
    topo: &Topology,
    opts: &CalibrationOptions<'_>,
    workload: &(dyn Fn(&TaskShape) + Sync),
) -> Result<CostModel, CostError> {
    let measured: Vec<usize> = if opts.scale_by_capacity { vec![0] } else { (0..topo.classes.len()).collect() };
    let per_run = opts.budget / (measured.len() * opts.kinds.len()).max(1) as u32;
    let mut classes: Vec<ClassCost> = topo
        .classes
        .iter()
        .map(|c| ClassCost {
            name: c.name.clone(),
            capacity: c.capacity,
            cpus: c.cpus.clone(),
            kernels: BTreeMap::new(),
        })
        .collect();
    for &ci in &measured {
        let cpu = topo.classes[ci].cpus[0];
        for &kind in &opts.kinds {
            let shapes: Vec<TaskShape> = calibration_shapes(kind)
                .into_iter()
                .filter(|s| opts.max_flops.is_none_or(|m| s.flops() <= m))
                .collect();
            let samples = std::thread::scope(|sc| {
                sc.spawn(|| {
                    let pinned = topology::pin_current_thread(cpu);
                    time_shapes(&shapes, per_run, workload).map(|s| (s, pinned))
                })
                .join()
                .map_err(|_| CostError(format!("the calibration workload panicked on CPU {cpu}")))
            })?;
            let (samples, pinned) = samples?;
            let co = fit(&samples)
                .map_err(|e| CostError(format!("class {} ({}): {}", topo.classes[ci].name, kind.as_str(), e.0)))?;
            if let Some(p) = opts.progress {
                // Measured throughput of the largest timed shape (a alone says nothing when b dominates).
                let (big, t) = samples.iter().max_by(|x, y| x.0.flops().total_cmp(&y.0.flops())).expect("≥ 3 samples");
                p(&format!(
                    "class {} cpu {}{}: {} {} runs, {:.2} GFLOP/s at {}×{}×{}, a={:.3e} b={:.3e} c={:.3e} R²={:.3}",
                    topo.classes[ci].name,
                    cpu,
                    if pinned { "" } else { " (not pinned)" },
                    kind.as_str(),
                    samples.len(),
                    big.flops() / t.max(1e-12) * 1e-9,
                    big.m,
                    big.n,
                    big.k,
                    co.a,
                    co.b,
                    co.c,
                    co.r2
                ));
            }
            classes[ci].kernels.insert(kind, co);
        }
    }
    if opts.scale_by_capacity {
        let reference = classes[0].kernels.clone();
        let cap0 = topo.classes[0].capacity.max(1) as f64;
        for (ci, cc) in classes.iter_mut().enumerate().skip(1) {
            let f = cap0 / topo.classes[ci].capacity.max(1) as f64;
            cc.kernels = reference.iter().map(|(k, co)| (*k, co.scaled(f))).collect();
        }
    }
    Ok(CostModel {
        cpu_model: topology::cpu_model(),
        topology: topo.fingerprint(),
        source: if opts.scale_by_capacity { "quick+declared".into() } else { "quick".into() },
        cache: topology::cache_sizes(&opts.sysfs_root, topo.classes[0].cpus[0]),
        classes,
    })
}

fn time_shapes(
    shapes: &[TaskShape],
    budget: Duration,
    workload: &(dyn Fn(&TaskShape) + Sync),
) -> Result<Vec<(TaskShape, f64)>, CostError> {
    let start = Instant::now();
    let mut out = Vec::new();
    for s in shapes {
        if start.elapsed() >= budget && out.len() >= 4 {
            break;
        }
        workload(s); // warm-up: caches, page faults, lazy buffers
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            workload(s);
            best = best.min(t.elapsed().as_secs_f64());
            if start.elapsed() >= budget {
                break;
            }
        }
        out.push((*s, best));
    }
    Ok(out)
}

/// Where cached quick calibrations live: `$ASYMO_EP_CACHE_DIR`, `$XDG_CACHE_HOME/asymo-ep`, `~/.cache/asymo-ep`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("ASYMO_EP_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("asymo-ep"));
    }
    std::env::var_os("HOME").filter(|d| !d.is_empty()).map(|h| PathBuf::from(h).join(".cache/asymo-ep"))
}

/// The cache file of a calibration for this CPU model and topology.
pub fn cache_file(dir: &Path, cpu_model: &str, topo: &Topology, declared: bool) -> PathBuf {
    let key = format!("{cpu_model}|{}|{}", topo.fingerprint(), if declared { "declared" } else { "measured" });
    dir.join(format!("profile-{:016x}.json", fnv1a(key.as_bytes())))
}

fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x100000001b3))
}

/// The quick path: load the cached calibration for this machine, or calibrate (≈ `opts.budget`) and cache it.
/// A cache file that is unreadable, corrupt or for another topology is replaced (the cache is ours); a cache
/// directory that cannot be written only costs a calibration per process. Returns the model and whether it
/// came from the cache.
pub fn load_or_calibrate(
    topo: &Topology,
    cache_dir: Option<&Path>,
    opts: &CalibrationOptions<'_>,
    workload: &(dyn Fn(&TaskShape) + Sync),
) -> Result<(CostModel, bool), CostError> {
    let model = topology::cpu_model();
    let file = cache_dir.map(|d| cache_file(d, &model, topo, opts.scale_by_capacity));
    if let Some(f) = &file {
        if f.exists() {
            match CostModel::load(f).and_then(|m| m.bind(topo)) {
                // A cache written before a kind existed is recalibrated (that kind would fall back to GEMM speed).
                Ok(m)
                    if m.topology == topo.fingerprint()
                        && m.cpu_model == model
                        && m.classes.iter().all(|c| opts.kinds.iter().all(|k| c.kernels.contains_key(k))) =>
                {
                    return Ok((m, true))
                }
                Ok(_) => {}
                Err(e) => {
                    if let Some(p) = opts.progress {
                        p(&format!("ignoring cached calibration: {e}"));
                    }
                    // The cache file is ours: replace it whole (save would refuse to merge into a corrupt file).
                    let _ = std::fs::remove_file(f);
                }
            }
        }
    }
    let m = calibrate(topo, opts, workload)?;
    if let Some(f) = &file {
        if let Err(e) = m.save(f) {
            if let Some(p) = opts.progress {
                p(&format!("could not cache the calibration: {e}"));
            }
        }
    }
    Ok((m, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synth(a: f64, b: f64, c: f64, noise: f64) -> Vec<(TaskShape, f64)> {
        let mut x = 12345u64;
        calibration_shapes(KernelKind::Gemm)
            .into_iter()
            .map(|s| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let r = ((x >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0; // [-1, 1)
                let t = a * s.flops() + b * s.bytes() + c;
                (s, t * (1.0 + noise * r))
            })
            .collect()
    }

    #[test]
    fn fit_recovers_synthetic_coefficients() {
        let (a, b, c) = (1.0 / 30e9, 1.0 / 8e9, 2e-6);
        let co = fit(&synth(a, b, c, 0.0)).unwrap();
        assert!((co.a / a - 1.0).abs() < 1e-6, "{co:?}");
        assert!((co.b / b - 1.0).abs() < 1e-6, "{co:?}");
        assert!((co.c / c - 1.0).abs() < 1e-6, "{co:?}");
        assert!(co.r2 > 0.999999);
        // With 3% noise the flops term, which dominates, stays close and R² stays high.
        let co = fit(&synth(a, b, c, 0.03)).unwrap();
        assert!((co.a / a - 1.0).abs() < 0.1, "{co:?}");
        assert!(co.r2 > 0.99, "{co:?}");
        assert!(co.a >= 0.0 && co.b >= 0.0 && co.c >= 0.0);
    }

    #[test]
    fn fit_clamps_to_non_negative() {
        // Pure compute: b must come out 0, not negative.
        let data = synth(1e-10, 0.0, 0.0, 0.0);
        let co = fit(&data).unwrap();
        assert!(co.b >= 0.0 && co.c >= 0.0 && co.a > 0.0);
        let pred: f64 = co.predict(&data[5].0);
        assert!((pred / data[5].1 - 1.0).abs() < 1e-6);
        assert!(fit(&data[..2]).unwrap_err().0.contains("at least 3"));
    }

    fn fake_topo() -> Topology {
        Topology::parse_override("0:1024,1:512").unwrap()
    }

    fn sample_model() -> CostModel {
        let mut m = CostModel::from_capacities(&fake_topo());
        m.cpu_model = "Test \"CPU\" \\ 1\n".into();
        m.cache = CacheSizes { l1d: 32768, l2: 1 << 20, l3: 0 };
        m.classes[1].kernels.insert(KernelKind::Conv, Coeffs { a: 1.5e-10, b: 3e-11, c: 0.0, r2: 0.97, samples: 12 });
        m.classes[0].kernels.insert(KernelKind::Gemv, Coeffs { a: 0.1 + 0.2, b: 1e-300, c: 7.0, r2: -0.5, samples: 3 });
        m
    }

    #[test]
    fn json_round_trip() {
        let m = sample_model();
        let text = m.to_json();
        assert!(text.starts_with("{\n  \"format\": \"asymo-profile/1\",\n  \"cpu_model\""), "{text}");
        // Exact: f64 values round-trip bit for bit.
        assert_eq!(CostModel::from_json(&text).unwrap(), m);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["classes"][1]["kernels"]["conv"]["samples"], 12);
        assert_eq!(v["classes"][0]["capacity"], 1024);
        assert_eq!(v["cache"]["l2"], 1 << 20);
        // Integral floats (an older writer, a hand edit) are accepted as counts.
        let edited = text.replace("\"capacity\": 1024", "\"capacity\": 1024.0");
        assert_eq!(CostModel::from_json(&edited).unwrap(), m);
    }

    #[test]
    fn json_errors_name_the_field() {
        let text = sample_model().to_json();
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut v: Value = serde_json::from_str(&text).unwrap();
            f(&mut v);
            v.to_string()
        };
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "invalid JSON: EOF while parsing a value at line 1 column 0"),
            ("{".into(), "invalid JSON"),
            ("[1, 2]".into(), "not a JSON object"),
            ("{\"a\": 1} x".into(), "trailing characters at line 1"),
            ("{\"energy\": {}}".into(), "\"format\": missing"),
            (edit(&|v| v["format"] = json!("asymo-profile/2")), "\"format\": \"asymo-profile/2\" is not"),
            (edit(&|v| drop(v.as_object_mut().unwrap().remove("cpu_model"))), "\"cpu_model\": missing"),
            (edit(&|v| v["source"] = json!(3)), "\"source\": expected a string, found 3"),
            (edit(&|v| drop(v.as_object_mut().unwrap().remove("classes"))), "\"classes\": missing"),
            (edit(&|v| v["classes"] = json!([])), "\"classes\" is empty"),
            (edit(&|v| v["cache"]["l2"] = json!(-1)), "cache.l2: expected a byte count, found -1"),
            (edit(&|v| drop(v["classes"][1].as_object_mut().unwrap().remove("name"))), "classes[1].name: missing"),
            (edit(&|v| v["classes"][0]["capacity"] = json!(0)), "classes[0].capacity: expected a positive integer"),
            (edit(&|v| v["classes"][0]["cpus"] = json!([0, -1])), "classes[0].cpus: expected an array of CPU"),
            (
                edit(&|v| drop(v["classes"][0].as_object_mut().unwrap().remove("kernels"))),
                "classes[0].kernels: missing",
            ),
            (edit(&|v| v["classes"][0]["kernels"] = json!({})), "classes[0].kernels: empty"),
            (
                edit(&|v| drop(v["classes"][1]["kernels"]["conv"].as_object_mut().unwrap().remove("b"))),
                "classes[1].kernels.conv.b: missing",
            ),
            (
                edit(&|v| v["classes"][1]["kernels"]["conv"]["a"] = json!(-1.5e-10)),
                "classes[1].kernels.conv.a: expected a finite number ≥ 0, found -1.5e-10",
            ),
            (edit(&|v| v["classes"][0]["kernels"]["gemm"]["c"] = json!("x")), "classes[0].kernels.gemm.c: expected"),
            (
                edit(&|v| {
                    v["classes"][0]["kernels"]["gemm"]["a"] = json!(0);
                    v["classes"][0]["kernels"]["gemm"]["b"] = json!(0);
                }),
                "classes[0].kernels.gemm: a and b are both 0",
            ),
            (text.replace("\"gemm\"", "\"fft\""), "classes[0].kernels.fft: unknown kernel kind \"fft\""),
        ];
        for (bad, what) in &cases {
            let e = CostModel::from_json(bad).unwrap_err();
            assert!(e.0.contains(what), "{bad}\n→ {e}\n(expected {what:?})");
        }
        // Through load, the message also names the file.
        let dir = tempdir("errors");
        let p = dir.join("bad-profile.json");
        std::fs::write(&p, &cases[17].0).unwrap();
        let e = CostModel::load(&p).unwrap_err().to_string();
        assert!(e.contains("bad-profile.json") && e.contains("classes[1].kernels.conv.a"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn save_keeps_keys_it_does_not_own() {
        let dir = tempdir("keep-energy");
        let p = dir.join("profile.json");
        let energy = json!({ "version": 1, "source": "test", "unit": "GFLOP", "clusters": [] });
        std::fs::write(&p, json!({ "energy": energy, "_comment": "mine", "classes": "stale" }).to_string()).unwrap();
        let m = sample_model();
        m.save(&p).unwrap();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v["energy"], energy);
        assert_eq!(v["_comment"], "mine");
        assert_eq!(CostModel::load(&p).unwrap(), m);
        // Saving again (a re-calibration) still keeps them; the energy curves stay readable.
        let mut m2 = m.clone();
        m2.source = "second run".into();
        m2.save(&p).unwrap();
        assert_eq!(CostModel::load(&p).unwrap(), m2);
        assert!(crate::asym::energy::read_energy(&p).unwrap().is_some());
        // And the other way round: writing energy curves keeps the cost model.
        let e = crate::asym::energy::EnergyProfile { source: "s".into(), unit: "GFLOP".into(), clusters: vec![] };
        crate::asym::energy::write_energy(&p, &e).unwrap();
        assert_eq!(CostModel::load(&p).unwrap(), m2);
        assert_eq!(crate::asym::energy::read_energy(&p).unwrap(), Some(e));
        // A corrupt file is not overwritten (it may hold curves); the error names it.
        std::fs::write(&p, "{\"energy\": {").unwrap();
        let err = m.save(&p).unwrap_err().to_string();
        assert!(err.contains("profile.json") && err.contains("not overwriting"), "{err}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"energy\": {");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_profile_is_an_error_naming_the_file() {
        let e = CostModel::load(Path::new("/nonexistent/asymo.json")).unwrap_err();
        assert!(e.0.contains("/nonexistent/asymo.json"), "{e}");
        let dir = tempdir("corrupt");
        let p = dir.join("p.json");
        std::fs::write(&p, "{\"format\": \"asymo-profile/1\", \"classes\": [}").unwrap();
        let e = CostModel::load(&p).unwrap_err();
        assert!(e.0.contains("p.json") && e.0.contains("line 1"), "{e}");
    }

    #[test]
    fn bind_checks_classes() {
        let m = CostModel::from_capacities(&fake_topo());
        let other = Topology::parse_override("0:1024,1:512,2:100").unwrap();
        let e = m.clone().bind(&other).unwrap_err();
        assert!(e.0.contains("no class \"prime\""), "{e}");
        assert!(m.bind(&fake_topo()).is_ok());
    }

    pub(crate) fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "asymo-test-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A workload whose time is known: spin for a·flops + b·bytes + c.
    fn spin_workload(a: f64, b: f64, c: f64) -> impl Fn(&TaskShape) + Sync {
        move |s: &TaskShape| {
            let want = Duration::from_secs_f64(a * s.flops() + b * s.bytes() + c);
            let t = Instant::now();
            while t.elapsed() < want {
                std::hint::spin_loop();
            }
        }
    }

    #[test]
    fn calibrate_and_cache() {
        let topo = Topology::detect(&Default::default()).unwrap();
        let topo = topo.restrict(&[topo.cores[0].cpu]).unwrap();
        // ≈ 2 GFLOP/s + 4 GB/s + 5 µs: the ladder takes a few ms.
        let w = spin_workload(0.5e-9, 0.25e-9, 5e-6);
        let dir = tempdir("cache");
        let opts = CalibrationOptions { budget: Duration::from_millis(60), max_flops: Some(4e6), ..Default::default() };
        let (m, cached) = load_or_calibrate(&topo, Some(&dir), &opts, &w).unwrap();
        assert!(!cached);
        let co = m.classes[0].kernels[&KernelKind::Gemm];
        assert!(co.a > 0.0 && co.samples >= 4, "{co:?}");
        let (m2, cached) = load_or_calibrate(&topo, Some(&dir), &opts, &w).unwrap();
        assert!(cached);
        assert_eq!(m2.classes[0].kernels[&KernelKind::Gemm].samples, co.samples);
        // A corrupt cache file is replaced by a fresh calibration.
        let f = cache_file(&dir, &topology::cpu_model(), &topo, false);
        std::fs::write(&f, "garbage").unwrap();
        let (_, cached) = load_or_calibrate(&topo, Some(&dir), &opts, &w).unwrap();
        assert!(!cached);
        assert!(CostModel::load(&f).is_ok());
        // A cache without a kind now asked for is recalibrated, and then holds it.
        let both = CalibrationOptions { kinds: vec![KernelKind::Gemm, KernelKind::Depthwise], ..opts };
        let (m3, cached) = load_or_calibrate(&topo, Some(&dir), &both, &w).unwrap();
        assert!(!cached && m3.classes[0].kernels.contains_key(&KernelKind::Depthwise));
        let (_, cached) = load_or_calibrate(&topo, Some(&dir), &both, &w).unwrap();
        assert!(cached);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn declared_topology_scales_by_capacity() {
        let topo = fake_topo();
        let w = spin_workload(1e-9, 0.0, 2e-6);
        let opts = CalibrationOptions {
            budget: Duration::from_millis(30),
            max_flops: Some(1e6),
            scale_by_capacity: true,
            ..Default::default()
        };
        let m = calibrate(&topo, &opts, &w).unwrap();
        let s = TaskShape::new(KernelKind::Gemm, 64, 64, 64);
        let r = m.predict(1, &s) / m.predict(0, &s);
        assert!((r - 2.0).abs() < 1e-9, "{r}");
    }
}
