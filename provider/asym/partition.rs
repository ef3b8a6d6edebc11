//! The two-level partitioner: one [`Plan`] per GEMM problem shape (cached), listing tasks with their home worker.
//!
//! A problem is `batch` independent GEMMs of `M × N × K` (e.g. a convolution per image and group). The work space
//! batch × M × N is cut along one **axis**: the batch index when there are many items, else N or M in units of the
//! kernel's NR / MR (whichever has more granules; N on ties, so each cluster packs only its own B panels).
//!
//! 1. **Processor level**: the axis is split between clusters in proportion to their predicted throughput for this
//!    shape (sum over the cluster's cores of `speed factor / predicted time`); each cluster's block is contiguous.
//! 2. **Core level**: each cluster's block is split between its cores in proportion to their throughput, each core's
//!    share contiguous and cut into tasks of one size for the whole plan: the fastest core gets up to
//!    `tasks_per_core` tasks, none predicted below `min_task_secs` (so a task amortizes queueing and wake-up), slower
//!    cores fewer tasks of the same size (same block shape everywhere: stealing moves like for like, and adaptation
//!    compares cores on identical blocks, so a core given less work does not look slower for running narrower
//!    blocks). All cuts are aligned to MR/NR. Problems too small for that use fewer cores (the fastest);
//!    problems below `serial_below_secs` are one task with home [`ANY_WORKER`] (the pool picks the least-loaded queue).
//!
//! **K split** (GEMV-like shapes only: fewer output granules than workers, K ≥ `k_split_min`): K is cut into
//! `k_parts` fixed chunks (multiples of 64, independent of the speed factors), each task computes the whole
//! (small) output over one chunk into partial buffer `k_part`, and the caller sums the partials in order
//! 0..k_parts ([`reduce_k_parts`]) before applying the epilogue: the result does not depend on which core ran what.
//!
//! Plans are deterministic functions of (topology, cost model, config, speed factors, problem).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;

use parking_lot::Mutex;

use super::cost::{CostModel, KernelKind, TaskShape};
use super::topology::Topology;

/// `batch` GEMMs of `m × n × k`, computed by a kernel with register tile `mr × nr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GemmProblem {
    pub kind: KernelKind,
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub mr: usize,
    pub nr: usize,
}

impl GemmProblem {
    /// A problem with tile 1 × 1 (no alignment); set the kernel's tile with [`GemmProblem::tile`].
    pub fn new(kind: KernelKind, batch: usize, m: usize, n: usize, k: usize) -> Self {
        GemmProblem { kind, batch, m, n, k, mr: 1, nr: 1 }
    }
    pub fn tile(self, mr: usize, nr: usize) -> Self {
        GemmProblem { mr: mr.max(1), nr: nr.max(1), ..self }
    }
    fn shape(&self, m: usize, n: usize, k: usize) -> TaskShape {
        TaskShape::new(self.kind, m, n, k)
    }
}

/// Which split the partitioner uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Schedule {
    /// Cost-model proportional split (the paper), modulated by adaptation.
    Asymo,
    /// Equal split between the cores, no cost model, no adaptation (ablation baseline).
    Equal,
}

/// Partitioner knobs.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionConfig {
    pub schedule: Schedule,
    /// Smallest predicted task (seconds): below this, fewer tasks / fewer cores.
    pub min_task_secs: f64,
    /// Most tasks per core (more = better balance and stealing, more overhead).
    pub tasks_per_core: usize,
    /// A problem predicted faster than this on the fastest core is one task (20 µs: a 40 µs depthwise layer split
    /// in two runs in ~25 µs on two cores, measured; below that the hand-off costs more than it saves).
    pub serial_below_secs: f64,
    /// Smallest K for a K split.
    pub k_split_min: usize,
    /// Log each new plan to stderr.
    pub log_plan: bool,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        PartitionConfig {
            schedule: Schedule::Asymo,
            min_task_secs: 15e-6,
            tasks_per_core: 4,
            serial_below_secs: 20e-6,
            k_split_min: 1024,
            log_plan: false,
        }
    }
}

