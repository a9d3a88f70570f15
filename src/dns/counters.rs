//! DNS lookups made for DNS evidence, and their failures by kind: the resolver task counts them, a
//! scrape reads them.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::base::names::named_enum;

named_enum! {
    /// Why a lookup found no address: the `kind` label of `cutover_dns_errors_total`.
    pub enum DnsErrorKind {
        NxDomain = "nxdomain",
        /// The name exists but has no A/AAAA (NODATA).
        NoRecords = "no_records",
        /// No server answered in time.
        Timeout = "timeout",
        /// SERVFAIL, refused, network errors.
        Other = "other",
    }
}

/// Lookups and errors so far.
#[derive(Debug, Default)]
pub struct DnsCounters {
    lookups: AtomicU64,
    errors: [AtomicU64; DnsErrorKind::COUNT],
}

impl DnsCounters {
    /// One lookup was sent.
    pub fn lookup(&self) {
        self.lookups.fetch_add(1, Ordering::Relaxed);
    }

    /// One lookup failed.
    pub fn error(&self, kind: DnsErrorKind) {
        self.errors[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Lookups so far.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// Errors of one kind so far.
    pub fn errors(&self, kind: DnsErrorKind) -> u64 {
        self.errors[kind.index()].load(Ordering::Relaxed)
    }
}
