//! Exit codes and the one error type that carries them.
//!
//! Scripts and cron branch on postie's exit status, so every failure is
//! classified once, here, into a sysexits(3) code. Everything below `main`
//! returns [`Error`]; `main` prints it as one line and exits with its code.

use std::fmt;

/// Defines [`Exit`] with, next to each variant, what the documentation says
/// of it: its sysexits.h name, a few words for the `--help` footer, and the
/// full description for the man page and the README (markup: `code`).
/// [`Exit::ALL`] lists every variant, so no list of codes is kept by hand.
macro_rules! exits {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident = $code:literal, $name:literal, $summary:literal, $description:literal;
    )*) => {
        /// The sysexits(3) codes postie uses. The numbers are a contract with the
        /// scripts that call postie: never renumber.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Exit {
            $($(#[doc = $doc])* $variant = $code,)*
        }

        impl Exit {
            /// Every exit code but 0, in numeric order.
            pub(crate) const ALL: &'static [Exit] = &[$(Exit::$variant),*];

            /// The name from sysexits.h, shown in error lines so that a reader of a
            /// cron mail knows what the number means.
            pub fn name(self) -> &'static str {
                match self {
                    $(Exit::$variant => $name,)*
                }
            }

            /// A few words for the `--help` footer ("recipient refused").
            pub(crate) fn summary(self) -> &'static str {
                match self {
                    $(Exit::$variant => $summary,)*
                }
            }

            /// What leads to this code, for the man page and the README: one
            /// or more sentences, `code` quoted with backticks.
            pub(crate) fn description(self) -> &'static str {
                match self {
                    $(Exit::$variant => $description,)*
                }
            }
        }
    };
}

exits! {
    /// EX_USAGE: the command line is wrong.
    Usage = 64, "EX_USAGE", "usage",
        "Bad command line: unknown flag, missing sender, recipients, server or body; `--mx` \
         with `--user`, `--password-cmd` or `--auth`.";
    /// EX_DATAERR: malformed address, header or message.
    DataErr = 65, "EX_DATAERR", "bad address or message",
        "Malformed address, header (CR or LF in it, a second Date) or message; a body that is not UTF-8; an \
         EHLO name that is no domain; an inline image without a usable Content-ID; a message \
         over `max_message_size`.";
    /// EX_NOINPUT: an input file is missing or unreadable.
    NoInput = 66, "EX_NOINPUT", "unreadable input file",
        "An input file (body, HTML, attachment, CA file) is missing or unreadable.";
    /// EX_NOUSER: a recipient was refused permanently (5xx to RCPT).
    NoUser = 67, "EX_NOUSER", "recipient refused",
        "A recipient was refused permanently (5xx to RCPT, unless the reply is about the sender, \
         TLS or a login), or a local name has no alias.";
    /// EX_NOHOST: the server's host name does not resolve.
    NoHost = 68, "EX_NOHOST", "unknown host or domain",
        "The server's host name does not resolve; with MX delivery, a recipient domain does not \
         exist or has no address.";
    /// EX_UNAVAILABLE: the server refused the service (5xx to the greeting,
    /// MAIL or DATA; STARTTLS required but not offered; untrusted certificate).
    Unavailable = 69, "EX_UNAVAILABLE", "service unavailable",
        "5xx to the greeting, MAIL or DATA (a policy refusal, a bad sender, a message too big); \
         the server requires TLS; STARTTLS required but not offered; certificate not trusted; no \
         usable AUTH mechanism; SMTPUTF8 needed but not offered.";
    /// EX_SOFTWARE: a bug in postie.
    Software = 70, "EX_SOFTWARE", "bug in postie",
        "A bug in postie.";
    /// EX_IOERR: the connection was lost mid-session, or output failed.
    IoErr = 74, "EX_IOERR", "connection lost or write error",
        "The connection was lost mid-session, or the queue or standard output could not be \
         written.";
    /// EX_TEMPFAIL: any 4xx reply, connection refused, timeout. Retry later.
    TempFail = 75, "EX_TEMPFAIL", "temporary failure (retry later)",
        "Any 4xx reply, connection refused, timeout (also the password command's): retry later.";
    /// EX_PROTOCOL: the server spoke something that is not SMTP, or the TLS
    /// handshake failed.
    Protocol = 76, "EX_PROTOCOL", "protocol error",
        "The reply is not SMTP or is an `X.5.x` protocol status, a TLS record came where the \
         greeting was expected, or the TLS handshake failed (a plain server on an `smtps://` URL \
         too); a SCRAM challenge postie refuses (fewer than 4096 or more than a million \
         iterations).";
    /// EX_NOPERM: the server refused the credentials.
    NoPerm = 77, "EX_NOPERM", "authentication refused",
        "Authentication refused (wrong user name or password, an OAuth2 token refused); a \
         SCRAM server that could not prove it knows the password (nothing is sent to it); the \
         server requires authentication and none was given; or the server requires a client certificate or did \
         not accept the one given.";
    /// EX_CONFIG: the configuration is wrong or unsafe.
    Config = 78, "EX_CONFIG", "configuration error",
        "Configuration error: bad key, unknown account, unsafe file permissions, no password, a \
         password command that fails or prints something unusable, an account with a login but \
         no server.";
}

