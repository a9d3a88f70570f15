//! Graceful shutdown, Kubernetes-style: readiness off, drain delay, stop accepting, wait for work.
//!
//! [`Shutdown`] is shared by every worker and the admin server; [`Tracker`] counts live connections
//! and tunnels so a worker knows when it may exit.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{watch, Notify};

/// Milliseconds since the process started, refreshed every [`TICK`] by a ticker thread: a
/// relaxed atomic load instead of a clock read on every socket read and write. Only coarse
/// deadlines (timeouts of a second or more) use it.
pub fn now_ms() -> u64 {
    clock().ms.load(Ordering::Relaxed)
}

/// The wall-clock time of the monotonic instant `at`, without a second clock read: the ticker
/// thread keeps the wall time of the process's start instant current, so a clock step (NTP) shows
/// within a [`TICK`].
pub fn wall_clock(at: Instant) -> SystemTime {
    let c = clock();
    let base = UNIX_EPOCH + Duration::from_nanos(c.wall_at_start_ns.load(Ordering::Relaxed));
    base + at.saturating_duration_since(c.start)
}

struct Clock {
    start: Instant,
    ms: AtomicU64,
    /// Wall time of `start`, in nanoseconds since the Unix epoch.
    wall_at_start_ns: AtomicU64,
}

impl Clock {
    fn wall_at_start_ns(start: Instant) -> u64 {
        let now = SystemTime::now();
        let since = start.elapsed();
        now.checked_sub(since).and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as u64)
    }
}

fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Arc<Clock>> = OnceLock::new();
    CLOCK.get_or_init(|| {
        let start = Instant::now();
        let clock = Arc::new(Clock {
            start,
            ms: AtomicU64::new(0),
            wall_at_start_ns: AtomicU64::new(Clock::wall_at_start_ns(start)),
        });
        let ticker = clock.clone();
        let spawned = std::thread::Builder::new().name("coarse-clock".into()).spawn(move || loop {
            std::thread::sleep(TICK);
            ticker.ms.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            ticker.wall_at_start_ns.store(Clock::wall_at_start_ns(start), Ordering::Relaxed);
        });
        if spawned.is_err() {
            tracing::error!("cannot start the clock thread; timeouts will not fire");
        }
        clock
    })
}

/// Resolution of [`now_ms`].
pub const TICK: std::time::Duration = std::time::Duration::from_millis(5);

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
