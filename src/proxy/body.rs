//! Streaming bodies both ways, counted on the fly, never buffered whole. The response body owns
//! the request's [`Finish`] record, so the access log line is written when the response ends, and
//! gives the upstream connection back to its pool at end of stream.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::{LogRequests, Proxy};
use crate::listen::conn::ConnState;
use crate::log::{AccessRecord, Text, TlsLog};
use crate::record::ledger::{Observation, Recorded, TlsObservation};
use crate::upstream::h1::{RawBody, RawError};
use crate::upstream::pool::Checkout;

/// What the request body tells the response side: bytes read and whether the client failed.
#[derive(Debug, Default)]
pub struct ReqShared {
    bytes_in: AtomicU64,
    client_error: AtomicBool,
}

impl ReqShared {
    /// Whether reading the client's body failed (client went away mid-upload).
    pub fn client_failed(&self) -> bool {
        self.client_error.load(Ordering::Relaxed)
    }
}

/// The client's request body on its way to the upstream, counted.
pub struct RequestBody {
    inner: Incoming,
    shared: Arc<ReqShared>,
}

impl RequestBody {
    /// Wraps the client's body.
    pub fn new(inner: Incoming, shared: Arc<ReqShared>) -> Self {
        Self { inner, shared }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let res = Pin::new(&mut self.inner).poll_frame(cx);
        match &res {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.shared.bytes_in.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            }
            Poll::Ready(Some(Err(_))) => self.shared.client_error.store(true, Ordering::Relaxed),
            _ => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Everything the access log line needs; written when dropped (the response is over).
pub struct Finish {
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
    /// Age of the client connection when the request arrived, ms.
    pub conn_age_ms: u64,
    /// On a TLS listener: the default certificate served, Host ≠ SNI.
    pub tls: Option<TlsObservation>,
    /// Status sent to the client.
    pub status: u16,
    /// Upstream name.
    pub upstream: &'static str,
    /// Cause of failure, if any.
    pub error: Option<&'static str>,
    /// Request body counters.
    pub req: Option<Arc<ReqShared>>,
    /// Bytes of response body sent (or tunnelled toward the client).
    pub bytes_out: u64,
    /// Bytes tunnelled from the client after an upgrade.
    pub tunnel_in: u64,
    /// The response body was sent to the end.
    pub complete: bool,
    /// Already counted in the ledger (tunnels are counted when they open).
    pub recorded: Option<Recorded>,
    /// Handed to a tunnel: `/metrics` counts it among tunnels, not requests in flight.
    pub tunnelled: bool,
}

impl Finish {
    /// The request became a tunnel: no longer a request in flight for `/metrics` (the tunnel is
    /// counted as one), though this record lives until the tunnel closes.
    pub fn into_tunnel(&mut self) {
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
        let at_ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
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
            None => Recorded::Counted { routed: None, stale_conn: false },
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
        self.req.as_ref().map_or(0, |r| r.bytes_in.load(Ordering::Relaxed)) + self.tunnel_in
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        self.conn.request_done();
        if self.status == 0 {
            // The client went away before the upstream answered (nginx's 499).
            self.status = 499;
        }
        let error = match (self.error, self.complete) {
            (Some(e), _) => Some(e),
            (None, false) => Some("client_closed"),
            (None, true) => None,
        };
        if !self.tunnelled {
            self.proxy.stats.request_ended();
        }
        self.proxy.stats.count_error(error);
        // One clock read for both the ledger's timestamp and the line's duration.
        let now = Instant::now();
        let recorded = self.record(now);
        let proxy = &self.proxy;
        let wanted = match proxy.settings().log_requests {
            LogRequests::All => true,
            LogRequests::None => false,
            LogRequests::Unrouted => matches!(recorded, Recorded::Counted { routed: Some(false) | None, .. }),
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

enum Kind {
    Upstream { body: Incoming, checkout: Option<Checkout>, silence: Option<Silence> },
    Lean(RawBody),
    Full(Option<Bytes>),
}

/// A per-response silence timer, for HTTP/2 upstreams only: their connection is shared by many
/// streams, so the per-connection watchdog cannot tell one stalled stream from a busy connection.
struct Silence {
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

/// The error a response body ends with when the upstream stays silent too long.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent nothing for {0:?}")]
pub struct UpstreamSilent(Duration);

/// Errors a [`ProxyBody`] can end with.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The body sent to the client: the upstream's, streamed, or a short text of the proxy's own.
pub struct ProxyBody {
    kind: Kind,
    finish: Option<Box<Finish>>,
}

impl ProxyBody {
    /// The upstream's body; `checkout` goes back to the pool when it ends.
    pub fn upstream(body: Incoming, checkout: Checkout, finish: Box<Finish>) -> Self {
        Self { kind: Kind::Upstream { body, checkout: Some(checkout), silence: None }, finish: Some(finish) }
    }

    /// The body of an HTTP/2 upstream stream: it fails after `limit` without a frame.
    pub fn upstream_h2(body: Incoming, checkout: Checkout, finish: Box<Finish>, limit: Duration) -> Self {
        let silence = Silence { sleep: Box::pin(tokio::time::sleep(limit)), limit };
        Self { kind: Kind::Upstream { body, checkout: Some(checkout), silence: Some(silence) }, finish: Some(finish) }
    }

    /// The body of a lean HTTP/1.1 exchange (its connection goes back to the pool at its end).
    pub fn lean(body: RawBody, finish: Box<Finish>) -> Self {
        Self { kind: Kind::Lean(body), finish: Some(finish) }
    }

    /// A complete body of the proxy's own (errors, admin pages).
    pub fn full(data: impl Into<Bytes>, finish: Option<Box<Finish>>) -> Self {
        let data: Bytes = data.into();
        Self { kind: Kind::Full(if data.is_empty() { None } else { Some(data) }), finish }
    }

    /// No body.
    pub fn empty() -> Self {
        Self { kind: Kind::Full(None), finish: None }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Full(data) => {
                let frame = data.take();
                if let Some(f) = this.finish.as_mut() {
                    f.bytes_out += frame.as_ref().map_or(0, |d| d.len() as u64);
                    f.complete = frame.is_none() || f.complete;
                }
                Poll::Ready(frame.map(|d| Ok(Frame::data(d))))
            }
            Kind::Lean(body) => {
                let res = Pin::new(body).poll_frame(cx);
                if let Some(f) = this.finish.as_mut() {
                    match &res {
                        Poll::Ready(Some(Ok(frame))) => f.bytes_out += frame.data_ref().map_or(0, |d| d.len() as u64),
                        Poll::Ready(None) => f.complete = true,
                        Poll::Ready(Some(Err(e))) => {
                            f.error = Some(if *e == RawError::Timeout { "upstream_timeout" } else { "upstream_reset" })
                        }
                        Poll::Pending => {}
                    }
                }
                res.map(|frame| frame.map(|r| r.map_err(BodyError::from)))
            }
            Kind::Upstream { body, checkout, silence } => {
                let res = Pin::new(body).poll_frame(cx);
                if let Some(s) = silence.as_mut() {
                    if res.is_pending() {
                        if s.sleep.as_mut().poll(cx).is_ready() {
                            checkout.take();
                            if let Some(f) = this.finish.as_mut() {
                                f.error = Some("upstream_timeout");
                            }
                            return Poll::Ready(Some(Err(Box::new(UpstreamSilent(s.limit)))));
                        }
                    } else {
                        let next = tokio::time::Instant::now() + s.limit;
                        s.sleep.as_mut().reset(next);
                    }
                }
                match &res {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let (Some(data), Some(f)) = (frame.data_ref(), this.finish.as_mut()) {
                            f.bytes_out += data.len() as u64;
                        }
                    }
                    Poll::Ready(None) => {
                        if let Some(co) = checkout.take() {
                            co.release();
                        }
                        if let Some(f) = this.finish.as_mut() {
                            f.complete = true;
                        }
                    }
                    Poll::Ready(Some(Err(_))) => {
                        let timed_out = checkout.as_ref().is_some_and(|c| c.conn.timed_out());
                        checkout.take();
                        if let Some(f) = this.finish.as_mut() {
                            f.error = Some(if timed_out { "upstream_timeout" } else { "upstream_reset" });
                        }
                    }
                    Poll::Pending => {}
                }
                res.map(|frame| frame.map(|r| r.map_err(BodyError::from)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(data) => data.is_none(),
            Kind::Upstream { body, .. } => body.is_end_stream(),
            Kind::Lean(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Upstream { body, .. } => body.size_hint(),
            Kind::Lean(body) => body.size_hint(),
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        // A body hyper never polled because it was empty from the start (HEAD, 204, 304,
        // Content-Length: 0) is complete too, and its connection is reusable.
        if self.is_end_stream() {
            if let Some(f) = self.finish.as_mut() {
                f.complete = true;
            }
            if let Kind::Upstream { checkout, .. } = &mut self.kind {
                if let Some(co) = checkout.take() {
                    co.release();
                }
            }
        }
    }
}
