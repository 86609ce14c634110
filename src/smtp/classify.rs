//! What went wrong, as postie tells it: the one place that maps what
//! happened (an SMTP reply at a stage, an I/O error, a timeout, a failed
//! lookup, refused recipients) to an [`Error`] with its exit code and its
//! one-line text.
//!
//! Belongs here: one function per kind of failure, no I/O. Not here:
//! deciding to fail (a missing extension, a refused plaintext login: those
//! are the session's own rules, in `session`).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::Error as SmtpError;

use crate::exit::{error_chain, io_reason, Cause, Error, Exit, Result};
use crate::smtp::reply::Malformed;
use crate::smtp::report::Refusal;
use crate::smtp::stage::Stage;
use crate::smtp::tls::client_certificate_refused;
use crate::types::Endpoint;

/// A temporary failure before the session started (no connection, no
/// greeting, or a 4xx greeting) says the server is not there for now.
pub(crate) fn unreachable(err: Error) -> Error {
    match err.exit {
        Exit::TempFail | Exit::IoErr | Exit::NoHost => err.cause(Cause::Unreachable),
        _ => err,
    }
}

/// What the table of replies needs to know besides the reply: where in
/// the session it came, and the facts that tell "you must log in" from a
/// refusal no login would change. Built by the session; a plain value so
/// that the table can be tested without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReplyContext {
    pub(crate) stage: Stage,
    /// The server's EHLO reply listed AUTH mechanisms.
    pub(crate) auth_offered: bool,
    /// postie logged in during this session.
    pub(crate) authenticated: bool,
    /// Direct delivery to a mail exchanger, where no login is possible.
    pub(crate) mx: bool,
    /// The session is over TLS already: "use STARTTLS" cannot be the fix.
    pub(crate) encrypted: bool,
    /// The server's EHLO reply offered STARTTLS.
    pub(crate) starttls_offered: bool,
}

impl ReplyContext {
    /// A stage before EHLO or outside a session: nothing known yet.
    pub(crate) fn at(stage: Stage) -> ReplyContext {
        ReplyContext {
            stage,
            auth_offered: false,
            authenticated: false,
            mx: false,
            encrypted: false,
            starttls_offered: false,
        }
    }
}

/// What a reply means: the exit code and what to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meaning {
    pub(crate) exit: Exit,
    pub(crate) hint: &'static str,
}

const TEMPORARY: &str = "a temporary failure; try again later";
const TLS_REQUIRED: &str = "the server requires TLS: use --tls starttls (the account's `tls`), or an smtps:// URL for port 465";
const AUTH_REQUIRED: &str = "the server requires authentication: give --user and --password-cmd, or set the account's `user` and `password_cmd`";
const AUTH_AFTER_TLS: &str = "the server requires authentication but offered none on this unencrypted connection; many offer it only after STARTTLS: use --tls starttls with --user and --password-cmd";
const NO_RELAY: &str = "the server does not take this mail from this client and offers no login; send through your own provider's submission server (port 587)";
const STARTTLS_FAILED: &str = "the server would not go on with TLS; try an smtps:// URL (implicit TLS, port 465), or ask the server's administrator";
const WRONG_PASSWORD: &str = "wrong user name or password";
const POLICY: &str = "refused by the server's policy (SPF, a blocklist, a sender it does not allow); its reply says why";
const BAD_SENDER: &str =
    "the server does not accept this sender address; check --from (or the account's `from`)";
const BAD_RECIPIENT: &str = "the server does not accept this recipient";
const TOO_BIG: &str = "the message is too big for the server or the mailbox; send smaller attachments, or a link to the file";
const PROTOCOL: &str =
    "a protocol error: the server did not take the command or the message as it was sent; its reply says why";

/// An enhanced status code (RFC 3463): class.subject.detail, at the start
/// of a reply's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Enhanced {
    class: u8,
    subject: u16,
    detail: u16,
}

impl Enhanced {
    /// `5.7.1 <x>: Relay access denied` -> 5.7.1. The class must agree
    /// with the basic code's first digit (RFC 3463 2: 2, 4 or 5).
    fn parse(code: u16, text: &str) -> Option<Enhanced> {
        let word = text.split_whitespace().next()?;
        let mut parts = word.split('.');
        let number = |part: Option<&str>, max_digits: usize| {
            part.filter(|p| !p.is_empty() && p.len() <= max_digits)
                .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse::<u16>().ok())
        };
        let class = number(parts.next(), 1)?;
        let subject = number(parts.next(), 3)?;
        let detail = number(parts.next(), 3)?;
        if parts.next().is_some() || class != code / 100 {
            return None;
        }
        Some(Enhanced {
            class: class as u8,
            subject,
            detail,
        })
    }
}

