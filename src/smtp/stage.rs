//! The names of a session's steps: the one list that error lines,
//! timeouts and the --timing summary take their words from.
//!
//! Belongs here: the stages, in session order, and what each is called:
//! in an error line (`name`), in a timeout (`waited_for`), in the --timing
//! summary (`timing_label`).
//! The --quit-after values are clap's spelling of [`QuitAfter`] (see
//! `QuitAfter::name`), and each maps to the stage it stops after here. Not
//! here: what a stage does (`session`), what a failure at it means
//! (`classify`).

use crate::types::QuitAfter;

/// A step of the session, in order. The stage a failure belongs to picks
/// the exit code for a 5xx reply (`classify`) and names the step in the
/// error line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The submission server's host name, looked up before connecting
    /// (`route`; mail exchangers come with their addresses from `mx`).
    Lookup,
    /// The TCP connection.
    Connect,
    /// A TLS handshake: from the first byte (implicit TLS), or after the
    /// 220 to STARTTLS, where --timing counts it in `StartTls`.
    TlsHandshake,
    /// The server's greeting, read on its own (--quit-after banner).
    Banner,
    /// The greeting and EHLO, which lettre's connection reads and sends
    /// as one step.
    Greeting,
    StartTls,
    Auth,
    Mail,
    Rcpt,
    /// MAIL and every RCPT written as one PIPELINING group (RFC 2920);
    /// their replies are read at `Mail` and `Rcpt`.
    MailAndRcpt,
    /// The DATA command (and, for --timing, the whole transfer).
    Data,
    /// The message and the reply to its final dot.
    Message,
    /// QUIT. A session's closing QUIT may fail unnoticed (the message is
    /// sent by then); only the one said by hand after --quit-after banner
    /// is a step of its own.
    Quit,
}

impl Stage {
    /// In error lines: the command as RFC 5321 writes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Stage::Lookup => "host name lookup",
            Stage::Connect => "connect",
            Stage::TlsHandshake => "TLS handshake",
            Stage::Banner => "greeting",
            Stage::Greeting => "greeting/EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::MailAndRcpt => "MAIL FROM and RCPT TO",
            Stage::Data => "DATA",
            Stage::Message => "end of DATA",
            Stage::Quit => "QUIT",
        }
    }

    /// In a timeout ("timed out after 30 s waiting for the greeting"): what
    /// was awaited, which for a command is its reply.
    pub(crate) fn waited_for(self) -> String {
        match self {
            Stage::Lookup => "the host name lookup".to_string(),
            Stage::Connect => "the connection".to_string(),
            Stage::TlsHandshake => "the TLS handshake".to_string(),
            // lettre reads the greeting and sends EHLO as one step.
            Stage::Banner | Stage::Greeting => "the greeting".to_string(),
            // A write that does not end, not a reply that does not come.
            Stage::MailAndRcpt => "sending MAIL and RCPT".to_string(),
            Stage::Message => "the reply to the end of the message".to_string(),
            Stage::StartTls
            | Stage::Auth
            | Stage::Mail
            | Stage::Rcpt
            | Stage::Data
            | Stage::Quit => format!("the reply to {}", self.name()),
        }
    }

    /// In the --timing summary, where stages measured together are joined
    /// with "and" ("banner and EHLO"): the verb alone, since one line holds
    /// them all.
    pub(crate) fn timing_label(self) -> &'static str {
        match self {
            Stage::Banner => "banner",
            Stage::Greeting => "EHLO",
            Stage::Mail => "MAIL",
            Stage::Rcpt => "RCPT",
            Stage::MailAndRcpt => "MAIL and RCPT",
            other => other.name(),
        }
    }
}

impl From<QuitAfter> for Stage {
    /// The stage --quit-after stops after.
    fn from(stop: QuitAfter) -> Stage {
        match stop {
            QuitAfter::Connect => Stage::Connect,
            QuitAfter::Banner => Stage::Banner,
            QuitAfter::FirstEhlo => Stage::Greeting,
            // The last EHLO: the one repeated after STARTTLS, when TLS is
            // used (as swaks' `helo`), so that a test of it tests TLS too.
            QuitAfter::Ehlo | QuitAfter::Starttls => Stage::StartTls,
            QuitAfter::Auth => Stage::Auth,
            QuitAfter::Mail => Stage::Mail,
            QuitAfter::Rcpt => Stage::Rcpt,
            QuitAfter::Data => Stage::Data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timeout lines are part of what users and their scripts see.
    #[test]
    fn what_each_stage_waited_for() {
        let said: Vec<String> = [
            Stage::Lookup,
            Stage::Connect,
            Stage::TlsHandshake,
            Stage::Banner,
            Stage::Greeting,
            Stage::StartTls,
            Stage::Auth,
            Stage::Mail,
            Stage::Rcpt,
            Stage::MailAndRcpt,
            Stage::Data,
            Stage::Message,
            Stage::Quit,
        ]
        .iter()
        .map(|stage| stage.waited_for())
        .collect();
        assert_eq!(
            said,
            [
                "the host name lookup",
                "the connection",
                "the TLS handshake",
                "the greeting",
                "the greeting",
                "the reply to STARTTLS",
                "the reply to AUTH",
                "the reply to MAIL FROM",
                "the reply to RCPT TO",
                "sending MAIL and RCPT",
                "the reply to DATA",
                "the reply to the end of the message",
                "the reply to QUIT",
            ]
        );
    }
}
