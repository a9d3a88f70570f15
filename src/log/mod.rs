//! The JSON log on stdout: one access line per request and `event` lines, written by a writer
//! thread in batches. The request path only appends a packed record to its worker's lane
//! ([`packed`]); when the writer is behind, lines are dropped and counted instead of blocking a
//! request.

mod packed;

use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, Version};

use crate::record::ledger::Sighting;
use packed::{Decoder, RecordLane, View};

/// The writer's pause between batches while lines arrive, and its longest pause when idle.
const MIN_NAP: Duration = Duration::from_millis(2);
const MAX_NAP: Duration = Duration::from_millis(32);

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
    pub error: Option<&'static str>,
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
        obj.insert("ts".into(), serde_json::Value::String(rfc3339(SystemTime::now())));
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

/// The writer thread; [`LogWriter::finish`] flushes what is queued and stops it.
pub struct LogWriter {
    done: Receiver<()>,
}

impl LogWriter {
    /// Starts the writer thread on `out`, with room for `capacity` queued lines.
    pub fn start<W: Write + Send + 'static>(out: W, capacity: usize) -> std::io::Result<(AccessLog, LogWriter)> {
        let (first, tx, records) = Lane::new(capacity);
        let (new_lanes, lanes_rx) = sync_channel(1024);
        let dropped = Arc::new(AtomicU64::new(0));
        let (done_tx, done) = sync_channel(1);
        let counter = dropped.clone();
        std::thread::Builder::new().name("log-writer".into()).spawn(move || {
            write_loop(out, first, lanes_rx, &counter);
            let _ = done_tx.send(());
        })?;
        Ok((AccessLog { tx, records, dropped, new_lanes, capacity }, LogWriter { done }))
    }

    /// Waits (at most `timeout`) for the thread to write everything; every [`AccessLog`] clone must
    /// be dropped first.
    pub fn finish(self, timeout: Duration) {
        let _ = self.done.recv_timeout(timeout);
    }
}

