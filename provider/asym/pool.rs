//! The worker pool: one pinned worker per usable core, a queue per core, dispatch by plan home or least predicted
//! load, cost-aware stealing, spin-then-park idling, and several jobs in flight at once.
//!
//! # Jobs
//! [`Pool::run`] pushes a plan's tasks to the workers' queues and blocks the calling thread until all of them have
//! run (or been skipped after a panic), then returns. The caller does not take tasks planned for other cores: ORT's
//! calling thread is not pinned, and on a machine whose cores all have a worker it would only compete with them
//! (the case the paper measures). While it waits it runs the tasks of its job queued for the worker pinned to the
//! core it is on — that worker could only run them while the caller yields the core to it, two context switches
//! per job (SqueezeNet two cores 1.05×, Char-RNN 1.12×, neutral with CPU 1 busy) — and otherwise spins (during a
//! run up to the job's predicted time, not counting the time it spent running tasks, at most `caller_run_spin`;
//! else `caller_spin`), then sleeps on the job's condition variable, so it never burns a core for long while
//! waiting. During a run, a job predicted longer than 1 ms puts the caller to sleep first (spinning beside a worker
//! takes its slices): it wakes 300 µs before the predicted end (at the latest after 1 s, or at the job's end), runs
//! any of the job's tasks still queued for its core, then waits for the end on the condition variable (its spin
//! budget is spent by then). Three
//! exceptions run whole plans on the calling thread, serially:
//! - a plan with one task predicted under `inline_below_secs` (100 µs): no other worker could share it, and the
//!   hand-off to a worker and back costs more than it saves (a 60 µs depthwise layer: p50 77 µs handed over, 62 µs
//!   inline; Char-RNN's small GEMMs: p50 0.82 → 0.69 ms on two cores);
//! - a call from one of this pool's own workers (a nested job), which would otherwise deadlock;
//! - a pool of one worker while the caller runs on that worker's core (a hand-off there is two context switches).
//!
//! # Queues and stealing
//! Each worker has a FIFO (a `parking_lot` mutex around a `VecDeque`; tasks are tens of µs, so a lock per task is
//! noise) and an atomic mirror of its length and of its predicted remaining work. A task goes to its plan's home
//! queue ([`Dispatch::Home`]) or, for tasks with home [`ANY_WORKER`](super::partition::ANY_WORKER) or under
//! [`Dispatch::LeastLoaded`], to the queue whose worker is predicted to finish it first (on a tie, not the worker on
//! the caller's current CPU). An idle worker pops its own queue front; if empty it steals from the back of other
//! queues — its cluster first, then its class, then the other classes fastest first — but only a task it would
//! finish sooner than the owner would: `cost on thief < owner's predicted queued work`, a tie only from an owner
//! that is not running a task ([`may_steal`]; costs in seconds from the cost model, scaled by the live measured
//! speeds of adaptation).
//!
//! # Idling
//! An idle worker spins (checking the atomic queue lengths, no locks) for `spin`, then parks on its own condition
//! variable. A push sets the target's `notified` flag under its sleep mutex before signalling, and a worker checks
//! that flag under the same mutex before waiting, so wake-ups are never lost. [`Pool::prewake`] (for `OnRunStart`)
//! wakes every worker and extends its spin window by `prewake_spin`.
//!
//! # Failure and shutdown
//! A panicking task is caught (`catch_unwind`); the worker survives (its scratch is replaced), the job's remaining
//! tasks are skipped, and `run` returns [`PoolError::TaskPanicked`]. Dropping the pool (no `run` can be in flight:
//! it borrows the pool) sets a flag, wakes and joins every worker.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::adapt::Adapt;
use super::partition::{Plan, Task};
use super::topology::{pin_current_thread, Topology};
use crate::kernels::Scratch;

/// Where tasks go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dispatch {
    /// The plan's home worker (tasks with home `ANY_WORKER`: least loaded).
    Home,
    /// Every task to the queue that is predicted to finish it first.
    LeastLoaded,
}

/// Pool knobs.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolConfig {
    pub steal: bool,
    pub dispatch: Dispatch,
    /// Pin each worker to its core.
    pub pin: bool,
    /// How long an idle worker spins before parking.
    pub spin: Duration,
    /// How long workers keep spinning after [`Pool::prewake`].
    pub prewake_spin: Duration,
    /// While an inference run is in progress ([`Pool::run_begin`] … [`Pool::run_end`]), how long an idle worker
    /// keeps spinning (yielding) before it parks: the gaps between a run's jobs (ORT dispatch, CPU EP nodes) are
    /// short, and waking a parked thread costs far more on a virtual machine (hundreds of µs measured here).
    pub run_spin: Duration,
    /// How long the calling thread spins before sleeping on its job.
    pub caller_spin: Duration,
    /// During a run, the calling thread spins (yielding) up to the job's predicted time, at most this long.
    pub caller_run_spin: Duration,
    /// Single-task plans predicted below this run on the calling thread (see the module doc).
    pub inline_below_secs: f64,
    /// While waiting, the calling thread runs its job's tasks queued for the worker of its core (see the module
    /// doc; off only in tests that need every task run by a worker).
    pub caller_helps: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            steal: true,
            dispatch: Dispatch::Home,
            pin: true,
            spin: Duration::from_micros(50),
            prewake_spin: Duration::from_micros(500),
            run_spin: Duration::from_millis(5),
            caller_spin: Duration::from_micros(5),
            caller_run_spin: Duration::from_millis(2),
            inline_below_secs: 100e-6,
            caller_helps: true,
        }
    }
}

/// Worker index given to tasks of a plan the calling thread runs whole (inline or nested).
pub const CALLER: usize = usize::MAX;

/// What a task sees of the thread running it.
pub struct WorkerCtx<'a> {
    /// The queue (worker index into the topology's cores) the task came from, or [`CALLER`] for a plan run whole
    /// on the calling thread. It names a core, not a thread: the calling thread runs tasks of the worker of the
    /// core it is on (see the module doc), so two threads may see the same index at once.
    pub worker: usize,
    /// The CPU of that worker (None for a plan run whole on the calling thread).
    pub cpu: Option<usize>,
    /// Core class index of the worker (the fastest class on the calling thread).
    pub class: usize,
    /// Kernel scratch reused across tasks on this thread.
    pub scratch: &'a mut Scratch,
}

