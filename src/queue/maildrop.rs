//! The maildrop, as Postfix's: how a user who may not read the system
//! config still gets mail out.
//!
//! On a machine whose `/etc/postie/config.toml` is private to root (it
//! holds the relay's password), cron running a user's job calls
//! `sendmail` as that user. With no config of their own, postie in
//! sendmail mode then drops the message into `/var/spool/postie/maildrop`
//! (mode 1733: anyone may create a file there, nobody but root may list
//! it, nobody may remove another's file), and root's `postie queue flush`
//! picks it up. The file is written in `incoming/` beside it (the same
//! modes) and moved in whole, so the maildrop never holds half a message.
//!
//! A drop file holds only what the sendmail command line said (`-f`, `-F`,
//! `-t`, `-i`, the recipients) and the message as it came in: nothing that
//! the flush would run or read on the user's behalf (no `--config`, no
//! `--password-cmd`, no server). The submitter is the file's owner as the
//! kernel reports it, never anything the file says. Pickup opens each file
//! without following links and without blocking, refuses anything but a
//! regular file with one link, plans the message with the system config
//! exactly as sendmail mode would (aliases, qualification, `from_policy`),
//! adds a `Received:` line naming the user, and moves it into root's queue
//! before removing the drop file.
//!
//! What does not belong here: sending (the queue does that) and deciding
//! whether an entry is delivered (`commands::queue`).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::cli::args::Cli;
use crate::config::file::Location;
use crate::exit::{io_reason, Error, Exit, Result};
use crate::mail::content::Content;
use crate::output::log::{Attempt, Outcome};
use crate::output::messages;
use crate::plan::inputs::Stdin;
use crate::plan::server::local_hostname;
use crate::plan::stored::{QueuedSettings, Submission};
use crate::queue::storage::{Queue, Unplanned};
use crate::queue::system::{incoming_dir, maildrop_dir};
use crate::types::Dsn;

/// The most a drop file may hold: the message and its one header line.
const MAX_DROP_BYTES: u64 = 100 * 1024 * 1024 + 64 * 1024;

/// The first line of every drop file, and its format's version.
const MAGIC: &[u8] = b"postie-maildrop 1\n";

/// Whether this sendmail-mode run hands its message to the maildrop: a
/// user other than root, who names no config or server and has no config
/// of their own, on a machine whose system config exists but is closed to
/// them. The ordinary command line never gets here (see `cli::invocation`).
pub(crate) fn applies(cli: &Cli) -> bool {
    if !cli.sendmail || cli.dry_run || cli.config.is_some() || cli.server.is_some() {
        return false;
    }
    if crate::home::is_root() {
        return false;
    }
    // The user's own config, readable or not, is theirs to fix; only the
    // system's config being closed to them means "hand it to root".
    match Location::find(None) {
        Location::Unreadable { path, error } => {
            path == crate::config::file::system_path()
                && error.kind() == std::io::ErrorKind::PermissionDenied
        }
        Location::Found(_) | Location::Missing { .. } => false,
    }
}

/// Writes the message on `stdin` into the maildrop as one file, complete
/// before its final name exists.
pub(crate) fn deposit(cli: &Cli, message: &mut dyn std::io::Read) -> Result<()> {
    let drop = Submission::from_cli(cli);
    let header = serde_json::to_vec(&drop)
        .map_err(|err| Error::new(Exit::Software, format!("maildrop: cannot encode: {err}")))?;
    let dir = maildrop_dir();
    let name = crate::queue::storage::new_id();
    let temp = staging_path(&name);
    let mut write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(MAGIC)?;
        file.write_all(&header)?;
        file.write_all(b"\n")?;
        std::io::copy(message, &mut file)?;
        file.sync_all()?;
        fs::rename(&temp, dir.join(&name))?;
        // The rename must reach the disk too: the 250 of -bs and sendmail
        // mode's exit 0 say the message is safe.
        sync_dir(&dir)
    };
    write().map_err(|err| {
        let _ = fs::remove_file(&temp);
        let reason = io_reason(&err);
        match err.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => Error::config(
                format!(
                    "the system config {} is not readable by this user and the maildrop {} cannot be written: {reason}",
                    crate::config::file::system_path().display(),
                    dir.display()
                ),
            )
            .hint("ask the administrator to run `postie queue init`, or give this user a config of their own"),
            _ => Error::new(
                Exit::TempFail,
                format!("cannot write to the maildrop {}: {reason}", dir.display()),
            )
            .hint("try again later"),
        }
    })?;
    if cli.verbose > 0 {
        messages::said(format_args!(
            "handed to the maildrop as {name}; root's `postie queue flush` sends it"
        ));
    }
    Ok(())
}

