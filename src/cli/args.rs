//! Flag groups shared by several subcommands (each flag declared once) and the value parsers of
//! the CLI's own types.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;

use crate::base::error::ConfigError;
use crate::base::names::Named;
use crate::base::values::{ByteSize, Dur, HostPort, UpstreamUrl};
use crate::dns::targets::{Target, Targets};
use crate::dns::zones::split_arg;
use crate::fleet::FleetSettings;
use crate::probe::ProbeSettings;
use crate::record::normalize::{Glob, Templater};
use crate::record::LedgerSettings;
use crate::report::changes::ExportSettings;
use crate::report::judge::ReportSettings;
use crate::routes::cluster::GatewayRef;
use crate::routes::removed::KubeVersion;
use crate::routes::GreenCluster;

/// A parser that accepts exactly the names of a closed set (and lists them in `--help`).
pub(super) fn named<T: Named + FromStr<Err = String> + Clone + Send + Sync + 'static>(
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::ALL.iter().map(|v| v.as_str())).try_map(|s| s.parse::<T>())
}

/// Clears a flag's environment variable: only `serve` reads `CUTOVER_*`.
pub(super) fn no_env(arg: clap::Arg) -> clap::Arg {
    arg.env(None::<&str>)
}

/// An `--id-pattern` regex, checked at start-up.
#[derive(Debug, Clone)]
pub(super) struct IdPattern(pub regex::Regex);

impl FromStr for IdPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        regex::Regex::new(s).map(IdPattern).map_err(|e| format!("invalid regex `{s}`: {e}"))
    }
}

/// The ledger's bounds and filters (`serve`, `analyze`).
#[derive(Debug, Clone, Args)]
pub(super) struct LedgerArgs {
    /// Distinct hosts recorded; more go to the `(other)` bucket (totals stay exact).
    #[arg(long, env = "CUTOVER_MAX_HOSTS", value_name = "N", default_value_t = LedgerSettings::default().max_hosts)]
    pub max_hosts: usize,

    /// Distinct path templates per host; more go to `{other}`.
    #[arg(long, env = "CUTOVER_MAX_PATHS_PER_HOST", value_name = "N", default_value_t = LedgerSettings::default().max_paths_per_host)]
    pub max_paths_per_host: usize,

    /// Distinct path templates over all hosts; more go to `{other}` (bounds the ledger's memory).
    #[arg(long, env = "CUTOVER_MAX_PATHS", value_name = "N", default_value_t = LedgerSettings::default().max_paths)]
    pub max_paths: usize,

    /// Bytes the ledger may hold; past them new hosts are counted in `(other)` buckets, new paths
    /// in `{other}` (totals stay exact).
    #[arg(long, env = "CUTOVER_MAX_LEDGER_MEMORY", value_name = "SIZE", default_value_t = ByteSize(LedgerSettings::default().max_memory))]
    pub max_ledger_memory: ByteSize,

    /// Paths (glob, `*` and `?`) still forwarded but only counted as ignored; repeatable.
    #[arg(long, env = "CUTOVER_IGNORE_PATH", value_name = "GLOB", value_delimiter = ',', default_values_t = LedgerSettings::default().ignore_paths)]
    pub ignore_path: Vec<Glob>,

    /// User agents (glob) still forwarded but only counted as ignored; repeatable.
    #[arg(long, env = "CUTOVER_IGNORE_USER_AGENT", value_name = "GLOB", value_delimiter = ',', default_values_t = LedgerSettings::default().ignore_user_agents)]
    pub ignore_user_agent: Vec<Glob>,

    /// Extra regex for path segments that are ids (whole segment becomes `{id}`); repeatable.
    #[arg(long, env = "CUTOVER_ID_PATTERN", value_name = "REGEX")]
    pub id_pattern: Vec<IdPattern>,
}

impl LedgerArgs {
    /// The ledger's settings.
    pub fn settings(&self) -> LedgerSettings {
        LedgerSettings {
            max_hosts: self.max_hosts,
            max_paths_per_host: self.max_paths_per_host,
            max_paths: self.max_paths,
            max_memory: self.max_ledger_memory.0,
            ignore_paths: self.ignore_path.clone(),
            ignore_user_agents: self.ignore_user_agent.clone(),
            templater: Templater::new(self.id_pattern.iter().map(|p| p.0.clone()).collect()),
        }
    }
}

