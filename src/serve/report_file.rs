//! Where `--report-file` lives: a local file, restored from and rewritten in place; or an S3
//! object per replica (`PREFIX/<replica-id>.json`), downloaded at start into a local spool file,
//! restored from it, and uploaded after each write. S3 that cannot be reached, a bucket that does
//! not exist or a broken object never keep the proxy from serving: the outcome says why, and the
//! recording continues under a key of its own so the object that could not be read is not
//! overwritten.

use std::path::PathBuf;
use std::time::Duration;

use crate::base::time::unix_ms;
use crate::dns::book::DnsBook;
use crate::record::Ledger;
use crate::report::file::{set_aside, ReportFile};
use crate::report::restore::{restore, Restored};
use crate::report::writer::Upload;
use crate::s3::client::S3;

/// Longest wait at start for the last report in S3 (the proxy is not serving yet).
const RESTORE_TIMEOUT: Duration = Duration::from_secs(30);

/// What reading back the last `--report-file` at start did.
#[derive(Debug)]
pub(super) enum RestoreOutcome {
    /// Not recording, no `--report-file`, or no such file yet: a fresh start.
    Fresh,
    /// The file was read back: counting continues from it.
    Restored(Restored),
    /// The file could not be read; it was moved aside (when it could be) and counting starts
    /// fresh. A broken file never keeps the proxy from serving.
    Failed { error: String, set_aside: Option<String> },
}

impl RestoreOutcome {
    /// When the recording that this run continues started.
    pub fn started_at_ms(&self, now_ms: u64) -> u64 {
        match self {
            RestoreOutcome::Restored(r) if r.started_at_ms > 0 => r.started_at_ms.min(now_ms),
            _ => now_ms,
        }
    }
}

/// Where the report writer writes.
pub(super) struct Target {
    /// The file it writes (with S3: the spool it uploads).
    pub path: PathBuf,
    /// With S3: the object.
    pub upload: Option<Upload>,
}

/// The object name of a replica's report: its id, with what a key should not hold replaced.
fn object_name(replica_id: &str) -> String {
    let safe: String = replica_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    format!("{safe}.json")
}

/// Reads the last report back into `ledger` (calling `reset` first when a half-read file must be
/// dropped), and says where the writer goes from now on.
pub(super) fn restore_and_target(
    file: &ReportFile,
    replica_id: &str,
    rt: &tokio::runtime::Runtime,
    ledger: &Ledger,
    dns: Option<&DnsBook>,
    reset: &mut dyn FnMut(),
) -> (RestoreOutcome, Target) {
    match file {
        ReportFile::Path(path) => {
            let outcome = match restore(path, ledger, dns) {
                Ok(None) => RestoreOutcome::Fresh,
                Ok(Some(restored)) => RestoreOutcome::Restored(restored),
                Err(e) => {
                    // Whatever was read before the error is dropped with the half-filled ledger.
                    reset();
                    RestoreOutcome::Failed {
                        error: e.to_string(),
                        set_aside: set_aside(path).ok().map(|p| p.display().to_string()),
                    }
                }
            };
            (outcome, Target { path: path.clone(), upload: None })
        }
        ReportFile::S3(at) => {
            let name = object_name(replica_id);
            let spool = std::env::temp_dir().join(format!("cutover-report-{name}"));
            let s3 = rt.block_on(S3::from_env());
            let key = at.key(&name);
            let got = rt.block_on(async {
                tokio::time::timeout(RESTORE_TIMEOUT, s3.get_to_file(&at.bucket, &key, &spool)).await
            });
            let (outcome, key) = match got {
                Ok(Ok(false)) => (RestoreOutcome::Fresh, key),
                Ok(Ok(true)) => match restore(&spool, ledger, dns) {
                    Ok(Some(restored)) => (RestoreOutcome::Restored(restored), key),
                    Ok(None) => (RestoreOutcome::Fresh, key),
                    Err(e) => {
                        reset();
                        // Set aside in the bucket (not `.json`: a merge of the prefix skips it).
                        let aside = format!("{key}.broken-{}", unix_ms() / 1000);
                        let put = rt.block_on(async {
                            tokio::time::timeout(RESTORE_TIMEOUT, s3.put_file(&at.bucket, &aside, &spool)).await
                        });
                        match put {
                            Ok(Ok(())) => {
                                let set_aside = Some(format!("s3://{}/{aside}", at.bucket));
                                (RestoreOutcome::Failed { error: e.to_string(), set_aside }, key)
                            }
                            // Not copied aside: the object stays, this recording takes a key of its own.
                            _ => {
                                (RestoreOutcome::Failed { error: e.to_string(), set_aside: None }, fresh_key(at, &name))
                            }
                        }
                    }
                },
                Ok(Err(e)) => (RestoreOutcome::Failed { error: e.to_string(), set_aside: None }, fresh_key(at, &name)),
                Err(_) => (
                    RestoreOutcome::Failed {
                        error: format!("GET s3://{}/{key}: no answer within {RESTORE_TIMEOUT:?}", at.bucket),
                        set_aside: None,
                    },
                    fresh_key(at, &name),
                ),
            };
            let upload = Upload { s3, bucket: at.bucket.clone(), key };
            (outcome, Target { path: spool, upload: Some(upload) })
        }
    }
}

/// A key of this recording's own, when the last report could not be read: the object that may
/// still hold it is left as it is, and a merge of the prefix counts both recordings.
fn fresh_key(at: &crate::s3::S3Location, name: &str) -> String {
    let stem = name.trim_end_matches(".json");
    at.key(&format!("{stem}-{}.json", unix_ms()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_keys_of_the_prefix_itself() {
        assert_eq!(object_name("cutover-proxy-7d9f-abcde"), "cutover-proxy-7d9f-abcde.json");
        assert_eq!(object_name("team/a b"), "team_a_b.json");
    }
}
