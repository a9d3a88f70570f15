//! The traffic ledger: normalized host → path template → counters, in 64 independently locked
//! shards (no global lock; two workers rarely meet on one shard). Bounded by `--max-hosts` and
//! `--max-paths-per-host`; beyond them traffic lands in `(other)` / `{other}`, so totals stay exact.

use std::cell::RefCell;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use hashbrown::hash_map::EntryRef;
use hashbrown::HashMap;

use super::normalize::{normalize_host_into, Glob, Templater, MAX_PATH_LEN};
use super::stats::{Counters, Minutes, PassthroughCounts, TlsCounts, TopK};
use crate::routes::{RouteRef, RouteTable};

/// Ledger key of hosts beyond `--max-hosts`.
pub const OTHER_HOST: &str = "(other)";
/// Ledger key of paths beyond `--max-paths-per-host`.
pub const OTHER_PATH: &str = "{other}";
/// Top client IPs / user agents kept per host.
pub const TOP_K: usize = 10;
/// Longest user agent kept (longer ones are cut).
pub const MAX_AGENT_LEN: usize = 200;
const SHARDS: usize = 64;

/// Hosts whose DNS points only at green, with the first time that was seen (unix ms). Published by
/// the DNS evidence whenever the set changes, read on every recorded request (one load and, when
/// any host has moved, one hash lookup).
#[derive(Default)]
pub struct MovedHosts {
    map: ArcSwap<HashMap<String, u64, RandomState>>,
    /// Whether the map has any host: one relaxed load on the common path, before the map's.
    any: std::sync::atomic::AtomicBool,
}

impl MovedHosts {
    /// Replaces the set.
    pub fn publish(&self, moved: Vec<(String, u64)>) {
        let mut map = HashMap::with_capacity_and_hasher(moved.len(), RandomState::new());
        map.extend(moved);
        let any = !map.is_empty();
        self.map.store(Arc::new(map));
        self.any.store(any, Ordering::Release);
    }

    /// Whether no host has moved.
    pub fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    /// When `host` (normalized) moved to green, if it has.
    pub fn get(&self, host: &str) -> Option<u64> {
        if self.is_empty() {
            return None;
        }
        self.map.load().get(host).copied()
    }
}

/// Clients kept per host after its move (the most active).
pub const LATE_CLIENTS: usize = 16;

/// A client (IP and user agent) seen after its host's DNS moved to green.
#[derive(Debug, Clone)]
pub struct LateClient {
    /// Client IP.
    pub ip: IpAddr,
    /// Its first user agent.
    pub agent: Box<str>,
    /// Requests after the move.
    pub requests: u64,
    /// Last request, unix ms.
    pub last_seen_ms: u64,
    /// Oldest connection age seen, ms.
    pub conn_age_ms: u64,
    /// Some request came on a connection opened before the move.
    pub opened_before_move: bool,
}

/// Traffic of a host after its DNS moved: the evidence for `wait-ttl` vs `fix-clients`.
#[derive(Debug, Clone, Default)]
pub struct AfterMove {
    /// Requests after the move.
    pub requests: u64,
    /// Of those, on connections opened before the move.
    pub on_old_connections: u64,
    /// The clients, at most [`LATE_CLIENTS`] (space-saving: a newcomer replaces the least active).
    pub clients: Vec<LateClient>,
}

impl AfterMove {
    fn add(&mut self, o: &Observation<'_>, old_conn: bool) {
        self.requests += 1;
        self.on_old_connections += old_conn as u64;
        let ua = o.user_agent.map(|ua| &ua[..ua.len().min(MAX_AGENT_LEN)]).unwrap_or_default();
        // Compared as stored: lossy UTF-8 (borrowed, no copy, when the agent is valid UTF-8).
        let ua = String::from_utf8_lossy(ua);
        if let Some(c) = self.clients.iter_mut().find(|c| c.ip == o.client_ip && *c.agent == *ua) {
            c.requests += 1;
            c.last_seen_ms = c.last_seen_ms.max(o.at_ms);
            c.conn_age_ms = c.conn_age_ms.max(o.conn_age_ms);
            c.opened_before_move |= old_conn;
            return;
        }
        let agent: Box<str> = ua.into();
        let fresh = LateClient {
            ip: o.client_ip,
            agent,
            requests: 1,
            last_seen_ms: o.at_ms,
            conn_age_ms: o.conn_age_ms,
            opened_before_move: old_conn,
        };
        if self.clients.len() < LATE_CLIENTS {
            self.clients.push(fresh);
        } else if let Some(least) = self.clients.iter_mut().min_by_key(|c| c.requests) {
            let requests = least.requests + 1;
            *least = LateClient { requests, ..fresh };
        }
    }

