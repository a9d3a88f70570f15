//! What DNS says about a host, as the report carries it: the verdict of one side or the other,
//! where it comes from, and the evidence behind it. Pure.

use serde::{Deserialize, Serialize};

use super::targets::Side;
use super::zones::{ExternalDnsOwner, RecordEvidence};
use crate::base::names::named_enum;

named_enum! {
    /// Which cluster a host's DNS sends clients to (verdicts.md).
    #[derive(Default)]
    pub enum DnsVerdict {
        /// Only blue: the record was missed.
        Blue = "blue",
        /// Both sides get weight or appear in answers: a weighted rollout in progress.
        Split = "split",
        /// Only green: what still arrives is cached DNS or an old connection.
        Green = "green",
        /// Resolves, but to neither side's addresses.
        UnknownTarget = "unknown-target",
        /// NXDOMAIN, SERVFAIL, or no answer.
        Unresolvable = "unresolvable",
        /// Imported zones were given and the host is in none of them.
        External = "external",
        /// No DNS evidence configured (or none yet).
        #[default]
        Unknown = "unknown",
    }
}

impl DnsVerdict {
    /// DNS still sends (some) clients to blue: the case for `switch-dns`.
    pub fn reaches_blue(self) -> bool {
        matches!(self, DnsVerdict::Blue | DnsVerdict::Split)
    }

    /// DNS already sends (some) clients to green.
    pub fn reaches_green(self) -> bool {
        matches!(self, DnsVerdict::Green | DnsVerdict::Split)
    }

    /// The host is not where the operator thinks: the case for `investigate-dns`.
    pub fn is_elsewhere(self) -> bool {
        matches!(self, DnsVerdict::UnknownTarget | DnsVerdict::Unresolvable | DnsVerdict::External)
    }
}

named_enum! {
    /// Where a verdict comes from.
    pub enum DnsSource {
        /// Live resolution: what clients see.
        Live = "live",
        /// The imported Route53 zone: what the zone says.
        Route53 = "route53",
    }
}

/// The verdict of the sides answers point at: `blue`, `green`, `split` (both) or `unknown-target`
/// (neither); answers to neither side beside blue or green ones do not change it.
pub fn verdict_of_sides(sides: impl IntoIterator<Item = Side>) -> DnsVerdict {
    let (mut blue, mut green) = (false, false);
    for side in sides {
        blue |= side == Side::Blue;
        green |= side == Side::Green;
    }
    match (blue, green) {
        (true, true) => DnsVerdict::Split,
        (true, false) => DnsVerdict::Blue,
        (false, true) => DnsVerdict::Green,
        (false, false) => DnsVerdict::UnknownTarget,
    }
}

/// DNS evidence of a host: live resolution and Route53 joined (`unknown` until configured).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DnsEvidence {
    /// The verdict.
    pub verdict: DnsVerdict,
    /// Where the verdict comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<DnsSource>,
    /// Addresses clients get (over every sample), each with its side.
    #[serde(default)]
    pub answers: Vec<DnsAnswer>,
    /// CNAME chain from the host to the final name.
    #[serde(default)]
    pub chain: Vec<String>,
    /// Lowest TTL met, seconds.
    #[serde(default)]
    pub ttl: Option<u64>,
    /// Largest TTL met (chain, final records, Route53 records), seconds: the TTL window's length.
    #[serde(default)]
    pub max_ttl: Option<u64>,
    /// Route53 records answering for the host.
    #[serde(default)]
    pub records: Vec<RecordEvidence>,
    /// The imported hosted zone that holds the host.
    #[serde(default)]
    pub zone_id: Option<String>,
    /// ExternalDNS owns the record (its TXT registry record): edit the Ingress annotations, not Route53.
    #[serde(default)]
    pub external_dns: Option<ExternalDnsOwner>,
    /// When the verdict last changed (RFC 3339).
    #[serde(default)]
    pub changed_at: Option<String>,
    /// First observation of DNS pointing only at green (RFC 3339).
    #[serde(default)]
    pub green_since: Option<String>,
    /// `green_since` + largest TTL + `--ttl-grace`: traffic after this is stale clients.
    #[serde(default)]
    pub window_ends_at: Option<String>,
    /// Last live resolution (RFC 3339).
    #[serde(default)]
    pub resolved_at: Option<String>,
    /// Why the last live resolution found no address.
    #[serde(default)]
    pub error: Option<String>,
}

impl Default for DnsEvidence {
    fn default() -> Self {
        Self {
            verdict: DnsVerdict::Unknown,
            source: None,
            answers: Vec::new(),
            chain: Vec::new(),
            ttl: None,
            max_ttl: None,
            records: Vec::new(),
            zone_id: None,
            external_dns: None,
            changed_at: None,
            green_since: None,
            window_ends_at: None,
            resolved_at: None,
            error: None,
        }
    }
}

/// One address a host resolved to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DnsAnswer {
    /// The address.
    pub address: String,
    /// Which cluster it belongs to.
    pub side: Side,
}
