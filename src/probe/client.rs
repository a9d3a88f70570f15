//! One probe: a fresh connection to green (TLS with the host as SNI over `https://`), one
//! `GET`/`HEAD` with the host as `Host` and nothing of the client's, the head and at most
//! [`BODY_READ`] bytes of the body read, all within the probe timeout.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::{CertificateError, ClientConfig};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use super::judge::{fnv1a, Answer, FNV_START};
use crate::base::error::ConfigError;
use crate::base::values::UpstreamUrl;
use crate::tls::roots::AnyCertificate;

/// Body bytes read to recognize green's default answer.
pub const BODY_READ: usize = 64 << 10;
/// What green's logs see.
pub const USER_AGENT: &str = concat!("cutover-proxy-probe/", env!("CARGO_PKG_VERSION"));

/// Where probes go and how.
#[derive(Clone)]
pub struct ProbeClient {
    pub green: UpstreamUrl,
    /// For `https://` green: certificates verified against the roots, and (for the calibration,
    /// whose name no certificate covers) not verified.
    pub tls: Option<(Arc<ClientConfig>, Arc<ClientConfig>)>,
    pub timeout: Duration,
}

impl ProbeClient {
    /// The client for `green`, trusting `ca_file` (else the system's roots); the roots' description.
    pub fn new(
        green: UpstreamUrl,
        ca_file: Option<&std::path::Path>,
        timeout: Duration,
    ) -> Result<(Self, String), ConfigError> {
        if !green.tls {
            return Ok((Self { green, tls: None, timeout }, "plain HTTP".into()));
        }
        let provider = Arc::new(crate::tls::provider::provider());
        let builder = || {
            ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|e| ConfigError::Invalid { what: "--green-probe", why: format!("TLS: {e}") })
        };
        let (roots, what) = crate::tls::roots::root_store(ca_file, "--green-probe-ca")?;
        let mut verified = builder()?.with_root_certificates(roots).with_no_client_auth();
        let mut any = builder()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone())))
            .with_no_client_auth();
        verified.alpn_protocols = vec![b"http/1.1".to_vec()];
        any.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok((Self { green, tls: Some((Arc::new(verified), Arc::new(any))), timeout }, what))
    }

    /// Asks green for `method path` of `host`: its answer, or why there is none (one line).
    pub async fn ask(&self, host: &str, method: &'static str, path: &str) -> Result<Answer, String> {
        self.timed(host, method, path, self.tls.as_ref().map(|t| &t.0)).await
    }

    /// [`ProbeClient::ask`] without verifying green's certificate (the calibration).
    pub async fn ask_unverified(&self, host: &str, method: &'static str, path: &str) -> Result<Answer, String> {
        self.timed(host, method, path, self.tls.as_ref().map(|t| &t.1)).await
    }

    async fn timed(
        &self,
        host: &str,
        method: &'static str,
        path: &str,
        tls: Option<&Arc<ClientConfig>>,
    ) -> Result<Answer, String> {
        match tokio::time::timeout(self.timeout, self.exchange(host, method, path, tls)).await {
            Ok(result) => result,
            Err(_) => Err(format!("timed out after {:?}", self.timeout)),
        }
    }

    async fn exchange(
        &self,
        host: &str,
        method: &'static str,
        path: &str,
        tls: Option<&Arc<ClientConfig>>,
    ) -> Result<Answer, String> {
        let tcp =
            TcpStream::connect((self.green.host.as_str(), self.green.port)).await.map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                _ => format!("cannot connect: {e}"),
            })?;
        let _ = tcp.set_nodelay(true);
        match tls {
            None => send(TokioIo::new(tcp), host, method, path).await,
            Some(config) => {
                let name =
                    ServerName::try_from(host.to_owned()).map_err(|_| format!("`{host}` is not a TLS server name"))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| tls_failure(&e, host))?;
                send(TokioIo::new(tls), host, method, path).await
            }
        }
    }
}

async fn send<S>(io: TokioIo<S>, host: &str, method: &'static str, path: &str) -> Result<Answer, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut tx, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("HTTP: {e}"))?;
    let conn = tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, USER_AGENT)
        .header("x-cutover-probe", "1")
        .header(http::header::CONNECTION, "close")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let res = tx.send_request(req).await.map_err(|e| {
        if e.is_incomplete_message() || e.is_canceled() {
            "connection reset before an answer".to_owned()
        } else {
            format!("HTTP: {e}")
        }
    })?;
    let status = res.status().as_u16();
    let server = res.headers().get(http::header::SERVER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut body = res.into_body();
    let (mut len, mut hash) = (0u64, FNV_START);
    while (len as usize) < BODY_READ {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let take = data.len().min(BODY_READ - len as usize);
                    hash = fnv1a(&data[..take], hash);
                    len += take as u64;
                }
            }
            // A body cut short still tells the answer apart.
            Some(Err(_)) | None => break,
        }
    }
    conn.abort();
    Ok(Answer { status, server, body_len: len, body_hash: hash })
}

/// The handshake's failure as an operator reads it.
fn tls_failure(e: &std::io::Error, host: &str) -> String {
    let rustls_error = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("certificate does not cover {host}")
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "certificate expired".to_owned(),
            CertificateError::UnknownIssuer => "certificate untrusted (unknown issuer)".to_owned(),
            other => format!("certificate rejected: {other:?}"),
        },
        Some(other) => format!("TLS handshake failed: {other}"),
        None => format!("TLS handshake failed: {e}"),
    }
}
