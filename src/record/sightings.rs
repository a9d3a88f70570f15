//! First sightings, bounded: `new_host` and `new_path` events pass at a steady rate with a burst
//! (a cutover's first minutes announce every host), and past it are counted per lane, with the
//! domains most of them fell under, for one summary line a minute. A flood of random hosts then
//! writes a line a minute, not two lines a request.

use std::sync::Mutex;

use super::observation::Sighting;
use super::stats::TopK;

/// Events that pass in a burst, and then per second.
pub const BURST: u32 = 1000;
pub const PER_SECOND: u32 = 50;
/// Domains named in a summary line.
const DOMAINS: usize = 5;

/// The rate limit shared by the lanes (taken only on a first sighting: the miss path).
#[derive(Debug)]
pub struct Gate(Mutex<(u64, f64)>);

impl Default for Gate {
    fn default() -> Self {
        Gate(Mutex::new((0, f64::from(BURST))))
    }
}

impl Gate {
    /// Whether one more event may pass at `now_ms`.
    pub fn admit(&self, now_ms: u64) -> bool {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (last, tokens) = &mut *g;
        let elapsed = now_ms.saturating_sub(*last) as f64 / 1000.0;
        *last = (*last).max(now_ms);
        *tokens = (*tokens + elapsed * f64::from(PER_SECOND)).min(f64::from(BURST));
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// First sightings a lane held back since the last summary.
#[derive(Debug, Clone)]
pub struct Suppressed {
    pub new_hosts: u64,
    pub new_paths: u64,
    /// The parent domains (a host without its first label) most of the new hosts fell under.
    pub domains: TopK<Box<str>>,
}

impl Default for Suppressed {
    fn default() -> Self {
        Self { new_hosts: 0, new_paths: 0, domains: TopK::new(DOMAINS) }
    }
}

impl Suppressed {
    /// Counts a sighting that was not announced.
    pub fn add(&mut self, s: &Sighting) {
        match s {
            Sighting::NewHost { host, .. } => {
                self.new_hosts += 1;
                let parent = host.split_once('.').map_or(host.as_str(), |(_, rest)| rest);
                let _ = self.domains.add_with(|d| **d == *parent, || parent.into(), 1);
            }
            Sighting::NewPath { .. } => self.new_paths += 1,
        }
    }

    /// Adds another lane's.
    pub fn merge(&mut self, o: &Suppressed) {
        self.new_hosts += o.new_hosts;
        self.new_paths += o.new_paths;
        self.domains.merge(&o.domains);
    }

    /// Whether anything was held back.
    pub fn is_empty(&self) -> bool {
        self.new_hosts == 0 && self.new_paths == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Routing;

    #[test]
    fn a_burst_then_a_steady_rate() {
        let gate = Gate::default();
        let passed = (0..2 * BURST).filter(|_| gate.admit(1_000)).count();
        assert_eq!(passed, BURST as usize, "the burst, then nothing within the same instant");
        let later = (0..1000).filter(|_| gate.admit(2_000)).count();
        assert_eq!(later, PER_SECOND as usize, "one second later, one second's worth");
        let mut s = Suppressed::default();
        for i in 0..100 {
            s.add(&Sighting::NewHost { host: format!("t{i}.tenant.example.com"), green: Routing::Unknown });
        }
        s.add(&Sighting::NewHost { host: "lonely.example.org".into(), green: Routing::Unknown });
        assert_eq!(s.new_hosts, 101);
        assert_eq!(&*s.domains.top()[0].0, "tenant.example.com");
    }
}
