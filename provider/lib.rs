//! AsyMo EP: an ONNX Runtime plugin execution provider for asymmetric multicore CPUs.
//!
//! This file holds the two symbols ORT looks up (`CreateEpFactories`, `ReleaseEpFactory`) and the module tree.

pub mod asym;
pub mod kernels;
pub mod ops;
mod ort;

pub use ort::entry::{CreateEpFactories, ReleaseEpFactory};
