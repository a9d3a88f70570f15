//! DNS evidence: which cluster each host's DNS sends clients to. `targets` says which addresses and
//! names are blue or green, `route53` reads what the zones say, `task` resolves live what clients
//! see, and `book` joins them into one verdict per host for the report.

pub mod book;
pub mod route53;
pub mod targets;
pub mod task;
