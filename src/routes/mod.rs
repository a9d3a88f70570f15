//! Green's route table: Kubernetes Ingress, Gateway API HTTPRoute and Istio VirtualService objects
//! loaded from files, answering "does green route host H, path P, and by which object?".
//!
//! Pure logic plus file loading (`load.rs`, `yaml.rs`); no networking. Each kind has its own
//! parser (`ingress.rs`, `httproute.rs`, `virtualservice.rs`) that turns one object into (host,
//! path) rules; `matching.rs` holds the matchers and the ranks that choose the most specific
//! object. What was read stays a [`RouteSource`] (files, or a command's output); the table is
//! built from the sources for green's cluster ([`GreenCluster`]): an object it would refuse (a
//! removed apiVersion, another ingress class, another gateway) is kept aside with the reason.
//!
//! The table answers with the most specific match among all objects (exact host, then wildcard, then
//! no host; within that exact path, longer prefix, shorter prefix, regex, default backend; ties go to
//! the first loaded). Some controllers (ingress-nginx, Envoy-based gateways) do not fall through from
//! an exact host to a wildcard or host-less rule when no path matches; this table does, as an ALB does.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

pub mod check;
pub mod cluster;
mod httproute;
mod ingress;
mod load;
mod matching;
pub mod removed;
pub mod source;
mod virtualservice;
mod walk;
mod yaml;

#[cfg(test)]
mod tests;

use cluster::Attachment;
pub use cluster::GreenCluster;
use matching::{HostPattern, PathPattern};
pub use source::{CommandStatus, RouteCounters, RouteSource, Skipped};

/// Which kind of object a route came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum RouteKind {
    /// Kubernetes `Ingress` (networking.k8s.io).
    Ingress,
    /// Gateway API `HTTPRoute` (gateway.networking.k8s.io).
    #[serde(rename = "HTTPRoute")]
    HttpRoute,
    /// Istio `VirtualService` (networking.istio.io).
    VirtualService,
}

impl RouteKind {
    /// The Kubernetes `kind` spelling, as used in reports and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Ingress => "Ingress",
            RouteKind::HttpRoute => "HTTPRoute",
            RouteKind::VirtualService => "VirtualService",
        }
    }
}

