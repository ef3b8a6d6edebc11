//! The frequency governor: raises or sets CPU frequencies around each `Run`, for latency or for energy.
//!
//! AsyMo (MobiCom 2021, §4.3) observed that the OS governor reacts too slowly for short inferences — it ramps up
//! tens of milliseconds after a run starts and stays high after it ends — and cannot know whether a model is
//! compute-bound (a higher frequency pays off) or memory-bound (a lower one costs little time and saves energy).
//! The EP knows both, so it sets the frequency itself at `OnRunStart` / `OnRunEnd`.
//!
//! # Shape
//! - One [`Governor`] per process and sysfs root ([`Governor::shared`]); every session's EP holds an `Arc` to it.
//! - At Compile, each EP turns its options and its model's [`ModelReuse`] into a [`RunPlan`] ([`Governor::prepare`]):
//!   per cluster (cpufreq policy) a target level. Errors (e.g. `mode=energy` without measured curves) surface here.
//! - [`Governor::run_start`] / [`Governor::run_end`] are reference counted over all plans of all sessions: the
//!   applied level per cluster is the highest any active run asks for; the last run to end starts the hold timer
//!   (a new run cancels it); when it expires the original settings come back. Nothing is written when the target
//!   is already applied, and an inert plan (`freq=off`, or nothing controllable) costs a branch.
//!
//! # Backends, probed once at construction (see [`BackendChoice`])
//! - cpufreq sysfs per policy: pin `scaling_min_freq`/`scaling_max_freq`, or the userspace governor with
//!   `scaling_setspeed` (see `freq/sysfs.rs`);
//! - utilization-clamp hints on registered worker threads (see `freq/uclamp.rs`);
//! - nothing: one log line says why, at the first plan that wanted a frequency.
//!
//! # Restore, always (see `freq/restore.rs`)
//! Originals come back on release, on Drop of the last user, at exit (`atexit`), on SIGINT/SIGTERM/SIGHUP
//! (handler restores, then chains or re-raises), and after SIGKILL through a state file the next load undoes.

mod restore;
mod sysfs;
mod uclamp;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::energy::EnergyProfile;
use super::reuse::{ModelReuse, ReuseClass};

// ---------------------------------------------------------------------------------------------------------------
// Options

/// Severity of a governor log message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Warning,
    Error,
}

/// Where the governor's messages go (the EP forwards them to ORT's logger). Never called with the governor's lock
/// held, so it may do anything except block forever.
pub type LogFn = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;

/// The `freq` option: `off` | `auto` | `max` | a frequency in kHz.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreqOption {
    /// Never touch frequencies.
    Off,
    /// Follow `mode`: latency → raise to the maximum during runs; energy → least-energy frequency per cluster.
    Auto,
    /// Raise to each cluster's maximum during runs, whatever the mode.
    Max,
    /// Pin every cluster at this frequency (snapped to the nearest available one below, within the policy's
    /// limits) during runs.
    Khz(u32),
}

impl FreqOption {
    pub const ACCEPTED: &'static str = "off, auto, max, or a frequency in kHz (e.g. 1800000)";

    pub fn parse(s: &str) -> Result<FreqOption, String> {
        match s.trim() {
            "off" | "0" => Ok(FreqOption::Off),
            "auto" => Ok(FreqOption::Auto),
            "max" => Ok(FreqOption::Max),
            v => match v.parse::<u32>() {
                Ok(k) if k > 0 => Ok(FreqOption::Khz(k)),
                _ => Err(format!("freq: invalid value '{s}'; accepted: {}", Self::ACCEPTED)),
            },
        }
    }
}

/// The `mode` option as far as frequencies are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GovMode {
    Latency,
    Energy,
}

impl GovMode {
    pub const ACCEPTED: &'static str = "latency, energy";

    pub fn parse(s: &str) -> Result<GovMode, String> {
        match s.trim() {
            "latency" => Ok(GovMode::Latency),
            "energy" => Ok(GovMode::Energy),
            _ => Err(format!("mode: invalid value '{s}'; accepted: {}", Self::ACCEPTED)),
        }
    }
}

/// The `freq_backend` option: which way of setting frequencies to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// cpufreq sysfs if any policy is writable; else uclamp if the kernel has it and cpufreq exists; else nothing.
    Auto,
    Sysfs,
    Uclamp,
    None,
}

impl BackendChoice {
    pub const ACCEPTED: &'static str = "auto, sysfs, uclamp, none";

    pub fn parse(s: &str) -> Result<BackendChoice, String> {
        match s.trim() {
            "auto" => Ok(BackendChoice::Auto),
            "sysfs" => Ok(BackendChoice::Sysfs),
            "uclamp" => Ok(BackendChoice::Uclamp),
            "none" => Ok(BackendChoice::None),
            _ => Err(format!("freq_backend: invalid value '{s}'; accepted: {}", Self::ACCEPTED)),
        }
    }
}

