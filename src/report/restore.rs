//! Continuing after a restart: the last `--report-file` read back host by host into the ledger
//! (counts, first and last seen, top clients and user agents, per-minute rings, after-move
//! traffic) and the DNS evidence (verdicts, when a host moved), before any traffic is taken.

use std::net::IpAddr;
use std::path::Path;

use super::file::{read_streaming, ReportFileError};
use super::model::{HostReport, PathReport, Report};
use crate::base::host::{Overflow, OTHER_PATH};
use crate::base::time::parse_rfc3339;
use crate::dns::book::DnsBook;
use crate::record::stats::{Counters, Methods, PassthroughCounts, StatusClasses, TlsCounts};
use crate::record::{AfterMove, HostSeed, LateClient, Ledger, PathSeed, TotalCounts};

/// What a restore put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// When the restored recording started (unix ms): the report continues it.
    pub started_at_ms: u64,
    /// The replica that wrote the file.
    pub replica_id: Option<String>,
    /// Hosts read, and how many of them the bounds sent to a bucket.
    pub hosts: u64,
    pub bucketed: u64,
    /// Requests in the file's totals.
    pub requests: u64,
}

/// Reads `path` into `ledger` and `dns`; `Ok(None)` when there is no such file.
pub fn restore(path: &Path, ledger: &Ledger, dns: Option<&DnsBook>) -> Result<Option<Restored>, ReportFileError> {
    if !path.exists() {
        return Ok(None);
    }
    let (mut hosts, mut bucketed) = (0, 0);
    let header = read_streaming(path, |h| {
        hosts += 1;
        // The DNS evidence only of hosts the ledger kept: the book stays as bounded as it.
        let dns_of = dns.filter(|_| Overflow::of(&h.host).is_none()).map(|book| (book, h.host.clone(), h.dns.clone()));
        if ledger.seed(seed_of(h)) {
            if let Some((book, name, evidence)) = dns_of {
                book.seed(&name, &evidence);
            }
        } else {
            bucketed += 1;
        }
    })?;
    let t = &header.totals;
    ledger.seed_totals(&TotalCounts {
        requests: t.requests,
        ignored: t.ignored_requests,
        unrouted: t.unrouted_requests,
        hosts_overflowed: t.hosts_overflowed_requests,
        paths_overflowed: t.paths_overflowed_requests,
        tls_requests: t.tls_requests,
        sni_mismatch: t.sni_mismatch_requests,
        default_cert: t.default_cert_requests,
        passthrough_connections: t.passthrough_connections,
    });
    if let Some(book) = dns {
        book.publish_moves();
    }
    Ok(Some(Restored {
        started_at_ms: parse_rfc3339(&header.started_at).unwrap_or(0),
        replica_id: single_replica(&header),
        hosts,
        bucketed,
        requests: t.requests,
    }))
}

fn single_replica(r: &Report) -> Option<String> {
    match r.replicas.as_slice() {
        [one] if !one.id.is_empty() => Some(one.id.clone()),
        _ => None,
    }
}

fn counts(requests: u64, first: &str, last: &str, methods: &[String], p: (&StatusClasses, u64, u64)) -> Counters {
    let mut m = Methods::default();
    methods.iter().for_each(|name| m.add_name(name));
    Counters {
        requests,
        first_seen_ms: parse_rfc3339(first).unwrap_or(0),
        last_seen_ms: parse_rfc3339(last).unwrap_or(0),
        methods: m,
        status: *p.0,
        bytes_in: p.1,
        bytes_out: p.2,
    }
}

fn path_seed(p: &PathReport) -> PathSeed {
    PathSeed {
        template: p.path.clone(),
        example: p.example.clone().unwrap_or_else(|| p.path.clone()),
        counts: counts(p.requests, &p.first_seen, &p.last_seen, &p.methods, (&p.status, p.bytes_in, p.bytes_out)),
    }
}

