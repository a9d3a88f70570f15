//! Phase 1 of `serve`: everything read before a socket is bound. A broken route table,
//! certificate, CA file or Route53 export refuses to start here (exit code 2), so nothing is
//! half-started in front of production.

use std::sync::Arc;

use hickory_resolver::TokioResolver;

use super::report_file::{restore_and_target, RestoreOutcome, Target};
use super::settings::ServeSettings;
use super::ServeError;
use crate::base::error::ConfigError;
use crate::dns::book::DnsBook;
use crate::dns::counters::DnsCounters;
use crate::dns::kinds::DnsKinds;
use crate::dns::zones::{self, Zones};
use crate::fleet::gather::Fleet;
use crate::probe::book::ProbeBook;
use crate::probe::client::ProbeClient;
use crate::proxy::UpstreamProtocol;
use crate::record::Ledger;
use crate::reload::routes::{Event, RouteSources};
use crate::routes::{RouteCounters, RouteTable};
use crate::tls::certs::CertStore;
use crate::upstream::tls::{client_config, UpstreamTlsSettings};
use crate::upstream::Upstreams;

/// What `serve` loaded and built before binding.
pub(super) struct Loaded {
    /// Green's route table (empty without `--green-routes` or `--green-routes-cmd`).
    pub routes: Arc<RouteTable>,
    /// Where it came from, for the watcher (`None` without a source).
    pub route_sources: Option<RouteSources>,
    /// What reading them said (skipped charts, failed commands), logged once logging runs.
    pub route_events: Vec<Event>,
    /// Reload and command failures, for `/metrics`.
    pub route_counters: Arc<RouteCounters>,
    /// `--cert-dir`, for the TLS listeners.
    pub certs: Option<Arc<CertStore>>,
    /// The TLS client configuration toward `https://` upstreams, and a description of its roots.
    pub upstream_tls: Option<(Arc<rustls::ClientConfig>, String)>,
    /// With `--upstream-protocol auto`: the same, offering h2.
    pub upstream_tls_h2: Option<Arc<rustls::ClientConfig>>,
    /// Blue and the per-host overrides.
    pub upstreams: Arc<Upstreams>,
    /// `--passthrough-upstream`.
    pub passthrough: Option<Arc<Upstreams>>,
    /// The ledger (`None` with `--no-record`).
    pub ledger: Option<Arc<Ledger>>,
    /// The DNS evidence, when configured (and recording).
    pub dns: Option<Arc<DnsBook>>,
    /// The live resolver, when the DNS evidence resolves live.
    pub resolver: Option<TokioResolver>,
    /// Counted by the resolver task, read by `/metrics`.
    pub dns_counters: Arc<DnsCounters>,
    /// What reading back `--report-file` did.
    pub restore: RestoreOutcome,
    /// Where the report writer writes (`--report-file`, when recording).
    pub report_target: Option<Target>,
    /// Green's answers and the client that asks (`--green-probe`, when recording).
    pub probe: Option<(Arc<ProbeBook>, ProbeClient, String)>,
    /// The other replicas (`--peers`, when recording).
    pub fleet: Option<Arc<Fleet>>,
}

