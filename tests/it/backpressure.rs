//! Backpressure, not buffering: a client that stops reading a large response holds at most one
//! bounded buffer in the proxy (the own HTTP/1.1 side gathers at most 32 KiB and writes larger
//! data as it comes; hyper's side caps its write buffer at 64 KiB) before the proxy stops reading
//! from blue for it. Measured as the proxy's resident memory with 200 such clients.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_holds_one_bounded_buffer() {
    const CLIENTS: u64 = 200;
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url(), "--no-record"]);
    // Warm up: pools, buffers and the allocator's first pages.
    let mut c = H1Client::connect(proxy.addr).await;
    for _ in 0..20 {
        assert_eq!(c.get_len("big.example.com", "/big?bytes=2000000").await, 2_000_000);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = proc_kib(proxy.child.id(), "VmRSS");
    let mut stalled = Vec::new();
    for _ in 0..CLIENTS {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        // The smallest receive buffer the kernel allows: what it holds is not the proxy's.
        let _ = socket2::SockRef::from(&s).set_recv_buffer_size(4096);
        s.write_all(b"GET /big?bytes=100000000 HTTP/1.1\r\nHost: big.example.com\r\n\r\n").await.unwrap();
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = proc_kib(proxy.child.id(), "VmRSS");
    let per_client = after.saturating_sub(before) / CLIENTS;
    eprintln!("rss {before} KiB -> {after} KiB: {per_client} KiB per stalled client");
    assert!(per_client <= 96, "{per_client} KiB per client that does not read (at most one 64 KiB buffer)");
    drop(stalled);
}
