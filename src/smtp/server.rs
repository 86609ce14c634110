//! The server side of SMTP, for `sendmail -bs`: the `mailin` crate's
//! session (its parser and state machine) fed line by line from a byte
//! stream, with every read bounded and each reply written and flushed as it
//! is made. What to do with a message is the caller's [`Handler`].
//!
//! Belongs here: lines, bounds and replies. Not here: what becomes of a
//! message (the `-bs` command), or the client side (`session`).
//!
//! Three things mailin 0.6.5 does not do are done here: it takes lines of
//! any length (a line is cut at [`MAX_COMMAND_LINE`] or [`MAX_DATA_LINE`]
//! and discarded, with a 5xx), it takes any number of RCPT (more than
//! [`MAX_RECIPIENTS`] get 452), and after an error reply to the end of
//! DATA it stays in the DATA state, taking the next commands as message
//! lines. So the handler's reply to the end of DATA is kept aside, mailin
//! is told "250", and the kept reply is the one written.

use std::cell::RefCell;
use std::io::{self, BufRead, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;

use mailin::{Action, Handler, Response, SessionBuilder};

/// A command line, CRLF included. RFC 5321 4.5.3.1.4 asks for 512;
/// extensions lengthen it, and Postfix takes 2048.
pub(crate) const MAX_COMMAND_LINE: usize = 2048;

/// A line of a message, CRLF included. RFC 5321 allows 1000; longer lines
/// are common in what applications generate (HTML on one line), and postie
/// re-encodes them for the relay, as in sendmail mode. Past this bound the
/// message is refused: memory stays bounded by it.
pub(crate) const MAX_DATA_LINE: usize = 1024 * 1024;

/// Recipients of one transaction, as Postfix's
/// `smtpd_recipient_limit`.
pub(crate) const MAX_RECIPIENTS: usize = 1000;

/// The longest reply text written, so that a server's long reply passed on
/// stays one short line.
const MAX_REPLY_TEXT: usize = 400;

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The client said QUIT.
    Quit,
    /// The input ended between transactions (or before DATA): nothing
    /// received was left unanswered.
    Closed,
    /// The input ended in the middle of a message's DATA: that message was
    /// dropped.
    ClosedInData,
    /// mailin closed the session on its own (a 421).
    Aborted,
}

/// A mailin [`Handler`] that can also be told to drop the message whose
/// DATA is being read (a line too long): its `data_end` is then not called.
pub(crate) trait Receiver: Handler {
    fn data_abort(&mut self);
}

/// Runs one session: the greeting, then a reply to each line of `input`
/// until QUIT or the end of the input. Fails only when `output` cannot be
/// written or `input` read (the client is gone).
pub(crate) fn serve<H: Receiver>(
    name: &str,
    handler: H,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
) -> io::Result<End> {
    let shared = Rc::new(RefCell::new(Shared::default()));
    let guard = Guard {
        inner: handler,
        shared: Rc::clone(&shared),
        recipients: 0,
    };
    // The peer is a local process on a pipe: loopback is the truth.
    let mut session = SessionBuilder::new(name).build(IpAddr::V4(Ipv4Addr::LOCALHOST), guard);
    send(output, &session.greeting())?;
    let mut in_data = false;
    let mut line = Vec::new();
    loop {
        let max = if in_data {
            MAX_DATA_LINE
        } else {
            MAX_COMMAND_LINE
        };
        match read_line(input, max, &mut line)? {
            Read::Eof if in_data => return Ok(End::ClosedInData),
            Read::Eof => return Ok(End::Closed),
            Read::TooLong if in_data => shared.borrow_mut().spoiled = true,
            Read::TooLong => send(
                output,
                &Response::custom(
                    500,
                    format!("5.5.2 Line too long (more than {MAX_COMMAND_LINE} octets)"),
                ),
            )?,
            Read::Line => {
                if !in_data && has_control(&line) {
                    send(
                        output,
                        &Response::custom(500, "5.5.2 Control characters in a command".into()),
                    )?;
                    continue;
                }
                let mut response = session.process(&line);
                if in_data && line == b".\r\n" {
                    in_data = false;
                    if let Some(kept) = shared.borrow_mut().data_reply.take() {
                        response = kept;
                    }
                }
                if response.code == 354 {
                    in_data = true;
                }
                match response.action {
                    Action::NoReply => {}
                    Action::Close => {
                        send(output, &response)?;
                        return Ok(if response.code == 221 {
                            End::Quit
                        } else {
                            End::Aborted
                        });
                    }
                    Action::Reply | Action::UpgradeTls => send(output, &response)?,
                }
            }
        }
    }
}

/// `text` as one bounded line of a reply: control characters (CR, LF, a
/// server's escape sequences) become spaces.
pub(crate) fn reply_text(text: &str) -> String {
    let mut clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.len() > MAX_REPLY_TEXT {
        let mut end = MAX_REPLY_TEXT;
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
        clean.push_str("...");
    }
    clean
}

