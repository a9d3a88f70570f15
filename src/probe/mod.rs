//! Asking green itself (`--green-probe URL`): for each host and path template the ledger holds,
//! one `GET`/`HEAD` of a real request's path to green's load balancer, judged against green's
//! default answer and blue's; the verdicts are evidence for the report. Beside the proxy, never
//! on the request path: a dead or slow green changes verdicts, not latency.

pub mod book;
pub mod client;
pub mod judge;
pub mod task;

use std::path::PathBuf;
use std::time::Duration;

use crate::base::values::UpstreamUrl;
pub use judge::ProbeVerdict;

/// Whether green is asked about `host`: not a placeholder or a bucket (no name to ask for), not
/// an IP literal (no TLS name; DNS never moves such clients anyway).
pub fn asks_about(host: &str) -> bool {
    !crate::base::host::is_placeholder(host) && host.parse::<std::net::IpAddr>().is_err()
}

/// `--green-probe*`.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    /// Green's load balancer or ingress.
    pub green: UpstreamUrl,
    /// Probes per second, over all hosts.
    pub rate: u32,
    /// How often one host and path is checked again.
    pub interval: Duration,
    pub timeout: Duration,
    /// CA bundle for `https://` green (system roots otherwise).
    pub ca_file: Option<PathBuf>,
}