/// Default time frequencies stay raised after the last run ends (`freq_hold_ms`).
pub const DEFAULT_HOLD: Duration = Duration::from_millis(50);

/// Parse `freq_hold_ms` (milliseconds, 0 = release at once).
pub fn parse_hold_ms(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("freq_hold_ms: invalid value '{s}'; accepted: a whole number of milliseconds"))
}

/// What one EP (session) asks of the governor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreqRequest {
    pub mode: GovMode,
    pub freq: FreqOption,
    pub hold: Duration,
}

impl Default for FreqRequest {
    fn default() -> Self {
        FreqRequest { mode: GovMode::Latency, freq: FreqOption::Auto, hold: DEFAULT_HOLD }
    }
}

/// How a governor is built. Everything that touches the machine is here, so tests point it at fixture trees.
#[derive(Clone)]
pub struct GovernorConfig {
    /// The sysfs mount point (`/sys`, or a fixture tree).
    pub sysfs_root: PathBuf,
    pub backend: BackendChoice,
    /// Where state files go. `None`: `<sysfs_root>/.asymo-ep-state` for a non-`/sys` root (fixtures), else
    /// `/run/asymo-ep` as root (the same for every root process, login shell or service), else
    /// `$XDG_RUNTIME_DIR/asymo-ep`, else `<tmp>/asymo-ep-<uid>`.
    pub state_dir: Option<PathBuf>,
    /// Install SIGINT/SIGTERM/SIGHUP handlers (chaining the previous ones) when a setting is first changed.
    pub signal_handlers: bool,
    /// Keep a journal of every sysfs write ([`Governor::take_writes`]); for tests and diagnostics.
    pub record_writes: bool,
    pub log: LogFn,
}

impl GovernorConfig {
    pub fn new(sysfs_root: impl Into<PathBuf>, log: LogFn) -> GovernorConfig {
        GovernorConfig {
            sysfs_root: sysfs_root.into(),
            backend: BackendChoice::Auto,
            state_dir: None,
            signal_handlers: true,
            record_writes: false,
            log,
        }
    }

    fn resolved_state_dir(&self, root: &Path) -> PathBuf {
        if let Some(d) = &self.state_dir {
            return d.clone();
        }
        if root != Path::new("/sys") {
            return root.join(".asymo-ep-state");
        }
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        if uid == 0 {
            return PathBuf::from("/run/asymo-ep");
        }
        if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
            return PathBuf::from(x).join("asymo-ep");
        }
        std::env::temp_dir().join(format!("asymo-ep-{uid}"))
    }
}

/// One frequency domain (a cpufreq policy), as read at construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    /// `policyN`.
    pub policy: String,
    pub cpus: Vec<usize>,
    /// `scaling_available_frequencies`, ascending; empty when the driver has no table (e.g. intel_pstate).
    pub available_khz: Vec<u32>,
    pub cpuinfo_min: u32,
    pub cpuinfo_max: u32,
    /// Original `scaling_min_freq` / `scaling_max_freq`: the limits we stay within and restore.
    pub min_khz: u32,
    pub max_khz: u32,
}

/// Errors of [`Governor::prepare`] and friends; the message names the option and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GovError {
    /// `mode=energy` with `freq=auto` but no measured energy–frequency curves.
    NoEnergyCurves(String),
    /// The profile's curves do not describe this device's clusters.
    ProfileMismatch(String),
    /// A request the backend cannot express.
    Unsupported(String),
    /// [`Governor::shared`] with settings that differ from the live governor's.
    Conflict(String),
}

impl fmt::Display for GovError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GovError::NoEnergyCurves(s)
            | GovError::ProfileMismatch(s)
            | GovError::Unsupported(s)
            | GovError::Conflict(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for GovError {}

// ---------------------------------------------------------------------------------------------------------------
// Plans and tokens

/// A target for one cluster: at least `floor` kHz, at most `cap` (None = the original maximum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Level {
    pub(crate) floor: u32,
    pub(crate) cap: Option<u32>,
}

fn merge(a: Option<Level>, b: Option<Level>) -> Option<Level> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => Some(Level {
            floor: a.floor.max(b.floor),
            cap: match (a.cap, b.cap) {
                (Some(x), Some(y)) => Some(x.max(y)),
                _ => None,
            },
        }),
    }
}

/// What one EP asks for at each run, computed once at Compile by [`Governor::prepare`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RunPlan {
    gov: u64,
    /// 0 = inert.
    id: u32,
    summary: Arc<str>,
}

impl RunPlan {
    /// A plan that does nothing (freq=off, or nothing controllable).
    pub fn inert(why: &str) -> RunPlan {
        RunPlan { gov: 0, id: 0, summary: Arc::from(format!("frequency plan: none ({why})")) }
    }

