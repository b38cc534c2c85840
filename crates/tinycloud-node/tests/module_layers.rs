//! The module graph of every workspace crate has no cycle (ARCHITECTURE.md, "Layering").
//!
//! A plain text scan, no dependencies: starting at each crate root (`lib.rs`, `main.rs`) it
//! follows `mod name;` declarations to find the module tree, strips comments, string literals
//! and `#[cfg(test)]` items, and reads every `crate::…`, `super::…` and `self::…` path (braced
//! `use` groups expanded). A path names the deepest module of the tree it reaches. A reference
//! from module `a::b::x` to `a::c::y` is an edge between the siblings `a::b` → `a::c` (the
//! children of their deepest common ancestor); references between a module and its own
//! ancestors or descendants are not edges. The test fails when the siblings of any module
//! reference each other in a circle, printing the cycle and the files that make each edge.
//!
//! For the node it also checks the layering rule: each top-level module sits in one layer
//! (base → store → auth → services → state → http → server) and may only reference modules of
//! its own or lower layers, and the services do not use axum.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// One module of a crate: its path from the crate root and the file that holds it.
struct Module {
    path: Vec<String>,
    file: PathBuf,
}

fn workspace_crates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates directory")
        .to_path_buf()
}

/// Removes comments, string and char literals (keeping line structure roughly).
fn strip(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !b
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // Raw string r"…" / r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
                out.push_str("' '");
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Removes every item marked `#[cfg(test)]` (a `mod tests { … }`, a `mod tests;`, a test-only
/// `use` or `fn`).
fn strip_test_items(src: &str) -> String {
    let mut out = String::new();
    let mut rest = src;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at + "#[cfg(test)]".len()..];
        // The item ends at the first `;` outside braces, or at the brace that closes its
        // first `{`.
        let mut depth = 0usize;
        let mut end = item.len();
        for (i, ch) in item.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `mod name;` declarations (test items already removed).
fn mod_decls(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for stmt in code.split([';', '{', '}']) {
        let words: Vec<&str> = stmt.split_whitespace().collect();
        if let Some(pos) = words.iter().position(|w| *w == "mod") {
            // `mod x;` only: the statement must end right after the name.
            if pos + 2 == words.len() && words[pos + 1].chars().all(is_ident) {
                let before = &words[..pos];
                if before
                    .iter()
                    .all(|w| w.starts_with("pub") || w.starts_with("#[") || w.ends_with(']'))
                {
                    names.push(words[pos + 1].to_string());
                }
            }
        }
    }
    // A `mod x { … }` inline module also splits at `{`; it has no file, and
    // `resolve_tree` skips names whose file does not exist.
    names
}

fn resolve_tree(root: &Path) -> Vec<Module> {
    let mut modules = Vec::new();
    let mut todo = vec![(Vec::<String>::new(), root.to_path_buf(), true)];
    while let Some((path, file, dir_owner)) = todo.pop() {
        let src = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let code = strip_test_items(&strip(&src));
        let dir = if dir_owner {
            file.parent().expect("parent").to_path_buf()
        } else {
            file.with_extension("")
        };
        for name in mod_decls(&code) {
            let flat = dir.join(format!("{name}.rs"));
            let nested = dir.join(&name).join("mod.rs");
            let mut child = path.clone();
            child.push(name);
            if flat.is_file() {
                todo.push((child, flat, false));
            } else if nested.is_file() {
                todo.push((child, nested, true));
            }
        }
        modules.push(Module { path, file });
    }
    modules
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into full paths.
fn expand_use(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or("").trim().to_string()];
    };
    let prefix = tree[..open].trim();
    let close = tree.rfind('}').unwrap_or(tree.len());
    let inner = &tree[open + 1..close];
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand_use)
        .map(|p| {
            if p == "self" {
                prefix.trim_end_matches("::").to_string()
            } else {
                format!("{prefix}{p}")
            }
        })
        .collect()
}

