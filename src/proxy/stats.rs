//! Counters one worker keeps for itself, read by `/metrics`: nothing on the request path is
//! shared between cores.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::base::cause::Cause;
use crate::net::shutdown::Tracker;

/// One worker's request counters. Aligned to its own cache lines: every worker's stats are
/// allocated one after the other at start-up.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerStats {
    in_flight: AtomicU64,
    errors: [AtomicU64; Cause::COUNT],
}

impl WorkerStats {
    /// A request arrived (its record exists).
    #[inline]
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request is no longer in flight: its response ended, or it became a tunnel (counted as one
    /// from then on).
    #[inline]
    pub fn request_ended(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts a request or connection that ended with `cause`.
    #[inline]
    pub fn count(&self, cause: Cause) {
        self.errors[cause.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests in flight on this worker.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests and connections that ended with `cause` so far.
    pub fn errors(&self, cause: Cause) -> u64 {
        self.errors[cause.index()].load(Ordering::Relaxed)
    }
}

/// What a scrape reads of one worker.
#[derive(Debug, Clone)]
pub struct WorkerView {
    /// Requests and errors.
    pub stats: Arc<WorkerStats>,
    /// Open client connections.
    pub conns: Arc<Tracker>,
    /// Open upgraded tunnels.
    pub tunnels: Arc<Tracker>,
}
