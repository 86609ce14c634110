//! `sendmail -bs`: SMTP on standard input and output, as Symfony Mailer
//! and Laravel speak it to `/usr/sbin/sendmail -bs`. The protocol is
//! `smtp::server` (mailin's state machine); here each message received
//! goes the way sendmail mode sends one (`send::hand_over`,
//! `send::try_and_settle`), with the envelope of MAIL FROM and RCPT TO,
//! and the reply to its DATA says what became of it:
//!
//! - 250 when it was delivered, queued, or handed to the maildrop; also
//!   when some recipients have it (or have it queued) and others do not,
//!   with those named in the text (a 4xx or 5xx would make the
//!   application send it again to those who have it; the others end as in
//!   sendmail mode, in failed/ and the log);
//! - the relay's own 4xx or 5xx (code, enhanced code, text) when it
//!   reached nobody;
//! - 451 or 554 for a failure here (a broken config, a full disk), with
//!   the line postie would print; 552 for a message over
//!   `max_message_size`.
//!
//! stdout carries the replies and nothing else. stderr gets nothing about
//! the messages unless -v is given (then the transcript and the lines
//! sendmail mode prints), as with Postfix's `sendmail -bs`: Symfony's
//! ProcessStream keeps stderr as a pipe it never reads during the session,
//! and a line per message would fill it and block postie before its
//! reply. The log file and syslog record each message as in sendmail
//! mode; the one line said on stderr is the error that ends the process,
//! if any. Exit status: 0 after QUIT or when the input ends between
//! messages; 74 when it ends in the middle of a message's DATA (that
//! message is dropped, and the client was told nothing about it) or a
//! reply cannot be written.

use std::io::{BufReader, Write};
use std::net::IpAddr;
use std::path::PathBuf;

use mailin::{Handler, Response};

use crate::cli::args::Cli;
use crate::commands::send::{self, Handed, Tried};
use crate::exit::{Error, Exit, Result};
use crate::mail::address::{envelope_address, Mailbox};
use crate::mail::spool;
use crate::outcome::{Fate, Share};
use crate::output::messages;
use crate::smtp::classify::{quoted_reply, reply_of_kind};
use crate::smtp::server::{self, reply, End, Receiver};

/// Serves one SMTP session on stdin and stdout.
pub(crate) fn run(mut cli: Cli) -> Result<()> {
    if cli.dry_run {
        return Err(Error::usage(
            "--dry-run cannot be used with -bs: it prints the message on standard output, \
             which -bs keeps for SMTP replies",
        )
        .hint("drop --dry-run, or drop -bs and pass the message on standard input"));
    }
    // The envelope is what MAIL FROM and RCPT TO say, message by message.
    if !cli.recipients.is_empty() || cli.read_recipients {
        messages::warning(
            "with -bs the recipients are those of RCPT TO; recipients on the command line and -t are ignored",
        );
        cli.recipients.clear();
        cli.read_recipients = false;
    }
    // From here on a line per message could fill the stderr pipe nobody
    // reads and block the session (see the module doc).
    if cli.verbose == 0 {
        messages::quiet();
    }
    let (spool_dir, limit) = send::spool_for(&cli);
    let receiver = Transactions {
        cli,
        spool_dir,
        limit,
        message: None,
    };
    let stdin = std::io::stdin();
    let mut input = BufReader::new(stdin.lock());
    let mut output = std::io::stdout().lock();
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    let end = server::serve(
        &server::reply_text(&name),
        receiver,
        &mut input,
        &mut output,
    )
    .map_err(|err| {
        Error::new(
            Exit::IoErr,
            format!("-bs: the client is gone: {}", crate::exit::io_reason(&err)),
        )
    })?;
    let _ = output.flush();
    match end {
        End::Quit | End::Closed => Ok(()),
        End::ClosedInData => Err(Error::new(
            Exit::IoErr,
            "-bs: the input ended in the middle of a message's DATA; that message was not sent",
        )
        .hint("the application should end DATA with a line holding a single dot, then QUIT")),
        End::Aborted => Err(Error::new(
            Exit::Software,
            "-bs: the SMTP session ended on its own",
        )),
    }
}

/// The session's messages, one transaction at a time.
struct Transactions {
    /// The command line; each message gets a copy with its envelope.
    cli: Cli,
    spool_dir: Option<PathBuf>,
    limit: u64,
    /// The message of the DATA being read, with its envelope.
    message: Option<Incoming>,
}

struct Incoming {
    sender: String,
    recipients: Vec<String>,
    data: spool::Writer,
    /// The first local failure to keep the data (a spool file that
    /// could not be read back): the message is refused with it.
    broken: Option<Error>,
}

impl Handler for Transactions {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        match envelope_check(from) {
            Ok(()) => reply(250, "2.1.0 OK"),
            Err(why) => reply(553, &format!("5.1.7 Bad sender address: {why}")),
        }
    }

    fn rcpt(&mut self, to: &str) -> Response {
        match envelope_check(to) {
            Ok(()) => reply(250, "2.1.5 OK"),
            Err(why) => reply(553, &format!("5.1.3 Bad recipient address: {why}")),
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.message = Some(Incoming {
            sender: from.to_string(),
            recipients: to.to_vec(),
            data: spool::Writer::new(self.spool_dir.as_deref(), self.limit),
            broken: None,
        });
        mailin::response::START_DATA
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(message) = &mut self.message {
            if message.broken.is_none() {
                if let Err(err) = message.data.write(buf) {
                    message.broken = Some(err);
                }
            }
        }
        // Never an error: mailin would reply in the middle of DATA. A
        // failure is the reply to its end.
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let Some(message) = self.message.take() else {
            return reply(503, "5.5.1 No message");
        };
        self.deliver(message)
    }
}

