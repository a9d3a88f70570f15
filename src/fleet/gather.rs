//! The fleet report: this replica's report and every peer's answer to the same question, merged
//! as `report merge` merges files (counts add up, verdicts judged again), with who answered.
//! Peers are asked here (async); their answers are parsed, merged and judged on a blocking
//! thread, so a large fleet never holds up the admin runtime (`/readyz` answers on it).

use std::path::Path;
use std::sync::Arc;

use hickory_resolver::TokioResolver;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use super::fetch::get;
use super::peers::{targets, Target};
use super::{FleetSettings, PEER_MAX_BYTES};
use crate::base::time::{rfc3339, unix_ms};
use crate::report::file::read_from;
use crate::report::judge::ReportSettings;
use crate::report::merge::{keep_first, MergeError, Merger};
use crate::report::model::{Action, HostReport, Replica, Report};

/// The peers and the resolver that finds them.
pub struct Fleet {
    /// `--peers` and its bounds.
    pub settings: FleetSettings,
    /// A resolver like the DNS evidence's, for the peers' names; why there is none (the fleet
    /// report names the error rather than keep the proxy from starting).
    pub resolver: Result<TokioResolver, String>,
}

/// What the merged report keeps: hosts with these actions (empty: any), at most `limit`.
/// Applied after the merge: a replica must not drop a host by its own partial verdict.
#[derive(Debug, Clone)]
pub struct Keep {
    pub actions: Vec<Action>,
    pub limit: usize,
}

/// One replica's answer: its place among the targets (the report lists replicas in `--peers`
/// order), its address, its report as JSON or why there is none.
struct Answer {
    order: usize,
    address: String,
    got: Result<Vec<u8>, String>,
}

impl Fleet {
    /// The fleet's report: `local` (this replica's report as JSON, `own_id` its replica id)
    /// merged with each peer's answer to `GET /report?query`, then cut to what `keep` says.
    pub async fn gather(
        &self,
        query: &str,
        own_id: &str,
        local: Vec<u8>,
        settings: ReportSettings,
        keep: Keep,
    ) -> Result<Report, MergeError> {
        let path = if query.is_empty() { "/report".to_owned() } else { format!("/report?{query}") };
        let concurrency = self.settings.concurrency.max(1);
        let (tx, rx) = mpsc::channel::<Answer>(concurrency);
        let own_id = own_id.to_owned();
        let merging = tokio::task::spawn_blocking(move || merge(local, &own_id, rx, &settings, &keep));

        let mut asking = JoinSet::new();
        let permits = Arc::new(Semaphore::new(concurrency));
        let mut pending: Vec<(usize, String)> = Vec::new();
        for (i, Target { address, addr }) in
            targets(&self.settings.peers, self.resolver.as_ref()).await.into_iter().enumerate()
        {
            let order = i + 1;
            let addr = match addr {
                Ok(addr) => addr,
                Err(why) => {
                    let _ = tx.send(Answer { order, address, got: Err(why) }).await;
                    continue;
                }
            };
            pending.push((order, address.clone()));
            let (permits, path, within, tx) = (permits.clone(), path.clone(), self.settings.timeout, tx.clone());
            asking.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let mut body = Vec::new();
                let got = get(addr, &address, &path, within, PEER_MAX_BYTES, &mut body).await.map(|()| body);
                let _ = tx.send(Answer { order, address, got: got.map_err(|e| e.to_string()) }).await;
                order
            });
        }
        while let Some(done) = asking.join_next().await {
            if let Ok(order) = done {
                pending.retain(|(o, _)| *o != order);
            }
        }
        // A task that failed without answering is named too.
        for (order, address) in pending {
            let _ = tx.send(Answer { order, address, got: Err("no answer (the request failed)".into()) }).await;
        }
        drop(tx);
        merging.await.unwrap_or(Err(MergeError::Empty))
    }
}

