//! The command line as typed: the clap definitions of postie's own flags
//! and of `postie queue`, and sendmail's argv.
//!
//! This is the first of two parsing stages: raw values, checked only for
//! form. Belongs here: flags, their help and their spellings. Not here:
//! reading files or the config, or deciding what a flag means next to an
//! account (`plan`).

pub(crate) mod args;
pub(crate) mod invocation;
pub(crate) mod sendmail;
