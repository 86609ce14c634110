//! sendmail's command line, for when postie is /usr/sbin/sendmail.
//!
//! Cron, mdadm, smartd, mailx, git send-email and mutt hand their mail to
//! `sendmail` with the classic options (`-t -i -f root -FCronDaemon -oem`).
//! Those do not fit clap (`-FNAME` glued to its value, `-oi` as one
//! option), so this module reads them by hand, as getopt would, into the
//! same [`Cli`] the normal command line produces. msmtp's sendmail
//! interface is the reference for what is accepted and ignored.

use std::path::PathBuf;

use clap::Parser;

use crate::cli::args::{Cli, SendmailMode};
use crate::exit::{Error, Result};
use crate::types::{parse_envid, Notify, Ret};

/// How a short option takes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// None: a flag, which may be bundled with others (`-ti`).
    Flag,
    /// Glued (`-fADDR`) or as the next argument (`-f ADDR`).
    Required,
    /// Glued only (`-q1h`), or none (`-q`).
    GluedOnly,
}

/// One row of the sendmail options table: the options the parser knows
/// and what the documentation says of them. The man page's SENDMAIL
/// COMPATIBILITY and the README's table are generated from [`OPTIONS`], so
/// an option the parser takes cannot go undocumented.
pub(crate) struct SendmailOption {
    /// The short options of the row, each with how it takes its value.
    pub(crate) short: &'static [(char, Value)],
    /// The long options of the row, without their `--`.
    pub(crate) long: &'static [&'static str],
    /// How the options read in the documentation (markup: `code`,
    /// *placeholder*).
    pub(crate) synopsis: &'static str,
    /// What they do.
    pub(crate) effect: &'static str,
}

/// Every option of sendmail's command line that postie takes, in the order
/// the documentation shows them. What each does is in `flag`,
/// `option_with_value` and `long_option`; an option missing here is an
/// unknown option.
pub(crate) const OPTIONS: &[SendmailOption] = &[
    SendmailOption {
        short: &[],
        long: &[],
        synopsis: "*RECIPIENT*...",
        effect: "Envelope recipients; local names go through the aliases, `admin` and \
                 `local_domain`.",
    },
    SendmailOption {
        short: &[('t', Value::Flag)],
        long: &[],
        synopsis: "`-t`",
        effect: "Also take recipients from the To, Cc and Bcc headers (or Resent-To, Resent-Cc \
                 and Resent-Bcc when the message has any).",
    },
    SendmailOption {
        short: &[('f', Value::Required), ('r', Value::Required)],
        long: &[],
        synopsis: "`-f` *ADDR*, `-f`*ADDR*, `-r` *ADDR*",
        effect: "Envelope sender (and From, when postie adds one).",
    },
    SendmailOption {
        short: &[('F', Value::Required)],
        long: &[],
        synopsis: "`-F` *NAME*, `-F`*NAME*",
        effect: "Display name for a From header that postie adds.",
    },
    SendmailOption {
        short: &[('i', Value::Flag)],
        long: &[],
        synopsis: "`-i`, `-oi`",
        effect: "A line holding a single dot does not end the message; without them it does.",
    },
    SendmailOption {
        short: &[('b', Value::Required)],
        long: &[],
        synopsis: "`-bm`, `-bs`",
        effect: "`-bm`: deliver the message on standard input (the default). `-bs`: speak SMTP \
                 on standard input and output, as Symfony Mailer and Laravel expect (EHLO, MAIL, \
                 RCPT, DATA, RSET, NOOP, QUIT); each message goes where `-bm` would send it, \
                 with the envelope of MAIL FROM and RCPT TO, and the reply to DATA says what \
                 became of it (see the README).",
    },
    SendmailOption {
        short: &[
            ('N', Value::Required),
            ('R', Value::Required),
            ('V', Value::Required),
        ],
        long: &[],
        synopsis: "`-N` *dsn*, `-R` *ret*, `-V` *envid*",
        effect: "Delivery status notifications, as `--notify`, `--ret` and `--envid`: \
                 `-N never` or `-N success,failure,delay`, `-R full` or `-R hdrs`.",
    },
    SendmailOption {
        // -o* options (-oem, -odi, -oee, ...; -oi is -i), -e (old form of
        // -oe*, as in -em), -B body type, -X log file, -L tag, -h hop
        // count, -n (no aliasing), -m (me too), -U (initial submission),
        // -G (gateway), -O, -A, -d: as by msmtp. postie picks
        // BODY=8BITMIME itself from the content.
        short: &[
            ('o', Value::Required),
            ('e', Value::Flag),
            ('B', Value::Required),
            ('X', Value::Required),
            ('L', Value::Required),
            ('h', Value::Required),
            ('n', Value::Flag),
            ('m', Value::Flag),
            ('U', Value::Flag),
            ('G', Value::Flag),
            ('O', Value::Required),
            ('A', Value::Required),
            ('d', Value::GluedOnly),
        ],
        long: &[],
        synopsis: "`-oem`, `-odi`, `-oee`, other `-o`*X*, `-em`, `-B8BITMIME`, `-X`, `-L`, `-h`, \
                   `-n`, `-m`, `-U`, `-G`, `-O`, `-A`, `-d`",
        effect: "Accepted and ignored.",
    },
    SendmailOption {
        short: &[('C', Value::Required)],
        long: &[
            "config",
            "account",
            "from",
            "server",
            "queue",
            "no-queue",
            "queue-dir",
            "dry-run",
            "read-recipients",
            "sendmail",
        ],
        synopsis: "`-C` *FILE*, `--config=`*FILE*, `--account=`*NAME*, `--from`, `--server`, \
                   `--queue`, `--no-queue`, `--queue-dir=`*DIR*, `--dry-run`, \
                   `--read-recipients` (= `-t`), `--sendmail`",
        effect: "postie's own.",
    },
    SendmailOption {
        short: &[('v', Value::Flag)],
        long: &[],
        synopsis: "`-v`",
        effect: "Show the SMTP dialogue on stderr, as postie -v does.",
    },
    SendmailOption {
        short: &[('q', Value::GluedOnly)],
        long: &[],
        synopsis: "`-bp`, `-bi`, `-q`",
        effect: "`-bp`: list the queue, as `mailq` and `postie queue list` do. `-bi`: \
                 nothing to rebuild (aliases are read when mail is sent); exit 0, as \
                 `newaliases` does. `-q` (or `-qf`): try every queued message \
                 now, as `postie queue flush --now` does.",
    },
    SendmailOption {
        short: &[],
        long: &[],
        synopsis: "`-bd`, `-bv`, `-bt`, `-q`*INTERVAL*...",
        effect: "Exit 64: postie is no daemon and has no address tests. Instead of `-q30m`, \
                 a timer or cron runs `sendmail -q`.",
    },
];

