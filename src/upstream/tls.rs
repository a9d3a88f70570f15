//! TLS toward blue (`--upstream https://…`): the client configuration (system roots, else the
//! bundled webpki roots; or `--upstream-ca FILE`; `--upstream-insecure` skips verification, loudly)
//! and the stream type the pool speaks over, plain TCP or TLS.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::base::error::ConfigError;

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
        let config =
            builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(provider))).with_no_client_auth();
        (config, "none: --upstream-insecure, blue's certificate is NOT verified".to_owned())
    } else {
        let (store, what) = roots(s.ca_file.as_deref())?;
        (builder.with_root_certificates(store).with_no_client_auth(), what)
    };
    config.alpn_protocols = vec![if s.h2 { b"h2".to_vec() } else { b"http/1.1".to_vec() }];
    Ok((Arc::new(config), roots))
}

fn roots(ca_file: Option<&Path>) -> Result<(RootCertStore, String), ConfigError> {
    let mut store = RootCertStore::empty();
    if let Some(path) = ca_file {
        let bad = |why: String| ConfigError::File { path: path.to_owned(), line: None, why };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("cannot read --upstream-ca: {e}")))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("--upstream-ca is not a PEM certificate file: {e}")))?;
        let (added, _) = store.add_parsable_certificates(certs);
        if added == 0 {
            return Err(bad("--upstream-ca holds no usable CA certificate".into()));
        }
        return Ok((store, format!("{added} CA certificate(s) from {}", path.display())));
    }
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = store.add_parsable_certificates(native.certs);
    if added > 0 {
        return Ok((store, format!("{added} system CA certificates")));
    }
    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    Ok((store, "no system CA certificates found: the bundled webpki roots (Mozilla's list)".into()))
}

/// `--upstream-insecure`: any certificate is accepted (handshake signatures are still checked, so
/// the session is encrypted to whoever holds the presented key — just not verified to be blue).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A connection to an upstream: plain TCP, or TLS over it.
#[derive(Debug)]
pub enum UpStream {
    /// `http://`.
    Plain(TcpStream),
    /// `https://`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
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
