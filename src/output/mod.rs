//! What postie writes for people and scripts besides the message: the
//! `--capabilities` report and the per-attempt log (file and syslog).
//!
//! Belongs here: formats. Not here: deciding what happened (`outcome`).

pub(crate) mod capabilities;
pub(crate) mod log;
