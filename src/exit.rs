//! Exit codes and the one error type that carries them.
//!
//! Scripts and cron branch on postie's exit status, so every failure is
//! classified once, here, into a sysexits(3) code. Everything below `main`
//! returns [`Error`]; `main` prints it as one line and exits with its code.

use std::fmt;

/// The sysexits(3) codes postie uses. The numbers are a contract with the
/// scripts that call postie: never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// EX_USAGE: the command line is wrong.
    Usage = 64,
    /// EX_DATAERR: malformed address, header or message.
    DataErr = 65,
    /// EX_NOINPUT: an input file is missing or unreadable.
    NoInput = 66,
    /// EX_NOUSER: a recipient was refused permanently (5xx to RCPT).
    NoUser = 67,
    /// EX_NOHOST: the server's host name does not resolve.
    NoHost = 68,
    /// EX_UNAVAILABLE: the server refused the service (5xx to the greeting,
    /// MAIL or DATA; STARTTLS required but not offered; untrusted certificate).
    Unavailable = 69,
    /// EX_SOFTWARE: a bug in postie.
    Software = 70,
    /// EX_IOERR: the connection was lost mid-session, or output failed.
    IoErr = 74,
    /// EX_TEMPFAIL: any 4xx reply, connection refused, timeout. Retry later.
    TempFail = 75,
    /// EX_PROTOCOL: the server spoke something that is not SMTP, or the TLS
    /// handshake failed.
    Protocol = 76,
    /// EX_NOPERM: the server refused the credentials.
    NoPerm = 77,
    /// EX_CONFIG: the configuration is wrong or unsafe.
    Config = 78,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The name from sysexits.h, shown in error lines so that a reader of a
    /// cron mail knows what the number means.
    pub fn name(self) -> &'static str {
        match self {
            Exit::Usage => "EX_USAGE",
            Exit::DataErr => "EX_DATAERR",
            Exit::NoInput => "EX_NOINPUT",
            Exit::NoUser => "EX_NOUSER",
            Exit::NoHost => "EX_NOHOST",
            Exit::Unavailable => "EX_UNAVAILABLE",
            Exit::Software => "EX_SOFTWARE",
            Exit::IoErr => "EX_IOERR",
            Exit::TempFail => "EX_TEMPFAIL",
            Exit::Protocol => "EX_PROTOCOL",
            Exit::NoPerm => "EX_NOPERM",
            Exit::Config => "EX_CONFIG",
        }
    }
}

/// A failure: what went wrong, in one line, and the exit code it maps to.
///
/// `message` names the stage and the problem (with the server's reply where
/// there is one); `hint` says what to try. Neither ever holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub exit: Exit,
    pub message: String,
    pub hint: Option<String>,
    /// What the caller may need to know beyond the exit code.
    pub cause: Cause,
}

/// Failures that change what the caller does next, where the exit code
/// alone cannot tell (a 75 may be a 4xx reply or a silent server).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Cause {
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
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Error {
            exit,
            message: message.into(),
            hint: None,
            cause: Cause::Other,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn cause(mut self, cause: Cause) -> Self {
        self.cause = cause;
        self
    }

    /// Worth trying again later (and queueing): 75 and 74.
    pub fn is_temporary(&self) -> bool {
        matches!(self.exit, Exit::TempFail | Exit::IoErr)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    pub fn data(message: impl Into<String>) -> Self {
        Self::new(Exit::DataErr, message)
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(Exit::Config, message)
    }

    /// An input file that cannot be read: 66, naming the file and the reason.
    pub fn input(what: &str, path: &std::path::Path, err: &std::io::Error) -> Self {
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
pub fn without_panic<T>(f: impl FnOnce() -> T) -> Option<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.ok()
}

/// An io::Error as a person would say it: "No such file or directory",
/// without Rust's "(os error 2)" suffix.
pub fn io_reason(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// The error and its sources in one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
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
    fn io_reason_drops_os_error_suffix() {
        let err = std::io::Error::from_raw_os_error(2);
        assert_eq!(io_reason(&err), "No such file or directory");
    }
}
