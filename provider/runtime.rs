//! What every EP instance (session) of the process shares: the AsyMo core (topology, cost model, partitioner,
//! pinned worker pool, adaptation) and the frequency governor. Both are process-wide singletons held through `Arc`s
//! by each EP and compute info; the last release joins the workers and restores CPU frequencies.

use std::path::PathBuf;
use std::sync::Arc;

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

/// Process-wide components outlive any one session's ORT logger, so they log to stderr.
fn stderr_log() -> LogFn {
    Arc::new(|level, msg| {
        let tag = match level {
            LogLevel::Info => "info",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
        };
        eprintln!("[asymo-ep {tag}] {msg}");
    })
}
