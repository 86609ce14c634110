//! The names of a session's steps: the one list that error lines,
//! timeouts and the --timing summary take their words from.
//!
//! Belongs here: the stages, in session order, and what each is called.
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
    /// The TCP connection.
    Connect,
    /// TLS from the first byte (implicit TLS).
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
    /// The DATA command (and, for --timing, the whole transfer).
    Data,
    /// The message and the reply to its final dot.
    Message,
}

impl Stage {
    /// In error lines and timeouts: the command as RFC 5321 writes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::TlsHandshake => "TLS handshake",
            Stage::Banner => "greeting",
            Stage::Greeting => "greeting/EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Message => "end of DATA",
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
            QuitAfter::Ehlo => Stage::Greeting,
            QuitAfter::Starttls => Stage::StartTls,
            QuitAfter::Auth => Stage::Auth,
            QuitAfter::Mail => Stage::Mail,
            QuitAfter::Rcpt => Stage::Rcpt,
            QuitAfter::Data => Stage::Data,
        }
    }
}
