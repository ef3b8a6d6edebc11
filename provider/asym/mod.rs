//! The AsyMo core (no ORT types): topology, cost model, partitioner, pool, adaptation, frequency governor.

pub mod energy;
pub mod freq;
pub mod reuse;
