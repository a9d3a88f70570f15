//! The request path: take a client request, rewrite its headers as a standard reverse proxy does,
//! send it to the upstream over a pooled connection, stream the response back, and record it when
//! it ends. One [`Proxy`] per worker thread, so nothing here takes a lock shared between cores.

pub mod body;
pub mod h1;
mod handle;
pub mod record;
pub mod rewrite;
pub mod stats;
mod tunnel;

use std::sync::Arc;
use std::time::Duration;

use crate::base::cause::Cause;
use crate::base::host::normalize_host_into;
use crate::base::names::named_enum;
use crate::log::{AccessLog, AccessRecord, Text};
use crate::net::conn::ConnState;
use crate::net::shutdown::Tracker;
use crate::record::{Lane, Ledger, MovedHosts};
use crate::upstream::pool::{Pool, PoolSettings};
use crate::upstream::Upstreams;
use rewrite::TrustedProxies;
use stats::{WorkerStats, WorkerView};

/// Whether a request is a gRPC call, by its `Content-Type` ([`h1::is_grpc_type`]).
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers.get(http::header::CONTENT_TYPE).is_some_and(|t| h1::is_grpc_type(t.as_bytes()))
}

named_enum! {
    /// Which HTTP blue is spoken to in.
    pub enum UpstreamProtocol {
        /// HTTP/2 clients and gRPC (`application/grpc`) over h2c (h2 for `https://`), HTTP/1.x
        /// clients over HTTP/1.1: Envoy's `use_downstream_protocol`.
        Auto = "auto",
        /// HTTP/1.1 for every request (upgrades pass).
        Http1 = "http1",
        /// HTTP/2 with prior knowledge for every request (`--upstream-h2`).
        H2 = "h2",
    }
}

named_enum! {
    /// Which server reads HTTP/1.x on plain and HTTPS listeners (`--http1-server`).
    pub enum Http1Server {
        /// The proxy's own ([`h1`]): requests (bodies up to 64 KiB) go to blue byte for byte; a
        /// connection with anything else is handed to hyper's.
        Own = "own",
        /// hyper's for every request.
        Hyper = "hyper",
    }
}

/// Settings the request path reads.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Networks whose X-Forwarded-For is believed.
    pub trusted: TrustedProxies,
    /// Which HTTP blue is spoken to in (`--upstream-protocol`).
    pub upstream_protocol: UpstreamProtocol,
    /// `--http1-server`.
    pub http1_server: Http1Server,
    /// Upstream response timeout (HTTP/2 upstreams; HTTP/1.1 uses the connection watchdog).
    pub upstream_timeout: Duration,
    /// Idle timeout of upgraded tunnels.
    pub tunnel_idle_timeout: Duration,
    /// Log the query string too.
    pub log_query: bool,
    /// Which requests get an access line.
    pub log_requests: LogRequests,
    /// `--close-stale-connections`.
    pub close_stale_connections: bool,
    /// Upgrade protocols passed to blue (`websocket` and `--allow-upgrade`); others are dropped
    /// with the other hop-by-hop headers, so no tunnel bypasses the ledger.
    pub upgrades: Vec<Box<str>>,
    /// `--client-body-timeout`: a request body silent (or below `client_body_min_rate`) this long
    /// is answered 408.
    pub client_body_timeout: Duration,
    /// `--client-body-min-rate`, bytes per second over each `client_body_timeout` (0: any byte
    /// restarts the timeout, as nginx's `client_body_timeout`).
    pub client_body_min_rate: u64,
}

