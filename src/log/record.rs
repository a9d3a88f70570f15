//! What one access line says, as the request path hands it over: owned, so it keeps nothing of
//! the connection's buffers alive.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use http::{Method, Version};

use crate::base::cause::Cause;

/// What one access line says.
#[derive(Debug)]
pub struct AccessRecord {
    /// When the request arrived.
    pub ts: SystemTime,
    /// Client IP (after trusted X-Forwarded-For).
    pub client_ip: IpAddr,
    pub method: Method,
    /// Host as received.
    pub host: Option<Text>,
    /// Path, with the query only under `--log-query`.
    pub path: Text,
    /// Client's HTTP version.
    pub version: Version,
    /// Status sent to the client.
    pub status: u16,
    /// Request body bytes (plus tunnelled bytes from the client).
    pub bytes_in: u64,
    /// Response body bytes (plus tunnelled bytes toward the client).
    pub bytes_out: u64,
    /// From arrival to the end of the response.
    pub duration: Duration,
    /// Upstream name.
    pub upstream: &'static str,
    /// The upstream's address the request went to (none when no connection was made).
    pub upstream_addr: Option<SocketAddr>,
    /// User-Agent as received.
    pub user_agent: Option<Text>,
    /// `X-Request-ID`, else `X-Amzn-Trace-Id`, as received.
    pub request_id: Option<Text>,
    /// `grpc-status` of the response's trailers (or of a trailers-only response's head).
    pub grpc_status: Option<u8>,
    /// Cause of failure.
    pub error: Option<Cause>,
    /// The host's DNS had moved to green and the request came on a connection opened before.
    pub stale_conn: bool,
    /// On a TLS listener: what the handshake said.
    pub tls: Option<TlsLog>,
}

/// The TLS part of an access line.
#[derive(Debug)]
pub struct TlsLog {
    /// The SNI (`null` in the line when the client sent none).
    pub sni: Option<Text>,
    /// No certificate named the SNI: the default was served.
    pub default_cert: bool,
    /// The Host differs from the SNI.
    pub sni_mismatch: bool,
}

/// A copy of a short byte string, inline up to 94 bytes (host names, most paths), so a record owns
/// its text without keeping the connection's read buffer alive or allocating.
#[derive(Clone)]
pub enum Text {
    /// Up to 94 bytes.
    Inline(u8, [u8; 94]),
    /// Longer.
    Heap(Box<[u8]>),
}

impl Text {
    /// Copies `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= 94 {
            let mut buf = [0u8; 94];
            buf[..bytes.len()].copy_from_slice(bytes);
            Text::Inline(bytes.len() as u8, buf)
        } else {
            Text::Heap(bytes.into())
        }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Text::Inline(len, buf) => &buf[..*len as usize],
            Text::Heap(b) => b,
        }
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}
