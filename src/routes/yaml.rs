//! Documents of a route file or a command's output, JSON or YAML, each with the line it starts
//! on (errors name it). YAML goes through serde-saphyr (pure Rust, with budgets against alias
//! bombs) as YAML 1.2: `yes`, `on` and `y` stay strings, as a host name or path must.

use std::path::Path;

use serde_json::Value;

use super::RouteError;

/// One document and the 1-based line it starts on.
pub(crate) struct Document {
    pub(crate) line: u64,
    pub(crate) value: Value,
}

/// Every document of `text`: JSON (one value or a stream, as `kubectl … -o json` prints) when it
/// starts like JSON, YAML otherwise; a YAML flow mapping also starts with `{`, so JSON falls back
/// to YAML before failing. Empty YAML documents are left out.
pub(crate) fn documents(source: &Path, text: &str) -> Result<Vec<Document>, RouteError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if matches!(text.trim_start().chars().next(), Some('{' | '[')) {
        json_documents(source, text).or_else(|json_err| yaml_documents(source, text).map_err(|_| json_err))
    } else {
        yaml_documents(source, text)
    }
}

fn json_documents(source: &Path, text: &str) -> Result<Vec<Document>, RouteError> {
    let mut docs = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    loop {
        let start = stream.byte_offset();
        let Some(next) = stream.next() else { break };
        let line = line_at(text, start + leading_space(&text[start..]));
        match next {
            Ok(value) => docs.push(Document { line, value }),
            Err(e) => {
                return Err(RouteError {
                    path: source.to_path_buf(),
                    document: docs.len(),
                    line: Some(e.line() as u64),
                    column: Some(e.column() as u64),
                    field: String::new(),
                    reason: format!("invalid JSON: {}", without_position(&e.to_string())),
                })
            }
        }
    }
    Ok(docs)
}

fn yaml_documents(source: &Path, text: &str) -> Result<Vec<Document>, RouteError> {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::AsString;
    options.with_snippet = false;
    options.crop_radius = 0;
    match serde_saphyr::from_multiple_with_options::<serde_saphyr::Spanned<Value>>(text, options) {
        Ok(docs) => Ok(docs.into_iter().map(|d| Document { line: d.defined.line(), value: d.value }).collect()),
        Err(e) => {
            let at = e.location();
            // The document the error is in: count the `---` separators above its line.
            let document = at.map_or(0, |l| documents_before(text, l.line()));
            Err(RouteError {
                path: source.to_path_buf(),
                document,
                line: at.map(|l| l.line()),
                column: at.map(|l| l.column()),
                field: String::new(),
                reason: format!("invalid YAML: {}", without_position(&e.to_string())),
            })
        }
    }
}

/// How many `---` document markers start lines before `line` (1-based), not counting one on the
/// first content line (a file may begin with `---`).
fn documents_before(text: &str, line: u64) -> usize {
    let mut seen_content = false;
    let mut count = 0;
    for l in text.lines().take(line.saturating_sub(1) as usize) {
        if l.starts_with("---") {
            count += usize::from(seen_content);
            seen_content = true;
        } else if !l.trim().is_empty() && !l.trim_start().starts_with('#') {
            seen_content = true;
        }
    }
    count
}

fn leading_space(s: &str) -> usize {
    s.len() - s.trim_start().len()
}

fn line_at(text: &str, offset: usize) -> u64 {
    1 + text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() as u64
}

/// The parser's message without its own ` at line L, column C` (the error names them once).
fn without_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(text: &str) -> Vec<(u64, String)> {
        documents(Path::new("t.yaml"), text).unwrap().into_iter().map(|d| (d.line, d.value.to_string())).collect()
    }

    #[test]
    fn yaml_documents_keep_their_lines_and_yaml_1_2_scalars() {
        let got = docs("a: yes\nb: [on, y]\n---\n---\n# only a comment\n---\nk: &x {p: 1}\nm:\n  <<: *x\n  q: 2\n");
        assert_eq!(got[0], (1, r#"{"a":"yes","b":["on","y"]}"#.to_owned()));
        assert_eq!(got[1], (7, r#"{"k":{"p":1},"m":{"q":2,"p":1}}"#.to_owned()));
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn json_streams_and_flow_yaml() {
        assert_eq!(docs("{\"a\": 1}\n\n{\"b\": 2}"), vec![(1, r#"{"a":1}"#.to_owned()), (3, r#"{"b":2}"#.to_owned())]);
        assert_eq!(docs("{a: 1}"), vec![(1, r#"{"a":1}"#.to_owned())]);
    }

    #[test]
    fn syntax_errors_name_line_column_and_document() {
        let e = documents(Path::new("bad.yaml"), "a: 1\n---\nb: 2\n---\nc: 1\n  d: 2\n").err().unwrap();
        assert_eq!((e.line, e.column), (Some(6), Some(4)), "{e}");
        assert_eq!(e.document, 2);
        assert_eq!(
            e.to_string(),
            "bad.yaml:6:4: document 2: invalid YAML: mapping values are not allowed in this context"
        );
        let e = documents(Path::new("bad.json"), "{\"a\": [1,}").err().unwrap();
        assert!(e.to_string().starts_with("bad.json:1:"), "{e}");
        assert!(e.reason.starts_with("invalid JSON"), "{e}");
    }
}
