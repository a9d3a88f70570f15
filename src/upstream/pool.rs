//! One worker's connections to one upstream: a LIFO stack of idle HTTP/1.1 connections (or one
//! shared HTTP/2 connection), each watched by a single timer for silence and idleness.
//!
//! Measured faster than hyper-util's legacy `Client` (see docs/BENCHMARKS.md): no per-request
//! spawned readiness task, no absolute-form URI round trip, no cross-thread pool lock.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::body::RequestBody;
use super::lean::LeanPool;
use super::tls::UpStream;
use super::Upstream;
use crate::base::cause::Cause;
use crate::base::time::coarse_ms;
use crate::net::io::{IoObserver, ObservedIo};

/// Timeouts and limits of the pools.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Idle connections are closed after this.
    pub idle_timeout: Duration,
    /// Longest upstream silence while a request is in flight.
    pub upstream_timeout: Duration,
    /// Idle connections kept at most.
    pub max_idle: usize,
    /// Speak HTTP/2 (h2c, or h2 over TLS) instead of HTTP/1.1.
    pub h2: bool,
    /// The TLS client configuration for `https://` upstreams.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Activity of one upstream connection, for its watchdog.
#[derive(Debug, Default)]
pub struct UpConn {
    /// The upstream address this connection went to (for the access line).
    pub addr: Option<SocketAddr>,
    busy: AtomicBool,
    last_io: AtomicU64,
    timed_out: AtomicBool,
}

impl UpConn {
    /// A connection to `addr`.
    pub fn to(addr: Option<SocketAddr>) -> Self {
        Self { addr, ..Self::default() }
    }

    /// Whether the watchdog closed this connection for silence.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// Milliseconds (process clock) of the last byte read or written.
    pub fn last_io(&self) -> u64 {
        self.last_io.load(Ordering::Relaxed)
    }

    pub(crate) fn set_busy(&self, busy: bool) {
        self.touch();
        self.busy.store(busy, Ordering::Relaxed);
    }

    /// Bytes were just read or written.
    pub(crate) fn touch(&self) {
        self.last_io.store(coarse_ms(), Ordering::Relaxed);
    }
}

impl IoObserver for UpConn {
    fn on_read(&self, _: &[u8]) {
        self.touch();
    }
    fn on_write(&self) {
        self.touch();
    }
}

type Io = TokioIo<ObservedIo<UpStream, UpConn>>;

struct Idle {
    tx: http1::SendRequest<RequestBody>,
    conn: Arc<UpConn>,
}

/// A sender toward the upstream, checked out of a [`Pool`] for one request.
pub enum Sender {
    /// An HTTP/1.1 connection, exclusively ours until released.
    H1(http1::SendRequest<RequestBody>),
    /// A clone of the shared HTTP/2 connection.
    H2(http2::SendRequest<RequestBody>),
}

/// A connection checked out for one request; give it back with [`Checkout::release`].
pub struct Checkout {
    /// The sender.
    pub tx: Sender,
    /// Its activity record.
    pub conn: Arc<UpConn>,
    /// Whether it was reused from the pool (a failure may then be retried on a fresh one).
    pub reused: bool,
    pool: Arc<Pool>,
}

impl Checkout {
    /// Sends the request; an HTTP/1.1 request that never reached a reused connection is retried
    /// once on a fresh one (the upstream closed an idle connection at the same moment).
    pub async fn send(&mut self, req: Request<RequestBody>) -> Result<Response<Incoming>, hyper::Error> {
        let tx = match &mut self.tx {
            Sender::H1(tx) => tx,
            // Boxed: HTTP/2's future would otherwise sit in every HTTP/1.1 request's future too.
            Sender::H2(tx) => return Box::pin(tx.send_request(req)).await,
        };
        match tx.try_send_request(req).await {
            Ok(resp) => Ok(resp),
            // Boxed: the retry's futures would otherwise sit in every request's future.
            Err(e) => Box::pin(self.retry(e)).await,
        }
    }

    /// The retry of [`Checkout::send`] on a fresh connection, when the request never left.
    async fn retry(
        &mut self,
        mut e: hyper::client::conn::TrySendError<Request<RequestBody>>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        let (true, Some(req)) = (self.reused, e.take_message()) else { return Err(e.into_error()) };
        let fresh = match self.pool.connect().await {
            Ok(c) => c,
            Err(_) => return Err(e.into_error()),
        };
        let old = std::mem::replace(self, fresh);
        drop(old);
        match &mut self.tx {
            Sender::H1(tx) => tx.send_request(req).await,
            Sender::H2(tx) => tx.send_request(req).await,
        }
    }

