//! Where the effective user's files are: the home directory and the XDG
//! config and state directories, for the config file, the default queue
//! and anything else postie keeps per user.
//!
//! Debian's cron runs the mailer as the crontab's owner but with the
//! daemon's environment (`HOME=/root`). Trusting `$HOME` there would look
//! for the config in root's home (and queue there), so `$HOME` counts only
//! when it belongs to the effective user; otherwise the password database
//! says where home is, and the `XDG_*` variables, inherited from the same
//! foreign environment, are ignored too.

use std::path::PathBuf;

/// The home directory, and whether the environment's `XDG_*` variables
/// can be believed for this user.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Home {
    dir: PathBuf,
    trust_env: bool,
}

/// `$XDG_CONFIG_HOME`, else `~/.config`.
pub(crate) fn config_dir() -> Option<PathBuf> {
    xdg_dir("XDG_CONFIG_HOME", &[".config"])
}

/// `$XDG_STATE_HOME`, else `~/.local/state`.
pub(crate) fn state_dir() -> Option<PathBuf> {
    xdg_dir("XDG_STATE_HOME", &[".local", "state"])
}

fn xdg_dir(variable: &str, default: &[&str]) -> Option<PathBuf> {
    let home = home()?;
    if home.trust_env {
        // The XDG spec: a relative path is invalid and must be ignored.
        if let Some(dir) = std::env::var_os(variable)
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute())
        {
            return Some(dir);
        }
    }
    Some(default.iter().fold(home.dir, |dir, part| dir.join(part)))
}

fn home() -> Option<Home> {
    let from_env = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute());
    choose(from_env, effective_uid(), owner, passwd_home)
}

/// The decision, apart from the system calls so that it can be tested.
fn choose(
    from_env: Option<PathBuf>,
    uid: u32,
    owner: impl Fn(&PathBuf) -> Option<u32>,
    passwd_home: impl Fn(u32) -> Option<PathBuf>,
) -> Option<Home> {
    match from_env {
        Some(dir) if owner(&dir) == Some(uid) => Some(Home {
            dir,
            trust_env: true,
        }),
        // Not ours (or missing): the password database knows better. A uid
        // with no entry (containers run arbitrary ones) keeps $HOME.
        Some(dir) => match passwd_home(uid) {
            Some(own) => Some(Home {
                trust_env: own == dir,
                dir: own,
            }),
            None => Some(Home {
                dir,
                trust_env: true,
            }),
        },
        None => passwd_home(uid).map(|dir| Home {
            dir,
            trust_env: true,
        }),
    }
}

/// True when postie runs with root's rights.
pub(crate) fn is_root() -> bool {
    effective_uid() == 0
}

/// Asked of the kernel once: postie never changes its user, and a flush
/// asks for every queue entry it reads.
#[cfg(unix)]
pub(crate) fn effective_uid() -> u32 {
    static EUID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    // SAFETY: geteuid has no preconditions and cannot fail.
    *EUID.get_or_init(|| unsafe { libc::geteuid() })
}

#[cfg(not(unix))]
pub(crate) fn effective_uid() -> u32 {
    u32::MAX
}

#[cfg(unix)]
fn owner(path: &PathBuf) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|meta| meta.uid())
}

#[cfg(not(unix))]
fn owner(_path: &PathBuf) -> Option<u32> {
    None
}

/// The home directory the password database (files, LDAP, ...: whatever
/// nsswitch says) records for `uid`.
#[cfg(unix)]
fn passwd_home(uid: u32) -> Option<PathBuf> {
    use std::ffi::{CStr, OsString};
    use std::os::unix::ffi::OsStringExt;

    // SAFETY: sysconf has no preconditions.
    let suggested = unsafe { libc::sysconf(libc::_SC_GETPW_R_SIZE_MAX) };
    let mut size = usize::try_from(suggested)
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or(1024);
    loop {
        let mut buffer: Vec<libc::c_char> = vec![0; size];
        // SAFETY: `passwd` is a plain C struct of pointers and integers,
        // for which all zero bytes is a valid value.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer refers to a live local of the type the
        // function expects, and the buffer's real length is passed with it.
        let status = unsafe {
            libc::getpwuid_r(
                uid,
                &mut entry,
                buffer.as_mut_ptr(),
                buffer.len(),
                &mut found,
            )
        };
        // A long entry (an LDAP gecos field) needs a bigger buffer.
        if status == libc::ERANGE && size < 1 << 20 {
            size *= 2;
            continue;
        }
        if status != 0 || found.is_null() || entry.pw_dir.is_null() {
            return None;
        }
        // SAFETY: on success pw_dir points to a NUL-terminated string in
        // `buffer`, which is still alive here.
        let dir = unsafe { CStr::from_ptr(entry.pw_dir) }.to_bytes().to_vec();
        let dir = PathBuf::from(OsString::from_vec(dir));
        return dir.is_absolute().then_some(dir);
    }
}

#[cfg(not(unix))]
fn passwd_home(_uid: u32) -> Option<PathBuf> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> PathBuf {
        PathBuf::from(text)
    }

    #[test]
    fn home_of_another_user_gives_way_to_the_password_database() {
        let root_owns = |_: &PathBuf| Some(0);
        let nobody = |_| Some(path("/nonexistent"));
        assert_eq!(
            choose(Some(path("/root")), 65534, root_owns, nobody),
            Some(Home {
                dir: path("/nonexistent"),
                trust_env: false
            })
        );
        assert_eq!(
            choose(Some(path("/root")), 0, root_owns, nobody),
            Some(Home {
                dir: path("/root"),
                trust_env: true
            })
        );
    }

    #[test]
    fn without_an_entry_or_without_home_what_is_there_is_used() {
        let missing = |_: &PathBuf| None;
        assert_eq!(
            choose(Some(path("/home/x")), 1000, missing, |_| None),
            Some(Home {
                dir: path("/home/x"),
                trust_env: true
            })
        );
        assert_eq!(
            choose(None, 1000, missing, |_| Some(path("/home/x"))),
            Some(Home {
                dir: path("/home/x"),
                trust_env: true
            })
        );
        // $HOME not created yet, but it is the user's own.
        assert_eq!(
            choose(Some(path("/home/x")), 1000, missing, |_| Some(path(
                "/home/x"
            ))),
            Some(Home {
                dir: path("/home/x"),
                trust_env: true
            })
        );
    }

    #[test]
    fn root_is_in_the_password_database() {
        assert!(passwd_home(0).is_some_and(|dir| dir.is_absolute()));
    }
}
