//! The process-wide runtime shared by every EP instance (session): the executor that runs GEMM jobs and the per-run
//! hooks. One per process, created on first use and dropped when the last EP releases it, so several sessions never
//! oversubscribe the cores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::ops::{Executor, SerialExecutor};

/// Shared state of all sessions in this process.
#[derive(Debug, Default)]
pub struct Runtime {
    executor: SerialExecutor,
    active_runs: AtomicUsize,
}

static RUNTIME: Mutex<Weak<Runtime>> = Mutex::new(Weak::new());

impl Runtime {
    /// The process-wide runtime, created if no EP holds one.
    pub fn acquire() -> Arc<Runtime> {
        let mut slot = RUNTIME.lock();
        if let Some(rt) = slot.upgrade() {
            return rt;
        }
        let rt = Arc::new(Runtime::default());
        *slot = Arc::downgrade(&rt);
        rt
    }

    pub fn executor(&self) -> &dyn Executor {
        &self.executor
    }

    /// Called at the start of every session Run (OnRunStart), concurrently from several threads.
    pub fn run_start(&self) {
        self.active_runs.fetch_add(1, Ordering::AcqRel);
    }

    /// Called at the end of every session Run (OnRunEnd), also when the run failed.
    pub fn run_end(&self) {
        // Saturating: a stray end (ORT calling OnRunEnd without OnRunStart) must not wrap the counter.
        let _ = self.active_runs.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Runs currently between run_start and run_end.
    pub fn active_runs(&self) -> usize {
        self.active_runs.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_runtime_while_held_and_hooks_balance() {
        let a = Runtime::acquire();
        let b = Runtime::acquire();
        assert!(Arc::ptr_eq(&a, &b));
        a.run_start();
        b.run_start();
        assert_eq!(a.active_runs(), 2);
        a.run_end();
        a.run_end();
        a.run_end();
        assert_eq!(a.active_runs(), 0);
    }
}
