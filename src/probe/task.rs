//! The probe loop: a host at a time, round robin, one path of it per turn (a host never has two
//! probes in flight), at most `--green-probe-rate` probes a second over all hosts and at most
//! [`IN_FLIGHT`] at once; green's default answer is calibrated first and every interval. A dead
//! or slow green slows the loop down, never the request path: it runs on the main runtime beside
//! the workers and reads the ledger as reports do.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::book::{PathProbe, ProbeBook};
use super::client::ProbeClient;
use super::judge::{judge, Answer, ProbeVerdict};
use crate::base::time::unix_ms;
use crate::record::stats::StatusClasses;
use crate::record::Ledger;

/// Probes in flight at most, over all hosts.
pub const IN_FLIGHT: usize = 32;
/// The path a host without visible paths (TLS passthrough) is probed at.
pub const HOST_PATH: &str = "/";

/// How the loop paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Probes per second, over all hosts.
    pub rate: u32,
    /// How often one host and path is checked again.
    pub interval: Duration,
}

/// One probe to make.
struct Due {
    host: Box<str>,
    template: Box<str>,
    method: &'static str,
    path: Box<str>,
    blue: StatusClasses,
}

/// Runs forever (`serve`).
pub async fn run(ledger: Arc<Ledger>, book: Arc<ProbeBook>, client: ProbeClient, pace: Pace) {
    sweep(&ledger, book, client, pace, false).await
}

/// Asks green about every host and path once, and returns when every answer is in (`analyze`).
pub async fn ask_all(ledger: &Ledger, book: Arc<ProbeBook>, client: ProbeClient, pace: Pace) {
    sweep(ledger, book, client, pace, true).await
}

/// The loop; with `once`, it ends after the first sweep that finds nothing due.
async fn sweep(ledger: &Ledger, book: Arc<ProbeBook>, client: ProbeClient, pace: Pace, once: bool) {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / pace.rate.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let interval_ms = pace.interval.as_millis() as u64;
    let mut queue: VecDeque<Box<str>> = VecDeque::new();
    let mut in_flight: HashSet<Box<str>> = HashSet::new();
    let mut probes: JoinSet<Box<str>> = JoinSet::new();
    let mut routes = ledger.routes();
    let mut calibrated_at = None::<u64>;
    let mut probed_this_sweep = true;
    loop {
        while let Some(done) = probes.try_join_next() {
            if let Ok(host) = done {
                in_flight.remove(&host);
            }
        }
        let now = unix_ms();
        if calibrated_at.is_none_or(|at| now.saturating_sub(at) >= interval_ms) {
            tick.tick().await;
            book.set_default_answer(calibrate(&client).await);
            calibrated_at = Some(unix_ms());
        }
        let current = ledger.routes();
        if !Arc::ptr_eq(&current, &routes) {
            routes = current;
            book.routes_changed();
        }
        let Some(host) = queue.pop_front() else {
            if once {
                while let Some(done) = probes.join_next().await {
                    if let Ok(host) = done {
                        in_flight.remove(&host);
                    }
                }
                if !probed_this_sweep {
                    return;
                }
            }
            // A sweep that found nothing due waits before the next.
            if !probed_this_sweep && !once {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            probed_this_sweep = false;
            ledger.for_each_name(|name| {
                if super::asks_about(name) {
                    queue.push_back(name.into());
                }
            });
            if queue.is_empty() && !once {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            continue;
        };
        if in_flight.contains(&host) {
            continue;
        }
        let Some(due) = next_due(ledger, &book, host, now, interval_ms) else { continue };
        tick.tick().await;
        while probes.len() >= IN_FLIGHT {
            if let Some(Ok(host)) = probes.join_next().await {
                in_flight.remove(&host);
            }
        }
        probed_this_sweep = true;
        in_flight.insert(due.host.clone());
        queue.push_back(due.host.clone());
        let (client, book) = (client.clone(), book.clone());
        probes.spawn(async move {
            let probe = ask(&client, &book, &due).await;
            book.record(&due.host, &due.template, probe);
            due.host
        });
    }
}

/// The first of `host`'s templates that is due, with what to ask.
fn next_due(ledger: &Ledger, book: &ProbeBook, host: Box<str>, now: u64, interval_ms: u64) -> Option<Due> {
    let stats = ledger.host(&host)?;
    if stats.paths.is_empty() {
        // Passthrough: no path is visible; the host itself is checked.
        return book.due(&host, HOST_PATH, now, interval_ms).then(|| Due {
            template: HOST_PATH.into(),
            method: "GET",
            path: HOST_PATH.into(),
            blue: StatusClasses::default(),
            host,
        });
    }
    let mut order: Vec<(&String, &crate::record::PathStats)> = stats.paths.iter().collect();
    order.sort_by(|a, b| b.1.counts.requests.cmp(&a.1.counts.requests).then(a.0.cmp(b.0)));
    let (template, p) = order
        .into_iter()
        .filter(|(t, _)| t.as_str() != crate::base::host::OTHER_PATH)
        .find(|(t, _)| book.due(&host, t, now, interval_ms))?;
    // GET or HEAD only, whatever the client used: HEAD when it used neither.
    let method = if p.counts.methods.has("GET") { "GET" } else { "HEAD" };
    Some(Due { template: template.as_str().into(), method, path: p.example.clone(), blue: p.counts.status, host })
}

/// One probe, judged.
async fn ask(client: &ProbeClient, book: &ProbeBook, due: &Due) -> PathProbe {
    let asked = format!("{} {}", due.method, due.path);
    let answer = client.ask(&due.host, due.method, &due.path).await;
    let (status, (verdict, detail)) = match &answer {
        Ok(a) => (Some(a.status), judge(&asked, a, book.default_answer().as_ref(), &due.blue)),
        Err(why) if why.starts_with("certificate") || why.starts_with("TLS") => {
            (None, (ProbeVerdict::Failing, why.clone()))
        }
        Err(why) => (None, (ProbeVerdict::Failing, format!("{asked} → {why}"))),
    };
    PathProbe {
        method: due.method,
        path: due.path.clone(),
        status,
        verdict,
        detail: detail.into(),
        checked_at_ms: unix_ms(),
        epoch: book.epoch(),
    }
}

/// Green's answer for a host it certainly does not serve (`None` when green does not answer).
async fn calibrate(client: &ProbeClient) -> Option<Answer> {
    let random = RandomState::new().hash_one(unix_ms());
    let host = format!("cutover-probe-{random:016x}.invalid");
    client.ask_unverified(&host, "GET", &format!("/cutover-probe-{random:016x}")).await.ok()
}
