//! The committed completions, man pages and README blocks match what the
//! code generates, the man pages render without groff warnings, and
//! examples/config.toml parses and shows every config key.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const REGENERATE: &str = "run `cargo run -- generate .` and commit the result";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// postie with the tests' hermetic environment, its HOME in `home`.
fn postie(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_postie"))
        .env_clear()
        .envs(crate::common::hermetic_env(home))
        .current_dir(repo())
        .args(args)
        .output()
        .expect("run postie")
}

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn committed_completions_and_man_pages_are_current() {
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("out");
    // The README's generated blocks are rewritten in place: generate into a
    // copy and compare.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(repo().join("README.md"), out.join("README.md")).unwrap();
    let run = postie(&["generate", out.to_str().unwrap()], temp.path());
    assert!(
        run.status.success(),
        "postie generate failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let generated = files_under(&out);
    assert!(
        generated.len() >= 9,
        "expected 5 completions, 3 man pages and the README, got {generated:?}"
    );
    let mut problems = Vec::new();
    for file in &generated {
        let fresh = std::fs::read(out.join(file)).unwrap();
        match std::fs::read(repo().join(file)) {
            Ok(committed) if committed == fresh => {}
            Ok(_) => problems.push(format!("{} is out of date", file.display())),
            Err(_) => problems.push(format!("{} is missing", file.display())),
        }
    }
    for dir in ["completions", "man"] {
        for file in files_under(&repo().join(dir)) {
            let file = Path::new(dir).join(file);
            if !generated.contains(&file) {
                problems.push(format!(
                    "{} is not generated any more: delete it",
                    file.display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the generated files differ from what the code generates ({REGENERATE}):\n  {}",
        problems.join("\n  ")
    );
}

/// Every README table that repeats a fact of the code is a generated block,
/// so the test above covers it.
#[test]
fn a_readme_without_generated_blocks_is_left_alone() {
    // `postie generate DIR` into a staging directory that has a README of
    // its own writes the pages and completions and does not touch it.
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("stage");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("README.md"), "# someone else's\n").unwrap();
    let run = postie(&["generate", out.to_str().unwrap()], temp.path());
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("README.md")).unwrap(),
        "# someone else's\n"
    );
    assert!(out.join("man/postie.1").exists());
}

#[test]
fn readme_tables_of_code_facts_are_generated_blocks() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for block in ["exit-codes", "environment", "sendmail-options"] {
        let begin = format!("<!-- {block}:begin -->\n");
        let end = format!("<!-- {block}:end -->");
        let start = readme
            .find(&begin)
            .unwrap_or_else(|| panic!("README.md has no {begin:?}"));
        assert!(
            readme[start..].contains(&end),
            "README.md has no {end:?} after {begin:?}"
        );
        assert_eq!(
            readme.matches(&begin).count(),
            1,
            "README.md has {begin:?} twice"
        );
    }
    // No hand-kept copy outside the blocks: an exit code's sysexits name
    // in a table row, or a sendmail option row.
    let outside: String = ["exit-codes", "environment", "sendmail-options"]
        .iter()
        .fold(readme.clone(), |text, block| {
            let begin = format!("<!-- {block}:begin -->");
            let end = format!("<!-- {block}:end -->");
            let (before, rest) = text.split_once(&begin).unwrap();
            let (_, after) = rest.split_once(&end).unwrap();
            format!("{before}{after}")
        });
    for line in outside.lines().filter(|line| line.starts_with('|')) {
        assert!(
            !line.contains("| EX_") && !line.contains("| `-t` |") && !line.contains("| `POSTIE_"),
            "README.md has a hand-kept table row: {line}"
        );
    }
}

#[test]
fn man_pages_render_without_warnings() {
    if !crate::common::require_tool("groff", "groff-base") {
        return;
    }
    let pages = files_under(&repo().join("man"));
    assert_eq!(pages.len(), 5, "man/ holds {pages:?}");
    for page in pages {
        let path = repo().join("man").join(&page);
        let run = Command::new("groff")
            .args(["-mandoc", "-Tutf8", "-ww"])
            .arg(&path)
            .output()
            .expect("run groff");
        assert!(run.status.success(), "groff failed on {}", page.display());
        assert!(
            run.stderr.is_empty(),
            "groff warns about man/{}:\n{}",
            page.display(),
            String::from_utf8_lossy(&run.stderr)
        );
    }
}

#[test]
fn every_man_page_has_the_common_sections() {
    for page in files_under(&repo().join("man")) {
        let text = std::fs::read_to_string(repo().join("man").join(&page)).unwrap();
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "FILES", "\"SEE ALSO\""] {
            assert!(
                text.lines().any(|line| line == format!(".SH {section}")),
                "man/{} has no {section} section",
                page.display()
            );
        }
    }
}

#[test]
fn main_man_page_has_the_sysadmin_sections() {
    let page = std::fs::read_to_string(repo().join("man/postie.1")).unwrap();
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "CONFIGURATION",
        "\"SENDMAIL COMPATIBILITY\"",
        "\"EXIT STATUS\"",
        "ENVIRONMENT",
        "FILES",
        "EXAMPLES",
        "\"SEE ALSO\"",
    ] {
        assert!(
            page.lines().any(|line| line == format!(".SH {section}")),
            "man/postie.1 has no {section} section"
        );
    }
}