/// A job that did not complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// A task panicked; the job's other tasks were skipped. `task` is the plan's task index.
    TaskPanicked { task: usize, worker: usize, message: String },
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::TaskPanicked { task, worker, message } => {
                let w = if *worker == CALLER { "the calling thread".to_string() } else { format!("worker {worker}") };
                write!(f, "task {task} panicked on {w}: {message}")
            }
        }
    }
}
impl std::error::Error for PoolError {}

/// Per-worker counters (monotonic; take differences).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerStats {
    pub cpu: usize,
    pub tasks: u64,
    /// Tasks taken from another worker's queue.
    pub stolen: u64,
    /// Seconds spent running tasks.
    pub busy_secs: f64,
    /// Nominal predicted seconds of the tasks run.
    pub predicted_secs: f64,
    pub parks: u64,
}

/// The per-task function of a job.
pub type TaskFn<'f> = dyn Fn(&Task, &mut WorkerCtx<'_>) + Sync + 'f;

/// State of one `run` call. The raw pointers borrow `run`'s arguments: `run` does not return before `remaining`
/// reaches 0, and no worker dereferences them after its decrement.
struct Job {
    plan: *const Plan,
    func: *const TaskFn<'static>,
    remaining: AtomicUsize,
    failed: AtomicBool,
    error: Mutex<Option<PoolError>>,
    done: Mutex<bool>,
    done_cv: Condvar,
    /// When the job was submitted, and per worker: nominal predicted work done (ns) and when its last task of
    /// this job ended (ns after `start`). Adaptation rates each worker by work ÷ finish time, which counts the time
    /// a worker was preempted or slow to start, not only how fast its tasks ran once running.
    start: Instant,
    work_ns: Box<[AtomicU64]>,
    finish_ns: Box<[AtomicU64]>,
}

// SAFETY: `plan` points to a `Plan` (Sync) and `func` to a `Sync` closure, both borrowed by `run` for the whole
// job (see the struct doc); everything else is Send + Sync.
unsafe impl Send for Job {}
// SAFETY: as above.
unsafe impl Sync for Job {}

impl Job {
    /// Mark one task finished; wakes the caller after the last.
    fn finish_one(&self) {
        // Release: the task's writes (its output block, an error) happen-before the caller's Acquire load of 0.
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut d = self.done.lock();
            *d = true;
            self.done_cv.notify_one();
        }
    }
}

struct QueuedTask {
    job: Arc<Job>,
    index: usize,
    /// Predicted seconds (nominal, on the home class) from the plan.
    cost: f64,
    /// Class the cost was predicted for.
    cost_class: usize,
    /// What was added to the queue's predicted load (ns), subtracted when it leaves.
    load_ns: u64,
}

#[repr(align(128))]
struct Slot {
    queue: Mutex<VecDeque<QueuedTask>>,
    len: AtomicUsize,
    /// Predicted seconds (ns) of the queued tasks on this worker, at its live speed.
    load_ns: AtomicU64,
    /// Whether this worker is running a task right now (a tie in the steal rule goes to the thief only if not).
    running: AtomicBool,
    notified: Mutex<bool>,
    wake: Condvar,
    // Statistics of the tasks of this slot's queue (run by its worker, or by a caller on its core).
    tasks: AtomicU64,
    stolen: AtomicU64,
    busy_ns: AtomicU64,
    predicted_ns: AtomicU64,
    parks: AtomicU64,
}

impl Slot {
    fn new() -> Self {
        Slot {
            queue: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
            load_ns: AtomicU64::new(0),
            running: AtomicBool::new(false),
            notified: Mutex::new(false),
            wake: Condvar::new(),
            tasks: AtomicU64::new(0),
            stolen: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            predicted_ns: AtomicU64::new(0),
            parks: AtomicU64::new(0),
        }
    }

    /// Bookkeeping for a task just taken off this queue (under its lock).
    fn took(&self, t: &QueuedTask) {
        self.len.fetch_sub(1, Ordering::Relaxed);
        self.load_ns.fetch_sub(t.load_ns.min(self.load_ns.load(Ordering::Relaxed)), Ordering::Relaxed);
    }
}

struct Shared {
    id: usize,
    topo: Arc<Topology>,
    cfg: PoolConfig,
    adapt: Arc<Adapt>,
    /// Relative nominal speed of each class (1.0 = class 0) for converting costs between classes.
    class_speed: Vec<f64>,
    slots: Box<[Slot]>,
    /// Victims in steal order, per worker.
    victims: Vec<Vec<usize>>,
    shutdown: AtomicBool,
    /// Workers spin until this instant (ns since `epoch`) after a prewake.
    spin_until_ns: AtomicU64,
    /// Inference runs in progress (between run_begin and run_end), over all sessions.
    runs_active: AtomicUsize,
    epoch: Instant,
}

static NEXT_POOL_ID: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// (pool id, worker index) of a pool worker thread.
    static CURRENT_WORKER: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    /// Scratch of a calling thread running tasks inline.
    static CALLER_SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// The worker pool.