/// fsyncs `dir`, into which the drop file was just renamed, when this
/// user may open it. A directory is opened for reading to be fsynced, and
/// users may not read the maildrop (1733): for them the file's own fsync
/// is what there is, as with Postfix's postdrop, and the journal of ext4
/// or XFS commits the rename within seconds. (syncfs would do it, but
/// would make every user's cron mail wait for the whole file system.)
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match File::open(dir) {
        Ok(opened) => opened.sync_all(),
        Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        Err(err) => Err(err),
    }
}

/// Where the drop file `name` is written before it gets its final name:
/// the incoming directory, or, in a spool set up before it existed, a dot
/// name in the maildrop, which pickup leaves alone.
fn staging_path(name: &str) -> PathBuf {
    staging_path_in(&incoming_dir(), &maildrop_dir(), name)
}

fn staging_path_in(incoming: &Path, maildrop: &Path, name: &str) -> PathBuf {
    if fs::symlink_metadata(incoming).is_ok_and(|meta| meta.is_dir()) {
        incoming.join(name)
    } else {
        maildrop.join(format!(".{name}"))
    }
}

/// What one pickup run did, for flush's exit status.
#[derive(Debug, Default)]
pub(crate) struct Pickup {
    /// The first drop that was refused or could not be planned.
    pub(crate) first_error: Option<Error>,
}

/// Moves every finished drop file into `queue` (root only; anyone else
/// cannot read the maildrop and has nothing to pick up).
pub(crate) fn pickup(queue: &Queue, verbose: u8) -> Pickup {
    let mut done = Pickup::default();
    if !crate::home::is_root() {
        return done;
    }
    let dir = maildrop_dir();
    let Ok(meta) = fs::symlink_metadata(&dir) else {
        return done; // no maildrop on this machine
    };
    if !meta.is_dir() || meta.uid() != 0 {
        let err = Error::config(format!(
            "maildrop: {} is not a directory owned by root; not picking up from it",
            dir.display()
        ))
        .hint("run `postie queue init`");
        messages::said(format_args!("queue: {err}"));
        done.first_error = Some(err);
        return done;
    }
    // Two flushes at once would both queue the same drop: the second one
    // leaves the maildrop to the first.
    let Ok(guard) = File::open(&dir) else {
        return done;
    };
    if guard.try_lock().is_err() {
        return done;
    }
    remove_abandoned_in(&incoming_dir());
    let Ok(reader) = fs::read_dir(&dir) else {
        return done;
    };
    // With incoming/, drops are written there: a dot name in the maildrop
    // is no drop in progress but something planted, dealt with at once
    // like any other entry. Left there, it would keep the maildrop from
    // ever being empty, which postie-flush.path takes as "flush again".
    let staged_elsewhere = fs::symlink_metadata(incoming_dir()).is_ok_and(|m| m.is_dir());
    let mut names: Vec<String> = reader
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            !name.starts_with('.') || staged_elsewhere || remove_if_abandoned(&dir.join(name))
        })
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        if let Err(err) = pick_one(queue, &path, verbose) {
            messages::said(format_args!("queue: maildrop: {name}: {err}"));
            done.first_error.get_or_insert(err);
        }
    }
    done
}

/// Every file of the incoming directory is a drop being written; the
/// abandoned ones go (see below).
fn remove_abandoned_in(dir: &Path) {
    if let Ok(reader) = fs::read_dir(dir) {
        for entry in reader.flatten() {
            remove_if_abandoned(&entry.path());
        }
    }
}

/// A dot name is a drop being written; one untouched for a day was left
/// by a sender that crashed or was killed, and nobody but root can remove
/// it. Unlinking never follows a link. Always false: never picked up.
fn remove_if_abandoned(path: &Path) -> bool {
    const ABANDONED: std::time::Duration = std::time::Duration::from_secs(86_400);
    let abandoned = fs::symlink_metadata(path)
        .and_then(|meta| meta.modified())
        .is_ok_and(|at| at.elapsed().is_ok_and(|age| age > ABANDONED));
    if abandoned {
        let _ = fs::remove_file(path);
    }
    false
}

