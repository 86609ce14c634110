//! The layer rule of src/lib.rs, checked on the source: a module imports
//! only from its own layer or below, and the modules of one folder (its
//! mod.rs included) never import each other in a circle. A change that
//! breaks it fails here with the module and the import, not months later as
//! a tangle.
//!
//! The layers are read from the table in src/lib.rs, the one place they are
//! written; the README's Layout table must list the same modules per layer.
//! Imports are read from `use` trees (groups, `self`, `super`, renames) and
//! from paths written inline (`crate::x::y`, `super::x`, a child module's
//! name), outside comments, strings and the test module at the end of a
//! file (tests may reach anything).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The layers, bottom to top, from the table in src/lib.rs: each row's
/// [`module`] links.
fn layers_of_lib(lib: &str) -> Vec<BTreeSet<String>> {
    lib.lines()
        .filter_map(|line| line.strip_prefix("//! |"))
        .filter(|row| row.contains("[`"))
        .map(|row| {
            row.split("[`")
                .skip(1)
                .filter_map(|link| link.split_once("`]").map(|(name, _)| name.to_string()))
                .collect()
        })
        .collect()
}

/// The same from the README's Layout table: rows with the same label in
/// the first column form one layer; `x.rs` and `x/` name module `x`.
fn layers_of_readme(readme: &str) -> Vec<BTreeSet<String>> {
    let layout = readme
        .split("\n## Layout\n")
        .nth(1)
        .expect("README has a Layout section");
    let mut layers: Vec<(String, BTreeSet<String>)> = Vec::new();
    for row in layout.lines().take_while(|line| !line.starts_with("## ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        if cells.len() < 4 || cells[1] == "layer" || cells[1].starts_with("---") {
            continue;
        }
        let modules: BTreeSet<String> = cells[2]
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|name| *name != "main.rs")
            .map(|name| {
                name.trim_end_matches(".rs")
                    .trim_end_matches('/')
                    .to_string()
            })
            .collect();
        match layers.last_mut() {
            Some((label, set)) if *label == cells[1] => set.extend(modules),
            _ => layers.push((cells[1].to_string(), modules)),
        }
    }
    layers.into_iter().map(|(_, set)| set).collect()
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
fn module_path(file: &Path) -> Module {
    let mut parts: Module = file
        .strip_prefix(src())
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

/// The code of a file without comments, string and char contents, and the
/// `#[cfg(test)]` module that ends it.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |end| end + 2);
        } else if rest.starts_with("r#\"") {
            i += rest.find("\"#").map_or(rest.len(), |end| end + 2);
            out.push_str("\"\"");
        } else if bytes[i] == b'"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i = j + 1;
        } else if rest.starts_with("'\\") || (rest.len() > 2 && rest.as_bytes()[2] == b'\'') {
            // A char literal ('"', '\n'); a lifetime ('a) has no closing quote.
            let end = rest[1..].find('\'').map_or(1, |end| end + 2);
            i += end;
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Every path a `use` tree names: `crate::{a, b::{c, d as e}}` ->
/// crate::a, crate::b::c, crate::b::d.
fn expand_use(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    if let Some(open) = tree.find('{') {
        let head = &tree[..open];
        let mut base = prefix.to_vec();
        base.extend(segments(head));
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        for item in split_top_level(inner) {
            expand_use(item, &base, out);
        }
        return;
    }
    let path = tree.split(" as ").next().unwrap_or(tree);
    let mut full = prefix.to_vec();
    full.extend(segments(path));
    if full.last().is_some_and(|last| last == "self") {
        full.pop();
    }
    out.push(full);
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(str::trim)
        .filter(|word| !word.is_empty() && *word != "*")
        .map(str::to_string)
        .collect()
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (at, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
}

/// The paths a file's code names: its `use` trees, and paths written
/// inline that start with `crate::`, `super::` or `self::` or with the name
/// of one of `children` (the module's own submodules).
fn named_paths(code: &str, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut found = Vec::new();
    let mut rest_of_code = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().next_back();
        let Some(end) = rest[at..].find(';') else {
            break;
        };
        if before.is_some_and(is_word) {
            rest_of_code.push_str(&rest[..at + 4]);
            rest = &rest[at + 4..];
            continue;
        }
        rest_of_code.push_str(&rest[..at]);
        expand_use(&rest[at + 4..at + end], &[], &mut found);
        rest = &rest[at + end..];
    }
    rest_of_code.push_str(rest);
    let mut starts: Vec<&str> = vec!["crate::", "super::", "self::"];
    let child_prefixes: Vec<String> = children.iter().map(|child| format!("{child}::")).collect();
    starts.extend(child_prefixes.iter().map(String::as_str));
    for start in starts {
        for (at, _) in rest_of_code.match_indices(start) {
            let before = rest_of_code[..at].chars().next_back();
            if before.is_some_and(|c| is_word(c) || c == ':') {
                continue;
            }
            let tail = &rest_of_code[at..];
            let end = tail
                .find(|c: char| !(is_word(c) || c == ':'))
                .unwrap_or(tail.len());
            found.push(segments(&tail[..end]));
        }
    }
    found
}

/// The module a path names, resolved from `module`, as far as a module of
/// the crate goes: `super::man::pages` in generate::completions ->
/// ["generate", "man"].
fn resolve(path: &[String], module: &Module, modules: &BTreeSet<Module>) -> Option<Module> {
    let mut base: Module = match path.first().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("self") => module.clone(),
        Some("super") => module[..module.len().saturating_sub(1)].to_vec(),
        Some(first) => {
            let mut child = module.clone();
            child.push(first.to_string());
            if !modules.contains(&child) {
                return None; // an extern crate or a local item
            }
            module.clone()
        }
        None => return None,
    };
    let skip = usize::from(matches!(
        path.first().map(String::as_str),
        Some("crate" | "self" | "super")
    ));
    let mut rest = path[skip..].iter();
    for word in rest.by_ref() {
        if word == "super" {
            base.pop();
            continue;
        }
        let mut deeper = base.clone();
        deeper.push(word.clone());
        if !modules.contains(&deeper) {
            break;
        }
        base = deeper;
    }
    (!base.is_empty() && modules.contains(&base)).then_some(base)
}

