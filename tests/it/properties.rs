//! Property tests for message composition: postie builds messages from
//! random subjects, display names, header values, bodies and file names,
//! and mail-parser reads back what a recipient's client would show.
//!
//! Every case runs the real binary with `--dry-run`, which prints the exact
//! message bytes on stdout and the envelope on stderr and touches no
//! network; one property also sends over SMTP to a loopback server to check
//! dot transparency. Values are passed as `--flag=VALUE` so that a value
//! starting with `-` is not taken for a flag.
//!
//! Contracts checked on every message produced:
//! - no line is longer than 998 octets (RFC 5322 2.1.1);
//! - the top-level header block holds exactly the headers asked for, each
//!   once: whatever a value contains, it cannot start a header of its own;
//! - the message is 7-bit ASCII with CRLF line breaks only, no bare CR,
//!   bare LF or NUL (RFC 5322 2.3, RFC 2045 2.7). The header properties
//!   check this on every case; for bodies and attachments
//!   `output_is_clean_7bit` does, so that the round-trip properties report
//!   decoding on its own.
//!
//! Run more cases with PROPTEST_CASES=N (each property's default is small
//! because every case spawns a process).
//!
//! Failure persistence is off (this file is the only one the tests own);
//! bugs found are pinned as plain tests at the end of the file.

use std::collections::BTreeMap;
use std::process::Output;

use crate::common::{parse, postie, ServerOptions, TestServer};
use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// The sender every case uses unless it generates its own.
const FROM: &str = "sender@example.com";
/// Blanks that a reader skips after a header's colon.
const WSP: [char; 2] = [' ', '\t'];
/// The RFC 5322 limit on a line, without its CRLF.
const MAX_LINE: usize = 998;

/// One loopback SMTP server for every case (mailin's servers never stop).
fn smtp_server() -> &'static TestServer {
    static SERVER: std::sync::OnceLock<TestServer> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| TestServer::start(ServerOptions::default()))
}

/// `cases` per property, unless PROPTEST_CASES asks for another number.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            default.cases
        } else {
            cases
        },
        // Each case spawns a process: keep shrinking bounded.
        max_shrink_iters: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Running postie
// ---------------------------------------------------------------------------

/// `postie --dry-run ARGS` with `stdin` as standard input.
fn run(args: &[String], stdin: &[u8]) -> Output {
    postie()
        .arg("--dry-run")
        .args(args)
        .write_stdin(stdin.to_vec())
        .output()
        .expect("run postie")
}

/// A dry run that must succeed: (message bytes, stderr).
fn dry_run(args: &[String], stdin: &[u8]) -> Result<(Vec<u8>, String), TestCaseError> {
    let out = run(args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    prop_assert_eq!(
        out.status.code(),
        Some(0),
        "postie {:?} failed: {}",
        args,
        stderr
    );
    Ok((out.stdout, stderr))
}

/// A run that must be refused with EX_DATAERR, one line on stderr and
/// nothing on stdout.
fn refused_as_data_error(args: &[String], stdin: &[u8]) -> Result<(), TestCaseError> {
    let out = run(args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    prop_assert_eq!(out.status.code(), Some(65), "{:?}: {}", args, stderr);
    prop_assert!(out.stdout.is_empty(), "{:?} printed a message", args);
    prop_assert!(
        stderr.starts_with("postie: error: "),
        "{:?}: stderr {:?}",
        args,
        stderr
    );
    prop_assert!(
        stderr.ends_with("(EX_DATAERR 65)\n"),
        "{:?}: stderr {:?}",
        args,
        stderr
    );
    prop_assert_eq!(
        stderr.matches(['\r', '\n']).count(),
        1,
        "{:?}: stderr is not one line: {:?}",
        args,
        stderr
    );
    Ok(())
}

/// Each address once, in order, compared without case: the envelope
/// postie builds (plan/recipients.rs `unique_addresses`).
fn unique<'a>(all: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for addr in all {
        if !out.iter().any(|seen| seen.eq_ignore_ascii_case(addr)) {
            out.push(addr.to_string());
        }
    }
    out
}

/// The recipients of the envelope printed on stderr, in order.
fn envelope_recipients(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix("RCPT TO:<")?.strip_suffix('>'))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------
// Checks on the produced bytes
// ---------------------------------------------------------------------------

/// Line-length contract: every line (split at CRLF) is at most 998 octets.
/// (mail-builder keeps them to 78 but for a quoted display name or file
/// name it cannot fold, seen up to 81.)
fn check_line_lengths(raw: &[u8]) -> Result<(), TestCaseError> {
    let mut longest = 0;
    let mut start = 0;
    for (at, pair) in raw.windows(2).enumerate() {
        if pair == b"\r\n" {
            longest = longest.max(at - start);
            start = at + 2;
        }
    }
    longest = longest.max(raw.len().saturating_sub(start));
    prop_assert!(
        longest <= MAX_LINE,
        "a line of {} octets (limit {})",
        longest,
        MAX_LINE
    );
    Ok(())
}

/// Wire-form contract: 7-bit, CR and LF only as CRLF, no NUL.
fn check_wire_form(raw: &[u8]) -> Result<(), TestCaseError> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    prop_assert!(raw.is_ascii(), "8-bit octet in the output:\n{}", shown());
    for (at, &byte) in raw.iter().enumerate() {
        let before = at.checked_sub(1).map(|i| raw[i]);
        let after = raw.get(at + 1).copied();
        prop_assert!(byte != 0, "NUL at octet {} of:\n{:?}", at, shown());
        prop_assert!(
            byte != b'\r' || after == Some(b'\n'),
            "bare CR at octet {} of:\n{:?}",
            at,
            shown()
        );
        prop_assert!(
            byte != b'\n' || before == Some(b'\r'),
            "bare LF at octet {} of:\n{:?}",
            at,
            shown()
        );
    }
    Ok(())
}

