//! The hermetic `postie` command, and parsing what it sent.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// The small message most tests send when the message itself does not
/// matter: from a@example.com to b@example.com, body "x".
pub const SMALL_MESSAGE: [&str; 5] = ["-f", "a@example.com", "b@example.com", "--body", "x"];

/// The hermetic `postie` command: empty environment except `PATH`, with
/// `HOME`, `XDG_CONFIG_HOME` (= `$HOME/.config`) and `XDG_STATE_HOME`
/// (= `$HOME/.local/state`), all created, in a fresh directory per call,
/// and `POSTIE_SYSTEM_CONFIG` naming a file that does not exist, so that a
/// machine with postie installed (/etc/postie/config.toml) passes too.
/// The directory is deliberately leaked so it outlives the command; it lives
/// under cargo's `CARGO_TARGET_TMPDIR` (`target/tmp`), so `cargo clean`
/// removes it.
pub fn postie() -> assert_cmd::Command {
    hermetic(env!("CARGO_BIN_EXE_postie"))
}

/// postie reached through a symlink named `sendmail`, as cron and mailx
/// find it; the directory holding the link is returned to keep it alive.
pub fn sendmail() -> (TempDir, assert_cmd::Command) {
    linked("sendmail")
}

/// postie reached through a symlink named `name` (`sendmail`, `mailq`,
/// `newaliases`: the links an MTA package installs).
pub fn linked(name: &str) -> (TempDir, assert_cmd::Command) {
    let dir = tempfile::tempdir().expect("temp dir for the link");
    let link = dir.path().join(name);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_postie"), &link).expect("symlink");
    let cmd = hermetic(&link);
    (dir, cmd)
}

/// `program` with the hermetic environment `postie()` describes.
pub fn hermetic(program: impl AsRef<OsStr>) -> assert_cmd::Command {
    assert_cmd::Command::from_std(hermetic_std(program).0)
}

/// [`hermetic`] as a `std::process::Command`, for tests that spawn and
/// reap the program themselves (to read its peak memory from `wait4`);
/// the fresh HOME is returned too.
pub fn hermetic_std(program: impl AsRef<OsStr>) -> (std::process::Command, PathBuf) {
    let home = tempfile::Builder::new()
        .prefix("postie-home-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create temp HOME")
        .keep();
    let mut cmd = std::process::Command::new(program);
    cmd.env_clear().envs(hermetic_env(&home));
    (cmd, home)
}

/// The hermetic `postie` of [`postie()`] as a `std::process::Command`
/// (see [`hermetic_std`]).
pub fn postie_std() -> (std::process::Command, PathBuf) {
    hermetic_std(env!("CARGO_BIN_EXE_postie"))
}

/// The one environment every program of the tests gets, postie or the
/// tool that runs it: PATH, and `home` as HOME (created, with XDG dirs)
/// in which the queue, the maildrop spool and the system config all
/// live, so that no test reads or writes the machine's. Nothing else
/// passes from the test's own environment.
pub fn hermetic_env(home: &Path) -> Vec<(&'static str, OsString)> {
    let config = home.join(".config");
    let state = home.join(".local").join("state");
    std::fs::create_dir_all(&config).expect("create XDG_CONFIG_HOME");
    std::fs::create_dir_all(&state).expect("create XDG_STATE_HOME");
    let mut env = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        env.push(("PATH", path));
    }
    env.extend([
        ("HOME", home.as_os_str().to_owned()),
        ("XDG_CONFIG_HOME", config.into_os_string()),
        ("XDG_STATE_HOME", state.into_os_string()),
        // Tests often run as root, whose default queue is /var/spool/postie.
        ("POSTIE_QUEUE_DIR", home.join("queue").into_os_string()),
        // Root's flush picks up /var/spool/postie/maildrop: never the
        // real one, whose users' mail is not the test's.
        ("POSTIE_SPOOL_DIR", home.join("spool").into_os_string()),
        // Nor the machine's /var/lib/postie/oauth2 tokens.
        (
            "POSTIE_OAUTH2_SYSTEM_DIR",
            home.join("system-oauth2").into_os_string(),
        ),
        // Nor the machine's /etc/postie/config.toml.
        (
            "POSTIE_SYSTEM_CONFIG",
            home.join("no-system-config")
                .join("config.toml")
                .into_os_string(),
        ),
    ]);
    env
}

/// Parses message bytes (e.g. `Received::data`) with mail-parser.
/// Panics if mail-parser cannot make a message out of them.
pub fn parse(data: &[u8]) -> mail_parser::Message<'static> {
    mail_parser::MessageParser::default()
        .parse(data)
        .map(|m| m.into_owned())
        .unwrap_or_else(|| {
            panic!(
                "mail-parser could not parse message:\n{}",
                String::from_utf8_lossy(data)
            )
        })
}