    /// Returns an HTTP/1.1 connection to the pool once its response is complete.
    pub fn release(self) {
        if let Sender::H1(tx) = self.tx {
            if tx.is_ready() {
                self.conn.set_busy(false);
                self.pool.put(Idle { tx, conn: self.conn });
            }
        }
    }
}

/// One worker's connections to one upstream. Aligned to its own cache lines, like the proxy:
/// its idle stacks are locked on every request, and the workers' pools are allocated side by side.
#[repr(align(128))]
pub struct Pool {
    upstream: Arc<Upstream>,
    settings: Arc<PoolSettings>,
    idle: Mutex<Vec<Idle>>,
    /// For a plain `http://` upstream spoken to in HTTP/1.1: the lean exchange's connections.
    lean: Option<Arc<LeanPool>>,
    h2: Mutex<Option<(http2::SendRequest<RequestBody>, Arc<UpConn>)>>,
}

impl Pool {
    /// An empty pool for `upstream`.
    pub fn new(upstream: Arc<Upstream>, settings: Arc<PoolSettings>) -> Arc<Self> {
        let lean = (!settings.h2 && !upstream.url.tls).then(|| LeanPool::new(upstream.clone(), settings.clone()));
        Arc::new(Self { upstream, settings, idle: Mutex::new(Vec::new()), lean, h2: Mutex::new(None) })
    }

    /// Whether this pool speaks HTTP/2 to its upstream.
    pub fn speaks_h2(&self) -> bool {
        self.settings.h2
    }

    /// The upstream this pool connects to.
    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    /// The lean exchange's pool, for requests without a body ([`super::lean`]): a plain `http://`
    /// upstream spoken to in HTTP/1.1.
    pub fn lean(&self) -> Option<&Arc<LeanPool>> {
        self.lean.as_ref()
    }

    /// A ready connection: the most recently used idle one, or a new one.
    pub async fn checkout(self: &Arc<Self>) -> Result<Checkout, Cause> {
        if self.settings.h2 {
            let shared = self.h2.lock().ok().and_then(|g| g.clone());
            if let Some((tx, conn)) = shared {
                if !tx.is_closed() {
                    return Ok(Checkout { tx: Sender::H2(tx), conn, reused: true, pool: self.clone() });
                }
            }
            return Box::pin(self.connect()).await;
        }
        let idle_ms = self.settings.idle_timeout.as_millis() as u64;
        loop {
            let entry = match self.idle.lock() {
                Ok(mut idle) => idle.pop(),
                Err(_) => None,
            };
            let Some(entry) = entry else { break };
            if entry.tx.is_closed()
                || !entry.tx.is_ready()
                || coarse_ms().saturating_sub(entry.conn.last_io()) >= idle_ms
            {
                continue;
            }
            entry.conn.set_busy(true);
            return Ok(Checkout { tx: Sender::H1(entry.tx), conn: entry.conn, reused: true, pool: self.clone() });
        }
        // Boxed: connecting (TCP, maybe TLS) is the rare path; its large future would otherwise
        // sit in every request's future, which hyper moves per request.
        Box::pin(self.connect()).await
    }

    fn put(&self, idle: Idle) {
        if let Ok(mut stack) = self.idle.lock() {
            if stack.len() < self.settings.max_idle {
                stack.push(idle);
            }
        }
    }