/// A part's body with its transfer encoding undone: the bytes a client
/// saves. (mail-parser's `contents()` turns a text part into UTF-8 text,
/// replacing what is not UTF-8, so it cannot tell whether the bytes of a
/// `.txt` attachment arrived.)
fn saved_bytes(raw: &[u8], part: &MessagePart<'_>) -> Vec<u8> {
    let body = &raw[part.raw_body_offset() as usize..part.raw_end_offset() as usize];
    let encoding = part
        .content_transfer_encoding()
        .map(str::to_ascii_lowercase);
    match encoding.as_deref() {
        Some("base64") => base64_decode(body).expect("valid base64"),
        Some("quoted-printable") => quoted_printable_decode(body).expect("valid quoted-printable"),
        _ => body.to_vec(),
    }
}

/// True for a text/* part.
fn is_text_part(part: &MessagePart<'_>) -> bool {
    part.content_type()
        .is_some_and(|t| t.ctype().eq_ignore_ascii_case("text"))
}

/// Bytes with every bare LF as CRLF: the canonical form of text.
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

/// The `filename` parameter of a Content-Disposition value (as
/// `header_raw` gives it) as RFC 2183, RFC 2045 and RFC 2231 define it:
/// unfolded, quoted strings unescaped, `filename*` and its numbered
/// continuations percent-decoded and joined.
fn rfc_filename(field: &str) -> Option<String> {
    let unfolded = field.replace("\r\n", "");
    // Split at ';' outside quoted strings, unescaping as we go.
    let mut params: Vec<(String, String)> = Vec::new();
    let mut chars = unfolded.chars();
    let mut current = String::new();
    let mut value = String::new();
    let (mut in_value, mut quoted, mut was_quoted) = (false, false, false);
    loop {
        let ch = chars.next();
        match ch {
            Some('"') if in_value => {
                quoted = !quoted;
                was_quoted = true;
            }
            Some('\\') if quoted => value.extend(chars.next()),
            Some(c) if quoted => value.push(c),
            Some('=') if !in_value => in_value = true,
            Some(';') | None => {
                if in_value {
                    let v = if was_quoted {
                        value.clone()
                    } else {
                        value.trim().to_string()
                    };
                    params.push((current.trim().to_ascii_lowercase(), v));
                }
                current.clear();
                value.clear();
                (in_value, was_quoted) = (false, false);
                if ch.is_none() {
                    break;
                }
            }
            Some(c) if in_value => {
                if !c.is_ascii_whitespace() {
                    value.push(c)
                }
            }
            Some(c) => current.push(c),
        }
    }
    let percent_decoded = |text: &str| -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut bytes = text.bytes();
        while let Some(b) = bytes.next() {
            if b == b'%' {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            } else {
                out.push(b);
            }
        }
        Some(out)
    };
    // The charset'language' prefix of the first extended value.
    let without_charset = |text: &str| -> Option<String> {
        let (charset, rest) = text.split_once('\'')?;
        let (_, rest) = rest.split_once('\'')?;
        matches!(charset.to_ascii_lowercase().as_str(), "utf-8" | "us-ascii")
            .then(|| rest.to_string())
    };
    if let Some((_, v)) = params.iter().find(|(n, _)| n == "filename*") {
        return String::from_utf8(percent_decoded(&without_charset(v)?)?).ok();
    }
    let mut sections: Vec<(u32, bool, &str)> = params
        .iter()
        .filter_map(|(n, v)| {
            let rest = n.strip_prefix("filename*")?;
            let (number, extended) = match rest.strip_suffix('*') {
                Some(number) => (number, true),
                None => (rest, false),
            };
            Some((number.parse().ok()?, extended, v.as_str()))
        })
        .collect();
    if sections.is_empty() {
        return params
            .iter()
            .find(|(n, _)| n == "filename")
            .map(|(_, v)| v.clone());
    }
    sections.sort_by_key(|(number, _, _)| *number);
    let mut bytes = Vec::new();
    for (number, extended, v) in sections {
        if extended {
            let v = if number == 0 {
                without_charset(v)?
            } else {
                v.to_string()
            };
            bytes.extend(percent_decoded(&v)?);
        } else {
            bytes.extend_from_slice(v.as_bytes());
        }
    }
    String::from_utf8(bytes).ok()
}

/// Both byte-level contracts, then the message as mail-parser reads it.
fn parsed(raw: &[u8]) -> Result<Message<'static>, TestCaseError> {
    check_line_lengths(raw)?;
    check_wire_form(raw)?;
    Ok(parse(raw))
}

/// The top-level header block holds exactly `wanted` (lower-case names)
/// plus what postie always writes, each once. Content-Transfer-Encoding is
/// there for a single-part message only.
fn check_header_set(msg: &Message<'_>, wanted: &[&str]) -> Result<(), TestCaseError> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for header in msg.headers() {
        *seen.entry(header.name().to_ascii_lowercase()).or_default() += 1;
    }
    let mut expected: Vec<String> = ["from", "date", "message-id", "mime-version", "content-type"]
        .iter()
        .chain(wanted)
        .map(|name| name.to_ascii_lowercase())
        .collect();
    if seen.contains_key("content-transfer-encoding") {
        expected.push("content-transfer-encoding".into());
    }
    expected.sort();
    let got: Vec<String> = seen.keys().cloned().collect();
    prop_assert_eq!(&got, &expected, "header names");
    for (name, count) in &seen {
        prop_assert_eq!(*count, 1, "header {} appears {} times", name, count);
    }
    Ok(())
}

