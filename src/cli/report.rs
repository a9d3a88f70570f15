//! `cutover-proxy report …`: report files offline (render, merge replicas', Route53 batches).

use std::path::PathBuf;

use clap::Subcommand;

use super::args::{named, ExportArgs, QuietArgs};
use crate::report::changes::export;
use crate::report::file::{self, ReportFileError};
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
}

impl ReportCommand {
    /// Runs the command, its results on stdout (and in `--out`).
    pub fn run(self) -> Result<(), ReportError> {
        let (files, quiet) = match &self {
            ReportCommand::Render { files, quiet, .. }
            | ReportCommand::Merge { files, quiet, .. }
            | ReportCommand::Route53 { files, quiet, .. } => (files, quiet.quiet_period.0),
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
        }
        Ok(())
    }
}
