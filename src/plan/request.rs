//! The second parsing stage: flags + environment + config file become one
//! validated [`Plan`] before any network I/O.
//!
//! Precedence for every setting is flag > environment (clap reads the
//! POSTIE_* variables into the same fields) > the chosen account >
//! `[defaults]` > built-in default. All input files are read here, so a
//! missing attachment fails before a connection is opened.

use std::borrow::Cow;
use std::io::Read;
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::cli::args::Cli;
use crate::config::aliases::{Aliases, LocalRules};
use crate::config::file::{Account, ConfigFile};
use crate::exit::{io_reason, Cause, Error, Exit, Result};
use crate::mail::address::{envelope_address, is_ehlo_name, parse_list, Mailbox};
use crate::mail::compose::{self, check_one_line, Draft, FilePart, FileRole};
use crate::mail::content::Content;
use crate::mail::message::{self, ReadyMessage};
use crate::mail::spool::{read_crlf, DEFAULT_MAX_MESSAGE_SIZE};
use crate::mail::transportable::{make_transportable, Transportable};
use crate::output::log::Logger;
use crate::plan::stored::QueuedSettings;
use crate::queue::storage::{self};
use crate::smtp::mx::{Family, Nameserver};
use crate::smtp::outgoing::Outgoing;
use crate::smtp::settings::{Login, Route, Server, Settings, Timeouts};
use crate::smtp::tls::{parse_fingerprint, Verify};
use crate::types::QueuePolicy;
use crate::types::{AuthMethod, QuitAfter, TlsMode};
use crate::types::{Endpoint, Envelope, TlsFiles};
use mail_builder::headers::date::Date;

/// The environment variable that may hold the SMTP password or token.
pub const PASSWORD_ENV: &str = "POSTIE_PASSWORD";

/// What `main` will do: the message, its envelope, and where to send it.
#[derive(Debug)]
pub struct Plan {
    /// One message, or several with --message given more than once.
    pub messages: Vec<Outgoing>,
    /// `None` for --dry-run: nothing is resolved, no password is fetched.
    /// Its `login` is empty until [`fetch_login`] fills it from `login`.
    pub transport: Option<Settings>,
    /// The login the session will use, its secret not yet fetched.
    pub login: Option<PendingLogin>,
    /// Things the user must hear about before sending (e.g. --insecure).
    pub warnings: Vec<String>,
    /// With -v (empty without): what postie changed in a ready-made
    /// message so that SMTP can carry it.
    pub notes: Vec<String>,
    /// --capabilities: how to print the report.
    pub capabilities: Option<ReportFormat>,
    /// Whether and where a failed message is kept.
    pub queue: QueuePlan,
    /// Where attempts are logged.
    pub log: Logger,
}

/// What to do with a message the server could not take now.
#[derive(Clone, Debug)]
pub struct QueuePlan {
    pub policy: QueuePolicy,
    pub dir: Option<PathBuf>,
    /// The settings to send it with later.
    pub settings: QueuedSettings,
    /// Sendmail mode: a message refused for good is also kept in failed/,
    /// since the program that handed it over reads no exit status.
    pub keep_refused: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Table,
    Json,
}

/// Where the body may come from when no flag names it.
pub struct Stdin<'a> {
    pub reader: &'a mut dyn Read,
    pub is_terminal: bool,
}

/// -v's note on where the settings come from: the config file (or the
/// paths tried for one) and the account.
pub fn describe_settings(cli: &Cli, config: &ConfigFile) -> String {
    let account = match config.select(cli.account.as_deref(), cli.from.as_deref()) {
        Ok((Some(name), _)) => format!("account {name}"),
        Ok((None, _)) => "no account, only [defaults] and flags".to_string(),
        // plan() reports it.
        Err(_) => "no such account".to_string(),
    };
    format!("{}; {account}", config.source())
}

/// `config` is what [`ConfigFile::load`] made of `cli.config`.
pub fn plan(cli: Cli, config: ConfigFile, stdin: Stdin<'_>) -> Result<Plan> {
    let (account_name, account) = config.select(cli.account.as_deref(), cli.from.as_deref())?;
    let local = local_rules(&config, &account)?;
    let needs = Needs::of(&cli);
    let mut notes = Vec::new();
    let messages = match (cli.message.as_slice(), needs) {
        ([], Needs::Message) => {
            let (draft, envelope) = draft_and_envelope(&cli, &account, &local, stdin)?;
            vec![Outgoing {
                label: "the message".to_string(),
                envelope,
                content: compose::build(&draft)?,
            }]
        }
        (paths, Needs::Message) => {
            if paths.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
                return Err(Error::usage(
                    "--message - (standard input) can be given only once",
                ));
            }
            let mut messages = Vec::with_capacity(paths.len());
            for path in paths {
                let input = Stdin {
                    reader: &mut *stdin.reader,
                    is_terminal: stdin.is_terminal,
                };
                let (envelope, sendable) = ready_made(
                    &cli,
                    &account,
                    &local,
                    path,
                    input,
                    config.max_message_size(),
                )?;
                let label = if path.as_os_str() == "-" {
                    "the message on standard input".to_string()
                } else {
                    path.display().to_string()
                };
                if cli.verbose > 0 {
                    notes.extend(sendable.notes.iter().map(|note| format!("{label}: {note}")));
                }
                messages.push(Outgoing {
                    label,
                    envelope,
                    content: Content::from_bytes(sendable.bytes),
                });
            }
            messages
        }
        (_, needs) => vec![Outgoing {
            label: "the test".to_string(),
            envelope: envelope_only(&cli, &account, &local, needs)?,
            content: Content::default(),
        }],
    };
    for message in &messages {
        let envelope = &message.envelope;
        // The null sender `<>` (RFC 5321 4.5.5) is no address to check.
        if !envelope.sender.is_empty() {
            envelope_address(&envelope.sender)?;
        }
        for recipient in &envelope.recipients {
            envelope_address(recipient)?;
        }
    }
    let mut warnings = Vec::new();
    let mut helo_notes = Vec::new();
    let (transport, login) = if cli.dry_run {
        (None, None)
    } else {
        let (settings, login) = transport_settings(
            &cli,
            &account,
            &messages[0].envelope,
            &mut warnings,
            &mut helo_notes,
        )?;
        if cli.verbose > 0 {
            notes.extend(direct_delivery_note(&cli, &settings.route));
        }
        (Some(settings), login)
    };
    if cli.verbose > 0 {
        notes.extend(helo_notes);
    }
    let capabilities = cli.capabilities.then_some(if cli.json {
        ReportFormat::Json
    } else {
        ReportFormat::Table
    });
    let probing = cli.quit_after.is_some() || cli.capabilities || cli.dry_run;
    let policy = if probing || cli.no_queue {
        QueuePolicy::Never
    } else if cli.queue {
        QueuePolicy::OnTempfail
    } else {
        account.queue.unwrap_or(if cli.sendmail {
            QueuePolicy::OnTempfail
        } else {
            QueuePolicy::Never
        })
    };
    let queue = QueuePlan {
        policy,
        dir: cli
            .queue_dir
            .clone()
            .or_else(|| config.queue_dir.clone())
            .or_else(storage::default_dir),
        settings: stored_settings(&cli),
        keep_refused: cli.sendmail && !probing,
    };
    let log = logger(account_name, &account);
    Ok(Plan {
        messages,
        transport,
        login,
        warnings,
        notes,
        capabilities,
        queue,
        log,
    })
}

