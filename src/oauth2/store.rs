//! The token file: `$XDG_STATE_HOME/postie/oauth2/ACCOUNT.json` (for the
//! system config's accounts `/var/lib/postie/oauth2/`, root's, 0700), 0600,
//! replaced atomically (temp file, fsync, rename), and locked for a
//! refresh with flock on `ACCOUNT.lock` beside it. It holds the refresh
//! token: like a password, it is checked to be the user's own and
//! unreadable by others before a word of it is believed.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exit::{io_reason, Error, Exit, Result};
use crate::permissions;

/// Overrides `/var/lib/postie/oauth2`, for tests and packagers.
pub(crate) const SYSTEM_DIR_ENV: &str = "POSTIE_OAUTH2_SYSTEM_DIR";

/// What a token file holds.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub(crate) provider: String,
    pub(crate) scopes: String,
    pub(crate) access_token: String,
    /// Seconds since the epoch.
    pub(crate) expires_at: u64,
    pub(crate) refresh_token: Option<String>,
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("provider", &self.provider)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The directory of the token files.
fn dir(system: bool) -> Option<PathBuf> {
    if system {
        return Some(
            std::env::var_os(SYSTEM_DIR_ENV)
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from("/var/lib/postie/oauth2"), PathBuf::from),
        );
    }
    crate::home::state_dir().map(|d| d.join("postie").join("oauth2"))
}

/// The token file of `account`.
pub(crate) fn path(system: bool, account: &str) -> Result<PathBuf> {
    if account.is_empty() || account.starts_with('.') || account.contains(['/', '\0']) {
        return Err(Error::config(format!(
            "the account name {account:?} cannot name a token file"
        )));
    }
    let dir = dir(system).ok_or_else(|| {
        Error::config("no state directory for the OAuth2 token: HOME is unknown")
            .hint("set HOME or XDG_STATE_HOME")
    })?;
    Ok(dir.join(format!("{account}.json")))
}

fn failed(what: &str, path: &Path, err: &std::io::Error) -> Error {
    Error::new(
        Exit::IoErr,
        format!(
            "cannot {what} the OAuth2 token file {}: {}",
            path.display(),
            io_reason(err)
        ),
    )
}

/// The stored token, or none when there is no file.
pub(crate) fn read(path: &Path) -> Result<Option<Stored>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(failed("read", path, &err)),
    };
    let meta = file.metadata().map_err(|err| failed("read", path, &err))?;
    permissions::check_trusted_file(&meta, path, "OAuth2 token file")?;
    permissions::check_secret_file(&meta, path, "OAuth2 token file", "a refresh token")?;
    let mut text = String::new();
    file.take(1024 * 1024)
        .read_to_string(&mut text)
        .map_err(|err| failed("read", path, &err))?;
    serde_json::from_str(&text).map(Some).map_err(|err| {
        Error::config(format!(
            "the OAuth2 token file {} is damaged (line {})",
            path.display(),
            err.line()
        ))
        .hint("run `postie oauth2 login` again")
    })
}

/// The directory, created 0700 when missing.
fn ensure_dir(path: &Path) -> Result<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|err| failed("create the directory of", path, &err))?;
    Ok(dir)
}

/// Replaces the token file atomically: a crash leaves the old token or
/// the new one, never half of either (a lost rotated refresh token would
/// mean logging in again).
pub(crate) fn write(path: &Path, stored: &Stored) -> Result<()> {
    let dir = ensure_dir(path)?;
    let text = serde_json::to_string_pretty(stored).expect("a token serializes");
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("token"),
        std::process::id()
    ));
    // Left by a crashed postie of the same pid: callers hold the lock, so
    // nobody else is writing it.
    let _ = fs::remove_file(&temp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        File::open(&dir)?.sync_all()
    })();
    result.map_err(|err| {
        let _ = fs::remove_file(&temp);
        failed("write", path, &err)
    })
}

/// Held while a refresh runs; closing the file lets go.
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

/// Waits for the exclusive lock on `ACCOUNT.lock` beside the token file.
pub(crate) fn lock(path: &Path) -> Result<Lock> {
    ensure_dir(path)?;
    let lock_path = path.with_extension("lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(|err| failed("lock", &lock_path, &err))?;
    loop {
        // SAFETY: flock takes a descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return Ok(Lock { _file: file });
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(failed("lock", &lock_path, &err));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn written_atomically_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oauth2").join("work.json");
        let stored = Stored {
            provider: "microsoft".into(),
            scopes: "a b".into(),
            access_token: "AT".into(),
            expires_at: 7,
            refresh_token: Some("RT".into()),
        };
        write(&path, &stored).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let back = read(&path).unwrap().unwrap();
        assert_eq!((back.access_token.as_str(), back.expires_at), ("AT", 7));
        assert!(!format!("{back:?}").contains("RT"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read(&path).unwrap_err().exit, Exit::Config);
        assert!(path_is_refused("../x") && path_is_refused(".x") && path_is_refused(""));
    }

    fn path_is_refused(name: &str) -> bool {
        path(false, name).is_err()
    }
}
