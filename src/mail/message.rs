//! Ready-made messages: `--message PATH` and everything sendmail mode reads.
//!
//! The message is sent as it is, byte for byte, with the few changes a
//! submission agent owes it (RFC 6409 section 8): Bcc and Resent-Bcc are
//! removed, Date and Message-ID are added when missing, and From follows
//! the account's `from_policy`; unless that is `keep`, local names in From,
//! To and Cc (cron's `From: root (Cron Daemon)`, `To: root`) are qualified,
//! as Postfix does. Header fields are located by postie's own scan (so the
//! bytes around them are untouched) and their addresses are read with
//! mail-parser.

use std::ops::Range;

use mail_builder::headers::address::Address;
use mail_builder::headers::date::Date;
use mail_builder::headers::Header;
use mail_parser::{HeaderName, HeaderValue, MessageParser};

use crate::config::aliases::LocalRules;
use crate::config::file::FromPolicy;
use crate::exit::{Error, Exit, Result};
use crate::mail::address::{ascii_domain, ascii_mailbox, Mailbox};
use crate::mail::compose::{message_id, UNDISCLOSED_RECIPIENTS};
use crate::types::Envelope;

/// One header field: its lower-cased name and its raw bytes, continuation
/// lines and line ending included.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    name: String,
    raw: Range<usize>,
}

/// A message split into header fields and the rest.
#[derive(Debug)]
pub(crate) struct ReadyMessage {
    bytes: Vec<u8>,
    fields: Vec<Field>,
    /// Where the header block ends: the blank line (kept) and body follow.
    header_end: usize,
}

impl ReadyMessage {
    /// Checks the header block and locates every field. A line that is
    /// neither `Name: value` nor a continuation is malformed (exit 65).
    pub(crate) fn parse(mut bytes: Vec<u8>) -> Result<ReadyMessage> {
        // An mbox "From " line (no colon) is an envelope, not a header.
        if bytes.starts_with(b"From ") {
            let end = bytes
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |n| n + 1);
            bytes.drain(..end);
        }
        let mut fields: Vec<Field> = Vec::new();
        let mut at = 0;
        let mut line_number = 0;
        let header_end = loop {
            if at >= bytes.len() {
                break bytes.len();
            }
            line_number += 1;
            let end = bytes[at..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |n| at + n + 1);
            let line = &bytes[at..end];
            let content = line.strip_suffix(b"\n").unwrap_or(line);
            let content = content.strip_suffix(b"\r").unwrap_or(content);
            if content.is_empty() {
                break at;
            }
            // A CR that does not end the line is a line end to some readers
            // (mail-parser, other MTAs) and text to others (this scan), so
            // `To: a<CR>Bcc: b` would be one header here and two there: the
            // Bcc would survive and the envelope go wrong. RFC 5322 §2.2
            // allows CR only in CRLF, and no encoding applies to a whole
            // header, so the one reading both sides share is: refused.
            if let Some(column) = content.iter().position(|&b| b == b'\r') {
                return Err(Error::data(format!(
                    "malformed message: line {line_number} of the header has a CR (carriage return) at column {} that does not end the line",
                    column + 1
                ))
                .hint("end header lines with LF or CRLF, and remove CR characters from header values"));
            }
            if content[0] == b' ' || content[0] == b'\t' {
                match fields.last_mut() {
                    Some(field) => field.raw.end = end,
                    None => {
                        return Err(malformed(
                            line_number,
                            content,
                            "it starts with white space but no header precedes it",
                        ))
                    }
                }
            } else {
                let name = content
                    .iter()
                    .position(|&b| b == b':')
                    .map(|colon| &content[..colon])
                    .filter(|name| {
                        !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b))
                    })
                    .ok_or_else(|| {
                        malformed(
                            line_number,
                            content,
                            "it is not a header field ('Name: value')",
                        )
                    })?;
                fields.push(Field {
                    name: String::from_utf8_lossy(name).to_ascii_lowercase(),
                    raw: at..end,
                });
            }
            at = end;
        };
        if fields.is_empty() {
            return Err(Error::data("malformed message: it has no header fields")
                .hint("a message starts with header lines such as 'Subject: ...', then a blank line and the body"));
        }
        Ok(ReadyMessage {
            bytes,
            fields,
            header_end,
        })
    }

    fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.name == name)
    }

    /// The addresses -t sends to: Resent-To/Cc/Bcc when the message has
    /// any (it is being re-sent), else To, Cc and Bcc.
    fn header_recipients(&self) -> Vec<Mailbox> {
        let parsed = MessageParser::default().parse_headers(&self.bytes[..self.header_end]);
        let Some(parsed) = parsed else {
            return Vec::new();
        };
        let resent = [
            HeaderName::ResentTo,
            HeaderName::ResentCc,
            HeaderName::ResentBcc,
        ];
        let plain = [HeaderName::To, HeaderName::Cc, HeaderName::Bcc];
        let names = if resent
            .iter()
            .any(|name| parsed.header(name.clone()).is_some())
        {
            resent
        } else {
            plain
        };
        names
            .into_iter()
            .flat_map(|name| parsed.header_values(name).collect::<Vec<_>>())
            .filter_map(HeaderValue::as_address)
            .flat_map(|address| address.iter())
            .filter_map(|addr| {
                // mail-parser reads a bare `root` as a display name with no
                // address; for a recipient list it can only be a local name.
                let email = addr.address().or_else(|| {
                    addr.name()
                        .filter(|n| !n.trim().is_empty() && !n.trim().contains(char::is_whitespace))
                })?;
                Some(Mailbox {
                    name: None,
                    email: email.trim().to_string(),
                })
            })
            .filter(|m| !m.email.is_empty())
            .collect()
    }

    /// The first mailbox of the From header, as mail-parser reads it
    /// (`root (Cron Daemon)` gives the name "Cron Daemon").
    fn header_from(&self) -> Option<Mailbox> {
        let parsed = MessageParser::default().parse_headers(&self.bytes[..self.header_end])?;
        let first = parsed.from()?.first()?;
        let name = first
            .name()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty());
        match first.address() {
            Some(email) => Some(Mailbox {
                name,
                email: email.trim().to_string(),
            }),
            // A bare `From: root`, read as a name without an address.
            None => name
                .filter(|n| !n.contains(char::is_whitespace))
                .map(|email| Mailbox { name: None, email }),
        }
    }
}

