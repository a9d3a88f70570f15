//! What `/metrics` and the dashboard show, made by one pass over the ledger in the background and
//! read as it is: per action the hosts, requests and status classes, the urgent count, the busiest
//! hosts, and for each of the dashboard's groups its biggest hosts. Bounded whatever the ledger
//! holds; a scrape or a page view builds nothing.

use std::time::Duration;

use super::build::Sources;
use super::model::{Action, HostReport, Report, Tally};
use crate::base::time::parse_rfc3339;
use crate::record::stats::StatusClasses;

/// Hosts a dashboard group shows; the rest are counted.
pub const GROUP_HOSTS: usize = 50;
/// Hosts with a `host` label in `/metrics`.
pub const TOP_HOSTS: usize = 20;

/// One of the dashboard's groups: urgent `add-green-route` first, then each action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Urgent,
    Action(Action),
}

impl Group {
    /// Every group, in working order.
    pub fn all() -> impl Iterator<Item = Group> {
        std::iter::once(Group::Urgent).chain(Action::ALL.iter().map(|a| Group::Action(*a)))
    }

    /// The group a host is in.
    pub fn of(h: &HostReport) -> Group {
        if h.action == Action::AddGreenRoute && h.urgent {
            Group::Urgent
        } else {
            Group::Action(h.action)
        }
    }

    fn index(self) -> usize {
        match self {
            Group::Urgent => 0,
            Group::Action(a) => 1 + a.index(),
        }
    }
}

/// A busiest host, for `cutover_top_host_requests`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopHost {
    pub host: String,
    pub action: Action,
    pub requests: u64,
}

/// The summary.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The report's header: totals, replicas, green and DNS as configured.
    pub header: Report,
    /// Per action: hosts, requests.
    pub by_action: [Tally; Action::COUNT],
    /// Per action: responses by status class.
    pub status_by_action: [StatusClasses; Action::COUNT],
    /// `add-green-route` hosts DNS already sends to green.
    pub urgent: u64,
    /// Hosts whose last request is within the quiet period.
    pub arriving: u64,
    /// The busiest hosts, most requests first.
    pub top: Vec<TopHost>,
    /// Per group (see [`Group::all`]): its hosts and requests, and its biggest hosts.
    pub groups: Vec<(Tally, Vec<HostReport>)>,
    /// How long the pass took.
    pub took: Duration,
}

/// Makes the summary of `src` as of `now`.
pub fn summarize(src: &Sources<'_>, now: u64) -> Summary {
    let started = std::time::Instant::now();
    let mut acc = Acc::new(now, src.settings.quiet_period);
    src.each_host(now, |h| acc.add(h));
    acc.finish(src.header(now), started.elapsed())
}

impl Summary {
    /// The summary of a report held in memory (the fleet's dashboard): its hosts, and the
    /// hosts it left out counted per action.
    pub fn of_report(mut report: Report, quiet_period: Duration) -> Summary {
        let started = std::time::Instant::now();
        let now = parse_rfc3339(&report.generated_at).unwrap_or(0);
        let mut acc = Acc::new(now, quiet_period);
        std::mem::take(&mut report.hosts).into_iter().for_each(|h| acc.add(h));
        for (action, t) in report.omitted.iter().flat_map(|o| o.by_action.iter()) {
            let mine = &mut acc.by_action[action.index()];
            mine.hosts += t.hosts;
            mine.requests += t.requests;
        }
        acc.finish(report, started.elapsed())
    }
}

/// A summary being made, host by host.
struct Acc {
    now: u64,
    quiet_ms: u64,
    by_action: [Tally; Action::COUNT],
    status_by_action: [StatusClasses; Action::COUNT],
    urgent: u64,
    arriving: u64,
    top: Biggest<TopHost>,
    groups: Vec<(Tally, Biggest<HostReport>)>,
}

