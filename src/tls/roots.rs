//! The CA roots a TLS client trusts: a PEM file given by a flag (`--upstream-ca`,
//! `--green-probe-ca`), else the system's, else the bundled webpki roots (Mozilla's list).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::base::error::ConfigError;

/// The roots, and a description of them for the start-up log; an unreadable file names `flag`.
pub fn root_store(ca_file: Option<&Path>, flag: &str) -> Result<(RootCertStore, String), ConfigError> {
    let mut store = RootCertStore::empty();
    if let Some(path) = ca_file {
        let bad = |why: String| ConfigError::File { path: path.to_owned(), line: None, why };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("cannot read {flag}: {e}")))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("{flag} is not a PEM certificate file: {e}")))?;
        let (added, _) = store.add_parsable_certificates(certs);
        if added == 0 {
            return Err(bad(format!("{flag} holds no usable CA certificate")));
        }
        return Ok((store, format!("{added} CA certificate(s) from {}", path.display())));
    }
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = store.add_parsable_certificates(native.certs);
    if added > 0 {
        return Ok((store, format!("{added} system CA certificates")));
    }
    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    Ok((store, "no system CA certificates found: the bundled webpki roots (Mozilla's list)".into()))
}

/// Any certificate is accepted (handshake signatures are still checked, so the session is
/// encrypted to whoever holds the presented key — just not verified): `--upstream-insecure`, and
/// the probe's calibration, which asks green for a name no certificate covers.
#[derive(Debug)]
pub struct AnyCertificate(pub Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
