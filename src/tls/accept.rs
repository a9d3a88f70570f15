//! TLS termination of one client connection: the ClientHello read first, the certificate chosen
//! by its SNI, the handshake within its timeout; and the Host-vs-SNI check of each request.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use super::certs::{CertChoice, CertStore};

/// What a terminated TLS connection told us, kept with the connection and recorded with each of
/// its requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// The server name the client asked for (lowercased), `None` without SNI.
    pub sni: Option<Box<str>>,
    /// Whether a certificate named it, or the default was served.
    pub cert: CertChoice,
}

/// Why a TLS handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Not done within `--tls-handshake-timeout`.
    #[error("TLS handshake timed out")]
    Timeout,
    /// The client sent something that is not TLS, or TLS we do not accept.
    #[error("{0}")]
    Failed(std::io::Error),
}

impl HandshakeError {
    /// The client closed before sending anything usable, e.g. a load balancer's TCP health check:
    /// not worth an event.
    pub fn is_close_before_hello(&self, sni: Option<&str>) -> bool {
        matches!(self, HandshakeError::Failed(e) if e.kind() == std::io::ErrorKind::UnexpectedEof) && sni.is_none()
    }

    /// A short cause for the log.
    pub fn cause(&self) -> &'static str {
        match self {
            HandshakeError::Timeout => "tls_handshake_timeout",
            HandshakeError::Failed(_) => "tls_handshake_failed",
        }
    }
}

/// Terminates TLS on `stream`: reads the ClientHello, chooses the certificate by SNI from the
/// current set, completes the handshake, all within `timeout`. On failure, the SNI seen (if any)
/// comes back with the error for the log.
pub async fn accept(
    stream: TcpStream,
    store: &CertStore,
    timeout: Duration,
) -> Result<(TlsStream<TcpStream>, TlsInfo), (HandshakeError, Option<Box<str>>)> {
    let mut sni_seen: Option<Box<str>> = None;
    let handshake = async {
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
        let sni: Option<Box<str>> = start.client_hello().server_name().map(|s| s.to_ascii_lowercase().into());
        sni_seen = sni.clone();
        let (config, cert) = {
            let set = store.current();
            let (config, cert) = set.choose(sni.as_deref());
            (Arc::clone(config), cert)
        };
        let tls = start.into_stream(config).await?;
        Ok::<_, std::io::Error>((tls, TlsInfo { sni, cert }))
    };
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => Err((HandshakeError::Failed(e), sni_seen)),
        Err(_) => Err((HandshakeError::Timeout, sni_seen)),
    }
}

/// Whether the request's Host names another server than the SNI (ports, case and a trailing dot
/// aside). Clients that reuse one connection for several names (HTTP/2 connection coalescing
/// under a wildcard certificate) show up here too: the log flags, it does not refuse.
pub fn sni_mismatch(sni: &str, host: &[u8]) -> bool {
    let host = match std::str::from_utf8(host) {
        Ok(h) => crate::base::host::strip_port(h),
        Err(_) => return true,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.eq_ignore_ascii_case(sni)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_ignores_port_case_and_dot() {
        assert!(!sni_mismatch("a.example.com", b"A.Example.com:443"));
        assert!(!sni_mismatch("a.example.com", b"a.example.com."));
        assert!(sni_mismatch("a.example.com", b"b.example.com"));
        assert!(sni_mismatch("a.example.com", b"\xff"));
        assert!(!sni_mismatch("::1", b"[::1]:8443"));
    }
}
