//! Recording what still arrives at blue: path templates, bounded counters, and the ledger with a
//! lane per worker. Runs on the worker after the response is done, never in front of it.

mod host;
mod lane;
mod ledger;
mod moved;
pub mod normalize;
mod observation;
mod scratch;
pub mod stats;

pub use host::{HostStats, TOP_K};
pub use lane::Lane;
pub use ledger::{Ledger, LedgerSettings};
pub use moved::{MovedHosts, LATE_CLIENTS};
pub use observation::{Observation, PassthroughObservation, Recorded, Routing, Sighting, TlsObservation};
