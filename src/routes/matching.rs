//! Host and path matchers shared by the three kinds, and the ranks that pick the most specific match.
//!
//! Hosts given to the matchers are already normalized by the caller (lowercase, no port, no trailing
//! dot); the patterns are normalized here when built.

use regex::Regex;

/// Which hosts a rule serves.
#[derive(Clone, Debug)]
pub(crate) enum HostPattern {
    /// One host, compared exactly.
    Exact(String),
    /// `*.example.com`: `suffix` is `.example.com`. `one_label` is the Ingress rule (exactly one label
    /// in place of `*`); Gateway API and Istio let `*` stand for one or more labels.
    Wildcard { suffix: String, one_label: bool },
    /// No host given (or Istio's `*`): every host.
    Any,
}

impl HostPattern {
    /// Builds a pattern from a rule's host; `one_label` says which wildcard rule applies.
    /// Errors (as a reason) on a `*` anywhere but as the whole first label.
    pub(crate) fn parse(host: &str, one_label: bool) -> Result<HostPattern, String> {
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return Ok(HostPattern::Any);
        }
        if let Some(rest) = host.strip_prefix('*') {
            if rest.starts_with('.') && rest.len() > 1 && !rest.contains('*') {
                return Ok(HostPattern::Wildcard { suffix: rest.to_string(), one_label });
            }
            return Err(format!(
                "invalid wildcard host {host:?}: `*` must be the whole first label, as in `*.example.com`"
            ));
        }
        if host.contains('*') {
            return Err(format!("invalid host {host:?}: `*` is only allowed as the whole first label"));
        }
        Ok(HostPattern::Exact(host))
    }

    /// Does this pattern serve `host`?
    pub(crate) fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard { suffix, one_label } => match host.strip_suffix(suffix.as_str()) {
                Some(label) if !label.is_empty() => !*one_label || !label.contains('.'),
                _ => false,
            },
            HostPattern::Any => true,
        }
    }

    /// Higher is more specific: exact over wildcard (a longer suffix first) over any.
    pub(crate) fn rank(&self) -> (u8, usize) {
        match self {
            HostPattern::Exact(_) => (3, 0),
            HostPattern::Wildcard { suffix, .. } => (2, suffix.len()),
            HostPattern::Any => (1, 0),
        }
    }
}

/// Which paths a rule serves.
#[derive(Clone, Debug)]
pub(crate) enum PathPattern {
    /// The whole path, exactly (Istio's `ignoreUriCase` makes it ASCII case-insensitive).
    Exact { path: String, ignore_case: bool },
    /// Ingress `Prefix` / Gateway `PathPrefix`: whole `/`-separated elements. Stored without trailing
    /// slashes, so `/` is stored as the empty string and matches everything.
    ElementPrefix(String),
    /// Istio `prefix`: a plain string prefix (`/usrv` matches `/usrv-expand`).
    StringPrefix { prefix: String, ignore_case: bool },
    /// A regular expression that must match the whole path.
    Regex(Regex),
    /// Ingress `defaultBackend`: every path, ranked below every other kind of match.
    Fallback,
}

impl PathPattern {
    /// An element-wise prefix; a trailing slash in the rule is ignored.
    pub(crate) fn element_prefix(prefix: &str) -> PathPattern {
        PathPattern::ElementPrefix(prefix.trim_end_matches('/').to_string())
    }

    /// A regex anchored at both ends; the error is the regex crate's reason about the pattern as written.
    pub(crate) fn full_regex(pattern: &str) -> Result<PathPattern, String> {
        let invalid = |e: regex::Error| format!("invalid regex {pattern:?}: {}", regex_reason(&e));
        Regex::new(pattern).map_err(invalid)?;
        Regex::new(&format!("^(?:{pattern})$")).map(PathPattern::Regex).map_err(invalid)
    }

    /// Does this pattern serve `path` (the request path without query string)?
    pub(crate) fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Exact { path: p, ignore_case: false } => p == path,
            PathPattern::Exact { path: p, ignore_case: true } => p.eq_ignore_ascii_case(path),
            PathPattern::ElementPrefix(p) => {
                p.is_empty()
                    || (path.starts_with(p.as_str())
                        && (path.len() == p.len() || path.as_bytes().get(p.len()) == Some(&b'/')))
            }
            PathPattern::StringPrefix { prefix, ignore_case: false } => path.starts_with(prefix.as_str()),
            PathPattern::StringPrefix { prefix, ignore_case: true } => {
                path.as_bytes().get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
            }
            PathPattern::Regex(re) => re.is_match(path),
            PathPattern::Fallback => true,
        }
    }

    /// Higher is more specific: exact over a longer prefix over a shorter prefix over regex over the
    /// default backend.
    pub(crate) fn rank(&self) -> (u8, usize) {
        match self {
            PathPattern::Exact { .. } => (4, 0),
            PathPattern::ElementPrefix(p) => (3, p.len()),
            PathPattern::StringPrefix { prefix, .. } => (3, prefix.len()),
            PathPattern::Regex(_) => (2, 0),
            PathPattern::Fallback => (1, 0),
        }
    }
}

impl std::fmt::Display for HostPattern {
    /// As a route names it: `api.example.com`, `*.example.com`, `*` for every host.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Wildcard { suffix, .. } => write!(f, "*{suffix}"),
            HostPattern::Any => f.write_str("*"),
        }
    }
}

