//! The certificates of `--cert-dir`: loading the folder, indexing each certificate's DNS names
//! (wildcards included), choosing one by SNI, and reloading on SIGHUP or when the folder changes
//! — behind an [`ArcSwap`], keeping the last good set when a file is bad.
//!
//! Accepted file names, in the folder itself (nothing deeper, names starting with `.` skipped):
//! - `NAME.crt` or `NAME.pem` (the certificate chain, leaf first, PEM) with `NAME.key` beside it
//!   (the private key: PKCS#8, PKCS#1 or SEC1, PEM);
//! - `NAME/tls.crt` with `NAME/tls.key` (a mounted Kubernetes `kubernetes.io/tls` Secret).
//!
//! Other files are ignored. `NAME` is what `--default-cert` refers to.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert, StoresServerSessions};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::der;
use super::provider::provider;

/// A certificate folder or file that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {why}", path.display())]
pub struct CertError {
    /// The file (or folder) at fault.
    pub path: PathBuf,
    /// What is wrong with it.
    pub why: String,
}

impl CertError {
    fn new(path: &Path, why: impl Into<String>) -> Self {
        Self { path: path.to_owned(), why: why.into() }
    }
}

/// How a connection's certificate was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertChoice {
    /// A certificate names the SNI (exactly or by wildcard).
    Matched,
    /// No SNI, or a name no certificate has: the default certificate was served.
    Default,
}

/// One certificate and key pair, ready to serve.
pub struct Loaded {
    /// The pair's name (file stem or folder name).
    pub name: String,
    /// The certificate file.
    pub cert_file: PathBuf,
    /// DNS names of the leaf's subjectAltName (`*.example.com` for wildcards), lowercased.
    pub dns_names: Vec<String>,
    /// The leaf's notAfter, unix milliseconds.
    pub not_after_ms: Option<u64>,
    config: Arc<ServerConfig>,
}

/// Shared across every certificate's configuration and kept across reloads, so sessions resume.
struct Resumption {
    sessions: Arc<dyn StoresServerSessions>,
    tickets: Option<Arc<dyn rustls::server::ProducesTickets>>,
}

/// A loaded folder: the certificates, an index by DNS name, and the default.
pub struct CertSet {
    certs: Vec<Loaded>,
    exact: HashMap<String, usize>,
    /// `example.com` → the certificate with `*.example.com`.
    wildcard: HashMap<String, usize>,
    default: usize,
}

impl CertSet {
    /// Loads every pair in `dir`; `default` names the one served without a matching SNI (the
    /// first by file name when `None`). Fails on the first bad file, naming it.
    fn load(dir: &Path, default: Option<&str>, resumption: &Resumption) -> Result<Self, CertError> {
        let pairs = find_pairs(dir)?;
        if pairs.is_empty() {
            return Err(CertError::new(
                dir,
                "no certificate found (expected NAME.crt or NAME.pem with NAME.key, or NAME/tls.crt with NAME/tls.key)",
            ));
        }
        let mut certs = Vec::with_capacity(pairs.len());
        let (mut exact, mut wildcard) = (HashMap::new(), HashMap::new());
        for (name, cert_file, key_file) in pairs {
            let loaded = load_pair(name, &cert_file, &key_file, resumption)?;
            let idx = certs.len();
            for dns in &loaded.dns_names {
                // The first file (by name) that claims a name serves it.
                match dns.strip_prefix("*.") {
                    Some(suffix) => wildcard.entry(suffix.to_owned()).or_insert(idx),
                    None => exact.entry(dns.clone()).or_insert(idx),
                };
            }
            certs.push(loaded);
        }
        let default = match default {
            None => 0,
            Some(want) => certs.iter().position(|c| c.name == want).ok_or_else(|| {
                let names: Vec<&str> = certs.iter().map(|c| c.name.as_str()).collect();
                CertError::new(
                    dir,
                    format!("--default-cert `{want}` is not among the certificates: {}", names.join(", ")),
                )
            })?,
        };
        Ok(Self { certs, exact, wildcard, default })
    }

    /// The configuration to serve for `sni`, and whether a certificate named it.
    pub fn choose(&self, sni: Option<&str>) -> (&Arc<ServerConfig>, CertChoice) {
        match sni.and_then(|name| self.find(name)) {
            Some(i) => (&self.certs[i].config, CertChoice::Matched),
            None => (&self.certs[self.default].config, CertChoice::Default),
        }
    }

    /// The certificate naming `name` exactly, else by a wildcard for its first label.
    pub fn find(&self, name: &str) -> Option<usize> {
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if let Some(&i) = self.exact.get(name) {
            return Some(i);
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).copied()
    }

    /// The certificates, in file-name order.
    pub fn certs(&self) -> &[Loaded] {
        &self.certs
    }

