//! Why a request or connection did not end cleanly: the `error` value of access lines and
//! `passthrough` events, the `cause` label of `cutover_upstream_errors_total`, and for the
//! proxy's own answers, the status and text the client gets.

use super::names::named_enum;

named_enum! {
    /// One cause; the name is what the log and the metrics say.
    pub enum Cause {
        /// The upstream refused the TCP connection.
        ConnectRefused = "upstream_connect_refused",
        /// The TCP connection did not open within `--connect-timeout`.
        ConnectTimeout = "upstream_connect_timeout",
        /// Any other connect failure (unreachable network, ...).
        ConnectFailed = "upstream_connect_failed",
        /// The upstream's host name has no known address yet.
        Unresolved = "upstream_unresolved",
        /// The upstream reset or closed the connection before a complete response.
        Reset = "upstream_reset",
        /// The upstream was silent for longer than `--upstream-timeout`.
        Timeout = "upstream_timeout",
        /// The upstream sent something that is not HTTP.
        Protocol = "upstream_protocol_error",
        /// The TLS handshake with an `https://` upstream failed (certificate not trusted, wrong
        /// name, no common protocol).
        Tls = "upstream_tls_failed",
        /// The client's request body failed: it ended before its length, or its chunked framing
        /// was malformed (400, as nginx answers; the client may have gone away).
        ClientAborted = "client_aborted",
        /// The client's request body was silent (or slower than `--client-body-min-rate`) for
        /// `--client-body-timeout` (408: the client's fault, not blue's).
        ClientBodyTimeout = "client_body_timeout",
        /// A request head that is not HTTP/1.1 (hyper answered 400 itself).
        BadRequest = "client_bad_request",
        /// A request head larger than the limits (hyper answered 431, or 414 for the target).
        HeadTooLarge = "client_header_too_large",
        /// An HTTP/1.1 request without `Host` (RFC 9112 §3.2: 400).
        HostMissing = "client_host_missing",
        /// A request with more than one `Host` (RFC 9112 §3.2: 400; blue might route by either).
        HostRepeated = "client_host_repeated",
        /// The client went away before the whole response was sent.
        ClientClosed = "client_closed",
        /// A `CONNECT` request, which a reverse proxy does not serve (405).
        ConnectMethod = "connect_refused",
        /// One side of an upgrade did not hand its connection over.
        UpgradeFailed = "upgrade_failed",
        /// A tunnel (upgrade or passthrough) stayed silent both ways for its idle timeout.
        TunnelIdleTimeout = "tunnel_idle_timeout",
        /// A tunnel's connection failed on either side.
        TunnelReset = "tunnel_reset",
        /// The worker stopped at the end of `--shutdown-timeout` with the connection still open.
        Shutdown = "shutdown",
    }
}

impl Cause {
    /// The status the client gets when the proxy answers for this cause itself.
    pub fn status(self) -> u16 {
        match self {
            Cause::ConnectTimeout | Cause::Timeout => 504,
            Cause::ClientAborted | Cause::HostMissing | Cause::HostRepeated | Cause::BadRequest => 400,
            Cause::HeadTooLarge => 431,
            Cause::ClientBodyTimeout => 408,
            Cause::ClientClosed => 499,
            Cause::ConnectMethod => 405,
            Cause::ConnectRefused
            | Cause::ConnectFailed
            | Cause::Unresolved
            | Cause::Reset
            | Cause::Protocol
            | Cause::Tls
            | Cause::UpgradeFailed
            | Cause::TunnelIdleTimeout
            | Cause::TunnelReset
            | Cause::Shutdown => 502,
        }
    }

    /// The short text body of the proxy's own answer.
    pub fn body(self) -> &'static str {
        match self {
            Cause::ConnectRefused => "502 Bad Gateway: the upstream refused the connection\n",
            Cause::ConnectTimeout => "504 Gateway Timeout: connecting to the upstream timed out\n",
            Cause::ConnectFailed => "502 Bad Gateway: the upstream cannot be reached\n",
            Cause::Unresolved => "502 Bad Gateway: the upstream's host name does not resolve\n",
            Cause::Reset => "502 Bad Gateway: the upstream closed the connection\n",
            Cause::Timeout => "504 Gateway Timeout: the upstream did not answer in time\n",
            Cause::Protocol => "502 Bad Gateway: the upstream sent an invalid response\n",
            Cause::Tls => "502 Bad Gateway: the TLS handshake with the upstream failed\n",
            Cause::ConnectMethod => "405 Method Not Allowed: this is a reverse proxy\n",
            Cause::ClientAborted => "400 Bad Request: the request body ended early or its framing is invalid\n",
            Cause::ClientBodyTimeout => "408 Request Timeout: the request body did not arrive in time\n",
            Cause::HostMissing => "400 Bad Request: an HTTP/1.1 request needs a Host header\n",
            Cause::BadRequest => "400 Bad Request\n",
            Cause::HeadTooLarge => "431 Request Header Fields Too Large\n",
            Cause::HostRepeated => "400 Bad Request: more than one Host header\n",
            Cause::ClientClosed
            | Cause::UpgradeFailed
            | Cause::TunnelIdleTimeout
            | Cause::TunnelReset
            | Cause::Shutdown => "",
        }
    }
}
