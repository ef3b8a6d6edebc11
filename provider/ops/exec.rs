//! How ops hand their work to the machine: a batch of independent jobs, run by an [`Executor`].
//!
//! An op lowers one Run into jobs (a batched MatMul into one GEMM job per batch matrix, a convolution into one per
//! image and group, a depthwise convolution into one depthwise job per image) and submits them together, so the
//! scheduler sees all the work of the node at once.

use std::cell::RefCell;

use parking_lot::Mutex;

use crate::asym::cost::KernelKind;
use crate::asym::partition::{GemmProblem, Plan, Task};
use crate::asym::Runtime as AsymRuntime;
use crate::kernels::{
    depthwise_conv, depthwise_nhwc, gemm_block, gemv_partial, gemv_reduce, gemv_shape, tile_info, AOperand, BOperand,
    CacheSizes, ConvGeometry, DwNhwc, FusedOp, GemvShape, MatMut, Scratch,
};

use super::{Error, Result};

/// One GEMM: `c = epilogue(a · b)` with `a: M×k`, `b: k×N`, `c: M×N` (M, N from `c`).
#[derive(Clone, Debug)]
pub struct GemmJob<'a> {
    pub a: AOperand<'a>,
    pub b: BOperand<'a>,
    pub c: MatMut<'a>,
    pub k: usize,
    pub epilogue: Vec<FusedOp<'a>>,
}

impl GemmJob<'_> {
    pub fn m(&self) -> usize {
        self.c.rows
    }
    pub fn n(&self) -> usize {
        self.c.cols
    }
}

/// One image of a depthwise convolution (`group = C_in`, `C_out = C_in · multiplier`): `out` is `C_out × Π
/// out_spatial`; the epilogue follows the bias.
#[derive(Clone, Debug)]
pub struct DepthwiseJob<'a> {
    pub input: &'a [f32],
    pub weights: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub geometry: &'a ConvGeometry,
    pub multiplier: usize,
    pub out: MatMut<'a>,
    pub epilogue: Vec<FusedOp<'a>>,
}

impl DepthwiseJob<'_> {
    fn run(&self, channels: std::ops::Range<usize>, scratch: &mut Scratch) {
        depthwise_conv(
            self.input,
            self.weights,
            self.bias,
            self.geometry,
            self.multiplier,
            self.out,
            channels,
            &self.epilogue,
            scratch,
        );
    }
}

/// One image of a channels-last depthwise convolution: `out` is `Π out_spatial × C_out` (a row per pixel).
#[derive(Clone, Debug)]
pub struct DwNhwcJob<'a> {
    pub dw: DwNhwc<'a>,
    pub out: MatMut<'a>,
    pub epilogue: Vec<FusedOp<'a>>,
}

impl DwNhwcJob<'_> {
    fn run(&self, pixels: std::ops::Range<usize>, scratch: &mut Scratch) {
        depthwise_nhwc(&self.dw, self.out, pixels, 0..self.out.cols, &self.epilogue, scratch);
    }
}

/// An output buffer shared by the tasks of one `split_rows` run, each of which writes only its own (image, rows)
/// elements through raw pointers (their runs may interleave, so no task may hold a `&mut` slice of another's).
#[derive(Clone, Copy)]
pub(super) struct SharedOut(*mut f32);

