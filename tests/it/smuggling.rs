//! Request smuggling: a corpus of raw requests whose framing a proxy and the server behind it
//! could read differently. Each is refused with 400 or forwarded as requests the proxy itself
//! saw and logged: blue never receives a request the ledger did not count.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::*;

/// (name, raw bytes); every target starts with `/cN` so what blue received can be traced back.
const CORPUS: &[(&str, &[u8])] = &[
    ("CL.TE", b"POST /c1 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /c1-smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"),
    ("TE.CL", b"POST /c2 HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"),
    ("TE obfuscated", b"POST /c3 HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\nab\r\n"),
    ("TE not ending in chunked", b"POST /c4 HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET /c4-smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"),
    ("TE twice", b"POST /c5 HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n"),
    ("space before colon", b"POST /c6 HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"),
    ("two different Content-Length", b"POST /c7 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc"),
    ("Content-Length list", b"POST /c8 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3, 40\r\n\r\nabc"),
    ("Content-Length with sign", b"POST /c9 HTTP/1.1\r\nHost: a.test\r\nContent-Length: +3\r\n\r\nabc"),
    ("obs-fold", b"GET /c10 HTTP/1.1\r\nHost: a.test\r\nX-A: b\r\n c\r\n\r\n"),
    ("obs-fold of Transfer-Encoding", b"POST /c11 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"),
    ("NUL in a value", b"GET /c12 HTTP/1.1\r\nHost: a.test\r\nX-A: b\0c\r\n\r\n"),
    ("bare CR in a value", b"GET /c13 HTTP/1.1\r\nHost: a.test\r\nX-A: b\rGET /c13-smuggled HTTP/1.1\r\n\r\n"),
    ("LF inside a name", b"GET /c14 HTTP/1.1\r\nHost: a.test\r\nX\nA: b\r\n\r\n"),
    ("chunk size overflow", b"POST /c15 HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\nx\r\n0\r\n\r\n"),
    ("chunk extension with a bare LF", b"POST /c16 HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n3;x\nabc\r\n0\r\n\r\n"),
    ("chunked in HTTP/1.0", b"POST /c17 HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /c17-smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"),
    ("space in the target", b"GET /c18 /c18-smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"),
    ("two requests, pipelined (valid)", b"GET /c19 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /c19-second HTTP/1.1\r\nHost: a.test\r\n\r\n"),
    ("Host with a smuggled line", b"GET /c20 HTTP/1.1\r\nHost: a.test\rX: y\r\n\r\n"),
    // Connection naming the framing away would leave the body to reach blue as a request.
    ("Connection names Content-Length", b"POST /c21 HTTP/1.1\r\nHost: a.test\r\nConnection: content-length\r\nContent-Length: 44\r\n\r\nGET /c21-smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_never_receives_a_request_the_proxy_did_not_see() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url(), "--client-body-timeout", "1s"]);
    let mut answers = Vec::new();
    for (name, raw) in CORPUS {
        let addr = proxy.addr;
        answers
            .push((*name, tokio::spawn(async move { raw_exchange(addr, raw, Duration::from_millis(1500)).await.0 })));
    }
    let mut statuses = BTreeMap::new();
    for (name, answer) in answers {
        let raw = answer.await.unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        // Every status line the client got (pipelined requests get several).
        let codes: Vec<u16> =
            text.match_indices("HTTP/1.1 ").filter_map(|(i, _)| text[i + 9..].get(..3)?.parse().ok()).collect();
        assert!(codes.iter().all(|c| [200, 400, 408, 501].contains(c)), "{name}: {text}");
        statuses.insert(name, codes);
    }
    // Everything blue received, the proxy logged as sent there; everything it logged as answered
    // by blue, blue received. (A request whose body the client broke mid-way may or may not
    // have reached blue's handler: it is logged with its client_* error either way.)
    let strip = |t: &str| t.split('?').next().unwrap_or(t).to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let blue: Vec<String> = up.targets.lock().unwrap().iter().map(|t| strip(t)).collect();
        let lines = proxy.access_lines();
        let sent: Vec<String> = lines
            .iter()
            .filter(|l| l.get("upstream_addr").is_some())
            .map(|l| l["path"].as_str().unwrap().to_owned())
            .collect();
        let answered: Vec<String> = lines
            .iter()
            .filter(|l| l.get("upstream_addr").is_some() && l.get("error").is_none())
            .map(|l| l["path"].as_str().unwrap().to_owned())
            .collect();
        let unseen: Vec<&String> = blue.iter().filter(|t| !sent.contains(t)).collect();
        let missing: Vec<&String> = answered.iter().filter(|t| !blue.contains(t)).collect();
        if (unseen.is_empty() && missing.is_empty()) || Instant::now() > deadline {
            assert!(unseen.is_empty(), "blue received requests the proxy never logged: {unseen:?}; {statuses:?}");
            assert!(missing.is_empty(), "logged as answered by blue, never received: {missing:?}");
            assert!(blue.len() <= CORPUS.len() + 1, "{blue:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both framings at once (CL.TE, TE.CL) go as one request framed by Transfer-Encoding, the
    // Content-Length dropped, and the connection closes after it (RFC 9112 §6.1); these are
    // refused outright.
    for name in [
        "TE obfuscated",
        "TE not ending in chunked",
        "two different Content-Length",
        "obs-fold",
        "NUL in a value",
        "chunk size overflow",
    ] {
        let first = statuses[name].first().copied();
        assert!(first == Some(400) || first.is_none() || first == Some(501), "{name}: {:?}", statuses[name]);
    }
    assert_eq!(statuses["two requests, pipelined (valid)"], [200, 200]);
}

/// One HTTP/2 field: name and value, any bytes.
type Field<'a> = (&'a [u8], &'a [u8]);

/// An HTTP/2 HEADERS frame on stream 1 (END_STREAM | END_HEADERS) carrying `fields` as HPACK
/// literals without indexing or Huffman coding, so any byte can be put in a name or a value.
fn h2_request(fields: &[Field<'_>]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0x00);
        block.push(name.len() as u8);
        block.extend_from_slice(name);
        block.push(value.len() as u8);
        block.extend_from_slice(value);
    }
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]); // SETTINGS, empty
    let len = block.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[0x1, 0x5, 0, 0, 0, 1]);
    out.extend_from_slice(&block);
    out
}