    /// Opens a new connection (trying each address within the connect timeout).
    async fn connect(self: &Arc<Self>) -> Result<Checkout, Cause> {
        let budget = self.settings.connect_timeout;
        let stream = tokio::time::timeout(budget, async {
            let tcp = connect_any(&self.upstream, budget).await?;
            self.secure(tcp).await
        })
        .await
        .map_err(|_| Cause::ConnectTimeout)??;
        let conn = Arc::new(UpConn::to(stream.peer_addr()));
        conn.set_busy(true);
        let io = TokioIo::new(ObservedIo::new(stream, conn.clone()));
        let watch = Watchdog::new(conn.clone(), &self.settings);
        if self.settings.h2 {
            let (tx, c) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(Duration::from_secs(30))
                .handshake::<Io, RequestBody>(io)
                .await
                .map_err(|_| Cause::Protocol)?;
            watch.spawn(c);
            if let Ok(mut shared) = self.h2.lock() {
                *shared = Some((tx.clone(), conn.clone()));
            }
            return Ok(Checkout { tx: Sender::H2(tx), conn, reused: false, pool: self.clone() });
        }
        let (tx, c) = http1::Builder::new().handshake::<Io, RequestBody>(io).await.map_err(|_| Cause::Protocol)?;
        watch.spawn(c.with_upgrades());
        Ok(Checkout { tx: Sender::H1(tx), conn, reused: false, pool: self.clone() })
    }
}

impl Pool {
    /// TLS over the new TCP connection for `https://` upstreams (within the connect timeout).
    async fn secure(&self, tcp: TcpStream) -> Result<UpStream, Cause> {
        let up = &self.upstream;
        let (Some(config), Some(name)) = (&self.settings.tls, &up.server_name) else {
            return if up.url.tls { Err(Cause::Tls) } else { Ok(UpStream::Plain(tcp)) };
        };
        match tokio_rustls::TlsConnector::from(config.clone()).connect(name.clone(), tcp).await {
            Ok(tls) => Ok(UpStream::Tls(Box::new(tls))),
            Err(e) => {
                tracing::warn!(upstream = %up.name, error = %e, "TLS handshake with the upstream failed");
                Err(Cause::Tls)
            }
        }
    }
}

/// Tries the addresses in turn; each gets a share of the connect timeout (at least a second), so
/// one address that drops SYNs does not use up the whole budget.
pub(crate) async fn connect_any(up: &Upstream, budget: Duration) -> Result<TcpStream, Cause> {
    let (addrs, start) = up.addrs();
    if addrs.is_empty() {
        return Err(Cause::Unresolved);
    }
    let each = (budget / addrs.len() as u32).max(Duration::from_secs(1)).min(budget);
    let mut last = Cause::ConnectFailed;
    for i in 0..addrs.len() {
        let addr: SocketAddr = addrs[(start + i) % addrs.len()];
        match tokio::time::timeout(each, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => last = Cause::ConnectRefused,
            Ok(Err(_)) => last = Cause::ConnectFailed,
            Err(_) => last = Cause::ConnectTimeout,
        }
    }
    Err(last)
}

/// Closes a connection that is silent too long while busy, or idle too long while pooled. It runs
/// as a task of its own, so the connection's task polls a oneshot instead of a timer on every wake.
pub(crate) struct Watchdog {
    conn: Arc<UpConn>,
    silence: Duration,
    idle: Duration,
}

impl Watchdog {
    /// The watchdog of a new connection.
    pub(crate) fn new(conn: Arc<UpConn>, settings: &PoolSettings) -> Self {
        Self { conn, silence: settings.upstream_timeout, idle: settings.idle_timeout }
    }

    /// Spawns the connection future and its watchdog.
    fn spawn<F>(self, conn_future: F)
    where
        F: std::future::Future + Send + 'static,
    {
        let (ring, mut rang) = tokio::sync::oneshot::channel::<()>();
        let watch = tokio::spawn(self.watch(ring));
        tokio::spawn(async move {
            tokio::pin!(conn_future);
            tokio::select! {
                biased;
                _ = &mut conn_future => {}
                _ = &mut rang => {}
            }
            watch.abort();
        });
    }

    /// Rings `ring` when the connection should close (marking a busy one as timed out).
    pub(crate) async fn watch(self, ring: tokio::sync::oneshot::Sender<()>) {
        let (silence_ms, idle_ms) = (self.silence.as_millis() as u64, self.idle.as_millis() as u64);
        let mut wait = self.silence.min(self.idle);
        loop {
            tokio::time::sleep(wait).await;
            let quiet = coarse_ms().saturating_sub(self.conn.last_io());
            let busy = self.conn.busy.load(Ordering::Relaxed);
            let limit = if busy { silence_ms } else { idle_ms };
            if quiet >= limit {
                if busy {
                    self.conn.timed_out.store(true, Ordering::Relaxed);
                }
                let _ = ring.send(());
                return;
            }
            wait = Duration::from_millis(limit - quiet);
        }
    }
}
