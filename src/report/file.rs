//! Writing report files atomically (temp file in the same folder, fsync, rename, fsync the folder)
//! so a crash mid-write never leaves a truncated report; reading them back.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::model::Report;

/// A report file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportFileError {
    /// I/O failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not a report.
    #[error("{}: not a cutover-proxy report: {why}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's reason (with line and column).
        why: String,
    },
}

/// Writes `contents` to `path` atomically.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), ReportFileError> {
    let io = |source| ReportFileError::Io { path: path.to_owned(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "report".into());
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{seq}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Reads a report (JSON, schema v1).
pub fn read(path: &Path) -> Result<Report, ReportFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportFileError::Io { path: path.to_owned(), source })?;
    serde_json::from_str(&text).map_err(|e| ReportFileError::Parse { path: path.to_owned(), why: e.to_string() })
}

/// Writes a Route53 export into `dir`: `<ZONEID>.json` per zone (`<ZONEID>.partN.json` for a
/// zone's further batches beyond 1 000 changes), `externaldns-patch.sh` when some
/// records are owned by ExternalDNS, `skipped.json` listing hosts without a change. Returns the
/// files written.
pub fn write_export(dir: &Path, export: &super::changes::Export) -> Result<Vec<PathBuf>, ReportFileError> {
    let io = |e: std::io::Error| ReportFileError::Io { path: dir.to_owned(), source: e };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut written = Vec::new();
    for (zone, batch, part) in
        export.batches.iter().flat_map(|(z, parts)| parts.iter().enumerate().map(move |(i, b)| (z, b, i + 1)))
    {
        let path = dir.join(if part == 1 { format!("{zone}.json") } else { format!("{zone}.part{part}.json") });
        let mut text = serde_json::to_string_pretty(batch).unwrap_or_default();
        text.push('\n');
        write_atomic(&path, text.as_bytes())?;
        written.push(path);
    }
    if let Some(script) = &export.externaldns_script {
        let path = dir.join("externaldns-patch.sh");
        write_atomic(&path, script.as_bytes())?;
        written.push(path);
    }
    let path = dir.join("skipped.json");
    if export.skipped.is_empty() {
        let _ = std::fs::remove_file(&path);
    } else {
        let mut text = serde_json::to_string_pretty(&export.skipped).unwrap_or_default();
        text.push('\n');
        write_atomic(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}
