//! A scanner's flood — every request a new random host, path, user agent and client — while an
//! operator scrapes `/metrics`, `/report` and the dashboard: the ledger stays in its memory budget,
//! the totals stay exact, the default report stays bounded and says what it left out, and
//! first-sighting lines are rate-limited with a summary instead of one per host.

use std::time::Duration;

use hyper::Request;

use crate::common::*;

const FLOOD: u32 = 8_000;
const CONNECTIONS: u32 = 4;
const LIMIT: u64 = 2 << 20;

struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn word(&mut self, len: usize) -> String {
        let r = self.next();
        (0..len).map(|k| (b'a' + ((r >> (k * 5)) % 26) as u8) as char).collect()
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_host_flood_stays_in_the_budget_with_exact_totals() {
    let up = Upstream::start().await;
    let mut proxy = ProxyProc::start(&[
        "--upstream",
        &up.url(),
        "--max-ledger-memory",
        "2MiB",
        "--trusted-proxies",
        "127.0.0.0/8",
        "--log-requests",
        "none",
        "--drain-delay",
        "0s",
    ]);
    let scraping = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let scraper = {
        let (admin, on) = (proxy.admin, scraping.clone());
        tokio::spawn(async move {
            let mut scrapes = 0;
            while on.load(std::sync::atomic::Ordering::Relaxed) {
                for path in ["/metrics", "/report", "/"] {
                    assert_eq!(admin_get(admin, path).await.0, 200, "{path} during the flood");
                    scrapes += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            scrapes
        })
    };
    let mut tasks = Vec::new();
    for t in 0..CONNECTIONS {
        let addr = proxy.addr;
        tasks.push(tokio::spawn(async move {
            let mut rng = Random(0x9E37_79B9_7F4A_7C15 ^ u64::from(t + 1) << 32);
            let mut c = H1Client::connect(addr).await;
            for _ in 0..FLOOD / CONNECTIONS {
                let host = format!("{}.tenant.example.com", rng.word(10));
                let path = format!("/{}/{}/{}", rng.word(6), rng.word(8), rng.word(5));
                let r = rng.next();
                let req = Request::get(path)
                    .header("host", host)
                    .header("user-agent", format!("scanner/{}", rng.word(12)))
                    .header("x-forwarded-for", format!("10.{}.{}.{}", r as u8, (r >> 8) as u8, (r >> 16) as u8))
                    .body(empty())
                    .unwrap();
                assert_eq!(c.send(req).await.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    scraping.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(scraper.await.unwrap() >= 3, "the admin endpoints answered during the flood");

    wait_fresh_summary(proxy.admin).await;
    let (_, text) = admin_get(proxy.admin, "/metrics").await;
    let used = metric(&text, "cutover_ledger_memory_bytes") as u64;
    assert_eq!(metric(&text, "cutover_ledger_memory_limit_bytes") as u64, LIMIT);
    // The `(other)` buckets' entries are charged past the limit: one per shard and worker at most.
    assert!(used <= LIMIT + (96 << 10), "the ledger holds {used} B for a budget of {LIMIT} B");
    assert!(metric(&text, "cutover_ledger_memory_refusals_total") > 0.0, "the budget was reached");
    assert_eq!(metric(&text, "cutover_ledger_requests_total"), f64::from(FLOOD), "every request counted");
    let kept = metric(&text, "cutover_ledger_hosts");
    assert!(kept > 1000.0 && kept < f64::from(FLOOD), "{kept} hosts kept in 2 MiB");
    let rss = proc_kib(proxy.child.id(), "VmHWM");
    eprintln!("flood: {kept} hosts kept, {used} B charged, peak RSS {rss} KiB");
    assert!(rss < 200 << 10, "peak RSS {rss} KiB");

    // The whole report: every request under its host or its bucket.
    let (status, all) = admin_get(proxy.admin, "/report?all=true").await;
    assert_eq!(status, 200);
    let all: serde_json::Value = serde_json::from_str(&all).unwrap();
    let hosts = all["hosts"].as_array().unwrap();
    let sum: u64 = hosts.iter().map(|h| h["requests"].as_u64().unwrap()).sum();
    assert_eq!(sum, u64::from(FLOOD));
    assert!(all.get("omitted").is_none_or(|o| o.is_null()), "nothing left out of ?all=true");
    let other = host(&all, "(other)");
    assert_eq!(other["requests"], all["totals"]["hosts_overflowed_requests"]);
    assert_eq!(other["paths"][0]["path"], "{other}");
    assert_eq!(hosts.len() as f64, kept + 1.0, "the hosts kept and the one bucket");

    // The default report: the first 1000 hosts in full, the rest counted per action.
    let r = report_json(&proxy).await;
    let listed = r["hosts"].as_array().unwrap();
    assert_eq!(listed.len(), 1000);
    let omitted = &r["omitted"];
    assert_eq!(omitted["hosts"].as_u64().unwrap() + 1000, hosts.len() as u64, "{omitted}");
    let listed_requests: u64 = listed.iter().map(|h| h["requests"].as_u64().unwrap()).sum();
    assert_eq!(listed_requests + omitted["requests"].as_u64().unwrap(), u64::from(FLOOD));
    let by_action: u64 =
        omitted["by_action"].as_object().unwrap().values().map(|t| t["requests"].as_u64().unwrap()).sum();
    assert_eq!(by_action, omitted["requests"].as_u64().unwrap());
    assert_eq!(listed[0]["host"], "(other)", "the busiest first");
    // Filters: one host, a domain, a limit; the CSV and Markdown are bounded the same way.
    let one = listed[500]["host"].as_str().unwrap().to_owned();
    let (_, only) = admin_get(proxy.admin, &format!("/report?host={one}")).await;
    let only: serde_json::Value = serde_json::from_str(&only).unwrap();
    assert_eq!(only["hosts"].as_array().unwrap().len(), 1);
    assert_eq!(only["hosts"][0]["host"], one.as_str());
    let (_, ten) = admin_get(proxy.admin, "/report?limit=10&host=*.tenant.example.com").await;
    let ten: serde_json::Value = serde_json::from_str(&ten).unwrap();
    assert_eq!(ten["hosts"].as_array().unwrap().len(), 10);
    assert!(ten["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["host"].as_str().unwrap().ends_with(".tenant.example.com")));
    let (_, csv) = admin_get(proxy.admin, "/report.csv").await;
    let csv_hosts: std::collections::HashSet<&str> =
        csv.lines().skip(1).filter_map(|l| l.split(',').next()).filter(|h| !h.is_empty()).collect();
    assert!(csv_hosts.len() <= 1001, "{} hosts in the CSV", csv_hosts.len());
    let (_, md) = admin_get(proxy.admin, "/report.md").await;
    assert!(md.len() < 4 << 20, "{} bytes of Markdown", md.len());
    assert!(md.contains("are left out"), "the Markdown says what it left out");
    let (status, bad) = admin_get(proxy.admin, "/report?limit=many").await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad.contains("limit"), "{bad}");

    // First sightings: a burst, then a rate, and at shutdown a summary of the rest.
    proxy.sigterm();
    assert_eq!(proxy.wait_exit(Duration::from_secs(20)), Some(0));
    let lines = proxy.json_lines();
    let announced = lines.iter().filter(|v| v["event"] == "new_host").count() as u64;
    let paths = lines.iter().filter(|v| v["event"] == "new_path").count() as u64;
    // The burst of 1000 is shared by new hosts and their first paths, then 50 a second.
    assert!(
        (1000..2500).contains(&(announced + paths)),
        "{announced} new_host and {paths} new_path lines for {kept} hosts"
    );
    let summaries: Vec<_> = lines.iter().filter(|v| v["event"] == "new_hosts_summary").collect();
    let held: u64 = summaries.iter().map(|v| v["more_new_hosts"].as_u64().unwrap()).sum();
    assert_eq!(announced + held, kept as u64, "each kept host told once, in a line or a summary");
    let last = summaries.last().expect("a summary line");
    assert_eq!(last["most_under"][0]["domain"], "tenant.example.com", "{last}");
    assert!(last["message"].as_str().unwrap().contains("more new hosts"), "{last}");
}
