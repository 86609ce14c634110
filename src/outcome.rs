//! What happens after a send attempt, decided in one place for every path:
//! sending (with or without --partial, to a server or to each domain's MX)
//! and `postie queue flush`.
//!
//! Each recipient ends in exactly one of three states:
//! - **delivered**: the server took the message for it;
//! - **owed**: a temporary failure (a 4xx reply, a lost connection, a
//!   timeout): it is queued whenever queueing is on; with queueing off,
//!   sendmail mode keeps it in `failed/` as a refused one;
//! - **refused**: a permanent failure (a 5xx reply, or anything no retry can
//!   mend): it is reported, and in sendmail mode the message is also kept in
//!   `failed/`, so that a cron report is still on disk.
//!
//! Whether a failure is temporary is [`Error::is_temporary`]: the reply's
//! first digit alone (mapped to 75 by the SMTP layer), never its text.
//! One more kind of failure is owed: a local setup that failed before any
//! server was asked ([`Cause::LocalSetup`], e.g. a password command that
//! hung (75) or printed something unusable (78)). The message is not at
//! fault, so it waits in the queue for a flush, which runs the setup again,
//! instead of ending in `failed/`; without a queue its exit code stands.
//!
//! The exit status follows from the states alone ([`status`]): 0 when every
//! recipient was delivered or queued; otherwise the code of the first
//! refused recipient; 75 only when queueing is off and a recipient is owed.
//!
//! What is *not* here: how an attempt is made (`smtp`), and where a
//! queued or failed message is stored (`queue`).

use std::path::PathBuf;

use crate::exit::{Cause, Error, Exit, Result};
use crate::mail::content::Content;
use crate::output::log::{Attempt, Logger, Outcome};
use crate::output::messages;
use crate::output::result_json::{
    MessageResult, RecipientOutcome, RecipientResult, SessionResult, TlsUsed,
};
use crate::plan::Plan;
use crate::queue::storage::{Entry, Queue};
use crate::smtp::outgoing::Outgoing;
use crate::smtp::report::{Refusal, SessionReport};
use crate::types::Envelope;
use crate::types::QueuePolicy;

/// What became of some of a message's recipients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// The server took the message (or a probe got as far as it asked).
    Delivered {
        /// "host:port (address)".
        server: String,
        /// The server's final reply; empty when a probe stopped early.
        reply: String,
    },
    /// Not now: worth trying again later.
    Owed(Error),
    /// Never: reported, not retried.
    Refused(Error),
}

/// Recipients that share one fate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Share {
    pub(crate) recipients: Vec<String>,
    pub(crate) fate: Fate,
    /// The server's own reply about these recipients when they were
    /// refused one by one (--partial); the error says the rest.
    pub(crate) reply: Option<String>,
}

/// Every recipient of one message, each in one share, and the sessions
/// that were about them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) shares: Vec<Share>,
    pub(crate) sessions: Vec<Session>,
}

/// A session that reached a server, for the result scripts read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Session {
    /// "host:port (address)".
    pub(crate) server: String,
    pub(crate) tls: TlsUsed,
    /// The recipients it was about.
    pub(crate) recipients: Vec<String>,
}

impl Session {
    /// `None` when no server answered (an MX domain that failed before
    /// any session).
    fn of(report: &SessionReport) -> Option<Session> {
        if report.server.is_empty() {
            return None;
        }
        // Encrypted after an EHLO in clear text is STARTTLS; encrypted
        // with none is implicit TLS.
        let encrypted = report.tls.is_some() || report.certificate.is_some();
        let clear_ehlo = report.capabilities.iter().any(|ehlo| !ehlo.over_tls);
        let tls = match (encrypted, clear_ehlo) {
            (false, _) => TlsUsed::None,
            (true, true) => TlsUsed::Starttls,
            (true, false) => TlsUsed::Implicit,
        };
        Some(Session {
            server: report.server.clone(),
            tls,
            recipients: report.recipients.clone(),
        })
    }
}

