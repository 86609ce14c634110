//! The durable queue: messages kept after a temporary failure, sent later
//! by `postie queue flush` (from cron or a systemd timer).
//!
//! Each entry is two files named by its id: `ID.eml`, the message exactly as
//! it would have gone on the wire, and `ID.json`, its envelope, the settings
//! to send it with, and its delivery history. Both are written to `tmp/`,
//! fsynced and renamed into place, the message first: an entry exists only
//! once its `.json` does, so a crash or a full disk never leaves half an
//! entry that would be sent. A flush takes a lock per entry, so two flushes
//! never send one entry twice, and removes it only after the server's final
//! 250. Entries that fail permanently or grow too old move to `failed/`.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::exit::{io_reason, Error, Exit, Result};
use crate::mail::content::Content;
use crate::output::messages;
use crate::permissions;
use crate::plan::stored::{self, QueuedSettings, Submission};
use crate::smtp::outgoing::Outgoing;
use crate::types::Dsn;

/// One queued message's description (the `.json` file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "StoredEntry", try_from = "StoredEntry")]
pub(crate) struct Entry {
    pub(crate) id: String,
    /// Seconds since the epoch.
    pub(crate) created: u64,
    pub(crate) sender: String,
    pub(crate) recipients: Vec<String>,
    /// The DSN request (RET and ENVID, NOTIFY and ORCPT per recipient).
    pub(crate) dsn: Dsn,
    /// How to send it; replayed through the normal precedence.
    pub(crate) settings: QueuedSettings,
    pub(crate) size: u64,
    pub(crate) attempts: u32,
    pub(crate) last_attempt: Option<u64>,
    pub(crate) last_error: Option<String>,
    /// A message kept in failed/ before it could be planned: what its
    /// sendmail command line said, to plan it again on `queue retry`. Its
    /// `sender` and `recipients` are then only as typed.
    pub(crate) unplanned: Option<Unplanned>,
}

/// How a message that was never planned came in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Unplanned {
    pub(crate) submission: Submission,
    /// From the maildrop: the submitter's uid, from `fstat`, never from
    /// the drop's content. Planned again with the system config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) maildrop_uid: Option<u32>,
}

/// The `.json` as written: [`Entry`] with the version of its settings
/// record. Version 0 (no `version` key) held the settings as `args`.
#[derive(Clone, Serialize, Deserialize)]
struct StoredEntry {
    #[serde(default)]
    version: u32,
    id: String,
    created: u64,
    sender: String,
    recipients: Vec<String>,
    /// Absent in entries written before postie passed DSN requests on.
    #[serde(default, skip_serializing_if = "Dsn::is_empty")]
    dsn: Dsn,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    settings: Option<QueuedSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args: Option<Vec<String>>,
    size: u64,
    attempts: u32,
    last_attempt: Option<u64>,
    last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unplanned: Option<Unplanned>,
}

impl From<Entry> for StoredEntry {
    fn from(entry: Entry) -> StoredEntry {
        StoredEntry {
            version: stored::VERSION,
            id: entry.id,
            created: entry.created,
            sender: entry.sender,
            // Only the recipients still listed: a narrowed entry forgets
            // those who have the message.
            dsn: entry.dsn.only_for(&entry.recipients),
            recipients: entry.recipients,
            settings: Some(entry.settings),
            args: None,
            size: entry.size,
            attempts: entry.attempts,
            last_attempt: entry.last_attempt,
            last_error: entry.last_error,
            unplanned: entry.unplanned,
        }
    }
}

impl TryFrom<StoredEntry> for Entry {
    type Error = String;

    fn try_from(stored: StoredEntry) -> std::result::Result<Entry, String> {
        let settings = match stored.version {
            0 => QueuedSettings::from_v0_args(stored.args.as_deref().unwrap_or_default())?,
            stored::VERSION => stored.settings.unwrap_or_default(),
            newer => {
                return Err(format!(
                    "its settings are version {newer}, written by a newer postie (this one reads up to {})",
                    stored::VERSION
                ))
            }
        };
        Ok(Entry {
            id: stored.id,
            created: stored.created,
            sender: stored.sender,
            recipients: stored.recipients,
            dsn: stored.dsn,
            settings,
            size: stored.size,
            attempts: stored.attempts,
            last_attempt: stored.last_attempt,
            last_error: stored.last_error,
            unplanned: stored.unplanned,
        })
    }
}

/// A `.json` that is no usable entry, with why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Damaged {
    pub(crate) id: String,
    pub(crate) reason: String,
}

/// What reading one `.json` found.
#[derive(Debug)]
pub(crate) enum Found {
    Entry(Box<Entry>),
    Damaged(Damaged),
    /// Removed or moved since it was listed (by a concurrent flush): no
    /// news, and nothing to warn about.
    Gone,
}

impl Entry {
    pub(crate) fn age(&self, now: u64) -> Duration {
        Duration::from_secs(now.saturating_sub(self.created))
    }

