//! `cutover-proxy serve`, in three phases: [`load`] everything that can refuse to start, [`start`]
//! (bind, workers, the tasks beside the request path), [`stop`] on SIGTERM/SIGINT.

mod load;
mod report_file;
pub mod settings;
mod start;
mod stop;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};

use crate::base::error::ConfigError;
use crate::base::time::unix_ms;
use crate::log::AccessLog;
use crate::net::shutdown::Shutdown;
use crate::report::writer::ReportWrites;
use crate::routes::RouteError;
use crate::tls::certs::CertError;
pub use settings::ServeSettings;

/// Queued log lines per worker before new ones are dropped and counted: ≈ 60 ms of traffic at
/// 35 k requests/s per worker (the writer drains every 2 ms). Small on purpose: a lane that fits
/// in cache costs measurably less per request than one that misses on every record.
const LOG_QUEUE: usize = 2048;

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

/// Where an embedding caller (the demo) takes over from the process defaults.
pub struct Hooks {
    /// Where the JSON log goes (stdout for `serve`).
    pub out: Box<dyn std::io::Write + Send>,
    /// Told the bound addresses once listening: (proxy listeners, admin).
    pub ready: Option<std::sync::mpsc::Sender<(Vec<SocketAddr>, SocketAddr)>>,
    /// Starts the shutdown like a signal would (without the drain delay's wait when sent twice).
    pub stop: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// Runs the proxy until a signal ends it; returns once in-flight work is done or timed out.
pub fn run(settings: ServeSettings) -> Result<(), ServeError> {
    run_with(settings, Hooks { out: Box::new(std::io::stdout()), ready: None, stop: None })
}

/// [`run`] with the log, readiness and stop under the caller's control.
pub fn run_with(s: ServeSettings, hooks: Hooks) -> Result<(), ServeError> {
    let Hooks { out, ready, stop } = hooks;
    // The admin server and the tasks beside the request path; their heavy passes run on the
    // runtime's blocking threads, below the workers' priority. Loading uses it too (a report
    // restored from S3).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(crate::net::priority::lower_current_thread)
        .build()?;
    let loaded = load::load(&s, &rt)?;
    let started_at_ms = loaded.restore.started_at_ms(unix_ms());
    let (log, writer) = AccessLog::start(out, LOG_QUEUE)?;
    let bound = start::bind(&s, &loaded)?;
    let admin_addr = bound.admin.local_addr()?;
    let shutdown = Arc::new(Shutdown::default());
    let mut signals = rt.block_on(async {
        Ok::<_, std::io::Error>(stop::Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    })?;
    // Resolve named upstreams once before taking traffic.
    rt.block_on(loaded.upstreams.resolve_all(Duration::from_secs(5)));
    if let Some(up) = &loaded.passthrough {
        rt.block_on(up.resolve_all(Duration::from_secs(5)));
    }
    let start::Bound { per_worker, listeners, admin } = bound;
    let mut workers = start::workers(&s, &loaded, per_worker, &log, &shutdown)?;
    start::log_started(&s, &loaded, &listeners, admin_addr, &log);
    let report_writes = Arc::new(ReportWrites::default());
    let reporter = start::reporter(&s, &loaded, started_at_ms, &log, &report_writes);
    let views = std::mem::take(&mut workers.views);
    let admin_state = start::admin_state(&s, &loaded, started_at_ms, &shutdown, views, &log, report_writes);
    rt.block_on(async {
        let admin = tokio::net::TcpListener::from_std(admin)?;
        start::spawn_tasks(&s, loaded, admin, admin_state, reporter.clone(), &log);
        if let Some(ready) = ready {
            let _ = ready.send((listeners.iter().map(|(a, _)| *a).collect(), admin_addr));
        }
        let stopping = stop::Stopping {
            shutdown: &shutdown,
            log: &log,
            reporter,
            done: &mut workers.done,
            workers: s.workers,
            drain_delay: s.drain_delay,
            shutdown_timeout: s.shutdown_timeout,
            sightings_every: start::SIGHTINGS_EVERY,
        };
        stop::run(&mut signals, stop, stopping).await;
        Ok::<_, std::io::Error>(())
    })?;
    drop(rt);
    // Workers that finished are joined; one stuck past the timeout is left behind at exit.
    for t in workers.threads {
        if t.is_finished() {
            let _ = t.join();
        }
    }
    log.event("stopped", json!({"log_lines_dropped": log.dropped()}));
    drop(log);
    writer.finish(Duration::from_secs(2));
    Ok(())
}