#[test]
fn example_config_parses_for_every_account() {
    let temp = tempfile::tempdir().unwrap();
    // A copy private to the user: a checkout made under umask 002 leaves
    // the file group-writable, which postie rightly refuses.
    let config = temp.path().join("config.toml");
    std::fs::copy(repo().join("examples/config.toml"), &config).unwrap();
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    for account in [None, Some("work"), Some("relay")] {
        let mut args = vec!["--config", config.to_str().unwrap()];
        if let Some(account) = account {
            args.extend(["--account", account]);
        }
        args.extend([
            "--dry-run",
            "-f",
            "a@example.com",
            "b@example.com",
            "--body",
            "x",
        ]);
        let run = postie(&args, temp.path());
        assert!(
            run.status.success(),
            "examples/config.toml (account {account:?}): {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
}

#[test]
fn config_example_prints_the_example_config_and_it_parses() {
    let temp = tempfile::tempdir().unwrap();
    let run = postie(&["config", "example"], temp.path());
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let example = std::fs::read(repo().join("examples/config.toml")).unwrap();
    assert!(
        run.stdout == example,
        "postie config example differs from examples/config.toml"
    );
    // As a user would save it: `postie config example > config.toml`.
    let config = temp.path().join("config.toml");
    std::fs::write(&config, &run.stdout).unwrap();
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--dry-run",
        "-f",
        "a@example.com",
        "b@example.com",
        "--body",
        "x",
    ];
    let run = postie(&args, temp.path());
    assert!(
        run.status.success(),
        "the printed example: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    // Alone, it names what may follow.
    let run = postie(&["config"], temp.path());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(64), "{stderr}");
    assert_eq!(
        stderr,
        "postie: error: 'postie config' needs a command: example; see 'postie config --help' (EX_USAGE 64)\n"
    );
}

/// The keys the config parser knows, from its own error message for an
/// unknown key ("expected one of `server`, `port`, ...").
fn known_keys(config: &str) -> Vec<String> {
    let temp = tempfile::tempdir().unwrap();
    let path = temp.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let run = postie(
        &[
            "--config",
            path.to_str().unwrap(),
            "--dry-run",
            "-f",
            "a@example.com",
            "b@example.com",
            "--body",
            "x",
        ],
        temp.path(),
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    let (_, expected) = stderr
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("no list of keys in: {stderr}"));
    expected
        .split(", ")
        .filter_map(|key| key.split('`').nth(1))
        .map(str::to_string)
        .collect()
}

#[test]
fn example_config_man_page_and_readme_show_every_key() {
    let example = std::fs::read_to_string(repo().join("examples/config.toml")).unwrap();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let (_, readme_keys) = readme
        .split_once("Account keys (also allowed in `[defaults]`)")
        .expect("README lists the account keys");
    let readme_keys = readme_keys.split("\n\n").next().unwrap();
    let man = std::fs::read_to_string(repo().join("man/postie.toml.5")).unwrap();
    let account_keys = known_keys("[accounts.a]\nno_such_key = 1\n");
    let top_keys = known_keys("no_such_key = 1\n");
    assert!(account_keys.len() > 20, "{account_keys:?}");
    for key in account_keys.iter().chain(&top_keys) {
        if key == "defaults" || key == "accounts" {
            continue; // tables, not keys
        }
        let shown = example.lines().any(|line| {
            let line = line.trim_start_matches("# ");
            line.starts_with(&format!("{key} = "))
        });
        assert!(
            shown,
            "examples/config.toml does not show `{key} = ...` (commented or not)"
        );
        assert!(
            man.contains(&format!("\\fB{key} =\\fR")),
            "man/postie.toml.5 does not describe `{key}`"
        );
        assert!(
            readme_keys.contains(&format!("`{key}`")),
            "README's paragraph of account and top-level keys does not name `{key}`"
        );
    }
}

#[test]
fn version_names_the_tls_library() {
    let temp = tempfile::tempdir().unwrap();
    let run = postie(&["--version"], temp.path());
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success());
    assert!(
        stdout.starts_with(concat!("postie ", env!("CARGO_PKG_VERSION"), " (OpenSSL ")),
        "{stdout}"
    );
}

#[test]
fn help_is_a_summary_and_help_long_has_the_details() {
    let temp = tempfile::tempdir().unwrap();
    let detail = "as mailx does";
    for flag in ["-h", "--help"] {
        let run = postie(&[flag], temp.path());
        assert!(run.status.success());
        let help = String::from_utf8_lossy(&run.stdout);
        assert!(help.contains("Authentication:"), "{help}");
        assert!(!help.contains(detail), "{flag} shows the long help");
        assert!(help.contains("postie queue --help"), "{help}");
    }
    let run = postie(&["--help-long"], temp.path());
    assert!(run.status.success());
    let help = String::from_utf8_lossy(&run.stdout);
    assert!(help.contains(detail), "{help}");
}
