//! How an attached file goes on the wire, decided from its bytes.
//!
//! - `message/rfc822` may only be 7bit, 8bit or binary (RFC 2046 §5.2.1):
//!   a carriable one (no NUL, no bare CR, lines of at most 998 octets) goes
//!   as `7bit` or `8bit` (the message then needs BODY=8BITMIME), with LF
//!   line ends as CRLF; anything else is `application/octet-stream`.
//! - `text/*` is labelled with the charset its bytes are in: `us-ascii`
//!   when every octet is 7-bit (the RFC 2046 §4.1.2 default, exactly true,
//!   and what mutt writes), `utf-8` when they are valid UTF-8. It goes in
//!   canonical form (CRLF line ends, RFC 2046 §4.1.1), `7bit` when it can,
//!   else quoted-printable with real line breaks. Text that is not UTF-8
//!   has no charset postie can know: a guessed text type becomes
//!   `application/octet-stream`, a `;type=` one is kept, sent byte-exact.
//! - Files over the in-memory threshold are streamed as base64, byte-exact
//!   (a streamed `.eml` as `application/octet-stream`); their charset comes
//!   from a scan that reads 64 KiB at a time.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use mail_builder::headers::content_type::ContentType;
use mail_builder::mime::{BodyPart, MimePart};

use crate::mail::content::crlf;

/// The type a file that cannot be carried as what it claims becomes.
pub(crate) const OCTET_STREAM: &str = "application/octet-stream";

/// The longest line SMTP carries, without its CRLF (RFC 5321 §4.5.3.1.6).
const MAX_LINE: usize = 998;
/// The longest line a 7bit text attachment keeps (RFC 2045 §6.7's 76).
const TEXT_LINE: usize = 76;

/// What a text's octets are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TextKind {
    Ascii,
    Utf8,
    Other,
}

impl TextKind {
    /// The charset parameter for text of this kind; `None` when unknown.
    pub(crate) fn charset(self) -> Option<&'static str> {
        match self {
            TextKind::Ascii => Some("us-ascii"),
            TextKind::Utf8 => Some("utf-8"),
            TextKind::Other => None,
        }
    }
}

/// Finds what a file's bytes are, fed in chunks, so that a large file is
/// scanned without being held.
#[derive(Debug)]
pub(crate) struct TextScan {
    /// The start of a character cut by the end of the last chunk.
    pending: Vec<u8>,
    ascii: bool,
    valid: bool,
}

impl Default for TextScan {
    fn default() -> TextScan {
        TextScan {
            pending: Vec::new(),
            ascii: true,
            valid: true,
        }
    }
}

impl TextScan {
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        if !self.valid {
            return;
        }
        self.ascii &= chunk.is_ascii();
        let mut bytes = std::mem::take(&mut self.pending);
        bytes.extend_from_slice(chunk);
        match std::str::from_utf8(&bytes) {
            Ok(_) => {}
            Err(err) if err.error_len().is_none() => {
                self.pending = bytes[err.valid_up_to()..].to_vec();
            }
            Err(_) => self.valid = false,
        }
    }

    pub(crate) fn finish(self) -> TextKind {
        match (self.valid && self.pending.is_empty(), self.ascii) {
            (false, _) => TextKind::Other,
            (true, true) => TextKind::Ascii,
            (true, false) => TextKind::Utf8,
        }
    }
}

/// What a text held in memory is.
pub(crate) fn text_kind(bytes: &[u8]) -> TextKind {
    let mut scan = TextScan::default();
    scan.feed(bytes);
    scan.finish()
}

/// Lines without their line ends (CRLF or bare LF), and whether any octet
/// is a NUL or a CR that does not end a line.
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
}

fn has_nul_or_bare_cr(bytes: &[u8]) -> bool {
    lines(bytes).any(|line| line.contains(&0) || line.contains(&b'\r'))
}

/// True when a message can be carried as 7bit or 8bit (RFC 2045 §2.7-2.8).
pub(crate) fn carriable(bytes: &[u8]) -> bool {
    !has_nul_or_bare_cr(bytes) && lines(bytes).all(|line| line.len() <= MAX_LINE)
}

/// Base64 in lines of 76, each ending in CRLF.
fn base64_lines(bytes: &[u8]) -> Vec<u8> {
    let encoded = BASE64.encode(bytes);
    let mut out = Vec::with_capacity(encoded.len() + encoded.len() / 38 + 2);
    for line in encoded.as_bytes().chunks(76) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Quoted-printable (RFC 2045 §6.7) of text in canonical form: its CRLFs
/// stay real line breaks, lines are soft-broken at 76.
pub(crate) fn quoted_printable(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 8 + 8);
    let mut rest = text;
    // A CR before an LF is the line end; any other CR is encoded.
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        qp_line(&rest[..end], &mut out);
        out.extend_from_slice(b"\r\n");
        rest = &rest[end + 2..];
    }
    qp_line(rest, &mut out);
    out
}

fn qp_line(line: &[u8], out: &mut Vec<u8>) {
    let mut column = 0;
    for (i, &b) in line.iter().enumerate() {
        let last = i + 1 == line.len();
        let literal = ((33..=126).contains(&b) && b != b'=') || (b" \t".contains(&b) && !last);
        let width = if literal { 1 } else { 3 };
        if column + width > TEXT_LINE - 1 {
            out.extend_from_slice(b"=\r\n");
            column = 0;
        }
        if literal {
            out.push(b);
        } else {
            out.extend_from_slice(format!("={b:02X}").as_bytes());
        }
        column += width;
    }
}