/// Where a message that could not be planned is kept, and where that is
/// logged: as much of the config as can be read, else the defaults.
pub struct Fallback {
    pub queue_dir: Option<PathBuf>,
    /// `max_message_size`, for sendmail mode's read of its input.
    pub max_message_size: u64,
    pub log: Logger,
    pub settings: QueuedSettings,
}

impl Fallback {
    pub fn of(cli: &Cli) -> Fallback {
        let config = ConfigFile::load(cli.config.as_deref()).ok();
        let selected = config
            .as_ref()
            .and_then(|c| c.select(cli.account.as_deref(), cli.from.as_deref()).ok());
        Fallback {
            queue_dir: cli
                .queue_dir
                .clone()
                .or_else(|| config.as_ref().and_then(|c| c.queue_dir.clone()))
                .or_else(storage::default_dir),
            max_message_size: config
                .as_ref()
                .map_or(DEFAULT_MAX_MESSAGE_SIZE, ConfigFile::max_message_size),
            log: selected
                .map(|(name, account)| logger(name, &account))
                .unwrap_or_default(),
            settings: QueuedSettings::from_cli(cli),
        }
    }
}

fn logger(account_name: Option<String>, account: &Account) -> Logger {
    Logger {
        file: account.logfile.clone(),
        syslog: account.syslog.unwrap_or(false),
        account: account_name,
    }
}

/// Plans a message that was kept before it could be planned, as sendmail
/// mode would have, with its stored settings and today's config; nothing
/// is sent (`dry_run`), so no password command runs.
pub fn replan(
    submission: &crate::plan::stored::Submission,
    settings: &QueuedSettings,
    message: &[u8],
) -> Result<Plan> {
    let mut cli = Cli::try_parse_from(["postie", "--message", "-"])
        .map_err(|err| Error::new(Exit::Software, format!("queue: {}", err.kind())))?;
    settings.apply(&mut cli);
    submission.apply(&mut cli);
    cli.dry_run = true;
    let config = ConfigFile::load(cli.config.as_deref())?;
    let mut reader = message;
    plan(
        cli,
        config,
        Stdin {
            reader: &mut reader,
            is_terminal: false,
        },
    )
}

/// The transport settings for a queued message, from its stored record
/// and today's config (a changed password or server applies), with the
/// usual precedence: the record's flags, then the account, then defaults.
pub fn replay_settings(stored: &QueuedSettings, envelope: &Envelope) -> Result<(Settings, Logger)> {
    let (cli, account_name, account) = replay_account(stored, &envelope.sender)?;
    let (mut warnings, mut notes) = (Vec::new(), Vec::new());
    let (mut settings, login) =
        transport_settings(&cli, &account, envelope, &mut warnings, &mut notes)?;
    settings.login = login.map(PendingLogin::fetch).transpose()?;
    Ok((settings, logger(account_name, &account)))
}

/// Where a queued message's attempts are logged, without building its
/// login (no password command runs): for entries given up without an
/// attempt. The default logger (none) when the config cannot be read.
pub fn replay_logger(stored: &QueuedSettings, sender: &str) -> Logger {
    replay_account(stored, sender)
        .map(|(_, name, account)| logger(name, &account))
        .unwrap_or_default()
}

fn replay_account(stored: &QueuedSettings, sender: &str) -> Result<(Cli, Option<String>, Account)> {
    let mut cli = Cli::try_parse_from(["postie"]).map_err(|err| {
        Error::new(
            Exit::Software,
            format!("queue: cannot start from empty settings: {}", err.kind()),
        )
    })?;
    stored.apply(&mut cli);
    let config = ConfigFile::load(cli.config.as_deref())?;
    let (account_name, account) = config.select(cli.account.as_deref(), Some(sender))?;
    Ok((cli, account_name, account))
}

/// The flags a queued message is sent with later. A login that --mx
/// ignored is left out: the flush would take it for one given on its
/// command line and refuse the entry for good.
fn stored_settings(cli: &Cli) -> QueuedSettings {
    let mut stored = QueuedSettings::from_cli(cli);
    if cli.mx {
        stored.user = None;
        stored.password_cmd = None;
        stored.auth = None;
    }
    stored
}