pub struct Pool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Start one worker per core of `topo`. `class_speed[c]` is class c's nominal speed relative to class 0
    /// (from the cost model); missing entries are derived from the classes' capacities.
    pub fn new(
        topo: Arc<Topology>,
        cfg: PoolConfig,
        adapt: Arc<Adapt>,
        class_speed: Vec<f64>,
    ) -> std::io::Result<Pool> {
        let n = topo.cores.len();
        let class_speed: Vec<f64> = (0..topo.classes.len())
            .map(|c| {
                class_speed
                    .get(c)
                    .copied()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .unwrap_or(topo.classes[c].capacity as f64 / topo.classes[0].capacity.max(1) as f64)
            })
            .collect();
        let victims = (0..n)
            .map(|w| {
                let me = &topo.cores[w];
                let mut v: Vec<usize> = (0..n).filter(|&x| x != w).collect();
                // Same cluster, then same class, then faster classes first (lower class index), then by distance.
                v.sort_by_key(|&x| {
                    let c = &topo.cores[x];
                    (c.cluster != me.cluster, c.class != me.class, c.class, x.abs_diff(w))
                });
                v
            })
            .collect();
        let shared = Arc::new(Shared {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            topo: topo.clone(),
            cfg,
            adapt,
            class_speed,
            slots: (0..n).map(|_| Slot::new()).collect(),
            victims,
            shutdown: AtomicBool::new(false),
            spin_until_ns: AtomicU64::new(0),
            runs_active: AtomicUsize::new(0),
            epoch: Instant::now(),
        });
        let mut threads = Vec::with_capacity(n);
        for w in 0..n {
            let sh = shared.clone();
            let cpu = topo.cores[w].cpu;
            let spawned =
                std::thread::Builder::new().name(format!("asymo-w{w}-cpu{cpu}")).spawn(move || worker_main(sh, w));
            match spawned {
                Ok(h) => threads.push(h),
                Err(e) => {
                    // Stop the ones already started before reporting.
                    let pool = Pool { shared, threads };
                    drop(pool);
                    return Err(e);
                }
            }
        }
        Ok(Pool { shared, threads })
    }

    pub fn topology(&self) -> &Arc<Topology> {
        &self.shared.topo
    }
    pub fn config(&self) -> &PoolConfig {
        &self.shared.cfg
    }
    pub fn adapt(&self) -> &Arc<Adapt> {
        &self.shared.adapt
    }
    pub fn workers(&self) -> usize {
        self.shared.slots.len()
    }

    /// Run every task of `plan` with `f` and wait for all of them (see the module doc). Tasks of one job may run
    /// concurrently on different workers; `f` must only write disjoint outputs per task.
    pub fn run<'f>(&self, plan: &Plan, f: &'f TaskFn<'f>) -> Result<(), PoolError> {
        let sh = &*self.shared;
        let n = plan.tasks.len();
        if n == 0 {
            return Ok(());
        }
        let nested = CURRENT_WORKER.with(|c| c.get().0 == sh.id);
        let caller_cpu = current_cpu();
        let caller_worker = caller_cpu.and_then(|cpu| sh.topo.worker_of_cpu(cpu));
        // A one-task plan runs here if it is short on the core the caller is on (on an unknown core: only if it
        // would be short on every core, the old 15 µs bound).
        let tiny = n == 1 && {
            let t = &plan.tasks[0];
            let cost_class = if t.home < sh.slots.len() { sh.topo.cores[t.home].class } else { 0 };
            match caller_worker {
                Some(w) => sh.time_on(w, t.cost, cost_class) < sh.cfg.inline_below_secs,
                None => t.cost < 15e-6,
            }
        };
        // One worker, and the caller is running on its core right now: handing the job over would only add two
        // context switches on that core (the worker cannot run while this thread spins there, nor the other way).
        let sharing_only_core = sh.slots.len() == 1 && caller_cpu == Some(sh.topo.cores[0].cpu);
        if nested || tiny || sh.slots.is_empty() || sharing_only_core {
            return run_inline(plan, f, sh);
        }
        // SAFETY (lifetime erasure): the job's pointers are only dereferenced while `remaining > 0`, and this
        // function does not return before it reaches 0 (see `Job`).
        let func = unsafe { std::mem::transmute::<*const TaskFn<'f>, *const TaskFn<'static>>(f as *const TaskFn<'f>) };
        let job = Arc::new(Job {
            plan: plan as *const Plan,
            func,
            remaining: AtomicUsize::new(n),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            done: Mutex::new(false),
            done_cv: Condvar::new(),
            start: Instant::now(),
            work_ns: (0..sh.slots.len()).map(|_| AtomicU64::new(0)).collect(),
            finish_ns: (0..sh.slots.len()).map(|_| AtomicU64::new(0)).collect(),
        });
        // Group by target worker, then push each group under one lock.
        let nw = sh.slots.len();
        let mut groups: Vec<Vec<QueuedTask>> = (0..nw).map(|_| Vec::new()).collect();
        let mut extra_load = vec![0u64; nw];
        for (i, t) in plan.tasks.iter().enumerate() {
            let cost_class = if t.home < nw { sh.topo.cores[t.home].class } else { 0 };
            let target = if t.home < nw && sh.cfg.dispatch == Dispatch::Home {
                t.home
            } else {
                least_loaded(sh, t.cost, cost_class, &extra_load, caller_cpu)
            };
            let load = (sh.time_on(target, t.cost, cost_class) * 1e9) as u64;
            extra_load[target] += load;
            groups[target].push(QueuedTask { job: job.clone(), index: i, cost: t.cost, cost_class, load_ns: load });
        }
        for (w, g) in groups.into_iter().enumerate() {
            if g.is_empty() {
                continue;
            }
            let slot = &sh.slots[w];
            {
                let mut q = slot.queue.lock();
                slot.load_ns.fetch_add(extra_load[w], Ordering::Relaxed);
                slot.len.fetch_add(g.len(), Ordering::Release);
                q.extend(g);
            }
            sh.notify(w);
        }
        if sh.cfg.steal {
            // Idle workers without tasks of their own may steal: wake them too — also for a one-task job, whose
            // worker may be waiting for its core behind another busy thread (a woken thread does not preempt a
            // running one at once: ~4 ms per job measured with a busy process on that core).
            for (w, &load) in extra_load.iter().enumerate() {
                if load == 0 {
                    sh.notify(w);
                }
            }
        }
        // Wait: during an inference run, spin (yielding the core to any worker sharing it) for about the job's
        // predicted time, capped: a parked thread wakes slowly (hundreds of µs on a VM), and ORT's next node waits
        // on this thread. Outside runs, sleep after `caller_spin`; jobs predicted over 1 ms nap first (below).
        let mut t0 = Instant::now();
        let spin_for = if sh.runs_active.load(Ordering::Relaxed) > 0 {
            Duration::from_secs_f64(plan.predicted_secs.clamp(0.0, sh.cfg.caller_run_spin.as_secs_f64()))
                .max(sh.cfg.caller_spin)
        } else {
            sh.cfg.caller_spin
        };
        // A long job: sleep through most of its predicted time first. Spinning (and yielding) beside the worker
        // pinned to this thread's core takes that worker's time slices (a 9 ms VGG-16 convolution on two cores
        // ran 3 % faster with the caller asleep). Woken 300 µs early, the loop below still runs the job's tasks
        // left in this core's queue; its spin budget (counted from before the nap) is spent, so it then sleeps
        // until the end. (Spinning those last 600 µs instead: that layer 1.04× faster alone, ResNet-50 0.99×.)
        if sh.runs_active.load(Ordering::Relaxed) > 0 && plan.predicted_secs > CALLER_SLEEP_ABOVE_SECS {
            // (Capped, and never a panic on an absurd prediction: the job's end wakes this thread anyway.)
            let nap = Duration::try_from_secs_f64(plan.predicted_secs - CALLER_WAKE_MARGIN_SECS)
                .unwrap_or(Duration::ZERO)
                .min(Duration::from_secs(1));
            let mut d = job.done.lock();
            if !*d {
                job.done_cv.wait_for(&mut d, nap);
            }
        }
        // The worker pinned to the caller's core could only run while this thread yields that core to it: the
        // caller runs that worker's queued tasks of this job itself instead (two context switches fewer per job),
        // for as long as there are any, then spins up to `spin_for` and sleeps.
        loop {
            if job.remaining.load(Ordering::Acquire) == 0 {
                break;
            }
            // The caller is not pinned: ask again which core it is on before taking a task of that core.
            let here =
                if sh.cfg.caller_helps { current_cpu().and_then(|cpu| sh.topo.worker_of_cpu(cpu)) } else { None };
            let mine = |t: &QueuedTask| Arc::ptr_eq(&t.job, &job);
            if let Some((w, qt)) = here.and_then(|w| sh.pop_front_if(w, mine).map(|t| (w, t))) {
                let core = &sh.topo.cores[w];
                let ran = Instant::now();
                with_caller_scratch(|scratch| execute(sh, w, core.class, core.cpu, scratch, qt, Run::ByCaller));
                // Time spent running a task is not spin time: past a budget spent helping, the caller fell asleep
                // just before the other workers' last tasks ended and woke ~25 µs late (SqueezeNet's pools on two
                // cores, traced: its tasks took twice their predicted time).
                t0 += ran.elapsed();
                continue;
            }
            if t0.elapsed() >= spin_for {
                break;
            }
            for _ in 0..32 {
                std::hint::spin_loop();
            }
            std::thread::yield_now();
        }
        if job.remaining.load(Ordering::Acquire) != 0 {
            let mut d = job.done.lock();
            while !*d {
                job.done_cv.wait(&mut d);
            }
        }
        // Acquire pairs with the workers' AcqRel decrements: all task effects are visible from here.
        debug_assert_eq!(job.remaining.load(Ordering::Acquire), 0);
        for (w, (work, finish)) in job.work_ns.iter().zip(job.finish_ns.iter()).enumerate() {
            let (work, finish) = (work.load(Ordering::Relaxed), finish.load(Ordering::Relaxed));
            if work > 0 && finish > 0 {
                sh.adapt.record(w, work as f64 * 1e-9, finish as f64 * 1e-9);
            }
        }
        sh.adapt.update();
        let error = job.error.lock().take();
        match error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Wake every worker and keep them spinning for `prewake_spin` (call at the start of an inference run).
    pub fn prewake(&self) {
        let sh = &*self.shared;
        let until = sh.epoch.elapsed() + sh.cfg.prewake_spin;
        sh.spin_until_ns.fetch_max(until.as_nanos() as u64, Ordering::Relaxed);
        for w in 0..sh.slots.len() {
            sh.notify(w);
        }
    }

    /// An inference run starts (`OnRunStart`): wake the workers, and keep idle workers spinning between this run's
    /// jobs (up to `run_spin`) until [`Pool::run_end`].
    pub fn run_begin(&self) {
        self.shared.runs_active.fetch_add(1, Ordering::AcqRel);
        self.prewake();
    }

    /// The run ended (`OnRunEnd`, also after a failed run); idle workers park once no run is in progress.
    pub fn run_end(&self) {
        // Saturating: a stray end must not wrap the count.
        let _ = self.shared.runs_active.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Counters per worker.
    pub fn stats(&self) -> Vec<WorkerStats> {
        let sh = &*self.shared;
        sh.slots
            .iter()
            .enumerate()
            .map(|(w, s)| WorkerStats {
                cpu: sh.topo.cores[w].cpu,
                tasks: s.tasks.load(Ordering::Relaxed),
                stolen: s.stolen.load(Ordering::Relaxed),
                busy_secs: s.busy_ns.load(Ordering::Relaxed) as f64 * 1e-9,
                predicted_secs: s.predicted_ns.load(Ordering::Relaxed) as f64 * 1e-9,
                parks: s.parks.load(Ordering::Relaxed),
            })
            .collect()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let sh = &*self.shared;
        sh.shutdown.store(true, Ordering::Release);
        for w in 0..sh.slots.len() {
            sh.notify(w);
        }
        let me = std::thread::current().id();
        for h in self.threads.drain(..) {
            if h.thread().id() == me {
                continue; // dropped from inside a task on a worker: it exits by itself, cannot join itself
            }
            let _ = h.join();
        }
    }
}

impl Shared {
    /// Predicted seconds for worker `w` to run a task of nominal cost `cost` predicted for class `cost_class`.
    #[inline]
    fn time_on(&self, w: usize, cost: f64, cost_class: usize) -> f64 {
        self.nominal_on(w, cost, cost_class) / self.adapt.live_speed(w).max(1e-3)
    }

    /// Nominal seconds (no speed factor) on worker `w`'s class.
    #[inline]
    fn nominal_on(&self, w: usize, cost: f64, cost_class: usize) -> f64 {
        let cw = self.topo.cores[w].class;
        cost * self.class_speed[cost_class] / self.class_speed[cw]
    }

    fn notify(&self, w: usize) {
        let s = &self.slots[w];
        let mut n = s.notified.lock();
        *n = true;
        s.wake.notify_one();
    }

    /// Pop worker `w`'s front task if `take` accepts it.
    fn pop_front_if(&self, w: usize, take: impl FnOnce(&QueuedTask) -> bool) -> Option<QueuedTask> {
        let s = &self.slots[w];
        if s.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut q = s.queue.lock();
        if !take(q.front()?) {
            return None;
        }
        let t = q.pop_front()?;
        s.took(&t);
        Some(t)
    }

    /// Steal the back task of the first victim whose owner would finish it no earlier than we would.
    fn steal(&self, w: usize) -> Option<QueuedTask> {
        for &v in &self.victims[w] {
            let s = &self.slots[v];
            if s.len.load(Ordering::Acquire) == 0 {
                continue;
            }
            let mut q = s.queue.lock();
            let Some(back) = q.back() else { continue };
            // Owner finishes the back task after everything queued (its own predicted load); we would take
            // `mine` from now.
            let mine = self.time_on(w, back.cost, back.cost_class);
            let owner = s.load_ns.load(Ordering::Relaxed) as f64 * 1e-9;
            if !may_steal(mine, owner, s.running.load(Ordering::Relaxed)) {
                continue;
            }
            let t = q.pop_back().expect("back exists");
            s.took(&t);
            return Some(t);
        }
        None
    }

    fn any_work_visible(&self, w: usize) -> bool {
        if self.slots[w].len.load(Ordering::Acquire) > 0 {
            return true;
        }
        self.cfg.steal && self.victims[w].iter().any(|&v| self.slots[v].len.load(Ordering::Acquire) > 0)
    }
}

/// The steal rule: a thief that would finish the victim's back task in `mine` seconds takes it from an owner with
/// `owner_queued` seconds of queued work if it would finish it sooner. A tie (within the whole nanoseconds the
/// loads are kept in) goes to the thief only while the owner is not running a task, i.e. may not be running at all:
/// behind a busy process such an owner started a lone queued task 3.8 ms late (measured), and comparing strictly
/// never stole it; an owner that is working keeps its own task and the weights it has in cache (stealing ties from
/// working owners made Char-RNN 1.5× slower in quiet runs).
fn may_steal(mine: f64, owner_queued: f64, owner_running: bool) -> bool {
    if (mine - owner_queued).abs() <= 1e-9 {
        !owner_running
    } else {
        mine < owner_queued
    }
}

/// The worker predicted to finish a task of `cost` first; on a tie, not the one on the caller's current CPU
/// (`caller_cpu`): the caller runs that worker's tasks of its job itself, so the other core takes the task.
fn least_loaded(sh: &Shared, cost: f64, cost_class: usize, extra: &[u64], caller_cpu: Option<usize>) -> usize {
    let mut best = (f64::INFINITY, true, 0);
    for (w, (slot, &ex)) in sh.slots.iter().zip(extra).enumerate() {
        let load = (slot.load_ns.load(Ordering::Relaxed) + ex) as f64 * 1e-9;
        let finish = load + sh.time_on(w, cost, cost_class);
        let shares = caller_cpu == Some(sh.topo.cores[w].cpu);
        if finish < best.0 || (finish == best.0 && best.1 && !shares) {
            best = (finish, shares, w);
        }
    }
    best.2
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

/// The CPU the calling thread is running on (None where the OS cannot tell).
fn current_cpu() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sched_getcpu takes no arguments and only returns a number (vDSO / rseq on current kernels).
        let c = unsafe { libc::sched_getcpu() };
        usize::try_from(c).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

fn run_inline(plan: &Plan, f: &TaskFn<'_>, sh: &Shared) -> Result<(), PoolError> {
    let (worker, cpu, class) = match CURRENT_WORKER.with(|c| c.get()) {
        (id, w) if id == sh.id => (w, Some(sh.topo.cores[w].cpu), sh.topo.cores[w].class),
        _ => (CALLER, None, 0),
    };
    // A nested job on a worker borrows a fresh scratch (the worker's own is in use by the outer task).
    let run_all = |scratch: &mut Scratch| {
        for (i, t) in plan.tasks.iter().enumerate() {
            let mut ctx = WorkerCtx { worker, cpu, class, scratch: &mut *scratch };
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(t, &mut ctx))) {
                return Err(PoolError::TaskPanicked { task: i, worker, message: panic_message(&*p) });
            }
        }
        Ok(())
    };
    if worker == CALLER {
        with_caller_scratch(run_all)
    } else {
        run_all(&mut Scratch::new())
    }
}

/// `f` with this calling thread's scratch, or a fresh one if it is in use further up the stack (a task that
/// itself runs a job).
fn with_caller_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    CALLER_SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::new()),
    })
}

