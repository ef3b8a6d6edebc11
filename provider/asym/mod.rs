//! The AsyMo core (no ORT types): topology, cost model, partitioner, pool, adaptation, frequency governor.
//!
//! [`Runtime`] bundles them for the ORT glue: one per process ([`Runtime::shared`]), asked for a [`Plan`] per GEMM
//! problem ([`Runtime::plan`], cached) and to run it ([`Runtime::run`], blocking). See `docs/asym.md`.

pub mod adapt;
pub mod cost;
pub mod energy;
pub mod freq;
pub mod partition;
pub mod pool;
mod profile;
pub mod reuse;
pub mod topology;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use adapt::{Adapt, AdaptConfig};
use cost::{CalibrationOptions, CostModel, KernelKind, TaskShape};
use partition::{GemmProblem, PartitionConfig, Partitioner, Plan, Schedule};
use pool::{Pool, PoolConfig, PoolError, SharedRegistry, TaskFn};
use topology::{Topology, TopologyOptions};

/// Everything configurable in the AsyMo core, from the EP's session options (see [`AsymConfig::set`]).
#[derive(Clone, Debug, PartialEq)]
pub struct AsymConfig {
    pub topology: TopologyOptions,
    /// A JSON profile from `asymo-profile`; `None`: quick calibration cached on disk.
    pub profile: Option<PathBuf>,
    /// Where quick calibrations are cached (`None`: [`cost::default_cache_dir`]).
    pub cache_dir: Option<PathBuf>,
    /// Budget of the quick calibration.
    pub calibration_budget: Duration,
    pub partition: PartitionConfig,
    pub pool: PoolConfig,
    pub adapt: AdaptConfig,
}

impl Default for AsymConfig {
    fn default() -> Self {
        AsymConfig {
            topology: TopologyOptions::default(),
            profile: None,
            cache_dir: None,
            calibration_budget: Duration::from_millis(150),
            partition: PartitionConfig::default(),
            pool: PoolConfig::default(),
            adapt: AdaptConfig::default(),
        }
    }
}

/// Option keys [`AsymConfig::set`] understands.
pub const OPTION_KEYS: &[&str] = &[
    "topology",
    "cores",
    "sysfs_root",
    "profile",
    "calibration_cache",
    "schedule",
    "steal",
    "adapt",
    "log_plan",
    "smt",
    "min_task_us",
    "tasks_per_core",
    "spin_us",
];

fn parse_bool(key: &str, v: &str) -> Result<bool, AsymError> {
    match v.trim() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err(AsymError::Config(format!("option {key}={v:?}: expected 1 or 0 (also true/false, on/off)"))),
    }
}

/// A directory option: non-empty, and not an existing non-directory (it is created on first use).
pub fn directory_option(key: &str, v: &str) -> Result<PathBuf, AsymError> {
    let p = PathBuf::from(v);
    if v.is_empty() || (p.exists() && !p.is_dir()) {
        return Err(AsymError::Config(format!("option {key}={v:?}: expected a directory (created if missing)")));
    }
    Ok(p)
}

fn parse_num<T: std::str::FromStr>(key: &str, v: &str, what: &str) -> Result<T, AsymError> {
    v.trim().parse().map_err(|_| AsymError::Config(format!("option {key}={v:?}: expected {what}")))
}

