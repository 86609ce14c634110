//! postie: compose a MIME message from flags and files and submit it over
//! SMTP. The binary's `main` parses the command line and calls [`run`];
//! everything else lives in one module per concern.

pub mod address;
pub mod capabilities;
pub mod cli;
pub mod compose;
pub mod config;
pub mod content;
pub mod exit;
pub mod generate;
pub mod local;
pub mod log;
pub mod maildrop;
pub mod message;
pub mod mx;
pub mod queue;
pub mod queue_cmd;
pub mod queue_settings;
pub mod report;
pub mod request;
pub mod sendmail;
pub mod tls;
pub mod transcript;
pub mod transport;
pub mod wire;

use std::io::{IsTerminal, Write};

use cli::Cli;
use exit::{Error, Exit, Result};
use log::{Attempt, Outcome};
use queue::QueuePolicy;

/// Sends (or, with --dry-run, prints) the message the command line describes.
pub fn run(cli: Cli) -> Result<()> {
    let stdin = std::io::stdin();
    let is_terminal = stdin.is_terminal();
    let mut reader = stdin.lock();
    let plan = request::plan(
        cli,
        request::Stdin {
            reader: &mut reader,
            is_terminal,
        },
    )?;
    for warning in &plan.warnings {
        eprintln!("postie: warning: {warning}");
    }
    let Some(settings) = &plan.transport else {
        return print_dry_run(&plan);
    };
    let results: Vec<Result<()>> = if plan.queue.policy == QueuePolicy::Always {
        plan.messages
            .iter()
            .map(|message| {
                let queued = enqueue(&plan, message, "queue = \"always\"");
                match &queued {
                    Ok(()) => log_attempt(&plan, message, "", Outcome::Queued, "queue = always", 0),
                    Err(err) => {
                        let reason = err.to_string();
                        log_attempt(
                            &plan,
                            message,
                            "",
                            Outcome::Failed,
                            &reason,
                            err.exit.code(),
                        )
                    }
                }
                queued
            })
            .collect()
    } else {
        transport::submit_all(settings, &plan.messages)
            .into_iter()
            .zip(&plan.messages)
            .map(|(result, message)| finish(&plan, message, result))
            .collect()
    };
    summarize(&plan, results)
}

/// One result per message: a single message's error is the error; with
/// several, each failure gets its line and the first one's code is kept.
fn summarize(plan: &request::Plan, results: Vec<Result<()>>) -> Result<()> {
    if results.len() <= 1 {
        return results.into_iter().next().unwrap_or(Ok(()));
    }
    let total = results.len();
    let failures: Vec<(Error, &transport::Outgoing)> = results
        .into_iter()
        .zip(&plan.messages)
        .filter_map(|(result, message)| result.err().map(|err| (err, message)))
        .collect();
    let Some((first, _)) = failures.first() else {
        return Ok(());
    };
    for (err, message) in &failures {
        eprintln!("postie: error: {}: {err}", message.label);
    }
    Err(Error::new(
        first.exit,
        format!("{} of {total} messages were not sent", failures.len()),
    ))
}

