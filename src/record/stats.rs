//! Bounded counters the ledger keeps per host and path: space-saving top-k, a per-minute ring of the
//! last 24 hours, method and status-class tallies. Pure data structures, mergeable across replicas.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Minutes kept in a [`Minutes`] ring.
pub const RING_MINUTES: u64 = 24 * 60;

/// The space-saving summary (Metwally et al.): at most `cap` counters; a new key replaces the
/// smallest one and inherits its count as over-estimate, so heavy hitters are never lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopK<K> {
    cap: usize,
    items: Vec<(K, u64)>,
}

impl<K: PartialEq + Clone> TopK<K> {
    /// Keeps at most `cap` counters.
    pub fn new(cap: usize) -> Self {
        Self { cap: cap.max(1), items: Vec::new() }
    }

    /// The same, with room for all `cap` made at once (one allocation, charged once).
    pub fn with_room(cap: usize) -> Self {
        Self { cap: cap.max(1), items: Vec::with_capacity(cap.max(1)) }
    }

    /// Counts `n` occurrences of the key that `eq` recognizes; `make` builds it only when
    /// needed. Returns the key a newcomer replaced, when the summary was full.
    pub fn add_with(&mut self, eq: impl Fn(&K) -> bool, make: impl FnOnce() -> K, n: u64) -> Option<K> {
        if let Some(item) = self.items.iter_mut().find(|(k, _)| eq(k)) {
            item.1 += n;
            return None;
        }
        if self.items.len() < self.cap {
            self.items.push((make(), n));
            return None;
        }
        let min = self.items.iter_mut().min_by_key(|(_, c)| *c)?;
        let count = min.1 + n;
        Some(std::mem::replace(min, (make(), count)).0)
    }

    /// Whether a key not yet counted would take a new slot (rather than replace the smallest).
    pub fn has_room(&self) -> bool {
        self.items.len() < self.cap
    }

    /// The counters, in no particular order.
    pub fn items(&self) -> &[(K, u64)] {
        &self.items
    }

    /// Counts `n` occurrences of `key`.
    pub fn add(&mut self, key: &K, n: u64) {
        let _ = self.add_with(|k| k == key, || key.clone(), n);
    }

    /// The counters, largest first.
    pub fn top(&self) -> Vec<(K, u64)> {
        let mut v = self.items.clone();
        v.sort_by_key(|item| std::cmp::Reverse(item.1));
        v
    }

    /// Adds another summary's counters (replicas' reports merged).
    pub fn merge(&mut self, other: &TopK<K>) {
        let mut all: Vec<(K, u64)> = self.items.clone();
        for (k, c) in &other.items {
            match all.iter_mut().find(|(x, _)| x == k) {
                Some(item) => item.1 += c,
                None => all.push((k.clone(), *c)),
            }
        }
        all.sort_by_key(|item| std::cmp::Reverse(item.1));
        all.truncate(self.cap.max(other.cap));
        self.cap = self.cap.max(other.cap);
        self.items = all;
    }
}

/// Requests per minute over the last 24 hours: `(unix minute, count)`, oldest first, bounded. Kept
/// as 32-bit pairs: a minute of one host in one lane never holds four billion requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Minutes(VecDeque<(u32, u32)>);

impl Minutes {
    /// Counts `n` requests in `minute` (unix minutes).
    pub fn add(&mut self, minute: u64, n: u64) {
        let (minute, n) = (u32::try_from(minute).unwrap_or(u32::MAX), u32::try_from(n).unwrap_or(u32::MAX));
        match self.0.back_mut() {
            Some((m, c)) if *m == minute => *c = c.saturating_add(n),
            Some((m, _)) if *m > minute => {
                // A late record (a long request logged when it ends): into its minute, in order;
                // older than the kept day, into the oldest kept minute so the sum stays exact.
                let newest = *m;
                match self.0.binary_search_by_key(&minute, |(m, _)| *m) {
                    Ok(i) => self.0[i].1 = self.0[i].1.saturating_add(n),
                    Err(i) if u64::from(minute) + RING_MINUTES > u64::from(newest) => self.0.insert(i, (minute, n)),
                    Err(_) => {
                        if let Some(front) = self.0.front_mut() {
                            front.1 = front.1.saturating_add(n);
                        }
                    }
                }
                return;
            }
            _ => self.0.push_back((minute, n)),
        }
        while self.0.front().is_some_and(|(m, _)| u64::from(*m) + RING_MINUTES <= u64::from(minute)) {
            self.0.pop_front();
        }
    }

    /// Whether counting a request in `minute` needs room for a new minute that the ring has no
    /// spare capacity for (the ledger charges its memory budget first).
    pub fn grows_for(&self, minute: u64) -> bool {
        self.0.back().is_none_or(|(m, _)| u64::from(*m) < minute) && self.0.len() == self.0.capacity()
    }