/// True when canonical text can go unencoded: 7-bit, no control
/// characters but tab, lines of at most 76.
fn is_plain_7bit(text: &[u8]) -> bool {
    text.is_ascii()
        && lines(text)
            .all(|line| line.len() <= TEXT_LINE && line.iter().all(|&b| b >= b' ' || b == b'\t'))
        && !has_nul_or_bare_cr(text)
}

/// The part for a file held in memory whose type needs more than
/// mail-builder does (`message/rfc822`, `text/*`); `None` for the others.
/// `charset` is what [`TextKind::charset`] found when the file was read.
pub(crate) fn memory_part<'x>(
    content_type: &'x str,
    charset: Option<&'static str>,
    bytes: &'x [u8],
) -> Option<MimePart<'x>> {
    if content_type == "message/rfc822" && carriable(bytes) {
        let encoding = if bytes.is_ascii() { "7bit" } else { "8bit" };
        let body = crlf(bytes).into_owned();
        return Some(raw_part(ContentType::new(content_type), body, encoding));
    }
    if content_type == "message/rfc822" {
        return Some(raw_part(
            ContentType::new(OCTET_STREAM),
            base64_lines(bytes),
            "base64",
        ));
    }
    if !content_type.starts_with("text/") {
        return None;
    }
    let Some(charset) = charset else {
        // Not UTF-8, kept as `;type=` said: its bytes exactly.
        return Some(raw_part(
            ContentType::new(content_type),
            base64_lines(bytes),
            "base64",
        ));
    };
    let content_type = ContentType::new(content_type).attribute("charset", charset);
    let text = crlf(bytes);
    Some(if is_plain_7bit(&text) {
        raw_part(content_type, text.into_owned(), "7bit")
    } else {
        raw_part(content_type, quoted_printable(&text), "quoted-printable")
    })
}

/// A part whose body is already in its transfer encoding.
fn raw_part<'x>(content_type: ContentType<'x>, body: Vec<u8>, encoding: &'x str) -> MimePart<'x> {
    MimePart::new(content_type, BodyPart::Binary(Cow::Owned(body))).transfer_encoding(encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(part: MimePart<'_>) -> String {
        let mut out = Vec::new();
        part.write_part(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_kinds_are_found_across_chunk_boundaries() {
        assert_eq!(text_kind(b"plain\n"), TextKind::Ascii);
        assert_eq!(text_kind("Grüße\n".as_bytes()), TextKind::Utf8);
        assert_eq!(text_kind(b"Gr\xfc\xdfe\n"), TextKind::Other);
        let text = "ä".repeat(10).into_bytes();
        let mut scan = TextScan::default();
        for chunk in text.chunks(3) {
            scan.feed(chunk);
        }
        assert_eq!(scan.finish(), TextKind::Utf8);
        let mut cut = TextScan::default();
        cut.feed(&text[..3]);
        assert_eq!(cut.finish(), TextKind::Other);
    }

    #[test]
    fn messages_are_carriable_unless_nul_bare_cr_or_long_lines() {
        assert!(carriable(b"Subject: x\n\nhi\r\n"));
        assert!(!carriable(b"Subject: x\n\nh\0i\n"));
        assert!(!carriable(b"Subject: x\n\nh\ri\n"));
        assert!(!carriable(&[b'a'; 999]));
        assert!(carriable(&[b'a'; 998]));
    }

    #[test]
    fn an_eml_goes_7bit_or_8bit_with_crlf_else_octet_stream() {
        let seven = wire(memory_part("message/rfc822", None, b"Subject: x\n\nhi\n").unwrap());
        assert!(seven.contains("Content-Transfer-Encoding: 7bit\r\n\r\nSubject: x\r\n\r\nhi\r\n"));
        let eight = wire(memory_part("message/rfc822", None, "S: ü\n".as_bytes()).unwrap());
        assert!(
            eight.contains("Content-Transfer-Encoding: 8bit\r\n"),
            "{eight}"
        );
        let nul = wire(memory_part("message/rfc822", None, b"S: \0\n").unwrap());
        assert!(
            nul.starts_with("Content-Type: application/octet-stream"),
            "{nul}"
        );
        assert!(nul.contains("base64"));
    }

    #[test]
    fn utf8_text_is_quoted_printable_with_real_line_breaks() {
        let text = "Grüße\nzwei Zeilen\n".as_bytes();
        let part = wire(memory_part("text/plain", Some("utf-8"), text).unwrap());
        assert!(
            part.contains("charset=\"utf-8\"") || part.contains("charset=utf-8"),
            "{part}"
        );
        assert!(
            part.ends_with("quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe\r\nzwei Zeilen\r\n"),
            "{part}"
        );
        let ascii = wire(memory_part("text/plain", Some("us-ascii"), b"a\nb").unwrap());
        assert!(ascii.ends_with("7bit\r\n\r\na\r\nb"), "{ascii}");
        let latin = wire(memory_part("text/plain", None, b"\xe9\n").unwrap());
        assert!(latin.ends_with("base64\r\n\r\n6Qo=\r\n"), "{latin}");
        assert!(!latin.contains("charset"));
        assert!(memory_part("image/png", None, b"x").is_none());
    }

    #[test]
    fn quoted_printable_breaks_long_lines_and_encodes_trailing_space() {
        let long = "x".repeat(200);
        let encoded = String::from_utf8(quoted_printable(long.as_bytes())).unwrap();
        assert!(encoded.split("\r\n").all(|line| line.len() <= 76));
        assert_eq!(encoded.replace("=\r\n", ""), long);
        assert_eq!(quoted_printable(b"a \r\nb=\r"), b"a=20\r\nb=3D=0D");
    }
}
