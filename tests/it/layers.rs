//! The layer rule of src/lib.rs, checked on the source: a module imports
//! only from its own layer or below, and the files of one folder never
//! import each other in a circle. A change that breaks it fails here with
//! the file and the import, not months later as a tangle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top, as in the table of src/lib.rs.
const LAYERS: &[&[&str]] = &[
    &["types", "exit", "home", "permissions"],
    &["mail", "config", "smtp", "cli"],
    &["plan", "queue", "output"],
    &["outcome"],
    &["commands", "generate"],
];

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&top))
}

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// `src/smtp/session.rs` -> ["smtp", "session"]; `src/smtp/mod.rs` -> ["smtp"].
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let mut parts: Vec<String> = file
        .strip_prefix(src)
        .unwrap()
        .with_extension("")
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    parts
}

/// The module paths a file names through `crate::`, outside comments, as
/// far as they go (`crate::smtp::tls::Verify` -> ["smtp", "tls", "Verify"]),
/// with `use crate::{a, b}` groups opened.
fn crate_references(text: &str) -> Vec<Vec<String>> {
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                found.push(path_words(item.trim()));
            }
            continue;
        }
        found.push(path_words(rest));
    }
    found.retain(|path| !path.is_empty());
    found
}

fn path_words(text: &str) -> Vec<String> {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    text[..end]
        .split("::")
        .filter(|word| !word.is_empty())
        .map(str::to_string)
        .collect()
}

struct Crate {
    /// file's module path -> the module paths it references.
    references: BTreeMap<Vec<String>, Vec<Vec<String>>>,
}

fn read_crate() -> Crate {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut references = BTreeMap::new();
    for file in files {
        let module = module_path(&src, &file);
        if module.is_empty() || module == ["lib"] || module == ["main"] {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        references.insert(module, crate_references(&text));
    }
    Crate { references }
}

#[test]
fn every_module_belongs_to_a_layer() {
    let krate = read_crate();
    let unknown: BTreeSet<&String> = krate
        .references
        .keys()
        .map(|module| &module[0])
        .filter(|top| layer_of(top).is_none())
        .collect();
    assert!(
        unknown.is_empty(),
        "add these to LAYERS here and to the table in src/lib.rs: {unknown:?}"
    );
}

#[test]
fn imports_point_to_the_same_layer_or_below() {
    let krate = read_crate();
    let mut upwards = Vec::new();
    for (module, references) in &krate.references {
        let Some(own) = layer_of(&module[0]) else {
            continue;
        };
        for reference in references {
            if let Some(theirs) = layer_of(&reference[0]) {
                if theirs > own {
                    upwards.push(format!(
                        "{} imports crate::{}",
                        module.join("::"),
                        reference.join("::")
                    ));
                }
            }
        }
    }
    upwards.sort();
    upwards.dedup();
    assert!(
        upwards.is_empty(),
        "imports that point upwards:\n{}",
        upwards.join("\n")
    );
}

#[test]
fn files_of_one_folder_do_not_import_each_other_in_a_circle() {
    let krate = read_crate();
    // Edges between sibling files of one folder: smtp::session -> smtp::wire.
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, references) in &krate.references {
        if module.len() != 2 {
            continue;
        }
        for reference in references {
            let sibling = reference.len() >= 2
                && reference[0] == module[0]
                && reference[1] != module[1]
                && krate
                    .references
                    .contains_key(&vec![reference[0].clone(), reference[1].clone()]);
            if sibling {
                edges
                    .entry(module.join("::"))
                    .or_default()
                    .insert(format!("{}::{}", reference[0], reference[1]));
            }
        }
    }
    let mut circles = Vec::new();
    for start in edges.keys() {
        if let Some(circle) = circle_through(&edges, start) {
            circles.push(circle.join(" -> "));
        }
    }
    assert!(circles.is_empty(), "circles:\n{}", circles.join("\n"));
}

/// A path from `start` back to itself, if there is one.
fn circle_through(edges: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![start.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap();
        for next in edges.get(last).into_iter().flatten() {
            if next == start {
                let mut circle = path.clone();
                circle.push(next.clone());
                return Some(circle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn the_checker_sees_imports_and_ignores_comments() {
    let text = "//! [`crate::commands`]\nuse crate::{exit::Error, smtp::tls};\nfn f() { crate::queue::storage::Queue::open() }\n";
    assert_eq!(
        crate_references(text),
        [
            vec!["exit", "Error"],
            vec!["smtp", "tls"],
            vec!["queue", "storage", "Queue", "open"],
        ]
    );
}
