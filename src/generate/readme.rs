//! The README's generated blocks: the tables of exit codes, environment
//! variables and sendmail options, from the same sources as the man pages.
//!
//! Each block sits between `<!-- NAME:begin -->` and `<!-- NAME:end -->`
//! lines; `postie generate .` rewrites what is between them, and
//! tests/it/generated.rs fails when the committed README differs.

use super::environment;
use crate::cli::sendmail;
use crate::exit::{self, Exit};

/// Every generated block: its marker name and its Markdown.
pub(crate) fn blocks() -> Vec<(&'static str, String)> {
    vec![
        ("exit-codes", exit_codes()),
        ("environment", environment()),
        ("sendmail-options", sendmail_options()),
        ("reserved-words", reserved_words()),
    ]
}

/// `readme` with every generated block rewritten: `None` for a README
/// with no generated block at all (not postie's, say in a staging
/// directory: left alone); `Err` names a block whose markers are missing
/// from one that has others.
pub(crate) fn update(readme: &str) -> Result<Option<String>, String> {
    let marker = |name: &str, end: &str| format!("<!-- {name}:{end} -->");
    if !blocks()
        .iter()
        .any(|(name, _)| readme.contains(&marker(name, "begin")))
    {
        return Ok(None);
    }
    let mut out = readme.to_string();
    for (name, block) in blocks() {
        let begin = format!("{}\n", marker(name, "begin"));
        let end = marker(name, "end");
        let missing = || format!("no {} ... {end} block", begin.trim_end());
        let start = out.find(&begin).ok_or_else(missing)? + begin.len();
        let stop = start + out[start..].find(&end).ok_or_else(missing)?;
        out.replace_range(start..stop, &format!("\n{block}\n"));
    }
    Ok(Some(out))
}

fn reserved_words() -> String {
    format!("{}\n", crate::cli::invocation::reserved_words_help())
}

fn exit_codes() -> String {
    let mut table = String::from("| code | name | meaning |\n|---|---|---|\n");
    table.push_str(&format!("| 0 | | {} |\n", markdown(exit::SUCCESS.1)));
    for exit in Exit::ALL {
        table.push_str(&format!(
            "| {} | {} | {} |\n",
            exit.code(),
            exit.name(),
            markdown(exit.description())
        ));
    }
    table
}

fn environment() -> String {
    let mut table = String::from("| variable | meaning |\n|---|---|\n");
    for variable in environment::all() {
        table.push_str(&format!(
            "| `{}` | {} |\n",
            variable.name,
            markdown(&variable.description)
        ));
    }
    table
}

fn sendmail_options() -> String {
    let mut table = String::from("| option | effect |\n|---|---|\n");
    for option in sendmail::OPTIONS {
        table.push_str(&format!(
            "| {} | {} |\n",
            markdown(option.synopsis),
            markdown(option.effect)
        ));
    }
    table
}

/// The man page markup (`code`, *placeholder*) is Markdown already; outside
/// code, `<` and `|` are escaped so that a table cell stays one cell and
/// `<addr>` is not taken for HTML.
fn markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut code = false;
    for c in text.chars() {
        match c {
            '`' => code = !code,
            '<' | '|' if !code => out.push('\\'),
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_rewrites_between_the_markers_only() {
        let readme = "# x\n<!-- exit-codes:begin -->\nSTALE\n<!-- exit-codes:end -->\n\
                      <!-- environment:begin -->\n<!-- environment:end -->\n\
                      <!-- sendmail-options:begin -->\n<!-- sendmail-options:end -->\n\
                      <!-- reserved-words:begin -->\n<!-- reserved-words:end -->\ntail\n";
        let updated = update(readme).unwrap().unwrap();
        assert!(updated.starts_with("# x\n<!-- exit-codes:begin -->\n\n| code |"));
        assert!(!updated.contains("STALE"));
        assert!(updated.ends_with("with --to NAME.\n\n<!-- reserved-words:end -->\ntail\n"));
        assert_eq!(update(&updated).unwrap().unwrap(), updated);
    }

    #[test]
    fn update_names_a_missing_block_and_leaves_other_readmes_alone() {
        let err =
            update("# x\n<!-- environment:begin -->\n<!-- environment:end -->\n").unwrap_err();
        assert!(err.contains("exit-codes:begin"), "{err}");
        assert_eq!(update("# someone else's README\n"), Ok(None));
    }

    #[test]
    fn markdown_escapes_outside_code_only() {
        assert_eq!(markdown("a <b> `<c>|` d|e"), "a \\<b> `<c>|` d\\|e");
    }
}
