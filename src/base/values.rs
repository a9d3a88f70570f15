//! Value types of settings, parsed from flags, environment and the config file alike: durations,
//! networks, `HOST:PORT`, DNS servers and upstream URLs.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// A duration written as `250ms`, `5s`, `2m`, `1h` or a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a duration (use e.g. 500ms, 5s, 2m, 1h)"))?;
        let secs = match unit.trim() {
            "" | "s" => n,
            "ms" => n / 1000.0,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            other => return Err(format!("unknown duration unit `{other}` in `{s}` (use ms, s, m or h)")),
        };
        if !secs.is_finite() || secs > 1e9 {
            return Err(format!("duration `{s}` is too large"));
        }
        Ok(Dur(Duration::from_secs_f64(secs)))
    }
}

impl std::fmt::Display for Dur {
    /// In the largest unit that writes it exactly: `250ms`, `5s`, `2m`, `1h`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            0 => write!(f, "0s"),
            ms if ms % 3_600_000 == 0 => write!(f, "{}h", ms / 3_600_000),
            ms if ms % 60_000 == 0 => write!(f, "{}m", ms / 60_000),
            ms if ms % 1000 == 0 => write!(f, "{}s", ms / 1000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

/// A size in bytes: `64MiB`, `512MB`, `1GiB`, `65536` (bytes), `KiB`/`KB` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a size (use e.g. 64MiB, 512MB, 1GiB or bytes)"))?;
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" | "K" => 1 << 10,
            "MiB" | "M" => 1 << 20,
            "GiB" | "G" => 1 << 30,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => return Err(format!("unknown size unit `{other}` in `{s}` (use B, KiB, MiB, GiB, KB, MB or GB)")),
        };
        n.checked_mul(scale)
            .and_then(|b| usize::try_from(b).ok())
            .map(ByteSize)
            .ok_or_else(|| format!("size `{s}` is too large"))
    }
}

impl std::fmt::Display for ByteSize {
    /// In the largest binary unit that writes it exactly.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        match b {
            0 => write!(f, "0"),
            b if b % (1 << 30) == 0 => write!(f, "{}GiB", b >> 30),
            b if b % (1 << 20) == 0 => write!(f, "{}MiB", b >> 20),
            b if b % (1 << 10) == 0 => write!(f, "{}KiB", b >> 10),
            b => write!(f, "{b}"),
        }
    }
}

/// A network: `10.0.0.0/8`, or a bare address meaning just that host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub ipnet::IpNet);

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        s.parse::<IpAddr>()
            .map(|ip| Cidr(ipnet::IpNet::from(ip)))
            .map_err(|_| format!("`{s}` is not a CIDR (e.g. 10.0.0.0/8) or an IP address"))
    }
}

/// A DNS server: `ADDR` (port 53) or `ADDR:PORT` (`[v6]:PORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsServer(pub SocketAddr);

impl FromStr for DnsServer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(DnsServer(addr));
        }
        s.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map(|ip| DnsServer(SocketAddr::new(ip, 53)))
            .map_err(|_| format!("`{s}` is not ADDR or ADDR:PORT (e.g. 10.0.0.2, 127.0.0.1:5353, [::1]:53)"))
    }
}

/// An upstream URL: `http://host:port` (port 80 when left out) or `https://host:port` (443).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `https://`: TLS toward the upstream.
    pub tls: bool,
}

impl UpstreamUrl {
    /// `host:port` as written in a URL authority (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", if self.tls { "https" } else { "http" }, self.authority())
    }
}

impl FromStr for UpstreamUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (rest, tls) = if let Some(rest) = s.strip_prefix("http://") {
            (rest, false)
        } else if let Some(rest) = s.strip_prefix("https://") {
            (rest, true)
        } else {
            return Err(format!("`{s}` is not an upstream URL (expected http://host:port or https://host:port)"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(format!("`{s}`: give only scheme, host and port (no path, query or user)"));
        }
        let uri: http::uri::Authority = rest.parse().map_err(|_| format!("`{s}`: invalid host or port"))?;
        let host = uri.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        if host.is_empty() {
            return Err(format!("`{s}`: no host"));
        }
        Ok(Self { host, port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }), tls })
    }
}

