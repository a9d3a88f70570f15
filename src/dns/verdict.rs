//! The DNS verdicts: which side a host's DNS sends clients to, and where a verdict comes from.
//! Pure.

use super::targets::Side;
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
