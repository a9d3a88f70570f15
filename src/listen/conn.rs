//! One client connection's state and its single watchdog timer, which enforces the header-read
//! timeout (from the first byte of a request, or from accept, until its header is complete) and the
//! idle keep-alive timeout (no request in flight) without arming a timer per request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use http::HeaderValue;

use crate::io::IoObserver;
use crate::shutdown::now_ms;

/// The HTTP/2 connection preface starts with these bytes.
const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2";

/// What is known about one client connection.
#[derive(Debug)]
pub struct ConnState {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The peer's IP, pre-rendered for X-Forwarded-For.
    pub peer_ip: HeaderValue,
    /// The peer is a trusted proxy (its X-Forwarded-* are believed).
    pub peer_trusted: bool,
    /// When the connection was accepted (process clock, ms).
    pub accepted_ms: u64,
    /// What the TLS handshake told (`None` on plain listeners).
    pub tls: Option<crate::tls::TlsInfo>,
    in_flight: AtomicU32,
    /// 1 + the time the pending request's header started; 0 when no header is pending.
    header_started: AtomicU64,
    idle_since: AtomicU64,
    last_io: AtomicU64,
    first_read: AtomicBool,
    is_h2: AtomicBool,
    alarm: std::sync::OnceLock<Arc<Alarm>>,
}

impl ConnState {
    /// A fresh connection: its first request header is due within the header timeout.
    pub fn new(peer: SocketAddr, peer_trusted: bool) -> Self {
        let now = now_ms();
        let ip = match peer.ip() {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(peer.ip()),
            v4 => v4,
        };
        Self {
            peer,
            peer_ip: HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("unknown")),
            peer_trusted,
            accepted_ms: now,
            tls: None,
            in_flight: AtomicU32::new(0),
            header_started: AtomicU64::new(now + 1),
            idle_since: AtomicU64::new(now),
            last_io: AtomicU64::new(now),
            first_read: AtomicBool::new(false),
            is_h2: AtomicBool::new(false),
            alarm: std::sync::OnceLock::new(),
        }
    }

    /// Hands the connection's alarm over, so a request can ask for the connection to close.
    pub fn set_alarm(&self, alarm: Arc<Alarm>) {
        let _ = self.alarm.set(alarm);
    }

    /// Closes the connection gracefully once what is in flight is answered (HTTP/2: GOAWAY).
    pub fn close_after_response(&self) {
        if let Some(alarm) = self.alarm.get() {
            alarm.ring(Expiry::Stale);
        }
    }

    /// The connection's alarm, once set.
    pub fn alarm(&self) -> Option<&Arc<Alarm>> {
        self.alarm.get()
    }

    /// The same, for a connection that completed a TLS handshake.
    pub fn with_tls(mut self, tls: crate::tls::TlsInfo) -> Self {
        self.tls = Some(tls);
        self
    }

    /// A request's header is complete and the request is being handled.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.header_started.store(0, Ordering::Relaxed);
    }

    /// A request's response is over (or its tunnel closed).
    pub fn request_done(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.idle_since.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// Milliseconds (process clock) of the last byte read or written.
    pub fn last_io(&self) -> u64 {
        self.last_io.load(Ordering::Relaxed)
    }
}

impl IoObserver for ConnState {
    fn on_read(&self, bytes: &[u8]) {
        let now = now_ms();
        self.last_io.store(now, Ordering::Relaxed);
        if !self.first_read.swap(true, Ordering::Relaxed) {
            let n = bytes.len().min(H2_PREFACE_START.len());
            if n >= 3 && bytes[..n] == H2_PREFACE_START[..n] {
                // HTTP/2 clients keep idle connections open with pings: only the idle rule applies.
                self.is_h2.store(true, Ordering::Relaxed);
                self.header_started.store(0, Ordering::Relaxed);
            }
            return;
        }
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.header_started.load(Ordering::Relaxed) == 0
            && !self.is_h2.load(Ordering::Relaxed)
        {
            self.header_started.store(now + 1, Ordering::Relaxed);
        }
    }

    fn on_write(&self) {
        self.last_io.store(now_ms(), Ordering::Relaxed);
    }
}

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

/// The watchdog as a task of its own: rings `alarm` when the connection should close.
pub async fn watch(state: Arc<ConnState>, alarm: Arc<Alarm>, header_timeout: Duration, idle_timeout: Duration) {
    let why = watchdog(&state, header_timeout, idle_timeout).await;
    alarm.ring(why);
}

/// Resolves when the connection should be closed; one timer, re-armed only when it fires.
pub async fn watchdog(state: &ConnState, header_timeout: Duration, idle_timeout: Duration) -> Expiry {
    let (header_ms, idle_ms) = (header_timeout.as_millis() as u64, idle_timeout.as_millis() as u64);
    let sleep = tokio::time::sleep(header_timeout.min(idle_timeout));
    tokio::pin!(sleep);
    loop {
        (&mut sleep).await;
        let now = now_ms();
        let wait_ms = if state.in_flight.load(Ordering::Relaxed) > 0 {
            idle_ms.min(header_ms)
        } else {
            let started = state.header_started.load(Ordering::Relaxed);
            if started != 0 {
                let due = started - 1 + header_ms;
                if now >= due {
                    return Expiry::HeaderTimeout;
                }
                due - now
            } else {
                let due = state.idle_since.load(Ordering::Relaxed) + idle_ms;
                if now >= due {
                    return Expiry::Idle;
                }
                due - now
            }
        };
        sleep.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(wait_ms.max(1)));
    }
}
