//! Continuing from a saved report: hosts and totals put back into the ledger (its default lane)
//! at start-up, through the same admission and budget as live traffic, so a restart loses
//! nothing that fits and counts what does not in the buckets.

use std::hash::RandomState;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

use hashbrown::HashMap;

use super::budget::alloc;
use super::host::{Agent, HostDetail, HostEntry, PathEntry, Paths, Sight, TOP_K};
use super::lane::TotalCounts;
use super::ledger::Ledger;
use super::moved::AfterMove;
use super::stats::{Counters, Minutes, PassthroughCounts, TlsCounts, TopK};
use crate::base::host::{Overflow, OTHER_PATH};

/// One path template as a saved report had it.
#[derive(Debug, Clone)]
pub struct PathSeed {
    pub template: String,
    /// The concrete path first seen (reports before this field: the template).
    pub example: String,
    pub counts: Counters,
}

/// One host as a saved report had it.
#[derive(Debug, Clone)]
pub struct HostSeed {
    pub name: String,
    pub ip_literal: bool,
    pub paths: Vec<PathSeed>,
    pub clients: Vec<(IpAddr, u64)>,
    pub agents: Vec<(String, u64)>,
    pub minutes: Vec<(u64, u64)>,
    pub oldest_conn_age_ms: u64,
    pub tls: TlsCounts,
    /// Passthrough connections, with their first and last seen (unix ms).
    pub passthrough: Option<(PassthroughCounts, u64, u64)>,
    pub after_move: Option<AfterMove>,
}

impl Ledger {
    /// Puts a saved host back. Returns `false` when the bounds sent it to a bucket instead.
    pub fn seed(&self, h: HostSeed) -> bool {
        let lane = &self.default_lane;
        let bucket = Overflow::of(&h.name);
        let mut hosts = lane.shard(&h.name).lock().unwrap_or_else(|p| p.into_inner());
        let own = bucket.is_none() && !hosts.contains_key(h.name.as_str()) && self.admit_seed(&h);
        let key: &str = if own { &h.name } else { bucket.unwrap_or(Overflow::Hosts).as_str() };
        let entry = hosts.entry(Box::from(key)).or_insert_with(|| {
            Box::new(HostEntry {
                ip_literal: h.ip_literal,
                paths: Paths::None,
                sight: Sight::Detail(Box::new(HostDetail::empty())),
            })
        });
        seed_into(entry, &h, own, self);
        own
    }

    /// Admits a saved host under the bounds (first sightings marked, so nothing is announced
    /// again), charging its entry.
    fn admit_seed(&self, h: &HostSeed) -> bool {
        let cost = super::budget::HOST_SLOT
            + alloc(h.name.len())
            + alloc(std::mem::size_of::<HostEntry>() + std::mem::size_of::<HostDetail>())
            + h.agents.iter().map(|(a, _)| alloc(a.len())).sum::<usize>()
            + h.minutes.len() * 8
            + h.paths
                .iter()
                .map(|p| super::budget::PATH_SLOT + alloc(p.template.len()) + alloc(p.example.len()))
                .sum::<usize>();
        if self.hosts.load(Ordering::Relaxed) >= self.settings.max_hosts || !self.budget.take(cost) {
            return false;
        }
        self.hosts.fetch_add(1, Ordering::Relaxed);
        self.mark_seen(&h.name, h.paths.iter().map(|p| p.template.as_str()));
        true
    }

    /// Puts saved totals back (in the default lane, beside the restored hosts).
    pub fn seed_totals(&self, t: &TotalCounts) {
        let l = &self.default_lane.totals;
        for (a, v) in [
            (&l.requests, t.requests),
            (&l.ignored, t.ignored),
            (&l.unrouted, t.unrouted),
            (&l.hosts_overflowed, t.hosts_overflowed),
            (&l.paths_overflowed, t.paths_overflowed),
            (&l.tls_requests, t.tls_requests),
            (&l.sni_mismatch, t.sni_mismatch),
            (&l.default_cert, t.default_cert),
            (&l.passthrough_connections, t.passthrough_connections),
        ] {
            a.fetch_add(v, Ordering::Relaxed);
        }
    }
}

/// Adds a saved host to an entry: its own (`own`: paths kept as templates) or a bucket's (paths
/// folded into `{other}`).
fn seed_into(entry: &mut HostEntry, h: &HostSeed, own: bool, ledger: &Ledger) {
    entry.ip_literal |= h.ip_literal;
    let mut map: HashMap<Box<str>, PathEntry, RandomState> = match std::mem::replace(&mut entry.paths, Paths::None) {
        Paths::None => HashMap::with_hasher(RandomState::new()),
        Paths::One(one) => {
            let (t, p) = *one;
            let mut m = HashMap::with_hasher(RandomState::new());
            m.insert(t, p);
            m
        }
        Paths::Many(m) => *m,
    };
    for p in &h.paths {
        let template = if own { p.template.as_str() } else { OTHER_PATH };
        if own && template != OTHER_PATH {
            ledger.paths.fetch_add(1, Ordering::Relaxed);
        }
        let slot = map.entry(Box::from(template)).or_insert_with(|| PathEntry {
            counts: Counters::default(),
            example: (own && p.example != p.template).then(|| p.example.as_str().into()),
            green: None,
            green_version: 0,
        });
        slot.counts.absorb(&p.counts);
    }
    entry.paths = match map.len() {
        0 => Paths::None,
        1 => match map.into_iter().next() {
            Some((t, p)) => Paths::One(Box::new((t, p))),
            None => Paths::None,
        },
        _ => Paths::Many(Box::new(map)),
    };
    let detail = match &mut entry.sight {
        Sight::Detail(d) => d,
        sight => {
            *sight = Sight::Detail(Box::new(HostDetail::empty()));
            match sight {
                Sight::Detail(d) => d,
                Sight::Once { .. } => return,
            }
        }
    };
    let mut clients = TopK::new(TOP_K);
    h.clients.iter().for_each(|(ip, n)| clients.add(ip, *n));
    detail.clients.merge(&clients);
    let mut agents = TopK::new(TOP_K);
    h.agents.iter().for_each(|(a, n)| agents.add(&Agent { text: a.as_str().into() }, *n));
    detail.agents.merge(&agents);
    let mut minutes = Minutes::default();
    h.minutes.iter().for_each(|(m, n)| minutes.add(*m, *n));
    detail.minutes.merge(&minutes);
    detail.oldest_conn_age_ms = detail.oldest_conn_age_ms.max(h.oldest_conn_age_ms);
    detail.tls.merge(&h.tls);
    if let Some((p, from, to)) = &h.passthrough {
        detail.passthrough.merge(p);
        let seen = detail.passthrough_seen.get_or_insert((*from, *to));
        *seen = (seen.0.min(*from), seen.1.max(*to));
    }
    if let Some(a) = &h.after_move {
        detail.after_move.get_or_insert_with(Default::default).merge(a);
    }
}