impl ProxySettings {
    /// The protocols of an `Upgrade` value that are passed to blue (by name, version kept), as
    /// the value to forward; `None` when there is none.
    pub fn allowed_upgrade(&self, upgrade: &http::HeaderValue) -> Option<http::HeaderValue> {
        let allowed = |token: &[u8]| {
            let name = token.split(|b| *b == b'/').next().unwrap_or_default();
            self.upgrades.iter().any(|p| p.as_bytes().eq_ignore_ascii_case(name))
        };
        let tokens: Vec<&[u8]> =
            upgrade.as_bytes().split(|b| *b == b',').map(<[u8]>::trim_ascii).filter(|t| allowed(t)).collect();
        if tokens.is_empty() {
            return None;
        }
        if tokens.len() == 1 && tokens[0] == upgrade.as_bytes() {
            return Some(upgrade.clone());
        }
        http::HeaderValue::from_bytes(&tokens.join(&b", "[..])).ok()
    }
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            trusted: TrustedProxies::default(),
            upstream_protocol: UpstreamProtocol::Http1,
            http1_server: Http1Server::Own,
            upstream_timeout: Duration::from_secs(60),
            tunnel_idle_timeout: Duration::from_secs(3600),
            log_query: false,
            log_requests: LogRequests::All,
            close_stale_connections: false,
            upgrades: vec!["websocket".into()],
            client_body_timeout: Duration::from_secs(60),
            client_body_min_rate: 64,
        }
    }
}

named_enum! {
    /// `--log-requests`: which requests get an access line.
    pub enum LogRequests {
        /// Every request.
        All = "all",
        /// Only requests green would not route (or whose verdict is unknown).
        Unrouted = "unrouted",
        /// None (events only).
        None = "none",
    }
}

/// One worker's proxy: its own upstream pools and log handle. Aligned to its own cache lines: the
/// workers' proxies are allocated one after the other at start-up, and each worker changes its
/// reference count on every request, so no line may hold a piece of two workers' proxies.
#[repr(align(128))]
pub struct Proxy {
    settings: Arc<ProxySettings>,
    upstreams: Arc<Upstreams>,
    pools: Vec<Arc<Pool>>,
    /// With `--upstream-protocol auto`: the same upstreams spoken to in HTTP/2.
    pools_h2: Vec<Arc<Pool>>,
    log: AccessLog,
    ledger: Option<(Arc<Ledger>, Arc<Lane>)>,
    /// Live upgraded tunnels of this worker (waited for at shutdown).
    pub tunnels: Arc<Tracker>,
    /// With `--close-stale-connections`: hosts whose DNS moved to green.
    moves: Option<Arc<MovedHosts>>,
    /// Live client connections of this worker (waited for at shutdown).
    pub conns: Arc<Tracker>,
    /// This worker's own request counters, read by `/metrics`.
    pub stats: Arc<WorkerStats>,
}

impl Proxy {
    /// A worker's proxy with empty pools.
    pub fn new(
        settings: Arc<ProxySettings>,
        upstreams: Arc<Upstreams>,
        pool: Arc<PoolSettings>,
        pool_h2: Option<Arc<PoolSettings>>,
        log: AccessLog,
        ledger: Option<Arc<Ledger>>,
    ) -> Self {
        let pools = upstreams.list.iter().map(|u| Pool::new(u.clone(), pool.clone())).collect();
        let pools_h2 = match pool_h2 {
            Some(h2) => upstreams.list.iter().map(|u| Pool::new(u.clone(), h2.clone())).collect(),
            None => Vec::new(),
        };
        let ledger = ledger.map(|l| {
            let lane = l.lane();
            (l, lane)
        });
        let moves = if settings.close_stale_connections { ledger.as_ref().map(|(l, _)| l.moves()) } else { None };
        Self {
            settings,
            upstreams,
            pools,
            pools_h2,
            log,
            ledger,
            tunnels: Arc::default(),
            conns: Arc::default(),
            stats: Arc::default(),
            moves,
        }
    }

    /// What `/metrics` reads of this worker.
    pub fn view(&self) -> WorkerView {
        WorkerView { stats: self.stats.clone(), conns: self.conns.clone(), tunnels: self.tunnels.clone() }
    }

    /// The shared ledger and this worker's lane of it (`None` with `--no-record`).
    pub fn ledger(&self) -> Option<(&Ledger, &Lane)> {
        self.ledger.as_ref().map(|(l, t)| (l.as_ref(), t.as_ref()))
    }

