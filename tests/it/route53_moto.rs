//! The exported change batch applied for real: moto's Route53 server on loopback, the AWS CLI.
//! The zone is created and loaded with the blue state, exported with `list-resource-record-sets`
//! (the operator's own command), fed to the proxy with traffic, and the batch from `report
//! route53` is applied with `change-resource-record-sets`; afterwards exactly the intended hosts
//! send their weight to green.
//! Needs moto and the AWS CLI (`common::moto`).

use crate::common::moto::Moto;
use crate::common::*;
use serde_json::{json, Value};

const BLUE_ALB: &str = "k8s-blue-api-1a2b.ap-northeast-2.elb.amazonaws.com";
const BLUE_NLB: &str = "k8s-blue-legacy-9f.elb.ap-northeast-2.amazonaws.com";
const GREEN_ALB: &str = "k8s-green-api-3c4d.ap-northeast-2.elb.amazonaws.com";

fn alias(name: &str, id: &str, weight: u64, lb: &str) -> Value {
    json!({"Name": name, "Type": "A", "SetIdentifier": id, "Weight": weight,
           "AliasTarget": {"HostedZoneId": "ZWKZPGTI48KDX", "DNSName": format!("dualstack.{lb}."), "EvaluateTargetHealth": true}})
}

fn cname(name: &str, ttl: u64, value: &str) -> Value {
    json!({"Name": name, "Type": "CNAME", "TTL": ttl, "ResourceRecords": [{"Value": value}]})
}

const GREEN_ROUTES: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  hostnames: ["api.example.com", "legacy.example.com", "*.tenant.example.com", "untouched.example.com"]
  rules: [{backendRefs: [{name: web, port: 80}]}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exported_batch_applies_to_route53_and_moves_exactly_the_switch_dns_hosts() {
    let Some(aws) = Moto::start() else { return };
    let created =
        aws.aws(&["route53", "create-hosted-zone", "--name", "example.com", "--caller-reference", "cutover-test"]);
    let zone = created["HostedZone"]["Id"].as_str().unwrap().trim_start_matches("/hostedzone/").to_owned();

    // Blue's state: a weighted alias pair, a simple CNAME, a wildcard, a host green lacks a route
    // for, a host that gets no traffic, and an ExternalDNS owner record.
    let dir = std::env::temp_dir().join(format!("cutover-moto-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sets = [
        alias("api.example.com.", "eks-blue", 100, BLUE_ALB),
        alias("api.example.com.", "eks-green", 0, GREEN_ALB),
        cname("legacy.example.com.", 300, BLUE_NLB),
        cname("*.tenant.example.com.", 300, BLUE_NLB),
        cname("nogreen.example.com.", 300, BLUE_NLB),
        cname("untouched.example.com.", 300, BLUE_NLB),
        json!({"Name": "api.example.com.", "Type": "TXT", "TTL": 300, "ResourceRecords": [{"Value": "\"heritage=external-dns,external-dns/owner=eks-blue,external-dns/resource=ingress/shop/api\""}]}),
    ];
    let load = dir.join("load.json");
    let batch = json!({"Changes": sets.iter().map(|s| json!({"Action": "CREATE", "ResourceRecordSet": s})).collect::<Vec<_>>()});
    std::fs::write(&load, batch.to_string()).unwrap();
    aws.apply(&zone, &load);

    // The operator's export, as the proxy reads it.
    let export = aws.aws(&["route53", "list-resource-record-sets", "--hosted-zone-id", &zone]);
    let export_file = dir.join("export.json");
    std::fs::write(&export_file, export.to_string()).unwrap();
    let before = export["ResourceRecordSets"].as_array().unwrap().clone();

    let upstream = Upstream::start().await;
    let routes = dir.join("green.yaml");
    std::fs::write(&routes, GREEN_ROUTES).unwrap();
    let (url, records) = (upstream.url(), format!("{zone}={}", export_file.display()));
    let proxy = ProxyProc::start(&[
        "--upstream",
        &url,
        "--green-routes",
        routes.to_str().unwrap(),
        "--no-live-dns",
        "--route53-records",
        &records,
        "--blue-target",
        BLUE_ALB,
        "--blue-target",
        BLUE_NLB,
        "--green-target",
        GREEN_ALB,
    ]);
    let mut c = H1Client::connect(proxy.addr).await;
    for h in ["api.example.com", "legacy.example.com", "shop.tenant.example.com", "nogreen.example.com"] {
        assert_eq!(c.get(h, "/").await.status, 200);
    }
    let (_, body) = admin_get(proxy.admin, "/report").await;
    let report_file = dir.join("report.json");
    std::fs::write(&report_file, &body).unwrap();
    let report: Value = serde_json::from_str(&body).unwrap();
    let action =
        |h: &str| report["hosts"].as_array().unwrap().iter().find(|x| x["host"] == h).unwrap()["action"].clone();
    assert_eq!(action("nogreen.example.com"), "add-green-route");
    assert_eq!(action("api.example.com"), "switch-dns");

    let out = dir.join("batches");
    let (code, stdout, stderr) =
        run_binary(&["report", "route53", report_file.to_str().unwrap(), "--out", out.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let applied = aws.apply(&zone, &out.join(format!("{zone}.json")));
    assert!(applied["ChangeInfo"]["Id"].is_string(), "{applied}");

    let after = aws.aws(&["route53", "list-resource-record-sets", "--hosted-zone-id", &zone]);
    let after = after["ResourceRecordSets"].as_array().unwrap();
    let named =
        |name: &str| -> Vec<&Value> { after.iter().filter(|r| r["Name"] == name && r["Type"] != "TXT").collect() };
    // Moved: green gets the weight, blue stays with 0 for rollback.
    for name in ["api.example.com.", "legacy.example.com.", "shop.tenant.example.com."] {
        let sets = named(name);
        assert_eq!(sets.len(), 2, "{name}: {sets:?}");
        for s in sets {
            let target = s["AliasTarget"]["DNSName"].as_str().or(s["ResourceRecords"][0]["Value"].as_str()).unwrap();
            let want = if target.contains("green") { 100 } else { 0 };
            assert_eq!(s["Weight"], want, "{name}: {s}");
        }
    }
    // Untouched: the wildcard itself, the host green cannot serve, the host with no traffic.
    for name in ["*.tenant.example.com.", "nogreen.example.com.", "untouched.example.com."] {
        let was: Vec<&Value> = before.iter().filter(|r| r["Name"] == name).collect();
        assert_eq!(named(name), was, "{name} must not change");
    }
}
