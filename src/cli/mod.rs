//! The command line as typed: the clap definitions of postie's own flags
//! and of `postie queue` (`args`), sendmail's argv (`sendmail`), and which
//! of the commands an argv asks for (`invocation`, which owns the reserved
//! first words).
//!
//! This is the first of two parsing stages: raw values, checked only for
//! form. Belongs here: flags, their help and their spellings. Not here:
//! reading files or the config, or deciding what a flag means next to an
//! account (`plan`).

pub(crate) mod args;
pub(crate) mod invocation;
pub(crate) mod sendmail;