/// Checks an unstructured field (Subject, -H values) against `want`, two
/// ways: decoded as RFC 5322 and RFC 2047 say (`rfc_unstructured`), it is
/// exactly `want`; and mail-parser's reading, `lax`, is `want` up to runs of
/// blanks. Leading blanks are not significant in either: readers skip the
/// blanks after the colon, so mail-builder's "Subject:   x" shows as "x"
/// (it keeps them only when the value is encoded for another reason).
fn check_unstructured(field: &str, lax: &str, want: &str, raw: &[u8]) -> Result<(), TestCaseError> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    let strict = rfc_unstructured(field);
    prop_assert_eq!(
        strict.trim_start_matches(WSP),
        want.trim_start_matches(WSP),
        "field {:?} in:\n{}",
        field,
        shown()
    );
    prop_assert_eq!(
        blanks_collapsed(lax),
        blanks_collapsed(want),
        "mail-parser's reading of {:?} in:\n{}",
        field,
        shown()
    );
    Ok(())
}

/// Runs of blanks as one space, none at the ends: mail-parser turns the
/// blanks around each fold into one space, which RFC 5322 unfolding does
/// not (it only removes the CRLF).
fn blanks_collapsed(text: &str) -> String {
    text.split(WSP)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An unstructured field's value (`header_raw`) as the RFCs define it:
/// unfolded by removing each CRLF (RFC 5322 2.2.3), with every
/// blank-delimited encoded word decoded and the blanks between two adjacent
/// encoded words dropped (RFC 2047 6.2). Blanks after the one that
/// follows the colon are kept.
fn rfc_unstructured(field: &str) -> String {
    let unfolded = field
        .strip_suffix("\r\n")
        .unwrap_or(field)
        .replace("\r\n", "");
    let mut out: Vec<u8> = Vec::new();
    let mut last_encoded = false;
    let mut rest = unfolded.as_str();
    let mut first = true;
    while !rest.is_empty() {
        let after = rest.trim_start_matches(WSP);
        let blanks = &rest[..rest.len() - after.len()];
        let (word, after) = after.split_at(after.find(WSP).unwrap_or(after.len()));
        rest = after;
        // The one space after the colon is the separator, not the value.
        let blanks = if first {
            blanks.strip_prefix(' ').unwrap_or(blanks)
        } else {
            blanks
        };
        first = false;
        match encoded_word(word) {
            Some(bytes) => {
                if !last_encoded {
                    out.extend_from_slice(blanks.as_bytes());
                }
                out.extend(bytes);
                last_encoded = true;
            }
            None => {
                out.extend_from_slice(blanks.as_bytes());
                out.extend_from_slice(word.as_bytes());
                last_encoded = false;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|err| panic!("{field:?} decodes to non-UTF-8: {err}"))
}

/// The octets of an RFC 2047 encoded word in UTF-8 or US-ASCII, or `None`
/// when `word` is not one.
fn encoded_word(word: &str) -> Option<Vec<u8>> {
    let inner = word.strip_prefix("=?")?.strip_suffix("?=")?;
    let mut parts = inner.split('?');
    let (charset, encoding, text) = (parts.next()?, parts.next()?, parts.next()?);
    let charset = charset.split('*').next()?.to_ascii_lowercase();
    if parts.next().is_some() || !matches!(charset.as_str(), "utf-8" | "us-ascii") {
        return None;
    }
    match encoding {
        "B" | "b" => base64_decode(text.as_bytes()),
        "Q" | "q" => {
            let mut out = Vec::new();
            let mut bytes = text.bytes();
            while let Some(b) = bytes.next() {
                out.push(match b {
                    b'_' => b' ',
                    b'=' => {
                        let hex = [bytes.next()?, bytes.next()?];
                        u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?
                    }
                    other => other,
                });
            }
            Some(out)
        }
        _ => None,
    }
}

/// What postie documents for text bodies: each bare LF becomes CRLF,
/// everything else is kept (plan/inputs.rs `crlf_lines`).
fn crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut prev = None;
    for ch in text.chars() {
        if ch == '\n' && prev != Some('\r') {
            out.push('\r');
        }
        out.push(ch);
        prev = Some(ch);
    }
    out
}

/// A message that is one text part, as it reads back: [`crlf`], and a
/// final CRLF when the text lacks one, as the wire would add it before
/// the final dot (compose.rs `build`), unless the part is base64, whose
/// lines already end.
fn single_part_body(text: &str, msg: &mail_parser::Message<'_>) -> String {
    let mut out = crlf(text);
    let base64 = msg
        .header_raw("Content-Transfer-Encoding")
        .is_some_and(|cte| cte.trim().eq_ignore_ascii_case("base64"));
    if !out.is_empty() && !out.ends_with('\n') && !base64 {
        out.push_str("\r\n");
    }
    out
}

/// A display name written the way a user quotes it on the command line.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The name postie takes from a quoted display name: trimmed, and none at
/// all when only whitespace is left (address.rs `display_name`).
fn expected_name(name: &str) -> Option<String> {
    let trimmed = name.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Text that is awkward in a header: MIME and address specials, encoded-word
/// look-alikes, and things that look like a header of their own.
const SPECIALS: &[&str] = &[
    " ",
    "  ",
    "\t",
    "=?",
    "?=",
    "=?utf-8?B?Zm9v?=",
    "=?us-ascii?Q?a_b?=",
    "=?utf-8?Q?x=0D=0ABcc:_evil@example.net?=",
    "\"",
    "\\",
    ",",
    ";",
    ":",
    "<",
    ">",
    "(",
    ")",
    "@",
    "'",
    "_",
    "=",
    "?",
    "Bcc: evil@example.net",
    " To: evil@example.net",
    "=0D=0ABcc: evil@example.net",
];

/// Non-ASCII and control characters other than CR, LF and NUL; the line and
/// paragraph separators are not line breaks to mail but are to some readers.
const UNICODE: &[&str] = &[
    "é",
    "Grüße",
    "δ",
    "日本語",
    "안녕하세요",
    "😀",
    "e\u{301}",
    "\u{a0}",
    "\u{3000}",
    "\u{200b}",
    "\u{feff}",
    "עברית",
    "\u{7}",
    "\u{1b}[1m",
    "\u{7f}",
    "\u{85}",
    "\u{b}",
    "\u{c}",
    "\u{2028}",
    "\u{2029}",
];

/// Byte sequences that are not UTF-8: a stray byte, a truncated sequence,
/// a surrogate, an overlong form.
const BAD_UTF8: &[&[u8]] = &[b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf"];

fn select(list: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(list).prop_map(String::from)
}

/// Any character that can be an argument on one line.
fn one_line_char() -> impl Strategy<Value = String> {
    any::<char>()
        .prop_filter("one line, no NUL", |c| !matches!(c, '\r' | '\n' | '\0'))
        .prop_map(String::from)
}

/// One piece of single-line ASCII text: what mail-builder writes as it is
/// (folded) rather than as encoded words.
fn ascii_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => "[a-zA-Z0-9]{1,12}",
        3 => Just(" ".to_string()),
        3 => select(SPECIALS),
        1 => "[ -~]{1,4}",
        1 => "[a-z]{60,200}",
    ]
}

/// One piece of single-line text, ASCII or not.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => ascii_piece(),
        2 => select(UNICODE),
        1 => one_line_char(),
    ]
}

