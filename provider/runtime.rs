//! What every EP instance (session) of the process shares: the AsyMo core (topology, cost model, partitioner,
//! pinned worker pool, adaptation) and the frequency governor. Both are process-wide singletons held through `Arc`s
//! by each EP and compute info; the last release joins the workers and restores CPU frequencies.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

    /// Everything `OnRunStart` does: keep the calling thread on the fastest cores (with `caller_affinity`: a
    /// [`CallerSteering`]), get the workers ready, and apply the run's frequency plan. Plain Rust, so
    /// `examples/hook_overhead` times exactly this.
    pub fn run_start(&self, plan: &RunPlan, steering: Option<&CallerSteering>) {
        self.asym.run_begin();
        self.governor.run_start(plan);
        // Last, so that nothing after it can fail and leave the thread narrowed without an OnRunEnd.
        if let Some(st) = steering {
            let preferred = self.asym.preferred_caller_cpus();
            if st.needed(&preferred) {
                steer_caller(&preferred);
            }
            RUN_STARTED.with(|t| t.set(Some(Instant::now())));
        }
    }

    /// Everything `OnRunEnd` does, on the thread that called `run_start` (with the same `steering`).
    pub fn run_end(&self, token: RunToken, steering: Option<&CallerSteering>) {
        // First, so that the thread gets its mask back whatever happens below.
        restore_caller();
        self.governor.run_end(token);
        self.asym.run_end();
        if let (Some(st), Some(t0)) = (steering, RUN_STARTED.with(|t| t.take())) {
            st.last_run_us.store(t0.elapsed().as_micros().try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
        }
    }
}

/// One EP's (session's) memory for `caller_affinity`: how long its last Run took.
///
/// Narrowing the calling thread and giving it its mask back costs two `sched_setaffinity` calls — 5.7 µs per Run
/// on this VM (`hook_overhead … cores=0`), as long as a whole 64 × 64 MatMul. What it buys: a thread that waits
/// while the workers compute may be woken on a busy core and wait there for a time slice (a 1.1 ms MatMul with
/// CPU 1 busy: p90 1.15 ms steered, 4.0 ms not). So a Run starting on a preferred CPU after a Run shorter than
/// [`CallerSteering::SHORT_RUN`] is left where it is (a 22 µs MatMul with CPU 1 busy: p90 0.029 ms steered,
/// 0.023 not); one on another CPU, or after a longer Run, is steered.
#[derive(Debug)]
pub struct CallerSteering {
    /// The last Run's wall time; `u64::MAX` before the first.
    last_run_us: AtomicU64,
}

impl Default for CallerSteering {
    fn default() -> Self {
        CallerSteering { last_run_us: AtomicU64::new(u64::MAX) }
    }
}

impl CallerSteering {
    /// Runs shorter than this are not steered when they start on a preferred CPU (the steering's cost is ~1 % of
    /// it at most).
    pub const SHORT_RUN: Duration = Duration::from_micros(500);

    /// Whether this Run's calling thread should be narrowed to `preferred`.
    fn needed(&self, preferred: &[usize]) -> bool {
        let short = self.last_run_us.load(Ordering::Relaxed) < Self::SHORT_RUN.as_micros() as u64;
        !(short && current_cpu().is_some_and(|c| preferred.contains(&c)))
    }
}

/// The CPU the calling thread runs on (a vDSO call, no system call).
fn current_cpu() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sched_getcpu takes no arguments and returns -1 on failure.
        usize::try_from(unsafe { libc::sched_getcpu() }).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

thread_local! {
    /// The calling thread's own CPU mask while a Run has narrowed it (OnRunStart and OnRunEnd run on the same
    /// thread, and a thread runs one Run at a time).
    static SAVED_AFFINITY: std::cell::RefCell<Option<Vec<usize>>> = const { std::cell::RefCell::new(None) };
    /// When the calling thread's current Run started (for [`CallerSteering`]).
    static RUN_STARTED: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steering_skips_only_short_runs_already_on_a_preferred_cpu() {
        let st = CallerSteering::default();
        let Some(here) = current_cpu() else { return };
        // Stay on this CPU while the test asks where it runs (its own mask given back at the end).
        let Some(mask) = process_affinity() else { return };
        assert!(set_current_affinity(&[here]));
        // No Run yet: steer.
        assert!(st.needed(&[here]));
        st.last_run_us.store(20, Ordering::Relaxed);
        assert!(!st.needed(&[here]));
        assert!(st.needed(&[here + 1]), "a thread off the preferred CPUs is steered");
        st.last_run_us.store(CallerSteering::SHORT_RUN.as_micros() as u64, Ordering::Relaxed);
        assert!(st.needed(&[here]), "after a long Run every Run is steered");
        set_current_affinity(&mask);
    }

    #[test]
    fn a_steered_caller_gets_its_own_mask_back() {
        let Some(mask) = process_affinity() else { return };
        if mask.len() < 2 {
            return;
        }
        steer_caller(&mask[..1]);
        assert_eq!(process_affinity().unwrap(), mask[..1]);
        restore_caller();
        assert_eq!(process_affinity().unwrap(), mask);
        // Nothing narrowed: nothing to restore, the mask stays.
        steer_caller(&mask);
        restore_caller();
        assert_eq!(process_affinity().unwrap(), mask);
    }
}
