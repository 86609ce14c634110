//! The lines postie says on stderr besides the transcript: one prefix,
//! `postie:`, and a word that says how much the line matters, so that a
//! script or a reader of cron mail can grep them.
//!
//! [`quiet`] silences every line but [`error`]: `sendmail -bs` without
//! -v, whose client (Symfony's ProcessStream) keeps stderr as a pipe it
//! never reads during the session. A line per message would fill that
//! pipe (64 KiB) and block postie before its reply: a deadlock. The log
//! file and syslog still record each attempt.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// From now on only [`error`] (the process's last line) is written.
pub(crate) fn quiet() {
    QUIET.store(true, Ordering::Relaxed);
}

fn quieted() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Something failed: the `STAGE: what happened; what to try` line. Said
/// even when [`quiet`]: it is the process's last line.
pub(crate) fn error(text: impl Display) {
    eprintln!("postie: error: {text}");
}

/// Something about one message failed, besides its exit status: an
/// [`error`] line that [`quiet`] silences.
pub(crate) fn error_beside(text: impl Display) {
    if !quieted() {
        error(text);
    }
}

/// Something worked, but not as asked or not as it should.
pub(crate) fn warning(text: impl Display) {
    if !quieted() {
        eprintln!("postie: warning: {text}");
    }
}

/// Something worth knowing that needs nothing done.
pub(crate) fn note(text: impl Display) {
    if !quieted() {
        eprintln!("postie: note: {text}");
    }
}

/// What became of a message or an entry: queued, kept, handed over.
pub(crate) fn said(text: impl Display) {
    if !quieted() {
        eprintln!("postie: {text}");
    }
}
