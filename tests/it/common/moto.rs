//! moto's AWS server on loopback and the real AWS CLI against it.
//!
//! Needs `aws` and `moto_server` (`pip install 'moto[server]' awscli`): from `CUTOVER_AWS_BIN_DIR`
//! or PATH. `.ci/run` installs them and sets `CUTOVER_REQUIRE_MOTO=1`, which turns their absence
//! into a failure; elsewhere the tests say they were skipped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn find(name: &str) -> Option<PathBuf> {
    let dirs = std::env::var_os("CUTOVER_AWS_BIN_DIR").into_iter().chain(std::env::var_os("PATH"));
    dirs.flat_map(|d| std::env::split_paths(&d).collect::<Vec<_>>()).map(|d| d.join(name)).find(|p| p.is_file())
}

/// A running moto server (killed when dropped) and the CLI pointed at it.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    aws: PathBuf,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto; `None` (after saying the test is skipped) when it is not installed and
    /// `CUTOVER_REQUIRE_MOTO` is not set.
    pub fn start() -> Option<Self> {
        let (Some(aws), Some(moto)) = (find("aws"), find("moto_server")) else {
            assert!(
                std::env::var("CUTOVER_REQUIRE_MOTO").is_err(),
                "CUTOVER_REQUIRE_MOTO is set but `aws` / `moto_server` were not found (CUTOVER_AWS_BIN_DIR or PATH)"
            );
            eprintln!(
                "skipped: `aws` and `moto_server` not found; `pip install 'moto[server]' awscli` to run this test"
            );
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}"), aws };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    /// The environment an AWS SDK client needs to reach this server, and nothing else.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/nonexistent".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
        ]
    }

    /// `aws ARGS…` against this server; its JSON output.
    pub fn aws(&self, args: &[&str]) -> Value {
        let out = Command::new(&self.aws)
            .args(["--endpoint-url", &self.endpoint, "--output", "json"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_PAGER", "")
            .output()
            .expect("run aws");
        assert!(out.status.success(), "aws {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// `aws route53 change-resource-record-sets` with a batch file.
    pub fn apply(&self, zone: &str, batch: &Path) -> Value {
        self.aws(&[
            "route53",
            "change-resource-record-sets",
            "--hosted-zone-id",
            zone,
            "--change-batch",
            &format!("file://{}", batch.display()),
        ])
    }
}