impl std::fmt::Display for PathPattern {
    /// `=/exact`, `/prefix` (elements), `/string*` (a string prefix), `~regex`, `(default backend)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathPattern::Exact { path, .. } => write!(f, "={path}"),
            PathPattern::ElementPrefix(p) if p.is_empty() => f.write_str("/"),
            PathPattern::ElementPrefix(p) => f.write_str(p),
            PathPattern::StringPrefix { prefix, .. } => write!(f, "{prefix}*"),
            PathPattern::Regex(re) => {
                let s = re.as_str();
                write!(f, "~{}", s.strip_prefix("^(?:").and_then(|r| r.strip_suffix(")$")).unwrap_or(s))
            }
            PathPattern::Fallback => f.write_str("(default backend)"),
        }
    }
}

/// The `error: …` line of a regex syntax error (the rest is a caret diagram), else the whole message.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines().rev().find_map(|l| l.trim().strip_prefix("error: ")).map_or_else(|| one_line(&text), str::to_string)
}

/// Folds a multi-line message (regex errors draw a caret diagram) into one line.
pub(crate) fn one_line(text: &str) -> String {
    text.split('\n').map(str::trim_end).filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingress_host(p: &str) -> HostPattern {
        HostPattern::parse(p, true).unwrap()
    }

    /// Kubernetes Ingress docs, "Hostname wildcards" table.
    #[test]
    fn ingress_host_wildcard_table() {
        let cases = [
            ("*.foo.com", "bar.foo.com", true),
            ("*.foo.com", "baz.bar.foo.com", false),
            ("*.foo.com", "foo.com", false),
            ("foo.bar.com", "foo.bar.com", true),
            ("foo.bar.com", "bar.foo.com", false),
        ];
        for (rule, host, want) in cases {
            assert_eq!(ingress_host(rule).matches(host), want, "{rule} vs {host}");
        }
    }

    /// Gateway API: a wildcard hostname matches one or more labels, never the bare suffix.
    #[test]
    fn gateway_host_wildcard_matches_several_labels() {
        let p = HostPattern::parse("*.example.com", false).unwrap();
        assert!(p.matches("foo.example.com"));
        assert!(p.matches("foo.bar.example.com"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("fooexample.com"));
    }

    #[test]
    fn host_patterns_are_normalized_and_validated() {
        assert!(
            matches!(HostPattern::parse("Shop.Example.COM.", true).unwrap(), HostPattern::Exact(h) if h == "shop.example.com")
        );
        assert!(matches!(HostPattern::parse("", true).unwrap(), HostPattern::Any));
        assert!(HostPattern::parse("foo.*.com", true).is_err());
        assert!(HostPattern::parse("*foo.com", true).is_err());
        assert!(HostPattern::parse("*.", true).is_err());
    }

    /// Kubernetes Ingress docs, "Examples" table of path matching (single rules).
    #[test]
    fn ingress_path_table() {
        let prefix = PathPattern::element_prefix;
        let exact = |p: &str| PathPattern::Exact { path: p.to_string(), ignore_case: false };
        let cases = [
            (prefix("/"), "/", true),
            (prefix("/"), "/anything/at/all", true),
            (exact("/foo"), "/foo", true),
            (exact("/foo"), "/bar", false),
            (exact("/foo"), "/foo/", false),
            (exact("/foo/"), "/foo", false),
            (exact("/foo"), "/FOO", false),
            (prefix("/foo"), "/foo", true),
            (prefix("/foo"), "/foo/", true),
            (prefix("/foo/"), "/foo", true),
            (prefix("/foo/"), "/foo/", true),
            (prefix("/aaa/bb"), "/aaa/bbb", false),
            (prefix("/aaa/bbb"), "/aaa/bbb", true),
            (prefix("/aaa/bbb/"), "/aaa/bbb", true),
            (prefix("/aaa/bbb"), "/aaa/bbb/", true),
            (prefix("/aaa/bbb"), "/aaa/bbb/ccc", true),
            (prefix("/aaa/bbb"), "/aaa/bbbxyz", false),
            (prefix("/aaa"), "/ccc", false),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(pattern.matches(path), want, "{pattern:?} vs {path}");
        }
    }

    #[test]
    fn string_prefix_and_regex() {
        let p = PathPattern::StringPrefix { prefix: "/usrv".into(), ignore_case: false };
        assert!(p.matches("/usrv-expand"));
        assert!(p.matches("/usrv/x"));
        assert!(!p.matches("/USRV"));
        let p = PathPattern::StringPrefix { prefix: "/usrv".into(), ignore_case: true };
        assert!(p.matches("/USRV-x"));
        assert!(!p.matches("/us"));
        let re = PathPattern::full_regex("/api/v[0-9]+").unwrap();
        assert!(re.matches("/api/v2"));
        assert!(!re.matches("/api/v2/users"), "regex must match the whole path");
        assert!(!re.matches("/x/api/v2"));
        let err = PathPattern::full_regex("/api/(").unwrap_err();
        assert_eq!(err, "invalid regex \"/api/(\": unclosed group");
    }

    #[test]
    fn ranks_order_exact_prefix_regex_fallback() {
        let exact = PathPattern::Exact { path: "/a".into(), ignore_case: false }.rank();
        let long = PathPattern::element_prefix("/aaa/bbb").rank();
        let short = PathPattern::element_prefix("/aaa").rank();
        let root = PathPattern::element_prefix("/").rank();
        let re = PathPattern::full_regex(".*").unwrap().rank();
        let fallback = PathPattern::Fallback.rank();
        assert!(exact > long && long > short && short > root && root > re && re > fallback);
    }
}
