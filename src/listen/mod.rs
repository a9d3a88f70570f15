//! Accepting clients: one thread per core, each with its own single-threaded runtime, its own
//! `SO_REUSEPORT` socket per listen address and its own [`Proxy`] (upstream pools included), so
//! the kernel spreads connections and no request crosses a core.

pub mod passthrough;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::net::alarm::{Alarm, Expiry, Registry};
use crate::net::conn::{self, ConnState};
use crate::net::io::{ObservedIo, Rewind};
use crate::net::shutdown::{Shutdown, Tracker};
use crate::proxy::h1::Served;
use crate::proxy::Proxy;
use crate::tls::certs::CertStore;
use passthrough::PassthroughSettings;
use tokio::io::{AsyncRead, AsyncWrite};

/// Client-side timeouts.
#[derive(Debug, Clone, Copy)]
pub struct ClientTimeouts {
    /// A request header must be complete within this.
    pub header: Duration,
    /// An idle keep-alive connection is closed after this.
    pub idle: Duration,
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        Self { header: Duration::from_secs(10), idle: Duration::from_secs(75) }
    }
}

/// What a listener does with its connections.
#[derive(Clone)]
pub enum ListenKind {
    /// HTTP/1.1 and h2c (`--listen`).
    Plain,
    /// HTTPS: TLS terminated with these certificates (`--tls-listen`).
    Tls {
        /// The certificates, reloaded in place.
        certs: Arc<CertStore>,
        /// `--tls-handshake-timeout`.
        handshake_timeout: Duration,
    },
    /// TLS spliced to blue unopened (`--passthrough-listen`).
    Passthrough(Arc<PassthroughSettings>),
}

impl ListenKind {
    /// The name in the `listening` event.
    pub fn name(&self) -> &'static str {
        match self {
            ListenKind::Plain => "proxy",
            ListenKind::Tls { .. } => "tls",
            ListenKind::Passthrough(_) => "passthrough",
        }
    }
}

/// Bytes hyper buffers per client connection at most, each way.
const CLIENT_BUF_MAX: usize = 64 * 1024;

/// What one worker thread runs.
pub struct Worker {
    /// The worker's proxy.
    pub proxy: Arc<Proxy>,
    /// Its listener sockets.
    pub listeners: Vec<(std::net::TcpListener, ListenKind)>,
    /// Client timeouts.
    pub timeouts: ClientTimeouts,
    /// Shared shutdown state.
    pub shutdown: Arc<Shutdown>,
    /// Upper bound on waiting for in-flight work after accepting stops.
    pub shutdown_timeout: Duration,
}

impl Worker {
    /// Runs the worker on the current thread until shutdown completes.
    pub fn run(self) -> std::io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(self.serve())
    }

    async fn serve(self) -> std::io::Result<()> {
        let mut h1 = http1::Builder::new();
        // No hyper header timer: the per-connection watchdog enforces it without a timer per request.
        h1.timer(TokioTimer::new()).header_read_timeout(None).keep_alive(true);
        // Backpressure, not buffering: a client that stops reading holds at most this much of
        // its response here (hyper's default lets 16 chunks, ~256 KiB, queue up) before the body,
        // and so the read from blue, waits. Request heads may still be 64 KiB (nginx: 4 x 8 KiB).
        h1.max_buf_size(CLIENT_BUF_MAX);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(60)));
        let (h1, h2) = (Arc::new(h1), Arc::new(h2));
        let conns = self.proxy.conns.clone();
        let registry = Arc::new(Registry::default());
        let mut accepts = Vec::new();
        for (std_listener, kind) in self.listeners {
            let listener = TcpListener::from_std(std_listener)?;
            let ctx = ConnCtx {
                kind,
                proxy: self.proxy.clone(),
                h1: h1.clone(),
                h2: h2.clone(),
                conns: conns.clone(),
                registry: registry.clone(),
                timeouts: self.timeouts,
            };
            accepts.push(tokio::spawn(accept_loop(listener, ctx, self.shutdown.subscribe())));
        }
        for a in accepts {
            let _ = a.await;
        }
        // Accepting stopped: tell every connection to finish, then wait for them and for tunnels.
        registry.drain_all();
        let tunnels = self.proxy.tunnels.clone();
        let _ = tokio::time::timeout(self.shutdown_timeout, async {
            conns.wait_idle().await;
            tunnels.wait_idle().await;
        })
        .await;
        Ok(())
    }
}

#[derive(Clone)]
struct ConnCtx {
    kind: ListenKind,
    proxy: Arc<Proxy>,
    h1: Arc<http1::Builder>,
    h2: Arc<http2::Builder<TokioExecutor>>,
    conns: Arc<Tracker>,
    registry: Arc<Registry>,
    timeouts: ClientTimeouts,
}

