//! Utilization-clamp hints: `sched_setattr(SCHED_FLAG_UTIL_CLAMP_MIN|MAX)` on our own worker threads.
//!
//! With schedutil (Android, recent Linux) the frequency follows the utilization of the tasks on a CPU, roughly
//! `f = 1.25 · f_max · util / 1024`; a thread's `util_min` clamp lifts that floor while the thread runs, its
//! `util_max` caps it. This needs no root on kernels built with `CONFIG_UCLAMP_TASK`, and a clamp vanishes with its
//! thread, so there is nothing to restore after a crash. Threads register their tid (and, when pinned, their CPU so
//! the clamp can follow that CPU's cluster target).

use std::io;
use std::sync::Arc;

use super::{ClusterInfo, Level};

/// The two syscalls, behind a trait so the backend logic is testable without kernel support.
pub(crate) trait SchedOps: Send + Sync {
    /// `Ok(())` when util clamps can be set on this kernel; otherwise why not.
    fn probe(&self) -> Result<(), String>;
    /// Current (util_min, util_max) of a thread.
    fn get(&self, tid: i32) -> io::Result<(u32, u32)>;
    /// Set (util_min, util_max) of a thread, keeping its policy and priority.
    fn set(&self, tid: i32, min: u32, max: u32) -> io::Result<()>;
}

const SCHED_FLAG_KEEP_ALL: u64 = 0x08 | 0x10;
const SCHED_FLAG_UTIL_CLAMP_MIN: u64 = 0x20;
const SCHED_FLAG_UTIL_CLAMP_MAX: u64 = 0x40;
pub(crate) const UCLAMP_SCALE: u32 = 1024;

/// `struct sched_attr` with the util clamp fields (SCHED_ATTR_SIZE_VER1 = 56 bytes).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
    sched_util_min: u32,
    sched_util_max: u32,
}

/// The real syscalls.
pub(crate) struct KernelSched;

