//! The fleet report: this replica's report and every peer's answer to the same question, merged
//! as `report merge` merges files (counts add up, verdicts judged again), with who answered.

use std::path::Path;
use std::sync::Arc;

use hickory_resolver::TokioResolver;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::fetch::get;
use super::peers::{targets, Target};
use super::{FleetSettings, PEER_MAX_BYTES};
use crate::base::time::{rfc3339, unix_ms};
use crate::report::file::read_from;
use crate::report::judge::ReportSettings;
use crate::report::merge::{keep_first, MergeError, Merger};
use crate::report::model::{HostReport, Replica, Report};

/// The peers and the resolver that finds them.
pub struct Fleet {
    /// `--peers` and its bounds.
    pub settings: FleetSettings,
    /// A resolver like the DNS evidence's, for the peers' names; why there is none (the fleet
    /// report names the error rather than keep the proxy from starting).
    pub resolver: Result<TokioResolver, String>,
}

/// One replica's part, as it came back.
struct Answer {
    /// Its place among the targets (the report lists replicas in `--peers` order).
    order: usize,
    address: String,
    got: Result<(Report, Vec<HostReport>), String>,
}

impl Fleet {
    /// The fleet's report: `local` (this replica's report as JSON, `own_id` its replica id)
    /// merged with each peer's answer to `GET /report?query`, listing at most `limit` hosts.
    pub async fn gather(
        &self,
        query: &str,
        own_id: &str,
        local: &[u8],
        settings: &ReportSettings,
        limit: Option<usize>,
    ) -> Result<Report, MergeError> {
        let path = if query.is_empty() { "/report".to_owned() } else { format!("/report?{query}") };
        let (local, local_hosts) = parse(local, Path::new("this replica's report"))?;
        let mut merger = Merger::default();
        let mut replicas: Vec<(usize, Replica)> = Vec::new();
        let mut seen: Vec<String> = vec![own_id.to_owned()];
        let own = local.replicas.first().cloned().unwrap_or_default();
        replicas.push((0, Replica { reachable: Some(true), ..own }));
        add(&mut merger, &local, local_hosts);

        let mut asking = JoinSet::new();
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        for (i, Target { address, addr }) in
            targets(&self.settings.peers, self.resolver.as_ref()).await.into_iter().enumerate()
        {
            let order = i + 1;
            let addr = match addr {
                Ok(addr) => addr,
                Err(why) => {
                    replicas.push((order, unreachable(address, why)));
                    continue;
                }
            };
            let (permits, path, within) = (permits.clone(), path.clone(), self.settings.timeout);
            asking.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let mut body = Vec::new();
                let got = match get(addr, &address, &path, within, PEER_MAX_BYTES, &mut body).await {
                    Ok(()) => parse(&body, Path::new(&address)).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                Answer { order, address, got }
            });
        }
        while let Some(done) = asking.join_next().await {
            let Ok(Answer { order, address, got }) = done else { continue };
            let (report, hosts) = match got {
                Ok(r) => r,
                Err(why) => {
                    replicas.push((order, unreachable(address, why)));
                    continue;
                }
            };
            let id = report.replicas.first().map(|r| r.id.clone()).unwrap_or_default();
            if id == own_id {
                // This replica, found through the Service: counted once, from its own ledger.
                if let Some((_, me)) = replicas.iter_mut().find(|(o, _)| *o == 0) {
                    me.address = Some(address);
                }
                continue;
            }
            if !id.is_empty() && seen.contains(&id) {
                continue;
            }
            seen.push(id);
            for r in &report.replicas {
                replicas.push((order, Replica { address: Some(address.clone()), reachable: Some(true), ..r.clone() }));
            }
            add(&mut merger, &report, hosts);
        }
        let mut report = merger.finish(settings)?;
        replicas.sort_by_key(|(order, _)| *order);
        report.replicas = replicas.into_iter().map(|(_, r)| r).collect();
        if let Some(limit) = limit {
            keep_first(
                &mut report,
                limit,
                &format!(
                    "the fleet report lists at most {limit} hosts, those with an action to take first, by requests; \
                     ?limit=N and ?action=A,B choose, and `report merge` of the replicas' report files lists them all"
                ),
            );
        }
        Ok(report)
    }
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
