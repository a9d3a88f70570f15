//! The DNS evidence of every host: the last live resolution and what Route53 says, joined into one
//! verdict with the times that make the TTL window (`changed_at`, `green_since`). Written by the
//! resolver task, read by reports; the hosts whose DNS points only at green are published to the
//! ledger and the request path as [`MovedHosts`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::counters::{DnsCounters, DnsErrorKind};
use super::evidence::{DnsAnswer, DnsEvidence};
use super::targets::{Side, TargetAddrs, Targets};
use super::verdict::{verdict_of_sides, DnsSource, DnsVerdict};
use super::zones::{ZoneAnswer, Zones};
use crate::base::time::{parse_rfc3339, rfc3339};
use crate::record::MovedHosts;

/// Largest number of distinct answers kept per host (weighted sets rarely have more).
const MAX_ANSWERS: usize = 16;

/// One live resolution (A and AAAA together).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveAnswer {
    /// CNAME targets, in order (normalized names).
    pub chain: Vec<String>,
    /// Final addresses.
    pub addrs: Vec<IpAddr>,
    /// Lowest TTL met (chain and final records).
    pub min_ttl: u32,
    /// Largest TTL met.
    pub max_ttl: u32,
}

/// Why a live resolution gave no address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupFailure {
    NxDomain,
    /// The name exists but has no A/AAAA (NODATA).
    NoAnswer,
    /// No server answered in time.
    Timeout,
    /// SERVFAIL, refused, network errors.
    Failed(String),
}

impl LookupFailure {
    /// Short text for the report and logs.
    pub fn describe(&self) -> String {
        match self {
            LookupFailure::NxDomain => "NXDOMAIN".into(),
            LookupFailure::NoAnswer => "no A/AAAA answer".into(),
            LookupFailure::Timeout => "no DNS server answered in time".into(),
            LookupFailure::Failed(why) => why.clone(),
        }
    }

    /// A definite answer from DNS (as opposed to a server that failed to answer).
    pub fn is_definite(&self) -> bool {
        matches!(self, LookupFailure::NxDomain | LookupFailure::NoAnswer)
    }
}

#[derive(Debug, Clone, Default)]
struct HostDns {
    /// Samples of the last successful live resolution.
    live: Vec<LiveAnswer>,
    live_error: Option<LookupFailure>,
    r53: Option<ZoneAnswer>,
    verdict: DnsVerdict,
    source: Option<DnsSource>,
    answers: Vec<DnsAnswer>,
    resolved_at_ms: u64,
    changed_at_ms: u64,
    green_since_ms: Option<u64>,
    /// Live resolutions in a row that found only green, and when the first of them was.
    green_streak: (u32, u64),
    /// Largest TTL met while the host was not green: what clients that cached blue still hold.
    ttl_before_move: Option<u64>,
}

/// Live resolutions in a row that must find only green before a host that pointed at blue counts
/// as moved: a weighted record sampled a few times can miss its blue answers by chance.
const GREEN_CONFIRMATIONS: u32 = 3;

/// Every host's DNS evidence.
pub struct DnsBook {
    targets: Targets,
    route53: Zones,
    live: bool,
    ttl_grace_ms: u64,
    addrs: Mutex<TargetAddrs>,
    hosts: Mutex<HashMap<String, HostDns>>,
    moves: Arc<MovedHosts>,
    counters: Arc<DnsCounters>,
}

impl DnsBook {
    /// A book for these targets and zones; `live` when hosts are resolved (not only Route53).
    pub fn new(
        targets: Targets,
        route53: Zones,
        live: bool,
        ttl_grace_ms: u64,
        moves: Arc<MovedHosts>,
        counters: Arc<DnsCounters>,
    ) -> Self {
        Self { targets, route53, live, ttl_grace_ms, addrs: Mutex::default(), hosts: Mutex::default(), moves, counters }
    }

    /// Whether hosts are resolved live.
    pub fn live(&self) -> bool {
        self.live
    }

    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// The imported zones.
    pub fn route53(&self) -> &Zones {
        &self.route53
    }

