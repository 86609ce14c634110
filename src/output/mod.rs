//! What postie writes for people and scripts: the `postie:` lines on
//! stderr, the `--capabilities` report, the `--dry-run` output, the
//! `--json` result of a send, the upload progress bar and the per-attempt log
//! (file and syslog).
//!
//! Belongs here: formats. Not here: deciding what happened (`outcome`).

pub(crate) mod capabilities;
pub(crate) mod dry_run;
pub(crate) mod log;
pub(crate) mod messages;
pub(crate) mod progress;
pub(crate) mod result_json;
pub(crate) mod stdout;
