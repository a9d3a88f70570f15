//! Recording what still arrives at blue: normalization of hosts and paths, bounded counters, and
//! the sharded ledger. Runs on the worker after the response is done, never in front of it.

pub mod ledger;
pub mod normalize;
pub mod stats;