/// A failure as a fate: the one place that says temporary (or a failed
/// local setup) means owed.
pub(crate) fn fate_of(error: Error) -> Fate {
    if error.is_temporary() || error.cause == Cause::LocalSetup {
        Fate::Owed(error)
    } else {
        Fate::Refused(error)
    }
}

/// One RCPT refusal under --partial, as the error a user reads.
fn refusal(server: &str, refused: &Refusal) -> Error {
    let exit = if refused.temporary {
        Exit::TempFail
    } else {
        Exit::NoUser
    };
    Error::new(exit, format!("RCPT TO: {server} replied {}", refused.reply))
}

impl Verdict {
    /// Every recipient shares one failure (nothing was sent to anyone).
    pub(crate) fn failed(recipients: &[String], error: Error) -> Verdict {
        Verdict {
            shares: vec![Share {
                recipients: recipients.to_vec(),
                fate: fate_of(error),
                reply: None,
            }],
            sessions: Vec::new(),
        }
    }

    /// The verdict on one attempt to send a message with `envelope`.
    pub(crate) fn of(envelope: &Envelope, attempt: Result<Vec<SessionReport>>) -> Verdict {
        let reports = match attempt {
            Ok(reports) => reports,
            Err(error) => return Verdict::failed(&envelope.recipients, error),
        };
        let mut shares = Vec::new();
        let sessions = reports.iter().filter_map(Session::of).collect();
        for report in reports {
            if let Some(error) = report.failure {
                shares.push(Share {
                    recipients: report.recipients,
                    fate: fate_of(error),
                    reply: None,
                });
                continue;
            }
            let refused = report
                .delivery
                .as_ref()
                .map(|d| d.refused.as_slice())
                .unwrap_or_default();
            let accepted: Vec<String> = report
                .recipients
                .iter()
                .filter(|r| !refused.iter().any(|x| &x.recipient == *r))
                .cloned()
                .collect();
            if !accepted.is_empty() {
                let reply = report
                    .delivery
                    .as_ref()
                    .and_then(|d| d.reply.clone())
                    .unwrap_or_default();
                shares.push(Share {
                    recipients: accepted,
                    fate: Fate::Delivered {
                        server: report.server.clone(),
                        reply,
                    },
                    reply: None,
                });
            }
            shares.extend(refused.iter().map(|r| Share {
                recipients: vec![r.recipient.clone()],
                fate: fate_of(refusal(&report.server, r)),
                reply: Some(r.reply.clone()),
            }));
        }
        Verdict { shares, sessions }
    }

    /// All owed recipients, in order, and the first owed failure.
    pub(crate) fn owed(&self) -> Option<(Vec<String>, &Error)> {
        let mut owed = self.shares.iter().filter_map(|share| match &share.fate {
            Fate::Owed(error) => Some((&share.recipients, error)),
            _ => None,
        });
        let (first_recipients, first_error) = owed.next()?;
        let mut recipients = first_recipients.clone();
        for (more, _) in owed {
            recipients.extend(more.iter().cloned());
        }
        Some((recipients, first_error))
    }

    /// The refused shares, in order.
    pub(crate) fn refused(&self) -> impl Iterator<Item = (&[String], &Error)> {
        self.shares.iter().filter_map(|share| match &share.fate {
            Fate::Refused(error) => Some((share.recipients.as_slice(), error)),
            _ => None,
        })
    }

    /// The delivered shares: recipients, server and reply.
    pub(crate) fn delivered(&self) -> impl Iterator<Item = (&[String], &str, &str)> {
        self.shares.iter().filter_map(|share| match &share.fate {
            Fate::Delivered { server, reply } => {
                Some((share.recipients.as_slice(), server.as_str(), reply.as_str()))
            }
            _ => None,
        })
    }