    /// Counts `n` in the newest kept minute instead of a new one: the sum stays exact when the
    /// ring may not grow.
    pub fn add_to_newest(&mut self, n: u64) {
        match self.0.back_mut() {
            Some((_, c)) => *c = c.saturating_add(u32::try_from(n).unwrap_or(u32::MAX)),
            None => self.add(0, n),
        }
    }

    /// Bytes the ring holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<(u32, u32)>()
    }

    /// The kept minutes, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.iter().map(|&(m, c)| (u64::from(m), u64::from(c)))
    }

    /// Adds another ring (merge), keeping the last 24 h of the combined range.
    pub fn merge(&mut self, other: &Minutes) {
        let mut all: Vec<(u64, u64)> = self.iter().chain(other.iter()).collect();
        all.sort_by_key(|(m, _)| *m);
        let mut merged = Minutes::default();
        for (m, c) in all {
            merged.add(m, c);
        }
        *self = merged;
    }
}

/// The methods seen, as a small set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Methods(u16);

const METHOD_NAMES: [&str; 10] =
    ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER"];

impl Methods {
    /// Adds a method.
    pub fn add(&mut self, method: &http::Method) {
        use http::Method as M;
        // Standard methods compare as enum variants: no string comparison per request.
        let i = match *method {
            M::GET => 0,
            M::HEAD => 1,
            M::POST => 2,
            M::PUT => 3,
            M::DELETE => 4,
            M::PATCH => 5,
            M::OPTIONS => 6,
            M::CONNECT => 7,
            M::TRACE => 8,
            _ => METHOD_NAMES.len() - 1,
        };
        self.0 |= 1 << i;
    }

    /// Adds a method by name (merge of reports).
    pub fn add_name(&mut self, name: &str) {
        let i = METHOD_NAMES.iter().position(|m| *m == name).unwrap_or(METHOD_NAMES.len() - 1);
        self.0 |= 1 << i;
    }

    /// Whether `name` (`GET`, `HEAD`, …) was seen.
    pub fn has(&self, name: &str) -> bool {
        METHOD_NAMES.iter().position(|m| *m == name).is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// Adds every method of `other`.
    pub fn union(&mut self, other: &Methods) {
        self.0 |= other.0;
    }

    /// The names, in a fixed order.
    pub fn names(&self) -> Vec<String> {
        METHOD_NAMES.iter().enumerate().filter(|(i, _)| self.0 & (1 << i) != 0).map(|(_, n)| (*n).to_owned()).collect()
    }
}

/// Responses by status class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusClasses {
    /// 1xx (101 for upgrades).
    #[serde(rename = "1xx")]
    pub c1: u64,
    /// 2xx.
    #[serde(rename = "2xx")]
    pub c2: u64,
    /// 3xx.
    #[serde(rename = "3xx")]
    pub c3: u64,
    /// 4xx (499: the client went away).
    #[serde(rename = "4xx")]
    pub c4: u64,
    /// 5xx (502/504 from the proxy included).
    #[serde(rename = "5xx")]
    pub c5: u64,
}

impl StatusClasses {
    /// Counts one status.
    pub fn add(&mut self, status: u16) {
        match status {
            100..=199 => self.c1 += 1,
            200..=299 => self.c2 += 1,
            300..=399 => self.c3 += 1,
            400..=499 => self.c4 += 1,
            _ => self.c5 += 1,
        }
    }

    /// Adds another tally.
    pub fn merge(&mut self, o: &StatusClasses) {
        self.c1 += o.c1;
        self.c2 += o.c2;
        self.c3 += o.c3;
        self.c4 += o.c4;
        self.c5 += o.c5;
    }
}

/// What the ledger counts for a host and for each of its paths alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub requests: u64,
    /// First request, unix ms.
    pub first_seen_ms: u64,
    /// Last request, unix ms.
    pub last_seen_ms: u64,
    /// Methods seen.
    pub methods: Methods,
    /// Status classes.
    pub status: StatusClasses,
    /// Request bytes.
    pub bytes_in: u64,
    /// Response bytes.
    pub bytes_out: u64,
}

impl Counters {
    /// Nothing counted yet; first and last seen start at `at_ms`.
    pub fn starting(at_ms: u64) -> Self {
        Self { first_seen_ms: at_ms, last_seen_ms: at_ms, ..Self::default() }
    }

    /// Counts one request.
    pub fn count(&mut self, method: &http::Method, status: u16, bytes_in: u64, bytes_out: u64, at_ms: u64) {
        self.requests += 1;
        self.first_seen_ms = self.first_seen_ms.min(at_ms);
        self.last_seen_ms = self.last_seen_ms.max(at_ms);
        self.methods.add(method);
        self.status.add(status);
        self.bytes_in += bytes_in;
        self.bytes_out += bytes_out;
    }

    /// Notes activity from `from` to `to` (unix ms) without a request (passthrough connections).
    pub fn touch_span(&mut self, from: u64, to: u64) {
        if self.is_empty() {
            (self.first_seen_ms, self.last_seen_ms) = (from, to);
        } else {
            self.first_seen_ms = self.first_seen_ms.min(from);
            self.last_seen_ms = self.last_seen_ms.max(to);
        }
    }