async fn accept_loop(listener: TcpListener, ctx: ConnCtx, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            biased;
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    match &ctx.kind {
                        ListenKind::Plain => tokio::spawn(serve_conn(ctx.clone(), stream, peer)),
                        ListenKind::Tls { .. } => tokio::spawn(serve_tls(ctx.clone(), stream, peer)),
                        ListenKind::Passthrough(settings) => {
                            let (proxy, settings, guard) = (ctx.proxy.clone(), settings.clone(), ctx.conns.enter());
                            tokio::spawn(async move {
                                let _guard = guard;
                                passthrough::serve(proxy, settings, stream, peer).await
                            })
                        }
                    };
                }
                Err(e) => {
                    // EMFILE/ENFILE/ENOBUFS and friends: log, back off a little, keep accepting.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Drives one connection until it ends: closes it when the alarm rings for a header timeout, and
/// shuts it down gracefully (HTTP/1.1: after the response in flight; HTTP/2: GOAWAY) when idle or
/// draining.
macro_rules! drive {
    ($conn:expr, $rang:expr, $alarm:expr, $peer:expr, $linger:expr, $on_error:expr) => {{
        let conn = $conn;
        tokio::pin!(conn);
        let mut closing = false;
        // The alarm's receiver may be polled until it rings (and again after a `Stale` ring,
        // which re-arms it so idle and drain still arrive).
        let mut armed = true;
        // Armed once an idle close starts: a client that never reads the rest of its last
        // response (zero window) must not hold the connection forever.
        // Polled only once armed, so an active connection's wake-ups do not touch a timer.
        let linger = tokio::time::sleep(Duration::MAX);
        tokio::pin!(linger);
        let mut lingering = false;
        loop {
            tokio::select! {
                biased;
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(peer = %$peer, error = %e, "client connection ended with an error");
                        $on_error(&e);
                    }
                    break;
                }
                why = &mut $rang, if armed => {
                    armed = false;
                    match why {
                        Ok(Expiry::HeaderTimeout) => {
                            tracing::debug!(peer = %$peer, "request header timeout: closing the connection");
                            break;
                        }
                        Ok(Expiry::Idle) | Err(_) => {
                            linger.as_mut().reset(tokio::time::Instant::now() + $linger);
                            lingering = true;
                            if !closing {
                                closing = true;
                                conn.as_mut().graceful_shutdown();
                            }
                        }
                        // Draining: the worker's --shutdown-timeout bounds what is still in flight.
                        Ok(Expiry::Drain) => {
                            if !closing {
                                closing = true;
                                conn.as_mut().graceful_shutdown();
                            }
                        }
                        // The host moved to green: GOAWAY, streams in flight finish; the
                        // watchdog's idle ring and a drain still come through.
                        Ok(Expiry::Stale) => {
                            if !closing {
                                closing = true;
                                conn.as_mut().graceful_shutdown();
                            }
                            if let Some(alarm) = $alarm {
                                $rang = alarm.rearm();
                                armed = true;
                            }
                        }
                    }
                },
                _ = &mut linger, if lingering => {
                    tracing::debug!(peer = %$peer, "client did not take the end of its response: closing");
                    break;
                }
            }
        }
    }};
}

async fn serve_conn(ctx: ConnCtx, stream: TcpStream, peer: SocketAddr) {
    let _guard = ctx.conns.enter();
    let trusted = ctx.proxy.settings().trusted.contains(peer.ip());
    let state = Arc::new(ConnState::new(peer, trusted));
    let (alarm, mut rang) = Alarm::new();
    state.set_alarm(alarm.clone());
    let watchdog = tokio::spawn(conn::watch(state.clone(), alarm.clone(), ctx.timeouts.header, ctx.timeouts.idle));
    let id = ctx.registry.add(alarm);
    // hyper's connection futures are boxed: inline, they would make every connection's task as
    // large as theirs, the idle ones on the proxy's own side too.
    match detect_h2(&stream, &mut rang).await {
        None => {}
        Some(Preface::Http2) => Box::pin(serve_http(&ctx, stream, state, true, rang, peer)).await,
        Some(Preface::Http1) if ctx.proxy.serves_h1() => {
            let mut stream = stream;
            if let Served::Hyper(read) = ctx.proxy.serve_h1(&mut stream, &state, &mut rang).await {
                Box::pin(serve_http(&ctx, Rewind::new(read, stream), state, false, rang, peer)).await;
            }
        }
        Some(Preface::Http1) => Box::pin(serve_http(&ctx, stream, state, false, rang, peer)).await,
    }
    watchdog.abort();
    ctx.registry.remove(id);
}

