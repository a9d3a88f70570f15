//! cutover-proxy: a transparent reverse proxy put in front of the old ("blue") cluster during a
//! DNS cutover. It forwards everything to blue and records every request that still arrives.
//! docs/ARCHITECTURE.md draws the layers; imports only point down them.
#![forbid(unsafe_code)]

mod admin;
mod analyze;
mod base;
mod cli;
mod demo;
mod dns;
mod fleet;
mod listen;
mod log;
mod net;
mod probe;
mod proxy;
mod record;
mod reload;
mod report;
mod routes;
mod s3;
mod serve;
mod tls;
mod upstream;

pub use cli::main;

/// The pieces of the request path that the criterion benches and the memory test measure on
/// their own. Not an API: nothing outside this repository should use it.
#[doc(hidden)]
pub mod internals {
    pub use crate::base::host::OTHER_PATH;
    pub use crate::base::time::{parse_rfc3339, unix_ms};
    pub use crate::log::{format_access, AccessLog, AccessRecord, Text};
    pub use crate::proxy::h1::forward_head;
    pub use crate::proxy::rewrite::{client_ip, set_forwarded, strip_hop_by_hop, TrustedProxies};
    pub use crate::record::normalize::{Glob, Templater};
    pub use crate::record::{Ledger, LedgerSettings, Observation, Sighting};
    pub use crate::report::build::Sources;
    pub use crate::report::judge::ReportSettings;
    pub use crate::report::render::Format;
    pub use crate::report::stream::{write as write_report, Selection};
    pub use crate::report::summary::summarize;
    pub use crate::routes::RouteTable;
}