    /// Exponential backoff: 5 minutes after the first failure, doubling,
    /// at most 4 hours.
    pub(crate) fn next_attempt(&self) -> u64 {
        let Some(last) = self.last_attempt else {
            return 0;
        };
        let exponent = self.attempts.saturating_sub(1).min(6);
        let delay = (300u64 << exponent).min(4 * 3600);
        last + delay
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The default queue directory: /var/spool/postie for root (whose cron
/// mails most), else $XDG_STATE_HOME/postie/queue.
pub(crate) fn default_dir() -> Option<PathBuf> {
    if crate::home::is_root() {
        return Some(PathBuf::from("/var/spool/postie"));
    }
    crate::home::state_dir().map(|d| d.join("postie").join("queue"))
}

/// A queue directory.
#[derive(Debug, Clone)]
pub(crate) struct Queue {
    dir: PathBuf,
}

/// Held while an entry is being sent; dropping it (closing its file)
/// releases the lock.
#[derive(Debug)]
pub(crate) struct EntryLock {
    _file: File,
}

/// Removes sent entries on worker threads while the flush goes on with
/// the next ones. An entry's lock goes with it to the worker and is let go
/// only once its files are gone, so that another flush never takes up an
/// entry half removed. Where the filesystem discards freed blocks at once
/// (ext4 mounted with `discard`, as on the development machine) removing a
/// sent entry's two files takes twice as long as sending it; several
/// removals at once end sooner than one after another (issue 16).
pub(crate) struct Remover {
    queue: Queue,
    jobs: Option<mpsc::SyncSender<(String, EntryLock)>>,
    workers: Vec<thread::JoinHandle<Vec<(String, Error)>>>,
}

/// Workers of a [`Remover`]: four removed 1,000 discarded files in two
/// thirds of the time one took; more gained little.
const REMOVERS: usize = 4;

/// Sent entries waiting for a worker, at most; [`Remover::remove`] waits
/// when there are more. Removing is slower than sending where it is worth
/// doing at all, so without a bound the sent entries still in the queue
/// pile up with the size of the flush: a flush killed near its end (^C, a
/// stop timeout, the OOM killer) would leave hundreds behind for the next
/// one to send again, and every one holds an open file (its lock) until
/// it is gone. One batch's worth still lets one batch be removed while
/// the next is sent.
const REMOVAL_BACKLOG: usize = 100;

impl Remover {
    pub(crate) fn start(queue: &Queue) -> Remover {
        let (jobs, inbox) = mpsc::sync_channel::<(String, EntryLock)>(REMOVAL_BACKLOG);
        let inbox = Arc::new(Mutex::new(inbox));
        let workers = (0..REMOVERS)
            .filter_map(|n| {
                let (queue, inbox) = (queue.clone(), Arc::clone(&inbox));
                thread::Builder::new()
                    .name(format!("queue-remover-{n}"))
                    .spawn(move || {
                        let mut failed = Vec::new();
                        loop {
                            let job = inbox.lock().unwrap_or_else(|e| e.into_inner()).recv();
                            let Ok((id, lock)) = job else {
                                return failed;
                            };
                            let removed = queue.remove(&id);
                            drop(lock);
                            if let Err(err) = removed {
                                failed.push((id, err));
                            }
                        }
                    })
                    .ok()
            })
            .collect::<Vec<_>>();
        Remover {
            queue: queue.clone(),
            // Without a worker, removal is done in place, as it comes.
            jobs: (!workers.is_empty()).then_some(jobs),
            workers,
        }
    }

    /// Removes entry `id`, then lets go of its lock: on a worker, or here
    /// when none could be started (an error then comes back at once).
    pub(crate) fn remove(&self, id: &str, lock: EntryLock) -> Result<()> {
        match &self.jobs {
            Some(jobs) => match jobs.send((id.to_string(), lock)) {
                Ok(()) => Ok(()),
                Err(mpsc::SendError((id, lock))) => {
                    let removed = self.queue.remove(&id);
                    drop(lock);
                    removed
                }
            },
            None => {
                let removed = self.queue.remove(id);
                drop(lock);
                removed
            }
        }
    }

    /// Waits until every entry handed over is removed; the ones that could
    /// not be, with why.
    pub(crate) fn finish(mut self) -> Vec<(String, Error)> {
        self.wait()
    }

    fn wait(&mut self) -> Vec<(String, Error)> {
        drop(self.jobs.take());
        self.workers
            .drain(..)
            .flat_map(|worker| worker.join().unwrap_or_default())
            .collect()
    }
}

/// A flush that ends early (an error of the whole run) still waits for
/// the removals it handed over: the process must not end with a sent
/// entry still in the queue, which the next flush would send again.
impl Drop for Remover {
    fn drop(&mut self) {
        for (id, err) in self.wait() {
            messages::said(format_args!("queue: {id} stays as it was: {err}"));
        }
    }
}

/// The file in `tmp/` whose bytes are the entries' locks: entry ID is
/// locked as the byte at [`lock_offset`]`(ID)`, with an open file
/// description lock (`F_OFD_SETLK`). That lock is the holder's open file's,
/// so it is exclusive between two opens in one process too, and goes when
/// the file is closed, or its process dies. One file for every entry: a
/// lock file per entry cost a create and an unlink for each message
/// sent, most of a flush's time on some filesystems (issue 16).
pub(crate) const LOCKS_FILE: &str = "locks";

/// Where entry `id`'s lock byte is: the top bits of the id's FNV-1a hash,
/// two fewer than `off_t` has (62 on 64-bit systems, 30 where `off_t` is
/// 32 bits), so that the offset and the byte after it are positive
/// offsets, and two ids share a byte (one then waits for the other's
/// flush) with a chance too small to matter.
pub(crate) fn lock_offset(id: &str) -> libc::off_t {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let bits = 8 * std::mem::size_of::<libc::off_t>() as u32 - 2;
    (hash >> (64 - bits)) as libc::off_t
}

fn queue_error(what: &str, path: &Path, err: &std::io::Error) -> Error {
    Error::new(
        Exit::IoErr,
        format!(
            "queue: cannot {what} {}: {}",
            path.display(),
            io_reason(err)
        ),
    )
}

impl Queue {
    /// Opens (and creates, private to the user) the queue directory.
    pub(crate) fn open(dir: &Path) -> Result<Queue> {
        // Root's default queue is the spool that also holds the maildrop:
        // made here first at 0700, it would shut every user out of it.
        if !dir.exists() && dir == crate::queue::system::spool_dir() && crate::home::is_root() {
            crate::queue::system::init()?;
        }
        for sub in [dir.to_path_buf(), dir.join("tmp"), dir.join("failed")] {
            create_private_dir(&sub).map_err(|err| queue_error("create", &sub, &err))?;
        }
        // Checked each time, not only when created: the directory may be
        // older than postie, or someone may have opened it up since. The
        // queue directory may be a link to where it lives (as a configured
        // path may be); if someone swaps it for a link, the directory it
        // names is checked all the same. Its parent is not checked: a
        // directory put in its place by another user is theirs and refused.
        // tmp/ and failed/ must be directories of their own, never links.
        let meta = fs::metadata(dir).map_err(|err| queue_error("open", dir, &err))?;
        permissions::check_private_dir(&meta, dir, "queue: the queue directory")?;
        for sub in [dir.join("tmp"), dir.join("failed")] {
            let meta = fs::symlink_metadata(&sub).map_err(|err| queue_error("open", &sub, &err))?;
            permissions::check_private_dir(&meta, &sub, "queue: the directory")?;
        }
        Ok(Queue {
            dir: dir.to_path_buf(),
        })
    }

    fn locks_path(&self) -> PathBuf {
        self.dir.join("tmp").join(LOCKS_FILE)
    }

    fn meta_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn message_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.eml"))
    }

    fn failed_path(&self, id: &str, extension: &str) -> PathBuf {
        self.dir.join("failed").join(format!("{id}.{extension}"))
    }

    /// Stores a planned message, untried, to be sent with `settings`.
    pub(crate) fn add_outgoing(
        &self,
        outgoing: &Outgoing,
        settings: &QueuedSettings,
    ) -> Result<Entry> {
        self.add(
            &outgoing.envelope.sender,
            &outgoing.envelope.recipients,
            &outgoing.envelope.dsn,
            settings,
            &outgoing.content,
            None,
        )
    }

    /// Stores a message; returns its entry. The message file is durable
    /// before the entry that points at it exists. `failed_try` is the
    /// error of the attempt just made, when there was one: the entry then
    /// starts with that attempt counted and waits out its backoff.
    pub(crate) fn add(
        &self,
        sender: &str,
        recipients: &[String],
        dsn: &Dsn,
        settings: &QueuedSettings,
        message: &Content,
        failed_try: Option<&str>,
    ) -> Result<Entry> {
        let created = now();
        let entry = Entry {
            id: new_id(),
            created,
            sender: sender.to_string(),
            recipients: recipients.to_vec(),
            dsn: dsn.only_for(recipients),
            settings: settings.clone(),
            size: message.len(),
            attempts: u32::from(failed_try.is_some()),
            last_attempt: failed_try.map(|_| created),
            last_error: failed_try.map(str::to_string),
            unplanned: None,
        };
        self.write_atomic(&self.message_path(&entry.id), |file| message.write_to(file))?;
        self.save(&entry)?;
        Ok(entry)
    }

    /// Stores a message straight into `failed/`, with why: for recipients
    /// refused for good. Never in the queue proper, where a flush could
    /// send it. Returns the message's path.
    pub(crate) fn add_failed(
        &self,
        sender: &str,
        recipients: &[String],
        dsn: &Dsn,
        settings: &QueuedSettings,
        message: &Content,
        reason: &str,
    ) -> Result<PathBuf> {
        self.store_failed(
            Entry {
                id: new_id(),
                created: now(),
                sender: sender.to_string(),
                recipients: recipients.to_vec(),
                dsn: dsn.only_for(recipients),
                settings: settings.clone(),
                size: message.len(),
                attempts: 0,
                last_attempt: None,
                last_error: Some(reason.to_string()),
                unplanned: None,
            },
            |file| message.write_to(file).map(|()| message.len()),
        )
    }

    /// Stores a message that could not even be planned (sendmail mode, the
    /// maildrop: its sender reads no exit status) in `failed/`, with what
    /// its command line said, so that `queue retry` can plan it again.
    /// `write` copies the message into the file from wherever it is (a
    /// spooled one is never read into memory for it) and returns its size.
    pub(crate) fn add_unplanned(
        &self,
        unplanned: Unplanned,
        settings: &QueuedSettings,
        reason: &str,
        write: impl FnOnce(&mut File) -> std::io::Result<u64>,
    ) -> Result<PathBuf> {
        self.store_failed(
            Entry {
                id: new_id(),
                created: now(),
                sender: unplanned.submission.from.clone().unwrap_or_default(),
                recipients: unplanned.submission.recipients.clone(),
                // The submission holds -N, -R and -V, for when it is planned.
                dsn: Dsn::default(),
                settings: settings.clone(),
                size: 0,
                attempts: 0,
                last_attempt: None,
                last_error: Some(reason.to_string()),
                unplanned: Some(unplanned),
            },
            write,
        )
    }

    fn store_failed(
        &self,
        mut entry: Entry,
        write: impl FnOnce(&mut File) -> std::io::Result<u64>,
    ) -> Result<PathBuf> {
        let message_path = self.failed_path(&entry.id, "eml");
        let mut size = 0;
        self.write_atomic(&message_path, |file| {
            size = write(file)?;
            Ok(())
        })?;
        entry.size = size;
        self.save_failed(&entry)?;
        Ok(message_path)
    }

    /// Rewrites a failed entry's description (a retry that failed again).
    pub(crate) fn save_failed(&self, entry: &Entry) -> Result<()> {
        let json = encode(entry)?;
        let meta = self.failed_path(&entry.id, "json");
        self.write_atomic(&meta, |file| file.write_all(&json))
    }

    /// A failed entry that was never planned, with its message, to plan it
    /// again; `None` for an ordinary one, which `retry` moves back as is.
    pub(crate) fn unplanned(&self, id: &str) -> Result<Option<(Entry, Unplanned, Vec<u8>)>> {
        check_id(id)?;
        let Found::Entry(entry) = read_description(&self.failed_path(id, "json"), id) else {
            return Ok(None);
        };
        let Some(unplanned) = entry.unplanned.clone() else {
            return Ok(None);
        };
        let path = self.failed_path(id, "eml");
        let message = read_file(&path).map_err(|err| queue_error("read", &path, &err))?;
        Ok(Some((*entry, unplanned, message)))
    }

    /// Removes a failed entry whose message has been queued again.
    pub(crate) fn forget_failed(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let meta = self.failed_path(id, "json");
        fs::remove_file(&meta).map_err(|err| queue_error("remove", &meta, &err))?;
        let _ = fs::remove_file(self.failed_path(id, "eml"));
        Ok(())
    }

    /// Writes an entry's description atomically (also after each attempt).
    pub(crate) fn save(&self, entry: &Entry) -> Result<()> {
        let json = encode(entry)?;
        self.write_atomic(&self.meta_path(&entry.id), |file| file.write_all(&json))
    }

    /// Overwrites an entry's description where it lies, padded to its old
    /// length, for when the atomic write finds no space (a full disk):
    /// the blocks are already there. Only for narrowing an entry after a
    /// delivery, where the alternative is sending again to those who have
    /// it. A crash midway leaves a description that does not parse, which
    /// the flush moves to failed/: never a resend either.
    pub(crate) fn save_in_place(&self, entry: &Entry) -> Result<()> {
        let path = self.meta_path(&entry.id);
        let old_len = fs::metadata(&path)
            .map_err(|err| queue_error("read", &path, &err))?
            .len() as usize;
        let mut json = encode(entry)?;
        if json.len() > old_len {
            let mut shorter = entry.clone();
            shorter.last_error = None;
            json = encode(&shorter)?;
        }
        if json.len() > old_len {
            return Err(Error::new(
                Exit::IoErr,
                format!("queue: no room to record {}'s new state", entry.id),
            ));
        }
        // JSON allows trailing white space: the file keeps its length.
        json.resize(old_len, b' ');
        let write = || -> std::io::Result<()> {
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)?;
            file.write_all(&json)?;
            file.sync_all()
        };
        write().map_err(|err| queue_error("write", &path, &err))
    }

    fn write_atomic(
        &self,
        path: &Path,
        contents: impl FnOnce(&mut File) -> std::io::Result<()>,
    ) -> Result<()> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = self
            .dir
            .join("tmp")
            .join(format!("{name}.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = match private_file(&temp) {
                // A name left by a crashed run with our pid, or planted:
                // removed (unlink never follows a link), never written through.
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    fs::remove_file(&temp)?;
                    private_file(&temp)?
                }
                other => other?,
            };
            contents(&mut file)?;
            file.sync_all()?;
            fs::rename(&temp, path)?;
            // The rename itself must reach the disk too.
            File::open(path.parent().unwrap_or(&self.dir))?.sync_all()
        };
        write().map_err(|err| {
            let _ = fs::remove_file(&temp);
            queue_error("write", path, &err)
        })
    }

    /// Every entry, oldest first, and the descriptions that are no usable
    /// entry (flush moves those to `failed/`).
    pub(crate) fn list(&self) -> Result<Vec<std::result::Result<Entry, Damaged>>> {
        self.scan(&self.dir)
    }

    /// What `failed/` holds, oldest first.
    pub(crate) fn list_failed(&self) -> Result<Vec<std::result::Result<Entry, Damaged>>> {
        let failed = self.dir.join("failed");
        let mut listed = self.scan(&failed)?;
        // A damaged description kept there has its reason next to it.
        for item in &mut listed {
            if let Err(damaged) = item {
                if let Ok(reason) = read_file(&self.failed_path(&damaged.id, "reason")) {
                    damaged.reason = String::from_utf8_lossy(&reason).trim_end().to_string();
                }
            }
        }
        Ok(listed)
    }

    fn scan(&self, dir: &Path) -> Result<Vec<std::result::Result<Entry, Damaged>>> {
        let reader = fs::read_dir(dir).map_err(|err| queue_error("read", dir, &err))?;
        let mut listed = Vec::new();
        for item in reader.flatten() {
            let path = item.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            // Not a name postie gives: not an entry, and not to be touched.
            let Some(id) = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|id| check_id(id).is_ok())
            else {
                continue;
            };
            match read_owned(&path, &id) {
                Ok(Found::Entry(entry)) => listed.push(Ok(*entry)),
                Ok(Found::Damaged(damaged)) => listed.push(Err(damaged)),
                Ok(Found::Gone) => {}
                // Not ours, so not written by postie running as us: its
                // settings (a password_cmd) are nobody's to act on, and
                // moving it to failed/ would make it look like ours.
                Err(owner) => messages::warning(format_args!(
                    "queue: skipping {}: owned by userid {owner}, not {}; remove it if nobody can say who put it there",
                    path.display(),
                    crate::home::effective_uid()
                )),
            }
        }
        listed.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
        Ok(listed)
    }

    /// Reads one entry's description again (under its lock, say).
    pub(crate) fn read(&self, id: &str) -> Result<Found> {
        check_id(id)?;
        Ok(read_description(&self.meta_path(id), id))
    }

    pub(crate) fn get(&self, id: &str) -> Result<Entry> {
        match self.read(id)? {
            Found::Entry(entry) => Ok(*entry),
            Found::Damaged(damaged) => Err(Error::data(format!(
                "queue: entry {id} is damaged: {}",
                damaged.reason
            ))
            .hint("`postie queue flush` moves it to failed/")),
            Found::Gone => Err(Error::new(
                Exit::NoInput,
                format!("queue: no entry {id} in {}", self.dir.display()),
            )
            .hint("see `postie queue list`")),
        }
    }

    pub(crate) fn message(&self, id: &str) -> Result<Vec<u8>> {
        check_id(id)?;
        let path = self.message_path(id);
        read_file(&path).map_err(|err| queue_error("read", &path, &err))
    }

    /// The message, checked against the size its entry recorded: a
    /// missing or cut message is the entry's fault (it moves to
    /// `failed/`), and must never be sent as it is.
    pub(crate) fn checked_message(&self, entry: &Entry) -> std::result::Result<Vec<u8>, String> {
        let path = self.message_path(&entry.id);
        let bytes = read_file(&path).map_err(|err| {
            format!(
                "its message {} cannot be read: {}",
                path.display(),
                io_reason(&err)
            )
        })?;
        if (bytes.len() as u64) < entry.size {
            return Err(format!(
                "its message {} is {} bytes, shorter than the {} recorded",
                path.display(),
                bytes.len(),
                entry.size
            ));
        }
        Ok(bytes)
    }

    /// Tries to lock an entry for sending; `None` when another process
    /// (another flush) holds it.
    pub(crate) fn lock(&self, id: &str) -> Result<Option<EntryLock>> {
        use std::os::unix::io::AsRawFd;
        check_id(id)?;
        let path = self.locks_path();
        let open = || {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .mode(0o600)
                .open(&path)
        };
        // Shared between flushes, so not O_EXCL; but postie never makes
        // it a link: a link there was planted, and goes.
        let file = match open() {
            Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
                fs::remove_file(&path).and_then(|()| open())
            }
            other => other,
        }
        .map_err(|err| queue_error("lock", &path, &err))?;
        // SAFETY: a zeroed flock is a valid value of the C struct; the
        // fields that matter are set below.
        let mut byte: libc::flock = unsafe { std::mem::zeroed() };
        byte.l_type = libc::F_WRLCK as libc::c_short;
        byte.l_whence = libc::SEEK_SET as libc::c_short;
        byte.l_start = lock_offset(id);
        byte.l_len = 1;
        // SAFETY: the descriptor is open for as long as `file` lives, and
        // `byte` is a valid flock the call only reads.
        let locked = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &byte) };
        if locked == 0 {
            return Ok(Some(EntryLock { _file: file }));
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(None),
            _ => Err(queue_error("lock", &path, &err)),
        }
    }

    /// Removes an entry: the description first, so that a crash in between
    /// leaves an orphan message, never an entry without its message.
    pub(crate) fn remove(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let meta = self.meta_path(id);
        fs::remove_file(&meta).map_err(|err| queue_error("remove", &meta, &err))?;
        let _ = fs::remove_file(self.message_path(id));
        Ok(())
    }

    /// Moves an entry to `failed/`, where flush no longer sees it. Its
    /// `last_error` says why. A message file that is already gone is no
    /// reason to keep the entry in the queue.
    pub(crate) fn fail(&self, entry: &Entry) -> Result<PathBuf> {
        let message_target = self.failed_path(&entry.id, "eml");
        let meta_target = self.failed_path(&entry.id, "json");
        match fs::rename(self.message_path(&entry.id), &message_target) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(queue_error("move", &message_target, &err))
            }
            _ => {}
        }
        // Written whole or not at all, like every description.
        let json = encode(entry)?;
        self.write_atomic(&meta_target, |file| file.write_all(&json))?;
        let _ = fs::remove_file(self.meta_path(&entry.id));
        Ok(meta_target)
    }

    /// Moves a description that cannot be read as an entry to `failed/`
    /// as it is (it is the evidence), with the reason in `ID.reason`.
    pub(crate) fn fail_damaged(&self, damaged: &Damaged) -> Result<PathBuf> {
        let id = &damaged.id;
        check_id(id)?;
        let reason_path = self.failed_path(id, "reason");
        let reason = format!("{}\n", damaged.reason);
        self.write_atomic(&reason_path, |file| file.write_all(reason.as_bytes()))?;
        let message_target = self.failed_path(id, "eml");
        match fs::rename(self.message_path(id), &message_target) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(queue_error("move", &message_target, &err))
            }
            _ => {}
        }
        let meta_target = self.failed_path(id, "json");
        fs::rename(self.meta_path(id), &meta_target)
            .map_err(|err| queue_error("move", &meta_target, &err))?;
        Ok(meta_target)
    }

    /// Moves an entry from `failed/` back into the queue as if it were
    /// new: attempts reset and its age restarted, so that neither the
    /// backoff nor `queue_max_age` sends it straight back.
    pub(crate) fn retry(&self, id: &str) -> Result<Entry> {
        check_id(id)?;
        let meta = self.failed_path(id, "json");
        let mut entry = match read_description(&meta, id) {
            Found::Entry(entry) => *entry,
            Found::Gone => {
                return Err(Error::new(
                    Exit::NoInput,
                    format!(
                        "queue: no entry {id} in {}",
                        self.dir.join("failed").display()
                    ),
                )
                .hint("see `postie queue list --failed`"))
            }
            Found::Damaged(damaged) => {
                return Err(Error::data(format!(
                    "queue: failed entry {id} is damaged ({}), so it cannot be retried",
                    damaged.reason
                ))
                .hint(format!(
                    "read {} and send the message again",
                    meta.display()
                )))
            }
        };
        let message = self.failed_path(id, "eml");
        if fs::symlink_metadata(&message).is_err() {
            return Err(Error::new(
                Exit::NoInput,
                format!(
                    "queue: failed entry {id} has no message {}",
                    message.display()
                ),
            )
            .hint(format!(
                "nothing is left to send; remove {}",
                meta.display()
            )));
        }
        entry.attempts = 0;
        entry.last_attempt = None;
        entry.created = now();
        fs::rename(&message, self.message_path(id))
            .map_err(|err| queue_error("move", &message, &err))?;
        self.save(&entry)?;
        let _ = fs::remove_file(&meta);
        let _ = fs::remove_file(self.failed_path(id, "reason"));
        Ok(entry)
    }
}

