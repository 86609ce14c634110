//! The command line, as clap sees it.
//!
//! This is the first of two parsing stages: these structs hold the raw
//! flags exactly as typed. `plan` turns them (with the environment and
//! the config file) into a validated submission before any I/O happens.
//! Each doc comment is the flag's help text: the first line is what
//! `--help` shows, the rest is the long help.

// The doc comments below are clap's help text, written for people at a
// terminal ("HOST[:PORT]", "Name <addr>"), not rustdoc markup.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;
use std::sync::OnceLock;

use clap::{Arg, ArgAction, CommandFactory, FromArgMatches, Parser, ValueHint};

use crate::types::{AuthMethod, Notify, QuitAfter, Ret, TlsMode};

const MESSAGE: &str = "Message";
const RECIPIENTS: &str = "Recipients";
const SERVER: &str = "Server";
const TLS: &str = "TLS";
const AUTH: &str = "Authentication";
const CONFIG: &str = "Configuration";
const OUTPUT: &str = "Output";
const TESTING: &str = "Testing";
const DELIVERY: &str = "Queue";
const DSN: &str = "Delivery status notifications";

/// The end of `--help`: the exit codes, from [`crate::exit::Exit`], and
/// where to read more.
fn after_help() -> String {
    format!(
        "{}\n\nQueued messages: postie queue --help. Every option in detail: postie \
         --help-long, or man postie.\n\n{}",
        crate::exit::help_summary(),
        crate::cli::invocation::reserved_words_help()
    )
}

/// Compose a message and submit it over SMTP.
///
/// The body comes from --body, --body-file or standard input; recipients from
/// the arguments, --to, --cc and --bcc. The server, TLS and credentials come
/// from flags, POSTIE_* environment variables, or an account in the config
/// file, in that order of precedence.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "postie",
    version,
    // Last one wins, so wrapper scripts can put defaults first.
    args_override_self = true,
    about = "Compose a message and submit it over SMTP",
    after_help = after_help(),
)]
pub(crate) struct Cli {
    /// Recipient addresses (To:); each may be a comma-separated list.
    #[arg(value_name = "RECIPIENT", value_hint = ValueHint::EmailAddress, help_heading = RECIPIENTS)]
    pub(crate) recipients: Vec<String>,

    /// Add To: recipients (repeatable; comma-separated lists allowed).
    #[arg(long, value_name = "ADDR", value_hint = ValueHint::EmailAddress, help_heading = RECIPIENTS)]
    pub(crate) to: Vec<String>,

    /// Add Cc: recipients (repeatable; comma-separated lists allowed).
    #[arg(short = 'c', long, value_name = "ADDR", value_hint = ValueHint::EmailAddress, help_heading = RECIPIENTS)]
    pub(crate) cc: Vec<String>,

    /// Add blind recipients: envelope only, never written into a header.
    #[arg(short = 'b', long, value_name = "ADDR", value_hint = ValueHint::EmailAddress, help_heading = RECIPIENTS)]
    pub(crate) bcc: Vec<String>,

    /// Sender address, for the From: header and the envelope ("Name <addr>" allowed).
    #[arg(short = 'f', long, value_name = "ADDR", value_hint = ValueHint::EmailAddress, env = "POSTIE_FROM", help_heading = MESSAGE)]
    pub(crate) from: Option<String>,

    /// Subject line (UTF-8; encoded as RFC 2047 requires).
    #[arg(short = 's', long, value_name = "TEXT", help_heading = MESSAGE)]
    pub(crate) subject: Option<String>,

    /// Reply-To: address(es).
    #[arg(short = 'r', long, value_name = "ADDR", value_hint = ValueHint::EmailAddress, help_heading = MESSAGE)]
    pub(crate) reply_to: Vec<String>,

    /// Extra header, as 'Name: value' (repeatable; CR or LF in it is refused).
    #[arg(short = 'H', long = "header", value_name = "'NAME: VALUE'", help_heading = MESSAGE)]
    pub(crate) headers: Vec<String>,

    /// Message body text (instead of standard input).
    #[arg(long, value_name = "TEXT", conflicts_with = "body_file", help_heading = MESSAGE)]
    pub(crate) body: Option<String>,