impl AsymConfig {
    /// Apply one option. `Ok(false)` if the key is not ours (the caller decides whether that is an error);
    /// an error names the key, the value and the accepted values.
    ///
    /// | key | values |
    /// |---|---|
    /// | `topology` | `auto` or classes `cpus:capacity[,cpus:capacity…]`, e.g. `0-3:1024,4-7:462` |
    /// | `cores` | a cpu list, e.g. `0,2-3` (or `all`) |
    /// | `sysfs_root` | directory holding `devices/system/cpu` (default `/sys`) |
    /// | `profile` | path of a JSON cost profile |
    /// | `calibration_cache` | directory for cached quick calibrations |
    /// | `schedule` | `asymo` or `equal` |
    /// | `steal`, `adapt`, `log_plan` | `1` / `0` |
    /// | `smt` | `1` (every hardware thread a worker, default) / `0` (one per physical core) |
    /// | `min_task_us`, `tasks_per_core`, `spin_us` | positive numbers |
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, AsymError> {
        let v = value.trim();
        match key {
            "topology" => {
                if v != "auto" && !v.is_empty() {
                    Topology::parse_override(v).map_err(|e| AsymError::Config(e.0))?;
                }
                self.topology.topology = Some(v.to_string());
            }
            "cores" => {
                if v != "all" && !v.is_empty() {
                    topology::parse_cpu_list(v).map_err(|e| AsymError::Config(format!("option cores: {}", e.0)))?;
                }
                self.topology.cores = Some(v.to_string());
            }
            "sysfs_root" => self.topology.sysfs_root = Some(PathBuf::from(v)),
            "profile" => self.profile = if v.is_empty() { None } else { Some(PathBuf::from(v)) },
            "calibration_cache" => self.cache_dir = Some(directory_option(key, v)?),
            "schedule" => {
                self.partition.schedule = match v {
                    "asymo" => Schedule::Asymo,
                    "equal" => Schedule::Equal,
                    _ => return Err(AsymError::Config(format!("option schedule={v:?}: expected asymo or equal"))),
                }
            }
            "steal" => self.pool.steal = parse_bool(key, v)?,
            "adapt" => self.adapt.enabled = parse_bool(key, v)?,
            "log_plan" => self.partition.log_plan = parse_bool(key, v)?,
            "smt" => self.topology.one_thread_per_core = !parse_bool(key, v)?,
            "min_task_us" => {
                let us: f64 = parse_num(key, v, "a positive number of microseconds")?;
                if !(us > 0.0 && us.is_finite()) {
                    return Err(AsymError::Config(format!("option {key}={v:?}: expected a positive number")));
                }
                self.partition.min_task_secs = us * 1e-6;
            }
            "tasks_per_core" => {
                let n: usize = parse_num(key, v, "a positive integer")?;
                if n == 0 {
                    return Err(AsymError::Config(format!("option {key}={v:?}: expected a positive integer")));
                }
                self.partition.tasks_per_core = n;
            }
            "spin_us" => self.pool.spin = Duration::from_micros(parse_num(key, v, "microseconds (integer)")?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Build from `(key, value)` pairs, ignoring keys that are not ours.
    pub fn from_options<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<AsymConfig, AsymError> {
        let mut c = AsymConfig::default();
        for (k, v) in pairs {
            c.set(k, v)?;
        }
        Ok(c)
    }

    fn declared(&self) -> bool {
        self.topology.topology.as_deref().is_some_and(|t| !t.is_empty() && t != "auto")
    }
}

/// An error creating the runtime (bad option, topology, profile, calibration, thread creation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AsymError {
    Config(String),
    Topology(String),
    Cost(String),
    Threads(String),
}

impl fmt::Display for AsymError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AsymError::Config(s) => write!(f, "{s}"),
            AsymError::Topology(s) => write!(f, "{s}"),
            AsymError::Cost(s) => write!(f, "{s}"),
            AsymError::Threads(s) => write!(f, "cannot start worker threads: {s}"),
        }
    }
}
impl std::error::Error for AsymError {}

/// Topology + cost model + partitioner + adaptation + pool: what one process shares between all EP instances.
pub struct Runtime {
    config: AsymConfig,
    topology: Arc<Topology>,
    cost: Arc<CostModel>,
    partitioner: Partitioner,
    adapt: Arc<Adapt>,
    pool: Pool,
}

static SHARED: SharedRegistry<AsymConfig, Runtime> = SharedRegistry::new();