    fn count(&self, wanted: impl Fn(&Fate) -> bool) -> usize {
        self.shares
            .iter()
            .filter(|s| wanted(&s.fate))
            .map(|s| s.recipients.len())
            .sum()
    }

    /// One failure for every recipient: its error says it all.
    pub(crate) fn single_failure(&self) -> Option<&Error> {
        match self.shares.as_slice() {
            [Share {
                fate: Fate::Owed(error) | Fate::Refused(error),
                ..
            }] => Some(error),
            _ => None,
        }
    }
}

/// The exit status of a message whose owed recipients were `owed_kept`
/// (queued) or not. `None` when it exits 0.
pub(crate) fn status(verdict: &Verdict, owed_kept: bool) -> Option<Error> {
    if let Some(single) = verdict.single_failure() {
        let owed = matches!(verdict.shares[0].fate, Fate::Owed(_));
        return (!owed || !owed_kept).then(|| single.clone());
    }
    let total = verdict.count(|_| true);
    let delivered = verdict.count(|f| matches!(f, Fate::Delivered { .. }));
    let refused = verdict.count(|f| matches!(f, Fate::Refused(_)));
    let owed = verdict.count(|f| matches!(f, Fate::Owed(_)));
    let summary = |what: String| {
        let mut parts = vec![format!("sent to {delivered} of {total} recipients")];
        if owed > 0 {
            parts.push(if owed_kept {
                format!("{owed} queued")
            } else {
                format!("{owed} to try again later")
            });
        }
        parts.push(what);
        parts.join("; ")
    };
    if let Some((recipients, first)) = verdict.refused().next() {
        let what = format!("{refused} refused (first: <{}>)", recipients[0]);
        let error = Error::new(first.exit, summary(what));
        // The refusal's hint was made for its own session, where "nothing
        // was sent" is true; with some recipients served it is not.
        let hint = first.hint.as_deref().and_then(|hint| match delivered {
            0 => Some(hint.to_string()),
            _ => without_nothing_sent(hint),
        });
        return Some(match hint {
            Some(hint) => error.hint(hint),
            None => error,
        });
    }
    if owed > 0 && !owed_kept {
        let (recipients, _) = verdict.owed()?;
        let what = format!("not sent to <{}> for now", recipients.join(">, <"));
        return Some(
            Error::new(Exit::TempFail, summary(what))
                .hint("send again to these recipients later, or turn on the queue (--queue)"),
        );
    }
    None
}

/// A hint without its "nothing was sent" clause; `None` when nothing else
/// is left of it.
fn without_nothing_sent(hint: &str) -> Option<String> {
    let rest: Vec<&str> = hint
        .split("; ")
        .filter(|part| *part != "nothing was sent")
        .collect();
    (!rest.is_empty()).then(|| rest.join("; "))
}

/// "<a@x>, <b@x>"
fn listed(recipients: &[String]) -> String {
    let quoted: Vec<String> = recipients.iter().map(|r| format!("<{r}>")).collect();
    quoted.join(", ")
}

/// Logs every share of a verdict but the owed one, whose line depends on
/// whether it was kept.
fn log_settled(log: &Logger, sender: &str, size: u64, verdict: &Verdict) {
    for (recipients, server, reply) in verdict.delivered() {
        log.record(&Attempt {
            server,
            sender,
            recipients,
            size: size as usize,
            outcome: Outcome::Sent,
            reply,
            exit: 0,
        });
    }
    for (recipients, error) in verdict.refused() {
        log_failure(log, sender, size, recipients, Outcome::Failed, error);
    }
}

fn log_failure(
    log: &Logger,
    sender: &str,
    size: u64,
    recipients: &[String],
    outcome: Outcome,
    error: &Error,
) {
    log.record(&Attempt {
        server: "",
        sender,
        recipients,
        size: size as usize,
        outcome,
        reply: &error.message,
        exit: if outcome == Outcome::Queued {
            0
        } else {
            error.exit.code()
        },
    });
}

