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

use std::time::Duration;

use crate::cli::args::{QueueCli, QueueCommand};
use crate::config::file::ConfigFile;
use crate::exit::{Cause, Error, Exit, Result};
use crate::mail::content::Content;
use crate::outcome::{self, Verdict};
use crate::output::{messages, stdout};
use crate::plan::precedence::queue_dir;
use crate::plan::replay;
use crate::plan::stored::QueuedSettings;
use crate::queue::storage::{self, Damaged, Entry, Found, Queue, Remover};
use crate::queue::{maildrop, system};
use crate::smtp::outgoing::Outgoing;
use crate::smtp::route;
use crate::smtp::settings::{Route, Server};
use crate::types::parse_duration;
use crate::types::Envelope;

const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 86_400);

pub(crate) fn run(cli: QueueCli) -> Result<()> {
    // The spool first, whatever the config says: postie-mta's postinst
    // runs `queue init`, and a typo in root's config must not make every
    // upgrade of the package fail. The config's queue directory is set up
    // too when the config can be read.
    if let QueueCommand::Init = cli.command {
        system::init()?;
        return match ConfigFile::load(cli.config.as_deref()) {
            Ok(config) => match queue_dir(cli.queue_dir.as_deref(), Some(&config)) {
                Some(dir) => Queue::open(&dir).map(|_| ()),
                None => Ok(()),
            },
            Err(err) => {
                messages::warning(format_args!(
                    "queue init: the spool is set up; the config's queue directory is not: {err}"
                ));
                Ok(())
            }
        };
    }
    let config = ConfigFile::load(cli.config.as_deref())?;
    let dir = queue_dir(cli.queue_dir.as_deref(), Some(&config)).ok_or_else(|| {
        Error::config("no queue directory: set queue_dir in the config or --queue-dir")
    })?;
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
        QueueCommand::Retry { id } => retry(&queue, &id),
    }
}

/// Back from failed/: an ordinary entry as it is, with its attempts
/// reset; one kept before it could be planned is planned now, with
/// today's config, and queued as the message(s) that gives.
fn retry(queue: &Queue, id: &str) -> Result<()> {
    let Some((mut entry, unplanned, message)) = queue.unplanned(id)? else {
        let entry = queue.retry(id)?;
        messages::said(format_args!(
            "queue: {} is queued again for {}",
            entry.id,
            entry.recipients.join(", ")
        ));
        return Ok(());
    };
    let planned: Result<Vec<(Outgoing, QueuedSettings)>> = match unplanned.maildrop_uid {
        Some(uid) => maildrop::plan(&unplanned.submission, &message, uid)
            .map(|list| list.into_iter().map(|(o, s, _)| (o, s)).collect()),
        None => replay::replan(&unplanned.submission, &entry.settings, &message).map(|plan| {
            let settings = plan.queue.settings.clone();
            plan.messages
                .into_iter()
                .map(|o| (o, settings.clone()))
                .collect()
        }),
    };
    let planned = match planned {
        Ok(planned) => planned,
        Err(err) => {
            // Still not plannable: it stays in failed/, with today's reason.
            entry.last_error = Some(err.message.clone());
            queue.save_failed(&entry)?;
            return Err(Error {
                message: format!("queue: {id} still cannot be sent: {}", err.message),
                ..err
            }
            .hint("it stays in failed/; fix the cause, then retry it again"));
        }
    };
    for (outgoing, settings) in &planned {
        let queued = queue.add_outgoing(outgoing, settings)?;
        messages::said(format_args!(
            "queue: {id} is queued again as {} for {}",
            queued.id,
            outgoing.envelope.recipients.join(", ")
        ));
    }
    queue.forget_failed(id)
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
        let now = storage::now();
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
                    // The server's words: shown escaped, never as
                    // terminal controls.
                    .map(|e| format!("  last error: {}", crate::smtp::reply::escape(e.as_bytes())))
                    .unwrap_or_default()
            ));
        }
    }
    stdout::write(out.as_bytes())
}

