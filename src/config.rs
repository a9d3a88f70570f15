//! Command-line flags, `CUTOVER_*` environment variables and the TOML config file, merged into one
//! [`ServeConfig`]. Precedence: flag, then environment, then file, then the built-in default.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Parser, Subcommand};
use serde::Deserialize;

use crate::dns::targets::{Target, Targets};
use crate::dns::task::DnsSettings;
use crate::error::ConfigError;
use crate::proxy::headers::TrustedProxies;
use crate::proxy::LogRequests;
use crate::record::ledger::LedgerSettings;
use crate::record::normalize::{Glob, Templater};
use crate::report::route53::ExportSettings;
use crate::upstream::UpstreamUrl;

/// The whole command line.
#[derive(Debug, Parser)]
#[command(
    name = "cutover-proxy",
    version,
    about = "Forwards everything to the old (blue) cluster and records which hosts and paths still arrive during a DNS cutover",
    propagate_version = true
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy in front of blue.
    Serve(Box<ServeArgs>),
    /// Work with report files offline (render, merge replicas' reports).
    #[command(subcommand)]
    Report(ReportCommand),
    /// Read blue's access logs from before the proxy (ALB or nginx JSON, gzip too) into the same report.
    Analyze(Box<crate::analyze::AnalyzeArgs>),
    /// Certificates for --cert-dir.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Try it in one minute: embedded blue, sample green routes, replayed traffic, the report.
    Demo {
        /// Print the report and exit instead of serving it until Ctrl-C.
        #[arg(long)]
        exit: bool,
        /// Where report.json, report.md, report.csv and access.log are written.
        #[arg(long, value_name = "DIR", default_value = "cutover-demo")]
        out: PathBuf,
    },
}

/// `cutover-proxy certs …`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Make a development CA (DIR/ca/ca.crt, ca.key) and a leaf certificate per name signed by it
    /// (DIR/NAME.crt, DIR/NAME.key), ready for --cert-dir DIR. For demos and tests, not production.
    Generate {
        /// Folder to write to (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Host names (`*.example.com` for a wildcard); one certificate each.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
}

