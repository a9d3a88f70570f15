//! DNS evidence: which cluster each host's DNS sends clients to. `targets` says which addresses
//! and names are blue or green, `zones` reads what the Route53 exports say, `verdict` names the
//! outcomes, `task` resolves live what clients see, and `book` joins them into one verdict per
//! host for the report.

pub mod book;
pub mod counters;
pub mod evidence;
pub mod kinds;
pub mod settings;
pub mod targets;
pub mod task;
pub mod verdict;
pub mod zones;
