//! The values a run is given: where to send, how to secure and
//! authenticate, how long to wait, how much to show; and the part of them
//! one session is given.
//!
//! Belongs here: plain settings, built by `plan` before any I/O (and
//! `SessionSettings`, taken from them by `route`). Not here: what is done
//! with them (`route`, `session`).

use std::time::Duration;

use crate::smtp::data::Progress;
use crate::smtp::mx::{Family, Nameserver};
use crate::smtp::tls::Verify;
use crate::types::{AuthMethod, Endpoint, QuitAfter, TlsFiles, TlsMode};

/// How long to wait at each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) reply: Duration,
    /// For the reply to the end of the message, which the server may only
    /// send after scanning it (RFC 5321 4.5.3.2 suggests 10 minutes).
    pub(crate) data_end: Duration,
}

impl Timeouts {
    pub(crate) const DEFAULT: Timeouts = Timeouts {
        connect: Duration::from_secs(30),
        reply: Duration::from_secs(120),
        data_end: Duration::from_secs(300),
    };

    /// One limit for every step, as --timeout asks.
    pub(crate) fn uniform(seconds: u64) -> Timeouts {
        let each = Duration::from_secs(seconds);
        Timeouts {
            connect: each,
            reply: each,
            data_end: each,
        }
    }
}

/// SMTP AUTH credentials. `Debug` hides the secret.
#[derive(Clone)]
pub(crate) struct Login {
    pub(crate) user: String,
    pub(crate) secret: String,
    pub(crate) method: AuthMethod,
    /// The secret is an OAuth2 access token, not a password: `auto`
    /// then picks OAUTHBEARER or XOAUTH2.
    pub(crate) bearer: bool,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("secret", &"[hidden]")
            .field("method", &self.method)
            .field("bearer", &self.bearer)
            .finish()
    }
}

/// Where the message goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Submission servers (--server, POSTIE_SERVER or the account's list),
    /// tried in order: a connection or 4xx failure at one goes on to the
    /// next.
    Servers(Vec<Server>),
    /// Each recipient domain's mail exchangers, on this port (25 unless
    /// --port says otherwise).
    Mx {
        port: u16,
        nameserver: Nameserver,
        tls: TlsMode,
        /// How many recipient domains are delivered to at once (the
        /// account's `mx_concurrency`); 1 is one after another.
        concurrency: usize,
    },
}

/// Recipient domains delivered to at once when the account does not say:
/// enough that one slow exchanger does not hold up a cron mail's other
/// domains, few enough not to look like a spam run.
pub(crate) const DEFAULT_MX_CONCURRENCY: usize = 8;

/// A submission server and how to secure the connection to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Server {
    pub(crate) endpoint: Endpoint,
    pub(crate) tls: TlsMode,
    /// The TLS mode was chosen (a flag, the account's `tls`, an smtps://
    /// URL), not implied by the port or host: an error then names the
    /// choice to change.
    pub(crate) tls_explicit: bool,
}

/// Everything a run needs besides the messages. `route` reads the route,
/// the TLS files, the address family and --timing itself, and hands each
/// session its `SessionSettings`.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) route: Route,
    pub(crate) tls_files: TlsFiles,
    /// How certificates are checked (opportunistic TLS to MX hosts is
    /// never authenticated unless --tls starttls asks for it).
    pub(crate) verify: Verify,
    pub(crate) login: Option<Login>,
    pub(crate) allow_plaintext_auth: bool,
    pub(crate) helo: String,
    pub(crate) timeouts: Timeouts,
    /// Send to the accepted recipients when some are refused.
    pub(crate) partial: bool,
    pub(crate) family: Family,
    /// 0 quiet; 1 the dialogue; 2 with message headers; 3 everything.
    pub(crate) verbosity: u8,
    /// Time each reply and print a summary.
    pub(crate) timing: bool,
    /// Stop cleanly with QUIT after this stage.
    pub(crate) quit_after: Option<QuitAfter>,
    /// Told how each message's upload goes (the commands' progress bar).
    pub(crate) progress: Option<Progress>,
    /// --capabilities (see [`SessionSettings::probe`]).
    pub(crate) probe: bool,
    /// The account's `dsn_required` (see [`SessionSettings::dsn_required`]).
    pub(crate) dsn_required: bool,
}

/// What one session is given: the rules of the dialogue with one server,
/// and nothing of the route. `route` makes it from the [`Settings`].
#[derive(Clone, Debug)]
pub(crate) struct SessionSettings {
    pub(crate) helo: String,
    pub(crate) timeouts: Timeouts,
    /// The login to send, if any: `None` for a mail exchanger, which is
    /// whoever the recipient's domain names.
    pub(crate) login: Option<Login>,
    pub(crate) allow_plaintext_auth: bool,
    /// Send to the accepted recipients when some are refused.
    pub(crate) partial: bool,
    /// Stop cleanly with QUIT after this stage.
    pub(crate) quit_after: Option<QuitAfter>,
    /// At 1 or more, a certificate that failed verification is fetched
    /// again to be shown (the transcript itself comes made).
    pub(crate) verbosity: u8,
    /// Direct delivery to mail exchangers: a refusal there is never
    /// "log in first" (`classify`).
    pub(crate) mx: bool,
    /// Told how the upload of each message goes (the commands' progress bar).
    pub(crate) progress: Option<Progress>,
    /// --capabilities: a certificate that fails verification is reported,
    /// and the session stops after the EHLO over TLS, instead of hanging
    /// up at the handshake.
    pub(crate) probe: bool,
    /// A DSN request to a server without DSN fails the message instead of
    /// being dropped.
    pub(crate) dsn_required: bool,
}