fn malformed(line_number: usize, content: &[u8], why: &str) -> Error {
    let mut preview: String = String::from_utf8_lossy(content).chars().take(40).collect();
    if content.len() > 40 {
        preview.push_str("...");
    }
    Error::data(format!(
        "malformed message: line {line_number} ({preview:?}): {why}"
    ))
    .hint(
        "a message starts with header lines such as 'Subject: ...', then a blank line and the body",
    )
}

/// What the command line and the account say about a ready-made message.
#[derive(Debug)]
pub(crate) struct Options<'a> {
    /// Recipients given as arguments (envelope only).
    pub(crate) recipients: &'a [Mailbox],
    /// -t: add the header recipients.
    pub(crate) read_recipients: bool,
    /// -f: the envelope sender asked for.
    pub(crate) sender: Option<&'a Mailbox>,
    /// -F: the display name for a From that postie adds.
    pub(crate) full_name: Option<&'a str>,
    /// The account's `from`.
    pub(crate) account_from: Option<&'a Mailbox>,
    pub(crate) policy: FromPolicy,
    pub(crate) local: &'a LocalRules,
}

/// Turns a ready-made message into its envelope and the bytes to send.
pub(crate) fn prepare(message: ReadyMessage, options: &Options<'_>) -> Result<(Envelope, Vec<u8>)> {
    let mut wanted: Vec<Mailbox> = options.recipients.to_vec();
    if options.read_recipients {
        wanted.extend(message.header_recipients());
    }
    let mut recipients: Vec<String> = Vec::new();
    for mailbox in &wanted {
        for address in options.local.expand(&mailbox.email)? {
            let address = ascii_domain(&address)?;
            if !recipients.iter().any(|r| r.eq_ignore_ascii_case(&address)) {
                recipients.push(address);
            }
        }
    }
    if recipients.is_empty() {
        let hint = if options.read_recipients {
            "the message has no To, Cc or Bcc, and no recipient was given as an argument"
        } else {
            "name them as arguments, or use -t to take them from the message's headers"
        };
        return Err(Error::usage("no recipients").hint(hint));
    }

    let header_from = message.header_from();
    let (sender, new_from, resender) =
        sender_and_from(message.has("from"), header_from.as_ref(), options)?;
    // The envelope and a From postie writes get A-labels (IDNA); the
    // message's own headers stay as they are.
    let sender = ascii_domain(&sender)?;
    let new_from = new_from.as_ref().map(ascii_mailbox).transpose()?;
    let resender = ascii_mailbox(&resender)?;
    // postie resends only when -t takes the Resent-* recipients; otherwise
    // the Resent block is another agent's, complete or not.
    let resends = options.read_recipients
        && ["resent-to", "resent-cc", "resent-bcc"]
            .iter()
            .any(|name| message.has(name));
    // CRLF here rather than only on the wire, so that --dry-run shows the
    // exact bytes.
    let qualify_headers = (options.policy != FromPolicy::Keep).then_some(options.local);
    let bytes = rewrite(
        message,
        new_from.as_ref(),
        resends.then_some(&resender),
        &sender,
        qualify_headers,
    );
    // Borrowed (no copy) when the reader already made the line endings
    // CRLF, as plan::inputs::ready_made does.
    let bytes = match crate::mail::content::crlf(&bytes) {
        std::borrow::Cow::Borrowed(_) => bytes,
        std::borrow::Cow::Owned(fixed) => fixed,
    };
    let envelope = Envelope {
        sender,
        recipients,
        ..Envelope::default()
    };
    Ok((envelope, bytes))
}