/// Fills the plan's session login, running the password command if there
/// is one. Separate from [`plan`] so that a command that hangs or prints
/// nonsense fails after the message is planned: the caller can then keep
/// the message (owed, [`Cause::LocalSetup`]) instead of losing it.
pub fn fetch_login(plan: &mut Plan) -> Result<()> {
    let (Some(settings), Some(pending)) = (plan.transport.as_mut(), plan.login.take()) else {
        return Ok(());
    };
    settings.login = Some(pending.fetch()?);
    Ok(())
}

/// -v's note on why the message goes to the recipients' exchangers.
fn direct_delivery_note(cli: &Cli, route: &Route) -> Option<String> {
    let Route::Mx { .. } = route else {
        return None;
    };
    let why = if cli.mx {
        "--mx was given"
    } else {
        "no server is given or configured"
    };
    Some(format!(
        "direct delivery to each recipient domain's mail exchangers (MX), without a login: {why}"
    ))
}

/// How much of a message a run needs: a test that stops early needs no
/// body (and must not wait on stdin for one), or no envelope at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Needs {
    Nothing,
    Sender,
    Envelope,
    Message,
}

impl Needs {
    fn of(cli: &Cli) -> Needs {
        if cli.capabilities {
            return Needs::Nothing;
        }
        match cli.quit_after {
            None | Some(QuitAfter::Data) => Needs::Message,
            Some(QuitAfter::Rcpt) => Needs::Envelope,
            Some(QuitAfter::Mail) => Needs::Sender,
            Some(_) => Needs::Nothing,
        }
    }
}

/// The envelope of a test that stops before DATA.
fn envelope_only(
    cli: &Cli,
    account: &Account,
    local: &LocalRules,
    needs: Needs,
) -> Result<Envelope> {
    let sender = match cli.from.as_deref().or(account.from.as_deref()) {
        Some(text) => qualified_sender(Mailbox::parse(text)?, local, account)?.1,
        None if needs == Needs::Nothing => String::new(),
        None => {
            return Err(Error::usage("no sender address")
                .hint("give --from, set POSTIE_FROM, or set `from` in the config's account"))
        }
    };
    let (to, cc, bcc) = recipient_lists(cli, local)?;
    let recipients = unique_addresses(to.iter().chain(&cc).chain(&bcc));
    if recipients.is_empty() && needs == Needs::Envelope {
        return Err(Error::usage("no recipients")
            .hint("--quit-after rcpt tests the recipients given as arguments"));
    }
    Ok(Envelope { sender, recipients })
}

/// To (arguments and --to), Cc and Bcc, with local names qualified.
fn recipient_lists(
    cli: &Cli,
    local: &LocalRules,
) -> Result<(Vec<Mailbox>, Vec<Mailbox>, Vec<Mailbox>)> {
    let to = qualified(
        mailboxes(&[cli.recipients.clone(), cli.to.clone()].concat())?,
        local,
    )?;
    let cc = qualified(mailboxes(&cli.cc)?, local)?;
    let bcc = qualified(mailboxes(&cli.bcc)?, local)?;
    Ok((to, cc, bcc))
}

/// The From header and the envelope sender for a sender that may be a
/// local name (`--from root`): the envelope gets it qualified with
/// local_domain, else the account's own address, which the server knows;
/// the header keeps the name, qualified as headers are.
fn qualified_sender(
    from: Mailbox,
    local: &LocalRules,
    account: &Account,
) -> Result<(Mailbox, String)> {
    if !from.is_local() {
        let sender = from.email.clone();
        return Ok((from, sender));
    }
    let account_from = || {
        let own = Mailbox::parse(account.from.as_deref()?).ok()?;
        local.qualify_sender(&own.email)
    };
    let sender = local
        .qualify_sender(&from.email)
        .or_else(account_from)
        .ok_or_else(|| {
            Error::usage(format!("sender {:?} has no domain", from.email))
                .hint("give a full address, or set local_domain or `from` in the account")
        })?;
    let email = local
        .qualify_header(&from.email)
        .unwrap_or_else(|| sender.clone());
    Ok((
        Mailbox {
            name: from.name,
            email,
        },
        sender,
    ))
}

fn mailboxes(args: &[String]) -> Result<Vec<Mailbox>> {
    let mut all = Vec::new();
    for arg in args {
        all.extend(parse_list(arg)?);
    }
    Ok(all)
}

fn local_rules(config: &ConfigFile, account: &Account) -> Result<LocalRules> {
    // Both were checked when the file was read; a `from` that does not
    // parse is reported where it is used.
    let email = |text: &str| Mailbox::parse(text).ok().map(|m| m.email);
    Ok(LocalRules {
        aliases: account.aliases.as_deref().map(Aliases::load).transpose()?,
        local_domain: account.local_domain.clone(),
        admin: config.admin.as_deref().and_then(email),
        from_domain: account
            .from
            .as_deref()
            .and_then(email)
            .and_then(|e| e.rsplit_once('@').map(|(_, domain)| domain.to_string())),
    })
}