    /// The default certificate's name.
    pub fn default_name(&self) -> &str {
        &self.certs[self.default].name
    }
}

/// The live set of `--cert-dir`, swapped whole on a good reload.
pub struct CertStore {
    dir: PathBuf,
    default: Option<String>,
    resumption: Resumption,
    current: ArcSwap<CertSet>,
}

impl CertStore {
    /// Loads the folder; an error names the file and why (start-up refuses it).
    pub fn load(dir: &Path, default: Option<String>) -> Result<Arc<Self>, CertError> {
        let resumption = Resumption {
            sessions: rustls::server::ServerSessionMemoryCache::new(16 * 1024),
            tickets: rustls::crypto::ring::Ticketer::new().ok(),
        };
        let set = CertSet::load(dir, default.as_deref(), &resumption)?;
        Ok(Arc::new(Self { dir: dir.to_owned(), default, resumption, current: ArcSwap::from_pointee(set) }))
    }

    /// The current set (one atomic load; held by a handshake only while choosing).
    pub fn current(&self) -> arc_swap::Guard<Arc<CertSet>> {
        self.current.load()
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the folder again; on success the new set serves new handshakes (open connections
    /// keep theirs), on failure the last good set stays.
    pub fn reload(&self) -> Result<Arc<CertSet>, CertError> {
        let set = Arc::new(CertSet::load(&self.dir, self.default.as_deref(), &self.resumption)?);
        self.current.store(set.clone());
        Ok(set)
    }
}

/// `(name, certificate file, key file)` of every pair in `dir`, sorted by name.
fn find_pairs(dir: &Path) -> Result<Vec<(String, PathBuf, PathBuf)>, CertError> {
    let entries = std::fs::read_dir(dir).map_err(|e| CertError::new(dir, format!("cannot read the folder: {e}")))?;
    let mut names: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            (!name.starts_with('.')).then(|| (name, e.path()))
        })
        .collect();
    names.sort();
    let mut pairs = Vec::new();
    for (file, path) in &names {
        if path.is_dir() {
            let (crt, key) = (path.join("tls.crt"), path.join("tls.key"));
            match (crt.is_file(), key.is_file()) {
                (true, true) => pairs.push((file.clone(), crt, key)),
                (true, false) => return Err(CertError::new(&crt, "no private key: expected tls.key beside it")),
                (false, true) => {
                    return Err(CertError::new(&key, "private key without a certificate: expected tls.crt beside it"))
                }
                (false, false) => {}
            }
            continue;
        }
        let Some((stem, ext)) = file.rsplit_once('.') else { continue };
        match ext {
            "crt" | "pem" => {
                let key = dir.join(format!("{stem}.key"));
                // A CA bundle beside the pairs (a cert-manager Secret's `ca.crt`) has no key: not a pair.
                if stem == "ca" && !key.is_file() {
                    continue;
                }
                if !key.is_file() {
                    return Err(CertError::new(path, format!("no private key: expected {stem}.key beside it")));
                }
                if ext == "pem" && dir.join(format!("{stem}.crt")).is_file() {
                    return Err(CertError::new(path, format!("both {stem}.crt and {stem}.pem: keep one")));
                }
                pairs.push((stem.to_owned(), path.clone(), key));
            }
            "key" if !dir.join(format!("{stem}.crt")).is_file() && !dir.join(format!("{stem}.pem")).is_file() => {
                return Err(CertError::new(
                    path,
                    format!("private key without a certificate: expected {stem}.crt or {stem}.pem beside it"),
                ));
            }
            _ => {}
        }
    }
    Ok(pairs)
}

fn load_pair(name: String, cert_file: &Path, key_file: &Path, resumption: &Resumption) -> Result<Loaded, CertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| CertError::new(cert_file, format!("cannot read: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::new(cert_file, format!("not a PEM certificate chain: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(CertError::new(cert_file, "no PEM CERTIFICATE block in the file"));
    };
    let leaf_info = der::leaf_info(leaf.as_ref())
        .map_err(|e| CertError::new(cert_file, format!("the first certificate is not valid X.509: {e}")))?;
    let dns_names = leaf_info.dns_names;
    if leaf_info.not_after_ms.is_some_and(|t| t < crate::base::time::unix_ms()) {
        tracing::warn!(file = %cert_file.display(), "certificate has expired: clients will refuse it");
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| CertError::new(key_file, format!("not a PEM private key: {e}")))?;
    let certified = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| CertError::new(key_file, format!("unusable with {}: {e}", cert_file.display())))?;
    if dns_names.is_empty() {
        tracing::warn!(file = %cert_file.display(), "certificate has no DNS subjectAltName: it can only serve as the default");
    }
    let config = server_config(Arc::new(certified), resumption)
        .map_err(|e| CertError::new(cert_file, format!("cannot build a TLS configuration: {e}")))?;
    Ok(Loaded {
        name,
        cert_file: cert_file.to_owned(),
        dns_names,
        not_after_ms: leaf_info.not_after_ms,
        config: Arc::new(config),
    })
}

