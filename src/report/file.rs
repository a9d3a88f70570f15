//! Writing report files atomically (temp file in the same folder, fsync, rename, fsync the folder)
//! so a crash mid-write never leaves a truncated report; reading them back, whole or host by host
//! (a report of any size is read without holding its hosts).

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::model::{HostReport, Report, SCHEMA, SCHEMA_V1};
use crate::s3::S3Location;

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
    /// A report of a schema this version does not read.
    #[error("{}: schema `{schema}` is not {SCHEMA} (or {SCHEMA_V1})", path.display())]
    Schema { path: PathBuf, schema: String },
}

/// Where `--report-file` keeps the report: a file, or one object per replica under an S3 prefix
/// (`PREFIX/<replica-id>.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportFile {
    Path(PathBuf),
    S3(S3Location),
}

impl std::str::FromStr for ReportFile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if S3Location::is_s3(s) {
            return s.parse().map(ReportFile::S3);
        }
        if s.trim().is_empty() {
            return Err("an empty path".into());
        }
        Ok(ReportFile::Path(PathBuf::from(s)))
    }
}

impl std::fmt::Display for ReportFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportFile::Path(p) => write!(f, "{}", p.display()),
            ReportFile::S3(at) => write!(f, "{at}"),
        }
    }
}

/// Writes `contents` to `path` atomically.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), ReportFileError> {
    write_atomic_with(path, |w| w.write_all(contents))
}

/// Writes what `write` produces to `path` atomically, streamed through a buffer.
pub fn write_atomic_with<T>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<T>,
) -> Result<T, ReportFileError> {
    let io = |source| ReportFileError::Io { path: path.to_owned(), source };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "report".into());
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{seq}", std::process::id()));
    let result = (|| {
        let mut f = BufWriter::with_capacity(256 * 1024, std::fs::File::create(&tmp)?);
        let done = write(&mut f)?;
        let f = f.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(done)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Reads a report host by host: `on_host` gets each host as it is parsed, the header (the
/// report without its hosts) comes back. A report of another schema is refused before any host
/// reaches `on_host` (reports name their schema first).
pub fn read_streaming(path: &Path, on_host: impl FnMut(HostReport)) -> Result<Report, ReportFileError> {
    let file = std::fs::File::open(path).map_err(|source| ReportFileError::Io { path: path.to_owned(), source })?;
    read_from(BufReader::with_capacity(256 * 1024, file), path, on_host)
}

/// [`read_streaming`] of a report read from anywhere (a peer's answer); `origin` names it in errors.
pub fn read_from(
    reader: impl std::io::Read,
    origin: &Path,
    mut on_host: impl FnMut(HostReport),
) -> Result<Report, ReportFileError> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    let parse = |e: serde_json::Error| ReportFileError::Parse { path: origin.to_owned(), why: e.to_string() };
    let header = match (ReportSeed { on_host: &mut on_host }).deserialize(&mut de) {
        Ok(h) => h,
        Err(e) => {
            return Err(match schema_of(&e) {
                Some(schema) => ReportFileError::Schema { path: origin.to_owned(), schema },
                None => parse(e),
            })
        }
    };
    de.end().map_err(parse)?;
    serde_json::from_value(Value::Object(header)).map_err(parse)
}

/// The marker of a refused schema in a parse error.
const SCHEMA_REFUSED: &str = "schema refused: ";

fn schema_of(e: &serde_json::Error) -> Option<String> {
    let text = e.to_string();
    let rest = text.split(SCHEMA_REFUSED).nth(1)?;
    Some(rest.split(" at line ").next().unwrap_or(rest).to_owned())
}

/// The report's object: every field but `hosts` kept as JSON, `hosts` handed out one by one.
struct ReportSeed<'a, F> {
    on_host: &'a mut F,
}

impl<'de, F: FnMut(HostReport)> DeserializeSeed<'de> for ReportSeed<'_, F> {
    type Value = Map<String, Value>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: FnMut(HostReport)> Visitor<'de> for ReportSeed<'_, F> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a cutover-proxy report (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut header = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "hosts" {
                map.next_value_seed(HostsSeed { on_host: &mut *self.on_host })?;
                header.insert(key, Value::Array(Vec::new()));
                continue;
            }
            let value: Value = map.next_value()?;
            if key == "schema" && !matches!(value.as_str(), Some(SCHEMA | SCHEMA_V1)) {
                let schema = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
                return Err(serde::de::Error::custom(format!("{SCHEMA_REFUSED}{schema}")));
            }
            header.insert(key, value);
        }
        if !header.contains_key("schema") {
            return Err(serde::de::Error::missing_field("schema"));
        }
        Ok(header)
    }
}

struct HostsSeed<'a, F> {
    on_host: &'a mut F,
}

impl<'de, F: FnMut(HostReport)> DeserializeSeed<'de> for HostsSeed<'_, F> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(HostReport)> Visitor<'de> for HostsSeed<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the report's hosts (a JSON array)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(host) = seq.next_element::<HostReport>()? {
            (self.on_host)(host);
        }
        Ok(())
    }
}

/// Renames a report file that cannot be read (`report.json.broken-<unix time>`), so the next
/// write does not destroy what an operator may still recover from it.
pub fn set_aside(path: &Path) -> std::io::Result<PathBuf> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "report".into());
    let aside = path.with_file_name(format!("{name}.broken-{}", crate::base::time::unix_ms() / 1000));
    std::fs::rename(path, &aside)?;
    Ok(aside)
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