/// Every `crate::`/`super::`/`self::` path of the code, as segment lists.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // `use` statements first (braces expanded), then removed so the scan below does not
    // read their fragments again.
    let mut rest = String::new();
    let mut tail = code;
    loop {
        let found = tail
            .match_indices("use ")
            .find(|(i, _)| !tail[..*i].chars().next_back().is_some_and(is_ident));
        let Some((at, _)) = found else {
            rest.push_str(tail);
            break;
        };
        rest.push_str(&tail[..at]);
        let stmt_end = tail[at..].find(';').map_or(tail.len(), |e| at + e);
        let tree = &tail[at + 4..stmt_end];
        for p in expand_use(tree) {
            out.push(p.split("::").map(|s| s.trim().to_string()).collect());
        }
        tail = &tail[(stmt_end + 1).min(tail.len())..];
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if is_ident(chars[i]) && (i == 0 || !is_ident(chars[i - 1]) && chars[i - 1] != ':') {
            let mut j = i;
            let mut segs = Vec::new();
            loop {
                let s = j;
                while j < chars.len() && is_ident(chars[j]) {
                    j += 1;
                }
                segs.push(chars[s..j].iter().collect::<String>());
                if chars.get(j) == Some(&':')
                    && chars.get(j + 1) == Some(&':')
                    && chars.get(j + 2).is_some_and(|c| is_ident(*c))
                {
                    j += 2;
                } else {
                    break;
                }
            }
            if segs.len() > 1 && matches!(segs[0].as_str(), "crate" | "super" | "self") {
                out.push(segs);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out.retain(|p| {
        matches!(
            p.first().map(String::as_str),
            Some("crate" | "super" | "self")
        )
    });
    out
}

/// Names the crate root re-exports (`pub use client::TinyCloud;` makes `crate::TinyCloud`
/// a reference to `client`).
type Reexports = BTreeMap<String, Vec<String>>;

fn root_reexports(root: &Module, known: &BTreeSet<Vec<String>>) -> Reexports {
    let src = fs::read_to_string(&root.file).expect("read");
    let code = strip_test_items(&strip(&src));
    let mut out = Reexports::new();
    for stmt in code.split(';') {
        let Some(at) = stmt.find("pub use ") else {
            continue;
        };
        for p in expand_use(&stmt[at + "pub use ".len()..]) {
            let segs: Vec<String> = p
                .split("::")
                .map(|s| s.trim().to_string())
                .filter(|s| s != "crate" && s != "self")
                .collect();
            let name = stmt[at..]
                .contains(" as ")
                .then(|| p.rsplit(" as ").next().map(str::trim))
                .flatten()
                .unwrap_or_else(|| segs.last().map_or("", String::as_str))
                .to_string();
            if let Some(t) = target(&[], &segs, known, &Reexports::new()) {
                if !t.is_empty() {
                    out.insert(name, t);
                }
            }
        }
    }
    out
}

/// The deepest module of `known` a path from `module` reaches.
fn target(
    module: &[String],
    path: &[String],
    known: &BTreeSet<Vec<String>>,
    reexports: &Reexports,
) -> Option<Vec<String>> {
    let mut base: Vec<String> = module.to_vec();
    let mut segs = path;
    match segs.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            segs = &segs[1..];
        }
        Some("self") => segs = &segs[1..],
        _ => {
            while segs.first().map(String::as_str) == Some("super") {
                base.pop()?;
                segs = &segs[1..];
            }
        }
    }
    if base.is_empty() {
        if let Some(t) = segs.first().and_then(|s| reexports.get(s)) {
            return Some(t.clone());
        }
    }
    for s in segs {
        let mut next = base.clone();
        next.push(s.clone());
        if known.contains(&next) {
            base = next;
        } else {
            break;
        }
    }
    Some(base)
}

type Edges = BTreeMap<(Vec<String>, Vec<String>), BTreeSet<String>>;

/// Sibling edges of one crate tree: (from, to) → files making the reference.
fn sibling_edges(crate_dir: &Path, modules: &[Module]) -> Edges {
    let known: BTreeSet<Vec<String>> = modules.iter().map(|m| m.path.clone()).collect();
    let reexports = modules
        .iter()
        .find(|m| m.path.is_empty())
        .map(|root| root_reexports(root, &known))
        .unwrap_or_default();
    let mut edges = Edges::new();
    for m in modules {
        let src = fs::read_to_string(&m.file).expect("read");
        let code = strip_test_items(&strip(&src));
        // `super` in `a/b.rs` and in `a/b/mod.rs` both mean `a`; `self` means `a::b`.
        for p in paths(&code) {
            let Some(t) = target(&m.path, &p, &known, &reexports) else {
                continue;
            };
            let common = m.path.iter().zip(&t).take_while(|(a, b)| a == b).count();
            if common < m.path.len() && common < t.len() {
                let from = m.path[..=common].to_vec();
                let to = t[..=common].to_vec();
                let file = m
                    .file
                    .strip_prefix(crate_dir)
                    .unwrap_or(&m.file)
                    .display()
                    .to_string();
                edges.entry((from, to)).or_default().insert(file);
            }
        }
    }
    edges
}

/// Strongly connected components with more than one node (Tarjan).
fn cycles(edges: &Edges) -> Vec<Vec<Vec<String>>> {
    let nodes: BTreeSet<&Vec<String>> = edges.keys().flat_map(|(a, b)| [a, b]).collect();
    let nodes: Vec<&Vec<String>> = nodes.into_iter().collect();
    let idx: BTreeMap<&Vec<String>, usize> =
        nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut adj = vec![Vec::new(); nodes.len()];
    for (a, b) in edges.keys() {
        adj[idx[a]].push(idx[b]);
    }
    struct T {
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(v: usize, adj: &[Vec<usize>], t: &mut T) {
        t.index[v] = Some(t.next);
        t.low[v] = t.next;
        t.next += 1;
        t.stack.push(v);
        t.on[v] = true;
        for &w in &adj[v] {
            match t.index[w] {
                None => {
                    visit(w, adj, t);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(iw) if t.on[w] => t.low[v] = t.low[v].min(iw),
                _ => {}
            }
        }
        if Some(t.low[v]) == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                t.out.push(comp);
            }
        }
    }
    let n = nodes.len();
    let mut t = T {
        index: vec![None; n],
        low: vec![0; n],
        on: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            visit(v, &adj, &mut t);
        }
    }
    t.out
        .into_iter()
        .map(|c| {
            let mut c: Vec<Vec<String>> = c.into_iter().map(|i| nodes[i].clone()).collect();
            c.sort();
            c
        })
        .collect()
}

