//! The send command: what `postie [FLAGS] RECIPIENT...` and sendmail mode
//! do with the message once the command line is parsed. Sits at the top,
//! with `main`: it plans, sends and settles, so it imports from every
//! layer below and nothing imports it.

use std::io::{IsTerminal, Read};

use crate::cli::args::{self, Cli};
use crate::cli::sendmail;
use crate::config::file::ConfigFile;
use crate::exit;
use crate::exit::{Error, Exit, Result};
use crate::mail::spool;
use crate::outcome::{self, Verdict};
use crate::output::result_json::{self, MessageResult};
use crate::output::{capabilities as report, log};
use crate::output::{dry_run, messages, progress};
use crate::plan::fallback::Fallback;
use crate::plan::inputs::Stdin;
use crate::plan::{self as planning, stored, Plan};
use crate::queue::{maildrop, storage};
use crate::smtp::outgoing::Outgoing;
use crate::smtp::route;
use crate::types::QueuePolicy;

/// Sends (or, with --dry-run, prints) the message the command line
/// describes; with --json, then prints the result on stdout, failed or not.
pub(crate) fn run(cli: Cli) -> Result<()> {
    if cli.json && cli.dry_run && !cli.capabilities {
        return Err(Error::usage(
            "--json cannot be used with --dry-run, which writes the message itself to standard output",
        )
        .hint("drop --json to see the message, or --dry-run to send it"));
    }
    // --capabilities --json prints its own document; sendmail's callers
    // read no output.
    if !cli.json || cli.capabilities || cli.sendmail {
        return send(cli, &mut Vec::new());
    }
    let mut results = Vec::new();
    let status = send(cli, &mut results);
    result_json::print(&status, &results)?;
    status
}

/// Sends or prints; the result of each message settled goes to `results`.
fn send(cli: Cli, results: &mut Vec<MessageResult>) -> Result<()> {
    let stdin = std::io::stdin();
    let is_terminal = stdin.is_terminal();
    let mut reader = stdin.lock();
    let mut plan = if cli.sendmail {
        // Read whole before anything can fail: a message that cannot be
        // planned (a local name with no domain, a broken config) is still
        // kept in failed/, as cron reads no exit status.
        let input = read_input(&cli, &mut reader)?;
        match hand_over(&cli, input, is_terminal) {
            Handed::Planned(plan) => *plan,
            Handed::Deposited => return Ok(()),
            Handed::Failed(err) => return Err(err),
        }
    } else {
        plan(cli.clone(), &mut reader, is_terminal).map_err(|err| unplanned(&cli, None, err))?
    };
    if plan.transport.is_none() {
        say_plan(&plan);
        return dry_run::print(&plan.messages, plan.destination.as_ref());
    }
    let tried = try_and_settle(&mut plan)?;
    let mut statuses = Vec::with_capacity(tried.len());
    for (message, tried) in plan.messages.iter().zip(tried) {
        results.push(outcome::result(
            message,
            &tried.verdict,
            tried.settled.queued_as.as_deref(),
        ));
        statuses.push(tried.settled.status);
    }
    summarize(&plan, statuses)
}

/// What became of a ready-made message handed over in sendmail mode
/// before any server was asked.
pub(crate) enum Handed {
    /// Planned: ready for [`try_and_settle`].
    Planned(Box<Plan>),
    /// A user who may not read the system config handed it to root's
    /// queue (the maildrop).
    Deposited,
    /// It could not be planned (or deposited): logged, and kept in
    /// failed/ unless the error says it could not be.
    Failed(Error),
}