/// An HTTPS connection: the handshake (certificate by SNI, within the handshake timeout), then
/// HTTP/2 or HTTP/1.1 as ALPN chose. A failed handshake is logged as a `tls_handshake_failed`
/// event (not for a client that closes before its ClientHello: a TCP health check) and closes the
/// connection; the listener goes on.
async fn serve_tls(ctx: ConnCtx, stream: TcpStream, peer: SocketAddr) {
    let ListenKind::Tls { certs, handshake_timeout } = &ctx.kind else { return };
    let _guard = ctx.conns.enter();
    let (tls, info) = match crate::tls::accept::accept(stream, certs, *handshake_timeout).await {
        Ok(done) => done,
        Err((e, sni)) => {
            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
            if e.is_close_before_hello(sni.as_deref()) {
                return;
            }
            ctx.proxy.log().event(
                "tls_handshake_failed",
                serde_json::json!({"client_ip": peer.ip().to_string(), "sni": sni.as_deref(), "error": e.cause(), "detail": e.to_string()}),
            );
            return;
        }
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let trusted = ctx.proxy.settings().trusted.contains(peer.ip());
    let state = Arc::new(ConnState::new(peer, trusted).with_tls(info));
    let (alarm, mut rang) = Alarm::new();
    state.set_alarm(alarm.clone());
    let watchdog = tokio::spawn(conn::watch(state.clone(), alarm.clone(), ctx.timeouts.header, ctx.timeouts.idle));
    let id = ctx.registry.add(alarm);
    if !h2 && ctx.proxy.serves_h1() {
        let mut tls = tls;
        if let Served::Hyper(read) = ctx.proxy.serve_h1(&mut tls, &state, &mut rang).await {
            Box::pin(serve_http(&ctx, Rewind::new(read, tls), state, false, rang, peer)).await;
        }
    } else {
        Box::pin(serve_http(&ctx, tls, state, h2, rang, peer)).await;
    }
    watchdog.abort();
    ctx.registry.remove(id);
}

/// Serves HTTP/2 or HTTP/1.1 (with upgrades) on `io` until the connection ends.
async fn serve_http<S>(
    ctx: &ConnCtx,
    io: S,
    state: Arc<ConnState>,
    h2: bool,
    mut rang: tokio::sync::oneshot::Receiver<Expiry>,
    peer: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(ObservedIo::new(io, state.clone()));
    let alarm = state.alarm().cloned();
    let refused = |e: &hyper::Error| ctx.proxy.head_refused(&state, e);
    let (proxy, svc_state) = (ctx.proxy.clone(), state.clone());
    let svc = service_fn(move |req| proxy.clone().handle(svc_state.clone(), req));
    // One protocol per connection, chosen by the preface (or ALPN): the plain builders are
    // measurably cheaper per request than the auto builder's rewinding reader.
    if h2 {
        drive!(
            ctx.h2.serve_connection(io, svc),
            rang,
            alarm.as_ref(),
            peer,
            ctx.timeouts.header,
            |_: &hyper::Error| {}
        );
    } else {
        drive!(
            ctx.h1.serve_connection(io, svc).with_upgrades(),
            rang,
            alarm.as_ref(),
            peer,
            ctx.timeouts.header,
            refused
        );
    }
}

/// What a plain connection's first bytes say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Preface {
    /// The HTTP/2 preface (`PRI * HTTP/2.0…`): h2c with prior knowledge.
    Http2,
    /// Anything else: HTTP/1.x.
    Http1,
}

/// Peeks at the first bytes; `None` when the client left or the alarm rang first.
async fn detect_h2(stream: &TcpStream, rang: &mut tokio::sync::oneshot::Receiver<Expiry>) -> Option<Preface> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
    let mut buf = [0u8; 16];
    let mut nap = Duration::from_millis(1);
    loop {
        tokio::select! {
            biased;
            _ = &mut *rang => return None,
            peeked = stream.peek(&mut buf) => match peeked {
                Ok(0) | Err(_) => return None,
                Ok(n) if buf[..n] != PREFACE[..n] => return Some(Preface::Http1),
                Ok(n) if n >= 3 => return Some(Preface::Http2),
                // A prefix of the preface, cut short: wait for more bytes, backing off so a client
                // that sends one byte and stops costs a few wake-ups, not thousands.
                Ok(_) => {
                    tokio::time::sleep(nap).await;
                    nap = (nap * 2).min(Duration::from_millis(250));
                }
            }
        }
    }
}
