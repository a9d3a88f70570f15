//! The reconciliation report, schema `cutover-proxy/report/v2`, field by field as in
//! docs/REPORT.md. Serialized as JSON for `/report` and the report file; read back for `report
//! render`, `report merge` and a restart. Version 1 files are read too (their `replicas` count
//! becomes that many replicas of unknown id).

use serde::{Deserialize, Serialize};

use crate::base::names::named_enum;
use crate::dns::evidence::DnsEvidence;
pub use crate::probe::ProbeVerdict;
use crate::record::stats::{Minutes, StatusClasses, TopK};
use crate::record::TOP_K;

/// The schema tag every report carries.
pub const SCHEMA: &str = "cutover-proxy/report/v2";
/// The schema before `replicas` listed the replicas (read, never written).
pub const SCHEMA_V1: &str = "cutover-proxy/report/v1";

/// A whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA`] (or [`SCHEMA_V1`] when read from an older file).
    pub schema: String,
    /// When this report was made (RFC 3339).
    pub generated_at: String,
    /// When recording started (earliest over merged replicas).
    pub started_at: String,
    /// The proxies whose traffic this report holds: one for a proxy's own report, one per
    /// replica for a merge.
    #[serde(default, deserialize_with = "replicas_v1_or_v2")]
    pub replicas: Vec<Replica>,
    /// Exact totals.
    pub totals: Totals,
    /// What green's route table held.
    pub green: GreenSummary,
    /// Which DNS evidence was configured.
    #[serde(default)]
    pub dns: DnsSummary,
    /// Every host still arriving, most requests first (a bounded report: the ones that matter).
    pub hosts: Vec<HostReport>,
    /// What a bounded report (`/report` without `?all=true`) left out of `hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted: Option<Omitted>,
}

/// One proxy replica a report holds traffic of.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Replica {
    /// `--replica-id` (the pod's name); empty when unknown (a version-1 report).
    pub id: String,
    /// When its report was made (RFC 3339).
    pub generated_at: String,
    /// Its admin address, for a fleet report made by asking the replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Whether it answered, for a fleet report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable: Option<bool>,
    /// Why it did not, for a fleet report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Version 2 lists the replicas; version 1 counted them.
fn replicas_v1_or_v2<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Replica>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Count(u64),
        List(Vec<Replica>),
    }
    Ok(match Either::deserialize(d)? {
        Either::Count(n) => (0..n.min(10_000)).map(|_| Replica::default()).collect(),
        Either::List(list) => list,
    })
}

/// The hosts a bounded report left out, all together and per action.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Omitted {
    pub hosts: u64,
    pub requests: u64,
    /// Per action: hosts and requests left out.
    pub by_action: std::collections::BTreeMap<Action, Tally>,
    /// Why they were left out, and how to get them.
    pub why: String,
}

impl Omitted {
    /// Counts one host left out.
    pub fn add(&mut self, action: Action, requests: u64) {
        self.hosts += 1;
        self.requests += requests;
        let t = self.by_action.entry(action).or_default();
        t.hosts += 1;
        t.requests += requests;
    }
}

/// Hosts and requests.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tally {
    pub hosts: u64,
    pub requests: u64,
}

/// Exact totals, whatever the ledger's bounds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Totals {
    /// Requests recorded (health checks excluded).
    pub requests: u64,
    /// Requests that matched `--ignore-path` / `--ignore-user-agent`.
    pub ignored_requests: u64,
    /// Distinct hosts (the `(other)` bucket not counted).
    pub hosts: u64,
    /// Requests whose host/path green's routes do not serve.
    pub unrouted_requests: u64,
    /// Requests counted under the `(other)` host (beyond `--max-hosts`).
    #[serde(default)]
    pub hosts_overflowed_requests: u64,
    /// Requests counted under a `{other}` path (beyond `--max-paths-per-host`).
    #[serde(default)]
    pub paths_overflowed_requests: u64,
    /// Requests that arrived over terminated TLS (`--tls-listen`).
    #[serde(default)]
    pub tls_requests: u64,
    /// Of those, requests whose Host named another server than the TLS SNI.
    #[serde(default)]
    pub sni_mismatch_requests: u64,
    /// Of those, requests on connections served the default certificate (no SNI or unknown name).
    #[serde(default)]
    pub default_cert_requests: u64,
    /// Passthrough connections (`--passthrough-listen`; not requests: paths are not visible).
    #[serde(default)]
    pub passthrough_connections: u64,
}

