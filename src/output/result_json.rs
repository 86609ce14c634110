//! `--json` on a send: one document on stdout saying what became of each
//! message and each of its recipients, so that a script can record the
//! queue IDs or try again only the recipients still owed (with --partial).
//!
//! The format is versioned ([`VERSION`]): fields may be added within a
//! version; renaming or removing one, or changing its meaning, takes a new
//! version. postie(1) documents it (section JSON RESULT).
//!
//! Belongs here: the published values and their printing. Not here:
//! deciding what happened (`outcome` fills these values).

use std::io::Write;

use serde::Serialize;

use crate::exit::{io_reason, Error, Exit, Result};

/// The `version` field of the document.
pub(crate) const VERSION: u32 = 1;

/// The whole document.
#[derive(Debug, Serialize)]
struct Document<'a> {
    version: u32,
    /// The exit status postie ends with.
    exit: u8,
    /// The last line postie prints on stderr when it fails, else null.
    error: Option<String>,
    messages: &'a [MessageResult],
}

/// One message of the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct MessageResult {
    /// What postie's stderr lines call it: the --message file, or "the message".
    pub(crate) label: String,
    /// Its Message-ID header as sent, angle brackets included; null for a
    /// test that sent no message.
    pub(crate) message_id: Option<String>,
    /// The envelope sender (MAIL FROM), "" for the null sender.
    pub(crate) sender: String,
    /// Each SMTP session that handled the message: one with a submission
    /// server (the one that answered, after a failover), one per
    /// recipient domain with --mx; none when no server was reached.
    pub(crate) sessions: Vec<SessionResult>,
    /// Every envelope recipient, in the order given.
    pub(crate) recipients: Vec<RecipientResult>,
}

/// One SMTP session: where, and how it was protected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct SessionResult {
    /// "host:port (address)".
    pub(crate) server: String,
    pub(crate) tls: TlsUsed,
}

/// Whether the session was encrypted, and how it got there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TlsUsed {
    /// Plain text throughout.
    None,
    /// Upgraded with STARTTLS before the message was sent.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

/// What became of one recipient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct RecipientResult {
    pub(crate) address: String,
    pub(crate) outcome: RecipientOutcome,
    /// The server that took or refused it, "host:port (address)"; null when
    /// none answered for it.
    pub(crate) server: Option<String>,
    /// The server's own reply: to the end of DATA when delivered, to RCPT
    /// when refused or deferred by recipient (--partial); null when the
    /// failure was not one reply about this recipient.
    pub(crate) reply: Option<String>,
    /// postie's account of a failure, as its stderr line says it; null when
    /// delivered.
    pub(crate) error: Option<String>,
    /// The queue entry that holds the message for it (`postie queue show ID`).
    pub(crate) queue_id: Option<String>,
}

/// A recipient's end, as `outcome` decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RecipientOutcome {
    /// The server took the message for it.
    Delivered,
    /// A temporary failure; the message waits in the queue (`queue_id`).
    Queued,
    /// A temporary failure and no queue: worth sending again later.
    Owed,
    /// A permanent failure: sending again will not help.
    Refused,
}

/// The document as text, with a final newline.
pub(crate) fn render(status: &Result<()>, messages: &[MessageResult]) -> String {
    let document = Document {
        version: VERSION,
        exit: status.as_ref().err().map_or(0, |err| err.exit.code()),
        error: status.as_ref().err().map(ToString::to_string),
        messages,
    };
    // Plain strings, enums and lists: serialising cannot fail.
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    text
}

/// Prints the document on stdout. A reader that went away is no failure.
pub(crate) fn print(status: &Result<()>, messages: &[MessageResult]) -> Result<()> {
    let text = render(status, messages);
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::new(
            Exit::IoErr,
            format!(
                "cannot write the JSON result to standard output: {}",
                io_reason(&err)
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_gives_its_code_and_line_and_the_fields_keep_their_names() {
        let message = MessageResult {
            label: "the message".into(),
            message_id: Some("<id@x>".into()),
            sender: "s@x".into(),
            sessions: vec![SessionResult {
                server: "mx:25 (127.0.0.1:25)".into(),
                tls: TlsUsed::Starttls,
            }],
            recipients: vec![RecipientResult {
                address: "a@x".into(),
                outcome: RecipientOutcome::Queued,
                server: Some("mx:25 (127.0.0.1:25)".into()),
                reply: Some("451 later".into()),
                error: Some("RCPT TO: mx replied 451 later".into()),
                queue_id: Some("q1".into()),
            }],
        };
        let status = Err(Error::new(Exit::NoUser, "refused"));
        let value: serde_json::Value = serde_json::from_str(&render(&status, &[message])).unwrap();
        assert_eq!(value["version"], 1);
        assert_eq!(value["exit"], 67);
        assert_eq!(value["error"], "refused (EX_NOUSER 67)");
        let recipient = &value["messages"][0]["recipients"][0];
        assert_eq!(recipient["outcome"], "queued");
        assert_eq!(recipient["queue_id"], "q1");
        assert_eq!(value["messages"][0]["sessions"][0]["tls"], "starttls");
        assert_eq!(value["messages"][0]["message_id"], "<id@x>");
        let ok: serde_json::Value = serde_json::from_str(&render(&Ok(()), &[])).unwrap();
        assert_eq!(ok["exit"], 0);
        assert!(ok["error"].is_null());
    }
}