/// The one table of replies: what a 4xx or 5xx reply means, as an exit
/// code and a hint. Temporary or not is the first digit alone (a 4xx with
/// any enhanced code is retried: 451 4.7.1 is greylisting, 454 4.7.0 a
/// temporary authentication failure, RFC 4954 6). Among permanent replies
/// the enhanced status code picks the row; without one, the stage does.
pub(crate) fn reply_meaning(code: u16, text: &str, context: &ReplyContext) -> Meaning {
    let meaning = |exit, hint| Meaning { exit, hint };
    let lower = text.to_ascii_lowercase();
    let stage = context.stage;
    // RFC 3207 4: "530 5.7.0 Must issue a STARTTLS command first"; RFC
    // 5248: 5.7.10 encryption needed. Only where STARTTLS is still to do:
    // not in answer to STARTTLS itself, nor over TLS already.
    let tls_would_help = stage != Stage::StartTls && !context.encrypted;
    if code / 100 != 5 {
        // Retried whatever it says; but Exchange's "451 5.7.3 STARTTLS is
        // required to send mail" is not one to wait out.
        if tls_would_help && lower.contains("starttls") {
            return meaning(Exit::TempFail, TLS_REQUIRED);
        }
        return meaning(Exit::TempFail, TEMPORARY);
    }
    let enhanced = Enhanced::parse(code, text);
    if stage == Stage::StartTls {
        return meaning(Exit::Unavailable, STARTTLS_FAILED);
    }
    let security = enhanced.is_none_or(|e| e.subject == 7);
    if security
        && tls_would_help
        && (lower.contains("starttls")
            || enhanced.is_some_and(|e| e.detail == 10 && e.subject == 7))
    {
        return meaning(Exit::Unavailable, TLS_REQUIRED);
    }
    // Only where a login could change the answer: postie did not log in
    // (at AUTH itself the login was given: the rows below judge it), and
    // this is no mail exchanger (which takes mail for its own domains
    // without one).
    if stage != Stage::Auth
        && !context.authenticated
        && !context.mx
        && authentication_required(code, enhanced, &lower)
    {
        let login_after_tls = !context.encrypted && context.starttls_offered;
        return match (context.auth_offered, login_after_tls) {
            (true, _) => meaning(Exit::NoPerm, AUTH_REQUIRED),
            (false, true) => meaning(Exit::NoPerm, AUTH_AFTER_TLS),
            (false, false) if stage == Stage::Rcpt => meaning(Exit::NoUser, NO_RELAY),
            (false, false) => meaning(Exit::Unavailable, NO_RELAY),
        };
    }
    let Some(enhanced) = enhanced else {
        return by_stage(stage);
    };
    match (enhanced.subject, enhanced.detail) {
        // RFC 4954 6: authentication credentials invalid.
        (7, 8) => meaning(Exit::NoPerm, WRONG_PASSWORD),
        (7, _) => match stage {
            Stage::Auth => meaning(
                Exit::NoPerm,
                "the server refused the login; its reply says why",
            ),
            Stage::Rcpt => meaning(Exit::NoUser, POLICY),
            _ => meaning(Exit::Unavailable, POLICY),
        },
        // RFC 3463 3.2: bad sender's mailbox address, bad sender's system
        // address.
        (1, 7 | 8) => meaning(Exit::Unavailable, BAD_SENDER),
        (1, _) => meaning(Exit::NoUser, BAD_RECIPIENT),
        // Mailbox full; message too big for the system.
        (2, 2) | (3, 4) => meaning(Exit::Unavailable, TOO_BIG),
        // Protocol status: the command was not understood as sent.
        (5, _) => meaning(Exit::Protocol, PROTOCOL),
        _ => by_stage(stage),
    }
}

/// The replies that mean "log in first": Exchange Online's 5.7.57, RFC
/// 4954's "530 5.7.0 Authentication required", and a relay refusal
/// (Postfix `554 5.7.1 <x>: Relay access denied`, Exim "550 relay not
/// permitted", which has no enhanced code; Exchange "550 5.7.1 Unable to
/// relay").
fn authentication_required(code: u16, enhanced: Option<Enhanced>, lower: &str) -> bool {
    let says_auth = lower.contains("authenticat");
    // Postfix's reject_sender_login_mismatch: "Sender address rejected:
    // not logged in".
    let says_login = lower.contains("not logged in") || lower.contains("login required");
    let says_relay = lower.contains("relay")
        && [
            "denied",
            "not permitted",
            "not allowed",
            "prohibited",
            "refused",
            "unable to relay",
        ]
        .iter()
        .any(|word| lower.contains(word));
    match enhanced.map(|e| (e.subject, e.detail)) {
        Some((7, 57)) => true,
        Some((7, 0)) => says_auth || says_relay || says_login,
        // 5.7.1 (Postfix, Exchange's "Unable to relay"), 5.7.54 (Exchange
        // Online's relay refusal) and the like: only when the text says so.
        Some((7, _)) => says_relay || says_login,
        None => says_relay || says_login || (code == 530 && says_auth),
        Some(_) => false,
    }
}

/// A permanent reply with nothing more specific to go by.
fn by_stage(stage: Stage) -> Meaning {
    let (exit, hint) = match stage {
        Stage::Auth => (Exit::NoPerm, "check the user name and password"),
        Stage::Rcpt => (Exit::NoUser, BAD_RECIPIENT),
        Stage::Mail => (
            Exit::Unavailable,
            "the server does not accept this sender; check --from and the account",
        ),
        Stage::Banner | Stage::Greeting => (
            Exit::Unavailable,
            "the server refuses to serve this client; its reply says why",
        ),
        Stage::Message => (
            Exit::Unavailable,
            "the server refused the message after reading it; nothing was delivered, and its reply says why",
        ),
        _ => (Exit::Unavailable, "the server refused the message"),
    };
    Meaning { exit, hint }
}

/// Splits "550 5.1.1 no such user" into its code and text.
fn split_reply(reply: &str) -> (u16, &str) {
    let code = reply.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, reply.get(3..).unwrap_or("").trim_start())
}

