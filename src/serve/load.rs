//! Phase 1 of `serve`: everything read before a socket is bound. A broken route table,
//! certificate, CA file or Route53 export refuses to start here (exit code 2), so nothing is
//! half-started in front of production.

use std::sync::Arc;

use hickory_resolver::TokioResolver;

use super::settings::ServeSettings;
use super::ServeError;
use crate::base::error::ConfigError;
use crate::dns::book::DnsBook;
use crate::dns::counters::DnsCounters;
use crate::dns::zones::{self, Zones};
use crate::record::Ledger;
use crate::routes::RouteTable;
use crate::tls::certs::CertStore;
use crate::upstream::tls::{client_config, UpstreamTlsSettings};
use crate::upstream::Upstreams;

/// What `serve` loaded and built before binding.
pub(super) struct Loaded {
    /// Green's route table (empty without `--green-routes`).
    pub routes: Arc<RouteTable>,
    /// `--cert-dir`, for the TLS listeners.
    pub certs: Option<Arc<CertStore>>,
    /// The TLS client configuration toward `https://` upstreams, and a description of its roots.
    pub upstream_tls: Option<(Arc<rustls::ClientConfig>, String)>,
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
}

/// Loads and checks everything in the settings' files.
pub(super) fn load(s: &ServeSettings) -> Result<Loaded, ServeError> {
    let routes =
        Arc::new(if s.green_routes.is_empty() { RouteTable::empty() } else { RouteTable::load(&s.green_routes)? });
    crate::tls::provider::install_provider();
    let certs = match &s.cert_dir {
        Some(dir) => Some(CertStore::load(dir, s.default_cert.clone())?),
        None => None,
    };
    let upstream_tls = if std::iter::once(&s.upstream).chain(s.upstream_for.iter().map(|o| &o.url)).any(|u| u.tls) {
        let tls = UpstreamTlsSettings {
            ca_file: s.upstream_ca.clone(),
            insecure: s.upstream_insecure,
            h2: s.proxy.upstream_h2,
        };
        Some(client_config(&tls)?)
    } else {
        None
    };
    let upstreams = Arc::new(
        Upstreams::new(s.upstream.clone(), &s.upstream_for)
            .with_sni(s.upstream_sni.as_deref())
            .map_err(|why| ConfigError::Invalid { what: "--upstream-sni", why })?,
    );
    let passthrough = s.passthrough_upstream.clone().map(|u| Arc::new(Upstreams::new(u, &[])));
    let ledger = (!s.no_record).then(|| Arc::new(Ledger::new(s.ledger.clone(), routes.clone())));
    let dns_counters = Arc::new(DnsCounters::default());
    let dns = match &ledger {
        Some(ledger) if s.dns.configured() => {
            let mut imported = Zones::default();
            for (zone, file) in &s.dns.route53 {
                imported.zones.push(zones::load(zone, file)?);
            }
            let grace = s.dns.ttl_grace.as_millis() as u64;
            let book =
                DnsBook::new(s.dns.targets.clone(), imported, s.dns.live, grace, ledger.moves(), dns_counters.clone());
            Some(Arc::new(book))
        }
        _ => None,
    };
    let resolver = match &dns {
        Some(book) if book.live() => Some(crate::dns::task::resolver(&s.dns.resolver)?),
        _ => None,
    };
    Ok(Loaded { routes, certs, upstream_tls, upstreams, passthrough, ledger, dns, resolver, dns_counters })
}