struct Crate {
    layers: Vec<BTreeSet<String>>,
    /// module -> the modules it names (itself left out).
    imports: BTreeMap<Module, BTreeSet<Module>>,
}

fn read_crate() -> Crate {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut files = Vec::new();
    source_files(&src(), &mut files);
    let by_module: BTreeMap<Module, PathBuf> = files
        .into_iter()
        .map(|file| (module_path(&file), file))
        .filter(|(module, _)| !module.is_empty() && *module != ["lib"] && *module != ["main"])
        .collect();
    let modules: BTreeSet<Module> = by_module.keys().cloned().collect();
    let mut imports = BTreeMap::new();
    for (module, file) in &by_module {
        let children: BTreeSet<String> = modules
            .iter()
            .filter(|other| other.len() == module.len() + 1 && other.starts_with(module))
            .map(|child| child.last().unwrap().clone())
            .collect();
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let named: BTreeSet<Module> = named_paths(&code, &children)
            .iter()
            .filter_map(|path| resolve(path, module, &modules))
            .filter(|target| target != module)
            .collect();
        imports.insert(module.clone(), named);
    }
    Crate {
        layers: layers_of_lib(&lib),
        imports,
    }
}

impl Crate {
    fn layer_of(&self, top: &str) -> Option<usize> {
        self.layers.iter().position(|layer| layer.contains(top))
    }
}

