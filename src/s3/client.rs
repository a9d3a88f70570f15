//! The S3 client: the official SDK with its standard chains (credentials: environment, shared
//! config and SSO, IRSA web identity, ECS, instance metadata; region likewise), smithy's hyper 1
//! client over rustls with ring, `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` for S3-compatible
//! stores (addressed path-style then: their buckets are rarely DNS names), and a timeout on
//! every call.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use super::S3Location;

/// Longest wait for a connection to S3 (or to the credential and region providers).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one call may take, retries included: a report of many hosts is large, but the final
/// upload at shutdown must not wait behind a periodic one for longer than a pod's grace period
/// allows (writes and uploads are one at a time).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Objects `list` reads at most (a prefix holds one report per replica).
pub const MAX_LISTED: usize = 10_000;

/// An S3 call that failed: which, on what, why (S3's error code and message when it answered).
#[derive(Debug, thiserror::Error)]
#[error("{op} s3://{bucket}/{key}: {why}")]
pub struct S3Error {
    pub op: &'static str,
    pub bucket: String,
    pub key: String,
    pub why: String,
}

/// A client of S3.
#[derive(Clone)]
pub struct S3 {
    client: aws_sdk_s3::Client,
}

impl S3 {
    /// The client as the environment configures it (no call is made yet: credentials are
    /// looked up on the first request).
    pub async fn from_env() -> Self {
        let http =
            aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
        let timeouts =
            TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).operation_timeout(OPERATION_TIMEOUT).build();
        let sdk =
            aws_config::defaults(BehaviorVersion::latest()).http_client(http).timeout_config(timeouts).load().await;
        let custom_endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|u| !u.trim().is_empty()));
        let conf = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(custom_endpoint)
            // Checksums only where S3 requires them: S3-compatible stores differ in the rest, and
            // TLS already guards the bytes.
            .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
            .build();
        Self { client: aws_sdk_s3::Client::from_conf(conf) }
    }

    /// Uploads the file at `path` as `key` (streamed from disk).
    pub async fn put_file(&self, bucket: &str, key: &str, path: &Path) -> Result<(), S3Error> {
        let fail = |why: String| S3Error { op: "PUT", bucket: bucket.to_owned(), key: key.to_owned(), why };
        let body = ByteStream::from_path(path).await.map_err(|e| fail(format!("{}: {e}", path.display())))?;
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(describe(&e)))
    }

    /// Downloads `key` into the file at `path`; `false` when there is no such key.
    pub async fn get_to_file(&self, bucket: &str, key: &str, path: &Path) -> Result<bool, S3Error> {
        let fail = |why: String| S3Error { op: "GET", bucket: bucket.to_owned(), key: key.to_owned(), why };
        let out = match self.client.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(false),
            Err(e) => return Err(fail(describe(&e))),
        };
        let mut file = std::fs::File::create(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        let mut body = out.body;
        while let Some(chunk) = body.try_next().await.map_err(|e| fail(chain(&e)))? {
            file.write_all(&chunk).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        }
        file.flush().map_err(|e| fail(format!("{}: {e}", path.display())))?;
        Ok(true)
    }

    /// The keys of the `.json` objects right under the prefix (not in its sub-folders), at most
    /// [`MAX_LISTED`].
    pub async fn list_reports(&self, at: &S3Location) -> Result<Vec<String>, S3Error> {
        let fail = |why: String| S3Error { op: "LIST", bucket: at.bucket.clone(), key: at.prefix.clone(), why };
        let mut pages =
            self.client.list_objects_v2().bucket(&at.bucket).prefix(&at.prefix).delimiter("/").into_paginator().send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| fail(describe(&e)))?;
            for key in page.contents().iter().filter_map(|o| o.key()) {
                if key.ends_with(".json") && keys.len() < MAX_LISTED {
                    keys.push(key.to_owned());
                }
            }
        }
        Ok(keys)
    }
}

/// S3's own code and message when it answered, else the chain of causes (no Debug dump).
fn describe<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => chain(e),
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
