//! TLS through the real binary: certificates by SNI (wildcards, the default), ALPN h2, TLS and plain
//! listeners side by side, Host ≠ SNI in the log and the report, reload under an open connection,
//! passthrough (SNI recorded, bytes unchanged both ways, a ClientHello in 1-byte segments, input
//! that is not TLS), https:// upstreams, and bad certificate files at start-up.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::tls::*;
use crate::common::*;
use http::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The proxy with a TLS listener (and its plain one) in front of `upstream`.
fn start_tls(upstream: &str, dir: &Path, extra: &[&str]) -> ProxyProc {
    let mut args = vec!["--upstream", upstream, "--tls-listen", "127.0.0.1:0", "--cert-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    ProxyProc::start(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_name_gets_its_certificate_and_no_sni_gets_the_default() {
    let dir = temp_dir("sni");
    generate(&dir, &["a.test", "b.test", "*.wild.test"]);
    let up = Upstream::start().await;
    let proxy = start_tls(&up.url(), &dir, &["--default-cert", "b.test"]);
    let tls_addr = proxy.listener("tls");
    let ca = dir.join("ca/ca.crt");
    let loaded = proxy.wait_line(|v| v["event"] == "certs_loaded");
    assert_eq!(loaded["default"], "b.test");
    let wild = loaded["certificates"].as_array().unwrap().iter().find(|c| c["name"] == "_wildcard.wild.test").unwrap();
    assert_eq!(wild["dns_names"], serde_json::json!(["*.wild.test"]));
    assert!(wild["not_after"].as_str().unwrap().ends_with('Z'), "{wild}");

    // A real, verifying client per name: each is served its own certificate.
    for (name, file) in [("a.test", "a.test.crt"), ("b.test", "b.test.crt"), ("x.wild.test", "_wildcard.wild.test.crt")]
    {
        let tls = connect(tls_addr, name, client_config(&ca, &[b"http/1.1"])).await;
        assert_eq!(served_leaf(&tls), leaf_of(&dir.join(file)), "certificate served for {name}");
        let mut c = h1_over(tls).await;
        let got = c.get(name, "/hello").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.seen_header("x-forwarded-proto"), ["https"], "the upstream learns the client used TLS");
        assert_eq!(got.seen_header("host"), [name], "Host kept as received");
    }
    // No SNI, and a name no certificate has: the default, recorded as such, not refused.
    let tls = connect(tls_addr, "b.test", any_cert_config(false)).await;
    assert_eq!(served_leaf(&tls), leaf_of(&dir.join("b.test.crt")));
    assert_eq!(h1_over(tls).await.get("b.test", "/nosni").await.status, 200);
    let tls = connect(tls_addr, "unknown.example", any_cert_config(true)).await;
    assert_eq!(served_leaf(&tls), leaf_of(&dir.join("b.test.crt")));
    assert_eq!(h1_over(tls).await.get("unknown.example", "/unknown").await.status, 200);

    let lines = proxy.wait_access(5);
    let by_path = |p: &str| lines.iter().find(|l| l["path"] == p).unwrap_or_else(|| panic!("no line for {p}")).clone();
    let l = by_path("/hello");
    assert!(l["sni"].is_string() && l.get("tls_cert").is_none() && l.get("sni_mismatch").is_none(), "{l}");
    let l = by_path("/nosni");
    assert!(l["sni"].is_null() && l["tls_cert"] == "default", "{l}");
    let l = by_path("/unknown");
    assert!(l["sni"] == "unknown.example" && l["tls_cert"] == "default", "{l}");
    let r = report_json(&proxy).await;
    assert_eq!(r["totals"]["tls_requests"], 5);
    assert_eq!(r["totals"]["default_cert_requests"], 2);
    assert_eq!(host(&r, "unknown.example")["default_cert_requests"], 1);
    // Each certificate's expiry, for an alert before it lapses.
    let (_, metrics) = admin_get(proxy.admin, "/metrics").await;
    let expiry = |name: &str| -> f64 {
        let series = format!("cutover_certificate_expiry_timestamp_seconds{{name=\"{name}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&series)).and_then(|v| v.parse().ok()).unwrap_or(0.0)
    };
    let in_a_year =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() + 300.0 * 86_400.0;
    for name in ["a.test", "b.test", "_wildcard.wild.test"] {
        assert!(expiry(name) > in_a_year, "{name} in\n{metrics}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_h2_end_to_end_and_plain_listener_beside_it() {
    let dir = temp_dir("alpn");
    generate(&dir, &["api.test"]);
    let up = Upstream::start().await;
    let proxy = start_tls(&up.url(), &dir, &[]);
    let tls =
        connect(proxy.listener("tls"), "api.test", client_config(&dir.join("ca/ca.crt"), &[b"h2", b"http/1.1"])).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "ALPN chose h2");
    let (tx, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut h2 = H2Client::from_sender(tx);
    for _ in 0..2 {
        let got = h2.send(Request::get("https://api.test/v1/items").body(empty()).unwrap()).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.json()["uri"], "/v1/items");
        assert_eq!(got.seen_header("host"), ["api.test"], ":authority becomes Host");
    }
    // The plain listener serves at the same time, without TLS fields in its lines.
    let mut plain = H1Client::connect(proxy.addr).await;
    let got = plain.get("api.test", "/plain").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.seen_header("x-forwarded-proto"), ["http"]);

    let lines = proxy.wait_access(3);
    let h2_lines: Vec<_> = lines.iter().filter(|l| l["path"] == "/v1/items").collect();
    assert_eq!(h2_lines.len(), 2);
    assert!(h2_lines.iter().all(|l| l["http_version"] == "2" && l["sni"] == "api.test"), "{h2_lines:?}");
    let l = lines.iter().find(|l| l["path"] == "/plain").unwrap();
    assert!(l.get("sni").is_none(), "{l}");

    // TLS 1.2 clients are served too; TLS 1.3 is what a default client gets.
    let ca = dir.join("ca/ca.crt");
    let tls12 =
        connect(proxy.listener("tls"), "api.test", client_config_versions(&ca, &[], &[&rustls::version::TLS12])).await;
    assert_eq!(tls12.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(h1_over(tls12).await.get("api.test", "/tls12").await.status, 200);
    let tls13 = connect(proxy.listener("tls"), "api.test", client_config(&ca, &[])).await;
    assert_eq!(tls13.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_other_than_sni_is_flagged_in_log_and_report() {
    let dir = temp_dir("mismatch");
    generate(&dir, &["*.shop.test"]);
    let up = Upstream::start().await;
    let proxy = start_tls(&up.url(), &dir, &[]);
    let tls =
        connect(proxy.listener("tls"), "www.shop.test", client_config(&dir.join("ca/ca.crt"), &[b"http/1.1"])).await;
    let mut c = h1_over(tls).await;
    assert_eq!(c.get("www.shop.test:443", "/same").await.status, 200);
    assert_eq!(c.get("admin.shop.test", "/other").await.status, 200, "flagged, not refused");
    let lines = proxy.wait_access(2);
    let same = lines.iter().find(|l| l["path"] == "/same").unwrap();
    assert!(same.get("sni_mismatch").is_none(), "a port in Host is no mismatch: {same}");
    let other = lines.iter().find(|l| l["path"] == "/other").unwrap();
    assert_eq!((&other["sni"], &other["sni_mismatch"]), (&"www.shop.test".into(), &true.into()));
    let r = report_json(&proxy).await;
    assert_eq!(r["totals"]["sni_mismatch_requests"], 1);
    let h = host(&r, "admin.shop.test");
    assert_eq!(h["sni_mismatch_requests"], 1);
    assert!(h["reason"].as_str().unwrap().contains("differs from the TLS SNI"), "{h}");
    assert_eq!(host(&r, "www.shop.test")["sni_mismatch_requests"], 0);
    let (_, md) = admin_get(proxy.admin, "/report.md").await;
    assert!(md.contains("1 with a Host other than the TLS SNI"), "{md}");

    // Two replicas' reports merge with the TLS counters summed.
    let file = dir.join("replica.json");
    std::fs::write(&file, r.to_string()).unwrap();
    let f = file.to_str().unwrap();
    let second = write_as_replica(&r, "replica-b", &dir.join("replica-b.json"));
    let (code, out, err) = run_binary(&["report", "merge", f, &second], &[]);
    assert_eq!(code, Some(0), "{err}");
    let merged: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((&merged["totals"]["sni_mismatch_requests"], &merged["totals"]["tls_requests"]), (&2.into(), &4.into()));
    assert_eq!(host(&merged, "admin.shop.test")["sni_mismatch_requests"], 2);
    // A report written before TLS existed (no TLS fields) still reads.
    let mut old = r.clone();
    for key in ["tls_requests", "sni_mismatch_requests", "default_cert_requests", "passthrough_connections"] {
        old["totals"].as_object_mut().unwrap().remove(key);
    }
    for h in old["hosts"].as_array_mut().unwrap() {
        for key in ["tls_requests", "sni_mismatch_requests", "default_cert_requests", "passthrough"] {
            h.as_object_mut().unwrap().remove(key);
        }
    }
    std::fs::write(&file, old.to_string()).unwrap();
    let (code, _, err) = run_binary(&["report", "render", "--format", "markdown", f], &[]);
    assert_eq!(code, Some(0), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_silence_on_the_tls_port_close_and_the_listener_goes_on() {
    let dir = temp_dir("garbage");
    generate(&dir, &["a.test"]);
    let up = Upstream::start().await;
    let proxy = start_tls(&up.url(), &dir, &["--tls-handshake-timeout", "300ms"]);
    let tls_addr = proxy.listener("tls");
    // A TCP health check (connect, close) is no failed handshake worth an event.
    drop(TcpStream::connect(tls_addr).await.unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, closed) = raw_exchange(tls_addr, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", Duration::from_secs(5)).await;
    assert!(closed, "plain HTTP on the TLS port is closed");
    let failed = proxy.wait_line(|v| v["event"] == "tls_handshake_failed");
    assert_eq!((&failed["client_ip"], &failed["error"]), (&"127.0.0.1".into(), &"tls_handshake_failed".into()));
    let events = proxy.json_lines().into_iter().filter(|v| v["event"] == "tls_handshake_failed").count();
    assert_eq!(events, 1, "only the garbage was reported");
    // A client that says nothing is cut at the handshake timeout.
    let (_, closed) = raw_exchange(tls_addr, b"", Duration::from_secs(5)).await;
    assert!(closed, "a silent client is closed after --tls-handshake-timeout");
    proxy.wait_line(|v| v["event"] == "tls_handshake_failed" && v["error"] == "tls_handshake_timeout");
    let tls = connect(tls_addr, "a.test", client_config(&dir.join("ca/ca.crt"), &[b"http/1.1"])).await;
    assert_eq!(h1_over(tls).await.get("a.test", "/").await.status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_under_an_open_connection_and_a_bad_file_keeps_the_last_good_set() {
    let (dir, fresh) = (temp_dir("reload"), temp_dir("reload-fresh"));
    generate(&dir, &["a.test"]);
    let up = Upstream::start().await;
    let proxy = start_tls(&up.url(), &dir, &[]);
    let tls_addr = proxy.listener("tls");
    let old_leaf = leaf_of(&dir.join("a.test.crt"));
    let tls = connect(tls_addr, "a.test", client_config(&dir.join("ca/ca.crt"), &[b"http/1.1"])).await;
    assert_eq!(served_leaf(&tls), old_leaf);
    let mut open = h1_over(tls).await;
    assert_eq!(open.get("a.test", "/before").await.status, 200);

    // New certificate (from a new CA) in place, then SIGHUP.
    generate(&fresh, &["a.test"]);
    std::fs::copy(fresh.join("a.test.crt"), dir.join("a.test.crt")).unwrap();
    std::fs::copy(fresh.join("a.test.key"), dir.join("a.test.key")).unwrap();
    proxy.sighup();
    proxy.wait_line(|v| v["event"] == "certs_reloaded");
    assert_eq!(open.get("a.test", "/during").await.status, 200, "the open connection was not dropped");
    let tls = connect(tls_addr, "a.test", client_config(&fresh.join("ca/ca.crt"), &[b"http/1.1"])).await;
    assert_eq!(served_leaf(&tls), leaf_of(&fresh.join("a.test.crt")), "new handshakes get the new certificate");

    // A broken file: found by the folder poll, named in the log, the last good set kept.
    std::fs::write(dir.join("a.test.crt"), "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
        .unwrap();
    let failed = proxy.wait_line(|v| v["event"] == "certs_reload_failed");
    assert!(failed["file"].as_str().unwrap().ends_with("a.test.crt"), "{failed}");
    assert_eq!(failed["kept"], "last good set");
    let tls = connect(tls_addr, "a.test", client_config(&fresh.join("ca/ca.crt"), &[b"http/1.1"])).await;
    assert_eq!(served_leaf(&tls), leaf_of(&fresh.join("a.test.crt")));
    assert_eq!(open.get("a.test", "/after").await.status, 200);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificates_at_start_up_name_the_file_and_exit_2() {
    let dir = temp_dir("startup");
    generate(&dir, &["a.test"]);
    std::fs::write(dir.join("b.test.crt"), "garbage").unwrap();
    std::fs::write(dir.join("b.test.key"), "garbage").unwrap();
    let d = dir.to_str().unwrap();
    let base =
        ["serve", "--upstream", "http://127.0.0.1:9", "--admin-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        run_binary(&args, &[])
    };
    let (code, _, err) = run(&["--tls-listen", "127.0.0.1:0", "--cert-dir", d]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one error line: {err}");
    assert!(err.contains("b.test.crt") && err.contains("CERTIFICATE"), "{err}");
    std::fs::remove_file(dir.join("b.test.crt")).unwrap();
    std::fs::remove_file(dir.join("b.test.key")).unwrap();
    let (code, _, err) = run(&["--tls-listen", "127.0.0.1:0", "--cert-dir", d, "--default-cert", "nope"]);
    assert!(code == Some(2) && err.contains("nope") && err.contains("a.test"), "{err}");
    let (code, _, err) = run(&["--tls-listen", "127.0.0.1:0"]);
    assert!(code == Some(2) && err.contains("--cert-dir"), "{err}");
    let (code, _, err) = run(&["--passthrough-listen", "127.0.0.1:0"]);
    assert!(code == Some(2) && err.contains("--passthrough-upstream"), "{err}");
    let (code, _, err) = run(&["--upstream-insecure"]);
    assert!(code == Some(2) && err.contains("https"), "{err}");
    let (code, _, err) = run_binary(&["certs", "generate", "--out", d, "bad name"], &[]);
    assert!(code == Some(2) && err.contains("bad name"), "{err}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("a.test.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "generated private keys are readable by the owner only");
    // The same settings from the environment.
    let (code, _, err) =
        run_binary(&base, &[("CUTOVER_TLS_LISTEN", "127.0.0.1:0"), ("CUTOVER_CERT_DIR", "/nonexistent/certs")]);
    assert!(code == Some(2) && err.contains("/nonexistent/certs"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts the proxy with a passthrough listener in front of `upstream` (HOST:PORT).
fn start_passthrough(upstream: &str) -> ProxyProc {
    ProxyProc::start(&[
        "--upstream",
        "http://127.0.0.1:9",
        "--passthrough-listen",
        "127.0.0.1:0",
        "--passthrough-upstream",
        upstream,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_records_the_sni_and_bytes_pass_unchanged_both_ways() {
    let dir = temp_dir("passthrough");
    generate(&dir, &["secure.test"]);
    let (blue, counts) = tls_echo_server(server_config(&dir, "secure.test")).await;
    let proxy = start_passthrough(&blue.to_string());
    let pt = proxy.listener("passthrough");
    // The client verifies blue's certificate end to end: the proxy holds no key.
    let mut tls = connect(pt, "secure.test", client_config(&dir.join("ca/ca.crt"), &[])).await;
    assert_eq!(served_leaf(&tls), leaf_of(&dir.join("secure.test.crt")));
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (mut rd, mut wr) = tokio::io::split(&mut tls);
    let (echoed, _) = tokio::join!(
        async {
            let mut got = vec![0u8; payload.len()];
            tokio::time::timeout(WAIT, rd.read_exact(&mut got)).await.expect("echo in time").unwrap();
            got
        },
        async { wr.write_all(&payload).await.unwrap() }
    );
    assert!(echoed == payload, "a megabyte went through and came back unchanged");
    tls.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut rest)).await;

    let ev = proxy.wait_line(|v| v["event"] == "passthrough");
    assert_eq!((&ev["host"], &ev["sni"], &ev["tls"]), (&"secure.test".into(), &"secure.test".into(), &"sni".into()));
    assert_eq!(counts.sni.lock().unwrap().as_slice(), [Some("secure.test".to_owned())], "blue got the SNI");
    // What blue read is what the client sent, and the other way round.
    assert_eq!(ev["bytes_in"].as_u64().unwrap(), counts.read.load(Ordering::SeqCst), "{ev}");
    assert_eq!(ev["bytes_out"].as_u64().unwrap(), counts.written.load(Ordering::SeqCst), "{ev}");
    assert!(ev["bytes_in"].as_u64().unwrap() > 1_000_000 && ev.get("error").is_none(), "{ev}");

    let r = report_json(&proxy).await;
    let h = host(&r, "secure.test");
    assert_eq!(h["passthrough"]["connections"], 1);
    assert_eq!(h["passthrough"]["bytes_in"], ev["bytes_in"]);
    assert_eq!(h["paths"].as_array().unwrap().len(), 0, "no paths: TLS was not opened");
    assert_eq!(h["requests"], 0);
    assert!(h["reason"].as_str().unwrap().contains("paths not visible"), "{h}");
    assert_eq!(r["totals"]["passthrough_connections"], 1);
    let file = dir.join("replica.json");
    std::fs::write(&file, r.to_string()).unwrap();
    let f = file.to_str().unwrap();
    let second = write_as_replica(&r, "replica-b", &dir.join("replica-b.json"));
    let (code, out, err) = run_binary(&["report", "merge", f, &second], &[]);
    assert_eq!(code, Some(0), "{err}");
    let merged: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(merged["totals"]["passthrough_connections"], 2);
    let p = &host(&merged, "secure.test")["passthrough"];
    assert_eq!(
        (p["connections"].as_u64(), p["bytes_in"].as_u64()),
        (Some(2), Some(2 * ev["bytes_in"].as_u64().unwrap()))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_reads_a_client_hello_sent_one_byte_per_segment() {
    let dir = temp_dir("onebyte");
    generate(&dir, &["slow.test"]);
    let (blue, counts) = tls_echo_server(server_config(&dir, "slow.test")).await;
    let proxy = start_passthrough(&blue.to_string());
    let tcp = TcpStream::connect(proxy.listener("passthrough")).await.unwrap();
    // Every byte of the ClientHello in its own write and segment, 1 ms apart.
    let slow = OneByteWrites::new(tcp, Duration::from_millis(1), 4096);
    let mut tls = connect_over(slow, "slow.test", client_config(&dir.join("ca/ca.crt"), &[])).await;
    tls.write_all(b"ping").await.unwrap();
    tls.flush().await.unwrap();
    let mut back = [0u8; 4];
    tokio::time::timeout(WAIT, tls.read_exact(&mut back)).await.expect("echo in time").unwrap();
    assert_eq!(&back, b"ping");
    drop(tls);
    let ev = proxy.wait_line(|v| v["event"] == "passthrough");
    assert_eq!(ev["host"], "slow.test", "{ev}");
    assert_eq!(counts.sni.lock().unwrap().as_slice(), [Some("slow.test".to_owned())]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_forwards_input_that_is_not_tls_or_has_no_sni_and_says_so() {
    // Plain HTTP to the passthrough port still reaches blue (here a plain HTTP server).
    let up = Upstream::start().await;
    let proxy = start_passthrough(&up.addr.to_string());
    let pt = proxy.listener("passthrough");
    let (answer, _) =
        raw_exchange(pt, b"GET /raw HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n", Duration::from_secs(10))
            .await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    let ev = proxy.wait_line(|v| v["event"] == "passthrough");
    assert_eq!(
        (&ev["host"], &ev["tls"], &ev["sni"]),
        (&"(not-tls)".into(), &"not-tls".into(), &serde_json::Value::Null)
    );
    assert_eq!(ev["bytes_out"].as_u64().unwrap(), answer.len() as u64);

    // A TLS client without SNI (blue here is a TLS server again).
    let dir = temp_dir("nosni");
    generate(&dir, &["blue.test"]);
    let (blue, _) = tls_echo_server(server_config(&dir, "blue.test")).await;
    let proxy = start_passthrough(&blue.to_string());
    let mut tls = connect(proxy.listener("passthrough"), "blue.test", any_cert_config(false)).await;
    tls.write_all(b"x").await.unwrap();
    tls.flush().await.unwrap();
    let mut one = [0u8; 1];
    tokio::time::timeout(WAIT, tls.read_exact(&mut one)).await.expect("echo in time").unwrap();
    drop(tls);
    let ev = proxy.wait_line(|v| v["event"] == "passthrough");
    assert_eq!((&ev["host"], &ev["tls"]), (&"(no-sni)".into(), &"no-sni".into()));
    let r = report_json(&proxy).await;
    let h = host(&r, "(no-sni)");
    assert_eq!(h["passthrough"]["connections"], 1);
    assert_eq!(h["action"], "fix-hardcoded", "clients without SNI address blue by IP");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_is_verified_with_the_given_ca_and_sni() {
    let dir = temp_dir("upstream");
    generate(&dir, &["blue.internal"]);
    let (blue, counts) = https_upstream(server_config(&dir, "blue.internal")).await;
    let ca = dir.join("ca/ca.crt");
    let url = format!("https://{blue}");
    let proxy = ProxyProc::start(&[
        "--upstream",
        &url,
        "--upstream-sni",
        "blue.internal",
        "--upstream-ca",
        ca.to_str().unwrap(),
    ]);
    let mut c = H1Client::connect(proxy.addr).await;
    let got = c.get("shop.test", "/over-tls").await;
    assert_eq!(got.status, 200, "{:?}", got.body);
    assert_eq!((&got.json()["uri"], &got.json()["host"]), (&"/over-tls".into(), &"shop.test".into()));
    assert_eq!(counts.sni.lock().unwrap().first().cloned(), Some(Some("blue.internal".to_owned())), "SNI sent");
    let l = &proxy.wait_access(1)[0];
    assert_eq!(l["upstream"], format!("https://{blue}"));
    drop(proxy);

    // Without the CA (system roots only) the certificate is not trusted: 502, with the cause.
    let proxy = ProxyProc::start(&["--upstream", &url, "--upstream-sni", "blue.internal"]);
    let got = H1Client::connect(proxy.addr).await.get("shop.test", "/").await;
    assert_eq!(got.status, 502);
    assert_eq!(proxy.wait_access(1)[0]["error"], "upstream_tls_failed");
    drop(proxy);

    // --upstream-insecure: accepted, and said loudly.
    let proxy = ProxyProc::start(&["--upstream", &url, "--upstream-insecure"]);
    proxy.wait_line(|v| v["event"] == "upstream_tls_insecure");
    let got = H1Client::connect(proxy.addr).await.get("shop.test", "/").await;
    assert_eq!(got.status, 200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passthrough_connection_open_at_shutdown_is_still_recorded() {
    let dir = temp_dir("passthrough-stop");
    generate(&dir, &["long.test"]);
    let (blue, _) = tls_echo_server(server_config(&dir, "long.test")).await;
    let report_file = dir.join("report.json");
    let mut proxy = ProxyProc::start(&[
        "--upstream",
        "http://127.0.0.1:9",
        "--passthrough-listen",
        "127.0.0.1:0",
        "--passthrough-upstream",
        &blue.to_string(),
        "--report-file",
        report_file.to_str().unwrap(),
        "--drain-delay",
        "0s",
        "--shutdown-timeout",
        "500ms",
    ]);
    let mut tls = connect(proxy.listener("passthrough"), "long.test", client_config(&dir.join("ca/ca.crt"), &[])).await;
    tls.write_all(b"still here").await.unwrap();
    let mut got = [0u8; 10];
    tokio::time::timeout(WAIT, tls.read_exact(&mut got)).await.expect("echo in time").unwrap();
    // The client keeps its connection open; the proxy stops.
    proxy.sigterm();
    assert_eq!(proxy.wait_exit(WAIT), Some(0));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report_file).unwrap()).unwrap();
    let h = host(&r, "long.test");
    assert_eq!(h["passthrough"]["connections"], 1, "{h}");
    assert!(h["passthrough"]["bytes_in"].as_u64().unwrap() > 10, "the ClientHello and the data: {h}");
    let ev = proxy.wait_line(|v| v["event"] == "passthrough");
    assert_eq!(ev["error"], "shutdown");
    drop(tls);
    let _ = std::fs::remove_dir_all(&dir);
}