    /// Adds another lane's.
    pub fn merge(&mut self, o: &AfterMove) {
        self.requests += o.requests;
        self.on_old_connections += o.on_old_connections;
        for c in &o.clients {
            match self.clients.iter_mut().find(|m| m.ip == c.ip && m.agent == c.agent) {
                Some(m) => {
                    m.requests += c.requests;
                    m.last_seen_ms = m.last_seen_ms.max(c.last_seen_ms);
                    m.conn_age_ms = m.conn_age_ms.max(c.conn_age_ms);
                    m.opened_before_move |= c.opened_before_move;
                }
                None => self.clients.push(c.clone()),
            }
        }
        self.clients.sort_by_key(|c| std::cmp::Reverse(c.requests));
        self.clients.truncate(LATE_CLIENTS);
    }
}

/// Limits and filters of the ledger.
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    /// Distinct hosts kept before `(other)`.
    pub max_hosts: usize,
    /// Distinct path templates per host before `{other}`.
    pub max_paths_per_host: usize,
    /// Distinct path templates over all hosts before `{other}` (bounds memory as a whole).
    pub max_paths: usize,
    /// Requests whose path matches are counted as ignored, not recorded.
    pub ignore_paths: Vec<Glob>,
    /// Requests whose user agent matches are counted as ignored, not recorded.
    pub ignore_user_agents: Vec<Glob>,
    /// Turns paths into templates.
    pub templater: Templater,
}

/// One forwarded request (or upgraded connection), as the ledger needs it.
#[derive(Debug)]
pub struct Observation<'a> {
    /// Host as received (`:authority` for HTTP/2).
    pub host: Option<&'a [u8]>,
    /// Request path (query ignored).
    pub path: &'a str,
    /// Method.
    pub method: &'a http::Method,
    /// Status sent to the client.
    pub status: u16,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// Client IP.
    pub client_ip: IpAddr,
    /// User-Agent header.
    pub user_agent: Option<&'a [u8]>,
    /// Age of the client's connection when the request arrived.
    pub conn_age_ms: u64,
    /// Arrived over terminated TLS (`None` on plain listeners).
    pub tls: Option<TlsObservation>,
    /// Wall clock of the request, unix milliseconds.
    pub at_ms: u64,
}

/// What TLS termination adds to a request's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsObservation {
    /// The Host names another server than the SNI.
    pub sni_mismatch: bool,
    /// No certificate named the SNI (or there was none): the default was served.
    pub default_cert: bool,
}

/// One passthrough connection, recorded when it ends.
#[derive(Debug)]
pub struct PassthroughObservation<'a> {
    /// The SNI, or `(no-sni)` / `(not-tls)`.
    pub host: &'a str,
    /// `host` is an SNI (to be normalized), not one of the markers.
    pub sni: bool,
    /// Client IP (the TCP peer).
    pub client_ip: IpAddr,
    /// Bytes from the client.
    pub bytes_in: u64,
    /// Bytes toward the client.
    pub bytes_out: u64,
    /// How long the connection was open.
    pub duration_ms: u64,
    /// When it ended, unix milliseconds.
    pub at_ms: u64,
}

/// What recording one request found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Matched an ignore rule: counted as ignored only.
    Ignored,
    /// Recorded; `routed` is green's verdict for its host/path (`None`: no route table).
    Counted {
        /// Whether green routes this host/path.
        routed: Option<bool>,
        /// The host's DNS had moved to green and this request came on a connection opened before
        /// the move (keep-alive stickiness).
        stale_conn: bool,
    },
}

