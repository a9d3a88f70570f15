//! Access records packed into bytes on their way from a worker to the writer thread.
//!
//! A worker appends each record, a few dozen bytes, to its lane's buffer; the writer swaps the
//! whole buffer out every pass and formats the lines on its own core. Compared with records moved
//! by value through a channel of fixed-size slots (≈ 430 bytes each, most of it padding), the
//! worker writes — and the writer's core later steals — a fraction of the cache lines (measured in
//! docs/BENCHMARKS.md).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Version;

use super::record::AccessRecord;
use crate::base::cause::Cause;

/// One worker's records, packed; bounded by `budget` bytes.
#[derive(Debug)]
pub(super) struct RecordLane {
    pub(super) bytes: Mutex<Vec<u8>>,
    pub(super) budget: usize,
}

impl RecordLane {
    /// A lane that holds at most about `budget` bytes between two passes of the writer.
    pub(super) fn new(budget: usize) -> Self {
        Self { bytes: Mutex::new(Vec::with_capacity(budget.min(1 << 20))), budget }
    }

    /// Appends `rec`; `false` when the lane is full (the writer is behind).
    pub(super) fn push(&self, rec: &AccessRecord) -> bool {
        let Ok(mut bytes) = self.bytes.lock() else { return false };
        if bytes.len() >= self.budget {
            return false;
        }
        encode(&View::of(rec), &mut bytes);
        true
    }
}

/// An access record borrowed from wherever it lives: an [`AccessRecord`] or packed bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View<'a> {
    pub(super) ts: SystemTime,
    pub(super) client_ip: IpAddr,
    pub(super) method: &'a [u8],
    pub(super) host: Option<&'a [u8]>,
    pub(super) path: &'a [u8],
    pub(super) version: Version,
    pub(super) status: u16,
    pub(super) bytes_in: u64,
    pub(super) bytes_out: u64,
    pub(super) duration: Duration,
    pub(super) upstream: &'a [u8],
    pub(super) upstream_addr: Option<SocketAddr>,
    pub(super) user_agent: Option<&'a [u8]>,
    pub(super) request_id: Option<&'a [u8]>,
    pub(super) grpc_status: Option<u8>,
    pub(super) error: Option<Cause>,
    pub(super) stale_conn: bool,
    /// SNI, default certificate served, Host ≠ SNI.
    pub(super) tls: Option<(Option<&'a [u8]>, bool, bool)>,
}

impl<'a> View<'a> {
    /// Borrows an [`AccessRecord`].
    pub(super) fn of(rec: &'a AccessRecord) -> Self {
        View {
            ts: rec.ts,
            client_ip: rec.client_ip,
            method: rec.method.as_str().as_bytes(),
            host: rec.host.as_ref().map(|h| h.as_bytes()),
            path: rec.path.as_bytes(),
            version: rec.version,
            status: rec.status,
            bytes_in: rec.bytes_in,
            bytes_out: rec.bytes_out,
            duration: rec.duration,
            upstream: rec.upstream.as_bytes(),
            upstream_addr: rec.upstream_addr,
            user_agent: rec.user_agent.as_ref().map(|u| u.as_bytes()),
            request_id: rec.request_id.as_ref().map(|r| r.as_bytes()),
            grpc_status: rec.grpc_status,
            error: rec.error,
            stale_conn: rec.stale_conn,
            tls: rec.tls.as_ref().map(|t| (t.sni.as_ref().map(|s| s.as_bytes()), t.default_cert, t.sni_mismatch)),
        }
    }
}

const VERSIONS: [Version; 5] = [Version::HTTP_09, Version::HTTP_10, Version::HTTP_11, Version::HTTP_2, Version::HTTP_3];