/// Settles a message just tried: logs every recipient's fate, queues the
/// owed ones (one entry holding only them) when queueing is on, keeps a
/// copy for the refused ones in `failed/` in sendmail mode, and returns
/// the exit status. Lines on stderr say what happened to whom; the error
/// in the status is the one line `main` prints last.
pub(crate) fn settle(plan: &Plan, message: &Outgoing, verdict: &Verdict) -> Settled {
    let mut queued_as = None;
    let status = settle_status(plan, message, verdict, &mut queued_as);
    Settled { status, queued_as }
}

/// What settling a message did.
#[derive(Debug)]
pub(crate) struct Settled {
    /// The message's exit status.
    pub(crate) status: Result<()>,
    /// The queue entry that holds it for its owed recipients, if it was queued.
    pub(crate) queued_as: Option<String>,
}

fn settle_status(
    plan: &Plan,
    message: &Outgoing,
    verdict: &Verdict,
    queued_as: &mut Option<String>,
) -> Result<()> {
    let sender = &message.envelope.sender;
    let size = message.content.len();
    let mixed = verdict.single_failure().is_none();
    log_settled(&plan.log, sender, size, verdict);
    let mut owed_kept = false;
    // Queueing failed: said last, with the refusals' code if there are any.
    let mut not_queued: Option<Error> = None;
    if let Some((recipients, error)) = verdict.owed() {
        let whom = if mixed {
            format!(" for {}", listed(&recipients))
        } else {
            String::new()
        };
        if plan.queue.policy == QueuePolicy::Never {
            if mixed {
                messages::warning(format_args!(
                    "not sent to {}: {}",
                    listed(&recipients),
                    error.message
                ));
            }
            log_failure(&plan.log, sender, size, &recipients, Outcome::Failed, error);
            // Sendmail mode: with no queue to wait in, failed/ keeps what
            // was handed over, as for a refusal (cron reads no exit code).
            if plan.queue.keep_refused {
                keep_refused(plan, message, &recipients, &error.message);
            }
        } else {
            match enqueue(plan, message, &recipients, &error.message) {
                Ok(id) => {
                    // Exit 0 follows: no hint to fix anything, no exit code.
                    messages::said(format_args!("queued as {id}{whom}: {}", error.message));
                    log_failure(&plan.log, sender, size, &recipients, Outcome::Queued, error);
                    owed_kept = true;
                    *queued_as = Some(id);
                }
                Err(queue_error) => {
                    log_failure(&plan.log, sender, size, &recipients, Outcome::Failed, error);
                    // In sendmail mode failed/ is the last place left.
                    if plan.queue.keep_refused {
                        keep_refused(plan, message, &recipients, &error.message);
                    }
                    // The queue's own fix (a chmod, free space) is the
                    // one to try first.
                    not_queued = Some(Error {
                        message: format!(
                            "{}; and it could not be queued: {}",
                            error.message, queue_error.message
                        ),
                        hint: queue_error.hint.clone().or_else(|| error.hint.clone()),
                        ..error.clone()
                    });
                }
            }
        }
    }
    for (recipients, error) in verdict.refused() {
        if mixed {
            messages::warning(format_args!(
                "not sent to {}: {}",
                listed(recipients),
                error.message
            ));
        }
        if plan.queue.keep_refused {
            keep_refused(plan, message, recipients, &error.message);
        }
    }
    match (status(verdict, owed_kept), not_queued) {
        // A refusal's code wins; the queueing failure is said beside it.
        (Some(refusal), Some(not_queued)) if !refusal.is_temporary() => {
            messages::error_beside(not_queued);
            Err(refusal)
        }
        (_, Some(not_queued)) => Err(not_queued),
        (Some(error), None) => Err(error),
        (None, None) => Ok(()),
    }
}

