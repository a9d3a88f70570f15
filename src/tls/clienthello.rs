//! Reading the server name (SNI) out of a TLS ClientHello without terminating TLS: pure functions
//! over the bytes received so far, for passthrough. Handles a ClientHello split over several reads
//! (call again with more bytes) and over several TLS records (RFC 8446 §5.1 allows a handshake
//! message to be fragmented).

/// The most bytes read while looking for a complete ClientHello; past it the input is not TLS
/// worth parsing (a real ClientHello is a few hundred bytes, about 1.8 KiB with post-quantum key
/// shares).
pub const MAX_HELLO_BYTES: usize = 64 * 1024;

/// What the first bytes of a connection are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// A prefix of a ClientHello: read more and ask again.
    NeedMore,
    /// Not a TLS ClientHello (another protocol, or a malformed hello).
    NotTls,
    /// A ClientHello without a usable `server_name` (none, or not a valid host name).
    NoSni,
    /// A ClientHello for this host name (lowercased, without a trailing dot).
    Sni(String),
}

/// TLS record content type `handshake`.
const HANDSHAKE: u8 = 22;
/// Handshake message type `client_hello`.
const CLIENT_HELLO: u8 = 1;
/// Extension `server_name` (RFC 6066 §3).
const EXT_SERVER_NAME: u16 = 0;
/// The largest record payload a client may send (2^14, RFC 8446 §5.1).
const MAX_RECORD: usize = 1 << 14;

/// Looks at the bytes read so far from a new connection.
pub fn parse(input: &[u8]) -> Hello {
    // Gather the handshake bytes carried by the leading handshake records.
    let mut handshake: Vec<u8> = Vec::new();
    let mut rest = input;
    loop {
        if rest.len() < 5 {
            if !rest.is_empty() && !plausible_header(rest) {
                return Hello::NotTls;
            }
            return Hello::NeedMore;
        }
        if !plausible_header(rest) {
            return Hello::NotTls;
        }
        let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        if len == 0 || len > MAX_RECORD {
            return Hello::NotTls;
        }
        if rest.len() < 5 + len {
            // Partial record: what it holds so far may already be enough.
            handshake.extend_from_slice(&rest[5..]);
            return match client_hello(&handshake) {
                Some(found) => found,
                None => Hello::NeedMore,
            };
        }
        handshake.extend_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
        if let Some(found) = client_hello(&handshake) {
            return found;
        }
    }
}

/// A TLS record header (or its first bytes) of a handshake record with version 3.x.
fn plausible_header(b: &[u8]) -> bool {
    b[0] == HANDSHAKE && b.get(1).is_none_or(|&v| v == 3) && b.get(2).is_none_or(|&v| v <= 4)
}

/// The verdict once `hs` (handshake bytes, possibly incomplete) is enough; `None` to read more.
fn client_hello(hs: &[u8]) -> Option<Hello> {
    if hs.is_empty() {
        return None;
    }
    if hs[0] != CLIENT_HELLO {
        return Some(Hello::NotTls);
    }
    if hs.len() < 4 {
        return None;
    }
    let len = (hs[1] as usize) << 16 | (hs[2] as usize) << 8 | hs[3] as usize;
    if len > MAX_HELLO_BYTES {
        return Some(Hello::NotTls);
    }
    if hs.len() < 4 + len {
        return None;
    }
    Some(match server_name(&hs[4..4 + len]) {
        Err(()) => Hello::NotTls,
        Ok(None) => Hello::NoSni,
        Ok(Some(name)) => Hello::Sni(name),
    })
}

/// A cursor over a byte slice; every read fails instead of panicking past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ()> {
        if self.0.len() < n {
            return Err(());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, ()> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ()> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    /// A vector with a one- or two-byte length prefix.
    fn vec8(&mut self) -> Result<&'a [u8], ()> {
        let n = self.u8()? as usize;
        self.take(n)
    }
    fn vec16(&mut self) -> Result<&'a [u8], ()> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

/// The `server_name` of a complete ClientHello body: `Err` when malformed.
fn server_name(body: &[u8]) -> Result<Option<String>, ()> {
    let mut r = Reader(body);
    let version = r.u16()?;
    if version >> 8 != 3 {
        return Err(());
    }
    r.take(32)?; // random
    r.vec8()?; // legacy session id
    r.vec16()?; // cipher suites
    r.vec8()?; // compression methods
    if r.0.is_empty() {
        return Ok(None); // no extensions at all (old clients)
    }
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        if kind != EXT_SERVER_NAME {
            continue;
        }
        let mut list = Reader(Reader(data).vec16()?);
        while !list.0.is_empty() {
            let name_type = list.u8()?;
            let name = list.vec16()?;
            if name_type == 0 {
                return Ok(host_name(name));
            }
        }
        return Ok(None);
    }
    Ok(None)
}

