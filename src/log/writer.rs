//! The writer thread: every pass it takes each worker's event lines and swaps out its packed
//! access records, formats them on its own core and writes one batch to stdout.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use super::format::format_view;
use super::lane::Lane;
use super::packed::Decoder;
use crate::base::time::{rfc3339, unix_ms};

/// The writer's pause between batches while lines arrive, and its longest pause when idle.
const MIN_NAP: Duration = Duration::from_millis(2);
const MAX_NAP: Duration = Duration::from_millis(32);

/// The writer thread; [`LogWriter::finish`] flushes what is queued and stops it.
pub struct LogWriter {
    done: Receiver<()>,
}

impl LogWriter {
    /// Starts the writer thread on `out`, reading `first` and every lane sent on `new_lanes`;
    /// lines dropped by handles are counted in `dropped` and reported.
    pub(super) fn spawn<W: Write + Send + 'static>(
        out: W,
        first: Lane,
        new_lanes: Receiver<Lane>,
        dropped: Arc<AtomicU64>,
    ) -> std::io::Result<Self> {
        let (done_tx, done) = sync_channel(1);
        std::thread::Builder::new().name("log-writer".into()).spawn(move || {
            write_loop(out, first, new_lanes, &dropped);
            let _ = done_tx.send(());
        })?;
        Ok(LogWriter { done })
    }

    /// Waits (at most `timeout`) for the thread to write everything; every handle to the log
    /// must be dropped first.
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
                "ts": rfc3339(unix_ms()), "event": "log_lines_dropped",
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::log::format::tests::record;
    use crate::log::AccessLog;

    /// A writer that keeps what it gets, slowly when asked.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>, Duration);

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
        let (log, writer) = AccessLog::start(sink.clone(), 64).unwrap();
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
        let (log, writer) = AccessLog::start(slow.clone(), 4).unwrap();
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
