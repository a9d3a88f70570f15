//! `cutover-proxy serve`'s flags. Each is also `CUTOVER_<FLAG>` in the environment and `<flag>`
//! in the `--config` file ([`super::config_file`]); defaults come from [`ServeSettings::new`].

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::args::{named, ExportArgs, FleetArgs, LedgerArgs, ProbeArgs, QuietArgs, RoutesArgs, TargetArgs};
use crate::base::error::ConfigError;
use crate::base::values::{Cidr, DnsServer, Dur, HostPort, HostUpstream, UpstreamUrl};
use crate::dns::settings::{DnsEvidenceSettings, ResolverSettings};
use crate::listen::ClientTimeouts;
use crate::proxy::rewrite::TrustedProxies;
use crate::proxy::{Http1Server, LogRequests, ProxySettings, UpstreamProtocol};
use crate::reload::routes::RouteSettings;
use crate::report::file::ReportFile;
use crate::serve::ServeSettings;

/// The defaults every flag shows in `--help`.
fn defaults() -> ServeSettings {
    ServeSettings::new(UpstreamUrl { host: "blue".into(), port: 80, tls: false })
}

/// Flags of `cutover-proxy serve`.
#[derive(Debug, Clone, Args)]
pub(super) struct ServeArgs {
    /// TOML file with any of these flags as keys (e.g. `upstream = "http://blue:80"`).
    #[arg(long, env = "CUTOVER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to accept client traffic on; repeat for several.
    #[arg(long, env = "CUTOVER_LISTEN", value_name = "ADDR", value_delimiter = ',', default_values_t = defaults().listen)]
    pub listen: Vec<SocketAddr>,

    /// Blue's load balancer or ingress, where every request goes: http://host:port.
    #[arg(long, env = "CUTOVER_UPSTREAM", value_name = "URL")]
    pub upstream: Option<UpstreamUrl>,

    /// Per-host override HOST=URL (`*.example.com` covers every subdomain); repeatable.
    #[arg(long, env = "CUTOVER_UPSTREAM_FOR", value_name = "HOST=URL", value_delimiter = ',')]
    pub upstream_for: Vec<HostUpstream>,

    /// Which HTTP blue is spoken to in: `auto` (HTTP/2 clients and gRPC over h2c, HTTP/1.x over HTTP/1.1), `http1`, `h2`.
    #[arg(long, env = "CUTOVER_UPSTREAM_PROTOCOL", value_parser = named::<UpstreamProtocol>(), default_value_t = UpstreamProtocol::Http1)]
    pub upstream_protocol: UpstreamProtocol,

    /// Which server reads HTTP/1.x (plain and HTTPS listeners): `own` (the proxy's own: requests go on byte for byte, bodies over 64 KiB, upgrades and the like to hyper's) or `hyper` (every request through hyper's).
    #[arg(long, env = "CUTOVER_HTTP1_SERVER", value_parser = named::<Http1Server>(), default_value_t = defaults().proxy.http1_server)]
    pub http1_server: Http1Server,

    /// Same as --upstream-protocol h2: HTTP/2 with prior knowledge (h2c) for every request.
    #[arg(long, env = "CUTOVER_UPSTREAM_H2")]
    pub upstream_h2: bool,

    /// Address of the admin server (/healthz, /readyz).
    #[arg(long, env = "CUTOVER_ADMIN_LISTEN", value_name = "ADDR", default_value_t = defaults().admin_listen)]
    pub admin_listen: SocketAddr,

    /// Peer networks whose X-Forwarded-For is believed for the client IP (blue's own LB); repeatable.
    #[arg(long, env = "CUTOVER_TRUSTED_PROXIES", value_name = "CIDR", value_delimiter = ',')]
    pub trusted_proxies: Vec<Cidr>,

    /// Time allowed to open a TCP connection to the upstream (exceeded: 504).
    #[arg(long, env = "CUTOVER_CONNECT_TIMEOUT", value_name = "DURATION", default_value_t = Dur(defaults().connect_timeout))]
    pub connect_timeout: Dur,

