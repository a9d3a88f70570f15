//! A handle for sending log lines: access records packed into the worker's own lane, event lines
//! on its own queue; when the writer is behind, lines are dropped and counted instead of
//! blocking a request.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

use super::lane::Lane;
use super::packed::RecordLane;
use super::record::AccessRecord;
use super::writer::LogWriter;
use crate::base::time::{rfc3339, unix_ms};
use crate::record::Sighting;

/// A handle for sending log lines; cheap to clone, one per worker.
#[derive(Clone)]
pub struct AccessLog {
    tx: SyncSender<String>,
    records: Arc<RecordLane>,
    dropped: Arc<AtomicU64>,
    new_lanes: SyncSender<Lane>,
    capacity: usize,
}

impl AccessLog {
    /// Starts the writer thread on `out`, with room for `capacity` queued lines per handle; the
    /// first handle and the writer come back.
    pub fn start<W: Write + Send + 'static>(out: W, capacity: usize) -> std::io::Result<(AccessLog, LogWriter)> {
        let (first, tx, records) = Lane::new(capacity);
        let (new_lanes, lanes_rx) = sync_channel(1024);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = LogWriter::spawn(out, first, lanes_rx, dropped.clone())?;
        Ok((AccessLog { tx, records, dropped, new_lanes, capacity }, writer))
    }

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
        match s {
            Sighting::NewHost { host, green } => {
                self.event("new_host", serde_json::json!({"host": host, "green": green.as_str()}))
            }
            Sighting::NewPath { host, path, green, matched } => self.event(
                "new_path",
                serde_json::json!({"host": host, "path": path, "green": green.as_str(),
                    "matched_route": matched.as_ref().map(|m| m.to_string())}),
            ),
        }
    }

    /// Lines dropped so far because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