/// Home of a task that any worker may take (the pool dispatches it to the least-loaded queue).
pub const ANY_WORKER: usize = usize::MAX;

/// One task: compute the outputs `rows × cols` of GEMMs `batch`, over depth `k` (the full K unless the plan splits K).
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub batch: Range<usize>,
    pub rows: Range<usize>,
    pub cols: Range<usize>,
    pub k: Range<usize>,
    /// Partial-sum buffer index when the plan splits K (`plan.k_parts > 1`), else 0.
    pub k_part: usize,
    /// Worker index (into the topology's cores) whose queue gets the task, or [`ANY_WORKER`].
    pub home: usize,
    /// Predicted seconds on the home core's class at nominal speed (no adaptation factor): adaptation compares it
    /// with the measured time.
    pub cost: f64,
}

impl Task {
    pub fn shape(&self, kind: KernelKind) -> TaskShape {
        TaskShape::new(kind, self.rows.len(), self.cols.len(), self.k.len())
    }
}

/// The axis a plan cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Axis {
    Single,
    Batch,
    M,
    N,
    K,
}

/// A partition of one problem into tasks.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub problem: GemmProblem,
    pub axis: Axis,
    pub tasks: Vec<Task>,
    /// Number of K partial buffers (1 = no K split).
    pub k_parts: usize,
    /// Fraction of the axis given to each worker (in topology order); sums to 1.
    pub worker_share: Vec<f64>,
    /// Predicted makespan in seconds (with the speed factors used).
    pub predicted_secs: f64,
    /// Speed-factor generation the plan was made with.
    pub generation: u64,
}

impl Plan {
    /// A one-line-per-worker description (the `log_plan` output).
    pub fn describe(&self) -> String {
        let p = &self.problem;
        let mut s = format!(
            "plan {} batch={} m={} n={} k={} tile={}x{}: axis {:?}, {} tasks, k_parts={}, predicted {:.1} µs, gen {}",
            p.kind.as_str(),
            p.batch,
            p.m,
            p.n,
            p.k,
            p.mr,
            p.nr,
            self.axis,
            self.tasks.len(),
            self.k_parts,
            self.predicted_secs * 1e6,
            self.generation
        );
        for (w, share) in self.worker_share.iter().enumerate() {
            let mine: Vec<&Task> = self.tasks.iter().filter(|t| t.home == w).collect();
            if mine.is_empty() {
                continue;
            }
            let cost: f64 = mine.iter().map(|t| t.cost).sum();
            let _ = write!(s, "\n  worker {w}: share {:.3}, {} tasks, {:.1} µs nominal", share, mine.len(), cost * 1e6);
        }
        let any = self.tasks.iter().filter(|t| t.home == ANY_WORKER).count();
        if any > 0 {
            let _ = write!(s, "\n  any worker: {any} task(s)");
        }
        s
    }
}

/// Sum K partials in order `0..k_parts` into `out` (deterministic: the order never depends on the schedule).
/// `partials` holds `k_parts` consecutive buffers of `out.len()` elements.
pub fn reduce_k_parts(partials: &[f32], k_parts: usize, out: &mut [f32]) {
    assert_eq!(partials.len(), k_parts * out.len(), "partials must hold k_parts buffers of out.len()");
    let len = out.len();
    out.copy_from_slice(&partials[..len]);
    for p in 1..k_parts {
        for (o, &x) in out.iter_mut().zip(&partials[p * len..(p + 1) * len]) {
            *o += x;
        }
    }
}

