//! The names of the protocol's steps.
//!
//! Belongs here: the one list of stages, with the name each is given in
//! error lines, in timeouts and in the --timing summary. Not here: what a
//! stage does (`session`), what a failure at it means (`classify`).

/// The protocol step a failure belongs to; it picks the exit code for a
/// 5xx reply and names the step in the error line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    Greeting,
    StartTls,
    Auth,
    Mail,
    Rcpt,
    Data,
    Message,
}

impl Stage {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Stage::Greeting => "greeting/EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Message => "end of DATA",
        }
    }
}
