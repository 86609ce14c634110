//! Shared integration-test harness for `postie`, one module per concern;
//! the tests use its items through the re-exports below (`common::postie`,
//! `common::TestServer`).
//!
//! Everything here talks to 127.0.0.1 on ephemeral ports only, generates its
//! throwaway TLS certificate at run time (never written anywhere but a
//! `TempDir`), and bounds every wait with a timeout.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

mod alone;
mod command;
mod disk;
pub mod dns;
mod gate;
mod net;
mod oauth2_provider;
mod ports;
mod queue;
mod relay;
mod sasl_server;
pub mod schema;
mod scripted;
mod server;
mod skip;
mod tls;
mod usage;

pub use alone::rerun_alone;
pub use command::{
    hermetic, hermetic_env, hermetic_std, parse, postie, postie_std, sendmail, SMALL_MESSAGE,
};
pub use disk::TinyDisk;
pub use gate::GateServer;
pub use oauth2_provider::{OAuthProvider, OAuthSmtp, CLIENT_ID as OAUTH2_CLIENT_ID};
pub use ports::{closed_port, silent_server, starttls_then_flood};
pub use queue::{files_ending, QueueSetup};
pub use sasl_server::{SaslServer, SaslTwist};
pub use scripted::{Flood, ScriptedServer};
pub use server::{Received, ServerOptions, TestServer, Tls, PASSWORD, USER};
pub use skip::{require_tool, skip};
pub use tls::CertKind;

/// How long `wait_for_messages` (and `ScriptedServer::lines`) poll.
const WAIT: Duration = Duration::from_secs(5);

/// Locks `m`, poisoned or not.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not turn every later assertion into a
    // PoisonError.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
