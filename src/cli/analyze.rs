//! `cutover-proxy analyze`: blue's access logs from before the proxy, through the same ledger,
//! route table and classifier, into the same report.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::args::{named, LedgerArgs, ProbeArgs, QuietArgs, RoutesArgs, TargetArgs};
use crate::analyze::{AnalyzeSettings, LogFormat};
use crate::base::error::ConfigError;
use crate::report::file;
use crate::report::render::{self, Format};

/// Flags of `cutover-proxy analyze`.
#[derive(Debug, Clone, Args)]
pub(super) struct AnalyzeArgs {
    /// The files' format.
    #[arg(long, value_parser = named::<LogFormat>())]
    pub format: LogFormat,
    /// Write the report here (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The report's format.
    #[arg(long, value_parser = named::<Format>(), default_value_t = Format::Json)]
    pub report_format: Format,
    #[command(flatten)]
    pub routes: RoutesArgs,
    #[command(flatten)]
    pub probe: ProbeArgs,
    #[command(flatten)]
    pub quiet: QuietArgs,
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// Which records point at blue or green (judged from the zones: no live lookup, the logs are
    /// history).
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Access log files (plain or gzipped).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

impl AnalyzeArgs {
    fn settings(&self) -> Result<AnalyzeSettings, ConfigError> {
        Ok(AnalyzeSettings {
            format: self.format,
            files: self.files.clone(),
            green_routes: self.routes.green_routes.clone(),
            green_cluster: self.routes.cluster.cluster(),
            probe: self.probe.settings()?,
            quiet_period: self.quiet.quiet_period.0,
            ledger: self.ledger.settings(),
            route53: self.targets.zones()?,
            targets: self.targets.targets()?,
        })
    }

    /// The report on stdout or in `--out`, a summary and the first malformed lines on stderr.
    /// Exit 0 even with malformed lines; 2 when a file cannot be read or the routes are broken.
    pub fn run(&self) -> ExitCode {
        let analysis =
            match self.settings().map_err(crate::analyze::AnalyzeError::from).and_then(|s| crate::analyze::run(&s)) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
        for m in &analysis.listed {
            eprintln!("malformed: {m}");
        }
        if analysis.malformed > analysis.listed.len() as u64 {
            eprintln!("malformed: … and {} more", analysis.malformed - analysis.listed.len() as u64);
        }
        eprintln!(
            "analyzed {} file(s): {} lines, {} requests, {} malformed; {} hosts",
            self.files.len(),
            analysis.lines,
            analysis.requests,
            analysis.malformed,
            analysis.report.totals.hosts
        );
        let body = render::render(&analysis.report, self.report_format);
        match &self.out {
            Some(out) => {
                if let Err(e) = file::write_atomic(out, body.as_bytes()) {
                    eprintln!("error: {e}");
                    return ExitCode::from(1);
                }
            }
            None => print!("{body}"),
        }
        ExitCode::SUCCESS
    }
}