impl KernelSched {
    fn getattr(tid: i32) -> io::Result<SchedAttr> {
        let mut a = SchedAttr::default();
        // SAFETY: `a` is a valid, writable sched_attr of the size we pass; flags must be 0.
        let r = unsafe {
            libc::syscall(libc::SYS_sched_getattr, tid, &mut a as *mut SchedAttr, size_of::<SchedAttr>() as u32, 0u32)
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(a)
    }

    fn setattr(tid: i32, min: u32, max: u32) -> io::Result<()> {
        let a = SchedAttr {
            size: size_of::<SchedAttr>() as u32,
            sched_flags: SCHED_FLAG_KEEP_ALL | SCHED_FLAG_UTIL_CLAMP_MIN | SCHED_FLAG_UTIL_CLAMP_MAX,
            sched_util_min: min,
            sched_util_max: max,
            ..SchedAttr::default()
        };
        // SAFETY: `a` is a valid sched_attr whose `size` field matches its layout; flags must be 0.
        let r = unsafe { libc::syscall(libc::SYS_sched_setattr, tid, &a as *const SchedAttr, 0u32) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl SchedOps for KernelSched {
    fn probe(&self) -> Result<(), String> {
        let a = Self::getattr(0).map_err(|e| format!("sched_getattr failed: {e}"))?;
        if (a.size as usize) < size_of::<SchedAttr>() {
            return Err("the kernel's sched_attr has no utilization clamp fields".into());
        }
        // Setting the current values back is a no-op that tells whether the kernel has uclamp at all.
        Self::setattr(0, a.sched_util_min, a.sched_util_max).map_err(|e| match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ENOSYS) => {
                format!("the kernel has no utilization clamping (sched_setattr: {e})")
            }
            _ => format!("sched_setattr with a utilization clamp failed: {e}"),
        })
    }

    fn get(&self, tid: i32) -> io::Result<(u32, u32)> {
        Self::getattr(tid).map(|a| (a.sched_util_min, a.sched_util_max))
    }

    fn set(&self, tid: i32, min: u32, max: u32) -> io::Result<()> {
        Self::setattr(tid, min, max)
    }
}

struct Thread {
    tid: i32,
    cpu: Option<usize>,
    orig: (u32, u32),
    cur: (u32, u32),
}

pub(crate) struct Uclamp {
    ops: Arc<dyn SchedOps>,
    /// Cluster descriptions (read-only cpufreq) for mapping frequencies to utilization; may be empty.
    pub(crate) clusters: Vec<ClusterInfo>,
    threads: Vec<Thread>,
    desired: Vec<Option<Level>>,
    /// Errors to log (once each, by the governor).
    pub(crate) errors: Vec<String>,
}

/// Utilization that makes schedutil pick at least `khz` on a cluster whose top is `fmax`: util = f·1024 / (1.25·fmax).
pub(crate) fn util_for(khz: u32, fmax: u32) -> u32 {
    if fmax == 0 || khz >= fmax {
        return UCLAMP_SCALE;
    }
    let u = (khz as u64 * UCLAMP_SCALE as u64 * 4).div_ceil(fmax as u64 * 5);
    (u as u32).min(UCLAMP_SCALE)
}

impl Uclamp {
    pub(crate) fn new(ops: Arc<dyn SchedOps>, clusters: Vec<ClusterInfo>) -> Uclamp {
        let n = clusters.len().max(1);
        Uclamp { ops, clusters, threads: Vec::new(), desired: vec![None; n], errors: Vec::new() }
    }

    /// Number of cluster slots targets are expressed in (at least 1: "all CPUs" when no cluster is known).
    pub(crate) fn slots(&self) -> usize {
        self.desired.len()
    }

    fn clamp_for(&self, cpu: Option<usize>, orig: (u32, u32)) -> (u32, u32) {
        let to_util = |slot: usize, l: Level| -> (u32, u32) {
            let fmax = self.clusters.get(slot).map(|c| c.cpuinfo_max.max(c.max_khz)).unwrap_or(0);
            let min = util_for(l.floor, fmax);
            let max = match l.cap {
                Some(c) => util_for(c, fmax).max(min),
                None => orig.1.max(min),
            };
            (min, max)
        };
        let slot = cpu.and_then(|c| self.clusters.iter().position(|k| k.cpus.contains(&c)));
        match slot {
            Some(s) => self.desired[s].map(|l| to_util(s, l)).unwrap_or(orig),
            // Unknown CPU: the highest request over all clusters.
            None => self.desired.iter().enumerate().filter_map(|(s, l)| l.map(|l| to_util(s, l))).max().unwrap_or(orig),
        }
    }

    fn sync_thread(&mut self, i: usize) -> bool {
        let t = &self.threads[i];
        let want = self.clamp_for(t.cpu, t.orig);
        if want == t.cur {
            return true;
        }
        match self.ops.set(t.tid, want.0, want.1) {
            Ok(()) => {
                self.threads[i].cur = want;
                true
            }
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => false, // the thread is gone
            Err(e) => {
                self.errors.push(format!("uclamp on thread {}: {e}", t.tid));
                true
            }
        }
    }

    pub(crate) fn apply(&mut self, desired: &[Option<Level>]) {
        if desired == self.desired.as_slice() {
            return;
        }
        self.desired.clear();
        self.desired.extend_from_slice(desired);
        let mut i = 0;
        while i < self.threads.len() {
            if self.sync_thread(i) {
                i += 1;
            } else {
                self.threads.swap_remove(i);
            }
        }
    }

    pub(crate) fn register(&mut self, tid: i32, cpu: Option<usize>) {
        if self.threads.iter().any(|t| t.tid == tid) {
            return;
        }
        let orig = match self.ops.get(tid) {
            Ok(o) => o,
            Err(e) => {
                self.errors.push(format!("uclamp: cannot read thread {tid}: {e}"));
                return;
            }
        };
        self.threads.push(Thread { tid, cpu, orig, cur: orig });
        let i = self.threads.len() - 1;
        if !self.sync_thread(i) {
            self.threads.pop();
        }
    }

    pub(crate) fn unregister(&mut self, tid: i32) {
        if let Some(i) = self.threads.iter().position(|t| t.tid == tid) {
            let t = self.threads.swap_remove(i);
            if t.cur != t.orig {
                let _ = self.ops.set(t.tid, t.orig.0, t.orig.1);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn thread_count(&self) -> usize {
        self.threads.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn util_mapping() {
        assert_eq!(util_for(2_000_000, 2_000_000), 1024);
        assert_eq!(util_for(3_000_000, 2_000_000), 1024);
        assert_eq!(util_for(1_000_000, 2_000_000), 410); // ceil(1024 · 0.5 / 1.25)
        assert_eq!(util_for(1, 0), 1024, "unknown top frequency: ask for everything");
    }

    /// On this kernel the probe must either succeed or explain itself; it never panics or changes anything.
    #[test]
    fn kernel_probe_is_clean() {
        let before = KernelSched.get(0).ok();
        match KernelSched.probe() {
            Ok(()) => {}
            Err(why) => assert!(!why.is_empty()),
        }
        assert_eq!(KernelSched.get(0).ok(), before);
    }
}