/// Single-line text of up to `max` pieces (a few hundred characters); half
/// of it ASCII only, as one non-ASCII character makes the whole value an
/// encoded word.
fn one_line(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(ascii_piece(), 0..max),
        prop::collection::vec(piece(), 0..max),
    ]
    .prop_map(|pieces| pieces.concat())
}

/// A line break in one of its three forms.
fn line_break() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["\r", "\n", "\r\n"][..])
}

/// Single-line text with a line break somewhere, often followed by what
/// would be a header of its own.
fn with_line_break() -> impl Strategy<Value = String> {
    (
        one_line(8),
        line_break(),
        prop_oneof![
            Just("Bcc: evil@example.net".to_string()),
            Just(" folded".to_string()),
            Just(String::new()),
            one_line(8),
        ],
    )
        .prop_map(|(head, brk, tail)| format!("{head}{brk}{tail}"))
}

/// A plain ASCII address in `domain`; `tag` keeps generated ones distinct.
fn address_in(domain: &'static str) -> impl Strategy<Value = String> {
    ("[a-z0-9]{1,8}([._+-][a-z0-9]{1,8}){0,2}", 0..1000u32)
        .prop_map(move |(local, tag)| format!("{local}.{tag}@{domain}"))
}

prop_compose! {
    /// A mailbox with a quoted display name: (name as given, address).
    fn named(domain: &'static str)(name in one_line(12), address in address_in(domain))
        -> (String, String)
    {
        (name, address)
    }
}

/// A body: long lines, lone dots and leading dots, every kind of line
/// break, NUL, tabs, trailing spaces and non-ASCII text.
fn body_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[ -~]{0,40}",
        3 => Just("\n".to_string()),
        2 => Just("\r\n".to_string()),
        1 => Just("\r".to_string()),
        1 => Just("\n.\n".to_string()),
        1 => Just("\r\n.\r\n".to_string()),
        1 => Just(".".to_string()),
        1 => Just("\n..leading dots".to_string()),
        1 => Just("\0".to_string()),
        1 => Just("\t".to_string()),
        1 => Just(" \n".to_string()),
        1 => Just("\nFrom the start".to_string()),
        1 => Just("=\n=20=3D".to_string()),
        2 => select(UNICODE),
        1 => one_line_char(),
        1 => "[a-z ]{78,5000}",
        1 => "[\u{80}-\u{7ff}]{40,400}",
    ]
}

fn body() -> impl Strategy<Value = String> {
    prop::collection::vec(body_piece(), 0..30).prop_map(|pieces| pieces.concat())
}

/// A body without CR or NUL (the plain-text case) but with dots everywhere.
fn dotted_body() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => "[ -~]{0,20}",
            3 => Just("\n".to_string()),
            2 => Just("\n.\n".to_string()),
            2 => Just("\n.".to_string()),
            2 => Just("\n..".to_string()),
            1 => Just(".\r\n".to_string()),
            1 => "[a-z.]{70,300}",
        ],
        0..30,
    )
    // Ending with a line break: SMTP ends every message with one, so a
    // body without it gains a CRLF on the way (not what this checks).
    .prop_map(|pieces| pieces.concat() + "\n")
}

/// A file name: any single-line text without '/', with an extension that
/// picks a text or a binary content type. Never `;type=`, which asks for a
/// content type, and short enough for the file system's 255 octets.
fn file_name() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(piece(), 1..10),
        prop::sample::select(&["", ".bin", ".txt", ".csv", ".html", ".png", ".tar.gz"][..]),
    )
        .prop_map(|(pieces, ext)| {
            let base: String = pieces.concat().replace(['/', '\0'], "_");
            let base: String = base.chars().take(60).collect();
            format!("{base}{ext}")
        })
        .prop_filter("a real file name", |name| {
            name != "." && name != ".." && !name.contains(";type=") && name.len() <= 255
        })
}