    /// Time a client has to send a complete request header (slowloris guard; exceeded: closed).
    #[arg(long, env = "CUTOVER_HEADER_TIMEOUT", value_name = "DURATION", default_value_t = Dur(defaults().client.header))]
    pub header_timeout: Dur,

    /// Idle client keep-alive connections are closed after this; keep it above blue's LB idle timeout.
    #[arg(long, env = "CUTOVER_IDLE_TIMEOUT", value_name = "DURATION", default_value_t = Dur(defaults().client.idle))]
    pub idle_timeout: Dur,

    /// Longest silence from the upstream while a request is in flight (exceeded: 504).
    #[arg(long, env = "CUTOVER_UPSTREAM_TIMEOUT", value_name = "DURATION", default_value_t = Dur(defaults().proxy.upstream_timeout))]
    pub upstream_timeout: Dur,

    /// Idle pooled upstream connections are closed after this; keep it below blue's keep-alive.
    #[arg(long, env = "CUTOVER_UPSTREAM_IDLE_TIMEOUT", value_name = "DURATION", default_value_t = Dur(defaults().upstream_idle_timeout))]
    pub upstream_idle_timeout: Dur,

    /// Longest silence both ways on an upgraded (WebSocket) tunnel before it is closed.
    #[arg(long, env = "CUTOVER_TUNNEL_IDLE_TIMEOUT", value_name = "DURATION", default_value_t = Dur(defaults().proxy.tunnel_idle_timeout))]
    pub tunnel_idle_timeout: Dur,

    /// A request body silent this long (or slower than --client-body-min-rate over it) is answered 408.
    #[arg(long, env = "CUTOVER_CLIENT_BODY_TIMEOUT", value_name = "DURATION", default_value_t = Dur(defaults().proxy.client_body_timeout))]
    pub client_body_timeout: Dur,

    /// Bytes per second a request body must average over each --client-body-timeout (0: any byte resets it, as nginx).
    #[arg(long, env = "CUTOVER_CLIENT_BODY_MIN_RATE", value_name = "BYTES", default_value_t = defaults().proxy.client_body_min_rate)]
    pub client_body_min_rate: u64,

    /// Upgrade protocol passed to blue besides websocket (e.g. `connect-udp`); repeatable. Others, `h2c` among them, are dropped as hop-by-hop.
    #[arg(long, env = "CUTOVER_ALLOW_UPGRADE", value_name = "PROTO", value_delimiter = ',')]
    pub allow_upgrade: Vec<String>,

    /// After SIGTERM, keep accepting this long (readyz already 503) while endpoints update.
    #[arg(long, env = "CUTOVER_DRAIN_DELAY", value_name = "DURATION", default_value_t = Dur(defaults().drain_delay))]
    pub drain_delay: Dur,

    /// After the drain delay, wait at most this long for in-flight requests and tunnels.
    #[arg(long, env = "CUTOVER_SHUTDOWN_TIMEOUT", value_name = "DURATION", default_value_t = Dur(defaults().shutdown_timeout))]
    pub shutdown_timeout: Dur,

    /// Include the query string in the logged path (off by default: queries carry secrets).
    #[arg(long, env = "CUTOVER_LOG_QUERY")]
    pub log_query: bool,

    /// Worker threads, each with its own listener socket and upstream pool [default: one per core].
    #[arg(long, env = "CUTOVER_WORKERS", value_name = "N")]
    pub workers: Option<usize>,

    /// Idle upstream connections kept per worker and upstream.
    #[arg(long, env = "CUTOVER_UPSTREAM_MAX_IDLE", value_name = "N", default_value_t = defaults().upstream_max_idle)]
    pub upstream_max_idle: usize,

    #[command(flatten)]
    pub routes: RoutesArgs,

    /// A command whose output (JSON or YAML manifests, a `kind: List`) is green's routes too, run
    /// with `sh -c` at start and every --green-routes-refresh; repeatable.
    #[arg(long, env = "CUTOVER_GREEN_ROUTES_CMD", value_name = "CMD")]
    pub green_routes_cmd: Vec<String>,

