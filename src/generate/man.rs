//! The man pages: roff templates in `doc/`, read at compile time, whose
//! placeholders are filled from the code.
//!
//! A placeholder is a line of its own, `{{NAME}}`, replaced by roff lines;
//! `{{VERSION}}` may also stand inside a line. The prose is the templates'
//! (doc/README.md describes them); what the code knows is filled in here:
//!
//! - `{{NAME}}` and `{{OPTIONS}}`: clap_mangen's rendering of the clap
//!   definitions in `cli` (one `.SS` subsection per help heading);
//! - `{{COMMANDS}}`: the subcommands of `postie queue` and their options;
//! - `{{EXIT STATUS}}`: every [`Exit`], its code, name and description;
//! - `{{ENVIRONMENT}}`: the variables of the clap definitions and those of
//!   [`environment::OTHERS`];
//! - `{{SENDMAIL OPTIONS}}`: [`sendmail::OPTIONS`];
//! - `{{MAILDROP}}`: doc/maildrop.in, the text both postie(1) and
//!   postie-queue(1) give the maildrop.
//!
//! Man page text must stay ASCII: groff reads its input as Latin-1 unless
//! preconv runs first.

use std::path::PathBuf;

use clap::{Arg, Command, CommandFactory};
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use clap_mangen::Man;

use super::commands::{self, VERSION};
use super::environment::{self, Variable};
use crate::cli::args::{DkimCli, OAuth2Cli, QueueCli};
use crate::cli::sendmail;
use crate::config::file as config;
use crate::exit::{self, Exit};
use crate::plan::secret;
use crate::queue::system;
use crate::smtp::tls;
use crate::types::{AuthMethod, QueuePolicy, TlsMode};

const POSTIE_1: &str = include_str!("../../doc/postie.1.in");
const POSTIE_QUEUE_1: &str = include_str!("../../doc/postie-queue.1.in");
const POSTIE_OAUTH2_1: &str = include_str!("../../doc/postie-oauth2.1.in");
const POSTIE_DKIM_1: &str = include_str!("../../doc/postie-dkim.1.in");
const POSTIE_TOML_5: &str = include_str!("../../doc/postie.toml.5.in");
const MAILDROP: &str = include_str!("../../doc/maildrop.in");

/// Every man page: its path under DIR and its roff text.
pub(crate) fn pages() -> Vec<(PathBuf, String)> {
    vec![
        (PathBuf::from("man/postie.1"), postie_page()),
        (PathBuf::from("man/postie-queue.1"), queue_page()),
        (PathBuf::from("man/postie-oauth2.1"), oauth2_page()),
        (PathBuf::from("man/postie-dkim.1"), dkim_page()),
        (PathBuf::from("man/postie.toml.5"), config_page()),
    ]
}

fn postie_page() -> String {
    let clap = ClapText::of(commands::command());
    fill(
        POSTIE_1,
        &[
            ("NAME", clap.name),
            ("OPTIONS", clap.options),
            ("SENDMAIL OPTIONS", sendmail_options()),
            (
                "RESERVED WORDS",
                paragraph(&crate::cli::invocation::reserved_words_help()),
            ),
            ("MAILDROP", MAILDROP.to_string()),
            ("EXIT STATUS", exit_status()),
            ("ENVIRONMENT", variables(&environment::all())),
        ],
    )
}

/// postie.toml(5): the keys whose values are an enum list them as clap
/// spells them, which is also how the config and the queue's records spell
/// them (`types::tests` checks that).
fn config_page() -> String {
    fill(
        POSTIE_TOML_5,
        &[
            ("TLS KEY", key_values::<TlsMode>("tls")),
            ("AUTH KEY", key_values::<AuthMethod>("auth")),
            ("QUEUE KEY", key_values::<QueuePolicy>("queue")),
        ],
    )
}

