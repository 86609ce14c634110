//! The second parsing stage: flags, environment and config file become one
//! validated plan (messages, envelope, server settings) before any network
//! I/O; and the settings a queued message keeps, to be sent the same way
//! later.
//!
//! Belongs here: precedence (flag over account over defaults), reading the
//! inputs a plan needs, the password source. Not here: sending (`smtp`),
//! storing (`queue`), printing (`output`).

pub(crate) mod request;
pub(crate) mod stored;
