//! Typed errors of the library part; the binary turns them into messages and exit codes.

use std::path::PathBuf;

/// A configuration that cannot be used: bad file, missing or contradictory settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No `--upstream` from flags, environment or file.
    #[error("no upstream: give --upstream http://host:port (or CUTOVER_UPSTREAM, or `upstream` in the config file)")]
    MissingUpstream,
    /// The config file cannot be read or parsed.
    #[error("config file {}{}: {why}", path.display(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
    File {
        /// The file named by `--config`.
        path: PathBuf,
        /// 1-based line of the offending key, where known.
        line: Option<usize>,
        /// What is wrong.
        why: String,
    },
    /// An input file other than the config (Route53 export, certificates) cannot be used.
    #[error("{kind} {}{}: {why}", path.display(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Input {
        /// What the file is, e.g. `route53 records file`.
        kind: &'static str,
        /// The file.
        path: PathBuf,
        /// 1-based line, where known.
        line: Option<usize>,
        /// What is wrong.
        why: String,
    },
    /// A setting has a value that cannot work.
    #[error("{what}: {why}")]
    Invalid {
        /// The flag.
        what: &'static str,
        /// Why it cannot work.
        why: String,
    },
    /// A listener cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Why a request could not be forwarded; each maps to a status and a log `error` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// The upstream refused the TCP connection.
    ConnectRefused,
    /// The TCP connection did not open within `--connect-timeout`.
    ConnectTimeout,
    /// Any other connect failure (unreachable network, ...).
    ConnectFailed,
    /// The upstream's host name has no known address yet.
    Unresolved,
    /// The upstream reset or closed the connection before a complete response.
    Reset,
    /// The upstream was silent for longer than `--upstream-timeout`.
    Timeout,
    /// The upstream sent something that is not HTTP.
    Protocol,
    /// The client's request body failed (client went away mid-upload).
    ClientAborted,
    /// The TLS handshake with an `https://` upstream failed (certificate not trusted, wrong name,
    /// no common protocol).
    Tls,
}

impl UpstreamError {
    /// Every cause, in the order metrics list them.
    pub const ALL: [UpstreamError; 8] = [
        Self::ConnectRefused,
        Self::ConnectTimeout,
        Self::ConnectFailed,
        Self::Unresolved,
        Self::Reset,
        Self::Timeout,
        Self::Protocol,
        Self::ClientAborted,
    ];

    /// The status the client gets.
    pub fn status(self) -> u16 {
        match self {
            Self::ConnectTimeout | Self::Timeout => 504,
            Self::ClientAborted => 499,
            _ => 502,
        }
    }

    /// The short cause written in the log line's `error` field.
    pub fn cause(self) -> &'static str {
        match self {
            Self::ConnectRefused => "upstream_connect_refused",
            Self::ConnectTimeout => "upstream_connect_timeout",
            Self::ConnectFailed => "upstream_connect_failed",
            Self::Unresolved => "upstream_unresolved",
            Self::Reset => "upstream_reset",
            Self::Timeout => "upstream_timeout",
            Self::Protocol => "upstream_protocol_error",
            Self::ClientAborted => "client_aborted",
            Self::Tls => "upstream_tls_failed",
        }
    }

    /// The short text body the client gets.
    pub fn body(self) -> &'static str {
        match self {
            Self::ConnectRefused => "502 Bad Gateway: the upstream refused the connection\n",
            Self::ConnectTimeout => "504 Gateway Timeout: connecting to the upstream timed out\n",
            Self::ConnectFailed => "502 Bad Gateway: the upstream cannot be reached\n",
            Self::Unresolved => "502 Bad Gateway: the upstream's host name does not resolve\n",
            Self::Reset => "502 Bad Gateway: the upstream closed the connection\n",
            Self::Timeout => "504 Gateway Timeout: the upstream did not answer in time\n",
            Self::Protocol => "502 Bad Gateway: the upstream sent an invalid response\n",
            Self::ClientAborted => "",
            Self::Tls => "502 Bad Gateway: the TLS handshake with the upstream failed\n",
        }
    }
}
