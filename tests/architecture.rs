//! The module layout stays layered: no import circle among `src/`'s
//! top-level modules, and only the HTTP layer and the assembly above it
//! know the HTTP layer. Reads the source: a `crate::x` path in a module's
//! non-test code is an arrow to `x`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its non-test code names.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("name")
            .trim_end_matches(".rs")
            .to_owned();
        // The crate root and the binary name modules; a sibling tests.rs is test code.
        if top == "lib"
            || top == "main"
            || rel.components().count() > 1 && rel.ends_with("tests.rs")
        {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read");
        let code = text
            .find("#[cfg(test)]\nmod tests {")
            .map_or(text.as_str(), |at| &text[..at]);
        let deps = graph.entry(top.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            // `crate::x::…` and `crate::{x, y::{…}, …}`: the first name of
            // each top-level item of the group.
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => top_level_items(group),
                None => vec![leading_name(rest)],
            };
            for name in names {
                if !name.is_empty() && name != top && name != "self" {
                    deps.insert(name.to_owned());
                }
            }
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    graph
}

/// The lower-case name `s` starts with.
fn leading_name(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The leading names of the items of a `{…}` use group, `group` being what
/// follows its `{`: nested groups are skipped, the group ends at its `}`.
fn top_level_items(group: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                names.push(leading_name(group[start..i].trim_start()));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                names.push(leading_name(group[start..i].trim_start()));
                start = i + 1;
            }
            _ => {}
        }
    }
    names
}

#[test]
fn use_groups_are_read_item_by_item() {
    assert_eq!(top_level_items("a::{b, c}, d};"), ["a", "d"]);
    assert_eq!(top_level_items("x, y::Z}"), ["x", "y"]);
}

/// The modules `from` reaches through one or more arrows.
fn reachable(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = graph[from].iter().map(String::as_str).collect();
    while let Some(m) = todo.pop() {
        if seen.insert(m.to_owned()) {
            todo.extend(graph[m].iter().map(String::as_str));
        }
    }
    seen
}

#[test]
fn src_has_no_import_circle() {
    let graph = import_graph();
    assert!(graph.len() > 20, "read only {} modules", graph.len());
    let circles: Vec<String> = graph
        .keys()
        .filter(|m| reachable(&graph, m).contains(*m))
        .map(|m| format!("{m} -> {:?}", graph[m]))
        .collect();
    assert!(
        circles.is_empty(),
        "modules on an import circle:\n{}",
        circles.join("\n")
    );
}

#[test]
fn only_the_http_layer_and_the_assembly_know_it() {
    let graph = import_graph();
    let knows_http: Vec<&String> = graph
        .iter()
        .filter(|(m, deps)| {
            deps.contains("http") && !["config", "gateway", "cli", "fuzzing"].contains(&m.as_str())
        })
        .map(|(m, _)| m)
        .collect();
    assert!(
        knows_http.is_empty(),
        "below the HTTP layer, yet importing it: {knows_http:?}"
    );
    // The leaves import nothing of the crate, the key grammar only paths.
    assert_eq!(graph["content"], BTreeSet::from(["path".to_owned()]));
    for leaf in [
        "token", "claims", "clock", "path", "keys", "client", "cookies", "logging",
    ] {
        assert!(graph[leaf].is_empty(), "{leaf} imports {:?}", graph[leaf]);
    }
}
