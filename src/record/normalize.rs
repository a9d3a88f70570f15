//! Pure functions that turn a request path into its ledger key, the path template, and the globs
//! of the ignore rules. Host names are normalized in `base::host`. Rules (docs/REPORT.md):
//!
//! - Path: query dropped; a segment becomes `{id}` when it is all digits, a UUID, hex of 16+ chars,
//!   an opaque token of 20+ chars mixing letters and digits, or matches an `--id-pattern` regex.
//!   At most [`MAX_SEGMENTS`] segments and [`MAX_PATH_LEN`] bytes are kept (then `/…`).

/// Segments kept in a template.
pub const MAX_SEGMENTS: usize = 32;
/// Bytes kept in a template.
pub const MAX_PATH_LEN: usize = 256;

/// Turns request paths into templates: ids become `{id}`.
#[derive(Debug, Default, Clone)]
pub struct Templater {
    extra: Vec<regex::Regex>,
}

impl Templater {
    /// With extra whole-segment patterns (from `--id-pattern`).
    pub fn new(extra: Vec<regex::Regex>) -> Self {
        Self { extra }
    }

    /// Writes the template of `path` (query already dropped or not) into `out`.
    pub fn template_into(&self, path: &str, out: &mut String) {
        out.clear();
        let path = path.split(['?', '#']).next().unwrap_or("");
        if !path.starts_with('/') {
            // `*` (OPTIONS), absolute-form leftovers: keep short and recognizable.
            out.push_str(if path.is_empty() { "/" } else { "(non-path)" });
            return;
        }
        for (segments, seg) in path[1..].split('/').enumerate() {
            if segments == MAX_SEGMENTS || out.len() >= MAX_PATH_LEN {
                out.push_str("/…");
                return;
            }
            out.push('/');
            if self.is_id(seg) {
                out.push_str("{id}");
            } else {
                let room = MAX_PATH_LEN.saturating_sub(out.len());
                if seg.len() > room {
                    let mut cut = room;
                    while !seg.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    out.push_str(&seg[..cut]);
                    out.push('…');
                    return;
                }
                out.push_str(seg);
            }
        }
    }

    /// The template of `path`.
    #[cfg(test)]
    pub fn template(&self, path: &str) -> String {
        let mut out = String::with_capacity(path.len().min(MAX_PATH_LEN + 8));
        self.template_into(path, &mut out);
        out
    }

    fn is_id(&self, seg: &str) -> bool {
        is_builtin_id(seg)
            || self.extra.iter().any(|re| re.find(seg).is_some_and(|m| m.start() == 0 && m.end() == seg.len()))
    }
}

/// The built-in id rules for one path segment.
pub fn is_builtin_id(seg: &str) -> bool {
    let b = seg.as_bytes();
    if b.is_empty() {
        return false;
    }
    if b.iter().all(u8::is_ascii_digit) {
        return true;
    }
    if is_uuid(b) {
        return true;
    }
    if b.len() >= 16 && b.iter().all(u8::is_ascii_hexdigit) {
        return true;
    }
    if b.len() >= 20 {
        let token_chars = b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'=' | b'.' | b'~'));
        let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
        let letters = b.iter().filter(|c| c.is_ascii_alphabetic()).count();
        return token_chars && digits >= 2 && letters >= 2;
    }
    false
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

/// A glob with `*` (any run, `/` included) and `?` (one character), for `--ignore-path` and
/// `--ignore-user-agent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl std::str::FromStr for Glob {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("an empty glob matches nothing".into());
        }
        Ok(Glob(s.to_owned()))
    }
}

impl std::fmt::Display for Glob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Glob {
    /// Whether `text` matches the whole glob.
    pub fn matches(&self, text: &str) -> bool {
        glob_match(self.0.as_bytes(), text.as_bytes())
    }
}

fn glob_match(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let t = Templater::default();
        let cases = [
            ("/v1/users/123/orders/9f8e7d6c5b4a39281706f5e4d3c2b1a0", "/v1/users/{id}/orders/{id}"),
            ("/v1/users/123?token=abc", "/v1/users/{id}"),
            ("/items/550e8400-e29b-41d4-a716-446655440000", "/items/{id}"),
            ("/s/eyJhbGciOiJIUzI1NiJ9abc123DEF456", "/s/{id}"),
            ("/static/app.min.js", "/static/app.min.js"),
            ("/healthz", "/healthz"),
            ("/", "/"),
            ("", "/"),
            ("*", "(non-path)"),
            ("/a//b/", "/a//b/"),
            ("/v2/dead", "/v2/dead"),
            ("/blog/my-very-long-article-title-about-things", "/blog/my-very-long-article-title-about-things"),
            ("/sha/0123456789abcdef", "/sha/{id}"),
        ];
        for (path, want) in cases {
            assert_eq!(t.template(path), want, "{path}");
        }
        let deep = "/a".repeat(100);
        assert!(t.template(&deep).ends_with("/…"));
        let long = format!("/{}", "x".repeat(1000));
        assert!(t.template(&long).len() <= MAX_PATH_LEN + 4);
        let extra = Templater::new(vec![regex::Regex::new("[a-z]{2}-[A-Z]{2}").unwrap()]);
        assert_eq!(extra.template("/en-US/docs"), "/{id}/docs");
        assert_eq!(extra.template("/xen-USx/docs"), "/xen-USx/docs");
    }

    #[test]
    fn globs() {
        let g = |p: &str, t: &str| p.parse::<Glob>().unwrap().matches(t);
        assert!(g("ELB-HealthChecker/*", "ELB-HealthChecker/2.0"));
        assert!(!g("ELB-HealthChecker/*", "Mozilla/5.0"));
        assert!(g("/healthz", "/healthz"));
        assert!(g("*/healthz", "/api/healthz"));
        assert!(g("/ready?", "/readyz"));
        assert!(!g("/ready?", "/ready"));
        assert!(g("*", ""));
        assert!(g("kube-probe/*", "kube-probe/1.29"));
    }
}
