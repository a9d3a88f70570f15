//! What a lane keeps per host and per path template, and what a report reads of it.
//!
//! A host seen once costs little ([`Sight::Once`]: its one client, user agent, minute and
//! connection age inline, its one path in a box of its own); the full detail — top clients and
//! user agents, the per-minute ring, TLS and passthrough tallies, traffic after a DNS move — is
//! allocated when a second request or connection earns it ([`HostDetail`]). Every allocation is
//! charged to the ledger's [`Budget`]; growth the budget refuses degrades the detail, never the
//! counts. Host-level counts are the sum of the paths', so they are kept once.

use std::hash::RandomState;
use std::net::IpAddr;

use hashbrown::HashMap;

use super::budget::{alloc, Budget, PATH_SLOT, SEEN_SLOT};
use super::moved::AfterMove;
use super::normalize::MAX_PATH_LEN;
use super::observation::{Observation, TlsObservation, MAX_AGENT_LEN};
use super::stats::{Counters, Minutes, PassthroughCounts, TlsCounts, TopK};
use crate::base::host::OTHER_PATH;

/// Top client IPs / user agents kept per host.
pub const TOP_K: usize = 10;

/// One path template's counters in a lane.
#[derive(Debug)]
pub struct PathEntry {
    /// Requests, first/last seen, methods, status classes, bytes.
    pub counts: Counters,
    /// The first concrete path seen, when it differs from the template (it is what green's
    /// routes are asked about).
    pub example: Option<Box<str>>,
    /// Green's verdict: the serving object's index in the route table, judged with
    /// `green_version` of the table (0: not judged yet).
    pub green: Option<u32>,
    pub green_version: u32,
}

impl PathEntry {
    /// A path first seen in `o`, and the bytes it takes besides its map slot.
    fn new(o: &Observation<'_>, template: &str) -> (Self, usize) {
        let path = cut(o.path.split('?').next().unwrap_or("/"), MAX_PATH_LEN);
        let example: Option<Box<str>> = (path != template).then(|| path.into());
        let cost = example.as_ref().map_or(0, |e| alloc(e.len()));
        let entry = Self { counts: Counters::starting(o.at_ms), example, green: None, green_version: 0 };
        (entry, cost)
    }

    /// The concrete path to ask green's routes about.
    pub fn example<'a>(&'a self, template: &'a str) -> &'a str {
        self.example.as_deref().unwrap_or(template)
    }
}

/// A host's path templates: none yet (a passthrough host), one (most hosts), or a map.
#[derive(Debug)]
pub enum Paths {
    /// No path (TLS passthrough: paths are not visible).
    None,
    /// One template and its counters.
    One(Box<(Box<str>, PathEntry)>),
    /// Several.
    Many(Box<HashMap<Box<str>, PathEntry, RandomState>>),
}

impl Paths {
    /// How many templates.
    pub fn len(&self) -> usize {
        match self {
            Paths::None => 0,
            Paths::One(_) => 1,
            Paths::Many(map) => map.len(),
        }
    }

    /// The counters of `template`, if this host has them.
    pub fn get_mut(&mut self, template: &str) -> Option<&mut PathEntry> {
        match self {
            Paths::None => None,
            Paths::One(one) if &*one.0 == template => Some(&mut one.1),
            Paths::One(_) => None,
            Paths::Many(map) => map.get_mut(template),
        }
    }

    /// Every template with its counters.
    pub fn iter_mut(&mut self) -> Box<dyn Iterator<Item = (&str, &mut PathEntry)> + '_> {
        match self {
            Paths::None => Box::new(std::iter::empty()),
            Paths::One(one) => {
                let (t, p) = &mut **one;
                Box::new(std::iter::once((&**t, p)))
            }
            Paths::Many(map) => Box::new(map.iter_mut().map(|(t, p)| (&**t, p))),
        }
    }

    /// Adds a template first seen in `o`, charging `budget` (and its first sighting's place in
    /// the shared set); `None` when the budget refuses it. `always` only for a bucket's `{other}`.
    pub fn insert(
        &mut self,
        template: &str,
        o: &Observation<'_>,
        budget: &Budget,
        always: bool,
    ) -> Option<&mut PathEntry> {
        let (entry, extra) = PathEntry::new(o, template);
        let cost = extra
            + SEEN_SLOT
            + alloc(template.len())
            + match self {
                Paths::None => alloc(std::mem::size_of::<(Box<str>, PathEntry)>()),
                // The first template moves into a map with the second.
                Paths::One(_) => {
                    alloc(std::mem::size_of::<HashMap<Box<str>, PathEntry, RandomState>>()) + 2 * PATH_SLOT
                }
                Paths::Many(_) => PATH_SLOT,
            };
        if always {
            budget.force(cost);
        } else if !budget.take(cost) {
            return None;
        }
        let key: Box<str> = template.into();
        match std::mem::replace(self, Paths::None) {
            Paths::None => *self = Paths::One(Box::new((key, entry))),
            Paths::One(one) => {
                let (t, p) = *one;
                let mut map = HashMap::with_capacity_and_hasher(2, RandomState::new());
                map.insert(t, p);
                map.insert(key, entry);
                *self = Paths::Many(Box::new(map));
            }
            Paths::Many(mut map) => {
                map.insert(key, entry);
                *self = Paths::Many(map);
            }
        }
        self.get_mut(template)
    }
}

