//! The request's record: everything its access line and its ledger entry need, gathered while it
//! is served and written when it drops (the response is over, or the tunnel closed).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{Method, Version};

use super::{LogRequests, Proxy};
use crate::base::cause::Cause;
use crate::base::time::unix_ms_of;
use crate::log::{AccessRecord, Text, TlsLog};
use crate::net::conn::ConnState;
use crate::record::{Observation, Recorded, Routing, TlsObservation};
use crate::upstream::body::ReqShared;

const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// `grpc-status` from trailers or headers: gRPC's codes are 0–16.
pub fn grpc_status(headers: &http::HeaderMap) -> Option<u8> {
    let v = headers.get(GRPC_STATUS)?;
    std::str::from_utf8(v.as_bytes()).ok()?.trim().parse().ok()
}

/// Everything the access log line needs; written when dropped (the response is over).
pub struct RequestRecord {
    /// The worker's proxy (its log handle; per worker, so this clone stays on one core).
    pub proxy: Arc<Proxy>,
    /// The client connection (its in-flight count, and the worker's, drop with this record).
    pub conn: Arc<ConnState>,
    /// When the request arrived.
    pub start: Instant,
    /// Wall clock at arrival.
    pub ts: SystemTime,
    /// Request method.
    pub method: Method,
    /// Host as received (`:authority` for HTTP/2). Copied, not shared: a reference into hyper's
    /// read buffer would keep it from being reused while the response streams.
    pub host: Option<Text>,
    /// Request target (path and query), copied.
    pub target: Text,
    /// Client's HTTP version.
    pub version: Version,
    /// Client IP (after trusted X-Forwarded-For).
    pub client_ip: IpAddr,
    /// User-Agent as received, copied.
    pub user_agent: Option<Text>,
    /// `X-Request-ID`, else `X-Amzn-Trace-Id`, as received, copied.
    pub request_id: Option<Text>,
    /// Age of the client connection when the request arrived, ms.
    pub conn_age_ms: u64,
    /// On a TLS listener: the default certificate served, Host ≠ SNI.
    pub tls: Option<TlsObservation>,
    /// Status sent to the client.
    pub status: u16,
    /// Upstream name.
    pub upstream: &'static str,
    /// The upstream address the request went to.
    pub upstream_addr: Option<SocketAddr>,
    /// The response's `grpc-status` (trailers, or a trailers-only head).
    pub grpc_status: Option<u8>,
    /// Cause of failure, if any.
    pub error: Option<Cause>,
    /// Request body counters.
    pub req: Option<Arc<ReqShared>>,
    /// Bytes of response body sent (or tunnelled toward the client).
    pub bytes_out: u64,
    /// Bytes read from the client by the proxy itself: a body on its own HTTP/1.1 side, or
    /// what was tunnelled after an upgrade.
    pub read_in: u64,
    /// The response body was sent to the end.
    pub complete: bool,
    /// Already counted in the ledger (tunnels are counted when they open).
    pub recorded: Option<Recorded>,
    /// Handed to a tunnel: `/metrics` counts it among tunnels, not requests in flight.
    pub tunnelled: bool,
}

impl RequestRecord {
    /// The request became a tunnel: no longer a request in flight for `/metrics` (the tunnel is
    /// counted as one), though this record lives until the tunnel closes.
    pub fn mark_tunnelled(&mut self) {
        if !self.tunnelled {
            self.tunnelled = true;
            self.proxy.stats.request_ended();
        }
    }

    /// Records the request in the ledger now (an upgraded connection, which may stay open for
    /// hours, is counted when its tunnel opens); returns green's verdict for the log filter.
    pub fn record(&mut self, now: Instant) -> Recorded {
        if let Some(done) = &self.recorded {
            return done.clone();
        }
        let proxy = &self.proxy;
        let bytes_in = self.bytes_in();
        // Stamped when it ends, so a long request is not counted as old news.
        let at = self.ts + now.saturating_duration_since(self.start);
        let at_ms = unix_ms_of(at);
        let recorded = match proxy.ledger() {
            Some((ledger, lane)) => ledger.record_into(
                lane,
                &Observation {
                    host: self.host.as_ref().map(|h| h.as_bytes()),
                    path: self.path(),
                    method: &self.method,
                    status: self.status,
                    bytes_in,
                    bytes_out: self.bytes_out,
                    client_ip: self.client_ip,
                    user_agent: self.user_agent.as_ref().map(|u| u.as_bytes()),
                    conn_age_ms: self.conn_age_ms,
                    tls: self.tls,
                    at_ms,
                },
                |sighting| proxy.log().sighting(&sighting),
            ),
            None => Recorded::Counted { green: Routing::Unknown, stale_conn: false },
        };
        self.recorded = Some(recorded.clone());
        recorded
    }

    /// The path, without the query.
    fn path(&self) -> &str {
        let target = std::str::from_utf8(self.target.as_bytes()).unwrap_or("/");
        target.split('?').next().unwrap_or(target)
    }

    fn bytes_in(&self) -> u64 {
        self.req.as_ref().map_or(0, |r| r.bytes_in.load(Ordering::Relaxed)) + self.read_in
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        self.conn.request_done();
        if self.status == 0 {
            // The client went away before the upstream answered (nginx's 499).
            self.status = 499;
        }
        let error = match (self.error, self.complete) {
            (Some(e), _) => Some(e),
            (None, false) => Some(Cause::ClientClosed),
            (None, true) => None,
        };
        if !self.tunnelled {
            self.proxy.stats.request_ended();
        }
        if let Some(cause) = error {
            self.proxy.stats.count(cause);
        }
        // One clock read for both the ledger's timestamp and the line's duration.
        let now = Instant::now();
        if !self.tunnelled {
            self.proxy.stats.observe(self.status, now.saturating_duration_since(self.start));
        }
        let recorded = self.record(now);
        let proxy = &self.proxy;
        let wanted = match proxy.settings().log_requests {
            LogRequests::All => true,
            LogRequests::None => false,
            LogRequests::Unrouted => {
                matches!(recorded, Recorded::Counted { green: Routing::Unrouted | Routing::Unknown, .. })
            }
        };
        if !wanted {
            return;
        }
        let path = if proxy.settings().log_query {
            std::mem::replace(&mut self.target, Text::new(b""))
        } else {
            Text::new(self.path().as_bytes())
        };
        proxy.log().access(AccessRecord {
            ts: self.ts,
            client_ip: self.client_ip,
            method: std::mem::take(&mut self.method),
            host: self.host.take(),
            path,
            version: self.version,
            status: self.status,
            bytes_in: self.bytes_in(),
            bytes_out: self.bytes_out,
            duration: now.saturating_duration_since(self.start),
            upstream: self.upstream,
            upstream_addr: self.upstream_addr,
            user_agent: self.user_agent.take(),
            request_id: self.request_id.take(),
            grpc_status: self.grpc_status,
            error,
            stale_conn: matches!(recorded, Recorded::Counted { stale_conn: true, .. }),
            tls: self.tls.map(|t| TlsLog {
                sni: self.conn.tls.as_ref().and_then(|c| c.sni.as_deref()).map(|s| Text::new(s.as_bytes())),
                default_cert: t.default_cert,
                sni_mismatch: t.sni_mismatch,
            }),
        });
    }
}
