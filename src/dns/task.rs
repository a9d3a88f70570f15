//! The resolver task: resolves every new host (and again when its TTL runs out), and the targets'
//! load balancer names every `--target-refresh`, with hickory's own cache off, at most
//! `--dns-concurrency` lookups at once and `--dns-rate` per second. It runs beside the proxy: a
//! dead or slow DNS server changes verdicts, never latency.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::book::{DnsBook, LiveAnswer, LookupFailure};
use super::settings::ResolverSettings;
use super::targets::{Side, Targets};
use super::verdict::DnsVerdict;
use crate::base::error::ConfigError;
use crate::base::host::lb_name;
use crate::base::time::unix_ms;

/// A resolver with its cache off (every lookup asks the server, so TTLs are real).
pub fn resolver(s: &ResolverSettings) -> Result<TokioResolver, ConfigError> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = if s.servers.is_empty() {
        TokioResolver::builder(provider)
            .map_err(|e| ConfigError::Invalid { what: "--dns-server", why: format!("no system resolver: {e}") })?
    } else {
        let servers = s
            .servers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
    };
    let o = builder.options_mut();
    o.timeout = s.timeout;
    o.attempts = 1;
    o.cache_size = 0;
    o.use_hosts_file = ResolveHosts::Never;
    o.preserve_intermediates = true;
    o.num_concurrent_reqs = 1;
    builder.build().map_err(|e| ConfigError::Invalid { what: "--dns-server", why: e.to_string() })
}

/// Hosts worth resolving: names in some domain that clients do not address directly (IP
/// literals, placeholders, load balancer names are not).
pub fn resolvable(host: &str, targets: &Targets) -> bool {
    let ip_literal = host.starts_with('[') || host.parse::<IpAddr>().is_ok();
    host.contains('.') && !targets.addressed_directly(host, ip_literal)
}

/// Called with (host, from, to) when a host's verdict changes.
pub type OnChange = Arc<dyn Fn(&str, DnsVerdict, DnsVerdict) + Send + Sync>;

/// Runs until `new_hosts` closes. `known_hosts` walks the ledger's hosts (hosts whose
/// announcement was dropped because the channel was full are found there every minute).
pub async fn run(
    book: Arc<DnsBook>,
    resolver: Option<TokioResolver>,
    settings: ResolverSettings,
    mut new_hosts: mpsc::Receiver<String>,
    known_hosts: impl Fn(&mut dyn FnMut(&str)),
    on_change: OnChange,
) {
    let resolver = resolver.map(Arc::new);
    let mut queue: BinaryHeap<Reverse<(u64, String)>> = BinaryHeap::new();
    let mut known: HashSet<String> = HashSet::new();
    let mut inflight: JoinSet<(String, Result<Vec<LiveAnswer>, LookupFailure>)> = JoinSet::new();
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(settings.rate.max(1))));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut targets = tokio::time::interval(settings.target_refresh);
    let mut sweep = tokio::time::interval(Duration::from_secs(60));
    let mut targets_task: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let next_due = queue.peek().map(|Reverse((due, _))| *due);
        let room = inflight.len() < settings.concurrency;
        let wait = match next_due {
            Some(due) if room => Duration::from_millis(due.saturating_sub(unix_ms())),
            _ => Duration::from_secs(3600),
        };
        tokio::select! {
            host = new_hosts.recv() => match host {
                Some(host) => admit(&book, &mut known, &mut queue, host, resolver.is_some(), &on_change, settings.max_hosts),
                None => break,
            },
            _ = sweep.tick() => {
                let live = resolver.is_some();
                known_hosts(&mut |host: &str| {
                    if !known.contains(host) {
                        admit(&book, &mut known, &mut queue, host.to_owned(), live, &on_change, settings.max_hosts);
                    }
                });
            }
            _ = targets.tick(), if resolver.is_some() && targets_task.as_ref().is_none_or(|t| t.is_finished()) => {
                if let Some(r) = &resolver {
                    let task = refresh_targets(book.clone(), r.clone(), settings.clone(), on_change.clone());
                    targets_task = Some(tokio::spawn(task));
                }
            }
            Some(done) = inflight.join_next() => {
                if let Ok((host, result)) = done {
                    let now = unix_ms();
                    let next = match &result {
                        Ok(samples) => {
                            let ttl = samples.iter().map(|s| s.min_ttl).min().unwrap_or(60);
                            Duration::from_secs(ttl.into()).clamp(settings.min_interval, settings.max_interval)
                        }
                        Err(_) => Duration::from_secs(30).clamp(settings.min_interval, settings.max_interval),
                    };
                    if let Err(e) = &result {
                        tracing::debug!(host = %host, error = %e.describe(), "DNS lookup found no address");
                    }
                    if let Some((from, to)) = book.observe(&host, Some(result), now) {
                        on_change(&host, from, to);
                    }
                    queue.push(Reverse((now + next.as_millis() as u64, host)));
                }
            }
            _ = tokio::time::sleep(wait) => {
                let now = unix_ms();
                while inflight.len() < settings.concurrency {
                    match queue.peek() {
                        Some(Reverse((due, _))) if *due <= now => {}
                        _ => break,
                    }
                    let Some(Reverse((_, host))) = queue.pop() else { break };
                    let Some(r) = resolver.clone() else { break };
                    pace.tick().await;
                    let (book, samples) = (book.clone(), settings.samples);
                    // hickory times each query out; this bounds the whole lookup all the same.
                    let limit = settings.timeout * (2 * samples + 2);
                    inflight.spawn(async move {
                        let result = tokio::time::timeout(limit, sample(&r, &host, samples))
                            .await
                            .unwrap_or(Err(LookupFailure::Timeout));
                        book.count_lookup(result.as_ref().err());
                        (host, result)
                    });
                }
            }
        }
    }
}

