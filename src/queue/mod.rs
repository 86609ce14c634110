//! Keeping messages: the durable queue (`new/`, `failed/`, entries and
//! their locks), the system spool that holds root's queue, and the
//! maildrop, through which a user who may not read the system config hands
//! a message to root's queue.
//!
//! Belongs here: the files, their format, their owners. Not here: deciding
//! whether a message is owed or refused (`outcome`), or the `postie queue`
//! command (`commands`).

pub(crate) mod maildrop;
pub(crate) mod storage;
pub(crate) mod system;