/// One drop file into the queue (or, when planning refuses the message,
/// into `failed/` with the reason), then the drop file goes.
fn pick_one(queue: &Queue, path: &Path, verbose: u8) -> Result<()> {
    // O_NOFOLLOW: a symbolic link is refused, not followed. O_NONBLOCK: a
    // FIFO planted by a user cannot make root's flush wait forever.
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let refuse = |why: String| {
        // Removing the name is safe whatever it is: unlink never follows,
        // and a directory (anyone may mkdir here) goes with what is in it,
        // or it would be refused again by every flush.
        let is_dir = fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir());
        let removal = if is_dir {
            fs::remove_dir_all(path)
        } else {
            fs::remove_file(path)
        };
        let removed = match removal {
            Ok(()) => "removed".to_string(),
            Err(err) => format!("could not remove it: {}", io_reason(&err)),
        };
        Err(Error::data(format!("refused: {why}; {removed}"))
            .hint("only postie's sendmail mode writes the maildrop"))
    };
    let mut file = match opened {
        Ok(file) => file,
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
            return refuse("a symbolic link".to_string())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return refuse(format!("cannot be opened: {}", io_reason(&err))),
    };
    let meta = file
        .metadata()
        .map_err(|err| Error::new(Exit::IoErr, format!("cannot stat: {}", io_reason(&err))))?;
    if !meta.file_type().is_file() {
        return refuse("not a regular file".to_string());
    }
    if meta.nlink() != 1 {
        return refuse(format!(
            "a file with {} links (a hard link to another file?)",
            meta.nlink()
        ));
    }
    let uid = meta.uid();
    // A sparse file costs its owner nothing: never read more than a drop
    // may hold (deposit refuses bigger messages with the user watching).
    if meta.len() > MAX_DROP_BYTES {
        return refuse(format!(
            "from userid {uid}: {} bytes, more than a drop may hold ({MAX_DROP_BYTES})",
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(MAX_DROP_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| Error::new(Exit::IoErr, format!("cannot read: {}", io_reason(&err))))?;
    let (drop, message) = match parse(&bytes) {
        Ok(parsed) => parsed,
        // Written by a postie of another version, or damaged: the user's
        // sendmail said it was taken, so it is kept where the admin looks.
        Err(why) => {
            let reason = format!("from the maildrop, userid {uid}: {why}");
            let kept = queue.add_failed(
                "",
                &[],
                &Dsn::default(),
                &QueuedSettings::default(),
                &Content::from_bytes(bytes),
                &reason,
            )?;
            remove_drop(path)?;
            return Err(Error::data(format!("{reason}; kept in {}", kept.display())));
        }
    };
    // A bug in planning must neither lose the drop nor stop every flush
    // on this machine (the drop would stay and panic the next one too).
    let planned =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| plan(&drop, message, uid)))
            .unwrap_or_else(|_| {
                Err(Error::new(
                    Exit::Software,
                    "a bug in postie stopped it while preparing the message",
                ))
            });
    match planned {
        Ok(planned) => {
            for (outgoing, settings, log) in &planned {
                let entry = queue.add_outgoing(outgoing, settings)?;
                log.record(&Attempt {
                    server: "",
                    sender: &outgoing.envelope.sender,
                    recipients: &outgoing.envelope.recipients,
                    size: outgoing.content.len() as usize,
                    outcome: Outcome::Queued,
                    reply: &format!("picked up from the maildrop, userid {uid}, as {}", entry.id),
                    exit: 0,
                });
                if verbose > 0 {
                    messages::said(format_args!(
                        "queue: picked up a message from userid {uid} as {}",
                        entry.id
                    ));
                }
            }
        }
        Err(err) => {
            // The user cannot see this run's errors: the message is kept
            // where the admin looks, with why.
            let reason = format!("from the maildrop, userid {uid}: {err}");
            let kept = queue.add_unplanned(
                Unplanned {
                    submission: drop,
                    maildrop_uid: Some(uid),
                },
                &QueuedSettings::default(),
                &reason,
                |file| file.write_all(message).map(|()| message.len() as u64),
            )?;
            remove_drop(path)?;
            return Err(Error {
                message: format!("{reason}; kept in {}", kept.display()),
                ..err
            });
        }
    }
    fs::remove_file(path).map_err(|err| {
        Error::new(
            Exit::IoErr,
            format!("cannot remove {}: {}", path.display(), io_reason(&err)),
        )
    })
}

