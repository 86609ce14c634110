//! The system spool, `/var/spool/postie`: root's queue and, inside it, the
//! maildrop that every user may write to. Its place and modes are one fact
//! that the queue (which may be opened on it) and the maildrop share.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::exit::{io_reason, Error, Exit, Result};

/// Overrides `/var/spool/postie`, for tests and for packagers whose spool
/// lives elsewhere. Not for ordinary use: every user must agree on it.
pub(crate) const SPOOL_ENV: &str = "POSTIE_SPOOL_DIR";

/// The spool directory: fixed, whatever root's `queue_dir` says, because
/// every user's postie must find it without reading any config.
pub(crate) fn spool_dir() -> PathBuf {
    std::env::var_os(SPOOL_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/spool/postie"))
}

pub(crate) fn maildrop_dir() -> PathBuf {
    spool_dir().join("maildrop")
}

/// Where a drop file is written before it moves into the maildrop whole:
/// the maildrop itself then holds only finished messages, so that "not
/// empty" means "mail for root's flush" (systemd's postie-flush.path
/// watches for exactly that, and would start the flush again and again
/// while a large message was still being written). Same modes as the
/// maildrop, on the same file system, so that the move is a rename.
pub(crate) fn incoming_dir() -> PathBuf {
    spool_dir().join("incoming")
}

/// `postie queue init`: the spool (0711, so that users reach the maildrop
/// but cannot list root's queue), the maildrop and its incoming directory
/// (1733), all root's, created or repaired.
pub(crate) fn init() -> Result<()> {
    if !crate::home::is_root() {
        return Err(Error::new(
            Exit::NoPerm,
            "queue init sets up the system spool and must run as root",
        )
        .hint("run `sudo postie queue init`"));
    }
    let spool = spool_dir();
    for (dir, mode) in [
        (spool.clone(), 0o711),
        (maildrop_dir(), 0o1733),
        (incoming_dir(), 0o1733),
    ] {
        let fail = |what: &str, err: std::io::Error| {
            Error::new(
                Exit::IoErr,
                format!(
                    "queue init: cannot {what} {}: {}",
                    dir.display(),
                    io_reason(&err)
                ),
            )
            .hint("check the parent directory")
        };
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(Error::config(format!(
                    "queue init: {} exists and is not a directory",
                    dir.display()
                ))
                .hint("move it away and run `postie queue init` again"))
            }
            Err(_) => fs::create_dir_all(&dir).map_err(|err| fail("create", err))?,
        }
        std::os::unix::fs::chown(&dir, Some(0), Some(0)).map_err(|err| fail("chown", err))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
            .map_err(|err| fail("chmod", err))?;
    }
    Ok(())
}
