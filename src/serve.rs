//! `cutover-proxy serve`: binds everything, starts the workers, the admin server and the
//! upstream resolver, then runs the shutdown sequence on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};

use crate::admin::AdminState;
use crate::config::{DnsConfig, ServeConfig};
use crate::dns::book::DnsBook;
use crate::dns::route53::Route53;
use crate::error::ConfigError;
use crate::listen::{bind_reuseport, ClientTimeouts, ListenKind, Worker};
use crate::log::LogWriter;
use crate::metrics::{DnsCounters, MetricsSources, ReportWrites};
use crate::proxy::{Proxy, ProxySettings};
use crate::record::ledger::Ledger;
use crate::report::build::{now_unix_ms, ReportSettings};
use crate::report::writer::Reporter;
use crate::routes::{RouteError, RouteTable};
use crate::shutdown::Shutdown;
use crate::tls::certs::{CertError, CertStore};
use crate::tls::passthrough::PassthroughSettings;
use crate::upstream::pool::PoolSettings;
use crate::upstream::tls::{client_config, UpstreamTlsSettings};
use crate::upstream::Upstreams;

/// How often upstream host names are resolved again (load balancer addresses change).
const RESOLVE_EVERY: Duration = Duration::from_secs(30);
/// Queued log lines per worker before new ones are dropped and counted: ≈ 60 ms of traffic at
/// 35 k requests/s per worker (the writer drains every 1 ms). Small on purpose: the queue is a ring
/// of fixed-size records, and one that fits in cache costs measurably less per request than a
/// 5 MiB one (16 384 records) that misses on every slot.
const LOG_QUEUE: usize = 2048;

/// New hosts waiting for the DNS task; beyond this they are found by its periodic sweep instead.
const NEW_HOSTS_QUEUE: usize = 65_536;

/// The DNS evidence, when targets, DNS servers or Route53 exports are configured.
fn dns_book(cfg: &DnsConfig, ledger: &Ledger, counters: Arc<DnsCounters>) -> Result<Option<Arc<DnsBook>>, ConfigError> {
    if !cfg.live && cfg.route53.is_empty() && cfg.targets.is_empty() {
        return Ok(None);
    }
    let mut zones = Route53::default();
    for (zone, file) in &cfg.route53 {
        zones.zones.push(crate::dns::route53::load(zone, file)?);
    }
    let grace = cfg.ttl_grace.as_millis() as u64;
    Ok(Some(Arc::new(DnsBook::new(cfg.targets.clone(), zones, cfg.live, grace, ledger.moves(), counters))))
}

/// Why `serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Bad configuration or an address that cannot be bound.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Green's route table is broken.
    #[error("green routes: {0}")]
    Routes(#[from] RouteError),
    /// A certificate file of `--cert-dir` is unusable.
    #[error("certificate {0}")]
    Certs(#[from] CertError),
    /// The runtime or a thread could not start.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl ServeError {
    /// 2 for bad configuration (flags, files), 1 for failures at run time (address in use).
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::Config(ConfigError::Bind { .. }) | ServeError::Io(_) => 1,
            ServeError::Config(_) | ServeError::Routes(_) | ServeError::Certs(_) => 2,
        }
    }
}

/// Runs the proxy until a signal ends it; returns once in-flight work is done or timed out.
pub fn run(cfg: ServeConfig) -> Result<(), ServeError> {
    run_with(cfg, Hooks { out: Box::new(std::io::stdout()), ready: None, stop: None })
}

