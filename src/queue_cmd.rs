//! `postie queue list | flush | show | drop`.
//!
//! flush is meant for cron or a systemd timer. It is quiet when it has
//! nothing to say (cron mails any output), prints one line per message it
//! defers or gives up on, and exits 0 when everything that was due got
//! sent (entries still in their backoff are not due), 75 when something it
//! tried was deferred, or the code of a permanent failure.

use std::io::Write;
use std::time::Duration;

use crate::cli::{QueueCli, QueueCommand};
use crate::config::ConfigFile;
use crate::content::Content;
use crate::exit::{Cause, Error, Exit, Result};
use crate::outcome::{self, Verdict};
use crate::queue::{self, parse_duration, Entry, Queue};
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
    let queue = Queue::open(&dir)?;
    match cli.command {
        QueueCommand::List { json } => list(&queue, json),
        QueueCommand::Flush { now, verbose } => {
            let max_age = match &config.queue_max_age {
                Some(text) => parse_duration(text)?,
                None => DEFAULT_MAX_AGE,
            };
            flush(&queue, now, verbose, max_age)
        }
        QueueCommand::Show { id } => show(&queue, &id),
        QueueCommand::Drop { id } => {
            let _lock = queue.lock(&id)?.ok_or_else(|| {
                Error::new(
                    Exit::TempFail,
                    format!("queue: {id} is being sent right now"),
                )
            })?;
            queue.get(&id)?;
            queue.remove(&id)
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

fn list(queue: &Queue, json: bool) -> Result<()> {
    let entries = queue.list()?;
    let mut out = String::new();
    if json {
        out = serde_json::to_string_pretty(&entries)
            .map_err(|err| Error::new(Exit::Software, format!("cannot write JSON: {err}")))?;
        out.push('\n');
    } else {
        let now = queue::now();
        for entry in &entries {
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

fn flush(queue: &Queue, ignore_backoff: bool, verbose: u8, max_age: Duration) -> Result<()> {
    let mut first_permanent: Option<Error> = None;
    let mut deferred = 0;
    // Server lists that did not answer in this flush: the messages for
    // them wait for the next flush instead of each waiting out a
    // connection timeout now.
    let mut unanswered: Vec<Vec<Server>> = Vec::new();
    let mut skipped = 0;
    for listed in queue.list()? {
        let Some(_lock) = queue.lock(&listed.id)? else {
            continue; // another flush is sending it
        };
        // Re-read under the lock: the other flush may have sent it since.
        let Ok(mut entry) = queue.get(&listed.id) else {
            continue;
        };
        let now = queue::now();
        if entry.age(now) > max_age {
            let reason = entry
                .last_error
                .clone()
                .unwrap_or_else(|| "never tried".into());
            let path = queue.fail(&entry)?;
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
        let content = Content::from_bytes(queue.message(&entry.id)?);
        let envelope = Envelope {
            sender: entry.sender.clone(),
            recipients: entry.recipients.clone(),
        };
        // A setup that fails here (config, password command) is this
        // machine's problem, not the message's: the entry stays as it is.
        let (mut settings, logger) =
            request::replay_settings(&entry.args, &envelope).map_err(|err| Error {
                message: format!("queue: cannot send {}: {}", entry.id, err.message),
                ..err
            })?;
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
        let attempt = transport::submit(&settings, &envelope, &content);
        let unreachable = matches!(&attempt, Err(err) if err.cause == Cause::Unreachable);
        entry.attempts += 1;
        entry.last_attempt = Some(queue::now());
        let verdict = Verdict::of(&envelope, attempt);
        let flushed = outcome::settle_entry(queue, &mut entry, &content, &verdict, &logger)?;
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
    if skipped > 0 {
        eprintln!(
            "postie: queue: {skipped} more message(s) not tried: their server did not answer for an earlier one"
        );
    }
    if let Some(err) = first_permanent {
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