    /// The pool a request goes through: its upstream's, in the protocol the request asks for
    /// under `--upstream-protocol auto` (HTTP/2 for an HTTP/2 client or a gRPC call).
    fn pool_for(&self, i: usize, version: http::Version, headers: &http::HeaderMap) -> &Arc<Pool> {
        if !self.pools_h2.is_empty() && (version == http::Version::HTTP_2 || is_grpc(headers)) {
            return &self.pools_h2[i];
        }
        &self.pools[i]
    }

    /// Whether HTTP/1.x connections (plain, or HTTPS by ALPN) start on the own server side: it is asked
    /// for, and some upstream is spoken to by the lean exchange (a plain `http://` blue in
    /// HTTP/1.1; otherwise every request would be handed to hyper's side).
    pub fn serves_h1(&self) -> bool {
        self.settings.http1_server == Http1Server::Own && self.pools.iter().any(|p| p.lean().is_some())
    }

    /// The settings the request path reads.
    pub fn settings(&self) -> &ProxySettings {
        &self.settings
    }

    /// The worker's log handle.
    pub fn log(&self) -> &AccessLog {
        &self.log
    }

    /// hyper answered a request head it could not read (400, 414 or 431) and closed the
    /// connection: an access line and a count, so refused traffic is not invisible.
    pub fn head_refused(&self, conn: &ConnState, e: &hyper::Error) {
        let (cause, status) = if e.is_parse_too_large() {
            // hyper answers a target that is too long with 414, a head that is too large with 431.
            (Cause::HeadTooLarge, if e.to_string().contains("URI") { 414 } else { 431 })
        } else if e.is_parse() {
            (Cause::BadRequest, 400)
        } else {
            return;
        };
        self.stats.count(cause);
        self.log.access(AccessRecord {
            ts: std::time::SystemTime::now(),
            client_ip: conn.peer.ip(),
            method: http::Method::from_bytes(b"-").unwrap_or_default(),
            host: None,
            path: Text::new(b"-"),
            version: http::Version::HTTP_11,
            status,
            bytes_in: 0,
            bytes_out: 0,
            duration: std::time::Duration::ZERO,
            upstream: "",
            upstream_addr: None,
            user_agent: None,
            request_id: None,
            grpc_status: None,
            error: Some(cause),
            stale_conn: false,
            tls: None,
        });
    }

    /// Whether this host's DNS moved to green (only asked with `--close-stale-connections`).
    fn host_moved(&self, host: Option<&[u8]>) -> bool {
        let Some(moves) = &self.moves else { return false };
        if moves.is_empty() {
            return false;
        }
        thread_local! {
            static HOST: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        HOST.with(|buf| {
            let mut buf = buf.borrow_mut();
            normalize_host_into(host, &mut buf);
            moves.get(&buf).is_some()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_is_grpc_and_its_variants_not_grpc_web() {
        let with = |t: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::CONTENT_TYPE, t.parse().unwrap());
            is_grpc(&h)
        };
        assert!(with("application/grpc") && with("application/grpc+proto") && with("Application/GRPC; charset=x"));
        assert!(!with("application/grpc-web+proto") && !with("application/grpcx") && !with("text/plain"));
    }

    #[test]
    fn only_allowed_upgrade_protocols_are_kept() {
        let s = ProxySettings { upgrades: vec!["websocket".into(), "x-custom".into()], ..ProxySettings::default() };
        let up = |v: &str| s.allowed_upgrade(&v.parse().unwrap()).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(up("websocket").as_deref(), Some("websocket"));
        assert_eq!(up("WebSocket").as_deref(), Some("WebSocket"));
        assert_eq!(up("websocket, h2c").as_deref(), Some("websocket"));
        assert_eq!(up("h2c, x-custom/2").as_deref(), Some("x-custom/2"));
        assert_eq!(up("h2c"), None);
        assert_eq!(up("TLS/1.2"), None);
    }
}