/// Loads and checks everything in the settings' files.
pub(super) fn load(s: &ServeSettings, rt: &tokio::runtime::Runtime) -> Result<Loaded, ServeError> {
    let (route_sources, route_events) = if s.green.any() {
        let (sources, events) = RouteSources::load(s.green.clone())?;
        (Some(sources), events)
    } else {
        (None, Vec::new())
    };
    let routes = Arc::new(route_sources.as_ref().map_or_else(RouteTable::empty, RouteSources::table));
    let route_counters = route_sources.as_ref().map_or_else(Default::default, |r| r.counters.clone());
    crate::tls::provider::install_provider();
    let certs = match &s.cert_dir {
        Some(dir) => Some(CertStore::load(dir, s.default_cert.clone())?),
        None => None,
    };
    let any_tls = std::iter::once(&s.upstream).chain(s.upstream_for.iter().map(|o| &o.url)).any(|u| u.tls);
    let protocol = s.proxy.upstream_protocol;
    let tls_for = |h2: bool| UpstreamTlsSettings { ca_file: s.upstream_ca.clone(), insecure: s.upstream_insecure, h2 };
    let upstream_tls = if any_tls { Some(client_config(&tls_for(protocol == UpstreamProtocol::H2))?) } else { None };
    // `auto` speaks both: its HTTP/2 pools offer h2 in ALPN.
    let upstream_tls_h2 =
        if any_tls && protocol == UpstreamProtocol::Auto { Some(client_config(&tls_for(true))?.0) } else { None };
    let upstreams = Arc::new(
        Upstreams::new(s.upstream.clone(), &s.upstream_for)
            .with_sni(s.upstream_sni.as_deref())
            .map_err(|why| ConfigError::Invalid { what: "--upstream-sni", why })?,
    );
    let passthrough = s.passthrough_upstream.clone().map(|u| Arc::new(Upstreams::new(u, &[])));
    let dns_counters = Arc::new(DnsCounters::default());
    let imported = imported_zones(s)?;
    let (mut ledger, mut dns) = recording(s, &routes, &imported, &dns_counters);
    let (restore, report_target) = match (ledger.clone(), &s.report_file) {
        (Some(l), Some(file)) => {
            let mut fresh = None;
            let (outcome, target) = restore_and_target(file, &s.replica_id, rt, &l, dns.as_deref(), &mut || {
                fresh = Some(recording(s, &routes, &imported, &dns_counters));
            });
            if let Some(f) = fresh {
                (ledger, dns) = f;
            }
            (outcome, Some(target))
        }
        _ => (RestoreOutcome::Fresh, None),
    };
    let resolver = match &dns {
        Some(book) if book.live() => Some(crate::dns::task::resolver(&s.dns.resolver)?),
        _ => None,
    };
    let probe = match (&s.probe, &ledger) {
        (Some(p), Some(_)) => {
            let (client, roots) = ProbeClient::new(p.green.clone(), p.ca_file.as_deref(), p.timeout)?;
            Some((Arc::new(ProbeBook::new(p.green.to_string(), s.ledger.max_paths)), client, roots))
        }
        _ => None,
    };
    let fleet = match (&ledger, s.fleet.peers.is_empty()) {
        (Some(_), false) => Some(Arc::new(Fleet {
            settings: s.fleet.clone(),
            resolver: crate::dns::task::resolver(&s.dns.resolver).map_err(|e| e.to_string()),
        })),
        _ => None,
    };
    Ok(Loaded {
        probe,
        fleet,
        routes,
        route_sources,
        route_events,
        route_counters,
        certs,
        upstream_tls,
        upstream_tls_h2,
        upstreams,
        passthrough,
        ledger,
        dns,
        resolver,
        dns_counters,
        restore,
        report_target,
    })
}

fn imported_zones(s: &ServeSettings) -> Result<Zones, ServeError> {
    let mut imported = Zones::default();
    for (zone, file) in &s.dns.route53 {
        imported.zones.push(zones::load(zone, file)?);
    }
    Ok(imported)
}

/// A fresh ledger and DNS book (none with `--no-record`; no book without DNS evidence).
fn recording(
    s: &ServeSettings,
    routes: &Arc<RouteTable>,
    imported: &Zones,
    counters: &Arc<DnsCounters>,
) -> (Option<Arc<Ledger>>, Option<Arc<DnsBook>>) {
    if s.no_record {
        return (None, None);
    }
    let ledger = Arc::new(Ledger::new(s.ledger.clone(), routes.clone()));
    if !s.dns.configured() {
        return (Some(ledger), None);
    }
    ledger.set_kinds(Arc::new(DnsKinds::new(s.dns.targets.clone(), imported)));
    let grace = s.dns.ttl_grace.as_millis() as u64;
    let book =
        DnsBook::new(s.dns.targets.clone(), imported.clone(), s.dns.live, grace, ledger.moves(), counters.clone());
    (Some(ledger), Some(Arc::new(book)))
}
