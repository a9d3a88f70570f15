//! Phase 3 of `serve`: wait for SIGTERM/SIGINT (or the embedding caller's stop), then shut down
//! the Kubernetes way: readiness off, keep accepting for the drain delay, stop accepting, wait for
//! in-flight work up to the shutdown timeout, write the report one last time. A second signal
//! skips the waits.

use std::time::Duration;

use serde_json::json;
use tokio::signal::unix::Signal;

use crate::log::AccessLog;
use crate::net::shutdown::Shutdown;
use crate::report::writer::Reporter;

/// The signals `serve` stops on.
pub(super) struct Signals {
    /// SIGTERM.
    pub term: Signal,
    /// SIGINT.
    pub int: Signal,
}

/// What the shutdown waits for and finishes.
pub(super) struct Stopping<'a> {
    pub shutdown: &'a Shutdown,
    pub log: &'a AccessLog,
    pub reporter: Option<Reporter>,
    pub done: &'a mut tokio::sync::mpsc::Receiver<()>,
    pub workers: usize,
    pub drain_delay: Duration,
    pub shutdown_timeout: Duration,
    /// How often held-back first sightings are summed up (the last summary's interval).
    pub sightings_every: Duration,
}

/// Waits for the first signal (or `stop`), then runs the shutdown sequence to its end.
pub(super) async fn run(sig: &mut Signals, stop: Option<tokio::sync::oneshot::Receiver<()>>, s: Stopping<'_>) {
    let stop = async {
        match stop {
            Some(rx) => {
                let _ = rx.await;
            }
            None => std::future::pending().await,
        }
    };
    let name = tokio::select! {
        _ = sig.term.recv() => "SIGTERM",
        _ = sig.int.recv() => "SIGINT",
        _ = stop => "stop",
    };
    s.shutdown.set_not_ready();
    s.log.event("draining", json!({"signal": name, "drain_delay_ms": s.drain_delay.as_millis() as u64}));
    let forced = tokio::select! {
        _ = tokio::time::sleep(s.drain_delay) => false,
        _ = sig.term.recv() => true,
        _ = sig.int.recv() => true,
    };
    s.shutdown.stop_accepting();
    s.log.event("stopping", json!({"shutdown_timeout_ms": s.shutdown_timeout.as_millis() as u64, "forced": forced}));
    if !forced {
        let done = s.done;
        let all_done = async {
            for _ in 0..s.workers {
                done.recv().await;
            }
        };
        tokio::select! {
            _ = tokio::time::timeout(s.shutdown_timeout + Duration::from_secs(1), all_done) => {}
            _ = sig.term.recv() => {}
            _ = sig.int.recv() => {}
        }
    }
    if let Some(reporter) = s.reporter {
        reporter.log_held_sightings(s.sightings_every);
        reporter.write_once().await;
    }
}