/// Green's route table (`serve`, `analyze`).
#[derive(Debug, Clone, Args)]
pub(super) struct RoutesArgs {
    /// Green's routes: Ingress / HTTPRoute / VirtualService files or folders (JSON or YAML; Helm
    /// charts, Kustomize overlays and Go templates are skipped with the command that renders them);
    /// repeatable.
    #[arg(long, env = "CUTOVER_GREEN_ROUTES", value_name = "PATH", value_delimiter = ',')]
    pub green_routes: Vec<PathBuf>,

    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// What green's cluster runs (`serve`, `analyze`, `routes check`).
#[derive(Debug, Clone, Args)]
pub(super) struct ClusterArgs {
    /// Green's Kubernetes version (X.Y): route objects whose apiVersion it no longer serves do not route.
    #[arg(long, env = "CUTOVER_GREEN_KUBERNETES_VERSION", value_name = "X.Y")]
    pub green_kubernetes_version: Option<KubeVersion>,

    /// An ingress class green's controllers watch; Ingresses of other classes do not route; repeatable.
    #[arg(long, env = "CUTOVER_GREEN_INGRESS_CLASS", value_name = "NAME", value_delimiter = ',')]
    pub green_ingress_class: Vec<String>,

    /// A gateway that takes green's outside traffic (HTTPRoute parentRefs, Istio gateways); repeatable.
    #[arg(long, env = "CUTOVER_GREEN_GATEWAY", value_name = "NS/NAME", value_delimiter = ',')]
    pub green_gateway: Vec<GatewayRef>,
}

impl ClusterArgs {
    /// Green's cluster.
    pub fn cluster(&self) -> GreenCluster {
        GreenCluster {
            kubernetes_version: self.green_kubernetes_version,
            ingress_classes: self.green_ingress_class.clone(),
            gateways: self.green_gateway.clone(),
        }
    }
}

/// Asking green itself (`serve`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Asking green")]
pub(super) struct ProbeArgs {
    /// Green's load balancer or ingress (http:// or https://): each host and path seen is asked there, beside the proxy.
    #[arg(long, env = "CUTOVER_GREEN_PROBE", value_name = "URL")]
    pub green_probe: Option<UpstreamUrl>,

    /// Probes per second at most, over all hosts.
    #[arg(long, env = "CUTOVER_GREEN_PROBE_RATE", value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub green_probe_rate: u32,

    /// How often one host and path is asked again (and after green's routes change).
    #[arg(long, env = "CUTOVER_GREEN_PROBE_INTERVAL", value_name = "DURATION", default_value_t = Dur(Duration::from_secs(600)))]
    pub green_probe_interval: Dur,

    /// Longest wait for green's answer to one probe.
    #[arg(long, env = "CUTOVER_GREEN_PROBE_TIMEOUT", value_name = "DURATION", default_value_t = Dur(Duration::from_secs(5)))]
    pub green_probe_timeout: Dur,

    /// CA bundle (PEM) for an https:// --green-probe; the system's roots otherwise.
    #[arg(long, env = "CUTOVER_GREEN_PROBE_CA", value_name = "FILE")]
    pub green_probe_ca: Option<PathBuf>,
}

impl ProbeArgs {
    /// `None` without `--green-probe`.
    pub fn settings(&self) -> Result<Option<ProbeSettings>, ConfigError> {
        let Some(green) = self.green_probe.clone() else { return Ok(None) };
        if self.green_probe_timeout.0.is_zero() || self.green_probe_interval.0 < Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                what: "--green-probe-timeout / --green-probe-interval",
                why: "must be above 0 / at least 1s".into(),
            });
        }
        Ok(Some(ProbeSettings {
            green,
            rate: self.green_probe_rate,
            interval: self.green_probe_interval.0,
            timeout: self.green_probe_timeout.0,
            ca_file: self.green_probe_ca.clone(),
        }))
    }
}

/// The other replicas (`serve`): `/report?scope=fleet` merges their live reports.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Fleet")]
pub(super) struct FleetArgs {
    /// Other replicas' admin listeners, NAME:PORT (a headless Service: each A/AAAA record is a
    /// replica, re-resolved each time, through --dns-server) or IP:PORT; repeatable.
    #[arg(long, env = "CUTOVER_PEERS", value_name = "NAME:PORT", value_delimiter = ',')]
    pub peers: Vec<HostPort>,