/// File contents: binary, or text-like (which a `.txt` name sends as text).
fn contents() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..3000),
        body().prop_map(String::into_bytes),
    ]
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(32))]

    /// 1. Any one-line subject reads back as given: Unicode, long text,
    /// `=?` sequences, leading and trailing spaces. postie does not trim a
    /// subject, and neither should what it writes.
    #[test]
    fn subject_round_trips(subject in one_line(60)) {
        let (raw, _) = dry_run(
            &[
                format!("--from={FROM}"),
                format!("--subject={subject}"),
                "--to=rcpt@example.org".into(),
                "--body=x".into(),
            ],
            b"",
        )?;
        let msg = parsed(&raw)?;
        check_header_set(&msg, &["to", "subject"])?;
        let field = msg.header_raw("Subject").unwrap_or_default();
        check_unstructured(field, msg.subject().unwrap_or_default(), &subject, &raw)?;
    }

    /// 2. Display names of From, To (one positional comma-separated list)
    /// and Cc read back as given (trimmed, as postie documents), with their
    /// addresses, in order.
    #[test]
    fn display_names_round_trip(
        from in named("example.com"),
        to in prop::collection::vec(named("example.org"), 1..4),
        cc in prop::collection::vec(named("example.net"), 0..3),
    ) {
        let list = |boxes: &[(String, String)]| {
            boxes
                .iter()
                .map(|(name, addr)| format!("{} <{addr}>", quoted(name)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut args = vec![
            format!("--from={} <{}>", quoted(&from.0), from.1),
            "--body=x".to_string(),
        ];
        if !cc.is_empty() {
            args.push(format!("--cc={}", list(&cc)));
        }
        args.push("--".into());
        args.push(list(&to));
        let (raw, stderr) = dry_run(&args, b"")?;
        let msg = parsed(&raw)?;
        check_header_set(&msg, if cc.is_empty() { &["to"] } else { &["to", "cc"] })?;
        let shown = String::from_utf8_lossy(&raw);

        let sender = msg.from().and_then(|a| a.first()).expect("From");
        prop_assert_eq!(sender.name().map(String::from), expected_name(&from.0), "From in:\n{}", shown);
        prop_assert_eq!(sender.address(), Some(from.1.as_str()));
        for (header, boxes) in [(msg.to(), &to), (msg.cc(), &cc)] {
            let got: Vec<(Option<String>, Option<String>)> = header
                .map(|a| a.iter().map(|m| (m.name().map(String::from), m.address().map(String::from))).collect())
                .unwrap_or_default();
            let want: Vec<(Option<String>, Option<String>)> = boxes
                .iter()
                .map(|(name, addr)| (expected_name(name), Some(addr.clone())))
                .collect();
            prop_assert_eq!(got, want, "in:\n{}", shown);
        }
        let rcpts = unique(to.iter().chain(&cc).map(|(_, addr)| addr.as_str()));
        prop_assert_eq!(envelope_recipients(&stderr), rcpts);
    }

    /// 3. Custom header values read back as given, trimmed (postie trims
    /// what follows the colon, see compose.rs `parse_header`).
    #[test]
    fn custom_header_values_round_trip(
        headers in prop::collection::btree_map("X-[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8})?", one_line(40), 1..4),
    ) {
        // Header names are case-insensitive: one value per name.
        let mut unique = BTreeMap::new();
        for (name, value) in headers {
            unique.entry(name.to_ascii_lowercase()).or_insert((name, value));
        }
        let mut args = vec![format!("--from={FROM}"), "--to=rcpt@example.org".into(), "--body=x".into()];
        for (name, value) in unique.values() {
            args.push(format!("--header={name}: {value}"));
        }
        let (raw, _) = dry_run(&args, b"")?;
        let msg = parsed(&raw)?;
        let mut wanted: Vec<&str> = vec!["to"];
        wanted.extend(unique.keys().map(String::as_str));
        check_header_set(&msg, &wanted)?;
        // The default parser keeps unknown headers raw; decode them as text
        // (a non-empty header map is needed for the default to apply).
        let text = MessageParser::new()
            .with_minimal_headers()
            .default_header_text()
            .parse(&raw)
            .expect("parses");
        for (name, value) in unique.values() {
            let field = msg.header_raw(name.as_str());
            prop_assert!(field.is_some(), "{} missing", name);
            let lax = text.header(name.as_str()).and_then(|v| v.as_text()).unwrap_or("");
            check_unstructured(field.unwrap_or_default(), lax, value.trim(), &raw)?;
        }
    }

    /// 4. A text body from stdin decodes to what was given, with each bare
    /// LF made CRLF and nothing else changed (bare CR, NUL, dots, trailing
    /// blanks, long lines all kept); every line stays within 998 octets.
    #[test]
    fn text_body_round_trips(text in body()) {
        let (raw, _) = dry_run(
            &[format!("--from={FROM}"), "--to=rcpt@example.org".into(), "--subject=body".into()],
            text.as_bytes(),
        )?;
        check_line_lengths(&raw)?;
        let msg = parse(&raw);
        check_header_set(&msg, &["to", "subject"])?;
        prop_assert_eq!(
            msg.body_text(0).map(String::from),
            Some(single_part_body(&text, &msg)),
            "raw:\n{:?}",
            String::from_utf8_lossy(&raw)
        );
    }

    /// 4b. The same with an HTML alternative read from a file: both parts
    /// decode to what was given.
    #[test]
    fn text_and_html_bodies_round_trip(text in body(), html in body()) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("page.html");
        std::fs::write(&path, &html).expect("write html");
        let (raw, _) = dry_run(
            &[
                format!("--from={FROM}"),
                "--to=rcpt@example.org".into(),
                format!("--html={}", path.display()),
                "--body-file=-".into(),
            ],
            text.as_bytes(),
        )?;
        check_line_lengths(&raw)?;
        let msg = parse(&raw);
        check_header_set(&msg, &["to"])?;
        let shown = || format!("{:?}", String::from_utf8_lossy(&raw));
        // Blank text beside HTML counts as none: the text part is then the
        // HTML rendered (send::html_only_from_an_empty_stdin_...).
        if !text.trim().is_empty() {
            prop_assert_eq!(msg.body_text(0).map(String::from), Some(crlf(&text)), "{}", shown());
        }
        prop_assert_eq!(msg.body_html(0).map(String::from), Some(crlf(&html)), "{}", shown());
    }

    /// 4c. Whatever the text, HTML and attachments hold, the message is
    /// 7-bit with CR and LF only as CRLF and no NUL (RFC 5322 2.3, RFC 2045
    /// 2.7): a bare CR or a NUL must be encoded, not sent as it is.
    #[test]
    fn output_is_clean_7bit(
        text in body(),
        html in prop::option::of(body()),
        attachment in prop::option::of((prop::sample::select(&["notes.txt", "data.csv", "blob.bin"][..]), contents())),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args = vec![format!("--from={FROM}"), "--to=rcpt@example.org".into()];
        if let Some(html) = &html {
            let path = dir.path().join("page.html");
            std::fs::write(&path, html).expect("write html");
            args.push(format!("--html={}", path.display()));
            args.push("--body-file=-".into());
        }
        if let Some((name, data)) = &attachment {
            let path = dir.path().join(name);
            std::fs::write(&path, data).expect("write attachment");
            args.push(format!("--attach={}", path.display()));
        }
        let (raw, _) = dry_run(&args, text.as_bytes())?;
        check_line_lengths(&raw)?;
        check_wire_form(&raw)?;
    }

    /// 5. Attachment names (the file's base name) and contents read back
    /// exactly, whatever the name and the bytes.
    #[test]
    fn attachments_round_trip(
        files in prop::collection::vec((file_name(), contents()), 1..4),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        // One directory per file, so equal names do not collide.
        let mut args = vec![format!("--from={FROM}"), "--to=rcpt@example.org".into(), "--body=see attached".into()];
        for (i, (name, data)) in files.iter().enumerate() {
            let sub = dir.path().join(i.to_string());
            std::fs::create_dir(&sub).expect("mkdir");
            let path = sub.join(name);
            std::fs::write(&path, data).expect("write attachment");
            args.push(format!("--attach={}", path.display()));
        }
        let (raw, _) = dry_run(&args, b"")?;
        check_line_lengths(&raw)?;
        let msg = parse(&raw);
        check_header_set(&msg, &["to"])?;
        let shown = || format!("{:?}", String::from_utf8_lossy(&raw));
        prop_assert_eq!(msg.body_text(0).map(String::from), Some("see attached".to_string()), "{}", shown());
        let parts: Vec<&MessagePart<'_>> = msg.attachments().collect();
        prop_assert_eq!(parts.len(), files.len(), "{}", shown());
        for (part, (name, data)) in parts.iter().zip(&files) {
            // As RFC 2183 and RFC 2231 say, exactly; as mail-parser reads
            // it, up to blanks (it drops those after a fold inside quotes).
            let disposition = part
                .headers()
                .iter()
                .find(|h| h.name().eq_ignore_ascii_case("Content-Disposition"))
                .map(|h| String::from_utf8_lossy(&raw[h.offset_start() as usize..h.offset_end() as usize]).into_owned())
                .unwrap_or_default();
            prop_assert_eq!(rfc_filename(&disposition), Some(name.clone()), "{:?} in:\n{}", disposition, shown());
            prop_assert_eq!(
                part.attachment_name().map(blanks_collapsed),
                Some(blanks_collapsed(name)),
                "mail-parser's reading of {:?} in:\n{}",
                disposition,
                shown()
            );
            // Text goes in canonical form (RFC 2046 4.1.1): LF as CRLF.
            let want = if is_text_part(part) { canonical(data) } else { data.clone() };
            prop_assert!(saved_bytes(&raw, part) == want, "the contents of {:?} differ in:\n{}", name, shown());
        }
        // mail-parser's own view agrees for the parts it does not read as text.
        for (part, (_, data)) in msg.attachments().zip(&files) {
            if !part.is_text() {
                prop_assert_eq!(part.contents(), data.as_slice());
            }
        }
    }

    /// 6a. A CR or LF in any one-line value is refused with EX_DATAERR, one
    /// error line, and no message at all.
    #[test]
    fn line_breaks_in_one_line_values_are_refused(
        bad in with_line_break(),
        place in 0..9usize,
    ) {
        let mut args = vec![
            format!("--from={FROM}"),
            "--to=rcpt@example.org".to_string(),
            "--body=x".to_string(),
        ];
        match place {
            0 => args.push(format!("--subject={bad}")),
            1 => args.push(format!("--header=X-Test: {bad}")),
            2 => args[0] = format!("--from={} <{FROM}>", quoted(&bad)),
            3 => args[1] = format!("--to={} <rcpt@example.org>", quoted(&bad)),
            4 => args.push(format!("--cc={} <cc@example.org>", quoted(&bad))),
            5 => args.push(format!("--reply-to={} <r@example.org>", quoted(&bad))),
            6 => args.push(format!("--bcc={} <hidden@example.org>", quoted(&bad))),
            7 => args.push(format!("--header=X-{bad}: value")),
            _ => args[1] = format!("--to=rcpt@example.org{bad}"),
        }
        refused_as_data_error(&args, b"")?;
    }

    /// 6b. Without CR or LF, no value can add a header: however it looks
    /// ("Bcc: ...", "To: ...", encoded words, Unicode line separators), the
    /// message has exactly the headers asked for and every one decodes to
    /// its value.
    #[test]
    fn one_line_values_never_add_headers(
        subject in one_line(20),
        value in one_line(20),
        from_name in one_line(12),
        to_name in one_line(12),
    ) {
        let (raw, stderr) = dry_run(
            &[
                format!("--from={} <{FROM}>", quoted(&from_name)),
                format!("--to={} <rcpt@example.org>", quoted(&to_name)),
                format!("--subject={subject}"),
                format!("--header=X-Probe: {value}"),
                "--body=x".into(),
            ],
            b"",
        )?;
        let msg = parsed(&raw)?;
        check_header_set(&msg, &["to", "subject", "x-probe"])?;
        prop_assert!(msg.bcc().is_none());
        prop_assert_eq!(msg.to().map(|a| a.iter().count()), Some(1));
        prop_assert_eq!(msg.from().map(|a| a.iter().count()), Some(1));
        prop_assert_eq!(envelope_recipients(&stderr), vec!["rcpt@example.org".to_string()]);
    }

    /// 7. Bcc addresses go into the envelope and nowhere into the message.
    #[test]
    fn bcc_is_envelope_only(
        bcc in prop::collection::vec(named("hidden.example"), 1..4),
        as_one_list in any::<bool>(),
    ) {
        let mut args = vec![
            format!("--from={FROM}"),
            "--to=rcpt@example.org".to_string(),
            "--body=x".to_string(),
        ];
        let boxes: Vec<String> = bcc
            .iter()
            .map(|(name, addr)| format!("{} <{addr}>", quoted(name)))
            .collect();
        if as_one_list {
            args.push(format!("--bcc={}", boxes.join(",")));
        } else {
            args.extend(boxes.iter().map(|b| format!("--bcc={b}")));
        }
        let (raw, stderr) = dry_run(&args, b"")?;
        let msg = parsed(&raw)?;
        check_header_set(&msg, &["to"])?;
        let lower = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        prop_assert!(!lower.contains("hidden.example"), "a Bcc address leaked:\n{}", lower);
        prop_assert!(
            !lower.lines().any(|line| line.starts_with("bcc:")),
            "a Bcc header:\n{}",
            lower
        );
        prop_assert!(msg.bcc().is_none());
        let want = unique(std::iter::once("rcpt@example.org").chain(bcc.iter().map(|(_, addr)| addr.as_str())));
        prop_assert_eq!(envelope_recipients(&stderr), want);
    }
}

proptest! {
    #![proptest_config(config(16))]

    /// A body that is not UTF-8 is refused with EX_DATAERR and one line.
    #[test]
    fn non_utf8_body_is_refused(
        head in "[ -~\n]{0,40}",
        bad in prop::sample::select(BAD_UTF8),
        tail in "[ -~\n]{0,40}",
    ) {
        let mut stdin = head.into_bytes();
        stdin.extend_from_slice(bad);
        stdin.extend_from_slice(tail.as_bytes());
        refused_as_data_error(
            &[format!("--from={FROM}"), "--to=rcpt@example.org".into()],
            &stdin,
        )?;
    }

    /// Lone dots and leading dots survive SMTP (dot-stuffing on the way
    /// out, unstuffing at the server): the server's copy decodes to the body.
    #[test]
    fn dotted_bodies_survive_smtp(text in dotted_body()) {
        let srv = smtp_server();
        let before = srv.received().len();
        let out = postie()
            .args([
                format!("--server={}", srv.addr()),
                format!("--from={FROM}"),
                "--to=rcpt@example.org".into(),
            ])
            .write_stdin(text.clone())
            .output()
            .expect("run postie");
        prop_assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut all = srv.wait_for_messages(before + 1);
        prop_assert_eq!(all.len(), before + 1, "the server got no message");
        let mail = all.pop().expect("a message");
        check_line_lengths(&mail.data)?;
        let msg = parse(&mail.data);
        prop_assert_eq!(msg.body_text(0).map(String::from), Some(crlf(&text)));
    }
}

// ---------------------------------------------------------------------------
// Bugs the properties found, pinned with minimal inputs
// ---------------------------------------------------------------------------
//
// Each is the smallest input its property shrank to. They fail until the
// bug is fixed; the command line in each comment reproduces it by hand.

/// `postie --dry-run ARGS` that must succeed; its stdout.
fn message(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = run(&args, stdin);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The wire-form contract as a plain assertion.
fn assert_clean_7bit(raw: &[u8]) {
    if let Err(err) = check_wire_form(raw) {
        panic!("{err}");
    }
}

/// `printf 'a\rb' | postie --dry-run -f a@example.com b@example.com`
/// writes the body as `Content-Transfer-Encoding: 7bit` with the bare CR
/// as it is (mail-builder's BodyEncoding::for_text only encodes for 8-bit
/// octets, long lines and trailing blanks). RFC 5322 2.3 allows CR only in
/// CRLF, and since the 2023 SMTP-smuggling fixes some servers refuse it.
#[test]
fn bare_cr_in_text_body_is_encoded() {
    let raw = message(&["--from=a@example.com", "--to=b@example.com"], b"a\rb");
    assert_eq!(
        parse(&raw).body_text(0).as_deref(),
        Some("a\rb"),
        "decodes back"
    );
    assert_clean_7bit(&raw);
}

/// `printf 'a\0b' | postie --dry-run -f a@example.com b@example.com`:
/// the NUL goes out as it is in a 7bit part (RFC 2045 2.7 forbids NUL in
/// 7bit data, RFC 5322 2.3 in a message).
#[test]
fn nul_in_text_body_is_encoded() {
    let raw = message(&["--from=a@example.com", "--to=b@example.com"], b"a\0b");
    assert_eq!(
        parse(&raw).body_text(0).as_deref(),
        Some("a\0b"),
        "decodes back"
    );
    assert_clean_7bit(&raw);
}

/// The same for a text attachment: `printf 'a\0b\rc' > notes.txt;
/// postie --dry-run -f a@example.com b@example.com --body x -a notes.txt`.
#[test]
fn nul_and_bare_cr_in_text_attachment_are_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, b"a\0b\rc").unwrap();
    let attach = format!("--attach={}", path.display());
    let raw = message(
        &[
            "--from=a@example.com",
            "--to=b@example.com",
            "--body=x",
            &attach,
        ],
        b"",
    );
    assert_clean_7bit(&raw);
}

