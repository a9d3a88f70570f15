//! The traffic ledger: normalized host → path template → counters, one lane per worker (no
//! counter shared between cores), merged when read ([`super::view`]). Bounded twice: by counts
//! (`--max-hosts`, `--max-paths-per-host`, `--max-paths`) and by bytes (`--max-ledger-memory`,
//! [`Budget`]). Beyond them traffic is counted in `(other)` buckets per kind of host and in
//! `{other}` paths, so totals stay exact.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use hashbrown::hash_map::EntryRef;

use super::buckets::{bucket, HostKinds, NameKinds};
use super::budget::{alloc, Budget, HOST_SLOT, SEEN_SLOT};
use super::host::{HostDetail, HostEntry};
use super::lane::{HostMap, Lane};
use super::moved::MovedHosts;
use super::observation::{Observation, PassthroughObservation, Recorded, Routing, Sighting};
use super::scratch::{next_ledger_id, SCRATCH};
use super::settings::LedgerSettings;
use super::sightings::Gate;
use crate::base::host::{normalize_host_into, Overflow, OTHER_PATH};
use crate::base::time::unix_ms;
use crate::routes::RouteTable;

/// Shards of the shared first-sighting sets.
const SHARDS: usize = 64;

/// How a host's traffic found its entry in a lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// The lane had it.
    Known,
    /// Admitted now; `first` when no lane had seen it before (a `new_host` to announce).
    New { first: bool },
    /// Past the bounds: counted in an `(other)` bucket.
    Overflow,
}

/// First sightings and the host bound, shared by the lanes but consulted only on a lane's miss:
/// hashes of hosts and of (host, template) pairs.
type Seen = Box<[Mutex<std::collections::HashSet<u64>>]>;

/// The ledger.
pub struct Ledger {
    /// Process-unique, for the per-thread template cache.
    pub(super) id: u64,
    pub(super) settings: LedgerSettings,
    hasher: RandomState,
    seen_hosts: Seen,
    seen_paths: Seen,
    pub(super) hosts: AtomicUsize,
    pub(super) paths: AtomicUsize,
    /// Requests the last read folded into `{other}` while merging lanes.
    pub(super) folded_paths: AtomicU64,
    pub(super) budget: Budget,
    /// The lane of direct [`Ledger::record`] calls (and of restored hosts); workers take their
    /// own with [`Ledger::lane`].
    pub(super) default_lane: Arc<Lane>,
    lanes: Mutex<Vec<Arc<Lane>>>,
    pub(super) routes: ArcSwap<RouteTable>,
    pub(super) route_version: AtomicU32,
    moves: Arc<MovedHosts>,
    new_hosts: OnceLock<tokio::sync::mpsc::Sender<String>>,
    kinds: OnceLock<Arc<dyn HostKinds>>,
    gate: Gate,
}

impl Ledger {
    /// An empty ledger judging paths against `routes`.
    pub fn new(settings: LedgerSettings, routes: Arc<RouteTable>) -> Self {
        let default_lane = Arc::new(Lane::default());
        Self {
            id: next_ledger_id(),
            budget: Budget::new(settings.max_memory),
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
            route_version: AtomicU32::new(1),
            moves: Arc::new(MovedHosts::default()),
            new_hosts: OnceLock::new(),
            kinds: OnceLock::new(),
            gate: Gate::default(),
        }
    }

    /// The hosts that moved to green (shared with the DNS evidence, which publishes them).
    pub fn moves(&self) -> Arc<MovedHosts> {
        self.moves.clone()
    }

    /// Every host seen for the first time is sent here (dropped when the channel is full; the
    /// receiver also sweeps [`Ledger::for_each_name`] now and then).
    pub fn announce_new_hosts(&self, tx: tokio::sync::mpsc::Sender<String>) {
        let _ = self.new_hosts.set(tx);
    }

