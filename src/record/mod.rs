//! Recording what still arrives at blue: path templates, bounded counters, and the ledger with a
//! lane per worker under a memory budget. Runs on the worker after the response is done, never in
//! front of it; read shard by shard ([`view`]), restored from a saved report ([`seed`]).

mod buckets;
mod budget;
mod host;
mod lane;
mod ledger;
mod moved;
pub mod normalize;
mod observation;
mod scratch;
mod seed;
mod settings;
mod sightings;
pub mod stats;
mod view;

pub use buckets::HostKinds;
pub use host::{HostStats, PathStats, TOP_K};
pub use lane::{Lane, TotalCounts};
pub use ledger::Ledger;
pub use moved::{AfterMove, LateClient, MovedHosts, LATE_CLIENTS};
pub use observation::{Observation, PassthroughObservation, Recorded, Routing, Sighting, TlsObservation};
pub use seed::{HostSeed, PathSeed};
pub use settings::LedgerSettings;

#[cfg(test)]
mod tests;