fn encode(entry: &Entry) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(entry)
        .map_err(|err| Error::new(Exit::Software, format!("queue: cannot encode entry: {err}")))
}

/// An entry's description; one owned by another user is [`Found::Gone`]
/// (listing it warned).
fn read_description(path: &Path, id: &str) -> Found {
    read_owned(path, id).unwrap_or(Found::Gone)
}

/// An entry's description, or the owner of one that is not the effective
/// user's.
fn read_owned(path: &Path, id: &str) -> std::result::Result<Found, u32> {
    let damaged = |reason: String| {
        Found::Damaged(Damaged {
            id: id.to_string(),
            reason,
        })
    };
    let opened = open_read(path).and_then(|file| Ok((file.metadata()?, file)));
    let read = match opened {
        Ok((meta, _)) if meta.uid() != crate::home::effective_uid() => return Err(meta.uid()),
        Ok((meta, _)) if !meta.is_file() => {
            return Ok(damaged(format!(
                "its description {} is not a regular file",
                path.display()
            )))
        }
        Ok((meta, mut file)) => read_whole(&mut file, meta.len()),
        Err(err) => Err(err),
    };
    Ok(match read {
        Ok(bytes) => match serde_json::from_slice::<Entry>(&bytes) {
            Ok(entry) if entry.id == id => Found::Entry(Box::new(entry)),
            Ok(entry) => damaged(format!("its description names another entry, {}", entry.id)),
            Err(err) => damaged(format!(
                "its description {} does not parse: {err}",
                path.display()
            )),
        },
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Found::Gone,
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => damaged(format!(
            "its description {} is a symbolic link, which postie never follows",
            path.display()
        )),
        Err(err) => damaged(format!(
            "its description {} cannot be read: {}",
            path.display(),
            io_reason(&err)
        )),
    })
}

