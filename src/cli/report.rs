//! `cutover-proxy report …`: report files offline (render, merge replicas', Route53 batches), and
//! the gate (`check`) that a pipeline waits on.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use super::args::{named, ExportArgs, QuietArgs};
use crate::base::values::{Dur, UpstreamUrl};
use crate::fleet::fetch::get;
use crate::report::changes::export;
use crate::report::file::{self, ReportFileError};
use crate::report::gate::{closing_hosts, FailOn};
use crate::report::judge::ReportSettings;
use crate::report::merge::{merge_files, MergeError};
use crate::report::render::{self, Format};

/// `cutover-proxy report …`.
#[derive(Debug, Subcommand)]
pub(super) enum ReportCommand {
    /// Print report files (merged when several) as JSON, CSV or Markdown.
    #[command(mut_args = super::args::no_env)]
    Render {
        /// Output format.
        #[arg(long, value_parser = named::<Format>(), default_value_t = Format::Markdown)]
        format: Format,
        #[command(flatten)]
        quiet: QuietArgs,
        /// Report files (JSON, as written by --report-file or GET /report).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Write Route53 change batches for the `switch-dns` hosts: DIR/<ZONEID>.json per hosted zone,
    /// for `aws route53 change-resource-record-sets --hosted-zone-id ZONEID --change-batch file://DIR/ZONEID.json`.
    #[command(mut_args = super::args::no_env)]
    Route53 {
        /// Folder for the batches (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        export: ExportArgs,
        #[command(flatten)]
        quiet: QuietArgs,
        /// Report files (merged when several).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Exit 1 while any host keeps the gate closed, printing them (for `until` loops, CI and ArgoCD
    /// PostSync hooks): `--fail-on traffic --for 24h` — blue still received anything but health
    /// checks in the last 24 h; `--fail-on add-green-route,fix-green` — hosts green cannot serve yet.
    #[command(mut_args = super::args::no_env)]
    Check {
        /// `traffic`, or actions separated by commas.
        #[arg(long, value_name = "ACTIONS|traffic", value_parser = clap::value_parser!(FailOn))]
        fail_on: FailOn,
        /// Only hosts seen within this stretch before the report was made count.
        #[arg(long = "for", value_name = "DURATION")]
        within: Option<Dur>,
        #[command(flatten)]
        quiet: QuietArgs,
        /// Report files, or admin addresses (`http://HOST:PORT`: its whole live report); merged when several.
        #[arg(required = true, value_name = "SOURCE")]
        sources: Vec<String>,
    },
    /// Merge several replicas' report files into one JSON report (counts add up exactly).
    #[command(mut_args = super::args::no_env)]
    Merge {
        /// Write here (atomically) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        quiet: QuietArgs,
        /// Report files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

/// Why a `report` command failed (exit code 2).
#[derive(Debug, thiserror::Error)]
pub(super) enum ReportError {
    /// A report file cannot be read or written.
    #[error(transparent)]
    File(#[from] ReportFileError),
    /// The reports cannot be merged.
    #[error(transparent)]
    Merge(#[from] MergeError),
    /// An admin address did not give its report.
    #[error("{url}: {why}")]
    Fetch { url: String, why: String },
}

impl ReportCommand {
    /// Runs the command, its results on stdout (and in `--out`); the exit code (`check`: 1 while
    /// the gate is closed).
    pub fn run(self) -> Result<ExitCode, ReportError> {
        if let ReportCommand::Check { fail_on, within, quiet, sources } = &self {
            return check(sources, fail_on, within.map(|d| d.0), quiet.quiet_period.0);
        }
        let (files, quiet) = match &self {
            ReportCommand::Render { files, quiet, .. }
            | ReportCommand::Merge { files, quiet, .. }
            | ReportCommand::Route53 { files, quiet, .. } => (files, quiet.quiet_period.0),
            ReportCommand::Check { .. } => return Ok(ExitCode::SUCCESS),
        };
        let done = merge_files(files, &ReportSettings { quiet_period: quiet, ..ReportSettings::default() })?;
        for (file, why) in &done.superseded {
            eprintln!("left out {}: {why}", file.display());
        }
        let merged = done.report;
        match self {
            ReportCommand::Render { format, .. } => print!("{}", render::render(&merged, format)),
            ReportCommand::Merge { out: Some(out), .. } => file::write_atomic(&out, render::json(&merged).as_bytes())?,
            ReportCommand::Merge { out: None, .. } => print!("{}", render::json(&merged)),
            ReportCommand::Route53 { out, export: settings, .. } => {
                let done = export(&merged, &settings.settings());
                let written = file::write_export(&out, &done)?;
                for (zone, hosts) in &done.hosts {
                    let parts = done.batches.get(zone).map_or(1, Vec::len);
                    let more =
                        if parts > 1 { format!(" (+{} more: {zone}.part2.json…)", parts - 1) } else { String::new() };
                    let file = out.join(format!("{zone}.json"));
                    println!("{}{more}: {} host(s): {}", file.display(), hosts.len(), hosts.join(", "));
                }
                if let Some(script) = written.iter().find(|p| p.extension().is_some_and(|e| e == "sh")) {
                    println!("{}: ExternalDNS owns some of these records; apply its annotations too", script.display());
                }
                for s in &done.skipped {
                    eprintln!("skipped {}: {}", s.host, s.reason);
                }
                if done.batches.is_empty() {
                    println!("no switch-dns host has a change to write");
                }
            }
            ReportCommand::Check { .. } => {}
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `report check`: the merged report of the sources, the hosts that keep the gate closed.
fn check(
    sources: &[String],
    fail_on: &FailOn,
    within: Option<Duration>,
    quiet: Duration,
) -> Result<ExitCode, ReportError> {
    let mut files = Vec::new();
    let mut fetched = Vec::new();
    for s in sources {
        if s.starts_with("http://") || s.starts_with("https://") {
            let file = fetch(s)?;
            fetched.push(file.clone());
            files.push(file);
        } else {
            files.push(PathBuf::from(s));
        }
    }
    let merged = merge_files(&files, &ReportSettings { quiet_period: quiet, ..ReportSettings::default() });
    for f in fetched {
        let _ = std::fs::remove_file(f);
    }
    let report = merged?.report;
    let closing = closing_hosts(&report, fail_on, within.map(|d| d.as_millis() as u64));
    let what = match fail_on {
        FailOn::Traffic => "still sending traffic".to_owned(),
        FailOn::Actions(a) => format!("with action {}", a.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" or ")),
    };
    let window = within.map(|d| format!(" in the {} before {}", Dur(d), report.generated_at)).unwrap_or_default();
    if closing.is_empty() {
        println!("ok: no host {what}{window}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} host(s) {what}{window}:", closing.len());
    for h in &closing {
        println!("{}\t{}\t{} requests\tlast seen {}\t{}", h.host, h.action, h.requests, h.last_seen, h.reason);
    }
    Ok(ExitCode::from(1))
}

/// Longest wait for an admin address's whole report.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// An admin address's whole live report (`/report?all=true`), streamed into a temporary file.
fn fetch(url: &str) -> Result<PathBuf, ReportError> {
    let bad = |why: String| ReportError::Fetch { url: url.to_owned(), why };
    let admin: UpstreamUrl = url.trim_end_matches('/').parse().map_err(|e: String| bad(e))?;
    if admin.tls {
        return Err(bad("the admin listener speaks plain HTTP: use http://".into()));
    }
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = std::env::temp_dir().join(format!("cutover-check-{}-{n}.json", std::process::id()));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| bad(e.to_string()))?;
    let got = std::fs::File::create(&file).map_err(|e| format!("{}: {e}", file.display())).and_then(|out| {
        let mut out = std::io::BufWriter::new(out);
        let addr = (admin.host.as_str(), admin.port);
        rt.block_on(get(addr, &admin.authority(), "/report?all=true", FETCH_TIMEOUT, usize::MAX, &mut out))
            .map_err(|e| e.to_string())?;
        out.flush().map_err(|e| format!("{}: {e}", file.display()))
    });
    match got {
        Ok(()) => Ok(file),
        Err(why) => {
            let _ = std::fs::remove_file(&file);
            Err(bad(why))
        }
    }
}
