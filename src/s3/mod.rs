//! Reports in S3 (`--report-file s3://BUCKET/PREFIX/`, and `report … s3://BUCKET/PREFIX/`):
//! where a report goes ([`S3Location`], pure) and the client that puts and gets it
//! ([`client::S3`]: the official SDK, credentials and region from the standard chain).

pub mod client;

use std::fmt;
use std::str::FromStr;

/// `s3://BUCKET/PREFIX/`: a bucket and a key prefix (empty, or ending in `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
}

impl S3Location {
    /// Whether `s` is meant as an S3 location (it may still be a bad one).
    pub fn is_s3(s: &str) -> bool {
        s.starts_with("s3://")
    }

    /// The key of `name` under the prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

impl FromStr for S3Location {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let rest = s.strip_prefix("s3://").ok_or_else(|| format!("`{s}` is not s3://BUCKET/PREFIX/"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules, loosely: what no bucket can be named is refused here.
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with(['-', '.']);
        if !bucket_ok {
            return Err(format!("`{s}`: `{bucket}` is not an S3 bucket name (3–63 of a-z, 0-9, '-', '.')"));
        }
        if prefix.starts_with('/') || prefix.contains("//") {
            return Err(format!("`{s}`: the prefix has an empty folder name"));
        }
        let mut prefix = prefix.to_owned();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(Self { bucket: bucket.to_owned(), prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_name_their_keys() {
        let l: S3Location = "s3://cutover-reports/prod/blue/".parse().unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("cutover-reports", "prod/blue/"));
        assert_eq!(l.key("replica-1.json"), "prod/blue/replica-1.json");
        let l: S3Location = "s3://cutover-reports/prod".parse().unwrap();
        assert_eq!(l.prefix, "prod/", "a prefix is a folder");
        let l: S3Location = "s3://cutover-reports".parse().unwrap();
        assert_eq!((l.prefix.as_str(), l.to_string().as_str()), ("", "s3://cutover-reports/"));
        for bad in ["s3://", "s3://A_B/x/", "s3://ab/", "s3://bucket//x", "/tmp/report.json"] {
            assert!(bad.parse::<S3Location>().is_err(), "{bad}");
        }
    }
}