    /// Read the body from a file ('-' reads standard input).
    ///
    /// Without --body or --body-file, the body is read from standard input
    /// when it is not a terminal, as mailx does.
    #[arg(long, value_name = "PATH", help_heading = MESSAGE)]
    pub(crate) body_file: Option<PathBuf>,

    /// Add an HTML alternative to the text body, read from this file.
    #[arg(long, value_name = "PATH", help_heading = MESSAGE)]
    pub(crate) html: Option<PathBuf>,

    /// With --html and no text body: send the HTML alone, without the plain-text copy postie makes of it.
    ///
    /// Without --body, --body-file or piped text (an empty body counts as
    /// none, as from cron), postie renders the HTML as plain text for readers
    /// and filters that show text only. HTML alone may score as spam
    /// (SpamAssassin MIME_HTML_ONLY).
    #[arg(long, requires = "html", help_heading = MESSAGE)]
    pub(crate) no_text_alternative: bool,

    /// Attach a file (repeatable; '-' reads standard input); append ';name=FILE' or ';type=MIME/TYPE' to set its name or type.
    ///
    /// The content type is guessed from the file name (application/octet-stream
    /// when unknown). Example: -a 'data.bin;type=application/x-foo'. With '-' the
    /// body must come from --body or --body-file, and the attachment is named
    /// "stdin" unless ';name=' names it: dump | postie --body x -a '-;name=db.sql.gz' ...
    // A value may start with '-': `-a -` and `-a '-;name=a.csv'`.
    #[arg(short = 'a', long = "attach", value_name = "PATH", value_hint = ValueHint::FilePath, allow_hyphen_values = true, help_heading = MESSAGE)]
    pub(crate) attachments: Vec<String>,

    /// Embed an image for the HTML part (repeatable); reference it as cid:FILENAME or cid:ID.
    ///
    /// The Content-ID is the file's name, so `--inline img/logo.png` is shown
    /// by `<img src="cid:logo.png">`. A name that is not ASCII letters, digits
    /// and dots (RFC 5322 dot-atom-text), or one used twice, needs its own ID:
    /// `--inline 'My Logo.png;cid=logo'` is shown by `cid:logo`. Needs --html.
    /// Append ';type=MIME/TYPE' to override the guessed type, ';name=FILE' to
    /// set the name ('-' reads the image from standard input).
    #[arg(long = "inline", value_name = "PATH", value_hint = ValueHint::FilePath, requires = "html", allow_hyphen_values = true, help_heading = MESSAGE)]
    pub(crate) inline: Vec<String>,