/// What happens after one message's attempt: log it, queue it after a
/// temporary failure, print reports and refusals.
fn finish(
    plan: &request::Plan,
    message: &transport::Outgoing,
    result: Result<Vec<transport::SessionReport>>,
) -> Result<()> {
    let reports = match result {
        Ok(reports) => reports,
        Err(err) => {
            let reason = err.to_string();
            if plan.queue.policy == QueuePolicy::OnTempfail && err.is_temporary() {
                let queued = enqueue(plan, message, &reason);
                let (outcome, exit) = match &queued {
                    Ok(()) => (Outcome::Queued, 0),
                    Err(_) => (Outcome::Failed, err.exit.code()),
                };
                log_attempt(plan, message, "", outcome, &reason, exit);
                return queued.map_err(|queue_err| Error {
                    message: format!(
                        "{}; and it could not be queued: {}",
                        err.message, queue_err.message
                    ),
                    ..err
                });
            }
            log_attempt(plan, message, "", Outcome::Failed, &reason, err.exit.code());
            return Err(err);
        }
    };
    for report in &reports {
        if let Some(delivery) = &report.delivery {
            log_attempt(
                plan,
                message,
                &report.server,
                Outcome::Sent,
                &delivery.reply,
                0,
            );
        }
    }
    // MX delivery that reached some domains: the others are handled on
    // their own, with only their recipients (queued or reported), so that
    // a retry never delivers twice to the domains that have it.
    let mut domain_errors = Vec::new();
    for failure in reports.iter().filter_map(|r| r.failure.as_ref()) {
        let part = transport::Outgoing {
            label: message.label.clone(),
            envelope: transport::Envelope {
                sender: message.envelope.sender.clone(),
                recipients: failure.recipients.clone(),
            },
            content: message.content.clone(),
        };
        if let Err(err) = finish(plan, &part, Err(failure.error.clone())) {
            eprintln!("postie: error: {err}");
            domain_errors.push(err);
        }
    }
    if let Some(first) = domain_errors.first() {
        return Err(Error::new(
            first.exit,
            format!(
                "{} recipient domain(s) did not get the message; the others did",
                domain_errors.len()
            ),
        ));
    }
    if let Some(format) = plan.capabilities {
        report::print_capabilities(&reports, format)?;
    }
    let refused: Vec<&transport::Refusal> = reports
        .iter()
        .filter_map(|r| r.delivery.as_ref())
        .flat_map(|d| &d.refused)
        .collect();
    for refusal in &refused {
        eprintln!(
            "postie: warning: not sent to <{}>: {}",
            refusal.recipient, refusal.reply
        );
    }
    if let Some(first) = refused.first() {
        // --partial: the message went out, but the caller must still learn
        // that some recipients did not get it.
        let exit = if refused.iter().any(|r| r.temporary) {
            Exit::TempFail
        } else {
            Exit::NoUser
        };
        return Err(Error::new(
            exit,
            format!(
                "sent to {} recipient(s), refused {} (first: <{}>)",
                message.envelope.recipients.len() - refused.len(),
                refused.len(),
                first.recipient
            ),
        ));
    }
    Ok(())
}

fn log_attempt(
    plan: &request::Plan,
    message: &transport::Outgoing,
    server: &str,
    outcome: Outcome,
    reply: &str,
    exit: u8,
) {
    plan.log.record(&Attempt {
        server,
        sender: &message.envelope.sender,
        recipients: &message.envelope.recipients,
        size: message.content.len() as usize,
        outcome,
        reply,
        exit,
    });
}

/// Keeps the message for `postie queue flush`; says so on stderr.
fn enqueue(plan: &request::Plan, message: &transport::Outgoing, reason: &str) -> Result<()> {
    let dir = plan.queue.dir.clone().ok_or_else(|| {
        Error::config("no queue directory: set queue_dir in the config or --queue-dir")
    })?;
    let queue = queue::Queue::open(&dir)?;
    // Only on-tempfail queues after an attempt; `always` queues untried.
    let tried = plan.queue.policy == QueuePolicy::OnTempfail;
    let entry = queue.add(
        &message.envelope.sender,
        &message.envelope.recipients,
        &plan.queue.settings,
        &message.content,
        tried.then_some(reason),
    )?;
    eprintln!("postie: queued as {}: {reason}", entry.id);
    Ok(())
}

fn print_dry_run(plan: &request::Plan) -> Result<()> {
    eprintln!("postie: dry run, nothing sent");
    let mut stdout = std::io::stdout().lock();
    for message in &plan.messages {
        eprintln!("MAIL FROM:<{}>", message.envelope.sender);
        for recipient in &message.envelope.recipients {
            eprintln!("RCPT TO:<{recipient}>");
        }
        match message
            .content
            .write_to(&mut stdout)
            .and_then(|_| stdout.flush())
        {
            Ok(()) => {}
            // `postie --dry-run ... | head` is fine.
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(err) => {
                return Err(Error::new(
                    Exit::IoErr,
                    format!(
                        "cannot write the message to standard output: {}",
                        exit::io_reason(&err)
                    ),
                ))
            }
        }
    }
    Ok(())
}
