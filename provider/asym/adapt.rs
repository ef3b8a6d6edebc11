//! Adaptation: measured per-core throughput feeding back into the split ratios.
//!
//! After each task, its worker records the task's nominal predicted time (cost model, no speed factor) and the
//! measured time ([`Adapt::record`]: two relaxed atomic adds, no lock). [`Adapt::update`] (called by the pool after
//! each job, rate-limited by the window size) folds each worker's window — once it holds at least
//! `min_window_secs` of measured time — into an EWMA of `Σ predicted / Σ measured`, a ratio of sums, so the rare
//! long task preempted by the OS counts by its weight. Relative speeds are these EWMAs divided by the largest.
//!
//! Stability: the partitioner sees only the **published** factors, quantized to `quantum` steps and republished
//! only when some core's relative speed moves more than `deadband` from its published value (hysteresis), so small
//! fluctuations never change plans; each publication bumps the generation (the plan cache key). The pool's steal
//! rule reads the live (unquantized) speeds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Adaptation knobs.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptConfig {
    pub enabled: bool,
    /// EWMA weight of a new window (0..1].
    pub alpha: f64,
    /// Measured task time a worker's window must hold before it counts.
    pub min_window_secs: f64,
    /// Republish when a relative speed moves more than this (absolute, speeds are in (0, 1]).
    pub deadband: f64,
    /// Published speeds are multiples of this.
    pub quantum: f64,
    /// Lowest relative speed (a core is never starved entirely: it keeps being measured).
    pub floor: f64,
}

impl Default for AdaptConfig {
    fn default() -> Self {
        AdaptConfig {
            enabled: true,
            alpha: 0.25,
            min_window_secs: 20e-3,
            deadband: 0.15,
            quantum: 1.0 / 32.0,
            floor: 0.1,
        }
    }
}

#[repr(align(128))]
#[derive(Default)]
struct Window {
    predicted_ns: AtomicU64,
    actual_ns: AtomicU64,
    /// Live relative speed (f64 bits), written by `update`.
    live: AtomicU64,
}

struct State {
    ewma: Vec<f64>,
    published: Arc<[f64]>,
    generation: u64,
}

/// Per-worker measured speed, shared by the pool (writer) and the partitioner (reader).
pub struct Adapt {
    cfg: AdaptConfig,
    windows: Box<[Window]>,
    state: Mutex<State>,
    /// Mirror of `state.generation` for a lock-free check.
    generation: AtomicU64,
}