/// `cutover-proxy report …`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Print report files (merged when several) as JSON, CSV or Markdown.
    Render {
        /// Output format.
        #[arg(long, value_enum, default_value = "markdown")]
        format: crate::report::render::Format,
        /// A host with no request for this long gets the action `none`.
        #[arg(long, value_name = "DURATION", default_value = "15m")]
        quiet_period: Dur,
        /// Report files (JSON, as written by --report-file or GET /report).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Write Route53 change batches for the `switch-dns` hosts: DIR/<ZONEID>.json per hosted zone,
    /// for `aws route53 change-resource-record-sets --hosted-zone-id ZONEID --change-batch file://DIR/ZONEID.json`.
    Route53 {
        /// Folder for the batches (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Weight green's record gets (1-255; blue's goes to 0).
        #[arg(long, value_name = "N", default_value = "100", value_parser = clap::value_parser!(u8).range(1..))]
        green_weight: u8,
        /// TTL of CNAME/A records written, seconds.
        #[arg(long, value_name = "SECONDS", default_value = "60")]
        dns_ttl: u32,
        /// A host with no request for this long gets the action `none`.
        #[arg(long, value_name = "DURATION", default_value = "15m")]
        quiet_period: Dur,
        /// Report files (merged when several).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Merge several replicas' report files into one JSON report (counts add up exactly).
    Merge {
        /// Write here (atomically) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// A host with no request for this long gets the action `none`.
        #[arg(long, value_name = "DURATION", default_value = "15m")]
        quiet_period: Dur,
        /// Report files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

/// Flags of `cutover-proxy serve`. Each is also `CUTOVER_<FLAG>` in the environment and `<flag>` in
/// the `--config` file.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TOML file with any of these flags as keys (e.g. `upstream = "http://blue:80"`).
    #[arg(long, env = "CUTOVER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to accept client traffic on; repeat for several.
    #[arg(long, env = "CUTOVER_LISTEN", value_name = "ADDR", value_delimiter = ',', default_value = "0.0.0.0:8080")]
    pub listen: Vec<SocketAddr>,

    /// Blue's load balancer or ingress, where every request goes: http://host:port.
    #[arg(long, env = "CUTOVER_UPSTREAM", value_name = "URL")]
    pub upstream: Option<UpstreamUrl>,

    /// Per-host override HOST=URL (`*.example.com` covers every subdomain); repeatable.
    #[arg(long, env = "CUTOVER_UPSTREAM_FOR", value_name = "HOST=URL", value_delimiter = ',')]
    pub upstream_for: Vec<HostUpstream>,

    /// Speak HTTP/2 with prior knowledge (h2c) to the upstream, for gRPC; trailers pass through.
    #[arg(long, env = "CUTOVER_UPSTREAM_H2")]
    pub upstream_h2: bool,

    /// Address of the admin server (/healthz, /readyz).
    #[arg(long, env = "CUTOVER_ADMIN_LISTEN", value_name = "ADDR", default_value = "127.0.0.1:9901")]
    pub admin_listen: SocketAddr,

    /// Peer networks whose X-Forwarded-For is believed for the client IP (blue's own LB); repeatable.
    #[arg(long, env = "CUTOVER_TRUSTED_PROXIES", value_name = "CIDR", value_delimiter = ',')]
    pub trusted_proxies: Vec<Cidr>,

    /// Time allowed to open a TCP connection to the upstream (exceeded: 504).
    #[arg(long, env = "CUTOVER_CONNECT_TIMEOUT", value_name = "DURATION", default_value = "5s")]
    pub connect_timeout: Dur,

    /// Time a client has to send a complete request header (slowloris guard; exceeded: closed).
    #[arg(long, env = "CUTOVER_HEADER_TIMEOUT", value_name = "DURATION", default_value = "10s")]
    pub header_timeout: Dur,

    /// Idle client keep-alive connections are closed after this; keep it above blue's LB idle timeout.
    #[arg(long, env = "CUTOVER_IDLE_TIMEOUT", value_name = "DURATION", default_value = "75s")]
    pub idle_timeout: Dur,

    /// Longest silence from the upstream while a request is in flight (exceeded: 504).
    #[arg(long, env = "CUTOVER_UPSTREAM_TIMEOUT", value_name = "DURATION", default_value = "60s")]
    pub upstream_timeout: Dur,

    /// Idle pooled upstream connections are closed after this; keep it below blue's keep-alive.
    #[arg(long, env = "CUTOVER_UPSTREAM_IDLE_TIMEOUT", value_name = "DURATION", default_value = "30s")]
    pub upstream_idle_timeout: Dur,

    /// Longest silence both ways on an upgraded (WebSocket) tunnel before it is closed.
    #[arg(long, env = "CUTOVER_TUNNEL_IDLE_TIMEOUT", value_name = "DURATION", default_value = "1h")]
    pub tunnel_idle_timeout: Dur,

    /// After SIGTERM, keep accepting this long (readyz already 503) while endpoints update.
    #[arg(long, env = "CUTOVER_DRAIN_DELAY", value_name = "DURATION", default_value = "5s")]
    pub drain_delay: Dur,

    /// After the drain delay, wait at most this long for in-flight requests and tunnels.
    #[arg(long, env = "CUTOVER_SHUTDOWN_TIMEOUT", value_name = "DURATION", default_value = "30s")]
    pub shutdown_timeout: Dur,

    /// Include the query string in the logged path (off by default: queries carry secrets).
    #[arg(long, env = "CUTOVER_LOG_QUERY")]
    pub log_query: bool,

    /// Worker threads, each with its own listener socket and upstream pool [default: one per core].
    #[arg(long, env = "CUTOVER_WORKERS", value_name = "N")]
    pub workers: Option<usize>,

    /// Idle upstream connections kept per worker and upstream.
    #[arg(long, env = "CUTOVER_UPSTREAM_MAX_IDLE", value_name = "N", default_value = "512")]
    pub upstream_max_idle: usize,

    /// Green's routes: Ingress / HTTPRoute / VirtualService files or folders (JSON or YAML); repeatable.
    #[arg(long, env = "CUTOVER_GREEN_ROUTES", value_name = "PATH", value_delimiter = ',')]
    pub green_routes: Vec<PathBuf>,

    /// Write the JSON report here every --report-interval and at shutdown (atomically).
    #[arg(long, env = "CUTOVER_REPORT_FILE", value_name = "PATH")]
    pub report_file: Option<PathBuf>,

    /// How often the report file is written and a `summary` event logged.
    #[arg(long, env = "CUTOVER_REPORT_INTERVAL", value_name = "DURATION", default_value = "30s")]
    pub report_interval: Dur,

    /// Distinct hosts recorded; more go to the `(other)` bucket (totals stay exact).
    #[arg(long, env = "CUTOVER_MAX_HOSTS", value_name = "N", default_value = "100000")]
    pub max_hosts: usize,

    /// Distinct path templates per host; more go to `{other}`.
    #[arg(long, env = "CUTOVER_MAX_PATHS_PER_HOST", value_name = "N", default_value = "1000")]
    pub max_paths_per_host: usize,

    /// Distinct path templates over all hosts; more go to `{other}` (bounds the ledger's memory).
    #[arg(long, env = "CUTOVER_MAX_PATHS", value_name = "N", default_value = "200000")]
    pub max_paths: usize,

    /// Paths (glob, `*` and `?`) still forwarded but only counted as ignored; repeatable.
    #[arg(long, env = "CUTOVER_IGNORE_PATH", value_name = "GLOB", value_delimiter = ',', default_values = ["/healthz", "/readyz", "/livez"])]
    pub ignore_path: Vec<Glob>,

    /// User agents (glob) still forwarded but only counted as ignored; repeatable.
    #[arg(long, env = "CUTOVER_IGNORE_USER_AGENT", value_name = "GLOB", value_delimiter = ',', default_values = ["ELB-HealthChecker/*", "kube-probe/*"])]
    pub ignore_user_agent: Vec<Glob>,

    /// Extra regex for path segments that are ids (whole segment becomes `{id}`); repeatable.
    #[arg(long, env = "CUTOVER_ID_PATTERN", value_name = "REGEX")]
    pub id_pattern: Vec<IdPattern>,

    /// Which requests get an access line: all, unrouted (green would not serve them), none.
    #[arg(long, env = "CUTOVER_LOG_REQUESTS", value_name = "WHICH", value_enum, default_value = "all")]
    pub log_requests: LogRequests,

    /// A host with no request for this long gets the action `none`.
    #[arg(long, env = "CUTOVER_QUIET_PERIOD", value_name = "DURATION", default_value = "15m")]
    pub quiet_period: Dur,

    /// Forward only, record nothing (for measuring the ledger's cost).
    #[arg(long, env = "CUTOVER_NO_RECORD")]
    pub no_record: bool,

    /// Address to accept HTTPS on (TLS terminated with the certificates of --cert-dir); repeatable.
    #[arg(long, env = "CUTOVER_TLS_LISTEN", value_name = "ADDR", value_delimiter = ',', help_heading = "TLS")]
    pub tls_listen: Vec<SocketAddr>,

    /// Folder of certificates for --tls-listen: NAME.crt (or NAME.pem) + NAME.key, or NAME/tls.crt + NAME/tls.key.
    #[arg(long, env = "CUTOVER_CERT_DIR", value_name = "DIR", help_heading = "TLS")]
    pub cert_dir: Option<PathBuf>,

    /// Certificate (file NAME) served without SNI or for an unknown name [default: the first by name].
    #[arg(long, env = "CUTOVER_DEFAULT_CERT", value_name = "NAME", help_heading = "TLS")]
    pub default_cert: Option<String>,

    /// Time a client has to complete the TLS handshake (passthrough: to send its ClientHello).
    #[arg(
        long,
        env = "CUTOVER_TLS_HANDSHAKE_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s",
        help_heading = "TLS"
    )]
    pub tls_handshake_timeout: Dur,

    /// Address to accept TLS on without terminating it (SNI read, bytes spliced); repeatable.
    #[arg(long, env = "CUTOVER_PASSTHROUGH_LISTEN", value_name = "ADDR", value_delimiter = ',', help_heading = "TLS")]
    pub passthrough_listen: Vec<SocketAddr>,

    /// Where passthrough connections go: blue's TLS endpoint, HOST:PORT.
    #[arg(long, env = "CUTOVER_PASSTHROUGH_UPSTREAM", value_name = "HOST:PORT", help_heading = "TLS")]
    pub passthrough_upstream: Option<HostPort>,

    /// A passthrough connection silent both ways this long is closed.
    #[arg(
        long,
        env = "CUTOVER_PASSTHROUGH_IDLE_TIMEOUT",
        value_name = "DURATION",
        default_value = "1h",
        help_heading = "TLS"
    )]
    pub passthrough_idle_timeout: Dur,

    /// Verify https:// upstreams against the CA certificates in this PEM file instead of the system's.
    #[arg(long, env = "CUTOVER_UPSTREAM_CA", value_name = "FILE", help_heading = "TLS")]
    pub upstream_ca: Option<PathBuf>,

    /// Name sent as SNI to (and verified in the certificate of) an https:// --upstream [default: its host].
    #[arg(long, env = "CUTOVER_UPSTREAM_SNI", value_name = "NAME", help_heading = "TLS")]
    pub upstream_sni: Option<String>,

    /// Do not verify https:// upstreams' certificates (logged loudly at start-up).
    #[arg(long, env = "CUTOVER_UPSTREAM_INSECURE", help_heading = "TLS")]
    pub upstream_insecure: bool,

    /// Blue's load balancer hostname (re-resolved every --target-refresh) or a CIDR; repeatable.
    #[arg(
        long,
        env = "CUTOVER_BLUE_TARGET",
        value_name = "LB|CIDR",
        value_delimiter = ',',
        help_heading = "DNS evidence"
    )]
    pub blue_target: Vec<Target>,

    /// Green's load balancer hostname or a CIDR; repeatable.
    #[arg(
        long,
        env = "CUTOVER_GREEN_TARGET",
        value_name = "LB|CIDR",
        value_delimiter = ',',
        help_heading = "DNS evidence"
    )]
    pub green_target: Vec<Target>,

    /// DNS server for live resolution, ADDR[:PORT]; repeatable [default: the system resolver].
    #[arg(
        long,
        env = "CUTOVER_DNS_SERVER",
        value_name = "ADDR[:PORT]",
        value_delimiter = ',',
        help_heading = "DNS evidence"
    )]
    pub dns_server: Vec<DnsServer>,

    /// Do not resolve hosts live; judge DNS from --route53-records only.
    #[arg(long, env = "CUTOVER_NO_LIVE_DNS", help_heading = "DNS evidence")]
    pub no_live_dns: bool,

    /// Live DNS lookups in flight at most.
    #[arg(long, env = "CUTOVER_DNS_CONCURRENCY", value_name = "N", default_value = "8", help_heading = "DNS evidence")]
    pub dns_concurrency: usize,

    /// Live DNS lookups started per second at most.
    #[arg(long, env = "CUTOVER_DNS_RATE", value_name = "N", default_value = "50", help_heading = "DNS evidence")]
    pub dns_rate: u32,

    /// Resolutions per lookup, to catch weighted answers.
    #[arg(long, env = "CUTOVER_DNS_SAMPLES", value_name = "N", default_value = "3", help_heading = "DNS evidence")]
    pub dns_samples: u32,

    /// Time one DNS query may take.
    #[arg(
        long,
        env = "CUTOVER_DNS_TIMEOUT",
        value_name = "DURATION",
        default_value = "2s",
        help_heading = "DNS evidence"
    )]
    pub dns_timeout: Dur,

    /// How often the targets' load balancer names are resolved again (ELB addresses change).
    #[arg(
        long,
        env = "CUTOVER_TARGET_REFRESH",
        value_name = "DURATION",
        default_value = "30s",
        help_heading = "DNS evidence"
    )]
    pub target_refresh: Dur,

    /// `aws route53 list-resource-record-sets` output, as ZONEID=FILE or a file named Z….json; repeatable.
    #[arg(
        long,
        env = "CUTOVER_ROUTE53_RECORDS",
        value_name = "ZONEID=FILE",
        value_delimiter = ',',
        help_heading = "DNS evidence"
    )]
    pub route53_records: Vec<String>,

    /// Added to the largest TTL to make the window after a move in which traffic is still expected.
    #[arg(
        long,
        env = "CUTOVER_TTL_GRACE",
        value_name = "DURATION",
        default_value = "30s",
        help_heading = "DNS evidence"
    )]
    pub ttl_grace: Dur,

    /// For hosts whose DNS points at green, close client connections after each response
    /// (`Connection: close`, HTTP/2 GOAWAY) so clients re-resolve; no request is dropped.
    #[arg(long, env = "CUTOVER_CLOSE_STALE_CONNECTIONS", help_heading = "DNS evidence")]
    pub close_stale_connections: bool,

    /// Weight green's record gets in the exported Route53 changes (1-255; blue's goes to 0).
    #[arg(
        long,
        env = "CUTOVER_GREEN_WEIGHT",
        value_name = "N",
        default_value = "100",
        value_parser = clap::value_parser!(u8).range(1..),
        help_heading = "DNS evidence"
    )]
    pub green_weight: u8,

    /// TTL of CNAME/A records in the exported Route53 changes, seconds.
    #[arg(long, env = "CUTOVER_DNS_TTL", value_name = "SECONDS", default_value = "60", help_heading = "DNS evidence")]
    pub dns_ttl: u32,
}

