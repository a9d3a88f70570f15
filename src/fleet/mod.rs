//! The fleet as one report: `--peers` names the replicas' admin listeners (a headless Service's
//! name, re-resolved each time, or addresses); `/report?scope=fleet`, `/report/route53?scope=fleet`
//! and `/?scope=fleet` ask each of them for its live report and merge the answers with this
//! replica's own. Bounded: at most [`MAX_REPLICAS`] asked, `--peer-concurrency` at once, each
//! within `--peer-timeout` and [`PEER_MAX_BYTES`]; a replica that does not answer is named in
//! the report's `replicas`, never silently missing.

pub mod fetch;
pub mod gather;
mod peers;

use std::time::Duration;

use crate::base::values::HostPort;

/// Replicas a fleet report asks at most (addresses past it are named as not asked).
pub const MAX_REPLICAS: usize = 64;
/// Bytes of one replica's answer read at most: a bounded `/report` stays under 16 MiB.
pub const PEER_MAX_BYTES: usize = 20 << 20;

/// `--peers`, `--peer-timeout`, `--peer-concurrency`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSettings {
    /// Admin addresses, `NAME:PORT` (every A/AAAA record of NAME is a replica) or `IP:PORT`.
    pub peers: Vec<HostPort>,
    /// How long one replica may take to give its whole report.
    pub timeout: Duration,
    /// Replicas asked at once.
    pub concurrency: usize,
}

impl Default for FleetSettings {
    fn default() -> Self {
        Self { peers: Vec::new(), timeout: Duration::from_secs(10), concurrency: 4 }
    }
}

/// Whose traffic an admin answer covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This replica's (the default, and what a replica asked by another one answers).
    Local,
    /// Every replica's (`scope=fleet`).
    Fleet,
}

/// `scope=local|fleet` taken out of a query; the rest of the query as it was.
pub fn split_scope(query: Option<&str>) -> Result<(Scope, String), String> {
    let mut scope = Scope::Local;
    let mut rest = Vec::new();
    for kv in query.unwrap_or("").split('&').filter(|kv| !kv.is_empty()) {
        match kv.strip_prefix("scope=") {
            Some("fleet") => scope = Scope::Fleet,
            Some("local") => scope = Scope::Local,
            Some(other) => return Err(format!("scope `{other}` is not local or fleet")),
            None => rest.push(kv),
        }
    }
    Ok((scope, rest.join("&")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_comes_out_of_the_query() {
        assert_eq!(split_scope(None), Ok((Scope::Local, String::new())));
        assert_eq!(
            split_scope(Some("limit=5&scope=fleet&action=fix-dns")),
            Ok((Scope::Fleet, "limit=5&action=fix-dns".into()))
        );
        assert_eq!(split_scope(Some("scope=local")), Ok((Scope::Local, String::new())));
        assert!(split_scope(Some("scope=world")).is_err());
    }
}
