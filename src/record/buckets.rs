//! The `(other…)` buckets: where a host goes once the ledger's bounds are reached, chosen by
//! what the host would need (fix-hardcoded, add-green-route…) so the bucket's action is right.

use super::host::{HostDetail, HostEntry, Paths, Sight};
use super::observation::Routing;
use crate::base::host::{is_aws_load_balancer_name, is_nameless, Overflow};

/// Which `(other)` bucket a host goes to once the bounds are reached. The DNS evidence knows
/// more (the configured targets' names, the imported zones) and gives its own.
pub trait HostKinds: Send + Sync {
    /// The bucket of `host` (normalized), which sent a request green routes as `green`.
    fn overflow(&self, host: &str, ip_literal: bool, green: Routing) -> Overflow;
}

/// What the host name alone tells.
pub struct NameKinds;

impl HostKinds for NameKinds {
    fn overflow(&self, host: &str, ip_literal: bool, green: Routing) -> Overflow {
        if ip_literal || is_nameless(host) || is_aws_load_balancer_name(host) {
            Overflow::AddressedDirectly
        } else if green == Routing::Unrouted {
            Overflow::Unrouted
        } else {
            Overflow::Hosts
        }
    }
}

/// An `(other)` bucket: its detail at once (it is never one request of one client).
pub(super) fn bucket(kind: Overflow) -> HostEntry {
    HostEntry {
        ip_literal: kind == Overflow::AddressedDirectly,
        paths: Paths::None,
        sight: Sight::Detail(Box::new(HostDetail::empty())),
    }
}
