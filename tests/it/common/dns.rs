//! A small authoritative DNS server on loopback for the tests (hickory-proto messages over UDP):
//! CNAME chains, several answers per name served in turn (weighted records), NXDOMAIN for unknown
//! names, names it never answers, TTLs the test chooses and can change while the proxy runs.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

/// One answer for a name: a CNAME to another name, or addresses.
#[derive(Clone, Debug)]
pub enum Rr {
    Cname(String),
    A(Vec<Ipv4Addr>),
}

#[derive(Default)]
struct Zone {
    /// name → answers served in turn (one per query), with their TTL.
    names: HashMap<String, Vec<(Rr, u32)>>,
    silent: HashSet<String>,
}

/// The running server.
pub struct TestDns {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
}

impl TestDns {
    pub async fn start() -> Self {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = socket.local_addr().unwrap();
        let zone: Arc<Mutex<Zone>> = Arc::default();
        let turn = Arc::new(AtomicUsize::new(0));
        let z = zone.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else { return };
                let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
                if let Some(reply) = answer(&z, &turn, &query) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        Self { addr, zone }
    }

    /// `name` answers with these, one per query in turn.
    pub fn set(&self, name: &str, answers: Vec<(Rr, u32)>) {
        let mut z = self.zone.lock().unwrap();
        z.silent.remove(name);
        z.names.insert(name.to_owned(), answers);
    }

    /// `name` gets no reply at all (a server that never answers).
    pub fn silence(&self, name: &str) {
        self.zone.lock().unwrap().silent.insert(name.to_owned());
    }
}

fn answer(zone: &Mutex<Zone>, turn: &AtomicUsize, query: &Message) -> Option<Vec<u8>> {
    let q = query.queries.first()?;
    let mut name = q.name().to_ascii().to_ascii_lowercase();
    if name.ends_with('.') {
        name.pop();
    }
    let z = zone.lock().unwrap();
    if z.silent.contains(&name) {
        return None;
    }
    let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.queries = query.queries.clone();
    let mut current = name;
    let mut found = false;
    for _ in 0..8 {
        let Some(list) = z.names.get(&current) else { break };
        found = true;
        let (rr, ttl) = list[turn.fetch_add(1, Ordering::Relaxed) % list.len()].clone();
        let owner = Name::from_ascii(format!("{current}.")).ok()?;
        match rr {
            Rr::Cname(target) => {
                let t = Name::from_ascii(format!("{target}.")).ok()?;
                reply.answers.push(Record::from_rdata(owner, ttl, RData::CNAME(CNAME(t))));
                current = target;
            }
            Rr::A(ips) => {
                if q.query_type() == RecordType::A {
                    for ip in ips {
                        reply.answers.push(Record::from_rdata(owner.clone(), ttl, RData::A(A(ip))));
                    }
                }
                break;
            }
        }
    }
    if !found {
        reply.metadata.response_code = ResponseCode::NXDomain;
    }
    reply.to_vec().ok()
}