    pub fn is_inert(&self) -> bool {
        self.id == 0
    }

    /// One line for `log_plan=1`: backend, mode, reuse, per-cluster targets, hold.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// A token for this plan. Tokens of one plan are interchangeable: `run_end(plan.token())` ends one run of the
    /// plan, whichever started it, so the caller need not carry the token from `OnRunStart` to `OnRunEnd`.
    pub fn token(&self) -> RunToken {
        RunToken { gov: self.gov, plan: self.id }
    }
}

/// Returned by [`Governor::run_start`]; give it back to [`Governor::run_end`]. See [`RunPlan::token`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunToken {
    gov: u64,
    plan: u32,
}

// ---------------------------------------------------------------------------------------------------------------
// The governor

struct PlanSlot {
    targets: Box<[Option<Level>]>,
    hold: Duration,
    active: usize,
}

struct SysfsBackend {
    policies: Vec<sysfs::Policy>,
    reg: restore::Registration,
    items: Vec<(PathBuf, String)>,
    /// Items the state file lists (changed at least once since the file was last written).
    in_state_file: Vec<bool>,
    state_path: PathBuf,
    signal_handlers: bool,
}

enum Backend {
    None,
    Sysfs(SysfsBackend),
    Uclamp(uclamp::Uclamp),
}

struct State {
    backend: Backend,
    plans: Vec<PlanSlot>,
    active: usize,
    applied: Vec<Option<Level>>,
    scratch: Vec<Option<Level>>,
    deadline: Option<Instant>,
    /// What the hold timer thread is sleeping for, so run_end wakes it only when it must.
    timer_sleep: TimerSleep,
    /// False if the timer thread could not be started: holds then end at once.
    timer_alive: bool,
    shutdown: bool,
    seen_epoch: u64,
    journal: Option<Vec<(PathBuf, String)>>,
    noop_logged: bool,
    /// Messages to emit once the lock is released.
    pending_log: Vec<(LogLevel, String)>,
    /// Errors already reported (each is logged once).
    reported: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TimerSleep {
    Awake,
    Forever,
    Until(Instant),
}

struct Inner {
    id: u64,
    state: Mutex<State>,
    /// Wakes the hold timer thread.
    cv: Condvar,
    /// Signalled on every release (for [`Governor::wait_released`]).
    released: Condvar,
    log: LogFn,
    backend_name: &'static str,
    noop_reason: Option<String>,
    clusters: Vec<ClusterInfo>,
    /// Number of target slots (clusters; 1 for uclamp without cluster information).
    slots: usize,
    key: ConfigKey,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ConfigKey {
    root: PathBuf,
    backend: BackendChoice,
    state_dir: PathBuf,
    signal_handlers: bool,
}

/// The process-wide frequency governor. See the module documentation.
pub struct Governor {
    inner: Arc<Inner>,
    timer: Option<JoinHandle<()>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static REGISTRY: Mutex<Vec<(PathBuf, Weak<Governor>)>> = Mutex::new(Vec::new());

impl State {
    fn log(&mut self, level: LogLevel, msg: String) {
        self.pending_log.push((level, msg));
    }

    fn report_once(&mut self, level: LogLevel, msg: String) {
        // Bounded: past 64 distinct problems, stay quiet rather than grow.
        if self.reported.len() < 64 && !self.reported.contains(&msg) {
            self.reported.push(msg.clone());
            self.log(level, msg);
        }
    }

    /// Resynchronize after the signal/atexit path restored everything behind our back.
    fn check_epoch(&mut self) {
        let e = restore::CLOBBER_EPOCH.load(Ordering::Acquire);
        if e == self.seen_epoch {
            return;
        }
        self.seen_epoch = e;
        if let Backend::Sysfs(b) = &mut self.backend {
            for p in &mut b.policies {
                p.reset_to_original();
            }
            b.in_state_file.iter_mut().for_each(|x| *x = false);
            self.applied.iter_mut().for_each(|l| *l = None);
        }
    }

    fn combined_into_scratch(&mut self) {
        self.scratch.iter_mut().for_each(|l| *l = None);
        for p in self.plans.iter().filter(|p| p.active > 0) {
            for (s, t) in self.scratch.iter_mut().zip(p.targets.iter()) {
                *s = merge(*s, *t);
            }
        }
    }

