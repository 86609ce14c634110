//! What one SMTP session found out: the server, its capabilities, its
//! certificate, and how each message's transaction ended.
//!
//! Belongs here: the internal result of a session, read by `outcome` and
//! `output`. Not here: any printed format (`output::capabilities` builds
//! the --capabilities --json document from it).

use crate::exit::{Error, Result};
use crate::smtp::capabilities::Capabilities;
use crate::smtp::tls::{CertReport, TlsReport};

/// A recipient the server would not take, with its reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) recipient: String,
    pub(crate) reply: String,
    pub(crate) temporary: bool,
}

/// How one message's transaction ended, once MAIL and RCPT were answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Delivery {
    /// The server's reply to the end of DATA ("250 2.0.0 queued as ...");
    /// `None` when DATA was never sent because every recipient was refused
    /// (only with `partial`: otherwise that is an error).
    pub(crate) reply: Option<String>,
    /// Recipients refused while the rest were sent to (only with `partial`).
    pub(crate) refused: Vec<Refusal>,
}

/// One EHLO reply and when it came.
#[derive(Clone, Debug)]
pub(crate) struct EhloReply {
    /// "before STARTTLS", "after STARTTLS", or "EHLO" where no upgrade
    /// was to follow.
    pub(crate) label: String,
    /// Received over TLS (after STARTTLS, or with implicit TLS).
    pub(crate) over_tls: bool,
    pub(crate) capabilities: Capabilities,
}

/// One SMTP session's results, for `outcome` and the reports. Not a
/// printed format: `output::capabilities` copies into its own JSON type
/// only the fields it publishes, so a field added here for the sending
/// layer's use never appears in `--capabilities --json` by accident.
#[derive(Clone, Debug, Default)]
pub(crate) struct SessionReport {
    /// "host:port (address)".
    pub(crate) server: String,
    /// The EHLO replies, in order.
    pub(crate) capabilities: Vec<EhloReply>,
    pub(crate) certificate: Option<CertReport>,
    /// The TLS session: version, cipher, the chain sent, the verdict.
    pub(crate) tls: Option<TlsReport>,
    /// Present when the message was accepted.
    pub(crate) delivery: Option<Delivery>,
    /// The stage the session stopped after, with --quit-after.
    pub(crate) stopped_after: Option<String>,
    /// The outcome of each further message sent over this session.
    pub(crate) more: Vec<Result<Delivery>>,
    /// The envelope recipients this session was about: all of them with a
    /// submission server, one domain's with MX delivery.
    pub(crate) recipients: Vec<String>,
    /// MX delivery: why this domain's recipients did not get the message
    /// (no session took place, or it failed). --capabilities: the
    /// certificate that did not verify, the session reported all the same.
    pub(crate) failure: Option<Error>,
}
