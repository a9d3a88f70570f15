//! A report written out as the ledger is read, bounded or whole, in any format: `/report`, the
//! report file. Two passes: the first judges every host and keeps only its name, action and
//! requests (to rank and count them), the second builds the chosen hosts' reports again one by
//! one and hands them to the format's sink. The memory it takes is the ranking, never a copy of
//! the ledger.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, Write};

use super::build::Sources;
use super::model::{Action, Omitted, Tally};
use super::render::{sink, Format, Groups};
use crate::base::time::parse_rfc3339;

/// Hosts a default `/report` lists at most.
pub const DEFAULT_LIMIT: usize = 1000;
/// Bytes of hosts a default `/report` writes at most (the whole stays under 16 MiB).
pub const DEFAULT_MAX_BYTES: usize = 12 << 20;

/// Which hosts a report lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Hosts listed at most (`None`: all).
    pub limit: Option<usize>,
    /// Bytes of hosts written at most (`None`: no bound).
    pub max_bytes: Option<usize>,
    /// Only hosts with these actions (empty: any).
    pub actions: Vec<Action>,
    /// Only this host (normalized name, or a `*.suffix` pattern).
    pub host: Option<String>,
}

impl Selection {
    /// Every host (the report file, `?all=true`).
    pub fn all() -> Self {
        Self { limit: None, max_bytes: None, actions: Vec::new(), host: None }
    }

    /// What `/report` lists by default: the hosts with something to do first, by requests, up to
    /// [`DEFAULT_LIMIT`] and [`DEFAULT_MAX_BYTES`].
    pub fn bounded() -> Self {
        Self { limit: Some(DEFAULT_LIMIT), max_bytes: Some(DEFAULT_MAX_BYTES), actions: Vec::new(), host: None }
    }

    /// From a query string: `limit=N` (`0`: no limit), `action=a,b`, `host=NAME` (`*.suffix` for
    /// a domain), `all=true`.
    pub fn from_query(query: Option<&str>) -> Result<Self, String> {
        let mut sel = Selection::bounded();
        for kv in query.unwrap_or("").split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let v = percent_decoded(v);
            match k {
                "limit" => {
                    let n: usize = v.parse().map_err(|_| format!("limit `{v}` is not a number"))?;
                    sel.limit = (n > 0).then_some(n);
                    if n == 0 {
                        sel.max_bytes = None;
                    }
                }
                "action" => {
                    for a in v.split(',').filter(|a| !a.is_empty()) {
                        sel.actions.push(a.parse()?);
                    }
                }
                "host" => sel.host = Some(v.trim().trim_end_matches('.').to_ascii_lowercase()),
                "all" if v.is_empty() || v == "true" || v == "1" => {
                    sel.limit = None;
                    sel.max_bytes = None;
                }
                "all" => {}
                other => return Err(format!("unknown parameter `{other}` (limit, action, host, all)")),
            }
        }
        Ok(sel)
    }

    fn wants(&self, host: &str, action: Action) -> bool {
        let host_ok = match &self.host {
            None => true,
            Some(pattern) => match pattern.strip_prefix("*.") {
                Some(suffix) => {
                    host.len() > suffix.len()
                        && host.ends_with(suffix)
                        && host[..host.len() - suffix.len()].ends_with('.')
                }
                None => host == pattern,
            },
        };
        host_ok && (self.actions.is_empty() || self.actions.contains(&action))
    }
}

/// `%XX` escapes and `+` decoded (lossily: a query is not trusted to be UTF-8).
fn percent_decoded(v: &str) -> String {
    let b = v.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a written report held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Hosts listed.
    pub listed: u64,
    /// Every host of the ledger, per action (listed or not).
    pub by_action: BTreeMap<Action, Tally>,
    /// Hosts whose last request is within the quiet period.
    pub arriving: u64,
}

/// One host as the first pass keeps it.
struct Ranked {
    host: Box<str>,
    requests: u64,
    action: Action,
}

/// The first pass alone: every host counted per action (the summary of a run without a file).
pub fn tally(src: &Sources<'_>, now: u64) -> Written {
    let quiet_ms = src.settings.quiet_period.as_millis() as u64;
    let mut written = Written::default();
    src.each_host(now, |h| {
        let tally = written.by_action.entry(h.action).or_default();
        tally.hosts += 1;
        tally.requests += h.requests;
        if parse_rfc3339(&h.last_seen).is_some_and(|t| now.saturating_sub(t) < quiet_ms) {
            written.arriving += 1;
        }
    });
    written
}

