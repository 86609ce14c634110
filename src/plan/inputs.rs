//! What a plan reads from files and standard input: the text body
//! (--body-file, or stdin when it is not a terminal), the HTML part,
//! attachments and inline parts, and ready-made messages (--message,
//! sendmail mode's stdin), each checked as it is read.
//!
//! Belongs here: opening and decoding input, and composing the draft from
//! it. Not here: who the mail goes to ([`super::recipients`]), where it is
//! sent ([`super::server`]), the MIME encoding itself (`mail`).

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use mail_builder::headers::date::Date;

use crate::cli::args::Cli;
use crate::config::aliases::LocalRules;
use crate::config::file::Account;
use crate::exit::{io_reason, Error, Exit, Result};
use crate::mail::address::Mailbox;
use crate::mail::compose::{self, check_one_line, Draft, FileData, FilePart, FileRole};
use crate::mail::content::SpooledFile;
use crate::mail::message::{self, ReadyMessage};
use crate::mail::spool::{self, read_crlf};
use crate::mail::transportable::{make_transportable, Transportable};
use crate::plan::precedence::Selected;
use crate::plan::recipients::{
    mailboxes, qualified, qualified_sender, recipient_lists, unique_addresses,
};
use crate::plan::server::local_hostname;
use crate::types::Envelope;

/// Where the body may come from when no flag names it.
pub(crate) struct Stdin<'a> {
    pub(crate) reader: &'a mut dyn Read,
    pub(crate) is_terminal: bool,
}

/// Where a large attachment read from standard input (`-a -`) is spooled:
/// the queue's `tmp/` (else $TMPDIR), the file system sized for mail.
pub(crate) struct Spool<'a> {
    pub(crate) dir: Option<&'a Path>,
}

/// A --message (or sendmail's stdin): read, checked, and prepared.
pub(crate) fn ready_made(
    cli: &Cli,
    account: &Account,
    local: &LocalRules,
    path: &Path,
    stdin: Stdin<'_>,
    max_size: u64,
) -> Result<(Envelope, Transportable)> {
    // Read with CRLF line endings as they come: converting afterwards
    // would hold a large message twice (sendmail mode spools the input,
    // and this is its only copy in memory).
    let limit = max_size.saturating_add(1);
    let mut bytes = if path.as_os_str() == "-" {
        read_crlf(stdin.reader, 0, limit).map_err(|err| {
            Error::new(
                Exit::IoErr,
                format!(
                    "cannot read the message from standard input: {}",
                    io_reason(&err)
                ),
            )
        })?
    } else {
        std::fs::File::open(path)
            .and_then(|mut file| {
                let len = file.metadata()?.len();
                read_crlf(&mut file, len, limit)
            })
            .map_err(|err| Error::input("message file", path, &err))?
    };
    // Counted after CRLF, as the server counts it (RFC 1870 SIZE).
    if bytes.len() as u64 > max_size {
        return Err(Error::data(format!(
            "the message is more than max_message_size ({max_size} octets)"
        ))
        .hint("raise max_message_size in the config, or send less"));
    }
    if cli.dot_ends_message {
        message::cut_at_lone_dot(&mut bytes);
    }
    let parsed = ReadyMessage::parse(bytes)?;
    let recipients = mailboxes(&cli.recipients)?;
    let sender = cli.from.as_deref().map(Mailbox::parse).transpose()?;
    let account_from = account.from.as_deref().map(Mailbox::parse).transpose()?;
    if let Some(name) = &cli.full_name {
        check_one_line("the full name", name)?;
    }
    let (envelope, bytes) = message::prepare(
        parsed,
        &message::Options {
            recipients: &recipients,
            read_recipients: cli.read_recipients,
            sender: sender.as_ref(),
            full_name: cli.full_name.as_deref(),
            account_from: account_from.as_ref(),
            policy: account.from_policy.unwrap_or_default(),
            local,
        },
    )?;
    // Here, not at the server: a strict one refuses long lines only after
    // the whole upload, with a 5xx that nothing retries.
    Ok((envelope, make_transportable(bytes)?))
}

