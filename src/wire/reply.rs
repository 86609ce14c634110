//! Reply lines checked and made readable before lettre parses them.
//!
//! lettre 0.11 reads each reply with `read_line` into a `String`, so one
//! byte that is not UTF-8 (localised servers write Latin-1: "Benutzer
//! unbekannt \xFC") fails the read with an I/O error, and the reply's code
//! is lost with it; its parser wants CRLF, so a reply ended by a bare LF
//! is never complete and the read waits out the timeout; and a line with
//! no end at all grows until memory or the timeout runs out. Its reading
//! is private and used by every command, so this cannot be fixed around
//! it. The [`crate::wire::Wire`] under it sees every byte first: it
//! passes lettre only whole lines, checked here, with the text escaped
//! into ASCII-safe UTF-8, and turns a line that is not a reply into an
//! error at once (EX_PROTOCOL, never a retry). The code is never touched,
//! so lettre classifies by it as before; the transcript escapes the text
//! the same way ([`escape`]), so -v and the error line agree.

use std::fmt;

/// A longer line is not a reply (RFC 5321 4.5.3.1.5 allows 512 octets;
/// lettre itself gives up at 1000, but only once the line has ended).
const MAX_LINE: usize = 4096;

/// Why what the server sent is not an SMTP reply (RFC 5321 4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// A line ended by LF alone; the line, escaped.
    BareLf(String),
    /// No three-digit reply code at the start; the line, escaped.
    NoCode(String),
    TooLong,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The lines are escaped already: {:?} would double every '\'.
        match self {
            Malformed::BareLf(line) => {
                write!(f, "a reply line ends in a bare LF, not CRLF: \"{line}\"")
            }
            Malformed::NoCode(line) => {
                write!(f, "a reply line has no valid reply code: \"{line}\"")
            }
            Malformed::TooLong => write!(f, "a reply line is longer than {MAX_LINE} bytes"),
        }
    }
}

impl std::error::Error for Malformed {}

impl Malformed {
    /// The Malformed inside an I/O error from the Wire, if that is what it is.
    pub(crate) fn in_io(err: &std::io::Error) -> Option<&Malformed> {
        err.get_ref()?.downcast_ref::<Malformed>()
    }

    /// The Malformed anywhere in an error's chain (lettre wraps the Wire's
    /// I/O error in its own).
    pub(crate) fn in_chain<'a>(
        err: &'a (dyn std::error::Error + 'static),
    ) -> Option<&'a Malformed> {
        let mut next = Some(err);
        while let Some(current) = next {
            if let Some(found) = current.downcast_ref::<Malformed>() {
                return Some(found);
            }
            if let Some(found) = current
                .downcast_ref::<std::io::Error>()
                .and_then(Malformed::in_io)
            {
                return Some(found);
            }
            next = current.source();
        }
        None
    }
}

/// Reply text for people: valid UTF-8 is kept, every other byte and every
/// control character is written `\xHH`, so that a Latin-1 "ü" reads
/// `\xFC` and nothing the server sends can move a terminal's cursor.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if (c.is_control() && c != '\t') || c == '\u{7f}' {
                let mut utf8 = [0; 4];
                for byte in c.encode_utf8(&mut utf8).bytes() {
                    out.push_str(&format!("\\x{byte:02X}"));
                }
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02X}"));
        }
    }
    out
}

/// One line (without its LF) as lettre may read it: the code as it came,
/// the text escaped, CRLF at the end. A bare code (`250`, allowed by RFC
/// 5321 4.2, which lettre cannot parse) gets the space lettre expects.
fn clean_line(line: &[u8]) -> Result<Vec<u8>, Malformed> {
    let Some(body) = line.strip_suffix(b"\r") else {
        return Err(Malformed::BareLf(escape(line)));
    };
    // RFC 5321 4.2: 2yz to 5yz, second digit 0 to 5 (lettre's parser
    // refuses others, with a message that would not say why).
    let code_ok = body.len() >= 3
        && (b'2'..=b'5').contains(&body[0])
        && (b'0'..=b'5').contains(&body[1])
        && body[2].is_ascii_digit()
        && matches!(body.get(3), None | Some(b' ') | Some(b'-'));
    if !code_ok {
        return Err(Malformed::NoCode(escape(body)));
    }
    let mut out = body[..3].to_vec();
    out.push(body.get(3).copied().unwrap_or(b' '));
    out.extend_from_slice(escape(body.get(4..).unwrap_or_default()).as_bytes());
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// The server's bytes on their way to lettre, a whole line at a time.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    /// Received, not yet a whole line.
    partial: Vec<u8>,
    /// Checked lines not yet read; `taken` of them already were.
    ready: Vec<u8>,
    taken: usize,
    /// The first line that was not a reply: every later read fails with it.
    failed: Option<Malformed>,
    ended: bool,
}

/// What a read from the Lines gives.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next<'a> {
    Bytes(&'a [u8]),
    Failed(Malformed),
    End,
    /// Nothing until more arrives from the server.
    NeedMore,
}

