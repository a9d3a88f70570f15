//! Reading route files: directories (recursive, hidden entries skipped), JSON or YAML detected by
//! content, multi-document YAML, `List` objects, and dispatch to the kind parsers.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::walk::FieldError;
use super::{httproute, ingress, virtualservice, RouteError, RouteTable};

impl RouteTable {
    /// Loads every file (directories recursively; skip hidden files/dirs; take files ending .yaml .yml
    /// .json, and any file given directly by path). Files load in the order given, directory entries
    /// in name order; the first broken file stops the load.
    pub fn load(paths: &[PathBuf]) -> Result<RouteTable, RouteError> {
        let mut files = Vec::new();
        let mut seen_dirs = HashSet::new();
        for path in paths {
            collect(path, true, &mut files, &mut seen_dirs)?;
        }
        let mut table = RouteTable::empty();
        for file in files {
            let bytes = fs::read(&file).map_err(|e| file_error(&file, format!("cannot read: {e}")))?;
            let text = String::from_utf8(bytes).map_err(|_| file_error(&file, "not UTF-8 text"))?;
            table.merge(RouteTable::parse_text(&file, &text)?);
        }
        Ok(table)
    }

    /// Parses one file's text (JSON or YAML, single doc, multi-doc, or a `kind: List` with `items`).
    /// `source` only names the file in errors. Kinds other than the three are skipped.
    pub fn parse_text(source: &Path, text: &str) -> Result<RouteTable, RouteError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let docs = if matches!(text.trim_start().chars().next(), Some('{' | '[')) {
            // JSON; a YAML flow mapping also starts with `{`, so fall back to YAML before failing.
            json_documents(source, text).or_else(|json_err| yaml_documents(source, text).map_err(|_| json_err))?
        } else {
            yaml_documents(source, text)?
        };
        let mut table = RouteTable::empty();
        for (index, doc) in docs.iter().enumerate() {
            match doc {
                Value::Object(obj) => match list_items(obj) {
                    Some(items) => add_items(&mut table, source, items)?,
                    None => add_object(&mut table, source, index, obj)?,
                },
                Value::Array(items) => add_items(&mut table, source, items)?,
                // null (empty or comment-only document) and scalars: nothing to read.
                _ => {}
            }
        }
        Ok(table)
    }
}

/// A file-level error (document 0, no field).
fn file_error(path: &Path, reason: impl Into<String>) -> RouteError {
    RouteError { path: path.to_path_buf(), document: 0, field: String::new(), reason: reason.into() }
}

fn is_route_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["yaml", "yml", "json"].iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Expands `path` into files: a directory recursively in name order, skipping hidden entries and
/// directories already visited (symlink loops); a file given directly is taken whatever its name.
fn collect(path: &Path, direct: bool, out: &mut Vec<PathBuf>, seen: &mut HashSet<PathBuf>) -> Result<(), RouteError> {
    let meta = fs::metadata(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    if !meta.is_dir() {
        if direct || is_route_file(path) {
            out.push(path.to_path_buf());
        }
        return Ok(());
    }
    let canonical = fs::canonicalize(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    if !seen.insert(canonical) {
        return Ok(());
    }
    let entries = fs::read_dir(path).map_err(|e| file_error(path, format!("cannot list directory: {e}")))?;
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| file_error(path, format!("cannot list directory: {e}")))?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            children.push(entry.path());
        }
    }
    children.sort();
    for child in children {
        collect(&child, false, out, seen)?;
    }
    Ok(())
}

/// All JSON values in the text (usually one; `kubectl … -o json` streams may hold several).
fn json_documents(source: &Path, text: &str) -> Result<Vec<Value>, RouteError> {
    let mut docs = Vec::new();
    for (index, doc) in serde_json::Deserializer::from_str(text).into_iter::<Value>().enumerate() {
        docs.push(doc.map_err(|e| RouteError {
            path: source.to_path_buf(),
            document: index,
            field: String::new(),
            reason: format!("invalid JSON: {e}"),
        })?);
    }
    Ok(docs)
}

/// Every YAML document, empty ones included (as null) so the indices are the file's own.
fn yaml_documents(source: &Path, text: &str) -> Result<Vec<Value>, RouteError> {
    let mut docs = Vec::new();
    for (index, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let error = |e: serde_yaml_ng::Error| RouteError {
            path: source.to_path_buf(),
            document: index,
            field: String::new(),
            reason: format!("invalid YAML: {e}"),
        };
        // Return on the first error: after a syntax error the iterator repeats it forever.
        let mut value = serde_yaml_ng::Value::deserialize(doc).map_err(error)?;
        value.apply_merge().map_err(error)?;
        docs.push(yaml_to_json(value));
    }
    Ok(docs)
}

/// YAML value → JSON value: tags dropped, non-string keys written as text, NaN/inf as null.
fn yaml_to_json(value: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (None, Some(u), _) => Value::from(u),
            (None, None, f) => f.and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number),
        },
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => Value::Object(map.into_iter().map(|(k, v)| (key_text(k), yaml_to_json(v))).collect()),
        Y::Tagged(tagged) => yaml_to_json(tagged.value),
    }
}

fn key_text(key: serde_yaml_ng::Value) -> String {
    match yaml_to_json(key) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// The `items` of a `List` (`kind: List`, `IngressList`, …), if this object is one.
fn list_items(obj: &Map<String, Value>) -> Option<&[Value]> {
    let kind = obj.get("kind")?.as_str()?;
    if !kind.ends_with("List") {
        return None;
    }
    obj.get("items")?.as_array().map(Vec::as_slice)
}

/// Adds a list's objects; each item's index stands as its document index in errors.
fn add_items(table: &mut RouteTable, source: &Path, items: &[Value]) -> Result<(), RouteError> {
    for (index, item) in items.iter().enumerate() {
        if let Value::Object(obj) = item {
            add_object(table, source, index, obj)?;
        }
    }
    Ok(())
}

/// Dispatches one object by `kind`; other kinds and objects without `kind` are skipped.
fn add_object(
    table: &mut RouteTable,
    source: &Path,
    document: usize,
    obj: &Map<String, Value>,
) -> Result<(), RouteError> {
    let Some(kind) = obj.get("kind").and_then(Value::as_str) else { return Ok(()) };
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let parsed = match kind {
        "Ingress" => ingress::parse(obj, api_version),
        "HTTPRoute" => httproute::parse(obj, api_version),
        "VirtualService" => virtualservice::parse(obj, api_version),
        _ => return Ok(()),
    };
    match parsed {
        Ok(Some(parsed)) => table.add(parsed),
        Ok(None) => {}
        Err(FieldError { field, reason }) => {
            let name = obj.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("?");
            return Err(RouteError {
                path: source.to_path_buf(),
                document,
                field,
                reason: format!("{reason} (in {kind} {name})"),
            });
        }
    }
    Ok(())
}
