//! Which command an argv asks for, decided once, before clap sees it.
//!
//! Three things decide it: the name postie was started as (a link named
//! `sendmail`, `mailq` or `newaliases`, as an MTA package installs them),
//! `--sendmail`, and a reserved subcommand word as the first argument. Anything else is the send command, whose bare words are
//! recipients; so a subcommand word is recognised only as the first
//! argument, and never in sendmail mode, where `sendmail queue` mails a
//! local user. A local user whose name is reserved is written `--to NAME`.

use std::ffi::{OsStr, OsString};
use std::path::Path;

/// A subcommand: the first argument, outside sendmail mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subcommand {
    /// `postie queue list | flush | ...`.
    Queue,
    /// Hidden: writes the completions and man pages (see README).
    Generate,
    /// `postie config example`.
    Config,
    /// `postie oauth2 login | status`.
    OAuth2,
    /// `postie dkim keygen`.
    Dkim,
}

/// The one list of words that are subcommands when they come first.
pub(crate) const SUBCOMMANDS: &[(&str, Subcommand)] = &[
    ("queue", Subcommand::Queue),
    ("generate", Subcommand::Generate),
    ("config", Subcommand::Config),
    ("oauth2", Subcommand::OAuth2),
    ("dkim", Subcommand::Dkim),
];

/// What the command line asks for, with the arguments that command reads.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Invocation {
    /// `postie [FLAGS] RECIPIENT...`: all of argv, `argv[0]` included, for clap.
    Send(Vec<OsString>),
    /// sendmail's argv without `argv[0]` (its parser ignores `--sendmail`).
    Sendmail(Vec<OsString>),
    /// A subcommand and the arguments after its word.
    Subcommand(Subcommand, Vec<OsString>),
    /// `newaliases` (and sendmail's `-bi`): nothing to rebuild, since the
    /// aliases file is read each time a message is sent.
    Newaliases,
}

/// Decides the mode from the whole argv (`argv[0]` first).
pub(crate) fn invocation(argv: Vec<OsString>) -> Invocation {
    match argv.first().and_then(|argv0| Path::new(argv0).file_name()) {
        // mailq's arguments are `postie queue list`'s (--failed).
        Some(name) if name == "mailq" => {
            let list = std::iter::once(OsString::from("list"));
            return Invocation::Subcommand(
                Subcommand::Queue,
                list.chain(argv.into_iter().skip(1)).collect(),
            );
        }
        Some(name) if name == "newaliases" => return Invocation::Newaliases,
        _ => {}
    }
    let sendmail = argv.first().is_some_and(invoked_as_sendmail)
        || argv.iter().skip(1).any(|arg| arg == "--sendmail");
    if sendmail {
        return Invocation::Sendmail(argv.into_iter().skip(1).collect());
    }
    match argv.get(1).and_then(|word| subcommand(word)) {
        Some(command) => Invocation::Subcommand(command, argv.into_iter().skip(2).collect()),
        None => Invocation::Send(argv),
    }
}

/// The line of `--help` (and so of the man page) that names the words.
pub(crate) fn reserved_words_help() -> String {
    let words: Vec<&str> = SUBCOMMANDS.iter().map(|(word, _)| *word).collect();
    let (last, others) = words.split_last().expect("SUBCOMMANDS is not empty");
    format!(
        "As the first argument, {} and {last} are command words, not recipients; mail a local user of that name with --to NAME.",
        others.join(", ")
    )
}

/// True when postie was started through a link named `sendmail`.
fn invoked_as_sendmail(argv0: &OsString) -> bool {
    Path::new(argv0)
        .file_name()
        .is_some_and(|name| name == "sendmail")
}

fn subcommand(word: &OsStr) -> Option<Subcommand> {
    SUBCOMMANDS
        .iter()
        .find(|(name, _)| word == *name)
        .map(|(_, command)| *command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn bare_words_are_recipients() {
        let args = argv(&["postie", "-s", "hi", "ops@example.com"]);
        assert_eq!(invocation(args.clone()), Invocation::Send(args));
    }

    #[test]
    fn a_subcommand_word_counts_only_first() {
        assert_eq!(
            invocation(argv(&["postie", "queue", "flush"])),
            Invocation::Subcommand(Subcommand::Queue, argv(&["flush"]))
        );
        assert_eq!(
            invocation(argv(&["postie", "generate", "."])),
            Invocation::Subcommand(Subcommand::Generate, argv(&["."]))
        );
        assert_eq!(
            invocation(argv(&["postie", "config", "example"])),
            Invocation::Subcommand(Subcommand::Config, argv(&["example"]))
        );
        let later = argv(&["postie", "-s", "hi", "queue"]);
        assert_eq!(invocation(later.clone()), Invocation::Send(later));
        let as_to = argv(&["postie", "--to", "generate"]);
        assert_eq!(invocation(as_to.clone()), Invocation::Send(as_to));
    }

    #[test]
    fn command_words_first_are_commands() {
        assert_eq!(
            invocation(argv(&["postie", "oauth2", "status"])),
            Invocation::Subcommand(Subcommand::OAuth2, argv(&["status"]))
        );
        assert_eq!(
            invocation(argv(&["postie", "dkim", "keygen"])),
            Invocation::Subcommand(Subcommand::Dkim, argv(&["keygen"]))
        );
    }

    #[test]
    fn sendmail_by_name_or_flag_never_takes_subcommands() {
        assert_eq!(
            invocation(argv(&["/usr/sbin/sendmail", "queue"])),
            Invocation::Sendmail(argv(&["queue"]))
        );
        assert_eq!(
            invocation(argv(&["postie", "-t", "--sendmail", "-i"])),
            Invocation::Sendmail(argv(&["-t", "--sendmail", "-i"]))
        );
        assert_eq!(
            invocation(argv(&["postie", "--sendmail", "generate"])),
            Invocation::Sendmail(argv(&["--sendmail", "generate"]))
        );
    }

    #[test]
    fn mailq_lists_the_queue_and_newaliases_does_nothing() {
        assert_eq!(
            invocation(argv(&["/usr/bin/mailq", "--failed"])),
            Invocation::Subcommand(Subcommand::Queue, argv(&["list", "--failed"]))
        );
        assert_eq!(
            invocation(argv(&["newaliases", "-v"])),
            Invocation::Newaliases
        );
    }

    #[test]
    fn argv0_detection() {
        assert!(invoked_as_sendmail(&"/usr/sbin/sendmail".into()));
        assert!(invoked_as_sendmail(&"sendmail".into()));
        assert!(!invoked_as_sendmail(&"/usr/bin/postie".into()));
    }
}
