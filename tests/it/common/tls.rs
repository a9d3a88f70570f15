//! TLS fixtures: certificates made at run time by `cutover-proxy certs generate` (no key is ever
//! committed), real rustls clients and servers, and byte-counting streams.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

use super::run_binary;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Runs `cutover-proxy certs generate --out DIR NAMES…` and checks it worked.
pub fn generate(dir: &Path, names: &[&str]) {
    let mut args = vec!["certs", "generate", "--out", dir.to_str().unwrap()];
    args.extend_from_slice(names);
    let (code, out, err) = run_binary(&args, &[]);
    assert_eq!(code, Some(0), "certs generate failed: {out}{err}");
}

/// The leaf certificate (DER) of a PEM chain file.
pub fn leaf_of(cert_file: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(cert_file).unwrap().next().unwrap().unwrap().as_ref().to_vec()
}

/// A client configuration trusting `ca` (the generated CA), with `alpn`.
pub fn client_config(ca: &Path, alpn: &[&[u8]]) -> ClientConfig {
    client_config_versions(ca, alpn, rustls::DEFAULT_VERSIONS)
}

/// The same, limited to some TLS versions.
pub fn client_config_versions(
    ca: &Path,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// A client that accepts any certificate (to look at what is served for names it would not
/// verify), sending SNI only when `sni` is true.
pub fn any_cert_config(sni: bool) -> ClientConfig {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    config.enable_sni = sni;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

#[derive(Debug)]
struct AcceptAny;

impl ServerCertVerifier for AcceptAny {
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
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &provider().signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &provider().signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider().signature_verification_algorithms.supported_schemes()
    }
}

/// Connects with TLS to `addr` as `name`.
pub async fn connect(addr: SocketAddr, name: &str, config: ClientConfig) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    connect_over(tcp, name, config).await
}

/// TLS over an already open stream.
pub async fn connect_over<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    name: &str,
    config: ClientConfig,
) -> TlsStream<S> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    tokio::time::timeout(super::WAIT, connector.connect(server_name, stream))
        .await
        .expect("TLS handshake in time")
        .expect("TLS handshake")
}

/// The leaf certificate the server presented.
pub fn served_leaf<S>(tls: &TlsStream<S>) -> Vec<u8> {
    tls.get_ref().1.peer_certificates().unwrap()[0].as_ref().to_vec()
}

/// An HTTP/1.1 client over an established TLS stream.
pub async fn h1_over<S>(tls: S) -> super::H1Client
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    super::H1Client::from_sender(tx)
}

/// A server configuration from a generated pair (`DIR/STEM.crt`, `DIR/STEM.key`).
pub fn server_config(dir: &Path, stem: &str) -> ServerConfig {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join(format!("{stem}.crt"))).unwrap().map(|c| c.unwrap()).collect();
    let key = PrivateKeyDer::from_pem_file(dir.join(format!("{stem}.key"))).unwrap();
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// Raw bytes read and written on the TCP side of a server's connections.
#[derive(Debug, Default)]
pub struct Counts {
    pub read: AtomicU64,
    pub written: AtomicU64,
    /// The SNI of each connection.
    pub sni: Mutex<Vec<Option<String>>>,
}

/// A TLS echo server ("blue" behind passthrough): echoes every byte after the handshake, counting
/// raw TCP bytes both ways and noting each connection's SNI.
pub async fn tls_echo_server(config: ServerConfig) -> (SocketAddr, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let c = counts.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, c) = (acceptor.clone(), c.clone());
            tokio::spawn(async move {
                let counted = Counted { inner: tcp, counts: c.clone() };
                let Ok(mut tls) = acceptor.accept(counted).await else { return };
                c.sni.lock().unwrap().push(tls.get_ref().1.server_name().map(str::to_owned));
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tls.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, counts)
}

/// An HTTPS upstream (hyper over rustls) answering like the plain test upstream's `/echo`.
pub async fn https_upstream(config: ServerConfig) -> (SocketAddr, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let c = counts.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, c) = (acceptor.clone(), c.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                c.sni.lock().unwrap().push(tls.get_ref().1.server_name().map(str::to_owned));
                let svc = hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let host =
                        req.headers().get("host").map(|h| h.to_str().unwrap_or("").to_owned()).unwrap_or_default();
                    let body = serde_json::json!({"uri": req.uri().to_string(), "host": host}).to_string();
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from(body),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, counts)
}

/// A stream that counts the raw bytes through it.
pub struct Counted<S> {
    pub inner: S,
    pub counts: Arc<Counts>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.counts.read.fetch_add((buf.filled().len() - before) as u64, Ordering::SeqCst);
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            self.counts.written.fetch_add(n as u64, Ordering::SeqCst);
        }
        res
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A stream that writes one byte per write call, pausing `gap` between them for the first
/// `slow_bytes` bytes: with TCP_NODELAY each byte leaves in its own segment and reaches the peer
/// in its own read.
pub struct OneByteWrites {
    pub inner: TcpStream,
    pub gap: Duration,
    pub slow_bytes: usize,
    pub sent: usize,
    pub pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl OneByteWrites {
    pub fn new(inner: TcpStream, gap: Duration, slow_bytes: usize) -> Self {
        inner.set_nodelay(true).unwrap();
        Self { inner, gap, slow_bytes, sent: 0, pause: None }
    }
}

impl AsyncRead for OneByteWrites {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for OneByteWrites {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.sent >= self.slow_bytes || buf.is_empty() {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        if let Some(pause) = self.pause.as_mut() {
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.pause = None;
        }
        let res = Pin::new(&mut self.inner).poll_write(cx, &buf[..1]);
        if let Poll::Ready(Ok(n)) = res {
            self.sent += n;
            let gap = self.gap;
            self.pause = Some(Box::pin(tokio::time::sleep(gap)));
        }
        res
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
