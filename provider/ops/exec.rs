//! How ops hand their work to the machine: a batch of independent GEMM jobs, run by an [`Executor`].
//!
//! An op lowers one Run into jobs (a batched MatMul into one job per batch matrix, a convolution into one per image
//! and group) and submits them together, so the scheduler sees all the work of the node at once.

use std::cell::RefCell;

use crate::asym::cost::KernelKind;
use crate::asym::partition::GemmProblem;
use crate::asym::Runtime as AsymRuntime;
use crate::kernels::{gemm_block, tile_info, AOperand, BOperand, FusedOp, MatMut, Scratch};

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
    pub fn flops(&self) -> f64 {
        2.0 * self.m() as f64 * self.n() as f64 * self.k as f64
    }
}

/// Runs batches of GEMM jobs to completion. Called concurrently from several Run calls.
pub trait Executor: Sync {
    fn run(&self, jobs: &[GemmJob<'_>]) -> Result<()>;
}

/// Runs every job on the calling thread. The reference executor (and the `threads=1` path).
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
        let kind = match first.b {
            BOperand::Im2col(_) => KernelKind::Conv,
            _ if m == 1 || n == 1 => KernelKind::Gemv,
            _ => KernelKind::Gemm,
        };
        let tile = tile_info();
        let plan = self.plan(&GemmProblem::new(kind, jobs.len(), m, n, k).tile(tile.mr, tile.nr));
        if plan.k_parts > 1 {
            return Err(Error::fail(format!("internal: plan splits K in {} parts, not supported here", plan.k_parts)));
        }
        AsymRuntime::run(self, &plan, &|task, ctx| {
            for job in &jobs[task.batch.clone()] {
                gemm_block(
                    job.a,
                    job.b,
                    job.c,
                    job.k,
                    task.rows.clone(),
                    task.cols.clone(),
                    &job.epilogue,
                    ctx.scratch,
                );
            }
        })
        .map_err(|e| Error::fail(format!("worker pool: {e}")))
    }
}
