//! Core's layout is a contract: the on-chain half never imports the node half, and no module of
//! core imports one that imports it back, directly or through others. Read from the sources, so
//! a new `use` that closes a circle fails here, naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under core/src, as (module path, source without its test module).
fn modules() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/src");
    let mut out = BTreeMap::new();
    let mut stack: Vec<PathBuf> = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("core/src is readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&root).expect("under root").with_extension("");
            let mut parts: Vec<String> =
                rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            // Test files are test modules, not part of the library's graph.
            if parts.last().is_some_and(|p| p.ends_with("_tests")) {
                continue;
            }
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            let src = std::fs::read_to_string(&path).expect("source");
            let src = match src.find("#[cfg(test)]\nmod tests") {
                Some(i) => src[..i].to_owned(),
                None => src,
            };
            out.insert(parts.join("::"), src);
        }
    }
    out
}

/// The modules each module names through `crate::…` paths (the longest module prefix).
fn imports(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges = BTreeMap::new();
    for (name, src) in mods {
        let mut to = BTreeSet::new();
        for (i, _) in src.match_indices("crate::") {
            let rest = &src[i + "crate::".len()..];
            let path: Vec<&str> = rest
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|p| !p.is_empty())
                .collect();
            for k in (1..=path.len()).rev() {
                let candidate = path[..k].join("::");
                if mods.contains_key(&candidate) {
                    if candidate != *name && !name.starts_with(&format!("{candidate}::")) {
                        to.insert(candidate);
                    }
                    break;
                }
            }
        }
        edges.insert(name.clone(), to);
    }
    edges
}

/// A circle in the graph, if there is one.
fn find_circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut circle = path[i..].to_vec();
            circle.push(m.to_owned());
            return Some(circle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_owned());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|m| visit(m, edges, &mut Vec::new(), &mut done))
}

#[test]
fn core_modules_form_no_import_circle() {
    let mods = modules();
    assert!(mods.contains_key("chain::model") && mods.contains_key("node::scheduler"));
    if let Some(circle) = find_circle(&imports(&mods)) {
        panic!("import circle among core's modules: {}", circle.join(" -> "));
    }
}

#[test]
fn the_chain_half_never_imports_the_node_half_or_the_registry() {
    let mods = modules();
    let edges = imports(&mods);
    for (m, to) in &edges {
        if !m.starts_with("chain") {
            continue;
        }
        let bad: Vec<_> = to.iter().filter(|t| !t.starts_with("chain")).collect();
        assert!(bad.is_empty(), "{m} (on-chain) imports {bad:?}");
    }
}

#[test]
fn the_checker_sees_a_circle_when_there_is_one() {
    let mut mods = BTreeMap::new();
    mods.insert("a".to_owned(), "use crate::b::X;".to_owned());
    mods.insert("b".to_owned(), "use crate::c::Y;".to_owned());
    mods.insert("c".to_owned(), "fn f() -> crate::a::Z {}".to_owned());
    let edges = imports(&mods);
    assert!(edges["c"].contains("a") && edges["a"].contains("b"));
    let circle = find_circle(&edges).expect("a -> b -> c -> a");
    assert_eq!(circle.len(), 4, "{circle:?}");
    mods.insert("c".to_owned(), "fn f() {}".to_owned());
    assert_eq!(find_circle(&imports(&mods)), None);
}
