//! What green answered, per host and path template: the last probe of each, bounded by the
//! ledger's own path bound, and green's default answer. Written by the probe task, read by
//! reports; nothing on the request path touches it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::judge::{Answer, ProbeVerdict};

/// The last probe of one host and path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathProbe {
    /// `GET` or `HEAD`.
    pub method: &'static str,
    /// The concrete path asked (a real request's, without its query).
    pub path: Box<str>,
    /// Green's status (`None`: no answer).
    pub status: Option<u16>,
    pub verdict: ProbeVerdict,
    /// `GET /v1/pay/8 → 404 like green's default backend`, `certificate does not cover …`.
    pub detail: Box<str>,
    pub checked_at_ms: u64,
    /// The route table's epoch it was made under (a reload makes every path due again).
    pub epoch: u64,
}

/// One host's path probes, by template.
pub type HostProbes = HashMap<Box<str>, PathProbe>;

/// Probes of every host, and what "no route" looks like on green.
#[derive(Debug)]
pub struct ProbeBook {
    /// `--green-probe`.
    pub url: String,
    hosts: Mutex<HashMap<Box<str>, HostProbes>>,
    /// Path probes kept at most (the ledger's `--max-paths`).
    max_paths: usize,
    kept: AtomicUsize,
    default: Mutex<Option<Answer>>,
    epoch: AtomicU64,
    /// Probes made, by verdict (for `/metrics`).
    made: [AtomicU64; ProbeVerdict::COUNT],
}

impl ProbeBook {
    /// An empty book of probes to `url`, keeping at most `max_paths` path probes.
    pub fn new(url: String, max_paths: usize) -> Self {
        Self {
            url,
            hosts: Mutex::new(HashMap::new()),
            max_paths,
            kept: AtomicUsize::new(0),
            default: Mutex::new(None),
            epoch: AtomicU64::new(0),
            made: Default::default(),
        }
    }

    /// Keeps `probe` as the last of `host`'s `template` (refused past the bound for a new one).
    pub fn record(&self, host: &str, template: &str, probe: PathProbe) {
        self.made[probe.verdict.index()].fetch_add(1, Ordering::Relaxed);
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let paths = match hosts.get_mut(host) {
            Some(p) => p,
            None if self.kept.load(Ordering::Relaxed) < self.max_paths => hosts.entry(host.into()).or_default(),
            None => return,
        };
        if let Some(old) = paths.get_mut(template) {
            *old = probe;
        } else if self.kept.load(Ordering::Relaxed) < self.max_paths {
            paths.insert(template.into(), probe);
            self.kept.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether `host`'s `template` needs a probe at `now_ms`: never probed, probed before the
    /// last route reload, or longer ago than `interval_ms`.
    pub fn due(&self, host: &str, template: &str, now_ms: u64, interval_ms: u64) -> bool {
        let epoch = self.epoch.load(Ordering::Relaxed);
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        match hosts.get(host).and_then(|p| p.get(template)) {
            None => true,
            Some(p) => p.epoch != epoch || now_ms.saturating_sub(p.checked_at_ms) >= interval_ms,
        }
    }

    /// `host`'s path probes, by template.
    pub fn host(&self, host: &str) -> Option<HostProbes> {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner()).get(host).cloned()
    }

    /// Green's answer for a host it does not serve (`None` until calibrated).
    pub fn default_answer(&self) -> Option<Answer> {
        self.default.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_default_answer(&self, answer: Option<Answer>) {
        *self.default.lock().unwrap_or_else(|p| p.into_inner()) = answer;
    }

    /// Green's routes changed: every path is due again.
    pub fn routes_changed(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Probes made with `verdict`.
    pub fn made(&self, verdict: ProbeVerdict) -> u64 {
        self.made[verdict.index()].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(verdict: ProbeVerdict, at: u64) -> PathProbe {
        PathProbe {
            method: "GET",
            path: "/p".into(),
            status: Some(200),
            verdict,
            detail: "GET /p → 200".into(),
            checked_at_ms: at,
            epoch: 0,
        }
    }

    #[test]
    fn bounded_due_by_interval_and_reload() {
        let book = ProbeBook::new("http://green".into(), 2);
        assert!(book.due("a", "/p", 0, 1000));
        book.record("a", "/p", probe(ProbeVerdict::Served, 100));
        book.record("a", "/q", probe(ProbeVerdict::Failing, 100));
        book.record("b", "/p", probe(ProbeVerdict::Served, 100));
        assert!(book.host("b").is_none(), "past the bound nothing new is kept");
        assert_eq!(book.made(ProbeVerdict::Served), 2, "but every probe is counted");
        assert!(!book.due("a", "/p", 500, 1000));
        assert!(book.due("a", "/p", 1100, 1000));
        book.routes_changed();
        assert!(book.due("a", "/p", 500, 1000), "a reload makes every path due");
    }
}