impl Lines {
    /// Bytes from the server; an empty slice is the end of the stream.
    pub(crate) fn push(&mut self, raw: &[u8]) {
        if raw.is_empty() {
            // A line cut off by the close is no reply: lettre sees the
            // stream end within its reply ("connection lost").
            self.ended = true;
            return;
        }
        if self.failed.is_some() {
            return;
        }
        self.partial.extend_from_slice(raw);
        let mut start = 0;
        while let Some(length) = self.partial[start..].iter().position(|&b| b == b'\n') {
            match clean_line(&self.partial[start..start + length]) {
                Ok(line) => self.ready.extend_from_slice(&line),
                Err(bad) => {
                    self.failed = Some(bad);
                    self.partial.clear();
                    return;
                }
            }
            start += length + 1;
        }
        self.partial.drain(..start);
        if self.partial.len() > MAX_LINE {
            self.failed = Some(Malformed::TooLong);
            self.partial.clear();
        }
    }

    /// What the reader gets next: lines already checked come before the
    /// failure or the end that followed them.
    pub(crate) fn next(&self) -> Next<'_> {
        if self.taken < self.ready.len() {
            Next::Bytes(&self.ready[self.taken..])
        } else if let Some(bad) = &self.failed {
            Next::Failed(bad.clone())
        } else if self.ended {
            Next::End
        } else {
            Next::NeedMore
        }
    }

    /// Marks `count` bytes of `next()` as read.
    pub(crate) fn consume(&mut self, count: usize) {
        self.taken += count;
        if self.taken >= self.ready.len() {
            self.ready.clear();
            self.taken = 0;
        }
    }

    /// Forgets everything received: what came before a TLS handshake must
    /// never be read as if it came over TLS.
    pub(crate) fn reset(&mut self) {
        *self = Lines::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(chunks: &[&[u8]]) -> (String, Option<Malformed>) {
        let mut lines = Lines::default();
        for chunk in chunks {
            lines.push(chunk);
        }
        let mut out = Vec::new();
        loop {
            match lines.next() {
                Next::Bytes(bytes) => {
                    let n = bytes.len();
                    out.extend_from_slice(bytes);
                    lines.consume(n);
                }
                Next::Failed(bad) => return (String::from_utf8(out).unwrap(), Some(bad)),
                Next::End | Next::NeedMore => return (String::from_utf8(out).unwrap(), None),
            }
        }
    }

    #[test]
    fn latin1_text_is_escaped_and_the_code_kept() {
        assert_eq!(
            through(&[b"550 5.1.1 Benutzer unbekannt \xfc\r\n"]),
            ("550 5.1.1 Benutzer unbekannt \\xFC\r\n".to_string(), None)
        );
        assert_eq!(escape("grüß\tdich".as_bytes()), "grüß\tdich");
        assert_eq!(escape(b"a\x1b[2Jb\r"), "a\\x1B[2Jb\\x0D");
    }

    #[test]
    fn lines_split_across_reads_are_joined_first() {
        assert_eq!(
            through(&[b"250-a\r", b"\n250 b", b"\xfc\r\n"]).0,
            "250-a\r\n250 b\\xFC\r\n"
        );
    }

    #[test]
    fn a_bare_code_gets_the_space_lettre_needs() {
        assert_eq!(through(&[b"250\r\n"]).0, "250 \r\n");
    }

    #[test]
    fn bare_lf_and_missing_codes_fail_after_the_good_lines() {
        let (good, bad) = through(&[b"250 ok\r\n250 next\n"]);
        assert_eq!(good, "250 ok\r\n");
        assert_eq!(bad, Some(Malformed::BareLf("250 next".into())));
        assert_eq!(
            Malformed::NoCode(escape(b"h\xe9")).to_string(),
            "a reply line has no valid reply code: \"h\\xE9\""
        );
        for line in [
            &b"hello\r\n"[..],
            b"2x0 ok\r\n",
            b"25\r\n",
            b"250x\r\n",
            b"650 no\r\n",
        ] {
            assert!(
                matches!(through(&[line]).1, Some(Malformed::NoCode(_))),
                "{line:?}"
            );
        }
    }

    #[test]
    fn an_endless_line_fails_without_waiting_for_its_end() {
        let long = vec![b'x'; MAX_LINE + 1];
        assert_eq!(through(&[b"250 ", &long]).1, Some(Malformed::TooLong));
    }

    #[test]
    fn a_line_cut_off_by_the_close_is_not_passed_on() {
        let mut lines = Lines::default();
        lines.push(b"421 4.3.2 bye");
        lines.push(b"");
        assert_eq!(lines.next(), Next::End);
    }

    #[test]
    fn malformed_is_found_inside_io_errors() {
        let err = std::io::Error::new(std::io::ErrorKind::InvalidData, Malformed::TooLong);
        assert_eq!(Malformed::in_io(&err), Some(&Malformed::TooLong));
        assert_eq!(Malformed::in_chain(&err), Some(&Malformed::TooLong));
    }
}