/// How the short option `letter` takes its value; `None` when postie does
/// not know it.
fn short_option(letter: char) -> Option<Value> {
    OPTIONS
        .iter()
        .flat_map(|option| option.short)
        .find(|(known, _)| *known == letter)
        .map(|(_, value)| *value)
}

/// Whether postie knows the long option `name` in sendmail mode.
fn knows_long_option(name: &str) -> bool {
    OPTIONS
        .iter()
        .flat_map(|option| option.long)
        .any(|known| *known == name)
}

/// Reads a sendmail command line (without `argv[0]`).
pub(crate) fn parse(args: Vec<String>) -> Result<Cli> {
    // Environment variables (POSTIE_SERVER, ...) still apply, as they do
    // for the normal command line.
    let mut cli = Cli::try_parse_from(["postie", "--message", "-"])
        .map_err(|err| Error::usage(err.to_string()))?;
    cli.sendmail = true;
    cli.dot_ends_message = true;
    // Sendmail's command line has no --user: a user is POSTIE_USER's.
    cli.user_from_env = cli.user.is_some();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            cli.recipients.extend(args.by_ref());
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            long_option(&mut cli, long, &mut args)?;
            continue;
        }
        let Some(letters) = arg.strip_prefix('-').filter(|l| !l.is_empty()) else {
            cli.recipients.push(arg);
            continue;
        };
        for (at, letter) in letters.char_indices() {
            let Some(takes) = short_option(letter) else {
                return Err(
                    Error::usage(format!("unknown sendmail option -{letter}")).hint(
                        "postie accepts sendmail's -t -i -v -f -F -r -C -o* -B -N -R -V -bm -bs",
                    ),
                );
            };
            if takes != Value::Flag {
                let glued = &letters[at + letter.len_utf8()..];
                let value = if !glued.is_empty() {
                    glued.to_string()
                } else if takes == Value::GluedOnly {
                    String::new() // -q and -d take an optional glued value only
                } else {
                    args.next().ok_or_else(|| {
                        Error::usage(format!("sendmail option -{letter} needs a value"))
                    })?
                };
                option_with_value(&mut cli, letter, value)?;
                break;
            }
            flag(&mut cli, letter);
        }
    }
    Ok(cli)
}