    /// One side's names resolved to these addresses; when that adds or moves an address, every
    /// verdict is judged again. Returns the hosts whose verdict changed, `(host, from, to)`.
    pub fn set_target_addrs(&self, side: Side, addrs: &[IpAddr], now_ms: u64) -> Vec<(String, DnsVerdict, DnsVerdict)> {
        let changed = {
            let mut a = self.addrs.lock().unwrap_or_else(|p| p.into_inner());
            let before = a.addrs.len();
            let new = addrs.iter().any(|ip| a.addrs.get(ip).map(|(s, _)| *s) != Some(side));
            a.update(side, addrs, now_ms);
            new || a.addrs.len() != before
        };
        if !changed {
            return Vec::new();
        }
        let hosts: Vec<String> = self.hosts.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        hosts.into_iter().filter_map(|h| self.judge(&h, None, now_ms).map(|(from, to)| (h, from, to))).collect()
    }

    /// Records a live resolution of `host` (`None`: no live resolution, Route53 only) and re-judges
    /// it; returns `(from, to)` when its verdict changed.
    pub fn observe(
        &self,
        host: &str,
        live: Option<Result<Vec<LiveAnswer>, LookupFailure>>,
        now_ms: u64,
    ) -> Option<(DnsVerdict, DnsVerdict)> {
        self.judge(host, Some(live), now_ms)
    }

    fn judge(
        &self,
        host: &str,
        live: Option<Option<Result<Vec<LiveAnswer>, LookupFailure>>>,
        now_ms: u64,
    ) -> Option<(DnsVerdict, DnsVerdict)> {
        let addrs = self.addrs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let r53 = (!self.route53.is_empty()).then(|| self.route53.answer(host, &self.targets, &addrs));
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let first = !hosts.contains_key(host);
        let h = hosts.entry(host.to_owned()).or_default();
        let resolved = matches!(live, Some(Some(_)));
        match live {
            Some(Some(Ok(samples))) => {
                h.live = samples;
                h.live_error = None;
                h.resolved_at_ms = now_ms;
            }
            // A server that did not answer keeps the last answer it gave (a flaky resolver must
            // not reset the TTL window); a definite NXDOMAIN/NODATA replaces it.
            Some(Some(Err(e))) => {
                if e.is_definite() || h.live.is_empty() {
                    h.live.clear();
                }
                h.live_error = Some(e);
                h.resolved_at_ms = now_ms;
            }
            Some(None) | None => {}
        }
        h.r53 = r53;
        let (live_verdict, answers) = self.live_verdict(&h.live, &addrs);
        h.answers = answers;
        // Live DNS is what clients see; Route53 is what the zone says, used when live has no answer.
        let (mut verdict, source) = match (live_verdict, &h.r53) {
            (Some(v), _) => (v, Some(DnsSource::Live)),
            (None, Some(r)) => (r.verdict, Some(DnsSource::Route53)),
            (None, None) if h.live_error.is_some() => (DnsVerdict::Unresolvable, Some(DnsSource::Live)),
            // No evidence yet: what was known stays (a fresh host's unknown, a restored verdict).
            (None, None) => (h.verdict, h.source),
        };
        if resolved {
            h.green_streak = match (live_verdict, h.green_streak) {
                (Some(DnsVerdict::Green), (0, _)) => (1, now_ms),
                (Some(DnsVerdict::Green), (n, since)) => (n.saturating_add(1), since),
                _ => (0, 0),
            };
        }
        // Leaving blue for green takes a few green-only resolutions in a row; the move then dates
        // from the first of them.
        let mut moved_at = now_ms;
        if verdict == DnsVerdict::Green && source == Some(DnsSource::Live) && h.verdict.reaches_blue() {
            if h.green_streak.0 < GREEN_CONFIRMATIONS {
                verdict = DnsVerdict::Split;
            } else {
                moved_at = h.green_streak.1;
            }
        }
        if verdict != DnsVerdict::Green {
            let seen = self.max_ttl(h);
            h.ttl_before_move = h.ttl_before_move.max(seen);
        }
        let from = if first { DnsVerdict::Unknown } else { h.verdict };
        let changed = (first || verdict != h.verdict).then_some((from, verdict));
        if changed.is_some() {
            h.changed_at_ms = now_ms;
        }
        let was_green = h.green_since_ms.is_some();
        if verdict == DnsVerdict::Green {
            h.green_since_ms.get_or_insert(moved_at);
        } else {
            h.green_since_ms = None;
        }
        h.verdict = verdict;
        h.source = source;
        if was_green != h.green_since_ms.is_some() {
            let moved: Vec<(String, u64)> =
                hosts.iter().filter_map(|(k, v)| v.green_since_ms.map(|at| (k.clone(), at))).collect();
            self.moves.publish(moved);
        }
        changed
    }

