//! The commands: sending (also as sendmail, and as `sendmail -bs`),
//! `postie queue`, `postie oauth2`, `postie dkim` and `postie config`, and
//! the dispatch to them. The top layer with `main.rs`: they use everything
//! below, nothing uses them.
//!
//! Belongs here: the order of a command's steps and its exit status. Not
//! here: the decisions those steps make (`plan`, `smtp`, `outcome`), or
//! printing beyond calling `output`.

pub(crate) mod config;
pub(crate) mod dkim;
pub(crate) mod oauth2;
pub(crate) mod queue;
pub(crate) mod send;
pub(crate) mod smtp_stdin;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::error::ErrorKind;

use crate::cli::args::{QueueCommand, SendmailMode};
use crate::cli::invocation::{invocation, Invocation, Subcommand};
use crate::cli::{args, sendmail};
use crate::exit::{Error, Exit};
use crate::output::messages;

/// Runs what `argv` asks for and returns the process's exit status.
pub fn main(argv: Vec<OsString>) -> ExitCode {
    let result = match invocation(argv) {
        Invocation::Subcommand(Subcommand::Queue, rest) => {
            match args::parse_queue_from(
                std::iter::once(OsString::from("postie queue")).chain(rest),
            ) {
                Ok(cli) => queue::run(cli),
                Err(err) => return clap_exit(err, &args::queue_command()),
            }
        }
        Invocation::Subcommand(Subcommand::Config, rest) => {
            match args::parse_config_from(
                std::iter::once(OsString::from("postie config")).chain(rest),
            ) {
                Ok(cli) => config::run(cli),
                Err(err) => return clap_exit(err, &args::config_command()),
            }
        }
        Invocation::Subcommand(Subcommand::OAuth2, rest) => {
            match args::parse_oauth2_from(
                std::iter::once(OsString::from("postie oauth2")).chain(rest),
            ) {
                Ok(cli) => oauth2::run(cli),
                Err(err) => return clap_exit(err, &args::oauth2_command()),
            }
        }
        Invocation::Subcommand(Subcommand::Dkim, rest) => {
            match args::parse_dkim_from(std::iter::once(OsString::from("postie dkim")).chain(rest))
            {
                Ok(cli) => dkim::run(cli),
                Err(err) => return clap_exit(err, &args::dkim_command()),
            }
        }
        Invocation::Subcommand(Subcommand::Generate, rest) => crate::generate::run(&rest),
        Invocation::Newaliases => Ok(()),
        Invocation::Sendmail(rest) => {
            let rest = sendmail_args(&rest);
            match sendmail::parse(rest.clone()) {
                Ok(cli) => match cli.sendmail_mode {
                    SendmailMode::Deliver => send::run(cli),
                    SendmailMode::SmtpStdin => smtp_stdin::run(cli),
                    SendmailMode::ListQueue => queue::run(sendmail_queue(&cli, list())),
                    SendmailMode::FlushQueue => queue::run(sendmail_queue(
                        &cli,
                        // As Postfix's `sendmail -q` (postqueue -f):
                        // someone asking for a run wants every message
                        // tried, not only those whose backoff is over.
                        QueueCommand::Flush {
                            now: true,
                            verbose: cli.verbose,
                        },
                    )),
                    SendmailMode::Newaliases => Ok(()),
                },
                Err(err) => Err(send::unparsed_sendmail(&rest, err)),
            }
        }
        Invocation::Send(argv) => match args::parse_from(&argv) {
            Ok(cli) => send::run(cli),
            Err(err) => return clap_exit(err, &args::command()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(err),
    }
}

/// `postie queue COMMAND` for sendmail's `-bp` and `-q`, with the config
/// and queue directory its command line (or environment) named.
fn sendmail_queue(cli: &args::Cli, command: QueueCommand) -> args::QueueCli {
    args::QueueCli {
        command,
        config: cli.config.clone(),
        queue_dir: cli.queue_dir.clone(),
    }
}

/// `postie queue list`, as mailq and `sendmail -bp` print it.
fn list() -> QueueCommand {
    QueueCommand::List {
        json: false,
        failed: false,
    }
}

fn report(err: Error) -> ExitCode {
    messages::error(&err);
    ExitCode::from(err.exit.code())
}

/// The arguments as text. One that is not UTF-8 (cron's `-F` from a
/// Latin-1 GECOS name) is read lossily, with a warning, rather than
/// refused: refusing would drop the message waiting on stdin.
fn sendmail_args(args: &[OsString]) -> Vec<String> {
    args.iter()
        .map(|arg| {
            arg.to_str().map(str::to_string).unwrap_or_else(|| {
                let lossy = arg.to_string_lossy().into_owned();
                messages::warning(format_args!(
                    "argument {lossy:?} is not UTF-8; read as shown"
                ));
                lossy
            })
        })
        .collect()
}

/// clap exits 2 on a usage error; scripts expect sysexits' 64, and one line.
/// A clap error of `command` as postie's one line, pointing to its --help.
/// clap's `tip:` lines (a flag or subcommand of a similar name) follow it,
/// as clap words them: a typo is fixed faster when the right name is shown.
fn clap_exit(err: clap::Error, command: &clap::Command) -> ExitCode {
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    let name = command.get_name();
    let help = format!("{name} --help");
    let rendered = err.render().to_string();
    let (line, tips) = if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // clap would print the whole help, whose first line is the
        // command's description, not what is missing.
        (missing_subcommand(command), Vec::new())
    } else {
        usage_lines(&rendered)
    };
    messages::error(format_args!(
        "{line}; see '{help}' ({} {})",
        Exit::Usage.name(),
        Exit::Usage.code()
    ));
    for tip in tips {
        messages::said(tip);
    }
    ExitCode::from(Exit::Usage.code())
}

/// `postie queue` or `postie config` alone: what may follow.
fn missing_subcommand(command: &clap::Command) -> String {
    let names: Vec<&str> = command
        .get_subcommands()
        .map(clap::Command::get_name)
        .filter(|name| *name != "help")
        .collect();
    format!(
        "'{}' needs a command: {}",
        command.get_name(),
        names.join(", ")
    )
}

/// clap's rendered error as its first line (with the arguments it lists
/// below it, when it ends with a colon) and its `tip: a similar ...` lines.
fn usage_lines(rendered: &str) -> (String, Vec<&str>) {
    let mut lines = rendered.lines();
    let first = lines.next().unwrap_or("invalid arguments");
    let mut first = first.strip_prefix("error: ").unwrap_or(first).to_string();
    // "the following required arguments were not provided:" lists them on
    // the lines below; keep them on the one line.
    if first.ends_with(':') {
        let listed: Vec<&str> = lines
            .clone()
            .take_while(|line| line.starts_with(' '))
            .map(str::trim)
            .collect();
        first = format!("{first} {}", listed.join(", "));
    }
    // Only the tips that name a similar flag or subcommand: the other one,
    // "to pass '--x' as a value, use '-- --x'", would offer a recipient
    // named --x, and no address starts with a dash.
    let tips = lines
        .map(str::trim)
        .filter(|line| line.starts_with("tip: a similar "))
        .collect();
    (first, tips)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(args: &[&str]) -> String {
        args::parse_from(args).unwrap_err().render().to_string()
    }

    #[test]
    fn a_typo_keeps_the_tip_that_names_the_flag() {
        let text = rendered(&["postie", "--sever", "x"]);
        let (line, tips) = usage_lines(&text);
        assert_eq!(line, "unexpected argument '--sever' found");
        assert_eq!(tips, ["tip: a similar argument exists: '--server'"]);
    }

    #[test]
    fn no_tip_without_one_and_listed_arguments_stay_on_the_line() {
        for args in [
            &["postie", "--port", "0"][..],
            &["postie", "--no-such-flag"],
        ] {
            let text = rendered(args);
            let (_, tips) = usage_lines(&text);
            assert!(tips.is_empty(), "{text}");
        }
        let (line, tips) = usage_lines(
            "error: the following required arguments were not provided:\n  <ID>\n\nUsage: x\n",
        );
        assert_eq!(
            line,
            "the following required arguments were not provided: <ID>"
        );
        assert!(tips.is_empty());
    }
}