/// Always the one certificate: each pair gets its own configuration, chosen before the handshake.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// TLS 1.2 and 1.3, ALPN `h2`, `http/1.1` (and `http/1.0`, which a few old clients offer alone:
/// without it they would be refused with `no_application_protocol`), sessions and tickets shared
/// by every certificate.
fn server_config(key: Arc<CertifiedKey>, resumption: &Resumption) -> Result<ServerConfig, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(key)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    config.session_storage = resumption.sessions.clone();
    if let Some(t) = &resumption.tickets {
        config.ticketer = t.clone();
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, stem: &str, names: &[&str]) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{stem}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cutover-certs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn chooses_by_sni_with_wildcards_and_default() {
        let dir = temp_dir("choose");
        write_pair(&dir, "a", &["a.example.com"]);
        write_pair(&dir, "wild", &["*.example.com", "example.com"]);
        std::fs::write(dir.join("README.md"), "ignored").unwrap();
        let store = CertStore::load(&dir, Some("wild".into())).unwrap();
        let set = store.current();
        let name = |sni: Option<&str>| {
            let (cfg, choice) = set.choose(sni);
            let i = set.certs().iter().position(|c| Arc::ptr_eq(&c.config, cfg)).unwrap();
            (set.certs()[i].name.clone(), choice)
        };
        assert_eq!(name(Some("a.example.com")), ("a".into(), CertChoice::Matched));
        assert_eq!(name(Some("A.Example.COM.")), ("a".into(), CertChoice::Matched));
        assert_eq!(name(Some("b.example.com")), ("wild".into(), CertChoice::Matched));
        assert_eq!(name(Some("example.com")), ("wild".into(), CertChoice::Matched));
        assert_eq!(name(Some("x.y.example.com")), ("wild".into(), CertChoice::Default), "a wildcard covers one label");
        assert_eq!(name(Some("other.org")), ("wild".into(), CertChoice::Default));
        assert_eq!(name(None), ("wild".into(), CertChoice::Default));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_files_are_named() {
        let dir = temp_dir("bad");
        write_pair(&dir, "good", &["good.example.com"]);
        std::fs::write(dir.join("lonely.crt"), "x").unwrap();
        let err = CertStore::load(&dir, None).err().unwrap();
        assert!(err.path.ends_with("lonely.crt") && err.why.contains("lonely.key"), "{err}");
        std::fs::write(dir.join("lonely.key"), "not a key").unwrap();
        let err = CertStore::load(&dir, None).err().unwrap();
        assert!(err.path.ends_with("lonely.crt") && err.why.contains("CERTIFICATE"), "{err}");
        std::fs::remove_file(dir.join("lonely.crt")).unwrap();
        let err = CertStore::load(&dir, None).err().unwrap();
        assert!(err.path.ends_with("lonely.key") && err.why.contains("without a certificate"), "{err}");
        std::fs::remove_file(dir.join("lonely.key")).unwrap();
        // A key that belongs to another certificate.
        write_pair(&dir, "other", &["other.example.com"]);
        std::fs::copy(dir.join("good.key"), dir.join("other.key")).unwrap();
        let err = CertStore::load(&dir, None).err().unwrap();
        assert!(err.path.ends_with("other.key"), "{err}");
        std::fs::remove_file(dir.join("other.key")).unwrap();
        std::fs::remove_file(dir.join("other.crt")).unwrap();
        let err = CertStore::load(&dir, Some("nope".into())).err().unwrap();
        assert!(err.why.contains("nope") && err.why.contains("good"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reload_keeps_the_last_good_set() {
        let dir = temp_dir("reload");
        write_pair(&dir, "a", &["a.example.com"]);
        let store = CertStore::load(&dir, None).unwrap();
        write_pair(&dir, "b", &["b.example.com"]);
        assert_eq!(store.reload().unwrap().certs().len(), 2);
        std::fs::write(dir.join("b.crt"), "broken").unwrap();
        let err = store.reload().err().unwrap();
        assert!(err.path.ends_with("b.crt"), "{err}");
        assert_eq!(store.current().certs().len(), 2, "last good set kept");
        assert_eq!(store.current().find("b.example.com"), Some(1));
        // Kubernetes Secret layout.
        std::fs::remove_file(dir.join("b.crt")).unwrap();
        std::fs::remove_file(dir.join("b.key")).unwrap();
        std::fs::create_dir_all(dir.join("secret-c")).unwrap();
        write_pair(&dir.join("secret-c"), "tls", &["c.example.com"]);
        let set = store.reload().unwrap();
        assert_eq!(set.certs().iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a", "secret-c"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
