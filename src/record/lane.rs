//! One worker's part of the ledger: its hosts in locked shards and its exact totals.

use std::hash::RandomState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hashbrown::HashMap;

use super::host::HostEntry;
use super::sightings::Suppressed;

/// One shard of a lane's hosts.
pub type HostMap = HashMap<Box<str>, Box<HostEntry>, RandomState>;

/// A sum of [`Totals`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TotalCounts {
    /// Every request recorded (not ignored).
    pub requests: u64,
    /// Requests that matched an ignore rule.
    pub ignored: u64,
    /// Requests whose host/path green does not route.
    pub unrouted: u64,
    /// Requests counted under `(other)`.
    pub hosts_overflowed: u64,
    /// Requests counted under `{other}`.
    pub paths_overflowed: u64,
    /// Requests over terminated TLS.
    pub tls_requests: u64,
    /// Of those, whose Host differed from the SNI.
    pub sni_mismatch: u64,
    /// Of those, on connections served the default certificate.
    pub default_cert: u64,
    pub passthrough_connections: u64,
}

impl TotalCounts {
    /// Adds a lane's totals.
    pub fn add(&mut self, t: &Totals) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.requests += get(&t.requests);
        self.ignored += get(&t.ignored);
        self.unrouted += get(&t.unrouted);
        self.hosts_overflowed += get(&t.hosts_overflowed);
        self.paths_overflowed += get(&t.paths_overflowed);
        self.tls_requests += get(&t.tls_requests);
        self.sni_mismatch += get(&t.sni_mismatch);
        self.default_cert += get(&t.default_cert);
        self.passthrough_connections += get(&t.passthrough_connections);
    }
}

/// Totals over everything recorded, exact whatever the bounds.
#[derive(Debug, Default)]
pub struct Totals {
    /// Every request recorded (not ignored).
    pub requests: AtomicU64,
    /// Requests that matched an ignore rule.
    pub ignored: AtomicU64,
    /// Requests whose host/path green does not route.
    pub unrouted: AtomicU64,
    /// Requests counted under `(other)`.
    pub hosts_overflowed: AtomicU64,
    /// Requests counted under `{other}`.
    pub paths_overflowed: AtomicU64,
    /// Requests over terminated TLS.
    pub tls_requests: AtomicU64,
    /// Of those, whose Host differed from the SNI.
    pub sni_mismatch: AtomicU64,
    /// Of those, on connections served the default certificate.
    pub default_cert: AtomicU64,
    pub passthrough_connections: AtomicU64,
}

/// One worker's part of the ledger: its own hosts and totals, so two cores never write the same
/// counters (a busy host seen by every worker would otherwise bounce its cache lines between
/// cores on every request). Reports merge the lanes.
///
/// A lane's hosts are split over [`LANE_SHARDS`] maps, each behind its own lock: a report's
/// snapshot then holds one shard at a time (measured: 100 000 hosts take ≈ 220 ms to copy, which
/// a single lock would have made the worker wait for), while a request takes one shard's lock,
/// uncontended.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Lane {
    /// This worker's totals.
    pub totals: Totals,
    pub(super) shards: [Mutex<HostMap>; LANE_SHARDS],
    /// First sightings this lane did not announce (over the events' rate), for the summary line.
    pub(super) suppressed: Mutex<Suppressed>,
}

/// Host maps per lane: a report merges one shard index of every lane at a time, so the fewer
/// hosts a shard holds, the less a report holds at once.
pub const LANE_SHARDS: usize = 32;

impl Lane {
    /// The shard of a (normalized) host: a cheap multiplicative hash (the shard only spreads the
    /// copy of a snapshot; the maps keep their own keyed hashing).
    pub(super) fn shard(&self, host: &str) -> &Mutex<HostMap> {
        &self.shards[shard_index(host)]
    }
}

/// The shard index of a (normalized) host, the same in every lane.
pub(super) fn shard_index(host: &str) -> usize {
    {
        let mut x = host.len() as u64;
        for chunk in host.as_bytes().chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            x = (x ^ u64::from_le_bytes(word)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        (x >> 59) as usize % LANE_SHARDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_spread_over_a_lanes_shards() {
        let lane = Lane::default();
        let mut counts = [0usize; LANE_SHARDS];
        for i in 0..16_000 {
            for name in [
                format!("h{i}.example.com"),
                format!("tenant-{i}.saas.example.org"),
                format!("10.0.{}.{}", i / 250, i % 250),
            ] {
                let shard = lane.shard(&name) as *const _;
                let at = lane.shards.iter().position(|s| std::ptr::eq(s, shard)).unwrap();
                counts[at] += 1;
            }
        }
        // 48 000 names, 1 500 per shard if even: no shard holds twice its share (a report holds
        // one shard index at a time).
        assert!(counts.iter().all(|&c| c > 750 && c < 3_000), "{counts:?}");
    }
}
