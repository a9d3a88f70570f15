//! The request path: take a client request, rewrite its headers as a standard reverse proxy does,
//! send it to the upstream over a pooled connection, stream the response back. One [`Proxy`] per
//! worker thread, so nothing here takes a lock shared between cores.

pub mod body;
pub mod headers;
pub mod tunnel;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;

use crate::error::UpstreamError;
use crate::listen::conn::ConnState;
use crate::log::{AccessLog, Text};
use crate::metrics::{WorkerStats, WorkerView};
use crate::record::ledger::{Lane, Ledger, MovedHosts, TlsObservation};
use crate::record::normalize::normalize_host_into;
use crate::shutdown::Tracker;
use crate::tls::certs::CertChoice;
use crate::upstream::pool::{Checkout, Pool, PoolSettings};
use crate::upstream::Upstreams;
use body::{Finish, ProxyBody, ReqShared, RequestBody};
use headers::TrustedProxies;

/// Settings the request path reads.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Networks whose X-Forwarded-For is believed.
    pub trusted: TrustedProxies,
    /// h2c toward the upstream.
    pub upstream_h2: bool,
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
}

/// `--log-requests`: which requests get an access line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogRequests {
    /// Every request.
    All,
    /// Only requests green would not route (or whose verdict is unknown).
    Unrouted,
    /// None (events only).
    None,
}

