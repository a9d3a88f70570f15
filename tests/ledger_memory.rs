//! The ledger's memory, measured in the process's resident set (with the binary's allocator): a
//! host seen once costs little, a flood of a million random hosts or paths stays inside the
//! budget, and the totals stay exact whatever was bounded. One test runs the phases in order, as
//! the resident set is the whole process's.

use std::sync::Arc;

use cutover_proxy::internals::{Ledger, LedgerSettings, Observation, RouteTable, OTHER_PATH};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} not in /proc/self/status"))
}

struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Letters only, so no segment is taken for an id.
    fn word(&mut self, into: &mut String, len: usize) {
        let r = self.next();
        for k in 0..len {
            into.push((b'a' + ((r >> ((k % 12) * 5)) % 26) as u8) as char);
        }
    }
}

const T0: u64 = 1_764_000_000_000;

/// Records one request; `host`, `path` and `agent` as given.
fn record(ledger: &Ledger, host: &str, path: &str, agent: &str, ip: u64, i: u64) {
    ledger.record(
        &Observation {
            host: Some(host.as_bytes()),
            path,
            method: &http::Method::GET,
            status: 200,
            bytes_in: 0,
            bytes_out: 10,
            client_ip: std::net::IpAddr::from([10, (ip >> 16) as u8, (ip >> 8) as u8, ip as u8]),
            user_agent: Some(agent.as_bytes()),
            conn_age_ms: 5,
            tls: None,
            at_ms: T0 + i,
        },
        |_| {},
    );
}

/// A request of new random host, path, user agent and client: what a scanner sends.
fn random_request(ledger: &Ledger, rng: &mut Random, i: u64, buf: &mut (String, String, String)) {
    let (host, path, agent) = buf;
    host.clear();
    path.clear();
    agent.clear();
    rng.word(host, 10);
    host.push_str(".tenant.example.com");
    for _ in 0..3 {
        path.push('/');
        rng.word(path, 8);
    }
    agent.push_str("scanner/");
    rng.word(agent, 12);
    record(ledger, host, path, agent, rng.next(), i);
}

/// (requests over every host and bucket, over every path, hosts listed).
fn sums(ledger: &Ledger) -> (u64, u64, usize) {
    let (mut requests, mut paths, mut hosts) = (0, 0, 0);
    ledger.for_each_host(|_, h| {
        requests += h.counts.requests;
        paths += h.paths.values().map(|p| p.counts.requests).sum::<u64>();
        hosts += 1;
    });
    (requests, paths, hosts)
}

#[test]
fn memory_stays_in_the_budget_and_totals_stay_exact() {
    one_off_hosts_cost_little();
    a_million_random_hosts_stay_in_the_budget();
    a_million_random_paths_stay_bounded();
}

/// 100 000 hosts seen once, each with its own path, user agent and client: ≤ 512 bytes a host,
/// in the resident set and in what the budget charged.
fn one_off_hosts_cost_little() {
    let settings = LedgerSettings { max_hosts: 1_000_000, max_memory: 1 << 30, ..LedgerSettings::default() };
    let ledger = Ledger::new(settings, Arc::new(RouteTable::empty()));
    let mut rng = Random(0x9E37_79B9_7F4A_7C15);
    let mut buf = Default::default();
    const N: u64 = 100_000;
    // Warm the maps' first growth so the measure is of hosts, not of the first tables.
    let before = status_kib("VmRSS:");
    for i in 0..N {
        random_request(&ledger, &mut rng, i, &mut buf);
    }
    let after = status_kib("VmRSS:");
    let per_host = (after.saturating_sub(before) * 1024) / N;
    let charged = ledger.memory().used as u64 / N;
    eprintln!("one-off host: {per_host} B resident, {charged} B charged ({before} → {after} KiB)");
    assert_eq!(ledger.host_count(), N as usize);
    assert!(per_host <= 512, "a host seen once costs {per_host} B resident");
    assert!(charged <= 512, "a host seen once is charged {charged} B");
    assert!(
        charged * 10 >= per_host * 7,
        "the budget's estimate ({charged} B) is far below what is used ({per_host} B)"
    );
}

/// A million requests, each a new random host, path, user agent and client, with `--max-hosts`
/// out of the way so the memory budget (64 MiB, the default) is what binds: the resident set
/// grows by at most the budget and a little; every request is counted, under its host or its
/// bucket.
fn a_million_random_hosts_stay_in_the_budget() {
    let settings = LedgerSettings { max_hosts: usize::MAX / 2, ..LedgerSettings::default() };
    let limit = settings.max_memory;
    let ledger = Ledger::new(settings, Arc::new(RouteTable::empty()));
    let mut rng = Random(0x2545_F491_4F6C_DD1D);
    let mut buf = Default::default();
    const N: u64 = 1_000_000;
    let before = status_kib("VmRSS:");
    for i in 0..N {
        random_request(&ledger, &mut rng, i, &mut buf);
    }
    let peak = status_kib("VmHWM:");
    let memory = ledger.memory();
    let (requests, paths, hosts) = sums(&ledger);
    let totals = ledger.totals();
    eprintln!(
        "1M random hosts: {} hosts kept, {} B charged of {limit}, resident {before} KiB before, peak {peak} KiB",
        ledger.host_count(),
        memory.used
    );
    assert!(memory.used <= limit, "charged {} of {limit}", memory.used);
    assert!(peak.saturating_sub(before) * 1024 <= limit as u64 + (16 << 20), "peak {peak} KiB from {before} KiB");
    assert_eq!((totals.requests, requests, paths), (N, N, N), "every request counted once");
    assert!(totals.hosts_overflowed > 0 && totals.hosts_overflowed < N);
    assert_eq!(hosts, ledger.host_count() + 1, "the hosts kept and one `(other)` bucket");
    let other = ledger.host("(other)").expect("the bucket is listed");
    assert_eq!(other.counts.requests, totals.hosts_overflowed);
}

/// A million requests with distinct random paths over 20 hosts: each host keeps its 1 000 most
/// requested templates and `{other}`, in the budget.
fn a_million_random_paths_stay_bounded() {
    let ledger = Ledger::new(LedgerSettings::default(), Arc::new(RouteTable::empty()));
    let mut rng = Random(0x1234_5678_9ABC_DEF1);
    let before = status_kib("VmRSS:");
    let mut path = String::new();
    const N: u64 = 1_000_000;
    for i in 0..N {
        path.clear();
        path.push_str("/files/");
        rng.word(&mut path, 12);
        let agent = format!("client/{}", rng.next() % 5000);
        record(&ledger, &format!("h{}.example.com", i % 20), &path, &agent, i, i);
    }
    let peak = status_kib("VmHWM:");
    let (requests, paths, hosts) = sums(&ledger);
    assert_eq!((requests, paths, hosts), (N, N, 20), "every request counted");
    ledger.for_each_host(|host, h| {
        assert_eq!(h.paths.len(), 1_001, "{host}: 1000 templates + {{other}}");
        assert!(h.paths.contains_key(OTHER_PATH));
    });
    assert!(ledger.memory().used <= ledger.memory().limit);
    eprintln!("1M random paths: resident {before} KiB before, peak {peak} KiB");
}
