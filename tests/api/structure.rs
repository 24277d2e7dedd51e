//! The shape of the code, read from its files: the top-level modules of `src/`
//! depend on each other in one direction only (no import cycle), so that each
//! layer can be read, and changed, without the ones above it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every `crate::NAME` a module's files mention, by top-level module.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        let mut text = String::new();
        let mut files = vec![path.clone()];
        while let Some(file) = files.pop() {
            if file.is_dir() {
                files.extend(std::fs::read_dir(&file).unwrap().map(|e| e.unwrap().path()));
            } else if file.extension().is_some_and(|e| e == "rs") {
                text.push_str(&std::fs::read_to_string(&file).unwrap());
            }
        }
        let mut uses = BTreeSet::new();
        for (at, _) in text.match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            let used: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !used.is_empty() && used != name {
                uses.insert(used);
            }
        }
        graph.insert(name, uses);
    }
    graph
}

#[test]
fn the_top_level_modules_have_no_import_cycle() {
    let graph = dependencies();
    assert!(graph.contains_key("store") && graph.contains_key("http"));
    // Kahn's algorithm: whatever cannot be ordered lies on a cycle.
    let mut left = graph.clone();
    loop {
        let ready: Vec<String> = left
            .iter()
            .filter(|(_, uses)| uses.iter().all(|u| !left.contains_key(u)))
            .map(|(name, _)| name.clone())
            .collect();
        if ready.is_empty() {
            break;
        }
        for name in ready {
            left.remove(&name);
        }
    }
    assert!(left.is_empty(), "modules on an import cycle: {left:?}");
    // The layers the code is read by: the ecosystems' rules (which depend on
    // nothing) under the domain and the settings at the bottom, the database
    // above them, the rules above that, and the edges (HTTP, the command
    // line) on top.
    assert!(
        graph["ecosystems"].is_empty(),
        "ecosystems depends on {:?}",
        graph["ecosystems"]
    );
    for (low, high) in [
        ("ecosystems", "domain"),
        ("domain", "store"),
        ("config", "store"),
        ("metrics", "store"),
        ("store", "promotion"),
        ("promotion", "http"),
        ("http", "cli"),
    ] {
        assert!(
            !graph[low].contains(high),
            "{low} depends on {high}, which is above it"
        );
    }
}