/// Maps a lettre error at a given stage to postie's error and exit code.
pub(crate) fn smtp_error(endpoint: &Endpoint, context: &ReplyContext, err: SmtpError) -> Error {
    let stage = context.stage;
    let at = stage.name();
    if err.status().is_some() {
        let reply = server_reply(&err);
        let (code, text) = split_reply(&reply);
        let meaning = reply_meaning(code, text, context);
        return Error::new(meaning.exit, format!("{at}: {endpoint} replied {reply}"))
            .hint(meaning.hint);
    }
    if let Some(bad) = malformed(&err) {
        return malformed_error(endpoint, stage, bad);
    }
    let detail = error_chain(&err);
    if let Some(refused) = client_certificate_refused(endpoint, &detail) {
        return refused;
    }
    if is_connection_lost(&err, &detail) {
        return connection_lost(endpoint, stage);
    }
    if err.is_response() {
        return Error::new(
            Exit::Protocol,
            format!("{at}: {endpoint} sent a reply that is not SMTP: {detail}"),
        )
        .hint("check that this port speaks SMTP (and whether it expects implicit TLS)");
    }
    Error::new(Exit::IoErr, format!("{at}: {endpoint}: {detail}"))
}

/// The server reply an error of [`smtp_error`] or [`refusal_error`]
/// quotes ("550 5.1.1 no such user"), as its code and the rest (the
/// enhanced code and text); of several refusals, the first of the error's
/// kind (5xx for a permanent error). `None` for a failure no reply said (a
/// lost connection, a local problem), and when no quoted reply is of the
/// error's kind: a code that says "try again" of a message in failed/ (or
/// the reverse) would mislead the client. For `-bs`, which passes a
/// relay's refusal on to the application.
pub(crate) fn quoted_reply(err: &Error) -> Option<(u16, &str)> {
    // The relay's text comes after postie's own words and may hold either
    // wording ("550 no such user; we replied 451 later"): the first one
    // is postie's.
    let replied = err.message.find(" replied ");
    let refused = err.message.find(" refused <");
    let replies: Vec<&str> = match (replied, refused) {
        (Some(at), None) => vec![&err.message[at + " replied ".len()..]],
        (Some(at), Some(refused)) if at < refused => {
            vec![&err.message[at + " replied ".len()..]]
        }
        (_, Some(at)) => {
            // "a>: 550 ...; <b>: 450 ..."
            err.message[at + " refused <".len()..]
                .split("; <")
                .filter_map(|item| item.split_once(">: ").map(|(_, reply)| reply))
                .collect()
        }
        (None, None) => return None,
    };
    let temporary = err.is_temporary();
    replies
        .into_iter()
        .find_map(|reply| reply_of_kind(reply, temporary))
}

/// A server reply ("550 5.1.1 no such user") as its code and the rest,
/// when its code is of the kind given (4xx when `temporary`, else 5xx).
pub(crate) fn reply_of_kind(reply: &str, temporary: bool) -> Option<(u16, &str)> {
    let code: u16 = reply.get(..3)?.parse().ok()?;
    let rest = reply.get(3..)?;
    let wanted = if temporary { 4 } else { 5 };
    (code / 100 == wanted && (rest.is_empty() || rest.starts_with(' ')))
        .then_some((code, rest.trim_start()))
}

/// The greeting read by hand (--quit-after banner, where lettre, which
/// always sends EHLO, is not used), by its first digit.
pub(crate) fn greeting_reply(endpoint: &Endpoint, greeting: &str) -> Result<()> {
    let at = Stage::Banner.name();
    match greeting.chars().next() {
        Some('2') => Ok(()),
        Some('4') => Err(Error::new(
            Exit::TempFail,
            format!("{at}: {endpoint} replied {greeting}"),
        )),
        Some('5') => Err(Error::new(
            Exit::Unavailable,
            format!("{at}: {endpoint} replied {greeting}"),
        )),
        _ => Err(Error::new(
            Exit::Protocol,
            // Escaped by the Wire already; {:?} would double each '\'.
            format!("{at}: {endpoint} sent a reply that is not SMTP: \"{greeting}\""),
        )),
    }
}

/// A reply read by hand that could not be read: a line that is not SMTP
/// (the Wire's verdict), or the connection gone.
pub(crate) fn reply_read_error(err: &io::Error) -> Error {
    match Malformed::in_io(err) {
        Some(bad) => Error::new(
            Exit::Protocol,
            format!(
                "{}: the server sent a reply that is not SMTP: {bad}",
                Stage::Banner.name()
            ),
        ),
        None => connection_dropped(err),
    }
}

/// The connection failed under a dialogue held by hand.
pub(crate) fn connection_dropped(err: &io::Error) -> Error {
    Error::new(Exit::IoErr, format!("connection lost: {}", io_reason(err)))
}

/// The server closed the connection without a greeting.
pub(crate) fn closed_before_greeting() -> Error {
    Error::new(
        Exit::IoErr,
        format!(
            "{}: connection lost before the greeting",
            Stage::Banner.name()
        ),
    )
}

/// The server hung up before its greeting, at `stage` (the greeting read
/// by hand, or by lettre).
pub(crate) fn hung_up_before_greeting(endpoint: &Endpoint, stage: Stage) -> Error {
    Error::new(
        Exit::IoErr,
        format!(
            "{}: {endpoint} closed the connection before its greeting",
            stage.name()
        ),
    )
    .hint("try again later")
}

