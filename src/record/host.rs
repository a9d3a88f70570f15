//! What the ledger keeps per host and per path template, mergeable across lanes.

use std::hash::RandomState;
use std::net::IpAddr;

use hashbrown::HashMap;

use super::moved::AfterMove;
use super::normalize::MAX_PATH_LEN;
use super::observation::Observation;
use super::stats::{Counters, Minutes, PassthroughCounts, TlsCounts, TopK};
use crate::routes::RouteRef;

/// Top client IPs / user agents kept per host.
pub const TOP_K: usize = 10;

/// Counters of one path template.
#[derive(Debug, Clone)]
pub struct PathStats {
    /// Requests, first/last seen, methods, status classes, bytes.
    pub counts: Counters,
    /// The first concrete path seen, matched against green's routes.
    pub example: Box<str>,
    /// Green's verdict and the route table version it was computed with.
    pub green: Option<RouteRef>,
    pub(super) green_version: u64,
}

impl PathStats {
    pub(super) fn new(o: &Observation<'_>) -> Self {
        Self {
            counts: Counters::starting(o.at_ms),
            example: cut(o.path.split('?').next().unwrap_or("/"), MAX_PATH_LEN).into(),
            green: None,
            green_version: 0,
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A user agent kept in a host's top-k.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// The user agent (lossy UTF-8, cut at [`MAX_AGENT_LEN`] bytes).
    pub text: Box<str>,
}

impl Agent {
    pub(super) fn new(raw: &[u8]) -> Self {
        Self { text: String::from_utf8_lossy(raw).into() }
    }
}

/// Counters of one host.
#[derive(Debug, Clone)]
pub struct HostStats {
    /// Requests, first/last seen, methods, status classes, bytes.
    pub counts: Counters,
    /// The client addressed an IP literal.
    pub ip_literal: bool,
    /// Top client IPs.
    pub clients: TopK<IpAddr>,
    /// Top user agents.
    pub agents: TopK<Agent>,
    /// Oldest client connection seen carrying a request, ms.
    pub oldest_conn_age_ms: u64,
    /// Requests per minute, last 24 h.
    pub minutes: Minutes,
    /// Requests over terminated TLS: SNI mismatches, default certificate.
    pub tls: TlsCounts,
    /// Passthrough connections.
    pub passthrough: PassthroughCounts,
    /// Path templates.
    pub paths: HashMap<String, PathStats, RandomState>,
    /// Traffic after the host's DNS moved to green (`None` until then).
    pub after_move: Option<Box<AfterMove>>,
}

impl HostStats {
    pub(super) fn new(at_ms: u64, ip_literal: bool) -> Self {
        Self {
            counts: Counters::starting(at_ms),
            ip_literal,
            clients: TopK::new(TOP_K),
            agents: TopK::new(TOP_K),
            oldest_conn_age_ms: 0,
            minutes: Minutes::default(),
            tls: TlsCounts::default(),
            passthrough: PassthroughCounts::default(),
            paths: HashMap::with_hasher(RandomState::new()),
            after_move: None,
        }
    }
}

impl HostStats {
    /// Adds another lane's counters for the same host.
    pub fn merge(&mut self, o: &HostStats) {
        self.counts.merge(&o.counts);
        self.ip_literal |= o.ip_literal;
        self.clients.merge(&o.clients);
        self.agents.merge(&o.agents);
        self.oldest_conn_age_ms = self.oldest_conn_age_ms.max(o.oldest_conn_age_ms);
        self.minutes.merge(&o.minutes);
        if let Some(theirs) = &o.after_move {
            self.after_move.get_or_insert_with(Default::default).merge(theirs);
        }
        self.tls.merge(&o.tls);
        self.passthrough.merge(&o.passthrough);
        for (template, p) in &o.paths {
            match self.paths.get_mut(template.as_str()) {
                Some(mine) => mine.merge(p),
                None => {
                    self.paths.insert(template.clone(), p.clone());
                }
            }
        }
    }
}

impl PathStats {
    pub(super) fn merge(&mut self, o: &PathStats) {
        self.counts.merge(&o.counts);
        if o.green_version > self.green_version {
            self.green = o.green.clone();
            self.green_version = o.green_version;
        }
    }
}
