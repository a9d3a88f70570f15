//! The reconciliation report: its model (schema v1), how it is built from the ledger, rendered,
//! merged across replicas and written to disk.

pub mod build;
pub mod file;
pub mod merge;
pub mod model;
pub mod render;
pub mod route53;
pub mod writer;
