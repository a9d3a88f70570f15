//! The proxy's own HTTP/1.1 server side (`--http1-server own`, the default), on plain and HTTPS
//! listeners: requests byte for byte, with hyper's server behind it for the rest.

mod answer;
mod body;
mod chunked;
mod forward;
mod head;
mod serve;

pub use head::is_grpc_type;
pub use serve::Served;

/// Parses the request head at the start of `raw` and writes it toward blue as the own side does
/// for a client at `peer_ip` (the criterion bench's entry): the head's length, or `None` when it
/// is not complete or would go to hyper's side.
pub fn forward_head(raw: &[u8], peer_ip: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let head::Parse::Complete(h) = head::parse(raw) else { return None };
    let facts = head::Facts::of(&h.fields);
    if head::needs_hyper(&h, &facts) {
        return None;
    }
    let absolute = head::absolute_form(h.target);
    let host = head::request_host(&facts, absolute.map(|(a, _)| a), h.minor).ok()?;
    let hop = forward::Hop {
        peer_ip,
        peer_trusted: false,
        proto: b"http",
        host,
        fallback_host: b"blue",
        authority: absolute.map(|(a, _)| a),
    };
    let target = absolute.map_or(head::Target::Path(h.target), |(_, t)| t);
    forward::encode(h.method, target, &h.fields, &facts, &hop, out);
    Some(h.len)
}
