//! Reloading green's route table (files on SIGHUP and when they change, polled every [`POLL`];
//! commands every `--green-routes-refresh`: [`routes`]) and the TLS certificates; a broken table
//! or certificate is refused and the last good set kept, with the source and the reason logged.

pub mod command;
pub mod routes;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};

use crate::log::AccessLog;
use crate::tls::certs::CertStore;

/// How often route files are checked for changes.
pub const POLL: Duration = Duration::from_secs(2);

type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// SIGHUP, for a watcher that also polls: without it (a runtime that cannot listen) the watcher
/// goes on polling, and says so once.
pub(super) struct Hangups(Option<tokio::signal::unix::Signal>);

impl Hangups {
    /// Listens for SIGHUP; `what` names what is still polled when it cannot.
    pub(super) fn listen(what: &str) -> Self {
        match signal(SignalKind::hangup()) {
            Ok(s) => Hangups(Some(s)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; {what} is still polled");
                Hangups(None)
            }
        }
    }

    /// The next SIGHUP (never, without a listener).
    pub(super) async fn next(&mut self) {
        match self.0.as_mut() {
            Some(h) => {
                h.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}

/// Watches `--cert-dir` forever: on SIGHUP or a change, loads it again; new handshakes get the new
/// set, open connections keep theirs. A bad file keeps the last good set and is named in the log.
pub async fn watch_certs(store: Arc<CertStore>, log: AccessLog) {
    let mut hup = Hangups::listen("the certificate folder");
    let dirs = vec![store.dir().to_owned()];
    let mut last = fingerprint_async(&dirs).await;
    loop {
        let trigger = tokio::select! {
            _ = hup.next() => "SIGHUP",
            _ = tokio::time::sleep(POLL) => {
                let now = fingerprint_async(&dirs).await;
                if now == last { continue; }
                last = now;
                "file changed"
            }
        };
        let loading = store.clone();
        match tokio::task::spawn_blocking(move || loading.reload()).await {
            Ok(Ok(set)) => {
                let names: Vec<&str> = set.certs().iter().map(|c| c.name.as_str()).collect();
                log.event(
                    "certs_reloaded",
                    json!({"trigger": trigger, "certificates": names, "default": set.default_name()}),
                );
            }
            Ok(Err(e)) => {
                tracing::warn!(file = %e.path.display(), error = %e.why, "certificate reload refused; keeping the last good set");
                log.event(
                    "certs_reload_failed",
                    json!({"trigger": trigger, "file": e.path.display().to_string(), "error": e.why, "kept": "last good set"}),
                );
            }
            Err(_) => {}
        }
    }
}

pub(super) async fn fingerprint_async(paths: &[PathBuf]) -> Fingerprint {
    let paths = paths.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for p in &paths {
            walk(p, &mut out, 0);
        }
        out.sort();
        out
    })
    .await
    .unwrap_or_default()
}

fn walk(p: &Path, out: &mut Fingerprint, depth: usize) {
    let Ok(meta) = std::fs::metadata(p) else {
        out.push((p.to_owned(), None, 0));
        return;
    };
    if meta.is_dir() {
        if depth > 32 {
            return;
        }
        if let Ok(entries) = std::fs::read_dir(p) {
            for e in entries.flatten() {
                walk(&e.path(), out, depth + 1);
            }
        }
    } else {
        out.push((p.to_owned(), meta.modified().ok(), meta.len()));
    }
}
