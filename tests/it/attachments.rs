//! Attachments that every reader decodes (issue 15, items 2 and 3): an
//! `.eml` goes as `message/rfc822` in 7bit or 8bit (RFC 2046 §5.2.1), text
//! gets its charset and goes in canonical CRLF form, and what cannot be
//! either goes byte-exact as `application/octet-stream`. Each message is
//! parsed back from the bytes the server received.

use std::fs;

use crate::common::{parse, postie, Received, ScriptedServer, ServerOptions, TestServer};
use mail_parser::{MessagePart, MimeHeaders};

/// Bytes with every bare LF as CRLF: the wire form of text and messages.
fn canonical(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 16);
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' && (i == 0 || data[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// Writes `files` (name, bytes) to a directory and sends them as
/// attachments (each spec's `PATH` is the file; options follow it).
fn send(files: &[(&str, &[u8])], specs: &[&str]) -> (Received, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in files {
        fs::write(dir.path().join(name), data).unwrap();
    }
    let srv = TestServer::start(ServerOptions::default());
    let mut cmd = postie();
    cmd.args(["--server", &srv.addr(), "-f", "a@example.com"])
        .args(["b@example.com", "--body", "see attached"]);
    for spec in specs {
        cmd.arg("-a").arg(dir.path().join(spec));
    }
    cmd.assert().success();
    (srv.wait_for_messages(1).remove(0), dir)
}

/// The attachment called `name`, and the raw bytes of its body.
fn attachment<'a>(
    raw: &'a [u8],
    msg: &'a mail_parser::Message<'a>,
    name: &str,
) -> (&'a MessagePart<'a>, &'a [u8]) {
    let part = msg
        .attachments()
        .find(|p| p.attachment_name() == Some(name))
        .unwrap_or_else(|| panic!("no attachment {name} in:\n{}", String::from_utf8_lossy(raw)));
    let body = &raw[part.raw_body_offset() as usize..part.raw_end_offset() as usize];
    (part, body)
}

fn content_type(part: &MessagePart<'_>) -> String {
    let ct = part.content_type().expect("a Content-Type");
    format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
}

fn transfer_encoding(part: &MessagePart<'_>) -> Option<String> {
    part.content_transfer_encoding()
        .map(str::to_ascii_lowercase)
}

fn charset(part: &MessagePart<'_>) -> Option<String> {
    part.content_type()
        .and_then(|ct| ct.attribute("charset"))
        .map(str::to_ascii_lowercase)
}

const EML_7BIT: &[u8] = b"From: c@example.com\nTo: d@example.com\nSubject: forwarded\n\nthe original body\n..dots stay\n";

#[test]
fn a_7bit_eml_goes_as_message_rfc822_in_7bit_with_crlf_line_ends() {
    let (got, _dir) = send(&[("fwd.eml", EML_7BIT)], &["fwd.eml"]);
    let msg = parse(&got.data);
    let (part, body) = attachment(&got.data, &msg, "fwd.eml");
    let shown = String::from_utf8_lossy(&got.data);
    assert_eq!(content_type(part), "message/rfc822", "{shown}");
    assert_eq!(transfer_encoding(part).as_deref(), Some("7bit"), "{shown}");
    assert_eq!(body, canonical(EML_7BIT).as_slice(), "{shown}");
    assert!(!got.body_8bit, "a 7-bit message needs no BODY=8BITMIME");
}

const EML_8BIT: &[u8] = "From: c@example.com\nSubject: Grüße\nContent-Type: text/plain; charset=utf-8\n\nÄpfel und Öl\n".as_bytes();

#[test]
fn an_8bit_eml_goes_in_8bit_with_body_8bitmime() {
    let (got, _dir) = send(&[("fwd.eml", EML_8BIT)], &["fwd.eml"]);
    let msg = parse(&got.data);
    let (part, body) = attachment(&got.data, &msg, "fwd.eml");
    let shown = String::from_utf8_lossy(&got.data);
    assert_eq!(content_type(part), "message/rfc822", "{shown}");
    assert_eq!(transfer_encoding(part).as_deref(), Some("8bit"), "{shown}");
    assert_eq!(body, canonical(EML_8BIT).as_slice(), "{shown}");
    assert!(got.body_8bit, "MAIL FROM carries BODY=8BITMIME");
}

#[test]
fn an_8bit_eml_to_a_server_without_8bitmime_is_69() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fwd.eml");
    fs::write(&file, EML_8BIT).unwrap();
    let srv = ScriptedServer::start(
        b"220 plain.test\r\n",
        vec![b"250 plain.test\r\n".to_vec(), b"221 bye\r\n".to_vec()],
    );
    let out = postie()
        .args(["--server", &srv.addr(), "-f", "a@example.com"])
        .args(["b@example.com", "--body", "see attached", "-a"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("does not support 8BITMIME"), "{stderr}");
}

