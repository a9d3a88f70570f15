//! How the DNS evidence is gathered: the targets, live resolution and its pace, the Route53
//! exports, the TTL grace.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::targets::Targets;

/// The DNS side of `serve` (and of `analyze`, without live resolution).
#[derive(Debug, Clone)]
pub struct DnsEvidenceSettings {
    /// Blue and green targets.
    pub targets: Targets,
    /// Resolve hosts live.
    pub live: bool,
    /// How the resolver task works.
    pub resolver: ResolverSettings,
    /// Route53 exports: (zone id, file).
    pub route53: Vec<(String, PathBuf)>,
    /// Added to the largest TTL for the window after a move (`--ttl-grace`).
    pub ttl_grace: Duration,
}

impl Default for DnsEvidenceSettings {
    fn default() -> Self {
        Self {
            targets: Targets::default(),
            live: false,
            resolver: ResolverSettings::default(),
            route53: Vec::new(),
            ttl_grace: Duration::from_secs(30),
        }
    }
}

impl DnsEvidenceSettings {
    /// Whether any DNS evidence is configured: the book exists only then.
    pub fn configured(&self) -> bool {
        self.live || !self.route53.is_empty() || !self.targets.is_empty()
    }
}

/// How the resolver task works.
#[derive(Debug, Clone)]
pub struct ResolverSettings {
    /// `--dns-server` (empty: the system resolver).
    pub servers: Vec<SocketAddr>,
    /// Per-query timeout.
    pub timeout: Duration,
    /// Resolutions per lookup, to catch weighted answers.
    pub samples: u32,
    /// Lookups in flight at most.
    pub concurrency: usize,
    /// Lookups started per second at most.
    pub rate: u32,
    /// How often target names are resolved again.
    pub target_refresh: Duration,
    /// Shortest and longest wait before a host is resolved again (its TTL, clamped).
    pub min_interval: Duration,
    /// See `min_interval`.
    pub max_interval: Duration,
    /// Hosts resolved at most (the ledger's `--max-hosts`): the rest are not looked up.
    pub max_hosts: usize,
}

impl Default for ResolverSettings {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            timeout: Duration::from_secs(2),
            samples: 3,
            concurrency: 8,
            rate: 50,
            target_refresh: Duration::from_secs(30),
            min_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(300),
            max_hosts: 100_000,
        }
    }
}