pub(crate) fn draft_and_envelope(
    cli: &Cli,
    selected: &Selected,
    local: &LocalRules,
    stdin: Stdin<'_>,
    spool: Spool<'_>,
) -> Result<(Draft, Envelope)> {
    let from_text = selected.merged.from.as_deref().ok_or_else(|| {
        Error::usage("no sender address")
            .hint("give --from, set POSTIE_FROM, or set `from` in the config's account")
    })?;
    let (from, sender) = qualified_sender(Mailbox::parse(from_text)?, local, &selected.account)?;
    let (to, cc, bcc) = recipient_lists(cli, local)?;
    if to.is_empty() && cc.is_empty() && bcc.is_empty() {
        return Err(
            Error::usage("no recipients").hint("name them as arguments or with --to, --cc, --bcc")
        );
    }
    if let Some(subject) = &cli.subject {
        check_one_line("the subject", subject)?;
    }
    let headers = compose::parse_headers(&cli.headers)?;
    let html = cli
        .html
        .as_deref()
        .map(|path| read_utf8("HTML file", path))
        .transpose()?;
    let stdin_parts = cli
        .attachments
        .iter()
        .chain(&cli.inline)
        .filter(|spec| compose::reads_stdin(spec))
        .count();
    if stdin_parts > 1 {
        return Err(Error::usage(
            "standard input can be attached only once (-a - or --inline -)",
        ));
    }
    let (text, mut stdin) = if stdin_parts == 1 {
        (body_beside_stdin_part(cli, html.is_some())?, Some(stdin))
    } else {
        (body_text(cli, html.is_some(), stdin)?, None)
    };
    let text = text_alternative(text, html.as_deref(), cli.no_text_alternative);
    let mut read_stdin = || match stdin.take() {
        Some(stdin) => stdin_part(stdin.reader, &spool),
        None => Err(Error::usage(
            "standard input can be attached only once (-a - or --inline -)",
        )),
    };
    let attachments = cli
        .attachments
        .iter()
        .map(|spec| FilePart::load(spec, FileRole::Attachment, &mut read_stdin))
        .collect::<Result<Vec<_>>>()?;
    let inline = cli
        .inline
        .iter()
        .map(|spec| FilePart::load(spec, FileRole::Inline, &mut read_stdin))
        .collect::<Result<Vec<_>>>()?;
    compose::check_content_ids(&inline)?;

    let envelope = Envelope {
        sender,
        recipients: unique_addresses(to.iter().chain(&cc).chain(&bcc)),
        ..Envelope::default()
    };
    let draft = Draft {
        from: Some(from),
        to,
        cc,
        reply_to: qualified(mailboxes(&cli.reply_to)?, local)?,
        subject: cli.subject.clone().or_else(|| {
            cli.test_message
                .then(|| format!("postie test {}", Date::now().to_rfc822()))
        }),
        headers,
        text: text.map(crlf_lines),
        html: html.map(crlf_lines),
        attachments,
        inline,
    };
    Ok((draft, envelope))
}

/// The text beside an HTML body. An empty text (cron pipes nothing) is no
/// text: an empty alternative contradicts the HTML (SpamAssassin's
/// MPART_ALT_DIFF). Without text, the HTML rendered as plain text is the
/// alternative, unless --no-text-alternative asks for the HTML alone.
fn text_alternative(text: Option<String>, html: Option<&str>, html_alone: bool) -> Option<String> {
    let Some(html) = html else { return text };
    match text {
        Some(text) if !text.trim().is_empty() => Some(text),
        _ if html_alone => None,
        // Wrapped at 72 columns, as mail text is; links become numbered
        // footnotes. A page it cannot render goes out as HTML alone.
        _ => html2text::from_read(html.as_bytes(), 72)
            .ok()
            .filter(|rendered| !rendered.trim().is_empty()),
    }
}

/// The body when standard input is an attachment: --body, --body-file
/// (not -), --test-message, or none beside --html; never standard input.
fn body_beside_stdin_part(cli: &Cli, has_html: bool) -> Result<Option<String>> {
    let stdin_body = cli
        .body_file
        .as_deref()
        .is_some_and(|p| p.as_os_str() == "-");
    let named = cli.body.is_some() || cli.test_message || cli.body_file.is_some();
    if stdin_body || !(named || has_html) {
        return Err(Error::usage(
            "standard input is the attachment (-a -), so it cannot be the body too",
        )
        .hint("give the body with --body TEXT or --body-file PATH"));
    }
    let mut nothing: &[u8] = &[];
    body_text(
        cli,
        has_html,
        Stdin {
            reader: &mut nothing,
            is_terminal: true,
        },
    )
}

