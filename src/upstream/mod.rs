//! Where requests go: blue's address (resolved in the background, never on the request path), the
//! per-host overrides, and the per-worker connection pools in [`pool`].

pub mod body;
pub mod lean;
pub mod pool;
pub mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;
use rustls_pki_types::ServerName;

use crate::base::host::strip_port;
use crate::base::values::{HostUpstream, UpstreamUrl};

/// One upstream: its URL, its current addresses, and a name for the log.
#[derive(Debug)]
pub struct Upstream {
    /// As configured.
    pub url: UpstreamUrl,
    /// `http://host:port`, as logged (made once at start-up and kept for the process's life, so
    /// log records carry it without a shared reference count).
    pub name: &'static str,
    /// The authority (`host:port`) used as Host when a request has none.
    pub authority: HeaderValue,
    /// For `https://`: the name sent as SNI and verified in blue's certificate (the URL's host,
    /// or `--upstream-sni`); an IP literal sends no SNI and is verified against IP SANs.
    pub server_name: Option<ServerName<'static>>,
    addrs: ArcSwap<Vec<SocketAddr>>,
    next: AtomicUsize,
}

impl Upstream {
    fn new(url: UpstreamUrl) -> Self {
        let addrs = match url.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, url.port)],
            Err(_) => Vec::new(),
        };
        let authority = HeaderValue::from_str(&url.authority()).unwrap_or(HeaderValue::from_static("upstream"));
        let server_name = if url.tls { ServerName::try_from(url.host.clone()).ok() } else { None };
        Self {
            name: Box::leak(url.to_string().into_boxed_str()),
            authority,
            server_name,
            url,
            addrs: ArcSwap::from_pointee(addrs),
            next: AtomicUsize::new(0),
        }
    }

    /// Whether the host is a name that needs resolving (not an IP literal).
    pub fn needs_resolving(&self) -> bool {
        self.url.host.parse::<IpAddr>().is_err()
    }

    /// The addresses to try for a new connection, rotated so connections spread over them.
    pub fn addrs(&self) -> (Arc<Vec<SocketAddr>>, usize) {
        let addrs = self.addrs.load_full();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (addrs, start)
    }

    /// Resolves the host name once and stores the answer; keeps the old one on failure.
    pub async fn resolve(&self) -> std::io::Result<usize> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((self.url.host.as_str(), self.url.port)).await?.collect();
        if found.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses"));
        }
        let n = found.len();
        self.addrs.store(Arc::new(found));
        Ok(n)
    }
}

/// All upstreams and the host → upstream choice.
#[derive(Debug)]
pub struct Upstreams {
    /// Index 0 is the default (`--upstream`); then one per distinct override URL.
    pub list: Vec<Arc<Upstream>>,
    exact: HashMap<String, usize>,
    /// `(suffix with leading dot, index)`, longest suffix first.
    wildcard: Vec<(String, usize)>,
}

impl Upstreams {
    /// Builds the table from `--upstream` and `--upstream-for`.
    pub fn new(default: UpstreamUrl, overrides: &[HostUpstream]) -> Self {
        let mut list = vec![Arc::new(Upstream::new(default))];
        let mut exact = HashMap::new();
        let mut wildcard = Vec::new();
        for o in overrides {
            let idx = match list.iter().position(|u| u.url == o.url) {
                Some(i) => i,
                None => {
                    list.push(Arc::new(Upstream::new(o.url.clone())));
                    list.len() - 1
                }
            };
            match o.host.strip_prefix('*') {
                Some(suffix) => wildcard.push((suffix.to_owned(), idx)),
                None => {
                    exact.insert(o.host.clone(), idx);
                }
            }
        }
        wildcard.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        Self { list, exact, wildcard }
    }

    /// Sends `name` as SNI (and verifies it in the certificate) for the default upstream, when it
    /// is `https://` (`--upstream-sni`). Call before the table is shared.
    pub fn with_sni(mut self, name: Option<&str>) -> Result<Self, String> {
        let Some(name) = name else { return Ok(self) };
        let server_name =
            ServerName::try_from(name.to_owned()).map_err(|_| format!("`{name}` is not a DNS name or IP address"))?;
        match self.list.first_mut().and_then(Arc::get_mut) {
            Some(up) if up.url.tls => up.server_name = Some(server_name),
            Some(_) => return Err("is only for an https:// --upstream".into()),
            None => return Err("cannot be applied after start-up".into()),
        }
        Ok(self)
    }

    /// The upstream index for a request's Host (as received: any case, maybe with a port).
    pub fn pick(&self, host: Option<&[u8]>) -> usize {
        if self.exact.is_empty() && self.wildcard.is_empty() {
            return 0;
        }
        let Some(host) = host else { return 0 };
        let Ok(host) = std::str::from_utf8(host) else { return 0 };
        let host = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
        if let Some(&i) = self.exact.get(&host) {
            return i;
        }
        self.wildcard
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|(_, i)| *i)
            .unwrap_or(0)
    }

    /// Resolves every named upstream once, each within `timeout`; a failure keeps the last
    /// addresses (none at start-up: requests then get 502 until a later round succeeds).
    pub async fn resolve_all(&self, timeout: Duration) {
        for up in self.list.iter().filter(|u| u.needs_resolving()) {
            match tokio::time::timeout(timeout, up.resolve()).await {
                Ok(Ok(n)) => tracing::debug!(upstream = %up.name, addresses = n, "upstream resolved"),
                Ok(Err(e)) => {
                    tracing::warn!(upstream = %up.name, error = %e, "upstream does not resolve; keeping the last addresses (502 while there are none)")
                }
                Err(_) => {
                    tracing::warn!(upstream = %up.name, "resolving the upstream timed out; keeping the last addresses (502 while there are none)")
                }
            }
        }
    }

    /// Resolves every named upstream again every `every`, forever (a background task; start-up
    /// already resolved them once).
    pub async fn keep_resolved(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            self.resolve_all(Duration::from_secs(10)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_by_host() {
        let o = |s: &str| s.parse::<HostUpstream>().unwrap();
        let ups = Upstreams::new(
            "http://10.0.0.1:80".parse().unwrap(),
            &[
                o("api.example.com=http://10.0.0.2:80"),
                o("*.tenant.example.com=http://10.0.0.3:80"),
                o("*.example.com=http://10.0.0.4:80"),
            ],
        );
        let pick = |h: &str| ups.list[ups.pick(Some(h.as_bytes()))].url.host.clone();
        assert_eq!(pick("API.example.com:443"), "10.0.0.2");
        assert_eq!(pick("a.tenant.example.com"), "10.0.0.3");
        assert_eq!(pick("x.y.example.com"), "10.0.0.4");
        assert_eq!(pick("example.com"), "10.0.0.1");
        assert_eq!(pick("other.org"), "10.0.0.1");
        assert_eq!(ups.pick(None), 0);
    }
}