    /// Largest TTL of the current evidence (live answers and Route53 records).
    fn max_ttl(&self, h: &HostDns) -> Option<u64> {
        let live = h.live.iter().map(|s| s.max_ttl as u64).max();
        live.max(h.r53.as_ref().and_then(|r| r.max_ttl))
    }

    fn live_verdict(&self, samples: &[LiveAnswer], addrs: &TargetAddrs) -> (Option<DnsVerdict>, Vec<DnsAnswer>) {
        if samples.is_empty() {
            return (None, Vec::new());
        }
        let mut answers: Vec<DnsAnswer> = Vec::new();
        let mut sides = Vec::new();
        for s in samples {
            let by_chain = s.chain.iter().find_map(|n| self.targets.side_of_name(n));
            for ip in &s.addrs {
                let side = by_chain.unwrap_or_else(|| self.targets.side_of_ip(*ip, addrs));
                sides.push(side);
                let address = ip.to_string();
                if answers.len() < MAX_ANSWERS && !answers.iter().any(|a| a.address == address) {
                    answers.push(DnsAnswer { address, side });
                }
            }
        }
        (Some(verdict_of_sides(sides)), answers)
    }

    /// The evidence of one host for a report (`unknown` when nothing is known).
    pub fn evidence(&self, host: &str) -> DnsEvidence {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let Some(h) = hosts.get(host) else {
            return DnsEvidence::default();
        };
        let mut chain: Vec<String> = Vec::new();
        for s in &h.live {
            for n in &s.chain {
                if !chain.contains(n) {
                    chain.push(n.clone());
                }
            }
        }
        let live_min = h.live.iter().map(|s| s.min_ttl as u64).min();
        let r53_ttl = h.r53.as_ref().and_then(|r| r.max_ttl);
        let max_ttl = self.max_ttl(h).max(h.ttl_before_move);
        let ttl = live_min.or(r53_ttl);
        let window_end = h
            .green_since_ms
            .map(|at| at.saturating_add(max_ttl.unwrap_or(60).saturating_mul(1000)).saturating_add(self.ttl_grace_ms));
        DnsEvidence {
            verdict: h.verdict,
            source: h.source,
            answers: h.answers.clone(),
            chain,
            ttl,
            max_ttl,
            records: h.r53.as_ref().map(|r| r.records.clone()).unwrap_or_default(),
            zone_id: h.r53.as_ref().and_then(|r| r.zone_id.clone()),
            external_dns: h.r53.as_ref().and_then(|r| r.owner.clone()),
            changed_at: Some(rfc3339(h.changed_at_ms)),
            green_since: h.green_since_ms.map(rfc3339),
            window_ends_at: window_end.map(rfc3339),
            resolved_at: (h.resolved_at_ms > 0).then(|| rfc3339(h.resolved_at_ms)),
            error: h.live_error.as_ref().map(LookupFailure::describe),
        }
    }

    /// Puts back what a saved report said of a host's DNS (its verdict, since when, when it moved
    /// to green and the TTLs met), until a resolution says more. Publish with
    /// [`DnsBook::publish_moves`] once every host is seeded.
    pub fn seed(&self, host: &str, e: &DnsEvidence) {
        if e.verdict == DnsVerdict::Unknown {
            return;
        }
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let h = hosts.entry(host.to_owned()).or_default();
        h.verdict = e.verdict;
        h.source = e.source;
        h.answers = e.answers.clone();
        let at = |t: &Option<String>| t.as_deref().and_then(parse_rfc3339);
        h.changed_at_ms = at(&e.changed_at).unwrap_or(0);
        h.resolved_at_ms = at(&e.resolved_at).unwrap_or(0);
        h.green_since_ms = at(&e.green_since);
        h.ttl_before_move = e.max_ttl;
        if e.source == Some(DnsSource::Live) {
            // The last resolution as the report gave it: its chain, addresses and lowest TTL.
            let ttl = e.ttl.map_or(0, |t| u32::try_from(t).unwrap_or(u32::MAX));
            let addrs = e.answers.iter().filter_map(|a| a.address.parse().ok()).collect();
            h.live = vec![LiveAnswer { chain: e.chain.clone(), addrs, min_ttl: ttl, max_ttl: ttl }];
        }
    }

