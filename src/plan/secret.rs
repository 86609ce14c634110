//! The login and where its secret comes from: --password-cmd,
//! POSTIE_PASSWORD, the account's password_cmd or password. A password
//! command runs with `/bin/sh -c` in a process group of its own, under a
//! deadline, and only when a session is about to log in
//! ([`PendingLogin::fetch`]). An OAuth2 account's secret is its access
//! token, refreshed there too when it is (nearly) expired.
//!
//! Belongs here: everything that touches a secret before it reaches smtp's
//! [`Login`]. Not here: whether a login may be used at all (an exchanger
//! never gets one: [`super::server`]), AUTH itself (`smtp`).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::config::file::Account;
use crate::exit::{io_reason, Cause, Error, Exit, Result};
use crate::oauth2::provider::{Provider, Setup};
use crate::oauth2::refresh;
use crate::smtp::settings::Login;
use crate::types::AuthMethod;

/// The environment variable that may hold the SMTP password or token.
pub(crate) const PASSWORD_ENV: &str = "POSTIE_PASSWORD";

/// The login `merged` names, its secret not yet fetched; none without a
/// user. `account` names the account, for an OAuth2 token file.
pub(crate) fn login(
    merged: &Account,
    account: Option<&str>,
    deadline: Duration,
) -> Result<Option<PendingLogin>> {
    let method = merged.auth;
    match merged.user.clone() {
        Some(user) => Ok(Some(PendingLogin {
            secret: secret(merged, account, &user)?,
            user,
            method: method.unwrap_or(AuthMethod::Auto),
            deadline,
        })),
        None if method.is_some() => Err(Error::usage("--auth needs a user name")
            .hint("give --user or set `user` in the account")),
        None => Ok(None),
    }
}

/// A login whose secret may still have to be fetched: the password
/// command runs only when a session is about to use it.
#[derive(Clone)]
pub(crate) struct PendingLogin {
    user: String,
    method: AuthMethod,
    secret: Secret,
    /// How long the password command may take.
    deadline: Duration,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = match &self.secret {
            Secret::Known(_) => "[hidden]".to_string(),
            Secret::Command(cmd) => format!("the output of {cmd:?}"),
            Secret::OAuth2(setup) => format!("the OAuth2 token of account {}", setup.account),
        };
        f.debug_struct("PendingLogin")
            .field("user", &self.user)
            .field("secret", &secret)
            .field("method", &self.method)
            .finish()
    }
}

impl PendingLogin {
    /// The login, running the password command if there is one. Its
    /// failures are [`Cause::LocalSetup`]: this machine's, not the message's.
    pub(crate) fn fetch(self) -> Result<Login> {
        let (secret, bearer) = match self.secret {
            Secret::Known(secret) => (secret, false),
            Secret::Command(cmd) => (run_password_cmd(&cmd, self.deadline)?, false),
            Secret::OAuth2(setup) => {
                let deadline = self.deadline;
                let token =
                    refresh::access_token(&setup, || client_secret(&setup.provider, deadline))?;
                (token, true)
            }
        };
        Ok(Login {
            user: self.user,
            secret,
            method: self.method,
            bearer,
        })
    }
}

/// The OAuth2 client secret, from its command, when the provider has one.
pub(crate) fn client_secret(provider: &Provider, deadline: Duration) -> Result<Option<String>> {
    provider
        .client_secret_cmd
        .as_deref()
        .map(|cmd| run_password_cmd(cmd, deadline))
        .transpose()
}

#[derive(Clone)]
enum Secret {
    Known(String),
    Command(String),
    /// The access token of an OAuth2 account.
    OAuth2(Box<Setup>),
}

/// The password or token: --password-cmd, then POSTIE_PASSWORD, then the
/// account's password_cmd, then its password; an OAuth2 account, which
/// has neither of its own (`ConfigFile::select`), its access token.
fn secret(merged: &Account, account: Option<&str>, user: &str) -> Result<Secret> {
    // `merged` already has the layers in order, the two spellings of the
    // secret taken together from the first layer that gives either
    // (super::precedence): a command, then a password.
    if let Some(cmd) = &merged.password_cmd {
        return Ok(Secret::Command(cmd.clone()));
    }
    if let Some(password) = &merged.password {
        return Ok(Secret::Known(password.clone()));
    }
    if merged.is_oauth2() {
        return Ok(Secret::OAuth2(Box::new(Setup::of(merged, account)?)));
    }
    Err(
        Error::config(format!("no password for user {user:?}")).hint(format!(
            "use --password-cmd, set {PASSWORD_ENV}, or set password_cmd in the config's account"
        )),
    )
}

/// How long a password command may take without --timeout: long enough to
/// type a passphrase into a pinentry, short enough that cron runs do not
/// pile up behind a hung keyring.
pub(crate) const PASSWORD_CMD_DEADLINE: Duration = Duration::from_secs(60);

/// The most of a password command's output that is read: a secret is one
/// line, and a runaway command must not fill memory.
const PASSWORD_OUTPUT_LIMIT: usize = 64 * 1024;