/// Whether a sendmail command line that [`parse`] refuses still asks for
/// `-bs` (`-bs`, `-b s`, `-ibs`; the last `-b` wins, as in [`parse`]):
/// then stdin is an SMTP client waiting for a greeting, not a message to
/// keep, and reading it to its end would wait forever. Walks the
/// arguments as [`parse`] does, with the same table, but takes an
/// unknown letter for a flag instead of stopping at it.
pub(crate) fn asks_for_smtp_stdin(args: &[String]) -> bool {
    let mut mode = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            // Those that take a value take the next argument when it is
            // not glued with '=' (see long_option).
            if LONG_WITH_VALUE.contains(&long) {
                args.next();
            }
            continue;
        }
        let Some(letters) = arg.strip_prefix('-').filter(|l| !l.is_empty()) else {
            continue;
        };
        for (at, letter) in letters.char_indices() {
            let takes = short_option(letter).unwrap_or(Value::Flag);
            if takes == Value::Flag {
                continue;
            }
            let glued = &letters[at + letter.len_utf8()..];
            let value = if !glued.is_empty() || takes == Value::GluedOnly {
                Some(glued)
            } else {
                args.next().map(String::as_str)
            };
            if letter == 'b' {
                mode = value;
            }
            break;
        }
    }
    mode == Some("s")
}

/// A known flag ([`Value::Flag`] in [`OPTIONS`]).
fn flag(cli: &mut Cli, letter: char) {
    match letter {
        't' => cli.read_recipients = true,
        'i' => cli.dot_ends_message = false,
        'v' => cli.verbose = cli.verbose.saturating_add(1),
        // The others (-n, -m, -U, -G, -e) are accepted and ignored.
        _ => {}
    }
}

fn option_with_value(cli: &mut Cli, letter: char, value: String) -> Result<()> {
    match letter {
        'f' | 'r' => cli.from = Some(value),
        'F' => cli.full_name = Some(value),
        'C' => cli.config = Some(PathBuf::from(value)),
        'o' if value == "i" => cli.dot_ends_message = false,
        'N' => cli.notify = Some(Notify::parse(&value).map_err(Error::usage)?),
        'R' => cli.ret = Some(Ret::parse(&value).map_err(Error::usage)?),
        'V' => cli.envid = Some(parse_envid(&value).map_err(Error::usage)?),
        'b' => cli.sendmail_mode = operating_mode(&value)?,
        'q' => cli.sendmail_mode = run_queue(&value)?,
        // The others are accepted and ignored (see OPTIONS).
        _ => {}
    }
    Ok(())
}

/// `-bm` (deliver mail), `-bs` (the same over SMTP on stdin and stdout),
/// `-bp` (list the queue) and `-bi` (rebuild the aliases: nothing to do)
/// are what postie does; other modes are daemons or address tests that a
/// relay-only sender cannot be.
fn operating_mode(mode: &str) -> Result<SendmailMode> {
    let what = match mode {
        "m" => return Ok(SendmailMode::Deliver),
        "s" => return Ok(SendmailMode::SmtpStdin),
        "p" => return Ok(SendmailMode::ListQueue),
        "i" => return Ok(SendmailMode::Newaliases),
        "d" | "D" => "-bd (run as a daemon)",
        "v" => "-bv (verify addresses)",
        "t" => "-bt (address test mode)",
        "a" => "-ba (ARPANET mode)",
        "h" | "H" => "-bh (host status)",
        "P" => "-bP (print queue counts)",
        other => return Err(Error::usage(format!("unknown sendmail mode -b{other}"))),
    };
    let hint = if mode == "P" {
        "postie's own queue is listed with: postie queue list"
    } else {
        "postie only submits mail (-bm, the default)"
    };
    Err(Error::usage(format!("sendmail {what} is not implemented by postie")).hint(hint))
}

/// `-q` (and `-qf`, in the foreground, which postie always is) sends the
/// queue once. With an interval (`-q30m`) sendmail becomes a daemon that
/// runs the queue every so often: a timer's job here.
fn run_queue(value: &str) -> Result<SendmailMode> {
    if value.is_empty() || value == "f" {
        return Ok(SendmailMode::FlushQueue);
    }
    Err(Error::usage(format!(
        "sendmail -q{value} (run the queue now and then) is not implemented by postie"
    ))
    .hint("`sendmail -q` sends the queue once; run it from a timer (postie-flush.timer) or cron"))
}

/// The hint for an unknown long option: every long option of [`OPTIONS`].
fn long_hint() -> String {
    let longs: Vec<String> = OPTIONS
        .iter()
        .flat_map(|option| option.long)
        .map(|long| format!("--{long}"))
        .collect();
    match longs.split_last() {
        Some((last, others)) => format!("sendmail mode takes {} and {last}", others.join(", ")),
        None => "sendmail mode takes no long option".to_string(),
    }
}

