//! `postie generate DIR`: the shell completions and man pages, generated
//! from the clap definitions in `cli` and written to `DIR/completions/` and
//! `DIR/man/`.
//!
//! The generated files are committed (`cargo run -- generate .`), and
//! tests/generated.rs fails when they differ from what this code produces,
//! so a changed flag cannot leave stale completions or man pages behind.
//! Everything here is deterministic: no date, no host, and the plain crate
//! version rather than the run-time OpenSSL one of `postie --version`.
//!
//! The man pages take NAME, SYNOPSIS, DESCRIPTION and OPTIONS from
//! clap_mangen (one subsection per help heading) and append the sections a
//! sysadmin looks for (CONFIGURATION, SENDMAIL COMPATIBILITY, EXIT STATUS,
//! ENVIRONMENT, FILES, EXAMPLES, SEE ALSO) written here with roff, from the
//! README. Man page text must stay ASCII: groff reads its input as Latin-1
//! unless preconv runs first.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, Command, CommandFactory};
use clap_complete::{Generator, Shell};
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use clap_mangen::Man;

use crate::cli::args::{self, QueueCli};
use crate::exit::{io_reason, Error, Exit, Result};
use crate::types::{AuthMethod, QueuePolicy, TlsMode};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The shells completions are written for.
const SHELLS: [Shell; 5] = [
    Shell::Bash,
    Shell::Zsh,
    Shell::Fish,
    Shell::Elvish,
    Shell::PowerShell,
];

/// `postie generate DIR`; `args` are the arguments after `generate`.
pub fn run(args: &[OsString]) -> Result<()> {
    let [dir] = args else {
        return Err(Error::usage(
            "usage: postie generate DIR (writes DIR/completions/ and DIR/man/)",
        ));
    };
    let dir = Path::new(dir);
    for (relative, contents) in files() {
        let path = dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|err| write_error(parent, &err))?;
        }
        std::fs::write(&path, contents).map_err(|err| write_error(&path, &err))?;
    }
    Ok(())
}

fn write_error(path: &Path, err: &std::io::Error) -> Error {
    Error::new(
        Exit::IoErr,
        format!("cannot write {}: {}", path.display(), io_reason(err)),
    )
}

/// Every generated file: its path under DIR and its contents.
pub fn files() -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for shell in SHELLS {
        let mut command = command();
        let mut buffer = Vec::new();
        clap_complete::generate(shell, &mut command, "postie", &mut buffer);
        files.push((
            Path::new("completions").join(shell.file_name("postie")),
            buffer,
        ));
    }
    files.push((PathBuf::from("man/postie.1"), postie_page().into_bytes()));
    files.push((
        PathBuf::from("man/postie-queue.1"),
        queue_page().into_bytes(),
    ));
    files.push((
        PathBuf::from("man/postie.toml.5"),
        config_page().into_bytes(),
    ));
    files
}

/// The main command with `queue` as a subcommand: what a shell completes.
/// The binary dispatches `postie queue` itself (see main.rs), so this
/// combination exists only for generation.
pub fn command() -> Command {
    args::command()
        // Not args::version(): the files must not depend on the OpenSSL of
        // the machine that generated them.
        .version(VERSION)
        .args_conflicts_with_subcommands(true)
        // `postie help` would be a message to a recipient named help: the
        // binary has no help subcommand, so the completions must not offer one.
        .disable_help_subcommand(true)
        .subcommand(queue_command())
}

fn queue_command() -> Command {
    QueueCli::command().name("queue").version(VERSION)
}

// ---------------------------------------------------------------------------
// Man page plumbing

/// A man page section as clap_mangen renders it: its `.SH` title and the
/// lines after the `.SH` line.
struct ClapSection {
    title: String,
    body: String,
}

/// Renders `command` with clap_mangen and splits the result into sections
/// (the preamble and `.TH` line are dropped: [`Page`] writes its own).
fn clap_sections(command: Command) -> Vec<ClapSection> {
    let mut rendered = Vec::new();
    Man::new(command)
        .render(&mut rendered)
        .expect("rendering to memory cannot fail");
    let rendered = String::from_utf8(rendered).expect("clap_mangen writes UTF-8");
    let mut sections: Vec<ClapSection> = Vec::new();
    for line in rendered.lines() {
        if let Some(title) = line.strip_prefix(".SH ") {
            sections.push(ClapSection {
                title: title.trim_matches('"').to_string(),
                body: String::new(),
            });
        } else if let Some(section) = sections.last_mut() {
            section.body.push_str(line);
            section.body.push('\n');
        }
    }
    sections
}