/// Writes the report of `src` as of `now` in `format`, listing the hosts `sel` chooses.
pub fn write(src: &Sources<'_>, sel: &Selection, format: Format, now: u64, out: &mut dyn Write) -> io::Result<Written> {
    if *sel == Selection::all() && format != Format::Markdown {
        return write_all(src, format, now, out);
    }
    let quiet_ms = src.settings.quiet_period.as_millis() as u64;
    let mut written = Written::default();
    let mut ranked: Vec<Ranked> = Vec::new();
    src.each_host(now, |h| {
        let tally = written.by_action.entry(h.action).or_default();
        tally.hosts += 1;
        tally.requests += h.requests;
        if parse_rfc3339(&h.last_seen).is_some_and(|t| now.saturating_sub(t) < quiet_ms) {
            written.arriving += 1;
        }
        if sel.wants(&h.host, h.action) {
            ranked.push(Ranked { host: h.host.into_boxed_str(), requests: h.requests, action: h.action });
        }
    });
    // The hosts that matter first: something to do, then most requests.
    ranked.sort_by(|a, b| {
        (a.action == Action::None)
            .cmp(&(b.action == Action::None))
            .then(b.requests.cmp(&a.requests))
            .then(a.host.cmp(&b.host))
    });
    let keep = sel.limit.unwrap_or(usize::MAX).min(ranked.len());
    let mut rest = ranked.split_off(keep);
    // Listed by requests (grouped by action for Markdown), as a whole report is.
    match format {
        Format::Markdown => {
            ranked.sort_by(|a, b| a.action.cmp(&b.action).then(b.requests.cmp(&a.requests)).then(a.host.cmp(&b.host)))
        }
        Format::Json | Format::Csv => ranked.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.host.cmp(&b.host))),
    }
    let mut groups: Groups = [(0, 0); Action::COUNT];
    for r in &ranked {
        let g = &mut groups[r.action.index()];
        *g = (g.0 + 1, g.1 + r.requests);
    }
    let header = src.header(now);
    let bytes = Cell::new(0);
    let mut counted = Counting { out, bytes: &bytes };
    let mut s = sink(format, &mut counted);
    s.begin(&header, &groups)?;
    let mut cut_at = ranked.len();
    for (i, r) in ranked.iter().enumerate() {
        let Some(h) = src.host(&r.host, now) else { continue };
        s.host(&h)?;
        written.listed += 1;
        if sel.max_bytes.is_some_and(|max| bytes.get() > max) {
            cut_at = i + 1;
            break;
        }
    }
    rest.extend(ranked.drain(cut_at..));
    let omitted =
        (!rest.is_empty() || sel.limit.is_some() || !sel.actions.is_empty() || sel.host.is_some()).then(|| {
            let mut o = Omitted::default();
            for r in &rest {
                o.add(r.action, r.requests);
            }
            o.why = omitted_why(sel, !rest.is_empty());
            o
        });
    s.end(omitted.as_ref())?;
    Ok(written)
}

/// Every host, most requests first (the report file, `?all=true`): ranked by their requests
/// alone, so each host is judged once, as it is written.
fn write_all(src: &Sources<'_>, format: Format, now: u64, out: &mut dyn Write) -> io::Result<Written> {
    let quiet_ms = src.settings.quiet_period.as_millis() as u64;
    let mut ranked: Vec<(Box<str>, u64)> = Vec::with_capacity(src.ledger.host_count() + 8);
    src.ledger.for_each_host_requests(|name, requests| ranked.push((name.into(), requests)));
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut written = Written::default();
    let mut s = sink(format, out);
    s.begin(&src.header(now), &[(0, 0); Action::COUNT])?;
    for (name, _) in &ranked {
        let Some(h) = src.host(name, now) else { continue };
        let tally = written.by_action.entry(h.action).or_default();
        tally.hosts += 1;
        tally.requests += h.requests;
        if parse_rfc3339(&h.last_seen).is_some_and(|t| now.saturating_sub(t) < quiet_ms) {
            written.arriving += 1;
        }
        s.host(&h)?;
        written.listed += 1;
    }
    s.end(None)?;
    Ok(written)
}

/// A writer that counts what goes through it (read while the sink holds it).
struct Counting<'a> {
    out: &'a mut dyn Write,
    bytes: &'a Cell<usize>,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.bytes.set(self.bytes.get() + n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn omitted_why(sel: &Selection, cut: bool) -> String {
    let mut why = Vec::new();
    if let Some(limit) = sel.limit {
        why.push(format!("at most {limit} hosts, those with an action to take first, by requests"));
    }
    if cut && sel.max_bytes.is_some() {
        why.push(format!("at most {} MiB of hosts", sel.max_bytes.unwrap_or(0) >> 20));
    }
    if !sel.actions.is_empty() {
        let names: Vec<&str> = sel.actions.iter().map(|a| a.as_str()).collect();
        why.push(format!("only the actions {}", names.join(", ")));
    }
    if let Some(h) = &sel.host {
        why.push(format!("only the host {h}"));
    }
    format!("{}; ?all=true lists every host, ?limit=N, ?action=A,B and ?host=NAME choose", why.join(", "))
}