/// A --message (or sendmail's stdin): read, checked, and prepared.
fn ready_made(
    cli: &Cli,
    account: &Account,
    local: &LocalRules,
    path: &Path,
    stdin: Stdin<'_>,
    max_size: u64,
) -> Result<(Envelope, Transportable)> {
    // Read with CRLF line endings as they come: converting afterwards
    // would hold a large message twice (sendmail mode spools the input,
    // and this is its only copy in memory).
    let limit = max_size.saturating_add(1);
    let mut bytes = if path.as_os_str() == "-" {
        read_crlf(stdin.reader, 0, limit).map_err(|err| {
            Error::new(
                Exit::IoErr,
                format!(
                    "cannot read the message from standard input: {}",
                    io_reason(&err)
                ),
            )
        })?
    } else {
        std::fs::File::open(path)
            .and_then(|mut file| {
                let len = file.metadata()?.len();
                read_crlf(&mut file, len, limit)
            })
            .map_err(|err| Error::input("message file", path, &err))?
    };
    // Counted after CRLF, as the server counts it (RFC 1870 SIZE).
    if bytes.len() as u64 > max_size {
        return Err(Error::data(format!(
            "the message is more than max_message_size ({max_size} octets)"
        ))
        .hint("raise max_message_size in the config, or send less"));
    }
    if cli.dot_ends_message {
        message::cut_at_lone_dot(&mut bytes);
    }
    let parsed = ReadyMessage::parse(bytes)?;
    let recipients = mailboxes(&cli.recipients)?;
    let sender = cli.from.as_deref().map(Mailbox::parse).transpose()?;
    let account_from = account.from.as_deref().map(Mailbox::parse).transpose()?;
    if let Some(name) = &cli.full_name {
        check_one_line("the full name", name)?;
    }
    let (envelope, bytes) = message::prepare(
        parsed,
        &message::Options {
            recipients: &recipients,
            read_recipients: cli.read_recipients,
            sender: sender.as_ref(),
            full_name: cli.full_name.as_deref(),
            account_from: account_from.as_ref(),
            policy: account.from_policy.unwrap_or_default(),
            local,
        },
    )?;
    // Here, not at the server: a strict one refuses long lines only after
    // the whole upload, with a 5xx that nothing retries.
    Ok((envelope, make_transportable(bytes)?))
}

/// Replaces local names (`root`) by what aliases or local_domain make of
/// them, so that headers and envelope carry real addresses.
fn qualified(list: Vec<Mailbox>, local: &LocalRules) -> Result<Vec<Mailbox>> {
    let mut out = Vec::with_capacity(list.len());
    for mailbox in list {
        if !mailbox.is_local() {
            out.push(mailbox);
            continue;
        }
        let mut expanded = local.expand(&mailbox.email)?;
        if expanded.len() == 1 {
            out.push(Mailbox {
                name: mailbox.name,
                email: expanded.remove(0),
            });
        } else {
            out.extend(
                expanded
                    .into_iter()
                    .map(|email| Mailbox { name: None, email }),
            );
        }
    }
    Ok(out)
}

fn draft_and_envelope(
    cli: &Cli,
    account: &Account,
    local: &LocalRules,
    stdin: Stdin<'_>,
) -> Result<(Draft, Envelope)> {
    let from_text = cli
        .from
        .as_deref()
        .or(account.from.as_deref())
        .ok_or_else(|| {
            Error::usage("no sender address")
                .hint("give --from, set POSTIE_FROM, or set `from` in the config's account")
        })?;
    let (from, sender) = qualified_sender(Mailbox::parse(from_text)?, local, account)?;
    let (to, cc, bcc) = recipient_lists(cli, local)?;
    if to.is_empty() && cc.is_empty() && bcc.is_empty() {
        return Err(
            Error::usage("no recipients").hint("name them as arguments or with --to, --cc, --bcc")
        );
    }
    if let Some(subject) = &cli.subject {
        check_one_line("the subject", subject)?;
    }
    let headers = compose::parse_headers(&cli.headers)?;
    let html = cli
        .html
        .as_deref()
        .map(|path| read_utf8("HTML file", path))
        .transpose()?;
    let text = body_text(cli, html.is_some(), stdin)?;
    let attachments = cli
        .attachments
        .iter()
        .map(|spec| FilePart::load(spec, FileRole::Attachment))
        .collect::<Result<Vec<_>>>()?;
    let inline = cli
        .inline
        .iter()
        .map(|spec| FilePart::load(spec, FileRole::Inline))
        .collect::<Result<Vec<_>>>()?;
    compose::check_content_ids(&inline)?;

    let envelope = Envelope {
        sender,
        recipients: unique_addresses(to.iter().chain(&cc).chain(&bcc)),
    };
    let draft = Draft {
        from: Some(from),
        to,
        cc,
        reply_to: qualified(mailboxes(&cli.reply_to)?, local)?,
        subject: cli.subject.clone().or_else(|| {
            cli.test_message
                .then(|| format!("postie test {}", Date::now().to_rfc822()))
        }),
        headers,
        text: text.map(crlf_lines),
        html: html.map(crlf_lines),
        attachments,
        inline,
    };
    Ok((draft, envelope))
}

/// Each address once, in the order given; case-insensitive, as servers
/// would otherwise deliver twice to `Ops@x` and `ops@x`.
fn unique_addresses<'a>(all: impl Iterator<Item = &'a Mailbox>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    all.filter(|m| seen.insert(m.email.to_lowercase()))
        .map(|m| m.email.clone())
        .collect()
}

/// The text body: --body, --body-file (- is stdin), else stdin when it is
/// not a terminal. An HTML-only message needs no text body.
fn body_text(cli: &Cli, has_html: bool, stdin: Stdin<'_>) -> Result<Option<String>> {
    if let Some(body) = &cli.body {
        return Ok(Some(body.clone()));
    }
    if cli.test_message {
        return Ok(Some(format!(
            "This is a test message sent by postie {} from {} at {}.\n",
            env!("CARGO_PKG_VERSION"),
            local_hostname(),
            Date::now().to_rfc822()
        )));
    }
    let from_stdin = match &cli.body_file {
        Some(path) if path.as_os_str() != "-" => return read_utf8("body file", path).map(Some),
        Some(_) => true,
        None => !stdin.is_terminal,
    };
    if !from_stdin {
        if has_html {
            return Ok(None);
        }
        return Err(
            Error::usage("no message body, and standard input is a terminal")
                .hint("pipe the body in, or use --body TEXT or --body-file PATH"),
        );
    }
    let mut bytes = Vec::new();
    stdin.reader.read_to_end(&mut bytes).map_err(|err| {
        Error::new(
            Exit::IoErr,
            format!(
                "cannot read the body from standard input: {}",
                io_reason(&err)
            ),
        )
    })?;
    utf8(bytes, "the body on standard input").map(Some)
}

