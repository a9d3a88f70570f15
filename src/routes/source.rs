//! What one place green's routes come from held (route files, or a command's output): the route
//! objects, what is not a manifest yet (a Helm chart, a Kustomize folder, a Go template) with the
//! command that renders it, the IngressClasses, ArgoCD Applications, and every object whose
//! apiVersion Kubernetes removed at some release.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::removed::Removal;
use super::Parsed;
use crate::base::names::named_enum;

named_enum! {
    /// Why a file or folder was skipped rather than read as manifests.
    pub enum SkipKind {
        /// A folder with `Chart.yaml`: its templates are not manifests until rendered.
        HelmChart = "helm-chart",
        /// A folder with `kustomization.yaml`: its patches are not whole objects.
        Kustomize = "kustomize",
        /// A file with Go template syntax that does not read as manifests.
        GoTemplate = "go-template",
    }
}

/// A file or folder skipped, and how to render it into manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub path: PathBuf,
    pub kind: SkipKind,
    /// The chart's name, the folder's or the file's.
    pub name: String,
    /// Commands that print what it renders to (for `--green-routes-cmd`).
    pub render: Vec<String>,
}

/// An object whose apiVersion Kubernetes removed at some release (any kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedApiUse {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub file: PathBuf,
    pub removal: &'static Removal,
}

/// An IngressClass of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IngressClass {
    pub(crate) name: String,
    /// Annotated `ingressclass.kubernetes.io/is-default-class: "true"`.
    pub(crate) default: bool,
}

/// One source of an ArgoCD Application: a chart folder (`path`) and its values files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppSource {
    pub(crate) path: String,
    pub(crate) release: Option<String>,
    pub(crate) value_files: Vec<String>,
}

/// An ArgoCD Application (app-of-apps repositories list them): which chart it renders, how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Application {
    pub(crate) name: String,
    pub(crate) sources: Vec<AppSource>,
}

/// How one `--green-routes-cmd` last went, for the report and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CommandStatus {
    pub command: String,
    /// Route objects of its last good output (still in the table when it fails later).
    pub objects: usize,
    /// When its last good output was read (unix ms; `None`: never).
    pub loaded_at_ms: Option<u64>,
    /// Why its last run gave no table (`None` when it was good).
    pub error: Option<String>,
}

/// Failures counted for `/metrics` by the watcher that reads green's routes.
#[derive(Debug, Default)]
pub struct RouteCounters {
    /// Route file reloads refused (the last good table kept).
    pub reload_failures: std::sync::atomic::AtomicU64,
    /// Per `--green-routes-cmd`, in order: runs that gave no table.
    pub command_failures: Vec<(String, std::sync::atomic::AtomicU64)>,
}

impl RouteCounters {
    /// Counters for these commands.
    pub fn new(commands: &[String]) -> Self {
        Self {
            reload_failures: Default::default(),
            command_failures: commands.iter().map(|c| (c.clone(), Default::default())).collect(),
        }
    }
}

/// Everything one place held.
#[derive(Debug, Clone, Default)]
pub struct RouteSource {
    pub(crate) objects: Vec<Parsed>,
    pub skipped: Vec<Skipped>,
    pub(crate) classes: Vec<IngressClass>,
    pub(crate) applications: Vec<Application>,
    pub removed_api_uses: Vec<RemovedApiUse>,
    /// Kubernetes objects of any kind read (an empty command output has none).
    pub kubernetes_objects: usize,
}

impl RouteSource {
    /// Route objects (Ingress, HTTPRoute, VirtualService) read.
    pub fn route_objects(&self) -> usize {
        self.objects.len()
    }

    /// Appends `other` after this source's objects.
    pub fn extend(&mut self, other: RouteSource) {
        self.objects.extend(other.objects);
        self.skipped.extend(other.skipped);
        self.classes.extend(other.classes);
        self.applications.extend(other.applications);
        self.removed_api_uses.extend(other.removed_api_uses);
        self.kubernetes_objects += other.kubernetes_objects;
    }

    /// Fills each skipped chart's `render` with the commands that print its manifests: per
    /// ArgoCD Application that renders it (`helm template` with the app's values files, and
    /// `argocd app manifests`), else `helm template` with the chart's own values.
    pub(crate) fn name_renderers(&mut self) {
        for s in &mut self.skipped {
            match s.kind {
                SkipKind::HelmChart => {
                    let dir = s.path.display().to_string();
                    let mut render = Vec::new();
                    for app in &self.applications {
                        for src in app.sources.iter().filter(|src| ends_with(&s.path, &src.path)) {
                            let release = src.release.as_deref().unwrap_or(&app.name);
                            let mut cmd = format!("helm template {release} {dir}");
                            for v in &src.value_files {
                                cmd.push_str(&format!(" -f {}", lexical_join(&s.path, v).display()));
                            }
                            render.push(cmd);
                            render.push(format!("argocd app manifests {}", app.name));
                        }
                    }
                    if render.is_empty() {
                        let values = s.path.join("values.yaml");
                        let f = if values.is_file() { format!(" -f {}", values.display()) } else { String::new() };
                        render.push(format!("helm template {} {dir}{f}", s.name));
                    }
                    s.render = render;
                }
                SkipKind::Kustomize => s.render = vec![format!("kustomize build {}", s.path.display())],
                SkipKind::GoTemplate => {}
            }
        }
    }
}

/// Whether `dir` ends with the relative path `tail` (`charts/server-template`), component-wise.
fn ends_with(dir: &Path, tail: &str) -> bool {
    let tail = Path::new(tail.trim_matches('/'));
    !tail.as_os_str().is_empty() && dir.ends_with(tail)
}

/// `base/rel` with `.` and `..` resolved without touching the file system (ArgoCD's values files
/// are relative to the chart's folder and may climb out of it).
fn lexical_join(base: &Path, rel: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in base.join(rel).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if out.components().next_back().is_some_and(|l| matches!(l, Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Whether text holds Go template actions (`{{ .Values.x }}`, `{{- include … }}`, `{{ if }}`).
pub(crate) fn has_go_template(text: &str) -> bool {
    text.match_indices("{{").any(|(i, _)| {
        let rest = text[i + 2..].trim_start_matches('-').trim_start();
        let action_starts =
            rest.starts_with(['.', '$', '/', '(']) || rest.starts_with(|c: char| c.is_ascii_alphabetic());
        action_starts && rest.lines().next().is_some_and(|l| l.contains("}}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_templates_are_told_from_json_in_strings() {
        assert!(has_go_template("name: {{ .Values.name }}\n"));
        assert!(has_go_template("{{- include \"x.labels\" . | nindent 4 }}\n"));
        assert!(has_go_template("{{ if .Values.ingress.enabled }}\n"));
        assert!(!has_go_template("alb.ingress.kubernetes.io/actions.x: '{\"Type\": \"fixed-response\"}'\n"));
        assert!(!has_go_template("a: '{{'\n"));
    }

    #[test]
    fn values_files_resolve_relative_to_the_chart() {
        let p = lexical_join(Path::new("repo/charts/server-template"), "../../apps/pay/values.yaml");
        assert_eq!(p, Path::new("repo/apps/pay/values.yaml"));
        assert!(ends_with(Path::new("/x/repo/charts/server-template"), "charts/server-template/"));
        assert!(!ends_with(Path::new("/x/repo/charts/server-template"), "template"));
    }
}
