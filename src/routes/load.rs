//! Reading route files: directories (recursive, hidden entries skipped), JSON or YAML detected by
//! content, multi-document YAML, `List` objects, and dispatch to the kind parsers. Helm charts,
//! Kustomize folders and Go templates are recognised and skipped with the command that renders
//! them: they are not manifests yet.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::removed::removal;
use super::source::{
    has_go_template, AppSource, Application, IngressClass, RemovedApiUse, RouteSource, SkipKind, Skipped,
};
use super::walk::FieldError;
use super::{httproute, ingress, virtualservice, yaml, RouteError};

/// Files that make a folder a Kustomize one.
const KUSTOMIZATIONS: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

impl RouteSource {
    /// Reads every file (directories recursively; skip hidden files/dirs; take files ending .yaml
    /// .yml .json, and any file given directly by path). Files load in the order given, directory
    /// entries in name order; the first broken manifest stops the load. A folder holding
    /// `Chart.yaml` or a kustomization, and a file with Go template syntax that does not read as
    /// manifests, are skipped (listed in `skipped`).
    pub fn read(paths: &[PathBuf]) -> Result<RouteSource, RouteError> {
        let mut files = Vec::new();
        let mut source = RouteSource::default();
        let mut seen_dirs = HashSet::new();
        for path in paths {
            collect(path, true, &mut files, &mut source.skipped, &mut seen_dirs)?;
        }
        for file in files {
            let bytes = fs::read(&file).map_err(|e| file_error(&file, format!("cannot read: {e}")))?;
            let text = String::from_utf8(bytes).map_err(|_| file_error(&file, "not UTF-8 text"))?;
            match RouteSource::from_text(&file, &text) {
                Ok(one) => source.extend(one),
                Err(_) if has_go_template(&text) => source.skipped.push(Skipped {
                    name: file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                    path: file,
                    kind: SkipKind::GoTemplate,
                    render: Vec::new(),
                }),
                Err(e) => return Err(e),
            }
        }
        source.name_renderers();
        Ok(source)
    }

