//! The crate's layering (issue #11): no top-level module of `src/` imports a module that
//! imports it back, directly or through others. Reads every `crate::NAME` path in `src/`
//! (imports and qualified paths alike, outside comments) and checks that the graph of
//! top-level modules has no cycle. Needs no broker.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The top-level module a file under `src/` belongs to (`src/config/mod.rs` -> `config`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("file under src");
    let first = rel.components().next().expect("non-empty path");
    let name = first.as_os_str().to_string_lossy().into_owned();
    name.trim_end_matches(".rs").to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Edges `module -> modules it names through crate::`, from code (not comments, not doc
/// links) and outside `#[cfg(test)]` modules' bodies (tests may reach anywhere).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let from = module_of(&src, &file);
        if from == "lib" || from == "main" {
            continue; // the crate root and the binary sit on top of everything
        }
        let text = fs::read_to_string(&file).expect("read source");
        // Everything after the first `#[cfg(test)]` is test code.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for line in code.lines() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            let line = line.split("//").next().unwrap_or("");
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != from {
                    edges.entry(from.clone()).or_default().insert(name);
                }
            }
        }
        edges.entry(from).or_default();
    }
    edges
}

/// A cycle through `start`, if any, as the list of modules on it.
fn cycle_from(
    edges: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    node: &str,
    path: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    for next in edges.get(node).into_iter().flatten() {
        if next == start {
            let mut cycle = path.clone();
            cycle.push(start.to_owned());
            return Some(cycle);
        }
        if seen.insert(next.clone()) {
            path.push(next.clone());
            if let Some(c) = cycle_from(edges, start, next, path, seen) {
                return Some(c);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn no_top_level_module_imports_a_module_that_imports_it_back() {
    let edges = graph();
    assert!(
        edges.contains_key("config") && edges.contains_key("alerting"),
        "{edges:?}"
    );
    let mut cycles = Vec::new();
    for start in edges.keys() {
        let mut path = vec![start.clone()];
        if let Some(c) = cycle_from(&edges, start, start, &mut path, &mut BTreeSet::new()) {
            cycles.push(c.join(" -> "));
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn leaf_modules_import_nothing_of_the_crate() {
    let edges = graph();
    for leaf in ["util", "types"] {
        let deps = &edges[leaf];
        assert!(deps.is_empty(), "{leaf} imports {deps:?}");
    }
    // The matcher parses label matchers and may use the leaf types only.
    let deps = &edges["matcher"];
    assert!(
        deps.iter().all(|d| d == "types" || d == "util"),
        "matcher imports {deps:?}"
    );
}

#[test]
fn the_checker_finds_a_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    edges.entry("c".into()).or_default().insert("a".into());
    let mut path = vec!["a".to_owned()];
    let cycle = cycle_from(&edges, "a", "a", &mut path, &mut BTreeSet::new());
    assert_eq!(
        cycle.as_deref().map(|c| c.join(" -> ")),
        Some("a -> b -> c -> a".to_owned())
    );
}

/// The size rule of issue #11: no source file holds more than 800 lines before its
/// `#[cfg(test)]` module (the whole file when it has none). A file that grows past it is split
/// by concern.
#[test]
fn no_source_file_has_more_than_800_lines_before_its_tests() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found only {} source files", files.len());
    let mut over: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let text = fs::read_to_string(file).expect("read source");
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let lines = code.lines().count();
            (lines > 800).then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect();
    over.sort();
    assert!(over.is_empty(), "over 800 lines before the tests: {over:?}");
}