    /// Bring the backend to `scratch` if it differs from what is applied.
    fn apply_scratch(&mut self) {
        if self.scratch == self.applied {
            return;
        }
        let desired = std::mem::take(&mut self.scratch);
        let mut errors = Vec::new();
        match &mut self.backend {
            Backend::None => {}
            Backend::Sysfs(b) => {
                let SysfsBackend { policies, reg, items, in_state_file, state_path, signal_handlers } = b;
                let mut state_err = None;
                let mut before_arm = |i: usize| {
                    if in_state_file[i] {
                        return;
                    }
                    in_state_file[i] = true;
                    if *signal_handlers {
                        restore::install_handlers();
                    }
                    let listed: Vec<(PathBuf, String)> =
                        items.iter().zip(in_state_file.iter()).filter(|(_, &on)| on).map(|(e, _)| e.clone()).collect();
                    if let Err(e) = restore::write_state_file(state_path, &listed) {
                        state_err = Some(format!(
                            "cannot write governor state file {}: {e} (a killed process's settings would not be undone)",
                            state_path.display()
                        ));
                    }
                };
                let mut w = sysfs::Writer {
                    reg,
                    journal: self.journal.as_mut(),
                    before_arm: &mut before_arm,
                    errors: Vec::new(),
                };
                for (p, l) in policies.iter_mut().zip(desired.iter()) {
                    p.apply(*l, &mut w);
                }
                errors.extend(w.errors);
                errors.extend(state_err);
            }
            Backend::Uclamp(u) => {
                u.apply(&desired);
                errors.append(&mut u.errors);
            }
        }
        for e in errors {
            self.report_once(LogLevel::Warning, e);
        }
        self.applied.clone_from(&desired);
        self.scratch = desired;
    }

    fn release(&mut self) {
        self.scratch.iter_mut().for_each(|l| *l = None);
        self.apply_scratch();
    }
}

impl Inner {
    fn flush_log(&self, st: &mut State) -> Vec<(LogLevel, String)> {
        std::mem::take(&mut st.pending_log)
    }

    fn emit(&self, msgs: Vec<(LogLevel, String)>) {
        for (l, m) in msgs {
            (self.log)(l, &m);
        }
    }
}

impl Governor {
    /// Build a governor: undo leftovers of dead processes, probe the backend, start the hold timer. Never fails:
    /// when nothing can be controlled the governor is a no-op that says why (once, at the first plan wanting it).
    pub fn new(cfg: GovernorConfig) -> Governor {
        Self::with_sched(cfg, Arc::new(uclamp::KernelSched))
    }

