//! The demo's DNS server: a small authoritative responder on loopback for the sample zone, so the
//! demo shows live DNS evidence without touching the network. CNAMEs are followed inside the zone;
//! unknown names get NXDOMAIN.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, CNAME};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

/// One name's answer.
#[derive(Clone, Debug)]
pub enum Answer {
    /// An alias to another name.
    Cname(&'static str),
    /// Addresses.
    A(Vec<Ipv4Addr>),
}

/// Starts the server; returns its address.
pub async fn start(zone: &[(&'static str, Answer, u32)]) -> std::io::Result<SocketAddr> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let addr = socket.local_addr()?;
    let zone: Arc<HashMap<String, (Answer, u32)>> =
        Arc::new(zone.iter().map(|(n, a, ttl)| ((*n).to_owned(), (a.clone(), *ttl))).collect());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else { return };
            let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
            if let Some(reply) = reply(&zone, &query) {
                let _ = socket.send_to(&reply, peer).await;
            }
        }
    });
    Ok(addr)
}

fn reply(zone: &HashMap<String, (Answer, u32)>, query: &Message) -> Option<Vec<u8>> {
    let q = query.queries.first()?;
    let mut name = q.name().to_ascii().to_ascii_lowercase();
    name.truncate(name.trim_end_matches('.').len());
    let mut out = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    out.metadata.authoritative = true;
    out.metadata.recursion_desired = query.metadata.recursion_desired;
    out.metadata.recursion_available = true;
    out.queries = query.queries.clone();
    let mut found = false;
    for _ in 0..8 {
        let Some((answer, ttl)) = zone.get(&name) else { break };
        found = true;
        let owner = Name::from_ascii(format!("{name}.")).ok()?;
        match answer {
            Answer::Cname(target) => {
                let t = Name::from_ascii(format!("{target}.")).ok()?;
                out.answers.push(Record::from_rdata(owner, *ttl, RData::CNAME(CNAME(t))));
                name = (*target).to_owned();
            }
            Answer::A(ips) => {
                if q.query_type() == RecordType::A {
                    for ip in ips {
                        out.answers.push(Record::from_rdata(owner.clone(), *ttl, RData::A(A(*ip))));
                    }
                }
                break;
            }
        }
    }
    if !found {
        out.metadata.response_code = ResponseCode::NXDomain;
    }
    out.to_vec().ok()
}
