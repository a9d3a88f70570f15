//! The traffic ledger: normalized host → path template → counters, one lane per worker (no
//! counter shared between cores), merged for reports. Bounded by `--max-hosts`,
//! `--max-paths-per-host` and `--max-paths`; beyond them traffic lands in `(other)` / `{other}`,
//! so totals stay exact.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use hashbrown::hash_map::EntryRef;
use hashbrown::HashMap;

use super::host::{Agent, HostStats, PathStats};
use super::lane::{Lane, TotalCounts};
use super::moved::MovedHosts;
use super::normalize::{Glob, Templater};
use super::observation::{Observation, PassthroughObservation, Recorded, Routing, Sighting, MAX_AGENT_LEN};
use super::scratch::{next_ledger_id, SCRATCH};
use crate::base::host::{normalize_host_into, OTHER_HOST, OTHER_PATH};
use crate::routes::RouteTable;

/// Shards of the shared first-sighting sets.
const SHARDS: usize = 64;

/// How a host's traffic found its entry in a lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// The lane had it.
    Known,
    /// Admitted now; `first` when no lane had seen it before (a `new_host` to announce).
    New { first: bool },
    /// Past `--max-hosts`: counted under `(other)`.
    Overflow,
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

impl Default for LedgerSettings {
    fn default() -> Self {
        let globs = |list: &[&str]| list.iter().filter_map(|g| g.parse().ok()).collect();
        Self {
            max_hosts: 100_000,
            max_paths_per_host: 1_000,
            max_paths: 200_000,
            ignore_paths: globs(&["/healthz", "/readyz", "/livez"]),
            ignore_user_agents: globs(&["ELB-HealthChecker/*", "kube-probe/*"]),
            templater: Templater::default(),
        }
    }
}

/// First sightings and the host bound, shared by the lanes but consulted only on a lane's miss.
type Seen<T> = Box<[Mutex<std::collections::HashSet<T>>]>;

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
            let recorded = self.record_normalized(lane, &scratch.host, ip_literal, &scratch.path, o, &mut sighted);
            if matches!(recorded, Recorded::Counted { green: Routing::Unrouted, .. }) {
                totals.unrouted.fetch_add(1, Ordering::Relaxed);
            }
            recorded
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
        let mut hosts = lane.shard(&host).lock().unwrap_or_else(|p| p.into_inner());
        self.with_host(&mut hosts, &host, opened_ms, ip_literal, |key, entry, admission| {
            entry.passthrough.count(o.bytes_in, o.bytes_out, o.duration_ms);
            entry.counts.touch(opened_ms);
            entry.counts.touch(o.at_ms);
            entry.minutes.add(o.at_ms / 60_000, 1);
            entry.clients.add(&o.client_ip, 1);
            if admission == (Admission::New { first: true }) {
                sighted(Sighting::NewHost { host: key.to_owned(), green: Routing::Unknown });
            }
        });
    }

    /// The one admission of both record paths: `f` gets the host's entry in this lane's shard
    /// (found, or admitted now under `--max-hosts`) or, past the bound, `(other)`'s, with the key
    /// used. `(other)` goes to the overflowing host's shard: snapshots merge it across shards.
    fn with_host<R>(
        &self,
        hosts: &mut HashMap<String, HostStats, RandomState>,
        host: &str,
        first_seen_ms: u64,
        ip_literal: bool,
        f: impl FnOnce(&str, &mut HostStats, Admission) -> R,
    ) -> R {
        let found = match hosts.entry_ref(host) {
            EntryRef::Occupied(e) => Some((e.into_mut(), Admission::Known)),
            EntryRef::Vacant(v) => match self.admit_host(host) {
                Admission::Overflow => None,
                admitted => Some((v.insert(HostStats::new(first_seen_ms, ip_literal)), admitted)),
            },
        };
        match found {
            Some((entry, admission)) => f(host, entry, admission),
            None => {
                let other = hosts.entry_ref(OTHER_HOST).or_insert_with(|| HostStats::new(first_seen_ms, false));
                f(OTHER_HOST, other, Admission::Overflow)
            }
        }
    }

    fn shard_of<T: std::hash::Hash + ?Sized>(&self, key: &T) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    /// A host this lane has not seen: admitted under the bound (first sighting anywhere, or
    /// already admitted by another lane), or past it.
    fn admit_host(&self, host: &str) -> Admission {
        let mut seen = self.seen_hosts[self.shard_of(host)].lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(host) {
            return Admission::New { first: false };
        }
        if self.hosts.fetch_add(1, Ordering::Relaxed) >= self.settings.max_hosts {
            self.hosts.fetch_sub(1, Ordering::Relaxed);
            return Admission::Overflow;
        }
        seen.insert(host.to_owned());
        drop(seen);
        // Told to the DNS evidence (dropped when its queue is full; its sweep finds the host).
        if let Some(tx) = self.new_hosts.get() {
            let _ = tx.try_send(host.to_owned());
        }
        Admission::New { first: true }
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
    ) -> Recorded {
        let mut hosts = lane.shard(host).lock().unwrap_or_else(|p| p.into_inner());
        self.with_host(&mut hosts, host, o.at_ms, ip_literal, |key, entry, admission| {
            self.count_request(lane, key, entry, admission, template, o, sighted)
        })
    }

    /// Counts one request in its host's entry (and path), judges the path against green's table
    /// and announces first sightings; returns green's verdict and whether it was a stale
    /// connection's.
    #[allow(clippy::too_many_arguments)]
    fn count_request(
        &self,
        lane: &Lane,
        key: &str,
        entry: &mut HostStats,
        admission: Admission,
        template: &str,
        o: &Observation<'_>,
        sighted: &mut impl FnMut(Sighting),
    ) -> Recorded {
        let totals = &lane.totals;
        let new_host = admission == Admission::New { first: true };
        let overflow = admission == Admission::Overflow;
        if overflow {
            totals.hosts_overflowed.fetch_add(1, Ordering::Relaxed);
        }
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
            return Recorded::Counted { green: Routing::Unknown, stale_conn: false };
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
                sighted(Sighting::NewHost { host: key.to_owned(), green: Routing::Unknown });
            }
            return Recorded::Counted { green: Routing::Unknown, stale_conn: stale };
        }
        let routes = self.routes.load();
        let green = if routes.is_empty() {
            Routing::Unknown
        } else {
            if path.green_version != version {
                path.green = routes.route(key, &path.example).cloned();
                path.green_version = version;
            }
            Routing::of(Some(path.green.is_some()))
        };
        if new_host {
            sighted(Sighting::NewHost { host: key.to_owned(), green });
        }
        if is_new && self.first_path(key, pkey) {
            sighted(Sighting::NewPath {
                host: key.to_owned(),
                path: pkey.to_owned(),
                green,
                matched: path.green.clone(),
            });
        }
        Recorded::Counted { green, stale_conn: stale }
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