/// A port that says nothing or hangs up where a greeting was expected may
/// be waiting for a TLS handshake: port 465 certainly is (RFC 8314 3.3).
pub(crate) fn implicit_tls_hint(err: Error, port: u16) -> Error {
    if port == 465 {
        err.hint("port 465 expects implicit TLS: use an smtps:// URL or --tls implicit")
    } else {
        let hint = err.hint.clone().unwrap_or_default();
        let more = "if this port expects implicit TLS, use an smtps:// URL or --tls implicit";
        err.hint(if hint.is_empty() {
            more.to_string()
        } else {
            format!("{hint}; {more}")
        })
    }
}

/// The first byte where the greeting was expected starts a TLS record
/// (0x16, a handshake): the port speaks implicit TLS.
pub(crate) fn tls_record_before_greeting(endpoint: &Endpoint, stage: Stage) -> Error {
    Error::new(
        Exit::Protocol,
        format!(
            "{}: {endpoint} sent a TLS record where the SMTP greeting was expected",
            stage.name()
        ),
    )
    .hint("this port speaks implicit TLS: use an smtps:// URL or --tls implicit")
}

/// The TLS handshake of implicit TLS was answered by an SMTP greeting
/// ("220 ...", which OpenSSL reads as a record of a wrong version).
pub(crate) fn plain_smtp_on_implicit_tls(endpoint: &Endpoint) -> Error {
    Error::new(
        Exit::Protocol,
        format!(
            "{}: {endpoint} answered the TLS handshake in plain text (an SMTP greeting)",
            Stage::TlsHandshake.name()
        ),
    )
    .hint("the server speaks plain SMTP here; use smtp:// (STARTTLS) or port 587")
}

/// AUTH ended with a reply that is neither 334 nor 2xx.
pub(crate) fn auth_refused(endpoint: &Endpoint, context: &ReplyContext, reply: &Response) -> Error {
    let text = reply_text(reply);
    let (code, rest) = split_reply(&text);
    let meaning = reply_meaning(code, rest, context);
    Error::new(
        meaning.exit,
        format!("{}: {endpoint} replied {text}", Stage::Auth.name()),
    )
    .hint(meaning.hint)
}

/// A 334 challenge the mechanism cannot answer.
pub(crate) fn unexpected_challenge(endpoint: &Endpoint, err: &impl std::fmt::Display) -> Error {
    Error::new(
        Exit::NoPerm,
        format!(
            "{}: unexpected challenge from {endpoint}: {err}",
            Stage::Auth.name()
        ),
    )
}

/// An attachment that could not be read while the message was being
/// written: the connection is dropped before the final dot.
pub(crate) fn attachment_unreadable(err: &io::Error) -> Error {
    Error::new(
        Exit::NoInput,
        format!(
            "cannot read an attachment while sending: {}",
            io_reason(err)
        ),
    )
    .hint("the connection was dropped before the end of the message, so nothing was delivered")
}

/// A message of a batch not sent because the session broke before it:
/// a reply that never came (a late one would be misread) or a lost
/// connection.
pub(crate) fn session_broken(endpoint: &Endpoint, timed_out: bool) -> Error {
    let reason = if timed_out {
        "a reply did not come"
    } else {
        "the connection was lost"
    };
    Error::new(
        Exit::TempFail,
        format!("not sent: {reason} in the session with {endpoint} before this message"),
    )
    .hint("try again later")
}

/// A line that is not a reply is a protocol error at once: retrying a
/// server that does not speak SMTP for days helps nobody (EX_PROTOCOL).
pub(crate) fn malformed_error(endpoint: &Endpoint, stage: Stage, bad: &Malformed) -> Error {
    Error::new(
        Exit::Protocol,
        format!(
            "{}: {endpoint} sent a reply that is not SMTP: {bad}",
            stage.name()
        ),
    )
    .hint("check that this port speaks SMTP (and whether it expects implicit TLS)")
}

/// Plain text behind the 220 to STARTTLS: in the same read as the 220
/// (still unread), or in the place of the TLS handshake's first record.
/// Going on would let it pass as a reply over TLS (CVE-2011-0411).
pub(crate) fn starttls_injection(endpoint: &Endpoint) -> Error {
    Error::new(
        Exit::Protocol,
        format!(
            "STARTTLS: {endpoint} sent more after its 220; refusing to go on (a STARTTLS injection attempt, or a broken server)"
        ),
    )
}

/// The Wire's verdict on a reply line, inside a lettre error.
pub(crate) fn malformed(err: &SmtpError) -> Option<&Malformed> {
    Malformed::in_chain(err)
}

/// RFC 5321 3.8: 421 means the server is closing the connection.
pub(crate) fn is_closing(err: &SmtpError) -> bool {
    err.status().map(u16::from) == Some(421)
}

/// The server hung up (a reset or broken pipe).
pub(crate) fn hung_up(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected
    )
}

/// A write that failed: mostly the server hung up.
pub(crate) fn write_error(endpoint: &Endpoint, stage: Stage, err: &io::Error) -> Error {
    if hung_up(err) {
        return connection_lost(endpoint, stage);
    }
    Error::new(
        Exit::IoErr,
        format!("{}: {endpoint}: {}", stage.name(), io_reason(err)),
    )
}

