//! Reports in S3 against moto's S3 server: each replica writes PREFIX/<replica-id>.json every
//! interval and at shutdown, a restart restores from it, `report merge`/`check` read the prefix,
//! and a bucket that does not exist is a clear error while the proxy keeps serving.

use std::time::{Duration, Instant};

use crate::common::moto::Moto;
use crate::common::*;

const BUCKET: &str = "cutover-reports";

fn start(up: &Upstream, moto: &Moto, report_file: &str, id: &str, tmp: &std::path::Path) -> ProxyProc {
    let env = moto.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let tmp = tmp.to_str().unwrap();
    env.push(("TMPDIR", tmp));
    let url = up.url();
    let args = ["--upstream", &url, "--report-file", report_file, "--replica-id", id, "--report-interval", "1s"];
    ProxyProc::start_with_env(&args, &env)
}

/// The object's report, once it counts `requests`.
fn object_with(moto: &Moto, key: &str, requests: u64, dir: &std::path::Path) -> serde_json::Value {
    let file = dir.join("got.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = moto.aws(&["s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", key]);
        if listed["Contents"].is_array() {
            moto.aws(&["s3api", "get-object", "--bucket", BUCKET, "--key", key, file.to_str().unwrap()]);
            let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            if r["totals"]["requests"] == requests {
                return r;
            }
        }
        assert!(Instant::now() < deadline, "s3://{BUCKET}/{key} never counted {requests} requests");
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn send(proxy: &ProxyProc, host: &str, n: usize) {
    let mut c = H1Client::connect(proxy.addr).await;
    for i in 0..n {
        assert_eq!(c.get(host, &format!("/item/{i}")).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_write_restore_and_merge_their_reports_in_s3() {
    let Some(moto) = Moto::start() else { return };
    moto.aws(&["s3api", "create-bucket", "--bucket", BUCKET]);
    let up = Upstream::start().await;
    let dir = temp_dir("s3");
    let prefix = format!("s3://{BUCKET}/blue/");

    // Replica a: written every interval, and once more at shutdown.
    let mut a = start(&up, &moto, &prefix, "replica-a", &dir);
    send(&a, "shop.example.com", 3).await;
    object_with(&moto, "blue/replica-a.json", 3, &dir);
    send(&a, "shop.example.com", 1).await;
    a.wait_access(4);
    a.sigterm();
    assert_eq!(a.wait_exit(Duration::from_secs(60)), Some(0));
    object_with(&moto, "blue/replica-a.json", 4, &dir);

    // Restarted, it continues from the object.
    let mut a = start(&up, &moto, &prefix, "replica-a", &dir);
    let restored = a.wait_line(|v| v["event"] == "report_restored");
    assert_eq!((restored["requests"].as_u64(), restored["file"].as_str()), (Some(4), Some(prefix.as_str())));
    send(&a, "api.example.com", 2).await;
    a.wait_access(2);
    assert_eq!(report_json(&a).await["totals"]["requests"], 6);
    a.sigterm();
    assert_eq!(a.wait_exit(Duration::from_secs(60)), Some(0));

    // Replica b beside it, under the same prefix.
    let mut b = start(&up, &moto, &prefix, "replica-b", &dir);
    send(&b, "img.example.com", 5).await;
    b.wait_access(5);
    b.sigterm();
    assert_eq!(b.wait_exit(Duration::from_secs(60)), Some(0));

    // The prefix as one report, and as the gate.
    let env = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, out, err) = run_binary(&["report", "merge", &prefix], &env);
    assert_eq!(code, Some(0), "{err}");
    let merged: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(merged["totals"]["requests"], 11, "{}", merged["totals"]);
    let ids: Vec<&str> = merged["replicas"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"replica-a") && ids.contains(&"replica-b"), "{ids:?}");
    assert_eq!(host(&merged, "img.example.com")["requests"], 5);
    let (code, out, err) = run_binary(&["report", "check", &prefix, "--fail-on", "traffic"], &env);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.starts_with("3 host(s) still sending traffic"), "{out}");
    let (code, out, _) = run_binary(&["report", "render", "--format", "markdown", &prefix], &env);
    assert_eq!(code, Some(0));
    assert!(out.contains("2 replica(s)"), "{out}");

    // A bucket that does not exist: the proxy says so and serves anyway; the CLI exits 2.
    let missing = "s3://no-such-bucket-here/blue/";
    let c = start(&up, &moto, missing, "replica-c", &dir);
    let failed = c.wait_line(|v| v["event"] == "report_restore_failed");
    assert!(failed["error"].as_str().unwrap().contains("NoSuchBucket"), "{failed}");
    send(&c, "shop.example.com", 1).await;
    let write_failed = c.wait_line(|v| v["event"] == "report_write_failed");
    assert!(write_failed["error"].as_str().unwrap().contains("no-such-bucket-here"), "{write_failed}");
    let (code, _, err) = run_binary(&["report", "merge", missing], &env);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("NoSuchBucket") && err.contains("no-such-bucket-here"), "{err}");
    let (code, _, err) = run_binary(&["report", "merge", &format!("s3://{BUCKET}/nothing-here/")], &env);
    assert_eq!(code, Some(2));
    assert!(err.contains("no report"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
