//! The ledger's memory budget in bytes (`--max-ledger-memory`). Every allocation of a host or
//! path entry, a host's detail, a kept user agent or a minute-ring's growth is charged first;
//! growth the budget refuses does not happen, and the traffic is counted where it still fits
//! (`(other)`, `{other}`, the compact entry), so totals stay exact and the bound is never passed.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Bytes a host's slot in a lane's map takes: key (`Box<str>`) and boxed entry, the control
/// byte, at the table's 7/8 load factor with the slack of its doubling.
pub const HOST_SLOT: usize = 48;
/// The same for a path template in a host's map (key and entry inline).
pub const PATH_SLOT: usize = 200;
/// A first sighting remembered in the shared sets (a 64-bit hash in a set).
pub const SEEN_SLOT: usize = 16;

/// Bytes the allocator hands out for a request of `n`: mimalloc's small size classes go in
/// 8-byte steps to 64 bytes, then waste at most an eighth.
pub fn alloc(n: usize) -> usize {
    match n {
        0 => 0,
        n if n <= 64 => (n + 7) & !7,
        n => (n + n / 8 + 15) & !15,
    }
}

/// The budget: a limit, what is charged against it, and how often it refused.
///
/// Growth is charged with [`Budget::take`], which stops a sixteenth short of the limit; that last
/// sixteenth is the reserve [`Budget::take_reserve`] draws on for the little that evidence needs
/// even under a flood (the first late client of a host whose DNS moved). Only the `(other)`
/// buckets' fixed entries are charged whatever the limit ([`Budget::force`]): at most one per
/// kind, shard and worker.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
    refused: AtomicU64,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { limit, used: AtomicUsize::new(0), refused: AtomicU64::new(0) }
    }

    /// Charges `bytes` for growth; `false` (and nothing charged) when that would pass the limit
    /// less its reserve.
    pub fn take(&self, bytes: usize) -> bool {
        self.take_under(bytes, self.limit - self.limit / 16)
    }

    /// Charges `bytes` from the reserve: `false` only past the limit itself.
    pub fn take_reserve(&self, bytes: usize) -> bool {
        self.take_under(bytes, self.limit)
    }

    fn take_under(&self, bytes: usize, cap: usize) -> bool {
        if self.used.fetch_add(bytes, Ordering::Relaxed) + bytes > cap {
            self.used.fetch_sub(bytes, Ordering::Relaxed);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Gives `bytes` back (an entry replaced by a smaller one).
    pub fn release(&self, bytes: usize) {
        let _ = self.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| Some(u.saturating_sub(bytes)));
    }

    /// Charges `bytes` whatever the limit: only for an `(other)` bucket's entry, which must
    /// exist for its requests to be counted (bounded: a few per shard).
    pub fn force(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// How many charges it refused.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stop_short_of_the_limit_and_the_reserve_reaches_it() {
        let b = Budget::new(1600);
        assert!(b.take(1000));
        assert!(!b.take(600), "1000 + 600 passes 1600 less its reserve of 100");
        assert_eq!((b.used(), b.refused()), (1000, 1));
        assert!(b.take(500));
        assert!(!b.take(1), "the reserve is not for growth");
        assert!(b.take_reserve(100), "the reserve reaches the limit");
        assert!(!b.take_reserve(1));
        b.release(300);
        assert_eq!(b.used(), 1300);
        b.force(1000);
        assert_eq!(b.used(), 2300, "a bucket is charged, and shown, whatever the limit");
    }

    #[test]
    fn sizes_follow_the_allocators_classes() {
        assert_eq!((alloc(0), alloc(1), alloc(60), alloc(100), alloc(1000)), (0, 8, 64, 112, 1136));
    }
}