    /// Send this ready-made RFC 5322 message instead of composing one ('-' reads stdin; repeatable).
    ///
    /// Sent byte for byte except: line endings become CRLF, Bcc and
    /// Resent-Bcc are removed, Date and Message-ID are added when missing,
    /// and From is handled by the account's from_policy. What SMTP cannot
    /// carry (lines over 998 octets, bare CR, NUL) is re-encoded in the part
    /// that holds it and long header lines are folded; -v says what. Given
    /// several times, the messages go over one SMTP session, each to the
    /// recipients on the command line (and, with -t, to its own header
    /// recipients).
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with_all = ["body", "body_file", "html", "attachments", "inline", "subject", "headers", "reply_to", "to", "cc", "bcc"],
        help_heading = MESSAGE
    )]
    pub(crate) message: Vec<std::path::PathBuf>,

    /// With --message: also send to the To, Cc and Bcc (or Resent-*) addresses in its headers.
    #[arg(short = 't', long, requires = "message", help_heading = RECIPIENTS)]
    pub(crate) read_recipients: bool,

    /// Display name for a From: header that postie adds to a --message.
    #[arg(long, value_name = "NAME", help_heading = MESSAGE)]
    pub(crate) full_name: Option<String>,

    /// sendmail without -i: a line holding a single dot ends the message.
    #[arg(skip)]
    pub(crate) dot_ends_message: bool,

    /// What sendmail's `-b` and `-q` ask for; delivering the message on
    /// standard input unless they say otherwise.
    #[arg(skip)]
    pub(crate) sendmail_mode: SendmailMode,

    /// SMTP server: HOST, HOST:PORT, smtp://HOST[:PORT] or smtps://HOST[:PORT].
    #[arg(long, value_name = "HOST[:PORT]", value_hint = ValueHint::Hostname, env = "POSTIE_SERVER", help_heading = SERVER)]
    pub(crate) server: Option<String>,

    /// Server port [default: 465 for smtps:// or --tls implicit, else 587].
    #[arg(long, value_name = "PORT", env = "POSTIE_PORT", value_parser = clap::value_parser!(u16).range(1..), help_heading = SERVER)]
    pub(crate) port: Option<u16>,

    /// Name to announce in EHLO [default: this machine's host name].
    ///
    /// A domain name or an address literal such as [192.0.2.1] (RFC 5321
    /// 4.1.1.1); anything else is refused. A host name that is neither is
    /// replaced by localhost (-v says so).
    #[arg(long, value_name = "NAME", value_hint = ValueHint::Hostname, help_heading = SERVER)]
    pub(crate) helo: Option<String>,

    /// Seconds to wait for the connection and for each server reply.
    ///
    /// Without it: 30 s to connect, 120 s per reply, 300 s for the reply to
    /// the end of the message (RFC 5321 section 4.5.3.2).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..), help_heading = SERVER)]
    pub(crate) timeout: Option<u64>,

    /// Send to the accepted recipients even if some were refused (they are still reported).
    ///
    /// Without it, one refused recipient cancels the whole message (RSET), so
    /// that a retry never delivers twice.
    #[arg(long, help_heading = SERVER)]
    pub(crate) partial: bool,

    /// TLS mode [default: implicit on port 465, opportunistic for loopback, else starttls].
    ///
    /// starttls: STARTTLS is required, a server without it is an error.
    /// implicit: TLS from the first byte (SMTPS, port 465).
    /// opportunistic: STARTTLS when offered, plain text otherwise.
    /// none: never encrypt.
    #[arg(long, value_enum, value_name = "MODE", env = "POSTIE_TLS", help_heading = TLS)]
    pub(crate) tls: Option<TlsMode>,

    /// Trust the CA certificates in this PEM file (in addition to the system's).
    #[arg(long, value_name = "PEM", help_heading = TLS)]
    pub(crate) ca_file: Option<PathBuf>,

    /// Client certificate (PEM) to present to the server; needs --client-key.
    #[arg(long, value_name = "PEM", requires = "client_key", help_heading = TLS)]
    pub(crate) client_cert: Option<PathBuf>,

    /// Private key (PEM, PKCS#8) for --client-cert; refused unless private
    /// to its owner (chmod 600).
    #[arg(long, value_name = "PEM", requires = "client_cert", help_heading = TLS)]
    pub(crate) client_key: Option<PathBuf>,

    /// Do not verify the server's certificate (prints a warning). Prefer --ca-file.
    ///
    /// With -v the certificate report still says what verification would
    /// have rejected: self-signed, expired, or not valid for the server name.
    #[arg(long, help_heading = TLS)]
    pub(crate) insecure: bool,

    /// User name for SMTP AUTH; the password comes from --password-cmd, POSTIE_PASSWORD or the config.
    #[arg(long, value_name = "NAME", env = "POSTIE_USER", help_heading = AUTH)]
    pub(crate) user: Option<String>,

    /// Whether `user` came from POSTIE_USER rather than --user: under --mx
    /// a login on the command line is a mistake to report, one from the
    /// environment is ignored with a warning.
    #[arg(skip)]
    pub(crate) user_from_env: bool,

    /// Command whose first output line is the password (or OAuth2 token), e.g. 'pass show smtp'.
    ///
    /// Run with `/bin/sh -c` in its own process group, without
    /// POSTIE_PASSWORD in its environment, for at most --timeout seconds
    /// (60 without it; then it is killed, exit 75). Its output must be
    /// UTF-8 without NUL, at most 64 KiB, with a non-empty first line (exit
    /// 78 otherwise). Passwords are never accepted as arguments, since
    /// every user on the machine can read a process's arguments.
    #[arg(long, value_name = "CMD", value_hint = ValueHint::CommandString, help_heading = AUTH)]
    pub(crate) password_cmd: Option<String>,

    /// Authentication mechanism [default: auto: over TLS the first of SCRAM-SHA-256, SCRAM-SHA-1, PLAIN, LOGIN the server offers; without TLS only SCRAM or CRAM-MD5].
    #[arg(long, value_enum, value_name = "MECH", help_heading = AUTH)]
    pub(crate) auth: Option<AuthMethod>,

    /// Allow AUTH over an unencrypted connection to a host that is not loopback.
    #[arg(long, help_heading = AUTH)]
    pub(crate) allow_plaintext_auth: bool,

    /// Take sendmail's command line (as when called through a link named sendmail).
    ///
    /// Recipients as arguments, the message on stdin, -t, -f, -F, -i, -oi
    /// and the other sendmail options; see SENDMAIL COMPATIBILITY in postie(1) or the README.
    #[arg(long, help_heading = CONFIG)]
    pub(crate) sendmail: bool,

    /// Config file [default: $XDG_CONFIG_HOME/postie/config.toml, then /etc/postie/config.toml].
    #[arg(long, value_name = "PATH", env = "POSTIE_CONFIG", help_heading = CONFIG)]
    pub(crate) config: Option<PathBuf>,

    /// Use this account from the config file [default: the one whose `from` matches --from, else `default`, else the only one].
    #[arg(long, value_name = "NAME", env = "POSTIE_ACCOUNT", help_heading = CONFIG)]
    pub(crate) account: Option<String>,

    /// Print the envelope on stderr and the message on stdout; send nothing.
    #[arg(long, help_heading = OUTPUT)]
    pub(crate) dry_run: bool,

    /// Show the SMTP dialogue on stderr (-vv adds message headers, -vvv the whole message).
    ///
    /// Prefixes as in swaks: `===` postie's notes, `->`/`<-` sent and
    /// received in clear, `~>`/`<~` inside TLS, `***` errors. AUTH
    /// credentials are always shown as [credentials hidden]. When the
    /// server's certificate fails verification, postie connects once more
    /// without verifying, only to show that certificate.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, help_heading = OUTPUT)]
    pub(crate) verbose: u8,

    /// Show how long each reply took, and a summary per stage (implies -v).
    #[arg(long, help_heading = TESTING)]
    pub(crate) timing: bool,

    /// Stop cleanly with QUIT after this stage; `rcpt` tests recipients without sending.
    #[arg(long, value_enum, value_name = "STAGE", help_heading = TESTING)]
    pub(crate) quit_after: Option<QuitAfter>,

    /// Report the server's EHLO extensions before and after STARTTLS, and its certificate.
    ///
    /// Like --quit-after starttls -v, plus a table on stdout (JSON with --json).
    #[arg(long, help_heading = TESTING)]
    pub(crate) capabilities: bool,

    /// Print what became of each message and recipient as JSON on stdout, even on failure.
    ///
    /// Per message its Message-ID, the servers and TLS used; per recipient
    /// delivered, queued (with the queue ID), owed (try again later) or
    /// refused, with the server's reply. The exit status is the same as
    /// without it. With --capabilities: the report as JSON instead. Not
    /// with --dry-run, which writes the message itself to stdout.
    #[arg(long, help_heading = OUTPUT)]
    pub(crate) json: bool,

    /// Send a generated test message ("postie test DATE", saying which host sent it).
    #[arg(long, conflicts_with_all = ["body", "body_file", "message"], help_heading = TESTING)]
    pub(crate) test_message: bool,

    /// Trust only the certificate with this SHA-256 fingerprint (hex, colons allowed).
    ///
    /// For a self-signed server you trust: safer than --insecure, which
    /// trusts anything. `-v` prints the fingerprint to pin.
    #[arg(long, value_name = "SHA256", help_heading = TLS)]
    pub(crate) tls_fingerprint: Option<String>,

    /// Deliver straight to each recipient domain's mail exchangers (MX) on port 25.
    ///
    /// Also what happens when no server is given or configured. STARTTLS is
    /// opportunistic and unauthenticated unless --tls starttls asks for it.
    /// Never logs in: --user, --password-cmd or --auth with --mx is a usage
    /// error, and a login from the config or POSTIE_USER is ignored with a
    /// warning (an account with a login but no server is a config error).
    #[arg(long, help_heading = SERVER)]
    pub(crate) mx: bool,

    /// Send DNS queries for --mx to this server instead of the system's.
    #[arg(long, value_name = "IP[:PORT]", help_heading = SERVER)]
    pub(crate) resolver: Option<String>,

    /// Keep the message in the queue after a temporary failure (the default in sendmail mode).
    ///
    /// postie then exits 0 saying `queued as ID`; `postie queue flush` sends
    /// it later. Same as queue = "on-tempfail" in the account.
    #[arg(long, conflicts_with = "no_queue", help_heading = DELIVERY)]
    pub(crate) queue: bool,

    /// Never queue: a temporary failure is exit 75 (the default outside sendmail mode).
    #[arg(long, help_heading = DELIVERY)]
    pub(crate) no_queue: bool,

    /// Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue].
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath, env = "POSTIE_QUEUE_DIR", help_heading = DELIVERY)]
    pub(crate) queue_dir: Option<PathBuf>,

    /// Ask for delivery status notifications: never, or any of success,failure,delay (sendmail -N).
    ///
    /// Sent as NOTIFY on each RCPT (with ORCPT, the recipient's address) to a
    /// server whose EHLO offers DSN (RFC 3461). Without the flag the server
    /// reports failures and delays. A server without DSN gets none of the DSN
    /// parameters (said under -v), unless the account sets dsn_required.
    #[arg(long, value_name = "WHEN", value_parser = Notify::parse, help_heading = DSN)]
    pub(crate) notify: Option<Notify>,

    /// What a failure report returns of the message: full or hdrs (sendmail -R).
    #[arg(long, value_name = "WHAT", value_parser = Ret::parse, help_heading = DSN)]
    pub(crate) ret: Option<Ret>,

    /// An ID the reports quote as Original-Envelope-Id (sendmail -V).
    ///
    /// Printable ASCII without spaces, at most 100 characters once encoded.
    // Checked by plan, not by clap: clap's error would echo a control
    // character to the terminal as it is.
    #[arg(long, value_name = "ID", help_heading = DSN)]
    pub(crate) envid: Option<String>,

    /// Connect over IPv4 only.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6", help_heading = SERVER)]
    pub(crate) ipv4: bool,

    /// Connect over IPv6 only.
    #[arg(short = '6', long = "ipv6", help_heading = SERVER)]
    pub(crate) ipv6: bool,
}

