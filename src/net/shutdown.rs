//! Graceful shutdown, Kubernetes-style: readiness off, drain delay, stop accepting, wait for work.
//!
//! [`Shutdown`] is shared by every worker and the admin server; [`Tracker`] counts live connections
//! and tunnels so a worker knows when it may exit.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Notify};

/// The shared shutdown state.
#[derive(Debug)]
pub struct Shutdown {
    ready: AtomicBool,
    stop_accepting: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self { ready: AtomicBool::new(true), stop_accepting: watch::channel(false).0 }
    }
}

impl Shutdown {
    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// First step of a shutdown: `/readyz` turns 503, traffic still flows.
    pub fn set_not_ready(&self) {
        self.ready.store(false, Ordering::Relaxed);
    }

    /// Second step: listeners stop accepting and connections are asked to finish.
    pub fn stop_accepting(&self) {
        self.stop_accepting.send_replace(true);
    }

    /// A receiver that turns `true` when accepting stops.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.stop_accepting.subscribe()
    }
}

/// Counts live connections or tunnels; [`Tracker::wait_idle`] resolves when none is left. Aligned
/// to its own cache lines: each worker has its own, allocated side by side at start-up.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Tracker {
    live: AtomicUsize,
    idle: Notify,
}

impl Tracker {
    /// Registers one unit of work until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> TrackGuard {
        self.live.fetch_add(1, Ordering::Relaxed);
        TrackGuard(self.clone())
    }

    /// How many units are live.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Waits until no unit is live.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.live() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Held while a connection or tunnel lives.
#[derive(Debug)]
pub struct TrackGuard(Arc<Tracker>);

impl Drop for TrackGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
