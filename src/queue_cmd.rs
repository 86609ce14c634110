//! `postie queue list | flush | show | drop | retry | init`.
//!
//! flush is meant for cron or a systemd timer. It is quiet when it has
//! nothing to say (cron mails any output), prints one line per message it
//! defers or gives up on, and exits 0 when everything that was due got
//! sent (entries still in their backoff are not due), 75 when something it
//! tried was deferred, or the code of a permanent failure. One entry's
//! trouble (damaged files, a setup that fails, a state that cannot be
//! written) is reported and leaves the others to go on. Root's flush first
//! picks up the maildrop (see `maildrop`).

use std::io::Write;
use std::time::Duration;

use crate::cli::{QueueCli, QueueCommand};
use crate::config::ConfigFile;
use crate::content::Content;
use crate::exit::{Cause, Error, Exit, Result};
use crate::maildrop;
use crate::outcome::{self, Verdict};
use crate::queue::{self, parse_duration, Damaged, Entry, Found, Queue};
use crate::request;
use crate::transport::{self, Envelope, Route, Server};

const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 86_400);

pub fn run(cli: QueueCli) -> Result<()> {
    let config = ConfigFile::load(cli.config.as_deref())?;
    let dir = cli
        .queue_dir
        .clone()
        .or_else(|| config.queue_dir.clone())
        .or_else(queue::default_dir)
        .ok_or_else(|| {
            Error::config("no queue directory: set queue_dir in the config or --queue-dir")
        })?;
    if let QueueCommand::Init = cli.command {
        maildrop::init()?;
        Queue::open(&dir)?;
        return Ok(());
    }
    let queue = Queue::open(&dir)?;
    match cli.command {
        QueueCommand::Init => Ok(()),
        QueueCommand::List { json, failed } => list(&queue, json, failed),
        QueueCommand::Flush { now, verbose } => {
            let max_age = match &config.queue_max_age {
                Some(text) => parse_duration(text)?,
                None => DEFAULT_MAX_AGE,
            };
            // Users' drops first, so that this run sends them too.
            let picked = maildrop::pickup(&queue, verbose);
            match (flush(&queue, now, verbose, max_age), picked.first_error) {
                (Err(err), _) | (Ok(()), Some(err)) => Err(err),
                (Ok(()), None) => Ok(()),
            }
        }
        QueueCommand::Show { id } => show(&queue, &id),
        QueueCommand::Drop { id } => {
            let _lock = queue.lock(&id)?.ok_or_else(|| {
                Error::new(
                    Exit::TempFail,
                    format!("queue: {id} is being sent right now"),
                )
                .hint("try again when that flush is done")
            })?;
            // A damaged entry can be dropped too: that is one way to deal
            // with it.
            if let Found::Gone = queue.read(&id)? {
                queue.get(&id)?;
            }
            queue.remove(&id)
        }
        QueueCommand::Retry { id } => {
            let entry = queue.retry(&id)?;
            eprintln!(
                "postie: queue: {} is queued again for {}",
                entry.id,
                entry.recipients.join(", ")
            );
            Ok(())
        }
    }
}