    /// Nothing counted, nothing seen.
    pub fn is_empty(&self) -> bool {
        self.requests == 0 && self.first_seen_ms == 0 && self.last_seen_ms == 0
    }

    /// Adds another tally, taking it whole when this one is empty (its zero times are no times).
    pub fn absorb(&mut self, o: &Counters) {
        if self.is_empty() {
            *self = *o;
        } else if !o.is_empty() {
            self.merge(o);
        }
    }

    /// Adds another tally of the same host or path.
    pub fn merge(&mut self, o: &Counters) {
        self.requests += o.requests;
        self.first_seen_ms = self.first_seen_ms.min(o.first_seen_ms);
        self.last_seen_ms = self.last_seen_ms.max(o.last_seen_ms);
        self.methods.union(&o.methods);
        self.status.merge(&o.status);
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
    }
}

/// What a host's requests over terminated TLS showed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsCounts {
    /// Requests that arrived over TLS.
    pub requests: u64,
    /// Requests whose Host named another server than the connection's SNI.
    pub sni_mismatch: u64,
    /// Requests on connections served the default certificate (no SNI, or an unknown name).
    pub default_cert: u64,
}

impl TlsCounts {
    /// Counts one request.
    pub fn count(&mut self, sni_mismatch: bool, default_cert: bool) {
        self.requests += 1;
        self.sni_mismatch += sni_mismatch as u64;
        self.default_cert += default_cert as u64;
    }

    /// Adds another tally.
    pub fn merge(&mut self, o: &TlsCounts) {
        self.requests += o.requests;
        self.sni_mismatch += o.sni_mismatch;
        self.default_cert += o.default_cert;
    }
}

/// A host's passthrough connections (TLS not terminated: no requests or paths are visible).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassthroughCounts {
    pub connections: u64,
    /// Bytes from clients.
    pub bytes_in: u64,
    /// Bytes toward clients.
    pub bytes_out: u64,
    /// Time the connections were open, summed, ms.
    pub duration_ms: u64,
}

impl PassthroughCounts {
    /// Counts one connection.
    pub fn count(&mut self, bytes_in: u64, bytes_out: u64, duration_ms: u64) {
        self.connections += 1;
        self.bytes_in += bytes_in;
        self.bytes_out += bytes_out;
        self.duration_ms += duration_ms;
    }

    /// Adds another tally.
    pub fn merge(&mut self, o: &PassthroughCounts) {
        self.connections += o.connections;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.duration_ms += o.duration_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topk_keeps_heavy_hitters() {
        let mut t = TopK::new(3);
        for i in 0..1000u32 {
            t.add(&"heavy", 1);
            t.add(&if i % 2 == 0 { "medium" } else { "noise-a" }, 1);
            let noise = format!("n{i}");
            t.add_with(|k: &&str| *k == noise, || "noise", 1);
        }
        let top = t.top();
        assert_eq!(top[0], ("heavy", 1000));
        assert!(top.len() == 3);
        let mut other = TopK::new(3);
        other.add(&"heavy", 5);
        other.add(&"rare", 1);
        t.merge(&other);
        assert_eq!(t.top()[0], ("heavy", 1005));
    }

    #[test]
    fn minutes_ring_is_bounded() {
        let mut m = Minutes::default();
        for minute in 0..5000 {
            m.add(minute, 2);
        }
        assert_eq!(m.iter().count() as u64, RING_MINUTES);
        assert_eq!(m.iter().next(), Some((5000 - RING_MINUTES, 2)));
        let mut a = Minutes::default();
        a.add(10, 1);
        a.add(12, 1);
        let mut b = Minutes::default();
        b.add(11, 5);
        b.add(12, 2);
        a.merge(&b);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![(10, 1), (11, 5), (12, 3)]);
        let mut late = Minutes::default();
        late.add(3000, 1);
        late.add(3003, 1);
        late.add(3001, 2);
        late.add(3000, 1);
        late.add(2000, 3);
        late.add(1, 4);
        assert_eq!(
            late.iter().collect::<Vec<_>>(),
            vec![(2000, 7), (3000, 2), (3001, 2), (3003, 1)],
            "late records land in order; older than a day, in the oldest minute: the sum stays exact"
        );
    }

    #[test]
    fn methods_and_status() {
        let mut m = Methods::default();
        m.add(&http::Method::POST);
        m.add(&http::Method::GET);
        m.add(&http::Method::from_bytes(b"PROPFIND").unwrap());
        assert_eq!(m.names(), ["GET", "POST", "OTHER"]);
        let mut s = StatusClasses::default();
        for code in [101, 200, 204, 301, 404, 499, 502, 504] {
            s.add(code);
        }
        assert_eq!((s.c1, s.c2, s.c3, s.c4, s.c5), (1, 2, 1, 2, 2));
    }
}