/// A config key's heading with its values: `tls = "starttls" | ...`.
fn key_values<T: clap::ValueEnum>(key: &str) -> String {
    let values: Vec<String> = T::value_variants()
        .iter()
        .filter_map(|value| value.to_possible_value())
        .map(|value| format!("\\fB\"{}\"\\fR", value.get_name().replace('-', "\\-")))
        .collect();
    format!("\\fB{key} =\\fR {}\n", values.join(" | "))
}

fn queue_page() -> String {
    let command = commands::queue_command()
        .bin_name("postie queue")
        .display_name("postie-queue");
    let clap = ClapText::of(command);
    let mut environment = environment::of_command(&QueueCli::command());
    environment.extend(environment::others(&[
        secret::PASSWORD_ENV,
        "XDG_STATE_HOME",
        system::SPOOL_ENV,
        config::SYSTEM_CONFIG_ENV,
        tls::CERT_DIR_ENV,
        tls::CERT_FILE_ENV,
    ]));
    fill(
        POSTIE_QUEUE_1,
        &[
            ("NAME", clap.name),
            ("OPTIONS", clap.options),
            ("COMMANDS", subcommands(&QueueCli::command())),
            ("MAILDROP", MAILDROP.to_string()),
            ("ENVIRONMENT", variables(&environment)),
        ],
    )
}

/// `template` with `{{VERSION}}` and each placeholder line `{{KEY}}` of
/// `fills` replaced.
///
/// # Panics
///
/// When the template has a placeholder that `fills` lacks, or `fills` one
/// that the template lacks: the drift test then fails at once.
fn fill(template: &str, fills: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    let mut used = Vec::new();
    for line in template.split_inclusive('\n') {
        let key = line
            .trim_end()
            .strip_prefix("{{")
            .and_then(|rest| rest.strip_suffix("}}"));
        match key {
            Some(key) if key != "VERSION" => {
                let (_, text) = fills
                    .iter()
                    .find(|(known, _)| *known == key)
                    .unwrap_or_else(|| panic!("no text for the placeholder {{{{{key}}}}}"));
                assert!(
                    text.ends_with('\n'),
                    "{{{{{key}}}}} must end with a newline"
                );
                out.push_str(text);
                used.push(key);
            }
            _ => out.push_str(&line.replace("{{VERSION}}", VERSION)),
        }
    }
    for (key, _) in fills {
        assert!(used.contains(key), "the template has no {{{{{key}}}}}");
    }
    assert!(
        !out.contains("{{"),
        "an unknown placeholder is left in:\n{out}"
    );
    out
}

// ---------------------------------------------------------------------------
// Generated sections

/// The EXIT STATUS items: 0, then every [`Exit`].
fn exit_status() -> String {
    let mut out = item("`0`", exit::SUCCESS.1);
    for exit in Exit::ALL {
        out.push_str(&item(
            &format!("`{} {}`", exit.code(), exit.name()),
            exit.description(),
        ));
    }
    out
}

fn variables(variables: &[Variable]) -> String {
    variables
        .iter()
        .map(|variable| item(&format!("`{}`", variable.name), &variable.description))
        .collect()
}

fn sendmail_options() -> String {
    sendmail::OPTIONS
        .iter()
        .map(|option| item(option.synopsis, option.effect))
        .collect()
}

fn oauth2_page() -> String {
    let command = commands::oauth2_command()
        .bin_name("postie oauth2")
        .display_name("postie-oauth2");
    let clap = ClapText::of(command);
    let mut environment = environment::of_command(&OAuth2Cli::command());
    environment.extend(environment::others(&[
        "XDG_STATE_HOME",
        config::SYSTEM_CONFIG_ENV,
        crate::oauth2::store::SYSTEM_DIR_ENV,
    ]));
    fill(
        POSTIE_OAUTH2_1,
        &[
            ("NAME", clap.name),
            ("OPTIONS", clap.options),
            ("COMMANDS", subcommands(&OAuth2Cli::command())),
            ("ENVIRONMENT", variables(&environment)),
        ],
    )
}

