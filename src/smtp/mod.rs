//! The protocol: one SMTP session over a socket postie owns, stage by stage,
//! with its TLS layer, the byte-level wire and reply checks, the transcript
//! (-v), what a server says it can do, and MX routing.
//!
//! Belongs here: everything between "connect to this server with these
//! settings" and "this is what each recipient's reply was". Not here: where
//! the settings come from (`plan`), what a failed attempt means for the
//! message (`outcome`), printing reports (`output`).

pub(crate) mod capabilities;
pub(crate) mod classify;
pub(crate) mod connect;
pub(crate) mod data;
pub mod mx;
pub(crate) mod outgoing;
pub(crate) mod reply;
pub(crate) mod report;
pub(crate) mod route;
pub(crate) mod session;
pub(crate) mod settings;
pub(crate) mod stage;
pub(crate) mod timing;
pub(crate) mod tls;
pub(crate) mod transcript;
pub(crate) mod wire;