fn admit(
    book: &DnsBook,
    known: &mut HashSet<String>,
    queue: &mut BinaryHeap<Reverse<(u64, String)>>,
    host: String,
    live: bool,
    on_change: &OnChange,
    max_hosts: usize,
) {
    // Bounded like the ledger: a flood of new hosts does not grow the evidence without end.
    if known.len() >= max_hosts || !resolvable(&host, book.targets()) || !known.insert(host.clone()) {
        return;
    }
    let now = unix_ms();
    if let Some((from, to)) = book.observe(&host, None, now) {
        if to != DnsVerdict::Unknown {
            on_change(&host, from, to);
        }
    }
    if live {
        queue.push(Reverse((now, host)));
    }
}

/// Resolves each side's load balancer names and hands the addresses to the book.
async fn refresh_targets(
    book: Arc<DnsBook>,
    resolver: Arc<TokioResolver>,
    settings: ResolverSettings,
    on_change: OnChange,
) {
    for side in [Side::Blue, Side::Green] {
        let names: Vec<String> = book.targets().names(side).map(str::to_owned).collect();
        let mut addrs = Vec::new();
        for name in names {
            let result = tokio::time::timeout(settings.timeout * 3, resolve(&resolver, &name)).await;
            book.count_lookup(match &result {
                Ok(r) => r.as_ref().err(),
                Err(_) => Some(&LookupFailure::Timeout),
            });
            match result {
                Ok(Ok(a)) => addrs.extend(a.addrs),
                Ok(Err(e)) => {
                    tracing::warn!(target_name = %name, side = side.as_str(), error = %e.describe(), "cannot resolve a target load balancer")
                }
                Err(_) => {
                    tracing::warn!(target_name = %name, side = side.as_str(), "resolving a target load balancer timed out")
                }
            }
        }
        for (host, from, to) in book.set_target_addrs(side, &addrs, unix_ms()) {
            on_change(&host, from, to);
        }
    }
}

/// `samples` resolutions (distinct ones kept): weighted records answer differently per query.
async fn sample(resolver: &TokioResolver, host: &str, samples: u32) -> Result<Vec<LiveAnswer>, LookupFailure> {
    let mut out: Vec<LiveAnswer> = Vec::new();
    let mut last_err = None;
    for _ in 0..samples.max(1) {
        match resolve(resolver, host).await {
            Ok(a) => {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
            // A definite "no such name" will not change with the next sample.
            Err(e) if e.is_definite() => return Err(e),
            Err(e) => last_err = Some(e),
        }
    }
    if out.is_empty() {
        return Err(last_err.unwrap_or(LookupFailure::Timeout));
    }
    Ok(out)
}

/// One resolution: A and AAAA at once, the CNAME chain and TTLs from the answers.
pub async fn resolve(resolver: &TokioResolver, host: &str) -> Result<LiveAnswer, LookupFailure> {
    let fqdn = format!("{}.", host.trim_end_matches('.'));
    let (a, aaaa) =
        tokio::join!(resolver.lookup(fqdn.as_str(), RecordType::A), resolver.lookup(fqdn.as_str(), RecordType::AAAA));
    let mut out = LiveAnswer { min_ttl: u32::MAX, ..LiveAnswer::default() };
    let mut errors = Vec::new();
    for result in [a, aaaa] {
        match result {
            Ok(lookup) => {
                for r in lookup.answers() {
                    out.min_ttl = out.min_ttl.min(r.ttl);
                    out.max_ttl = out.max_ttl.max(r.ttl);
                    match &r.data {
                        RData::CNAME(c) => {
                            let name = lb_name(&c.0.to_string());
                            if !out.chain.contains(&name) {
                                out.chain.push(name);
                            }
                        }
                        RData::A(a) => out.addrs.push(IpAddr::V4(a.0)),
                        RData::AAAA(a) => out.addrs.push(IpAddr::V6(a.0)),
                        _ => {}
                    }
                }
            }
            Err(e) => errors.push(failure(&e)),
        }
    }
    if !out.addrs.is_empty() {
        out.addrs.sort();
        out.addrs.dedup();
        return Ok(out);
    }
    let pick = |f: &dyn Fn(&LookupFailure) -> bool| errors.iter().find(|e| f(e)).cloned();
    Err(pick(&|e| *e == LookupFailure::NxDomain)
        .or_else(|| pick(&|e| matches!(e, LookupFailure::Failed(_))))
        .or_else(|| pick(&|e| *e == LookupFailure::Timeout))
        .unwrap_or(LookupFailure::NoAnswer))
}

fn failure(e: &NetError) -> LookupFailure {
    if e.is_nx_domain() {
        LookupFailure::NxDomain
    } else if e.is_no_records_found() {
        LookupFailure::NoAnswer
    } else if matches!(e, NetError::Timeout) {
        LookupFailure::Timeout
    } else {
        LookupFailure::Failed(e.to_string())
    }
}