/// A `--dns-server`: `ADDR` (port 53) or `ADDR:PORT` (`[v6]:PORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsServer(pub SocketAddr);

impl FromStr for DnsServer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(DnsServer(addr));
        }
        s.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .map(|ip| DnsServer(SocketAddr::new(ip, 53)))
            .map_err(|_| format!("`{s}` is not ADDR or ADDR:PORT (e.g. 10.0.0.2, 127.0.0.1:5353, [::1]:53)"))
    }
}

impl<'de> Deserialize<'de> for DnsServer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The DNS side of `serve`.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Blue and green targets.
    pub targets: Targets,
    /// Resolve hosts live.
    pub live: bool,
    /// Resolver task settings.
    pub settings: DnsSettings,
    /// Route53 exports: (zone id, file).
    pub route53: Vec<(String, PathBuf)>,
    /// Added to the largest TTL for the window after a move.
    pub ttl_grace: Duration,
    /// How exported changes are written.
    pub export: ExportSettings,
}

/// A `HOST:PORT` (the port is required), e.g. `--passthrough-upstream blue-nlb.internal:443`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort(pub UpstreamUrl);

impl FromStr for HostPort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.contains("://") {
            return Err(format!("`{s}`: give HOST:PORT, without a scheme"));
        }
        let has_port = s.rsplit_once(':').is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !has_port || s.ends_with(']') {
            return Err(format!("`{s}` is not HOST:PORT (the port is required)"));
        }
        format!("http://{s}").parse::<UpstreamUrl>().map(HostPort).map_err(|_| format!("`{s}` is not HOST:PORT"))
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// An `--id-pattern` regex, checked at start-up.
#[derive(Debug, Clone)]
pub struct IdPattern(pub regex::Regex);