/// Make a plan. `speeds[w]` is worker w's speed factor (1.0 = nominal for its class; from adaptation).
pub fn make_plan(
    topo: &Topology,
    cost: &CostModel,
    cfg: &PartitionConfig,
    speeds: &[f64],
    generation: u64,
    p: &GemmProblem,
) -> Plan {
    let nw = topo.cores.len();
    assert!(nw > 0, "topology without cores");
    let speed = |w: usize| -> f64 {
        match cfg.schedule {
            Schedule::Equal => 1.0,
            Schedule::Asymo => speeds.get(w).copied().filter(|s| s.is_finite() && *s > 0.0).unwrap_or(1.0),
        }
    };
    let class_of = |w: usize| topo.cores[w].class;
    let mut plan = Plan {
        problem: *p,
        axis: Axis::Single,
        tasks: Vec::new(),
        k_parts: 1,
        worker_share: vec![0.0; nw],
        predicted_secs: 0.0,
        generation,
    };
    if p.batch == 0 || p.m == 0 || p.n == 0 {
        return plan;
    }
    // Full-problem predicted time per worker, with its speed factor; Equal ignores classes.
    let full = p.shape(p.m, p.n, p.k);
    let full_time = |w: usize| -> f64 {
        let base = match cfg.schedule {
            Schedule::Equal => cost.predict(0, &full),
            Schedule::Asymo => cost.predict(class_of(w), &full),
        };
        base * p.batch as f64 / speed(w)
    };
    let times: Vec<f64> = (0..nw).map(full_time).collect();
    // Workers by decreasing throughput (ties: lower index first): the order in which cores are enlisted.
    let mut by_speed: Vec<usize> = (0..nw).collect();
    by_speed.sort_by(|&a, &b| times[a].total_cmp(&times[b]).then(a.cmp(&b)));
    let fastest = by_speed[0];
    let nominal_cost = |w: usize, t: &Task| -> f64 {
        let cls = if w == ANY_WORKER { 0 } else { class_of(w) };
        cost.predict(cls, &t.shape(p.kind)) * t.batch.len() as f64
    };

    let gm = p.m.div_ceil(p.mr);
    let gn = p.n.div_ceil(p.nr);
    let t1 = times[fastest];
    // Serial: tiny problems, or nothing to split.
    // K is split only for GEMV shapes (M = 1 or N = 1), whose kernels reduce partial sums deterministically.
    let gemv_like = p.kind == KernelKind::Gemv && gm.max(gn) * p.batch < 2 * nw && p.k >= cfg.k_split_min;
    if t1 < cfg.serial_below_secs || (p.batch == 1 && gm == 1 && gn == 1 && !gemv_like) {
        let mut t =
            Task { batch: 0..p.batch, rows: 0..p.m, cols: 0..p.n, k: 0..p.k, k_part: 0, home: ANY_WORKER, cost: 0.0 };
        t.cost = nominal_cost(ANY_WORKER, &t);
        plan.predicted_secs = t1;
        plan.worker_share[fastest] = 1.0;
        plan.tasks.push(t);
        return plan;
    }
    // How many workers: enough that each gets at least one min-size task.
    let mut used = nw;
    while used > 1 {
        let thr: f64 = by_speed[..used].iter().map(|&w| 1.0 / times[w]).sum();
        if 1.0 / thr >= cfg.min_task_secs {
            break;
        }
        used -= 1;
    }
    let used_set: Vec<usize> = {
        let mut v = by_speed[..used].to_vec();
        v.sort_unstable();
        v
    };
    let thr: Vec<f64> = (0..nw).map(|w| if used_set.contains(&w) { 1.0 / times[w] } else { 0.0 }).collect();
    let total_thr: f64 = thr.iter().sum();
    let makespan = 1.0 / total_thr;
    let target_task = (makespan / cfg.tasks_per_core.max(1) as f64).max(cfg.min_task_secs);

    if gemv_like && used > 1 {
        // K split: fixed chunks, multiples of 64, about tasks_per_core per used worker.
        let want = (used * cfg.tasks_per_core.max(1)).max(2);
        let chunk = p.k.div_ceil(want).div_ceil(64).max(2) * 64;
        let k_parts = p.k.div_ceil(chunk);
        let counts = apportion(k_parts, &thr);
        let mut part = 0;
        for (w, &cnt) in counts.iter().enumerate() {
            for _ in 0..cnt {
                let k = part * chunk..((part + 1) * chunk).min(p.k);
                let mut t = Task { batch: 0..p.batch, rows: 0..p.m, cols: 0..p.n, k, k_part: part, home: w, cost: 0.0 };
                t.cost = nominal_cost(w, &t);
                plan.tasks.push(t);
                part += 1;
            }
            plan.worker_share[w] = cnt as f64 / k_parts as f64;
        }
        plan.axis = Axis::K;
        plan.k_parts = k_parts;
        plan.predicted_secs = predicted_makespan(&plan, &speeds_vec(nw, &speed));
        return plan;
    }

    // Axis and granules.
    let (axis, granules, unit, extent) = if p.batch >= 4 * used || (gm == 1 && gn == 1) {
        (Axis::Batch, p.batch, 1, p.batch)
    } else if gn >= gm {
        (Axis::N, gn, p.nr, p.n)
    } else {
        (Axis::M, gm, p.mr, p.m)
    };
    plan.axis = axis;
    let range_of = |g: Range<usize>| (g.start * unit).min(extent)..(g.end * unit).min(extent);

    // Processor level: contiguous granule ranges per cluster, in cluster order (fastest class first);
    // core level: contiguous shares per core within its cluster's block.
    let cluster_thr: Vec<f64> = (0..topo.clusters.len())
        .map(|c| (0..nw).filter(|&w| topo.cores[w].cluster == c).map(|w| thr[w]).sum())
        .collect();
    let cluster_g = apportion(granules, &cluster_thr);
    let mut order: Vec<(usize, usize)> = Vec::new(); // (worker, granules) in axis order
    for (c, &gc) in cluster_g.iter().enumerate() {
        let members: Vec<usize> = (0..nw).filter(|&w| topo.cores[w].cluster == c).collect();
        let mthr: Vec<f64> = members.iter().map(|&w| thr[w]).collect();
        for (&w, gw) in members.iter().zip(apportion(gc, &mthr)) {
            order.push((w, gw));
        }
    }
    // One task size for the whole plan (so every core runs blocks of the same shape, and adaptation compares
    // like with like): the fastest core's share cut into up to `tasks_per_core` tasks of ≥ `min_task_secs`.
    // Slower cores get fewer tasks of that size.
    let (fw, fg) = order
        .iter()
        .copied()
        .filter(|&(_, g)| g > 0)
        .min_by(|a, b| times[a.0].total_cmp(&times[b.0]).then(a.0.cmp(&b.0)))
        .expect("some worker has granules");
    let f_time = fg as f64 / granules as f64 * times[fw];
    let f_tasks = ((f_time / target_task).round() as usize).clamp(1, cfg.tasks_per_core.max(1)).min(fg);
    let task_g = fg.div_ceil(f_tasks);
    let mut g0 = 0;
    for (w, gw) in order {
        if gw == 0 {
            continue;
        }
        let ntasks = gw.div_ceil(task_g);
        for j in 0..ntasks {
            let a = g0 + gw * j / ntasks;
            let b = g0 + gw * (j + 1) / ntasks;
            let r = range_of(a..b);
            let (batch, rows, cols) = match axis {
                Axis::Batch => (r, 0..p.m, 0..p.n),
                Axis::M => (0..p.batch, r, 0..p.n),
                _ => (0..p.batch, 0..p.m, r),
            };
            let mut t = Task { batch, rows, cols, k: 0..p.k, k_part: 0, home: w, cost: 0.0 };
            t.cost = nominal_cost(w, &t);
            plan.tasks.push(t);
        }
        plan.worker_share[w] = gw as f64 / granules as f64;
        g0 += gw;
    }
    debug_assert_eq!(g0, granules);
    plan.predicted_secs = predicted_makespan(&plan, &speeds_vec(nw, &speed));
    plan
}