impl Paths {
    /// Makes `{other}` without growing, when the budget refuses it a place of its own: the least
    /// requested template becomes `{other}`, its counts kept (what `--max-paths-per-host` does
    /// to the tail). Returns the requests it held, `None` when the host has no template.
    pub fn fold_least_into_other(&mut self, budget: &Budget) -> Option<u64> {
        let other: Box<str> = OTHER_PATH.into();
        let folded = match self {
            Paths::None => return None,
            Paths::One(one) => {
                let (key, entry) = &mut **one;
                let freed = alloc(key.len()) + entry.example.as_ref().map_or(0, |e| alloc(e.len()));
                budget.release(freed.saturating_sub(alloc(other.len())));
                *key = other;
                entry.example = None;
                entry.green = None;
                entry.counts.requests
            }
            Paths::Many(map) => {
                let least = map.iter().min_by_key(|(_, p)| p.counts.requests).map(|(k, _)| k.clone())?;
                let mut entry = map.remove(&least)?;
                let freed = alloc(least.len()) + entry.example.as_ref().map_or(0, |e| alloc(e.len()));
                budget.release(freed.saturating_sub(alloc(other.len())));
                entry.example = None;
                entry.green = None;
                let requests = entry.counts.requests;
                map.insert(other, entry);
                requests
            }
        };
        Some(folded)
    }
}

/// A user agent kept in a host's top-k.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// The user agent (lossy UTF-8, cut at [`MAX_AGENT_LEN`] bytes).
    pub text: Box<str>,
}

impl Agent {
    pub(super) fn new(raw: &[u8]) -> Self {
        Self { text: String::from_utf8_lossy(&raw[..raw.len().min(MAX_AGENT_LEN)]).into() }
    }
}

/// What a host earned by a second request or connection.
#[derive(Debug)]
pub struct HostDetail {
    pub clients: TopK<IpAddr>,
    pub agents: TopK<Agent>,
    /// Requests (or passthrough connections) per minute, last 24 h.
    pub minutes: Minutes,
    /// Oldest client connection seen carrying a request, ms.
    pub oldest_conn_age_ms: u64,
    /// Requests over terminated TLS: SNI mismatches, default certificate.
    pub tls: TlsCounts,
    /// Passthrough connections, and when they were first and last seen (unix ms).
    pub passthrough: PassthroughCounts,
    pub passthrough_seen: Option<(u64, u64)>,
    /// Traffic after the host's DNS moved to green (`None` until then).
    pub after_move: Option<Box<AfterMove>>,
}

/// How much a host has been seen.
#[derive(Debug)]
pub enum Sight {
    /// Once: the request's client, user agent, minute, connection age and TLS facts.
    Once { client: IpAddr, agent: Option<Box<str>>, minute: u32, conn_age_ms: u32, tls: Option<TlsObservation> },
    /// More: the full detail.
    Detail(Box<HostDetail>),
}

/// One host in a lane.
#[derive(Debug)]
pub struct HostEntry {
    /// The client addressed an IP literal.
    pub ip_literal: bool,
    pub paths: Paths,
    pub sight: Sight,
}

impl HostEntry {
    /// Requests counted in this lane (the sum of its paths').
    pub(super) fn requests(&self) -> u64 {
        match &self.paths {
            Paths::None => 0,
            Paths::One(one) => one.1.counts.requests,
            Paths::Many(map) => map.values().map(|p| p.counts.requests).sum(),
        }
    }

