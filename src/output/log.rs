//! One line per delivery attempt, to a file (`logfile = PATH`) and/or to
//! syslog (`syslog = true`, facility mail), in the spirit of msmtp's log:
//! when, which account and server, envelope, size, outcome, the server's
//! reply and the exit code. Nothing in it is secret: passwords never reach
//! an error message or a reply.
//!
//! Logging must never lose mail: a log that cannot be written is a warning
//! on stderr, not a failure.

use std::io::Write;
use std::path::{Path, PathBuf};

use mail_builder::headers::date::Date;

use crate::output::messages;

/// Where attempt lines go.
#[derive(Clone, Debug, Default)]
pub(crate) struct Logger {
    pub(crate) file: Option<PathBuf>,
    pub(crate) syslog: bool,
    pub(crate) account: Option<String>,
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Sent,
    Queued,
    Failed,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Queued => "queued",
            Outcome::Failed => "failed",
        }
    }
}

/// One attempt's facts.
#[derive(Clone, Debug)]
pub(crate) struct Attempt<'a> {
    pub(crate) server: &'a str,
    pub(crate) sender: &'a str,
    pub(crate) recipients: &'a [String],
    pub(crate) size: usize,
    pub(crate) outcome: Outcome,
    /// The server's final reply, or the error line.
    pub(crate) reply: &'a str,
    pub(crate) exit: u8,
}

impl Logger {
    pub(crate) fn enabled(&self) -> bool {
        self.file.is_some() || self.syslog
    }

    pub(crate) fn record(&self, attempt: &Attempt<'_>) {
        if !self.enabled() {
            return;
        }
        let line = self.line(attempt);
        if let Some(path) = &self.file {
            let stamped = format!("{} {line}\n", Date::now().to_rfc822());
            if let Err(why) = append(path, stamped.as_bytes()) {
                messages::warning(why);
            }
        }
        if self.syslog {
            send_to_syslog(attempt.outcome, &line);
        }
    }

    fn line(&self, attempt: &Attempt<'_>) -> String {
        // The reply is the server's text: escaped, so that reading the log
        // with cat or tail cannot retitle a terminal or clear it.
        let quote = |text: &str| {
            let line = text.replace(['\r', '\n'], " ").replace('"', "'");
            format!("\"{}\"", crate::smtp::reply::escape(line.as_bytes()))
        };
        let recipients: Vec<String> = attempt
            .recipients
            .iter()
            .map(|r| format!("<{r}>"))
            .collect();
        format!(
            "account={} server={} from=<{}> to={} size={} outcome={} reply={} exit={}",
            self.account.as_deref().unwrap_or("-"),
            if attempt.server.is_empty() {
                "-"
            } else {
                attempt.server
            },
            attempt.sender,
            recipients.join(","),
            attempt.size,
            attempt.outcome.word(),
            quote(attempt.reply),
            attempt.exit
        )
    }
}

/// Appends one line to the log file, creating it private to the user (it
/// names who mails whom). Root writes it: a symbolic link planted at its
/// path is refused, never followed, or root would append to whatever file
/// the link names; a FIFO is refused without blocking. A log that others
/// can write is still written, with a warning: they could fake lines in
/// it, which is worth knowing but no reason to lose the real ones. Returns
/// the warning to show.
fn append(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let opened = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let mut file = match opened {
        Ok(file) => file,
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
            return Err(format!(
                "the log file {} is a symbolic link; not following it, nothing logged (name the real file in logfile)",
                path.display()
            ))
        }
        Err(err) => {
            return Err(format!(
                "cannot write the log file {}: {}",
                path.display(),
                crate::exit::io_reason(&err)
            ))
        }
    };
    let meta = file.metadata().map_err(|err| {
        format!(
            "cannot write the log file {}: {}",
            path.display(),
            crate::exit::io_reason(&err)
        )
    })?;
    if !meta.file_type().is_file() {
        return Err(format!(
            "the log file {} is not a regular file; nothing logged",
            path.display()
        ));
    }
    file.write_all(bytes).map_err(|err| {
        format!(
            "cannot write the log file {}: {}",
            path.display(),
            crate::exit::io_reason(&err)
        )
    })?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "the log file {} is writable by group or others (mode {mode:04o}), who could fake lines in it; run: chmod go-w {}",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

/// RFC 3164 over /dev/log: facility mail (2), info (6) or err (3).
#[cfg(unix)]
fn send_to_syslog(outcome: Outcome, line: &str) {
    let severity = if outcome == Outcome::Failed { 3 } else { 6 };
    let message = format!(
        "<{}>postie[{}]: {line}",
        2 * 8 + severity,
        std::process::id()
    );
    let sent = std::os::unix::net::UnixDatagram::unbound()
        .and_then(|socket| socket.send_to(message.as_bytes(), "/dev/log"));
    if let Err(err) = sent {
        messages::warning(format_args!(
            "cannot write to syslog (/dev/log): {}",
            crate::exit::io_reason(&err)
        ));
    }
}

#[cfg(not(unix))]
fn send_to_syslog(_outcome: Outcome, _line: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_every_field_on_one_line() {
        let logger = Logger {
            account: Some("relay".into()),
            ..Logger::default()
        };
        let recipients = vec!["a@example.com".to_string(), "b@example.com".to_string()];
        let line = logger.line(&Attempt {
            server: "smtp.example.com:587",
            sender: "cron@example.com",
            recipients: &recipients,
            size: 1234,
            outcome: Outcome::Sent,
            reply: "250 2.0.0 \"queued\"\r\n",
            exit: 0,
        });
        assert_eq!(
            line,
            "account=relay server=smtp.example.com:587 from=<cron@example.com> to=<a@example.com>,<b@example.com> size=1234 outcome=sent reply=\"250 2.0.0 'queued'  \" exit=0"
        );
    }

    #[test]
    fn terminal_escapes_in_a_reply_are_logged_escaped() {
        let line = Logger::default().line(&Attempt {
            server: "mx",
            sender: "a@example.com",
            recipients: &[],
            size: 1,
            outcome: Outcome::Failed,
            reply: "550 \x1b]0;pwned\x07\x1b[2J",
            exit: 69,
        });
        assert!(
            line.contains("reply=\"550 \\x1B]0;pwned\\x07\\x1B[2J\""),
            "{line}"
        );
        assert!(!line.contains('\x1b'), "{line}");
    }
}