/// What green's route table held when the report was made.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct GreenSummary {
    /// A table was loaded (`--green-routes`, `--green-routes-cmd`); without one every verdict is `unknown`.
    pub loaded: bool,
    /// Ingress/HTTPRoute/VirtualService objects in it that green serves.
    pub objects: u64,
    /// The table may lack routes green has: something was skipped, or a command failed.
    #[serde(default)]
    pub incomplete: bool,
    /// Helm charts, Kustomize overlays and templates skipped, with the commands that render them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedSummary>,
    /// Route objects green's cluster would not serve, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_serving: Vec<NotServing>,
    /// How each `--green-routes-cmd` last went.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandSummary>,
    /// `--green-probe`: where green was asked; `null` without probing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
}

/// A skipped chart, overlay or template.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SkippedSummary {
    pub path: String,
    /// `helm-chart`, `kustomize` or `go-template`.
    pub kind: String,
    pub name: String,
    pub render: Vec<String>,
}

/// A route object set aside.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NotServing {
    /// `ns/name (Kind)`.
    pub object: String,
    pub reason: String,
}

/// One `--green-routes-cmd`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CommandSummary {
    pub command: String,
    /// Route objects of its last good output.
    pub objects: u64,
    /// When that output was read (RFC 3339; `null`: never).
    pub loaded_at: Option<String>,
    /// Why its last run gave no table (`null`: it was good).
    pub error: Option<String>,
}

/// Which DNS evidence the report had (and what the Route53 export needs to write changes).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DnsSummary {
    /// Hosts were resolved live.
    pub live: bool,
    /// Imported hosted zones.
    pub zones: Vec<ZoneSummary>,
    /// `--blue-target` values.
    pub blue_targets: Vec<String>,
    /// `--green-target` values.
    pub green_targets: Vec<String>,
}

/// One imported hosted zone.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ZoneSummary {
    /// Hosted zone id.
    pub id: String,
    /// Apex.
    pub name: String,
}

named_enum! {
    /// Green's verdict for one host.
    pub enum Routed {
        /// Every path seen is routed by green.
        All = "all",
        /// Some paths are not.
        Partial = "partial",
        /// None is.
        None = "none",
        /// No route table loaded, or only overflow paths seen.
        Unknown = "unknown",
    }
}

/// Green's side of one host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GreenVerdict {
    /// See [`Routed`].
    pub routed: Routed,
    /// Path templates green does not route.
    pub missing_paths: Vec<String>,
    /// What green answered when asked (`--green-probe`); absent without probing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<HostProbe>,
}

/// Green's answers to the probe for one host: the worst of its paths.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostProbe {
    /// The worst path's verdict (`unrouted` over `failing` over `served`); `null` until a path is probed.
    pub verdict: Option<ProbeVerdict>,
    pub served: u64,
    pub unrouted: u64,
    pub failing: u64,
    /// Paths not probed yet.
    pub unprobed: u64,
    /// The latest probe (RFC 3339).
    pub checked_at: Option<String>,
    /// The worst path's answer: `GET /v1/pay/8 → 404 like green's default backend`.
    pub detail: Option<String>,
}

