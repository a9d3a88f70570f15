//! Phase 2 of `serve`: bind every socket, start the workers (one thread and runtime each), log
//! what started, and spawn the tasks beside the request path on the main runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::load::Loaded;
use super::report_file::RestoreOutcome;
use super::settings::ServeSettings;
use super::ServeError;
use crate::admin::metrics::MetricsSources;
use crate::admin::AdminState;
use crate::base::error::ConfigError;
use crate::base::time::rfc3339;
use crate::listen::passthrough::PassthroughSettings;
use crate::listen::{ListenKind, Worker};
use crate::log::AccessLog;
use crate::net::bind::bind_reuseport;
use crate::net::shutdown::Shutdown;
use crate::proxy::stats::WorkerView;
use crate::proxy::{Proxy, UpstreamProtocol};
use crate::report::judge::ReportSettings;
use crate::report::writer::{ReportWrites, Reporter};
use crate::upstream::pool::PoolSettings;

/// How often upstream host names are resolved again (load balancer addresses change).
const RESOLVE_EVERY: Duration = Duration::from_secs(30);

/// New hosts waiting for the DNS task; beyond this they are found by its periodic sweep instead.
const NEW_HOSTS_QUEUE: usize = 65_536;

/// How often first sightings held back by the log's rate limit are summed up in one line.
pub(super) const SIGHTINGS_EVERY: Duration = Duration::from_secs(60);