/// Text in canonical form (RFC 2045 2.10): CRLF line breaks, which matters
/// when mail-builder picks base64 for a text part.
fn crlf_lines(text: String) -> String {
    match crate::mail::content::crlf(text.as_bytes()) {
        Cow::Borrowed(_) => text,
        // Inserting CR before LF keeps UTF-8 valid.
        Cow::Owned(fixed) => String::from_utf8(fixed).expect("CR insertion keeps UTF-8"),
    }
}

fn read_utf8(what: &str, path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|err| Error::input(what, path, &err))?;
    utf8(bytes, &format!("{what} {}", path.display()))
}

fn utf8(bytes: Vec<u8>, what: &str) -> Result<String> {
    String::from_utf8(bytes).map_err(|err| {
        Error::data(format!(
            "{what} is not UTF-8 (invalid byte at offset {})",
            err.utf8_error().valid_up_to()
        ))
        .hint("convert it (iconv -t UTF-8) or send it with --attach")
    })
}

fn transport_settings(
    cli: &Cli,
    account: &Account,
    envelope: &Envelope,
    warnings: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<(Settings, Option<PendingLogin>)> {
    let explicit_tls = cli.tls.or(account.tls);
    if let (true, Some(server)) = (cli.mx, &cli.server) {
        // Not a clap conflict: POSTIE_SERVER in the environment counts as
        // given there, and must not make --mx unusable.
        warnings.push(format!("--mx: not using the server {server}"));
    }
    let servers: Vec<String> = match (&cli.server, &account.server) {
        _ if cli.mx => Vec::new(),
        (Some(server), _) => vec![server.clone()],
        (None, Some(list)) => list.items(),
        (None, None) => Vec::new(),
    };
    let route = if servers.is_empty() {
        refuse_login_for_mx(cli, account, warnings)?;
        if envelope.recipients.is_empty() {
            return Err(Error::usage("no server, and no recipient whose domain's MX to use").hint(
                "give --server HOST[:PORT] (or POSTIE_SERVER, or `server` in the config), or a recipient",
            ));
        }
        let nameserver = cli
            .resolver
            .as_deref()
            .map(Nameserver::parse)
            .transpose()?
            .unwrap_or(Nameserver::System);
        Route::Mx {
            port: cli.port.unwrap_or(25),
            nameserver,
            tls: explicit_tls.unwrap_or(TlsMode::Opportunistic),
        }
    } else {
        Route::Servers(
            servers
                .iter()
                .map(|server| server_target(server, cli, account, explicit_tls))
                .collect::<Result<Vec<_>>>()?,
        )
    };

    let insecure = cli.insecure || account.insecure.unwrap_or(false);
    let verify = match (&cli.tls_fingerprint, insecure) {
        (Some(pin), _) => Verify::Pinned(parse_fingerprint(pin)?),
        (None, true) => {
            warnings.push(
                "--insecure: the server's certificate is not verified; anyone on the path can read or change this mail"
                    .to_string(),
            );
            Verify::Insecure
        }
        (None, false) => Verify::Full,
    };
    let quit_after = cli
        .quit_after
        .or(cli.capabilities.then_some(QuitAfter::Starttls));
    let timeout = cli.timeout.or(account.timeout);
    // A test that stops before AUTH needs no password; an exchanger never
    // gets one.
    let login = if quit_after.is_some_and(|stage| stage < QuitAfter::Auth)
        || matches!(route, Route::Mx { .. })
    {
        None
    } else {
        let deadline = timeout.map_or(PASSWORD_CMD_DEADLINE, Duration::from_secs);
        login(cli, account, deadline)?
    };
    let helo = match cli.helo.clone().or_else(|| account.helo.clone()) {
        Some(helo) if is_ehlo_name(&helo) => helo,
        Some(helo) => {
            return Err(Error::data(format!(
                "the EHLO name {helo:?} is neither a domain name nor an address literal (RFC 5321 4.1.1.1)"
            ))
            .hint("give a host name such as mail.example.com, or [192.0.2.1]"))
        }
        None => {
            let (helo, note) = checked_hostname();
            notes.extend(note);
            helo
        }
    };
    let verbosity = if cli.capabilities || cli.timing {
        cli.verbose.max(1)
    } else {
        cli.verbose
    };
    let settings = Settings {
        route,
        tls_files: TlsFiles {
            ca_file: cli.ca_file.clone().or_else(|| account.ca_file.clone()),
            client_cert: cli
                .client_cert
                .clone()
                .or_else(|| account.client_cert.clone()),
            client_key: cli
                .client_key
                .clone()
                .or_else(|| account.client_key.clone()),
        },
        verify,
        login: None,
        allow_plaintext_auth: cli.allow_plaintext_auth
            || account.allow_plaintext_auth.unwrap_or(false),
        helo,
        timeouts: timeout.map(Timeouts::uniform).unwrap_or(Timeouts::DEFAULT),
        partial: cli.partial || account.partial.unwrap_or(false),
        family: match (cli.ipv4, cli.ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => Family::Any,
        },
        verbosity,
        timing: cli.timing,
        quit_after,
    };
    Ok((settings, login))
}

/// Direct delivery never logs in. An exchanger is whoever the recipient's
/// domain names, reached over TLS nobody verifies: a password sent there
/// is given to the owner of that domain and to anyone on the path.
fn refuse_login_for_mx(cli: &Cli, account: &Account, warnings: &mut Vec<String>) -> Result<()> {
    let flag = [
        (cli.user.is_some() && !cli.user_from_env, "--user"),
        (cli.password_cmd.is_some(), "--password-cmd"),
        (cli.auth.is_some(), "--auth"),
    ]
    .into_iter()
    .find_map(|(given, flag)| given.then_some(flag));
    if let Some(flag) = flag {
        let error = if cli.mx {
            Error::usage(format!(
                "--mx does not go with {flag}: mail exchangers never get a password"
            ))
            .hint("leave out the login, or send through your server with --server")
        } else {
            Error::usage(format!("{flag} needs a server to log in to"))
                .hint("give --server HOST[:PORT]; without one postie delivers to each recipient's MX, which never gets a password")
        };
        return Err(error);
    }
    let account_login = account.user.is_some()
        || account.password_cmd.is_some()
        || account.password.is_some()
        || account.auth.is_some();
    let env_user = cli.user.as_deref().filter(|_| cli.user_from_env);
    if cli.mx {
        if let Some(user) = env_user.or(account.user.as_deref()) {
            warnings.push(format!(
                "--mx: not logging in as {user:?}; mail exchangers never get a password"
            ));
        }
        return Ok(());
    }
    // Without --mx the login says the user meant a submission server:
    // going to the recipients' exchangers instead would hand them the
    // password (or, without it, send from the wrong place).
    if account_login {
        return Err(Error::config(
            "the account has a login (user, password or password_cmd) but no server",
        )
        .hint("set `server` in the account (or give --server); for direct delivery to each recipient's MX, remove the login and use --mx"));
    }
    if let Some(user) = env_user {
        return Err(Error::config(format!(
            "POSTIE_USER is {user:?} but no server is given or configured"
        ))
        .hint("give --server or set POSTIE_SERVER; for direct delivery to each recipient's MX, unset POSTIE_USER or use --mx"));
    }
    Ok(())
}

/// A named server, with the TLS mode its URL, port or address implies.
fn server_target(
    server: &str,
    cli: &Cli,
    account: &Account,
    explicit_tls: Option<TlsMode>,
) -> Result<Server> {
    let parsed = ServerSpec::parse(server)?;
    // The URL's scheme is more specific than a config's `tls` (which may
    // come from [defaults] for every account); only a flag contradicts it.
    if let Some(flag) = cli
        .tls
        .filter(|t| parsed.implicit_tls && *t != TlsMode::Implicit)
    {
        return Err(Error::usage(format!(
            "{server} is an smtps:// URL (implicit TLS) but --tls {} asks for something else",
            clap::ValueEnum::to_possible_value(&flag)
                .map(|v| v.get_name().to_string())
                .unwrap_or_default()
        )));
    }
    let explicit_tls = if parsed.implicit_tls {
        Some(TlsMode::Implicit)
    } else {
        explicit_tls
    };
    let port = cli.port.or(parsed.port).or(account.port);
    let tls = explicit_tls.unwrap_or(if port == Some(465) {
        TlsMode::Implicit
    } else if is_loopback(&parsed.host) {
        TlsMode::Opportunistic
    } else {
        TlsMode::Starttls
    });
    let port = port.unwrap_or(if tls == TlsMode::Implicit { 465 } else { 587 });
    let endpoint = Endpoint {
        host: parsed.host,
        port,
    };
    Ok(Server { endpoint, tls })
}

fn login(cli: &Cli, account: &Account, deadline: Duration) -> Result<Option<PendingLogin>> {
    let user = cli.user.clone().or_else(|| account.user.clone());
    let method = cli.auth.or(account.auth);
    match user {
        Some(user) => Ok(Some(PendingLogin {
            secret: secret(cli, account, &user)?,
            user,
            method: method.unwrap_or(AuthMethod::Auto),
            deadline,
        })),
        None if method.is_some() => Err(Error::usage("--auth needs a user name")
            .hint("give --user or set `user` in the account")),
        None => Ok(None),
    }
}

/// This machine's name for EHLO and Received lines.
pub(crate) fn local_hostname() -> String {
    checked_hostname().0
}

/// gethostname(), or `localhost` when that is no name EHLO may carry
/// (a container's `my_box`, a name with spaces or 8-bit octets), with a
/// note saying so: some servers refuse such an EHLO, and a Received line
/// must not carry it either.
fn checked_hostname() -> (String, Option<String>) {
    let raw = gethostname::gethostname();
    let name = raw.to_string_lossy();
    if is_ehlo_name(&name) {
        return (name.into_owned(), None);
    }
    let note = format!(
        "this machine's name {name:?} is not a domain name; saying EHLO localhost (set helo to change it)"
    );
    ("localhost".to_string(), Some(note))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A login whose secret may still have to be fetched: the password
/// command runs only when a session is about to use it.
#[derive(Clone)]
pub struct PendingLogin {
    user: String,
    method: AuthMethod,
    secret: Secret,
    /// How long the password command may take.
    deadline: Duration,
}

#[derive(Clone)]
enum Secret {
    Known(String),
    Command(String),
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = match &self.secret {
            Secret::Known(_) => "[hidden]".to_string(),
            Secret::Command(cmd) => format!("the output of {cmd:?}"),
        };
        f.debug_struct("PendingLogin")
            .field("user", &self.user)
            .field("secret", &secret)
            .field("method", &self.method)
            .finish()
    }
}

impl PendingLogin {
    /// The login, running the password command if there is one. Its
    /// failures are [`Cause::LocalSetup`]: this machine's, not the message's.
    pub fn fetch(self) -> Result<Login> {
        let secret = match self.secret {
            Secret::Known(secret) => secret,
            Secret::Command(cmd) => run_password_cmd(&cmd, self.deadline)?,
        };
        Ok(Login {
            user: self.user,
            secret,
            method: self.method,
        })
    }
}

/// The password or token: --password-cmd, then POSTIE_PASSWORD, then the
/// account's password_cmd, then its password.
fn secret(cli: &Cli, account: &Account, user: &str) -> Result<Secret> {
    if let Some(cmd) = &cli.password_cmd {
        return Ok(Secret::Command(cmd.clone()));
    }
    if let Ok(password) = std::env::var(PASSWORD_ENV) {
        return Ok(Secret::Known(password));
    }
    if let Some(cmd) = &account.password_cmd {
        return Ok(Secret::Command(cmd.clone()));
    }
    if let Some(password) = &account.password {
        return Ok(Secret::Known(password.clone()));
    }
    Err(
        Error::config(format!("no password for user {user:?}")).hint(format!(
            "use --password-cmd, set {PASSWORD_ENV}, or set password_cmd in the config's account"
        )),
    )
}

/// How long a password command may take without --timeout: long enough to
/// type a passphrase into a pinentry, short enough that cron runs do not
/// pile up behind a hung keyring.
const PASSWORD_CMD_DEADLINE: Duration = Duration::from_secs(60);

/// The most of a password command's output that is read: a secret is one
/// line, and a runaway command must not fill memory.
const PASSWORD_OUTPUT_LIMIT: usize = 64 * 1024;

/// Runs the command with `/bin/sh -c` and returns the first line of its
/// output. Its stderr goes to the user (a gpg or keyring prompt may need
/// it); its output is never shown, as it is the secret.
///
/// `/bin/sh` by path: a PATH that root inherits from a cron job or a user
/// must not choose the shell. The command gets no POSTIE_PASSWORD, which
/// is not its business. It runs in a process group of its own so that at
/// the deadline everything it started is killed, and the output is read on
/// a thread so that a grandchild that keeps the pipe open cannot keep
/// postie waiting past the deadline.
fn run_password_cmd(cmd: &str, deadline: Duration) -> Result<String> {
    let failed = |exit: Exit, why: String| {
        Error::new(exit, format!("the password command {cmd:?} {why}")).cause(Cause::LocalSetup)
    };
    let started = Instant::now();
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .env_remove(PASSWORD_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(|err| failed(Exit::Config, format!("cannot be run: {}", io_reason(&err))))?;
    let Some(stdout) = child.stdout.take() else {
        kill_group(&mut child);
        return Err(failed(Exit::Software, "has no output pipe".to_string()));
    };
    let (sender, receiver) = mpsc::channel();
    let reader = std::thread::Builder::new()
        .name("password-cmd".to_string())
        .spawn(move || {
            let mut output = Vec::new();
            // One byte past the limit tells "too long" from "exactly 64 KiB".
            let read = stdout
                .take(PASSWORD_OUTPUT_LIMIT as u64 + 1)
                .read_to_end(&mut output);
            // The receiver is gone only after the deadline: nobody to tell.
            let _ = sender.send(read.map(|_| output));
        });
    if let Err(err) = reader {
        kill_group(&mut child);
        return Err(failed(
            Exit::Software,
            format!("could not be read: {}", io_reason(&err)),
        ));
    }
    let timed_out = || {
        failed(
            Exit::TempFail,
            format!(
                "did not finish within {} s and was killed",
                deadline.as_secs()
            ),
        )
        .hint("check the keyring or agent it uses; --timeout sets the limit")
    };
    let output = match receiver.recv_timeout(deadline) {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => {
            kill_group(&mut child);
            return Err(failed(
                Exit::IoErr,
                format!("could not be read: {}", io_reason(&err)),
            ));
        }
        Err(_) => {
            kill_group(&mut child);
            return Err(timed_out());
        }
    };
    if output.len() > PASSWORD_OUTPUT_LIMIT {
        // Still writing, perhaps forever: stop it rather than wait.
        kill_group(&mut child);
        return Err(failed(
            Exit::Config,
            format!(
                "printed more than {} KiB; a password is one line",
                PASSWORD_OUTPUT_LIMIT / 1024
            ),
        ));
    }
    // The output is complete; the command itself must still end in time.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Ok(None) => {
                kill_group(&mut child);
                return Err(timed_out());
            }
            Err(err) => {
                kill_group(&mut child);
                return Err(failed(
                    Exit::Software,
                    format!("could not be waited for: {}", io_reason(&err)),
                ));
            }
        }
    };
    if !status.success() {
        let status = status
            .code()
            .map(|c| format!("exit status {c}"))
            .unwrap_or_else(|| "killed by a signal".to_string());
        return Err(failed(Exit::Config, format!("failed ({status})")));
    }
    first_line(output).map_err(|why| failed(Exit::Config, why))
}