    /// Which `(other)` bucket an overflowing host goes to (set before traffic; [`NameKinds`]
    /// until then).
    pub fn set_kinds(&self, kinds: Arc<dyn HostKinds>) {
        let _ = self.kinds.set(kinds);
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

    /// A lane of its own for one worker, merged whenever the ledger is read.
    pub fn lane(&self) -> Arc<Lane> {
        let lane = Arc::new(Lane::default());
        if let Ok(mut lanes) = self.lanes.lock() {
            lanes.push(lane.clone());
        }
        lane
    }

    pub(super) fn lanes(&self) -> Vec<Arc<Lane>> {
        self.lanes.lock().map(|l| l.clone()).unwrap_or_default()
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
            let (host, template) = (&scratch.host, &scratch.path);
            let mut hosts = lane.shard(host).lock().unwrap_or_else(|p| p.into_inner());
            let recorded = self.with_host(&mut hosts, host, ip_literal, template, o, |key, entry, admission| {
                if admission == Admission::Overflow {
                    totals.hosts_overflowed.fetch_add(1, Ordering::Relaxed);
                }
                self.count_request(lane, key, entry, admission, template, o, &mut sighted)
            });
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
        let slot = self.admit(&host, ip_literal, Routing::Unknown, &mut hosts, |budget| {
            HostEntry::passthrough(ip_literal, budget)
        });
        let (key, admission) = match &slot {
            Slot::Own(admission) => (host.as_str(), *admission),
            Slot::Bucket(kind) => (kind.as_str(), Admission::Overflow),
        };
        let Some(entry) = hosts.get_mut(key) else { return };
        if let Some(d) = entry.detail(&self.budget) {
            d.passthrough.count(o.bytes_in, o.bytes_out, o.duration_ms);
            let seen = d.passthrough_seen.get_or_insert((opened_ms, o.at_ms));
            *seen = (seen.0.min(opened_ms), seen.1.max(o.at_ms));
            d.clients.add(&o.client_ip, 1);
            d.count_minute(o.at_ms / 60_000, &self.budget);
        }
        if admission == (Admission::New { first: true }) {
            self.announce(lane, Sighting::NewHost { host: key.to_owned(), green: Routing::Unknown }, &mut sighted);
        }
    }

    /// The one admission of both record paths: `f` gets the host's entry in this lane's shard
    /// (found, or admitted now under the bounds) or, past them, its `(other)` bucket's, with the
    /// key used. A bucket goes to the overflowing host's shard: reads merge it across shards.
    fn with_host<R>(
        &self,
        hosts: &mut HostMap,
        host: &str,
        ip_literal: bool,
        template: &str,
        o: &Observation<'_>,
        f: impl FnOnce(&str, &mut HostEntry, Admission) -> R,
    ) -> R {
        let found = match hosts.entry_ref(host) {
            EntryRef::Occupied(e) => Some(e.into_mut()),
            EntryRef::Vacant(_) => None,
        };
        if let Some(entry) = found {
            return f(host, entry, Admission::Known);
        }
        let green = self.judge_overflow(host, o.path);
        // A host is admitted with its first path: never without room to count its request.
        let make = |budget: &Budget| {
            let (mut entry, cost) = HostEntry::once(o, ip_literal);
            if !budget.take(cost) {
                return None;
            }
            let own_path = self.paths.fetch_add(1, Ordering::Relaxed) < self.settings.max_paths;
            if !own_path {
                self.paths.fetch_sub(1, Ordering::Relaxed);
            }
            let first = if own_path && self.settings.max_paths_per_host > 0 { template } else { OTHER_PATH };
            if entry.paths.insert(first, o, budget, false).is_none() {
                if first != OTHER_PATH {
                    self.paths.fetch_sub(1, Ordering::Relaxed);
                }
                budget.release(cost);
                return None;
            }
            Some(entry)
        };
        let (key, admission) = match self.admit(host, ip_literal, green, hosts, make) {
            Slot::Own(admission) => (host, admission),
            Slot::Bucket(kind) => (kind.as_str(), Admission::Overflow),
        };
        // `admit` left the entry in the map; the fallback only keeps a broken invariant from
        // losing the request.
        let entry = hosts.entry(Box::from(key)).or_insert_with(|| Box::new(bucket(Overflow::Hosts)));
        f(key, entry, admission)
    }

    /// Finds room for a host this lane has not seen: under `--max-hosts` and the memory budget,
    /// its own entry made by `make` (`None`: refused); past them, its kind's bucket (made if
    /// missing, whatever the budget: what must be counted is counted). The entry is in `hosts`
    /// when this returns.
    fn admit(
        &self,
        host: &str,
        ip_literal: bool,
        green: Routing,
        hosts: &mut HostMap,
        make: impl FnOnce(&Budget) -> Option<HostEntry>,
    ) -> Slot {
        let admission = self.admit_host(host);
        if admission != Admission::Overflow {
            let slot = HOST_SLOT + alloc(host.len());
            if self.budget.take(slot) {
                if let Some(entry) = make(&self.budget) {
                    hosts.insert(host.into(), Box::new(entry));
                    return Slot::Own(admission);
                }
                self.budget.release(slot);
            }
            self.forget_host(host);
        }
        let kind = match self.kinds.get() {
            Some(kinds) => kinds.overflow(host, ip_literal, green),
            None => NameKinds.overflow(host, ip_literal, green),
        };
        if !hosts.contains_key(kind.as_str()) {
            self.budget.force(HOST_SLOT + alloc(std::mem::size_of::<HostEntry>() + std::mem::size_of::<HostDetail>()));
            hosts.insert(kind.as_str().into(), Box::new(bucket(kind)));
        }
        Slot::Bucket(kind)
    }

    /// Whether green routes `path` of an overflowing host (its bucket depends on it).
    fn judge_overflow(&self, host: &str, path: &str) -> Routing {
        let routes = self.routes.load();
        if !routes.is_loaded() {
            return Routing::Unknown;
        }
        Routing::of(Some(routes.route_index(host, path).is_some()))
    }

    fn shard_of<T: std::hash::Hash + ?Sized>(&self, key: &T) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    /// A host this lane has not seen: admitted under `--max-hosts` (first sighting anywhere, or
    /// already admitted by another lane), or past it.
    fn admit_host(&self, host: &str) -> Admission {
        let hash = self.hasher.hash_one(host);
        let mut seen = self.seen_hosts[self.shard_of(&hash)].lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(&hash) {
            return Admission::New { first: false };
        }
        if self.hosts.fetch_add(1, Ordering::Relaxed) >= self.settings.max_hosts || !self.budget.take(SEEN_SLOT) {
            self.hosts.fetch_sub(1, Ordering::Relaxed);
            return Admission::Overflow;
        }
        seen.insert(hash);
        drop(seen);
        // Told to the DNS evidence (dropped when its queue is full; its sweep finds the host).
        if let Some(tx) = self.new_hosts.get() {
            let _ = tx.try_send(host.to_owned());
        }
        Admission::New { first: true }
    }

    /// Undoes [`Ledger::admit_host`] for a host whose entry the budget refused after all (only
    /// when it was this host's first sighting: another lane's entry keeps its place).
    fn forget_host(&self, host: &str) {
        let hash = self.hasher.hash_one(host);
        let mut seen = self.seen_hosts[self.shard_of(&hash)].lock().unwrap_or_else(|p| p.into_inner());
        if seen.remove(&hash) {
            self.hosts.fetch_sub(1, Ordering::Relaxed);
            self.budget.release(SEEN_SLOT);
        }
    }

    /// Marks a restored host and its templates as seen, so they are not announced again.
    pub(super) fn mark_seen<'a>(&self, host: &str, templates: impl Iterator<Item = &'a str>) {
        let hash = self.hasher.hash_one(host);
        self.seen_hosts[self.shard_of(&hash)].lock().unwrap_or_else(|p| p.into_inner()).insert(hash);
        for template in templates {
            let key = self.hasher.hash_one((host, template));
            self.seen_paths[self.shard_of(&key)].lock().unwrap_or_else(|p| p.into_inner()).insert(key);
        }
    }

