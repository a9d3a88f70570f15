//! The reconciliation report: its model (schema v2), how it is built from the ledger host by host,
//! judged (classify, judge), written out bounded or whole (stream, render), summarized for the
//! metrics and the dashboard, merged across replicas, turned into Route53 change batches, kept in a
//! file and read back after a restart.

pub mod build;
pub mod changes;
pub mod classify;
pub mod file;
pub mod gate;
pub mod judge;
pub mod merge;
pub mod model;
pub mod render;
pub mod restore;
#[cfg(test)]
mod samples;
pub mod stream;
pub mod summary;
pub mod writer;