/// What became of a message and each of its recipients, as `--json`
/// publishes it: the verdict, with the queue entry that settling made.
pub(crate) fn result(
    message: &Outgoing,
    verdict: &Verdict,
    queued_as: Option<&str>,
) -> MessageResult {
    let session_for = |recipient: &String| {
        verdict
            .sessions
            .iter()
            .rev()
            .find(|session| session.recipients.contains(recipient))
            .map(|session| session.server.clone())
    };
    let recipients = message
        .envelope
        .recipients
        .iter()
        .map(|address| {
            let share = verdict
                .shares
                .iter()
                .find(|share| share.recipients.contains(address));
            let (outcome, server, reply, error) = match share.map(|share| (&share.fate, share)) {
                Some((Fate::Delivered { server, reply }, _)) => (
                    RecipientOutcome::Delivered,
                    Some(server.clone()),
                    (!reply.is_empty()).then(|| reply.clone()),
                    None,
                ),
                Some((Fate::Owed(error) | Fate::Refused(error), share)) => {
                    let outcome = match (&share.fate, queued_as) {
                        (Fate::Refused(_), _) => RecipientOutcome::Refused,
                        (_, Some(_)) => RecipientOutcome::Queued,
                        (_, None) => RecipientOutcome::Owed,
                    };
                    (
                        outcome,
                        session_for(address),
                        share.reply.clone(),
                        Some(error.message.clone()),
                    )
                }
                // Every recipient is in a share; an empty verdict tells
                // nothing.
                None => (RecipientOutcome::Owed, None, None, None),
            };
            let queue_id = (outcome == RecipientOutcome::Queued)
                .then(|| queued_as.map(str::to_string))
                .flatten();
            RecipientResult {
                address: address.clone(),
                outcome,
                server,
                reply,
                error,
                queue_id,
            }
        })
        .collect();
    MessageResult {
        label: message.label.clone(),
        message_id: message.content.header("Message-ID"),
        sender: message.envelope.sender.clone(),
        sessions: verdict
            .sessions
            .iter()
            .map(|session| SessionResult {
                server: session.server.clone(),
                tls: session.tls,
            })
            .collect(),
        recipients,
    }
}

/// Queues a message for `recipients`; returns the entry's id.
pub(crate) fn enqueue(
    plan: &Plan,
    message: &Outgoing,
    recipients: &[String],
    reason: &str,
) -> Result<String> {
    let queue = open_queue(plan)?;
    // Only on-tempfail queues after an attempt; `always` queues untried.
    let tried = plan.queue.policy == QueuePolicy::OnTempfail;
    let entry = queue.add(
        &message.envelope.sender,
        recipients,
        &message.envelope.dsn,
        &plan.queue.settings,
        &message.content,
        tried.then_some(reason),
    )?;
    Ok(entry.id)
}

fn open_queue(plan: &Plan) -> Result<Queue> {
    let dir = plan.queue.dir.as_deref().ok_or_else(|| {
        Error::config("no queue directory: set queue_dir in the config or --queue-dir")
    })?;
    Queue::open(dir)
}

/// Sendmail mode: what a cron job handed over stays on disk, in failed/,
/// even when the server refused it for good. A failure to keep it is said,
/// not fatal: the refusal itself is already the exit status.
fn keep_refused(plan: &Plan, message: &Outgoing, recipients: &[String], reason: &str) {
    let kept = open_queue(plan).and_then(|queue| {
        queue.add_failed(
            &message.envelope.sender,
            recipients,
            &message.envelope.dsn,
            &plan.queue.settings,
            &message.content,
            reason,
        )
    });
    match kept {
        Ok(path) => messages::said(format_args!("kept the message in {}", path.display())),
        Err(err) => messages::warning(format_args!("could not keep the message in failed/: {err}")),
    }
}

/// What one flush attempt did to its queue entry.
#[derive(Debug, Default)]
pub(crate) struct Flushed {
    /// Still owed to some recipients: kept in the queue.
    pub(crate) deferred: Option<Error>,
    /// Refused for some recipients: moved (or copied) to failed/.
    pub(crate) refused: Option<Error>,
    /// Owed to nobody and refused by nobody: the caller removes it (with a
    /// `queue::storage::Remover`, its lock held until it is gone).
    pub(crate) sent: bool,
}