impl Acc {
    fn new(now: u64, quiet_period: Duration) -> Self {
        Self {
            now,
            quiet_ms: quiet_period.as_millis() as u64,
            by_action: [Tally::default(); Action::COUNT],
            status_by_action: [StatusClasses::default(); Action::COUNT],
            urgent: 0,
            arriving: 0,
            top: Biggest::new(TOP_HOSTS),
            groups: Group::all().map(|_| (Tally::default(), Biggest::new(GROUP_HOSTS))).collect(),
        }
    }

    fn add(&mut self, h: HostReport) {
        let i = h.action.index();
        self.by_action[i].hosts += 1;
        self.by_action[i].requests += h.requests;
        self.status_by_action[i].merge(&h.status);
        self.urgent += u64::from(h.urgent);
        if parse_rfc3339(&h.last_seen).is_some_and(|t| self.now.saturating_sub(t) < self.quiet_ms) {
            self.arriving += 1;
        }
        self.top.offer(h.requests, || TopHost { host: h.host.clone(), action: h.action, requests: h.requests });
        let (tally, hosts) = &mut self.groups[Group::of(&h).index()];
        tally.hosts += 1;
        tally.requests += h.requests;
        let now = self.now;
        hosts.offer(h.requests, || slim(h, now));
    }

    fn finish(self, header: Report, took: Duration) -> Summary {
        let mut top = self.top.into_list();
        top.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.host.cmp(&b.host)));
        let groups: Vec<(Tally, Vec<HostReport>)> = self
            .groups
            .into_iter()
            .map(|(tally, hosts)| {
                let mut hosts = hosts.into_list();
                hosts.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.host.cmp(&b.host)));
                (tally, hosts)
            })
            .collect();
        Summary {
            header,
            by_action: self.by_action,
            status_by_action: self.status_by_action,
            urgent: self.urgent,
            arriving: self.arriving,
            top,
            groups,
            took,
        }
    }
}

/// What a dashboard row shows of a host: its paths, clients, DNS records and all but the last hour
/// of its minutes dropped, so the summary stays small however big the hosts are.
fn slim(mut h: HostReport, now: u64) -> HostReport {
    let hour_ago = (now / 60_000).saturating_sub(60);
    h.requests_per_minute.retain(|m| m.minute > hour_ago);
    h.paths = Vec::new();
    h.top_clients.truncate(3);
    h.top_user_agents.truncate(3);
    h.late_clients.truncate(3);
    h.green.missing_paths.truncate(5);
    h.dns.records = Vec::new();
    h.dns.answers.truncate(4);
    h.dns.chain.truncate(4);
    h
}

/// The `n` biggest items seen, by a size given with each. An item no bigger than the smallest
/// kept after the last trim is not even made: in a flood of hosts seen once, almost none is.
struct Biggest<T> {
    n: usize,
    /// (size, item); trimmed to the `n` biggest when it reaches `2 n`.
    items: Vec<(u64, T)>,
    floor: u64,
}

impl<T> Biggest<T> {
    fn new(n: usize) -> Self {
        Self { n, items: Vec::new(), floor: 0 }
    }

    fn offer(&mut self, size: u64, make: impl FnOnce() -> T) {
        if self.items.len() >= self.n && size <= self.floor {
            return;
        }
        self.items.push((size, make()));
        if self.items.len() >= 2 * self.n {
            self.items.select_nth_unstable_by_key(self.n - 1, |(size, _)| std::cmp::Reverse(*size));
            self.items.truncate(self.n);
            self.floor = self.items.iter().map(|(size, _)| *size).min().unwrap_or(0);
        }
    }

    fn into_list(self) -> Vec<T> {
        self.items.into_iter().map(|(_, item)| item).collect()
    }
}

impl Summary {
    /// The biggest hosts of a group, at most [`GROUP_HOSTS`], and its tally.
    pub fn group(&self, g: Group) -> (&Tally, &[HostReport]) {
        let (tally, hosts) = &self.groups[g.index()];
        (tally, &hosts[..hosts.len().min(GROUP_HOSTS)])
    }

    /// The busiest hosts, at most [`TOP_HOSTS`].
    pub fn top_hosts(&self) -> &[TopHost] {
        &self.top[..self.top.len().min(TOP_HOSTS)]
    }
}
