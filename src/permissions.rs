//! Who may change, or read, the files postie acts on.
//!
//! postie runs as root from cron and from `queue flush`, so a file another
//! local user can write is a way to make root run a `password_cmd`, mail
//! someone else's message or overwrite a file. The rules are OpenSSH's
//! StrictModes and sudo's: a file postie trusts (config, aliases) and the
//! queue's directories belong to the effective user (files also to root),
//! and nobody else may write them; a file holding a secret (a password, a
//! private key) nobody else may read either. A broken rule is exit 78 with
//! the chmod or chown that fixes it.
//!
//! What does not belong here: how each file is opened (O_NOFOLLOW for the
//! queue's and the log's files is their modules' business).

use std::fs::Metadata;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::exit::{io_reason, Error, Result};
use crate::home::effective_uid;

const GROUP_OTHER_WRITE: u32 = 0o022;
const GROUP_OTHER_ANY: u32 = 0o077;

fn mode(meta: &Metadata) -> u32 {
    meta.permissions().mode() & 0o7777
}

/// A file postie takes settings or addresses from (`what` says which, e.g.
/// "config file"): owned by the effective user or root, written by nobody
/// else, in a directory nobody else can swap it in. `meta` is of the file
/// as opened, so that it is the file read that was checked.
pub(crate) fn check_trusted_file(meta: &Metadata, path: &Path, what: &str) -> Result<()> {
    let euid = effective_uid();
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(Error::config(format!(
            "{what} {} is owned by userid {}, not by you (userid {euid}) or root",
            path.display(),
            meta.uid()
        ))
        .hint(format!(
            "check who wrote it; if it is yours, run: chown {euid} {}",
            path.display()
        )));
    }
    if mode(meta) & GROUP_OTHER_WRITE != 0 {
        return Err(Error::config(format!(
            "{what} {} is writable by group or others (mode {:04o})",
            path.display(),
            mode(meta)
        ))
        .hint(format!(
            "check it for changes you did not make, then run: chmod go-w {}",
            path.display()
        )));
    }
    check_parents(path, what)
}

/// A file holding a secret (`holds` says which: "a password", "a private
/// key"): nobody but its owner may read it, as msmtp and ssh insist; such
/// a secret is as good as published.
pub(crate) fn check_secret_file(
    meta: &Metadata,
    path: &Path,
    what: &str,
    holds: &str,
) -> Result<()> {
    if mode(meta) & GROUP_OTHER_ANY != 0 {
        return Err(Error::config(format!(
            "{what} {} holds {holds} but group or others can read it (mode {:04o})",
            path.display(),
            mode(meta)
        ))
        .hint(format!("run: chmod 600 {}", path.display())));
    }
    Ok(())
}

/// The directories a trusted file sits in. Only its own directory is
/// checked, as sudo checks sudoers' and OpenSSH its key files' nearest
/// parents: whoever can write that directory can rename the file away and
/// put another in its place, whatever the file's own mode says. Higher
/// directories would refuse common layouts for little gain, since a
/// replaced directory is caught by the ownership check of the one below
/// it. A sticky directory (/tmp) is fine: there nobody may rename or remove
/// a file of someone else's. When the path is a symbolic link, the
/// directory of the link and that of the file it names both count.
fn check_parents(path: &Path, what: &str) -> Result<()> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(parent) = parent_of(path) {
        dirs.push(parent);
    }
    if let Some(parent) = std::fs::canonicalize(path)
        .ok()
        .as_deref()
        .and_then(parent_of)
    {
        if !dirs.contains(&parent) {
            dirs.push(parent);
        }
    }
    let euid = effective_uid();
    for dir in dirs {
        let meta = std::fs::metadata(&dir).map_err(|err| {
            Error::config(format!(
                "cannot check the directory {} of {what} {}: {}",
                dir.display(),
                path.display(),
                io_reason(&err)
            ))
        })?;
        if meta.uid() != euid && meta.uid() != 0 {
            return Err(Error::config(format!(
                "{what} {} is in {}, which is owned by userid {}, not by you (userid {euid}) or root",
                path.display(),
                dir.display(),
                meta.uid()
            ))
            .hint("move the file to a directory of yours or root's"));
        }
        let sticky = mode(&meta) & 0o1000 != 0;
        if mode(&meta) & GROUP_OTHER_WRITE != 0 && !sticky {
            return Err(Error::config(format!(
                "{what} {} is in {}, which group or others can write (mode {:04o}) and so replace the file",
                path.display(),
                dir.display(),
                mode(&meta)
            ))
            .hint(format!("run: chmod go-w {}", dir.display())));
        }
    }
    Ok(())
}