    /// How often each --green-routes-cmd runs again.
    #[arg(long, env = "CUTOVER_GREEN_ROUTES_REFRESH", value_name = "DURATION", default_value_t = Dur(defaults().green.refresh))]
    pub green_routes_refresh: Dur,

    /// Longest a --green-routes-cmd may run before it is killed (its last good output is kept).
    #[arg(long, env = "CUTOVER_GREEN_ROUTES_CMD_TIMEOUT", value_name = "DURATION", default_value_t = Dur(defaults().green.command_timeout))]
    pub green_routes_cmd_timeout: Dur,

    /// Write the JSON report here every --report-interval and at shutdown (atomically), and read
    /// it back at start: a file, or s3://BUCKET/PREFIX/ (PREFIX/<replica-id>.json).
    #[arg(long, env = "CUTOVER_REPORT_FILE", value_name = "PATH|s3://BUCKET/PREFIX/")]
    pub report_file: Option<ReportFile>,

    /// How often the report file is written and a `summary` event logged.
    #[arg(long, env = "CUTOVER_REPORT_INTERVAL", value_name = "DURATION", default_value_t = Dur(defaults().report_interval))]
    pub report_interval: Dur,

    #[command(flatten)]
    pub ledger: LedgerArgs,

    /// Which requests get an access line: all, unrouted (green would not serve them), none.
    #[arg(long, env = "CUTOVER_LOG_REQUESTS", value_name = "WHICH", value_parser = named::<LogRequests>(), default_value_t = defaults().proxy.log_requests)]
    pub log_requests: LogRequests,

    #[command(flatten)]
    pub quiet: QuietArgs,

    #[command(flatten)]
    pub probe: ProbeArgs,

    #[command(flatten)]
    pub fleet: FleetArgs,

    /// This replica's name in its reports [default: $POD_NAME, else $HOSTNAME, else the host name].
    #[arg(long, env = "CUTOVER_REPLICA_ID", value_name = "NAME")]
    pub replica_id: Option<String>,

    /// Forward only, record nothing (for measuring the ledger's cost).
    #[arg(long, env = "CUTOVER_NO_RECORD")]
    pub no_record: bool,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub targets: TargetArgs,

    #[command(flatten)]
    pub dns: DnsArgs,

    #[command(flatten)]
    pub export: ExportArgs,
}

/// TLS listeners and TLS toward blue.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "TLS")]
pub(super) struct TlsArgs {
    /// Address to accept HTTPS on (TLS terminated with the certificates of --cert-dir); repeatable.
    #[arg(long, env = "CUTOVER_TLS_LISTEN", value_name = "ADDR", value_delimiter = ',')]
    pub tls_listen: Vec<SocketAddr>,

    /// Folder of certificates for --tls-listen: NAME.crt (or NAME.pem) + NAME.key, or NAME/tls.crt + NAME/tls.key.
    #[arg(long, env = "CUTOVER_CERT_DIR", value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,

    /// Certificate (file NAME) served without SNI or for an unknown name [default: the first by name].
    #[arg(long, env = "CUTOVER_DEFAULT_CERT", value_name = "NAME")]
    pub default_cert: Option<String>,

    /// Time a client has to complete the TLS handshake (passthrough: to send its ClientHello).
    #[arg(long, env = "CUTOVER_TLS_HANDSHAKE_TIMEOUT", value_name = "DURATION", default_value_t = Dur(defaults().tls_handshake_timeout))]
    pub tls_handshake_timeout: Dur,

    /// Address to accept TLS on without terminating it (SNI read, bytes spliced); repeatable.
    #[arg(long, env = "CUTOVER_PASSTHROUGH_LISTEN", value_name = "ADDR", value_delimiter = ',')]
    pub passthrough_listen: Vec<SocketAddr>,

    /// Where passthrough connections go: blue's TLS endpoint, HOST:PORT.
    #[arg(long, env = "CUTOVER_PASSTHROUGH_UPSTREAM", value_name = "HOST:PORT")]
    pub passthrough_upstream: Option<HostPort>,

