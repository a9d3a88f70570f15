//! The periodic part of reporting: every `--report-interval` a `summary` event on stdout and, with
//! `--report-file`, the JSON report written atomically; once more at shutdown.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::build::build;
use super::file::write_atomic;
use super::judge::ReportSettings;
use super::render::json;
use crate::base::time::{parse_rfc3339, unix_ms};
use crate::dns::book::DnsBook;
use crate::log::AccessLog;
use crate::record::Ledger;

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
    /// How hosts are judged.
    pub settings: ReportSettings,
    /// `--report-file`.
    pub file: Option<PathBuf>,
    /// Where the summary goes.
    pub log: AccessLog,
    /// One write at a time: the periodic one and the final one at shutdown must not interleave.
    pub writing: Arc<std::sync::Mutex<()>>,
    /// Writes done and failed, for `/metrics`.
    pub writes: Arc<ReportWrites>,
}

impl Reporter {
    /// Runs forever: one report every `every` (the first after one interval).
    pub async fn run_every(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.write_once().await;
        }
    }

    /// Builds the report (off the async thread), logs the summary, writes the file.
    pub async fn write_once(&self) {
        let this = self.clone();
        let _ = tokio::task::spawn_blocking(move || this.write_blocking()).await;
    }

    fn write_blocking(&self) {
        let _one_at_a_time = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let report = build(&self.ledger, self.started_at_ms, &self.settings, self.dns.as_deref());
        let mut actions: BTreeMap<&str, u64> = BTreeMap::new();
        for h in &report.hosts {
            *actions.entry(h.action.as_str()).or_default() += 1;
        }
        let now = unix_ms();
        let quiet_ms = self.settings.quiet_period.as_millis() as u64;
        let arriving = report
            .hosts
            .iter()
            .filter(|h| parse_rfc3339(&h.last_seen).is_some_and(|t| now.saturating_sub(t) < quiet_ms))
            .count();
        self.log.event(
            "summary",
            json!({
                "requests": report.totals.requests,
                "hosts": report.totals.hosts,
                "hosts_arriving": arriving,
                "unrouted_requests": report.totals.unrouted_requests,
                "ignored_requests": report.totals.ignored_requests,
                "hosts_by_action": actions,
            }),
        );
        if let Some(path) = &self.file {
            match write_atomic(path, json(&report).as_bytes()) {
                Ok(()) => {
                    self.writes.ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.writes.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "cannot write the report file");
                    self.log.event("report_write_failed", json!({"error": e.to_string()}));
                }
            }
        }
    }
}
