//! Accepting clients: one thread per core, each with its own single-threaded runtime, its own
//! `SO_REUSEPORT` socket per listen address and its own [`Proxy`] (upstream pools included), so
//! the kernel spreads connections and no request crosses a core.

pub mod conn;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::error::ConfigError;
use crate::io::ObservedIo;
use crate::proxy::Proxy;
use crate::shutdown::{Shutdown, Tracker};
use conn::{Alarm, ConnState, Expiry, Registry};

/// Client-side timeouts.
#[derive(Debug, Clone, Copy)]
pub struct ClientTimeouts {
    /// A request header must be complete within this.
    pub header: Duration,
    /// An idle keep-alive connection is closed after this.
    pub idle: Duration,
}

/// Binds `addr` once per worker with `SO_REUSEPORT`; port 0 is resolved by the first socket and
/// reused by the others. Returns the sockets and the bound address.
pub fn bind_reuseport(
    addr: SocketAddr,
    workers: usize,
) -> Result<(Vec<std::net::TcpListener>, SocketAddr), ConfigError> {
    let err = |source| ConfigError::Bind { addr, source };
    let mut sockets = Vec::with_capacity(workers);
    let mut bound = addr;
    for _ in 0..workers {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
        socket.set_reuse_address(true).map_err(err)?;
        socket.set_reuse_port(true).map_err(err)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true).map_err(err)?;
        }
        socket.set_nonblocking(true).map_err(err)?;
        socket.bind(&bound.into()).map_err(err)?;
        socket.listen(4096).map_err(err)?;
        let listener: std::net::TcpListener = socket.into();
        bound = listener.local_addr().map_err(err)?;
        sockets.push(listener);
    }
    Ok((sockets, bound))
}

/// What one worker thread runs.
pub struct Worker {
    /// The worker's proxy.
    pub proxy: Arc<Proxy>,
    /// Its listener sockets.
    pub listeners: Vec<std::net::TcpListener>,
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
        let mut http = auto::Builder::new(TokioExecutor::new());
        // No hyper header timer: the per-connection watchdog enforces it without a timer per request.
        http.http1().timer(TokioTimer::new()).header_read_timeout(None).keep_alive(true);
        http.http2().timer(TokioTimer::new()).keep_alive_interval(Some(Duration::from_secs(60)));
        let http = Arc::new(http);
        let conns = Arc::new(Tracker::default());
        let registry = Arc::new(Registry::default());
        let mut accepts = Vec::new();
        for std_listener in self.listeners {
            let listener = TcpListener::from_std(std_listener)?;
            let ctx = ConnCtx {
                proxy: self.proxy.clone(),
                http: http.clone(),
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
    proxy: Arc<Proxy>,
    http: Arc<auto::Builder<TokioExecutor>>,
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
                    tokio::spawn(serve_conn(ctx.clone(), stream, peer));
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

async fn serve_conn(ctx: ConnCtx, stream: TcpStream, peer: SocketAddr) {
    let _guard = ctx.conns.enter();
    let trusted = ctx.proxy.settings().trusted.contains(peer.ip());
    let state = Arc::new(ConnState::new(peer, trusted));
    let io = TokioIo::new(ObservedIo::new(stream, state.clone()));
    let (proxy, svc_state) = (ctx.proxy.clone(), state.clone());
    let svc = service_fn(move |req| proxy.clone().handle(svc_state.clone(), req));
    let conn = ctx.http.serve_connection_with_upgrades(io, svc);
    tokio::pin!(conn);
    let (alarm, mut rang) = Alarm::new();
    let watchdog = tokio::spawn(conn::watch(state.clone(), alarm.clone(), ctx.timeouts.header, ctx.timeouts.idle));
    let id = ctx.registry.add(alarm);
    let mut closing = false;
    loop {
        tokio::select! {
            biased;
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(peer = %peer, error = %e, "client connection ended with an error");
                }
                break;
            }
            why = &mut rang, if !closing => match why {
                Ok(Expiry::HeaderTimeout) => {
                    tracing::debug!(peer = %peer, "request header timeout: closing the connection");
                    break;
                }
                // Idle or draining: HTTP/1.1 closes after the response in flight, HTTP/2 sends GOAWAY.
                Ok(Expiry::Idle | Expiry::Drain) | Err(_) => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            },
        }
    }
    watchdog.abort();
    ctx.registry.remove(id);
}
