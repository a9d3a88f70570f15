//! The crate's structure, checked: the file-level import graph of `src/` (non-test code) has no
//! circle, and every import between top-level modules points down the layers of
//! docs/ARCHITECTURE.md. Every `crate::`, `super::` and `self::` path counts, and so does a path
//! into a child module; an index file (a `mod.rs` with only `mod` and `use` lines) is a folder,
//! not a dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path of a source file: `proxy/handle.rs` → `[proxy, handle]`, `proxy/mod.rs` → `[proxy]`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs").to_owned();
        if stem != "mod" && stem != "lib" && stem != "main" {
            parts.push(stem);
        }
    }
    parts
}

/// The text before the first `#[cfg(test)]` item, without comments.
fn code(text: &str) -> String {
    let text = text.split("\n#[cfg(test)]").next().unwrap_or(text);
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// `a::{b, c::{d, e}}` → `[a::b, a::c::d, a::c::e]`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else { return vec![tree.to_owned()] };
    let prefix = tree[..open].trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut parts, mut depth, mut cur) = (Vec::new(), 0, String::new());
    for ch in inner.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    parts.push(cur);
    let mut out = Vec::new();
    for p in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        for e in expand(p) {
            out.push(if prefix.is_empty() { e } else { format!("{prefix}::{e}") });
        }
    }
    out
}

struct Crate {
    /// File (relative to src/) → its module path and code.
    files: BTreeMap<PathBuf, (Vec<String>, String)>,
}

impl Crate {
    fn read(src: &Path) -> Self {
        let mut files = BTreeMap::new();
        let mut dirs = vec![src.to_owned()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("src/ is readable").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let rel = path.strip_prefix(src).expect("under src/").to_owned();
                    let text = std::fs::read_to_string(&path).expect("source is UTF-8");
                    files.insert(rel.clone(), (module_of(&rel), code(&text)));
                }
            }
        }
        Self { files }
    }

    /// The file that holds the longest prefix of module path `parts`.
    fn file_of(&self, parts: &[String]) -> Option<PathBuf> {
        (1..=parts.len()).rev().find_map(|k| {
            let base = parts[..k].join("/");
            [format!("{base}.rs"), format!("{base}/mod.rs")]
                .into_iter()
                .map(PathBuf::from)
                .find(|c| self.files.contains_key(c))
        })
    }

    fn is_index(&self, file: &Path) -> bool {
        let Some((_, code)) = self.files.get(file) else { return false };
        let is_mod = file.file_name().is_some_and(|n| n == "mod.rs");
        is_mod
            && code
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("#[") && !l.starts_with("//!"))
                .all(|l| {
                    let l = l.trim_start_matches("pub(crate) ").trim_start_matches("pub ");
                    l.starts_with("mod ") || l.starts_with("use ")
                })
    }

    /// Module path a `use` or inline path names, seen from module `here` with children `kids`.
    fn resolve(&self, here: &[String], kids: &BTreeSet<String>, path: &str) -> Option<Vec<String>> {
        let path = path.split(" as ").next().unwrap_or(path).trim();
        let mut parts = path.split("::").map(str::trim).filter(|p| !p.is_empty());
        let first = parts.next()?;
        let mut base: Vec<String> = match first {
            "crate" => Vec::new(),
            "self" => here.to_vec(),
            "super" => here[..here.len().saturating_sub(1)].to_vec(),
            kid if kids.contains(kid) => {
                let mut m = here.to_vec();
                m.push(kid.to_owned());
                m
            }
            _ => return None,
        };
        for p in parts {
            match p {
                "super" => {
                    base.pop();
                }
                "self" => {}
                p => base.push(p.to_owned()),
            }
        }
        Some(base)
    }

    fn edges(&self) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
        let mut edges = BTreeMap::new();
        for (file, (here, code)) in &self.files {
            let kids: BTreeSet<String> = code
                .lines()
                .filter_map(|l| {
                    l.trim().trim_start_matches("pub(crate) ").trim_start_matches("pub ").strip_prefix("mod ")
                })
                .map(|m| m.trim_end_matches(';').trim().to_owned())
                .collect();
            let mut paths = Vec::new();
            for stmt in code.split(';') {
                let stmt = stmt.trim();
                let stmt =
                    stmt.trim_start_matches("pub(crate) ").trim_start_matches("pub(super) ").trim_start_matches("pub ");
                if let Some(tree) = stmt.strip_prefix("use ") {
                    paths.extend(expand(tree));
                }
            }
            for prefix in ["crate::", "super::"] {
                let mut rest = code.as_str();
                while let Some(i) = rest.find(prefix) {
                    let tail = &rest[i..];
                    let end = tail.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
                    paths.push(tail[..end].trim_end_matches(':').to_owned());
                    rest = &tail[end..];
                }
            }
            let targets: BTreeSet<PathBuf> = paths
                .iter()
                .filter_map(|p| self.resolve(here, &kids, p))
                .filter_map(|m| self.file_of(&m))
                .filter(|t| t != file && !self.is_index(t) && !t.ends_with("lib.rs"))
                .collect();
            edges.insert(file.clone(), targets);
        }
        edges
    }
}