    pub(crate) fn with_sched(cfg: GovernorConfig, sched: Arc<dyn uclamp::SchedOps>) -> Governor {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let root = std::fs::canonicalize(&cfg.sysfs_root).unwrap_or_else(|_| cfg.sysfs_root.clone());
        let state_dir = cfg.resolved_state_dir(&root);
        let key = ConfigKey {
            root: root.clone(),
            backend: cfg.backend,
            state_dir: state_dir.clone(),
            signal_handlers: cfg.signal_handlers,
        };
        let mut logs: Vec<(LogLevel, String)> = Vec::new();

        // 1. Undo what a killed process left, before reading "original" values.
        let rec = restore::recover(&state_dir, &root);
        for m in rec.messages {
            logs.push((LogLevel::Warning, m));
        }

        // 2. Probe.
        let policies = sysfs::read_policies(&root);
        let cpufreq_dir = sysfs::cpufreq_dir(&root);
        let read_only_clusters: Vec<ClusterInfo> =
            policies.as_ref().map(|v| v.iter().map(|(_, c)| c.clone()).collect()).unwrap_or_default();
        let mut why: Vec<String> = Vec::new();
        let mut backend = Backend::None;
        let mut name = "none";

        if cfg.backend == BackendChoice::None {
            why.push("freq_backend=none".into());
        }
        if matches!(cfg.backend, BackendChoice::Auto | BackendChoice::Sysfs) {
            match &policies {
                Err(e) => why.push(format!("cpufreq: cannot list {}: {e}", cpufreq_dir.display())),
                Ok(p) if p.is_empty() => why.push(format!(
                    "cpufreq: no policies under {} (no frequency scaling exposed)",
                    cpufreq_dir.display()
                )),
                Ok(p) => {
                    let (mut ok, skipped) = sysfs::probe(p.clone());
                    if ok.is_empty() {
                        why.push(format!("cpufreq: {}", skipped.join("; ")));
                    } else {
                        for s in skipped {
                            logs.push((LogLevel::Warning, format!("cpufreq: not controlled: {s}")));
                        }
                        let mut adopted = false;
                        for p in &mut ok {
                            adopted |= p.adopt_originals(&rec.live_originals);
                        }
                        if adopted {
                            logs.push((
                                LogLevel::Warning,
                                "another live process is changing CPU frequencies through this EP; using the \
                                 original values it recorded"
                                    .into(),
                            ));
                        }
                        let items = sysfs::restore_items(&mut ok);
                        let state_path = state_dir.join(format!("asymo-gov-{}-{id}.state", std::process::id()));
                        let (reg, published) = restore::Registration::new(&items, Some(&state_path));
                        if !published {
                            logs.push((
                                LogLevel::Warning,
                                "too many governors in this process: signal handlers will not restore this one".into(),
                            ));
                        }
                        name = match ok.iter().all(|p| p.method() == sysfs::Method::MinMax) {
                            true => "cpufreq-minmax",
                            false => "cpufreq",
                        };
                        let methods: Vec<String> = ok
                            .iter()
                            .map(|p| {
                                let m = match p.method() {
                                    sysfs::Method::MinMax => "min/max",
                                    sysfs::Method::Userspace => "userspace",
                                };
                                format!(
                                    "{} cpus {:?} {}-{} kHz via {m}",
                                    p.info.policy, p.info.cpus, p.info.min_khz, p.info.max_khz
                                )
                            })
                            .collect();
                        logs.push((
                            LogLevel::Info,
                            format!("frequency governor: cpufreq sysfs: {}", methods.join("; ")),
                        ));
                        backend = Backend::Sysfs(SysfsBackend {
                            in_state_file: vec![false; items.len()],
                            policies: ok,
                            reg,
                            items,
                            state_path,
                            signal_handlers: cfg.signal_handlers,
                        });
                    }
                }
            }
        }
        let uclamp_wanted = match cfg.backend {
            BackendChoice::Uclamp => true,
            // Without any cpufreq directory the kernel cannot scale frequencies: hints would change nothing.
            BackendChoice::Auto => {
                matches!(&backend, Backend::None) && !matches!(&policies, Ok(p) if p.is_empty()) && cpufreq_dir.exists()
            }
            _ => false,
        };
        if uclamp_wanted {
            match sched.probe() {
                Ok(()) => {
                    name = "uclamp";
                    logs.push((
                        LogLevel::Info,
                        "frequency governor: utilization clamps on registered worker threads".into(),
                    ));
                    backend = Backend::Uclamp(uclamp::Uclamp::new(sched, read_only_clusters.clone()));
                }
                Err(e) => why.push(format!("uclamp: {e}")),
            }
        }
        let noop_reason = match backend {
            Backend::None => Some(format!("cannot set CPU frequencies, the governor does nothing: {}", why.join("; "))),
            _ => None,
        };
        let clusters = match &backend {
            Backend::Sysfs(b) => b.policies.iter().map(|p| p.info.clone()).collect(),
            _ => read_only_clusters,
        };
        let slots = match &backend {
            Backend::Sysfs(b) => b.policies.len(),
            Backend::Uclamp(u) => u.slots(),
            Backend::None => 0,
        };
        let state = State {
            backend,
            plans: Vec::new(),
            active: 0,
            applied: vec![None; slots],
            scratch: vec![None; slots],
            deadline: None,
            timer_sleep: TimerSleep::Awake,
            timer_alive: false,
            shutdown: false,
            seen_epoch: restore::CLOBBER_EPOCH.load(Ordering::Acquire),
            journal: cfg.record_writes.then(Vec::new),
            noop_logged: false,
            pending_log: Vec::new(),
            reported: Vec::new(),
        };
        let inner = Arc::new(Inner {
            id,
            state: Mutex::new(state),
            cv: Condvar::new(),
            released: Condvar::new(),
            log: cfg.log.clone(),
            backend_name: name,
            noop_reason,
            clusters,
            slots,
            key,
        });
        inner.emit(logs);
        let timer = if inner.noop_reason.is_none() {
            let i = inner.clone();
            match std::thread::Builder::new().name("asymo-freq-hold".into()).spawn(move || hold_timer(i)) {
                Ok(h) => {
                    inner.state.lock().timer_alive = true;
                    Some(h)
                }
                Err(e) => {
                    (inner.log)(
                        LogLevel::Warning,
                        &format!("cannot start the frequency hold timer ({e}): frequencies are released at run end"),
                    );
                    None
                }
            }
        } else {
            None
        };
        Governor { inner, timer }
    }

    /// The process-wide governor for `cfg.sysfs_root`: the live one if any (its settings must match), else a new
    /// one. It is released — originals restored — when the last `Arc` goes.
    pub fn shared(cfg: GovernorConfig) -> Result<Arc<Governor>, GovError> {
        let root = std::fs::canonicalize(&cfg.sysfs_root).unwrap_or_else(|_| cfg.sysfs_root.clone());
        let mut reg = REGISTRY.lock();
        reg.retain(|(_, w)| w.strong_count() > 0);
        if let Some(g) = reg.iter().find(|(r, _)| *r == root).and_then(|(_, w)| w.upgrade()) {
            let want = ConfigKey {
                root: root.clone(),
                backend: cfg.backend,
                state_dir: cfg.resolved_state_dir(&root),
                signal_handlers: cfg.signal_handlers,
            };
            if g.inner.key != want {
                return Err(GovError::Conflict(format!(
                    "the frequency governor for sysfs_root={} is already running with different settings \
                     ({:?}); all sessions of a process must use the same freq_backend and state directory",
                    root.display(),
                    g.inner.key
                )));
            }
            return Ok(g);
        }
        let g = Arc::new(Governor::new(cfg));
        reg.push((root, Arc::downgrade(&g)));
        Ok(g)
    }