impl Runtime {
    /// Detect the topology, load or calibrate the cost model, start the pool.
    pub fn new(config: &AsymConfig) -> Result<Runtime, AsymError> {
        let topology = Arc::new(Topology::detect(&config.topology).map_err(|e| AsymError::Topology(e.to_string()))?);
        let cost = match (&config.profile, config.partition.schedule) {
            (Some(p), _) => {
                CostModel::load(p).and_then(|m| m.bind(&topology)).map_err(|e| AsymError::Cost(e.to_string()))?
            }
            // Equal split: no cost model; the capacity prior only orders stealing and inlining.
            (None, Schedule::Equal) => CostModel::from_capacities(&topology),
            (None, Schedule::Asymo) => {
                let opts = CalibrationOptions {
                    budget: config.calibration_budget,
                    kinds: vec![KernelKind::Gemm, KernelKind::Depthwise],
                    scale_by_capacity: config.declared(),
                    sysfs_root: config.topology.sysfs_root.clone().unwrap_or_else(|| PathBuf::from("/sys")),
                    ..Default::default()
                };
                let dir = config.cache_dir.clone().or_else(cost::default_cache_dir);
                let work = calibration_workload();
                cost::load_or_calibrate(&topology, dir.as_deref(), &opts, &work)
                    .map_err(|e| AsymError::Cost(e.to_string()))?
                    .0
            }
        };
        let cost = Arc::new(cost);
        let adapt_cfg = AdaptConfig {
            enabled: config.adapt.enabled && config.partition.schedule == Schedule::Asymo,
            ..config.adapt.clone()
        };
        let adapt = Arc::new(Adapt::new(topology.num_cores(), adapt_cfg));
        let class_speed = class_speeds(&cost, &topology);
        let pool = Pool::new(topology.clone(), config.pool.clone(), adapt.clone(), class_speed)
            .map_err(|e| AsymError::Threads(e.to_string()))?;
        let partitioner = Partitioner::new(topology.clone(), cost.clone(), config.partition.clone());
        if config.partition.log_plan {
            eprintln!(
                "[asymo-ep] runtime: topology {} ({} workers), cost model {} ({})",
                topology.fingerprint(),
                topology.num_cores(),
                cost.source,
                cost.cpu_model
            );
        }
        Ok(Runtime { config: config.clone(), topology, cost, partitioner, adapt, pool })
    }

    /// The process-wide runtime for `config`: the live one if its configuration is equal, else a new one (which
    /// becomes the shared one). Held by each EP instance as an `Arc`; the last release joins the workers.
    pub fn shared(config: &AsymConfig) -> Result<Arc<Runtime>, AsymError> {
        SHARED.get_or_try_init(config, || Runtime::new(config))
    }

    /// The plan for a problem under the current adaptation factors (cached per shape and generation).
    pub fn plan(&self, problem: &GemmProblem) -> Arc<Plan> {
        let gen = self.adapt.generation();
        if gen == 0 {
            return self.partitioner.plan(problem, 0, &[]);
        }
        let (gen, speeds) = self.adapt.snapshot();
        self.partitioner.plan(problem, gen, &speeds)
    }

    /// Run a plan's tasks on the pool, blocking until all are done (see [`Pool::run`]).
    pub fn run<'f>(&self, plan: &Plan, f: &'f TaskFn<'f>) -> Result<(), PoolError> {
        self.pool.run(plan, f)
    }

    /// Wake the workers ahead of a burst of jobs (`OnRunStart`).
    pub fn prewake(&self) {
        self.pool.prewake()
    }

    /// The CPUs a thread that drives inference (ORT's calling thread) should run on: those whose worker is
    /// currently within 20% of the fastest (class speed × measured speed). On a quiet symmetric machine that is
    /// every core; with a busy process on one core, the others.
    pub fn preferred_caller_cpus(&self) -> Vec<usize> {
        let class_speed = class_speeds(&self.cost, &self.topology);
        let speeds: Vec<(usize, f64)> = self
            .topology
            .cores
            .iter()
            .enumerate()
            .map(|(w, c)| (c.cpu, class_speed.get(c.class).copied().unwrap_or(1.0) * self.adapt.live_speed(w)))
            .collect();
        let top = speeds.iter().map(|&(_, s)| s).fold(0.0, f64::max);
        speeds.into_iter().filter(|&(_, s)| s >= 0.8 * top).map(|(cpu, _)| cpu).collect()
    }

    /// An inference run begins (`OnRunStart`): workers wake and stay ready between its jobs.
    pub fn run_begin(&self) {
        self.pool.run_begin()
    }

    /// The run ended (`OnRunEnd`).
    pub fn run_end(&self) {
        self.pool.run_end()
    }

    pub fn config(&self) -> &AsymConfig {
        &self.config
    }
    pub fn topology(&self) -> &Arc<Topology> {
        &self.topology
    }
    pub fn cost_model(&self) -> &Arc<CostModel> {
        &self.cost
    }
    pub fn adapt(&self) -> &Arc<Adapt> {
        &self.adapt
    }
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
    pub fn partitioner(&self) -> &Partitioner {
        &self.partitioner
    }
}