fn connection_lost(endpoint: &Endpoint, stage: Stage) -> Error {
    Error::new(
        Exit::IoErr,
        format!("{}: connection to {endpoint} lost", stage.name()),
    )
    .hint("the server closed the connection; try again later")
}

/// A failed host name lookup. getaddrinfo's EAI_AGAIN (the resolver did
/// not answer: a machine still booting, a flaky network) is temporary, so
/// a cron report waits in the queue instead of failing for good; std keeps
/// only its text, which glibc and musl word alike.
pub(crate) fn lookup_error(host: &str, err: &io::Error) -> Error {
    let at = Stage::Lookup.name();
    let reason = lookup_reason(err);
    if reason.contains("Temporary failure in name resolution") {
        return Error::new(
            Exit::TempFail,
            format!("{at}: cannot resolve {host}: {reason}"),
        )
        .hint("the name server did not answer; try again later")
        .cause(Cause::Unreachable);
    }
    Error::new(
        Exit::NoHost,
        format!("{at}: cannot resolve {host}: {reason}"),
    )
    .hint("check the server name")
}

fn lookup_reason(err: &io::Error) -> String {
    let text = io_reason(err);
    text.strip_prefix("failed to lookup address information: ")
        .unwrap_or(&text)
        .to_string()
}

pub(crate) fn connect_error(endpoint: &Endpoint, address: &SocketAddr, err: &io::Error) -> Error {
    let what = match err.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        _ => io_reason(err),
    };
    Error::new(
        Exit::TempFail,
        format!(
            "{}: cannot connect to {}: {what}",
            Stage::Connect.name(),
            endpoint_at(endpoint, address)
        ),
    )
    .hint("check the server and port; try again later")
}

/// "smtp.example:587 (192.0.2.1:587)", or the address alone when the
/// server was given by its address.
pub(crate) fn endpoint_at(endpoint: &Endpoint, address: &SocketAddr) -> String {
    if endpoint.host.parse::<std::net::IpAddr>().is_ok() {
        address.to_string()
    } else {
        format!("{endpoint} ({address})")
    }
}

/// Runs `future`, the step `stage` with `endpoint`, under a time limit;
/// running out is a temporary failure that names the step and the server.
pub(crate) async fn timed<F: std::future::Future>(
    limit: Duration,
    stage: Stage,
    endpoint: &Endpoint,
    future: F,
) -> Result<F::Output> {
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| timed_out(limit, stage, endpoint))
}

/// The step `stage` with `endpoint` did not end within `limit`.
pub(crate) fn timed_out(limit: Duration, stage: Stage, endpoint: &Endpoint) -> Error {
    let whom = match stage {
        Stage::Lookup => format!("of {}", endpoint.host),
        Stage::Connect | Stage::MailAndRcpt => format!("to {endpoint}"),
        Stage::TlsHandshake => format!("with {endpoint}"),
        _ => format!("from {endpoint}"),
    };
    Error::new(
        Exit::TempFail,
        format!(
            "{}: timed out after {} s waiting for {} {whom}",
            stage.name(),
            limit.as_secs(),
            stage.waited_for()
        ),
    )
    .hint("the server is slow or unreachable; try again later or raise --timeout")
    .cause(Cause::Timeout)
}

/// The server's reply as it was sent: "550 5.1.1 no such user".
pub(crate) fn server_reply(err: &SmtpError) -> String {
    let code = err.status().map(|c| c.to_string()).unwrap_or_default();
    let text = std::error::Error::source(err)
        .map(|s| s.to_string())
        .unwrap_or_default();
    format!("{code} {text}").trim().to_string()
}

pub(crate) fn reply_text(reply: &Response) -> String {
    format!(
        "{} {}",
        reply.code(),
        reply.message().collect::<Vec<_>>().join(" ")
    )
    .trim()
    .to_string()
}

/// lettre reports a closed connection as "incomplete response" (EOF while
/// reading a reply) or as a network error with a reset/EOF io::Error.
fn is_connection_lost(err: &SmtpError, detail: &str) -> bool {
    if err.is_response() {
        return detail.ends_with("incomplete response");
    }
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        if let Some(io_err) = inner.downcast_ref::<io::Error>() {
            return hung_up(io_err);
        }
        source = inner.source();
    }
    false
}