    /// Reads one file's text or one command's output (JSON or YAML, single doc, multi-doc, or a
    /// `kind: List` with `items`). `source` only names it in errors.
    pub fn from_text(source: &Path, text: &str) -> Result<RouteSource, RouteError> {
        let mut out = RouteSource::default();
        for (index, doc) in yaml::documents(source, text)?.iter().enumerate() {
            let at = Place { source, document: index, line: doc.line };
            match &doc.value {
                Value::Object(obj) => match list_items(obj) {
                    Some(items) => add_items(&mut out, &at, items)?,
                    None => add_object(&mut out, &at, obj)?,
                },
                Value::Array(items) => add_items(&mut out, &at, items)?,
                // Scalars: nothing to read.
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Where an object was read: for errors and for `routes check`.
#[derive(Clone, Copy)]
struct Place<'a> {
    source: &'a Path,
    document: usize,
    line: u64,
}

/// A file-level error (document 0, no field).
fn file_error(path: &Path, reason: impl Into<String>) -> RouteError {
    RouteError {
        path: path.to_path_buf(),
        document: 0,
        line: None,
        column: None,
        field: String::new(),
        reason: reason.into(),
    }
}

fn is_route_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["yaml", "yml", "json"].iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Expands `path` into files: a directory recursively in name order, skipping hidden entries,
/// directories already visited (symlink loops), Helm charts and Kustomize folders (into
/// `skipped`); a file given directly is taken whatever its name.
fn collect(
    path: &Path,
    direct: bool,
    out: &mut Vec<PathBuf>,
    skipped: &mut Vec<Skipped>,
    seen: &mut HashSet<PathBuf>,
) -> Result<(), RouteError> {
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
    let folder_name = || path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if path.join("Chart.yaml").is_file() {
        let name = chart_name(&path.join("Chart.yaml")).unwrap_or_else(folder_name);
        skipped.push(Skipped { path: path.to_path_buf(), kind: SkipKind::HelmChart, name, render: Vec::new() });
        return Ok(());
    }
    if KUSTOMIZATIONS.iter().map(|k| path.join(k)).find(|k| k.is_file()).is_some_and(|k| is_overlay(&k)) {
        skipped.push(Skipped {
            path: path.to_path_buf(),
            kind: SkipKind::Kustomize,
            name: folder_name(),
            render: Vec::new(),
        });
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
        collect(&child, false, out, skipped, seen)?;
    }
    Ok(())
}

/// Whether a kustomization changes what it lists (patches, components, a name prefix or suffix, a
/// namespace, resources from outside its folder): then its files are not the objects that apply,
/// and the folder is skipped for `kustomize build`. A base that only lists its own files is read
/// as plain manifests. An unreadable kustomization counts as an overlay.
fn is_overlay(file: &Path) -> bool {
    const CHANGES: [&str; 9] = [
        "patches",
        "patchesStrategicMerge",
        "patchesJson6902",
        "components",
        "namePrefix",
        "nameSuffix",
        "namespace",
        "replacements",
        "bases",
    ];
    let Some(k) =
        fs::read_to_string(file).ok().and_then(|t| yaml::documents(file, &t).ok()).and_then(|d| d.into_iter().next())
    else {
        return true;
    };
    let dir = file.parent().unwrap_or(Path::new("."));
    CHANGES.iter().any(|c| k.value.get(c).is_some())
        || k.value.get("resources").and_then(Value::as_array).is_some_and(|r| {
            r.iter().filter_map(Value::as_str).any(|r| r.contains("..") || r.contains("://") || !dir.join(r).is_file())
        })
}

/// `name:` of a chart's `Chart.yaml`, when it reads.
fn chart_name(file: &Path) -> Option<String> {
    let text = fs::read_to_string(file).ok()?;
    let docs = yaml::documents(file, &text).ok()?;
    docs.first()?.value.get("name")?.as_str().map(str::to_owned)
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
fn add_items(out: &mut RouteSource, at: &Place<'_>, items: &[Value]) -> Result<(), RouteError> {
    for (index, item) in items.iter().enumerate() {
        if let Value::Object(obj) = item {
            add_object(out, &Place { document: index, ..*at }, obj)?;
        }
    }
    Ok(())
}

/// Dispatches one object by `kind`: the route kinds are parsed, IngressClasses and ArgoCD
/// Applications noted, removed apiVersions of any kind listed; the rest is skipped.
fn add_object(out: &mut RouteSource, at: &Place<'_>, obj: &Map<String, Value>) -> Result<(), RouteError> {
    let Some(kind) = obj.get("kind").and_then(Value::as_str) else { return Ok(()) };
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    out.kubernetes_objects += 1;
    let meta = |key: &str| obj.get("metadata").and_then(|m| m.get(key)).and_then(Value::as_str);
    if let Some(removal) = removal(kind, api_version) {
        out.removed_api_uses.push(RemovedApiUse {
            kind: kind.to_owned(),
            namespace: meta("namespace").unwrap_or("default").to_owned(),
            name: meta("name").unwrap_or("?").to_owned(),
            file: at.source.to_path_buf(),
            removal,
        });
    }
    let parsed = match kind {
        "Ingress" => ingress::parse(obj, api_version),
        "HTTPRoute" => httproute::parse(obj, api_version),
        "VirtualService" => virtualservice::parse(obj, api_version),
        "IngressClass" if api_version.starts_with("networking.k8s.io/") => {
            if let Some(name) = meta("name") {
                let default = obj
                    .get("metadata")
                    .and_then(|m| m.get("annotations"))
                    .and_then(|a| a.get("ingressclass.kubernetes.io/is-default-class"))
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                out.classes.push(IngressClass { name: name.to_owned(), default });
            }
            return Ok(());
        }
        "Application" if api_version.starts_with("argoproj.io/") => {
            if let Some(app) = application(obj) {
                out.applications.push(app);
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    match parsed {
        Ok(Some(parsed)) => out.objects.push(parsed),
        Ok(None) => {}
        Err(FieldError { field, reason }) => {
            return Err(RouteError {
                path: at.source.to_path_buf(),
                document: at.document,
                line: Some(at.line),
                column: None,
                field,
                reason: format!("{reason} (in {kind} {})", meta("name").unwrap_or("?")),
            });
        }
    }
    Ok(())
}

/// An ArgoCD Application's chart sources (`spec.source`, `spec.sources[]`) that name a path.
fn application(obj: &Map<String, Value>) -> Option<Application> {
    let name = obj.get("metadata")?.get("name")?.as_str()?.to_owned();
    let spec = obj.get("spec")?;
    let one = spec.get("source").into_iter();
    let many = spec.get("sources").and_then(Value::as_array).into_iter().flatten();
    let sources = one
        .chain(many)
        .filter_map(|src| {
            let path = src.get("path")?.as_str()?.to_owned();
            let helm = src.get("helm");
            let release = helm.and_then(|h| h.get("releaseName")).and_then(Value::as_str).map(str::to_owned);
            let value_files = helm
                .and_then(|h| h.get("valueFiles"))
                .and_then(Value::as_array)
                .map(|l| l.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            Some(AppSource { path, release, value_files })
        })
        .collect();
    Some(Application { name, sources })
}