impl fmt::Display for RouteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One green object that serves a host/path, as shown in reports: `ns/name (Kind)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RouteRef {
    /// `metadata.namespace` (`default` when the manifest leaves it out).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// Which kind of object it is.
    pub kind: RouteKind,
}

impl fmt::Display for RouteRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} ({})", self.namespace, self.name, self.kind)
    }
}

/// The object that serves a host/path, and whether the winning rule was an Ingress
/// `ImplementationSpecific` path (read as Prefix; the real answer depends on the controller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    /// The serving object.
    pub route: &'a RouteRef,
    /// The rule that matched was `ImplementationSpecific`, so report the answer as a guess.
    pub implementation_specific: bool,
}

/// A broken file: which file, which line (and column, for a syntax error), which document (0-based
/// index in a multi-doc file, or the item index inside a `List`), which field
/// (`spec.rules[0].http.paths[1].pathType`), and why. One line.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.render())]
pub struct RouteError {
    /// The file that was refused.
    pub path: PathBuf,
    /// 0-based document index in the file, or the item index inside a `List`.
    pub document: usize,
    /// 1-based line: of the syntax error, or where the object's document starts.
    pub line: Option<u64>,
    /// 1-based column of a syntax error.
    pub column: Option<u64>,
    /// JSON-path-like field inside the object; empty for errors about the whole file or document.
    pub field: String,
    /// Why it was refused (for syntax errors, the parser's message with line and column).
    pub reason: String,
}

impl RouteError {
    fn render(&self) -> String {
        let reason = matching::one_line(&self.reason);
        let at = match (self.line, self.column) {
            (Some(l), Some(c)) => format!(":{l}:{c}"),
            (Some(l), None) => format!(":{l}"),
            _ => String::new(),
        };
        let field = if self.field.is_empty() { String::new() } else { format!("{}: ", self.field) };
        format!("{}{at}: document {}: {field}{reason}", self.path.display(), self.document)
    }
}

/// One (host, path) rule of one object, as the kind parsers produce it.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub(crate) host: HostPattern,
    pub(crate) path: PathPattern,
    pub(crate) implementation_specific: bool,
}

/// One parsed object with its rules (possibly none: a host without `http` serves nothing).
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub(crate) route: RouteRef,
    pub(crate) rules: Vec<Rule>,
    pub(crate) api_version: String,
    /// Its ingress class or gateways, for [`GreenCluster`]'s rules.
    pub(crate) attachment: Attachment,
}

/// A rule placed in the table: `route` indexes `RouteTable::refs`, `seq` is the load order.
#[derive(Clone, Debug)]
struct Entry {
    host: HostPattern,
    path: PathPattern,
    route: usize,
    seq: usize,
    implementation_specific: bool,
}

/// Green's routes, indexed by host: exact hosts in a map, wildcards and host-less rules in vectors.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    refs: Vec<RouteRef>,
    exact: HashMap<String, Vec<Entry>>,
    wildcard: Vec<Entry>,
    any: Vec<Entry>,
    rules: usize,
    implementation_specific: usize,
    /// A source was read: without one nothing is known of green (every verdict `unknown`).
    loaded: bool,
    /// The objects green's cluster would not serve, indexed the same way, and why (by index).
    not_serving: Option<Box<RouteTable>>,
    why_not: Vec<String>,
    /// What the sources could not read as manifests.
    skipped: Vec<Skipped>,
    /// How each `--green-routes-cmd` last went.
    commands: Vec<CommandStatus>,
}

impl RouteTable {
    /// No table: nothing is known of green.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The table of `sources` (in order: earlier objects win ties) for `cluster`. It counts as
    /// loaded when a source held route objects, or held nothing it had to skip.
    pub fn build(sources: &[&RouteSource], cluster: &GreenCluster) -> RouteTable {
        let mut table = RouteTable::empty();
        let default_class = sources.iter().flat_map(|s| s.classes.iter()).find(|c| c.default).map(|c| c.name.clone());
        let mut aside = RouteTable::empty();
        for parsed in sources.iter().flat_map(|s| s.objects.iter()) {
            match cluster.why_not_served(parsed, default_class.as_deref()) {
                None => table.add(parsed.clone()),
                Some(why) => {
                    aside.add(parsed.clone());
                    table.why_not.push(why);
                }
            }
        }
        table.loaded = sources.iter().any(|s| !s.objects.is_empty() || s.skipped.is_empty());
        table.not_serving = (!aside.refs.is_empty()).then(|| Box::new(aside));
        table.skipped = sources.iter().flat_map(|s| s.skipped.iter().cloned()).collect();
        table
    }

    /// Reads `paths` and builds their table with no cluster rules (tests, `analyze` without them).
    pub fn load(paths: &[std::path::PathBuf]) -> Result<RouteTable, RouteError> {
        Ok(RouteTable::build(&[&RouteSource::read(paths)?], &GreenCluster::default()))
    }

    /// [`RouteSource::from_text`] as a table with no cluster rules.
    pub fn parse_text(source: &std::path::Path, text: &str) -> Result<RouteTable, RouteError> {
        Ok(RouteTable::build(&[&RouteSource::from_text(source, text)?], &GreenCluster::default()))
    }

    /// Whether a table was loaded (see [`RouteTable::build`]).
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Why green does not serve `host` + `path` although an object names it: the most specific
    /// object that the cluster's rules set aside (call it for paths [`RouteTable::route`] misses).
    pub fn why_unrouted(&self, host: &str, path: &str) -> Option<&str> {
        let aside = self.not_serving.as_deref()?;
        aside.entry(host, path).and_then(|e| self.why_not.get(e.route)).map(String::as_str)
    }

    /// The objects set aside and why, in load order.
    pub fn not_serving(&self) -> impl Iterator<Item = (&RouteRef, &str)> {
        let refs = self.not_serving.as_deref().map(|t| t.refs.as_slice()).unwrap_or_default();
        refs.iter().zip(self.why_not.iter().map(String::as_str))
    }

    /// What the sources skipped (charts, Kustomize folders, templates).
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// How each `--green-routes-cmd` last went.
    pub fn commands(&self) -> &[CommandStatus] {
        &self.commands
    }

    /// Notes how the commands last went.
    pub fn set_commands(&mut self, commands: Vec<CommandStatus>) {
        self.commands = commands;
    }

    /// Whether the table may lack routes green has: something was skipped, or a command's last
    /// run failed (its last good output, if any, is still used).
    pub fn incomplete(&self) -> bool {
        !self.skipped.is_empty() || self.commands.iter().any(|c| c.error.is_some())
    }

    /// Every (host pattern, path pattern, object) rule, in load order (for `routes check`).
    pub(crate) fn rules(&self) -> Vec<(String, String, &RouteRef)> {
        let mut all: Vec<&Entry> = self.exact.values().flatten().chain(&self.wildcard).chain(&self.any).collect();
        all.sort_by_key(|e| e.seq);
        all.into_iter().map(|e| (e.host.to_string(), e.path.to_string(), &self.refs[e.route])).collect()
    }

    /// Adds one parsed object at the end of the load order.
    pub(crate) fn add(&mut self, parsed: Parsed) {
        let route = self.refs.len();
        self.refs.push(parsed.route);
        for rule in parsed.rules {
            let entry = Entry {
                host: rule.host,
                path: rule.path,
                route,
                seq: self.rules,
                implementation_specific: rule.implementation_specific,
            };
            self.rules += 1;
            self.place(entry);
        }
    }

    fn place(&mut self, entry: Entry) {
        self.implementation_specific += usize::from(entry.implementation_specific);
        match &entry.host {
            HostPattern::Exact(h) => self.exact.entry(h.clone()).or_default().push(entry),
            HostPattern::Wildcard { .. } => self.wildcard.push(entry),
            HostPattern::Any => self.any.push(entry),
        }
    }

    /// Appends `other` after this table's objects (they lose ties to the ones already here).
    #[cfg(test)]
    pub fn merge(&mut self, other: RouteTable) {
        let (ref_offset, seq_offset) = (self.refs.len(), self.rules);
        self.refs.extend(other.refs);
        self.rules += other.rules;
        let moved = other.exact.into_values().flatten().chain(other.wildcard).chain(other.any);
        let mut moved: Vec<Entry> = moved.collect();
        // Keep each bucket in load order, whatever order the map gave them in.
        moved.sort_by_key(|e| e.seq);
        for mut entry in moved {
            entry.route += ref_offset;
            entry.seq += seq_offset;
            self.place(entry);
        }
    }

    /// How many Ingress/HTTPRoute/VirtualService objects were loaded (skipped ones not counted).
    pub fn objects(&self) -> usize {
        self.refs.len()
    }

    /// How many Ingress paths are `ImplementationSpecific` (matched as Prefix; a report should say so).
    pub fn implementation_specific(&self) -> usize {
        self.implementation_specific
    }

    /// Which object serves `host` + `path`, if any: the most specific match (see the module docs).
    /// `host` is already normalized by the caller (lowercase, no port, no trailing dot, IDN as
    /// punycode); `path` is the request path without query string.
    pub fn route(&self, host: &str, path: &str) -> Option<&RouteRef> {
        self.route_match(host, path).map(|m| m.route)
    }

    /// Like [`RouteTable::route`], also saying whether the rule was `ImplementationSpecific`.
    pub fn route_match(&self, host: &str, path: &str) -> Option<RouteMatch<'_>> {
        self.entry(host, path)
            .map(|e| RouteMatch { route: &self.refs[e.route], implementation_specific: e.implementation_specific })
    }

    /// Like [`RouteTable::route`], as the serving object's index (what the ledger keeps per path:
    /// four bytes, not the object's names), for [`RouteTable::object`].
    pub fn route_index(&self, host: &str, path: &str) -> Option<u32> {
        self.entry(host, path).and_then(|e| u32::try_from(e.route).ok())
    }

    /// The object at `index` of this table.
    pub fn object(&self, index: u32) -> Option<&RouteRef> {
        self.refs.get(index as usize)
    }

    fn entry(&self, host: &str, path: &str) -> Option<&Entry> {
        let exact = self.exact.get(host).map(Vec::as_slice).unwrap_or_default();
        best(exact.iter(), path)
            .or_else(|| best(self.wildcard.iter().filter(|e| e.host.matches(host)), path))
            .or_else(|| best(self.any.iter(), path))
    }
}

/// The most specific entry whose path matches; ties go to the lowest `seq` (first loaded).
fn best<'a>(entries: impl Iterator<Item = &'a Entry>, path: &str) -> Option<&'a Entry> {
    entries
        .filter(|e| e.path.matches(path))
        .max_by(|a, b| (a.host.rank(), a.path.rank(), b.seq).cmp(&(b.host.rank(), b.path.rank(), a.seq)))
}