impl HostProbe {
    /// The summary of `probes`, with `unprobed` paths not asked yet.
    pub fn of<'a>(probes: impl Iterator<Item = &'a PathProbeReport>, unprobed: u64) -> HostProbe {
        let mut h =
            HostProbe { verdict: None, served: 0, unrouted: 0, failing: 0, unprobed, checked_at: None, detail: None };
        for p in probes {
            match p.verdict {
                ProbeVerdict::Served => h.served += 1,
                ProbeVerdict::Unrouted => h.unrouted += 1,
                ProbeVerdict::Failing => h.failing += 1,
            }
            if h.verdict.is_none_or(|v| p.verdict > v) {
                h.verdict = Some(p.verdict);
                h.detail = Some(p.detail.clone());
            }
            if h.checked_at.as_ref().is_none_or(|c| p.checked_at > *c) {
                h.checked_at = Some(p.checked_at.clone());
            }
        }
        h
    }
}

/// Green's answer to the probe of one path.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PathProbeReport {
    /// `GET` or `HEAD`.
    pub method: String,
    /// The concrete path asked.
    pub path: String,
    /// Green's status (`null`: no answer).
    pub status: Option<u16>,
    pub verdict: ProbeVerdict,
    pub detail: String,
    /// RFC 3339.
    pub checked_at: String,
}

named_enum! {
    /// The one thing to do about a host (verdicts.md; first that applies wins). Declared in the
    /// order an operator works through them.
    pub enum Action {
        /// The Host is an IP literal or a load balancer's own name: DNS will never move these clients.
        FixHardcoded = "fix-hardcoded",
        /// Green lacks a route for some seen path.
        AddGreenRoute = "add-green-route",
        /// Green has the route but fails it when asked (5xx, refused, timed out, TLS or certificate).
        FixGreen = "fix-green",
        /// Green serves everything; DNS still points at blue (or splits).
        SwitchDns = "switch-dns",
        /// DNS moved to green within the TTL window: propagating.
        WaitTtl = "wait-ttl",
        /// DNS moved to green long ago: cached DNS or old connections.
        FixClients = "fix-clients",
        /// DNS points at neither side, does not resolve, or is outside the imported zones.
        InvestigateDns = "investigate-dns",
        /// Not enough evidence to choose (no DNS evidence configured).
        Unknown = "unknown",
        /// The host stopped arriving.
        None = "none",
    }
}

/// A client still arriving after the host's DNS moved to green.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LateClient {
    /// Client IP.
    pub ip: String,
    /// Its user agent (clients are told apart by IP and user agent).
    pub user_agent: String,
    /// Requests after the move.
    pub requests: u64,
    /// Its last request (RFC 3339).
    pub last_seen: String,
    /// Age of its oldest connection at its last request, seconds.
    pub connection_age_s: f64,
    /// It used a connection opened before DNS moved (keep-alive stickiness), rather than resolving
    /// blue again (cached DNS).
    pub opened_before_move: bool,
}

/// One host of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostReport {
    /// Normalized host (`(none)` without Host; `(other)` beyond `--max-hosts`).
    pub host: String,
    pub requests: u64,
    /// First request (RFC 3339).
    pub first_seen: String,
    /// Last request (RFC 3339).
    pub last_seen: String,
    /// The client addressed an IP literal or a load balancer name.
    pub hardcoded: bool,
    /// Green's verdict.
    pub green: GreenVerdict,
    /// DNS evidence.
    #[serde(default)]
    pub dns: DnsEvidence,
    /// What to do.
    pub action: Action,
    /// For `add-green-route`: DNS already sends the host to green, so green answers 404 now.
    pub urgent: bool,
    /// Why this action, in a sentence.
    pub reason: String,
    /// For `switch-dns`: why no Route53 change can be written for it (unknown zone, no green
    /// target…); `null` when the export has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_change_blocked: Option<String>,
    /// Methods seen.
    pub methods: Vec<String>,
    /// Responses by status class.
    pub status: StatusClasses,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// Oldest client connection seen carrying a request, seconds.
    pub oldest_connection_age_s: f64,
    /// Requests that arrived over terminated TLS.
    #[serde(default)]
    pub tls_requests: u64,
    /// Of those, requests whose Host named another server than the TLS SNI.
    #[serde(default)]
    pub sni_mismatch_requests: u64,
    /// Of those, requests on connections served the default certificate (no SNI or unknown name).
    #[serde(default)]
    pub default_cert_requests: u64,
    /// Passthrough connections for this host (its SNI); `null` when there were none.
    #[serde(default)]
    pub passthrough: Option<PassthroughReport>,
    /// Requests per minute over the last 24 h.
    pub requests_per_minute: Vec<MinuteCount>,
    /// Path templates, most requests first.
    pub paths: Vec<PathReport>,
    /// Top client IPs.
    pub top_clients: Vec<ClientCount>,
    pub top_user_agents: Vec<AgentCount>,
    /// Requests after the host's DNS moved to green.
    #[serde(default)]
    pub requests_after_move: u64,
    /// Of those, requests on connections opened before the move.
    #[serde(default)]
    pub opened_before_move_requests: u64,
    /// Clients still arriving after the move (bounded), most requests first.
    #[serde(default)]
    pub late_clients: Vec<LateClient>,
}

