//! A connection's alarm: rung once by its watchdog or by a shutdown, selected on by the
//! connection's task; and the registry of a worker's alarms a drain rings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Why a connection should close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A request header did not complete in time (slowloris, or a silent new connection).
    HeaderTimeout,
    /// No request for the idle timeout.
    Idle,
    /// The proxy is shutting down: finish what is in flight, then close.
    Drain,
    /// `--close-stale-connections`: the host's DNS moved to green; close gracefully (HTTP/2
    /// GOAWAY) but keep watching the connection's timeouts.
    Stale,
}

/// Rings a connection's task once, from its watchdog or from a shutdown. The task only polls the
/// receiving end, a cheap check, instead of a timer and a shared notifier on every wake-up.
#[derive(Debug)]
pub struct Alarm(Mutex<Option<oneshot::Sender<Expiry>>>);

impl Alarm {
    /// A new alarm and the receiver the connection task selects on.
    pub fn new() -> (Arc<Alarm>, oneshot::Receiver<Expiry>) {
        let (tx, rx) = oneshot::channel();
        (Arc::new(Alarm(Mutex::new(Some(tx)))), rx)
    }

    /// A fresh receiver after a [`Expiry::Stale`] ring, so later rings (idle, drain) still arrive.
    pub fn rearm(&self) -> oneshot::Receiver<Expiry> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(tx);
        }
        rx
    }

    /// Rings with `why`; only the first ring counts.
    pub fn ring(&self, why: Expiry) {
        if let Some(tx) = self.0.lock().ok().and_then(|mut g| g.take()) {
            let _ = tx.send(why);
        }
    }
}

/// One worker's live connections, so a shutdown can ring every one of them.
#[derive(Debug, Default)]
pub struct Registry {
    draining: AtomicBool,
    next: AtomicU64,
    alarms: Mutex<HashMap<u64, Arc<Alarm>>>,
}

impl Registry {
    /// Registers a connection's alarm; rings it at once if a drain already began.
    pub fn add(&self, alarm: Arc<Alarm>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut map) = self.alarms.lock() {
            map.insert(id, alarm.clone());
        }
        if self.draining.load(Ordering::Acquire) {
            alarm.ring(Expiry::Drain);
        }
        id
    }

    /// Forgets a closed connection.
    pub fn remove(&self, id: u64) {
        if let Ok(mut map) = self.alarms.lock() {
            map.remove(&id);
        }
    }

    /// Rings every connection with [`Expiry::Drain`].
    pub fn drain_all(&self) {
        self.draining.store(true, Ordering::Release);
        let alarms: Vec<Arc<Alarm>> = match self.alarms.lock() {
            Ok(map) => map.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        for a in alarms {
            a.ring(Expiry::Drain);
        }
    }
}