    /// `"cpufreq-minmax"`, `"cpufreq"` (some policies through the userspace governor), `"uclamp"` or `"none"`.
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend_name
    }

    /// Why nothing can be set, for the no-op backend.
    pub fn noop_reason(&self) -> Option<&str> {
        self.inner.noop_reason.as_deref()
    }

    /// The frequency domains found (controlled ones for the sysfs backend; read-only information otherwise).
    pub fn clusters(&self) -> &[ClusterInfo] {
        &self.inner.clusters
    }

    /// Turn an EP's options and its model's reuse into a plan (at Compile). Errors name the option to change.
    pub fn prepare(
        &self,
        req: &FreqRequest,
        model: &ModelReuse,
        energy: Option<&EnergyProfile>,
    ) -> Result<RunPlan, GovError> {
        if req.freq == FreqOption::Off {
            return Ok(RunPlan::inert("freq=off"));
        }
        let energy_auto = req.mode == GovMode::Energy && req.freq == FreqOption::Auto;
        let curves = match (energy_auto, energy) {
            (false, _) => None,
            (true, Some(p)) if !p.clusters.is_empty() => Some(p),
            (true, _) => {
                return Err(GovError::NoEnergyCurves(
                    "mode=energy with freq=auto needs measured energy-frequency curves, and the profile has none: \
                     measure them with `asymo-profile --energy` and pass the profile with profile=<path>, or choose \
                     freq=max, freq=<kHz> or freq=off"
                        .into(),
                ))
            }
        };
        if let Some(why) = &self.inner.noop_reason {
            let mut st = self.inner.state.lock();
            if !st.noop_logged {
                st.noop_logged = true;
                drop(st);
                // A warning when the user asked for frequencies; with the default (auto) it is only information.
                let level = if req.freq == FreqOption::Auto { LogLevel::Info } else { LogLevel::Warning };
                (self.inner.log)(level, why);
            }
            return Ok(RunPlan::inert(why));
        }
        let clusters = &self.inner.clusters;
        let n = self.inner.slots;
        let mut targets: Vec<Option<Level>> = vec![None; n];
        let what: String;
        match (req.freq, curves) {
            (FreqOption::Khz(k), _) => {
                if clusters.len() != n {
                    return Err(GovError::Unsupported(format!(
                        "freq={k}: setting a given frequency needs the cpufreq policies, which are not readable \
                         here; use freq=max or freq=off"
                    )));
                }
                for (t, c) in targets.iter_mut().zip(clusters) {
                    let f = sysfs::snap(c, k);
                    *t = Some(Level { floor: f, cap: Some(f) });
                }
                what = format!("freq={k}");
            }
            (_, Some(profile)) => {
                if clusters.len() != n || clusters.is_empty() {
                    return Err(GovError::Unsupported(
                        "mode=energy needs the cpufreq policies to match the energy curves, and they are not readable \
                         here; use freq=max or freq=off"
                            .into(),
                    ));
                }
                for (t, c) in targets.iter_mut().zip(clusters) {
                    let cc = profile.cluster_for(&c.cpus).ok_or_else(|| {
                        GovError::ProfileMismatch(format!(
                            "the profile's energy curves cover clusters {:?}, but this device has {} with cpus {:?}: \
                             measure this device with `asymo-profile --energy`",
                            profile.clusters.iter().map(|c| &c.cpus).collect::<Vec<_>>(),
                            c.policy,
                            c.cpus
                        ))
                    })?;
                    let f = cc.least_energy_khz(model.class).ok_or_else(|| {
                        GovError::ProfileMismatch(format!(
                            "the profile has no {} energy curve for cpus {:?}",
                            model.class.key(),
                            c.cpus
                        ))
                    })?;
                    let f = sysfs::snap(c, f);
                    *t = Some(Level { floor: f, cap: Some(f) });
                }
                let class = match model.class {
                    ReuseClass::ComputeBound => "compute-bound",
                    ReuseClass::MemoryBound => "memory-bound",
                };
                what = format!("mode=energy, {class} (reuse {:.1} flops/element)", model.weighted_reuse);
            }
            _ => {
                for (i, t) in targets.iter_mut().enumerate() {
                    let top = clusters.get(i).map(|c| c.max_khz).unwrap_or(u32::MAX);
                    *t = Some(Level { floor: top, cap: None });
                }
                what = match req.freq {
                    FreqOption::Max => "freq=max".into(),
                    _ => "mode=latency: maximum during runs".into(),
                };
            }
        }
        let per: Vec<String> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let name = clusters.get(i).map(|c| c.policy.as_str()).unwrap_or("all cpus");
                match t {
                    Some(Level { floor, cap: Some(_) }) => format!("{name} pinned at {floor} kHz"),
                    Some(Level { floor, cap: None }) if *floor == u32::MAX => format!("{name} at maximum"),
                    Some(Level { floor, cap: None }) => format!("{name} >= {floor} kHz"),
                    None => format!("{name} untouched"),
                }
            })
            .collect();
        let summary = format!(
            "frequency plan ({}, {what}): {}; hold {} ms",
            self.inner.backend_name,
            per.join(", "),
            req.hold.as_millis()
        );
        Ok(self.intern(targets, req.hold, summary))
    }

