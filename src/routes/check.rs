//! `cutover-proxy routes check`: what green's manifests hold before the proxy is deployed — the
//! objects whose apiVersion green's Kubernetes no longer serves (any kind, in the columns kubent
//! prints), what could not be read as manifests, the route objects green's cluster would not
//! serve, and the table the proxy would use, host by host.

use std::fmt::Write as _;

use serde::Serialize;

use super::removed::KubeVersion;
use super::source::{RouteSource, Skipped};
use super::{GreenCluster, RouteTable};

/// One object with a removed apiVersion.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RemovedRow {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub api_version: String,
    /// `null`: no replacement (PodSecurityPolicy).
    pub replace_with: Option<String>,
    /// The release that stopped serving it.
    pub since: String,
    pub file: String,
}

/// A route object green would not serve, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NotServingRow {
    pub object: String,
    pub reason: String,
}

/// One rule of the table: a path pattern of a host, and the object serving it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableRow {
    pub path: String,
    pub object: String,
}

/// A host pattern of the table and its rules.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HostRows {
    pub host: String,
    pub paths: Vec<TableRow>,
}

/// The whole check, as `-o json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `--green-kubernetes-version`; without it every removal known counts.
    pub kubernetes_version: Option<String>,
    pub removed_apis: Vec<RemovedRow>,
    pub skipped: Vec<Skipped>,
    pub not_serving: Vec<NotServingRow>,
    /// Route objects green would serve.
    pub objects: usize,
    pub hosts: Vec<HostRows>,
}

impl Check {
    /// Checks what `source` holds against `cluster`.
    pub fn new(source: &RouteSource, cluster: &GreenCluster) -> Check {
        let version = cluster.kubernetes_version;
        let removed_apis = source
            .removed_api_uses
            .iter()
            .filter(|u| version.is_none_or(|v| u.removal.applies_to(v)))
            .map(|u| RemovedRow {
                kind: u.kind.clone(),
                namespace: u.namespace.clone(),
                name: u.name.clone(),
                api_version: u.removal.api_version.to_owned(),
                replace_with: u.removal.replace_with.map(str::to_owned),
                since: u.removal.removed_in.to_string(),
                file: u.file.display().to_string(),
            })
            .collect();
        let table = RouteTable::build(&[source], cluster);
        let not_serving = table
            .not_serving()
            .map(|(r, why)| NotServingRow { object: r.to_string(), reason: why.to_owned() })
            .collect();
        let mut hosts: Vec<HostRows> = Vec::new();
        for (host, path, route) in table.rules() {
            let row = TableRow { path, object: route.to_string() };
            match hosts.iter_mut().find(|h| h.host == host) {
                Some(h) => h.paths.push(row),
                None => hosts.push(HostRows { host, paths: vec![row] }),
            }
        }
        hosts.sort_by(|a, b| a.host.cmp(&b.host));
        Check {
            kubernetes_version: version.map(|v: KubeVersion| v.to_string()),
            removed_apis,
            skipped: table.skipped().to_vec(),
            not_serving,
            objects: table.objects(),
            hosts,
        }
    }

    /// Whether an object with a removed apiVersion was found (exit status 1).
    pub fn found_removed(&self) -> bool {
        !self.removed_apis.is_empty()
    }

    /// The human-readable report: sections with aligned columns.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let against = match &self.kubernetes_version {
            Some(v) => format!("removed in Kubernetes {v} or earlier"),
            None => "removed in any Kubernetes release (give --green-kubernetes-version X.Y)".to_owned(),
        };
        let _ = writeln!(out, ">>> APIs {against} <<<");
        if self.removed_apis.is_empty() {
            let _ = writeln!(out, "none found");
        } else {
            let rows: Vec<Vec<String>> = self
                .removed_apis
                .iter()
                .map(|r| {
                    vec![
                        r.kind.clone(),
                        r.namespace.clone(),
                        r.name.clone(),
                        r.api_version.clone(),
                        r.replace_with.clone().unwrap_or_else(|| "-".into()),
                        r.since.clone(),
                        r.file.clone(),
                    ]
                })
                .collect();
            columns(&mut out, &["KIND", "NAMESPACE", "NAME", "API_VERSION", "REPLACE_WITH", "SINCE", "FILE"], &rows);
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out, "\n>>> Not manifests yet: skipped (render them with --green-routes-cmd) <<<");
            let rows: Vec<Vec<String>> = self
                .skipped
                .iter()
                .map(|s| vec![s.kind.to_string(), s.name.clone(), s.path.display().to_string(), s.render.join(" ; ")])
                .collect();
            columns(&mut out, &["SKIPPED", "NAME", "PATH", "RENDER WITH"], &rows);
        }
        if !self.not_serving.is_empty() {
            let _ = writeln!(out, "\n>>> Route objects green would not serve <<<");
            let rows: Vec<Vec<String>> =
                self.not_serving.iter().map(|n| vec![n.object.clone(), n.reason.clone()]).collect();
            columns(&mut out, &["OBJECT", "WHY"], &rows);
        }
        let _ = writeln!(out, "\n>>> Green's route table: {} objects <<<", self.objects);
        let rows: Vec<Vec<String>> = self
            .hosts
            .iter()
            .flat_map(|h| h.paths.iter().map(|p| vec![h.host.clone(), p.path.clone(), p.object.clone()]))
            .collect();
        if rows.is_empty() {
            let _ = writeln!(out, "no routes");
        } else {
            columns(&mut out, &["HOST", "PATH", "OBJECT"], &rows);
        }
        out
    }
}

/// A header and rows, each column as wide as its widest cell (the last one not padded).
fn columns(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == header.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}