    /// A host first seen in request `o`, and the bytes it takes besides its map slot and paths.
    pub(super) fn once(o: &Observation<'_>, ip_literal: bool) -> (Self, usize) {
        let agent: Option<Box<str>> = o.user_agent.map(|ua| Agent::new(ua).text);
        let cost = alloc(std::mem::size_of::<HostEntry>()) + agent.as_ref().map_or(0, |a| alloc(a.len()));
        let sight = Sight::Once {
            client: o.client_ip,
            agent,
            minute: u32::try_from(o.at_ms / 60_000).unwrap_or(u32::MAX),
            conn_age_ms: u32::try_from(o.conn_age_ms).unwrap_or(u32::MAX),
            tls: o.tls,
        };
        (Self { ip_literal, paths: Paths::None, sight }, cost)
    }

    /// A host first seen as a passthrough connection (its detail at once: no request to keep
    /// inline), or `None` when the budget refuses it.
    pub(super) fn passthrough(ip_literal: bool, budget: &Budget) -> Option<Self> {
        let detail = HostDetail::new(budget)?;
        budget.take(alloc(std::mem::size_of::<HostEntry>())).then_some(())?;
        Some(Self { ip_literal, paths: Paths::None, sight: Sight::Detail(detail) })
    }

    /// The host's detail, made from its one sighting on the second one; `None` when the budget
    /// refuses it (the host stays compact: its counts are in its paths either way).
    pub(super) fn detail(&mut self, budget: &Budget) -> Option<&mut HostDetail> {
        if let Sight::Once { client, agent, minute, conn_age_ms, tls } = &mut self.sight {
            let mut detail = HostDetail::new(budget)?;
            detail.clients.add(client, 1);
            if let Some(a) = agent.take() {
                detail.agents.add(&Agent { text: a }, 1);
            }
            detail.minutes.add(u64::from(*minute), 1);
            detail.oldest_conn_age_ms = u64::from(*conn_age_ms);
            if let Some(t) = tls {
                detail.tls.count(t.sni_mismatch, t.default_cert);
            }
            self.sight = Sight::Detail(detail);
        }
        match &mut self.sight {
            Sight::Detail(d) => Some(d),
            Sight::Once { .. } => None,
        }
    }

    /// Counts what request `o` tells about the host itself (its paths are counted apart).
    pub(super) fn count(&mut self, o: &Observation<'_>, budget: &Budget) {
        let Some(d) = self.detail(budget) else { return };
        d.clients.add(&o.client_ip, 1);
        if let Some(ua) = o.user_agent {
            let ua = &ua[..ua.len().min(MAX_AGENT_LEN)];
            // Most connections repeat one user agent: a byte compare against the few kept ones
            // beats hashing every request's (long) user agent.
            let text = String::from_utf8_lossy(ua);
            let known = d.agents.items().iter().any(|(k, _)| *k.text == *text);
            if known || budget.take(alloc(text.len())) {
                if let Some(replaced) =
                    d.agents.add_with(|k| *k.text == *text, || Agent { text: text.as_ref().into() }, 1)
                {
                    budget.release(alloc(replaced.text.len()));
                }
            }
        }
        d.oldest_conn_age_ms = d.oldest_conn_age_ms.max(o.conn_age_ms);
        if let Some(t) = o.tls {
            d.tls.count(t.sni_mismatch, t.default_cert);
        }
        d.count_minute(o.at_ms / 60_000, budget);
    }
}

impl HostDetail {
    /// An empty detail, uncharged (an `(other)` bucket's: charged by its maker).
    pub(super) fn empty() -> Self {
        HostDetail {
            clients: TopK::new(TOP_K),
            agents: TopK::new(TOP_K),
            minutes: Minutes::default(),
            oldest_conn_age_ms: 0,
            tls: TlsCounts::default(),
            passthrough: PassthroughCounts::default(),
            passthrough_seen: None,
            after_move: None,
        }
    }

    /// An empty detail with room for its top-k, charged to `budget`.
    fn new(budget: &Budget) -> Option<Box<Self>> {
        let cost = alloc(std::mem::size_of::<HostDetail>())
            + alloc(TOP_K * std::mem::size_of::<(IpAddr, u64)>())
            + alloc(TOP_K * std::mem::size_of::<(Agent, u64)>());
        budget.take(cost).then(|| {
            Box::new(HostDetail {
                clients: TopK::with_room(TOP_K),
                agents: TopK::with_room(TOP_K),
                minutes: Minutes::default(),
                oldest_conn_age_ms: 0,
                tls: TlsCounts::default(),
                passthrough: PassthroughCounts::default(),
                passthrough_seen: None,
                after_move: None,
            })
        })
    }

