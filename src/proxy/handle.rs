//! One request's life, as named phases: [`Proxy::handle`] opens its record, rewrites it for the
//! upstream, sends it by the lean exchange or hyper's client, and shapes the response (or hands a
//! 101 to a tunnel). Upstream failures become the proxy's own 502/504 with a cause.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{request, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::body::ProxyBody;
use super::record::RequestRecord;
use super::rewrite::{self, HopByHop};
use super::{tunnel, Proxy};
use crate::base::cause::Cause;
use crate::base::host::INVALID_HOST;
use crate::base::time::{coarse_ms, wall_clock};
use crate::log::Text;
use crate::net::conn::ConnState;
use crate::record::TlsObservation;
use crate::tls::certs::CertChoice;
use crate::upstream::body::{ReqShared, RequestBody};
use crate::upstream::pool::{Checkout, Pool};
use crate::upstream::Upstream;

/// Request ids the access line carries, as a client or blue's load balancer sent them.
const X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");
const X_AMZN_TRACE_ID: header::HeaderName = header::HeaderName::from_static("x-amzn-trace-id");

impl Proxy {
    /// Forwards one request. Never fails: upstream problems become 502/504 responses.
    pub async fn handle(
        self: Arc<Self>,
        conn: Arc<ConnState>,
        mut req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        conn.request_started();
        let host = match request_host(&req) {
            Ok(host) => host,
            Err(cause) => {
                // Refused here, recorded under a placeholder: nothing reaches blue.
                let placeholder = (cause == Cause::HostRepeated).then(|| HeaderValue::from_static(INVALID_HOST));
                let record = self.open_record(&conn, &req, placeholder.as_ref(), self.pools[0].upstream());
                return Ok(own_response(cause, record));
            }
        };
        let pool =
            self.pool_for(self.upstreams.pick(host.as_ref().map(|h| h.as_bytes())), req.version(), req.headers());
        let record = self.open_record(&conn, &req, host.as_ref(), pool.upstream());
        if req.method() == Method::CONNECT {
            return Ok(own_response(Cause::ConnectMethod, record));
        }
        let client_version = req.version();
        let mut hop = rewrite::strip_hop_by_hop(req.headers_mut());
        // Only the protocols passed to blue; `h2c` (retired by RFC 9113) and unknown ones are
        // dropped as hop-by-hop.
        hop.upgrade = hop.upgrade.and_then(|u| self.settings.allowed_upgrade(&u));
        let client_upgrade = match (&hop.upgrade, req.version()) {
            (Some(_), Version::HTTP_11) => Some(hyper::upgrade::on(&mut req)),
            _ => None,
        };
        let (mut parts, body) = req.into_parts();
        self.rewrite_for_upstream(&mut parts, &hop, client_upgrade.is_some(), &conn, host.as_ref(), pool);
        let response =
            if let (Some(lean), None, true) = (pool.lean(), &client_upgrade, http_body::Body::is_end_stream(&body)) {
                // No body to send and no upgrade: the lean exchange in this task (upstream/lean).
                drop(body);
                match lean.exchange(&parts).await {
                    Ok(resp) => {
                        let mut record = record;
                        record.upstream_addr = resp.body().upstream_addr();
                        resp.map(|body| ProxyBody::lean(body, record))
                    }
                    Err(cause) => return Ok(own_response(cause, record)),
                }
            } else {
                match self.send_by_hyper(pool, parts, body, hop, client_upgrade, record).await {
                    Sent::Response(resp) => resp,
                    Sent::Done(resp) => return Ok(resp),
                }
            };
        Ok(self.shape_response(response, host.as_ref(), client_version, &conn))
    }

    /// The request's record, opened as it arrives (host, path and user agent copied, so hyper's
    /// read buffer is not held).
    fn open_record(
        self: &Arc<Self>,
        conn: &Arc<ConnState>,
        req: &Request<Incoming>,
        host: Option<&HeaderValue>,
        upstream: &Upstream,
    ) -> Box<RequestRecord> {
        let h = req.headers();
        self.open_record_of(
            conn,
            Opening {
                method: req.method().clone(),
                host: host.map(HeaderValue::as_bytes),
                target: req.uri().path_and_query().map_or(b"/", |pq| pq.as_str().as_bytes()),
                version: req.version(),
                client_ip: rewrite::client_ip(conn.peer.ip(), h, &self.settings.trusted),
                user_agent: h.get(header::USER_AGENT).map(HeaderValue::as_bytes),
                request_id: h.get(X_REQUEST_ID).or_else(|| h.get(X_AMZN_TRACE_ID)).map(HeaderValue::as_bytes),
            },
            upstream,
        )
    }

