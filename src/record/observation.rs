//! What the request path hands the ledger, and what it hears back: one request or passthrough
//! connection as observed, the verdict it got, and first sightings to announce.

use std::net::IpAddr;

use crate::base::names::named_enum;
use crate::routes::RouteRef;

/// Longest user agent kept (longer ones are cut).
pub const MAX_AGENT_LEN: usize = 200;

/// One forwarded request (or upgraded connection), as the ledger needs it.
#[derive(Debug)]
pub struct Observation<'a> {
    /// Host as received (`:authority` for HTTP/2).
    pub host: Option<&'a [u8]>,
    /// Request path (query ignored).
    pub path: &'a str,
    pub method: &'a http::Method,
    /// Status sent to the client.
    pub status: u16,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    pub client_ip: IpAddr,
    /// User-Agent header.
    pub user_agent: Option<&'a [u8]>,
    /// Age of the client's connection when the request arrived.
    pub conn_age_ms: u64,
    /// Arrived over terminated TLS (`None` on plain listeners).
    pub tls: Option<TlsObservation>,
    /// Wall clock of the request, unix milliseconds.
    pub at_ms: u64,
}

/// What TLS termination adds to a request's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsObservation {
    /// The Host names another server than the SNI.
    pub sni_mismatch: bool,
    /// No certificate named the SNI (or there was none): the default was served.
    pub default_cert: bool,
}

/// One passthrough connection, recorded when it ends.
#[derive(Debug)]
pub struct PassthroughObservation<'a> {
    /// The SNI, or `(no-sni)` / `(not-tls)`.
    pub host: &'a str,
    /// `host` is an SNI (to be normalized), not one of the markers.
    pub sni: bool,
    /// Client IP (the TCP peer).
    pub client_ip: IpAddr,
    /// Bytes from the client.
    pub bytes_in: u64,
    /// Bytes toward the client.
    pub bytes_out: u64,
    /// How long the connection was open.
    pub duration_ms: u64,
    /// When it ended, unix milliseconds.
    pub at_ms: u64,
}

named_enum! {
    /// Green's verdict for one host and path, as the ledger judged it.
    pub enum Routing {
        /// Green's route table serves it.
        Routed = "routed",
        /// Green's route table does not.
        Unrouted = "unrouted",
        /// No route table is loaded, or the path fell into `{other}`.
        Unknown = "unknown",
    }
}

impl Routing {
    /// The verdict of a table lookup; `None` when there is no table.
    pub fn of(found: Option<bool>) -> Self {
        match found {
            Some(true) => Routing::Routed,
            Some(false) => Routing::Unrouted,
            None => Routing::Unknown,
        }
    }
}

/// What recording one request found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Matched an ignore rule: counted as ignored only.
    Ignored,
    /// Recorded.
    Counted {
        /// Green's verdict for its host and path.
        green: Routing,
        /// The host's DNS had moved to green and this request came on a connection opened before
        /// the move (keep-alive stickiness).
        stale_conn: bool,
    },
}

/// A first sighting, announced as an `event` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sighting {
    /// A host never seen before.
    NewHost {
        /// The normalized host.
        host: String,
        /// Green's verdict for its first path.
        green: Routing,
    },
    /// A path template never seen before on its host.
    NewPath {
        /// The normalized host.
        host: String,
        /// The template.
        path: String,
        /// Green's verdict.
        green: Routing,
        /// The green object that serves it.
        matched: Option<RouteRef>,
    },
}
