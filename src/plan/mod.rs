//! The second parsing stage: flags, environment and config file become one
//! validated [`Plan`] (messages, envelope, server settings) before any
//! network I/O; and the settings a queued message keeps, to be sent the
//! same way later.
//!
//! Precedence for every setting is flag > environment (clap reads the
//! POSTIE_* variables into the same fields) > the chosen account >
//! `[defaults]` > built-in default. All input files are read here, so a
//! missing attachment fails before a connection is opened.
//!
//! This file holds the [`Plan`] and [`plan()`], which assembles it from the
//! files beside it:
//!
//! | file | what it decides |
//! |---|---|
//! | [`precedence`] | flag > environment > account > `[defaults]`, once |
//! | [`inputs`] | what is read from files and standard input: body, HTML, attachments, ready-made messages |
//! | [`recipients`] | the sender and recipients: local names, aliases, the envelope |
//! | [`server`] | where and how to connect: server URLs, TLS, certificate checks, EHLO name, MX route |
//! | [`secret`] | the login and its password sources, including the password command |
//! | [`stored`] | the settings a queue entry keeps, and its on-disk format |
//! | [`replay`] | planning again from a queue entry's stored settings |
//! | [`dkim`] | whether each message is DKIM-signed, with which key and domain |
//! | [`fallback`] | where a message that could not be planned is kept and logged |
//!
//! Not here: sending (`smtp`), storing (`queue`), printing (`output`).

pub(crate) mod dkim;
pub(crate) mod fallback;
pub(crate) mod inputs;
pub(crate) mod precedence;
pub(crate) mod recipients;
pub(crate) mod replay;
pub(crate) mod secret;
pub(crate) mod server;
pub(crate) mod stored;

use std::path::PathBuf;

use crate::cli::args::Cli;
use crate::config::file::{Account, ConfigFile};
use crate::exit::{Error, Result};
use crate::mail::address::envelope_address;
use crate::mail::compose;
use crate::mail::content::Content;
use crate::output::dry_run::Destination;
use crate::output::log::Logger;
use crate::plan::inputs::{draft_and_envelope, ready_made, Spool, Stdin};
use crate::plan::precedence::{queue_dir, Selected};
use crate::plan::recipients::{envelope_only, local_rules, Needs};
use crate::plan::secret::PendingLogin;
use crate::plan::server::transport_settings;
use crate::plan::stored::{stored_settings, QueuedSettings};
use crate::smtp::outgoing::Outgoing;
use crate::smtp::settings::{Route, Settings};
use crate::types::{parse_envid, Dsn, QueuePolicy, ReportFormat};

/// What `main` will do: the message, its envelope, and where to send it.
#[derive(Debug)]
pub(crate) struct Plan {
    /// One message, or several with --message given more than once.
    pub(crate) messages: Vec<Outgoing>,
    /// `None` for --dry-run: nothing is resolved, no password is fetched.
    /// Its `login` is empty until [`fetch_login`] fills it from `login`.
    pub(crate) transport: Option<Settings>,
    /// --dry-run: where the messages would go, for its report.
    pub(crate) destination: Option<Destination>,
    /// The login the session will use, its secret not yet fetched.
    pub(crate) login: Option<PendingLogin>,
    /// Things the user must hear about before sending (e.g. --insecure).
    pub(crate) warnings: Vec<String>,
    /// With -v (empty without): what postie changed in a ready-made
    /// message so that SMTP can carry it.
    pub(crate) notes: Vec<String>,
    /// --capabilities: how to print the report.
    pub(crate) capabilities: Option<ReportFormat>,
    /// Whether and where a failed message is kept.
    pub(crate) queue: QueuePlan,
    /// Where attempts are logged.
    pub(crate) log: Logger,
}

/// What to do with a message the server could not take now.
#[derive(Clone, Debug)]
pub(crate) struct QueuePlan {
    pub(crate) policy: QueuePolicy,
    pub(crate) dir: Option<PathBuf>,
    /// The settings to send it with later.
    pub(crate) settings: QueuedSettings,
    /// Sendmail mode: a message refused for good is also kept in failed/,
    /// since the program that handed it over reads no exit status.
    pub(crate) keep_refused: bool,
}