fn crate_roots() -> Vec<(PathBuf, PathBuf)> {
    let mut roots = Vec::new();
    let mut dirs: Vec<PathBuf> = fs::read_dir(workspace_crates())
        .expect("crates dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        for root in ["src/lib.rs", "src/main.rs"] {
            let file = dir.join(root);
            if file.is_file() {
                roots.push((dir.clone(), file));
            }
        }
    }
    roots
}

fn show(path: &[String]) -> String {
    if path.is_empty() {
        "crate".into()
    } else {
        path.join("::")
    }
}

#[test]
fn no_module_cycles_in_any_crate() {
    let mut report = String::new();
    let roots = crate_roots();
    assert!(roots.len() >= 4, "found the workspace crates: {roots:?}");
    for (dir, root) in roots {
        let modules = resolve_tree(&root);
        let edges = sibling_edges(&dir, &modules);
        for comp in cycles(&edges) {
            let name = dir.file_name().unwrap_or_default().to_string_lossy();
            let members: Vec<String> = comp.iter().map(|p| show(p)).collect();
            report.push_str(&format!("{name}: cycle among {}\n", members.join(", ")));
            for ((a, b), files) in &edges {
                if comp.contains(a) && comp.contains(b) {
                    let files: Vec<&str> = files.iter().map(String::as_str).collect();
                    report.push_str(&format!(
                        "    {} -> {}   ({})\n",
                        show(a),
                        show(b),
                        files.join(", ")
                    ));
                }
            }
        }
    }
    assert!(report.is_empty(), "module cycles:\n{report}");
}

/// The node's layers, lowest first (ARCHITECTURE.md, "Layering"). A module may reference its
/// own layer and the layers below it, never one above; a new top-level module must be placed.
const NODE_LAYERS: &[(&str, &[&str])] = &[
    (
        "base",
        &["clock", "config", "keys", "ratelimit", "telemetry"],
    ),
    ("store", &["store"]),
    ("auth", &["auth", "error", "signed"]),
    ("services", &["encryption", "hooks", "sql", "webhooks"]),
    ("state", &["delivery", "state"]),
    ("http", &["routes"]),
    ("server", &["server"]),
];

#[test]
fn node_layers_point_one_way() {
    let dir = workspace_crates().join("tinycloud-node");
    let modules = resolve_tree(&dir.join("src/lib.rs"));
    let layer_of = |m: &[String]| {
        NODE_LAYERS
            .iter()
            .position(|(_, ms)| ms.contains(&m[0].as_str()))
    };
    let mut report = String::new();
    for m in modules.iter().filter(|m| m.path.len() == 1) {
        if layer_of(&m.path).is_none() {
            report.push_str(&format!(
                "module {} is in no layer: add it to NODE_LAYERS and ARCHITECTURE.md\n",
                show(&m.path)
            ));
        }
    }
    // Services know nothing of HTTP: no `axum` in their code (tests aside).
    let services = NODE_LAYERS
        .iter()
        .position(|(name, _)| *name == "services")
        .expect("a services layer");
    for m in &modules {
        if !m.path.is_empty() && layer_of(&m.path) == Some(services) {
            let code = strip_test_items(&strip(&fs::read_to_string(&m.file).expect("read")));
            if code.contains("axum") {
                report.push_str(&format!(
                    "service module {} uses axum: HTTP belongs in routes/\n",
                    show(&m.path)
                ));
            }
        }
    }
    for ((a, b), files) in sibling_edges(&dir, &modules) {
        if a.len() != 1 {
            continue;
        }
        if let (Some(la), Some(lb)) = (layer_of(&a), layer_of(&b)) {
            if lb > la {
                let files: Vec<&str> = files.iter().map(String::as_str).collect();
                report.push_str(&format!(
                    "{} ({}) -> {} ({})   ({})\n",
                    show(&a),
                    NODE_LAYERS[la].0,
                    show(&b),
                    NODE_LAYERS[lb].0,
                    files.join(", ")
                ));
            }
        }
    }
    assert!(report.is_empty(), "references to a higher layer:\n{report}");
}

#[test]
fn the_scan_sees_references() {
    // The scan itself: braced groups, super, self, paths in code, test items ignored.
    let code = strip_test_items(&strip(
        "use crate::{a::X, b::{self, c::Y}};\nuse super::d as e;\n\
         fn f() { crate::g::h(); let s = \"crate::zz::q\"; } // crate::yy::q\n\
         #[cfg(test)]\nmod tests { use crate::t::U; }\n",
    ));
    let got: BTreeSet<String> = paths(&code).into_iter().map(|p| p.join("::")).collect();
    let want: BTreeSet<String> = [
        "crate::a::X",
        "crate::b",
        "crate::b::c::Y",
        "super::d",
        "crate::g::h",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(got, want);
}
