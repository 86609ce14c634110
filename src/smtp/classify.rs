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

/// Maps a lettre error at a given stage to postie's error and exit code.
pub(crate) fn smtp_error(endpoint: &Endpoint, stage: Stage, err: SmtpError) -> Error {
    let at = stage.name();
    if err.status().is_some() {
        let reply = server_reply(&err);
        let (exit, hint) = if err.is_transient() {
            (Exit::TempFail, "a temporary failure; try again later")
        } else {
            match stage {
                Stage::Auth => (Exit::NoPerm, "check the user name and password"),
                Stage::Rcpt => (Exit::NoUser, "the server does not accept this recipient"),
                Stage::Mail => (
                    Exit::Unavailable,
                    "the server does not accept this sender; check --from and the account",
                ),
                _ => (Exit::Unavailable, "the server refused the message"),
            }
        };
        return Error::new(exit, format!("{at}: {endpoint} replied {reply}")).hint(hint);
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
    Error::new(Exit::IoErr, "connection lost before the greeting")
}

/// AUTH ended with a reply that is neither 334 nor 2xx.
pub(crate) fn auth_refused(endpoint: &Endpoint, reply: &Response) -> Error {
    Error::new(
        Exit::NoPerm,
        format!(
            "{}: {endpoint} replied {}",
            Stage::Auth.name(),
            reply_text(reply)
        ),
    )
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
    let reason = lookup_reason(err);
    if reason.contains("Temporary failure in name resolution") {
        return Error::new(Exit::TempFail, format!("cannot resolve {host}: {reason}"))
            .hint("the name server did not answer; try again later")
            .cause(Cause::Unreachable);
    }
    Error::new(Exit::NoHost, format!("cannot resolve {host}: {reason}"))
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
        format!("cannot connect to {endpoint} ({address}): {what}"),
    )
    .hint("check the server and port; try again later")
}

/// Runs `future`, the step `stage`, under a time limit; running out is a
/// temporary failure, worded by `Stage::waited_for`.
pub(crate) async fn timed<F: std::future::Future>(
    limit: Duration,
    stage: Stage,
    future: F,
) -> Result<F::Output> {
    tokio::time::timeout(limit, future).await.map_err(|_| {
        Error::new(
            Exit::TempFail,
            format!(
                "timed out after {} s waiting for {}",
                limit.as_secs(),
                stage.waited_for()
            ),
        )
        .hint("the server is slow or unreachable; try again later or raise --timeout")
        .cause(Cause::Timeout)
    })
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

pub(crate) fn refusal_error(endpoint: &Endpoint, refused: &[Refusal], all_refused: bool) -> Error {
    let list: Vec<String> = refused
        .iter()
        .map(|r| format!("<{}>: {}", r.recipient, r.reply))
        .collect();
    // The message goes to all or none: a permanent refusal means no retry
    // can ever deliver it whole, so only an all-4xx list is temporary.
    let exit = if refused.iter().all(|r| r.temporary) {
        Exit::TempFail
    } else {
        Exit::NoUser
    };
    let hint = match (all_refused, exit) {
        (true, _) => "nothing was sent",
        // A 4xx is nobody's mistake: the same list may go through later.
        (false, Exit::TempFail) => {
            "nothing was sent; try again later, or use --partial to send to the others now"
        }
        (false, _) => {
            "nothing was sent; fix or remove these recipients, or use --partial to send to the others"
        }
    };
    Error::new(
        exit,
        format!("RCPT TO: {endpoint} refused {}", list.join("; ")),
    )
    .hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            refusal_error(&endpoint, std::slice::from_ref(&permanent), true).exit,
            Exit::NoUser
        );
        assert_eq!(
            refusal_error(&endpoint, &[permanent, temporary.clone()], true).exit,
            Exit::NoUser
        );
        assert_eq!(
            refusal_error(&endpoint, &[temporary.clone(), temporary], true).exit,
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
            "cannot resolve smtp.example: Temporary failure in name resolution"
        );
        let unknown =
            io::Error::other("failed to lookup address information: Name or service not known");
        assert_eq!(lookup_error("smtp.example", &unknown).exit, Exit::NoHost);
    }
}
