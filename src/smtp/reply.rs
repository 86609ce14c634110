//! Reply lines checked and made readable before lettre parses them.
//!
//! lettre 0.11 reads each reply with `read_line` into a `String`, so one
//! byte that is not UTF-8 (localised servers write Latin-1: "Benutzer
//! unbekannt \xFC") fails the read with an I/O error, and the reply's code
//! is lost with it; its parser wants CRLF, so a reply ended by a bare LF
//! is never complete and the read waits out the timeout; and a line with
//! no end at all grows until memory or the timeout runs out. Its reading
//! is private and used by every command, so this cannot be fixed around
//! it. The [`crate::smtp::wire::Wire`] under it sees every byte first: it
//! passes lettre only whole replies, checked here, with the text escaped
//! into ASCII-safe UTF-8, and turns a line that is not a reply into an
//! error at once (EX_PROTOCOL, never a retry). The code is never touched,
//! so lettre classifies by it as before; the transcript escapes the text
//! the same way ([`escape`]), so -v and the error line agree.

use std::fmt;

/// A longer line is not a reply (RFC 5321 4.5.3.1.5 allows 512 octets;
/// lettre itself gives up at 1000, but only once the line has ended).
const MAX_LINE: usize = 4096;

/// A reply that goes on longer without its last line is not one: an
/// endless `220-` greeting would otherwise grow without bound. lettre's own
/// limit is the same but is checked only on what it already buffered; this
/// counts the escaped lines lettre would get, so it always fails here first.
const MAX_REPLY: usize = 100_000;

/// Why what the server sent is not an SMTP reply (RFC 5321 4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// A line ended by LF alone; the line, escaped.
    BareLf(String),
    /// No three-digit reply code at the start; the line, escaped.
    NoCode(String),
    TooLong,
    /// More than [`MAX_REPLY`] bytes of continuation lines.
    ReplyTooLong,
    /// A reply no command asked for (RFC 5321 4.2: one reply per command;
    /// RFC 2920 3.1: pipelined commands owe theirs in order); the first
    /// line, escaped. Response injection looks like this.
    Unsolicited(String),
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
            Malformed::ReplyTooLong => {
                write!(f, "a reply goes on for more than {MAX_REPLY} bytes")
            }
            Malformed::Unsolicited(line) => write!(
                f,
                "a reply no command asked for: \"{line}\" (a response injection attempt, or a broken server)"
            ),
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
#[derive(Debug)]
pub(crate) struct Lines {
    /// Received, not yet a whole line.
    partial: Vec<u8>,
    /// The lines of a multi-line reply until its last line comes: lettre
    /// parses the whole reply again on each line it reads, so an endless
    /// reply passed on line by line would cost it quadratic time.
    pending: Vec<u8>,
    /// Checked replies not yet read; `taken` bytes of them already were.
    ready: Vec<u8>,
    taken: usize,
    /// The first line that was not a reply: every later read fails with it.
    failed: Option<Malformed>,
    ended: bool,
    /// Replies owed by what was sent, the greeting included. Below zero
    /// only after an unasked 421 (it answers the next command).
    owed: i64,
    /// Within a multi-line reply, and how many bytes of it so far.
    in_reply: bool,
    reply_bytes: usize,
}

