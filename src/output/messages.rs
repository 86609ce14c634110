//! The lines postie says on stderr besides the transcript: one prefix,
//! `postie:`, and a word that says how much the line matters, so that a
//! script or a reader of cron mail can grep them.

use std::fmt::Display;

/// Something failed: the `STAGE: what happened; what to try` line.
pub(crate) fn error(text: impl Display) {
    eprintln!("postie: error: {text}");
}

/// Something worked, but not as asked or not as it should.
pub(crate) fn warning(text: impl Display) {
    eprintln!("postie: warning: {text}");
}

/// Something worth knowing that needs nothing done.
pub(crate) fn note(text: impl Display) {
    eprintln!("postie: note: {text}");
}

/// What became of a message or an entry: queued, kept, handed over.
pub(crate) fn said(text: impl Display) {
    eprintln!("postie: {text}");
}