    /// A passthrough connection silent both ways this long is closed.
    #[arg(long, env = "CUTOVER_PASSTHROUGH_IDLE_TIMEOUT", value_name = "DURATION", default_value_t = Dur(defaults().passthrough_idle_timeout))]
    pub passthrough_idle_timeout: Dur,

    /// Verify https:// upstreams against the CA certificates in this PEM file instead of the system's.
    #[arg(long, env = "CUTOVER_UPSTREAM_CA", value_name = "FILE")]
    pub upstream_ca: Option<PathBuf>,

    /// Name sent as SNI to (and verified in the certificate of) an https:// --upstream [default: its host].
    #[arg(long, env = "CUTOVER_UPSTREAM_SNI", value_name = "NAME")]
    pub upstream_sni: Option<String>,

    /// Do not verify https:// upstreams' certificates (logged loudly at start-up).
    #[arg(long, env = "CUTOVER_UPSTREAM_INSECURE")]
    pub upstream_insecure: bool,
}

/// Live resolution and the DNS evidence's timing.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "DNS evidence")]
pub(super) struct DnsArgs {
    /// DNS server for live resolution, ADDR[:PORT]; repeatable [default: the system resolver].
    #[arg(long, env = "CUTOVER_DNS_SERVER", value_name = "ADDR[:PORT]", value_delimiter = ',')]
    pub dns_server: Vec<DnsServer>,

    /// Do not resolve hosts live; judge DNS from --route53-records only.
    #[arg(long, env = "CUTOVER_NO_LIVE_DNS")]
    pub no_live_dns: bool,

    /// Live DNS lookups in flight at most.
    #[arg(long, env = "CUTOVER_DNS_CONCURRENCY", value_name = "N", default_value_t = ResolverSettings::default().concurrency)]
    pub dns_concurrency: usize,

    /// Live DNS lookups started per second at most.
    #[arg(long, env = "CUTOVER_DNS_RATE", value_name = "N", default_value_t = ResolverSettings::default().rate)]
    pub dns_rate: u32,

    /// Resolutions per lookup, to catch weighted answers.
    #[arg(long, env = "CUTOVER_DNS_SAMPLES", value_name = "N", default_value_t = ResolverSettings::default().samples)]
    pub dns_samples: u32,

    /// Time one DNS query may take.
    #[arg(long, env = "CUTOVER_DNS_TIMEOUT", value_name = "DURATION", default_value_t = Dur(ResolverSettings::default().timeout))]
    pub dns_timeout: Dur,

    /// How often the targets' load balancer names are resolved again (ELB addresses change).
    #[arg(long, env = "CUTOVER_TARGET_REFRESH", value_name = "DURATION", default_value_t = Dur(ResolverSettings::default().target_refresh))]
    pub target_refresh: Dur,

    /// Added to the largest TTL to make the window after a move in which traffic is still expected.
    #[arg(long, env = "CUTOVER_TTL_GRACE", value_name = "DURATION", default_value_t = Dur(DnsEvidenceSettings::default().ttl_grace))]
    pub ttl_grace: Dur,

    /// For hosts whose DNS points at green, close client connections after each response
    /// (`Connection: close`, HTTP/2 GOAWAY) so clients re-resolve; no request is dropped.
    #[arg(long, env = "CUTOVER_CLOSE_STALE_CONNECTIONS")]
    pub close_stale_connections: bool,
}

/// The pod's name (the Deployment passes `POD_NAME` from the downward API), else the host's.
fn default_replica_id() -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    var("POD_NAME").or_else(|| var("HOSTNAME")).or_else(|| {
        std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty())
    })
}

fn invalid<T>(what: &'static str, why: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid { what, why: why.into() })
}