impl FromStr for IdPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        regex::Regex::new(s).map(IdPattern).map_err(|e| format!("invalid regex `{s}`: {e}"))
    }
}

impl<'de> Deserialize<'de> for IdPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A `--upstream-for HOST=URL` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUpstream {
    /// Lowercased host or `*.suffix` pattern.
    pub host: String,
    /// Where requests for that host go.
    pub url: UpstreamUrl,
}

impl FromStr for HostUpstream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (host, url) = s.split_once('=').ok_or_else(|| format!("expected HOST=URL, got `{s}`"))?;
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() || host.contains('/') || host[host.starts_with("*.") as usize * 2..].contains('*') {
            return Err(format!("`{host}` is not a host name or `*.domain` pattern"));
        }
        Ok(Self { host, url: url.trim().parse()? })
    }
}

impl<'de> Deserialize<'de> for HostUpstream {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A network for `--trusted-proxies`: `10.0.0.0/8`, or a bare address meaning just that host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub ipnet::IpNet);

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        s.parse::<std::net::IpAddr>()
            .map(|ip| Cidr(ipnet::IpNet::from(ip)))
            .map_err(|_| format!("`{s}` is not a CIDR (e.g. 10.0.0.0/8) or an IP address"))
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A duration written as `250ms`, `5s`, `2m`, `1h` or a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a duration (use e.g. 500ms, 5s, 2m, 1h)"))?;
        let secs = match unit.trim() {
            "" | "s" => n,
            "ms" => n / 1000.0,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            other => return Err(format!("unknown duration unit `{other}` in `{s}` (use ms, s, m or h)")),
        };
        if !secs.is_finite() || secs > 1e9 {
            return Err(format!("duration `{s}` is too large"));
        }
        Ok(Dur(Duration::from_secs_f64(secs)))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) if n <= 1_000_000_000 => Ok(Dur(Duration::from_secs(n))),
            Raw::Secs(n) => Err(serde::de::Error::custom(format!("duration {n}s is too large"))),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// The `--config` file: the same keys as the flags (kebab-case or snake_case), all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    listen: Option<Vec<SocketAddr>>,
    upstream: Option<UpstreamUrl>,
    upstream_for: Option<Vec<HostUpstream>>,
    upstream_h2: Option<bool>,
    admin_listen: Option<SocketAddr>,
    trusted_proxies: Option<Vec<Cidr>>,
    connect_timeout: Option<Dur>,
    header_timeout: Option<Dur>,
    idle_timeout: Option<Dur>,
    upstream_timeout: Option<Dur>,
    upstream_idle_timeout: Option<Dur>,
    tunnel_idle_timeout: Option<Dur>,
    drain_delay: Option<Dur>,
    shutdown_timeout: Option<Dur>,
    log_query: Option<bool>,
    workers: Option<usize>,
    upstream_max_idle: Option<usize>,
    green_routes: Option<Vec<PathBuf>>,
    report_file: Option<PathBuf>,
    report_interval: Option<Dur>,
    max_hosts: Option<usize>,
    max_paths_per_host: Option<usize>,
    max_paths: Option<usize>,
    ignore_path: Option<Vec<Glob>>,
    ignore_user_agent: Option<Vec<Glob>>,
    id_pattern: Option<Vec<IdPattern>>,
    log_requests: Option<LogRequests>,
    quiet_period: Option<Dur>,
    no_record: Option<bool>,
    blue_target: Option<Vec<Target>>,
    green_target: Option<Vec<Target>>,
    dns_server: Option<Vec<DnsServer>>,
    no_live_dns: Option<bool>,
    dns_concurrency: Option<usize>,
    dns_rate: Option<u32>,
    dns_samples: Option<u32>,
    dns_timeout: Option<Dur>,
    target_refresh: Option<Dur>,
    route53_records: Option<Vec<String>>,
    ttl_grace: Option<Dur>,
    close_stale_connections: Option<bool>,
    green_weight: Option<u8>,
    dns_ttl: Option<u32>,
    tls_listen: Option<Vec<SocketAddr>>,
    cert_dir: Option<PathBuf>,
    default_cert: Option<String>,
    tls_handshake_timeout: Option<Dur>,
    passthrough_listen: Option<Vec<SocketAddr>>,
    passthrough_upstream: Option<HostPort>,
    passthrough_idle_timeout: Option<Dur>,
    upstream_ca: Option<PathBuf>,
    upstream_sni: Option<String>,
    upstream_insecure: Option<bool>,
}

