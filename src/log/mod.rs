//! The JSON log on stdout: one access line per request and `event` lines, written by a writer
//! thread in batches. The request path only appends a packed record to its worker's lane
//! ([`packed`]); when the writer is behind, lines are dropped and counted instead of blocking a
//! request.

mod format;
mod handle;
mod lane;
mod packed;
mod record;
pub mod writer;

pub use format::format_access;
pub use handle::AccessLog;
pub use record::{AccessRecord, Text, TlsLog};
