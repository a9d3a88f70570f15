//! The threads that work beside the request path (the summary, `/report`, report files, route
//! reloads) run at a lower CPU priority than the workers, as nginx's `worker_priority` sets its
//! workers above the rest: when the machine is busy, the requests go first; when it is not, the
//! priority changes nothing.

/// How much nicer than the process the background threads are (`nice` +10: a tenth of a
/// worker's CPU share under contention, never starved).
pub const BACKGROUND_NICENESS: i32 = 10;

/// Lowers the calling thread's priority (on Linux, priorities are per thread). Failure (a
/// container that forbids it) leaves the priority as it was.
pub fn lower_current_thread() {
    let _ = rustix::process::nice(BACKGROUND_NICENESS);
}