/// The sockets, bound before any thread starts.
pub(super) struct Bound {
    /// Each worker's listener sockets.
    pub per_worker: Vec<Vec<(std::net::TcpListener, ListenKind)>>,
    /// Each listener's address and kind name (for the `listening` events and the hooks).
    pub listeners: Vec<(SocketAddr, &'static str)>,
    /// The admin listener.
    pub admin: std::net::TcpListener,
}

/// Binds every listener once per worker (`SO_REUSEPORT`) and the admin listener.
pub(super) fn bind(s: &ServeSettings, loaded: &Loaded) -> Result<Bound, ServeError> {
    let mut per_worker: Vec<Vec<(std::net::TcpListener, ListenKind)>> = (0..s.workers).map(|_| Vec::new()).collect();
    let mut kinds: Vec<(SocketAddr, ListenKind)> = s.listen.iter().map(|a| (*a, ListenKind::Plain)).collect();
    if let Some(store) = &loaded.certs {
        let kind = ListenKind::Tls { certs: store.clone(), handshake_timeout: s.tls_handshake_timeout };
        kinds.extend(s.tls_listen.iter().map(|a| (*a, kind.clone())));
    }
    if let Some(up) = &loaded.passthrough {
        let kind = ListenKind::Passthrough(Arc::new(PassthroughSettings {
            upstream: up.list[0].clone(),
            connect_timeout: s.connect_timeout,
            hello_timeout: s.tls_handshake_timeout,
            idle_timeout: s.passthrough_idle_timeout,
        }));
        kinds.extend(s.passthrough_listen.iter().map(|a| (*a, kind.clone())));
    }
    let mut listeners = Vec::new();
    for (addr, kind) in &kinds {
        let (sockets, local) = bind_reuseport(*addr, s.workers)?;
        for (i, socket) in sockets.into_iter().enumerate() {
            per_worker[i].push((socket, kind.clone()));
        }
        listeners.push((local, kind.name()));
    }
    let admin = std::net::TcpListener::bind(s.admin_listen)
        .map_err(|source| ConfigError::Bind { addr: s.admin_listen, source })?;
    admin.set_nonblocking(true)?;
    Ok(Bound { per_worker, listeners, admin })
}

/// The running workers.
pub(super) struct Workers {
    /// Their threads (joined at exit when they finished).
    pub threads: Vec<std::thread::JoinHandle<()>>,
    /// What `/metrics` reads of each.
    pub views: Vec<WorkerView>,
    /// One message per worker when it has finished.
    pub done: tokio::sync::mpsc::Receiver<()>,
}

/// Starts one thread per worker, each serving its own sockets with its own proxy.
pub(super) fn workers(
    s: &ServeSettings,
    loaded: &Loaded,
    per_worker: Vec<Vec<(std::net::TcpListener, ListenKind)>>,
    log: &AccessLog,
    shutdown: &Arc<Shutdown>,
) -> Result<Workers, ServeError> {
    let settings = Arc::new(s.proxy.clone());
    let pool = Arc::new(PoolSettings {
        connect_timeout: s.connect_timeout,
        idle_timeout: s.upstream_idle_timeout,
        upstream_timeout: s.proxy.upstream_timeout,
        max_idle: s.upstream_max_idle,
        h2: s.proxy.upstream_protocol == UpstreamProtocol::H2,
        tls: loaded.upstream_tls.as_ref().map(|(config, _)| config.clone()),
    });
    let pool_h2 = (s.proxy.upstream_protocol == UpstreamProtocol::Auto)
        .then(|| Arc::new(PoolSettings { h2: true, tls: loaded.upstream_tls_h2.clone(), ..(*pool).clone() }));
    let (done_tx, done) = tokio::sync::mpsc::channel::<()>(s.workers);
    let (mut threads, mut views) = (Vec::new(), Vec::new());
    for (i, sockets) in per_worker.into_iter().enumerate() {
        let proxy = Proxy::new(
            settings.clone(),
            loaded.upstreams.clone(),
            pool.clone(),
            pool_h2.clone(),
            log.lane(),
            loaded.ledger.clone(),
        );
        let proxy = Arc::new(proxy);
        views.push(proxy.view());
        let worker = Worker {
            proxy,
            listeners: sockets,
            timeouts: s.client,
            shutdown: shutdown.clone(),
            shutdown_timeout: s.shutdown_timeout,
        };
        let done = done_tx.clone();
        threads.push(std::thread::Builder::new().name(format!("worker-{i}")).spawn(move || {
            if let Err(e) = worker.run() {
                tracing::error!(worker = i, error = %e, "worker failed");
            }
            let _ = done.blocking_send(());
        })?);
    }
    Ok(Workers { threads, views, done })
}

/// The start-up events: listeners, certificates, TLS toward blue, routes, DNS evidence.
pub(super) fn log_started(
    s: &ServeSettings,
    loaded: &Loaded,
    listeners: &[(SocketAddr, &'static str)],
    admin: SocketAddr,
    log: &AccessLog,
) {
    log_restore(s, &loaded.restore, log);
    for (addr, kind) in listeners {
        let upstream = match (*kind, &s.passthrough_upstream) {
            ("passthrough", Some(up)) => up.authority(),
            _ => s.upstream.to_string(),
        };
        log.event(
            "listening",
            json!({"listener": kind, "addr": addr.to_string(), "upstream": upstream, "workers": s.workers}),
        );
    }
    if let Some(store) = &loaded.certs {
        let set = store.current();
        let certificates: Vec<serde_json::Value> = set
            .certs()
            .iter()
            .map(|c| {
                json!({"name": c.name, "file": c.cert_file.display().to_string(), "dns_names": c.dns_names,
                    "not_after": c.not_after_ms.map(rfc3339)})
            })
            .collect();
        log.event("certs_loaded", json!({"dir": store.dir().display().to_string(), "certificates": certificates, "default": set.default_name()}));
    }
    if let Some((_, roots)) = &loaded.upstream_tls {
        if s.upstream_insecure {
            tracing::warn!(
                "--upstream-insecure: blue's TLS certificate is NOT verified; anyone on the path can impersonate blue"
            );
            log.event(
                "upstream_tls_insecure",
                json!({"warning": "--upstream-insecure: blue's TLS certificate is NOT verified"}),
            );
        }
        let sni = loaded.upstreams.list[0].server_name.as_ref().map(|n| n.to_str().into_owned());
        log.event("upstream_tls", json!({"roots": roots, "sni": sni}));
    }
    log.event("listening", json!({"listener": "admin", "addr": admin.to_string()}));
    if s.green.any() {
        let routes = &loaded.routes;
        let cluster = &s.green.cluster;
        log.event(
            "routes_loaded",
            json!({"objects": routes.objects(), "paths": s.green.files, "commands": s.green.commands,
                   "implementation_specific_paths": routes.implementation_specific(),
                   "skipped": routes.skipped().len(), "not_serving": routes.not_serving().count(),
                   "kubernetes_version": cluster.kubernetes_version.map(|v| v.to_string()),
                   "ingress_classes": cluster.ingress_classes,
                   "gateways": cluster.gateways.iter().map(ToString::to_string).collect::<Vec<_>>()}),
        );
        for (route, why) in routes.not_serving() {
            log.event("routes_not_serving", json!({"object": route.to_string(), "reason": why}));
        }
        crate::reload::routes::log_events(log, loaded.route_events.clone());
    }
    if let (Some((_, _, roots)), Some(p)) = (&loaded.probe, &s.probe) {
        log.event(
            "green_probe",
            json!({"url": p.green.to_string(), "rate": p.rate, "interval_s": p.interval.as_secs(),
                   "timeout_ms": p.timeout.as_millis() as u64, "roots": roots,
                   "user_agent": crate::probe::client::USER_AGENT}),
        );
    }
    if let Some(book) = &loaded.dns {
        let names = |l: &[crate::dns::targets::Target]| l.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        log.event(
            "dns_evidence",
            json!({"live": book.live(), "servers": s.dns.resolver.servers.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                   "zones": book.route53().zones.iter().map(|z| json!({"id": z.id, "name": z.name, "records": z.records.len()})).collect::<Vec<_>>(),
                   "blue_targets": names(&book.targets().blue),
                   "green_targets": names(&book.targets().green)}),
        );
    }
}

/// The report writer, when recording (it writes the file only with `--report-file`).
pub(super) fn reporter(
    s: &ServeSettings,
    loaded: &Loaded,
    started_at_ms: u64,
    log: &AccessLog,
    writes: &Arc<ReportWrites>,
) -> Option<Reporter> {
    loaded.ledger.clone().map(|ledger| Reporter {
        ledger,
        dns: loaded.dns.clone(),
        started_at_ms,
        replica_id: s.replica_id.as_str().into(),
        settings: ReportSettings { quiet_period: s.quiet_period, probing: s.probe.is_some() },
        probe: loaded.probe.as_ref().map(|p| p.0.clone()),
        file: loaded.report_target.as_ref().map(|t| t.path.clone()),
        upload: loaded.report_target.as_ref().and_then(|t| t.upload.clone()),
        log: log.clone(),
        writing: Default::default(),
        writes: writes.clone(),
    })
}

/// What the admin endpoints read.
pub(super) fn admin_state(
    s: &ServeSettings,
    loaded: &Loaded,
    started_at_ms: u64,
    shutdown: &Arc<Shutdown>,
    views: Vec<WorkerView>,
    log: &AccessLog,
    report_writes: Arc<ReportWrites>,
) -> Arc<AdminState> {
    Arc::new(AdminState {
        shutdown: shutdown.clone(),
        ledger: loaded.ledger.clone(),
        started_at_ms,
        replica_id: s.replica_id.as_str().into(),
        report: ReportSettings { quiet_period: s.quiet_period, probing: s.probe.is_some() },
        dns: loaded.dns.clone(),
        probe: loaded.probe.as_ref().map(|p| p.0.clone()),
        fleet: loaded.fleet.clone(),
        export: s.export,
        metrics: MetricsSources {
            workers: views,
            log: log.clone(),
            dns: loaded.dns_counters.clone(),
            report_writes,
            bounds: (s.ledger.max_hosts, s.ledger.max_paths),
            routes: loaded.route_counters.clone(),
            probe: loaded.probe.as_ref().map(|p| p.0.clone()),
            certs: loaded.certs.clone(),
        },
        summary: Default::default(),
        fleet_page: Default::default(),
    })
}

/// Spawns the tasks beside the request path on the current (main) runtime: the admin server, the
/// report writer, the route and certificate watchers, upstream re-resolution and the DNS task.
pub(super) fn spawn_tasks(
    s: &ServeSettings,
    loaded: Loaded,
    admin: tokio::net::TcpListener,
    admin_state: Arc<AdminState>,
    reporter: Option<Reporter>,
    log: &AccessLog,
) {
    tokio::spawn(crate::admin::keep_summary(admin_state.clone()));
    tokio::spawn(crate::admin::serve(admin, admin_state));
    if let Some(reporter) = reporter {
        tokio::spawn(reporter.clone().sightings_every(SIGHTINGS_EVERY));
        tokio::spawn(reporter.run_every(s.report_interval));
    }
    if let (Some(ledger), Some(sources)) = (loaded.ledger.clone(), loaded.route_sources) {
        tokio::spawn(crate::reload::routes::watch(sources, ledger, log.clone()));
    }
    if let (Some((book, client, _)), Some(ledger), Some(p)) = (loaded.probe.clone(), loaded.ledger.clone(), &s.probe) {
        let pace = crate::probe::task::Pace { rate: p.rate, interval: p.interval };
        tokio::spawn(crate::probe::task::run(ledger, book, client, pace));
    }
    if loaded.upstreams.list.iter().any(|u| u.needs_resolving()) {
        tokio::spawn(loaded.upstreams.clone().keep_resolved(RESOLVE_EVERY));
    }
    if let (Some(book), Some(ledger)) = (loaded.dns.clone(), loaded.ledger.clone()) {
        let (tx, rx) = tokio::sync::mpsc::channel(NEW_HOSTS_QUEUE);
        ledger.announce_new_hosts(tx);
        let names = ledger.clone();
        let events = log.clone();
        let on_change: crate::dns::task::OnChange = Arc::new(move |host, from, to| {
            events.event("dns_verdict", json!({"host": host, "from": from.as_str(), "to": to.as_str()}));
        });
        let resolver = s.dns.resolver.clone();
        let task = crate::dns::task::run(
            book,
            loaded.resolver,
            resolver,
            rx,
            move |f: &mut dyn FnMut(&str)| names.for_each_name(f),
            on_change,
        );
        tokio::spawn(task);
    }
    if let Some(up) = loaded.passthrough.filter(|u| u.list[0].needs_resolving()) {
        tokio::spawn(up.keep_resolved(RESOLVE_EVERY));
    }
    if let Some(store) = loaded.certs {
        tokio::spawn(crate::reload::watch_certs(store, log.clone()));
    }
}

/// One line on what reading back `--report-file` did: operators must see a restart continue the
/// count, or why it could not.
fn log_restore(s: &ServeSettings, restore: &RestoreOutcome, log: &AccessLog) {
    let file = s.report_file.as_ref().map(|f| f.to_string());
    match restore {
        RestoreOutcome::Fresh => {}
        RestoreOutcome::Restored(r) => log.event(
            "report_restored",
            json!({"file": file, "hosts": r.hosts, "hosts_bucketed": r.bucketed, "requests": r.requests,
                   "started_at": rfc3339(r.started_at_ms), "replica_id": r.replica_id}),
        ),
        RestoreOutcome::Failed { error, set_aside } => {
            tracing::warn!(%error, "could not read back the report file; counting starts fresh");
            log.event(
                "report_restore_failed",
                json!({"file": file, "error": error, "set_aside": set_aside,
                       "message": "the last report could not be read back; it was moved aside and counting starts fresh"}),
            );
        }
    }
}
