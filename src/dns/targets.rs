//! `--blue-target` / `--green-target`: which cluster an address or a name belongs to. A target is a
//! load balancer hostname (its addresses change, so they are re-resolved in the background) or a
//! CIDR. Pure: the resolver task feeds [`TargetAddrs`] in.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::base::host::{is_aws_load_balancer_name, is_nameless, lb_name, Overflow};
use crate::base::names::named_enum;

named_enum! {
    /// The cluster an answer or record points at.
    pub enum Side {
        /// The old cluster.
        Blue = "blue",
        /// The new cluster.
        Green = "green",
        /// Neither target.
        Neither = "neither",
    }
}

/// One `--blue-target` / `--green-target` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A load balancer (or any) hostname, normalized with [`lb_name`].
    Name(String),
    /// A network.
    Net(ipnet::IpNet),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Name(n) => f.write_str(n),
            Target::Net(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(Target::Net(net.trunc()));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Target::Net(ip.into()));
        }
        let name = lb_name(s);
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.contains('.')
            && name.split('.').all(|l| !l.is_empty() && l.len() <= 63)
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !valid {
            return Err(format!("`{s}` is neither a CIDR, an IP address nor a load balancer hostname"));
        }
        Ok(Target::Name(name))
    }
}

/// Both sides' targets.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// `--blue-target`.
    pub blue: Vec<Target>,
    /// `--green-target`.
    pub green: Vec<Target>,
}

/// Addresses the targets' names resolved to, with when each was last seen (an ELB's old address may
/// still be cached by clients for a while, so addresses are kept for an hour after they go).
#[derive(Debug, Clone, Default)]
pub struct TargetAddrs {
    /// Address → (side, last seen unix ms).
    pub addrs: HashMap<IpAddr, (Side, u64)>,
}

/// How long a target address is kept after it stopped being returned.
pub const ADDR_KEEP_MS: u64 = 3_600_000;

impl TargetAddrs {
    /// Adds one resolution of a side's names and forgets addresses unseen for [`ADDR_KEEP_MS`].
    pub fn update(&mut self, side: Side, addrs: &[IpAddr], now_ms: u64) {
        for ip in addrs {
            self.addrs.insert(*ip, (side, now_ms));
        }
        self.addrs.retain(|_, (_, seen)| now_ms.saturating_sub(*seen) < ADDR_KEEP_MS);
    }
}

impl Targets {
    /// No target on either side: answers cannot be told apart.
    pub fn is_empty(&self) -> bool {
        self.blue.is_empty() && self.green.is_empty()
    }

    /// The names of one side (to be resolved).
    pub fn names(&self, side: Side) -> impl Iterator<Item = &str> {
        let list = if side == Side::Blue { &self.blue } else { &self.green };
        list.iter().filter_map(|t| match t {
            Target::Name(n) => Some(n.as_str()),
            Target::Net(_) => None,
        })
    }

    /// The side a DNS name (CNAME target, alias target) belongs to, if it is a target's name.
    pub fn side_of_name(&self, name: &str) -> Option<Side> {
        let name = lb_name(name);
        let has = |list: &[Target]| list.iter().any(|t| matches!(t, Target::Name(n) if *n == name));
        match (has(&self.blue), has(&self.green)) {
            (true, false) => Some(Side::Blue),
            (false, true) => Some(Side::Green),
            _ => None,
        }
    }

    /// The side an address belongs to: a target CIDR, or a target name's resolved address.
    pub fn side_of_ip(&self, ip: IpAddr, addrs: &TargetAddrs) -> Side {
        let within = |list: &[Target]| list.iter().any(|t| matches!(t, Target::Net(n) if n.contains(&ip)));
        match (within(&self.blue), within(&self.green)) {
            (true, false) => return Side::Blue,
            (false, true) => return Side::Green,
            _ => {}
        }
        addrs.addrs.get(&ip).map_or(Side::Neither, |(side, _)| *side)
    }

    /// Whether clients that send this (normalized) host reach blue without DNS: an IP literal, no
    /// usable Host or SNI, an AWS load balancer's own name, or a configured target's name. DNS
    /// changes will never move them (`fix-hardcoded`): the one place that decides it.
    pub fn addressed_directly(&self, host: &str, ip_literal: bool) -> bool {
        if ip_literal
            || is_nameless(host)
            || is_aws_load_balancer_name(host)
            || host == Overflow::AddressedDirectly.as_str()
        {
            return true;
        }
        let name = lb_name(host);
        self.blue.iter().chain(&self.green).any(|t| matches!(t, Target::Name(n) if *n == name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_match() {
        let t = Targets {
            blue: vec![
                "dualstack.K8S-Blue-1.ap-northeast-2.elb.amazonaws.com.".parse().unwrap(),
                "10.1.0.0/16".parse().unwrap(),
            ],
            green: vec!["k8s-green-2.ap-northeast-2.elb.amazonaws.com".parse().unwrap(), "10.2.0.7".parse().unwrap()],
        };
        assert_eq!(t.side_of_name("k8s-blue-1.ap-northeast-2.elb.amazonaws.com."), Some(Side::Blue));
        assert_eq!(t.side_of_name("dualstack.k8s-green-2.ap-northeast-2.elb.amazonaws.com"), Some(Side::Green));
        assert_eq!(t.side_of_name("other.example.com"), None);
        let mut addrs = TargetAddrs::default();
        addrs.update(Side::Green, &["192.0.2.9".parse().unwrap()], 1000);
        assert_eq!(t.side_of_ip("10.1.2.3".parse().unwrap(), &addrs), Side::Blue);
        assert_eq!(t.side_of_ip("10.2.0.7".parse().unwrap(), &addrs), Side::Green);
        assert_eq!(t.side_of_ip("192.0.2.9".parse().unwrap(), &addrs), Side::Green);
        assert_eq!(t.side_of_ip("192.0.2.10".parse().unwrap(), &addrs), Side::Neither);
        addrs.update(Side::Blue, &[], 1000 + ADDR_KEEP_MS);
        assert_eq!(t.side_of_ip("192.0.2.9".parse().unwrap(), &addrs), Side::Neither);
        assert!("not a name".parse::<Target>().is_err());
        assert!("nodot".parse::<Target>().is_err());
    }
}