fn show(queue: &Queue, id: &str) -> Result<()> {
    let entry = queue.get(id)?;
    let message = queue.message(id)?;
    let mut out = serde_json::to_string_pretty(&entry)
        .map_err(|err| Error::new(Exit::Software, format!("cannot write JSON: {err}")))?
        .into_bytes();
    out.extend_from_slice(b"\n\n");
    out.extend_from_slice(&message);
    stdout::write(&out)
}

/// One line for an entry whose state could not be stored; the first
/// such error becomes the flush's (74 unless something worse happened).
fn unsaved(id: &str, err: Error, first: &mut Option<Error>) {
    let err = match err.hint {
        Some(_) => err,
        None => err.hint("the next flush tries it again once the queue can be written"),
    };
    messages::said(format_args!("queue: {id} stays as it was: {err}"));
    first.get_or_insert(err);
}

/// What one flush run has to say at its end.
#[derive(Default)]
struct Tally {
    first_permanent: Option<Error>,
    /// An entry whose new state could not be written (a full disk): it
    /// stays as it was, and the flush goes on with the others.
    first_unsaved: Option<Error>,
    /// An entry that cannot be set up for sending (config, password
    /// command): it stays queued, untried.
    first_setup: Option<Error>,
    deferred: usize,
    /// Server lists that did not answer in this flush: the messages for
    /// them wait for the next flush instead of each waiting out a
    /// connection timeout now.
    unanswered: Vec<Vec<Server>>,
    skipped: usize,
}

impl Tally {
    fn unsaved(&mut self, id: &str, err: Error) {
        unsaved(id, err, &mut self.first_unsaved);
    }

    fn result(self) -> Result<()> {
        if self.skipped > 0 {
            messages::said(format_args!(
                "queue: {} more message(s) not tried: their server did not answer for an earlier one",
                self.skipped
            ));
        }
        if let Some(err) = self
            .first_setup
            .or(self.first_permanent)
            .or(self.first_unsaved)
        {
            return Err(err);
        }
        if self.deferred > 0 {
            return Err(Error::new(
                Exit::TempFail,
                format!("queue: {} message(s) still waiting", self.deferred),
            )
            .hint("they are retried by the next `postie queue flush`"));
        }
        Ok(())
    }
}

/// At most this many entries, or this many bytes of messages, go over
/// one session: each holds a lock and its message in memory meanwhile.
const BATCH_ENTRIES: usize = 100;
const BATCH_BYTES: u64 = 64 * 1024 * 1024;

/// The queue's entries in batches that may share one SMTP session: the
/// same stored settings and the same sender (which picks the account)
/// give the same server, TLS and login. Order within a batch is the
/// queue's (oldest first); a damaged entry is a batch of its own.
fn batches(listed: Vec<std::result::Result<Entry, Damaged>>) -> Vec<Vec<String>> {
    /// Entries that can share a session; `None` for a damaged one.
    type Key = Option<(QueuedSettings, String)>;
    struct Batch {
        key: Key,
        bytes: u64,
        ids: Vec<String>,
    }
    let mut batches: Vec<Batch> = Vec::new();
    for item in listed {
        let (key, size, id) = match item {
            Ok(entry) => (
                Some((entry.settings.clone(), entry.sender.clone())),
                entry.size,
                entry.id,
            ),
            Err(damaged) => (None, 0, damaged.id),
        };
        let open = batches.iter_mut().rev().find(|batch| {
            key.is_some()
                && batch.key == key
                && batch.ids.len() < BATCH_ENTRIES
                && batch.bytes.saturating_add(size) <= BATCH_BYTES
        });
        match open {
            Some(batch) => {
                batch.bytes += size;
                batch.ids.push(id);
            }
            None => batches.push(Batch {
                key,
                bytes: size,
                ids: vec![id],
            }),
        }
    }
    batches.into_iter().map(|batch| batch.ids).collect()
}

/// An entry that is due, locked, with its message read and checked.
struct Due {
    entry: Entry,
    content: Content,
    lock: storage::EntryLock,
}

