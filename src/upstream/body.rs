//! The client's request body on its way to the upstream (hyper's client sends it), counted as it
//! goes and cut when it stalls (`--client-body-timeout`, `--client-body-min-rate`); the response
//! side reads the count and how the client failed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

use crate::base::time::coarse_ms;

/// What the request body tells the response side: bytes read, and how the client failed.
#[derive(Debug)]
pub struct ReqShared {
    /// Body bytes read from the client so far.
    pub bytes_in: AtomicU64,
    client_error: AtomicBool,
    timed_out: AtomicBool,
    waiting_on_client: AtomicBool,
    /// When the client's last body bytes came (coarse ms; 0: none yet, the record's start counts).
    last_data_ms: AtomicU64,
    started_ms: u64,
}

impl Default for ReqShared {
    fn default() -> Self {
        Self {
            bytes_in: AtomicU64::new(0),
            client_error: AtomicBool::new(false),
            timed_out: AtomicBool::new(false),
            waiting_on_client: AtomicBool::new(false),
            last_data_ms: AtomicU64::new(0),
            started_ms: coarse_ms(),
        }
    }
}

impl ReqShared {
    /// Whether reading the client's body failed (it ended early, or its framing was bad).
    pub fn client_failed(&self) -> bool {
        self.client_error.load(Ordering::Relaxed)
    }

    /// Whether the client's body was cut for its timeout or minimum rate.
    pub fn client_timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// Whether the body is waiting for the client (not for blue to take more) and has been for
    /// about `limit` (nine tenths, the coarse clock's slack): a timeout then is the client's
    /// silence, not blue's. A client uploading at any pace is not silent.
    pub fn client_silent_for(&self, limit: Duration) -> bool {
        if !self.waiting_on_client.load(Ordering::Relaxed) {
            return false;
        }
        let last = match self.last_data_ms.load(Ordering::Relaxed) {
            0 => self.started_ms,
            t => t,
        };
        coarse_ms().saturating_sub(last) >= (limit.as_millis() as u64) * 9 / 10
    }
}

/// The request body stopped for `--client-body-timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the client's request body was silent or too slow for {0:?}")]
pub struct BodyTimeout(Duration);

/// How fast the body must come: at least `min_bytes` in every `window` (a timer per request with
/// a body; requests without one, the common case, have none).
struct Pace {
    sleep: Pin<Box<Sleep>>,
    window: Duration,
    min_bytes: u64,
    got: u64,
}

/// The client's request body on its way to the upstream, counted and paced.
pub struct RequestBody {
    inner: Incoming,
    shared: Arc<ReqShared>,
    pace: Option<Pace>,
}

impl RequestBody {
    /// Wraps the client's body; with `pace` = (window, min_rate) it fails when fewer than
    /// `min_rate` bytes a second arrive over a `window` (any byte resets the window when
    /// `min_rate` is 0).
    pub fn new(inner: Incoming, shared: Arc<ReqShared>, pace: Option<(Duration, u64)>) -> Self {
        let pace = pace.filter(|_| !inner.is_end_stream()).map(|(window, min_rate)| Pace {
            sleep: Box::pin(tokio::time::sleep(window)),
            window,
            min_bytes: (min_rate.saturating_mul(window.as_secs())).max(1),
            got: 0,
        });
        Self { inner, shared, pace }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_frame(cx);
        match &res {
            Poll::Ready(Some(Ok(frame))) => {
                this.shared.waiting_on_client.store(false, Ordering::Relaxed);
                if let Some(data) = frame.data_ref() {
                    this.shared.bytes_in.fetch_add(data.len() as u64, Ordering::Relaxed);
                    this.shared.last_data_ms.store(coarse_ms(), Ordering::Relaxed);
                    if let Some(p) = this.pace.as_mut() {
                        p.got += data.len() as u64;
                        if p.got >= p.min_bytes {
                            p.got = 0;
                            let next = tokio::time::Instant::now() + p.window;
                            p.sleep.as_mut().reset(next);
                        }
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => this.shared.client_error.store(true, Ordering::Relaxed),
            Poll::Ready(None) => {
                this.shared.waiting_on_client.store(false, Ordering::Relaxed);
                this.pace = None;
            }
            Poll::Pending => {
                this.shared.waiting_on_client.store(true, Ordering::Relaxed);
                if let Some(p) = this.pace.as_mut() {
                    if p.sleep.as_mut().poll(cx).is_ready() {
                        this.shared.timed_out.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(BodyTimeout(p.window)))));
                    }
                }
            }
        }
        res.map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