    /// Publishes the hosts whose DNS points only at green, as they stand.
    pub fn publish_moves(&self) {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let moved: Vec<(String, u64)> =
            hosts.iter().filter_map(|(k, v)| v.green_since_ms.map(|at| (k.clone(), at))).collect();
        self.moves.publish(moved);
    }

    /// Counts one lookup (for `/metrics`) and, when it found no address, why.
    pub fn count_lookup(&self, failure: Option<&LookupFailure>) {
        self.counters.lookup();
        if let Some(f) = failure {
            self.counters.error(match f {
                LookupFailure::NxDomain => DnsErrorKind::NxDomain,
                LookupFailure::NoAnswer => DnsErrorKind::NoRecords,
                LookupFailure::Timeout => DnsErrorKind::Timeout,
                LookupFailure::Failed(_) => DnsErrorKind::Other,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(live: bool) -> DnsBook {
        let targets = Targets {
            blue: vec!["blue-lb.elb.test".parse().unwrap(), "10.1.0.0/16".parse().unwrap()],
            green: vec!["green-lb.elb.test".parse().unwrap(), "10.2.0.0/16".parse().unwrap()],
        };
        DnsBook::new(targets, Zones::default(), live, 30_000, Arc::default(), Arc::default())
    }

    fn answer(chain: &[&str], ip: &str, ttl: u32) -> LiveAnswer {
        LiveAnswer {
            chain: chain.iter().map(|s| s.to_string()).collect(),
            addrs: vec![ip.parse().unwrap()],
            min_ttl: ttl,
            max_ttl: ttl,
        }
    }

    #[test]
    fn verdicts_and_the_window() {
        let b = book(true);
        b.observe("api.example.com", Some(Ok(vec![answer(&["blue-lb.elb.test"], "192.0.2.1", 60)])), 1_000);
        assert_eq!(b.evidence("api.example.com").verdict, DnsVerdict::Blue);
        b.observe(
            "api.example.com",
            Some(Ok(vec![answer(&["blue-lb.elb.test"], "192.0.2.1", 60), answer(&[], "10.2.3.4", 30)])),
            2_000,
        );
        assert_eq!(b.evidence("api.example.com").verdict, DnsVerdict::Split);
        // Green-only answers must repeat before a host that was on blue counts as moved.
        for at in [3_000, 3_500] {
            b.observe("api.example.com", Some(Ok(vec![answer(&[], "10.2.3.4", 30)])), at);
            assert_eq!(b.evidence("api.example.com").verdict, DnsVerdict::Split);
            assert_eq!(b.moves.get("api.example.com"), None);
        }
        b.observe("api.example.com", Some(Ok(vec![answer(&[], "10.2.3.4", 30)])), 4_000);
        let e = b.evidence("api.example.com");
        assert_eq!(
            (e.verdict, e.green_since.clone()),
            (DnsVerdict::Green, Some(rfc3339(3_000))),
            "dated from the first"
        );
        // The window runs for the largest TTL met, blue's 60 s included: clients cached that one.
        assert_eq!(e.window_ends_at, Some(rfc3339(3_000 + 60_000 + 30_000)));
        assert_eq!(b.moves.get("api.example.com"), Some(3_000));
        // A dead server keeps the last answer; NXDOMAIN replaces it.
        b.observe("api.example.com", Some(Err(LookupFailure::Timeout)), 4_000);
        assert_eq!(b.evidence("api.example.com").verdict, DnsVerdict::Green);
        b.observe("api.example.com", Some(Err(LookupFailure::NxDomain)), 5_000);
        let e = b.evidence("api.example.com");
        assert_eq!((e.verdict, e.error.as_deref()), (DnsVerdict::Unresolvable, Some("NXDOMAIN")));
        assert_eq!(b.moves.get("api.example.com"), None);
        b.observe("odd.example.com", Some(Ok(vec![answer(&[], "203.0.113.5", 60)])), 5_000);
        assert_eq!(b.evidence("odd.example.com").verdict, DnsVerdict::UnknownTarget);
        assert_eq!(b.evidence("never.example.com").verdict, DnsVerdict::Unknown);
    }
}