/// Everything `serve` needs, after merging flags, environment and file.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Client listeners.
    pub listen: Vec<SocketAddr>,
    /// Default upstream (blue).
    pub upstream: UpstreamUrl,
    /// Per-host upstream overrides.
    pub upstream_for: Vec<HostUpstream>,
    /// h2c toward the upstreams.
    pub upstream_h2: bool,
    /// Admin server address.
    pub admin_listen: SocketAddr,
    /// Networks whose X-Forwarded-For is believed.
    pub trusted_proxies: TrustedProxies,
    /// Upstream TCP connect timeout.
    pub connect_timeout: Duration,
    /// Client header read timeout.
    pub header_timeout: Duration,
    /// Client idle keep-alive timeout.
    pub idle_timeout: Duration,
    /// Upstream silence timeout while a request is in flight.
    pub upstream_timeout: Duration,
    /// Idle pooled upstream connection lifetime.
    pub upstream_idle_timeout: Duration,
    /// Idle timeout of upgraded tunnels.
    pub tunnel_idle_timeout: Duration,
    /// Accepting goes on this long after SIGTERM.
    pub drain_delay: Duration,
    /// Bound on waiting for in-flight work at shutdown.
    pub shutdown_timeout: Duration,
    /// Log the query string too.
    pub log_query: bool,
    /// Number of worker threads.
    pub workers: usize,
    /// Idle upstream connections kept per worker and upstream.
    pub upstream_max_idle: usize,
    /// Green's route files and folders.
    pub green_routes: Vec<PathBuf>,
    /// Where the report file goes.
    pub report_file: Option<PathBuf>,
    /// Report file and summary interval.
    pub report_interval: Duration,
    /// Ledger bounds and filters.
    pub ledger: LedgerSettings,
    /// Which requests get an access line.
    pub log_requests: LogRequests,
    /// Silence after which a host's action is `none`.
    pub quiet_period: Duration,
    /// Record nothing.
    pub no_record: bool,
    /// DNS and Route53 evidence.
    pub dns: DnsConfig,
    /// Close connections of hosts whose DNS moved to green after each response.
    pub close_stale_connections: bool,
    /// HTTPS listeners.
    pub tls_listen: Vec<SocketAddr>,
    /// Certificates for the HTTPS listeners.
    pub cert_dir: Option<PathBuf>,
    /// The certificate served without a matching SNI.
    pub default_cert: Option<String>,
    /// TLS handshake (and passthrough ClientHello) timeout.
    pub tls_handshake_timeout: Duration,
    /// Passthrough listeners.
    pub passthrough_listen: Vec<SocketAddr>,
    /// Where passthrough connections go.
    pub passthrough_upstream: Option<UpstreamUrl>,
    /// Idle timeout of passthrough connections.
    pub passthrough_idle_timeout: Duration,
    /// CA file for https:// upstreams.
    pub upstream_ca: Option<PathBuf>,
    /// SNI toward an https:// --upstream.
    pub upstream_sni: Option<String>,
    /// Skip verifying https:// upstreams.
    pub upstream_insecure: bool,
}

