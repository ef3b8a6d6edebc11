//! The AsyMo core (no ORT types): topology, cost model, partitioner, pool, adaptation, frequency governor.

pub mod topology;
pub mod cost;
pub mod partition;
pub mod adapt;
pub mod pool;