fn parse(bytes: &[u8]) -> std::result::Result<(Submission, &[u8]), String> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or("not a postie maildrop file")?;
    let end = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("its header line is cut off")?;
    let drop: Submission = serde_json::from_slice(&rest[..end])
        .map_err(|err| format!("its header does not parse: {err}"))?;
    Ok((drop, &rest[end + 1..]))
}

type Planned = (
    crate::smtp::outgoing::Outgoing,
    crate::plan::stored::QueuedSettings,
    crate::output::log::Logger,
);

/// Plans the drop as sendmail mode would for its argv-level data, with the
/// system config, and adds the `Received:` line that names the user.
pub(crate) fn plan(drop: &Submission, message: &[u8], uid: u32) -> Result<Vec<Planned>> {
    let mut cli = Cli::try_parse_from(["postie", "--message", "-"])
        .map_err(|err| Error::new(Exit::Software, format!("maildrop: {}", err.kind())))?;
    // Only what the drop says, and root's system config: nothing from the
    // flush's environment (POSTIE_FROM, POSTIE_SERVER...) may change it.
    drop.apply(&mut cli);
    cli.config = Some(crate::config::file::system_path()).filter(|path| path.exists());
    cli.account = None;
    cli.server = None;
    cli.port = None;
    cli.tls = None;
    cli.user = None;
    cli.queue_dir = None;
    // Nothing is sent now, so nothing is resolved and no password command
    // runs: the flush does that when it sends the queued entry.
    cli.dry_run = true;
    let mut reader = message;
    let config = crate::config::file::ConfigFile::load(cli.config.as_deref())?;
    let plan = crate::plan::plan(
        cli,
        config,
        Stdin {
            reader: &mut reader,
            is_terminal: false,
        },
    )?;
    let received = format!(
        "Received: by {} (postie, from userid {uid});\r\n\t{}\r\n",
        local_hostname(),
        mail_builder::headers::date::Date::now().to_rfc822()
    );
    let mut planned = Vec::new();
    for mut outgoing in plan.messages {
        let mut bytes = received.clone().into_bytes();
        outgoing
            .content
            .write_to(&mut bytes)
            .map_err(|err| Error::new(Exit::Software, format!("maildrop: {err}")))?;
        outgoing.content = Content::from_bytes(bytes);
        planned.push((outgoing, plan.queue.settings.clone(), plan.log.clone()));
    }
    Ok(planned)
}

/// Removes a drop file whose message is now in the queue or in failed/.
fn remove_drop(path: &Path) -> Result<()> {
    fs::remove_file(path).map_err(|err| {
        Error::new(
            Exit::IoErr,
            format!("cannot remove {}: {}", path.display(), io_reason(&err)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drop_is_written_outside_the_maildrop_when_the_spool_has_incoming() {
        let spool = tempfile::tempdir().unwrap();
        let (incoming, maildrop) = (spool.path().join("incoming"), spool.path().join("maildrop"));
        fs::create_dir(&maildrop).unwrap();
        // A spool from before incoming/: unfinished drops keep a dot name.
        assert_eq!(
            staging_path_in(&incoming, &maildrop, "x1"),
            maildrop.join(".x1")
        );
        fs::create_dir(&incoming).unwrap();
        assert_eq!(
            staging_path_in(&incoming, &maildrop, "x1"),
            incoming.join("x1")
        );
    }

    #[test]
    fn drop_files_round_trip_and_hold_nothing_else() {
        let drop = Submission {
            from: Some("root".into()),
            full_name: Some("Cron Daemon".into()),
            read_recipients: true,
            ignore_dots: true,
            recipients: vec!["ops".into()],
            notify: Some(crate::types::Notify::parse("success,delay").unwrap()),
            ret: Some(crate::types::Ret::Hdrs),
            envid: Some("cron-1".into()),
        };
        let mut bytes = MAGIC.to_vec();
        bytes.extend(serde_json::to_vec(&drop).unwrap());
        bytes.extend(b"\nSubject: x\n\nbody\n");
        let (parsed, message) = parse(&bytes).unwrap();
        assert_eq!(parsed, drop);
        assert_eq!(message, b"Subject: x\n\nbody\n");
        let mut sneaky = MAGIC.to_vec();
        sneaky.extend(b"{\"password_cmd\":\"touch /pwned\"}\nx");
        assert!(parse(&sneaky).unwrap_err().contains("does not parse"));
        assert!(parse(b"hello").is_err());
    }
}