/// A DNS host name as sent in SNI (ASCII letters, digits, `-`, `_`, dots), lowercased, or `None`.
fn host_name(raw: &[u8]) -> Option<String> {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    let ok = !raw.is_empty()
        && raw.len() <= 253
        && raw.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && raw.split(|&b| b == b'.').all(|label| !label.is_empty() && label.len() <= 63);
    ok.then(|| String::from_utf8_lossy(raw).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A real ClientHello as rustls sends it, for `sni` (or an IP: no SNI is sent).
    fn rustls_hello(server: &str) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let name = rustls_pki_types::ServerName::try_from(server.to_owned()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        out
    }

    /// Splits the handshake bytes of `hello` (one record) into records of at most `size` bytes.
    fn refragment(hello: &[u8], size: usize) -> Vec<u8> {
        let len = u16::from_be_bytes([hello[3], hello[4]]) as usize;
        let payload = &hello[5..5 + len];
        let mut out = Vec::new();
        for chunk in payload.chunks(size) {
            out.extend_from_slice(&[HANDSHAKE, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    /// A minimal hand-built ClientHello with the given extensions block (None: no extensions).
    fn hello_with(exts: Option<Vec<u8>>) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7u8; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one suite
        body.extend_from_slice(&[1, 0]); // null compression
        if let Some(e) = exts {
            body.extend_from_slice(&(e.len() as u16).to_be_bytes());
            body.extend_from_slice(&e);
        }
        let mut hs = vec![CLIENT_HELLO, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend_from_slice(&body);
        let mut rec = vec![HANDSHAKE, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    fn sni_ext(name_type: u8, name: &[u8]) -> Vec<u8> {
        let mut entry = vec![name_type];
        entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
        entry.extend_from_slice(name);
        let mut list = (entry.len() as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&entry);
        let mut ext = EXT_SERVER_NAME.to_be_bytes().to_vec();
        ext.extend_from_slice(&(list.len() as u16).to_be_bytes());
        ext.extend_from_slice(&list);
        ext
    }

    #[test]
    fn real_hello_gives_its_sni() {
        let hello = rustls_hello("Shop.Example.com");
        assert_eq!(parse(&hello), Hello::Sni("shop.example.com".into()));
        // Bytes after the hello (early data, a second record) change nothing.
        let mut more = hello.clone();
        more.extend_from_slice(b"\x17\x03\x03\x00\x05hello");
        assert_eq!(parse(&more), Hello::Sni("shop.example.com".into()));
    }

    #[test]
    fn ip_address_sends_no_sni() {
        assert_eq!(parse(&rustls_hello("127.0.0.1")), Hello::NoSni);
    }

    #[test]
    fn every_prefix_asks_for_more() {
        let hello = rustls_hello("a.example.com");
        for cut in 0..hello.len() {
            assert_eq!(parse(&hello[..cut]), Hello::NeedMore, "prefix of {cut} bytes");
        }
    }

    #[test]
    fn hello_fragmented_over_records() {
        let hello = rustls_hello("frag.example.com");
        for size in [1, 2, 3, 7, 100, 511] {
            let split = refragment(&hello, size);
            assert_eq!(parse(&split), Hello::Sni("frag.example.com".into()), "records of {size} bytes");
            for cut in 0..split.len() {
                assert_eq!(parse(&split[..cut]), Hello::NeedMore, "records of {size}, prefix {cut}");
            }
        }
    }

    #[test]
    fn other_protocols_are_not_tls() {
        for input in
            [&b"GET / HTTP/1.1\r\n"[..], b"PRI * HTTP/2.0", b"SSH-2.0-OpenSSH", b"\x16\x02", b"\x16\x03\x09", b"\x00"]
        {
            assert_eq!(parse(input), Hello::NotTls, "{input:?}");
        }
        // A handshake record that is not a ClientHello (a ServerHello), an empty or oversized record.
        assert_eq!(parse(b"\x16\x03\x03\x00\x04\x02\x00\x00\x00"), Hello::NotTls);
        assert_eq!(parse(b"\x16\x03\x01\x00\x00"), Hello::NotTls);
        assert_eq!(parse(b"\x16\x03\x01\x48\x01"), Hello::NotTls);
    }

    #[test]
    fn hand_built_hellos() {
        assert_eq!(parse(&hello_with(None)), Hello::NoSni, "no extensions");
        assert_eq!(parse(&hello_with(Some(Vec::new()))), Hello::NoSni, "empty extensions");
        assert_eq!(parse(&hello_with(Some(sni_ext(0, b"api.example.com.")))), Hello::Sni("api.example.com".into()));
        assert_eq!(parse(&hello_with(Some(sni_ext(1, b"api.example.com")))), Hello::NoSni, "not a host_name entry");
        for bad in [&b""[..], b"a..b", b"bad name", b"\xff\xfe", b"x/y"] {
            assert_eq!(parse(&hello_with(Some(sni_ext(0, bad)))), Hello::NoSni, "{bad:?}");
        }
        // An extension whose length runs past the block is malformed.
        let mut broken = sni_ext(0, b"a.example.com");
        broken[3] = 200;
        assert_eq!(parse(&hello_with(Some(broken))), Hello::NotTls);
    }

    /// xorshift64*: a small deterministic generator for the randomized tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn randomized_inputs_never_panic_and_stay_consistent() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let hello = rustls_hello("fuzz.example.com");
        for _ in 0..20_000 {
            // Random bytes, random bytes behind a handshake header, and mutated real hellos.
            let len = rng.below(600);
            let mut input: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            match rng.below(3) {
                0 => {}
                1 if input.len() >= 5 => input[..3].copy_from_slice(&[HANDSHAKE, 3, 1]),
                _ => {
                    input = hello.clone();
                    for _ in 0..1 + rng.below(4) {
                        let at = rng.below(input.len());
                        input[at] = rng.next() as u8;
                    }
                    input.truncate(rng.below(input.len() + 1));
                }
            }
            let verdict = parse(&input);
            // A final verdict stays final when more bytes arrive.
            if verdict != Hello::NeedMore {
                let mut longer = input.clone();
                longer.extend_from_slice(b"trailing bytes");
                assert_eq!(parse(&longer), verdict, "{input:?}");
            }
        }
    }
}
