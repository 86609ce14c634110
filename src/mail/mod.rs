//! The message itself: addresses, composing one from flags and files,
//! its bytes ([`content::Content`]), ready-made messages (`--message`,
//! sendmail's stdin, held by `spool` without holding a large one in
//! memory), making those carriable by SMTP, and their DKIM signature
//! (`dkim`).
//!
//! Belongs here: anything that decides what the recipient reads. Not here:
//! how or where it is sent (`smtp`), which flags or account apply (`plan`),
//! printing (`output`).

pub(crate) mod address;
pub(crate) mod attach;
pub(crate) mod compose;
pub(crate) mod content;
pub(crate) mod dkim;
pub(crate) mod fields;
pub(crate) mod message;
pub(crate) mod spool;
pub(crate) mod transportable;
