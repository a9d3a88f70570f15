//! `--peers` to the addresses to ask: an IP literal as it is, a name by every A/AAAA record it
//! has now (a headless Service lists each ready pod), through the resolver of the DNS evidence.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;

use super::MAX_REPLICAS;
use crate::base::values::HostPort;
use crate::dns::task::resolve;

/// One replica to ask, or a `--peers` entry that gave none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The address, or the `--peers` entry as written when it gave no address.
    pub address: String,
    /// Where to connect; `Err` says why there is nowhere.
    pub addr: Result<SocketAddr, String>,
}

/// Every address of every `--peers` entry, each once, at most [`MAX_REPLICAS`] of them asked.
pub async fn targets(peers: &[HostPort], resolver: Result<&TokioResolver, &String>) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    let mut asked = 0;
    // One after the other: `--peers` is a Service name or a few addresses, and each lookup has
    // the resolver's timeout.
    for peer in peers {
        let host = peer.0.host.as_str();
        let found = match host.parse::<IpAddr>() {
            Ok(ip) => Ok(vec![SocketAddr::new(ip, peer.0.port)]),
            Err(_) => match resolver {
                Ok(resolver) => match resolve(resolver, host).await {
                    Ok(answer) => Ok(answer.addrs.iter().map(|ip| SocketAddr::new(*ip, peer.0.port)).collect()),
                    Err(e) => Err(format!("cannot resolve {host}: {}", e.describe())),
                },
                Err(why) => Err(format!("cannot resolve {host}: {why}")),
            },
        };
        match found {
            Err(why) => out.push(Target { address: peer.0.authority(), addr: Err(why) }),
            Ok(addrs) => {
                for addr in addrs {
                    if out.iter().any(|t| t.addr.as_ref() == Ok(&addr)) {
                        continue;
                    }
                    asked += 1;
                    let address = addr.to_string();
                    let addr = if asked > MAX_REPLICAS {
                        Err(format!("not asked: a fleet report asks at most {MAX_REPLICAS} replicas"))
                    } else {
                        Ok(addr)
                    };
                    out.push(Target { address, addr });
                }
            }
        }
    }
    out
}