impl Receiver for Transactions {
    fn data_abort(&mut self) {
        self.message = None;
    }
}

impl Transactions {
    /// Sends one message as sendmail mode would, and the reply that says
    /// what became of it.
    fn deliver(&self, message: Incoming) -> Response {
        if let Some(err) = message.broken {
            return local_failure(&err);
        }
        let mut cli = self.cli.clone();
        cli.from = Some(message.sender);
        cli.recipients = message.recipients;
        cli.read_recipients = false;
        // mailin has ended the message at its dot and unstuffed the lines:
        // a lone dot in it is text.
        cli.dot_ends_message = false;
        let input = match message.data.finish() {
            Ok(input) => input,
            Err(err) => return local_failure(&err),
        };
        let oversized = input.is_err();
        match send::hand_over(&cli, input, false) {
            Handed::Deposited => reply(250, "2.0.0 Queued in the maildrop for the system's queue"),
            Handed::Failed(err) if oversized => reply(552, &format!("5.3.4 {err}")),
            Handed::Failed(err) => local_failure(&err),
            Handed::Planned(mut plan) => match send::try_and_settle(&mut plan) {
                Ok(tried) => settled_reply(&tried),
                Err(err) => local_failure(&err),
            },
        }
    }
}

/// A MAIL FROM or RCPT TO address as a sendmail recipient would be taken:
/// one address (no list, no display name, no control character), and an
/// envelope address SMTP can carry when it has a domain (a local name
/// goes through the aliases, as on the command line).
fn envelope_check(address: &str) -> std::result::Result<(), String> {
    if address.chars().any(char::is_control) {
        return Err("control characters".into());
    }
    let mailbox = Mailbox::parse(address).map_err(|err| err.message)?;
    if mailbox.name.is_some() || mailbox.email != address {
        return Err(format!("{address:?} is not one bare address"));
    }
    if !mailbox.is_local() {
        envelope_address(address).map_err(|err| err.message)?;
    }
    Ok(())
}

/// A failure here, before or after a relay was asked but with no reply of
/// its to pass on: 451 when a later try may do better, else 554, with
/// the line postie would print.
fn local_failure(err: &Error) -> Response {
    if err.is_temporary() {
        reply(451, &format!("4.3.0 {err}"))
    } else {
        reply(554, &format!("5.3.0 {err}"))
    }
}

/// A failure as the reply to DATA: the relay's own reply when it gave
/// one (`relay`, of the error's kind), else the local failure's.
fn failure_reply(err: &Error, relay: Option<(u16, &str)>) -> Response {
    match relay {
        Some((code, text)) if (400..600).contains(&code) => reply(code, text),
        _ => local_failure(err),
    }
}

/// The relay's reply about a share's recipients when they failed: the one
/// it gave about them (--partial) rather than one parsed back out of the
/// error's text, either only when its kind (4xx, 5xx) is the error's.
fn share_reply(share: &Share) -> Option<(&Error, Option<(u16, &str)>)> {
    let (Fate::Refused(err) | Fate::Owed(err)) = &share.fate else {
        return None;
    };
    let relay = match &share.reply {
        Some(own) => reply_of_kind(own, err.is_temporary()),
        None => quoted_reply(err),
    };
    Some((err, relay))
}

/// The reply to DATA once every message of the plan is settled.
fn settled_reply(tried: &[Tried]) -> Response {
    let delivered: usize = tried
        .iter()
        .flat_map(|tried| tried.verdict.delivered())
        .map(|(recipients, _, _)| recipients.len())
        .sum();
    let mut ids = Vec::new();
    let mut parts = Vec::new();
    if delivered > 0 {
        parts.push(format!("sent to {delivered} recipient(s)"));
    }
    for tried in tried {
        if let (Some(id), Some((recipients, _))) = (&tried.settled.queued_as, tried.verdict.owed())
        {
            ids.push(id.as_str());
            parts.push(format!(
                "queued as {id} for {} recipient(s)",
                recipients.len()
            ));
        }
    }
    let served = (!parts.is_empty()).then(|| format!("2.0.0 {}", capitalised(&parts.join(", "))));
    let failures: Vec<&Error> = tried
        .iter()
        .filter_map(|tried| tried.settled.status.as_ref().err())
        .collect();
    let Some(first) = failures.first() else {
        return match (ids.is_empty(), delivered, served) {
            (true, _, _) | (false, _, None) => reply(250, "2.0.0 Sent"),
            (false, 0, _) => reply(250, &format!("2.0.0 Queued as {}", ids.join(", "))),
            (false, _, Some(served)) => reply(250, &served),
        };
    };
    let Some(served) = served else {
        // The relay's reply about the first recipient it refused (or
        // deferred) says more than the summary line.
        let share_error = tried.iter().find_map(|tried| {
            tried
                .verdict
                .shares
                .iter()
                .filter_map(share_reply)
                .find(|(_, relay)| relay.is_some())
        });
        return match share_error {
            Some((err, relay)) => failure_reply(err, relay),
            None => failure_reply(first, quoted_reply(first)),
        };
    };
    // Some have it, or will have it from the queue: a failure reply would
    // make the application send it to them again. Who will not get it is
    // said in the text.
    let mut missed = Vec::new();
    for tried in tried {
        for share in &tried.verdict.shares {
            let Some((err, relay)) = share_reply(share) else {
                continue;
            };
            if matches!(share.fate, Fate::Owed(_)) && tried.settled.queued_as.is_some() {
                continue;
            }
            let why = relay.map_or(err.message.clone(), |(code, text)| format!("{code} {text}"));
            for recipient in &share.recipients {
                missed.push(format!("<{recipient}> ({why})"));
            }
        }
    }
    reply(250, &format!("{served}; not sent to {}", missed.join(", ")))
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}