/// Tarjan's strongly connected components with more than one file.
fn circles(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct State<'a> {
        edges: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        found: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a PathBuf) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for w in s.edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.found.push(comp);
            }
        }
    }
    let mut s = State { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn the_file_level_import_graph_has_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let krate = Crate::read(&src);
    let edges = krate.edges();
    let found = circles(&edges);
    let mut report = String::new();
    for c in &found {
        report.push_str(&format!("circle of {}:\n", c.len()));
        for a in c {
            for b in &edges[a] {
                if c.contains(b) {
                    report.push_str(&format!("  {} -> {}\n", a.display(), b.display()));
                }
            }
        }
    }
    assert!(found.is_empty(), "import circles in src/ (move the shared item down a layer):\n{report}");
}

/// The layers, bottom first: a module may import only from layers below its own (docs/ARCHITECTURE.md).
const LAYERS: &[&[&str]] = &[
    &["base"],
    &["tls", "routes"],
    &["net", "record"],
    &["upstream", "log", "dns", "probe", "s3"],
    &["proxy", "report"],
    &["fleet"],
    &["listen", "admin", "reload", "analyze"],
    &["serve"],
    &["demo"],
    &["cli"],
];

#[test]
fn imports_point_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let krate = Crate::read(&src);
    let top = |f: &Path| f.iter().next().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned());
    let layer = |m: &str| LAYERS.iter().position(|l| l.contains(&m));
    let mut wrong = Vec::new();
    for (from, targets) in krate.edges() {
        let Some(a) = top(&from).filter(|m| m != "lib" && m != "main") else { continue };
        let la = layer(&a).unwrap_or_else(|| panic!("module `{a}` is in no layer of LAYERS"));
        for to in targets {
            let Some(b) = top(&to) else { continue };
            if a != b && layer(&b).is_none_or(|lb| lb >= la) {
                wrong.push(format!("{} -> {}", from.display(), to.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "imports that do not point down a layer:\n{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_circles() {
    let mut edges = BTreeMap::new();
    let (a, b, c) = (PathBuf::from("a.rs"), PathBuf::from("b.rs"), PathBuf::from("c.rs"));
    edges.insert(a.clone(), BTreeSet::from([b.clone()]));
    edges.insert(b.clone(), BTreeSet::from([c.clone()]));
    edges.insert(c.clone(), BTreeSet::from([a.clone()]));
    assert_eq!(circles(&edges), vec![vec![a, b, c]]);
    assert_eq!(expand("a::{b, c::{d, e}}"), ["a::b", "a::c::d", "a::c::e"]);
}
