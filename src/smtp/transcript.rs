//! The SMTP dialogue as a sysadmin reads it (-v), with swaks' prefixes.
//!
//! Every byte postie writes or reads passes through [`crate::smtp::wire::Wire`],
//! above TLS, which hands it here; so the transcript shows every line, the
//! greeting included, in order with postie's own notes. This also makes it
//! the one place that knows what the last reply was (for EHLO parsing) and
//! whether the server sent anything it should not have (STARTTLS injection).
//!
//! Secrets never reach stderr: AUTH lines and the client's answers to AUTH
//! challenges are replaced by `[credentials hidden]` before printing.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use crate::types::human_size;

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
    /// Its reply is owed from its first byte, not from the final dot: a
    /// server may refuse a message mid-way (552 too big) and hang up.
    asked: bool,
}

/// Keep at most this much of one line: enough for any line an SMTP peer
/// should send (RFC 5321 4.5.3.1.6: 512 octets a reply line; RFC 5322
/// 2.1.1: 998 a message line), little enough that a server streaming one
/// endless line costs no memory.
const MAX_KEPT: usize = 8 * 1024;

/// Cuts a byte stream into lines. Each byte is looked at once, however the
/// stream is split into reads (rescanning a growing partial line made a
/// 30 MB line cost a minute of CPU), and at most [`MAX_KEPT`] bytes of a
/// line are kept; the rest is only counted.
#[derive(Debug, Default)]
struct Cutter {
    partial: Vec<u8>,
    dropped: usize,
}

impl Cutter {
    /// Calls `line` with each line completed by `bytes` (LF removed) and
    /// the number of its bytes not kept.
    fn feed(&mut self, bytes: &[u8], mut line: impl FnMut(&[u8], usize)) {
        let mut rest = bytes;
        // memchr: the message body passes through here too, every byte.
        while let Some(end) = memchr::memchr(b'\n', rest) {
            let piece = &rest[..end];
            if self.partial.is_empty() && self.dropped == 0 {
                let kept = piece.len().min(MAX_KEPT);
                line(&piece[..kept], piece.len() - kept);
            } else {
                self.keep(piece);
                line(&self.partial, self.dropped);
                self.partial.clear();
                self.dropped = 0;
            }
            rest = &rest[end + 1..];
        }
        self.keep(rest);
    }

    fn keep(&mut self, piece: &[u8]) {
        let kept = piece.len().min(MAX_KEPT.saturating_sub(self.partial.len()));
        self.partial.extend_from_slice(&piece[..kept]);
        self.dropped += piece.len() - kept;
    }

    fn is_empty(&self) -> bool {
        self.partial.is_empty() && self.dropped == 0
    }
}

/// What a reply still to come answers (RFC 2920 3.1: in the order asked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    Greeting,
    Ehlo,
    Other,
}

#[derive(Debug)]
struct State {
    sent: Cutter,
    received: Cutter,
    /// When the client last finished writing; replies are timed from here.
    last_sent: Instant,
    current_reply: Vec<String>,
    last_reply: Vec<String>,
    reply_complete: bool,
    /// The server sent more after a complete reply, before we wrote again.
    unsolicited: bool,
    secret: bool,
    /// What was sent while `secret` was on (the SASL responses) and the
    /// secret itself: hidden wherever a server echoes them back.
    secrets: Vec<String>,
    message: Option<MessageStats>,
    awaiting: VecDeque<Asked>,
    /// The text lines of the reply that answered the last EHLO.
    ehlo_reply: Vec<String>,
}

/// The recorder and printer of one session's dialogue.
#[derive(Debug)]
pub(crate) struct Transcript {
    /// 0 prints nothing; 1 the dialogue; 2 adds message headers; 3 the body.
    level: u8,
    timing: bool,
    state: Mutex<State>,
    /// Held mode: the lines shown so far, kept for [`Transcript::emit`]
    /// instead of printed as they come. `None` prints live.
    held: Option<Mutex<Held>>,
}

/// The lines of a held transcript, up to [`HELD_LIMIT`] bytes, and how
/// many more were left out.
#[derive(Debug, Default)]
struct Held {
    lines: Vec<u8>,
    left_out: usize,
}

/// What a held transcript keeps in memory: with -vvv it would otherwise
/// hold the whole message, for every domain under way at once.
const HELD_LIMIT: usize = 1 << 20;

impl Transcript {
    /// A transcript printed live, line by line.
    pub(crate) fn new(level: u8, timing: bool) -> Transcript {
        Transcript::with_output(level, timing, None)
    }

    /// A transcript whose lines are kept until [`Transcript::emit`]: for a
    /// session that runs beside others, so that its lines come out
    /// together instead of interleaved with theirs.
    pub(crate) fn held(level: u8, timing: bool) -> Transcript {
        Transcript::with_output(level, timing, Some(Mutex::new(Held::default())))
    }

