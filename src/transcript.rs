//! The SMTP dialogue as a sysadmin reads it (-v), with swaks' prefixes.
//!
//! Every byte postie writes or reads passes through [`crate::wire::Wire`],
//! above TLS, which hands it here; so the transcript shows every line, the
//! greeting included, in order with postie's own notes. This also makes it
//! the one place that knows what the last reply was (for EHLO parsing) and
//! whether the server sent anything it should not have (STARTTLS injection).
//!
//! Secrets never reach stderr: AUTH lines and the client's answers to AUTH
//! challenges are replaced by `[credentials hidden]` before printing.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use crate::capabilities::human_size;

/// Who printed a line, and over what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prefix {
    Note,
    Error,
    Sent { tls: bool },
    Received { tls: bool },
}

impl Prefix {
    fn text(self) -> &'static str {
        match self {
            Prefix::Note => "===",
            Prefix::Error => "***",
            Prefix::Sent { tls: false } => "->",
            Prefix::Sent { tls: true } => "~>",
            Prefix::Received { tls: false } => "<-",
            Prefix::Received { tls: true } => "<~",
        }
    }
}

#[derive(Debug, Default)]
struct MessageStats {
    lines: usize,
    bytes: usize,
    in_headers: bool,
}

#[derive(Debug)]
struct State {
    sent_partial: Vec<u8>,
    received_partial: Vec<u8>,
    /// When the client last finished writing; replies are timed from here.
    last_sent: Instant,
    current_reply: Vec<String>,
    last_reply: Vec<String>,
    reply_complete: bool,
    /// The server sent more after a complete reply, before we wrote again.
    unsolicited: bool,
    secret: bool,
    message: Option<MessageStats>,
}

/// The recorder and printer of one session's dialogue.
#[derive(Debug)]
pub struct Transcript {
    /// 0 prints nothing; 1 the dialogue; 2 adds message headers; 3 the body.
    level: u8,
    timing: bool,
    state: Mutex<State>,
}