/// A reply with `code` and `text` made safe by [`reply_text`]; a 421,
/// which would close the session, is written 451.
pub(crate) fn reply(code: u16, text: &str) -> Response {
    let code = if code == 421 { 451 } else { code };
    Response::custom(code, reply_text(text))
}

fn send(output: &mut dyn Write, response: &Response) -> io::Result<()> {
    response.write_to(output)?;
    output.flush()
}

/// A command line with a control character other than the CRLF ending it
/// or a tab (a NUL, an escape): no command has one.
fn has_control(line: &[u8]) -> bool {
    let body = line.strip_suffix(b"\r\n").unwrap_or(line);
    body.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// A whole line, ending in CRLF, is in the buffer.
    Line,
    /// A line longer than the bound: read to its end and dropped.
    TooLong,
    /// The input ended (a last line without LF is dropped: it was never
    /// finished).
    Eof,
}

/// Reads one line into `line`, at most `max` octets of it; a bare LF
/// ending is made CRLF, which mailin needs (applications that write LF
/// alone are common, and the message is made CRLF later anyway).
fn read_line(input: &mut dyn BufRead, max: usize, line: &mut Vec<u8>) -> io::Result<Read> {
    line.clear();
    let mut too_long = false;
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if available.is_empty() {
            return Ok(Read::Eof);
        }
        let (take, ends) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        if !too_long && line.len() + take <= max {
            line.extend_from_slice(&available[..take]);
        } else {
            too_long = true;
            line.clear();
        }
        input.consume(take);
        if ends {
            if too_long {
                return Ok(Read::TooLong);
            }
            if !line.ends_with(b"\r\n") {
                line.pop();
                line.extend_from_slice(b"\r\n");
            }
            return Ok(Read::Line);
        }
    }
}

/// What the loop and the guard share.
#[derive(Default)]
struct Shared {
    /// A line of the current DATA was too long: the message is refused.
    spoiled: bool,
    /// The reply to the end of DATA, written instead of mailin's.
    data_reply: Option<Response>,
}

/// The caller's handler, with the bounds and the end-of-DATA reply kept
/// aside.
struct Guard<H> {
    inner: H,
    shared: Rc<RefCell<Shared>>,
    /// Recipients taken in this transaction.
    recipients: usize,
}

impl<H: Receiver> Handler for Guard<H> {
    fn helo(&mut self, ip: IpAddr, domain: &str) -> Response {
        self.inner.helo(ip, domain)
    }

    fn mail(&mut self, ip: IpAddr, domain: &str, from: &str) -> Response {
        self.recipients = 0;
        self.inner.mail(ip, domain, from)
    }

    fn rcpt(&mut self, to: &str) -> Response {
        if self.recipients >= MAX_RECIPIENTS {
            // RFC 5321 4.5.3.1.10: 452, and the client sends the rest in
            // another transaction.
            return Response::custom(452, "4.5.3 Too many recipients".into());
        }
        let response = self.inner.rcpt(to);
        if !response.is_error {
            self.recipients += 1;
        }
        response
    }

    fn data_start(&mut self, domain: &str, from: &str, is8bit: bool, to: &[String]) -> Response {
        let mut shared = self.shared.borrow_mut();
        shared.spoiled = false;
        shared.data_reply = None;
        drop(shared);
        self.inner.data_start(domain, from, is8bit, to)
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.shared.borrow().spoiled {
            return Ok(());
        }
        self.inner.data(buf)
    }

    fn data_end(&mut self) -> Response {
        let spoiled = std::mem::take(&mut self.shared.borrow_mut().spoiled);
        let response = if spoiled {
            self.inner.data_abort();
            Response::custom(
                552,
                format!(
                    "5.3.4 A line of the message is longer than {MAX_DATA_LINE} octets; nothing was sent"
                ),
            )
        } else {
            self.inner.data_end()
        };
        self.shared.borrow_mut().data_reply = Some(response);
        mailin::response::OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bounded_and_end_in_crlf() {
        let mut input = &b"short\nover the bound\r\nlast\r\nno end"[..];
        let mut line = Vec::new();
        assert_eq!(read_line(&mut input, 8, &mut line).unwrap(), Read::Line);
        assert_eq!(line, b"short\r\n");
        assert_eq!(read_line(&mut input, 8, &mut line).unwrap(), Read::TooLong);
        assert_eq!(read_line(&mut input, 8, &mut line).unwrap(), Read::Line);
        assert_eq!(line, b"last\r\n");
        assert_eq!(read_line(&mut input, 8, &mut line).unwrap(), Read::Eof);
    }

    #[test]
    fn reply_text_is_one_bounded_line() {
        assert_eq!(reply_text("a\r\nb\x1b[1mc"), "a  b [1mc");
        let long = reply_text(&"é".repeat(500));
        assert!(long.len() <= MAX_REPLY_TEXT + 3 && long.ends_with("..."));
        assert_eq!(reply(421, "x").code, 451);
    }

    #[test]
    fn control_characters_in_commands() {
        assert!(has_control(b"HELO a\0b\r\n"));
        assert!(has_control(b"NOOP\x7f\r\n"));
        assert!(!has_control(b"MAIL FROM:<a@b>\t\r\n"));
    }
}
