//! The reconciliation report: its model (schema v1), how it is built from the ledger, rendered,
//! merged across replicas, turned into Route53 change batches, and written to disk.

pub mod build;
pub mod changes;
pub mod classify;
pub mod file;
pub mod judge;
pub mod merge;
pub mod model;
pub mod render;
#[cfg(test)]
mod samples;
pub mod writer;