    /// Whether this (host, template) pair is announced for the first time.
    fn first_path(&self, host: &str, template: &str) -> bool {
        let key = self.hasher.hash_one((host, template));
        let mut seen = self.seen_paths[self.shard_of(&key)].lock().unwrap_or_else(|p| p.into_inner());
        // Its place in the set was charged with the path's entry.
        seen.insert(key)
    }

    /// Passes a first sighting on at the events' rate; past it, counts it for the summary line.
    fn announce(&self, lane: &Lane, s: Sighting, sighted: &mut impl FnMut(Sighting)) {
        if self.gate.admit(unix_ms()) {
            sighted(s);
        } else {
            lane.suppressed.lock().unwrap_or_else(|p| p.into_inner()).add(&s);
        }
    }

    /// Counts one request in its host's entry and path, judges the path against green's table
    /// and announces first sightings.
    #[allow(clippy::too_many_arguments)]
    fn count_request(
        &self,
        lane: &Lane,
        key: &str,
        entry: &mut HostEntry,
        admission: Admission,
        template: &str,
        o: &Observation<'_>,
        sighted: &mut impl FnMut(Sighting),
    ) -> Recorded {
        let totals = &lane.totals;
        let new_host = admission == (Admission::New { first: true });
        let overflow = admission == Admission::Overflow;
        if !matches!(admission, Admission::New { .. }) {
            entry.count(o, &self.budget);
        }
        let mut stale = false;
        if !overflow {
            if let Some(moved_at) = self.moves.get(key) {
                if o.at_ms >= moved_at {
                    stale = o.at_ms.saturating_sub(o.conn_age_ms) < moved_at;
                    if let Some(d) = entry.detail(&self.budget) {
                        d.after_move.get_or_insert_with(Default::default).add(o, stale, &self.budget);
                    }
                }
            }
        }
        // A bucket counts its hosts' requests under `{other}`: their templates are not kept. A
        // host new to this lane came with its first path (its own template or `{other}`).
        let (pkey, is_new_path) = match admission {
            Admission::Overflow => (OTHER_PATH, false),
            Admission::New { .. } if entry.paths.get_mut(template).is_some() => (template, true),
            Admission::New { .. } => (OTHER_PATH, false),
            Admission::Known => self.path_key(entry, template, o),
        };
        if pkey == OTHER_PATH && !overflow {
            totals.paths_overflowed.fetch_add(1, Ordering::Relaxed);
        }
        if pkey == OTHER_PATH && entry.paths.get_mut(OTHER_PATH).is_none() {
            // Its own place when the budget has one, else the host's least requested template
            // becomes `{other}`; a bucket's (and a passthrough host's, which has no template) is
            // made whatever the budget.
            if entry.paths.insert(OTHER_PATH, o, &self.budget, false).is_none() {
                match entry.paths.fold_least_into_other(&self.budget) {
                    Some(folded) => {
                        totals.paths_overflowed.fetch_add(folded, Ordering::Relaxed);
                        self.paths.fetch_sub(1, Ordering::Relaxed);
                    }
                    None => {
                        let _ = entry.paths.insert(OTHER_PATH, o, &self.budget, true);
                    }
                }
            }
        }
        let Some(path) = entry.paths.get_mut(pkey) else {
            return Recorded::Counted { green: Routing::Unknown, stale_conn: stale };
        };
        path.counts.count(o.method, o.status, o.bytes_in, o.bytes_out, o.at_ms);
        if pkey == OTHER_PATH {
            if new_host {
                self.announce(lane, Sighting::NewHost { host: key.to_owned(), green: Routing::Unknown }, sighted);
            }
            // An unrouted bucket's requests were judged on the way in.
            let green = if key == Overflow::Unrouted.as_str() { Routing::Unrouted } else { Routing::Unknown };
            return Recorded::Counted { green, stale_conn: stale };
        }
        let routes = self.routes.load();
        let green = if !routes.is_loaded() {
            Routing::Unknown
        } else {
            let version = self.route_version.load(Ordering::Acquire);
            if path.green_version != version {
                path.green = routes.route_index(key, path.example(pkey));
                path.green_version = version;
            }
            Routing::of(Some(path.green.is_some()))
        };
        if new_host {
            self.announce(lane, Sighting::NewHost { host: key.to_owned(), green }, sighted);
        }
        if is_new_path && self.first_path(key, pkey) {
            let matched = path.green.and_then(|i| routes.object(i)).cloned();
            let s = Sighting::NewPath { host: key.to_owned(), path: pkey.to_owned(), green, matched };
            self.announce(lane, s, sighted);
        }
        Recorded::Counted { green, stale_conn: stale }
    }