fn flush(queue: &Queue, ignore_backoff: bool, verbose: u8, max_age: Duration) -> Result<()> {
    let mut tally = Tally::default();
    let remover = Remover::start(queue);
    for ids in batches(queue.list()?) {
        let due: Vec<Due> = ids
            .iter()
            .filter_map(|id| triage(queue, id, ignore_backoff, max_age, &mut tally).transpose())
            .collect::<Result<_>>()?;
        if !due.is_empty() {
            send_batch(queue, due, verbose, &remover, &mut tally);
        }
    }
    for (id, err) in remover.finish() {
        tally.unsaved(&id, err);
    }
    tally.result()
}

/// Moves an entry that can never be sent to failed/ with a log line,
/// saying so; `error` (with a pointer to `queue list --failed`) becomes
/// this flush's exit status unless an earlier one did.
fn fail_entry(queue: &Queue, mut entry: Entry, reason: &str, error: Error, tally: &mut Tally) {
    entry.last_error = Some(reason.to_string());
    let log = replay::replay_logger(&entry.settings, &entry.sender);
    match outcome::give_up(queue, &entry, reason, &log) {
        Ok(path) => {
            messages::said(format_args!(
                "queue: failed {}: {reason}; kept in {}",
                entry.id,
                path.display()
            ));
            tally
                .first_permanent
                .get_or_insert(error.hint("see `postie queue list --failed`"));
        }
        Err(err) => tally.unsaved(&entry.id, err),
    }
}

/// Locks and re-reads an entry; what is damaged or too old moves to
/// failed/ here. `Some` when it is due to be sent now.
fn triage(
    queue: &Queue,
    id: &str,
    ignore_backoff: bool,
    max_age: Duration,
    tally: &mut Tally,
) -> Result<Option<Due>> {
    let lock = match queue.lock(id) {
        Ok(Some(lock)) => lock,
        Ok(None) => return Ok(None), // another flush is sending it
        Err(err) => {
            tally.unsaved(id, err);
            return Ok(None);
        }
    };
    // Re-read under the lock: the other flush may have sent it since.
    let entry = match queue.read(id)? {
        Found::Entry(entry) => *entry,
        // Sent (or dropped) by another flush since it was listed: the
        // lock goes with `lock`.
        Found::Gone => return Ok(None),
        Found::Damaged(damaged) => {
            match queue.fail_damaged(&damaged) {
                Ok(path) => {
                    messages::said(format_args!(
                        "queue: failed {id}: {}; kept in {}",
                        damaged.reason,
                        path.display()
                    ));
                    tally.first_permanent.get_or_insert(
                        Error::data(format!("queue: {id} is damaged: {}", damaged.reason))
                            .hint("see `postie queue list --failed`"),
                    );
                }
                Err(err) => tally.unsaved(id, err),
            }
            return Ok(None);
        }
    };
    // Never "delivered" to nobody: an entry with no recipient (or one that
    // was never planned, which belongs in failed/) cannot be sent.
    if entry.recipients.is_empty() || entry.unplanned.is_some() {
        let reason = "it names no recipient to send to (see `postie queue retry`)";
        let error = Error::data(format!("queue: {id} has no recipient"));
        fail_entry(queue, entry, reason, error, tally);
        return Ok(None);
    }
    let now = storage::now();
    if entry.age(now) > max_age {
        let reason = entry
            .last_error
            .clone()
            .unwrap_or_else(|| "never tried".into());
        let log = replay::replay_logger(&entry.settings, &entry.sender);
        let given_up = format!("gave up after {}: {reason}", age_text(&entry, now));
        let path = match outcome::give_up(queue, &entry, &given_up, &log) {
            Ok(path) => path,
            Err(err) => {
                tally.unsaved(id, err);
                return Ok(None);
            }
        };
        messages::said(format_args!(
            "queue: gave up on {} after {} ({} attempts; last error: {reason}); kept in {}",
            entry.id,
            age_text(&entry, now),
            entry.attempts,
            path.display()
        ));
        tally.first_permanent.get_or_insert(Error::new(
            Exit::Unavailable,
            format!("queue: {} expired", entry.id),
        ));
        return Ok(None);
    }
    // Not due yet: nothing happens to it in this run, so it is no news
    // (cron mails any output) and no failure of this flush.
    if !ignore_backoff && entry.next_attempt() > now {
        return Ok(None);
    }
    match queue.checked_message(&entry) {
        Ok(bytes) => Ok(Some(Due {
            entry,
            content: Content::from_bytes(bytes),
            lock,
        })),
        Err(reason) => {
            let error = Error::data(format!("queue: {id} is damaged: {reason}"));
            fail_entry(queue, entry, &reason, error, tally);
            Ok(None)
        }
    }
}

