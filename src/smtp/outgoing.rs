//! One message of a batch, as the sending layer takes it.
//!
//! Belongs here: the message with its envelope and a label for messages.
//! Not here: how it is sent (`route`, `session`).

use crate::mail::content::Content;
use crate::types::Envelope;

/// One message to send, with its envelope.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    /// What to call it in messages: the file it came from.
    pub(crate) label: String,
    pub(crate) envelope: Envelope,
    pub(crate) content: Content,
}
