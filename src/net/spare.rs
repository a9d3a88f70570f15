//! Each worker thread's spare buffers: a connection takes one while it has bytes to hold and
//! gives it back when it has none, so an idle keep-alive connection holds no buffer and a busy
//! worker allocates none per request.

use std::cell::RefCell;

use bytes::BytesMut;

/// Buffers kept per thread, each way.
const KEPT: usize = 64;
/// Room a read buffer is made with (hyper's default read buffer is 8 KiB).
pub const READ_ROOM: usize = 8 * 1024;
/// A buffer grown past this is dropped, not kept.
const KEPT_CAPACITY: usize = 64 * 1024;

thread_local! {
    static READS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    static WRITES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty read buffer with room for at least `room` bytes.
pub fn read_buf(room: usize) -> BytesMut {
    let mut buf = READS.with(|r| r.borrow_mut().pop()).unwrap_or_default();
    buf.reserve(room);
    buf
}

/// Gives a read buffer back.
pub fn give_read_buf(mut buf: BytesMut) {
    buf.clear();
    let capacity = buf.capacity();
    keep(&READS, buf, capacity);
}

/// An empty write buffer.
pub fn write_buf() -> Vec<u8> {
    WRITES.with(|w| w.borrow_mut().pop()).unwrap_or_else(|| Vec::with_capacity(1024))
}

/// Gives a write buffer back.
pub fn give_write_buf(mut buf: Vec<u8>) {
    buf.clear();
    let capacity = buf.capacity();
    keep(&WRITES, buf, capacity);
}

/// Keeps `buf` among `list`'s spares, unless it grew too large or enough are kept.
fn keep<T: 'static>(list: &'static std::thread::LocalKey<RefCell<Vec<T>>>, buf: T, capacity: usize) {
    if capacity <= KEPT_CAPACITY {
        list.with(|l| {
            let mut l = l.borrow_mut();
            if l.len() < KEPT {
                l.push(buf);
            }
        });
    }
}
