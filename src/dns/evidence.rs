//! A host's DNS evidence as the report carries it: the verdict and the answers, chain, TTLs,
//! Route53 records and times behind it.

use serde::{Deserialize, Serialize};

use super::targets::Side;
use super::verdict::{DnsSource, DnsVerdict};
use super::zones::{ExternalDnsOwner, RecordEvidence};

/// DNS evidence of a host: live resolution and Route53 joined (`unknown` until configured).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DnsEvidence {
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
    pub address: String,
    /// Which cluster it belongs to.
    pub side: Side,
}
