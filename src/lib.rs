//! cutover-proxy: a transparent reverse proxy put in front of the old ("blue") cluster during a
//! DNS cutover. It forwards everything to blue and logs every request that still arrives.
//!
//! The request path runs listen → proxy → upstream; logging runs beside it on its own thread.
//! See docs/ARCHITECTURE.md.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod analyze;
pub mod classify;
pub mod config;
pub mod dashboard;
pub mod dns;
pub mod error;
pub mod io;
pub mod listen;
pub mod log;
pub mod metrics;
pub mod proxy;
pub mod record;
pub mod reload;
pub mod report;
pub mod routes;
pub mod serve;
pub mod shutdown;
pub mod tls;
pub mod upstream;
