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
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::content::Content;
use crate::exit::{io_reason, Error, Exit, Result};

/// When queueing happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueuePolicy {
    /// Never: a failure is an exit code.
    Never,
    /// After a temporary failure (exit 75 or a connection lost mid-session).
    OnTempfail,
    /// Always: queue without trying; `postie queue flush` sends.
    Always,
}

/// One queued message's description (the `.json` file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    /// Seconds since the epoch.
    pub created: u64,
    pub sender: String,
    pub recipients: Vec<String>,
    /// The command-line settings to send it with (never a password: those
    /// never are arguments); replayed through the normal precedence.
    pub args: Vec<String>,
    pub size: u64,
    pub attempts: u32,
    pub last_attempt: Option<u64>,
    pub last_error: Option<String>,
}

impl Entry {
    pub fn age(&self, now: u64) -> Duration {
        Duration::from_secs(now.saturating_sub(self.created))
    }

    /// Exponential backoff: 5 minutes after the first failure, doubling,
    /// at most 4 hours.
    pub fn next_attempt(&self) -> u64 {
        let Some(last) = self.last_attempt else {
            return 0;
        };
        let exponent = self.attempts.saturating_sub(1).min(6);
        let delay = (300u64 << exponent).min(4 * 3600);
        last + delay
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The default queue directory: /var/spool/postie for root (whose cron
/// mails most), else $XDG_STATE_HOME/postie/queue.
pub fn default_dir() -> Option<PathBuf> {
    if crate::home::is_root() {
        return Some(PathBuf::from("/var/spool/postie"));
    }
    crate::home::state_dir().map(|d| d.join("postie").join("queue"))
}

/// A queue directory.
#[derive(Debug, Clone)]
pub struct Queue {
    dir: PathBuf,
}

/// Held while an entry is being sent; dropping it releases the lock.
#[derive(Debug)]
pub struct EntryLock {
    _file: File,
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
    pub fn open(dir: &Path) -> Result<Queue> {
        for sub in [dir.to_path_buf(), dir.join("tmp"), dir.join("failed")] {
            create_private_dir(&sub).map_err(|err| queue_error("create", &sub, &err))?;
        }
        Ok(Queue {
            dir: dir.to_path_buf(),
        })
    }

    fn lock_path(&self, id: &str) -> PathBuf {
        self.dir.join("tmp").join(format!("{id}.lock"))
    }

    fn meta_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn message_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.eml"))
    }

    /// Stores a message; returns its entry. The message file is durable
    /// before the entry that points at it exists.
    pub fn add(
        &self,
        sender: &str,
        recipients: &[String],
        args: &[String],
        message: &Content,
    ) -> Result<Entry> {
        let entry = Entry {
            id: new_id(),
            created: now(),
            sender: sender.to_string(),
            recipients: recipients.to_vec(),
            args: args.to_vec(),
            size: message.len(),
            attempts: 0,
            last_attempt: None,
            last_error: None,
        };
        self.write_atomic(&self.message_path(&entry.id), |file| message.write_to(file))?;
        self.save(&entry)?;
        Ok(entry)
    }

    /// Stores a message straight into `failed/`, for recipients refused
    /// for good: never in the queue proper, where a flush could send it.
    pub fn add_failed(
        &self,
        sender: &str,
        recipients: &[String],
        args: &[String],
        message: &Content,
        reason: &str,
    ) -> Result<PathBuf> {
        let entry = Entry {
            id: new_id(),
            created: now(),
            sender: sender.to_string(),
            recipients: recipients.to_vec(),
            args: args.to_vec(),
            size: message.len(),
            attempts: 1,
            last_attempt: Some(now()),
            last_error: Some(reason.to_string()),
        };
        let failed = self.dir.join("failed");
        let message_path = failed.join(format!("{}.eml", entry.id));
        self.write_atomic(&message_path, |file| message.write_to(file))?;
        let json = serde_json::to_vec_pretty(&entry).map_err(|err| {
            Error::new(Exit::Software, format!("queue: cannot encode entry: {err}"))
        })?;
        self.write_atomic(&failed.join(format!("{}.json", entry.id)), |file| {
            file.write_all(&json)
        })?;
        Ok(message_path)
    }

    /// Writes an entry's description atomically (also after each attempt).
    pub fn save(&self, entry: &Entry) -> Result<()> {
        let json = serde_json::to_vec_pretty(entry).map_err(|err| {
            Error::new(Exit::Software, format!("queue: cannot encode entry: {err}"))
        })?;
        self.write_atomic(&self.meta_path(&entry.id), |file| file.write_all(&json))
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
            let mut file = private_file(&temp)?;
            contents(&mut file)?;
            file.sync_all()?;
            fs::rename(&temp, path)?;
            // The rename itself must reach the disk too.
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|err| {
            let _ = fs::remove_file(&temp);
            queue_error("write", path, &err)
        })
    }

    /// Every entry, oldest first. Unreadable descriptions are skipped with a
    /// warning rather than stopping the whole queue.
    pub fn list(&self) -> Result<Vec<Entry>> {
        let reader = fs::read_dir(&self.dir).map_err(|err| queue_error("read", &self.dir, &err))?;
        let mut entries = Vec::new();
        for item in reader.flatten() {
            let path = item.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match fs::read(&path).map(|bytes| serde_json::from_slice::<Entry>(&bytes)) {
                Ok(Ok(entry)) => entries.push(entry),
                Ok(Err(err)) => {
                    eprintln!("postie: warning: queue: skipping {}: {err}", path.display())
                }
                Err(err) => eprintln!(
                    "postie: warning: queue: skipping {}: {}",
                    path.display(),
                    io_reason(&err)
                ),
            }
        }
        entries.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(entries)
    }

    pub fn get(&self, id: &str) -> Result<Entry> {
        check_id(id)?;
        let path = self.meta_path(id);
        let bytes = fs::read(&path).map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                Error::new(
                    Exit::NoInput,
                    format!("queue: no entry {id} in {}", self.dir.display()),
                )
                .hint("see `postie queue list`")
            } else {
                queue_error("read", &path, &err)
            }
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|err| Error::data(format!("queue: entry {id} is damaged: {err}")))
    }

    pub fn message(&self, id: &str) -> Result<Vec<u8>> {
        check_id(id)?;
        let path = self.message_path(id);
        fs::read(&path).map_err(|err| queue_error("read", &path, &err))
    }

    /// Tries to lock an entry for sending; `None` when another process
    /// (another flush) holds it.
    pub fn lock(&self, id: &str) -> Result<Option<EntryLock>> {
        check_id(id)?;
        let path = self.lock_path(id);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|err| queue_error("lock", &path, &err))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(EntryLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(err)) => Err(queue_error("lock", &path, &err)),
        }
    }

    /// Removes an entry: the description first, so that a crash in between
    /// leaves an orphan message, never an entry without its message.
    pub fn remove(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let meta = self.meta_path(id);
        fs::remove_file(&meta).map_err(|err| queue_error("remove", &meta, &err))?;
        let _ = fs::remove_file(self.message_path(id));
        let _ = fs::remove_file(self.lock_path(id));
        Ok(())
    }

    /// Moves an entry to `failed/`, where flush no longer sees it.
    pub fn fail(&self, entry: &Entry) -> Result<PathBuf> {
        let failed = self.dir.join("failed");
        let message_target = failed.join(format!("{}.eml", entry.id));
        let meta_target = failed.join(format!("{}.json", entry.id));
        fs::rename(self.message_path(&entry.id), &message_target)
            .map_err(|err| queue_error("move", &message_target, &err))?;
        // Written whole or not at all, like every description.
        self.write_atomic(&meta_target, |file| {
            serde_json::to_writer_pretty(&mut *file, entry).map_err(std::io::Error::other)
        })?;
        let _ = fs::remove_file(self.meta_path(&entry.id));
        let _ = fs::remove_file(self.lock_path(&entry.id));
        Ok(message_target)
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

/// Sortable and unique: time, process id and a counter.
fn new_id() -> String {
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

/// Mail is private: queue files are readable by their owner only.
fn private_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// "5d", "12h", "30m", "90s" or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => (&text[..at], &text[at..]),
        None => (text, "s"),
    };
    let multiplier = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if multiplier > 0 => Ok(Duration::from_secs(n * multiplier)),
        _ => Err(Error::config(format!(
            "invalid duration {text:?}; write e.g. 5d, 12h, 30m or 90s"
        ))),
    }
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
                &["--server".into(), "x".into()],
                &Content::from_bytes(b"Subject: x\r\n\r\nbody".to_vec()),
            )
            .unwrap();
        assert_eq!(queue.list().unwrap(), vec![entry.clone()]);
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
    fn locks_are_exclusive() {
        let (_dir, queue) = queue();
        let entry = queue
            .add("a@x.example", &[], &[], &Content::from_bytes(b"m".to_vec()))
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
            .add("a@x.example", &[], &[], &Content::from_bytes(b"m".to_vec()))
            .unwrap();
        let moved = queue.fail(&entry).unwrap();
        assert!(moved.exists());
        assert!(queue.list().unwrap().is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_four_hours() {
        let mut entry = Entry {
            id: "x".into(),
            created: 0,
            sender: String::new(),
            recipients: vec![],
            args: vec![],
            size: 0,
            attempts: 0,
            last_attempt: None,
            last_error: None,
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
    fn ids_cannot_escape_the_directory() {
        assert!(check_id("../etc/passwd").is_err());
        assert!(check_id("18eac-1a-0").is_ok());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5d").unwrap(), Duration::from_secs(432_000));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5 weeks").is_err());
    }
}
