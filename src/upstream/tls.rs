//! TLS toward blue (`--upstream https://…`): the client configuration (system roots, else the
//! bundled webpki roots; or `--upstream-ca FILE`; `--upstream-insecure` skips verification, loudly)
//! and the stream type the pool speaks over, plain TCP or TLS.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::base::error::ConfigError;
use crate::tls::roots::AnyCertificate;

/// How the proxy verifies blue's certificate.
#[derive(Debug, Clone, Default)]
pub struct UpstreamTlsSettings {
    /// Trust only the CA certificates in this PEM file (`--upstream-ca`).
    pub ca_file: Option<std::path::PathBuf>,
    /// Accept any certificate (`--upstream-insecure`).
    pub insecure: bool,
    /// Offer `h2` (with `--upstream-h2`) instead of `http/1.1` in ALPN.
    pub h2: bool,
}

/// Builds the client configuration once at start-up; an unreadable `--upstream-ca` names the file.
/// Returns it with a description of the roots for the start-up log.
pub fn client_config(s: &UpstreamTlsSettings) -> Result<(Arc<ClientConfig>, String), ConfigError> {
    let provider = Arc::new(crate::tls::provider::provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ConfigError::Invalid { what: "--upstream", why: format!("TLS: {e}") })?;
    let (mut config, roots) = if s.insecure {
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        (config, "none: --upstream-insecure, blue's certificate is NOT verified".to_owned())
    } else {
        let (store, what) = crate::tls::roots::root_store(s.ca_file.as_deref(), "--upstream-ca")?;
        (builder.with_root_certificates(store).with_no_client_auth(), what)
    };
    config.alpn_protocols = vec![if s.h2 { b"h2".to_vec() } else { b"http/1.1".to_vec() }];
    Ok((Arc::new(config), roots))
}

/// A connection to an upstream: plain TCP, or TLS over it.
#[derive(Debug)]
pub enum UpStream {
    /// `http://`.
    Plain(TcpStream),
    /// `https://`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl UpStream {
    /// The upstream's address.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            UpStream::Plain(tcp) => tcp.peer_addr().ok(),
            UpStream::Tls(tls) => tls.get_ref().0.peer_addr().ok(),
        }
    }
}

impl AsyncRead for UpStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpStream::Plain(s) => s.is_write_vectored(),
            UpStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpStream::Plain(s) => Pin::new(s).poll_flush(cx),
            UpStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