/// Jobs predicted to run longer than this put the calling thread to sleep until `CALLER_WAKE_MARGIN_SECS` before
/// their predicted end (a condition-variable wake on this VM takes tens of µs, up to hundreds under load).
const CALLER_SLEEP_ABOVE_SECS: f64 = 1e-3;
const CALLER_WAKE_MARGIN_SECS: f64 = 300e-6;

fn worker_main(sh: Arc<Shared>, w: usize) {
    CURRENT_WORKER.with(|c| c.set((sh.id, w)));
    let core = sh.topo.cores[w].clone();
    if sh.cfg.pin && !pin_current_thread(core.cpu) {
        eprintln!("[asymo-ep] worker {w}: could not pin to CPU {} (running unpinned)", core.cpu);
    }
    let mut scratch = Scratch::new();
    let slot = &sh.slots[w];
    let mut idle_since: Option<Instant> = None;
    loop {
        let task = sh.pop_front_if(w, |_| true).map(|t| (t, Run::Own)).or_else(|| {
            if sh.cfg.steal {
                sh.steal(w).map(|t| (t, Run::Stolen))
            } else {
                None
            }
        });
        if let Some((qt, how)) = task {
            idle_since = None;
            execute(&sh, w, core.class, core.cpu, &mut scratch, qt, how);
            continue;
        }
        if sh.shutdown.load(Ordering::Acquire) {
            break;
        }
        let now = Instant::now();
        let since = *idle_since.get_or_insert(now);
        let prewake_until = Duration::from_nanos(sh.spin_until_ns.load(Ordering::Relaxed));
        let idle = now - since;
        // Only a worker measured at full speed keeps spinning through a run: one that shares its core with
        // another busy thread parks instead, so the OS scheduler treats it as interactive and runs it at once when
        // work arrives (a thread that stays runnable competes for its core slice by slice, milliseconds each).
        // Without adaptation there is no measurement, and every worker parks after `spin`.
        let in_run = sh.runs_active.load(Ordering::Relaxed) > 0
            && idle < sh.cfg.run_spin
            && sh.adapt.config().enabled
            && sh.adapt.live_speed(w) >= 0.8;
        if idle < sh.cfg.spin || in_run || sh.epoch.elapsed() < prewake_until {
            for _ in 0..64 {
                if sh.any_work_visible(w) {
                    break;
                }
                std::hint::spin_loop();
            }
            // Every core may host a worker, and the thread that submits the next job (ORT's, unpinned) needs a
            // core too: offer ours between spin rounds rather than holding it for the whole window.
            std::thread::yield_now();
            continue;
        }
        // Park. A push sets `notified` under this mutex after making its tasks visible, so either we see the
        // flag here or the notify reaches our wait.
        let mut n = slot.notified.lock();
        if !*n && !sh.shutdown.load(Ordering::Acquire) && slot.len.load(Ordering::Acquire) == 0 {
            slot.parks.fetch_add(1, Ordering::Relaxed);
            slot.wake.wait(&mut n);
        }
        *n = false;
        idle_since = None;
    }
}