/// Polls the queue instead of blocking on it: a blocked receiver would make every request's
/// `try_send` wake it with a futex call and a context switch (measured: a quarter of the CPU).
fn write_loop<W: Write>(mut out: W, first: Lane, new_lanes: Receiver<Lane>, dropped: &AtomicU64) {
    let mut buf: Vec<u8> = Vec::with_capacity(256 * 1024);
    let mut reported = 0u64;
    let mut nap = MIN_NAP;
    let mut lanes = vec![first];
    loop {
        buf.clear();
        while let Ok(lane) = new_lanes.try_recv() {
            lanes.push(lane);
        }
        lanes.retain_mut(|lane| {
            // Events first, then the records: a request's `new_path` event precedes its line.
            let mut open = true;
            for _ in 0..8192 {
                match lane.events.try_recv() {
                    Ok(line) => {
                        buf.extend_from_slice(line.as_bytes());
                        buf.push(b'\n');
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            // Every handle of a closed lane is gone, so this last swap takes all it ever had.
            if let Ok(mut bytes) = lane.records.bytes.lock() {
                std::mem::swap(&mut *bytes, &mut lane.spare);
            }
            for view in Decoder::new(&lane.spare) {
                format_view(&view, &mut buf);
            }
            lane.spare.clear();
            open
        });
        // Every handle is gone once no lane is left (each handle holds its own lane's sender).
        let open = !lanes.is_empty();
        let now_dropped = dropped.load(Ordering::Relaxed);
        if now_dropped != reported {
            let line = serde_json::json!({
                "ts": rfc3339(SystemTime::now()), "event": "log_lines_dropped",
                "dropped_total": now_dropped, "dropped_since_last": now_dropped - reported,
            });
            buf.extend_from_slice(line.to_string().as_bytes());
            buf.push(b'\n');
            reported = now_dropped;
        }
        if !buf.is_empty() {
            // A closed stdout must not stop the draining, or senders would start dropping.
            let _ = out.write_all(&buf).and_then(|_| out.flush());
            nap = MIN_NAP;
        } else {
            nap = (nap * 2).min(MAX_NAP);
        }
        if !open {
            return;
        }
        std::thread::sleep(nap);
    }
}

/// Appends one access line (JSON, newline-terminated) to `buf`.
pub fn format_access(rec: &AccessRecord, buf: &mut Vec<u8>) {
    format_view(&View::of(rec), buf);
}

fn format_view(rec: &View<'_>, buf: &mut Vec<u8>) {
    let mut itoa = itoa::Buffer::new();
    buf.extend_from_slice(b"{\"ts\":\"");
    push_rfc3339(buf, rec.ts);
    buf.extend_from_slice(b"\",\"client_ip\":\"");
    push_ip(buf, rec.client_ip);
    buf.extend_from_slice(b"\",\"method\":");
    push_json_str(buf, rec.method);
    buf.extend_from_slice(b",\"host\":");
    match rec.host {
        Some(h) => push_json_str(buf, h),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"path\":");
    push_json_str(buf, rec.path);
    buf.extend_from_slice(b",\"http_version\":\"");
    buf.extend_from_slice(match rec.version {
        Version::HTTP_09 => b"0.9",
        Version::HTTP_10 => b"1.0",
        Version::HTTP_11 => b"1.1",
        Version::HTTP_2 => b"2",
        Version::HTTP_3 => b"3",
        _ => b"?",
    });
    buf.extend_from_slice(b"\",\"status\":");
    buf.extend_from_slice(itoa.format(rec.status).as_bytes());
    buf.extend_from_slice(b",\"bytes_in\":");
    buf.extend_from_slice(itoa.format(rec.bytes_in).as_bytes());
    buf.extend_from_slice(b",\"bytes_out\":");
    buf.extend_from_slice(itoa.format(rec.bytes_out).as_bytes());
    buf.extend_from_slice(b",\"duration_ms\":");
    let micros = rec.duration.as_micros() as u64;
    buf.extend_from_slice(itoa.format(micros / 1000).as_bytes());
    buf.push(b'.');
    let frac = micros % 1000;
    buf.extend_from_slice(&[b'0' + (frac / 100) as u8, b'0' + (frac / 10 % 10) as u8, b'0' + (frac % 10) as u8]);
    buf.extend_from_slice(b",\"upstream\":");
    push_json_str(buf, rec.upstream);
    if let Some((sni, default_cert, sni_mismatch)) = rec.tls {
        buf.extend_from_slice(b",\"sni\":");
        match sni {
            Some(sni) => push_json_str(buf, sni),
            None => buf.extend_from_slice(b"null"),
        }
        if default_cert {
            buf.extend_from_slice(b",\"tls_cert\":\"default\"");
        }
        if sni_mismatch {
            buf.extend_from_slice(b",\"sni_mismatch\":true");
        }
    }
    if let Some(err) = rec.error {
        buf.extend_from_slice(b",\"error\":");
        push_json_str(buf, err);
    }
    if rec.stale_conn {
        buf.extend_from_slice(b",\"stale_conn\":true");
    }
    buf.extend_from_slice(b"}\n");
}

/// IPv4 by hand (the formatter machinery costs more than the rest of the line); IPv6 as usual.
fn push_ip(buf: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut itoa = itoa::Buffer::new();
            for (i, octet) in v4.octets().iter().enumerate() {
                if i > 0 {
                    buf.push(b'.');
                }
                buf.extend_from_slice(itoa.format(*octet).as_bytes());
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(buf, "{v6}");
        }
    }
}

/// Appends `s` as a JSON string; bytes that are not UTF-8 become U+FFFD.
pub fn push_json_str(buf: &mut Vec<u8>, s: &[u8]) {
    // The common case (a plain host or path): copy as is.
    if s.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f) {
        buf.reserve(s.len() + 2);
        buf.push(b'"');
        buf.extend_from_slice(s);
        buf.push(b'"');
        return;
    }
    let text = String::from_utf8_lossy(s);
    buf.push(b'"');
    for &b in text.as_bytes() {
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            0..=0x1f | 0x7f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[(b >> 4) as usize]);
                buf.push(HEX[(b & 15) as usize]);
            }
            _ => buf.push(b),
        }
    }
    buf.push(b'"');
}

/// `2026-11-25T22:08:46.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let mut buf = Vec::with_capacity(24);
    push_rfc3339(&mut buf, t);
    String::from_utf8_lossy(&buf).into_owned()
}

fn push_rfc3339(buf: &mut Vec<u8>, t: SystemTime) {
    thread_local! {
        // The writer formats thousands of lines per second: the date and time up to the second
        // are the same for most of them.
        static LAST_SECOND: std::cell::Cell<(u64, [u8; 32], u8)> = const { std::cell::Cell::new((u64::MAX, [0; 32], 0)) };
    }
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (cached_secs, mut text, len) = LAST_SECOND.get();
    let len = if cached_secs == secs {
        len
    } else {
        let mut head = Vec::with_capacity(32);
        push_rfc3339_seconds(&mut head, secs);
        let len = head.len().min(text.len());
        text[..len].copy_from_slice(&head[..len]);
        LAST_SECOND.set((secs, text, len as u8));
        len as u8
    };
    buf.extend_from_slice(&text[..len as usize]);
    let ms = d.subsec_millis();
    buf.push(b'.');
    buf.extend_from_slice(&[b'0' + (ms / 100) as u8, b'0' + (ms / 10 % 10) as u8, b'0' + (ms % 10) as u8]);
    buf.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix second.
fn push_rfc3339_seconds(buf: &mut Vec<u8>, secs: u64) {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, day) = civil_from_days(days);
    let two = |buf: &mut Vec<u8>, v: u64| buf.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8]);
    let mut itoa = itoa::Buffer::new();
    buf.extend_from_slice(itoa.format(y).as_bytes());
    buf.push(b'-');
    two(buf, m as u64);
    buf.push(b'-');
    two(buf, day as u64);
    buf.push(b'T');
    two(buf, rem / 3600);
    buf.push(b':');
    two(buf, rem / 60 % 60);
    buf.push(b':');
    two(buf, rem % 60);
}

