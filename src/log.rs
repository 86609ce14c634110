//! One line per delivery attempt, to a file (`logfile = PATH`) and/or to
//! syslog (`syslog = true`, facility mail), in the spirit of msmtp's log:
//! when, which account and server, envelope, size, outcome, the server's
//! reply and the exit code. Nothing in it is secret: passwords never reach
//! an error message or a reply.
//!
//! Logging must never lose mail: a log that cannot be written is a warning
//! on stderr, not a failure.

use std::io::Write;
use std::path::PathBuf;

use mail_builder::headers::date::Date;

/// Where attempt lines go.
#[derive(Clone, Debug, Default)]
pub struct Logger {
    pub file: Option<PathBuf>,
    pub syslog: bool,
    pub account: Option<String>,
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
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
pub struct Attempt<'a> {
    pub server: &'a str,
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub size: usize,
    pub outcome: Outcome,
    /// The server's final reply, or the error line.
    pub reply: &'a str,
    pub exit: u8,
}

impl Logger {
    pub fn enabled(&self) -> bool {
        self.file.is_some() || self.syslog
    }

    pub fn record(&self, attempt: &Attempt<'_>) {
        if !self.enabled() {
            return;
        }
        let line = self.line(attempt);
        if let Some(path) = &self.file {
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| {
                    file.write_all(format!("{} {line}\n", Date::now().to_rfc822()).as_bytes())
                });
            if let Err(err) = written {
                eprintln!(
                    "postie: warning: cannot write the log file {}: {}",
                    path.display(),
                    crate::exit::io_reason(&err)
                );
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
            format!("\"{}\"", crate::wire::reply::escape(line.as_bytes()))
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
        eprintln!(
            "postie: warning: cannot write to syslog (/dev/log): {}",
            crate::exit::io_reason(&err)
        );
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