/// The version line's text after "postie ": the crate version and the TLS
/// library, e.g. "0.1.0 (OpenSSL 3.0.17)". OpenSSL is asked at
/// run time (one cheap call), since that is the library actually loaded.
pub(crate) fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        // "OpenSSL 3.0.17 1 Jul 2025": keep the name and number.
        let openssl: Vec<&str> = openssl::version::version()
            .split_whitespace()
            .take(2)
            .collect();
        format!("{} ({})", env!("CARGO_PKG_VERSION"), openssl.join(" "))
    })
}

/// The main command as the binary parses it: [`Cli`] plus the run-time
/// version, and `-h/--help` printing the short summary (one line per
/// option) with `--help-long` for the details.
pub(crate) fn command() -> clap::Command {
    Cli::command()
        .version(version())
        .disable_help_flag(true)
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::HelpShort)
                .help("Print a one-line summary of each option"),
        )
        .arg(
            Arg::new("help_long")
                .long("help-long")
                .action(ArgAction::HelpLong)
                .help("Print each option with its details (man postie has more)"),
        )
}

/// Parses the main command line (not sendmail's) with [`command`].
pub(crate) fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut command = command();
    let matches = command.try_get_matches_from_mut(args)?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(|err| err.format(&mut command))?;
    cli.user_from_env =
        matches.value_source("user") == Some(clap::parser::ValueSource::EnvVariable);
    Ok(cli)
}