/// Nominal speed of each class relative to class 0 on a mid-size GEMM block.
pub fn class_speeds(cost: &CostModel, topo: &Topology) -> Vec<f64> {
    let s = TaskShape::new(KernelKind::Gemm, 64, 256, 256);
    let t0 = cost.predict(0, &s);
    (0..topo.classes.len()).map(|c| t0 / cost.predict(c, &s)).collect()
}

/// The calibration workload for every kernel kind, operands sized for the largest shape: `gemm_block` over
/// row-major operands (GEMM, GEMV), over a 1-D kernel-1 convolution's im2col (Conv: `k` channels, `n`
/// positions), and `depthwise_conv` on a square map with a square "same" kernel (Depthwise: `m` channels, `n`
/// positions, `k` taps).
pub fn calibration_workload() -> impl Fn(&TaskShape) + Sync {
    use crate::kernels::{
        depthwise_conv, gemm_block, AOperand, BOperand, ConvGeometry, Im2col, MatMut, MatRef, Scratch,
    };
    let shapes: Vec<TaskShape> = KernelKind::ALL.iter().flat_map(|&k| cost::calibration_shapes(k)).collect();
    let max = |f: &dyn Fn(&TaskShape) -> usize| shapes.iter().map(f).max().unwrap_or(1);
    let a: Vec<f32> = (0..max(&|s| s.m * s.k)).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
    let b: Vec<f32> = (0..max(&|s| s.k.max(s.m) * s.n)).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect();
    let state = parking_lot::Mutex::new((vec![0.0f32; max(&|s| s.m * s.n)], Scratch::new()));
    let isqrt = |v: usize| (v as f64).sqrt().round() as usize;
    move |s: &TaskShape| {
        let mut st = state.lock();
        let (c, scratch) = &mut *st;
        let am = MatRef::row_major(&a[..s.m * s.k], s.m, s.k);
        let cm = MatMut::row_major(&mut c[..s.m * s.n], s.m, s.n);
        let geometry = |channels: usize, side: usize, kernel: usize, rank: usize| ConvGeometry {
            channels,
            in_spatial: vec![side; rank],
            kernel: vec![kernel; rank],
            out_spatial: vec![side; rank],
            strides: vec![1; rank],
            dilations: vec![1; rank],
            pads_begin: vec![kernel / 2; rank],
        };
        match s.kind {
            KernelKind::Conv => {
                let g = geometry(s.k, s.n, 1, 1);
                let im = Im2col { input: &b[..s.k * s.n], geometry: &g };
                gemm_block(AOperand::View(am), BOperand::Im2col(im), cm, s.k, 0..s.m, 0..s.n, &[], scratch);
            }
            KernelKind::Depthwise => {
                let (side, kernel) = (isqrt(s.n), isqrt(s.k));
                debug_assert_eq!((side * side, kernel * kernel), (s.n, s.k), "square depthwise calibration shapes");
                let g = geometry(s.m, side, kernel, 2);
                depthwise_conv(&b[..s.m * s.n], &a[..s.m * s.k], None, &g, 1, cm, 0..s.m, &[], scratch);
            }
            KernelKind::Gemm | KernelKind::Gemv => {
                let bm = MatRef::row_major(&b[..s.k * s.n], s.k, s.n);
                gemm_block(AOperand::View(am), BOperand::View(bm), cm, s.k, 0..s.m, 0..s.n, &[], scratch);
            }
        }
        std::hint::black_box(&c[0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_errors() {
        let c = AsymConfig::from_options([
            ("schedule", "equal"),
            ("steal", "0"),
            ("adapt", "off"),
            ("cores", "0,1"),
            ("topology", "0:1024,1:512"),
            ("log_plan", "1"),
            ("unrelated", "x"),
        ])
        .unwrap();
        assert_eq!(c.partition.schedule, Schedule::Equal);
        assert!(!c.pool.steal && !c.adapt.enabled && c.partition.log_plan);
        for (k, v, want) in [
            ("schedule", "fast", "expected asymo or equal"),
            ("steal", "maybe", "expected 1 or 0"),
            ("cores", "1-0", "start after end"),
            ("topology", "0-3", "no ':capacity'"),
            ("tasks_per_core", "0", "positive integer"),
        ] {
            let e = AsymConfig::default().set(k, v).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(k), "{k}={v}: {e}");
        }
        assert!(!AsymConfig::default().set("intra_op_num_threads", "2").unwrap());
    }

    #[test]
    fn equal_schedule_needs_no_calibration_and_ignores_speeds() {
        let c =
            AsymConfig::from_options([("schedule", "equal"), ("topology", "0:1024,1:256"), ("cores", "0")]).unwrap();
        let rt = Runtime::new(&c).unwrap();
        assert_eq!(rt.cost_model().source, "prior");
        assert_eq!(rt.topology().num_cores(), 1);
        assert!(!rt.adapt().config().enabled, "adaptation is part of the asymo schedule");
        let c = AsymConfig::from_options([("schedule", "equal"), ("topology", "0:1024,1:256")]).unwrap();
        if let Ok(rt) = Runtime::new(&c) {
            // (needs CPUs 0 and 1 in the affinity mask)
            let plan = rt.plan(&GemmProblem::new(KernelKind::Gemm, 1, 256, 1024, 256).tile(4, 16));
            assert!((plan.worker_share[0] - 0.5).abs() < 0.02, "{}", plan.describe());
        }
    }

    #[test]
    fn missing_profile_is_an_error_not_an_equal_split() {
        let mut c = AsymConfig::default();
        c.set("profile", "/nonexistent/profile.json").unwrap();
        let e = Runtime::new(&c).err().unwrap().to_string();
        assert!(e.contains("/nonexistent/profile.json"), "{e}");
    }

    #[test]
    fn runtime_end_to_end_gemm() {
        use crate::kernels::{gemm_block, AOperand, BOperand, MatMut, MatRef};
        let dir = std::env::temp_dir().join(format!("asymo-rt-{}", std::process::id()));
        let c = AsymConfig {
            cache_dir: Some(dir.clone()),
            calibration_budget: Duration::from_millis(30),
            ..Default::default()
        };
        let rt = Runtime::shared(&c).unwrap();
        assert!(Arc::ptr_eq(&rt, &Runtime::shared(&c).unwrap()));
        let (m, n, k) = (37, 300, 64);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 5) as f32).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 3) as f32).collect();
        let mut want = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                want[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        let mut out = vec![f32::NAN; m * n];
        let cm = MatMut::row_major(&mut out, m, n);
        let prob = GemmProblem::new(KernelKind::Gemm, 1, m, n, k).tile(4, 8);
        let plan = rt.plan(&prob);
        let (am, bm) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
        rt.run(&plan, &|t, ctx| {
            gemm_block(AOperand::View(am), BOperand::View(bm), cm, k, t.rows.clone(), t.cols.clone(), &[], ctx.scratch)
        })
        .unwrap();
        assert_eq!(out, want);
        drop(rt);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