fn speeds_vec(nw: usize, speed: &dyn Fn(usize) -> f64) -> Vec<f64> {
    (0..nw).map(speed).collect()
}

fn predicted_makespan(plan: &Plan, speeds: &[f64]) -> f64 {
    let mut per = vec![0.0; speeds.len()];
    for t in &plan.tasks {
        if t.home < per.len() {
            per[t.home] += t.cost / speeds[t.home];
        }
    }
    per.into_iter().fold(0.0, f64::max)
}

/// Split `total` integer units in proportion to `weights` (largest remainder; ties to the lower index).
pub fn apportion(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().filter(|w| w.is_finite() && **w > 0.0).sum();
    let mut out = vec![0usize; weights.len()];
    if weights.is_empty() || total == 0 {
        return out;
    }
    if sum <= 0.0 {
        out[0] = total;
        return out;
    }
    let mut rem: Vec<(f64, usize)> = Vec::with_capacity(weights.len());
    let mut given = 0;
    for (i, &w) in weights.iter().enumerate() {
        let w = if w.is_finite() && w > 0.0 { w } else { 0.0 };
        let exact = total as f64 * w / sum;
        let fl = exact.floor() as usize;
        out[i] = fl;
        given += fl;
        if w > 0.0 {
            rem.push((exact - fl as f64, i));
        }
    }
    rem.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in rem.iter().cycle().take(total.saturating_sub(given)) {
        out[i] += 1;
    }
    out
}