/// `postie --dry-run -f a@example.com -s '=?utf-8?B?Zm9v?=' b@example.com
/// --body x` writes `Subject: =?utf-8?B?Zm9v?=`, an RFC 2047 encoded word:
/// every reader shows "foo". Text that looks like an encoded word must be
/// encoded itself. (Also `=?utf-8?Q?a=0D=0ABcc:_x@y?=` reads back as a
/// subject holding CRLF and a Bcc line.)
#[test]
fn subject_that_looks_encoded_is_kept_literal() {
    let subject = "=?utf-8?B?Zm9v?=";
    let raw = message(
        &[
            "--from=a@example.com",
            "--to=b@example.com",
            "--body=x",
            &format!("--subject={subject}"),
        ],
        b"",
    );
    assert_eq!(parse(&raw).subject(), Some(subject));
}

/// `postie --dry-run -f a@example.com -H 'X-Note: =?utf-8?B?Zm9v?='
/// b@example.com --body x`: the same for a -H value.
#[test]
fn header_value_that_looks_encoded_is_kept_literal() {
    let raw = message(
        &[
            "--from=a@example.com",
            "--to=b@example.com",
            "--body=x",
            "--header=X-Note: =?utf-8?B?Zm9v?=",
        ],
        b"",
    );
    let field = parse(&raw).header_raw("X-Note").unwrap().to_string();
    assert_eq!(rfc_unstructured(&field).trim_start(), "=?utf-8?B?Zm9v?=");
}