fn parent_of(path: &Path) -> Option<PathBuf> {
    match path.parent() {
        Some(parent) if parent.as_os_str().is_empty() => Some(PathBuf::from(".")),
        Some(parent) => Some(parent.to_path_buf()),
        None => None,
    }
}

/// A directory of the queue: the effective user's, and writable by nobody
/// else, or anyone could plant an entry whose settings root would act on
/// (0711, the spool's mode, is fine: others may pass, not write or list).
/// `meta` is of the directory as found.
pub(crate) fn check_private_dir(meta: &Metadata, path: &Path, what: &str) -> Result<()> {
    let euid = effective_uid();
    if !meta.is_dir() {
        return Err(
            Error::config(format!("{what} {} is not a directory", path.display()))
                .hint("move it away; postie creates the directory"),
        );
    }
    if meta.uid() != euid {
        return Err(Error::config(format!(
            "{what} {} is owned by userid {}, not by you (userid {euid})",
            path.display(),
            meta.uid()
        ))
        .hint(format!(
            "check it for entries you did not queue, then run: chown -R {euid} {}",
            path.display()
        )));
    }
    if mode(meta) & GROUP_OTHER_WRITE != 0 {
        return Err(Error::config(format!(
            "{what} {} is writable by group or others (mode {:04o})",
            path.display(),
            mode(meta)
        ))
        .hint(format!(
            "check it for entries you did not queue, then run: chmod go-w {}",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn group_or_other_write_is_refused_read_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        fs::write(&file, "").unwrap();
        chmod(&file, 0o644);
        let meta = fs::metadata(&file).unwrap();
        assert!(check_trusted_file(&meta, &file, "config file").is_ok());
        chmod(&file, 0o664);
        let meta = fs::metadata(&file).unwrap();
        let err = check_trusted_file(&meta, &file, "config file").unwrap_err();
        assert_eq!(err.exit, crate::exit::Exit::Config);
        assert!(err.to_string().contains("chmod go-w"), "{err}");
    }

    #[test]
    fn a_parent_others_can_write_is_refused_unless_sticky() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("aliases");
        fs::write(&file, "").unwrap();
        chmod(&file, 0o600);
        let meta = fs::metadata(&file).unwrap();
        chmod(dir.path(), 0o777);
        let err = check_trusted_file(&meta, &file, "aliases file").unwrap_err();
        assert!(err.message.contains("replace the file"), "{err}");
        chmod(dir.path(), 0o1777);
        assert!(check_trusted_file(&meta, &file, "aliases file").is_ok());
        chmod(dir.path(), 0o700);
    }

    #[test]
    fn secrets_are_for_their_owner_alone() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        fs::write(&key, "").unwrap();
        chmod(&key, 0o640);
        let meta = fs::metadata(&key).unwrap();
        let err = check_secret_file(&meta, &key, "client key", "a private key").unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        chmod(&key, 0o400);
        let meta = fs::metadata(&key).unwrap();
        assert!(check_secret_file(&meta, &key, "client key", "a private key").is_ok());
    }

    #[test]
    fn the_spool_mode_is_a_private_directory() {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o711);
        let meta = fs::metadata(dir.path()).unwrap();
        assert!(check_private_dir(&meta, dir.path(), "queue directory").is_ok());
        chmod(dir.path(), 0o733);
        let meta = fs::metadata(dir.path()).unwrap();
        assert!(check_private_dir(&meta, dir.path(), "queue directory").is_err());
        chmod(dir.path(), 0o700);
    }
}