fn dkim_page() -> String {
    let command = commands::dkim_command()
        .bin_name("postie dkim")
        .display_name("postie-dkim");
    let clap = ClapText::of(command);
    fill(
        POSTIE_DKIM_1,
        &[
            ("NAME", clap.name),
            ("COMMANDS", subcommands(&DkimCli::command())),
        ],
    )
}

/// Each subcommand of `command` (`postie queue`, `postie oauth2`), with
/// its arguments and options.
fn subcommands(command: &Command) -> String {
    let mut out = String::new();
    for sub in command.get_subcommands() {
        let mut term = format!("`{}`", sub.get_name());
        for arg in sub.get_arguments() {
            term.push(' ');
            term.push_str(&arg_synopsis(arg));
        }
        out.push_str(&item(
            &term,
            &sub.get_about().map(|a| a.to_string()).unwrap_or_default(),
        ));
        let options: Vec<&Arg> = sub.get_arguments().filter(|a| !a.is_positional()).collect();
        if !options.is_empty() {
            out.push_str(".RS\n");
            for arg in options {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                out.push_str(&item(&arg_synopsis(arg).replace(['[', ']'], ""), &help));
            }
            out.push_str(".RE\n");
        }
    }
    out
}

/// `--json`, `-v`..., `ID`: how an argument reads in a synopsis.
fn arg_synopsis(arg: &Arg) -> String {
    if arg.is_positional() {
        let name = arg
            .get_value_names()
            .and_then(|names| names.first())
            .map(|n| n.to_string())
            .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
        return format!("*{name}*");
    }
    let mut names = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(format!("`-{short}`"));
    }
    if let Some(long) = arg.get_long() {
        names.push(format!("`--{long}`"));
    }
    format!("[{}]", names.join(", "))
}

// ---------------------------------------------------------------------------
// clap_mangen

/// What clap_mangen renders of a command that the pages use: the body of
/// NAME, and OPTIONS with one `.SS` subsection per help heading.
struct ClapText {
    name: String,
    options: String,
}

impl ClapText {
    /// Renders `command` with clap_mangen and keeps NAME and OPTIONS. Its
    /// SYNOPSIS and DESCRIPTION are the templates' own, and its VERSION,
    /// EXTRA and SUBCOMMANDS sections are said in the pages' own sections.
    fn of(command: Command) -> ClapText {
        let headings: Vec<String> = command
            .get_arguments()
            .filter_map(Arg::get_help_heading)
            .map(str::to_string)
            .collect();
        let mut rendered = Vec::new();
        Man::new(command)
            .render(&mut rendered)
            .expect("rendering to memory cannot fail");
        let rendered = String::from_utf8(rendered).expect("clap_mangen writes UTF-8");
        let mut text = ClapText {
            name: String::new(),
            options: String::new(),
        };
        let mut sections: Vec<(String, String)> = Vec::new();
        for line in rendered.lines() {
            if let Some(title) = line.strip_prefix(".SH ") {
                sections.push((title.trim_matches('"').to_string(), String::new()));
            } else if let Some((_, body)) = sections.last_mut() {
                body.push_str(line);
                body.push('\n');
            }
        }
        for (title, body) in sections {
            let body = bold_backticks(&body);
            let heading = headings.iter().find(|h| h.to_uppercase() == title);
            match (title.as_str(), heading) {
                (_, Some(heading)) => text.options.push_str(&format!(".SS {heading}\n{body}")),
                ("NAME", None) => text.name = body,
                ("OPTIONS", None) => text.options.insert_str(0, &body),
                _ => {}
            }
        }
        text
    }
}

