//! Route53 as the zones say: an exported zone (two pages, `\052` wildcard, weighted aliases, a
//! simple CNAME, an ExternalDNS TXT owner) judged without live DNS, and the change batches the
//! export writes — over HTTP and from the CLI — checked field by field.

use std::path::PathBuf;

use crate::common::*;

const BLUE: [&str; 3] = [
    "k8s-blue-api-1a2b.ap-northeast-2.elb.amazonaws.com",
    "k8s-blue-legacy-9f.elb.ap-northeast-2.amazonaws.com",
    "k8s-blue-tenant-77.elb.ap-northeast-2.amazonaws.com",
];
const GREEN: &str = "k8s-green-api-3c4d.ap-northeast-2.elb.amazonaws.com";

const GREEN_ROUTES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: api-green, namespace: shop}
spec:
  rules:
  - host: api.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: rest, namespace: web}
spec:
  hostnames: ["legacy.example.com", "*.tenant.example.com", "moved.example.com", "web.example.com", "shop.other.org"]
  rules: [{backendRefs: [{name: web, port: 80}]}]
"#;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/Z0EXAMPLE.json")
}

/// The changes of one record name (and set identifier, when given).
fn changes<'a>(batch: &'a serde_json::Value, name: &str) -> Vec<&'a serde_json::Value> {
    batch["Changes"].as_array().unwrap().iter().filter(|c| c["ResourceRecordSet"]["Name"] == name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route53_records_give_verdicts_and_change_batches() {
    let upstream = Upstream::start().await;
    let dir = temp_dir("export");
    let routes = dir.join("green.yaml");
    std::fs::write(&routes, GREEN_ROUTES).unwrap();
    let url = upstream.url();
    let fixture = fixture();
    let mut args = vec!["--upstream", url.as_str(), "--green-routes", routes.to_str().unwrap()];
    args.extend(["--no-live-dns", "--route53-records", fixture.to_str().unwrap(), "--green-target", GREEN]);
    for b in BLUE {
        args.extend(["--blue-target", b]);
    }
    let proxy = ProxyProc::start(&args);
    let mut c = H1Client::connect(proxy.addr).await;
    for h in [
        "api.example.com",
        "legacy.example.com",
        "a.tenant.example.com",
        "moved.example.com",
        "web.example.com",
        "shop.other.org",
    ] {
        assert_eq!(c.get(h, "/").await.status, 200);
    }
    let (status, body) = admin_get(proxy.admin, "/report").await;
    assert_eq!(status, 200);
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["dns"]["zones"][0], serde_json::json!({"id": "Z0EXAMPLE", "name": "example.com"}));

    let api = host(&report, "api.example.com");
    assert_eq!((api["dns"]["verdict"].as_str(), api["dns"]["source"].as_str()), (Some("blue"), Some("route53")));
    assert_eq!(api["dns"]["records"].as_array().unwrap().len(), 2);
    assert_eq!(api["dns"]["external_dns"]["owner"], "eks-blue");
    assert_eq!(api["action"], "switch-dns");
    assert!(api.get("dns_change_blocked").is_none(), "{api}");
    assert_eq!(host(&report, "legacy.example.com")["action"], "switch-dns");
    let tenant = host(&report, "a.tenant.example.com");
    assert_eq!(tenant["dns"]["records"][0]["name"], "*.tenant.example.com");
    assert_eq!(tenant["action"], "switch-dns");
    let moved = host(&report, "moved.example.com");
    assert_eq!((moved["dns"]["verdict"].as_str(), moved["action"].as_str()), (Some("green"), Some("wait-ttl")));
    assert_eq!(moved["dns"]["max_ttl"], 60, "alias answers carry the ELB's 60 s");
    let other = host(&report, "shop.other.org");
    assert_eq!(
        (other["dns"]["verdict"].as_str(), other["action"].as_str()),
        (Some("external"), Some("investigate-dns"))
    );

    // Over HTTP: one zone's batch, exactly what --change-batch file:// takes.
    let (status, body) = admin_get(proxy.admin, "/report/route53?zone=Z0EXAMPLE").await;
    assert_eq!(status, 200, "{body}");
    let batch: serde_json::Value = serde_json::from_str(&body).unwrap();
    let keys: Vec<&String> = batch.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["Comment", "Changes"], "no ChangeBatch wrapper");
    let api = changes(&batch, "api.example.com.");
    assert_eq!(api.len(), 2, "{batch:#}");
    for c in &api {
        let set = &c["ResourceRecordSet"];
        assert_eq!(c["Action"], "UPSERT");
        assert!(set.get("TTL").is_none(), "alias records carry no TTL");
        let want = if set["SetIdentifier"] == "eks-green" { 100 } else { 0 };
        assert_eq!(set["Weight"], want, "{set}");
        assert_eq!(set["AliasTarget"]["HostedZoneId"], "ZWKZPGTI48KDX");
    }
    let legacy = changes(&batch, "legacy.example.com.");
    let actions: Vec<&str> = legacy.iter().map(|c| c["Action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["DELETE", "CREATE", "CREATE"], "a simple record becomes a weighted pair");
    assert_eq!(legacy[0]["ResourceRecordSet"]["TTL"], 300, "DELETE matches the record exactly");
    assert!(legacy[0]["ResourceRecordSet"].get("SetIdentifier").is_none());
    assert_eq!(legacy[1]["ResourceRecordSet"]["Weight"], 0);
    assert_eq!(legacy[1]["ResourceRecordSet"]["ResourceRecords"][0]["Value"], BLUE[1]);
    assert_eq!(legacy[2]["ResourceRecordSet"]["Weight"], 100);
    assert_eq!(legacy[2]["ResourceRecordSet"]["TTL"], 60, "--dns-ttl");
    assert_eq!(legacy[2]["ResourceRecordSet"]["ResourceRecords"][0]["Value"], GREEN);
    let web = changes(&batch, "web.example.com.");
    assert_eq!(web.len(), 3);
    let green_web = &web[2]["ResourceRecordSet"];
    assert_eq!(green_web["AliasTarget"]["DNSName"], format!("dualstack.{GREEN}."));
    assert_eq!(
        green_web["AliasTarget"]["HostedZoneId"], "ZWKZPGTI48KDX",
        "the load balancer's zone, not the hosted zone"
    );
    assert!(
        changes(&batch, "*.tenant.example.com.").is_empty() && changes(&batch, "\\052.tenant.example.com.").is_empty()
    );
    let tenant = changes(&batch, "a.tenant.example.com.");
    assert_eq!(tenant.iter().map(|c| c["Action"].as_str().unwrap()).collect::<Vec<_>>(), ["CREATE", "CREATE"]);
    assert!(changes(&batch, "moved.example.com.").is_empty(), "only switch-dns hosts change");

    // From the CLI, on the saved report, with another weight.
    let report_file = dir.join("report.json");
    std::fs::write(&report_file, &body_of_report(&proxy).await).unwrap();
    let out = dir.join("batches");
    let (code, stdout, stderr) = run_binary(
        &["report", "route53", report_file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--green-weight", "50"],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("Z0EXAMPLE.json") && stdout.contains("api.example.com"), "{stdout}");
    let batch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("Z0EXAMPLE.json")).unwrap()).unwrap();
    let green = changes(&batch, "api.example.com.")
        .into_iter()
        .find(|c| c["ResourceRecordSet"]["SetIdentifier"] == "eks-green")
        .unwrap();
    assert_eq!(green["ResourceRecordSet"]["Weight"], 50);
    let script = std::fs::read_to_string(out.join("externaldns-patch.sh")).unwrap();
    assert!(script.contains("-n shop annotate ingress api --overwrite"), "{script}");
    assert!(script.contains("-n shop annotate ingress api-green --overwrite"), "{script}");
    assert!(script.contains("set-identifier=eks-green external-dns.alpha.kubernetes.io/aws-weight=50"), "{script}");
}

async fn body_of_report(proxy: &ProxyProc) -> String {
    admin_get(proxy.admin, "/report").await.1
}

#[test]
fn a_broken_route53_export_refuses_to_start() {
    let dir = temp_dir("broken");
    let bad = dir.join("records.json");
    std::fs::write(&bad, "{\"ResourceRecordSets\": [\n  {\"Name\": \"a.example.com.\", \"Type\": \"A\"},\n  oops\n]}")
        .unwrap();
    let arg = format!("Z9={}", bad.display());
    let (code, _, stderr) = run_binary(&["serve", "--upstream", "http://127.0.0.1:9", "--route53-records", &arg], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("route53 records file") && stderr.contains("records.json") && stderr.contains("line 3"),
        "{stderr}"
    );
    let (code, _, stderr) =
        run_binary(&["serve", "--upstream", "http://127.0.0.1:9", "--route53-records", "records.json"], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("ZONEID=FILE"), "{stderr}");
}