/// For unit tests: the command line `args` as [`parse_from`] reads it, but
/// blind to the POSTIE_* variables of whoever runs the tests.
#[cfg(test)]
pub(crate) fn parse_without_environment(args: &[&str]) -> Cli {
    let command = command().mut_args(|arg| arg.env(None));
    let matches = command
        .try_get_matches_from(std::iter::once("postie").chain(args.iter().copied()))
        .unwrap();
    Cli::from_arg_matches(&matches).unwrap()
}

/// `postie queue ...` as the binary parses it: [`QueueCli`] with the
/// run-time version.
pub(crate) fn queue_command() -> clap::Command {
    QueueCli::command().version(version())
}

/// The sendmail operating modes postie has: `-bm` (the default), `-bs`,
/// and those an MTA package's links stand for (`mailq` is `-bp`,
/// `newaliases` is `-bi`, `-q` sends the queue).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum SendmailMode {
    /// `-bm`: deliver the message on standard input.
    #[default]
    Deliver,
    /// `-bs`: an SMTP server on standard input and output, each message's
    /// envelope from its MAIL FROM and RCPT TO.
    SmtpStdin,
    /// `-bp`: `postie queue list`.
    ListQueue,
    /// `-q`: `postie queue flush`.
    FlushQueue,
    /// `-bi`: nothing to rebuild; aliases are read when mail is sent.
    Newaliases,
}

