//! Typed access to a parsed object (`serde_json::Value`) that names the field when a shape is wrong.
//!
//! The kind parsers walk objects by hand so an error can say `spec.rules[0].http.paths[1].pathType`.
//! A YAML `key:` with no value is null, and null is treated as absent everywhere.

use serde_json::{Map, Value};

use super::RouteKind;
use super::RouteRef;

/// A wrong field inside one object; the loader adds the file and document.
#[derive(Debug)]
pub(crate) struct FieldError {
    /// JSON-path-like location, e.g. `spec.rules[0].host`.
    pub field: String,
    /// Why it is refused.
    pub reason: String,
}

/// Result of walking one object.
pub(crate) type FieldResult<T> = Result<T, FieldError>;

/// Shorthand to build a [`FieldError`].
pub(crate) fn field_error(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError { field: field.to_string(), reason: reason.into() }
}

/// `spec` + `rules` → `spec.rules`.
pub(crate) fn child(field: &str, key: &str) -> String {
    if field.is_empty() {
        key.to_string()
    } else {
        format!("{field}.{key}")
    }
}

/// `spec.rules` + 2 → `spec.rules[2]`.
pub(crate) fn item(field: &str, index: usize) -> String {
    format!("{field}[{index}]")
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn wrong_type(field: &str, expected: &str, found: &Value) -> FieldError {
    field_error(field, format!("expected {expected}, found {}", type_name(found)))
}

/// The value at `key`, with null read as absent.
fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// `value` as a mapping, or an error naming `field`.
pub(crate) fn as_object<'a>(value: &'a Value, field: &str) -> FieldResult<&'a Map<String, Value>> {
    value.as_object().ok_or_else(|| wrong_type(field, "a mapping", value))
}

/// `value` as a string, or an error naming `field`.
pub(crate) fn as_str<'a>(value: &'a Value, field: &str) -> FieldResult<&'a str> {
    value.as_str().ok_or_else(|| wrong_type(field, "a string", value))
}

/// Optional mapping at `obj[key]`; `field` is the path of `obj`.
pub(crate) fn opt_object<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> FieldResult<Option<&'a Map<String, Value>>> {
    present(obj, key).map(|v| as_object(v, &child(field, key))).transpose()
}

/// Optional list at `obj[key]`; `field` is the path of `obj`.
pub(crate) fn opt_array<'a>(obj: &'a Map<String, Value>, key: &str, field: &str) -> FieldResult<Option<&'a [Value]>> {
    present(obj, key)
        .map(|v| v.as_array().map(Vec::as_slice).ok_or_else(|| wrong_type(&child(field, key), "a list", v)))
        .transpose()
}

/// Optional string at `obj[key]`; `field` is the path of `obj`.
pub(crate) fn opt_str<'a>(obj: &'a Map<String, Value>, key: &str, field: &str) -> FieldResult<Option<&'a str>> {
    present(obj, key).map(|v| as_str(v, &child(field, key))).transpose()
}

/// Optional boolean at `obj[key]`; `field` is the path of `obj`.
pub(crate) fn opt_bool(obj: &Map<String, Value>, key: &str, field: &str) -> FieldResult<Option<bool>> {
    present(obj, key).map(|v| v.as_bool().ok_or_else(|| wrong_type(&child(field, key), "a boolean", v))).transpose()
}

/// Reads `metadata.name` (required) and `metadata.namespace` (absent → `default`, as `kubectl apply`
/// without `-n` would place it).
pub(crate) fn object_ref(obj: &Map<String, Value>, kind: RouteKind) -> FieldResult<RouteRef> {
    let meta = opt_object(obj, "metadata", "")?.ok_or_else(|| field_error("metadata", "missing"))?;
    let name = opt_str(meta, "name", "metadata")?.ok_or_else(|| field_error("metadata.name", "missing"))?;
    let namespace = opt_str(meta, "namespace", "metadata")?.unwrap_or("default");
    Ok(RouteRef { namespace: namespace.to_string(), name: name.to_string(), kind })
}
