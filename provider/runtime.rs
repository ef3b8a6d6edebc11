//! What every EP instance (session) of the process shares: the AsyMo core (topology, cost model, partitioner,
//! pinned worker pool, adaptation) and the frequency governor. Both are process-wide singletons held through `Arc`s
//! by each EP and compute info; the last release joins the workers and restores CPU frequencies.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;

use asymo_ep_ffi::{Error, Result};

use crate::asym::freq::{Governor, GovernorConfig, LogFn, LogLevel};
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