/// Who runs a task of worker `w`'s queue.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    /// The worker, from its own queue.
    Own,
    /// The worker, stolen from another queue.
    Stolen,
    /// A calling thread on `w`'s core (it leaves the worker's `running` flag alone: the worker may be busy too).
    ByCaller,
}

fn execute(sh: &Shared, w: usize, class: usize, cpu: usize, scratch: &mut Scratch, qt: QueuedTask, how: Run) {
    let slot = &sh.slots[w];
    let job = &*qt.job;
    if !job.failed.load(Ordering::Relaxed) {
        // SAFETY: `remaining > 0` (this task is not finished), so `run` is still blocked and its borrows live.
        let (plan, f) = unsafe { (&*job.plan, &*job.func) };
        let task = &plan.tasks[qt.index];
        let t0 = Instant::now();
        let mark = how != Run::ByCaller;
        if mark {
            slot.running.store(true, Ordering::Relaxed);
        }
        let result = {
            let mut ctx = WorkerCtx { worker: w, cpu: Some(cpu), class, scratch: &mut *scratch };
            catch_unwind(AssertUnwindSafe(|| f(task, &mut ctx)))
        };
        let dt = t0.elapsed().as_secs_f64();
        if mark {
            slot.running.store(false, Ordering::Relaxed);
        }
        match result {
            Ok(()) => {
                let nominal = sh.nominal_on(w, qt.cost, qt.cost_class);
                job.work_ns[w].fetch_add((nominal * 1e9) as u64, Ordering::Relaxed);
                job.finish_ns[w].fetch_max(job.start.elapsed().as_nanos() as u64, Ordering::Relaxed);
                slot.predicted_ns.fetch_add((nominal * 1e9) as u64, Ordering::Relaxed);
            }
            Err(p) => {
                *scratch = Scratch::new(); // its state is unknown after a panic
                let mut e = job.error.lock();
                if e.is_none() {
                    *e = Some(PoolError::TaskPanicked { task: qt.index, worker: w, message: panic_message(&*p) });
                }
                job.failed.store(true, Ordering::Relaxed);
            }
        }
        slot.busy_ns.fetch_add((dt * 1e9) as u64, Ordering::Relaxed);
        slot.tasks.fetch_add(1, Ordering::Relaxed);
        if how == Run::Stolen {
            slot.stolen.fetch_add(1, Ordering::Relaxed);
        }
    }
    let job = qt.job;
    job.finish_one();
}

