//! `cutover-proxy analyze`: the traffic blue received *before* the proxy existed, from its load
//! balancer's or ingress's access logs, fed through the same ledger, route table and classifier as
//! live traffic, into the same report. Files may be gzipped (detected by their magic bytes). A line
//! that cannot be read is counted and reported with its file and line number; it never stops the run.

pub mod alb;
pub mod nginx;
pub mod time;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, ValueEnum};

use crate::config::{Dur, IdPattern};
use crate::dns::book::DnsBook;
use crate::dns::route53::{self, Route53};
use crate::dns::targets::{Target, Targets};
use crate::dns::task::resolvable;
use crate::error::ConfigError;
use crate::record::ledger::{Ledger, LedgerSettings, Observation};
use crate::record::normalize::{Glob, Templater};
use crate::report::build::{build_at, ReportSettings};
use crate::report::model::Report;
use crate::routes::{RouteError, RouteTable};

/// Malformed lines listed one by one; the rest are only counted.
pub const MAX_LISTED: usize = 20;

/// Which access log format the files are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// AWS Application Load Balancer access logs (the S3 `.log.gz` files).
    Alb,
    /// nginx `log_format … escape=json`: one JSON object per line.
    NginxJson,
}

/// Flags of `cutover-proxy analyze`.
#[derive(Debug, Clone, Args)]
pub struct AnalyzeArgs {
    /// The files' format.
    #[arg(long, value_enum)]
    pub format: LogFormat,
    /// Write the report here (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The report's format.
    #[arg(long, value_enum, default_value = "json")]
    pub report_format: crate::report::render::Format,
    /// Green's routes: Ingress / HTTPRoute / VirtualService files or folders; repeatable.
    #[arg(long, value_name = "PATH", value_delimiter = ',')]
    pub green_routes: Vec<PathBuf>,
    /// A host with no request for this long before the last log line gets the action `none`.
    #[arg(long, value_name = "DURATION", default_value = "15m")]
    pub quiet_period: Dur,
    /// Distinct hosts recorded; more go to the `(other)` bucket.
    #[arg(long, value_name = "N", default_value = "100000")]
    pub max_hosts: usize,
    /// Distinct path templates per host; more go to `{other}`.
    #[arg(long, value_name = "N", default_value = "1000")]
    pub max_paths_per_host: usize,
    /// Distinct path templates over all hosts; more go to `{other}`.
    #[arg(long, value_name = "N", default_value = "200000")]
    pub max_paths: usize,
    /// Paths (glob) counted as ignored; repeatable.
    #[arg(long, value_name = "GLOB", value_delimiter = ',', default_values = ["/healthz", "/readyz", "/livez"])]
    pub ignore_path: Vec<Glob>,
    /// User agents (glob) counted as ignored; repeatable.
    #[arg(long, value_name = "GLOB", value_delimiter = ',', default_values = ["ELB-HealthChecker/*", "kube-probe/*"])]
    pub ignore_user_agent: Vec<Glob>,
    /// Extra regex for path segments that are ids; repeatable.
    #[arg(long, value_name = "REGEX")]
    pub id_pattern: Vec<IdPattern>,
    /// `aws route53 list-resource-record-sets` output, ZONEID=FILE or Z….json: judge each host's
    /// DNS from the zone (no live lookup: the logs are history); repeatable.
    #[arg(long, value_name = "ZONEID=FILE", value_delimiter = ',')]
    pub route53_records: Vec<String>,
    /// Blue's load balancer hostname or a CIDR (which records point at blue); repeatable.
    #[arg(long, value_name = "LB|CIDR", value_delimiter = ',')]
    pub blue_target: Vec<Target>,
    /// Green's load balancer hostname or a CIDR; repeatable.
    #[arg(long, value_name = "LB|CIDR", value_delimiter = ',')]
    pub green_target: Vec<Target>,
    /// Access log files (plain or gzipped).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// One request read from a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// When it was served, unix ms.
    pub at_ms: u64,
    /// Host as the client sent it (port included or not).
    pub host: Option<String>,
    /// Path, query included or not.
    pub path: String,
    /// Method.
    pub method: http::Method,
    /// Status sent to the client.
    pub status: u16,
    /// Client IP (unspecified when the log has none).
    pub client_ip: IpAddr,
    /// User-Agent.
    pub user_agent: Option<String>,
    /// Bytes received, as the log counts them.
    pub bytes_in: u64,
    /// Bytes sent, as the log counts them.
    pub bytes_out: u64,
}

/// A line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: u64,
    /// Why.
    pub why: String,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.why)
    }
}

/// What an analysis read.
#[derive(Debug)]
pub struct Analysis {
    /// The report, judged as of the last request read.
    pub report: Report,
    /// Lines read (blank ones included).
    pub lines: u64,
    /// Requests fed to the ledger.
    pub requests: u64,
    /// Lines that could not be read.
    pub malformed: u64,
    /// The first [`MAX_LISTED`] of them.
    pub listed: Vec<Malformed>,
}