/// Merges the local report and every answer as they come, on a blocking thread.
fn merge(
    local: Vec<u8>,
    own_id: &str,
    mut answers: mpsc::Receiver<Answer>,
    settings: &ReportSettings,
    keep: &Keep,
) -> Result<Report, MergeError> {
    let (local, local_hosts) = parse(&local, Path::new("this replica's report"))?;
    let mut merger = Merger::default();
    let own = local.replicas.first().cloned().unwrap_or_default();
    let own_started = local.started_at.clone();
    let mut replicas: Vec<(usize, Replica)> = vec![(0, Replica { reachable: Some(true), ..own })];
    // (id, started_at) of the recordings merged: one answer each.
    let mut merged: Vec<(String, String)> = vec![(own_id.to_owned(), own_started.clone())];
    add(&mut merger, &local, local_hosts);
    while let Some(Answer { order, address, got }) = answers.blocking_recv() {
        let parsed = got.and_then(|json| parse(&json, Path::new(&address)).map_err(|e| e.to_string()));
        let (report, hosts) = match parsed {
            Ok(r) => r,
            Err(why) => {
                replicas.push((order, unreachable(address, why)));
                continue;
            }
        };
        let id = report.replicas.first().map(|r| r.id.clone()).unwrap_or_default();
        let recording = (id.clone(), report.started_at.clone());
        if recording == merged[0] {
            // This replica, found through the Service: counted once, from its own ledger.
            if let Some((_, me)) = replicas.iter_mut().find(|(o, _)| *o == 0) {
                me.address.get_or_insert(address);
            }
            continue;
        }
        if merged.contains(&recording) {
            // The same replica under a second address (a name and an IP in --peers).
            continue;
        }
        let shared_id = merged.iter().any(|(other, _)| !id.is_empty() && *other == id);
        merged.push(recording);
        let error = shared_id.then(|| {
            format!("another replica has the replica id `{id}` too: give each its own --replica-id (POD_NAME)")
        });
        let listed: Vec<Replica> =
            if report.replicas.is_empty() { vec![Replica::default()] } else { report.replicas.clone() };
        for r in listed {
            let generated_at =
                if r.generated_at.is_empty() { report.generated_at.clone() } else { r.generated_at.clone() };
            replicas.push((
                order,
                Replica {
                    address: Some(address.clone()),
                    reachable: Some(true),
                    error: error.clone(),
                    generated_at,
                    ..r
                },
            ));
        }
        add(&mut merger, &report, hosts);
    }
    let mut report = merger.finish(settings)?;
    replicas.sort_by_key(|(order, _)| *order);
    report.replicas = replicas.into_iter().map(|(_, r)| r).collect();
    let mut why =
        format!("the fleet report lists at most {} hosts, those with an action to take first, by requests", keep.limit);
    if !keep.actions.is_empty() {
        let names: Vec<&str> = keep.actions.iter().map(|a| a.as_str()).collect();
        why.push_str(&format!(", only the actions {}", names.join(", ")));
    }
    why.push_str("; ?limit=N and ?action=A,B choose, and `report merge` of the replicas' report files lists them all");
    keep_first(&mut report, &keep.actions, keep.limit, &why);
    Ok(report)
}

fn parse(json: &[u8], origin: &Path) -> Result<(Report, Vec<HostReport>), crate::report::file::ReportFileError> {
    let mut hosts = Vec::new();
    let header = read_from(json, origin, |h| hosts.push(h))?;
    Ok((header, hosts))
}

fn add(merger: &mut Merger, header: &Report, hosts: Vec<HostReport>) {
    for h in hosts {
        merger.add_host(h);
    }
    merger.add_header(header);
}

fn unreachable(address: String, why: String) -> Replica {
    Replica {
        id: String::new(),
        generated_at: rfc3339(unix_ms()),
        address: Some(address),
        reachable: Some(false),
        error: Some(why),
    }
}