/// `postie --dry-run -f '"=?utf-8?B?Zm9v?=" <a@example.com>' b@example.com
/// --body x` writes `From: "=?utf-8?B?Zm9v?=" <a@example.com>`. RFC 2047
/// says no encoded word inside quotes, but mail-parser, like most clients
/// (which follow what Outlook writes), decodes it and shows "foo"; an
/// encoded word for the name would be read right by all of them.
#[test]
fn display_name_that_looks_encoded_is_kept_literal() {
    let raw = message(
        &[
            "--from=\"=?utf-8?B?Zm9v?=\" <a@example.com>",
            "--to=b@example.com",
            "--body=x",
        ],
        b"",
    );
    let msg = parse(&raw);
    let from = msg.from().and_then(|a| a.first()).unwrap();
    assert_eq!(from.name(), Some("=?utf-8?B?Zm9v?="));
}

/// `touch '=?utf-8?B?Zm9v?=.bin'; postie --dry-run -f a@example.com
/// b@example.com --body x -a '=?utf-8?B?Zm9v?=.bin'` writes
/// `filename="=?utf-8?B?Zm9v?=.bin"`, which mail-parser and most clients
/// show as "foo.bin"; RFC 2231's `filename*=` would be read right.
#[test]
fn file_name_that_looks_encoded_is_kept_literal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("=?utf-8?B?Zm9v?=.bin");
    std::fs::write(&path, b"x").unwrap();
    let attach = format!("--attach={}", path.display());
    let raw = message(
        &[
            "--from=a@example.com",
            "--to=b@example.com",
            "--body=x",
            &attach,
        ],
        b"",
    );
    let msg = parse(&raw);
    let names: Vec<Option<&str>> = msg.attachments().map(|p| p.attachment_name()).collect();
    assert_eq!(names, vec![Some("=?utf-8?B?Zm9v?=.bin")]);
}

/// A text attachment whose name looks encoded gets a raw
/// Content-Disposition, which hid from mail-builder that it is an
/// attachment: it was sent 7bit with LF turned into CRLF, so the saved
/// file differed. Found by `attachments_round_trip`. Text now goes in
/// canonical form (LF as CRLF) on purpose, whatever its name.
#[test]
fn text_attachment_with_encoded_looking_name_keeps_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("=?.txt");
    let data = b"\n..leading dots";
    std::fs::write(&path, data).unwrap();
    let attach = format!("--attach={}", path.display());
    let raw = message(
        &[
            "--from=a@example.com",
            "--to=b@example.com",
            "--body=x",
            &attach,
        ],
        b"",
    );
    let msg = parse(&raw);
    let part = msg.attachments().next().expect("one attachment");
    assert!(
        saved_bytes(&raw, part) == canonical(data),
        "{}",
        String::from_utf8_lossy(&raw)
    );
}