impl ServeArgs {
    /// The settings, checked: values that cannot work and flags that contradict each other are
    /// refused with the flag named.
    pub fn into_settings(self) -> Result<ServeSettings, ConfigError> {
        let upstream = self.upstream.clone().ok_or(ConfigError::MissingUpstream)?;
        let mut s = ServeSettings::new(upstream);
        if let Some(workers) = self.workers {
            s.workers = workers;
        }
        if s.workers == 0 || s.workers > 1024 {
            return invalid("--workers", format!("{} is not between 1 and 1024", s.workers));
        }
        let tls = &self.tls;
        for (what, d) in [
            ("--connect-timeout", self.connect_timeout),
            ("--header-timeout", self.header_timeout),
            ("--idle-timeout", self.idle_timeout),
            ("--upstream-timeout", self.upstream_timeout),
            ("--upstream-idle-timeout", self.upstream_idle_timeout),
            ("--tunnel-idle-timeout", self.tunnel_idle_timeout),
            ("--client-body-timeout", self.client_body_timeout),
            ("--shutdown-timeout", self.shutdown_timeout),
            ("--tls-handshake-timeout", tls.tls_handshake_timeout),
            ("--passthrough-idle-timeout", tls.passthrough_idle_timeout),
        ] {
            if d.0 < Duration::from_millis(10) {
                return invalid(what, format!("{:?} is too short (at least 10ms)", d.0));
            }
        }
        if self.report_interval.0 < Duration::from_millis(100) {
            return invalid("--report-interval", "must be at least 100ms");
        }
        if self.listen.is_empty() {
            return invalid("--listen", "at least one address is needed");
        }
        let mut seen = HashSet::new();
        for hu in &self.upstream_for {
            if !seen.insert(hu.host.clone()) {
                return invalid("--upstream-for", format!("host `{}` is given twice", hu.host));
            }
        }
        s.dns = self.dns_settings()?;
        s.export = self.export.settings();
        match (tls.tls_listen.is_empty(), &tls.cert_dir) {
            (false, None) => return invalid("--tls-listen", "needs --cert-dir (the certificates to serve)"),
            (true, Some(_)) => return invalid("--cert-dir", "is only used with --tls-listen"),
            _ => {}
        }
        if tls.default_cert.is_some() && tls.cert_dir.is_none() {
            return invalid("--default-cert", "is only used with --tls-listen and --cert-dir");
        }
        match (tls.passthrough_listen.is_empty(), &tls.passthrough_upstream) {
            (false, None) => return invalid("--passthrough-listen", "needs --passthrough-upstream HOST:PORT"),
            (true, Some(_)) => return invalid("--passthrough-upstream", "is only used with --passthrough-listen"),
            _ => {}
        }
        let any_https = s.upstream.tls || self.upstream_for.iter().any(|o| o.url.tls);
        if !any_https {
            for (set, what) in [
                (tls.upstream_ca.is_some(), "--upstream-ca"),
                (tls.upstream_sni.is_some(), "--upstream-sni"),
                (tls.upstream_insecure, "--upstream-insecure"),
            ] {
                if set {
                    return invalid(what, "is only used with an https:// upstream");
                }
            }
        }
        if tls.upstream_sni.is_some() && !s.upstream.tls {
            return invalid("--upstream-sni", "is only used with an https:// --upstream");
        }
        if tls.upstream_insecure && tls.upstream_ca.is_some() {
            return invalid("--upstream-insecure", "contradicts --upstream-ca (verify, or do not)");
        }
        s.listen = self.listen;
        s.upstream_for = self.upstream_for;
        s.admin_listen = self.admin_listen;
        s.proxy = ProxySettings {
            trusted: TrustedProxies::new(self.trusted_proxies.into_iter().map(|c| c.0).collect()),
            upstream_protocol: if self.upstream_h2 { UpstreamProtocol::H2 } else { self.upstream_protocol },
            http1_server: self.http1_server,
            upstream_timeout: self.upstream_timeout.0,
            tunnel_idle_timeout: self.tunnel_idle_timeout.0,
            log_query: self.log_query,
            log_requests: self.log_requests,
            close_stale_connections: self.dns.close_stale_connections,
            upgrades: std::iter::once("websocket")
                .chain(self.allow_upgrade.iter().map(|p| p.trim()).filter(|p| !p.is_empty()))
                .map(|p| p.to_ascii_lowercase().into_boxed_str())
                .collect(),
            client_body_timeout: self.client_body_timeout.0,
            client_body_min_rate: self.client_body_min_rate,
        };
        s.client = ClientTimeouts { header: self.header_timeout.0, idle: self.idle_timeout.0 };
        s.connect_timeout = self.connect_timeout.0;
        s.upstream_idle_timeout = self.upstream_idle_timeout.0;
        s.upstream_max_idle = self.upstream_max_idle;
        s.upstream_ca = self.tls.upstream_ca;
        s.upstream_sni = self.tls.upstream_sni;
        s.upstream_insecure = self.tls.upstream_insecure;
        s.drain_delay = self.drain_delay.0;
        s.shutdown_timeout = self.shutdown_timeout.0;
        if self.green_routes_refresh.0 < Duration::from_secs(1) || self.green_routes_cmd_timeout.0.is_zero() {
            return invalid("--green-routes-refresh / --green-routes-cmd-timeout", "must be at least 1s / above 0");
        }
        s.probe = self.probe.settings()?;
        s.fleet = self.fleet.settings()?;
        s.green = RouteSettings {
            files: self.routes.green_routes,
            commands: self.green_routes_cmd,
            refresh: self.green_routes_refresh.0,
            command_timeout: self.green_routes_cmd_timeout.0,
            cluster: self.routes.cluster.cluster(),
        };
        s.report_file = self.report_file;
        s.report_interval = self.report_interval.0;
        s.quiet_period = self.quiet.quiet_period.0;
        s.ledger = self.ledger.settings();
        s.no_record = self.no_record;
        s.replica_id = self.replica_id.clone().or_else(default_replica_id).unwrap_or_else(|| "cutover-proxy".into());
        s.dns.resolver.max_hosts = s.ledger.max_hosts;
        s.tls_listen = self.tls.tls_listen;
        s.cert_dir = self.tls.cert_dir;
        s.default_cert = self.tls.default_cert;
        s.tls_handshake_timeout = self.tls.tls_handshake_timeout.0;
        s.passthrough_listen = self.tls.passthrough_listen;
        s.passthrough_upstream = self.tls.passthrough_upstream.map(|h| h.0);
        s.passthrough_idle_timeout = self.tls.passthrough_idle_timeout.0;
        Ok(s)
    }