    /// The template a request is counted under in its host: its own when the host has it or
    /// the bounds admit it now (`true`: new), else `{other}`.
    fn path_key<'t>(&self, entry: &mut HostEntry, template: &'t str, o: &Observation<'_>) -> (&'t str, bool) {
        if entry.paths.get_mut(template).is_some() {
            return (template, false);
        }
        if entry.paths.len() >= self.settings.max_paths_per_host {
            return (OTHER_PATH, false);
        }
        if self.paths.fetch_add(1, Ordering::Relaxed) >= self.settings.max_paths {
            self.paths.fetch_sub(1, Ordering::Relaxed);
            return (OTHER_PATH, false);
        }
        if entry.paths.insert(template, o, &self.budget, false).is_none() {
            self.paths.fetch_sub(1, Ordering::Relaxed);
            return (OTHER_PATH, false);
        }
        (template, true)
    }

    /// Takes what the lanes held back of first sightings since the last call, merged.
    pub fn take_suppressed(&self) -> super::sightings::Suppressed {
        let mut all = super::sightings::Suppressed::default();
        for lane in self.lanes() {
            let mut s = lane.suppressed.lock().unwrap_or_else(|p| p.into_inner());
            all.merge(&s);
            *s = Default::default();
        }
        all
    }
}

/// Where [`Ledger::admit`] put a host.
enum Slot {
    /// Its own entry.
    Own(Admission),
    /// Its kind's `(other)` bucket.
    Bucket(Overflow),
}