/// The help texts quote commands as `--inline img/logo.png`, for the
/// terminal; in a man page those are bold instead. Control lines, and text
/// lines with an odd number of backticks, are left alone.
fn bold_backticks(roff: &str) -> String {
    let mut out = String::with_capacity(roff.len());
    for line in roff.lines() {
        if line.starts_with('.') || line.matches('`').count() % 2 != 0 {
            out.push_str(line);
        } else {
            let mut open = false;
            for c in line.chars() {
                if c == '`' {
                    out.push_str(if open { "\\fR" } else { "\\fB" });
                    open = !open;
                } else {
                    out.push(c);
                }
            }
        }
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------
// roff

/// A tagged paragraph: `term` on its own line, `text` indented below. Both
/// take a little markup: `code` is set in bold (commands, options, keys,
/// paths) and *word* in italics (placeholders).
fn item(term: &str, text: &str) -> String {
    let roff = Roff::new()
        .control("TP", [])
        .text(inline(term))
        .text(inline(text))
        .render();
    // Each Roff renders the apostrophe preamble; the template has it once.
    match roff.split_once(".el .ds Aq '\n") {
        Some((_, body)) => body.to_string(),
        None => roff,
    }
}

/// A line of running text, with the markup of [`item`].
fn paragraph(text: &str) -> String {
    let roff = Roff::new().text(inline(text)).render();
    match roff.split_once(".el .ds Aq '\n") {
        Some((_, body)) => body.to_string(),
        None => roff,
    }
}

/// Turns the markup of [`item`] into roff inlines.
fn inline(text: &str) -> Vec<Inline> {
    #[derive(PartialEq)]
    enum Font {
        Roman,
        Bold,
        Italic,
    }
    fn flush(out: &mut Vec<Inline>, current: &mut String, font: &Font) {
        if current.is_empty() {
            return;
        }
        let text = std::mem::take(current);
        out.push(match font {
            Font::Roman => roman(text),
            Font::Bold => bold(text),
            Font::Italic => italic(text),
        });
    }
    let mut out = Vec::new();
    let mut current = String::new();
    let mut font = Font::Roman;
    for c in text.chars() {
        let next = match (c, &font) {
            ('`', Font::Roman) => Some(Font::Bold),
            ('`', Font::Bold) => Some(Font::Roman),
            ('*', Font::Roman) => Some(Font::Italic),
            ('*', Font::Italic) => Some(Font::Roman),
            _ => None,
        };
        match next {
            Some(next) => {
                flush(&mut out, &mut current, &font);
                font = next;
            }
            None => current.push(c),
        }
    }
    assert!(font == Font::Roman, "unbalanced markup in {text:?}");
    flush(&mut out, &mut current, &font);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_placeholder_lines_and_the_version() {
        let page = fill(
            ".TH X 1 \"\" \"postie {{VERSION}}\"\n.SH A\n{{A}}\n.SH B\n",
            &[("A", ".TP\nx\n".to_string())],
        );
        assert_eq!(
            page,
            format!(".TH X 1 \"\" \"postie {VERSION}\"\n.SH A\n.TP\nx\n.SH B\n")
        );
    }

    #[test]
    #[should_panic(expected = "no text for the placeholder {{B}}")]
    fn fill_refuses_an_unknown_placeholder() {
        fill("{{B}}\n", &[]);
    }

    #[test]
    #[should_panic(expected = "the template has no {{A}}")]
    fn fill_refuses_an_unused_text() {
        fill("x\n", &[("A", "y\n".to_string())]);
    }

    #[test]
    fn every_page_fills() {
        for (path, page) in pages() {
            assert!(page.is_ascii(), "{} is not ASCII", path.display());
            assert!(
                page.starts_with(".ie \\n(.g .ds Aq \\(aq\n"),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn exit_status_lists_every_code() {
        let text = exit_status();
        for exit in Exit::ALL {
            assert!(
                text.contains(&format!("\\fB{} {}\\fR", exit.code(), exit.name())),
                "{}",
                exit.name()
            );
        }
    }
}
