//! `cutover-proxy certs generate --out DIR NAME…`: a fresh development CA and one leaf certificate
//! per name, signed by it, in the layout `--cert-dir` reads. For demos and tests only: production
//! certificates come from your CA (see certs/README.md).
//!
//! Written: `DIR/ca/ca.crt` and `DIR/ca/ca.key` (the CA: give `ca.crt` to clients, or to
//! `--upstream-ca`), and for each name `DIR/FILE.crt` + `DIR/FILE.key`, where FILE is the name with
//! a leading `*` written as `_wildcard` (`*.example.com` → `_wildcard.example.com.crt`).

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// Why certificates could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A name that cannot be a certificate's DNS name.
    #[error("`{name}` is not a host name or `*.domain` pattern: {why}")]
    Name {
        /// The name as given.
        name: String,
        why: String,
    },
    /// The certificate could not be made.
    #[error("cannot make a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The file stem for a certificate name.
pub fn file_stem(name: &str) -> String {
    match name.strip_prefix('*') {
        Some(rest) => format!("_wildcard{rest}"),
        None => name.to_owned(),
    }
}

/// Makes a new CA and a leaf per name in `out`; returns the files written.
pub fn generate(out: &Path, names: &[String]) -> Result<Vec<PathBuf>, GenerateError> {
    let names: Vec<String> = names.iter().map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase()).collect();
    for name in &names {
        let bare = name.strip_prefix("*.").unwrap_or(name);
        let valid = !bare.is_empty()
            && bare.split('.').all(|l| !l.is_empty() && l.len() <= 63)
            && bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !valid {
            return Err(GenerateError::Name { name: name.clone(), why: "letters, digits, `-` and dots only".into() });
        }
    }
    let mut written = Vec::new();
    let ca_dir = out.join("ca");
    mkdir(&ca_dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, "cutover-proxy development CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key)?;
    written.push(write(&ca_dir.join("ca.crt"), ca_cert.pem().as_bytes(), false)?);
    written.push(write(&ca_dir.join("ca.key"), ca_key.serialize_pem().as_bytes(), true)?);
    let issuer = Issuer::new(ca, ca_key);
    for name in &names {
        let key = KeyPair::generate()?;
        let mut leaf = CertificateParams::new(vec![name.clone()])?;
        leaf.distinguished_name.push(DnType::CommonName, name.as_str());
        leaf.is_ca = IsCa::NoCa;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.use_authority_key_identifier_extension = true;
        let cert = leaf.signed_by(&key, &issuer)?;
        let stem = file_stem(name);
        written.push(write(&out.join(format!("{stem}.crt")), cert.pem().as_bytes(), false)?);
        written.push(write(&out.join(format!("{stem}.key")), key.serialize_pem().as_bytes(), true)?);
    }
    Ok(written)
}

fn mkdir(dir: &Path) -> Result<(), GenerateError> {
    std::fs::create_dir_all(dir).map_err(|source| GenerateError::Write { path: dir.to_owned(), source })
}

/// Writes a file; private keys are readable by the owner only.
fn write(path: &Path, data: &[u8], private: bool) -> Result<PathBuf, GenerateError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| GenerateError::Write { path: path.to_owned(), source };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true).mode(if private { 0o600 } else { 0o644 });
    let mut f = opts.open(path).map_err(err)?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    f.write_all(data).map_err(err)?;
    Ok(path.to_owned())
}
