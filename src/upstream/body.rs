//! The client's request body on its way to the upstream (hyper's client sends it), counted as it
//! goes; the response side reads the count and whether the client failed.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// What the request body tells the response side: bytes read and whether the client failed.
#[derive(Debug, Default)]
pub struct ReqShared {
    /// Body bytes read from the client so far.
    pub bytes_in: AtomicU64,
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