/// Plans cached per (problem, speed generation). Entries of older generations are dropped when a newer one arrives.
pub struct Partitioner {
    topo: Arc<Topology>,
    cost: Arc<CostModel>,
    cfg: PartitionConfig,
    cache: Mutex<PlanCache>,
}

struct PlanCache {
    generation: u64,
    map: HashMap<GemmProblem, Arc<Plan>>,
}

/// Most plans kept per generation (a model has at most a few hundred distinct GEMM shapes).
const PLAN_CACHE_CAP: usize = 4096;

impl Partitioner {
    pub fn new(topo: Arc<Topology>, cost: Arc<CostModel>, cfg: PartitionConfig) -> Self {
        Partitioner { topo, cost, cfg, cache: Mutex::new(PlanCache { generation: 0, map: HashMap::new() }) }
    }

    pub fn config(&self) -> &PartitionConfig {
        &self.cfg
    }
    pub fn topology(&self) -> &Arc<Topology> {
        &self.topo
    }
    pub fn cost_model(&self) -> &Arc<CostModel> {
        &self.cost
    }

    /// The plan for `problem` under speed factors `speeds` of generation `generation` (cached).
    pub fn plan(&self, problem: &GemmProblem, generation: u64, speeds: &[f64]) -> Arc<Plan> {
        // Equal ignores the speed factors: one generation.
        let generation = if self.cfg.schedule == Schedule::Equal { 0 } else { generation };
        {
            let mut c = self.cache.lock();
            if generation > c.generation {
                c.generation = generation;
                c.map.clear();
            }
            if c.generation == generation {
                if let Some(p) = c.map.get(problem) {
                    return p.clone();
                }
            }
        }
        let plan = Arc::new(make_plan(&self.topo, &self.cost, &self.cfg, speeds, generation, problem));
        if self.cfg.log_plan {
            eprintln!("[asymo-ep] {}", plan.describe());
        }
        let mut c = self.cache.lock();
        if c.generation == generation {
            if c.map.len() >= PLAN_CACHE_CAP {
                c.map.clear();
            }
            c.map.entry(*problem).or_insert_with(|| plan.clone());
        }
        plan
    }

    /// Number of cached plans (tests, logs).
    pub fn cached_plans(&self) -> usize {
        self.cache.lock().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift for seeded, dependency-free randomized tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn range(&mut self, lo: usize, hi: usize) -> usize {
            lo + (self.next() % (hi - lo + 1) as u64) as usize
        }
    }

    fn topos() -> Vec<Topology> {
        vec![
            Topology::parse_override("0-1:1024").unwrap(),
            Topology::parse_override("0-3:1024,4-7:462").unwrap(),
            Topology::parse_override("7:1024,4-6:871,0-3:378").unwrap(),
            Topology::parse_override("0:1024").unwrap(),
        ]
    }

