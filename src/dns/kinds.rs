//! Which `(other)` bucket a host goes to once the ledger's bounds are reached, told with what
//! the DNS evidence knows: the configured targets' names and the imported zones.

use super::targets::Targets;
use super::zones::Zones;
use crate::base::host::Overflow;
use crate::record::{HostKinds, Routing};

/// The DNS evidence's view of hosts, for the ledger.
pub struct DnsKinds {
    pub targets: Targets,
    /// The imported zones' apexes (none: no zone was imported, so no host is outside them).
    pub apexes: Vec<String>,
}

impl DnsKinds {
    /// From the targets and the imported zones.
    pub fn new(targets: Targets, zones: &Zones) -> Self {
        Self { targets, apexes: zones.zones.iter().map(|z| z.name.clone()).collect() }
    }
}

impl HostKinds for DnsKinds {
    fn overflow(&self, host: &str, ip_literal: bool, green: Routing) -> Overflow {
        let in_zone = |apex: &String| {
            host == apex || (host.ends_with(apex.as_str()) && host[..host.len() - apex.len()].ends_with('.'))
        };
        if self.targets.addressed_directly(host, ip_literal) {
            Overflow::AddressedDirectly
        } else if !self.apexes.is_empty() && !self.apexes.iter().any(in_zone) {
            Overflow::OutsideZones
        } else if green == Routing::Unrouted {
            Overflow::Unrouted
        } else {
            Overflow::Hosts
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_what_the_evidence_knows() {
        let kinds = DnsKinds {
            targets: Targets { blue: vec!["blue-lb.internal.example".parse().unwrap()], green: vec![] },
            apexes: vec!["example.com".into()],
        };
        let k = |h: &str, ip: bool, g: Routing| kinds.overflow(h, ip, g);
        assert_eq!(k("10.0.0.1", true, Routing::Unknown), Overflow::AddressedDirectly);
        assert_eq!(k("blue-lb.internal.example", false, Routing::Unknown), Overflow::AddressedDirectly);
        assert_eq!(k("api.other.org", false, Routing::Unrouted), Overflow::OutsideZones);
        assert_eq!(k("notexample.com", false, Routing::Unknown), Overflow::OutsideZones);
        assert_eq!(k("a.example.com", false, Routing::Unrouted), Overflow::Unrouted);
        assert_eq!(k("example.com", false, Routing::Routed), Overflow::Hosts);
    }
}
