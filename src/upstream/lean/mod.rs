//! The lean HTTP/1.1 exchange with a plain-`http://` upstream, for the requests the proxy's own
//! HTTP/1.1 side serves: without a body (most GETs), with a small one sent whole, or with a large
//! or chunked one streamed as an [`Upload`]; and for body-less requests from hyper's server side.
//! The request goes straight to a pooled socket and the response is read in the request's own
//! task, with no connection task, no channel and no wake-up between tasks per request (measured
//! in docs/BENCHMARKS.md). Bodies that hyper's server side reads, upgrades, HTTP/2 and TLS
//! upstreams keep hyper's client ([`super::pool`]).
//!
//! A connection is reused only after a complete HTTP/1.1 response that did not ask to close and
//! left no stray bytes behind.

mod codec;
mod conn;
mod upload;

#[cfg(test)]
pub use codec::parse_response_head;
pub use codec::{chunk_size, trailer_section, Delimited, Head, LeanError, MAX_HEADERS};
pub use conn::{LeanBody, LeanPool};
pub use upload::{Meanwhile, Taken, Upload};