/// The process-wide pool registry: one live pool per configuration key; the registry holds only a `Weak`, so the
/// pool is dropped (workers joined) when its last user releases it. Asking with a different key creates a new
/// pool and makes it the shared one (the old one lives on until its users release it).
pub struct SharedRegistry<K, T> {
    slot: Mutex<Option<(K, std::sync::Weak<T>)>>,
}

impl<K: PartialEq + Clone, T> SharedRegistry<K, T> {
    pub const fn new() -> Self {
        SharedRegistry { slot: Mutex::new(None) }
    }

    /// The live instance for `key`, or a new one from `make`.
    pub fn get_or_try_init<E>(&self, key: &K, make: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E> {
        let mut s = self.slot.lock();
        if let Some((k, weak)) = s.as_ref() {
            if k == key {
                if let Some(t) = weak.upgrade() {
                    return Ok(t);
                }
            }
        }
        let t = Arc::new(make()?);
        *s = Some((key.clone(), Arc::downgrade(&t)));
        Ok(t)
    }

    /// The live instance, whatever its key.
    pub fn current(&self) -> Option<Arc<T>> {
        self.slot.lock().as_ref().and_then(|(_, w)| w.upgrade())
    }
}

impl<K: PartialEq + Clone, T> Default for SharedRegistry<K, T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asym::adapt::AdaptConfig;
    use crate::asym::cost::{CostModel, KernelKind};
    use crate::asym::partition::{make_plan, GemmProblem, PartitionConfig};
    use std::sync::atomic::AtomicU32;
    use std::time::Instant;

    fn topo2() -> Arc<Topology> {
        // The machine's CPUs as two workers (or one if only one CPU is usable).
        let t = Topology::detect(&Default::default()).unwrap();
        Arc::new(t)
    }

    fn pool(cfg: PoolConfig) -> Pool {
        let t = topo2();
        let adapt = Arc::new(Adapt::new(t.num_cores(), AdaptConfig::default()));
        Pool::new(t, cfg, adapt, vec![]).unwrap()
    }

    fn plan_for(pool: &Pool, m: usize, n: usize, k: usize, cfg: &PartitionConfig) -> Plan {
        let t = pool.topology();
        let cost = CostModel::from_capacities(t);
        make_plan(
            t,
            &cost,
            cfg,
            &vec![1.0; t.num_cores()],
            0,
            &GemmProblem::new(KernelKind::Gemm, 1, m, n, k).tile(4, 8),
        )
    }

