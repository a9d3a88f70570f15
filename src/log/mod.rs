//! The JSON log on stdout: one access line per request and `event` lines, written by a writer
//! thread in batches. The request path only appends a packed record to its worker's lane
//! ([`packed`]); when the writer is behind, lines are dropped and counted instead of blocking a
//! request.

mod format;
mod packed;
mod writer;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Method, Version};

use crate::base::cause::Cause;
use crate::base::time::{rfc3339, unix_ms};
use crate::record::Sighting;
use packed::RecordLane;

pub use format::format_access;
pub use writer::LogWriter;

/// What one access line says.
#[derive(Debug)]
pub struct AccessRecord {
    /// When the request arrived.
    pub ts: SystemTime,
    /// Client IP (after trusted X-Forwarded-For).
    pub client_ip: IpAddr,
    /// Method.
    pub method: Method,
    /// Host as received.
    pub host: Option<Text>,
    /// Path, with the query only under `--log-query`.
    pub path: Text,
    /// Client's HTTP version.
    pub version: Version,
    /// Status sent to the client.
    pub status: u16,
    /// Request body bytes (plus tunnelled bytes from the client).
    pub bytes_in: u64,
    /// Response body bytes (plus tunnelled bytes toward the client).
    pub bytes_out: u64,
    /// From arrival to the end of the response.
    pub duration: Duration,
    /// Upstream name.
    pub upstream: &'static str,
    /// Cause of failure.
    pub error: Option<Cause>,
    /// The host's DNS had moved to green and the request came on a connection opened before.
    pub stale_conn: bool,
    /// On a TLS listener: what the handshake said.
    pub tls: Option<TlsLog>,
}

/// The TLS part of an access line.
#[derive(Debug)]
pub struct TlsLog {
    /// The SNI (`null` in the line when the client sent none).
    pub sni: Option<Text>,
    /// No certificate named the SNI: the default was served.
    pub default_cert: bool,
    /// The Host differs from the SNI.
    pub sni_mismatch: bool,
}

/// Bytes of packed records a lane holds per line of `capacity` (a typical record packs into
/// 80–150 bytes).
const BYTES_PER_LINE: usize = 256;

/// A copy of a short byte string, inline up to 94 bytes (host names, most paths), so a record owns
/// its text without keeping the connection's read buffer alive or allocating.
#[derive(Clone)]
pub enum Text {
    /// Up to 94 bytes.
    Inline(u8, [u8; 94]),
    /// Longer.
    Heap(Box<[u8]>),
}

impl Text {
    /// Copies `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= 94 {
            let mut buf = [0u8; 94];
            buf[..bytes.len()].copy_from_slice(bytes);
            Text::Inline(bytes.len() as u8, buf)
        } else {
            Text::Heap(bytes.into())
        }
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Text::Inline(len, buf) => &buf[..*len as usize],
            Text::Heap(b) => b,
        }
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// A handle for sending log lines; cheap to clone, one per worker.
#[derive(Clone)]
pub struct AccessLog {
    tx: SyncSender<String>,
    records: Arc<RecordLane>,
    dropped: Arc<AtomicU64>,
    new_lanes: SyncSender<Lane>,
    capacity: usize,
}

/// What the writer reads of one handle: its event lines and its packed access records.
struct Lane {
    events: Receiver<String>,
    records: Arc<RecordLane>,
    /// The buffer swapped in at the next pass (keeps its capacity).
    spare: Vec<u8>,
}

impl Lane {
    fn new(capacity: usize) -> (Lane, SyncSender<String>, Arc<RecordLane>) {
        let (tx, events) = sync_channel(capacity);
        let budget = capacity.saturating_mul(BYTES_PER_LINE);
        let records = Arc::new(RecordLane::new(budget));
        let spare = Vec::with_capacity(budget.min(1 << 20));
        (Lane { events, records: records.clone(), spare }, tx, records)
    }
}

impl AccessLog {
    /// A handle with a lane of its own, for one worker: workers then never contend on a queue.
    pub fn lane(&self) -> AccessLog {
        let (lane, tx, records) = Lane::new(self.capacity);
        let _ = self.new_lanes.send(lane);
        AccessLog {
            tx,
            records,
            dropped: self.dropped.clone(),
            new_lanes: self.new_lanes.clone(),
            capacity: self.capacity,
        }
    }

    /// Queues an access line; drops and counts it when the writer is behind.
    pub fn access(&self, rec: AccessRecord) {
        if !self.records.push(&rec) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues an `event` line: `{"ts":…,"event":name, …fields}`.
    pub fn event(&self, name: &str, fields: serde_json::Value) {
        let mut obj = serde_json::Map::new();
        obj.insert("ts".into(), serde_json::Value::String(rfc3339(unix_ms())));
        obj.insert("event".into(), serde_json::Value::String(name.into()));
        if let serde_json::Value::Object(more) = fields {
            obj.extend(more);
        }
        let line = serde_json::Value::Object(obj).to_string();
        if let Err(TrySendError::Full(_)) = self.tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Announces a first sighting as a `new_host` / `new_path` event.
    pub fn sighting(&self, s: &Sighting) {
        let verdict = |routed: &Option<bool>| match routed {
            Some(true) => "routed",
            Some(false) => "unrouted",
            None => "unknown",
        };
        match s {
            Sighting::NewHost { host, routed } => {
                self.event("new_host", serde_json::json!({"host": host, "green": verdict(routed)}))
            }
            Sighting::NewPath { host, path, routed, matched } => self.event(
                "new_path",
                serde_json::json!({"host": host, "path": path, "green": verdict(routed),
                    "matched_route": matched.as_ref().map(|m| m.to_string())}),
            ),
        }
    }

    /// Lines dropped so far because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