    /// Counts one request (or connection) in its minute; when the ring would have to grow and
    /// the budget refuses, in the newest minute kept, so the ring's sum stays exact.
    pub(super) fn count_minute(&mut self, minute: u64, budget: &Budget) {
        if self.minutes.grows_for(minute) {
            let more = self.minutes.heap_bytes().max(32);
            if !budget.take(alloc(more)) {
                self.minutes.add_to_newest(1);
                return;
            }
        }
        self.minutes.add(minute, 1);
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
pub(super) fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One path template as a report reads it: the lanes merged.
#[derive(Debug, Clone)]
pub struct PathStats {
    /// Requests, first/last seen, methods, status classes, bytes.
    pub counts: Counters,
    /// The first concrete path seen (the template itself when it has no id).
    pub example: Box<str>,
    /// The green object that serves it, judged with the current table (`None`: not served, or
    /// no table).
    pub green: Option<crate::routes::RouteRef>,
}

/// One host as a report reads it: the lanes merged.
#[derive(Debug, Clone)]
pub struct HostStats {
    /// The sum of the paths' counters (passthrough connections add their first and last seen).
    pub counts: Counters,
    /// The client addressed an IP literal.
    pub ip_literal: bool,
    pub clients: TopK<IpAddr>,
    pub agents: TopK<Agent>,
    /// Oldest client connection seen carrying a request, ms.
    pub oldest_conn_age_ms: u64,
    /// Requests per minute, last 24 h.
    pub minutes: Minutes,
    pub tls: TlsCounts,
    pub passthrough: PassthroughCounts,
    /// Path templates.
    pub paths: HashMap<String, PathStats, RandomState>,
    /// Traffic after the host's DNS moved to green.
    pub after_move: Option<AfterMove>,
}

impl HostStats {
    /// Nothing seen yet.
    pub fn empty() -> Self {
        Self {
            counts: Counters::default(),
            ip_literal: false,
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

    /// Adds one lane's entry of this host; `green` names a path's serving object from its index.
    pub fn add(&mut self, e: &HostEntry, green: &dyn Fn(Option<u32>) -> Option<crate::routes::RouteRef>) {
        self.ip_literal |= e.ip_literal;
        let mut lane_counts = Counters::default();
        let mut each_path = |template: &str, p: &PathEntry| {
            lane_counts.absorb(&p.counts);
            let view = PathStats { counts: p.counts, example: p.example(template).into(), green: green(p.green) };
            match self.paths.get_mut(template) {
                Some(mine) => mine.counts.merge(&view.counts),
                None => {
                    self.paths.insert(template.to_owned(), view);
                }
            }
        };
        match &e.paths {
            Paths::None => {}
            Paths::One(one) => each_path(&one.0, &one.1),
            Paths::Many(map) => map.iter().for_each(|(t, p)| each_path(t, p)),
        }
        match &e.sight {
            Sight::Once { client, agent, minute, conn_age_ms, tls } => {
                self.clients.add(client, 1);
                if let Some(a) = agent {
                    self.agents.add(&Agent { text: a.clone() }, 1);
                }
                self.minutes.merge(&one_minute(*minute));
                self.oldest_conn_age_ms = self.oldest_conn_age_ms.max(u64::from(*conn_age_ms));
                if let Some(t) = tls {
                    self.tls.count(t.sni_mismatch, t.default_cert);
                }
            }
            Sight::Detail(d) => {
                self.clients.merge(&d.clients);
                self.agents.merge(&d.agents);
                self.minutes.merge(&d.minutes);
                self.oldest_conn_age_ms = self.oldest_conn_age_ms.max(d.oldest_conn_age_ms);
                self.tls.merge(&d.tls);
                self.passthrough.merge(&d.passthrough);
                if let Some((from, to)) = d.passthrough_seen {
                    lane_counts.touch_span(from, to);
                }
                if let Some(theirs) = &d.after_move {
                    self.after_move.get_or_insert_with(Default::default).merge(theirs);
                }
            }
        }
        self.counts.absorb(&lane_counts);
    }
}

fn one_minute(minute: u32) -> Minutes {
    let mut m = Minutes::default();
    m.add(u64::from(minute), 1);
    m
}