    /// Every output element of every batch item is covered exactly once per K part, and K parts tile K:
    /// all tasks in bounds, no two tasks of one K part overlap, and their volumes add up to the whole.
    fn check_coverage(plan: &Plan) {
        let p = &plan.problem;
        let mut kcover: Vec<Vec<Range<usize>>> = vec![Vec::new(); plan.k_parts];
        let mut volume = 0usize;
        for (i, t) in plan.tasks.iter().enumerate() {
            assert!(t.batch.end <= p.batch && t.rows.end <= p.m && t.cols.end <= p.n && t.k.end <= p.k);
            assert!(!t.rows.is_empty() && !t.cols.is_empty() && !t.batch.is_empty());
            if plan.k_parts == 1 {
                assert_eq!(t.k, 0..p.k);
            }
            kcover[t.k_part].push(t.k.clone());
            volume += t.batch.len() * t.rows.len() * t.cols.len();
            let meet = |a: &Range<usize>, b: &Range<usize>| a.start < b.end && b.start < a.end;
            for u in &plan.tasks[..i] {
                let overlap = u.k_part == t.k_part
                    && meet(&u.batch, &t.batch)
                    && meet(&u.rows, &t.rows)
                    && meet(&u.cols, &t.cols);
                assert!(!overlap, "tasks overlap: {u:?} {t:?}");
            }
            // Aligned to the tile except at the matrix edge.
            if plan.axis == Axis::N {
                assert!(t.cols.start % p.nr == 0 && (t.cols.end % p.nr == 0 || t.cols.end == p.n));
            }
            if plan.axis == Axis::M {
                assert!(t.rows.start % p.mr == 0 && (t.rows.end % p.mr == 0 || t.rows.end == p.m));
            }
        }
        assert_eq!(volume, plan.k_parts * p.batch * p.m * p.n, "{}", plan.describe());
        if plan.k_parts > 1 {
            let mut ks: Vec<Range<usize>> = kcover.into_iter().flatten().collect();
            ks.sort_by_key(|r| r.start);
            let mut at = 0;
            for r in ks {
                assert_eq!(r.start, at);
                at = r.end;
            }
            assert_eq!(at, p.k);
        }
    }

    #[test]
    fn coverage_check_counts_elements() {
        // The rectangle check agrees with an element count on small plans.
        let topo = Topology::parse_override("0-3:1024,4-7:462").unwrap();
        let cost = CostModel::from_capacities(&topo);
        let p = GemmProblem::new(KernelKind::Gemm, 3, 37, 211, 700).tile(6, 16);
        let plan =
            make_plan(&topo, &cost, &PartitionConfig { min_task_secs: 1e-7, ..Default::default() }, &[1.0; 8], 0, &p);
        assert!(plan.tasks.len() > 8);
        let mut count = vec![0u32; p.batch * p.m * p.n];
        for t in &plan.tasks {
            for b in t.batch.clone() {
                for i in t.rows.clone() {
                    for j in t.cols.clone() {
                        count[(b * p.m + i) * p.n + j] += 1;
                    }
                }
            }
        }
        assert!(count.iter().all(|&c| c == 1));
        check_coverage(&plan);
    }

    fn random_problem(r: &mut Rng) -> GemmProblem {
        let kind = [KernelKind::Gemm, KernelKind::Conv, KernelKind::Gemv][r.range(0, 2)];
        let batch = if r.range(0, 3) == 0 { r.range(1, 64) } else { 1 };
        let m = if r.range(0, 4) == 0 { 1 } else { r.range(1, 300) };
        let n = if r.range(0, 4) == 0 { r.range(1, 8) } else { r.range(1, 4000) };
        let k = if r.range(0, 3) == 0 { r.range(1024, 8000) } else { r.range(1, 600) };
        GemmProblem::new(kind, batch, m, n, k).tile([1, 4, 6, 8][r.range(0, 3)], [1, 8, 16][r.range(0, 2)])
    }

    #[test]
    fn every_element_once_randomized() {
        let mut r = Rng(0x9E3779B97F4A7C15);
        for topo in topos() {
            let cost = CostModel::from_capacities(&topo);
            for _ in 0..150 {
                let p = random_problem(&mut r);
                let speeds: Vec<f64> = (0..topo.num_cores()).map(|_| 0.2 + (r.range(0, 80) as f64) / 100.0).collect();
                for schedule in [Schedule::Asymo, Schedule::Equal] {
                    let cfg = PartitionConfig { schedule, ..Default::default() };
                    let plan = make_plan(&topo, &cost, &cfg, &speeds, 1, &p);
                    check_coverage(&plan);
                    assert!(plan.tasks.iter().all(|t| t.home == ANY_WORKER || t.home < topo.num_cores()));
                    assert!(plan.tasks.iter().all(|t| t.cost > 0.0));
                    // Deterministic.
                    assert_eq!(plan, make_plan(&topo, &cost, &cfg, &speeds, 1, &p));
                }
            }
        }
    }