/// Where an embedding caller (the demo) takes over from the process defaults.
pub struct Hooks {
    /// Where the JSON log goes (stdout for `serve`).
    pub out: Box<dyn std::io::Write + Send>,
    /// Told the bound addresses once listening: (proxy listeners, admin).
    pub ready: Option<std::sync::mpsc::Sender<(Vec<SocketAddr>, SocketAddr)>>,
    /// Starts the shutdown like a signal would (without the drain delay's wait when sent twice).
    pub stop: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// [`run`] with the log, readiness and stop under the caller's control.
pub fn run_with(cfg: ServeConfig, hooks: Hooks) -> Result<(), ServeError> {
    let Hooks { out, ready, stop } = hooks;
    let started_at_ms = now_unix_ms();
    // A broken route table refuses to start, before any socket is bound.
    let routes =
        Arc::new(if cfg.green_routes.is_empty() { RouteTable::empty() } else { RouteTable::load(&cfg.green_routes)? });
    // So are unusable certificates and CA files: one line naming the file, exit code 2.
    crate::tls::install_provider();
    let certs = match &cfg.cert_dir {
        Some(dir) => Some(CertStore::load(dir, cfg.default_cert.clone())?),
        None => None,
    };
    let upstream_tls = if std::iter::once(&cfg.upstream).chain(cfg.upstream_for.iter().map(|o| &o.url)).any(|u| u.tls) {
        let settings = UpstreamTlsSettings {
            ca_file: cfg.upstream_ca.clone(),
            insecure: cfg.upstream_insecure,
            h2: cfg.upstream_h2,
        };
        Some(client_config(&settings)?)
    } else {
        None
    };
    let upstreams = Arc::new(
        Upstreams::new(cfg.upstream.clone(), &cfg.upstream_for)
            .with_sni(cfg.upstream_sni.as_deref())
            .map_err(|why| ConfigError::Invalid { what: "--upstream-sni", why })?,
    );
    let passthrough_up = cfg.passthrough_upstream.clone().map(|u| Arc::new(Upstreams::new(u, &[])));
    let ledger = (!cfg.no_record).then(|| Arc::new(Ledger::new(cfg.ledger.clone(), routes.clone())));
    // Route53 exports are read before any socket is bound: a broken one refuses to start.
    let dns_counters = Arc::new(DnsCounters::default());
    let dns = match &ledger {
        Some(ledger) => dns_book(&cfg.dns, ledger, dns_counters.clone())?,
        None => None,
    };
    let resolver = match &dns {
        Some(book) if book.live() => Some(crate::dns::task::resolver(&cfg.dns.settings)?),
        _ => None,
    };
    let (log, writer) = LogWriter::start(out, LOG_QUEUE)?;
    let mut listeners: Vec<Vec<(std::net::TcpListener, ListenKind)>> = (0..cfg.workers).map(|_| Vec::new()).collect();
    let mut kinds: Vec<(SocketAddr, ListenKind)> = cfg.listen.iter().map(|a| (*a, ListenKind::Plain)).collect();
    if let Some(store) = &certs {
        let kind = ListenKind::Tls { certs: store.clone(), handshake_timeout: cfg.tls_handshake_timeout };
        kinds.extend(cfg.tls_listen.iter().map(|a| (*a, kind.clone())));
    }
    if let Some(up) = &passthrough_up {
        let kind = ListenKind::Passthrough(Arc::new(PassthroughSettings {
            upstream: up.list[0].clone(),
            connect_timeout: cfg.connect_timeout,
            hello_timeout: cfg.tls_handshake_timeout,
            idle_timeout: cfg.passthrough_idle_timeout,
        }));
        kinds.extend(cfg.passthrough_listen.iter().map(|a| (*a, kind.clone())));
    }
    let mut bound = Vec::new();
    for (addr, kind) in &kinds {
        let (sockets, local) = bind_reuseport(*addr, cfg.workers)?;
        for (i, s) in sockets.into_iter().enumerate() {
            listeners[i].push((s, kind.clone()));
        }
        bound.push((local, kind.name()));
    }
    let admin = std::net::TcpListener::bind(cfg.admin_listen)
        .map_err(|source| ConfigError::Bind { addr: cfg.admin_listen, source })?;
    admin.set_nonblocking(true)?;
    let admin_addr = admin.local_addr()?;

    let settings = Arc::new(ProxySettings {
        trusted: cfg.trusted_proxies.clone(),
        upstream_h2: cfg.upstream_h2,
        upstream_timeout: cfg.upstream_timeout,
        tunnel_idle_timeout: cfg.tunnel_idle_timeout,
        log_query: cfg.log_query,
        log_requests: cfg.log_requests,
        close_stale_connections: cfg.close_stale_connections,
    });
    let pool = Arc::new(PoolSettings {
        connect_timeout: cfg.connect_timeout,
        idle_timeout: cfg.upstream_idle_timeout,
        upstream_timeout: cfg.upstream_timeout,
        max_idle: cfg.upstream_max_idle,
        h2: cfg.upstream_h2,
        tls: upstream_tls.as_ref().map(|(config, _)| config.clone()),
    });
    let shutdown = Arc::new(Shutdown::default());
    // Incremented by the DNS evidence resolver; read by /metrics.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut sigterm = rt.block_on(async { signal(SignalKind::terminate()) })?;
    let mut sigint = rt.block_on(async { signal(SignalKind::interrupt()) })?;

    // Resolve named upstreams once before taking traffic.
    rt.block_on(upstreams.resolve_all(Duration::from_secs(5)));
    if let Some(up) = &passthrough_up {
        rt.block_on(up.resolve_all(Duration::from_secs(5)));
    }

    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(cfg.workers);
    let mut threads = Vec::new();
    let mut views = Vec::new();
    for (i, socks) in listeners.into_iter().enumerate() {
        let proxy = Arc::new(Proxy::new(settings.clone(), upstreams.clone(), pool.clone(), log.lane(), ledger.clone()));
        views.push(proxy.view());
        let worker = Worker {
            proxy,
            listeners: socks,
            timeouts: ClientTimeouts { header: cfg.header_timeout, idle: cfg.idle_timeout },
            shutdown: shutdown.clone(),
            shutdown_timeout: cfg.shutdown_timeout,
        };
        let done = done_tx.clone();
        threads.push(std::thread::Builder::new().name(format!("worker-{i}")).spawn(move || {
            if let Err(e) = worker.run() {
                tracing::error!(worker = i, error = %e, "worker failed");
            }
            let _ = done.blocking_send(());
        })?);
    }
    drop(done_tx);

    for (addr, kind) in &bound {
        let upstream = match (*kind, &cfg.passthrough_upstream) {
            ("passthrough", Some(up)) => up.authority(),
            _ => cfg.upstream.to_string(),
        };
        log.event(
            "listening",
            json!({"listener": kind, "addr": addr.to_string(), "upstream": upstream, "workers": cfg.workers}),
        );
    }
    if let Some(store) = &certs {
        let set = store.current();
        let certificates: Vec<serde_json::Value> = set
            .certs()
            .iter()
            .map(|c| {
                json!({"name": c.name, "file": c.cert_file.display().to_string(), "dns_names": c.dns_names,
                    "not_after": c.not_after_ms.map(crate::report::build::ts)})
            })
            .collect();
        log.event("certs_loaded", json!({"dir": store.dir().display().to_string(), "certificates": certificates, "default": set.default_name()}));
    }
    if let Some((_, roots)) = &upstream_tls {
        if cfg.upstream_insecure {
            tracing::warn!(
                "--upstream-insecure: blue's TLS certificate is NOT verified; anyone on the path can impersonate blue"
            );
            log.event(
                "upstream_tls_insecure",
                json!({"warning": "--upstream-insecure: blue's TLS certificate is NOT verified"}),
            );
        }
        log.event(
            "upstream_tls",
            json!({"roots": roots, "sni": upstreams.list[0].server_name.as_ref().map(|n| n.to_str().into_owned())}),
        );
    }
    log.event("listening", json!({"listener": "admin", "addr": admin_addr.to_string()}));
    if !cfg.green_routes.is_empty() {
        log.event("routes_loaded", json!({"objects": routes.objects(), "paths": cfg.green_routes}));
    }
    if let Some(book) = &dns {
        log.event(
            "dns_evidence",
            json!({"live": book.live(), "servers": cfg.dns.settings.servers.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                   "zones": book.route53().zones.iter().map(|z| json!({"id": z.id, "name": z.name, "records": z.records.len()})).collect::<Vec<_>>(),
                   "blue_targets": book.targets().blue.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                   "green_targets": book.targets().green.iter().map(|t| t.to_string()).collect::<Vec<_>>()}),
        );
    }
    let report_settings = ReportSettings { quiet_period: cfg.quiet_period };
    let report_writes = Arc::new(ReportWrites::default());
    let reporter = ledger.clone().map(|ledger| Reporter {
        ledger,
        dns: dns.clone(),
        started_at_ms,
        settings: report_settings,
        file: cfg.report_file.clone(),
        log: log.clone(),
        writing: Default::default(),
        writes: report_writes.clone(),
    });
    let admin_state = Arc::new(AdminState {
        shutdown: shutdown.clone(),
        ledger: ledger.clone(),
        started_at_ms,
        report: report_settings,
        dns: dns.clone(),
        export: cfg.dns.export,
        metrics: MetricsSources {
            workers: views,
            log: log.clone(),
            dns: dns_counters.clone(),
            report_writes,
            bounds: (cfg.ledger.max_hosts, cfg.ledger.max_paths),
        },
        cache: Default::default(),
    });

    let exit_log = log.clone();
    rt.block_on(async move {
        let admin = tokio::net::TcpListener::from_std(admin)?;
        tokio::spawn(crate::admin::serve(admin, admin_state));
        if let Some(reporter) = reporter.clone() {
            tokio::spawn(reporter.run_every(cfg.report_interval));
        }
        if let (Some(ledger), false) = (ledger.clone(), cfg.green_routes.is_empty()) {
            tokio::spawn(crate::reload::watch_routes(cfg.green_routes.clone(), ledger, log.clone()));
        }
        if upstreams.list.iter().any(|u| u.needs_resolving()) {
            tokio::spawn(upstreams.clone().keep_resolved(RESOLVE_EVERY));
        }
        if let (Some(book), Some(ledger)) = (dns.clone(), ledger.clone()) {
            let (tx, rx) = tokio::sync::mpsc::channel(NEW_HOSTS_QUEUE);
            ledger.announce_new_hosts(tx);
            let names = ledger.clone();
            let settings = cfg.dns.settings.clone();
            let events = log.clone();
            let on_change: crate::dns::task::OnChange = Arc::new(move |host, from, to| {
                events.event("dns_verdict", json!({"host": host, "from": from, "to": to}));
            });
            tokio::spawn(crate::dns::task::run(book, resolver, settings, rx, move || names.host_names(), on_change));
        }
        if let Some(up) = passthrough_up.filter(|u| u.list[0].needs_resolving()) {
            tokio::spawn(up.keep_resolved(RESOLVE_EVERY));
        }
        if let Some(store) = certs {
            tokio::spawn(crate::reload::watch_certs(store, log.clone()));
        }
        if let Some(ready) = ready {
            let _ = ready.send((bound.iter().map(|(a, _)| *a).collect(), admin_addr));
        }
        let stop = async {
            match stop {
                Some(rx) => {
                    let _ = rx.await;
                }
                None => std::future::pending().await,
            }
        };
        let sig = tokio::select! {
            _ = sigterm.recv() => "SIGTERM",
            _ = sigint.recv() => "SIGINT",
            _ = stop => "stop",
        };
        shutdown.set_not_ready();
        log.event("draining", json!({"signal": sig, "drain_delay_ms": cfg.drain_delay.as_millis() as u64}));
        let forced = tokio::select! {
            _ = tokio::time::sleep(cfg.drain_delay) => false,
            _ = sigterm.recv() => true,
            _ = sigint.recv() => true,
        };
        shutdown.stop_accepting();
        log.event(
            "stopping",
            json!({"shutdown_timeout_ms": cfg.shutdown_timeout.as_millis() as u64, "forced": forced}),
        );
        if !forced {
            let all_done = async {
                for _ in 0..cfg.workers {
                    done_rx.recv().await;
                }
            };
            tokio::select! {
                _ = tokio::time::timeout(cfg.shutdown_timeout + Duration::from_secs(1), all_done) => {}
                _ = sigterm.recv() => {}
                _ = sigint.recv() => {}
            }
        }
        if let Some(reporter) = reporter {
            reporter.write_once().await;
        }
        Ok::<_, std::io::Error>(())
    })?;
    drop(rt);
    // Workers that finished are joined; one stuck past the timeout is left behind at exit.
    for t in threads {
        if t.is_finished() {
            let _ = t.join();
        }
    }
    exit_log.event("stopped", json!({"log_lines_dropped": exit_log.dropped()}));
    drop(exit_log);
    writer.finish(Duration::from_secs(2));
    Ok(())
}