/// A first sighting, announced as an `event` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sighting {
    /// A host never seen before.
    NewHost {
        /// The normalized host.
        host: String,
        /// Green's verdict for its first path (`None`: no route table).
        routed: Option<bool>,
    },
    /// A path template never seen before on its host.
    NewPath {
        /// The normalized host.
        host: String,
        /// The template.
        path: String,
        /// Green's verdict (`None`: no route table).
        routed: Option<bool>,
        /// The green object that serves it.
        matched: Option<RouteRef>,
    },
}

/// Counters of one path template.
#[derive(Debug, Clone)]
pub struct PathStats {
    /// Requests, first/last seen, methods, status classes, bytes.
    pub counts: Counters,
    /// The first concrete path seen, matched against green's routes.
    pub example: Box<str>,
    /// Green's verdict and the route table version it was computed with.
    pub green: Option<RouteRef>,
    green_version: u64,
}

impl PathStats {
    fn new(o: &Observation<'_>) -> Self {
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
    fn new(raw: &[u8]) -> Self {
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
    fn new(at_ms: u64, ip_literal: bool) -> Self {
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
    /// Passthrough connections.
    pub passthrough_connections: u64,
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
    fn merge(&mut self, o: &PathStats) {
        self.counts.merge(&o.counts);
        if o.green_version > self.green_version {
            self.green = o.green.clone();
            self.green_version = o.green_version;
        }
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
    /// Passthrough connections.
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
    shards: [Mutex<HashMap<String, HostStats, RandomState>>; LANE_SHARDS],
}

/// Host maps per lane.
pub const LANE_SHARDS: usize = 16;

impl Lane {
    /// The shard of a (normalized) host: a cheap multiplicative hash (the shard only spreads the
    /// copy of a snapshot; the maps keep their own keyed hashing).
    fn shard(&self, host: &str) -> &Mutex<HashMap<String, HostStats, RandomState>> {
        let mut x = host.len() as u64;
        for chunk in host.as_bytes().chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            x = (x ^ u64::from_le_bytes(word)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
        &self.shards[(x >> 60) as usize % LANE_SHARDS]
    }
}

/// First sightings and the host bound, shared by the lanes but consulted only on a lane's miss.
type Seen<T> = Box<[Mutex<std::collections::HashSet<T>>]>;

/// The ledger.
pub struct Ledger {
    /// Process-unique, for the per-thread template cache.
    id: u64,
    settings: LedgerSettings,
    hasher: RandomState,
    /// Hosts admitted under `--max-hosts` (each once, whichever lane saw it first).
    seen_hosts: Seen<String>,
    /// Hashes of (host, template) pairs already announced.
    seen_paths: Seen<u64>,
    hosts: AtomicUsize,
    paths: AtomicUsize,
    /// Requests the last snapshot folded into `{other}` while merging lanes.
    folded_paths: AtomicU64,
    /// The lane of direct [`Ledger::record`] calls; workers take their own with [`Ledger::lane`].
    default_lane: Arc<Lane>,
    lanes: Mutex<Vec<Arc<Lane>>>,
    routes: ArcSwap<RouteTable>,
    route_version: AtomicU64,
    moves: Arc<MovedHosts>,
    new_hosts: std::sync::OnceLock<tokio::sync::mpsc::Sender<String>>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch::new()) };
}

/// A worker's buffers for the normalized host and path template, which also remember the last
/// raw host and path: a keep-alive connection mostly repeats them, and normalizing (an IP literal
/// is parsed and printed, an IDN converted) costs more than comparing a few bytes.
struct Scratch {
    host: String,
    path: String,
    /// Raw host whose normalized form `host` holds (`None`: nothing cached).
    last_host: Option<Vec<u8>>,
    last_ip_literal: bool,
    /// Raw path whose template `path` holds, and which ledger's templater made it.
    last_path: Option<(u64, String)>,
}

impl Scratch {
    const fn new() -> Self {
        Self { host: String::new(), path: String::new(), last_host: None, last_ip_literal: false, last_path: None }
    }

    /// Longest raw host or path remembered (longer ones are normalized every time).
    const MAX_CACHED: usize = 256;

    fn host(&mut self, raw: Option<&[u8]>) -> bool {
        if let (Some(raw), Some(last)) = (raw, &self.last_host) {
            if raw == last.as_slice() {
                return self.last_ip_literal;
            }
        }
        let ip_literal = normalize_host_into(raw, &mut self.host);
        match raw {
            Some(raw) if raw.len() <= Self::MAX_CACHED => {
                let last = self.last_host.get_or_insert_with(Vec::new);
                last.clear();
                last.extend_from_slice(raw);
                self.last_ip_literal = ip_literal;
            }
            _ => self.last_host = None,
        }
        ip_literal
    }

    fn path(&mut self, ledger: u64, templater: &Templater, raw: &str) {
        if let Some((id, last)) = &self.last_path {
            if *id == ledger && last == raw {
                return;
            }
        }
        templater.template_into(raw, &mut self.path);
        if raw.len() <= Self::MAX_CACHED {
            let (id, last) = self.last_path.get_or_insert_with(|| (ledger, String::new()));
            *id = ledger;
            last.clear();
            last.push_str(raw);
        } else {
            self.last_path = None;
        }
    }
}

/// A process-unique id per ledger, so a thread's cached template never comes from another
/// ledger's templater.
fn next_ledger_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Ledger {
    /// An empty ledger judging paths against `routes`.
    pub fn new(settings: LedgerSettings, routes: Arc<RouteTable>) -> Self {
        let default_lane = Arc::new(Lane::default());
        Self {
            id: next_ledger_id(),
            settings,
            hasher: RandomState::new(),
            seen_hosts: (0..SHARDS).map(|_| Mutex::default()).collect(),
            seen_paths: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hosts: AtomicUsize::new(0),
            paths: AtomicUsize::new(0),
            folded_paths: AtomicU64::new(0),
            lanes: Mutex::new(vec![default_lane.clone()]),
            default_lane,
            routes: ArcSwap::new(routes),
            route_version: AtomicU64::new(1),
            moves: Arc::new(MovedHosts::default()),
            new_hosts: std::sync::OnceLock::new(),
        }
    }

    /// The hosts that moved to green (shared with the DNS evidence, which publishes them).
    pub fn moves(&self) -> Arc<MovedHosts> {
        self.moves.clone()
    }

    /// Every host seen for the first time is sent here (dropped when the channel is full; the
    /// receiver also reads [`Ledger::host_names`] now and then).
    pub fn announce_new_hosts(&self, tx: tokio::sync::mpsc::Sender<String>) {
        let _ = self.new_hosts.set(tx);
    }

    /// Every admitted host's name.
    pub fn host_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for shard in self.seen_hosts.iter() {
            out.extend(shard.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned());
        }
        out
    }

    /// The current route table.
    pub fn routes(&self) -> Arc<RouteTable> {
        self.routes.load_full()
    }

    /// Replaces green's route table (after a reload); verdicts are recomputed lazily.
    pub fn set_routes(&self, routes: Arc<RouteTable>) {
        self.routes.store(routes);
        self.route_version.fetch_add(1, Ordering::Release);
    }

    /// Whether a request is to be ignored (health checks).
    pub fn ignores(&self, path: &str, user_agent: Option<&[u8]>) -> bool {
        if self.settings.ignore_paths.iter().any(|g| g.matches(path)) {
            return true;
        }
        match user_agent.and_then(|ua| std::str::from_utf8(ua).ok()) {
            Some(ua) => self.settings.ignore_user_agents.iter().any(|g| g.matches(ua)),
            None => false,
        }
    }

    /// A lane of its own for one worker, merged into every report.
    pub fn lane(&self) -> Arc<Lane> {
        let lane = Arc::new(Lane::default());
        if let Ok(mut lanes) = self.lanes.lock() {
            lanes.push(lane.clone());
        }
        lane
    }

    fn lanes(&self) -> Vec<Arc<Lane>> {
        self.lanes.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Exact totals over every worker.
    pub fn totals(&self) -> TotalCounts {
        let mut sum = TotalCounts::default();
        for lane in self.lanes() {
            let t = &lane.totals;
            let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
            sum.requests += get(&t.requests);
            sum.ignored += get(&t.ignored);
            sum.unrouted += get(&t.unrouted);
            sum.hosts_overflowed += get(&t.hosts_overflowed);
            sum.paths_overflowed += get(&t.paths_overflowed);
            sum.tls_requests += get(&t.tls_requests);
            sum.sni_mismatch += get(&t.sni_mismatch);
            sum.default_cert += get(&t.default_cert);
            sum.passthrough_connections += get(&t.passthrough_connections);
        }
        sum.paths_overflowed += self.folded_paths.load(Ordering::Relaxed);
        sum
    }

    /// Records one request; `sighted` hears about first sightings.
    pub fn record(&self, o: &Observation<'_>, sighted: impl FnMut(Sighting)) -> Recorded {
        self.record_into(&self.default_lane, o, sighted)
    }

    /// Records one request into a worker's own lane.
    pub fn record_into(&self, lane: &Lane, o: &Observation<'_>, mut sighted: impl FnMut(Sighting)) -> Recorded {
        let totals = &lane.totals;
        if self.ignores(o.path, o.user_agent) {
            totals.ignored.fetch_add(1, Ordering::Relaxed);
            return Recorded::Ignored;
        }
        totals.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = o.tls {
            totals.tls_requests.fetch_add(1, Ordering::Relaxed);
            if t.sni_mismatch {
                totals.sni_mismatch.fetch_add(1, Ordering::Relaxed);
            }
            if t.default_cert {
                totals.default_cert.fetch_add(1, Ordering::Relaxed);
            }
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let ip_literal = scratch.host(o.host);
            scratch.path(self.id, &self.settings.templater, o.path);
            let (routed, stale_conn) =
                self.record_normalized(lane, &scratch.host, ip_literal, &scratch.path, o, &mut sighted);
            if routed == Some(false) {
                totals.unrouted.fetch_add(1, Ordering::Relaxed);
            }
            Recorded::Counted { routed, stale_conn }
        })
    }

    /// Records one passthrough connection under its SNI host (connections, bytes, duration and
    /// the client; no request, no path).
    pub fn record_passthrough(&self, lane: &Lane, o: &PassthroughObservation<'_>, mut sighted: impl FnMut(Sighting)) {
        lane.totals.passthrough_connections.fetch_add(1, Ordering::Relaxed);
        let mut host = String::new();
        let ip_literal = if o.sni {
            normalize_host_into(Some(o.host.as_bytes()), &mut host)
        } else {
            host.push_str(o.host);
            false
        };
        // Seen from when the connection opened until it closed; counted in the minute it closed.
        let opened_ms = o.at_ms.saturating_sub(o.duration_ms);
        // `(other)` goes to the overflowing host's shard: snapshots merge it across shards.
        let mut hosts = lane.shard(&host).lock().unwrap_or_else(|p| p.into_inner());
        let mut new_host = false;
        let key = if hosts.contains_key(host.as_str()) {
            host.as_str()
        } else {
            match self.admit_host(&host) {
                Some(first) => {
                    new_host = first;
                    hosts.insert(host.clone(), HostStats::new(opened_ms, ip_literal));
                    host.as_str()
                }
                None => OTHER_HOST,
            }
        };
        let entry = hosts.entry_ref(key).or_insert_with(|| HostStats::new(opened_ms, false));
        entry.passthrough.count(o.bytes_in, o.bytes_out, o.duration_ms);
        entry.counts.touch(opened_ms);
        entry.counts.touch(o.at_ms);
        entry.minutes.add(o.at_ms / 60_000, 1);
        entry.clients.add(&o.client_ip, 1);
        if new_host {
            sighted(Sighting::NewHost { host: key.to_owned(), routed: None });
        }
    }

    fn shard_of<T: std::hash::Hash + ?Sized>(&self, key: &T) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    /// A host this lane has not seen: admitted under the bound (`Some(true)`: first sighting
    /// anywhere), already admitted by another lane (`Some(false)`), or over the bound (`None`).
    fn admit_host(&self, host: &str) -> Option<bool> {
        let mut seen = self.seen_hosts[self.shard_of(host)].lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(host) {
            return Some(false);
        }
        if self.hosts.fetch_add(1, Ordering::Relaxed) >= self.settings.max_hosts {
            self.hosts.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        seen.insert(host.to_owned());
        drop(seen);
        // Told to the DNS evidence (dropped when its queue is full; its sweep finds the host).
        if let Some(tx) = self.new_hosts.get() {
            let _ = tx.try_send(host.to_owned());
        }
        Some(true)
    }

    /// Whether this (host, template) pair is announced for the first time.
    fn first_path(&self, host: &str, template: &str) -> bool {
        let key = self.hasher.hash_one((host, template));
        self.seen_paths[self.shard_of(&key)].lock().unwrap_or_else(|p| p.into_inner()).insert(key)
    }

    fn record_normalized(
        &self,
        lane: &Lane,
        host: &str,
        ip_literal: bool,
        template: &str,
        o: &Observation<'_>,
        sighted: &mut impl FnMut(Sighting),
    ) -> (Option<bool>, bool) {
        let totals = &lane.totals;
        let mut new_host = false;
        // `(other)` goes to the overflowing host's shard: snapshots merge it across shards.
        let mut hosts = lane.shard(host).lock().unwrap_or_else(|p| p.into_inner());
        let mut overflow = false;
        let entry = match hosts.entry_ref(host) {
            EntryRef::Occupied(e) => Some(e.into_mut()),
            EntryRef::Vacant(v) => match self.admit_host(host) {
                Some(first) => {
                    new_host = first;
                    Some(v.insert(HostStats::new(o.at_ms, ip_literal)))
                }
                None => {
                    overflow = true;
                    None
                }
            },
        };
        let (key, entry) = match entry {
            Some(e) => (host, e),
            None => {
                totals.hosts_overflowed.fetch_add(1, Ordering::Relaxed);
                (OTHER_HOST, hosts.entry_ref(OTHER_HOST).or_insert_with(|| HostStats::new(o.at_ms, false)))
            }
        };
        entry.counts.count(o.method, o.status, o.bytes_in, o.bytes_out, o.at_ms);
        if let Some(t) = o.tls {
            entry.tls.count(t.sni_mismatch, t.default_cert);
        }
        entry.clients.add(&o.client_ip, 1);
        if let Some(ua) = o.user_agent {
            let ua = &ua[..ua.len().min(MAX_AGENT_LEN)];
            // Most connections repeat one user agent: a byte compare against the few kept ones
            // beats hashing every request's (long) user agent.
            match std::str::from_utf8(ua) {
                Ok(text) => entry.agents.add_with(|k| *k.text == *text, || Agent::new(ua), 1),
                Err(_) => {
                    let text = String::from_utf8_lossy(ua);
                    entry.agents.add_with(|k| *k.text == *text, || Agent::new(ua), 1)
                }
            }
        }
        entry.oldest_conn_age_ms = entry.oldest_conn_age_ms.max(o.conn_age_ms);
        entry.minutes.add(o.at_ms / 60_000, 1);
        if overflow {
            return (None, false);
        }
        let mut stale = false;
        if let Some(moved_at) = self.moves.get(key) {
            if o.at_ms >= moved_at {
                stale = o.at_ms.saturating_sub(o.conn_age_ms) < moved_at;
                entry.after_move.get_or_insert_with(Default::default).add(o, stale);
            }
        }

        let version = self.route_version.load(Ordering::Acquire);
        let at_bound = entry.paths.len() >= self.settings.max_paths_per_host;
        let mut is_new = false;
        let mut pkey = template;
        let path = match entry.paths.entry_ref(template) {
            EntryRef::Occupied(p) => Some(p.into_mut()),
            EntryRef::Vacant(v)
                if !at_bound && self.paths.fetch_add(1, Ordering::Relaxed) < self.settings.max_paths =>
            {
                is_new = true;
                Some(v.insert(PathStats::new(o)))
            }
            EntryRef::Vacant(_) => {
                if !at_bound {
                    self.paths.fetch_sub(1, Ordering::Relaxed);
                }
                None
            }
        };
        let path = match path {
            Some(p) => p,
            None => {
                pkey = OTHER_PATH;
                totals.paths_overflowed.fetch_add(1, Ordering::Relaxed);
                entry.paths.entry_ref(OTHER_PATH).or_insert_with(|| PathStats::new(o))
            }
        };
        path.counts.count(o.method, o.status, o.bytes_in, o.bytes_out, o.at_ms);
        if pkey == OTHER_PATH {
            if new_host {
                sighted(Sighting::NewHost { host: key.to_owned(), routed: None });
            }
            return (None, stale);
        }
        let routes = self.routes.load();
        let routed = if routes.is_empty() {
            None
        } else {
            if path.green_version != version {
                path.green = routes.route(key, &path.example).cloned();
                path.green_version = version;
            }
            Some(path.green.is_some())
        };
        if new_host {
            sighted(Sighting::NewHost { host: key.to_owned(), routed });
        }
        if is_new && self.first_path(key, pkey) {
            sighted(Sighting::NewPath {
                host: key.to_owned(),
                path: pkey.to_owned(),
                routed,
                matched: path.green.clone(),
            });
        }
        (routed, stale)
    }

    /// Every host, the lanes merged (each locked briefly in turn), green verdicts brought up to
    /// date with the current route table.
    pub fn snapshot(&self) -> Vec<(String, HostStats)> {
        // Version first, then the table (as `record` does): a reload in between only causes a recompute.
        let version = self.route_version.load(Ordering::Acquire);
        let routes = self.routes.load();
        let mut merged: HashMap<String, HostStats, RandomState> = HashMap::with_hasher(RandomState::new());
        for shard in self.lanes().iter().flat_map(|lane| lane.shards.iter()) {
            let mut hosts = shard.lock().unwrap_or_else(|p| p.into_inner());
            for (host, stats) in hosts.iter_mut() {
                if !routes.is_empty() && host.as_str() != OTHER_HOST {
                    for (template, p) in stats.paths.iter_mut() {
                        if p.green_version != version && template.as_str() != OTHER_PATH {
                            p.green = routes.route(host, &p.example).cloned();
                            p.green_version = version;
                        }
                    }
                }
                match merged.get_mut(host.as_str()) {
                    Some(m) => m.merge(stats),
                    None => {
                        merged.insert(host.clone(), stats.clone());
                    }
                }
            }
        }
        // Each lane keeps its own bound; the merged view keeps the bound too, folding the least
        // requested templates into `{other}`.
        let max = self.settings.max_paths_per_host;
        let mut folded = 0;
        for stats in merged.values_mut() {
            if stats.paths.len() <= max + 1 {
                continue;
            }
            let mut order: Vec<(String, u64)> = stats
                .paths
                .iter()
                .filter(|(t, _)| t.as_str() != OTHER_PATH)
                .map(|(t, p)| (t.clone(), p.counts.requests))
                .collect();
            order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            for (template, _) in order.into_iter().skip(max) {
                if let Some(p) = stats.paths.remove(&template) {
                    folded += p.counts.requests;
                    match stats.paths.get_mut(OTHER_PATH) {
                        Some(other) => other.merge(&p),
                        None => {
                            let mut other = p;
                            other.green = None;
                            stats.paths.insert(OTHER_PATH.to_owned(), other);
                        }
                    }
                }
            }
        }
        self.folded_paths.store(folded, Ordering::Relaxed);
        merged.into_iter().collect()
    }

    /// Distinct hosts recorded (without `(other)`).
    pub fn host_count(&self) -> usize {
        self.hosts.load(Ordering::Relaxed)
    }

    /// Distinct path templates recorded over all hosts (without `{other}`).
    pub fn path_count(&self) -> usize {
        self.paths.load(Ordering::Relaxed)
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
        // 48 000 names, 3 000 per shard if even: no shard holds twice its share (a snapshot holds
        // one shard's lock at a time).
        assert!(counts.iter().all(|&c| c > 1_500 && c < 6_000), "{counts:?}");
    }
}