/// Parses `postie queue ...` (`args` starts with the program name).
pub(crate) fn parse_queue_from<I, T>(args: I) -> Result<QueueCli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut command = queue_command();
    let matches = command.try_get_matches_from_mut(args)?;
    QueueCli::from_arg_matches(&matches).map_err(|err| err.format(&mut command))
}

/// `postie queue ...`: the durable queue of messages kept after a
/// temporary failure. Run `postie queue flush` from cron or a systemd timer.
#[derive(Debug, Parser)]
#[command(
    name = "postie queue",
    version,
    about = "List, send, show, drop or retry queued messages; set up the maildrop"
)]
pub(crate) struct QueueCli {
    #[command(subcommand)]
    pub(crate) command: QueueCommand,

    /// Config file for the queue directory and queue_max_age. A flush sends each
    /// message with the config it was queued with (its --config, else POSTIE_CONFIG
    /// or the default path, as read at flush time).
    #[arg(long, global = true, value_name = "PATH", env = "POSTIE_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    /// Queue directory [default: /var/spool/postie for root, else $XDG_STATE_HOME/postie/queue].
    #[arg(long, global = true, value_name = "DIR", value_hint = ValueHint::DirPath, env = "POSTIE_QUEUE_DIR")]
    pub(crate) queue_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum QueueCommand {
    /// List queued messages: id, age, sender, recipients, attempts, last error.
    List {
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        /// List the messages given up on (in failed/) instead, with why.
        #[arg(long)]
        failed: bool,
    },
    /// Try to send every queued message that is due (exponential backoff per message).
    Flush {
        /// Try every message now, ignoring the backoff.
        #[arg(long)]
        now: bool,
        /// Say what was sent, and show the SMTP dialogue with -vv.
        #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
        verbose: u8,
    },
    /// Show one queued message: its envelope, history and the message itself.
    Show {
        /// The id from `postie queue list`.
        id: String,
    },
    /// Delete one queued message without sending it.
    Drop {
        /// The id from `postie queue list`.
        id: String,
    },
    /// Create or repair the system spool and its maildrop (root; see MAILDROP).
    Init,
    /// Move a message from failed/ back into the queue, as new: attempts and age start again;
    /// one kept before it could be prepared (sendmail mode) is prepared again with today's config.
    Retry {
        /// The id from `postie queue list --failed`.
        id: String,
    },
}

/// `postie config ...` with its version, as `--version` prints it.
pub(crate) fn config_command() -> clap::Command {
    ConfigCli::command().version(version())
}

/// Parses `postie config ...` (`args` starts with the program name).
pub(crate) fn parse_config_from<I, T>(args: I) -> Result<ConfigCli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut command = config_command();
    let matches = command.try_get_matches_from_mut(args)?;
    ConfigCli::from_arg_matches(&matches).map_err(|err| err.format(&mut command))
}

/// `postie config ...`: about the config file itself.
#[derive(Debug, Parser)]
#[command(
    name = "postie config",
    version,
    about = "About the config file: print a commented example"
)]
pub(crate) struct ConfigCli {
    #[command(subcommand)]
    pub(crate) command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print a commented example config with every key (save it as ~/.config/postie/config.toml).
    Example,
}

/// `postie oauth2 ...` with its version, as `--version` prints it.
pub(crate) fn oauth2_command() -> clap::Command {
    OAuth2Cli::command().version(version())
}