impl Adapt {
    pub fn new(workers: usize, cfg: AdaptConfig) -> Self {
        let windows: Box<[Window]> =
            (0..workers).map(|_| Window { live: AtomicU64::new(1f64.to_bits()), ..Default::default() }).collect();
        Adapt {
            cfg,
            windows,
            state: Mutex::new(State { ewma: vec![0.0; workers], published: vec![1.0; workers].into(), generation: 0 }),
            generation: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &AdaptConfig {
        &self.cfg
    }

    pub fn workers(&self) -> usize {
        self.windows.len()
    }

    /// Record one task run by `worker`: `nominal_secs` predicted at nominal speed for its class, `actual_secs`
    /// measured. Called by the worker itself after each task.
    #[inline]
    pub fn record(&self, worker: usize, nominal_secs: f64, actual_secs: f64) {
        if !self.cfg.enabled {
            return;
        }
        if let Some(w) = self.windows.get(worker) {
            // Relaxed: the sums are only read by `update`, which tolerates a task landing in the next window.
            w.predicted_ns.fetch_add((nominal_secs * 1e9) as u64, Ordering::Relaxed);
            w.actual_ns.fetch_add((actual_secs * 1e9).max(1.0) as u64, Ordering::Relaxed);
        }
    }

    /// Fold full windows into the EWMAs and republish if a speed left the deadband. Returns true if a new
    /// generation was published. Cheap when no window is full; never blocks (skips if another thread updates).
    pub fn update(&self) -> bool {
        if !self.cfg.enabled {
            return false;
        }
        let min_ns = (self.cfg.min_window_secs * 1e9) as u64;
        if !self.windows.iter().any(|w| w.actual_ns.load(Ordering::Relaxed) >= min_ns) {
            return false;
        }
        let Some(mut st) = self.state.try_lock() else { return false };
        let mut changed = false;
        for (i, w) in self.windows.iter().enumerate() {
            if w.actual_ns.load(Ordering::Relaxed) < min_ns {
                continue;
            }
            let actual = w.actual_ns.swap(0, Ordering::Relaxed) as f64;
            let pred = w.predicted_ns.swap(0, Ordering::Relaxed) as f64;
            if actual <= 0.0 || pred <= 0.0 {
                continue;
            }
            let r = pred / actual;
            st.ewma[i] = if st.ewma[i] == 0.0 { r } else { (1.0 - self.cfg.alpha) * st.ewma[i] + self.cfg.alpha * r };
            changed = true;
        }
        if !changed {
            return false;
        }
        let top = st.ewma.iter().copied().fold(0.0, f64::max);
        if top <= 0.0 {
            return false;
        }
        let rel: Vec<f64> = st
            .ewma
            .iter()
            .zip(st.published.iter())
            .map(|(&e, &p)| if e > 0.0 { (e / top).clamp(self.cfg.floor, 1.0) } else { p })
            .collect();
        for (w, &r) in self.windows.iter().zip(&rel) {
            w.live.store(r.to_bits(), Ordering::Relaxed);
        }
        let moved = rel.iter().zip(st.published.iter()).any(|(r, p)| (r - p).abs() > self.cfg.deadband);
        if !moved {
            return false;
        }
        let q = self.cfg.quantum;
        st.published = rel.iter().map(|&r| ((r / q).round() * q).clamp(self.cfg.floor, 1.0)).collect();
        st.generation += 1;
        // Release: a reader that sees the new generation number and then locks `state` sees the new factors.
        self.generation.store(st.generation, Ordering::Release);
        true
    }

    /// The published speed factors and their generation (what plans are made with).
    pub fn snapshot(&self) -> (u64, Arc<[f64]>) {
        let st = self.state.lock();
        (st.generation, st.published.clone())
    }

    /// The current published generation, without locking.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The live relative speed of `worker` (1.0 if unknown or adaptation is off).
    #[inline]
    pub fn live_speed(&self, worker: usize) -> f64 {
        self.windows.get(worker).map(|w| f64::from_bits(w.live.load(Ordering::Relaxed))).unwrap_or(1.0)
    }

    /// Forget all measurements (e.g. after the interfering load went away and a user wants a fresh start).
    pub fn reset(&self) {
        let mut st = self.state.lock();
        for w in self.windows.iter() {
            w.actual_ns.store(0, Ordering::Relaxed);
            w.predicted_ns.store(0, Ordering::Relaxed);
            w.live.store(1f64.to_bits(), Ordering::Relaxed);
        }
        st.ewma.iter_mut().for_each(|e| *e = 0.0);
        st.published = vec![1.0; self.windows.len()].into();
        st.generation += 1;
        self.generation.store(st.generation, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `windows` windows of tasks to two workers, worker 1 running at `slow` of worker 0's speed, with a
    /// deterministic ±`jitter` wobble; return the published factors after each update.
    fn drive(a: &Adapt, slow: f64, jitter: f64, windows: usize) -> Vec<Arc<[f64]>> {
        let mut out = Vec::new();
        for i in 0..windows {
            let wob = if i % 2 == 0 { 1.0 + jitter } else { 1.0 - jitter };
            // 25 ms of tasks per window (the default window holds 20 ms).
            for _ in 0..500 {
                a.record(0, 50e-6, 50e-6 * wob);
                a.record(1, 50e-6, 50e-6 / slow);
            }
            a.update();
            out.push(a.snapshot().1);
        }
        out
    }

    #[test]
    fn converges_to_the_measured_ratio() {
        let a = Adapt::new(2, AdaptConfig::default());
        let hist = drive(&a, 0.5, 0.0, 12);
        let last = hist.last().unwrap();
        assert_eq!(last[0], 1.0);
        // Published values move in steps larger than the deadband: within it of the measured ratio.
        assert!((last[1] - 0.5).abs() <= AdaptConfig::default().deadband + 1e-9, "{last:?}");
        // Within a few windows it has moved most of the way.
        assert!(hist[2][1] < 0.75, "{hist:?}");
        assert!((a.live_speed(1) - 0.5).abs() < 0.02);
    }

    #[test]
    fn jitter_inside_the_deadband_does_not_republish() {
        let a = Adapt::new(2, AdaptConfig::default());
        drive(&a, 1.0, 0.0, 3);
        let g = a.generation();
        // ±5% wobble of worker 0 (relative speeds move ≤ ~0.05 < deadband): no new plans.
        drive(&a, 1.0, 0.05, 40);
        assert_eq!(a.generation(), g);
    }

    #[test]
    fn no_oscillation_under_a_steady_load() {
        let a = Adapt::new(2, AdaptConfig::default());
        drive(&a, 0.6, 0.03, 60);
        let g_mid = a.generation();
        drive(&a, 0.6, 0.03, 60);
        assert_eq!(a.generation(), g_mid, "republished under a steady load");
        assert!(g_mid <= 4, "too many publications: {g_mid}");
    }

    #[test]
    fn disabled_is_inert() {
        let a = Adapt::new(2, AdaptConfig { enabled: false, ..Default::default() });
        drive(&a, 0.3, 0.0, 10);
        assert_eq!(a.generation(), 0);
        assert_eq!(&*a.snapshot().1, &[1.0, 1.0]);
    }

    #[test]
    fn floor_and_recovery() {
        let a = Adapt::new(2, AdaptConfig::default());
        drive(&a, 0.02, 0.0, 10);
        assert_eq!(a.snapshot().1[1], 0.1);
        // The load goes away: back to ≈ 1 within a few windows.
        let hist = drive(&a, 1.0, 0.0, 12);
        assert!(hist.last().unwrap()[1] >= 1.0 - AdaptConfig::default().deadband, "{hist:?}");
    }
}