    /// The record of a request described by `o` (either server side).
    pub(super) fn open_record_of(
        self: &Arc<Self>,
        conn: &Arc<ConnState>,
        o: Opening<'_>,
        upstream: &Upstream,
    ) -> Box<RequestRecord> {
        let start = Instant::now();
        self.stats.request_started();
        let tls = conn.tls.as_ref().map(|t| TlsObservation {
            default_cert: t.cert == CertChoice::Default,
            sni_mismatch: match (&t.sni, o.host) {
                (Some(sni), Some(host)) => crate::tls::accept::sni_mismatch(sni, host),
                _ => false,
            },
        });
        // Boxed: hyper moves the request's future and the response body several times per
        // request; a pointer moves cheaper than the whole record.
        Box::new(RequestRecord {
            proxy: self.clone(),
            conn: conn.clone(),
            start,
            ts: wall_clock(start),
            method: o.method,
            host: o.host.map(Text::new),
            target: Text::new(o.target),
            version: o.version,
            client_ip: o.client_ip,
            user_agent: o.user_agent.map(Text::new),
            request_id: o.request_id.map(Text::new),
            conn_age_ms: coarse_ms().saturating_sub(conn.accepted_ms),
            tls,
            status: 0,
            upstream: upstream.name,
            upstream_addr: None,
            grpc_status: None,
            error: None,
            req: None,
            bytes_out: 0,
            read_in: 0,
            complete: false,
            recorded: None,
            tunnelled: false,
        })
    }

    /// What a reverse proxy changes toward the upstream: hop-by-hop headers out (an upgrade and
    /// `TE: trailers` put back when they apply), `Expect` answered here, X-Forwarded-*, and the
    /// version and target form the upstream connection speaks.
    fn rewrite_for_upstream(
        &self,
        parts: &mut request::Parts,
        hop: &HopByHop,
        upgrading: bool,
        conn: &ConnState,
        host: Option<&HeaderValue>,
        pool: &Pool,
    ) {
        let upstream = pool.upstream();
        let h = &mut parts.headers;
        if let (Some(value), true) = (&hop.upgrade, upgrading) {
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
        if parts.version == Version::HTTP_2 && !pool.speaks_h2() {
            rewrite::join_cookies(h);
        }
        let proto = if conn.tls.is_some() { "https" } else { "http" };
        rewrite::set_forwarded(h, &conn.peer_ip, conn.peer_trusted, proto, host);
        if pool.speaks_h2() {
            parts.version = Version::HTTP_2;
            let authority = host.and_then(|h| h.to_str().ok()).unwrap_or("");
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
                // The target's authority wins over a Host header (RFC 9112 §3.2.2).
                if let Some(h) = host {
                    parts.headers.insert(header::HOST, h.clone());
                }
            }
            if !parts.headers.contains_key(header::HOST) {
                parts.headers.insert(header::HOST, host.cloned().unwrap_or_else(|| upstream.authority.clone()));
            }
        }
    }

    /// Sends through hyper's client (a body, an upgrade, HTTP/2 or TLS upstreams). A 101 becomes
    /// a tunnel and its answer is final.
    async fn send_by_hyper(
        &self,
        pool: &Arc<Pool>,
        parts: request::Parts,
        body: Incoming,
        hop: HopByHop,
        client_upgrade: Option<OnUpgrade>,
        mut record: Box<RequestRecord>,
    ) -> Sent {
        let shared = Arc::new(ReqShared::default());
        record.req = Some(shared.clone());
        // A gRPC stream's body may rightly stay quiet (a watch): blue's own timeouts govern it.
        let pace = (!super::is_grpc(&parts.headers))
            .then_some((self.settings.client_body_timeout, self.settings.client_body_min_rate));
        let up_req = Request::from_parts(parts, RequestBody::new(body, shared.clone(), pace));
        let mut checkout = match pool.checkout().await {
            Ok(c) => c,
            Err(cause) => return Sent::Done(own_response(cause, record)),
        };
        record.upstream_addr = checkout.conn.addr;
        let sent = if pool.speaks_h2() {
            // Boxed: the timer would otherwise sit in every HTTP/1.1 request's future too.
            match Box::pin(tokio::time::timeout(self.settings.upstream_timeout, checkout.send(up_req))).await {
                Ok(r) => r,
                Err(_) if shared.client_silent_for(self.settings.upstream_timeout) => {
                    return Sent::Done(own_response(Cause::ClientBodyTimeout, record))
                }
                Err(_) => return Sent::Done(own_response(Cause::Timeout, record)),
            }
        } else {
            checkout.send(up_req).await
        };
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) => {
                let cause = upstream_cause(&e, &checkout, &shared, self.settings.upstream_timeout);
                return Sent::Done(own_response(cause, record));
            }
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            return Sent::Done(self.open_tunnel(resp, hop, client_upgrade, checkout, record));
        }
        let resp = if pool.speaks_h2() {
            let limit = self.settings.upstream_timeout;
            resp.map(|body| ProxyBody::upstream_h2(body, checkout, record, limit))
        } else {
            resp.map(|body| ProxyBody::upstream(body, checkout, record))
        };
        Sent::Response(resp)
    }

    /// The upstream switched protocols: the 101 goes to the client and both upgraded connections
    /// to a tunnel task, which writes the record when it closes.
    fn open_tunnel(
        &self,
        mut resp: Response<Incoming>,
        hop: HopByHop,
        client_upgrade: Option<OnUpgrade>,
        checkout: Checkout,
        mut record: Box<RequestRecord>,
    ) -> Response<ProxyBody> {
        record.status = resp.status().as_u16();
        let resp_hop = rewrite::strip_hop_by_hop(resp.headers_mut());
        let Some(client_upgrade) = client_upgrade else {
            return own_response(Cause::Protocol, record);
        };
        if resp_hop.upgrade.as_ref().is_some_and(|u| self.settings.allowed_upgrade(u).is_none()) {
            // Blue switched to a protocol that was not asked for or is not passed.
            return own_response(Cause::Protocol, record);
        }
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(value) = resp_hop.upgrade.or(hop.upgrade) {
            resp.headers_mut().insert(header::UPGRADE, value);
        }
        // Counted now: a WebSocket may stay open for hours and must show in the report meanwhile.
        record.record(Instant::now());
        record.mark_tunnelled();
        let guard = self.tunnels.enter();
        let idle = self.settings.tunnel_idle_timeout;
        tokio::spawn(tunnel::run(client_upgrade, upstream_upgrade, record, checkout.conn.clone(), idle, guard));
        resp.map(|_| ProxyBody::empty())
    }

    /// The response toward the client: its status in the record, hop-by-hop headers out, and
    /// with `--close-stale-connections` a moved host's connection asked to close.
    fn shape_response(
        &self,
        mut resp: Response<ProxyBody>,
        host: Option<&HeaderValue>,
        client: Version,
        conn: &ConnState,
    ) -> Response<ProxyBody> {
        let status = resp.status().as_u16();
        // A trailers-only gRPC answer carries its status in the head; gRPC comes over HTTP/2 only,
        // so the common HTTP/1.1 answer is not searched for it.
        let grpc = (resp.version() == Version::HTTP_2).then(|| super::record::grpc_status(resp.headers())).flatten();
        resp.body_mut().set_status(status, grpc);
        rewrite::strip_hop_by_hop(resp.headers_mut());
        // When DNS already sends this host to green, the client reconnects (and re-resolves) after
        // this response; the request itself is answered normally.
        if self.host_moved(host.map(HeaderValue::as_bytes)) {
            if client == Version::HTTP_2 {
                conn.close_after_response();
            } else {
                resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
        }
        resp
    }
}