/// Parses `postie oauth2 ...` (`args` starts with the program name).
pub(crate) fn parse_oauth2_from<I, T>(args: I) -> Result<OAuth2Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut command = oauth2_command();
    let matches = command.try_get_matches_from_mut(args)?;
    OAuth2Cli::from_arg_matches(&matches).map_err(|err| err.format(&mut command))
}

/// `postie oauth2 ...`: the OAuth2 token of an account whose config has
/// `oauth2_provider` or `oauth2_token_url`.
#[derive(Debug, Parser)]
#[command(
    name = "postie oauth2",
    version,
    about = "Sign in an OAuth2 account once (its token is then refreshed at each send), or show its token's state"
)]
pub(crate) struct OAuth2Cli {
    #[command(subcommand)]
    pub(crate) command: OAuth2Command,

    /// The account [default: the config's default account].
    #[arg(long, global = true, value_name = "NAME", env = "POSTIE_ACCOUNT")]
    pub(crate) account: Option<String>,

    /// Config file.
    #[arg(long, global = true, value_name = "PATH", env = "POSTIE_CONFIG")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum OAuth2Command {
    /// Sign in: print a URL and a code to enter there (device flow), or with --browser
    /// a URL to open (always for google); the token is stored in the state directory.
    Login {
        /// Sign in in a browser on this machine (authorization code with PKCE and a
        /// redirect to 127.0.0.1) instead of entering a code.
        #[arg(long)]
        browser: bool,
    },
    /// Show the account, provider, scopes and when the access token expires (never a token).
    Status,
}

/// `postie dkim ...` with its version, as `--version` prints it.
pub(crate) fn dkim_command() -> clap::Command {
    DkimCli::command().version(version())
}

/// Parses `postie dkim ...` (`args` starts with the program name).
pub(crate) fn parse_dkim_from<I, T>(args: I) -> Result<DkimCli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut command = dkim_command();
    let matches = command.try_get_matches_from_mut(args)?;
    DkimCli::from_arg_matches(&matches).map_err(|err| err.format(&mut command))
}

/// `postie dkim ...`: the key an account signs with (`dkim_key`).
#[derive(Debug, Parser)]
#[command(
    name = "postie dkim",
    version,
    about = "Make a DKIM signing key and print the DNS record that publishes it"
)]
pub(crate) struct DkimCli {
    #[command(subcommand)]
    pub(crate) command: DkimCommand,
}

/// The key types `postie dkim keygen` makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum DkimAlgorithm {
    /// RSA (rsa-sha256), which every verifier knows.
    Rsa,
    /// Ed25519 (ed25519-sha256, RFC 8463): short, but not every verifier knows it yet.
    Ed25519,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum DkimCommand {
    /// Write a new private key (mode 0600, never over an existing file) and print the
    /// TXT record to publish at SELECTOR._domainkey.DOMAIN, with the config lines on stderr.
    Keygen {
        /// The selector: the name of this key under the domain (e.g. the month, 2026-12).
        #[arg(long, value_name = "SELECTOR")]
        selector: String,
        /// The domain the key signs for (d=), the From domain or a parent of it.
        #[arg(long, value_name = "DOMAIN")]
        domain: String,
        /// Key type; rsa where in doubt.
        #[arg(long, value_enum, default_value_t = DkimAlgorithm::Rsa)]
        algorithm: DkimAlgorithm,
        /// RSA key size in bits, 2048 to 8192 (DNS TXT records over about 4096 bits are
        /// unwieldy) [default: 2048]; not for ed25519, whose keys have one size.
        #[arg(long, value_name = "BITS")]
        bits: Option<u32>,
        /// Where to write the private key [default: SELECTOR.private in the current directory].
        #[arg(long, value_name = "PATH")]
        key_file: Option<PathBuf>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
        command().debug_assert();
        queue_command().debug_assert();
        config_command().debug_assert();
        oauth2_command().debug_assert();
        dkim_command().debug_assert();
    }

    #[test]
    fn version_names_the_tls_library() {
        assert!(
            version().starts_with(concat!(env!("CARGO_PKG_VERSION"), " (OpenSSL ")),
            "{}",
            version()
        );
    }
}