/// A `HOST:PORT` (the port is required), e.g. `--passthrough-upstream blue-nlb.internal:443`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort(pub UpstreamUrl);

impl FromStr for HostPort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.contains("://") {
            return Err(format!("`{s}`: give HOST:PORT, without a scheme"));
        }
        let has_port = s.rsplit_once(':').is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !has_port || s.ends_with(']') {
            return Err(format!("`{s}` is not HOST:PORT (the port is required)"));
        }
        format!("http://{s}").parse::<UpstreamUrl>().map(HostPort).map_err(|_| format!("`{s}` is not HOST:PORT"))
    }
}

/// A `--upstream-for HOST=URL` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUpstream {
    /// Lowercased host or `*.suffix` pattern.
    pub host: String,
    /// Where requests for that host go.
    pub url: UpstreamUrl,
}

impl FromStr for HostUpstream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (host, url) = s.split_once('=').ok_or_else(|| format!("expected HOST=URL, got `{s}`"))?;
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() || host.contains('/') || host[host.starts_with("*.") as usize * 2..].contains('*') {
            return Err(format!("`{host}` is not a host name or `*.domain` pattern"));
        }
        Ok(Self { host, url: url.trim().parse()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!("5s".parse::<Dur>().unwrap().0, Duration::from_secs(5));
        assert_eq!("250ms".parse::<Dur>().unwrap().0, Duration::from_millis(250));
        assert_eq!("2m".parse::<Dur>().unwrap().0, Duration::from_secs(120));
        assert_eq!("1h".parse::<Dur>().unwrap().0, Duration::from_secs(3600));
        assert_eq!("7".parse::<Dur>().unwrap().0, Duration::from_secs(7));
        assert!("5x".parse::<Dur>().is_err());
        assert!("".parse::<Dur>().is_err());
        for text in ["250ms", "5s", "2m", "1h", "90s", "0s"] {
            assert_eq!(text.parse::<Dur>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn sizes() {
        let b = |s: &str| s.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(b("64MiB"), Ok(64 << 20));
        assert_eq!(b("512MB"), Ok(512_000_000));
        assert_eq!(b("65536"), Ok(65536));
        assert_eq!(b("1GiB"), Ok(1 << 30));
        assert!(b("12 parsecs").is_err() && b("").is_err());
        assert_eq!(ByteSize(64 << 20).to_string(), "64MiB");
    }

    #[test]
    fn host_upstream() {
        let hu: HostUpstream = "*.Example.com=http://10.0.0.1:8080".parse().unwrap();
        assert_eq!(hu.host, "*.example.com");
        assert!("nohost".parse::<HostUpstream>().is_err());
        assert!("a*b.com=http://x:1".parse::<HostUpstream>().is_err());
    }

    #[test]
    fn host_port() {
        let hp: HostPort = "blue-nlb.internal:443".parse().unwrap();
        assert_eq!((hp.0.host.as_str(), hp.0.port), ("blue-nlb.internal", 443));
        assert_eq!("[::1]:8443".parse::<HostPort>().unwrap().0.port, 8443);
        for bad in ["blue", "blue:", "https://blue:443", "[::1]", "blue:x"] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_urls() {
        let u: UpstreamUrl = "http://blue.internal:8080".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("blue.internal", 8080));
        let u: UpstreamUrl = "http://[::1]:9/".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port, u.authority().as_str()), ("::1", 9, "[::1]:9"));
        assert_eq!("http://lb".parse::<UpstreamUrl>().unwrap().port, 80);
        let u: UpstreamUrl = "https://blue.internal".parse().unwrap();
        assert_eq!((u.port, u.tls, u.to_string().as_str()), (443, true, "https://blue.internal:443"));
        for bad in ["blue:80", "https://blue/x", "http://blue/path", "http://", "ftp://x"] {
            assert!(bad.parse::<UpstreamUrl>().is_err(), "{bad}");
        }
    }
}