/// Why an analysis could not run.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// A file cannot be opened or read (a gzip stream that breaks off included).
    #[error("{}{}: {source}", path.display(), line.map(|l| format!(", after line {l}")).unwrap_or_default())]
    Read {
        /// The file.
        path: PathBuf,
        /// The last line read before the failure, if any.
        line: Option<u64>,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Green's route table is broken.
    #[error("green routes: {0}")]
    Routes(#[from] RouteError),
    /// A Route53 export or a target cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Reads every file in order and builds the report.
pub fn run(args: &AnalyzeArgs) -> Result<Analysis, AnalyzeError> {
    // Route53 exports are read first: a broken one stops before the logs are read.
    let mut zones = Route53::default();
    for arg in &args.route53_records {
        let (zone, file) =
            route53::split_arg(arg).map_err(|why| ConfigError::Invalid { what: "--route53-records", why })?;
        zones.zones.push(route53::load(&zone, Path::new(&file))?);
    }
    let targets = Targets { blue: args.blue_target.clone(), green: args.green_target.clone() };
    let routes = Arc::new(if args.green_routes.is_empty() {
        RouteTable::empty()
    } else {
        RouteTable::load(&args.green_routes)?
    });
    let settings = LedgerSettings {
        max_hosts: args.max_hosts,
        max_paths_per_host: args.max_paths_per_host,
        max_paths: args.max_paths,
        ignore_paths: args.ignore_path.clone(),
        ignore_user_agents: args.ignore_user_agent.clone(),
        templater: Templater::new(args.id_pattern.iter().map(|p| p.0.clone()).collect()),
    };
    let ledger = Ledger::new(settings, routes);
    let parse: fn(&str) -> Result<Option<LogRecord>, String> = match args.format {
        LogFormat::Alb => alb::parse,
        LogFormat::NginxJson => nginx::parse,
    };
    let (mut lines, mut requests, mut malformed, mut listed) = (0u64, 0u64, 0u64, Vec::new());
    let (mut first, mut last) = (u64::MAX, 0u64);
    for path in &args.files {
        let mut reader = open(path)?;
        let mut buf = Vec::new();
        let mut n = 0u64;
        loop {
            buf.clear();
            let (read, too_long) = read_line(&mut reader, &mut buf).map_err(|source| AnalyzeError::Read {
                path: path.clone(),
                line: Some(n),
                source,
            })?;
            if read == 0 {
                break;
            }
            n += 1;
            lines += 1;
            if too_long {
                malformed += 1;
                if listed.len() < MAX_LISTED {
                    let why = format!("line longer than {MAX_LINE} bytes (is --format right?)");
                    listed.push(Malformed { file: path.clone(), line: n, why });
                }
                continue;
            }
            let line = String::from_utf8_lossy(&buf);
            match parse(line.trim_end_matches(['\n', '\r'])) {
                Ok(None) => {}
                Ok(Some(rec)) => {
                    first = first.min(rec.at_ms);
                    last = last.max(rec.at_ms);
                    requests += 1;
                    record(&ledger, &rec);
                }
                Err(why) => {
                    malformed += 1;
                    if listed.len() < MAX_LISTED {
                        listed.push(Malformed { file: path.clone(), line: n, why });
                    }
                }
            }
        }
    }
    if requests == 0 {
        first = crate::report::build::now_unix_ms();
        last = first;
    }
    // DNS as the zones say it, judged once for every host (no live lookup: the logs are history).
    let dns = (!zones.is_empty() || !targets.is_empty()).then(|| {
        let book = DnsBook::new(targets, zones, false, 30_000, Arc::default(), Arc::default());
        for host in ledger.host_names().iter().filter(|h| resolvable(h)) {
            let _ = book.observe(host, None, last);
        }
        book
    });
    let report = build_at(&ledger, first, &ReportSettings { quiet_period: args.quiet_period.0 }, dns.as_ref(), last);
    Ok(Analysis { report, lines, requests, malformed, listed })
}

/// Longest log line read; a longer one (a binary file, the wrong `--format`) is malformed.
pub const MAX_LINE: usize = 1 << 20;

/// One line into `buf`, at most [`MAX_LINE`] bytes kept: returns the bytes consumed and whether the
/// line was longer (the rest of it is skipped, so memory stays bounded).
fn read_line(reader: &mut dyn BufRead, buf: &mut Vec<u8>) -> std::io::Result<(usize, bool)> {
    use std::io::Read;
    let mut read = reader.take(MAX_LINE as u64 + 1).read_until(b'\n', buf)?;
    if buf.len() <= MAX_LINE || buf.last() == Some(&b'\n') {
        return Ok((read, false));
    }
    let mut rest = Vec::new();
    loop {
        rest.clear();
        let n = reader.take(64 * 1024).read_until(b'\n', &mut rest)?;
        read += n;
        if n == 0 || rest.last() == Some(&b'\n') {
            return Ok((read, true));
        }
    }
}

fn record(ledger: &Ledger, rec: &LogRecord) {
    let path = rec.path.split('?').next().unwrap_or("/");
    ledger.record(
        &Observation {
            host: rec.host.as_deref().map(str::as_bytes),
            path,
            method: &rec.method,
            status: rec.status,
            bytes_in: rec.bytes_in,
            bytes_out: rec.bytes_out,
            client_ip: rec.client_ip,
            user_agent: rec.user_agent.as_deref().map(str::as_bytes),
            conn_age_ms: 0,
            tls: None,
            at_ms: rec.at_ms,
        },
        |_| {},
    );
}

/// A file's lines, gunzipped when it starts with the gzip magic bytes.
fn open(path: &Path) -> Result<Box<dyn BufRead>, AnalyzeError> {
    let err = |source| AnalyzeError::Read { path: path.to_owned(), line: None, source };
    let mut file = BufReader::new(File::open(path).map_err(err)?);
    let head = file.fill_buf().map_err(err)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::new(flate2::bufread::MultiGzDecoder::new(file))))
    } else {
        Ok(Box::new(file))
    }
}