/// Standard input as an attachment's contents: in memory when small, else
/// spooled to an unlinked file and streamed from it, as large files are.
/// No size limit, as for an attached file: max_message_size is about
/// ready-made messages, and the server's SIZE is checked before sending.
fn stdin_part(reader: &mut dyn Read, spool: &Spool<'_>) -> Result<FileData> {
    let input = match spool::read(reader, spool.dir, u64::MAX)? {
        Ok(input) => input,
        Err(_) => unreachable!("no input is longer than u64::MAX octets"),
    };
    Ok(match input {
        spool::Input::Memory(bytes) => FileData::Memory(bytes),
        spool::Input::Spooled { file, len } => FileData::Spooled {
            file: SpooledFile(std::sync::Arc::new(file)),
            len,
        },
    })
}

/// The text body: --body, --body-file (- is stdin), else stdin when it is
/// not a terminal. An HTML-only message needs no text body.
fn body_text(cli: &Cli, has_html: bool, stdin: Stdin<'_>) -> Result<Option<String>> {
    if let Some(body) = &cli.body {
        return Ok(Some(body.clone()));
    }
    if cli.test_message {
        return Ok(Some(format!(
            "This is a test message sent by postie {} from {} at {}.\n",
            env!("CARGO_PKG_VERSION"),
            local_hostname(),
            Date::now().to_rfc822()
        )));
    }
    let from_stdin = match &cli.body_file {
        Some(path) if path.as_os_str() != "-" => return read_utf8("body file", path).map(Some),
        Some(_) => true,
        None => !stdin.is_terminal,
    };
    if !from_stdin {
        if has_html {
            return Ok(None);
        }
        return Err(
            Error::usage("no message body, and standard input is a terminal")
                .hint("pipe the body in, or use --body TEXT or --body-file PATH"),
        );
    }
    let mut bytes = Vec::new();
    stdin.reader.read_to_end(&mut bytes).map_err(|err| {
        Error::new(
            Exit::IoErr,
            format!(
                "cannot read the body from standard input: {}",
                io_reason(&err)
            ),
        )
    })?;
    utf8(bytes, "the body on standard input").map(Some)
}

/// Text in canonical form (RFC 2045 2.10): CRLF line breaks, which matters
/// when mail-builder picks base64 for a text part.
fn crlf_lines(text: String) -> String {
    match crate::mail::content::crlf(text.as_bytes()) {
        Cow::Borrowed(_) => text,
        // Inserting CR before LF keeps UTF-8 valid.
        Cow::Owned(fixed) => String::from_utf8(fixed).expect("CR insertion keeps UTF-8"),
    }
}

fn read_utf8(what: &str, path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|err| Error::input(what, path, &err))?;
    utf8(bytes, &format!("{what} {}", path.display()))
}

fn utf8(bytes: Vec<u8>, what: &str) -> Result<String> {
    String::from_utf8(bytes).map_err(|err| {
        Error::data(format!(
            "{what} is not UTF-8 (invalid byte at offset {})",
            err.utf8_error().valid_up_to()
        ))
        .hint("convert it (iconv -t UTF-8) or send it with --attach")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_html_body_without_text_gets_a_rendered_alternative() {
        let html = "<html><body><h1>Backup</h1><p>All <b>fine</b>.</p></body></html>";
        for empty in [None, Some(String::new()), Some(" \n".to_string())] {
            let text = text_alternative(empty.clone(), Some(html), false).unwrap();
            // Markdown-like marks for headings and bold, as html2text's
            // plain rendering writes them.
            assert!(
                text.contains("Backup") && text.contains("All **fine**."),
                "{text}"
            );
            assert!(!text.contains('<'), "{text}");
            assert_eq!(text_alternative(empty, Some(html), true), None);
        }
        assert_eq!(
            text_alternative(Some("typed\n".into()), Some(html), false).as_deref(),
            Some("typed\n")
        );
        assert_eq!(
            text_alternative(Some(String::new()), None, false).as_deref(),
            Some("")
        );
    }

    #[test]
    fn text_gets_crlf_line_breaks() {
        assert_eq!(crlf_lines("a\nb\r\nc\n".into()), "a\r\nb\r\nc\r\n");
        assert_eq!(crlf_lines("a\r\n".into()), "a\r\n");
    }
}
