//! The send command: what `postie [FLAGS] RECIPIENT...` and sendmail mode
//! do with the message once the command line is parsed. Sits at the top,
//! with `main`: it plans, sends and settles, so it imports from every
//! layer below and nothing imports it.

use std::io::{IsTerminal, Read};

use crate::cli::args::{self, Cli};
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
        let mut input = match read_input(&cli, &mut reader)? {
            Ok(input) => input,
            Err(oversized) => {
                let err = oversized.error();
                return Err(unplanned(&cli, Some(oversized.input), err));
            }
        };
        // A user who may not read the system config hands the message to
        // root's queue (`applies` holds only in sendmail mode).
        if maildrop::applies(&cli) {
            let deposited = input
                .reader()
                .map_err(|err| spool_read_error(&err))
                .and_then(|mut reader| maildrop::deposit(&cli, &mut reader));
            return match deposited {
                Ok(()) => Ok(()),
                Err(err) => Err(unplanned(&cli, Some(input), err)),
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
            Ok(plan) => plan,
            Err(err) => return Err(unplanned(&cli, Some(input), err)),
        }
    } else {
        plan(cli.clone(), &mut reader, is_terminal).map_err(|err| unplanned(&cli, None, err))?
    };
    for warning in &plan.warnings {
        messages::warning(warning);
    }
    for note in &plan.notes {
        messages::note(note);
    }
    if plan.transport.is_none() {
        return dry_run::print(&plan.messages, plan.destination.as_ref());
    }
    // Every recipient is owed by policy: nothing is tried now, and no
    // password command runs.
    let untried = if plan.queue.policy == QueuePolicy::Always {
        Some(Error::new(Exit::TempFail, "queue = \"always\""))
    } else {
        // A password command that hangs or prints nonsense is this
        // machine's trouble: the planned message is owed (queued when
        // queueing is on, as sendmail mode has it), never in failed/.
        planning::fetch_login(&mut plan).err()
    };
    let mut settle = |message, verdict: &Verdict| {
        let settled = outcome::settle(&plan, message, verdict);
        results.push(outcome::result(
            message,
            verdict,
            settled.queued_as.as_deref(),
        ));
        settled.status
    };
    let statuses: Vec<Result<()>> = if let Some(error) = untried {
        plan.messages
            .iter()
            .map(|message| {
                settle(
                    message,
                    &Verdict::failed(&message.envelope.recipients, error.clone()),
                )
            })
            .collect()
    } else {
        let Some(settings) = &plan.transport else {
            return dry_run::print(&plan.messages, plan.destination.as_ref());
        };
        let attempts = route::submit_all(settings, &plan.messages, &|text| messages::warning(text));
        let mut statuses = Vec::with_capacity(attempts.len());
        for (attempt, message) in attempts.into_iter().zip(&plan.messages) {
            if let (Some(format), Ok(reports)) = (plan.capabilities, &attempt) {
                report::print_capabilities(reports, format)?;
            }
            statuses.push(settle(message, &Verdict::of(&message.envelope, attempt)));
        }
        statuses
    };
    summarize(&plan, statuses)
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
    let fallback = Fallback::of(cli);
    let spool_dir = fallback.queue_dir.map(|dir| dir.join("tmp"));
    spool::read(reader, spool_dir.as_deref(), fallback.max_message_size)
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
    if stdin.is_terminal() {
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