impl Default for Lines {
    fn default() -> Lines {
        Lines {
            partial: Vec::new(),
            pending: Vec::new(),
            ready: Vec::new(),
            taken: 0,
            failed: None,
            ended: false,
            // RFC 5321 3.1: the greeting is owed before anything is sent.
            owed: 1,
            in_reply: false,
            reply_bytes: 0,
        }
    }
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
            let checked =
                clean_line(&self.partial[start..start + length]).and_then(|line| self.count(line));
            match checked {
                Ok(line) if self.in_reply => self.pending.extend_from_slice(&line),
                Ok(line) => {
                    self.ready.append(&mut self.pending);
                    self.ready.extend_from_slice(&line);
                }
                Err(bad) => {
                    self.failed = Some(bad);
                    self.partial.clear();
                    self.pending.clear();
                    return;
                }
            }
            start += length + 1;
        }
        self.partial.drain(..start);
        if self.partial.len() > MAX_LINE {
            self.failed = Some(Malformed::TooLong);
            self.partial.clear();
            self.pending.clear();
        }
    }

    /// Checks a clean line against what is owed: a reply must have been
    /// asked for, and must end within [`MAX_REPLY`].
    fn count(&mut self, line: Vec<u8>) -> Result<Vec<u8>, Malformed> {
        if !self.in_reply {
            // RFC 5321 3.8: a server may say 421 and close at any time;
            // that one is passed on, to be read as the next reply (75).
            let closing = line.starts_with(b"421") && self.owed == 0;
            if self.owed <= 0 && !closing {
                let text = line.strip_suffix(b"\r\n").unwrap_or(&line);
                return Err(Malformed::Unsolicited(
                    String::from_utf8_lossy(text).into_owned(),
                ));
            }
            self.owed -= 1;
            self.reply_bytes = 0;
        }
        self.reply_bytes += line.len();
        if self.reply_bytes > MAX_REPLY {
            return Err(Malformed::ReplyTooLong);
        }
        self.in_reply = line.get(3) == Some(&b'-');
        Ok(line)
    }

    /// `replies` more are owed: that many commands (or the end of a
    /// message) were sent.
    pub(crate) fn owe(&mut self, replies: usize) {
        self.owed = self.owed.saturating_add(replies as i64);
    }

    /// The error every later read gets, once there is one.
    pub(crate) fn failure(&self) -> Option<&Malformed> {
        self.failed.as_ref()
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
    /// never be read as if it came over TLS. What is owed stays owed.
    pub(crate) fn reset(&mut self) {
        *self = Lines {
            owed: self.owed,
            ..Lines::default()
        };
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
    fn an_endless_multi_line_reply_fails_at_its_limit() {
        let mut lines = Lines::default();
        let line = format!("220-{}\r\n", "x".repeat(1000));
        let mut passed = 0;
        for _ in 0..1000 {
            lines.push(line.as_bytes());
            while let Next::Bytes(bytes) = lines.next() {
                let n = bytes.len();
                passed += n;
                lines.consume(n);
            }
            if lines.failure().is_some() {
                break;
            }
        }
        assert_eq!(lines.failure(), Some(&Malformed::ReplyTooLong));
        assert_eq!(passed, 0, "an unfinished reply is never passed on");
        // A long reply that ends in time is one.
        let mut lines = Lines::default();
        for _ in 0..90 {
            lines.push(line.as_bytes());
        }
        lines.push(b"220 done\r\n");
        assert_eq!(lines.failure(), None);
    }

    #[test]
    fn replies_beyond_those_owed_fail_except_a_421() {
        let (good, bad) = through(&[b"220 hi\r\n250 injected\r\n"]);
        assert_eq!(good, "220 hi\r\n");
        assert_eq!(bad, Some(Malformed::Unsolicited("250 injected".into())));
        // Pipelined commands owe one reply each, in order (RFC 2920).
        let mut lines = Lines::default();
        lines.push(b"220 hi\r\n");
        lines.owe(3);
        lines.push(b"250 a\r\n250 b\r\n550 c\r\n");
        assert_eq!(lines.failure(), None);
        lines.push(b"250 d\r\n");
        assert!(matches!(lines.failure(), Some(Malformed::Unsolicited(_))));
        // RFC 5321 3.8: a 421 may come unasked; a second reply may not.
        let (good, bad) = through(&[b"220 hi\r\n421-closing\r\n421 now\r\n"]);
        assert_eq!(good, "220 hi\r\n421-closing\r\n421 now\r\n");
        assert_eq!(bad, None);
        let (_, bad) = through(&[b"220 hi\r\n421 closing\r\n421 again\r\n"]);
        assert!(matches!(bad, Some(Malformed::Unsolicited(_))));
    }

    #[test]
    fn what_is_owed_outlives_a_tls_reset() {
        let mut lines = Lines::default();
        lines.push(b"220 hi\r\n");
        lines.reset();
        lines.push(b"220 again\r\n");
        assert!(matches!(lines.failure(), Some(Malformed::Unsolicited(_))));
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
