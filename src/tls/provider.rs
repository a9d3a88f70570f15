//! One crypto provider for every TLS configuration of the process: rustls' `ring` (it builds
//! with a plain C compiler on a fresh machine, no cmake or nasm).

/// The crypto provider every TLS configuration of the process uses.
pub fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Installs [`provider`] as the process default (once, at start-up; later calls change nothing).
pub fn install_provider() {
    let _ = provider().install_default();
}
