//! `cutover-proxy analyze`: the traffic blue received *before* the proxy existed, from its load
//! balancer's or ingress's access logs, fed through the same ledger, route table and classifier as
//! live traffic, into the same report. Files may be gzipped (detected by their magic bytes). A line
//! that cannot be read is counted and reported with its file and line number; it never stops the run.

pub mod alb;
pub mod cutover;
pub mod nginx;
pub mod time;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::base::error::ConfigError;
use crate::base::names::named_enum;
use crate::base::time::unix_ms;
use crate::dns::book::DnsBook;
use crate::dns::targets::Targets;
use crate::dns::task::resolvable;
use crate::dns::zones::{self, Zones};
use crate::probe::book::ProbeBook;
use crate::probe::client::ProbeClient;
use crate::probe::task::{ask_all, Pace};
use crate::probe::ProbeSettings;
use crate::record::{Ledger, LedgerSettings, Observation};
use crate::report::build::Sources;
use crate::report::judge::ReportSettings;
use crate::report::model::Report;
use crate::routes::{GreenCluster, RouteError, RouteSource, RouteTable};

/// Malformed lines listed one by one; the rest are only counted.
pub const MAX_LISTED: usize = 20;

named_enum! {
    /// Which access log format the files are in.
    pub enum LogFormat {
        /// AWS Application Load Balancer access logs (the S3 `.log.gz` files).
        Alb = "alb",
        /// nginx `log_format … escape=json`: one JSON object per line.
        NginxJson = "nginx-json",
        /// cutover-proxy's own JSON access lines (its stdout; event lines skipped).
        Cutover = "cutover",
    }
}

/// What one `analyze` run reads and how it judges.
#[derive(Debug, Clone)]
pub struct AnalyzeSettings {
    /// The files' format.
    pub format: LogFormat,
    /// Access log files (plain or gzipped), read in order.
    pub files: Vec<PathBuf>,
    /// Green's route files and folders.
    pub green_routes: Vec<PathBuf>,
    /// What green's cluster serves of them.
    pub green_cluster: GreenCluster,
    /// Ask green about every host and path of the logs (`--green-probe`).
    pub probe: Option<ProbeSettings>,
    /// A host with no request for this long before the last log line gets the action `none`.
    pub quiet_period: Duration,
    /// Ledger bounds and filters.
    pub ledger: LedgerSettings,
    /// Route53 exports: (zone id, file); judged as the zones say (no live lookup).
    pub route53: Vec<(String, PathBuf)>,
    /// Blue and green targets.
    pub targets: Targets,
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
    pub file: PathBuf,
    /// 1-based line number.
    pub line: u64,
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
pub fn run(args: &AnalyzeSettings) -> Result<Analysis, AnalyzeError> {
    // Route53 exports are read first: a broken one stops before the logs are read.
    let mut imported = Zones::default();
    for (zone, file) in &args.route53 {
        imported.zones.push(zones::load(zone, file)?);
    }
    let targets = args.targets.clone();
    let routes = Arc::new(if args.green_routes.is_empty() {
        RouteTable::empty()
    } else {
        RouteTable::build(&[&RouteSource::read(&args.green_routes)?], &args.green_cluster)
    });
    let ledger = Ledger::new(args.ledger.clone(), routes);
    let parse: fn(&str) -> Result<Option<LogRecord>, String> = match args.format {
        LogFormat::Alb => alb::parse,
        LogFormat::NginxJson => nginx::parse,
        LogFormat::Cutover => cutover::parse,
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
        first = unix_ms();
        last = first;
    }
    // DNS as the zones say it, judged once for every host (no live lookup: the logs are history).
    let dns = (!imported.is_empty() || !targets.is_empty()).then(|| {
        let book = DnsBook::new(targets, imported, false, 30_000, Arc::default(), Arc::default());
        ledger.for_each_name(&mut |host: &str| {
            if resolvable(host, book.targets()) {
                let _ = book.observe(host, None, last);
            }
        });
        book
    });
    let probe = match &args.probe {
        Some(p) => Some(ask_green(&ledger, p, args.ledger.max_paths)?),
        None => None,
    };
    let sources = Sources {
        probe: probe.as_deref(),
        ledger: &ledger,
        dns: dns.as_ref(),
        started_at_ms: first,
        replica_id: "analyze",
        settings: ReportSettings { quiet_period: args.quiet_period, probing: probe.is_some() },
    };
    let report = sources.build_at(last);
    Ok(Analysis { report, lines, requests, malformed, listed })
}

/// Asks green about every host and path the logs hold, at the probe's pace, and waits for every
/// answer: last week's hosts checked before the proxy is deployed.
fn ask_green(ledger: &Ledger, p: &ProbeSettings, max_paths: usize) -> Result<Arc<ProbeBook>, AnalyzeError> {
    let (client, _) = ProbeClient::new(p.green.clone(), p.ca_file.as_deref(), p.timeout)?;
    let book = Arc::new(ProbeBook::new(p.green.to_string(), max_paths));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| AnalyzeError::Read { path: PathBuf::from("--green-probe"), line: None, source })?;
    rt.block_on(ask_all(ledger, book.clone(), client, Pace { rate: p.rate, interval: p.interval }));
    Ok(book)
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