/// The envelope sender, the From header to write (None: keep as is), and
/// who postie resends as (the Resent-From it adds), named as a From that
/// postie adds would be.
fn sender_and_from(
    has_from: bool,
    header_from: Option<&Mailbox>,
    options: &Options<'_>,
) -> Result<(String, Option<Mailbox>, Mailbox)> {
    let qualify = |mailbox: &Mailbox| -> Result<String> {
        options
            .local
            .qualify_sender(&mailbox.email)
            // Without local_domain, cron's `-f root` becomes the account's
            // own address: a server refuses `root`, and the report is lost.
            .or_else(|| {
                options
                    .account_from
                    .and_then(|own| options.local.qualify_sender(&own.email))
            })
            .ok_or_else(|| {
                Error::new(
                    Exit::Config,
                    format!("sender {:?} has no domain", mailbox.email),
                )
                .hint("set `from` or local_domain in the account, or pass -f user@domain")
            })
    };
    if options.policy == FromPolicy::Override {
        let account_from = options.account_from.ok_or_else(|| {
            Error::config("from_policy = \"override\" needs `from` in the account")
        })?;
        let name = header_from
            .and_then(|m| m.name.clone())
            .or_else(|| options.full_name.map(str::to_string))
            .or_else(|| account_from.name.clone());
        let sender = qualify(account_from)?;
        let resender = Mailbox {
            name: options
                .full_name
                .map(str::to_string)
                .or_else(|| account_from.name.clone()),
            email: sender.clone(),
        };
        let from = Mailbox {
            name,
            email: sender.clone(),
        };
        return Ok((sender, Some(from), resender));
    }
    let chosen = options
        .sender
        .or(options.account_from)
        .or(header_from)
        .ok_or_else(|| {
            Error::usage("no sender address")
                .hint("pass -f ADDRESS, or set `from` in the config's account")
        })?;
    let sender = qualify(chosen)?;
    let resender = Mailbox {
        name: options
            .full_name
            .map(str::to_string)
            .or_else(|| chosen.name.clone()),
        email: sender.clone(),
    };
    let new_from = match (options.policy, header_from) {
        (FromPolicy::Fill, _) if !has_from => Some(Mailbox {
            name: options
                .full_name
                .map(str::to_string)
                .or_else(|| chosen.name.clone()),
            email: sender.clone(),
        }),
        // A From with a bare local name is useless to any recipient; qualify
        // it as Postfix does, keeping the display name.
        (FromPolicy::Fill, Some(from)) if from.is_local() => options
            .local
            .qualify_header(&from.email)
            .map(|email| Mailbox {
                name: from.name.clone(),
                email,
            }),
        _ => None,
    };
    Ok((sender, new_from, resender))
}

