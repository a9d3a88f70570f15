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
    /// Request durations by status class (1xx … 5xx): per bucket of [`DURATION_BUCKETS_US`] (the
    /// last one past them all), and their sum in microseconds.
    durations: [[AtomicU64; DURATION_BUCKETS_US.len() + 1]; 5],
    duration_sum_us: [AtomicU64; 5],
}

/// Upper bounds of the request-duration histogram's buckets, microseconds (1 ms … 10 s).
pub const DURATION_BUCKETS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// One status class's histogram as a scrape reads it: counts per bucket (not cumulative, the
/// last past every bound) and the sum of durations, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurationCounts {
    pub buckets: [u64; DURATION_BUCKETS_US.len() + 1],
    pub sum_us: u64,
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

    /// Counts a finished request's duration under its status's class (on the worker: its own
    /// cache lines, no atomic shared with another core).
    #[inline]
    pub fn observe(&self, status: u16, took: std::time::Duration) {
        let class = (usize::from(status / 100)).clamp(1, 5) - 1;
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = DURATION_BUCKETS_US.iter().position(|&b| us <= b).unwrap_or(DURATION_BUCKETS_US.len());
        self.durations[class][bucket].fetch_add(1, Ordering::Relaxed);
        self.duration_sum_us[class].fetch_add(us, Ordering::Relaxed);
    }

    /// The histogram of status class `class` (0 for 1xx … 4 for 5xx).
    pub fn durations(&self, class: usize) -> DurationCounts {
        let mut out = DurationCounts::default();
        for (o, b) in out.buckets.iter_mut().zip(&self.durations[class]) {
            *o = b.load(Ordering::Relaxed);
        }
        out.sum_us = self.duration_sum_us[class].load(Ordering::Relaxed);
        out
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
