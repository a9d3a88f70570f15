//! The fleet as one report: three replicas on 127.0.0.2–.4, one admin port, found through a DNS
//! name the test DNS server answers with the three addresses (a headless Service); any replica's
//! `?scope=fleet` equals `report merge` of the three, and a replica that stops answering is named.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::common::dns::{Rr, TestDns};
use crate::common::*;

const SERVICE: &str = "cutover-peers.cutover.test";

/// A port free on the three loopback addresses (asked of the first; the others are quiet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.2:0").unwrap().local_addr().unwrap().port()
}

/// The hosts of a report as (host, requests, action, 2xx), sorted.
fn facts(report: &serde_json::Value) -> Vec<(String, u64, String, u64)> {
    let mut out: Vec<_> = report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap().to_owned(),
                h["requests"].as_u64().unwrap(),
                h["action"].as_str().unwrap().to_owned(),
                h["status"]["2xx"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_replica_reports_the_whole_fleet_and_names_one_that_does_not_answer() {
    let up = Upstream::start().await;
    let dns = TestDns::start().await;
    let ips: Vec<Ipv4Addr> = (2..=4).map(|n| Ipv4Addr::new(127, 0, 0, n)).collect();
    dns.set(SERVICE, vec![(Rr::A(ips.clone()), 5)]);
    let port = free_port();
    let (url, dns_server, peers) = (up.url(), dns.addr.to_string(), format!("{SERVICE}:{port}"));
    let mut replicas: Vec<ProxyProc> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            let (id, admin) = (format!("replica-{}", i + 1), format!("{ip}:{port}"));
            let args = [
                "--upstream",
                &url,
                "--replica-id",
                &id,
                "--admin-listen",
                &admin,
                "--peers",
                &peers,
                "--dns-server",
                &dns_server,
                "--dns-timeout",
                "300ms",
                "--peer-timeout",
                "2s",
            ];
            ProxyProc::start(&args)
        })
        .collect();

    // Each replica sees part of the traffic; one host arrives at two of them.
    let traffic: [&[(&str, &str)]; 3] = [
        &[("shop.example.com", "/cart"), ("shop.example.com", "/cart"), ("shop.example.com", "/pay")],
        &[("shop.example.com", "/cart"), ("api.example.com", "/v1/users/7")],
        &[("img.example.com", "/logo.png")],
    ];
    for (proxy, requests) in replicas.iter().zip(traffic) {
        let mut c = H1Client::connect(proxy.addr).await;
        for (host, path) in requests {
            assert_eq!(c.get(host, path).await.status, 200);
        }
        proxy.wait_access(requests.len());
    }

    // The reference: each replica's own report, merged offline.
    let dir = temp_dir("fleet");
    let mut files = Vec::new();
    for (i, proxy) in replicas.iter().enumerate() {
        let (status, body) = admin_get(proxy.admin, "/report").await;
        assert_eq!(status, 200, "{body}");
        let file = dir.join(format!("replica-{}.json", i + 1));
        std::fs::write(&file, body).unwrap();
        files.push(file.to_str().unwrap().to_owned());
    }
    let mut args = vec!["report", "merge"];
    args.extend(files.iter().map(String::as_str));
    let (code, merged, err) = run_binary(&args, &[]);
    assert_eq!(code, Some(0), "{err}");
    let merged: serde_json::Value = serde_json::from_str(&merged).unwrap();

    let (status, body) = admin_get(replicas[1].admin, "/report?scope=fleet").await;
    assert_eq!(status, 200, "{body}");
    let fleet: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(facts(&fleet), facts(&merged), "the fleet report is the merge of the three");
    assert_eq!(fleet["totals"], merged["totals"]);
    assert_eq!(host(&fleet, "shop.example.com")["requests"], 4);
    let listed: Vec<(String, String, bool)> = fleet["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().into(), r["address"].as_str().unwrap().into(), r["reachable"] == true))
        .collect();
    let mut expected: Vec<(String, String, bool)> =
        (0..3).map(|i| (format!("replica-{}", i + 1), format!("{}:{port}", ips[i]), true)).collect();
    // The asking replica comes first (it found itself through the Service, counted once).
    expected.swap(0, 1);
    assert_eq!(listed, expected, "{}", fleet["replicas"]);

    // The other formats, Route53 and the dashboard speak for the fleet too.
    let (status, md) = admin_get(replicas[0].admin, "/report.md?scope=fleet").await;
    assert_eq!(status, 200, "{md}");
    assert!(md.contains("3 replica(s)") && md.contains("img.example.com"), "{md}");
    let (status, csv) = admin_get(replicas[0].admin, "/report.csv?scope=fleet").await;
    assert_eq!(status, 200, "{csv}");
    assert!(csv.contains("api.example.com") && csv.contains("img.example.com"), "{csv}");
    let (status, r53) = admin_get(replicas[0].admin, "/report/route53?scope=fleet").await;
    assert_eq!(status, 200, "{r53}");
    serde_json::from_str::<serde_json::Value>(&r53).unwrap();
    let (status, page) = admin_get(replicas[0].admin, "/?scope=fleet").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<h2>Replicas</h2>") && page.contains("replica-3"), "{page}");
    assert!(page.contains("href=\"/report?scope=fleet\""), "links stay in the fleet");
    let (status, why) = admin_get(replicas[0].admin, "/report?scope=fleet&all=true").await;
    assert_eq!((status, why.contains("bounded")), (400, true), "{why}");
    let (status, _) = admin_get(replicas[0].admin, "/report?scope=galaxy").await;
    assert_eq!(status, 400);

    // Replica 3 goes away: the fleet report names it and counts the other two.
    let mut gone = replicas.pop().unwrap();
    gone.sigterm();
    assert!(gone.wait_exit(Duration::from_secs(60)).is_some());
    let (status, body) = admin_get(replicas[0].admin, "/report?scope=fleet").await;
    assert_eq!(status, 200, "{body}");
    let fleet: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(fleet["totals"]["requests"], 5, "{}", fleet["totals"]);
    let missing = fleet["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == format!("127.0.0.4:{port}").as_str())
        .unwrap_or_else(|| panic!("the replica that left is named: {}", fleet["replicas"]))
        .clone();
    assert_eq!(missing["reachable"], false);
    assert!(missing["error"].as_str().unwrap().contains("connect"), "{missing}");

    // The name that no longer resolves is named too, and the local report still comes back.
    dns.silence(SERVICE);
    let (status, body) = admin_get(replicas[0].admin, "/report?scope=fleet").await;
    assert_eq!(status, 200, "{body}");
    let fleet: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(fleet["replicas"][0]["id"], "replica-1");
    let named = &fleet["replicas"][1];
    assert_eq!(named["address"], peers.as_str(), "{}", fleet["replicas"]);
    assert!(named["error"].as_str().unwrap().contains("cannot resolve"), "{named}");
    std::fs::remove_dir_all(&dir).ok();
}
