//! AsyMo EP: an ONNX Runtime plugin execution provider for asymmetric multicore CPUs.
//!
//! This file holds the two symbols ORT looks up (`CreateEpFactories`, `ReleaseEpFactory`) and the module tree:
//! `ort/` is the only code that sees ORT's ABI; `ops/` holds ONNX semantics, `kernels/` the compute kernels,
//! `asym/` the AsyMo core (topology, cost model, partitioner, pool, governor).

pub mod asym;
pub mod kernels;
pub mod ops;
pub mod options;
mod ort;
pub mod runtime;

pub use ort::entry::{CreateEpFactories, ReleaseEpFactory};