/// The secret in a password command's output, or what is wrong with it.
fn first_line(output: Vec<u8>) -> std::result::Result<String, String> {
    if output.is_empty() {
        return Err("printed nothing".to_string());
    }
    if let Some(at) = output.iter().position(|&b| b == 0) {
        return Err(format!("printed a NUL byte (at offset {at})"));
    }
    let text = String::from_utf8(output).map_err(|err| {
        format!(
            "printed output that is not UTF-8 (invalid byte at offset {})",
            err.utf8_error().valid_up_to()
        )
    })?;
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if first.is_empty() {
        return Err("printed an empty first line".to_string());
    }
    Ok(first.to_string())
}

/// Kills the password command and whatever it started, and reaps it.
fn kill_group(child: &mut Child) {
    // The child leads its own group (process_group(0)) and is not reaped
    // yet, so its pid still names that group and nothing else.
    if let Ok(group) = libc::pid_t::try_from(child.id()) {
        // SAFETY: killpg takes plain integers and only sends a signal.
        unsafe {
            libc::killpg(group, libc::SIGKILL);
        }
    }
    let _ = child.wait();
}

/// A --server value: HOST, HOST:PORT, [IPv6]:PORT, smtp://… or smtps://….
#[derive(Debug, PartialEq, Eq)]
struct ServerSpec {
    host: String,
    port: Option<u16>,
    implicit_tls: bool,
}