/// The message with Bcc removed, From replaced or added, To and Cc with
/// their local names qualified when `qualify` says how, and Date and
/// Message-ID added when missing; every other byte as it was. A message
/// whose only recipient header was Bcc gets `To: undisclosed-recipients:;`,
/// and when postie resends (`resender`), the topmost Resent block gets the
/// Resent-Date and Resent-From RFC 5322 3.6.6 requires, when it lacks them.
///
/// Only the header block is written anew; the body stays where it is in
/// the message's buffer, so a large message is not copied.
fn rewrite(
    message: ReadyMessage,
    new_from: Option<&Mailbox>,
    resender: Option<&Mailbox>,
    sender: &str,
    qualify: Option<&LocalRules>,
) -> Vec<u8> {
    let bytes = &message.bytes;
    let mut out = Vec::with_capacity(message.header_end + 256);
    let mut from_written = false;
    let is_resent = |field: &Field| field.name.starts_with("resent-");
    // The topmost Resent block: the run of Resent-* fields that starts at
    // the first one, up to a name it already holds (the next block's).
    let resent_at = message.fields.iter().position(is_resent);
    let resent_block: &[Field] = match resent_at {
        Some(at) => {
            let mut seen = std::collections::HashSet::new();
            let len = message.fields[at..]
                .iter()
                .take_while(|field| is_resent(field) && seen.insert(field.name.as_str()))
                .count();
            &message.fields[at..at + len]
        }
        None => &[],
    };
    let block_has = |name: &str| resent_block.iter().any(|field| field.name == name);
    for (index, field) in message.fields.iter().enumerate() {
        if let (Some(resender), true) = (resender, resent_at == Some(index)) {
            if !block_has("resent-date") {
                out.extend_from_slice(b"Resent-Date: ");
                out.extend_from_slice(Date::now().to_rfc822().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            if !block_has("resent-from") {
                out.extend_from_slice(b"Resent-From: ");
                Address::new_address(resender.name.as_deref(), resender.email.as_str())
                    .write_header(&mut out, 13);
            }
        }
        match field.name.as_str() {
            "bcc" | "resent-bcc" => continue,
            "from" if new_from.is_some() => {
                if !from_written {
                    write_from(&mut out, new_from.expect("checked"));
                    from_written = true;
                }
                continue;
            }
            name @ ("to" | "cc") => {
                let raw = &bytes[field.raw.clone()];
                match qualify.and_then(|local| qualified_field(raw, name, local)) {
                    Some(rewritten) => out.extend_from_slice(&rewritten),
                    None => out.extend_from_slice(raw),
                }
            }
            _ => out.extend_from_slice(&bytes[field.raw.clone()]),
        }
    }
    if !out.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    if let (Some(from), false) = (new_from, from_written) {
        write_from(&mut out, from);
    }
    if message.has("bcc") && !message.has("to") && !message.has("cc") {
        out.extend_from_slice(b"To: ");
        out.extend_from_slice(UNDISCLOSED_RECIPIENTS.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !message.has("date") {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(Date::now().to_rfc822().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !message.has("message-id") {
        out.extend_from_slice(b"Message-ID: ");
        out.extend_from_slice(message_id(sender).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let header_end = message.header_end;
    let mut bytes = message.bytes;
    if header_end == bytes.len() {
        out.extend_from_slice(b"\r\n");
    }
    bytes.splice(..header_end, out);
    bytes
}

/// A To or Cc field with its local names qualified (`To: root` becomes
/// `To: root@example.com`), or None to keep it as it is: when it names no
/// local user, when no domain is known, or when it holds what a rewrite
/// would not reproduce (a group, a name without an address).
fn qualified_field(raw: &[u8], name: &str, local: &LocalRules) -> Option<Vec<u8>> {
    let parsed = MessageParser::default().parse_headers(raw)?;
    let header = if name == "to" {
        HeaderName::To
    } else {
        HeaderName::Cc
    };
    let HeaderValue::Address(mail_parser::Address::List(list)) = parsed.header(header)? else {
        return None;
    };
    let mut changed = false;
    let mut addresses = Vec::with_capacity(list.len());
    for addr in list {
        let (display, email) = match addr.address() {
            Some(email) => (addr.name(), email.trim()),
            // mail-parser reads a bare `root` as a name with no address.
            None => (None, addr.name()?.trim()),
        };
        if email.is_empty() || email.contains(char::is_whitespace) {
            return None;
        }
        let email = if email.contains('@') {
            email.to_string()
        } else {
            changed = true;
            local.qualify_header(email)?
        };
        let display = display.map(str::trim).filter(|n| !n.is_empty());
        addresses.push(Address::new_address(display.map(str::to_string), email));
    }
    if !changed {
        return None;
    }
    let label = if name == "to" { "To: " } else { "Cc: " };
    let mut out = label.as_bytes().to_vec();
    Address::new_list(addresses).write_header(&mut out, label.len());
    Some(out)
}

fn write_from(out: &mut Vec<u8>, from: &Mailbox) {
    out.extend_from_slice(b"From: ");
    Address::new_address(from.name.as_deref(), from.email.as_str()).write_header(out, 6);
}

/// sendmail without -i: the message ends at a line holding a single dot.
pub(crate) fn cut_at_lone_dot(bytes: &mut Vec<u8>) {
    let mut at = 0;
    while at < bytes.len() {
        let end = bytes[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |n| at + n + 1);
        let line = &bytes[at..end];
        if matches!(line, b".\n" | b".\r\n" | b".") {
            bytes.truncate(at);
            return;
        }
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRON: &[u8] = b"From: root (Cron Daemon)\nTo: root\nBcc: hidden@example.com,\n  other@example.com\nSubject: Cron <root@host> run-parts\nX-Cron-Env: <SHELL=/bin/sh>\n\nbody line\n.leading dot\n";

    fn local(domain: Option<&str>) -> LocalRules {
        LocalRules {
            local_domain: domain.map(str::to_string),
            ..LocalRules::default()
        }
    }

    fn options<'a>(
        local: &'a LocalRules,
        account_from: Option<&'a Mailbox>,
        policy: FromPolicy,
    ) -> Options<'a> {
        Options {
            recipients: &[],
            read_recipients: true,
            sender: None,
            full_name: None,
            account_from,
            policy,
            local,
        }
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn bcc_is_removed_with_its_continuation_and_the_rest_kept() {
        let local = local(Some("host.example"));
        let (envelope, bytes) = prepare(
            ReadyMessage::parse(CRON.to_vec()).unwrap(),
            &options(&local, None, FromPolicy::Keep),
        )
        .unwrap();
        let out = text(&bytes);
        assert!(!out.contains("hidden@"), "{out}");
        assert!(!out.contains("other@"), "{out}");
        assert!(out.starts_with("From: root (Cron Daemon)\r\nTo: root\r\nSubject: Cron <root@host> run-parts\r\nX-Cron-Env: <SHELL=/bin/sh>\r\n"), "{out}");
        assert!(
            out.ends_with("\r\n\r\nbody line\r\n.leading dot\r\n"),
            "{out}"
        );
        assert!(
            out.contains("\r\nDate: ") || out.contains("\nDate: "),
            "{out}"
        );
        assert!(out.contains("Message-ID: <"), "{out}");
        assert_eq!(
            envelope.recipients,
            [
                "root@host.example",
                "hidden@example.com",
                "other@example.com"
            ]
        );
        assert_eq!(envelope.sender, "root@host.example");
    }

    #[test]
    fn override_keeps_the_display_name_and_uses_the_account_address() {
        let local = local(None);
        let account = Mailbox::parse("Server <server@example.com>").unwrap();
        let (envelope, bytes) = prepare(
            ReadyMessage::parse(CRON.to_vec()).unwrap(),
            &Options {
                recipients: &[Mailbox::parse("admin@example.com").unwrap()],
                read_recipients: false,
                ..options(&local, Some(&account), FromPolicy::Override)
            },
        )
        .unwrap();
        assert_eq!(envelope.sender, "server@example.com");
        assert_eq!(envelope.recipients, ["admin@example.com"]);
        let out = text(&bytes);
        assert!(
            out.starts_with("From: \"Cron Daemon\" <server@example.com>\r\n"),
            "{out}"
        );
        assert_eq!(out.matches("From:").count(), 1, "{out}");
    }

    #[test]
    fn fill_adds_from_with_full_name_when_missing() {
        let local = local(None);
        let sender = Mailbox::parse("me@example.com").unwrap();
        let (_, bytes) = prepare(
            ReadyMessage::parse(b"To: a@example.com\r\nSubject: x\r\n\r\nhi\r\n".to_vec()).unwrap(),
            &Options {
                sender: Some(&sender),
                full_name: Some("Backup Job"),
                ..options(&local, None, FromPolicy::Fill)
            },
        )
        .unwrap();
        let out = text(&bytes);
        assert!(
            out.contains("\r\nFrom: \"Backup Job\" <me@example.com>\r\n"),
            "{out}"
        );
        assert!(out.ends_with("\r\n\r\nhi\r\n"), "{out}");
    }

    #[test]
    fn unqualified_sender_without_fix_is_a_config_error() {
        let local = local(None);
        let err = prepare(
            ReadyMessage::parse(CRON.to_vec()).unwrap(),
            &Options {
                recipients: &[Mailbox::parse("a@example.com").unwrap()],
                read_recipients: false,
                ..options(&local, None, FromPolicy::Fill)
            },
        )
        .unwrap_err();
        assert_eq!(err.exit, Exit::Config);
        assert!(err.to_string().contains("local_domain"), "{err}");
    }

    #[test]
    fn fill_qualifies_local_names_in_from_to_and_cc_with_the_account_domain() {
        let local = LocalRules {
            from_domain: Some("example.com".into()),
            ..local(None)
        };
        let account = Mailbox::parse("Reports <reports@example.com>").unwrap();
        let root = Mailbox::parse("root").unwrap();
        let message = b"From: root (Cron Daemon)\nTo: root, \"Ops\" <ops@example.org>\nCc: Web <www-data>\nReply-To: root\n\nx\n";
        let (envelope, bytes) = prepare(
            ReadyMessage::parse(message.to_vec()).unwrap(),
            &Options {
                recipients: &[Mailbox::parse("a@example.com").unwrap()],
                read_recipients: false,
                sender: Some(&root),
                ..options(&local, Some(&account), FromPolicy::Fill)
            },
        )
        .unwrap();
        assert_eq!(envelope.sender, "reports@example.com");
        let out = text(&bytes);
        assert!(
            out.starts_with("From: \"Cron Daemon\" <root@example.com>\r\nTo: <root@example.com>, \"Ops\" <ops@example.org>\r\nCc: \"Web\" <www-data@example.com>\r\nReply-To: root\r\n"),
            "{out}"
        );
    }

    #[test]
    fn resent_headers_replace_to_cc_bcc_for_t() {
        let message = b"From: a@example.com\nTo: old@example.com\nResent-To: new@example.com\nResent-Bcc: secret@example.com\n\nx\n";
        let local = local(None);
        let (envelope, bytes) = prepare(
            ReadyMessage::parse(message.to_vec()).unwrap(),
            &options(&local, None, FromPolicy::Keep),
        )
        .unwrap();
        assert_eq!(
            envelope.recipients,
            ["new@example.com", "secret@example.com"]
        );
        assert!(!text(&bytes).contains("secret@"));
    }

    #[test]
    fn a_resend_gets_resent_date_and_from_in_the_topmost_block_only() {
        let message = b"Resent-To: new@example.com\nResent-Bcc: s@example.com\nResent-To: older@example.com\nResent-From: old@example.com\nResent-Date: Mon, 23 Nov 2026 10:00:00 +0000\nFrom: a@example.com\nTo: b@example.com\n\nx\n";
        let local = local(None);
        let sender = Mailbox::parse("Me <me@example.com>").unwrap();
        let (_, bytes) = prepare(
            ReadyMessage::parse(message.to_vec()).unwrap(),
            &Options {
                sender: Some(&sender),
                ..options(&local, None, FromPolicy::Keep)
            },
        )
        .unwrap();
        let out = text(&bytes);
        assert!(
            out.starts_with("Resent-Date: "),
            "added at the top of the block: {out}"
        );
        assert!(
            out.contains("\r\nResent-From: \"Me\" <me@example.com>\r\nResent-To: new@example.com\r\nResent-To: older@example.com\r\n"),
            "{out}"
        );
        assert_eq!(out.matches("Resent-Date:").count(), 2, "{out}");
        // Without -t, the Resent block is another agent's.
        let (_, bytes) = prepare(
            ReadyMessage::parse(message.to_vec()).unwrap(),
            &Options {
                sender: Some(&sender),
                recipients: &[Mailbox::parse("c@example.com").unwrap()],
                read_recipients: false,
                ..options(&local, None, FromPolicy::Keep)
            },
        )
        .unwrap();
        assert!(text(&bytes).starts_with("Resent-To: new@example.com\r\n"));
    }

    #[test]
    fn bcc_only_message_gets_to_undisclosed_recipients() {
        let local = local(None);
        let sender = Mailbox::parse("me@example.com").unwrap();
        for (message, added) in [
            (&b"Subject: x\nBcc: b@example.com\n\nx\n"[..], true),
            (
                b"Subject: x\nCc: c@example.com\nBcc: b@example.com\n\nx\n",
                false,
            ),
        ] {
            let (_, bytes) = prepare(
                ReadyMessage::parse(message.to_vec()).unwrap(),
                &Options {
                    sender: Some(&sender),
                    ..options(&local, None, FromPolicy::Keep)
                },
            )
            .unwrap();
            let out = text(&bytes);
            assert_eq!(
                out.contains("\r\nTo: undisclosed-recipients:;\r\n"),
                added,
                "{out}"
            );
            assert!(!out.contains("b@example.com"), "{out}");
        }
    }

    #[test]
    fn malformed_messages_say_which_line() {
        let err =
            ReadyMessage::parse(b"Subject: x\nthis is not a header\n\nbody".to_vec()).unwrap_err();
        assert_eq!(err.exit, Exit::DataErr);
        assert!(err.message.contains("line 2"), "{}", err.message);
        assert!(ReadyMessage::parse(b"".to_vec()).is_err());
        assert!(ReadyMessage::parse(b" folded\n".to_vec()).is_err());
    }

    #[test]
    fn a_bare_cr_in_the_header_is_refused_not_read_two_ways() {
        for message in [
            &b"From: a@example.com\nTo: to@example.com\rBcc: secret@example.com\n\nx\n"[..],
            b"Subject: x\r\r\nTo: to@example.com\r\n\r\nx\r\n",
        ] {
            let err = ReadyMessage::parse(message.to_vec()).unwrap_err();
            assert_eq!(err.exit, Exit::DataErr);
            assert!(err.message.contains("CR (carriage return)"), "{err}");
        }
        // In the body a bare CR is content (re-encoded later), not a line end.
        assert!(ReadyMessage::parse(b"Subject: x\r\n\r\n10%\r50%\r\n".to_vec()).is_ok());
    }

    #[test]
    fn mbox_from_line_is_dropped_and_headers_only_message_gets_a_body_separator() {
        let message = ReadyMessage::parse(b"From root Mon Nov 23 10:00:00 2026\nSubject: x\nFrom: a@example.com\nDate: Mon, 23 Nov 2026 10:00:00 +0000\nMessage-ID: <1@x>".to_vec()).unwrap();
        let local = local(None);
        let (_, bytes) = prepare(
            message,
            &Options {
                recipients: &[Mailbox::parse("b@example.com").unwrap()],
                read_recipients: false,
                ..options(&local, None, FromPolicy::Keep)
            },
        )
        .unwrap();
        assert_eq!(
            text(&bytes),
            "Subject: x\r\nFrom: a@example.com\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\n"
        );
    }

    #[test]
    fn lone_dot_ends_input() {
        let mut bytes = b"Subject: x\n\nline\n.\nafter\n".to_vec();
        cut_at_lone_dot(&mut bytes);
        assert_eq!(bytes, b"Subject: x\n\nline\n");
        let mut kept = b"a\n..\n.x\n".to_vec();
        cut_at_lone_dot(&mut kept);
        assert_eq!(kept, b"a\n..\n.x\n");
    }
}