fn age_text(entry: &Entry, now: u64) -> String {
    let secs = entry.age(now).as_secs();
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

fn list(queue: &Queue, json: bool, failed: bool) -> Result<()> {
    let listed = if failed {
        queue.list_failed()?
    } else {
        queue.list()?
    };
    let mut out = String::new();
    if json {
        let items = listed
            .iter()
            .map(|item| match item {
                Ok(entry) => serde_json::to_value(entry),
                Err(Damaged { id, reason }) => {
                    Ok(serde_json::json!({ "id": id, "damaged": reason }))
                }
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .and_then(|items| serde_json::to_string_pretty(&items))
            .map_err(|err| Error::new(Exit::Software, format!("cannot write JSON: {err}")))?;
        out = items;
        out.push('\n');
    } else {
        let now = queue::now();
        for item in &listed {
            let entry = match item {
                Ok(entry) => entry,
                Err(Damaged { id, reason }) => {
                    out.push_str(&format!("{id}  damaged: {reason}\n"));
                    continue;
                }
            };
            out.push_str(&format!(
                "{}  {:>4}  {} -> {}  attempts {}{}\n",
                entry.id,
                age_text(entry, now),
                entry.sender,
                entry.recipients.join(", "),
                entry.attempts,
                entry
                    .last_error
                    .as_ref()
                    .map(|e| format!("  last error: {e}"))
                    .unwrap_or_default()
            ));
        }
    }
    write_stdout(out.as_bytes())
}

fn show(queue: &Queue, id: &str) -> Result<()> {
    let entry = queue.get(id)?;
    let message = queue.message(id)?;
    let mut out = serde_json::to_string_pretty(&entry)
        .map_err(|err| Error::new(Exit::Software, format!("cannot write JSON: {err}")))?
        .into_bytes();
    out.extend_from_slice(b"\n\n");
    out.extend_from_slice(&message);
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|_| stdout.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::new(
            Exit::IoErr,
            format!(
                "cannot write to standard output: {}",
                crate::exit::io_reason(&err)
            ),
        )),
        _ => Ok(()),
    }
}

/// One line for an entry whose state could not be stored; the first
/// such error becomes the flush's (74 unless something worse happened).
fn unsaved(id: &str, err: Error, first: &mut Option<Error>) {
    let err = match err.hint {
        Some(_) => err,
        None => err.hint("the next flush tries it again once the queue can be written"),
    };
    eprintln!("postie: queue: {id} stays as it was: {err}");
    first.get_or_insert(err);
}

fn flush(queue: &Queue, ignore_backoff: bool, verbose: u8, max_age: Duration) -> Result<()> {
    let mut first_permanent: Option<Error> = None;
    // An entry whose new state could not be written (a full disk): it
    // stays as it was, and the flush goes on with the others.
    let mut first_unsaved: Option<Error> = None;
    // An entry that cannot be set up for sending (config, password
    // command): it stays queued, untried.
    let mut first_setup: Option<Error> = None;
    let mut deferred = 0;
    // Server lists that did not answer in this flush: the messages for
    // them wait for the next flush instead of each waiting out a
    // connection timeout now.
    let mut unanswered: Vec<Vec<Server>> = Vec::new();
    let mut skipped = 0;
    for listed in queue.list()? {
        let id = match &listed {
            Ok(entry) => entry.id.clone(),
            Err(damaged) => damaged.id.clone(),
        };
        let lock = match queue.lock(&id) {
            Ok(Some(lock)) => lock,
            Ok(None) => continue, // another flush is sending it
            Err(err) => {
                unsaved(&id, err, &mut first_unsaved);
                continue;
            }
        };
        // Re-read under the lock: the other flush may have sent it since.
        let mut entry = match queue.read(&id)? {
            Found::Entry(entry) => *entry,
            Found::Gone => {
                queue.release_gone(&id, lock);
                continue;
            }
            Found::Damaged(damaged) => {
                match queue.fail_damaged(&damaged) {
                    Ok(path) => {
                        eprintln!(
                            "postie: queue: failed {id}: {}; kept in {}",
                            damaged.reason,
                            path.display()
                        );
                        first_permanent.get_or_insert(
                            Error::data(format!("queue: {id} is damaged: {}", damaged.reason))
                                .hint("see `postie queue list --failed`"),
                        );
                    }
                    Err(err) => unsaved(&id, err, &mut first_unsaved),
                }
                continue;
            }
        };
        let now = queue::now();
        if entry.age(now) > max_age {
            let reason = entry
                .last_error
                .clone()
                .unwrap_or_else(|| "never tried".into());
            let path = match queue.fail(&entry) {
                Ok(path) => path,
                Err(err) => {
                    unsaved(&id, err, &mut first_unsaved);
                    continue;
                }
            };
            eprintln!(
                "postie: queue: gave up on {} after {} ({} attempts; last error: {reason}); kept in {}",
                entry.id,
                age_text(&entry, now),
                entry.attempts,
                path.display()
            );
            first_permanent.get_or_insert(Error::new(
                Exit::Unavailable,
                format!("queue: {} expired", entry.id),
            ));
            continue;
        }
        // Not due yet: nothing happens to it in this run, so it is no news
        // (cron mails any output) and no failure of this flush.
        if !ignore_backoff && entry.next_attempt() > now {
            continue;
        }
        let content = match queue.checked_message(&entry) {
            Ok(bytes) => Content::from_bytes(bytes),
            Err(reason) => {
                entry.last_error = Some(reason.clone());
                match queue.fail(&entry) {
                    Ok(path) => {
                        eprintln!(
                            "postie: queue: failed {id}: {reason}; kept in {}",
                            path.display()
                        );
                        first_permanent.get_or_insert(
                            Error::data(format!("queue: {id} is damaged: {reason}"))
                                .hint("see `postie queue list --failed`"),
                        );
                    }
                    Err(err) => unsaved(&id, err, &mut first_unsaved),
                }
                continue;
            }
        };
        let envelope = Envelope {
            sender: entry.sender.clone(),
            recipients: entry.recipients.clone(),
        };
        // A setup that fails here (config, password command) is this
        // machine's problem, not the message's: the entry stays as it is,
        // untried, and the others (other accounts, other configs) go on.
        let (mut settings, logger) = match request::replay_settings(&entry.settings, &envelope) {
            Ok(replayed) => replayed,
            Err(err) => {
                let err = Error {
                    message: format!("queue: cannot send {}: {}", entry.id, err.message),
                    ..err
                };
                // The first is the flush's error line; the others get theirs.
                if first_setup.is_some() {
                    eprintln!("postie: error: {err}");
                }
                first_setup.get_or_insert(err);
                continue;
            }
        };
        settings.verbosity = verbose.saturating_sub(1);
        let server_key = match &settings.route {
            Route::Servers(servers) => Some(servers.clone()),
            // Each domain has exchangers of its own.
            Route::Mx { .. } => None,
        };
        if server_key
            .as_ref()
            .is_some_and(|key| unanswered.contains(key))
        {
            skipped += 1;
            deferred += 1;
            continue;
        }
        // What the attempt means for the entry; a failure to write that
        // down is this entry's, not the run's.
        let attempt = transport::submit(&settings, &envelope, &content);
        let unreachable = matches!(&attempt, Err(err) if err.cause == Cause::Unreachable);
        entry.attempts += 1;
        entry.last_attempt = Some(queue::now());
        let verdict = Verdict::of(&envelope, attempt);
        match outcome::settle_entry(queue, &mut entry, &content, &verdict, &logger) {
            Ok(flushed) => {
                let sent_to_all = flushed.deferred.is_none() && flushed.refused.is_none();
                if flushed.deferred.is_some() {
                    deferred += 1;
                    if let (true, Some(key)) = (unreachable, server_key) {
                        unanswered.push(key);
                    }
                }
                if let Some(err) = flushed.refused {
                    first_permanent.get_or_insert(err);
                }
                if verbose > 0 && sent_to_all {
                    eprintln!(
                        "postie: queue: sent {} to {}",
                        entry.id,
                        envelope.recipients.join(", ")
                    );
                }
            }
            Err(err) => unsaved(&id, err, &mut first_unsaved),
        }
        drop(lock);
    }
    if skipped > 0 {
        eprintln!(
            "postie: queue: {skipped} more message(s) not tried: their server did not answer for an earlier one"
        );
    }
    if let Some(err) = first_setup.or(first_permanent).or(first_unsaved) {
        return Err(err);
    }
    if deferred > 0 {
        return Err(Error::new(
            Exit::TempFail,
            format!("queue: {deferred} message(s) still waiting"),
        )
        .hint("they are retried by the next `postie queue flush`"));
    }
    Ok(())
}
