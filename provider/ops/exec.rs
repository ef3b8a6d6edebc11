//! How ops hand their work to the machine: a batch of independent GEMM jobs, run by an [`Executor`].
//!
//! An op lowers one Run into jobs (a batched MatMul into one job per batch matrix, a convolution into one per image
//! and group) and submits them together, so the scheduler sees all the work of the node at once.

use std::cell::RefCell;

use crate::kernels::{gemm_block, AOperand, BOperand, FusedOp, MatMut, Scratch};

use super::Result;

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