/// Every queue file is opened without following a link (one planted in
/// the queue would make root read or write the file it names) and without
/// blocking on a FIFO.
fn open_read(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = open_read(path)?;
    let size = file.metadata()?.len();
    read_whole(&mut file, size)
}

/// Reads the rest of `file`, `size` bytes as far as its metadata knew.
/// `File::read_to_end` asks the size and the position again itself (a
/// statx and an lseek): two more system calls for every queue file a
/// flush reads, where reading 1,000 entries costs more than sending them.
fn read_whole(file: &mut File, size: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0).saturating_add(1));
    Read::take(file, u64::MAX).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Oldest first; damaged descriptions (no time known) by id, which starts
/// with the creation time.
fn sort_key(item: &std::result::Result<Entry, Damaged>) -> (u64, &str) {
    match item {
        Ok(entry) => (entry.created, &entry.id),
        Err(damaged) => (0, &damaged.id),
    }
}

/// Ids are generated here; anything else given to `queue show/drop` must
/// not reach outside the queue directory.
fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(Error::usage(format!("queue: {id:?} is not a queue id")));
    }
    Ok(())
}

/// Sortable and unique: time, process id and a counter. Unique among
/// every user's maildrop files too (one process has one pid).
pub(crate) fn new_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:x}-{:x}-{}",
        nanos,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(unix)]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
    {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(not(unix))]
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    fs::create_dir_all(path)
}