    #[test]
    fn proportions_follow_the_model() {
        // Kirin-like 4+4 with capacities 1024 / 462: big cores get ≈ 1024/(1024+462) of the columns.
        let topo = Topology::parse_override("0-3:1024,4-7:462").unwrap();
        let cost = CostModel::from_capacities(&topo);
        let p = GemmProblem::new(KernelKind::Conv, 1, 256, 3136, 1152).tile(6, 16);
        let plan = make_plan(&topo, &cost, &PartitionConfig::default(), &[1.0; 8], 0, &p);
        assert_eq!(plan.axis, Axis::N);
        let big: f64 = plan.worker_share[..4].iter().sum();
        let want = 1024.0 / (1024.0 + 462.0);
        assert!((big - want).abs() < 0.02, "big share {big} want {want}\n{}", plan.describe());
        // Each cluster's block is contiguous: big cores' columns come first, then little ones'.
        let max_big = plan.tasks.iter().filter(|t| t.home < 4).map(|t| t.cols.end).max().unwrap();
        let min_little = plan.tasks.iter().filter(|t| t.home >= 4).map(|t| t.cols.start).min().unwrap();
        assert_eq!(max_big, min_little);
        // Several tasks per core, and equal schedule ignores capacities.
        assert!(plan.tasks.len() >= 16, "{}", plan.describe());
        let eq = make_plan(
            &topo,
            &cost,
            &PartitionConfig { schedule: Schedule::Equal, ..Default::default() },
            &[1.0; 8],
            0,
            &p,
        );
        let big: f64 = eq.worker_share[..4].iter().sum();
        assert!((big - 0.5).abs() < 0.02, "{big}");
    }

    #[test]
    fn speed_factors_shift_work() {
        // Two equal cores, core 1 at half speed: core 1 gets about a third.
        let topo = Topology::parse_override("0-1:1024").unwrap();
        let cost = CostModel::from_capacities(&topo);
        let p = GemmProblem::new(KernelKind::Gemm, 1, 512, 512, 512).tile(6, 16);
        let plan = make_plan(&topo, &cost, &PartitionConfig::default(), &[1.0, 0.5], 3, &p);
        assert!((plan.worker_share[1] - 1.0 / 3.0).abs() < 0.04, "{}", plan.describe());
        // Same block size everywhere: the slow core gets fewer tasks, not narrower ones.
        let widths: Vec<usize> = plan.tasks.iter().map(|t| t.cols.len()).collect();
        let (lo, hi) = (widths.iter().min().unwrap(), widths.iter().max().unwrap());
        assert!(hi - lo <= 2 * p.nr, "{widths:?}");
        let count = |w: usize| plan.tasks.iter().filter(|t| t.home == w).count();
        assert!(count(0) > count(1), "{}", plan.describe());
    }

    #[test]
    fn small_problems_stay_small() {
        let topo = Topology::parse_override("0-3:1024,4-7:462").unwrap();
        let cost = CostModel::from_capacities(&topo);
        // 2·8·8·8 flops: one task for any worker.
        let plan = make_plan(
            &topo,
            &cost,
            &PartitionConfig::default(),
            &[1.0; 8],
            0,
            &GemmProblem::new(KernelKind::Gemm, 1, 8, 8, 8),
        );
        assert_eq!(plan.tasks.len(), 1);
        assert_eq!(plan.tasks[0].home, ANY_WORKER);
        // Medium: no task below the minimum (except when the whole share of a core is smaller).
        let p = GemmProblem::new(KernelKind::Gemm, 1, 64, 256, 64).tile(4, 8); // 2 Mflop ≈ 100 µs at 20 GFLOP/s
        let cfg = PartitionConfig::default();
        let plan = make_plan(&topo, &cost, &cfg, &[1.0; 8], 0, &p);
        // No more tasks than the work holds minimum-size tasks.
        let work: f64 = plan.tasks.iter().map(|t| t.cost).sum();
        assert!(plan.tasks.len() > 1, "{}", plan.describe());
        assert!(plan.tasks.len() as f64 <= work / cfg.min_task_secs + 1.0, "{}", plan.describe());
        for t in &plan.tasks {
            assert!(t.cost >= cfg.min_task_secs * 0.5, "{}", plan.describe());
        }
    }