/// Appends the packed form of `v` to `out`. Short strings (method, upstream, request id) are cut
/// at 255 bytes, host, path, user agent and SNI at 4 GiB; nothing else is lost.
pub(super) fn encode(v: &View<'_>, out: &mut Vec<u8>) {
    let ts = v.ts.duration_since(UNIX_EPOCH).unwrap_or_default();
    out.extend_from_slice(&ts.as_secs().to_le_bytes());
    out.extend_from_slice(&ts.subsec_nanos().to_le_bytes());
    ip(out, v.client_ip);
    out.push(VERSIONS.iter().position(|x| *x == v.version).unwrap_or(2) as u8);
    out.extend_from_slice(&v.status.to_le_bytes());
    out.extend_from_slice(&v.bytes_in.to_le_bytes());
    out.extend_from_slice(&v.bytes_out.to_le_bytes());
    out.extend_from_slice(&(v.duration.as_nanos().min(u64::MAX as u128) as u64).to_le_bytes());
    let tls = match v.tls {
        None => 0,
        Some((sni, default_cert, mismatch)) => {
            1 | (sni.is_some() as u8) << 1 | (default_cert as u8) << 2 | (mismatch as u8) << 3
        }
    };
    out.push(
        v.stale_conn as u8
            | (v.host.is_some() as u8) << 1
            | (v.error.is_some() as u8) << 2
            | (v.upstream_addr.is_some() as u8) << 3
            | (v.user_agent.is_some() as u8) << 4
            | (v.request_id.is_some() as u8) << 5
            | (v.grpc_status.is_some() as u8) << 6,
    );
    out.push(tls);
    short(out, v.method);
    short(out, v.upstream);
    if let Some(e) = v.error {
        out.push(e.index() as u8);
    }
    if let Some(h) = v.host {
        long(out, h);
    }
    long(out, v.path);
    if let Some((Some(sni), _, _)) = v.tls {
        long(out, sni);
    }
    if let Some(addr) = v.upstream_addr {
        ip(out, addr.ip());
        out.extend_from_slice(&addr.port().to_le_bytes());
    }
    if let Some(ua) = v.user_agent {
        long(out, ua);
    }
    if let Some(id) = v.request_id {
        short(out, id);
    }
    if let Some(status) = v.grpc_status {
        out.push(status);
    }
}

fn ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
}

fn short(out: &mut Vec<u8>, s: &[u8]) {
    let s = &s[..s.len().min(255)];
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

fn long(out: &mut Vec<u8>, s: &[u8]) {
    let s = &s[..s.len().min(u32::MAX as usize)];
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s);
}

/// Reads packed records one after the other.
pub(super) struct Decoder<'a> {
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.array()?))
    }

    fn short(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.take(n)
    }

    fn long(&mut self) -> Option<&'a [u8]> {
        let n = u32::from_le_bytes(self.array()?) as usize;
        self.take(n)
    }

    fn ip(&mut self) -> Option<IpAddr> {
        match self.u8()? {
            4 => Some(IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))),
            6 => Some(IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))),
            _ => None,
        }
    }

    fn record(&mut self) -> Option<View<'a>> {
        let secs = self.u64()?;
        let nanos = u32::from_le_bytes(self.array()?);
        let ts = UNIX_EPOCH + Duration::new(secs, nanos.min(999_999_999));
        let client_ip = self.ip()?;
        let version = *VERSIONS.get(self.u8()? as usize)?;
        let status = u16::from_le_bytes(self.array()?);
        let (bytes_in, bytes_out) = (self.u64()?, self.u64()?);
        let duration = Duration::from_nanos(self.u64()?);
        let (flags, tls) = (self.u8()?, self.u8()?);
        let method = self.short()?;
        let upstream = self.short()?;
        let error = if flags & 4 != 0 { Some(*Cause::ALL.get(self.u8()? as usize)?) } else { None };
        let host = if flags & 2 != 0 { Some(self.long()?) } else { None };
        let path = self.long()?;
        let tls = if tls & 1 != 0 {
            let sni = if tls & 2 != 0 { Some(self.long()?) } else { None };
            Some((sni, tls & 4 != 0, tls & 8 != 0))
        } else {
            None
        };
        let upstream_addr = if flags & 8 != 0 {
            let ip = self.ip()?;
            Some(SocketAddr::new(ip, u16::from_le_bytes(self.array()?)))
        } else {
            None
        };
        let user_agent = if flags & 16 != 0 { Some(self.long()?) } else { None };
        let request_id = if flags & 32 != 0 { Some(self.short()?) } else { None };
        let grpc_status = if flags & 64 != 0 { Some(self.u8()?) } else { None };
        Some(View {
            ts,
            client_ip,
            method,
            host,
            path,
            version,
            status,
            bytes_in,
            bytes_out,
            duration,
            upstream,
            upstream_addr,
            user_agent,
            request_id,
            grpc_status,
            error,
            stale_conn: flags & 1 != 0,
            tls,
        })
    }
}