    /// Many small jobs from 4 threads: every task of every job runs exactly once, nothing deadlocks.
    #[test]
    fn stress_many_jobs_from_four_threads() {
        let pool = Arc::new(pool(PoolConfig::default()));
        let cfg = PartitionConfig { min_task_secs: 1e-7, serial_below_secs: 1e-7, ..Default::default() };
        let plans: Vec<Plan> = [(64, 64, 64), (8, 512, 16), (100, 30, 7), (3, 1000, 50)]
            .iter()
            .map(|&(m, n, k)| plan_for(&pool, m, n, k, &cfg))
            .collect();
        assert!(plans.iter().all(|p| p.tasks.len() > 1));
        let plans = Arc::new(plans);
        let handles: Vec<_> = (0..4)
            .map(|tid| {
                let pool = pool.clone();
                let plans = plans.clone();
                std::thread::spawn(move || {
                    for j in 0..150 {
                        let plan = &plans[(tid + j) % plans.len()];
                        let counts: Vec<AtomicU32> = (0..plan.tasks.len()).map(|_| AtomicU32::new(0)).collect();
                        let base = plan.tasks.as_ptr() as usize;
                        pool.run(plan, &|t: &Task, ctx: &mut WorkerCtx<'_>| {
                            // The task's index from its address (tasks are borrowed from the plan).
                            let i = (t as *const Task as usize - base) / std::mem::size_of::<Task>();
                            counts[i].fetch_add(1, Ordering::Relaxed);
                            assert!(ctx.worker == CALLER || ctx.worker < 64);
                        })
                        .unwrap();
                        assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let stats = pool.stats();
        let total: u64 = stats.iter().map(|s| s.tasks).sum();
        assert!(total > 0);
    }

    #[test]
    fn panicking_task_is_reported_and_pool_survives() {
        let pool = pool(PoolConfig::default());
        let cfg = PartitionConfig { min_task_secs: 1e-7, serial_below_secs: 1e-7, ..Default::default() };
        let plan = plan_for(&pool, 64, 512, 64, &cfg);
        assert!(plan.tasks.len() > 2);
        let bad_col = plan.tasks[1].cols.start;
        let r = pool.run(&plan, &|t: &Task, _: &mut WorkerCtx<'_>| {
            if t.cols.start == bad_col {
                panic!("boom at {}", t.cols.start);
            }
        });
        match r {
            Err(PoolError::TaskPanicked { message, .. }) => assert!(message.contains("boom"), "{message}"),
            other => panic!("expected a panic report, got {other:?}"),
        }
        // Workers still alive: the next job runs all its tasks.
        let n = AtomicU32::new(0);
        pool.run(&plan, &|_: &Task, _: &mut WorkerCtx<'_>| {
            n.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(n.load(Ordering::Relaxed) as usize, plan.tasks.len());
    }

    #[test]
    fn clean_shutdown_under_load() {
        for _ in 0..3 {
            let pool = Arc::new(pool(PoolConfig::default()));
            let cfg = PartitionConfig { min_task_secs: 1e-7, serial_below_secs: 1e-7, ..Default::default() };
            let plan = Arc::new(plan_for(&pool, 32, 256, 32, &cfg));
            let stop = Arc::new(AtomicBool::new(false));
            let hs: Vec<_> = (0..3)
                .map(|_| {
                    let (pool, plan, stop) = (pool.clone(), plan.clone(), stop.clone());
                    std::thread::spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            pool.run(&plan, &|_: &Task, _: &mut WorkerCtx<'_>| std::hint::black_box(())).unwrap();
                        }
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(20));
            // Drop our handle while the others are mid-job; the last user's drop joins the workers.
            drop(pool);
            stop.store(true, Ordering::Relaxed);
            for h in hs {
                h.join().unwrap();
            }
        }
    }

    #[test]
    fn nested_and_inline_jobs() {
        let pool = Arc::new(pool(PoolConfig::default()));
        let cfg = PartitionConfig { min_task_secs: 1e-7, serial_below_secs: 1e-7, ..Default::default() };
        let outer = plan_for(&pool, 16, 128, 16, &cfg);
        let inner = plan_for(&pool, 16, 64, 16, &cfg);
        let n = AtomicU32::new(0);
        let p2 = pool.clone();
        pool.run(&outer, &|_: &Task, _: &mut WorkerCtx<'_>| {
            p2.run(&inner, &|_: &Task, ctx: &mut WorkerCtx<'_>| {
                assert_ne!(ctx.worker, CALLER, "nested tasks run on the worker");
                n.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        })
        .unwrap();
        assert_eq!(n.load(Ordering::Relaxed) as usize, outer.tasks.len() * inner.tasks.len());
        drop(p2);
        // A tiny single-task plan runs on the caller.
        let tiny = plan_for(&pool, 2, 2, 2, &PartitionConfig::default());
        assert_eq!(tiny.tasks.len(), 1);
        pool.run(&tiny, &|_: &Task, ctx: &mut WorkerCtx<'_>| assert_eq!(ctx.worker, CALLER)).unwrap();
    }

    #[test]
    fn no_steal_keeps_tasks_home_and_prewake_is_harmless() {
        let pool = pool(PoolConfig { steal: false, ..Default::default() });
        pool.prewake();
        let cfg = PartitionConfig { min_task_secs: 1e-7, serial_below_secs: 1e-7, ..Default::default() };
        let plan = plan_for(&pool, 64, 512, 64, &cfg);
        let wrong = AtomicU32::new(0);
        for _ in 0..20 {
            pool.run(&plan, &|t: &Task, ctx: &mut WorkerCtx<'_>| {
                if t.home != ctx.worker {
                    wrong.fetch_add(1, Ordering::Relaxed);
                }
            })
            .unwrap();
        }
        assert_eq!(wrong.load(Ordering::Relaxed), 0);
        assert!(pool.stats().iter().all(|s| s.stolen == 0));
    }

    /// A core 4× slower than the owner steals only tasks it would finish no later than the owner: with the owner
    /// blocked and 8 unit tasks queued behind it, the thief takes tasks only while ≥ 4 remain queued.
    #[test]
    fn slow_core_does_not_steal_what_it_would_finish_later() {
        let mask = crate::asym::topology::process_affinity().unwrap_or_default();
        let cpus: Vec<usize> = mask.iter().copied().take(2).collect();
        if cpus.len() < 2 {
            eprintln!("skipped: needs two CPUs");
            return;
        }
        let spec = format!("{}:1024,{}:256", cpus[0], cpus[1]);
        let topo = Arc::new(Topology::parse_override(&spec).unwrap());
        let adapt = Arc::new(Adapt::new(2, AdaptConfig { enabled: false, ..Default::default() }));
        // The calling thread must not run the owner's tasks itself: this test is about the workers.
        let cfg = PoolConfig { caller_helps: false, ..Default::default() };
        let pool = Pool::new(topo, cfg, adapt, vec![1.0, 0.25]).unwrap();
        let task = |i: usize| Task { batch: 0..1, rows: 0..1, cols: i..i + 1, k: 0..1, k_part: 0, home: 0, cost: 1e-3 };
        let plan = Plan {
            problem: GemmProblem::new(KernelKind::Gemm, 1, 1, 9, 1),
            axis: crate::asym::partition::Axis::N,
            tasks: (0..9).map(task).collect(),
            k_parts: 1,
            worker_share: vec![1.0, 0.0],
            predicted_secs: 9e-3,
            generation: 0,
        };
        let release = AtomicBool::new(false);
        let blocked = AtomicBool::new(false);
        let by_thief = AtomicU32::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                // Release the owner once the thief has stopped stealing (or after a generous timeout).
                let t0 = Instant::now();
                let mut last = (u32::MAX, Instant::now());
                while t0.elapsed() < Duration::from_secs(5) {
                    let n = by_thief.load(Ordering::Relaxed);
                    if n != last.0 {
                        last = (n, Instant::now());
                    } else if blocked.load(Ordering::Relaxed) && n >= 1 && last.1.elapsed() > Duration::from_millis(30)
                    {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                release.store(true, Ordering::Release);
            });
            pool.run(&plan, &|_t: &Task, ctx: &mut WorkerCtx<'_>| {
                if ctx.worker == 0 && !blocked.swap(true, Ordering::Relaxed) {
                    while !release.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                } else if ctx.worker == 1 {
                    by_thief.fetch_add(1, Ordering::Relaxed);
                }
            })
            .unwrap();
        });
        let n = by_thief.load(Ordering::Relaxed);
        eprintln!("thief ran {n} of 9 queued tasks");
        // 9 queued: the thief may take tasks while ≥ 4 remain, i.e. at most 6 (5 if the owner popped first).
        assert!((1..=6).contains(&n), "thief ran {n} tasks");
    }

    /// The calling thread, pinned to a worker's core, runs its job's tasks queued for that worker (and only
    /// those: with stealing off, the other worker's tasks stay with it); every task runs exactly once.
    #[test]
    fn caller_runs_the_tasks_of_its_own_core() {
        let pool = pool(PoolConfig { steal: false, ..Default::default() });
        if pool.workers() < 2 {
            eprintln!("skipped: needs two CPUs");
            return;
        }
        let cpu0 = pool.topology().cores[0].cpu;
        std::thread::scope(|s| {
            s.spawn(|| {
                if !pin_current_thread(cpu0) {
                    eprintln!("skipped: cannot pin");
                    return;
                }
                let me = std::thread::current().id();
                let task = |i: usize, home: usize| Task {
                    batch: 0..1,
                    rows: 0..1,
                    cols: i..i + 1,
                    k: 0..1,
                    k_part: 0,
                    home,
                    cost: 1e-4,
                };
                let plan = Plan {
                    problem: GemmProblem::new(KernelKind::Gemm, 1, 1, 64, 1),
                    axis: crate::asym::partition::Axis::N,
                    tasks: (0..64).map(|i| task(i, i % 2)).collect(),
                    k_parts: 1,
                    worker_share: vec![0.5, 0.5],
                    predicted_secs: 32e-4,
                    generation: 0,
                };
                let runs: Vec<AtomicU32> = (0..64).map(|_| AtomicU32::new(0)).collect();
                let (by_caller, wrong_core) = (AtomicU32::new(0), AtomicU32::new(0));
                pool.run(&plan, &|t: &Task, ctx: &mut WorkerCtx<'_>| {
                    runs[t.cols.start].fetch_add(1, Ordering::Relaxed);
                    if std::thread::current().id() == me {
                        by_caller.fetch_add(1, Ordering::Relaxed);
                        if t.home != 0 || ctx.worker != 0 {
                            wrong_core.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_micros(50));
                })
                .unwrap();
                assert!(runs.iter().all(|r| r.load(Ordering::Relaxed) == 1), "every task exactly once");
                assert_eq!(wrong_core.load(Ordering::Relaxed), 0, "the caller ran another core's task");
                assert!(by_caller.load(Ordering::Relaxed) >= 1, "the caller ran none of its core's tasks");
            });
        });
    }

    /// The steal rule, including the tie that the nanosecond-rounded queue loads turn into "the owner is faster".
    #[test]
    fn steal_rule_ties_and_rounding() {
        let c = 1e-3 / 3.0; // not a whole number of nanoseconds
        let queued = |x: f64| ((x * 1e9) as u64) as f64 * 1e-9; // as the queue keeps it
        assert!(may_steal(c, queued(c), false), "a tie with an owner that is not running is a steal");
        assert!(!may_steal(c, queued(c), true), "a working owner keeps a tie");
        assert!(may_steal(c, queued(2.0 * c), true), "strictly sooner is a steal");
        assert!(!may_steal(2.0 * c, queued(c), false), "strictly later is not");
    }

    #[test]
    fn registry_shares_and_releases() {
        static REG: SharedRegistry<u32, AtomicU32> = SharedRegistry::new();
        let a = REG.get_or_try_init::<()>(&1, || Ok(AtomicU32::new(7))).unwrap();
        let b = REG.get_or_try_init::<()>(&1, || Ok(AtomicU32::new(8))).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = REG.get_or_try_init::<()>(&2, || Ok(AtomicU32::new(9))).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        drop((a, b, c));
        assert!(REG.current().is_none());
    }
}