/// Sends due entries that share their settings over one session (as
/// repeated --message does), then settles each through `outcome`.
fn send_batch(queue: &Queue, due: Vec<Due>, verbose: u8, remover: &Remover, tally: &mut Tally) {
    let first = &due[0].entry;
    let envelope = Envelope {
        sender: first.sender.clone(),
        recipients: first.recipients.clone(),
        dsn: first.dsn.clone(),
    };
    // A setup that fails here (config, password command) is this
    // machine's problem, not the messages': the entries stay as they are,
    // untried, and the others (other accounts, other configs) go on.
    let (mut settings, logger) = match replay::replay_settings(&first.settings, &envelope) {
        Ok(replayed) => replayed,
        Err(err) => {
            for entry in due.iter().map(|d| &d.entry) {
                let err = Error {
                    message: format!("queue: cannot send {}: {}", entry.id, err.message),
                    ..err.clone()
                };
                // The first is the flush's error line; the others get theirs.
                if tally.first_setup.is_some() {
                    messages::error(&err);
                }
                tally.first_setup.get_or_insert(err);
            }
            return;
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
        .is_some_and(|key| tally.unanswered.contains(key))
    {
        tally.skipped += due.len();
        tally.deferred += due.len();
        return;
    }
    let outgoing: Vec<Outgoing> = due
        .iter()
        .map(|d| Outgoing {
            label: d.entry.id.clone(),
            envelope: Envelope {
                sender: d.entry.sender.clone(),
                recipients: d.entry.recipients.clone(),
                dsn: d.entry.dsn.only_for(&d.entry.recipients),
            },
            content: d.content.clone(),
        })
        .collect();
    let attempts = route::submit_all(&settings, &outgoing, &|text| messages::warning(text));
    let mut unreachable = false;
    for ((attempt, message), due) in attempts.into_iter().zip(&outgoing).zip(due) {
        let Due {
            mut entry,
            content,
            lock,
        } = due;
        let no_answer = matches!(&attempt, Err(err) if err.cause == Cause::Unreachable);
        if no_answer && unreachable {
            // The server did not answer for an earlier message of this
            // batch: this one was not tried, and stays as it was.
            tally.skipped += 1;
            tally.deferred += 1;
            continue;
        }
        unreachable |= no_answer;
        entry.attempts += 1;
        entry.last_attempt = Some(storage::now());
        let verdict = Verdict::of(&message.envelope, attempt);
        // A failure to write down what the attempt means is this entry's,
        // not the run's.
        match outcome::settle_entry(queue, &mut entry, &content, &verdict, &logger) {
            Ok(flushed) => {
                if flushed.deferred.is_some() {
                    tally.deferred += 1;
                }
                if let Some(err) = flushed.refused {
                    tally.first_permanent.get_or_insert(err);
                }
                if flushed.sent {
                    if let Err(err) = remover.remove(&entry.id, lock) {
                        tally.unsaved(&entry.id, err);
                    } else if verbose > 0 {
                        messages::said(format_args!(
                            "queue: sent {} to {}",
                            entry.id,
                            message.envelope.recipients.join(", ")
                        ));
                    }
                }
            }
            Err(err) => tally.unsaved(&entry.id, err),
        }
    }
    if let (true, Some(key)) = (unreachable, server_key) {
        tally.unanswered.push(key);
    }
}
