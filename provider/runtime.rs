//! What every EP instance (session) of the process shares: the AsyMo core (topology, cost model, partitioner,
//! pinned worker pool, adaptation) and the frequency governor. Both are process-wide singletons held through `Arc`s
//! by each EP and compute info; the last release joins the workers and restores CPU frequencies.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;

use asymo_ep_ffi::{Error, Result};

use crate::asym::freq::{Governor, GovernorConfig, LogFn, LogLevel, RunPlan, RunToken};
use crate::asym::topology::{process_affinity, set_current_affinity};
use crate::asym::Runtime as AsymRuntime;
use crate::options::EpConfig;

/// The process-wide pieces one EP uses.
#[derive(Clone)]
pub struct Shared {
    pub asym: Arc<AsymRuntime>,
    pub governor: Arc<Governor>,
}

impl Shared {
    /// The live runtime and governor for this configuration (created on first use).
    pub fn acquire(cfg: &EpConfig) -> Result<Shared> {
        let asym = AsymRuntime::shared(&cfg.asym).map_err(|e| Error::invalid_argument(format!("AsyMo core: {e}")))?;
        let root = cfg.asym.topology.sysfs_root.clone().unwrap_or_else(|| PathBuf::from("/sys"));
        let mut gc = GovernorConfig::new(root, stderr_log());
        gc.backend = cfg.freq_backend;
        gc.state_dir = cfg.freq_state_dir.clone();
        let governor = Governor::shared(gc).map_err(|e| Error::invalid_argument(format!("frequency governor: {e}")))?;
        Ok(Shared { asym, governor })
    }

    /// Everything `OnRunStart` does: keep the calling thread on the fastest cores (with `caller_affinity`), get the
    /// workers ready, and apply the run's frequency plan. Plain Rust, so `examples/hook_overhead` times exactly this.
    pub fn run_start(&self, plan: &RunPlan, caller_affinity: bool) {
        if caller_affinity {
            steer_caller(&self.asym.preferred_caller_cpus());
        }
        self.asym.run_begin();
        self.governor.run_start(plan);
    }

    /// Everything `OnRunEnd` does, on the thread that called `run_start`.
    pub fn run_end(&self, token: RunToken) {
        self.governor.run_end(token);
        self.asym.run_end();
        restore_caller();
    }
}

thread_local! {
    /// The calling thread's own CPU mask while a Run has narrowed it (OnRunStart and OnRunEnd run on the same
    /// thread, and a thread runs one Run at a time).
    static SAVED_AFFINITY: std::cell::RefCell<Option<Vec<usize>>> = const { std::cell::RefCell::new(None) };
}

/// Narrow the calling thread to `preferred` (within its own mask) for the rest of the Run.
fn steer_caller(preferred: &[usize]) {
    let Some(current) = process_affinity() else { return };
    let narrowed: Vec<usize> = current.iter().copied().filter(|c| preferred.contains(c)).collect();
    if narrowed.is_empty() || narrowed.len() == current.len() {
        return;
    }
    if set_current_affinity(&narrowed) {
        SAVED_AFFINITY.with(|s| *s.borrow_mut() = Some(current));
    }
}

/// Give the calling thread its own mask back (OnRunEnd).
fn restore_caller() {
    if let Some(mask) = SAVED_AFFINITY.with(|s| s.borrow_mut().take()) {
        set_current_affinity(&mask);
    }
}

/// Where process-wide components log: the host's default logger while the library is registered (set by the ORT
/// glue, so ORT's severity filter applies), else stderr (warnings and errors only).
pub type LogSink = Box<dyn Fn(LogLevel, &str) + Send + Sync>;

static LOG_SINK: RwLock<Option<LogSink>> = RwLock::new(None);

/// Install (or, with `None`, remove) the process-wide log sink.
pub fn set_log_sink(sink: Option<LogSink>) {
    *LOG_SINK.write() = sink;
}

/// Log a process-wide message.
pub fn log(level: LogLevel, msg: &str) {
    match &*LOG_SINK.read() {
        Some(sink) => sink(level, msg),
        None if level != LogLevel::Info => {
            let tag = if level == LogLevel::Warning { "warning" } else { "error" };
            eprintln!("[asymo-ep {tag}] {msg}");
        }
        None => {}
    }
}

fn stderr_log() -> LogFn {
    Arc::new(log)
}