#[test]
fn every_module_belongs_to_a_layer_and_the_readme_agrees() {
    let krate = read_crate();
    assert!(krate.layers.len() >= 4, "{:?}", krate.layers);
    let unknown: BTreeSet<&String> = krate
        .imports
        .keys()
        .map(|module| &module[0])
        .filter(|top| krate.layer_of(top).is_none())
        .collect();
    assert!(
        unknown.is_empty(),
        "add these to the layer table in src/lib.rs: {unknown:?}"
    );
    let readme = std::fs::read_to_string(src().join("../README.md")).unwrap();
    assert_eq!(
        layers_of_readme(&readme),
        krate.layers,
        "README's Layout table and src/lib.rs's disagree"
    );
}

#[test]
fn imports_point_to_the_same_layer_or_below() {
    let krate = read_crate();
    let mut upwards = Vec::new();
    for (module, targets) in &krate.imports {
        let own = krate.layer_of(&module[0]);
        for target in targets {
            if krate.layer_of(&target[0]) > own {
                upwards.push(format!(
                    "{} imports {}",
                    module.join("::"),
                    target.join("::")
                ));
            }
        }
    }
    assert!(
        upwards.is_empty(),
        "imports that point upwards:\n{}",
        upwards.join("\n")
    );
}

#[test]
fn modules_of_one_folder_do_not_import_each_other_in_a_circle() {
    let krate = read_crate();
    // Edges inside one top folder, its mod.rs included.
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, targets) in &krate.imports {
        for target in targets.iter().filter(|target| target[0] == module[0]) {
            edges
                .entry(module.clone())
                .or_default()
                .insert(target.clone());
        }
    }
    let circles: Vec<String> = edges
        .keys()
        .filter_map(|start| circle_through(&edges, start))
        .map(|circle| {
            circle
                .iter()
                .map(|module| module.join("::"))
                .collect::<Vec<_>>()
                .join(" -> ")
        })
        .collect();
    assert!(circles.is_empty(), "circles:\n{}", circles.join("\n"));
}

/// A path from `start` back to itself, if there is one.
fn circle_through(
    edges: &BTreeMap<Module, BTreeSet<Module>>,
    start: &Module,
) -> Option<Vec<Module>> {
    let mut stack = vec![vec![start.clone()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        for next in edges.get(path.last().unwrap()).into_iter().flatten() {
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
fn the_checker_reads_use_trees_super_and_inline_paths_but_not_comments() {
    let modules: BTreeSet<Module> = [
        vec!["exit"],
        vec!["smtp"],
        vec!["smtp", "tls"],
        vec!["smtp", "wire"],
        vec!["plan"],
        vec!["generate"],
        vec!["generate", "man"],
        vec!["generate", "readme"],
    ]
    .into_iter()
    .map(|module| module.into_iter().map(str::to_string).collect())
    .collect();
    let code = code_of(
        "//! [`crate::plan`]\n\
         use crate::{exit::Error, smtp::{tls::{self, Verify}, wire as w}};\n\
         /* crate::plan */ const A: &str = \"crate::plan\";\n\
         fn f() { super::readme::update(); man::pages(); }\n\
         #[cfg(test)]\nmod tests { use crate::plan; }\n",
    );
    let module: Module = vec!["generate".into(), "man".into()];
    let children = BTreeSet::new();
    let named: BTreeSet<Module> = named_paths(&code, &children)
        .iter()
        .filter_map(|path| resolve(path, &module, &modules))
        .collect();
    let names: Vec<String> = named.iter().map(|module| module.join("::")).collect();
    assert_eq!(
        names,
        ["exit", "generate::readme", "smtp::tls", "smtp::wire"]
    );
    // From generate/mod.rs, a child's name alone is a path.
    let parent: Module = vec!["generate".into()];
    let children: BTreeSet<String> = ["man".to_string()].into();
    let named: Vec<Module> = named_paths(&code, &children)
        .iter()
        .filter_map(|path| resolve(path, &parent, &modules))
        .collect();
    assert!(named.contains(&vec!["generate".to_string(), "man".to_string()]));
}