    #[test]
    fn gemv_splits_k() {
        let topo = Topology::parse_override("0-1:1024").unwrap();
        let cost = CostModel::from_capacities(&topo);
        let p = GemmProblem::new(KernelKind::Gemv, 1, 1, 16, 200_000).tile(6, 16);
        let plan = make_plan(&topo, &cost, &PartitionConfig::default(), &[1.0, 1.0], 0, &p);
        assert_eq!(plan.axis, Axis::K);
        assert!(plan.k_parts >= 4);
        check_coverage(&plan);
        // K chunks do not depend on the speed factors: same partial sums, same result.
        let slow = make_plan(&topo, &cost, &PartitionConfig::default(), &[1.0, 0.3], 0, &p);
        let ks = |pl: &Plan| {
            let mut v: Vec<_> = pl.tasks.iter().map(|t| (t.k_part, t.k.clone())).collect();
            v.sort_by_key(|x| x.0);
            v
        };
        assert_eq!(ks(&plan), ks(&slow));
        assert!(slow.tasks.iter().filter(|t| t.home == 0).count() > slow.tasks.iter().filter(|t| t.home == 1).count());
        let partials = [1.0f32, 2.0, 10.0, 20.0, 100.0, 200.0];
        let mut out = [0.0f32; 2];
        reduce_k_parts(&partials, 3, &mut out);
        assert_eq!(out, [111.0, 222.0]);
    }

    #[test]
    fn batch_axis_for_many_small_gemms() {
        let topo = Topology::parse_override("0-1:1024").unwrap();
        let cost = CostModel::from_capacities(&topo);
        // Depthwise-like: 256 groups of 1 × 3136 × 9.
        let p = GemmProblem::new(KernelKind::Conv, 256, 1, 3136, 9).tile(6, 16);
        let plan = make_plan(&topo, &cost, &PartitionConfig::default(), &[1.0, 1.0], 0, &p);
        assert_eq!(plan.axis, Axis::Batch);
        check_coverage(&plan);
    }

    #[test]
    fn apportion_is_exact_and_proportional() {
        assert_eq!(apportion(10, &[1.0, 1.0]), vec![5, 5]);
        assert_eq!(apportion(10, &[2.0, 1.0]), vec![7, 3]);
        assert_eq!(apportion(3, &[0.0, 1.0, 0.0]), vec![0, 3, 0]);
        assert_eq!(apportion(5, &[0.0, 0.0]), vec![5, 0]);
        let mut r = Rng(7);
        for _ in 0..200 {
            let n = r.range(1, 6);
            let w: Vec<f64> = (0..n).map(|_| r.range(0, 10) as f64).collect();
            let t = r.range(0, 1000);
            assert_eq!(apportion(t, &w).iter().sum::<usize>(), t);
        }
    }

    #[test]
    fn cache_by_generation() {
        let topo = Arc::new(Topology::parse_override("0-1:1024").unwrap());
        let cost = Arc::new(CostModel::from_capacities(&topo));
        let part = Partitioner::new(topo, cost, PartitionConfig::default());
        let p = GemmProblem::new(KernelKind::Gemm, 1, 256, 256, 256).tile(6, 16);
        let a = part.plan(&p, 1, &[1.0, 1.0]);
        let b = part.plan(&p, 1, &[1.0, 1.0]);
        assert!(Arc::ptr_eq(&a, &b));
        let c = part.plan(&p, 2, &[1.0, 0.5]);
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(c.worker_share[1] < a.worker_share[1]);
        assert_eq!(part.cached_plans(), 1);
        // A late request with an old generation is answered but not cached.
        let d = part.plan(&p, 1, &[1.0, 1.0]);
        assert_eq!(d.generation, 1);
        assert!(Arc::ptr_eq(&part.plan(&p, 2, &[1.0, 0.5]), &c));
    }
}