/// Sendmail mode's steps between reading a message and trying it: the
/// maildrop for a user who may not read the system config, else the plan.
/// What cannot be planned is kept in failed/, never lost.
pub(crate) fn hand_over(
    cli: &Cli,
    input: std::result::Result<spool::Input, spool::Oversized>,
    is_terminal: bool,
) -> Handed {
    let mut input = match input {
        Ok(input) => input,
        Err(oversized) => {
            let err = oversized.error();
            return Handed::Failed(unplanned(cli, Some(oversized.input), err));
        }
    };
    // A user who may not read the system config hands the message to
    // root's queue (`applies` holds only in sendmail mode).
    if maildrop::applies(cli) {
        let deposited = input
            .reader()
            .map_err(|err| spool_read_error(&err))
            .and_then(|mut reader| maildrop::deposit(cli, &mut reader));
        return match deposited {
            Ok(()) => Handed::Deposited,
            Err(err) => Handed::Failed(unplanned(cli, Some(input), err)),
        };
    }
    // A bug in planning (a parser's panic on hostile input) must not
    // lose what cron handed over either.
    let planned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        input
            .reader()
            .map_err(|err| spool_read_error(&err))
            .and_then(|mut reader| plan(cli.clone(), &mut reader, is_terminal))
    }))
    .unwrap_or_else(|_| {
        Err(Error::new(
            Exit::Software,
            "a bug in postie stopped it while preparing the message",
        )
        .hint("the message is kept; please report the bug with it"))
    });
    match planned {
        Ok(plan) => Handed::Planned(Box::new(plan)),
        Err(err) => Handed::Failed(unplanned(cli, Some(input), err)),
    }
}

/// The plan's warnings, and its notes (-v).
fn say_plan(plan: &Plan) {
    for warning in &plan.warnings {
        messages::warning(warning);
    }
    for note in &plan.notes {
        messages::note(note);
    }
}

/// One message of a plan, tried (or owed untried) and settled.
pub(crate) struct Tried {
    pub(crate) verdict: Verdict,
    pub(crate) settled: outcome::Settled,
}

/// Tries every message of a plan that has a transport (or owes them all,
/// untried) and settles each: delivered, queued, or refused and kept.
/// One [`Tried`] per message of the plan, in order.
pub(crate) fn try_and_settle(plan: &mut Plan) -> Result<Vec<Tried>> {
    say_plan(plan);
    // Every recipient is owed by policy: nothing is tried now, and no
    // password command runs.
    let untried = if plan.queue.policy == QueuePolicy::Always {
        Some(Error::new(Exit::TempFail, "queue = \"always\""))
    } else {
        // A password command that hangs or prints nonsense is this
        // machine's trouble: the planned message is owed (queued when
        // queueing is on, as sendmail mode has it), never in failed/.
        planning::fetch_login(plan).err()
    };
    let settle = |message, verdict: Verdict| {
        let settled = outcome::settle(plan, message, &verdict);
        Tried { verdict, settled }
    };
    if let Some(error) = untried {
        return Ok(plan
            .messages
            .iter()
            .map(|message| {
                settle(
                    message,
                    Verdict::failed(&message.envelope.recipients, error.clone()),
                )
            })
            .collect());
    }
    let Some(settings) = &plan.transport else {
        return Err(Error::new(
            Exit::Software,
            "no transport to send with (a dry run was taken for a send)",
        ));
    };
    let attempts = route::submit_all(settings, &plan.messages, &|text| messages::warning(text));
    let mut tried = Vec::with_capacity(attempts.len());
    for (attempt, message) in attempts.into_iter().zip(&plan.messages) {
        if let (Some(format), Ok(reports)) = (plan.capabilities, &attempt) {
            report::print_capabilities(reports, format)?;
        }
        tried.push(settle(message, Verdict::of(&message.envelope, attempt)));
    }
    Ok(tried)
}

/// One result per message: a single message's error is the error; with
/// several, each failure gets its line and the first one's code is kept.
fn summarize(plan: &Plan, results: Vec<Result<()>>) -> Result<()> {
    if results.len() <= 1 {
        return results.into_iter().next().unwrap_or(Ok(()));
    }
    let total = results.len();
    let failures: Vec<(Error, &Outgoing)> = results
        .into_iter()
        .zip(&plan.messages)
        .filter_map(|(result, message)| result.err().map(|err| (err, message)))
        .collect();
    let Some((first, _)) = failures.first() else {
        return Ok(());
    };
    for (err, message) in &failures {
        messages::error(format_args!("{}: {err}", message.label));
    }
    // Some of these may have reached some recipients (--partial, MX): the
    // line must not invite sending them all again.
    Err(Error::new(
        first.exit,
        format!(
            "{} of {total} messages did not reach every recipient; see the lines above",
            failures.len()
        ),
    ))
}