/// One worker's proxy: its own upstream pools and log handle. Aligned to its own cache lines: the
/// workers' proxies are allocated one after the other at start-up, and each worker changes its
/// reference count on every request, so no line may hold a piece of two workers' proxies.
#[repr(align(128))]
pub struct Proxy {
    settings: Arc<ProxySettings>,
    upstreams: Arc<Upstreams>,
    pools: Vec<Arc<Pool>>,
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
        log: AccessLog,
        ledger: Option<Arc<Ledger>>,
    ) -> Self {
        let pools = upstreams.list.iter().map(|u| Pool::new(u.clone(), pool.clone())).collect();
        let ledger = ledger.map(|l| {
            let lane = l.lane();
            (l, lane)
        });
        let moves = if settings.close_stale_connections { ledger.as_ref().map(|(l, _)| l.moves()) } else { None };
        Self {
            settings,
            upstreams,
            pools,
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

    /// Whether this host's DNS moved to green (only asked with `--close-stale-connections`).
    fn host_moved(&self, host: Option<&HeaderValue>) -> bool {
        let Some(moves) = &self.moves else { return false };
        if moves.is_empty() {
            return false;
        }
        thread_local! {
            static HOST: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        HOST.with(|buf| {
            let mut buf = buf.borrow_mut();
            normalize_host_into(host.map(|h| h.as_bytes()), &mut buf);
            moves.get(&buf).is_some()
        })
    }

    /// When DNS already sends this host to green, lets the client reconnect (and re-resolve)
    /// after this response; the request itself is answered normally.
    fn close_if_moved<B>(&self, resp: &mut Response<B>, host: Option<&HeaderValue>, client: Version, conn: &ConnState) {
        if self.host_moved(host) {
            if client == Version::HTTP_2 {
                conn.close_after_response();
            } else {
                resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
        }
    }

    /// The shared ledger and this worker's lane of it (`None` with `--no-record`).
    pub fn ledger(&self) -> Option<(&Ledger, &Lane)> {
        self.ledger.as_ref().map(|(l, t)| (l.as_ref(), t.as_ref()))
    }

    /// The settings the request path reads.
    pub fn settings(&self) -> &ProxySettings {
        &self.settings
    }

    /// The worker's log handle.
    pub fn log(&self) -> &AccessLog {
        &self.log
    }

    /// Forwards one request. Never fails: upstream problems become 502/504 responses.
    pub async fn handle(
        self: Arc<Self>,
        conn: Arc<ConnState>,
        mut req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        conn.request_started();
        let start = Instant::now();
        let host = match req.headers().get(header::HOST) {
            Some(h) => Some(h.clone()),
            None => req.uri().authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
        };
        let pool = &self.pools[self.upstreams.pick(host.as_ref().map(|h| h.as_bytes()))];
        let client_version = req.version();
        self.stats.request_started();
        let tls = conn.tls.as_ref().map(|t| TlsObservation {
            default_cert: t.cert == CertChoice::Default,
            sni_mismatch: match (&t.sni, &host) {
                (Some(sni), Some(host)) => crate::tls::sni_mismatch(sni, host.as_bytes()),
                _ => false,
            },
        });
        // Boxed: hyper moves the request's future and the response body several times per
        // request; a pointer moves cheaper than the whole record.
        let mut finish = Box::new(Finish {
            proxy: self.clone(),
            conn: conn.clone(),
            start,
            ts: crate::shutdown::wall_clock(start),
            method: req.method().clone(),
            host: host.as_ref().map(|h| Text::new(h.as_bytes())),
            target: Text::new(req.uri().path_and_query().map_or(b"/", |pq| pq.as_str().as_bytes())),
            version: req.version(),
            client_ip: headers::client_ip(conn.peer.ip(), req.headers(), &self.settings.trusted),
            user_agent: req.headers().get(header::USER_AGENT).map(|ua| Text::new(ua.as_bytes())),
            conn_age_ms: crate::shutdown::now_ms().saturating_sub(conn.accepted_ms),
            tls,
            status: 0,
            upstream: pool.upstream().name,
            error: None,
            req: None,
            bytes_out: 0,
            tunnel_in: 0,
            complete: false,
            recorded: None,
            tunnelled: false,
        });
        if req.method() == Method::CONNECT {
            return Ok(own_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "405 Method Not Allowed: this is a reverse proxy\n",
                finish,
                "connect_refused",
            ));
        }

        let hop = headers::strip_hop_by_hop(req.headers_mut());
        let client_upgrade = match (&hop.upgrade, req.version()) {
            (Some(_), Version::HTTP_11) => Some(hyper::upgrade::on(&mut req)),
            _ => None,
        };
        let (mut parts, body) = req.into_parts();
        let h = &mut parts.headers;
        if let (Some(value), Some(_)) = (&hop.upgrade, &client_upgrade) {
            h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            h.insert(header::UPGRADE, value.clone());
        }
        if hop.te_trailers {
            h.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        if h.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")) {
            // hyper already answers 100 Continue to the client when the body is first read.
            h.remove(header::EXPECT);
        }
        let proto = if conn.tls.is_some() { "https" } else { "http" };
        headers::set_forwarded(h, &conn.peer_ip, conn.peer_trusted, proto, host.as_ref());
        let upstream = pool.upstream();
        if self.settings.upstream_h2 {
            parts.version = Version::HTTP_2;
            let authority = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("");
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            parts.uri = Uri::try_from(format!("http://{authority}{path}"))
                .or_else(|_| Uri::try_from(format!("http://{}{path}", upstream.url.authority())))
                .unwrap_or_else(|_| Uri::from_static("/"));
            parts.headers.remove(header::HOST);
        } else {
            parts.version = Version::HTTP_11;
            if parts.uri.authority().is_some() {
                parts.uri =
                    parts.uri.path_and_query().map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
            }
            if !parts.headers.contains_key(header::HOST) {
                parts.headers.insert(header::HOST, host.clone().unwrap_or_else(|| upstream.authority.clone()));
            }
        }
        if pool.lean() && client_upgrade.is_none() && http_body::Body::is_end_stream(&body) {
            // No body to send and no upgrade: the lean exchange in this task (upstream/h1.rs).
            drop(body);
            let mut resp = match pool.exchange(&parts).await {
                Ok(resp) => resp,
                Err(e) => return Ok(error_response(e, finish)),
            };
            finish.status = resp.status().as_u16();
            headers::strip_hop_by_hop(resp.headers_mut());
            self.close_if_moved(&mut resp, host.as_ref(), client_version, &conn);
            return Ok(resp.map(|body| ProxyBody::lean(body, finish)));
        }
        let shared = Arc::new(ReqShared::default());
        finish.req = Some(shared.clone());
        let up_req = Request::from_parts(parts, RequestBody::new(body, shared.clone()));

        let mut checkout = match pool.checkout().await {
            Ok(c) => c,
            Err(e) => return Ok(error_response(e, finish)),
        };
        let sent = if self.settings.upstream_h2 {
            // Boxed: the timer would otherwise sit in every HTTP/1.1 request's future too.
            match Box::pin(tokio::time::timeout(self.settings.upstream_timeout, checkout.send(up_req))).await {
                Ok(r) => r,
                Err(_) => return Ok(error_response(UpstreamError::Timeout, finish)),
            }
        } else {
            checkout.send(up_req).await
        };
        let mut resp = match sent {
            Ok(resp) => resp,
            Err(e) => return Ok(error_response(classify(&e, &checkout, &shared), finish)),
        };
        finish.status = resp.status().as_u16();
        let resp_hop = headers::strip_hop_by_hop(resp.headers_mut());
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return Ok(error_response(UpstreamError::Protocol, finish));
            };
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            if let Some(value) = resp_hop.upgrade.or(hop.upgrade) {
                resp.headers_mut().insert(header::UPGRADE, value);
            }
            // Counted now: a WebSocket may stay open for hours and must show in the report meanwhile.
            finish.record(Instant::now());
            finish.into_tunnel();
            let guard = self.tunnels.enter();
            let idle = self.settings.tunnel_idle_timeout;
            tokio::spawn(tunnel::run(client_upgrade, upstream_upgrade, finish, checkout.conn.clone(), idle, guard));
            return Ok(resp.map(|_| ProxyBody::empty()));
        }
        self.close_if_moved(&mut resp, host.as_ref(), client_version, &conn);
        if self.settings.upstream_h2 {
            let limit = self.settings.upstream_timeout;
            return Ok(resp.map(|body| ProxyBody::upstream_h2(body, checkout, finish, limit)));
        }
        Ok(resp.map(|body| ProxyBody::upstream(body, checkout, finish)))
    }
}

/// Which failure a hyper error from the upstream exchange was.
fn classify(e: &hyper::Error, checkout: &Checkout, req: &ReqShared) -> UpstreamError {
    if checkout.conn.timed_out() || e.is_timeout() {
        UpstreamError::Timeout
    } else if req.client_failed() {
        UpstreamError::ClientAborted
    } else if e.is_parse() || e.is_parse_status() {
        UpstreamError::Protocol
    } else {
        UpstreamError::Reset
    }
}

fn error_response(e: UpstreamError, finish: Box<Finish>) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    own_response(status, e.body(), finish, e.cause())
}

fn own_response(
    status: StatusCode,
    text: &'static str,
    mut finish: Box<Finish>,
    cause: &'static str,
) -> Response<ProxyBody> {
    finish.status = status.as_u16();
    finish.error = Some(cause);
    let mut resp = Response::new(ProxyBody::full(text, Some(finish)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}