pub(crate) fn refusal_error(
    endpoint: &Endpoint,
    context: &ReplyContext,
    refused: &[Refusal],
    all_refused: bool,
) -> Error {
    let list: Vec<String> = refused
        .iter()
        .map(|r| format!("<{}>: {}", r.recipient, r.reply))
        .collect();
    let message = format!("RCPT TO: {endpoint} refused {}", list.join("; "));
    // The message goes to all or none: a permanent refusal means no retry
    // can ever deliver it whole, so only an all-4xx list is temporary.
    if refused.iter().all(|r| r.temporary) {
        let hint = if all_refused {
            "nothing was sent"
        } else {
            // A 4xx is nobody's mistake: the same list may go through later.
            "nothing was sent; try again later, or use --partial to send to the others now"
        };
        return Error::new(Exit::TempFail, message).hint(hint);
    }
    // A refusal about the session or the sender (log in first, TLS
    // required, a bad sender) is no fault of the recipients: it names the
    // fix for all of them, and its code wins.
    let meanings: Vec<Meaning> = refused
        .iter()
        .filter(|r| !r.temporary)
        .map(|r| {
            let (code, text) = split_reply(&r.reply);
            reply_meaning(code, text, context)
        })
        .collect();
    let session_wide = meanings
        .iter()
        .filter(|m| m.exit != Exit::NoUser)
        .min_by_key(|m| match m.exit {
            Exit::NoPerm => 0,
            Exit::Unavailable => 1,
            _ => 2,
        });
    if let Some(meaning) = session_wide {
        return Error::new(meaning.exit, message).hint(meaning.hint);
    }
    let base = if all_refused {
        "nothing was sent"
    } else {
        "nothing was sent; fix or remove these recipients, or use --partial to send to the others"
    };
    // A policy refusal says more than "this recipient is refused".
    let hint = match meanings.iter().find(|m| m.hint != BAD_RECIPIENT) {
        Some(meaning) => format!("{}; {base}", meaning.hint),
        None => base.to_string(),
    };
    Error::new(Exit::NoUser, message).hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rcpt() -> ReplyContext {
        ReplyContext::at(Stage::Rcpt)
    }

    /// A submission server that offered AUTH to a client that did not log in.
    fn anonymous(stage: Stage) -> ReplyContext {
        ReplyContext {
            stage,
            auth_offered: true,
            authenticated: false,
            mx: false,
            encrypted: false,
            starttls_offered: true,
        }
    }

    fn row(reply: &str, context: ReplyContext) -> (u8, &'static str) {
        let (code, text) = split_reply(reply);
        let meaning = reply_meaning(code, text, &context);
        (meaning.exit.code(), meaning.hint)
    }

    #[test]
    fn row_every_4xx_is_temporary_whatever_its_enhanced_code() {
        for reply in [
            "451 4.7.1 Greylisted, please try again later",
            "454 4.7.0 Temporary authentication failure",
            "421 4.7.0 Try again later, closing connection",
            "452 4.2.2 mailbox full",
        ] {
            assert_eq!(
                row(reply, anonymous(Stage::Mail)),
                (75, TEMPORARY),
                "{reply}"
            );
        }
    }

    #[test]
    fn quoted_reply_finds_the_relays_reply_in_either_wording() {
        let replied = Error::new(Exit::Unavailable, "DATA: h:25 (::1) replied 554 5.7.1 spam");
        assert_eq!(quoted_reply(&replied), Some((554, "5.7.1 spam")));
        let refused = Error::new(
            Exit::NoUser,
            "RCPT TO: h:25 refused <a@x>: 451 4.3.0 later; <b@x>: 550 5.1.1 no such user",
        );
        assert_eq!(quoted_reply(&refused), Some((550, "5.1.1 no such user")));
        let temporary = Error::new(
            Exit::TempFail,
            "RCPT TO: h:25 refused <a@x>: 451 4.3.0 later",
        );
        assert_eq!(quoted_reply(&temporary), Some((451, "4.3.0 later")));
        let local = Error::new(Exit::TempFail, "connect: cannot connect to h:25: refused");
        assert_eq!(quoted_reply(&local), None);
    }

    #[test]
    fn quoted_reply_is_not_fooled_by_the_relays_text() {
        // A permanent refusal whose text quotes a 4xx: never 451 for a
        // message kept in failed/.
        let refused = Error::new(
            Exit::NoUser,
            "RCPT TO: h:25 refused <b@x>: 550 5.1.1 no such user; we replied 451 4.0.0 later",
        );
        assert_eq!(
            quoted_reply(&refused),
            Some((550, "5.1.1 no such user; we replied 451 4.0.0 later"))
        );
        let replied = Error::new(
            Exit::Unavailable,
            "DATA: h:25 replied 554 5.7.1 refused <x>: 451 4.0.0 later",
        );
        assert_eq!(
            quoted_reply(&replied),
            Some((554, "5.7.1 refused <x>: 451 4.0.0 later"))
        );
        // No reply of the error's kind: none, whatever the text says.
        let odd = Error::new(Exit::NoUser, "RCPT TO: h:25 refused <b@x>: 451 4.0.0 later");
        assert_eq!(quoted_reply(&odd), None);
        let odd = Error::new(Exit::TempFail, "DATA: h:25 replied 554 5.7.1 no");
        assert_eq!(quoted_reply(&odd), None);
        assert_eq!(
            reply_of_kind("550 5.1.1 gone", false),
            Some((550, "5.1.1 gone"))
        );
        assert_eq!(reply_of_kind("550 5.1.1 gone", true), None);
        assert_eq!(reply_of_kind("5501 x", false), None);
    }

    #[test]
    fn row_starttls_required_is_69_naming_the_tls_setting() {
        let gmail = "530 5.7.0 Must issue a STARTTLS command first. x1-20020a17sor.1 - gsmtp";
        assert_eq!(row(gmail, anonymous(Stage::Mail)), (69, TLS_REQUIRED));
        assert_eq!(
            row(gmail, ReplyContext::at(Stage::Mail)),
            (69, TLS_REQUIRED)
        );
        assert_eq!(
            row(
                "530 Must issue a STARTTLS command first",
                ReplyContext::at(Stage::Mail)
            ),
            (69, TLS_REQUIRED)
        );
        assert_eq!(
            row(
                "530 5.7.10 Encryption needed",
                ReplyContext::at(Stage::Rcpt)
            ),
            (69, TLS_REQUIRED)
        );
        assert!(TLS_REQUIRED.contains("--tls starttls") && TLS_REQUIRED.contains("smtps://"));
    }

    #[test]
    fn row_authentication_required_is_77_when_a_login_would_help() {
        for (reply, stage) in [
            ("530 5.7.57 Client not authenticated to send mail. [AM0PR01CA0001.eurprd01.prod.exchangelabs.com]", Stage::Mail),
            ("530 5.7.0 Authentication required", Stage::Mail),
            ("554 5.7.1 <b@example.org>: Relay access denied", Stage::Rcpt),
            ("550 relay not permitted", Stage::Rcpt),
            ("550 5.7.1 Unable to relay", Stage::Rcpt),
        ] {
            assert_eq!(row(reply, anonymous(stage)), (77, AUTH_REQUIRED), "{reply}");
        }
        assert!(AUTH_REQUIRED.contains("--user") && AUTH_REQUIRED.contains("--password-cmd"));
    }

    #[test]
    fn row_authentication_required_is_no_such_thing_where_no_login_helps() {
        let relay = "554 5.7.1 <b@example.org>: Relay access denied";
        let logged_in = ReplyContext {
            authenticated: true,
            ..anonymous(Stage::Rcpt)
        };
        let mx = ReplyContext {
            mx: true,
            ..anonymous(Stage::Rcpt)
        };
        for context in [logged_in, mx] {
            assert_eq!(row(relay, context), (67, POLICY), "{context:?}");
        }
        assert_eq!(
            row("550 relay not permitted", mx),
            (67, BAD_RECIPIENT),
            "without an enhanced code the stage decides"
        );
    }

    #[test]
    fn row_wrong_password_is_77() {
        let reply = "535 5.7.8 Username and Password not accepted. Learn more at https://support.google.com/mail/?p=BadCredentials";
        assert_eq!(row(reply, anonymous(Stage::Auth)), (77, WRONG_PASSWORD));
    }

    #[test]
    fn row_other_security_replies_are_policy_refusals_by_stage() {
        let spf = "550 5.7.26 This mail is unauthenticated, which poses a security risk to the sender and Gmail users";
        assert_eq!(row(spf, anonymous(Stage::Mail)), (69, POLICY));
        assert_eq!(row(spf, anonymous(Stage::Message)), (69, POLICY));
        assert_eq!(row(spf, anonymous(Stage::Data)), (69, POLICY));
        assert_eq!(row(spf, anonymous(Stage::Rcpt)), (67, POLICY));
        let blocked =
            "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org";
        assert_eq!(row(blocked, anonymous(Stage::Rcpt)), (67, POLICY));
    }

    #[test]
    fn row_bad_sender_is_69_naming_from() {
        for reply in [
            "553 5.1.7 The sender address is not valid",
            "550 5.1.8 <me@nowhere.invalid>: Sender address rejected: Domain not found",
        ] {
            assert_eq!(
                row(reply, anonymous(Stage::Rcpt)),
                (69, BAD_SENDER),
                "{reply}"
            );
            assert_eq!(
                row(reply, anonymous(Stage::Mail)),
                (69, BAD_SENDER),
                "{reply}"
            );
        }
        assert!(BAD_SENDER.contains("--from"));
    }

    #[test]
    fn row_other_address_replies_are_67() {
        assert_eq!(
            row(
                "550 5.1.1 <x@example.org>: Recipient address rejected: User unknown",
                anonymous(Stage::Rcpt)
            ),
            (67, BAD_RECIPIENT)
        );
        assert_eq!(
            row(
                "501 5.1.3 Bad recipient address syntax",
                anonymous(Stage::Rcpt)
            ),
            (67, BAD_RECIPIENT)
        );
    }

    #[test]
    fn row_size_replies_are_69() {
        assert_eq!(
            row(
                "552 5.3.4 Message size exceeds fixed limit",
                anonymous(Stage::Message)
            ),
            (69, TOO_BIG)
        );
        assert_eq!(
            row("552 5.2.2 Mailbox full", anonymous(Stage::Rcpt)),
            (69, TOO_BIG)
        );
    }

    #[test]
    fn row_protocol_replies_are_76() {
        assert_eq!(
            row(
                "501 5.5.4 Syntax error in parameters",
                anonymous(Stage::Mail)
            ),
            (76, PROTOCOL)
        );
    }

    #[test]
    fn row_without_an_enhanced_code_the_stage_decides() {
        let at = |stage| row("550 no", anonymous(stage)).0;
        assert_eq!(at(Stage::Auth), 77);
        assert_eq!(at(Stage::Rcpt), 67);
        assert_eq!(at(Stage::Mail), 69);
        assert_eq!(at(Stage::Greeting), 69);
        assert_eq!(at(Stage::Message), 69);
        // An enhanced code the table has no row for: the same.
        assert_eq!(
            row("554 5.6.0 bad content", anonymous(Stage::Message)).0,
            69
        );
        assert_eq!(
            row("535 Authentication failed", anonymous(Stage::Auth)).0,
            77
        );
    }

    #[test]
    fn enhanced_codes_are_read_only_where_rfc_3463_puts_them() {
        let parse = |reply: &str| {
            let (code, text) = split_reply(reply);
            Enhanced::parse(code, text).map(|e| (e.class, e.subject, e.detail))
        };
        assert_eq!(parse("550 5.7.1 no"), Some((5, 7, 1)));
        assert_eq!(parse("530 5.7.57 no"), Some((5, 7, 57)));
        assert_eq!(parse("550 4.7.1 class disagrees"), None);
        assert_eq!(parse("550 relay not permitted"), None);
        assert_eq!(parse("550 1.2.3.4 an address"), None);
        assert_eq!(parse("550 5.7.1.2 too many parts"), None);
    }

    #[test]
    fn a_relay_refusal_for_every_recipient_asks_for_a_login() {
        let endpoint = Endpoint {
            host: "smtp.example".into(),
            port: 587,
        };
        let relay = Refusal {
            recipient: "b@example.org".into(),
            reply: "554 5.7.1 <b@example.org>: Relay access denied".into(),
            temporary: false,
        };
        let err = refusal_error(&endpoint, &anonymous(Stage::Rcpt), &[relay], true);
        assert_eq!(err.exit, Exit::NoPerm);
        assert_eq!(err.hint.as_deref(), Some(AUTH_REQUIRED));
    }

    #[test]
    fn refusals_are_75_only_when_every_one_is_temporary() {
        let endpoint = Endpoint {
            host: "h".into(),
            port: 25,
        };
        let permanent = Refusal {
            recipient: "a@x".into(),
            reply: "550 no".into(),
            temporary: false,
        };
        let temporary = Refusal {
            temporary: true,
            ..permanent.clone()
        };
        assert_eq!(
            refusal_error(&endpoint, &rcpt(), std::slice::from_ref(&permanent), true).exit,
            Exit::NoUser
        );
        assert_eq!(
            refusal_error(&endpoint, &rcpt(), &[permanent, temporary.clone()], true).exit,
            Exit::NoUser
        );
        assert_eq!(
            refusal_error(&endpoint, &rcpt(), &[temporary.clone(), temporary], true).exit,
            Exit::TempFail
        );
    }

    #[test]
    fn a_resolver_that_does_not_answer_is_temporary() {
        let again = io::Error::other(
            "failed to lookup address information: Temporary failure in name resolution",
        );
        let err = lookup_error("smtp.example", &again);
        assert_eq!(err.exit, Exit::TempFail);
        assert_eq!(
            err.message,
            "host name lookup: cannot resolve smtp.example: Temporary failure in name resolution"
        );
        let unknown =
            io::Error::other("failed to lookup address information: Name or service not known");
        assert_eq!(lookup_error("smtp.example", &unknown).exit, Exit::NoHost);
    }

    #[test]
    fn row_a_refused_login_is_judged_as_a_login_not_as_a_missing_one() {
        // Older Postfix/Cyrus wording for a wrong password.
        let reply = "535 5.7.0 Error: authentication failed: authentication failure";
        let (exit, hint) = row(reply, anonymous(Stage::Auth));
        assert_eq!(exit, 77);
        assert_ne!(hint, AUTH_REQUIRED);
    }

    #[test]
    fn row_a_refusal_of_starttls_itself_is_about_tls_not_policy() {
        for reply in [
            "554 5.7.3 Unable to initialize security subsystem",
            "530 5.7.0 Must issue a STARTTLS command first",
            "554 TLS not available",
        ] {
            assert_eq!(
                row(reply, anonymous(Stage::StartTls)),
                (69, STARTTLS_FAILED),
                "{reply}"
            );
        }
    }

    #[test]
    fn row_authentication_required_without_auth_offered_points_to_starttls() {
        let plain = ReplyContext {
            starttls_offered: true,
            ..ReplyContext::at(Stage::Mail)
        };
        assert_eq!(
            row("530 5.7.0 Authentication required", plain),
            (77, AUTH_AFTER_TLS)
        );
        let not_logged_in = "553 5.7.1 <a@b.c>: Sender address rejected: not logged in";
        assert_eq!(
            row(not_logged_in, anonymous(Stage::Mail)),
            (77, AUTH_REQUIRED)
        );
        assert_eq!(row(not_logged_in, plain), (77, AUTH_AFTER_TLS));
        let relay = "554 5.7.1 <b@example.org>: Relay access denied";
        let over_tls = ReplyContext {
            encrypted: true,
            ..ReplyContext::at(Stage::Rcpt)
        };
        assert_eq!(row(relay, over_tls), (67, NO_RELAY));
        // No login and no TLS to get one through: not this server's client.
        assert_eq!(row(relay, ReplyContext::at(Stage::Rcpt)), (67, NO_RELAY));
    }

    #[test]
    fn row_starttls_required_in_a_4xx_is_retried_with_the_tls_hint() {
        let reply = "451 5.7.3 STARTTLS is required to send mail";
        assert_eq!(row(reply, anonymous(Stage::Mail)), (75, TLS_REQUIRED));
    }

    #[test]
    fn row_over_tls_already_starttls_is_not_the_fix() {
        let over_tls = ReplyContext {
            encrypted: true,
            ..anonymous(Stage::Mail)
        };
        let (_, hint) = row("530 5.7.0 Must issue a STARTTLS command first", over_tls);
        assert_ne!(hint, TLS_REQUIRED);
        let (_, hint) = row("451 4.7.0 STARTTLS is required", over_tls);
        assert_eq!(hint, TEMPORARY);
    }
}
