//! Green's route table: Kubernetes Ingress, Gateway API HTTPRoute and Istio VirtualService objects
//! loaded from files, answering "does green route host H, path P, and by which object?".
//!
//! Pure logic plus file loading (`load.rs`); no networking. Each kind has its own parser
//! (`ingress.rs`, `httproute.rs`, `virtualservice.rs`) that turns one object into (host, path) rules;
//! `matching.rs` holds the matchers and the ranks that choose the most specific object.
//!
//! The table answers with the most specific match among all objects (exact host, then wildcard, then
//! no host; within that exact path, longer prefix, shorter prefix, regex, default backend; ties go to
//! the first loaded). Some controllers (ingress-nginx, Envoy-based gateways) do not fall through from
//! an exact host to a wildcard or host-less rule when no path matches; this table does, as an ALB does.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

mod httproute;
mod ingress;
mod load;
mod matching;
mod virtualservice;
mod walk;

#[cfg(test)]
mod tests;

use matching::{HostPattern, PathPattern};

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

/// A broken file: which file, which document (0-based index in a multi-doc file, or the item index
/// inside a `List`), which field (`spec.rules[0].http.paths[1].pathType`), and why. One line.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.render())]
pub struct RouteError {
    /// The file that was refused.
    pub path: PathBuf,
    /// 0-based document index in the file, or the item index inside a `List`.
    pub document: usize,
    /// JSON-path-like field inside the object; empty for errors about the whole file or document.
    pub field: String,
    /// Why it was refused (for syntax errors, the parser's message with line and column).
    pub reason: String,
}

impl RouteError {
    fn render(&self) -> String {
        let reason = matching::one_line(&self.reason);
        if self.field.is_empty() {
            format!("{}: document {}: {}", self.path.display(), self.document, reason)
        } else {
            format!("{}: document {}: {}: {}", self.path.display(), self.document, self.field, reason)
        }
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
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) route: RouteRef,
    pub(crate) rules: Vec<Rule>,
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
}

impl RouteTable {
    /// A table with no routes (green serves nothing known).
    pub fn empty() -> Self {
        Self::default()
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

    /// True when no route object was loaded.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
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
