//! Everything `serve` needs, typed: what the CLI builds from flags, environment and the config
//! file, and what an embedding caller (the demo) builds from [`ServeSettings::new`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::base::values::{HostUpstream, UpstreamUrl};
use crate::dns::settings::DnsEvidenceSettings;
use crate::fleet::FleetSettings;
use crate::listen::ClientTimeouts;
use crate::probe::ProbeSettings;
use crate::proxy::ProxySettings;
use crate::record::LedgerSettings;
use crate::reload::routes::RouteSettings;
use crate::report::changes::ExportSettings;
use crate::report::file::ReportFile;
use crate::report::judge::ReportSettings;

/// The settings of one `serve`.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Client listeners.
    pub listen: Vec<SocketAddr>,
    /// Default upstream (blue).
    pub upstream: UpstreamUrl,
    /// Per-host upstream overrides.
    pub upstream_for: Vec<HostUpstream>,
    /// Admin server address.
    pub admin_listen: SocketAddr,
    /// Worker threads.
    pub workers: usize,
    /// What the request path reads (trusted proxies, upstream protocol and timeout, logging).
    pub proxy: ProxySettings,
    /// Client header and idle timeouts.
    pub client: ClientTimeouts,
    /// Upstream TCP connect timeout.
    pub connect_timeout: Duration,
    /// Idle pooled upstream connection lifetime.
    pub upstream_idle_timeout: Duration,
    /// Idle upstream connections kept per worker and upstream.
    pub upstream_max_idle: usize,
    /// CA file for https:// upstreams.
    pub upstream_ca: Option<PathBuf>,
    /// SNI toward an https:// `upstream`.
    pub upstream_sni: Option<String>,
    /// Skip verifying https:// upstreams.
    pub upstream_insecure: bool,
    /// Accepting goes on this long after SIGTERM.
    pub drain_delay: Duration,
    /// Bound on waiting for in-flight work at shutdown.
    pub shutdown_timeout: Duration,
    /// Green's routes: files, commands, and what green's cluster serves.
    pub green: RouteSettings,
    /// Asking green itself (`--green-probe`).
    pub probe: Option<ProbeSettings>,
    /// The other replicas (`--peers`).
    pub fleet: FleetSettings,
    /// Where the report file goes.
    pub report_file: Option<ReportFile>,
    /// Report file and summary interval.
    pub report_interval: Duration,
    /// Silence after which a host's action is `none`.
    pub quiet_period: Duration,
    /// Ledger bounds and filters.
    pub ledger: LedgerSettings,
    /// Record nothing.
    pub no_record: bool,
    /// This replica's name in its reports.
    pub replica_id: String,
    /// DNS and Route53 evidence.
    pub dns: DnsEvidenceSettings,
    /// How Route53 changes are written (`/report/route53`).
    pub export: ExportSettings,
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
}

impl ServeSettings {
    /// Everything at its default, in front of `upstream`.
    pub fn new(upstream: UpstreamUrl) -> Self {
        Self {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 8080))],
            upstream,
            upstream_for: Vec::new(),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9901)),
            workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            proxy: ProxySettings::default(),
            client: ClientTimeouts::default(),
            connect_timeout: Duration::from_secs(5),
            upstream_idle_timeout: Duration::from_secs(30),
            upstream_max_idle: 512,
            upstream_ca: None,
            upstream_sni: None,
            upstream_insecure: false,
            drain_delay: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(30),
            probe: None,
            fleet: FleetSettings::default(),
            green: RouteSettings {
                refresh: Duration::from_secs(60),
                command_timeout: Duration::from_secs(30),
                ..RouteSettings::default()
            },
            report_file: None,
            report_interval: Duration::from_secs(30),
            quiet_period: ReportSettings::default().quiet_period,
            ledger: LedgerSettings::default(),
            no_record: false,
            replica_id: "cutover-proxy".into(),
            dns: DnsEvidenceSettings::default(),
            export: ExportSettings::default(),
            tls_listen: Vec::new(),
            cert_dir: None,
            default_cert: None,
            tls_handshake_timeout: Duration::from_secs(10),
            passthrough_listen: Vec::new(),
            passthrough_upstream: None,
            passthrough_idle_timeout: Duration::from_secs(3600),
        }
    }
}
