//! One client connection's state and its single watchdog timer, which enforces the header-read
//! timeout (from the first byte of a request, or from accept, until its header is complete) and the
//! idle keep-alive timeout (no request in flight) without arming a timer per request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use super::alarm::{Alarm, Expiry};
use super::io::IoObserver;
use crate::base::time::coarse_ms;
use crate::tls::accept::TlsInfo;

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
    pub tls: Option<TlsInfo>,
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
        let now = coarse_ms();
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
    pub fn with_tls(mut self, tls: TlsInfo) -> Self {
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
            self.idle_since.store(coarse_ms(), Ordering::Relaxed);
        }
    }

    /// Milliseconds (process clock) of the last byte read or written.
    pub fn last_io(&self) -> u64 {
        self.last_io.load(Ordering::Relaxed)
    }
}

impl IoObserver for ConnState {
    fn on_read(&self, bytes: &[u8]) {
        let now = coarse_ms();
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
        self.last_io.store(coarse_ms(), Ordering::Relaxed);
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
        let now = coarse_ms();
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