impl ServeConfig {
    /// Merges parsed flags (with `matches` telling which came from the command line or environment)
    /// with the config file, if one was named.
    pub fn resolve(args: ServeArgs, matches: &ArgMatches) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let explicit = |id: &str| {
            matches!(matches.value_source(id), Some(ValueSource::CommandLine) | Some(ValueSource::EnvVariable))
        };
        macro_rules! pick {
            ($field:ident) => {
                match file.$field {
                    Some(v) if !explicit(stringify!($field)) => v,
                    _ => args.$field,
                }
            };
        }
        macro_rules! pick_opt {
            ($field:ident) => {
                if explicit(stringify!($field)) {
                    args.$field
                } else {
                    file.$field.or(args.$field)
                }
            };
        }
        let upstream = pick_opt!(upstream).ok_or(ConfigError::MissingUpstream)?;
        let workers =
            pick_opt!(workers).unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        if workers == 0 || workers > 1024 {
            return Err(ConfigError::Invalid {
                what: "--workers",
                why: format!("{workers} is not between 1 and 1024"),
            });
        }
        for (what, d) in [
            ("--connect-timeout", pick!(connect_timeout)),
            ("--header-timeout", pick!(header_timeout)),
            ("--idle-timeout", pick!(idle_timeout)),
            ("--upstream-timeout", pick!(upstream_timeout)),
            ("--upstream-idle-timeout", pick!(upstream_idle_timeout)),
            ("--tunnel-idle-timeout", pick!(tunnel_idle_timeout)),
            ("--shutdown-timeout", pick!(shutdown_timeout)),
            ("--tls-handshake-timeout", pick!(tls_handshake_timeout)),
            ("--passthrough-idle-timeout", pick!(passthrough_idle_timeout)),
        ] {
            if d.0 < Duration::from_millis(10) {
                return Err(ConfigError::Invalid { what, why: format!("{:?} is too short (at least 10ms)", d.0) });
            }
        }
        let report_interval = pick!(report_interval);
        if report_interval.0 < Duration::from_millis(100) {
            return Err(ConfigError::Invalid { what: "--report-interval", why: "must be at least 100ms".into() });
        }
        let listen = pick!(listen);
        if listen.is_empty() {
            return Err(ConfigError::Invalid { what: "--listen", why: "at least one address is needed".into() });
        }
        let upstream_for = pick!(upstream_for);
        let mut seen = HashSet::new();
        for hu in upstream_for.iter() {
            if !seen.insert(hu.host.clone()) {
                return Err(ConfigError::Invalid {
                    what: "--upstream-for",
                    why: format!("host `{}` is given twice", hu.host),
                });
            }
        }
        let dns = dns_config(
            pick!(blue_target),
            pick!(green_target),
            pick!(dns_server),
            pick!(no_live_dns),
            DnsSettings {
                servers: Vec::new(),
                timeout: pick!(dns_timeout).0,
                samples: pick!(dns_samples),
                concurrency: pick!(dns_concurrency),
                rate: pick!(dns_rate),
                target_refresh: pick!(target_refresh).0,
                min_interval: Duration::from_secs(1),
                max_interval: Duration::from_secs(300),
            },
            pick!(route53_records),
            pick!(ttl_grace).0,
            ExportSettings { green_weight: pick!(green_weight), dns_ttl: pick!(dns_ttl) },
        )?;
        let tls_listen = pick!(tls_listen);
        let cert_dir = pick_opt!(cert_dir);
        let default_cert = pick_opt!(default_cert);
        let invalid = |what: &'static str, why: &str| Err(ConfigError::Invalid { what, why: why.into() });
        match (tls_listen.is_empty(), &cert_dir) {
            (false, None) => return invalid("--tls-listen", "needs --cert-dir (the certificates to serve)"),
            (true, Some(_)) => return invalid("--cert-dir", "is only used with --tls-listen"),
            _ => {}
        }
        if default_cert.is_some() && cert_dir.is_none() {
            return invalid("--default-cert", "is only used with --tls-listen and --cert-dir");
        }
        let passthrough_listen = pick!(passthrough_listen);
        let passthrough_upstream = pick_opt!(passthrough_upstream).map(|h| h.0);
        match (passthrough_listen.is_empty(), &passthrough_upstream) {
            (false, None) => return invalid("--passthrough-listen", "needs --passthrough-upstream HOST:PORT"),
            (true, Some(_)) => return invalid("--passthrough-upstream", "is only used with --passthrough-listen"),
            _ => {}
        }
        let (upstream_ca, upstream_sni, upstream_insecure) =
            (pick_opt!(upstream_ca), pick_opt!(upstream_sni), pick!(upstream_insecure));
        let any_https = upstream.tls || upstream_for.iter().any(|o| o.url.tls);
        if !any_https {
            for (set, what) in [
                (upstream_ca.is_some(), "--upstream-ca"),
                (upstream_sni.is_some(), "--upstream-sni"),
                (upstream_insecure, "--upstream-insecure"),
            ] {
                if set {
                    return invalid(what, "is only used with an https:// upstream");
                }
            }
        }
        if upstream_sni.is_some() && !upstream.tls {
            return invalid("--upstream-sni", "is only used with an https:// --upstream");
        }
        if upstream_insecure && upstream_ca.is_some() {
            return invalid("--upstream-insecure", "contradicts --upstream-ca (verify, or do not)");
        }
        Ok(Self {
            dns,
            close_stale_connections: pick!(close_stale_connections),
            tls_listen,
            cert_dir,
            default_cert,
            tls_handshake_timeout: pick!(tls_handshake_timeout).0,
            passthrough_listen,
            passthrough_upstream,
            passthrough_idle_timeout: pick!(passthrough_idle_timeout).0,
            upstream_ca,
            upstream_sni,
            upstream_insecure,
            listen,
            upstream,
            upstream_for,
            upstream_h2: pick!(upstream_h2),
            admin_listen: pick!(admin_listen),
            trusted_proxies: TrustedProxies::new(pick!(trusted_proxies).into_iter().map(|c| c.0).collect()),
            connect_timeout: pick!(connect_timeout).0,
            header_timeout: pick!(header_timeout).0,
            idle_timeout: pick!(idle_timeout).0,
            upstream_timeout: pick!(upstream_timeout).0,
            upstream_idle_timeout: pick!(upstream_idle_timeout).0,
            tunnel_idle_timeout: pick!(tunnel_idle_timeout).0,
            drain_delay: pick!(drain_delay).0,
            shutdown_timeout: pick!(shutdown_timeout).0,
            log_query: pick!(log_query),
            workers,
            upstream_max_idle: pick!(upstream_max_idle),
            green_routes: pick!(green_routes),
            report_file: pick_opt!(report_file),
            report_interval: report_interval.0,
            ledger: LedgerSettings {
                max_hosts: pick!(max_hosts),
                max_paths_per_host: pick!(max_paths_per_host),
                max_paths: pick!(max_paths),
                ignore_paths: pick!(ignore_path),
                ignore_user_agents: pick!(ignore_user_agent),
                templater: Templater::new(pick!(id_pattern).into_iter().map(|p| p.0).collect()),
            },
            log_requests: pick!(log_requests),
            quiet_period: pick!(quiet_period).0,
            no_record: pick!(no_record),
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn dns_config(
    blue: Vec<Target>,
    green: Vec<Target>,
    servers: Vec<DnsServer>,
    no_live: bool,
    mut settings: DnsSettings,
    route53: Vec<String>,
    ttl_grace: Duration,
    export: ExportSettings,
) -> Result<DnsConfig, ConfigError> {
    let invalid = |what, why: String| ConfigError::Invalid { what, why };
    if settings.samples == 0 || settings.samples > 20 {
        return Err(invalid("--dns-samples", format!("{} is not between 1 and 20", settings.samples)));
    }
    if settings.concurrency == 0 || settings.concurrency > 1024 {
        return Err(invalid("--dns-concurrency", format!("{} is not between 1 and 1024", settings.concurrency)));
    }
    if export.green_weight == 0 {
        return Err(invalid(
            "--green-weight",
            "0 would leave every set at weight 0, which Route53 splits equally".into(),
        ));
    }
    if settings.rate == 0 {
        return Err(invalid("--dns-rate", "must be at least 1 lookup per second".into()));
    }
    if settings.timeout < Duration::from_millis(10) {
        return Err(invalid("--dns-timeout", "is too short (at least 10ms)".into()));
    }
    if settings.target_refresh < Duration::from_secs(1) {
        return Err(invalid("--target-refresh", "must be at least 1s".into()));
    }
    for t in &blue {
        if green.contains(t) {
            return Err(invalid("--green-target", format!("`{t}` is also a --blue-target")));
        }
    }
    let mut zones = Vec::new();
    for arg in route53 {
        let (zone, file) = crate::dns::route53::split_arg(&arg).map_err(|why| invalid("--route53-records", why))?;
        zones.push((zone, PathBuf::from(file)));
    }
    settings.servers = servers.into_iter().map(|s| s.0).collect();
    let targets = Targets { blue, green };
    let live = !no_live && (!targets.is_empty() || !settings.servers.is_empty());
    Ok(DnsConfig { targets, live, settings, route53: zones, ttl_grace, export })
}

/// Reads and parses the TOML config file; errors name the file, the line and the reason.
fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        line: None,
        why: e.to_string(),
    })?;
    parse_file(path, &text)
}

fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let at = |err: toml::de::Error| ConfigError::File {
        path: path.to_owned(),
        line: err.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
        why: err.message().replace('\n', " "),
    };
    let table: toml::Table = toml::from_str(text).map_err(at)?;
    // Accept snake_case keys too: rewrite them to the flags' kebab-case.
    let table: toml::Table = table.into_iter().map(|(k, v)| (k.replace('_', "-"), v)).collect();
    let rendered = toml::to_string(&table).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        line: None,
        why: e.to_string(),
    })?;
    match toml::from_str::<FileConfig>(&rendered) {
        Ok(cfg) => Ok(cfg),
        Err(err) => {
            // Point at the key in the original text, not in the rewritten one.
            let key = err
                .span()
                .and_then(|s| rendered.get(..s.start))
                .and_then(|before| before.lines().last())
                .and_then(|l| l.split('=').next())
                .map(|k| k.trim().to_owned())
                .or_else(|| err.message().split('`').nth(1).map(str::to_owned));
            let line = key.as_ref().and_then(|k| {
                text.lines().position(|l| {
                    let lk = l.split('=').next().unwrap_or("").trim().replace('_', "-");
                    !k.is_empty() && lk == *k
                })
            });
            Err(ConfigError::File {
                path: path.to_owned(),
                line: line.map(|l| l + 1),
                why: err.message().replace('\n', " "),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!("5s".parse::<Dur>().unwrap().0, Duration::from_secs(5));
        assert_eq!("250ms".parse::<Dur>().unwrap().0, Duration::from_millis(250));
        assert_eq!("2m".parse::<Dur>().unwrap().0, Duration::from_secs(120));
        assert_eq!("1h".parse::<Dur>().unwrap().0, Duration::from_secs(3600));
        assert_eq!("7".parse::<Dur>().unwrap().0, Duration::from_secs(7));
        assert!("5x".parse::<Dur>().is_err());
        assert!("".parse::<Dur>().is_err());
    }

    #[test]
    fn host_upstream() {
        let hu: HostUpstream = "*.Example.com=http://10.0.0.1:8080".parse().unwrap();
        assert_eq!(hu.host, "*.example.com");
        assert!("nohost".parse::<HostUpstream>().is_err());
        assert!("a*b.com=http://x:1".parse::<HostUpstream>().is_err());
    }

    #[test]
    fn tls_keys_in_the_file() {
        let text = "upstream = \"https://blue:443\"\ntls_listen = [\"127.0.0.1:8443\"]\ncert-dir = \"/etc/certs\"\n\
                    default_cert = \"shop\"\ntls-handshake-timeout = \"3s\"\npassthrough_listen = [\"127.0.0.1:9443\"]\n\
                    passthrough-upstream = \"blue-nlb:443\"\nupstream_ca = \"/etc/ca.pem\"\nupstream-sni = \"blue.internal\"\n";
        let f = parse_file(Path::new("t.toml"), text).unwrap();
        assert_eq!(f.tls_listen, Some(vec!["127.0.0.1:8443".parse().unwrap()]));
        assert_eq!(f.cert_dir.as_deref(), Some(Path::new("/etc/certs")));
        assert_eq!(f.tls_handshake_timeout, Some(Dur(Duration::from_secs(3))));
        assert_eq!(f.passthrough_upstream.map(|h| h.0.port), Some(443));
        assert_eq!(f.upstream_sni.as_deref(), Some("blue.internal"));
        let err = parse_file(Path::new("t.toml"), "passthrough_upstream = \"blue\"\n").unwrap_err();
        assert!(err.to_string().contains("line 1") && err.to_string().contains("HOST:PORT"), "{err}");
    }

    #[test]
    fn host_port() {
        let hp: HostPort = "blue-nlb.internal:443".parse().unwrap();
        assert_eq!((hp.0.host.as_str(), hp.0.port), ("blue-nlb.internal", 443));
        assert_eq!("[::1]:8443".parse::<HostPort>().unwrap().0.port, 8443);
        for bad in ["blue", "blue:", "https://blue:443", "[::1]", "blue:x"] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad}");
        }
    }

    fn resolve_with(toml: &str, flags: &[&str]) -> Result<ServeConfig, ConfigError> {
        let path = std::env::temp_dir().join(format!("cutover-config-{}-{}.toml", std::process::id(), flags.len()));
        std::fs::write(&path, toml).unwrap();
        let mut argv = vec!["cutover-proxy", "serve", "--config", path.to_str().unwrap()];
        argv.extend_from_slice(flags);
        let matches = <Cli as clap::CommandFactory>::command().try_get_matches_from(argv).unwrap();
        let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap();
        let (Command::Serve(args), Some(sub)) = (cli.command, matches.subcommand_matches("serve")) else {
            panic!("not serve")
        };
        let out = ServeConfig::resolve(*args, sub);
        let _ = std::fs::remove_file(&path);
        out
    }

    #[test]
    fn dns_and_tls_keys_in_the_config_file_and_flags_over_them() {
        let toml = r#"
upstream = "http://blue:80"
blue_target = ["k8s-blue-1.eu-west-1.elb.amazonaws.com", "10.1.0.0/16"]
green-target = ["k8s-green-2.eu-west-1.elb.amazonaws.com"]
dns-server = ["127.0.0.1:5353"]
route53_records = ["Z123=zone.json"]
close-stale-connections = true
green_weight = 50
ttl-grace = "10s"
dns_samples = 5
tls-handshake-timeout = "3s"
"#;
        let cfg = resolve_with(toml, &["--green-weight", "70"]).unwrap();
        assert_eq!(cfg.dns.targets.blue.len(), 2);
        assert_eq!(cfg.dns.settings.servers, vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]);
        assert_eq!(cfg.dns.route53, vec![("Z123".to_owned(), PathBuf::from("zone.json"))]);
        assert!(cfg.dns.live && cfg.close_stale_connections);
        assert_eq!(cfg.dns.export.green_weight, 70, "the flag wins over the file");
        assert_eq!((cfg.dns.ttl_grace, cfg.dns.settings.samples), (Duration::from_secs(10), 5));
        assert_eq!(cfg.tls_handshake_timeout, Duration::from_secs(3));

        let err = resolve_with("upstream = \"http://blue:80\"\n\ngreen_target = [\"not a name\"]\n", &[]).unwrap_err();
        assert!(err.to_string().contains("line 3") && err.to_string().contains("not a name"), "{err}");
        let err = resolve_with("upstream = \"http://blue:80\"\ngreen_weight = 0\n", &[]).unwrap_err();
        assert!(err.to_string().contains("--green-weight"), "{err}");
        let err = resolve_with(
            "upstream = \"http://blue:80\"\nblue_target = [\"10.0.0.0/8\"]\ngreen_target = [\"10.0.0.0/8\"]\n",
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("also a --blue-target"), "{err}");
    }

    #[test]
    fn file_errors_name_the_line() {
        let p = Path::new("x.toml");
        let err = parse_file(p, "upstream = \"http://a:1\"\nlisten = [\"nope\"]\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("x.toml") && msg.contains("line 2"), "{msg}");
        let err = parse_file(p, "upstream = \"http://a:1\"\nbogus_key = 1\n").unwrap_err();
        assert!(err.to_string().contains("line 2") && err.to_string().contains("bogus"), "{err}");
        let err = parse_file(p, "upstream = [\n").unwrap_err();
        assert!(err.to_string().contains("x.toml"), "{err}");
        let ok = parse_file(p, "upstream = \"http://a:1\"\nidle_timeout = \"3s\"\nconnect-timeout = 2\n").unwrap();
        assert_eq!(ok.idle_timeout, Some(Dur(Duration::from_secs(3))));
        assert_eq!(ok.connect_timeout, Some(Dur(Duration::from_secs(2))));
    }
}
