//! The hosts whose DNS moved to green, as the DNS evidence publishes them, and what the ledger
//! keeps of a host's traffic after its move: the evidence for `wait-ttl` vs `fix-clients`.

use std::hash::RandomState;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hashbrown::HashMap;

use super::budget::{alloc, Budget};
use super::observation::{Observation, MAX_AGENT_LEN};

/// Hosts whose DNS points only at green, with the first time that was seen (unix ms). Published by
/// the DNS evidence whenever the set changes, read on every recorded request (one load and, when
/// any host has moved, one hash lookup).
#[derive(Default)]
pub struct MovedHosts {
    map: ArcSwap<HashMap<String, u64, RandomState>>,
    /// Whether the map has any host: one relaxed load on the common path, before the map's.
    any: std::sync::atomic::AtomicBool,
}

impl MovedHosts {
    /// Replaces the set.
    pub fn publish(&self, moved: Vec<(String, u64)>) {
        let mut map = HashMap::with_capacity_and_hasher(moved.len(), RandomState::new());
        map.extend(moved);
        let any = !map.is_empty();
        self.map.store(Arc::new(map));
        self.any.store(any, Ordering::Release);
    }

    /// Whether no host has moved.
    pub fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    /// When `host` (normalized) moved to green, if it has.
    pub fn get(&self, host: &str) -> Option<u64> {
        if self.is_empty() {
            return None;
        }
        self.map.load().get(host).copied()
    }
}

/// Clients kept per host after its move (the most active).
pub const LATE_CLIENTS: usize = 16;

/// A client (IP and user agent) seen after its host's DNS moved to green.
#[derive(Debug, Clone)]
pub struct LateClient {
    /// Client IP.
    pub ip: IpAddr,
    /// Its first user agent.
    pub agent: Box<str>,
    /// Requests after the move.
    pub requests: u64,
    /// Last request, unix ms.
    pub last_seen_ms: u64,
    /// Oldest connection age seen, ms.
    pub conn_age_ms: u64,
    /// Some request came on a connection opened before the move.
    pub opened_before_move: bool,
}

/// Traffic of a host after its DNS moved: the evidence for `wait-ttl` vs `fix-clients`.
#[derive(Debug, Clone, Default)]
pub struct AfterMove {
    /// Requests after the move.
    pub requests: u64,
    /// Of those, on connections opened before the move.
    pub on_old_connections: u64,
    /// The clients, at most [`LATE_CLIENTS`] (space-saving: a newcomer replaces the least active).
    pub clients: Vec<LateClient>,
}

impl AfterMove {
    /// Counts a request after the move; a new client's entry is charged to `budget` (refused:
    /// it takes the least active client's place).
    pub(super) fn add(&mut self, o: &Observation<'_>, old_conn: bool, budget: &Budget) {
        self.requests += 1;
        self.on_old_connections += old_conn as u64;
        let ua = o.user_agent.map(|ua| &ua[..ua.len().min(MAX_AGENT_LEN)]).unwrap_or_default();
        // Compared as stored: lossy UTF-8 (borrowed, no copy, when the agent is valid UTF-8).
        let ua = String::from_utf8_lossy(ua);
        if let Some(c) = self.clients.iter_mut().find(|c| c.ip == o.client_ip && *c.agent == *ua) {
            c.requests += 1;
            c.last_seen_ms = c.last_seen_ms.max(o.at_ms);
            c.conn_age_ms = c.conn_age_ms.max(o.conn_age_ms);
            c.opened_before_move |= old_conn;
            return;
        }
        let mut agent: Box<str> = ua.into();
        let cost = alloc(agent.len()) + std::mem::size_of::<LateClient>();
        // The first late client is what a moved host's evidence must name: it may use the reserve.
        let room = self.clients.len() < LATE_CLIENTS
            && if self.clients.is_empty() { budget.take_reserve(cost) } else { budget.take(cost) };
        if room {
            self.clients.push(LateClient {
                ip: o.client_ip,
                agent,
                requests: 1,
                last_seen_ms: o.at_ms,
                conn_age_ms: o.conn_age_ms,
                opened_before_move: old_conn,
            });
        } else if let Some(least) = self.clients.iter_mut().min_by_key(|c| c.requests) {
            // Space-saving: the newcomer inherits the least active client's count.
            budget.release(alloc(least.agent.len()));
            if !budget.take(alloc(agent.len())) {
                agent = Box::default();
            }
            *least = LateClient {
                ip: o.client_ip,
                agent,
                requests: least.requests + 1,
                last_seen_ms: o.at_ms,
                conn_age_ms: o.conn_age_ms,
                opened_before_move: old_conn,
            };
        }
    }

    /// Adds another lane's.
    pub fn merge(&mut self, o: &AfterMove) {
        self.requests += o.requests;
        self.on_old_connections += o.on_old_connections;
        for c in &o.clients {
            match self.clients.iter_mut().find(|m| m.ip == c.ip && m.agent == c.agent) {
                Some(m) => {
                    m.requests += c.requests;
                    m.last_seen_ms = m.last_seen_ms.max(c.last_seen_ms);
                    m.conn_age_ms = m.conn_age_ms.max(c.conn_age_ms);
                    m.opened_before_move |= c.opened_before_move;
                }
                None => self.clients.push(c.clone()),
            }
        }
        self.clients.sort_by_key(|c| std::cmp::Reverse(c.requests));
        self.clients.truncate(LATE_CLIENTS);
    }
}