/// Exit status 0, which is no [`Exit`]: its `--help` words and description.
pub(crate) const SUCCESS: (&str, &str) = (
    "sent or queued",
    "Every recipient was sent to (the server answered 250 to the end of DATA) or queued.",
);

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The exit codes in one sentence, for the end of `--help`: "Exit status
/// follows sysexits.h: 0 sent or queued, 64 usage, ...".
pub(crate) fn help_summary() -> String {
    let mut text = format!("Exit status follows sysexits.h: 0 {}", SUCCESS.0);
    for exit in Exit::ALL {
        text.push_str(&format!(", {} {}", exit.code(), exit.summary()));
    }
    text.push('.');
    text
}

/// A failure: what went wrong, in one line, and the exit code it maps to.
///
/// `message` names the stage and the problem (with the server's reply where
/// there is one); `hint` says what to try. Neither ever holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub exit: Exit,
    pub message: String,
    pub(crate) hint: Option<String>,
    /// What the caller may need to know beyond the exit code.
    pub(crate) cause: Cause,
}

/// Failures that change what the caller does next, where the exit code
/// alone cannot tell (a 75 may be a 4xx reply or a silent server).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Cause {
    #[default]
    Other,
    /// No SMTP session started: the connection was refused or not
    /// answered, or no greeting came. Other messages for the same server
    /// would fare no better right now.
    Unreachable,
    /// A reply did not come in time; a late one could still arrive and be
    /// taken for the answer to the next command.
    Timeout,
    /// This machine could not get ready to send (the password command hung
    /// or printed something unusable): the message is not at fault, so it
    /// is owed whatever the exit code says, and a later run may succeed.
    LocalSetup,
}

impl Error {
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        Error {
            exit,
            message: message.into(),
            hint: None,
            cause: Cause::Other,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn cause(mut self, cause: Cause) -> Self {
        self.cause = cause;
        self
    }

    /// Worth trying again later (and queueing): 75 and 74.
    pub(crate) fn is_temporary(&self) -> bool {
        matches!(self.exit, Exit::TempFail | Exit::IoErr)
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    pub(crate) fn data(message: impl Into<String>) -> Self {
        Self::new(Exit::DataErr, message)
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::new(Exit::Config, message)
    }

    /// An input file that cannot be read: 66, naming the file and the reason.
    pub(crate) fn input(what: &str, path: &std::path::Path, err: &std::io::Error) -> Self {
        Self::new(
            Exit::NoInput,
            format!("cannot read {what} {}: {}", path.display(), io_reason(err)),
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Multi-line server replies and odd input must not break the
        // one-line contract that log scrapers rely on.
        let one_line = |s: &str| s.replace(['\r', '\n'], " ");
        write!(f, "{}", one_line(&self.message))?;
        if let Some(hint) = &self.hint {
            write!(f, "; {}", one_line(hint))?;
        }
        write!(f, " ({} {})", self.exit.name(), self.exit.code())
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs `f`, turning a panic inside it (a parser's bug on hostile input)
/// into `None`, without the panic message on stderr: the caller reports
/// it as one line. Meant for the single-threaded CLI; the panic hook is
/// process-wide.
pub(crate) fn without_panic<T>(f: impl FnOnce() -> T) -> Option<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.ok()
}

/// An io::Error as a person would say it: "No such file or directory",
/// without Rust's "(os error 2)" suffix.
pub(crate) fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// The error and its sources in one line.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    chain_onto(err.to_string(), err.source())
}

/// `text`, then each source's text that it does not already hold.
pub(crate) fn chain_onto(
    mut text: String,
    mut source: Option<&(dyn std::error::Error + 'static)>,
) -> String {
    while let Some(inner) = source {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_code() {
        let err = Error::new(Exit::NoUser, "RCPT refused:\r\n550 no").hint("check the address\n");
        assert_eq!(
            err.to_string(),
            "RCPT refused:  550 no; check the address  (EX_NOUSER 67)"
        );
    }

    #[test]
    fn codes_match_sysexits_h() {
        let expected = [
            (Exit::Usage, 64),
            (Exit::DataErr, 65),
            (Exit::NoInput, 66),
            (Exit::NoUser, 67),
            (Exit::NoHost, 68),
            (Exit::Unavailable, 69),
            (Exit::Software, 70),
            (Exit::IoErr, 74),
            (Exit::TempFail, 75),
            (Exit::Protocol, 76),
            (Exit::NoPerm, 77),
            (Exit::Config, 78),
        ];
        for (exit, code) in expected {
            assert_eq!(exit.code(), code, "{}", exit.name());
        }
    }

    #[test]
    fn all_lists_every_code_once_in_order() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|exit| exit.code()).collect();
        assert_eq!(codes, [64, 65, 66, 67, 68, 69, 70, 74, 75, 76, 77, 78]);
        for exit in Exit::ALL {
            assert!(exit.description().ends_with('.'), "{}", exit.name());
            assert!(!exit.summary().is_empty(), "{}", exit.name());
        }
    }

    #[test]
    fn help_summary_names_every_code() {
        let summary = help_summary();
        assert!(summary.starts_with("Exit status follows sysexits.h: 0 sent or queued, 64 usage,"));
        assert!(summary.ends_with(", 78 configuration error."), "{summary}");
    }

    #[test]
    fn io_reason_drops_os_error_suffix() {
        let err = std::io::Error::from_raw_os_error(2);
        assert_eq!(io_reason(&err), "No such file or directory");
    }
}