/// Mail is private: queue files are readable by their owner only. Always
/// a new file (O_EXCL, which also never follows a link at the name).
fn private_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> (tempfile::TempDir, Queue) {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(&dir.path().join("q")).unwrap();
        (dir, queue)
    }

    #[test]
    fn add_list_get_remove() {
        let (_dir, queue) = queue();
        let entry = queue
            .add(
                "a@example.com",
                &["b@example.com".into()],
                &Dsn::default(),
                &QueuedSettings {
                    server: Some("x".into()),
                    ..QueuedSettings::default()
                },
                &Content::from_bytes(b"Subject: x\r\n\r\nbody".to_vec()),
                None,
            )
            .unwrap();
        assert_eq!(queue.list().unwrap(), vec![Ok(entry.clone())]);
        assert_eq!(queue.get(&entry.id).unwrap(), entry);
        assert_eq!(queue.message(&entry.id).unwrap(), b"Subject: x\r\n\r\nbody");
        queue.remove(&entry.id).unwrap();
        assert!(queue.list().unwrap().is_empty());
        assert_eq!(queue.get(&entry.id).unwrap_err().exit, Exit::NoInput);
    }

    #[test]
    fn a_message_without_description_is_no_entry() {
        let (_dir, queue) = queue();
        fs::write(queue.dir.join("orphan.eml"), b"x").unwrap();
        assert!(queue.list().unwrap().is_empty());
    }

    #[test]
    fn the_remover_removes_each_entry_before_letting_go_of_its_lock() {
        let (_dir, queue) = queue();
        let add = || {
            queue
                .add(
                    "a@x.example",
                    &["b@x.example".to_string()],
                    &Dsn::default(),
                    &QueuedSettings::default(),
                    &Content::from_bytes(b"m".to_vec()),
                    None,
                )
                .unwrap()
        };
        let entries: Vec<Entry> = (0..20).map(|_| add()).collect();
        let remover = Remover::start(&queue);
        for entry in &entries {
            let lock = queue.lock(&entry.id).unwrap().unwrap();
            remover.remove(&entry.id, lock).unwrap();
        }
        // An entry whose description is already gone cannot be removed:
        // said, not lost in a thread.
        let gone = add();
        fs::remove_file(queue.meta_path(&gone.id)).unwrap();
        let lock = queue.lock(&gone.id).unwrap().unwrap();
        remover.remove(&gone.id, lock).unwrap();
        let failed = remover.finish();
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, gone.id);
        assert!(queue.list().unwrap().is_empty());
        for entry in &entries {
            assert!(!queue.message_path(&entry.id).exists());
            // Let go: another flush could take it (and would find it gone).
            assert!(queue.lock(&entry.id).unwrap().is_some());
        }
    }

    #[test]
    fn lock_offsets_are_positive_with_room_for_their_byte() {
        let ids = [
            "",
            "a",
            "18ed6a65263b324f-706b-0",
            "ffffffffffffffff-ffff-99",
        ];
        for id in ids {
            let offset = lock_offset(id);
            assert!(
                (0..libc::off_t::MAX / 2).contains(&offset),
                "{id}: {offset}"
            );
        }
        assert_ne!(lock_offset("1-2-3"), lock_offset("1-2-4"));
    }

    #[test]
    fn locks_are_exclusive() {
        let (_dir, queue) = queue();
        let entry = queue
            .add(
                "a@x.example",
                &[],
                &Dsn::default(),
                &QueuedSettings::default(),
                &Content::from_bytes(b"m".to_vec()),
                None,
            )
            .unwrap();
        let held = queue.lock(&entry.id).unwrap();
        assert!(held.is_some());
        assert!(queue.lock(&entry.id).unwrap().is_none());
        drop(held);
        assert!(queue.lock(&entry.id).unwrap().is_some());
    }

    #[test]
    fn failed_entries_leave_the_queue() {
        let (_dir, queue) = queue();
        let entry = queue
            .add(
                "a@x.example",
                &[],
                &Dsn::default(),
                &QueuedSettings::default(),
                &Content::from_bytes(b"m".to_vec()),
                None,
            )
            .unwrap();
        let moved = queue.fail(&entry).unwrap();
        assert!(moved.exists());
        assert!(queue.list().unwrap().is_empty());
    }

    fn message() -> Content {
        Content::from_bytes(b"Subject: x\r\n\r\nbody".to_vec())
    }

    #[test]
    fn an_entry_queued_after_a_failed_try_counts_it() {
        let (_dir, queue) = queue();
        let entry = queue
            .add(
                "a@x.example",
                &[],
                &Dsn::default(),
                &QueuedSettings::default(),
                &message(),
                Some("451 try later"),
            )
            .unwrap();
        assert_eq!(entry.attempts, 1);
        assert_eq!(entry.last_attempt, Some(entry.created));
        assert_eq!(entry.last_error.as_deref(), Some("451 try later"));
        assert!(
            entry.next_attempt() > entry.created,
            "it waits out its backoff"
        );
    }

    #[test]
    fn version_0_entries_are_read_and_converted_on_save() {
        let (_dir, queue) = queue();
        fs::write(queue.message_path("1-2-3"), b"m").unwrap();
        fs::write(
            queue.meta_path("1-2-3"),
            r#"{"id":"1-2-3","created":5,"sender":"a@x.example","recipients":["b@x.example"],
                "args":["--server=mx.example","--tls=implicit","--partial"],"size":1,
                "attempts":2,"last_attempt":6,"last_error":"451"}"#,
        )
        .unwrap();
        let entry = queue.get("1-2-3").unwrap();
        assert_eq!(entry.settings.server.as_deref(), Some("mx.example"));
        assert_eq!(entry.settings.tls, Some(crate::types::TlsMode::Implicit));
        assert!(entry.settings.partial);
        queue.save(&entry).unwrap();
        let saved: serde_json::Value =
            serde_json::from_slice(&fs::read(queue.meta_path("1-2-3")).unwrap()).unwrap();
        assert_eq!(saved["version"], stored::VERSION);
        assert_eq!(saved["settings"]["server"], "mx.example");
        assert!(saved.get("args").is_none(), "{saved}");
        assert_eq!(queue.get("1-2-3").unwrap(), entry);
    }

    #[test]
    fn a_newer_or_unparsable_record_is_damaged_not_fatal() {
        let (_dir, queue) = queue();
        fs::write(
            queue.meta_path("1-1-1"),
            r#"{"version":99,"id":"1-1-1","created":5,"sender":"","recipients":[],"size":1,
                "attempts":0,"last_attempt":null,"last_error":null}"#,
        )
        .unwrap();
        fs::write(queue.meta_path("1-1-2"), b"{not json").unwrap();
        let listed = queue.list().unwrap();
        assert_eq!(listed.len(), 2);
        let reasons: Vec<String> = listed.into_iter().map(|l| l.unwrap_err().reason).collect();
        assert!(reasons[0].contains("newer postie"), "{reasons:?}");
        assert!(reasons[1].contains("does not parse"), "{reasons:?}");
        let moved = queue
            .fail_damaged(&Damaged {
                id: "1-1-2".into(),
                reason: "it does not parse".into(),
            })
            .unwrap();
        assert_eq!(fs::read(moved).unwrap(), b"{not json");
        let failed = queue.list_failed().unwrap();
        assert_eq!(failed[0].as_ref().unwrap_err().reason, "it does not parse");
        assert_eq!(queue.retry("1-1-2").unwrap_err().exit, Exit::DataErr);
    }

    #[test]
    fn retry_brings_a_failed_entry_back_as_new() {
        let (_dir, queue) = queue();
        let mut entry = queue
            .add(
                "a@x.example",
                &[],
                &Dsn::default(),
                &QueuedSettings::default(),
                &message(),
                Some("550"),
            )
            .unwrap();
        entry.created = 1;
        queue.fail(&entry).unwrap();
        assert!(queue.list().unwrap().is_empty());
        assert_eq!(queue.list_failed().unwrap().len(), 1);
        let back = queue.retry(&entry.id).unwrap();
        assert_eq!((back.attempts, back.last_attempt), (0, None));
        assert!(back.created > 1);
        assert_eq!(queue.list().unwrap(), vec![Ok(back.clone())]);
        assert_eq!(queue.message(&back.id).unwrap(), b"Subject: x\r\n\r\nbody");
        assert!(queue.list_failed().unwrap().is_empty());
        assert_eq!(queue.retry(&entry.id).unwrap_err().exit, Exit::NoInput);
    }

    #[test]
    fn a_short_or_missing_message_is_caught_before_sending() {
        let (_dir, queue) = queue();
        let entry = queue
            .add(
                "a@x.example",
                &[],
                &Dsn::default(),
                &QueuedSettings::default(),
                &message(),
                None,
            )
            .unwrap();
        assert!(queue.checked_message(&entry).is_ok());
        fs::write(queue.message_path(&entry.id), b"Subj").unwrap();
        let reason = queue.checked_message(&entry).unwrap_err();
        assert!(reason.contains("4 bytes, shorter than the"), "{reason}");
        fs::remove_file(queue.message_path(&entry.id)).unwrap();
        assert!(queue.checked_message(&entry).is_err());
    }

    #[test]
    fn backoff_doubles_up_to_four_hours() {
        let mut entry = Entry {
            id: "x".into(),
            created: 0,
            sender: String::new(),
            recipients: vec![],
            dsn: Dsn::default(),
            settings: QueuedSettings::default(),
            size: 0,
            attempts: 0,
            last_attempt: None,
            last_error: None,
            unplanned: None,
        };
        assert_eq!(entry.next_attempt(), 0);
        entry.last_attempt = Some(1000);
        entry.attempts = 1;
        assert_eq!(entry.next_attempt(), 1300);
        entry.attempts = 2;
        assert_eq!(entry.next_attempt(), 1600);
        entry.attempts = 30;
        assert_eq!(entry.next_attempt(), 1000 + 4 * 3600);
    }

    #[test]
    fn a_link_at_the_temporary_name_is_removed_not_written_through() {
        let (dir, queue) = queue();
        let target = dir.path().join("precious");
        fs::write(&target, b"keep").unwrap();
        let meta = queue.meta_path("1-2-3");
        let temp = queue
            .dir
            .join("tmp")
            .join(format!("1-2-3.json.{}", std::process::id()));
        std::os::unix::fs::symlink(&target, &temp).unwrap();
        queue
            .write_atomic(&meta, |file| file.write_all(b"new"))
            .unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert!(!fs::symlink_metadata(&meta).unwrap().is_symlink());
        assert_eq!(fs::read(&meta).unwrap(), b"new");
    }

    #[test]
    fn a_queue_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, queue) = queue();
        for sub in [queue.dir.clone(), queue.dir.join("tmp")] {
            fs::set_permissions(&sub, fs::Permissions::from_mode(0o777)).unwrap();
            let err = Queue::open(&queue.dir).unwrap_err();
            assert_eq!(err.exit, Exit::Config, "{err}");
            assert!(err.to_string().contains("chmod go-w"), "{err}");
            fs::set_permissions(&sub, fs::Permissions::from_mode(0o700)).unwrap();
        }
        // The spool's mode: others may pass, not write.
        fs::set_permissions(&queue.dir, fs::Permissions::from_mode(0o711)).unwrap();
        assert!(Queue::open(&queue.dir).is_ok());
        drop(dir);
    }

    #[test]
    fn ids_cannot_escape_the_directory() {
        assert!(check_id("../etc/passwd").is_err());
        assert!(check_id("18eac-1a-0").is_ok());
    }
}