    /// Longest wait for one replica's report.
    #[arg(long, env = "CUTOVER_PEER_TIMEOUT", value_name = "DURATION", default_value_t = Dur(FleetSettings::default().timeout))]
    pub peer_timeout: Dur,

    /// Replicas asked at once.
    #[arg(long, env = "CUTOVER_PEER_CONCURRENCY", value_name = "N", default_value_t = FleetSettings::default().concurrency, value_parser = clap::value_parser!(u16).range(1..=64).map(usize::from))]
    pub peer_concurrency: usize,
}

impl FleetArgs {
    pub fn settings(&self) -> Result<FleetSettings, ConfigError> {
        if self.peer_timeout.0.is_zero() {
            return Err(ConfigError::Invalid { what: "--peer-timeout", why: "must be above 0".into() });
        }
        Ok(FleetSettings {
            peers: self.peers.clone(),
            timeout: self.peer_timeout.0,
            concurrency: self.peer_concurrency,
        })
    }
}

/// When a host counts as stopped (`serve`, `analyze`, `report`).
#[derive(Debug, Clone, Args)]
pub(super) struct QuietArgs {
    /// A host with no request for this long gets the action `none`.
    #[arg(long, env = "CUTOVER_QUIET_PERIOD", value_name = "DURATION", default_value_t = Dur(ReportSettings::default().quiet_period))]
    pub quiet_period: Dur,
}

/// The two sides and the Route53 zones (`serve`, `analyze`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "DNS evidence")]
pub(super) struct TargetArgs {
    /// Blue's load balancer hostname (re-resolved every --target-refresh) or a CIDR; repeatable.
    #[arg(long, env = "CUTOVER_BLUE_TARGET", value_name = "LB|CIDR", value_delimiter = ',')]
    pub blue_target: Vec<Target>,

    /// Green's load balancer hostname or a CIDR; repeatable.
    #[arg(long, env = "CUTOVER_GREEN_TARGET", value_name = "LB|CIDR", value_delimiter = ',')]
    pub green_target: Vec<Target>,

    /// `aws route53 list-resource-record-sets` output, as ZONEID=FILE or a file named Z….json; repeatable.
    #[arg(long, env = "CUTOVER_ROUTE53_RECORDS", value_name = "ZONEID=FILE", value_delimiter = ',')]
    pub route53_records: Vec<String>,
}

impl TargetArgs {
    /// Both sides, checked: a target cannot be on both.
    pub fn targets(&self) -> Result<Targets, ConfigError> {
        for t in &self.blue_target {
            if self.green_target.contains(t) {
                return Err(ConfigError::Invalid {
                    what: "--green-target",
                    why: format!("`{t}` is also a --blue-target"),
                });
            }
        }
        Ok(Targets { blue: self.blue_target.clone(), green: self.green_target.clone() })
    }

    /// The Route53 exports as (zone id, file).
    pub fn zones(&self) -> Result<Vec<(String, PathBuf)>, ConfigError> {
        self.route53_records
            .iter()
            .map(|arg| {
                let (zone, file) =
                    split_arg(arg).map_err(|why| ConfigError::Invalid { what: "--route53-records", why })?;
                Ok((zone, PathBuf::from(file)))
            })
            .collect()
    }
}

/// How Route53 change batches are written (`serve`, `report route53`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "DNS evidence")]
pub(super) struct ExportArgs {
    /// Weight green's record gets in the exported Route53 changes (1-255; blue's goes to 0).
    #[arg(
        long,
        env = "CUTOVER_GREEN_WEIGHT",
        value_name = "N",
        default_value_t = ExportSettings::default().green_weight,
        value_parser = clap::value_parser!(u8).range(1..)
    )]
    pub green_weight: u8,

    /// TTL of CNAME/A records in the exported Route53 changes, seconds.
    #[arg(long, env = "CUTOVER_DNS_TTL", value_name = "SECONDS", default_value_t = ExportSettings::default().dns_ttl)]
    pub dns_ttl: u32,
}

impl ExportArgs {
    /// The export's settings.
    pub fn settings(&self) -> ExportSettings {
        ExportSettings { green_weight: self.green_weight, dns_ttl: self.dns_ttl }
    }
}