/// Moves a queue entry to `failed/` without an attempt (too old, its
/// message missing or short, no recipient), with its log line: the one
/// end an entry may have besides delivered and queued. Returns where it
/// went.
pub(crate) fn give_up(queue: &Queue, entry: &Entry, reason: &str, log: &Logger) -> Result<PathBuf> {
    let path = queue.fail(entry)?;
    log.record(&Attempt {
        server: "",
        sender: &entry.sender,
        recipients: &entry.recipients,
        size: entry.size as usize,
        outcome: Outcome::Failed,
        reply: reason,
        exit: Exit::Unavailable.code(),
    });
    Ok(path)
}

/// Settles a queue entry just tried: the owed recipients stay in the entry
/// (never one already delivered to), the refused ones go to `failed/` (the
/// whole entry when nobody is owed, else a copy for them), and an entry
/// owed to nobody is for the caller to remove (`Flushed::sent`). The
/// entry is narrowed first: whatever fails after that, the next flush
/// never sends again to a recipient that has the message.
pub(crate) fn settle_entry(
    queue: &Queue,
    entry: &mut Entry,
    content: &Content,
    verdict: &Verdict,
    log: &Logger,
) -> Result<Flushed> {
    log_settled(log, &entry.sender, content.len(), verdict);
    let mut flushed = Flushed::default();
    let refused: Vec<(&[String], &Error)> = verdict.refused().collect();
    let delivered = verdict.delivered().count() > 0;
    if let Some((recipients, error)) = verdict.owed() {
        log_failure(
            log,
            &entry.sender,
            content.len(),
            &recipients,
            Outcome::Queued,
            error,
        );
        entry.recipients = recipients;
        entry.last_error = Some(error.message.clone());
        record_narrowed(queue, entry, delivered)?;
        messages::said(format_args!(
            "queue: deferred {}: {}",
            entry.id, error.message
        ));
        flushed.deferred = Some(error.clone());
        for (refused_recipients, refusal) in &refused {
            let path = queue.add_failed(
                &entry.sender,
                refused_recipients,
                &entry.dsn,
                &entry.settings,
                content,
                &refusal.message,
            )?;
            messages::said(format_args!(
                "queue: failed {} for {}: {}; kept in {}",
                entry.id,
                listed(refused_recipients),
                refusal.message,
                path.display()
            ));
        }
    } else if let Some((_, first)) = refused.first() {
        for (recipients, error) in &refused[1..] {
            messages::said(format_args!(
                "queue: {} refused for {}: {}",
                entry.id,
                listed(recipients),
                error.message
            ));
        }
        entry.recipients = refused
            .iter()
            .flat_map(|(r, _)| r.iter().cloned())
            .collect();
        entry.last_error = Some(first.message.clone());
        match queue.fail(entry) {
            Ok(path) => messages::said(format_args!(
                "queue: failed {}: {}; kept in {}",
                entry.id,
                first,
                path.display()
            )),
            // failed/ cannot take it: it stays queued for the refused
            // recipients alone, and the next flush tries the move again.
            Err(err) if delivered => {
                record_narrowed(queue, entry, delivered)?;
                messages::said(format_args!(
                    "queue: failed {}: {}; not moved to failed/ ({}), kept in the queue for {} alone",
                    entry.id,
                    first,
                    err.message,
                    listed(&entry.recipients)
                ));
            }
            Err(err) => return Err(err),
        }
    } else {
        flushed.sent = true;
    }
    flushed.refused = refused.first().map(|(_, error)| (*error).clone());
    Ok(flushed)
}