    fn with_output(level: u8, timing: bool, held: Option<Mutex<Held>>) -> Transcript {
        Transcript {
            level,
            timing,
            held,
            state: Mutex::new(State {
                sent: Cutter::default(),
                received: Cutter::default(),
                last_sent: Instant::now(),
                current_reply: Vec::new(),
                last_reply: Vec::new(),
                reply_complete: false,
                unsolicited: false,
                secret: false,
                secrets: Vec::new(),
                message: None,
                awaiting: VecDeque::from([Asked::Greeting]),
                ehlo_reply: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere must not silence the transcript.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every line goes out with control characters escaped: replies, and
    /// certificate names in notes, come from the server, and must not
    /// retitle the terminal or clear the screen.
    fn print(&self, prefix: Prefix, text: &str) {
        if self.level == 0 {
            return;
        }
        let text = crate::smtp::reply::escape(text.as_bytes());
        match &self.held {
            Some(held) => {
                let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
                if held.lines.len() < HELD_LIMIT {
                    let _ = writeln!(held.lines, "{} {}", prefix.text(), text);
                } else {
                    held.left_out += 1;
                }
            }
            None => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{} {}", prefix.text(), text);
            }
        }
    }

    /// Held mode: prints the lines kept so far in one write, and forgets
    /// them. A live transcript has printed its lines already.
    pub(crate) fn emit(&self) {
        let lines = self.take_held();
        if !lines.is_empty() {
            let _ = std::io::stderr().lock().write_all(&lines);
        }
    }

    fn take_held(&self) -> Vec<u8> {
        self.held
            .as_ref()
            .map(|held| {
                let held = std::mem::take(&mut *held.lock().unwrap_or_else(|e| e.into_inner()));
                let mut lines = held.lines;
                if held.left_out > 0 {
                    let _ = writeln!(
                        lines,
                        "{} {} more lines not shown: a transcript held while other domains are under way keeps at most 1 MiB",
                        Prefix::Note.text(),
                        held.left_out
                    );
                }
                lines
            })
            .unwrap_or_default()
    }

    /// A note of postie's own: connecting, TLS, certificate.
    pub(crate) fn note(&self, text: &str) {
        self.print(Prefix::Note, text);
    }

    /// An error line in the dialogue (main prints the final error too).
    pub(crate) fn error(&self, text: &str) {
        self.print(Prefix::Error, text);
    }

    /// Marks the start of the time the next reply is measured from.
    pub(crate) fn restart_clock(&self) {
        self.lock().last_sent = Instant::now();
    }

    /// While set, every line the client writes is shown as hidden.
    pub(crate) fn set_secret(&self, secret: bool) {
        self.lock().secret = secret;
    }

    /// A secret a hostile server might echo back: hidden from here on in
    /// its replies, as shown and as [`Transcript::hide_secrets`] returns
    /// them. Too short a value is not worth hiding everywhere it occurs.
    pub(crate) fn add_secret(&self, secret: &str) {
        add_secret(&mut self.lock(), secret);
    }

    /// `text` with every secret of this session replaced: for what reaches
    /// an error line, the JSON result, the log and the queue.
    pub(crate) fn hide_secrets(&self, text: &str) -> String {
        hide(&self.lock().secrets, text)
    }

    /// The message follows: count it instead of printing it (at -v).
    pub(crate) fn begin_message(&self) {
        self.lock().message = Some(MessageStats {
            in_headers: true,
            ..MessageStats::default()
        });
    }

    /// Bytes the client wrote; returns how many replies they ask for (one
    /// a command line, one a message). Lines are cut even when
    /// nothing is shown, for that count; a 500 MiB message passes through
    /// here, so only its last partial line is ever copied.
    pub(crate) fn sent(&self, bytes: &[u8], tls: bool) -> usize {
        let mut state = self.lock();
        state.last_sent = Instant::now();
        state.reply_complete = false;
        state.unsolicited = false;
        state.current_reply.clear();
        let mut asked = 0;
        if let Some(stats) = state.message.as_mut().filter(|stats| !stats.asked) {
            stats.asked = true;
            state.awaiting.push_back(Asked::Other);
            asked += 1;
        }
        let mut cutter = std::mem::take(&mut state.sent);
        cutter.feed(bytes, |line, dropped| {
            let line = match dropped {
                0 => line.strip_suffix(b"\r").unwrap_or(line),
                _ => line,
            };
            if self.sent_line(&mut state, line, dropped, Prefix::Sent { tls }) {
                asked += 1;
            }
        });
        state.sent = cutter;
        asked
    }

    /// Shows (or counts) one line the client wrote; true when it is a
    /// command, which asks for a reply.
    fn sent_line(&self, state: &mut State, line: &[u8], dropped: usize, prefix: Prefix) -> bool {
        if let Some(stats) = &mut state.message {
            if line == b"." && dropped == 0 {
                let summary = format!(
                    "[message: {} lines, {}]",
                    stats.lines,
                    human_size(stats.bytes as u64)
                );
                state.message = None;
                self.print(prefix, &summary);
                self.print(prefix, ".");
                return false;
            }
            stats.lines += 1;
            stats.bytes += line.len() + dropped + 2;
            let show = self.level >= 3 || (self.level >= 2 && stats.in_headers);
            if line.is_empty() {
                stats.in_headers = false;
            }
            if show {
                self.print(prefix, &shown(&String::from_utf8_lossy(line), dropped));
            }
            return false;
        }
        let is_ehlo = line
            .get(..5)
            .is_some_and(|verb| verb.eq_ignore_ascii_case(b"EHLO "));
        state
            .awaiting
            .push_back(if is_ehlo { Asked::Ehlo } else { Asked::Other });
        if state.secret {
            let sent = String::from_utf8_lossy(line);
            let mut words = sent.split_whitespace();
            // "AUTH PLAIN <response>", or a bare answer to a challenge.
            let response = match words.next() {
                Some(verb) if verb.eq_ignore_ascii_case("AUTH") => words.nth(1),
                other => other,
            };
            if let Some(response) = response {
                add_secret(state, response);
            }
        }
        if self.level > 0 {
            let text = redact(&String::from_utf8_lossy(line), state.secret);
            self.print(prefix, &shown(&text, dropped));
        }
        true
    }

    /// Bytes the client read.
    pub(crate) fn received(&self, bytes: &[u8], tls: bool) {
        let mut state = self.lock();
        let mut cutter = std::mem::take(&mut state.received);
        cutter.feed(bytes, |line, dropped| {
            self.received_line(&mut state, line, dropped, tls)
        });
        state.received = cutter;
    }

    fn received_line(&self, state: &mut State, line: &[u8], dropped: usize, tls: bool) {
        let line = match dropped {
            0 => line.strip_suffix(b"\r").unwrap_or(line),
            _ => line,
        };
        // Escaped as in error lines: a Latin-1 reply reads the same in both.
        let line = hide(&state.secrets, &crate::smtp::reply::escape(line));
        if state.reply_complete {
            state.unsolicited = true;
            state.reply_complete = false;
            state.current_reply.clear();
        }
        let is_last = line.len() <= 3 || line.as_bytes().get(3) == Some(&b' ');
        state
            .current_reply
            .push(line.get(4..).unwrap_or("").to_string());
        let mut shown = shown(&line, dropped);
        if is_last {
            state.reply_complete = true;
            state.last_reply = std::mem::take(&mut state.current_reply);
            // Replies come in the order asked (RFC 2920 3.1); one beyond
            // those asked for answers nothing, and is no EHLO reply.
            if state.awaiting.pop_front() == Some(Asked::Ehlo) {
                state.ehlo_reply = state.last_reply.clone();
            }
            if self.timing {
                let ms = state.last_sent.elapsed().as_secs_f64() * 1000.0;
                shown.push_str(&format!("  ({ms:.0} ms)"));
            }
        }
        self.print(Prefix::Received { tls }, &shown);
    }

    /// The text lines (codes stripped) of the last complete reply.
    #[cfg(test)]
    pub(crate) fn last_reply(&self) -> Vec<String> {
        self.lock().last_reply.clone()
    }

    /// The text lines (codes stripped) of the reply to the last EHLO: the
    /// one the capabilities come from, whatever came after it.
    pub(crate) fn ehlo_reply(&self) -> Vec<String> {
        self.lock().ehlo_reply.clone()
    }

    /// True when nothing arrived after the last complete reply: the state
    /// in which a STARTTLS upgrade is safe (CVE-2011-0411 style injection
    /// puts commands after the 220).
    pub(crate) fn nothing_pending(&self) -> bool {
        let state = self.lock();
        state.reply_complete && !state.unsolicited && state.received.is_empty()
    }
}

/// A line as shown, with how much of it was not kept.
fn shown(text: &str, dropped: usize) -> String {
    match dropped {
        0 => text.to_string(),
        _ => format!("{text} [{dropped} more bytes not shown]"),
    }
}

/// Secrets shorter than this are not hidden in replies: a password of two
/// letters would blank those letters in every word of every reply.
const MIN_HIDDEN: usize = 4;

fn add_secret(state: &mut State, secret: &str) {
    if secret.len() >= MIN_HIDDEN && !state.secrets.iter().any(|known| known == secret) {
        state.secrets.push(secret.to_string());
    }
}

fn hide(secrets: &[String], text: &str) -> String {
    secrets.iter().fold(text.to_string(), |text, secret| {
        text.replace(secret.as_str(), "[credentials hidden]")
    })
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
    fn a_held_transcript_keeps_its_lines_until_emitted() {
        let t = Transcript::held(1, false);
        t.note("Trying mx.example:25");
        t.received(b"220 mx ready\r\n", false);
        t.sent(b"EHLO me\r\n", false);
        assert_eq!(
            String::from_utf8(t.take_held()).unwrap(),
            "=== Trying mx.example:25\n<- 220 mx ready\n-> EHLO me\n"
        );
        assert!(t.take_held().is_empty(), "taken once");
        // Quiet, nothing is kept; live, nothing is held.
        let quiet = Transcript::held(0, false);
        quiet.note("x");
        assert!(quiet.take_held().is_empty());
        assert!(Transcript::new(0, false).take_held().is_empty());
        // Bounded: a -vvv body is not kept whole in memory.
        let big = Transcript::held(3, false);
        let line = "x".repeat(1000);
        for _ in 0..2000 {
            big.note(&line);
        }
        let kept = String::from_utf8(big.take_held()).unwrap();
        assert!(kept.len() < HELD_LIMIT + 2000, "{}", kept.len());
        assert!(
            kept.ends_with("keeps at most 1 MiB\n"),
            "{}",
            &kept[kept.len() - 200..]
        );
    }

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
    fn an_endless_line_is_scanned_once_and_kept_bounded() {
        let t = Transcript::new(0, false);
        let chunk = [b'x'; 8 * 1024];
        let started = Instant::now();
        t.received(b"250 ", false);
        // 30 MB: rescanning the partial line on each read took minutes.
        for _ in 0..(30 << 20) / chunk.len() {
            t.received(&chunk, false);
            assert!(t.lock().received.partial.len() <= MAX_KEPT);
        }
        t.received(b"\r\n", false);
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
        let reply = t.last_reply();
        assert_eq!(reply[0].len(), MAX_KEPT - 4);
        assert!(t.lock().received.is_empty());
    }

    #[test]
    fn sent_commands_count_the_replies_they_ask_for() {
        let t = Transcript::new(0, false);
        assert_eq!(t.sent(b"EHLO me\r\nMAIL FROM:<a@b>\r\nRC", false), 2);
        assert_eq!(t.sent(b"PT TO:<c@d>\r\nDATA\r\n", false), 2);
        t.begin_message();
        assert_eq!(t.sent(b"Subject: x\r\n\r\n..dot\r\n", false), 1);
        assert_eq!(t.sent(b"more\r\n", false), 0);
        assert_eq!(t.sent(b".\r\nMAIL FROM:<a@b>\r\n", false), 1);
    }

    #[test]
    fn capabilities_come_from_the_ehlo_reply_not_what_follows() {
        let t = Transcript::new(0, false);
        t.received(b"220 mx\r\n", false);
        t.sent(b"EHLO me\r\n", false);
        t.received(
            b"250-mx\r\n250 STARTTLS\r\n250-evil\r\n250 AUTH PLAIN\r\n",
            false,
        );
        assert_eq!(t.ehlo_reply(), ["mx", "STARTTLS"]);
        assert_eq!(t.last_reply(), ["evil", "AUTH PLAIN"]);
        // An unasked reply before EHLO is not taken for its answer either.
        let t = Transcript::new(0, false);
        t.received(b"220 mx\r\n250-evil\r\n250 AUTH PLAIN\r\n", false);
        t.sent(b"EHLO me\r\n", false);
        assert!(t.ehlo_reply().is_empty());
    }

    #[test]
    fn text_that_is_not_utf8_is_shown_escaped() {
        let t = Transcript::new(0, false);
        t.received(b"550 5.1.1 Benutzer unbekannt \xfc\r\n", false);
        assert_eq!(t.last_reply(), ["5.1.1 Benutzer unbekannt \\xFC"]);
    }

    #[test]
    fn what_was_sent_in_secret_is_hidden_in_what_comes_back() {
        let t = Transcript::new(0, false);
        t.add_secret("s3cret-Pa55");
        t.add_secret("ab");
        t.set_secret(true);
        t.sent(b"AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n", false);
        t.sent(b"YWxpY2U=\r\n", false);
        t.set_secret(false);
        t.sent(b"MAIL FROM:<a@b.example>\r\n", false);
        assert_eq!(
            t.hide_secrets("535 AGFsaWNlAHMzY3JldA== YWxpY2U= s3cret-Pa55 ab MAIL"),
            "535 [credentials hidden] [credentials hidden] [credentials hidden] ab MAIL"
        );
        t.received(b"535 5.7.8 AGFsaWNlAHMzY3JldA==\r\n", false);
        assert_eq!(t.last_reply(), ["5.7.8 [credentials hidden]"]);
    }
}
