//! Configuration that cannot be used; the CLI turns it into one line and exit code 2 (a bind
//! failure: exit code 1).

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
