//! `--upstream-protocol auto` (Envoy's `use_downstream_protocol`): HTTP/2 clients and gRPC go to
//! blue over h2c, HTTP/1.1 clients over HTTP/1.1. With a real gRPC server and client (Python's
//! grpcio, raw-bytes methods: no generated code): the call passes, a failed call's status reaches
//! the client and the access line as `grpc_status`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use http::Request;

use crate::common::*;

const SERVER: &str = r#"
import sys
from concurrent import futures
import grpc
def say(request, context):
    if request == b"fail":
        context.abort(grpc.StatusCode.UNAVAILABLE, "green is not ready")
    return b"echo:" + request
handler = grpc.method_handlers_generic_handler("test.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((handler,))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
sys.stdin.read()
"#;

const CLIENT: &str = r#"
import json, sys
import grpc
channel = grpc.insecure_channel(sys.argv[1])
say = channel.unary_unary("/test.Echo/Say")
out = {"ok": say(b"hi", timeout=10).decode()}
try:
    say(b"fail", timeout=10)
    out["failed"] = None
except grpc.RpcError as e:
    out["failed"] = e.code().name
    out["details"] = e.details()
print(json.dumps(out))
"#;

fn have_grpcio() -> bool {
    let ok = Command::new("python3").args(["-c", "import grpc"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CUTOVER_REQUIRE_MOTO").is_err(),
            "CI (CUTOVER_REQUIRE_MOTO) needs python3 with grpcio: pip install grpcio (.ci/run does)"
        );
        eprintln!("skipped: python3 has no grpcio (pip install grpcio)");
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_pass_with_their_status_and_http1_stays_http1() {
    if !have_grpcio() {
        return;
    }
    let mut server = Command::new("python3")
        .args(["-c", SERVER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    let mut port = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut port).unwrap();
    let blue = format!("http://127.0.0.1:{}", port.trim());
    let proxy = ProxyProc::start(&["--upstream", &blue, "--upstream-protocol", "auto"]);
    let target = proxy.addr.to_string();
    let out = tokio::task::spawn_blocking(move || Command::new("python3").args(["-c", CLIENT, &target]).output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["ok"], "echo:hi");
    assert_eq!((got["failed"].as_str(), got["details"].as_str()), (Some("UNAVAILABLE"), Some("green is not ready")));
    let lines = proxy.wait_access(2);
    for l in &lines {
        assert_eq!((l["http_version"].as_str(), l["status"].as_u64()), (Some("2"), Some(200)), "{l}");
        assert_eq!(l["path"], "/test.Echo/Say");
    }
    let mut codes: Vec<u64> = lines.iter().map(|l| l["grpc_status"].as_u64().unwrap()).collect();
    codes.sort();
    assert_eq!(codes, [0, 14], "a failed call is a 200 with its grpc_status");
    let _ = server.kill();
    let _ = server.wait();

    // The same mode in front of an upstream that speaks both: each client's protocol is kept.
    let up = Upstream::start_auto().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url(), "--upstream-protocol", "auto"]);
    let mut h1 = H1Client::connect(proxy.addr).await;
    assert_eq!(h1.get("shop.example.com", "/a").await.json()["version"], "HTTP/1.1");
    let grpc_over_h1 = Request::post("/b")
        .header("host", "shop.example.com")
        .header("content-type", "application/grpc+proto")
        .body(empty())
        .unwrap();
    assert_eq!(h1.send(grpc_over_h1).await.json()["version"], "HTTP/2.0", "gRPC goes over HTTP/2");
    let mut h2 = H2Client::connect(proxy.addr).await;
    let got = h2.send(Request::get("http://shop.example.com/c").body(empty()).unwrap()).await;
    assert_eq!(got.json()["version"], "HTTP/2.0");
}
