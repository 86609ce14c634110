//! The protocol: one SMTP session over a socket postie owns, stage by stage,
//! with its TLS layer, the byte-level wire and reply checks, the transcript
//! (-v), what a server says it can do, and MX routing.
//!
//! Belongs here: everything between "connect to this server with these
//! settings" and "this is what each recipient's reply was". Not here: where
//! the settings come from (`plan`), what a failed attempt means for the
//! message (`outcome`), printing reports (`output`).
//!
//! One noun per file. From the bottom up (a file imports only files above
//! it in this list, never the other way round):
//!
//! - bytes and facts: `reply`, `transcript` (-v), `tls` (certificates and
//!   connectors), `wire` (the socket), `mx` (DNS), `capabilities` (an
//!   EHLO reply);
//! - values: `stage` (the names of the steps), `settings` (what a session
//!   is given), `outgoing` (a message of a batch), `report` (what a
//!   session found out);
//! - mechanisms: `sasl` (the SASL exchanges postie computes itself);
//! - meaning: `classify` (what happened, as an exit code and one line),
//!   `timing` (the --timing clock), `data` (the DATA writer);
//! - doing: `connect` (TCP, banner, TLS handshake), `session` (one server,
//!   stage by stage), `route` (which servers, failover, MX, batches: the
//!   entry point, `route::submit_all`);
//! - the other side: `server` (an SMTP server on a byte stream, for
//!   `sendmail -bs`, driving the `mailin` crate's state machine).

pub(crate) mod capabilities;
pub(crate) mod classify;
pub(crate) mod connect;
pub(crate) mod data;
// Public for tests/it/mx.rs, which drives it against a test DNS server.
pub mod mx;
pub(crate) mod outgoing;
pub(crate) mod reply;
pub(crate) mod report;
pub(crate) mod route;
pub(crate) mod sasl;
pub(crate) mod server;
pub(crate) mod session;
pub(crate) mod settings;
pub(crate) mod stage;
pub(crate) mod timing;
pub(crate) mod tls;
pub(crate) mod transcript;
pub(crate) mod wire;