/// HTTP/2 → HTTP/1.1: what HTTP/2 can carry and HTTP/1.1 cannot (CR/LF in a value, pseudo-headers
/// out of place, connection-specific fields, `TE` other than trailers) never reaches blue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_that_http1_cannot_carry_never_reach_blue() {
    let up = Upstream::start().await;
    let proxy = ProxyProc::start(&["--upstream", &up.url()]);
    let base: [Field<'_>; 4] =
        [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a.test"), (b":path", b"/h2-bad")];
    let cases: Vec<(&str, Vec<Field<'_>>)> = vec![
        ("CR LF in a value", vec![(b"x-evil", b"a\r\nx-injected: 1")]),
        ("LF in a value", vec![(b"x-evil", b"a\nGET /h2-smuggled HTTP/1.1")]),
        ("NUL in a value", vec![(b"x-evil", b"a\0b")]),
        ("colon in a name", vec![(b"x:evil", b"1")]),
        ("uppercase name", vec![(b"X-Upper", b"1")]),
        ("unknown pseudo-header", vec![(b":evil", b"1")]),
        ("TE other than trailers", vec![(b"te", b"gzip")]),
        ("connection-specific field", vec![(b"connection", b"keep-alive")]),
        ("transfer-encoding", vec![(b"transfer-encoding", b"chunked")]),
    ];
    for (name, extra) in &cases {
        let mut fields = base.to_vec();
        fields.extend(extra.iter().copied());
        let (answer, _) = raw_exchange(proxy.addr, &h2_request(&fields), Duration::from_millis(500)).await;
        assert!(!answer.is_empty(), "{name}: the proxy answered nothing at all");
    }
    // A pseudo-header after a regular field.
    let late: Vec<Field<'_>> = vec![
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b"x-a", b"1"),
        (b":authority", b"a.test"),
        (b":path", b"/h2-bad"),
    ];
    raw_exchange(proxy.addr, &h2_request(&late), Duration::from_millis(500)).await;
    // The control: the same frame without anything wrong passes.
    let mut ok = base.to_vec();
    ok[3] = (b":path", b"/h2-ok");
    raw_exchange(proxy.addr, &h2_request(&ok), Duration::from_millis(500)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !up.targets.lock().unwrap().iter().any(|t| t.ends_with("/h2-ok")) {
        assert!(Instant::now() < deadline, "the valid HTTP/2 request never reached blue");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let blue = up.targets.lock().unwrap().clone();
    assert!(blue.iter().all(|t| !t.contains("h2-bad") && !t.contains("smuggled")), "{blue:?}");
}