/// A saved host as the ledger takes it back. Requests the paths do not hold (a bucket of an older
/// report kept none) go to `{other}`, so the host's count is whole.
fn seed_of(h: HostReport) -> HostSeed {
    let mut paths: Vec<PathSeed> = h.paths.iter().map(path_seed).collect();
    let in_paths: u64 = paths.iter().map(|p| p.counts.requests).sum();
    if h.requests > in_paths {
        let mut rest = counts(h.requests - in_paths, &h.first_seen, &h.last_seen, &h.methods, (&h.status, 0, 0));
        if in_paths > 0 {
            rest.status = Default::default();
        }
        paths.push(PathSeed { template: OTHER_PATH.into(), example: OTHER_PATH.into(), counts: rest });
    }
    let passthrough = h.passthrough.map(|p| {
        let counts = PassthroughCounts {
            connections: p.connections,
            bytes_in: p.bytes_in,
            bytes_out: p.bytes_out,
            duration_ms: (p.total_duration_s * 1000.0) as u64,
        };
        (counts, parse_rfc3339(&h.first_seen).unwrap_or(0), parse_rfc3339(&h.last_seen).unwrap_or(0))
    });
    let after_move = (h.requests_after_move > 0).then(|| AfterMove {
        requests: h.requests_after_move,
        on_old_connections: h.opened_before_move_requests,
        clients: h
            .late_clients
            .iter()
            .filter_map(|c| {
                Some(LateClient {
                    ip: c.ip.parse().ok()?,
                    agent: c.user_agent.as_str().into(),
                    requests: c.requests,
                    last_seen_ms: parse_rfc3339(&c.last_seen).unwrap_or(0),
                    conn_age_ms: (c.connection_age_s * 1000.0) as u64,
                    opened_before_move: c.opened_before_move,
                })
            })
            .collect(),
    });
    HostSeed {
        ip_literal: h.host.parse::<IpAddr>().is_ok(),
        paths,
        clients: h.top_clients.iter().filter_map(|c| Some((c.ip.parse().ok()?, c.requests))).collect(),
        agents: h.top_user_agents.iter().map(|a| (a.user_agent.clone(), a.requests)).collect(),
        minutes: h.requests_per_minute.iter().map(|m| (m.minute, m.requests)).collect(),
        oldest_conn_age_ms: (h.oldest_connection_age_s * 1000.0) as u64,
        tls: TlsCounts {
            requests: h.tls_requests,
            sni_mismatch: h.sni_mismatch_requests,
            default_cert: h.default_cert_requests,
        },
        passthrough,
        after_move,
        name: h.host,
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::sync::Arc;

    use super::*;
    use crate::dns::book::LiveAnswer;
    use crate::dns::targets::Targets;
    use crate::dns::zones::Zones;
    use crate::record::{LedgerSettings, Observation};
    use crate::report::build::Sources;
    use crate::report::judge::ReportSettings;
    use crate::report::render::Format;
    use crate::report::stream::{self, Selection};
    use crate::routes::RouteTable;

    const T0: u64 = 1_764_000_000_000;

    fn recording() -> (Ledger, DnsBook) {
        let ledger = Ledger::new(LedgerSettings::default(), Arc::new(RouteTable::empty()));
        let targets =
            Targets { blue: vec!["10.1.0.0/16".parse().unwrap()], green: vec!["10.2.0.0/16".parse().unwrap()] };
        let book = DnsBook::new(targets, Zones::default(), true, 30_000, ledger.moves(), Arc::default());
        (ledger, book)
    }

    fn request(ledger: &Ledger, host: &str, path: &str, client: u8, conn_age_ms: u64, at_ms: u64) {
        let o = Observation {
            host: Some(host.as_bytes()),
            path,
            method: &http::Method::POST,
            status: 201,
            bytes_in: 10,
            bytes_out: 20,
            client_ip: IpAddr::from([10, 9, 0, client]),
            user_agent: Some(b"java/17"),
            conn_age_ms,
            tls: None,
            at_ms,
        };
        ledger.record(&o, |_| {});
    }

    fn answer(ip: &str) -> Option<Result<Vec<LiveAnswer>, crate::dns::book::LookupFailure>> {
        Some(Ok(vec![LiveAnswer { chain: vec![], addrs: vec![ip.parse().unwrap()], min_ttl: 60, max_ttl: 60 }]))
    }

    fn report(ledger: &Ledger, book: &DnsBook, now: u64) -> serde_json::Value {
        let src = Sources {
            probe: None,
            ledger,
            dns: Some(book),
            started_at_ms: T0,
            replica_id: "pod-a",
            settings: ReportSettings::default(),
        };
        serde_json::to_value(src.build_at(now)).unwrap()
    }

    /// What a saved report says comes back whole: a report of the restored ledger is the report
    /// that was saved, DNS move and late clients included.
    #[test]
    fn a_saved_report_comes_back_whole() {
        let (ledger, book) = recording();
        for i in 0..5 {
            request(&ledger, "api.example.com", &format!("/orders/{}", 100 + i), i as u8 % 2, 1_000, T0 + i * 70_000);
        }
        request(&ledger, "once.example.com", "/x", 7, 5, T0 + 1);
        // DNS moves api to green; a JVM keeps its old connection and its cached answer.
        book.observe("api.example.com", answer("10.1.0.5"), T0);
        for k in 1..=3 {
            book.observe("api.example.com", answer("10.2.0.5"), T0 + 400_000 + k * 1_000);
        }
        let moved_at = ledger.moves().get("api.example.com").expect("moved");
        request(&ledger, "api.example.com", "/orders/9", 1, 900_000, moved_at + 60_000);
        let now = moved_at + 120_000;
        let saved = report(&ledger, &book, now);
        assert_eq!(saved["hosts"][0]["requests_after_move"], 1, "{saved}");

        let dir = std::env::temp_dir().join(format!("cutover-restore-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("report.json");
        let src = Sources {
            probe: None,
            ledger: &ledger,
            dns: Some(&book),
            started_at_ms: T0,
            replica_id: "pod-a",
            settings: ReportSettings::default(),
        };
        let mut out = Vec::new();
        stream::write(&src, &Selection::all(), Format::Json, now, &mut out).unwrap();
        std::fs::write(&file, out).unwrap();

        let (again, again_book) = recording();
        let restored = restore(&file, &again, Some(&again_book)).unwrap().expect("a file");
        assert_eq!((restored.hosts, restored.bucketed, restored.requests), (2, 0, 7));
        assert_eq!((restored.started_at_ms, restored.replica_id.as_deref()), (T0, Some("pod-a")));
        assert_eq!(again.moves().get("api.example.com"), Some(moved_at), "the move is published again");
        assert_eq!(report(&again, &again_book, now), saved);
        std::fs::remove_dir_all(&dir).ok();
    }
}