#[test]
fn an_eml_with_a_nul_goes_as_octet_stream_in_base64_byte_exact() {
    let data: &[u8] = b"Subject: broken\n\nnul \0 here\r\nbare cr \r there\n";
    let (got, _dir) = send(&[("bad.eml", data)], &["bad.eml"]);
    let msg = parse(&got.data);
    let (part, _) = attachment(&got.data, &msg, "bad.eml");
    let shown = String::from_utf8_lossy(&got.data);
    assert_eq!(content_type(part), "application/octet-stream", "{shown}");
    assert_eq!(
        transfer_encoding(part).as_deref(),
        Some("base64"),
        "{shown}"
    );
    assert_eq!(part.contents(), data);
    assert!(!shown.contains("message/rfc822"), "{shown}");
}

const UTF8_TEXT: &[u8] = "Zeile eins\nZeile zwei: äöü\nletzte Zeile\n".as_bytes();

#[test]
fn utf8_text_gets_its_charset_and_quoted_printable_with_real_line_breaks() {
    let (got, _dir) = send(&[("notes.txt", UTF8_TEXT)], &["notes.txt"]);
    let msg = parse(&got.data);
    let (part, body) = attachment(&got.data, &msg, "notes.txt");
    let shown = String::from_utf8_lossy(&got.data);
    assert_eq!(content_type(part), "text/plain", "{shown}");
    assert_eq!(charset(part).as_deref(), Some("utf-8"), "{shown}");
    assert_eq!(
        transfer_encoding(part).as_deref(),
        Some("quoted-printable"),
        "{shown}"
    );
    // Real line breaks, not one line of =0A.
    let body = String::from_utf8_lossy(body);
    assert!(!body.contains("=0A") && body.lines().count() == 3, "{body}");
    assert_eq!(part.contents(), canonical(UTF8_TEXT).as_slice());
}

#[test]
fn latin1_text_goes_byte_exact_as_octet_stream_unless_typed() {
    let data: &[u8] = b"Gr\xfc\xdfe aus K\xf6ln\n";
    let (got, _dir) = send(
        &[("latin.txt", data), ("typed.txt", data)],
        &["latin.txt", "typed.txt;type=text/plain"],
    );
    let msg = parse(&got.data);
    let shown = String::from_utf8_lossy(&got.data);
    let (latin, _) = attachment(&got.data, &msg, "latin.txt");
    assert_eq!(content_type(latin), "application/octet-stream", "{shown}");
    assert_eq!(latin.contents(), data);
    // ;type= is kept, with no charset postie cannot know.
    let (typed, body) = attachment(&got.data, &msg, "typed.txt");
    assert_eq!(content_type(typed), "text/plain", "{shown}");
    assert_eq!(charset(typed), None, "{shown}");
    assert_eq!(
        transfer_encoding(typed).as_deref(),
        Some("base64"),
        "{shown}"
    );
    let decoded = mail_parser::decoders::base64::base64_decode(body).expect("base64");
    assert_eq!(decoded, data);
}

#[test]
fn type_octet_stream_keeps_a_text_file_byte_exact() {
    let (got, _dir) = send(
        &[("notes.txt", UTF8_TEXT)],
        &[
            "notes.txt",
            "notes.txt;type=application/octet-stream;name=raw.txt",
        ],
    );
    let msg = parse(&got.data);
    let shown = String::from_utf8_lossy(&got.data);
    let (text, _) = attachment(&got.data, &msg, "notes.txt");
    assert_eq!(charset(text).as_deref(), Some("utf-8"), "{shown}");
    assert_eq!(text.contents(), canonical(UTF8_TEXT).as_slice());
    let (raw, _) = attachment(&got.data, &msg, "raw.txt");
    assert_eq!(content_type(raw), "application/octet-stream", "{shown}");
    assert_eq!(raw.contents(), UTF8_TEXT, "LF line ends kept");
}

#[test]
fn a_large_utf8_text_file_is_streamed_byte_exact_with_its_charset() {
    // Over the 1 MiB in-memory threshold: base64, byte-exact.
    let data = "Zeile mit ä\n".repeat(100_000).into_bytes();
    let (got, _dir) = send(&[("big.txt", &data)], &["big.txt"]);
    let msg = parse(&got.data);
    let (part, _) = attachment(&got.data, &msg, "big.txt");
    assert_eq!(charset(part).as_deref(), Some("utf-8"));
    assert_eq!(transfer_encoding(part).as_deref(), Some("base64"));
    assert!(part.contents() == data.as_slice(), "byte for byte");
}