/// One path template of a host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathReport {
    /// Template (`{id}` for ids, `{other}` beyond `--max-paths-per-host`).
    pub path: String,
    /// The first concrete path seen, when it differs from the template (what green is asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    pub requests: u64,
    /// First request (RFC 3339).
    pub first_seen: String,
    /// Last request (RFC 3339).
    pub last_seen: String,
    /// Whether green routes it (`null`: unknown).
    pub green_routed: Option<bool>,
    /// The green object that serves it: `ns/name (Kind)`.
    pub matched_route: Option<String>,
    /// For a path green does not route although an object names it: why that object does not
    /// serve (a removed apiVersion, another ingress class or gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unrouted_reason: Option<String>,
    /// Green's answer when asked (`--green-probe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<PathProbeReport>,
    /// Methods seen.
    pub methods: Vec<String>,
    /// Responses by status class.
    pub status: StatusClasses,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
}

/// A host's passthrough connections: TLS was not terminated, so no paths are visible.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct PassthroughReport {
    pub connections: u64,
    /// Bytes from clients (TLS records, as sent).
    pub bytes_in: u64,
    /// Bytes toward clients.
    pub bytes_out: u64,
    /// Time the connections were open, summed, seconds.
    pub total_duration_s: f64,
}

impl PassthroughReport {
    /// Adds another report's connections (replicas merged).
    pub fn merge(&mut self, o: &PassthroughReport) {
        self.connections += o.connections;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.total_duration_s += o.total_duration_s;
    }
}

/// Requests in one minute.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct MinuteCount {
    /// Unix minute (minutes since 1970).
    pub minute: u64,
    pub requests: u64,
}

/// A top client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientCount {
    /// Client IP.
    pub ip: String,
    /// Requests (space-saving estimate: may over-count by the smallest kept count).
    pub requests: u64,
}

/// A top user agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentCount {
    /// User-Agent (cut at 200 bytes).
    pub user_agent: String,
    /// Requests (space-saving estimate).
    pub requests: u64,
}

impl HostReport {
    /// The per-minute ring as the ledger type (for merging).
    pub fn minutes(&self) -> Minutes {
        let mut m = Minutes::default();
        for mc in &self.requests_per_minute {
            m.add(mc.minute, mc.requests);
        }
        m
    }

    /// Top clients as a mergeable summary.
    pub fn clients_topk(&self) -> TopK<String> {
        let mut t = TopK::new(TOP_K);
        for c in &self.top_clients {
            t.add(&c.ip, c.requests);
        }
        t
    }

    /// Top user agents as a mergeable summary.
    pub fn agents_topk(&self) -> TopK<String> {
        let mut t = TopK::new(TOP_K);
        for a in &self.top_user_agents {
            t.add(&a.user_agent, a.requests);
        }
        t
    }
}