impl SharedOut {
    pub(super) fn new(y: &mut [f32]) -> Self {
        SharedOut(y.as_mut_ptr())
    }

    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: a SharedOut only carries the address of a buffer the op borrows mutably for the whole split_rows call;
// the tasks it is shared with write disjoint elements of it (split_rows hands each (image, rows) out once).
unsafe impl Send for SharedOut {}
// SAFETY: as above.
unsafe impl Sync for SharedOut {}

/// Runs batches of jobs to completion. Called concurrently from several Run calls.
pub trait Executor: Sync {
    fn run(&self, jobs: &[GemmJob<'_>]) -> Result<()>;

    /// `body(image, rows, scratch)` over `rows` output rows of each of `batch` images, each row `cols` values
    /// computed from about `taps` inputs apiece (depthwise convolution, pooling, layout moves: priced as depthwise
    /// work); every (image, row) exactly once.
    fn split_rows(
        &self,
        batch: usize,
        rows: usize,
        cols: usize,
        taps: usize,
        body: &(dyn Fn(usize, std::ops::Range<usize>, &mut Scratch) + Sync),
    ) -> Result<()>;

    /// Depthwise jobs (one per image): whole output planes, channels split.
    fn depthwise(&self, jobs: &[DepthwiseJob<'_>]) -> Result<()> {
        let Some(first) = jobs.first() else { return Ok(()) };
        let taps = first.geometry.kernel.iter().product();
        self.split_rows(jobs.len(), first.out.rows, first.out.cols, taps, &|b, r, s| jobs[b].run(r, s))
    }

    /// Channels-last depthwise jobs (one per image): each pixel a contiguous row of all its channels, pixels split.
    fn depthwise_nhwc(&self, jobs: &[DwNhwcJob<'_>]) -> Result<()> {
        let Some(first) = jobs.first() else { return Ok(()) };
        let taps = first.dw.geometry.kernel.iter().product();
        self.split_rows(jobs.len(), first.out.rows, first.out.cols, taps, &|b, r, s| jobs[b].run(r, s))
    }
}

/// Runs every job on the calling thread. The reference executor.
#[derive(Debug, Default, Clone, Copy)]
pub struct SerialExecutor;

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

impl Executor for SerialExecutor {
    fn run(&self, jobs: &[GemmJob<'_>]) -> Result<()> {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            for job in jobs {
                gemm_block(job.a, job.b, job.c, job.k, 0..job.m(), 0..job.n(), &job.epilogue, &mut s);
            }
        });
        Ok(())
    }

    fn split_rows(
        &self,
        batch: usize,
        rows: usize,
        _cols: usize,
        _taps: usize,
        body: &(dyn Fn(usize, std::ops::Range<usize>, &mut Scratch) + Sync),
    ) -> Result<()> {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            (0..batch).for_each(|b| body(b, 0..rows, &mut s));
        });
        Ok(())
    }
}

/// The AsyMo runtime runs a batch by asking the partitioner for a plan of the whole batch (cached per shape) and
/// handing its tasks to the pinned per-core pool; the calling thread sleeps until they are done.
impl Executor for AsymRuntime {
    fn run(&self, jobs: &[GemmJob<'_>]) -> Result<()> {
        let Some(first) = jobs.first() else { return Ok(()) };
        let (m, n, k) = (first.m(), first.n(), first.k);
        if jobs.iter().any(|j| (j.m(), j.n(), j.k) != (m, n, k)) {
            // Ops submit uniform batches; anything else runs one plan per job.
            return jobs.iter().try_for_each(|j| Executor::run(self, std::slice::from_ref(j)));
        }
        let kind = match (first.a, first.b) {
            (_, BOperand::Im2col(_)) | (AOperand::Im2colNhwc(_), _) => KernelKind::Conv,
            _ if gemv_shape(m, n).is_some() => KernelKind::Gemv,
            _ => KernelKind::Gemm,
        };
        let tile = tile_info();
        let (pmr, pnr) = match first.a {
            // Channel-vectorized convolution: cut along its channels or its pixels (`plan_t`).
            AOperand::PackedT(wt) => plan_t(m, n, k, wt.nr(), tile.nr),
            _ => (plan_mr(first, tile.mr, tile.nr), tile.nr),
        };
        let plan = self.plan(&GemmProblem::new(kind, jobs.len(), m, n, k).tile(pmr, pnr));
        if plan.k_parts > 1 {
            return run_k_split(self, &plan, jobs);
        }
        // Tasks of this call read the same inputs: a worker running several of them (a convolution split along
        // output channels) prepares each convolution window once.
        let token = next_job_token();
        run_plan(self, &plan, &|task, scratch| {
            scratch.set_job(token);
            for job in &jobs[task.batch.clone()] {
                gemm_block(job.a, job.b, job.c, job.k, task.rows.clone(), task.cols.clone(), &job.epilogue, scratch);
            }
            scratch.set_job(0);
        })
    }

    fn split_rows(
        &self,
        batch: usize,
        rows: usize,
        cols: usize,
        taps: usize,
        body: &(dyn Fn(usize, std::ops::Range<usize>, &mut Scratch) + Sync),
    ) -> Result<()> {
        if batch == 0 || rows == 0 {
            return Ok(());
        }
        // Rows only are split, each row (a plane, a pixel's channels) one tile.
        let problem = GemmProblem::new(KernelKind::Depthwise, batch, rows, cols, taps.max(1)).tile(1, cols.max(1));
        let plan = self.plan(&problem);
        run_plan(self, &plan, &|task, scratch| {
            for b in task.batch.clone() {
                body(b, task.rows.clone(), scratch);
            }
        })
    }
}

/// The row granule the partitioner cuts M with. A pre-packed A (convolution weights) that fits in half of L2
/// costs nothing to share between column blocks, while every row block re-packs (or re-prepares) the whole B: such
/// jobs are cut along N only (granule = all of M) when N has enough granules for every core to get several tasks.
/// Larger weights stay splittable along M, so each task streams only its own rows of them.
fn plan_mr(job: &GemmJob<'_>, mr: usize, nr: usize) -> usize {
    let (m, n, k) = (job.m(), job.n(), job.k);
    if matches!(job.a, AOperand::Packed(_)) && !matches!(job.b, BOperand::Packed(_)) && cut_columns_only(m, n, k, nr) {
        m.next_multiple_of(mr)
    } else {
        mr
    }
}

/// The granules (rows, columns) the partitioner cuts a channel-vectorized convolution with. Its tasks each prepare
/// the window of their own pixels and stream the weights of their own channels: large weights are cut along the
/// channels (granule NR, the pixels in one block), while weights that fit in half of L2 cost little to share, and
/// a large map is cut along its pixels instead, so no two tasks prepare the same window (VGG-16 on two cores:
/// its 224² layers had each core copy the whole window for its half of the channels).
fn plan_t(m: usize, n: usize, k: usize, lanes: usize, nr: usize) -> (usize, usize) {
    let m_packed = m.next_multiple_of(lanes);
    if cut_columns_only(m_packed, n, k, nr) {
        (m_packed, nr)
    } else {
        (lanes, n.max(1))
    }
}

/// Whether a job whose `m × k` weights fit in half of L2 (so sharing them between column blocks costs little) has
/// at least 8 column granules of `nr`: then it is cut along its columns only.
fn cut_columns_only(m: usize, n: usize, k: usize, nr: usize) -> bool {
    m * k * std::mem::size_of::<f32>() <= CacheSizes::host().l2 / 2 && n.div_ceil(nr) >= 8
}

/// A token no other job of this process has had (for [`Scratch::set_job`]).
fn next_job_token() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn run_plan(rt: &AsymRuntime, plan: &Plan, body: &(dyn Fn(&Task, &mut Scratch) + Sync)) -> Result<()> {
    AsymRuntime::run(rt, plan, &|task, ctx| body(task, ctx.scratch))
        .map_err(|e| Error::fail(format!("worker pool: {e}")))
}

/// GEMV-like jobs with K split across workers: each task sums its K chunk into its own partial buffer; the partials
/// are then added in K order (the same order every run, so results are deterministic) and the epilogue applied.
fn run_k_split(rt: &AsymRuntime, plan: &Plan, jobs: &[GemmJob<'_>]) -> Result<()> {
    let (m, n) = (jobs[0].m(), jobs[0].n());
    let outputs = match gemv_shape(m, n) {
        Some(GemvShape::Row) => n,
        Some(GemvShape::Col) => m,
        None => return Err(Error::fail(format!("internal: K split planned for a {m}×{n} GEMM"))),
    };
    // partials[batch][k_part]: written by exactly one task each.
    let partials: Vec<Vec<Mutex<Vec<f32>>>> =
        jobs.iter().map(|_| (0..plan.k_parts).map(|_| Mutex::new(vec![0.0; outputs])).collect()).collect();
    run_plan(rt, plan, &|task, scratch| {
        for b in task.batch.clone() {
            let job = &jobs[b];
            let mut part = partials[b][task.k_part].lock();
            gemv_partial(job.a, job.b, job.k, 0..outputs, task.k.clone(), &mut part, scratch);
        }
    })?;
    for (job, parts) in jobs.iter().zip(&partials) {
        let guards: Vec<_> = parts.iter().map(|p| p.lock()).collect();
        let slices: Vec<&[f32]> = guards.iter().map(|g| g.as_slice()).collect();
        gemv_reduce(&slices, job.c, 0..outputs, &job.epilogue);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asym::AsymConfig;
    use crate::kernels::{MatRef, PackedB};
    use crate::ops::test_util::{assert_close, Lcg};

    fn runtime() -> Option<std::sync::Arc<AsymRuntime>> {
        // Two equal workers (needs CPUs 0 and 1 in the affinity mask; skipped otherwise).
        let cfg = AsymConfig::from_options([("schedule", "equal"), ("topology", "0:1024,1:1024")]).ok()?;
        AsymRuntime::shared(&cfg).ok()
    }

    #[test]
    fn gemv_k_split_is_exact_and_deterministic() {
        let Some(rt) = runtime() else { return };
        let (k, n) = (1 << 17, 8);
        let mut rng = Lcg(5);
        let (a, b) = (rng.vec(k), rng.vec(k * n));
        let packed = PackedB::pack(MatRef::row_major(&b, k, n));
        let bias = rng.vec(n);
        let want: Vec<f32> =
            (0..n).map(|j| (0..k).map(|p| a[p] as f64 * b[p * n + j] as f64).sum::<f64>() as f32 + bias[j]).collect();
        let tile = tile_info();
        let plan = rt.plan(&GemmProblem::new(KernelKind::Gemv, 1, 1, n, k).tile(tile.mr, tile.nr));
        assert!(plan.k_parts > 1, "expected a K split: {}", plan.describe());
        let mut first: Option<Vec<f32>> = None;
        for _ in 0..3 {
            let mut y = vec![f32::NAN; n];
            let job = GemmJob {
                a: AOperand::View(MatRef::row_major(&a, 1, k)),
                b: BOperand::Packed(&packed),
                c: MatMut::row_major(&mut y, 1, n),
                k,
                epilogue: vec![FusedOp::ColBias(&bias)],
            };
            Executor::run(&*rt, &[job]).unwrap();
            assert_close(&y, &want);
            match &first {
                None => first = Some(y),
                Some(f) => assert_eq!(f, &y, "K-split results differ between runs"),
            }
        }
    }
}
