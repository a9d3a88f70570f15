//! The lean HTTP/1.1 exchange with a plain-`http://` upstream, for requests without a body (most
//! GETs): the request head goes straight to a pooled socket and the response is read in the
//! request's own task, with no connection task, no channel and no wake-up between tasks per
//! request (measured in docs/BENCHMARKS.md). Requests with a body, upgrades, HTTP/2 and TLS
//! upstreams keep hyper's client ([`super::pool`]).
//!
//! A connection is reused only after a complete HTTP/1.1 response that did not ask to close and
//! left no stray bytes behind.

mod codec;
mod conn;

#[cfg(test)]
pub use codec::parse_response_head;
pub use codec::{Delimited, Head, LeanError};
pub use conn::{LeanBody, LeanPool};