/// -v's note on where the settings come from: the config file (or the
/// paths tried for one) and the account.
pub(crate) fn describe_settings(cli: &Cli, config: &ConfigFile) -> String {
    let account = match config.select(cli.account.as_deref(), cli.from.as_deref()) {
        Ok((Some(name), _)) => format!("account {name}"),
        Ok((None, _)) => "no account, only [defaults] and flags".to_string(),
        // plan() reports it.
        Err(_) => "no such account".to_string(),
    };
    format!("{}; {account}", config.source())
}

/// `config` is what [`ConfigFile::load`] made of `cli.config`.
pub(crate) fn plan(cli: Cli, config: ConfigFile, stdin: Stdin<'_>) -> Result<Plan> {
    // Before anything is read: a usage error must not wait for stdin.
    let envid = cli
        .envid
        .as_deref()
        .map(parse_envid)
        .transpose()
        .map_err(Error::usage)?;
    let selected = Selected::of(&cli, &config)?;
    let local = local_rules(&config, &selected.account)?;
    let needs = Needs::of(&cli);
    let mut notes = Vec::new();
    let mut messages = match (cli.message.as_slice(), needs) {
        ([], Needs::Message) => {
            let spool_dir =
                queue_dir(cli.queue_dir.as_deref(), Some(&config)).map(|dir| dir.join("tmp"));
            let spool = Spool {
                dir: spool_dir.as_deref(),
            };
            let (draft, envelope) = draft_and_envelope(&cli, &selected, &local, stdin, spool)?;
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
                    &selected.account,
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
            envelope: envelope_only(&selected, &local, needs, &cli)?,
            content: Content::default(),
        }],
    };
    for message in &mut messages {
        message.envelope.dsn = Dsn::requested(
            cli.notify,
            cli.ret,
            envid.clone(),
            &message.envelope.recipients,
        );
    }
    // Last, once the message is final: every later path (the session, the
    // queue, a flush) sends these bytes as they are.
    dkim::sign_messages(&selected.merged, &mut messages, cli.verbose > 0, &mut notes)?;
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
    let (transport, login, destination) = if cli.dry_run {
        // Planned as a send is, so that the dry run says where the message
        // would go, and fails where sending would fail before connecting.
        // Its warnings are the send's to give.
        let (settings, _) = transport_settings(
            &cli,
            &selected,
            &messages[0].envelope,
            &mut Vec::new(),
            &mut Vec::new(),
        )?;
        let destination = Destination {
            user: match settings.route {
                Route::Servers(_) => selected.merged.user.clone(),
                Route::Mx { .. } => None,
            },
            route: settings.route,
            account: selected.name.clone(),
        };
        (None, None, Some(destination))
    } else {
        let (settings, login) = transport_settings(
            &cli,
            &selected,
            &messages[0].envelope,
            &mut warnings,
            &mut helo_notes,
        )?;
        if cli.verbose > 0 {
            notes.extend(direct_delivery_note(&cli, &settings.route));
        }
        (Some(settings), login, None)
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
    // A run that stops early or only prints has nothing to keep, whatever
    // the flags or the account say.
    let policy = if probing {
        QueuePolicy::Never
    } else {
        // Sendmail's callers (cron, daemons) read no exit status: by
        // default the message waits in the queue rather than being lost.
        selected.merged.queue.unwrap_or(if cli.sendmail {
            QueuePolicy::OnTempfail
        } else {
            QueuePolicy::Never
        })
    };
    let queue = QueuePlan {
        policy,
        dir: queue_dir(cli.queue_dir.as_deref(), Some(&config)),
        settings: stored_settings(&cli),
        keep_refused: cli.sendmail && !probing,
    };
    let log = logger(selected.name, &selected.account);
    Ok(Plan {
        messages,
        transport,
        destination,
        login,
        warnings,
        notes,
        capabilities,
        queue,
        log,
    })
}

pub(crate) fn logger(account_name: Option<String>, account: &Account) -> Logger {
    Logger {
        file: account.logfile.clone(),
        syslog: account.syslog.unwrap_or(false),
        account: account_name,
    }
}

/// Fills the plan's session login, running the password command if there
/// is one. Separate from [`plan`] so that a command that hangs or prints
/// nonsense fails after the message is planned: the caller can then keep
/// the message (owed, [`Cause::LocalSetup`](crate::exit::Cause::LocalSetup)) instead of losing it.
pub(crate) fn fetch_login(plan: &mut Plan) -> Result<()> {
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