/// The long options of [`long_option`] that take a value (`--config
/// FILE` or `--config=FILE`); a test holds the two together.
const LONG_WITH_VALUE: &[&str] = &["queue-dir", "account", "config", "from", "server"];

/// The few long options postie takes in sendmail mode, for callers that
/// need to pick an account or config (`sendmail --account=reports -t`).
fn long_option(cli: &mut Cli, option: &str, args: &mut impl Iterator<Item = String>) -> Result<()> {
    let (name, inline) = match option.split_once('=') {
        Some((name, value)) => (name, Some(value.to_string())),
        None => (option, None),
    };
    if !knows_long_option(name) {
        return Err(
            Error::usage(format!("unknown option --{name} in sendmail mode")).hint(long_hint()),
        );
    }
    let mut value = |what: &str| {
        inline
            .clone()
            .or_else(|| args.next())
            .ok_or_else(|| Error::usage(format!("--{what} needs a value")))
    };
    match name {
        "dry-run" => cli.dry_run = true,
        "queue" => cli.queue = true,
        "no-queue" => cli.no_queue = true,
        "queue-dir" => cli.queue_dir = Some(PathBuf::from(value("queue-dir")?)),
        "read-recipients" => cli.read_recipients = true,
        "account" => cli.account = Some(value("account")?),
        "config" => cli.config = Some(PathBuf::from(value("config")?)),
        "from" => cli.from = Some(value("from")?),
        "server" => cli.server = Some(value("server")?),
        // --sendmail: this is sendmail mode already.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(line: &str) -> Cli {
        parse(line.split_whitespace().map(str::to_string).collect()).unwrap()
    }

    #[test]
    fn the_long_options_that_take_a_value_are_those_listed() {
        for name in OPTIONS.iter().flat_map(|option| option.long) {
            let needs_value = parse(vec![format!("--{name}")]).is_err();
            assert_eq!(needs_value, LONG_WITH_VALUE.contains(name), "--{name}");
        }
    }

    fn asks_for_bs(line: &str) -> bool {
        let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        asks_for_smtp_stdin(&args)
    }

    #[test]
    fn a_refused_line_still_asking_for_bs_is_seen() {
        for line in [
            "-bs",
            "-b s",
            "-ibs",
            "-i -b s -Z",
            "-b s -Z",
            "-ibs -Z",
            "-Z -bs",
            "-f app@example.com -bs -Z",
            "-bm -bs -Z",
        ] {
            assert!(asks_for_bs(line), "{line}");
        }
        for line in [
            "-bm -Z",
            "-ob s",
            "-o bs",
            "-f -bs",
            "-F -bs -Z",
            "-C -bs",
            "--config -bs",
            "-bs -bm -Z",
            "-Z root",
            "-- -bs",
            "bs",
            "-qbs",
        ] {
            assert!(!asks_for_bs(line), "{line}");
        }
    }

    #[test]
    fn debian_cron() {
        let cli = parse_line("-FCronDaemon -i -B8BITMIME -oem root");
        assert_eq!(cli.full_name.as_deref(), Some("CronDaemon"));
        assert!(!cli.dot_ends_message);
        assert!(!cli.read_recipients);
        assert_eq!(cli.recipients, ["root"]);
    }

    #[test]
    fn cronie() {
        let cli = parse_line("-FCronDaemon -i -odi -oem -oi -t -f root");
        assert!(cli.read_recipients);
        assert_eq!(cli.from.as_deref(), Some("root"));
        assert!(cli.recipients.is_empty());
    }

    #[test]
    fn mailx_and_git_send_email() {
        let cli = parse_line("-oi user@example.com");
        assert!(!cli.dot_ends_message);
        assert_eq!(cli.recipients, ["user@example.com"]);
        let cli = parse_line("-i a@example.com b@example.com");
        assert_eq!(cli.recipients, ["a@example.com", "b@example.com"]);
    }

    #[test]
    fn without_i_a_lone_dot_ends_the_message() {
        assert!(parse_line("a@example.com").dot_ends_message);
    }

    #[test]
    fn bundled_and_separate_values() {
        let cli = parse_line("-ti -f me@example.com -F Full -N success,failure -R hdrs -v x@y.z");
        assert_eq!(
            cli.notify.map(Notify::keyword).as_deref(),
            Some("SUCCESS,FAILURE")
        );
        assert_eq!(cli.ret, Some(Ret::Hdrs));
        assert!(cli.read_recipients && !cli.dot_ends_message);
        assert_eq!(cli.from.as_deref(), Some("me@example.com"));
        assert_eq!(cli.full_name.as_deref(), Some("Full"));
        assert_eq!(cli.recipients, ["x@y.z"]);
        let cli = parse_line("-em -oi root");
        assert_eq!(cli.recipients, ["root"]);
        let cli = parse_line("--account=reports -- -strange-local-part");
        assert_eq!(cli.account.as_deref(), Some("reports"));
        assert_eq!(cli.recipients, ["-strange-local-part"]);
    }

    #[test]
    fn bs_is_smtp_on_stdin_and_takes_laravels_i() {
        let cli = parse_line("-bs -i");
        assert_eq!(cli.sendmail_mode, SendmailMode::SmtpStdin);
        assert!(cli.sendmail && !cli.dot_ends_message);
        assert_eq!(
            parse_line("-bm a@example.com").sendmail_mode,
            SendmailMode::Deliver
        );
        let cli = parse_line("-bs -f app@example.com");
        assert_eq!(cli.from.as_deref(), Some("app@example.com"));
    }

    #[test]
    fn the_queue_modes_of_an_mta() {
        for (line, mode) in [
            ("-bp", SendmailMode::ListQueue),
            ("-q", SendmailMode::FlushQueue),
            ("-qf", SendmailMode::FlushQueue),
            ("-bi", SendmailMode::Newaliases),
        ] {
            assert_eq!(parse_line(line).sendmail_mode, mode, "{line}");
        }
    }

    #[test]
    fn dsn_options_set_the_flags_fields() {
        let cli = parse_line("-Nnever -RFULL -V q1.x a@b.c");
        assert_eq!(cli.notify.map(Notify::keyword).as_deref(), Some("NEVER"));
        assert_eq!(cli.ret, Some(Ret::Full));
        assert_eq!(cli.envid.as_deref(), Some("q1.x"));
        for bad in ["-N never,success", "-R x", "-V a\rb", "-V a b"] {
            let args = vec![bad[..2].to_string(), bad[3..].to_string(), "a@b.c".into()];
            assert_eq!(
                parse(args).unwrap_err().exit,
                crate::exit::Exit::Usage,
                "{bad}"
            );
        }
    }

    #[test]
    fn unimplemented_modes_are_usage_errors() {
        for line in ["-bd", "-q1h", "-bv", "-bP", "-Z"] {
            let err = parse(line.split_whitespace().map(str::to_string).collect()).unwrap_err();
            assert_eq!(err.exit, crate::exit::Exit::Usage, "{line}");
        }
        let err = parse(vec!["-q30m".into()]).unwrap_err();
        assert!(err.message.contains("not implemented"), "{}", err.message);
        assert!(
            err.to_string()
                .contains("sendmail -q` sends the queue once"),
            "{err}"
        );
    }

    #[test]
    fn options_table_holds_the_options_sendmail_mode_always_took() {
        let mut with_value: Vec<char> = "fFrBNRVXLhCOoAbqd".chars().collect();
        let mut flags: Vec<char> = "timvnUGe".chars().collect();
        let mut table_value = Vec::new();
        let mut table_flags = Vec::new();
        for (letter, takes) in OPTIONS.iter().flat_map(|option| option.short) {
            match takes {
                Value::Flag => table_flags.push(*letter),
                _ => table_value.push(*letter),
            }
        }
        for list in [
            &mut with_value,
            &mut flags,
            &mut table_value,
            &mut table_flags,
        ] {
            list.sort_unstable();
        }
        assert_eq!(table_value, with_value);
        assert_eq!(table_flags, flags);
        for letter in ['q', 'd'] {
            assert_eq!(short_option(letter), Some(Value::GluedOnly));
        }
    }

    #[test]
    fn every_option_is_in_its_documentation() {
        for option in OPTIONS {
            for (letter, _) in option.short {
                assert!(
                    option.synopsis.contains(&format!("`-{letter}")),
                    "-{letter} is not in {:?}",
                    option.synopsis
                );
            }
            for long in option.long {
                assert!(
                    option.synopsis.contains(&format!("`--{long}")),
                    "--{long} is not in {:?}",
                    option.synopsis
                );
                assert!(long_hint().contains(&format!("--{long}")), "--{long}");
                let line = format!("--{long}=x a@example.com");
                let args = line.split_whitespace().map(str::to_string).collect();
                assert!(parse(args).is_ok(), "{line}");
            }
        }
    }

    #[test]
    fn unknown_long_options_are_usage_errors() {
        let err = parse(vec!["--bogus".into()]).unwrap_err();
        assert_eq!(err.exit, crate::exit::Exit::Usage);
        assert!(err.to_string().contains("--dry-run"), "{err}");
    }
}