/// Writes down an entry's narrowed recipients. After a delivery a plain
/// failure to do so (a full disk) would make the next flush send again to
/// those who have the message, so the description is then overwritten in
/// place, in the blocks it already has.
fn record_narrowed(queue: &Queue, entry: &Entry, delivered: bool) -> Result<()> {
    match queue.save(entry) {
        Err(err) if delivered => queue.save_in_place(entry).map_err(|_| Error {
            message: format!(
                "{}; the recipients that got the message are still listed in {}, so the next flush would send to them again",
                err.message, entry.id
            ),
            hint: Some(format!(
                "free space in the queue, then check `postie queue show {}` before the next flush",
                entry.id
            )),
            ..err
        }),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::report::Delivery;

    fn envelope(recipients: &[&str]) -> Envelope {
        Envelope {
            sender: "s@x".into(),
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
            ..Envelope::default()
        }
    }

    fn report(recipients: &[&str], refused: &[(&str, bool)]) -> SessionReport {
        SessionReport {
            server: "mx:25 (127.0.0.1:25)".into(),
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
            delivery: Some(Delivery {
                reply: (refused.len() < recipients.len()).then(|| "250 ok".to_string()),
                refused: refused
                    .iter()
                    .map(|(r, temporary)| Refusal {
                        recipient: r.to_string(),
                        reply: if *temporary { "451 later" } else { "550 no" }.into(),
                        temporary: *temporary,
                    })
                    .collect(),
            }),
            ..SessionReport::default()
        }
    }

    #[test]
    fn the_first_digit_decides_owed_or_refused() {
        let temp = Error::new(Exit::TempFail, "451");
        let lost = Error::new(Exit::IoErr, "lost");
        let perm = Error::new(Exit::Unavailable, "554");
        let protocol = Error::new(Exit::Protocol, "not SMTP");
        assert!(matches!(fate_of(temp), Fate::Owed(_)));
        assert!(matches!(fate_of(lost), Fate::Owed(_)));
        assert!(matches!(fate_of(perm), Fate::Refused(_)));
        assert!(matches!(fate_of(protocol), Fate::Refused(_)));
    }

    #[test]
    fn a_failed_local_setup_is_owed_and_keeps_its_code_when_not_queued() {
        let unusable =
            Error::config("the password command printed nothing").cause(Cause::LocalSetup);
        let verdict = Verdict::failed(&["a@x".to_string()], unusable);
        assert!(verdict.owed().is_some());
        assert_eq!(status(&verdict, true), None);
        assert_eq!(status(&verdict, false).map(|e| e.exit), Some(Exit::Config));
        // Without the cause a 78 is the message's end.
        assert!(matches!(fate_of(Error::config("bad")), Fate::Refused(_)));
    }

    #[test]
    fn partial_greylisting_owes_only_the_greylisted() {
        let env = envelope(&["a@x", "b@x"]);
        let verdict = Verdict::of(&env, Ok(vec![report(&["a@x", "b@x"], &[("b@x", true)])]));
        assert_eq!(verdict.delivered().count(), 1);
        let (owed, error) = verdict.owed().unwrap();
        assert_eq!(owed, ["b@x"]);
        assert!(error.message.contains("451 later"), "{error}");
        // Queued: nothing left to report.
        assert_eq!(status(&verdict, true), None);
        // Not queued: 75, naming who is still owed.
        let err = status(&verdict, false).unwrap();
        assert_eq!(err.exit, Exit::TempFail);
        assert!(err.message.contains("<b@x>"), "{err}");
    }

    #[test]
    fn a_refusal_decides_the_code_even_when_others_are_queued() {
        let env = envelope(&["a@x", "b@x", "c@x"]);
        let verdict = Verdict::of(
            &env,
            Ok(vec![report(
                &["a@x", "b@x", "c@x"],
                &[("b@x", true), ("c@x", false)],
            )]),
        );
        let err = status(&verdict, true).unwrap();
        assert_eq!(err.exit, Exit::NoUser);
        assert!(
            err.message
                .starts_with("sent to 1 of 3 recipients; 1 queued; 1 refused (first: <c@x>)"),
            "{err}"
        );
    }

    #[test]
    fn partial_with_every_recipient_refused_settles_each() {
        let env = envelope(&["a@x", "b@x"]);
        let verdict = Verdict::of(
            &env,
            Ok(vec![report(
                &["a@x", "b@x"],
                &[("a@x", false), ("b@x", true)],
            )]),
        );
        assert_eq!(verdict.delivered().count(), 0);
        assert_eq!(verdict.owed().unwrap().0, ["b@x"]);
        assert_eq!(verdict.refused().count(), 1);
    }

    #[test]
    fn mx_domains_are_settled_apart() {
        let env = envelope(&["a@good", "b@bad", "c@later"]);
        let failed = |recipient: &str, error: Error| SessionReport {
            recipients: vec![recipient.to_string()],
            failure: Some(error),
            ..SessionReport::default()
        };
        let verdict = Verdict::of(
            &env,
            Ok(vec![
                report(&["a@good"], &[]),
                failed("b@bad", Error::new(Exit::NoUser, "bad: null MX")),
                failed("c@later", Error::new(Exit::TempFail, "later: 451")),
            ]),
        );
        assert_eq!(verdict.owed().unwrap().0, ["c@later"]);
        let err = status(&verdict, true).unwrap();
        assert_eq!(err.exit, Exit::NoUser);
    }

    #[test]
    fn one_failure_for_all_is_that_failure() {
        let env = envelope(&["a@x"]);
        let error = Error::new(Exit::TempFail, "connection lost").hint("later");
        let verdict = Verdict::of(&env, Err(error.clone()));
        assert_eq!(status(&verdict, false), Some(error));
        assert_eq!(status(&verdict, true), None);
        let refused = Error::new(Exit::Unavailable, "554 no");
        let verdict = Verdict::of(&env, Err(refused.clone()));
        assert_eq!(status(&verdict, true), Some(refused));
    }

    #[test]
    fn a_probe_that_stopped_early_is_no_failure() {
        let env = envelope(&["a@x"]);
        let probe = SessionReport {
            recipients: vec!["a@x".into()],
            stopped_after: Some("rcpt".into()),
            ..SessionReport::default()
        };
        let verdict = Verdict::of(&env, Ok(vec![probe]));
        assert_eq!(status(&verdict, false), None);
    }

    #[test]
    fn the_result_names_each_recipient_in_envelope_order() {
        let env = envelope(&["a@x", "b@x", "c@x"]);
        let verdict = Verdict::of(
            &env,
            Ok(vec![report(
                &["a@x", "b@x", "c@x"],
                &[("b@x", true), ("c@x", false)],
            )]),
        );
        let message = Outgoing {
            label: "the message".into(),
            envelope: env,
            content: Content::from_bytes(b"Message-ID: <m@x>\n\nhi\n".to_vec()),
        };
        let queued = result(&message, &verdict, Some("q1"));
        assert_eq!(queued.message_id.as_deref(), Some("<m@x>"));
        assert_eq!(queued.sessions[0].tls, TlsUsed::None);
        let outcomes: Vec<_> = queued.recipients.iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            [
                RecipientOutcome::Delivered,
                RecipientOutcome::Queued,
                RecipientOutcome::Refused
            ]
        );
        assert_eq!(queued.recipients[0].reply.as_deref(), Some("250 ok"));
        assert_eq!(queued.recipients[1].queue_id.as_deref(), Some("q1"));
        assert_eq!(queued.recipients[2].reply.as_deref(), Some("550 no"));
        assert_eq!(queued.recipients[2].queue_id, None);
        // Not queued: owed, with no queue ID.
        let owed = result(&message, &verdict, None);
        assert_eq!(owed.recipients[1].outcome, RecipientOutcome::Owed);
        assert_eq!(owed.recipients[1].queue_id, None);
    }
}