    fn dns_settings(&self) -> Result<DnsEvidenceSettings, ConfigError> {
        let d = &self.dns;
        if d.dns_samples == 0 || d.dns_samples > 20 {
            return invalid("--dns-samples", format!("{} is not between 1 and 20", d.dns_samples));
        }
        if d.dns_concurrency == 0 || d.dns_concurrency > 1024 {
            return invalid("--dns-concurrency", format!("{} is not between 1 and 1024", d.dns_concurrency));
        }
        if d.dns_rate == 0 {
            return invalid("--dns-rate", "must be at least 1 lookup per second");
        }
        if d.dns_timeout.0 < Duration::from_millis(10) {
            return invalid("--dns-timeout", "is too short (at least 10ms)");
        }
        if d.target_refresh.0 < Duration::from_secs(1) {
            return invalid("--target-refresh", "must be at least 1s");
        }
        let targets = self.targets.targets()?;
        let resolver = ResolverSettings {
            servers: d.dns_server.iter().map(|s| s.0).collect(),
            timeout: d.dns_timeout.0,
            samples: d.dns_samples,
            concurrency: d.dns_concurrency,
            rate: d.dns_rate,
            target_refresh: d.target_refresh.0,
            ..ResolverSettings::default()
        };
        let live = !d.no_live_dns && (!targets.is_empty() || !resolver.servers.is_empty());
        Ok(DnsEvidenceSettings { targets, live, resolver, route53: self.targets.zones()?, ttl_grace: d.ttl_grace.0 })
    }
}