/// Runs the command with `/bin/sh -c` and returns the first line of its
/// output. Its stderr goes to the user (a gpg or keyring prompt may need
/// it); its output is never shown, as it is the secret.
///
/// `/bin/sh` by path: a PATH that root inherits from a cron job or a user
/// must not choose the shell. The command gets no POSTIE_PASSWORD, which
/// is not its business. It runs in a process group of its own so that at
/// the deadline everything it started is killed, and the output is read on
/// a thread so that a grandchild that keeps the pipe open cannot keep
/// postie waiting past the deadline.
fn run_password_cmd(cmd: &str, deadline: Duration) -> Result<String> {
    // In the error line's form, "STAGE: what happened; what to try".
    let failed = |exit: Exit, why: String| {
        Error::new(exit, format!("password command: {cmd:?} {why}"))
            .hint("run it in a shell to see why, or fix --password-cmd (the account's `password_cmd`)")
            .cause(Cause::LocalSetup)
    };
    let started = Instant::now();
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .env_remove(PASSWORD_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(|err| failed(Exit::Config, format!("cannot be run: {}", io_reason(&err))))?;
    let Some(stdout) = child.stdout.take() else {
        kill_group(&mut child);
        return Err(failed(Exit::Software, "has no output pipe".to_string()));
    };
    let (sender, receiver) = mpsc::channel();
    let reader = std::thread::Builder::new()
        .name("password-cmd".to_string())
        .spawn(move || {
            let mut output = Vec::new();
            // One byte past the limit tells "too long" from "exactly 64 KiB".
            let read = stdout
                .take(PASSWORD_OUTPUT_LIMIT as u64 + 1)
                .read_to_end(&mut output);
            // The receiver is gone only after the deadline: nobody to tell.
            let _ = sender.send(read.map(|_| output));
        });
    if let Err(err) = reader {
        kill_group(&mut child);
        return Err(failed(
            Exit::Software,
            format!("could not be read: {}", io_reason(&err)),
        ));
    }
    let timed_out = || {
        failed(
            Exit::TempFail,
            format!(
                "did not finish within {} s and was killed",
                deadline.as_secs()
            ),
        )
        .hint("check the keyring or agent it uses; --timeout sets the limit")
    };
    let output = match receiver.recv_timeout(deadline) {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => {
            kill_group(&mut child);
            return Err(failed(
                Exit::IoErr,
                format!("could not be read: {}", io_reason(&err)),
            ));
        }
        Err(_) => {
            kill_group(&mut child);
            return Err(timed_out());
        }
    };
    if output.len() > PASSWORD_OUTPUT_LIMIT {
        // Still writing, perhaps forever: stop it rather than wait.
        kill_group(&mut child);
        return Err(failed(
            Exit::Config,
            format!(
                "printed more than {} KiB; a password is one line",
                PASSWORD_OUTPUT_LIMIT / 1024
            ),
        ));
    }
    // The output is complete; the command itself must still end in time.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Ok(None) => {
                kill_group(&mut child);
                return Err(timed_out());
            }
            Err(err) => {
                kill_group(&mut child);
                return Err(failed(
                    Exit::Software,
                    format!("could not be waited for: {}", io_reason(&err)),
                ));
            }
        }
    };
    if !status.success() {
        let status = status
            .code()
            .map(|c| format!("exit status {c}"))
            .unwrap_or_else(|| "killed by a signal".to_string());
        return Err(failed(Exit::Config, format!("failed ({status})")));
    }
    first_line(output).map_err(|why| failed(Exit::Config, why))
}

/// The secret in a password command's output, or what is wrong with it.
fn first_line(output: Vec<u8>) -> std::result::Result<String, String> {
    if output.is_empty() {
        return Err("printed nothing".to_string());
    }
    if let Some(at) = output.iter().position(|&b| b == 0) {
        return Err(format!("printed a NUL byte (at offset {at})"));
    }
    let text = String::from_utf8(output).map_err(|err| {
        format!(
            "printed output that is not UTF-8 (invalid byte at offset {})",
            err.utf8_error().valid_up_to()
        )
    })?;
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if first.is_empty() {
        return Err("printed an empty first line".to_string());
    }
    Ok(first.to_string())
}

/// Kills the password command and whatever it started, and reaps it.
fn kill_group(child: &mut Child) {
    // The child leads its own group (process_group(0)) and is not reaped
    // yet, so its pid still names that group and nothing else.
    if let Ok(group) = libc::pid_t::try_from(child.id()) {
        // SAFETY: killpg takes plain integers and only sends a signal.
        unsafe {
            libc::killpg(group, libc::SIGKILL);
        }
    }
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINE: Duration = Duration::from_secs(10);

    #[test]
    fn password_command_first_line_only() {
        assert_eq!(
            run_password_cmd("printf 'pw1\\r\\nsecond\\n'", DEADLINE).unwrap(),
            "pw1"
        );
        let err = run_password_cmd("exit 3", DEADLINE).unwrap_err();
        assert_eq!((err.exit, err.cause), (Exit::Config, Cause::LocalSetup));
        assert!(run_password_cmd("true", DEADLINE)
            .unwrap_err()
            .message
            .contains("printed nothing"));
    }

    #[test]
    fn unusable_password_output_says_why() {
        for (output, why) in [
            (&b""[..], "printed nothing"),
            (b"\npw\n", "empty first line"),
            (b"p\0w\n", "NUL byte (at offset 1)"),
            (b"pw\xff\n", "not UTF-8 (invalid byte at offset 2)"),
        ] {
            let err = first_line(output.to_vec()).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        assert_eq!(
            first_line(b"pw\nmore\xff".to_vec()).map_err(|_| ()),
            Err(())
        );
    }

    #[test]
    fn a_password_command_that_outlives_its_output_is_killed() {
        let started = Instant::now();
        let err =
            run_password_cmd("echo pw; exec >&-; sleep 30", Duration::from_secs(1)).unwrap_err();
        assert_eq!((err.exit, err.cause), (Exit::TempFail, Cause::LocalSetup));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