/// The config, then the plan; -v names the config and account first, so
/// that the line is there even when planning fails. The upload shows a
/// progress bar when stderr is a terminal, outside sendmail mode and -v.
fn plan(cli: Cli, reader: &mut dyn Read, is_terminal: bool) -> Result<Plan> {
    let config = ConfigFile::load(cli.config.as_deref())?;
    let no_bar = cli.sendmail || cli.verbose > 0;
    if cli.verbose > 0 {
        eprintln!("=== {}", planning::describe_settings(&cli, &config));
    }
    let mut plan = planning::plan(
        cli,
        config,
        Stdin {
            reader,
            is_terminal,
        },
    )?;
    // Not for sendmail's callers (mailx draws its own screen), nor under
    // -v, whose dialogue lines the bar would tear.
    if !no_bar {
        if let Some(transport) = &mut plan.transport {
            transport.progress = progress::upload_bar();
        }
    }
    Ok(plan)
}

/// Sendmail mode's input, read whole: spooled to the queue's `tmp/` when
/// large, and cut at `max_message_size`.
fn read_input(
    cli: &Cli,
    reader: &mut dyn Read,
) -> Result<std::result::Result<spool::Input, spool::Oversized>> {
    let (spool_dir, limit) = spool_for(cli);
    spool::read(reader, spool_dir.as_deref(), limit)
}

/// Where sendmail mode spools a large message (the queue's `tmp/`) and
/// how large one may be (`max_message_size`).
pub(crate) fn spool_for(cli: &Cli) -> (Option<std::path::PathBuf>, u64) {
    let fallback = Fallback::of(cli);
    let spool_dir = fallback.queue_dir.map(|dir| dir.join("tmp"));
    (spool_dir, fallback.max_message_size)
}

fn spool_read_error(err: &std::io::Error) -> Error {
    Error::new(
        Exit::IoErr,
        format!(
            "cannot read the spooled message back: {}",
            exit::io_reason(err)
        ),
    )
}

/// A message that failed before any server saw it: logged (a usage error
/// of the ordinary command line is no delivery attempt), and in sendmail
/// mode kept whole in failed/. Returns the error to report, amended when
/// the message could not be kept.
fn unplanned(cli: &Cli, raw: Option<spool::Input>, err: Error) -> Error {
    let fallback = Fallback::of(cli);
    let recipients = &cli.recipients;
    if cli.sendmail || err.exit != Exit::Usage {
        fallback.log.record(&log::Attempt {
            server: "",
            sender: cli.from.as_deref().unwrap_or(""),
            recipients,
            size: raw.as_ref().map_or(0, |raw| raw.len() as usize),
            outcome: log::Outcome::Failed,
            reply: &err.message,
            exit: err.exit.code(),
        });
    }
    let Some(mut raw) = raw.filter(|raw| !raw.is_empty()) else {
        return err;
    };
    let kept = fallback
        .queue_dir
        .ok_or_else(|| Error::config("no queue directory"))
        .and_then(|dir| storage::Queue::open(&dir))
        .and_then(|queue| {
            let unplanned = storage::Unplanned {
                submission: stored::Submission::from_cli(cli),
                maildrop_uid: None,
            };
            queue.add_unplanned(unplanned, &fallback.settings, &err.message, |file| {
                spool::copy_crlf(&mut raw, file)
            })
        });
    match kept {
        Ok(path) => {
            messages::said(format_args!("kept the message in {}", path.display()));
            err
        }
        Err(keep_err) => Error {
            message: format!(
                "{}; and the message could not be kept: {}",
                err.message, keep_err.message
            ),
            // Until the queue is fixed every such message is lost: its fix
            // comes first.
            hint: keep_err.hint.or(err.hint),
            ..err
        },
    }
}

/// Sendmail mode with arguments that do not parse: the message on stdin
/// is still kept, with the queue and log that the environment and the
/// default config name.
pub(crate) fn unparsed_sendmail(args: &[String], err: Error) -> Error {
    let Ok(mut cli) = args::parse_from(["postie"]) else {
        return err;
    };
    cli.sendmail = true;
    let stdin = std::io::stdin();
    // With -bs, stdin is an SMTP client waiting for a greeting, not a
    // message: reading it to its end would wait forever.
    if stdin.is_terminal() || sendmail::asks_for_smtp_stdin(args) {
        return err;
    }
    let raw = match read_input(&cli, &mut stdin.lock()) {
        Ok(Ok(raw)) => raw,
        Ok(Err(oversized)) => oversized.input,
        Err(_) => return err,
    };
    let err = Error {
        message: format!("{} (sendmail arguments: {})", err.message, args.join(" ")),
        ..err
    };
    unplanned(&cli, Some(raw), err)
}