impl Transcript {
    pub fn new(level: u8, timing: bool) -> Transcript {
        Transcript {
            level,
            timing,
            state: Mutex::new(State {
                sent_partial: Vec::new(),
                received_partial: Vec::new(),
                last_sent: Instant::now(),
                current_reply: Vec::new(),
                last_reply: Vec::new(),
                reply_complete: false,
                unsolicited: false,
                secret: false,
                message: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere must not silence the transcript.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn print(&self, prefix: Prefix, text: &str) {
        if self.level == 0 {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{} {}", prefix.text(), text);
    }

    /// A note of postie's own: connecting, TLS, certificate.
    pub fn note(&self, text: &str) {
        self.print(Prefix::Note, text);
    }

    /// An error line in the dialogue (main prints the final error too).
    pub fn error(&self, text: &str) {
        self.print(Prefix::Error, text);
    }

    /// Marks the start of the time the next reply is measured from.
    pub fn restart_clock(&self) {
        self.lock().last_sent = Instant::now();
    }

    /// While set, every line the client writes is shown as hidden.
    pub fn set_secret(&self, secret: bool) {
        self.lock().secret = secret;
    }

    /// The message follows: count it instead of printing it (at -v).
    pub fn begin_message(&self) {
        self.lock().message = Some(MessageStats {
            in_headers: true,
            ..MessageStats::default()
        });
    }

    /// Bytes the client wrote. Lines are cut in one pass over the buffer:
    /// a 500 MiB message passes through here.
    pub fn sent(&self, bytes: &[u8], tls: bool) {
        let mut state = self.lock();
        state.last_sent = Instant::now();
        state.reply_complete = false;
        state.unsolicited = false;
        state.current_reply.clear();
        if self.level == 0 {
            // Nothing is shown: a 500 MiB message need not be cut into lines.
            return;
        }
        let mut buffer = std::mem::take(&mut state.sent_partial);
        buffer.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(length) = buffer[start..].iter().position(|&b| b == b'\n') {
            let line = &buffer[start..start + length];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.sent_line(&mut state, line, Prefix::Sent { tls });
            start += length + 1;
        }
        buffer.drain(..start);
        state.sent_partial = buffer;
    }

    fn sent_line(&self, state: &mut State, line: &[u8], prefix: Prefix) {
        if let Some(stats) = &mut state.message {
            if line == b"." {
                let summary = format!(
                    "[message: {} lines, {}]",
                    stats.lines,
                    human_size(stats.bytes as u64)
                );
                state.message = None;
                self.print(prefix, &summary);
                self.print(prefix, ".");
                return;
            }
            stats.lines += 1;
            stats.bytes += line.len() + 2;
            let show = self.level >= 3 || (self.level >= 2 && stats.in_headers);
            if line.is_empty() {
                stats.in_headers = false;
            }
            if show {
                self.print(prefix, &String::from_utf8_lossy(line));
            }
            return;
        }
        self.print(
            prefix,
            &redact(&String::from_utf8_lossy(line), state.secret),
        );
    }

    /// Bytes the client read.
    pub fn received(&self, bytes: &[u8], tls: bool) {
        let mut state = self.lock();
        state.received_partial.extend_from_slice(bytes);
        while let Some(line) = take_line(&mut state.received_partial) {
            if state.reply_complete {
                state.unsolicited = true;
                state.reply_complete = false;
                state.current_reply.clear();
            }
            let is_last = line.len() <= 3 || line.as_bytes().get(3) == Some(&b' ');
            state
                .current_reply
                .push(line.get(4..).unwrap_or("").to_string());
            let mut shown = line.clone();
            if is_last {
                state.reply_complete = true;
                state.last_reply = state.current_reply.clone();
                if self.timing {
                    let ms = state.last_sent.elapsed().as_secs_f64() * 1000.0;
                    shown.push_str(&format!("  ({ms:.0} ms)"));
                }
            }
            self.print(Prefix::Received { tls }, &shown);
        }
    }

    /// The text lines (codes stripped) of the last complete reply.
    pub fn last_reply(&self) -> Vec<String> {
        self.lock().last_reply.clone()
    }

    /// True when nothing arrived after the last complete reply: the state
    /// in which a STARTTLS upgrade is safe (CVE-2011-0411 style injection
    /// puts commands after the 220).
    pub fn nothing_pending(&self) -> bool {
        let state = self.lock();
        state.reply_complete && !state.unsolicited && state.received_partial.is_empty()
    }
}

/// Takes one complete line (without its line ending) off the front.
fn take_line(buffer: &mut Vec<u8>) -> Option<String> {
    let end = buffer.iter().position(|&b| b == b'\n')?;
    let mut line: Vec<u8> = buffer.drain(..=end).collect();
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    // Escaped as in error lines: a Latin-1 reply reads the same in both.
    Some(crate::wire::reply::escape(&line))
}

/// An AUTH command keeps its mechanism; its initial response, and every
/// answer to a challenge while `secret` is on, are hidden.
fn redact(line: &str, secret: bool) -> String {
    let mut words = line.split_whitespace();
    if words.next().is_some_and(|w| w.eq_ignore_ascii_case("AUTH")) {
        return match (words.next(), words.next()) {
            (Some(mechanism), Some(_)) => format!("AUTH {mechanism} [credentials hidden]"),
            (Some(mechanism), None) => format!("AUTH {mechanism}"),
            _ => line.to_string(),
        };
    }
    if secret {
        return "[credentials hidden]".to_string();
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_lines_are_redacted() {
        assert_eq!(
            redact("AUTH PLAIN AGFsaWNlAHMzY3JldA==", false),
            "AUTH PLAIN [credentials hidden]"
        );
        assert_eq!(redact("auth login", true), "AUTH login");
        assert_eq!(redact("YWxpY2U=", true), "[credentials hidden]");
        assert_eq!(redact("MAIL FROM:<a@b>", false), "MAIL FROM:<a@b>");
    }

    #[test]
    fn replies_are_collected_and_injection_is_noticed() {
        let t = Transcript::new(0, false);
        t.received(b"220-first\r\n220 ", false);
        assert!(!t.nothing_pending());
        t.received(b"ready\r\n", false);
        assert_eq!(t.last_reply(), ["first", "ready"]);
        assert!(t.nothing_pending());
        t.sent(b"STARTTLS\r\n", false);
        t.received(b"220 go ahead\r\nMAIL FROM:<evil>\r\n", false);
        assert!(!t.nothing_pending(), "bytes after the 220 must be noticed");
    }

    #[test]
    fn split_reads_make_one_line() {
        let t = Transcript::new(0, false);
        t.received(b"25", false);
        t.received(b"0 o", false);
        t.received(b"k\r\n", false);
        assert_eq!(t.last_reply(), ["ok"]);
    }

    #[test]
    fn text_that_is_not_utf8_is_shown_escaped() {
        let t = Transcript::new(0, false);
        t.received(b"550 5.1.1 Benutzer unbekannt \xfc\r\n", false);
        assert_eq!(t.last_reply(), ["5.1.1 Benutzer unbekannt \\xFC"]);
    }
}