    /// A plan pinning each cluster at a given frequency (None = leave it alone), e.g. to measure energy curves.
    pub fn plan_pinned(&self, khz: &[Option<u32>], hold: Duration) -> Result<RunPlan, GovError> {
        if !matches!(self.inner.backend_name, "cpufreq" | "cpufreq-minmax") {
            return Err(GovError::Unsupported(format!(
                "pinning frequencies needs writable cpufreq sysfs; backend is {} ({})",
                self.inner.backend_name,
                self.inner.noop_reason.as_deref().unwrap_or("hints only")
            )));
        }
        if khz.len() != self.inner.clusters.len() {
            return Err(GovError::Unsupported(format!(
                "plan_pinned: {} frequencies for {} clusters",
                khz.len(),
                self.inner.clusters.len()
            )));
        }
        let targets: Vec<Option<Level>> = khz
            .iter()
            .zip(&self.inner.clusters)
            .map(|(k, c)| {
                k.map(|k| {
                    let f = sysfs::snap(c, k);
                    Level { floor: f, cap: Some(f) }
                })
            })
            .collect();
        let summary = format!("frequency plan (pinned): {khz:?}");
        Ok(self.intern(targets, hold, summary))
    }

    fn intern(&self, targets: Vec<Option<Level>>, hold: Duration, summary: String) -> RunPlan {
        let mut st = self.inner.state.lock();
        let id = match st.plans.iter().position(|p| *p.targets == *targets && p.hold == hold) {
            Some(i) => i,
            None => {
                st.plans.push(PlanSlot { targets: targets.into(), hold, active: 0 });
                st.plans.len() - 1
            }
        };
        RunPlan { gov: self.inner.id, id: id as u32 + 1, summary: Arc::from(summary) }
    }

    /// A run of `plan` starts (OnRunStart). Raises frequencies unless they already are; cancels a pending release.
    #[inline]
    pub fn run_start(&self, plan: &RunPlan) -> RunToken {
        if plan.id == 0 || plan.gov != self.inner.id {
            return RunToken { gov: 0, plan: 0 };
        }
        self.start_slow(plan.id);
        plan.token()
    }

    fn start_slow(&self, id: u32) {
        let mut st = self.inner.state.lock();
        st.check_epoch();
        st.plans[id as usize - 1].active += 1;
        st.active += 1;
        st.deadline = None;
        st.combined_into_scratch();
        st.apply_scratch();
        let logs = self.inner.flush_log(&mut st);
        drop(st);
        self.inner.emit(logs);
    }

    /// A run ends (OnRunEnd). The last active run starts the hold timer (or releases at once with hold 0); other
    /// runs still active keep what they need.
    #[inline]
    pub fn run_end(&self, token: RunToken) {
        if token.plan == 0 || token.gov != self.inner.id {
            return;
        }
        self.end_slow(token.plan);
    }

    fn end_slow(&self, id: u32) {
        let mut st = self.inner.state.lock();
        let slot = &mut st.plans[id as usize - 1];
        if slot.active == 0 {
            return; // unmatched run_end: ignore rather than underflow
        }
        slot.active -= 1;
        let hold = slot.hold;
        st.active -= 1;
        st.check_epoch();
        if st.active == 0 {
            if hold.is_zero() || !st.timer_alive {
                st.release();
                self.inner.released.notify_all();
            } else {
                let d = Instant::now() + hold;
                st.deadline = Some(d);
                // The timer wakes by itself for an earlier deadline and then sees this one; wake it only if it
                // sleeps forever or past `d`.
                let wake = match st.timer_sleep {
                    TimerSleep::Forever => true,
                    TimerSleep::Until(t) => t > d,
                    TimerSleep::Awake => false,
                };
                if wake {
                    self.inner.cv.notify_one();
                }
            }
        } else {
            st.combined_into_scratch();
            st.apply_scratch();
        }
        let logs = self.inner.flush_log(&mut st);
        drop(st);
        self.inner.emit(logs);
    }