/// The request's host by RFC 9112 §3.2: an absolute-form target's authority (or HTTP/2's
/// `:authority`), else its one `Host`; HTTP/1.1 without any, or with several `Host`, is refused.
/// HTTP/1.0 may have none.
fn request_host(req: &Request<Incoming>) -> Result<Option<HeaderValue>, Cause> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(Cause::HostRepeated);
    }
    // HTTP/1.1 needs its Host even with an absolute-form target (RFC 9112 §3.2).
    if first.is_none() && req.version() == Version::HTTP_11 {
        return Err(Cause::HostMissing);
    }
    if let Some(a) = req.uri().authority() {
        return Ok(HeaderValue::from_str(a.as_str()).ok());
    }
    match (first, req.version()) {
        // HTTP/2 with neither `:authority` nor Host is malformed (RFC 9113 §8.3.1).
        (None, Version::HTTP_2) => Err(Cause::HostMissing),
        (first, _) => Ok(first.cloned()),
    }
}

/// What a request's record is opened with, as the request arrived.
pub(super) struct Opening<'a> {
    pub(super) method: Method,
    pub(super) host: Option<&'a [u8]>,
    /// Path and query.
    pub(super) target: &'a [u8],
    pub(super) version: Version,
    /// After a trusted X-Forwarded-For.
    pub(super) client_ip: std::net::IpAddr,
    pub(super) user_agent: Option<&'a [u8]>,
    /// `X-Request-ID`, else `X-Amzn-Trace-Id`.
    pub(super) request_id: Option<&'a [u8]>,
}

/// What [`Proxy::send_by_hyper`] came back with.
enum Sent {
    /// The upstream's response, to be shaped for the client.
    Response(Response<ProxyBody>),
    /// A final answer: the proxy's own error, or a 101 whose tunnel is open.
    Done(Response<ProxyBody>),
}

/// Which failure a hyper error from the upstream exchange was.
fn upstream_cause(e: &hyper::Error, checkout: &Checkout, req: &ReqShared, limit: std::time::Duration) -> Cause {
    let timed_out = checkout.conn.timed_out() || e.is_timeout();
    if req.client_timed_out() || (timed_out && req.client_silent_for(limit)) {
        // Blue was waiting for a body the client had stopped sending: the silence was the client's.
        Cause::ClientBodyTimeout
    } else if timed_out {
        Cause::Timeout
    } else if req.client_failed() {
        Cause::ClientAborted
    } else if e.is_parse() || e.is_parse_status() {
        Cause::Protocol
    } else {
        Cause::Reset
    }
}

/// The proxy's own answer for `cause`: its status and a short text.
pub(super) fn own_response(cause: Cause, mut record: Box<RequestRecord>) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(cause.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    record.status = status.as_u16();
    record.error = Some(cause);
    let mut resp = Response::new(ProxyBody::full(cause.body(), Some(record)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}
