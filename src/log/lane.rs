//! What the writer reads of one handle: its event lines and its packed access records.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use super::packed::RecordLane;

/// Bytes of packed records a lane holds per line of `capacity` (a typical record packs into
/// 80–150 bytes).
const BYTES_PER_LINE: usize = 256;

/// What the writer reads of one handle: its event lines and its packed access records.
pub(super) struct Lane {
    pub(super) events: Receiver<String>,
    pub(super) records: Arc<RecordLane>,
    /// The buffer swapped in at the next pass (keeps its capacity).
    pub(super) spare: Vec<u8>,
}

impl Lane {
    pub(super) fn new(capacity: usize) -> (Lane, SyncSender<String>, Arc<RecordLane>) {
        let (tx, events) = sync_channel(capacity);
        let budget = capacity.saturating_mul(BYTES_PER_LINE);
        let records = Arc::new(RecordLane::new(budget));
        let spare = Vec::with_capacity(budget.min(1 << 20));
        (Lane { events, records: records.clone(), spare }, tx, records)
    }
}