/// Days since 1970-01-01 → (year, month, day), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_990_126_123);
        assert_eq!(rfc3339(t), "2026-11-29T22:08:46.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
        // The same second again (cached), the next millisecond, then the next second.
        assert_eq!(rfc3339(leap + Duration::from_millis(7)), "2000-02-29T00:00:00.007Z");
        assert_eq!(rfc3339(leap + Duration::from_millis(1_001)), "2000-02-29T00:00:01.001Z");
        assert_eq!(rfc3339(leap + Duration::from_secs(86_400)), "2000-03-01T00:00:00.000Z");
    }

    fn record() -> AccessRecord {
        AccessRecord {
            stale_conn: false,
            ts: UNIX_EPOCH,
            client_ip: "192.0.2.1".parse().unwrap(),
            method: Method::POST,
            host: Some(Text::new(b"api.example.com")),
            path: Text::new(b"/v1/users"),
            version: Version::HTTP_11,
            status: 200,
            bytes_in: 12,
            bytes_out: 34,
            duration: Duration::from_micros(1_234),
            upstream: "http://10.0.0.1:80",
            error: None,
            tls: None,
        }
    }

    #[test]
    fn access_line_is_json() {
        let mut buf = Vec::new();
        format_access(&record(), &mut buf);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["path"], "/v1/users");
        assert_eq!(v["duration_ms"], 1.234);
        assert_eq!(v["http_version"], "1.1");
        assert_eq!(v["host"], "api.example.com");
        assert_eq!(v["client_ip"], "192.0.2.1");
        assert!(v.get("error").is_none());
        let mut buf = Vec::new();
        let mut rec = record();
        rec.error = Some("upstream_reset");
        rec.host = Some(Text::new(b"we\"ird\xff"));
        let long = format!("/{}", "a".repeat(300));
        rec.path = Text::new(long.as_bytes());
        format_access(&rec, &mut buf);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["path"], long.as_str());
        assert_eq!(v["error"], "upstream_reset");
        assert_eq!(v["host"], "we\"ird\u{fffd}");
        assert!(v.get("sni").is_none(), "plain listeners carry no TLS fields");
        let mut rec = record();
        rec.tls = Some(TlsLog { sni: Some(Text::new(b"a.example.com")), default_cert: false, sni_mismatch: true });
        let mut buf = Vec::new();
        format_access(&rec, &mut buf);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(
            (v["sni"].as_str(), v["sni_mismatch"].as_bool(), v.get("tls_cert")),
            (Some("a.example.com"), Some(true), None)
        );
        rec.tls = Some(TlsLog { sni: None, default_cert: true, sni_mismatch: false });
        let mut buf = Vec::new();
        format_access(&rec, &mut buf);
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert!(v["sni"].is_null() && v["tls_cert"] == "default" && v.get("sni_mismatch").is_none(), "{v}");
    }
    /// A writer that keeps what it gets, slowly when asked.
    #[derive(Clone, Default)]
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>, Duration);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(self.1);
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_lane_is_written_by_the_end_and_overflow_is_dropped_and_counted() {
        let sink = Sink::default();
        let (log, writer) = LogWriter::start(sink.clone(), 64).unwrap();
        let lanes: Vec<AccessLog> = (0..3).map(|_| log.lane()).collect();
        for (i, lane) in lanes.iter().enumerate() {
            for _ in 0..10 {
                lane.access(record());
            }
            lane.event("lane", serde_json::json!({"n": i}));
        }
        drop(lanes);
        drop(log);
        writer.finish(Duration::from_secs(5));
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().filter(|l| l.contains("\"status\":200")).count(), 30, "{text}");
        assert_eq!(text.lines().filter(|l| l.contains("\"event\":\"lane\"")).count(), 3);

        // A writer far behind: a lane queues 4 lines, the rest is counted.
        let slow = Sink(Arc::default(), Duration::from_millis(200));
        let (log, writer) = LogWriter::start(slow.clone(), 4).unwrap();
        let lane = log.lane();
        std::thread::sleep(Duration::from_millis(20));
        for _ in 0..100 {
            lane.access(record());
        }
        let dropped = lane.dropped();
        assert!(dropped > 50, "{dropped}");
        drop(lane);
        drop(log);
        writer.finish(Duration::from_secs(5));
        let text = String::from_utf8(slow.0.lock().unwrap().clone()).unwrap();
        let written = text.lines().filter(|l| l.contains("\"status\":200")).count() as u64;
        assert_eq!(written + dropped, 100, "every line is written or counted");
        assert!(text.contains("\"event\":\"log_lines_dropped\""), "{text}");
    }
}
