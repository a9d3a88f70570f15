//! The response body sent to the client: the upstream's, streamed and counted, never buffered
//! whole, or a short text of the proxy's own. It owns the request's [`RequestRecord`], so the
//! access line is written when the response ends, and gives the upstream connection back to its
//! pool at end of stream.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::record::RequestRecord;
use crate::base::cause::Cause;
use crate::upstream::lean::{LeanBody, LeanError};
use crate::upstream::pool::Checkout;

enum Kind {
    Upstream { body: Incoming, checkout: Option<Checkout>, silence: Option<Silence> },
    Lean(LeanBody),
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
    record: Option<Box<RequestRecord>>,
}

impl ProxyBody {
    /// The upstream's body; `checkout` goes back to the pool when it ends.
    pub fn upstream(body: Incoming, checkout: Checkout, record: Box<RequestRecord>) -> Self {
        Self { kind: Kind::Upstream { body, checkout: Some(checkout), silence: None }, record: Some(record) }
    }

    /// The body of an HTTP/2 upstream stream: it fails after `limit` without a frame.
    pub fn upstream_h2(body: Incoming, checkout: Checkout, record: Box<RequestRecord>, limit: Duration) -> Self {
        let silence = Silence { sleep: Box::pin(tokio::time::sleep(limit)), limit };
        Self { kind: Kind::Upstream { body, checkout: Some(checkout), silence: Some(silence) }, record: Some(record) }
    }

    /// The body of a lean HTTP/1.1 exchange (its connection goes back to the pool at its end).
    pub fn lean(body: LeanBody, record: Box<RequestRecord>) -> Self {
        Self { kind: Kind::Lean(body), record: Some(record) }
    }

    /// A complete body of the proxy's own (errors, admin pages).
    pub fn full(data: impl Into<Bytes>, record: Option<Box<RequestRecord>>) -> Self {
        let data: Bytes = data.into();
        Self { kind: Kind::Full(if data.is_empty() { None } else { Some(data) }), record }
    }

    /// No body.
    pub fn empty() -> Self {
        Self { kind: Kind::Full(None), record: None }
    }

    /// Notes the status sent to the client in the request's record, and a trailers-only gRPC
    /// answer's `grpc-status`.
    pub fn set_status(&mut self, status: u16, grpc_status: Option<u8>) {
        if let Some(r) = self.record.as_mut() {
            r.status = status;
            r.grpc_status = grpc_status;
        }
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
                if let Some(f) = this.record.as_mut() {
                    f.bytes_out += frame.as_ref().map_or(0, |d| d.len() as u64);
                    f.complete = frame.is_none() || f.complete;
                }
                Poll::Ready(frame.map(|d| Ok(Frame::data(d))))
            }
            Kind::Lean(body) => {
                let res = Pin::new(body).poll_frame(cx);
                if let Some(f) = this.record.as_mut() {
                    match &res {
                        Poll::Ready(Some(Ok(frame))) => note_frame(f, frame),
                        Poll::Ready(None) => f.complete = true,
                        Poll::Ready(Some(Err(e))) => {
                            f.error = Some(if *e == LeanError::Timeout { Cause::Timeout } else { Cause::Reset })
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
                            if let Some(f) = this.record.as_mut() {
                                f.error = Some(Cause::Timeout);
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
                        if let Some(f) = this.record.as_mut() {
                            note_frame(f, frame);
                        }
                    }
                    Poll::Ready(None) => {
                        if let Some(co) = checkout.take() {
                            co.release();
                        }
                        if let Some(f) = this.record.as_mut() {
                            f.complete = true;
                        }
                    }
                    Poll::Ready(Some(Err(_))) => {
                        let timed_out = checkout.as_ref().is_some_and(|c| c.conn.timed_out());
                        checkout.take();
                        if let Some(f) = this.record.as_mut() {
                            f.error = Some(if timed_out { Cause::Timeout } else { Cause::Reset });
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

/// A frame on its way to the client: its bytes counted, a gRPC call's status read from trailers.
fn note_frame(f: &mut RequestRecord, frame: &Frame<Bytes>) {
    match frame.data_ref() {
        Some(data) => f.bytes_out += data.len() as u64,
        None => {
            if let Some(status) = frame.trailers_ref().and_then(super::record::grpc_status) {
                f.grpc_status = Some(status);
            }
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        // A body hyper never polled because it was empty from the start (HEAD, 204, 304,
        // Content-Length: 0) is complete too, and its connection is reusable.
        if self.is_end_stream() {
            if let Some(f) = self.record.as_mut() {
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
