//! The periodic part of reporting: every `--report-interval` a `summary` event on stdout and, with
//! `--report-file`, the whole JSON report streamed to the file atomically; once more at shutdown.
//! Every minute, one line for the first sightings the events' rate held back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::build::Sources;
use super::file::write_atomic_with;
use super::judge::ReportSettings;
use super::render::Format;
use super::stream::{self, Selection, Written};
use crate::base::time::unix_ms;
use crate::dns::book::DnsBook;
use crate::log::AccessLog;
use crate::probe::book::ProbeBook;
use crate::record::Ledger;
use crate::s3::client::S3;

/// Report files written, and writes that failed, for `/metrics`.
#[derive(Debug, Default)]
pub struct ReportWrites {
    /// Successful writes.
    pub ok: AtomicU64,
    /// Failed writes (disk full, read-only file system...).
    pub failed: AtomicU64,
}

/// Writes the report file and the summary event.
#[derive(Clone)]
pub struct Reporter {
    pub ledger: Arc<Ledger>,
    /// DNS evidence, when configured.
    pub dns: Option<Arc<DnsBook>>,
    /// When recording started, unix ms.
    pub started_at_ms: u64,
    /// `--replica-id`.
    pub replica_id: Arc<str>,
    /// How hosts are judged.
    pub settings: ReportSettings,
    /// Green's answers (`--green-probe`).
    pub probe: Option<Arc<ProbeBook>>,
    /// The file written (`--report-file`; with S3, the spool uploaded from).
    pub file: Option<PathBuf>,
    /// With `--report-file s3://…`: the object the file is uploaded to after each write.
    pub upload: Option<Upload>,
    /// Where the summary goes.
    pub log: AccessLog,
    /// One write (and upload) at a time: the periodic one and the final one at shutdown must not
    /// interleave, nor land out of order.
    pub writing: Arc<tokio::sync::Mutex<()>>,
    /// Writes done and failed, for `/metrics`.
    pub writes: Arc<ReportWrites>,
}

/// The S3 object a report file is uploaded to.
#[derive(Clone)]
pub struct Upload {
    pub s3: S3,
    pub bucket: String,
    pub key: String,
}

/// The report is written at most once per this many times its last write's duration.
pub const WRITE_SHARE: u32 = 4;

impl Reporter {
    /// Runs forever: one report every `every` (the first after one interval), or every
    /// [`WRITE_SHARE`] times the last write's duration when that is longer, so writing never
    /// takes more than a quarter of a core from the request path however big the ledger grows.
    pub async fn run_every(self, every: Duration) {
        let mut wait = every;
        let mut stretched = false;
        loop {
            tokio::time::sleep(wait).await;
            let took = self.write_once().await;
            wait = every.max(took * WRITE_SHARE);
            if (wait > every) != stretched {
                stretched = wait > every;
                self.log.event(
                    "report_interval_stretched",
                    json!({"interval_ms": wait.as_millis() as u64, "report_interval_ms": every.as_millis() as u64,
                           "write_ms": took.as_millis() as u64, "stretched": stretched,
                           "message": if stretched { "writing the report takes long: it is written less often than --report-interval" } else { "back to --report-interval" }}),
                );
            }
        }
    }

    /// Runs forever: every `every`, one `new_hosts_summary` line for the first sightings held
    /// back since the last one (none when there were none).
    pub async fn sightings_every(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.log_held_sightings(every);
        }
    }

    /// One `new_hosts_summary` line for the first sightings held back over the last `over`
    /// (the rate limit's), when there were any; also at shutdown, so none goes untold.
    pub fn log_held_sightings(&self, over: Duration) {
        let held = self.ledger.take_suppressed();
        if held.is_empty() {
            return;
        }
        let top = held.domains.top();
        let most_under: Vec<serde_json::Value> =
            top.iter().map(|(d, n)| json!({"domain": &**d, "new_hosts": n})).collect();
        let under = top.first().map(|(d, n)| format!(", most under {d} ({n})")).unwrap_or_default();
        let seconds = over.as_secs().max(1);
        self.log.event(
            "new_hosts_summary",
            json!({
                "more_new_hosts": held.new_hosts,
                "more_new_paths": held.new_paths,
                "interval_s": seconds,
                "most_under": most_under,
                "message": format!(
                    "{} more new hosts and {} more new paths in the last {seconds} s{under} (new_host/new_path lines are limited to a burst of 1000 and 50 a second)",
                    held.new_hosts, held.new_paths
                ),
            }),
        );
    }

    /// Builds the report (off the async thread), logs the summary, writes the file.
    /// Returns how long it took.
    pub async fn write_once(&self) -> Duration {
        let _one_at_a_time = self.writing.lock().await;
        let this = self.clone();
        let started = std::time::Instant::now();
        let written = tokio::task::spawn_blocking(move || this.write_blocking()).await.unwrap_or(false);
        if let (true, Some(up), Some(file)) = (written, &self.upload, &self.file) {
            match up.s3.put_file(&up.bucket, &up.key, file).await {
                Ok(()) => {
                    self.writes.ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => self.write_failed(&e.to_string()),
            }
        }
        started.elapsed()
    }

    fn write_failed(&self, error: &str) {
        self.writes.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %error, "cannot write the report");
        self.log.event("report_write_failed", json!({"error": error}));
    }

    fn sources(&self) -> Sources<'_> {
        Sources {
            ledger: &self.ledger,
            dns: self.dns.as_deref(),
            started_at_ms: self.started_at_ms,
            replica_id: &self.replica_id,
            settings: self.settings,
            probe: self.probe.as_deref(),
        }
    }

    /// Writes the file and logs the summary; whether the file was written.
    fn write_blocking(&self) -> bool {
        let src = self.sources();
        let now = unix_ms();
        let started = std::time::Instant::now();
        let mut file_written = false;
        let written: Written = match &self.file {
            Some(path) => {
                match write_atomic_with(path, |w| stream::write(&src, &Selection::all(), Format::Json, now, w)) {
                    Ok(written) => {
                        file_written = true;
                        if self.upload.is_none() {
                            self.writes.ok.fetch_add(1, Ordering::Relaxed);
                        }
                        written
                    }
                    Err(e) => {
                        self.write_failed(&e.to_string());
                        stream::tally(&src, now)
                    }
                }
            }
            None => stream::tally(&src, now),
        };
        let header = src.header(now);
        let actions: BTreeMap<&str, u64> = written.by_action.iter().map(|(a, t)| (a.as_str(), t.hosts)).collect();
        self.log.event(
            "summary",
            json!({
                "requests": header.totals.requests,
                "hosts": header.totals.hosts,
                "hosts_arriving": written.arriving,
                "unrouted_requests": header.totals.unrouted_requests,
                "ignored_requests": header.totals.ignored_requests,
                "hosts_by_action": actions,
                "took_ms": started.elapsed().as_millis() as u64,
                "report_file_bytes": self.file.as_ref().and_then(|f| std::fs::metadata(f).ok()).map(|m| m.len()),
            }),
        );
        file_written
    }
}
