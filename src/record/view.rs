//! Reading the ledger: the lanes merged, one shard index at a time, so a reader never holds a
//! copy of the whole ledger (a shard's hosts at most), and a worker waits for one shard's lock at
//! most as long as that shard is read. Green's verdicts are brought up to date on the way.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::host::{HostEntry, HostStats, PathStats};
use super::lane::{shard_index, TotalCounts, LANE_SHARDS};
use super::ledger::Ledger;
use crate::base::host::{Overflow, OTHER_PATH};
use crate::routes::RouteTable;

/// What the memory budget holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Bytes charged.
    pub used: usize,
    /// `--max-ledger-memory`.
    pub limit: usize,
    /// Growth it refused (counted elsewhere instead).
    pub refused: u64,
}

impl Ledger {
    /// Calls `f` with every host, the lanes merged, shard by shard; returns how many requests
    /// the merge folded into `{other}` (each lane keeps `--max-paths-per-host` on its own; the
    /// merged view keeps it too, folding the least requested templates).
    pub fn for_each_host(&self, mut f: impl FnMut(&str, &HostStats)) -> u64 {
        let lanes = self.lanes();
        let mut folded = 0;
        // The buckets sit in the shards of the hosts they took: merged over every shard, given last.
        let mut buckets: HashMap<String, HostStats> = HashMap::new();
        let mut merged: HashMap<String, HostStats> = HashMap::new();
        for shard in 0..LANE_SHARDS {
            for lane in &lanes {
                let mut hosts = lane.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
                for (name, entry) in hosts.iter_mut() {
                    let into = if Overflow::of(name).is_some() { &mut buckets } else { &mut merged };
                    let stats = into.entry(name.to_string()).or_insert_with(HostStats::empty);
                    self.add_entry(stats, name, entry);
                }
            }
            for (name, stats) in merged.iter_mut() {
                folded += self.fold_paths(stats);
                f(name, stats);
            }
            merged.clear();
        }
        for (name, stats) in &buckets {
            f(name, stats);
        }
        self.folded_paths.store(folded, Ordering::Relaxed);
        folded
    }

    /// One host, the lanes merged (`None` when no lane has it).
    pub fn host(&self, name: &str) -> Option<HostStats> {
        let mut stats: Option<HostStats> = None;
        let shards = match Overflow::of(name) {
            Some(_) => 0..LANE_SHARDS,
            None => shard_index(name)..shard_index(name) + 1,
        };
        for lane in self.lanes() {
            for shard in shards.clone() {
                let mut hosts = lane.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
                if let Some(entry) = hosts.get_mut(name) {
                    self.add_entry(stats.get_or_insert_with(HostStats::empty), name, entry);
                }
            }
        }
        let mut stats = stats?;
        self.fold_paths(&mut stats);
        Some(stats)
    }

    /// Calls `f` with every host's name and requests, the lanes merged, shard by shard: what
    /// ranking the hosts takes, without building their statistics.
    pub fn for_each_host_requests(&self, mut f: impl FnMut(&str, u64)) {
        let lanes = self.lanes();
        let mut buckets: HashMap<String, u64> = HashMap::new();
        let mut merged: HashMap<Box<str>, u64> = HashMap::new();
        for shard in 0..LANE_SHARDS {
            for lane in &lanes {
                let hosts = lane.shards[shard].lock().unwrap_or_else(|p| p.into_inner());
                for (name, entry) in hosts.iter() {
                    let requests = entry.requests();
                    match Overflow::of(name) {
                        Some(_) => *buckets.entry(name.to_string()).or_default() += requests,
                        None if lanes.len() == 1 => f(name, requests),
                        None => match merged.get_mut(&**name) {
                            Some(n) => *n += requests,
                            None => {
                                merged.insert(name.clone(), requests);
                            }
                        },
                    }
                }
            }
            merged.drain().for_each(|(name, n)| f(&name, n));
        }
        buckets.into_iter().for_each(|(name, n)| f(&name, n));
    }

    /// Calls `f` with every host's name (the DNS evidence's sweep), shard by shard.
    pub fn for_each_name(&self, mut f: impl FnMut(&str)) {
        for lane in self.lanes() {
            for shard in &lane.shards {
                let hosts = shard.lock().unwrap_or_else(|p| p.into_inner());
                hosts.keys().filter(|k| Overflow::of(k).is_none()).for_each(|k| f(k));
            }
        }
    }

    /// Adds a lane's entry to the merged view, judging its paths with the current table first.
    fn add_entry(&self, stats: &mut HostStats, name: &str, entry: &mut HostEntry) {
        // Version first, then the table (as recording does): a reload in between only causes a
        // recompute.
        let version = self.route_version.load(Ordering::Acquire);
        let routes = self.routes.load();
        if routes.is_loaded() && Overflow::of(name).is_none() {
            for (template, p) in entry.paths.iter_mut() {
                if p.green_version != version && template != OTHER_PATH {
                    p.green = routes.route_index(name, p.example(template));
                    p.green_version = version;
                }
            }
        }
        let table: &RouteTable = &routes;
        stats.add(entry, &|i| i.and_then(|i| table.object(i)).cloned());
    }

    /// Keeps `--max-paths-per-host` in the merged view: the least requested templates go to
    /// `{other}`. Returns the requests folded.
    fn fold_paths(&self, stats: &mut HostStats) -> u64 {
        let max = self.settings.max_paths_per_host;
        if stats.paths.len() <= max + 1 {
            return 0;
        }
        let mut order: Vec<(String, u64)> = stats
            .paths
            .iter()
            .filter(|(t, _)| t.as_str() != OTHER_PATH)
            .map(|(t, p)| (t.clone(), p.counts.requests))
            .collect();
        order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut folded = 0;
        for (template, _) in order.into_iter().skip(max) {
            if let Some(p) = stats.paths.remove(&template) {
                folded += p.counts.requests;
                match stats.paths.get_mut(OTHER_PATH) {
                    Some(other) => other.counts.merge(&p.counts),
                    None => {
                        let other = PathStats { counts: p.counts, example: OTHER_PATH.into(), green: None };
                        stats.paths.insert(OTHER_PATH.to_owned(), other);
                    }
                }
            }
        }
        folded
    }

    /// Exact totals over every worker (with the requests the last read folded).
    pub fn totals(&self) -> TotalCounts {
        let mut sum = TotalCounts::default();
        for lane in self.lanes() {
            sum.add(&lane.totals);
        }
        sum.paths_overflowed += self.folded_paths.load(Ordering::Relaxed);
        sum
    }

    /// Distinct hosts recorded (without the `(other)` buckets).
    pub fn host_count(&self) -> usize {
        self.hosts.load(Ordering::Relaxed)
    }

    /// Distinct path templates recorded over all hosts (without `{other}`).
    pub fn path_count(&self) -> usize {
        self.paths.load(Ordering::Relaxed)
    }

    /// What the memory budget holds now.
    pub fn memory(&self) -> Memory {
        Memory { used: self.budget.used(), limit: self.budget.limit(), refused: self.budget.refused() }
    }
}
