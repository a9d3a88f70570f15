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
use crate::report::model::Report;
use crate::report::render::{self, Format};
use crate::s3::client::{S3Error, S3};
use crate::s3::S3Location;

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
        /// Report files, admin addresses (`http://HOST:PORT`: its whole live report) or S3
        /// prefixes (`s3://BUCKET/PREFIX/`: every replica's report there); merged when several.
        #[arg(required = true, value_name = "SOURCE")]
        sources: Vec<String>,
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
        /// Report files, admin addresses (`http://HOST:PORT`: its whole live report) or S3
        /// prefixes (`s3://BUCKET/PREFIX/`: every replica's report there); merged when several.
        #[arg(required = true, value_name = "SOURCE")]
        sources: Vec<String>,
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
        /// Report files, admin addresses (`http://HOST:PORT`: its whole live report) or S3
        /// prefixes (`s3://BUCKET/PREFIX/`: every replica's report there); merged when several.
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
        /// Report files, admin addresses (`http://HOST:PORT`: its whole live report) or S3
        /// prefixes (`s3://BUCKET/PREFIX/`: every replica's report there); merged when several.
        #[arg(required = true, value_name = "SOURCE")]
        sources: Vec<String>,
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
    /// An admin address or an S3 prefix did not give its reports.
    #[error("{url}: {why}")]
    Fetch { url: String, why: String },
    /// S3 failed.
    #[error(transparent)]
    S3(#[from] S3Error),
}

impl ReportCommand {
    /// Runs the command, its results on stdout (and in `--out`); the exit code (`check`: 1 while
    /// the gate is closed).
    pub fn run(self) -> Result<ExitCode, ReportError> {
        let (sources, quiet) = match &self {
            ReportCommand::Render { sources, quiet, .. }
            | ReportCommand::Merge { sources, quiet, .. }
            | ReportCommand::Route53 { sources, quiet, .. }
            | ReportCommand::Check { sources, quiet, .. } => (sources, quiet.quiet_period.0),
        };
        let files = Files::of(sources)?;
        let done = merge_files(&files.paths, &ReportSettings { quiet_period: quiet, ..ReportSettings::default() })?;
        for (file, why) in &done.superseded {
            eprintln!("left out {}: {why}", files.name_of(file));
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
            ReportCommand::Check { fail_on, within, .. } => return Ok(check(&merged, &fail_on, within.map(|d| d.0))),
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `report check`: the hosts of the merged report that keep the gate closed.
fn check(report: &Report, fail_on: &FailOn, within: Option<Duration>) -> ExitCode {
    let closing = closing_hosts(report, fail_on, within.map(|d| d.as_millis() as u64));
    let what = match fail_on {
        FailOn::Traffic => "still sending traffic".to_owned(),
        FailOn::Actions(a) => format!("with action {}", a.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" or ")),
    };
    let window = within.map(|d| format!(" in the {} before {}", Dur(d), report.generated_at)).unwrap_or_default();
    if closing.is_empty() {
        println!("ok: no host {what}{window}");
        return ExitCode::SUCCESS;
    }
    println!("{} host(s) {what}{window}:", closing.len());
    for h in &closing {
        println!("{}\t{}\t{} requests\tlast seen {}\t{}", h.host, h.action, h.requests, h.last_seen, h.reason);
    }
    ExitCode::from(1)
}

/// The report files of the sources: files as they are; an admin address's whole report and an
/// S3 prefix's objects downloaded into temporary files, removed when this drops.
struct Files {
    paths: Vec<PathBuf>,
    /// Temporary files and the source each came from.
    fetched: Vec<(PathBuf, String)>,
}

impl Files {
    fn of(sources: &[String]) -> Result<Self, ReportError> {
        let mut files = Files { paths: Vec::new(), fetched: Vec::new() };
        for s in sources {
            if s.starts_with("http://") || s.starts_with("https://") {
                let file = files.temp("report.json", s.clone());
                fetch(s, &file)?;
                files.paths.push(file);
            } else if S3Location::is_s3(s) {
                let at: S3Location = s.parse().map_err(|why| ReportError::Fetch { url: s.clone(), why })?;
                download(&at, &mut files)?;
            } else {
                files.paths.push(PathBuf::from(s));
            }
        }
        Ok(files)
    }

    /// A temporary file for the report of `source`, removed when this drops (written or not).
    fn temp(&mut self, label: &str, source: String) -> PathBuf {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let label: String =
            label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
        let file = std::env::temp_dir().join(format!("cutover-{}-{n}-{label}", std::process::id()));
        self.fetched.push((file.clone(), source));
        file
    }

    /// What to call a file in messages: its source when it was fetched.
    fn name_of(&self, file: &std::path::Path) -> String {
        self.fetched.iter().find(|(f, _)| f == file).map_or_else(|| file.display().to_string(), |(_, n)| n.clone())
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        for (f, _) in &self.fetched {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Every report under an S3 prefix (one per replica), each into a temporary file of `files`.
fn download(at: &S3Location, files: &mut Files) -> Result<(), ReportError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ReportError::Fetch { url: at.to_string(), why: e.to_string() })?;
    rt.block_on(async {
        let s3 = S3::from_env().await;
        let keys = s3.list_reports(at).await?;
        if keys.is_empty() {
            return Err(ReportError::Fetch { url: at.to_string(), why: "no report (*.json) under this prefix".into() });
        }
        for key in keys {
            let file = files.temp(&key, format!("s3://{}/{key}", at.bucket));
            // `false`: deleted since the listing, nothing to merge.
            if s3.get_to_file(&at.bucket, &key, &file).await? {
                files.paths.push(file);
            }
        }
        Ok(())
    })
}

/// Longest wait for an admin address's whole report.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// An admin address's whole live report (`/report?all=true`), streamed into `file`.
fn fetch(url: &str, file: &std::path::Path) -> Result<(), ReportError> {
    let bad = |why: String| ReportError::Fetch { url: url.to_owned(), why };
    let admin: UpstreamUrl = url.trim_end_matches('/').parse().map_err(|e: String| bad(e))?;
    if admin.tls {
        return Err(bad("the admin listener speaks plain HTTP: use http://".into()));
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| bad(e.to_string()))?;
    let out = std::fs::File::create(file).map_err(|e| bad(format!("{}: {e}", file.display())))?;
    let mut out = std::io::BufWriter::new(out);
    let addr = (admin.host.as_str(), admin.port);
    rt.block_on(get(addr, &admin.authority(), "/report?all=true", FETCH_TIMEOUT, usize::MAX, &mut out))
        .map_err(|e| bad(e.to_string()))?;
    out.flush().map_err(|e| bad(format!("{}: {e}", file.display())))
}