impl<'a> Iterator for Decoder<'a> {
    type Item = View<'a>;

    /// The next record; `None` at the end (or at bytes that are not a whole record, which only a
    /// bug could produce: the rest of that pass is skipped rather than misread).
    fn next(&mut self) -> Option<View<'a>> {
        let rec = self.record();
        if rec.is_none() {
            self.rest = &[];
        }
        rec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Text, TlsLog};

    fn rec(host: Option<&str>, path: &str, tls: Option<TlsLog>, error: Option<Cause>) -> AccessRecord {
        AccessRecord {
            ts: UNIX_EPOCH + Duration::new(1_764_000_000, 123_456_789),
            client_ip: "2001:db8::7".parse().unwrap(),
            method: http::Method::from_bytes(b"PURGE").unwrap(),
            host: host.map(|h| Text::new(h.as_bytes())),
            path: Text::new(path.as_bytes()),
            version: Version::HTTP_2,
            status: 503,
            bytes_in: 7,
            bytes_out: u64::MAX,
            duration: Duration::from_micros(1_234_567),
            upstream: "http://10.0.0.9:8080",
            upstream_addr: host.map(|_| "[2001:db8::9]:8080".parse().unwrap()),
            user_agent: host.map(|_| {
                Text::new(
                    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
                        .as_bytes(),
                )
            }),
            request_id: error.map(|_| Text::new(b"Root=1-67891233-abcdef012345678912345678")),
            grpc_status: error.map(|_| 14),
            error,
            stale_conn: true,
            tls,
        }
    }

    #[test]
    fn records_come_back_as_they_went_in() {
        let long_path = format!("/{}", "x".repeat(5_000));
        let records = [
            rec(Some("shop.example.com"), "/a?b=c", None, None),
            rec(
                None,
                &long_path,
                Some(TlsLog { sni: None, default_cert: true, sni_mismatch: false }),
                Some(Cause::Reset),
            ),
            rec(
                Some("ünïcode.example"),
                "/",
                Some(TlsLog { sni: Some(Text::new(b"sni.example.com")), default_cert: false, sni_mismatch: true }),
                None,
            ),
        ];
        let mut bytes = Vec::new();
        for r in &records {
            encode(&View::of(r), &mut bytes);
        }
        let back: Vec<View<'_>> = Decoder::new(&bytes).collect();
        let want: Vec<View<'_>> = records.iter().map(View::of).collect();
        assert_eq!(back, want);
    }

    #[test]
    fn a_cut_record_is_skipped_not_misread() {
        let r = rec(Some("a.example.com"), "/x", None, None);
        let mut bytes = Vec::new();
        encode(&View::of(&r), &mut bytes);
        encode(&View::of(&r), &mut bytes);
        bytes.truncate(bytes.len() - 3);
        assert_eq!(Decoder::new(&bytes).count(), 1);
    }

    #[test]
    fn a_full_lane_refuses_records() {
        let lane = RecordLane::new(100);
        let r = rec(Some("a.example.com"), "/x", None, None);
        let pushed = (0..10).filter(|_| lane.push(&r)).count();
        assert!((1..10).contains(&pushed), "{pushed}");
    }
}