    /// End a pending hold now (e.g. the app goes idle). No effect while runs are active.
    pub fn release_now(&self) {
        let mut st = self.inner.state.lock();
        if st.active == 0 {
            st.deadline = None;
            st.release();
        }
        let logs = self.inner.flush_log(&mut st);
        drop(st);
        self.inner.released.notify_all();
        self.inner.emit(logs);
    }

    /// Number of runs between run_start and run_end.
    pub fn active_runs(&self) -> usize {
        self.inner.state.lock().active
    }

    /// Is a release waiting for the hold time to pass?
    pub fn hold_pending(&self) -> bool {
        self.inner.state.lock().deadline.is_some()
    }

    /// Is anything currently changed from the original settings?
    pub fn is_raised(&self) -> bool {
        self.inner.state.lock().applied.iter().any(|l| l.is_some())
    }

    /// Wait until nothing is raised and no run is active, at most `timeout`. Returns whether that happened.
    pub fn wait_released(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut st = self.inner.state.lock();
        loop {
            if st.active == 0 && st.applied.iter().all(|l| l.is_none()) {
                return true;
            }
            if self.inner.released.wait_until(&mut st, end).timed_out() {
                return st.active == 0 && st.applied.iter().all(|l| l.is_none());
            }
        }
    }

    /// The sysfs writes so far (path, value), when `record_writes` is on; clears the journal.
    pub fn take_writes(&self) -> Vec<(PathBuf, String)> {
        self.inner.state.lock().journal.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Register a worker thread for utilization-clamp hints (`tid` from [`current_tid`]; `cpu` when pinned). The
    /// registration ends, and the thread's clamps are restored, when the returned guard drops. Harmless (and
    /// free) with other backends.
    pub fn register_thread(&self, tid: i32, cpu: Option<usize>) -> ThreadRegistration {
        let mut st = self.inner.state.lock();
        let used = if let Backend::Uclamp(u) = &mut st.backend {
            u.register(tid, cpu);
            let errs = std::mem::take(&mut u.errors);
            for e in errs {
                st.report_once(LogLevel::Warning, e);
            }
            true
        } else {
            false
        };
        let logs = self.inner.flush_log(&mut st);
        drop(st);
        self.inner.emit(logs);
        ThreadRegistration { inner: used.then(|| self.inner.clone()), tid }
    }

    #[cfg(test)]
    fn registered_threads(&self) -> usize {
        match &self.inner.state.lock().backend {
            Backend::Uclamp(u) => u.thread_count(),
            _ => 0,
        }
    }
}

impl Drop for Governor {
    fn drop(&mut self) {
        {
            let mut st = self.inner.state.lock();
            st.shutdown = true;
        }
        self.inner.cv.notify_all();
        if let Some(t) = self.timer.take() {
            let _ = t.join();
        }
        let mut st = self.inner.state.lock();
        st.check_epoch();
        st.deadline = None;
        st.release();
        if let Backend::Sysfs(b) = &st.backend {
            if b.in_state_file.iter().any(|&x| x) || b.state_path.exists() {
                let _ = std::fs::remove_file(&b.state_path);
            }
        }
        // Unpublish from the signal table (uclamp threads keep their own registrations).
        if matches!(st.backend, Backend::Sysfs(_)) {
            st.backend = Backend::None;
        }
        let logs = self.inner.flush_log(&mut st);
        drop(st);
        self.inner.emit(logs);
    }
}

fn hold_timer(inner: Arc<Inner>) {
    let mut st = inner.state.lock();
    loop {
        if st.shutdown {
            return;
        }
        match st.deadline {
            None => {
                st.timer_sleep = TimerSleep::Forever;
                inner.cv.wait(&mut st);
                st.timer_sleep = TimerSleep::Awake;
            }
            Some(d) if Instant::now() >= d => {
                st.deadline = None;
                if st.active == 0 {
                    st.check_epoch();
                    st.release();
                    let logs = inner.flush_log(&mut st);
                    inner.released.notify_all();
                    if !logs.is_empty() {
                        drop(st);
                        inner.emit(logs);
                        st = inner.state.lock();
                    }
                }
            }
            Some(d) => {
                st.timer_sleep = TimerSleep::Until(d);
                inner.cv.wait_until(&mut st, d);
                st.timer_sleep = TimerSleep::Awake;
            }
        }
    }
}

/// A worker thread's registration for utilization-clamp hints; unregisters (restoring its clamps) on drop.
pub struct ThreadRegistration {
    inner: Option<Arc<Inner>>,
    tid: i32,
}

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            if let Backend::Uclamp(u) = &mut inner.state.lock().backend {
                u.unregister(self.tid);
            }
        }
    }
}

/// The calling thread's kernel thread id, for [`Governor::register_thread`].
pub fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

#[cfg(test)]
mod tests;