impl ServerSpec {
    fn parse(text: &str) -> Result<ServerSpec> {
        let bad = |why: &str| -> Result<ServerSpec> {
            Err(Error::usage(format!("invalid server {text:?}: {why}"))
                .hint("write HOST, HOST:PORT, smtp://HOST:PORT or smtps://HOST:PORT"))
        };
        let (rest, implicit_tls) = if let Some(rest) = strip_scheme(text, "smtps://") {
            (rest, true)
        } else if let Some(rest) = strip_scheme(text, "smtp://") {
            (rest, false)
        } else if text.contains("://") {
            return bad("the scheme must be smtp:// or smtps://");
        } else {
            (text, false)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '@', '?', ' ']) {
            return bad("only a host and a port are allowed");
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else {
                return bad("missing ']'");
            };
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return bad("unexpected text after ']'"),
            }
        } else if rest.matches(':').count() > 1 {
            (rest, None) // a bare IPv6 address
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return bad("the host is empty");
        }
        let port = match port {
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return bad("the port must be a number from 1 to 65535"),
            },
            None => None,
        };
        Ok(ServerSpec {
            host: host.to_string(),
            port,
            implicit_tls,
        })
    }
}

fn strip_scheme<'a>(text: &'a str, scheme: &str) -> Option<&'a str> {
    let head = text.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| &text[scheme.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(host: &str, port: Option<u16>, implicit_tls: bool) -> ServerSpec {
        ServerSpec {
            host: host.into(),
            port,
            implicit_tls,
        }
    }

    #[test]
    fn server_forms() {
        assert_eq!(
            ServerSpec::parse("mx.example").unwrap(),
            spec("mx.example", None, false)
        );
        assert_eq!(
            ServerSpec::parse("mx.example:25").unwrap(),
            spec("mx.example", Some(25), false)
        );
        assert_eq!(
            ServerSpec::parse("smtps://mx.example").unwrap(),
            spec("mx.example", None, true)
        );
        assert_eq!(
            ServerSpec::parse("SMTP://mx.example:2525/").unwrap(),
            spec("mx.example", Some(2525), false)
        );
        assert_eq!(
            ServerSpec::parse("[::1]:2525").unwrap(),
            spec("::1", Some(2525), false)
        );
        assert_eq!(ServerSpec::parse("::1").unwrap(), spec("::1", None, false));
    }

    #[test]
    fn an_smtps_url_wins_over_a_configured_tls_but_not_over_the_flag() {
        use clap::Parser;
        let account = Account {
            tls: Some(TlsMode::Starttls),
            ..Account::default()
        };
        let cli = Cli::try_parse_from(["postie"]).unwrap();
        let server = server_target("smtps://mx.example", &cli, &account, account.tls).unwrap();
        assert_eq!((server.tls, server.endpoint.port), (TlsMode::Implicit, 465));
        let cli = Cli::try_parse_from(["postie", "--tls", "starttls"]).unwrap();
        let err = server_target("smtps://mx.example", &cli, &account, cli.tls).unwrap_err();
        assert_eq!(err.exit, Exit::Usage);
        assert!(err.message.contains("--tls starttls"), "{err}");
    }

    #[test]
    fn bad_servers_are_usage_errors() {
        for bad in ["http://x", "x:0", "x:port", "smtp://user@x", "", "[::1"] {
            let err = ServerSpec::parse(bad).unwrap_err();
            assert_eq!(err.exit, Exit::Usage, "{bad}");
        }
    }

    #[test]
    fn text_gets_crlf_line_breaks() {
        assert_eq!(crlf_lines("a\nb\r\nc\n".into()), "a\r\nb\r\nc\r\n");
        assert_eq!(crlf_lines("a\r\n".into()), "a\r\n");
    }

    #[test]
    fn loopback_names() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.5"));
        assert!(is_loopback("::1"));
        assert!(!is_loopback("mail.example.com"));
    }

    #[test]
    fn a_login_without_a_server_never_reaches_an_exchanger() {
        let envelope = Envelope {
            sender: "a@x.example".into(),
            recipients: vec!["b@y.example".into()],
        };
        let settings = |args: &[&str], account: &Account, warnings: &mut Vec<String>| {
            let cli = Cli::try_parse_from([&["postie"], args].concat()).unwrap();
            transport_settings(&cli, account, &envelope, warnings, &mut Vec::new())
        };
        let none = Account::default();
        let err = settings(&["--user", "me"], &none, &mut Vec::new()).unwrap_err();
        assert_eq!(err.exit, Exit::Usage);
        assert!(err.message.contains("--user needs a server"), "{err}");
        let with_login = Account {
            user: Some("me".into()),
            password_cmd: Some("echo pw".into()),
            ..Account::default()
        };
        let err = settings(&[], &with_login, &mut Vec::new()).unwrap_err();
        assert_eq!(err.exit, Exit::Config);
        // Under --mx the account's login is ignored, and said to be.
        let mut warnings = Vec::new();
        let (settings, login) = settings(&["--mx"], &with_login, &mut warnings).unwrap();
        assert!(matches!(settings.route, Route::Mx { .. }));
        assert!(login.is_none() && settings.login.is_none());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    const DEADLINE: Duration = Duration::from_secs(10);

    #[test]
    fn password_command_first_line_only() {
        assert_eq!(
            run_password_cmd("printf 'pw1\\r\\nsecond\\n'", DEADLINE).unwrap(),
            "pw1"
        );
        let err = run_password_cmd("exit 3", DEADLINE).unwrap_err();
        assert_eq!((err.exit, err.cause), (Exit::Config, Cause::LocalSetup));
        assert!(run_password_cmd("true", DEADLINE)
            .unwrap_err()
            .message
            .contains("printed nothing"));
    }

    #[test]
    fn unusable_password_output_says_why() {
        for (output, why) in [
            (&b""[..], "printed nothing"),
            (b"\npw\n", "empty first line"),
            (b"p\0w\n", "NUL byte (at offset 1)"),
            (b"pw\xff\n", "not UTF-8 (invalid byte at offset 2)"),
        ] {
            let err = first_line(output.to_vec()).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        assert_eq!(
            first_line(b"pw\nmore\xff".to_vec()).map_err(|_| ()),
            Err(())
        );
    }

    #[test]
    fn a_password_command_that_outlives_its_output_is_killed() {
        let started = Instant::now();
        let err =
            run_password_cmd("echo pw; exec >&-; sleep 30", Duration::from_secs(1)).unwrap_err();
        assert_eq!((err.exit, err.cause), (Exit::TempFail, Cause::LocalSetup));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
