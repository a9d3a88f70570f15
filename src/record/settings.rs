//! What bounds and filters the ledger: the `serve` and `analyze` flags of the same names.

use super::normalize::{Glob, Templater};

/// Limits and filters of the ledger.
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    /// Distinct hosts kept before `(other)`.
    pub max_hosts: usize,
    /// Distinct path templates per host before `{other}`.
    pub max_paths_per_host: usize,
    /// Distinct path templates over all hosts before `{other}`.
    pub max_paths: usize,
    /// Bytes the ledger may hold (`--max-ledger-memory`).
    pub max_memory: usize,
    /// Requests whose path matches are counted as ignored, not recorded.
    pub ignore_paths: Vec<Glob>,
    /// Requests whose user agent matches are counted as ignored, not recorded.
    pub ignore_user_agents: Vec<Glob>,
    /// Turns paths into templates.
    pub templater: Templater,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        let globs = |list: &[&str]| list.iter().filter_map(|g| g.parse().ok()).collect();
        Self {
            max_hosts: 100_000,
            max_paths_per_host: 1_000,
            max_paths: 200_000,
            max_memory: 64 << 20,
            ignore_paths: globs(&["/healthz", "/readyz", "/livez"]),
            ignore_user_agents: globs(&["ELB-HealthChecker/*", "kube-probe/*"]),
            templater: Templater::default(),
        }
    }
}