/// Appends clap's NAME, SYNOPSIS, DESCRIPTION and OPTIONS sections to
/// `page`, with the options of each help heading as a subsection of
/// OPTIONS. clap's VERSION, EXTRA and SUBCOMMANDS sections are left out:
/// the pages say the same in their own sections.
fn push_clap_sections(page: &mut Page, command: Command) {
    let headings: Vec<String> = command
        .get_arguments()
        .filter_map(Arg::get_help_heading)
        .map(str::to_string)
        .collect();
    for section in clap_sections(command) {
        let heading = headings.iter().find(|h| h.to_uppercase() == section.title);
        let body = bold_backticks(&section.body);
        match (section.title.as_str(), heading) {
            (_, Some(heading)) => page.raw(&format!(".SS {heading}\n{body}")),
            ("NAME" | "SYNOPSIS" | "DESCRIPTION" | "OPTIONS", None) => {
                page.raw(&format!(".SH {}\n{body}", section.title))
            }
            _ => {}
        }
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

/// A man page being written. Text takes a little markup: `code` is set in
/// bold (commands, options, keys, paths) and *word* in italics
/// (placeholders). Each paragraph is one line of Rust source, never
/// starting with a space (roff would break the line there).
struct Page {
    text: String,
    /// Right after a heading: no paragraph break needed.
    fresh: bool,
}

impl Page {
    /// Starts a page with the roff preamble and its `.TH` line.
    fn new(title: &str, section: &str, manual: &str) -> Page {
        let mut roff = Roff::new();
        roff.control(
            "TH",
            [title, section, "\"\"", &format!("postie {VERSION}"), manual],
        );
        // Left-aligned and unhyphenated: option names, paths and addresses
        // stay whole, and no line is stretched to the margin.
        roff.control("ad", ["l"]).control("nh", []);
        Page {
            text: roff.render(),
            fresh: true,
        }
    }

    fn raw(&mut self, text: &str) {
        self.text.push_str(text);
        self.fresh = false;
    }

    fn push(&mut self, roff: &Roff) {
        // Each Roff renders the apostrophe preamble; one, at the top, is enough.
        let rendered = roff.render();
        let body = rendered
            .split_once(".el .ds Aq '\n")
            .map(|(_, body)| body)
            .unwrap_or(&rendered);
        self.text.push_str(body);
    }

    fn section(&mut self, title: &str) {
        self.push(Roff::new().control("SH", [title]));
        self.fresh = true;
    }

    /// A paragraph.
    fn p(&mut self, text: &str) {
        let mut roff = Roff::new();
        if !self.fresh {
            roff.control("PP", []);
        }
        roff.text(inline(text));
        self.push(&roff);
        self.fresh = false;
    }

    /// A tagged paragraph: `term` on its own line, `text` indented below.
    fn item(&mut self, term: &str, text: &str) {
        self.push(
            Roff::new()
                .control("TP", [])
                .text(inline(term))
                .text(inline(text)),
        );
        self.fresh = false;
    }

    /// Indented lines set as they are (commands, config files).
    fn example(&mut self, lines: &str) {
        let mut roff = Roff::new();
        if !self.fresh {
            roff.control("PP", []);
        }
        roff.control("RS", ["4"]).control("nf", []);
        for line in lines.trim_matches('\n').lines() {
            if line.is_empty() {
                roff.control("sp", []);
            } else {
                roff.text([roman(line)]);
            }
        }
        roff.control("fi", []).control("RE", []);
        self.push(&roff);
        self.fresh = false;
    }

    fn finish(self) -> String {
        self.text
    }
}

/// Turns the markup of [`Page`] into roff inlines.
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

// ---------------------------------------------------------------------------
// postie(1)

const POSTIE_SYNOPSIS: &str = "\
postie [OPTIONS] [--body TEXT | --body-file PATH] RECIPIENT...
postie [OPTIONS] --message PATH [-t] [RECIPIENT...]
postie --server HOST[:PORT] --capabilities [--json]
postie queue list | flush | show ID | drop ID
sendmail [SENDMAIL OPTIONS] [RECIPIENT...]";

const POSTIE_DESCRIPTION: &str = "\
postie composes a correct MIME message from flags and files (text, HTML, attachments, inline \
images, UTF-8 everywhere) and submits it over SMTP: plain, STARTTLS or implicit TLS, with \
authentication, to a server given on the command line, in the environment, or in a config file \
of named accounts. Without a server it delivers straight to each recipient domain's MX hosts.

The body comes from --body, --body-file or standard input (when it is not a terminal); \
recipients from the arguments, --to, --cc and --bcc. --message sends a ready-made RFC 5322 \
message instead.

Failures are one line on standard error and a sysexits(3) exit code that scripts and cron can \
branch on. A temporary failure can leave the message in a durable queue instead, sent later by \
postie queue flush (see postie-queue(1)).

postie also tests servers as swaks does (-v, --timing, --quit-after, --capabilities, \
--test-message), and takes sendmail's command line when called through a link named sendmail.";

fn postie_page() -> String {
    let command = command()
        .override_usage(POSTIE_SYNOPSIS)
        .long_about(POSTIE_DESCRIPTION)
        .after_help(None::<&str>);
    let mut page = Page::new("POSTIE", "1", "User Commands");
    push_clap_sections(&mut page, command);
    configuration(&mut page);
    sendmail_compatibility(&mut page);
    multi_user(&mut page);
    exit_status(&mut page);
    environment(&mut page);
    files_section(&mut page);
    examples(&mut page);
    page.section("SEE ALSO");
    page.p(
        "postie-queue(1), postie.toml(5), aliases(5), sendmail(8), sysexits(3), swaks(1), \
         msmtp(1)",
    );
    page.finish()
}

fn configuration(page: &mut Page) {
    page.section("CONFIGURATION");
    page.p(
        "postie reads the first of: the file named by `--config` or `POSTIE_CONFIG` (which must \
         exist); `$XDG_CONFIG_HOME/postie/config.toml` (`~/.config/postie/config.toml`); \
         `/etc/postie/config.toml`. Without any, flags and the environment say everything. A \
         file that exists but cannot be read is an error (exit 78) naming it, never a reason to \
         try the next one. `-v` names the file and the account used, or the paths tried.",
    );
    page.p(
        "The home directory is `$HOME` when it belongs to the user postie runs as; otherwise \
         (Debian's cron runs a user's jobs with `HOME=/root`) it comes from the password \
         database, and `XDG_CONFIG_HOME` and `XDG_STATE_HOME` are ignored, for the config and \
         the queue alike.",
    );
    page.p(
        "The file is TOML: named accounts in `[accounts.`*NAME*`]` tables, a `[defaults]` table \
         that every account inherits, and a few top-level keys. postie.toml(5) describes every \
         key; `examples/config.toml` in the source (installed by `make install` as \
         `share/doc/postie/examples/config.toml` under the prefix) is a commented example of all of them.",
    );
    page.example(
        r#"
default = "work"

[defaults]
tls = "starttls"

[accounts.work]
server = "smtp.example.com:587"
from = "Me <me@example.com>"
user = "me@example.com"
password_cmd = "pass show smtp/work"
"#,
    );
    page.p(
        "The account is `--account` *NAME* (or `POSTIE_ACCOUNT`), else the one whose `from` \
         address equals `--from`, else the one named by `default`. Each setting comes from, in \
         order: the flag, its environment variable, the account, `[defaults]`, the built-in \
         default.",
    );
    page.p(
        "Unknown keys are errors, reported with their line and column. A config file that group \
         or others can write, or that belongs to someone other than you or root, is refused \
         (exit 78), whatever it holds; so is one holding a `password` that group or others can \
         read. The message names the `chmod` or `chown` that fixes it; `password_cmd` keeps the \
         secret out of the file. See postie.toml(5), PERMISSIONS.",
    );
}

fn sendmail_compatibility(page: &mut Page) {
    page.section("SENDMAIL COMPATIBILITY");
    page.p(
        "Cron, mdadm, smartd, unattended-upgrades, logwatch, mailx, mutt and git send-email hand \
         their mail to `sendmail`. postie takes sendmail's command line (msmtp's interface is \
         the reference) when it is called through a link named `sendmail`, or with \
         `--sendmail`: the message on standard input, the recipients as arguments.",
    );
    page.example(
        r#"
ln -s /usr/local/bin/postie /usr/sbin/sendmail
ln -s /usr/local/bin/postie /usr/lib/sendmail
"#,
    );
    page.p("(`make install-sendmail-link` does the same.) The options:");
    let options: [(&str, &str); 10] = [
        (
            "*RECIPIENT*...",
            "Envelope recipients; local names go through the aliases, `admin` and `local_domain`.",
        ),
        (
            "`-t`",
            "Also take recipients from the To, Cc and Bcc headers (or Resent-To, Resent-Cc and \
             Resent-Bcc when the message has any).",
        ),
        (
            "`-f` *ADDR*, `-f`*ADDR*, `-r` *ADDR*",
            "Envelope sender (and From, when postie adds one).",
        ),
        (
            "`-F` *NAME*, `-F`*NAME*",
            "Display name for a From header that postie adds.",
        ),
        (
            "`-i`, `-oi`",
            "A line holding a single dot does not end the message; without them it does.",
        ),
        ("`-bm`", "Deliver (the default)."),
        (
            "`-oem`, `-odi`, `-oee`, other `-o`*X*, `-em`, `-B8BITMIME`, `-N` *dsn*, `-R` *ret*, \
             `-V`, `-X`, `-L`, `-h`, `-n`, `-m`, `-U`, `-G`",
            "Accepted and ignored.",
        ),
        (
            "`-C` *FILE*, `--config=`*FILE*, `--account=`*NAME*, `--from`, `--server`, \
             `--queue`, `--no-queue`, `--queue-dir=`*DIR*, `--dry-run`, `--read-recipients` \
             (= `-t`), `--sendmail`",
            "postie's own.",
        ),
        (
            "`-v`",
            "Show the SMTP dialogue on stderr, as postie -v does.",
        ),
        (
            "`-bs`, `-bp`, `-bd`, `-bi`, `-bv`, `-bt`, `-q`...",
            "Exit 64: postie only submits mail. Its own queue: `postie queue list` (for `-bp`) \
             and `postie queue flush` (for `-q`).",
        ),
    ];
    for (option, effect) in options {
        page.item(option, effect);
    }
    page.p(
        "Local recipients such as `root` or `www-data` are mapped by the aliases file (sendmail \
         syntax: `name: addr, addr`, continuation lines, and `default:` for every other name), \
         else go to the config's `admin`, else `local_domain` is appended, else the recipient is \
         an error (exit 67) naming these three fixes, before any server sees it. This decides \
         where the mail goes; headers never show an alias's target.",
    );
    page.p(
        "An envelope sender without a domain (cron's `-f root`) is qualified with \
         `local_domain`; without it, the account's `from` becomes the envelope sender.",
    );
    page.p(
        "The account's `from_policy` decides what happens to the sender of a ready-made message \
         (sendmail mode, `--message`):",
    );
    page.item(
        "`keep`",
        "From is never touched; the envelope sender is `-f`, else the account's `from`, else \
         the message's From.",
    );
    page.item(
        "`fill` (the default)",
        "As `keep`, but a missing From is added (the envelope sender, with `-F`'s name), and \
         bare local names in From, To and Cc (`From: root (Cron Daemon)`, `To: root`) are \
         qualified with `local_domain`, else with the domain of the account's `from`.",
    );
    page.item(
        "`override`",
        "The envelope sender and the From address become the account's `from`; the message's \
         display name (\"Cron Daemon\") is kept. Local names in To and Cc are qualified as \
         with `fill`.",
    );
    page.p(
        "In sendmail mode the account's `queue` setting defaults to `on-tempfail`: a cron report \
         survives a mail server that is down, and `postie queue flush` sends it later.",
    );
}

/// What the README calls "Several users on one machine".
const MAILDROP_TEXT: [&str; 3] = [
    "When root's `/etc/postie/config.toml` holds the relay's password, it is `chmod 600` and \
     other users cannot read it. A user's cron job still mails through it: in sendmail mode, a \
     user other than root who has no config of their own (and gives no `-C`, `--config` or \
     `--server`), on a machine whose system config exists but cannot be opened, hands the \
     message to the maildrop, `/var/spool/postie/maildrop`, and exits 0. The ordinary command \
     line never does.",
    "The maildrop is set up by `make install` or `postie queue init` (which also repairs the \
     modes): `/var/spool/postie` is root's, mode 0711, and `maildrop/` mode 1733, so anyone may \
     add a file but nobody else may list, read or remove it. A drop file holds only what \
     sendmail's command line said (`-f`, `-F`, `-t`, `-i`, the recipients) and the message as \
     it came in; never a setting that root's flush would run or read.",
    "Root's `postie queue flush` picks the drops up first: it opens each without following a \
     link or blocking, refuses (and removes) anything that is not a regular file with one \
     link, takes the sender's user id from the file's owner, plans the message with the system \
     config exactly as sendmail mode would (aliases, `local_domain`, `from_policy`), adds \
     `Received: by `*HOST*` (postie, from userid `*N*`)`, queues it in root's queue, logs the \
     user id and removes the drop file. A message the system config cannot plan is kept in \
     `failed/` with the reason. A drop still being written (a dot name) is left alone, and \
     removed once abandoned for a day. So run the flush from root's crontab or a systemd timer.",
];

fn multi_user(page: &mut Page) {
    page.section("SEVERAL USERS ON ONE MACHINE");
    for text in MAILDROP_TEXT {
        page.p(text);
    }
}

fn exit_status(page: &mut Page) {
    page.section("EXIT STATUS");
    page.p(
        "The codes of sysexits(3); every failure is also one line on standard error, `postie: \
         error: `*STAGE*`: `*what happened*`; `*what to try*` (`*EX_NAME code*`)`.",
    );
    let codes: [(&str, &str); 13] = [
        (
            "0",
            "Every recipient was sent to (the server answered 250 to the end of DATA) or \
             queued.",
        ),
        (
            "64 EX_USAGE",
            "Bad command line: unknown flag, missing sender, recipients, server or body; \
             `--mx` with `--user`, `--password-cmd` or `--auth`.",
        ),
        (
            "65 EX_DATAERR",
            "Malformed address, header (CR or LF in it) or message; a body that is not UTF-8; an \
             EHLO name that is no domain; an inline image without a usable Content-ID; a \
             message over `max_message_size`.",
        ),
        (
            "66 EX_NOINPUT",
            "An input file (body, HTML, attachment, CA file) is missing or unreadable.",
        ),
        (
            "67 EX_NOUSER",
            "A recipient was refused permanently (5xx to RCPT), or a local name has no alias.",
        ),
        (
            "68 EX_NOHOST",
            "The server's host name does not resolve; with MX delivery, a recipient domain does \
             not exist or has no address.",
        ),
        (
            "69 EX_UNAVAILABLE",
            "5xx to the greeting, MAIL or DATA; STARTTLS required but not offered; certificate \
             not trusted; no usable AUTH mechanism; SMTPUTF8 needed but not offered.",
        ),
        ("70 EX_SOFTWARE", "A bug in postie."),
        (
            "74 EX_IOERR",
            "The connection was lost mid-session, or the queue or standard output could not be \
             written.",
        ),
        (
            "75 EX_TEMPFAIL",
            "Any 4xx reply, connection refused, timeout (also the password command's): retry \
             later.",
        ),
        (
            "76 EX_PROTOCOL",
            "The reply is not SMTP, or the TLS handshake failed.",
        ),
        ("77 EX_NOPERM", "Authentication refused, or the server requires a client certificate or did not accept the one given."),
        (
            "78 EX_CONFIG",
            "Configuration error: bad key, unknown account, unsafe file permissions, no password, \
             a password command that fails or prints something unusable, an account with a \
             login but no server.",
        ),
    ];
    for (code, meaning) in codes {
        page.item(&format!("`{code}`"), meaning);
    }
    page.p(
        "When recipients fare differently (with `--partial`, or with MX delivery to several \
         domains), the exit status is 0 when every recipient was delivered or queued; otherwise \
         the code of the first refused recipient; 75 only when queueing is off and a recipient \
         is still owed (a 4xx reply, a lost connection or a timeout). Without `--partial` a \
         message goes to all its recipients or to none: one permanent refusal refuses it \
         (67). `--quit-after` exits 0 when every stage up to the one named succeeded.",
    );
}

fn environment(page: &mut Page) {
    page.section("ENVIRONMENT");
    page.p("Each variable stands in for a flag, which wins over it; the variable wins over the config file.");
    let variables: [(&str, &str); 14] = [
        ("POSTIE_SERVER", "The server, as `--server`."),
        ("POSTIE_PORT", "The port, as `--port`."),
        ("POSTIE_TLS", "The TLS mode, as `--tls`."),
        ("POSTIE_USER", "The user name for AUTH, as `--user`."),
        (
            "POSTIE_PASSWORD",
            "The password (or OAuth2 token); used when `--password-cmd` is not given. It \
             cannot be a flag: every user can read a process's arguments.",
        ),
        ("POSTIE_FROM", "The sender, as `--from`."),
        ("POSTIE_ACCOUNT", "The config account, as `--account`."),
        ("POSTIE_CONFIG", "The config file, as `--config`."),
        ("POSTIE_QUEUE_DIR", "The queue directory, as `--queue-dir`."),
        (
            "POSTIE_SYSTEM_CONFIG",
            "Replaces `/etc/postie/config.toml`, for tests and for packages that install the \
             system-wide file elsewhere: the system config that every user falls back to, whose \
             unreadability sends a user's mail to the maildrop, and which its pickup uses.",
        ),
        (
            "POSTIE_SPOOL_DIR",
            "For tests and packagers: the spool holding the maildrop, instead of \
             `/var/spool/postie`. Every user's postie must agree on it.",
        ),
        (
            "HOME",
            "The home directory, when it belongs to the user postie runs as (else the password \
             database's).",
        ),
        (
            "XDG_CONFIG_HOME",
            "Where the user's config is looked for (default `~/.config`).",
        ),
        (
            "XDG_STATE_HOME",
            "Where a user's queue is kept (default `~/.local/state`).",
        ),
    ];
    for (name, meaning) in variables {
        page.item(&format!("`{name}`"), meaning);
    }
}

fn files_section(page: &mut Page) {
    page.section("FILES");
    let files: [(&str, &str); 7] = [
        (
            "~/.config/postie/config.toml",
            "The user's config file (`$XDG_CONFIG_HOME/postie/config.toml`); see postie.toml(5).",
        ),
        (
            "/etc/postie/config.toml",
            "The system-wide config file, used when the user has none (root's cron jobs, for \
             example). Make it `chmod 600` if it holds a password.",
        ),
        (
            "share/doc/postie/examples/config.toml",
            "Under the install prefix (`examples/config.toml` in the source): an example config \
             with every key, commented.",
        ),
        (
            "/var/spool/postie",
            "The queue for root; see postie-queue(1).",
        ),
        (
            "/var/spool/postie/maildrop",
            "Messages from users who cannot read the system config, for root's flush; see \
             SEVERAL USERS ON ONE MACHINE.",
        ),
        (
            "~/.local/state/postie/queue",
            "The queue for other users (`$XDG_STATE_HOME/postie/queue`).",
        ),
        (
            "/etc/aliases",
            "The usual aliases file for local recipients in sendmail mode; postie reads it only \
             when `aliases` in the config names it.",
        ),
    ];
    for (path, meaning) in files {
        page.item(&format!("`{path}`"), meaning);
    }
}

fn examples(page: &mut Page) {
    page.section("EXAMPLES");
    page.p("A report from a script, body from standard input, with an attachment:");
    page.example(r#"echo "$body" | postie -s "Backup done" ops@example.com -a report.csv"#);
    page.p("Build and print a message without sending it:");
    page.example("postie --dry-run -f me@example.com -s Test you@example.com --body Hello");
    page.p("A server given in full, with STARTTLS and the password from pass(1):");
    page.example(
        r#"
df -h | postie --server smtp.example.com --user me@example.com \
    --password-cmd 'pass show smtp' -f 'Me <me@example.com>' \
    -s "Disk report $(hostname)" ops@example.com
"#,
    );
    page.p(
        "HTML with an inline image (shown by `<img src=\"cid:logo.png\">`) and an attachment, \
         through a config account:",
    );
    page.example(
        r#"
postie --account work -s Report --body-file report.txt \
    --html report.html --inline img/logo.png \
    -a 'data.bin;type=application/x-foo' boss@example.com
"#,
    );
    page.p("Testing a server: its extensions and certificate; whether it takes mail for an address, without sending any; a timed test message:");
    page.example(
        r#"
postie --server mx.example.com:25 --capabilities
postie --server smtp.example.com -v --quit-after rcpt \
    -f me@example.com someone@example.com
postie --server smtp.example.com --timing --test-message \
    -f me@example.com me@example.com
"#,
    );
    page.p("Straight to the recipient domain's MX hosts, showing the dialogue:");
    page.example("postie --mx -v --test-message -f me@example.com postmaster@example.org");
}

// ---------------------------------------------------------------------------
// postie-queue(1)

const QUEUE_SYNOPSIS: &str = "\
postie queue [--config PATH] [--queue-dir DIR] list [--json] [--failed]
postie queue [--config PATH] [--queue-dir DIR] flush [--now] [-v]
postie queue [--config PATH] [--queue-dir DIR] show ID
postie queue [--config PATH] [--queue-dir DIR] drop ID
postie queue [--config PATH] [--queue-dir DIR] retry ID";

const QUEUE_DESCRIPTION: &str = "\
A temporary failure (any 4xx reply, a refused or timed-out connection, a connection lost before \
the final reply) can leave the message in a durable queue instead of failing: postie then exits \
0 saying queued as ID. Only the recipients still owed the message are queued; one that has it is \
never sent to twice. Permanent failures are never queued; in sendmail mode the message is kept in \
failed/ instead, with the reason.

postie queue lists, sends, shows and drops the queued messages. Run postie queue flush from cron \
or a systemd timer (see EXAMPLES).";

fn queue_page() -> String {
    let command = queue_command()
        .bin_name("postie queue")
        .display_name("postie-queue")
        .override_usage(QUEUE_SYNOPSIS)
        .long_about(QUEUE_DESCRIPTION);
    let mut page = Page::new("POSTIE-QUEUE", "1", "User Commands");
    push_clap_sections(&mut page, command);

    page.section("COMMANDS");
    for sub in QueueCli::command().get_subcommands() {
        let mut term = format!("`{}`", sub.get_name());
        for arg in sub.get_arguments() {
            term.push(' ');
            term.push_str(&arg_synopsis(arg));
        }
        page.item(
            &term,
            &sub.get_about().map(|a| a.to_string()).unwrap_or_default(),
        );
        let options: Vec<&Arg> = sub.get_arguments().filter(|a| !a.is_positional()).collect();
        if !options.is_empty() {
            page.raw(".RS\n");
            for arg in options {
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                page.item(&arg_synopsis(arg).replace(['[', ']'], ""), &help);
            }
            page.raw(".RE\n");
        }
    }

    page.section("THE QUEUE");
    page.p(
        "When a message is queued depends on the account's `queue` key (`never`, `on-tempfail`, \
         `always`), overridden by `--queue` and `--no-queue`. The default is `on-tempfail` in \
         sendmail mode and `never` otherwise.",
    );
    page.p(
        "The queue is `/var/spool/postie` for root, else `$XDG_STATE_HOME/postie/queue` \
         (`~/.local/state/postie/queue`); `queue_dir` in the config, `--queue-dir` or \
         `POSTIE_QUEUE_DIR` override it. Each entry is two files named by its id: *ID*`.eml`, \
         the message exactly as it goes on the wire, and *ID*`.json`, its envelope, the settings \
         to send it with and its delivery history. Both are written to `tmp/`, fsynced and \
         renamed into place, so a crash or a full disk never leaves half an entry; if queueing \
         itself fails, the original error is the exit code.",
    );
    page.p(
        "`flush` sends each entry that is due: the backoff per entry is 5 minutes after the \
         first failure, doubling, at most 4 hours (`--now` ignores it). Entries with the same \
         stored settings and sender go over one session (up to 100 entries or 64 MiB at a \
         time). An entry is removed only after the server's final 250; of an entry that reached \
         some recipients, only those still owed stay, and the refused ones move to `failed/`. \
         An entry that fails permanently, or is older than \
         `queue_max_age` (default `5d`), moves to `failed/`. When a server does not answer \
         (connection refused or unanswered, no greeting, or a 4xx greeting), the other entries \
         with the same settings are left for the next flush instead of each waiting out a \
         timeout. Each entry is locked while it is sent, so two flushes at once never send it \
         twice.",
    );
    page.p(
        "One bad entry never stops a flush: an entry whose message is missing or shorter than \
         its recorded size, or whose `.json` cannot be read, moves to `failed/` with the reason \
         (a description that does not parse is kept as it is, the reason next to it in \
         *ID*`.reason`), and the flush goes on with the others. An entry whose new state cannot \
         be written (a full disk), or that cannot be set up for sending (its config unreadable, \
         its password command failing), stays as it was, and the flush goes on too. `list --failed` \
         shows what `failed/` holds and why; `retry` *ID* moves an entry back into the queue \
         with its attempts and age reset, once the cause is fixed. A message kept before it \
         could even be prepared (sendmail mode: a local name with no alias, a config that could \
         not be read) keeps what its command line said, and `retry` prepares it again with the \
         config as it is then.",
    );
    page.p(
        "The settings an entry is sent with are a versioned record of their own, not a command \
         line: the flags that decide how it is sent (`--config`, `--account`, `--server`, TLS, \
         authentication, `--timeout`, `--partial`, `--mx`, ...), with every path made absolute. \
         At flush time they win over the account, which wins over `[defaults]`, as on the \
         command line. Entries written by older versions are read and converted when next \
         saved.",
    );
    page.p(
        "Passwords are never stored in the queue: a flush reads them from the config \
         (`password_cmd`, `password`) or `POSTIE_PASSWORD` as they are then. A `--password-cmd` \
         given on the command line is stored (a command, not a secret) and run again by the \
         flush.",
    );

    page.section("PERMISSIONS");
    page.p(
        "Root's flush acts on what the queue holds, so nobody else may write it. The queue \
         directory, its `tmp/` and its `failed/` must belong to the user postie runs as and \
         must not be writable by group or others (0700 as postie makes them; 0711, the \
         spool's mode, is fine too); otherwise every command that uses the queue exits 78, \
         naming the directory and the `chmod go-w` or `chown` that fixes it. Check it for \
         entries you did not queue first. The maildrop is the one exception: anyone may write \
         it, and what it holds is data only.",
    );
    page.p(
        "Queue files are opened without following symbolic links, and new ones are created \
         with `O_EXCL`: a link found at a temporary or lock name is removed, never written \
         through. An entry whose description belongs to another user is skipped, with one \
         warning line, and left where it is.",
    );

    page.section("MAILDROP");
    for text in MAILDROP_TEXT {
        page.p(text);
    }

    page.section("EXIT STATUS");
    page.p(
        "`flush` is silent when all is well and exits 0 when every entry that was due got sent \
         (an entry still in its backoff is not due: `postie queue list` shows it); 75 \
         (EX_TEMPFAIL) when an entry it tried is still waiting; otherwise the code of the first \
         permanent failure (69 for an entry that expired, 65 for a damaged entry or a refused \
         maildrop file); 74 when an entry's new state could not be written. It prints one line \
         on standard error for each message it defers or gives up on, so cron mails only news.",
    );
    page.p(
        "`retry` exits 66 when `failed/` has no entry *ID* (or it has lost its message), 65 when \
         the entry there is damaged, and with the error's own code when a message kept before \
         it could be prepared still cannot be (it stays in `failed/`). `init` exits 77 when not \
         run as root.",
    );
    page.p(
        "`list`, `show` and `drop` exit 0; 66 when there is no entry *ID*; 75 when `drop` finds \
         the entry being sent by a flush. 74 means the queue directory could not be read or \
         written, 78 a configuration error or a queue directory others could write (see \
         PERMISSIONS). The codes are those of postie(1).",
    );

    page.section("ENVIRONMENT");
    page.item("`POSTIE_CONFIG`", "The config file, as `--config`.");
    page.item(
        "`POSTIE_QUEUE_DIR`",
        "The queue directory, as `--queue-dir`.",
    );
    page.item(
        "`POSTIE_PASSWORD`",
        "The password, read by each flush; it wins over the account's `password_cmd` and \
         `password`.",
    );
    page.item(
        "`XDG_STATE_HOME`",
        "Where a user's queue is kept (default `~/.local/state`).",
    );
    page.item(
        "`POSTIE_SPOOL_DIR`, `POSTIE_SYSTEM_CONFIG`",
        "For tests and packagers: the spool (instead of `/var/spool/postie`) and the system \
         config (instead of `/etc/postie/config.toml`) of the maildrop.",
    );

    page.section("FILES");
    page.item("`/var/spool/postie`", "The queue for root.");
    page.item(
        "`/var/spool/postie/maildrop`",
        "Users' messages waiting for root's flush (see MAILDROP).",
    );
    page.item(
        "`~/.local/state/postie/queue`",
        "The queue for other users.",
    );
    page.item(
        "*QUEUE*`/`*ID*`.eml`, *QUEUE*`/`*ID*`.json`",
        "A queued message and its description.",
    );
    page.item(
        "*QUEUE*`/tmp/`",
        "Entries being written; anything left here after a crash is not an entry.",
    );
    page.item(
        "*QUEUE*`/failed/`",
        "Entries that failed permanently, expired or were damaged, kept for a look (`list \
         --failed`) and a `retry`; *ID*`.reason` says why a damaged description was moved.",
    );

    page.section("EXAMPLES");
    page.p("Flush every ten minutes from cron:");
    page.example("*/10 * * * * postie queue flush");
    page.p("or with a systemd timer (enable it with `systemctl enable --now postie-flush.timer`):");
    page.example(
        r#"
# /etc/systemd/system/postie-flush.service
[Service]
Type=oneshot
ExecStart=/usr/local/bin/postie queue flush

# /etc/systemd/system/postie-flush.timer
[Timer]
OnBootSec=2min
OnUnitActiveSec=10min
[Install]
WantedBy=timers.target
"#,
    );
    page.p("Look at what waits, send it now, or give up on one message:");
    page.example(
        r#"
postie queue list
postie queue show 18a9f3c2d4e5b600-1f3a-0
postie queue flush --now -v
postie queue drop 18a9f3c2d4e5b600-1f3a-0
"#,
    );

    page.section("SEE ALSO");
    page.p("postie(1), postie.toml(5), crontab(5), systemd.timer(5)");
    page.finish()
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
// postie.toml(5)

/// A config key's heading with its values: `` `tls =` `"starttls"` | ... ``.
fn key_values<T: clap::ValueEnum>(key: &str) -> String {
    let values: Vec<String> = T::value_variants()
        .iter()
        .filter_map(|v| v.to_possible_value())
        .map(|v| format!("`\"{}\"`", v.get_name()))
        .collect();
    format!("`{key} =` {}", values.join(" | "))
}

fn config_page() -> String {
    let mut page = Page::new("POSTIE.TOML", "5", "File Formats");
    page.section("NAME");
    page.p("postie.toml - configuration file of postie");

    page.section("SYNOPSIS");
    page.p("`~/.config/postie/config.toml`");
    page.p("`/etc/postie/config.toml`");

    page.section("DESCRIPTION");
    page.p(
        "postie(1) reads the file named by `--config` or `POSTIE_CONFIG`, else \
         `$XDG_CONFIG_HOME/postie/config.toml` (`~/.config/postie/config.toml`), else \
         `/etc/postie/config.toml` (`~` is the home directory from the password database when \
         `$HOME` is another user's; a file that exists but cannot be read is exit 78). It is \
         TOML: a few top-level keys, a `[defaults]` table \
         whose keys every account inherits, and one `[accounts.`*NAME*`]` table per account. \
         Every key is optional. Unknown keys are errors, reported with their line and column, \
         so that a typo never silently changes how mail is sent.",
    );
    page.p(
        "The account is `--account` *NAME* (or `POSTIE_ACCOUNT`), else the one whose `from` \
         address equals `--from` (ignoring case and display name), else the one named by \
         `default`, else the only account when there is one; without any, only `[defaults]` \
         applies. Each setting comes from, in order: \
         the command-line flag, its `POSTIE_` environment variable, the account, `[defaults]`, \
         the built-in default.",
    );

    page.section("TOP-LEVEL KEYS");
    page.item(
        "`default =` *NAME*",
        "The account used when neither `--account` nor a matching `--from` picks one. It must \
         name an `[accounts.`*NAME*`]` table.",
    );
    page.item(
        "`aliases =` *PATH*",
        "Aliases file for every account (an account's own `aliases` wins); see ALIASES.",
    );
    page.item(
        "`admin =` *ADDRESS*",
        "Receives mail for local names that no aliases entry maps (nullmailer's `adminaddr`, \
         ssmtp's `root=`), before `local_domain` is tried. The aliases file's `default:` entry \
         wins over it.",
    );
    page.item(
        "`queue_dir =` *PATH*",
        "Where queued messages are kept. Default: `/var/spool/postie` for root, else \
         `$XDG_STATE_HOME/postie/queue`. `--queue-dir` and `POSTIE_QUEUE_DIR` override it.",
    );
    page.item(
        "`queue_max_age =` *DURATION*",
        "How long a queued message is retried before it moves to `failed/`: a number with `s`, \
         `m`, `h` or `d` (`\"5d\"`, `\"12h\"`). Default: `\"5d\"`.",
    );
    page.item(
        "`max_message_size =` *SIZE*",
        "The largest ready-made message postie takes (`--message`, and standard input in \
         sendmail mode): a number of octets, or one with `K`, `M` or `G` (binary multiples: \
         `\"100M\"` is 100 MiB). A larger one is refused with exit status 65; in sendmail mode \
         its first *SIZE* octets are kept in `failed/`. Sendmail-mode input over 4 MiB is \
         spooled to an unlinked file in the queue's `tmp/` (else `$TMPDIR`) rather than held \
         in memory while it is read. Default: `\"100M\"`.",
    );

    page.section("ACCOUNT KEYS");
    page.p(
        "These go in `[accounts.`*NAME*`]` tables and in `[defaults]`. Most match a command-line \
         flag of the same name, which wins over them.",
    );
    // The values as clap spells them, which is also how the config and the
    // queue's records spell them (types::tests checks that).
    let (tls, auth, queue) = (
        key_values::<TlsMode>("tls"),
        key_values::<AuthMethod>("auth"),
        key_values::<QueuePolicy>("queue"),
    );
    let keys: [(&str, &str); 22] = [
        (
            "`server =` *SERVER* | [*SERVER*, ...]",
            "The submission server: `HOST`, `HOST:PORT`, `smtp://HOST[:PORT]` or \
             `smtps://HOST[:PORT]` (implicit TLS). A list is tried in order: a connection \
             failure or a 4xx at one goes on to the next before the message is queued. Without \
             a server, postie delivers straight to the recipients' MX hosts, which never get a \
             login: an account with `user`, `password`, `password_cmd` or `auth` but no server \
             is refused (exit 78).",
        ),
        (
            "`port =` *NUMBER*",
            "The server port. Default: 465 for `smtps://` or `tls = \"implicit\"`, else 587 (25 \
             for MX delivery).",
        ),
        (
            &tls,
            "`starttls`: STARTTLS is required, a server that does not offer it is an error (never \
             a silent downgrade). `implicit`: TLS from the first byte (SMTPS). `opportunistic`: \
             STARTTLS when offered, plain text otherwise. `none`: never encrypt. Default: \
             implicit on port 465 or `smtps://`, opportunistic for a loopback server, otherwise \
             starttls. An `smtps://` server always means implicit TLS, whatever this key says \
             (so a `[defaults]` value does not break such an account); only `--tls` can \
             contradict it, which is an error.",
        ),
        (
            "`ca_file =` *PATH*",
            "Trust the CA certificates in this PEM file, in addition to the system's.",
        ),
        (
            "`client_cert =` *PATH*",
            "Client certificate (PEM) to present to the server; needs `client_key`.",
        ),
        (
            "`client_key =` *PATH*",
            "Private key (PEM, PKCS#8) for `client_cert`. Refused (exit 78) when group or \
             others can read it, as a `password` is.",
        ),
        (
            "`insecure =` *BOOL*",
            "Do not verify the server's certificate (postie warns on every run). Prefer \
             `ca_file`. Default: false.",
        ),
        ("`user =` *NAME*", "User name for SMTP AUTH."),
        (
            "`password =` *TEXT*",
            "The password (or OAuth2 token). Allowed only when the file is private to its owner \
             (`chmod 600`); otherwise postie refuses the file (exit 78). Prefer `password_cmd`.",
        ),
        (
            "`password_cmd =` *COMMAND*",
            "Run with `/bin/sh -c`; the first line of its output is the password (or token), \
             e.g. `\"pass show smtp/work\"`. `--password-cmd` and `POSTIE_PASSWORD` win over it; \
             it wins over `password`. It runs only when a session will log in, in a process \
             group of its own and without `POSTIE_PASSWORD`, for at most `timeout` seconds (60 \
             without one): then it and whatever it started are killed (exit 75). Output over \
             64 KiB, not UTF-8, with a NUL byte or with an empty first line is exit 78. In \
             sendmail mode either failure queues the message for the flush, which runs the \
             command again.",
        ),
        (
            &auth,
            "The AUTH mechanism. `auto` (the default) is the first of PLAIN and LOGIN that the \
             server offers; `xoauth2` sends the secret as an OAuth2 access token.",
        ),
        (
            "`allow_plaintext_auth =` *BOOL*",
            "Allow AUTH over an unencrypted connection to a host that is not loopback. Default: \
             false.",
        ),
        (
            "`helo =` *NAME*",
            "The name to announce in EHLO. Default: this machine's host name.",
        ),
        (
            "`timeout =` *SECONDS*",
            "One limit for the connection and every reply. Default: 30 s to connect, 120 s per \
             reply, 300 s for the reply to the end of the message.",
        ),
        (
            "`from =` *ADDRESS*",
            "The sender, `\"Name <addr@example.com>\"` or a bare address: the From header and \
             the envelope sender. `--from` picks the account whose `from` has the same address.",
        ),
        (
            "`partial =` *BOOL*",
            "Send to the accepted recipients even if some were refused (they are still reported \
             and set the exit status). Default: false, one refusal cancels the message.",
        ),
        (
            "`aliases =` *PATH*",
            "Aliases file for local recipients such as `root`, usually `\"/etc/aliases\"`; see \
             ALIASES.",
        ),
        (
            "`local_domain =` *DOMAIN*",
            "Appended to local names that no alias and no `admin` map (`root` becomes \
             `root@`*DOMAIN*), and to a sender without a domain (`-f root`). It also qualifies \
             local names in headers (see `from_policy`). Without it, `admin` or an alias, a local \
             recipient is an error; a local sender becomes the account's `from`.",
        ),
        (
            "`from_policy =` `\"keep\"` | `\"fill\"` | `\"override\"`",
            "The sender of a ready-made message (sendmail mode, `--message`). `keep`: From is \
             never touched. `fill` (the default): a missing From is added, and bare local names \
             in From, To and Cc are qualified with `local_domain`, else the domain of `from` \
             (never replaced by an alias's target). `override`: as `fill`, and the envelope \
             sender and the From address become the account's `from`, keeping the message's \
             display name.",
        ),
        (
            &queue,
            "When to keep a message in the queue instead of failing: never; after a temporary \
             failure; always (without trying: `postie queue flush` sends). Default: \
             `on-tempfail` in sendmail mode, else `never`. See postie-queue(1).",
        ),
        (
            "`logfile =` *PATH*",
            "Append one line per delivery attempt to this file: time, account, server, envelope \
             sender, recipients, size, outcome (sent, queued, failed), the server's reply or the \
             error, exit code. Never a password. A new log is created private (0600); a symbolic \
             link at *PATH* is never followed (a warning, nothing logged), and a log that group \
             or others can write is written with a warning.",
        ),
        (
            "`syslog =` *BOOL*",
            "Log the same line to syslog, facility mail. Default: false.",
        ),
    ];
    for (key, meaning) in keys {
        page.item(key, meaning);
    }

    page.section("ALIASES");
    page.p(
        "The aliases file has sendmail's syntax: `name: addr, addr` per line, indented \
         continuation lines, `#` comments, and `default:` for every name not listed. It maps \
         local recipients (`root`, `www-data`) to real addresses before any server sees them. A \
         name it does not map goes to `admin`, else gets `local_domain`, else is an error.",
    );
    page.example(
        r#"
root: admin@example.com
www-data: root
default: ops@example.com
"#,
    );

    page.section("PERMISSIONS");
    page.p(
        "postie runs as root from cron, so it treats its files as OpenSSH and sudo do. The \
         config file and the aliases file must belong to the user postie runs as or to root, \
         and must not be writable by group or others, whatever keys they hold: whoever can \
         change them can make postie run a `password_cmd` or send mail elsewhere. Their \
         directory must not be writable by group or others either (a sticky one such as /tmp \
         is fine), since whoever can write it can put another file in their place. Each such \
         file is refused (exit 78) with the `chmod` or `chown` that fixes it.",
    );
    page.p(
        "A file holding a `password` (in any table), and a `client_key`, that group or others \
         can read is refused (exit 78) with the `chmod 600` that fixes it: such a secret is as \
         good as published. `password_cmd` keeps the secret elsewhere, in pass(1), a keyring or \
         a root-only file.",
    );
    page.p(
        "The `logfile` is created 0600 and never followed when it is a symbolic link; one that \
         group or others can write is a warning. The queue's rules are in postie-queue(1).",
    );

    page.section("EXAMPLES");
    page.p("Two accounts and shared defaults:");
    page.example(
        r#"
default = "work"

[defaults]
tls = "starttls"
timeout = 60

[accounts.work]
server = "smtp.example.com:587"
from = "Me <me@example.com>"
user = "me@example.com"
password_cmd = "pass show smtp/work"

[accounts.reports]
server = "smtps://mail.example.org"
from = "Reports <reports@example.org>"
user = "reports"
password_cmd = "cat /etc/postie/reports.password"
"#,
    );
    page.p("A relay-only host whose cron mail goes through postie as sendmail:");
    page.example(
        r#"
default = "relay"
aliases = "/etc/aliases"
admin = "ops@example.com"

[accounts.relay]
server = ["smtp.example.com", "smtp2.example.com"]
from = "Backup Host <backup@example.com>"
user = "backup@example.com"
password_cmd = "cat /etc/postie/password"
from_policy = "override"
local_domain = "backup1.example.com"
queue = "on-tempfail"
logfile = "/var/log/postie.log"
"#,
    );

    page.section("FILES");
    page.item(
        "`~/.config/postie/config.toml`",
        "The user's file (`$XDG_CONFIG_HOME/postie/config.toml`).",
    );
    page.item(
        "`/etc/postie/config.toml`",
        "The system-wide file, read when the user has none.",
    );
    page.item(
        "`share/doc/postie/examples/config.toml`",
        "Under the install prefix (`examples/config.toml` in the source): every key, \
         commented.",
    );

    page.section("SEE ALSO");
    page.p("postie(1), postie-queue(1), aliases(5)");
    page.finish()
}
