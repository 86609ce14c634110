//! SMTP submission: one session, stage by stage, over a socket postie owns.
//!
//! lettre's `SmtpTransport::send` stops at the first refused recipient and
//! leaves Nagle's algorithm on (about 40 ms lost per message), so postie
//! drives lettre's lower-level `AsyncSmtpConnection` instead: it opens the
//! TCP socket itself (TCP_NODELAY, connect timeout), wraps it in TLS itself
//! for implicit TLS, and then runs greeting, EHLO, STARTTLS, AUTH, MAIL,
//! RCPT and DATA one at a time, each under its own timeout, so that every
//! failure is known by its stage and mapped to the right exit code.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, Identity, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::Error as SmtpError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::cli::{AuthMethod, TlsMode};
use crate::exit::{io_reason, Error, Exit, Result};

/// The server to talk to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How long to wait at each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub reply: Duration,
    /// For the reply to the end of the message, which the server may only
    /// send after scanning it (RFC 5321 4.5.3.2 suggests 10 minutes).
    pub data_end: Duration,
}

impl Timeouts {
    pub const DEFAULT: Timeouts = Timeouts {
        connect: Duration::from_secs(30),
        reply: Duration::from_secs(120),
        data_end: Duration::from_secs(300),
    };

    /// One limit for every step, as --timeout asks.
    pub fn uniform(seconds: u64) -> Timeouts {
        let each = Duration::from_secs(seconds);
        Timeouts {
            connect: each,
            reply: each,
            data_end: each,
        }
    }
}

/// TLS trust and identity settings, as files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Skip certificate verification (the caller has warned the user).
    pub insecure: bool,
}

/// SMTP AUTH credentials. `Debug` hides the secret.
#[derive(Clone)]
pub struct Login {
    pub user: String,
    pub secret: String,
    pub method: AuthMethod,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("secret", &"[hidden]")
            .field("method", &self.method)
            .finish()
    }
}

/// Everything the session needs besides the message.
#[derive(Clone, Debug)]
pub struct Settings {
    pub endpoint: Endpoint,
    pub tls: TlsMode,
    pub tls_files: TlsFiles,
    pub login: Option<Login>,
    pub allow_plaintext_auth: bool,
    pub helo: String,
    pub timeouts: Timeouts,
    /// Send to the accepted recipients when some are refused.
    pub partial: bool,
}

/// The SMTP envelope: bare addresses, as they go into MAIL and RCPT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub sender: String,
    pub recipients: Vec<String>,
}

impl Envelope {
    fn needs_smtputf8(&self) -> bool {
        !self.sender.is_ascii() || self.recipients.iter().any(|r| !r.is_ascii())
    }
}

/// A recipient the server would not take, with its reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub recipient: String,
    pub reply: String,
    pub temporary: bool,
}

/// What happened when the message was accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The server's reply to the end of DATA ("250 2.0.0 queued as ...").
    pub reply: String,
    /// Recipients refused while the rest were sent to (only with `partial`).
    pub refused: Vec<Refusal>,
}

/// Submits one message; returns once the server accepted it (final 250).
pub fn submit(settings: &Settings, envelope: &Envelope, message: &[u8]) -> Result<Delivery> {
    let tls = TlsMaterial::load(&settings.tls_files)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|err| {
            Error::new(
                Exit::Software,
                format!("cannot start the I/O runtime: {err}"),
            )
        })?;
    runtime.block_on(Session::run(settings, &tls, envelope, message))
}

/// The protocol step a failure belongs to; it picks the exit code for a
/// 5xx reply and names the step in the error line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Greeting,
    StartTls,
    Auth,
    Mail,
    Rcpt,
    Data,
    Message,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Greeting => "greeting/EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Message => "end of DATA",
        }
    }

    /// The exit code for a permanent (5xx) reply at this stage.
    fn permanent_exit(self) -> Exit {
        match self {
            Stage::Rcpt => Exit::NoUser,
            Stage::Auth => Exit::NoPerm,
            _ => Exit::Unavailable,
        }
    }
}

struct Session<'a> {
    settings: &'a Settings,
    conn: AsyncSmtpConnection,
    peer: SocketAddr,
}

impl<'a> Session<'a> {
    async fn run(
        settings: &'a Settings,
        tls: &TlsMaterial,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<Delivery> {
        let mut session = Self::open(settings, tls).await?;
        let result = session.transaction(envelope, message).await;
        // The message is accepted or refused by now; a failing QUIT must not
        // turn success into an error (a retry would duplicate the mail).
        let _ = tokio::time::timeout(settings.timeouts.reply, session.conn.quit()).await;
        result
    }

    /// Connects, reads the greeting, says EHLO, secures and authenticates.
    async fn open(settings: &'a Settings, tls: &TlsMaterial) -> Result<Session<'a>> {
        let endpoint = &settings.endpoint;
        let (tcp, peer) = connect_tcp(endpoint, settings.timeouts.connect).await?;
        let client_id = ClientId::Domain(settings.helo.clone());
        let stream: Box<dyn AsyncTokioStream> = if settings.tls == TlsMode::Implicit {
            let connector = tokio_native_tls::TlsConnector::from(tls.native_connector()?);
            let handshake = connector.connect(&endpoint.host, tcp);
            let tls_stream = timed(settings.timeouts.connect, "the TLS handshake", handshake)
                .await?
                .map_err(|err| tls_error(endpoint, &err.to_string()))?;
            Box::new(ImplicitTls(tls_stream))
        } else {
            Box::new(tcp)
        };
        let greeting = AsyncSmtpConnection::connect_with_transport(stream, &client_id);
        let conn = timed(settings.timeouts.reply, "the greeting", greeting)
            .await?
            .map_err(|err| smtp_error(endpoint, Stage::Greeting, err))?;
        let mut session = Session {
            settings,
            conn,
            peer,
        };
        session.secure(tls, &client_id).await?;
        session.authenticate().await?;
        Ok(session)
    }

    async fn secure(&mut self, tls: &TlsMaterial, client_id: &ClientId) -> Result<()> {
        let endpoint = &self.settings.endpoint;
        let offered = self.conn.can_starttls();
        match self.settings.tls {
            TlsMode::Implicit | TlsMode::None => return Ok(()),
            TlsMode::Opportunistic if !offered => return Ok(()),
            TlsMode::Starttls if !offered => {
                return Err(Error::new(
                    Exit::Unavailable,
                    format!("{endpoint} does not offer STARTTLS, and --tls starttls requires it"),
                )
                .hint(
                    "use --tls implicit for port 465, or --tls none only on a network you trust",
                ));
            }
            _ => {}
        }
        let upgrade = self
            .conn
            .starttls(tls.lettre_parameters(&endpoint.host)?, client_id);
        timed(self.settings.timeouts.reply, "STARTTLS", upgrade)
            .await?
            .map_err(|err| smtp_error(endpoint, Stage::StartTls, err))
    }

    async fn authenticate(&mut self) -> Result<()> {
        let Some(login) = &self.settings.login else {
            return Ok(());
        };
        let endpoint = &self.settings.endpoint;
        if !plaintext_auth_allowed(
            self.conn.is_encrypted(),
            self.peer.ip(),
            self.settings.allow_plaintext_auth,
        ) {
            return Err(Error::new(
                Exit::Unavailable,
                format!(
                    "refusing to send the password for {:?} to {endpoint} over an unencrypted connection",
                    login.user
                ),
            )
            .hint("use --tls starttls or implicit; --allow-plaintext-auth overrides this"));
        }
        let wanted: &[Mechanism] = match login.method {
            AuthMethod::Auto => &[Mechanism::Plain, Mechanism::Login],
            AuthMethod::Plain => &[Mechanism::Plain],
            AuthMethod::Login => &[Mechanism::Login],
            AuthMethod::Xoauth2 => &[Mechanism::Xoauth2],
        };
        let info = self.conn.server_info();
        if info.get_auth_mechanism(wanted).is_none() {
            let offered: Vec<&str> = [Mechanism::Plain, Mechanism::Login, Mechanism::Xoauth2]
                .into_iter()
                .filter(|m| info.supports_auth_mechanism(*m))
                .map(mechanism_name)
                .collect();
            let offered = if offered.is_empty() {
                "no AUTH mechanism postie knows".to_string()
            } else {
                offered.join(", ")
            };
            let wanted: Vec<&str> = wanted.iter().copied().map(mechanism_name).collect();
            return Err(Error::new(
                Exit::Unavailable,
                format!(
                    "AUTH: {endpoint} offers {offered}, not {}",
                    wanted.join(" or ")
                ),
            )
            .hint("pick another --auth, or check that TLS is on (many servers offer AUTH only after STARTTLS)"));
        }
        let credentials = Credentials::new(login.user.clone(), login.secret.clone());
        let auth = self.conn.auth(wanted, &credentials);
        let reply = timed(self.settings.timeouts.reply, "the AUTH reply", auth)
            .await?
            .map_err(|err| smtp_error(endpoint, Stage::Auth, err))?;
        if reply.is_positive() {
            Ok(())
        } else {
            Err(Error::new(
                Exit::NoPerm,
                format!("AUTH: {endpoint} replied {}", reply_text(&reply)),
            ))
        }
    }

    /// MAIL, every RCPT, DATA and the message.
    async fn transaction(&mut self, envelope: &Envelope, message: &[u8]) -> Result<Delivery> {
        let endpoint = self.settings.endpoint.clone();
        let reply_timeout = self.settings.timeouts.reply;
        let mail = self.mail_command(envelope, message)?;
        timed(
            reply_timeout,
            "the MAIL FROM reply",
            self.conn.command(mail),
        )
        .await?
        .map_err(|err| smtp_error(&endpoint, Stage::Mail, err))?;

        let mut refused = Vec::new();
        for recipient in &envelope.recipients {
            let rcpt = Rcpt::new(envelope_address(recipient)?, vec![]);
            match timed(reply_timeout, "the RCPT TO reply", self.conn.command(rcpt)).await? {
                Ok(_) => {}
                Err(err) if err.status().is_some() => refused.push(Refusal {
                    recipient: recipient.clone(),
                    reply: server_reply(&err),
                    temporary: err.is_transient(),
                }),
                Err(err) => return Err(smtp_error(&endpoint, Stage::Rcpt, err)),
            }
        }
        let all_refused = refused.len() == envelope.recipients.len();
        if !refused.is_empty() && (all_refused || !self.settings.partial) {
            // Nothing is sent, so a retry after fixing the list cannot
            // deliver twice to the recipients that were accepted.
            let _ = timed(reply_timeout, "the RSET reply", self.conn.command(Rset)).await;
            return Err(refusal_error(&endpoint, &refused, all_refused));
        }

        timed(reply_timeout, "the DATA reply", self.conn.command(Data))
            .await?
            .map_err(|err| smtp_error(&endpoint, Stage::Data, err))?;
        let wire = wire_form(message);
        // Large messages take time to write; the limit covers the transfer
        // at a slow 32 KiB/s plus the wait for the final reply.
        let transfer = Duration::from_secs((wire.len() / (32 * 1024)) as u64);
        let limit = self.settings.timeouts.data_end + transfer;
        let send = self.conn.message_iter(wire.chunks(64 * 1024));
        let reply = timed(limit, "the reply to the end of the message", send)
            .await?
            .map_err(|err| smtp_error(&endpoint, Stage::Message, err))?;
        Ok(Delivery {
            reply: reply_text(&reply),
            refused,
        })
    }

    /// MAIL FROM with SMTPUTF8 and BODY=8BITMIME when the envelope or the
    /// message needs them; an error naming the missing extension otherwise.
    fn mail_command(&self, envelope: &Envelope, message: &[u8]) -> Result<Mail> {
        let endpoint = &self.settings.endpoint;
        let info = self.conn.server_info();
        let mut parameters = Vec::new();
        if envelope.needs_smtputf8() {
            if !info.supports_feature(Extension::SmtpUtfEight) {
                return Err(Error::new(
                    Exit::Unavailable,
                    format!("{endpoint} does not support SMTPUTF8, which the non-ASCII addresses in the envelope need"),
                )
                .hint("use ASCII (IDNA) addresses or another server"));
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !message.is_ascii() {
            if !info.supports_feature(Extension::EightBitMime) {
                return Err(Error::new(
                    Exit::Unavailable,
                    format!("{endpoint} does not support 8BITMIME, which this message's 8-bit content needs"),
                ));
            }
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let sender = if envelope.sender.is_empty() {
            None
        } else {
            Some(envelope_address(&envelope.sender)?)
        };
        Ok(Mail::new(sender, parameters))
    }
}

/// Credentials go in clear text only over loopback, or when the user asked
/// for it by name: anyone on the path could read them otherwise.
fn plaintext_auth_allowed(encrypted: bool, peer: std::net::IpAddr, allowed_by_user: bool) -> bool {
    encrypted || peer.is_loopback() || allowed_by_user
}

fn mechanism_name(mechanism: Mechanism) -> &'static str {
    match mechanism {
        Mechanism::Plain => "PLAIN",
        Mechanism::Login => "LOGIN",
        Mechanism::Xoauth2 => "XOAUTH2",
    }
}

fn envelope_address(address: &str) -> Result<lettre::Address> {
    lettre::Address::from_str(address)
        .map_err(|err| Error::data(format!("malformed envelope address {address:?}: {err}")))
}

/// Resolves the host and connects to the first address that answers.
async fn connect_tcp(endpoint: &Endpoint, limit: Duration) -> Result<(TcpStream, SocketAddr)> {
    let lookup = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port));
    let addresses: Vec<SocketAddr> = timed(limit, "the host name lookup", lookup)
        .await?
        .map_err(|err| {
            Error::new(
                Exit::NoHost,
                format!("cannot resolve {}: {}", endpoint.host, lookup_reason(&err)),
            )
            .hint("check the server name")
        })?
        .collect();
    let mut last_error = None;
    for address in &addresses {
        match timed(limit, "the connection", TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                // Without this the final dot waits on a delayed ACK (~40 ms).
                let _ = stream.set_nodelay(true);
                return Ok((stream, *address));
            }
            Ok(Err(err)) => last_error = Some(connect_error(endpoint, address, &err)),
            Err(timeout) => last_error = Some(timeout),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        Error::new(
            Exit::NoHost,
            format!("{} has no address to connect to", endpoint.host),
        )
    }))
}

fn lookup_reason(err: &io::Error) -> String {
    let text = io_reason(err);
    text.strip_prefix("failed to lookup address information: ")
        .unwrap_or(&text)
        .to_string()
}

fn connect_error(endpoint: &Endpoint, address: &SocketAddr, err: &io::Error) -> Error {
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

/// Runs `future` under a time limit; running out is a temporary failure.
async fn timed<F: std::future::Future>(
    limit: Duration,
    waiting_for: &str,
    future: F,
) -> Result<F::Output> {
    tokio::time::timeout(limit, future).await.map_err(|_| {
        Error::new(
            Exit::TempFail,
            format!(
                "timed out after {} s waiting for {waiting_for}",
                limit.as_secs()
            ),
        )
        .hint("the server is slow or unreachable; try again later or raise --timeout")
    })
}

/// The server's reply as it was sent: "550 5.1.1 no such user".
fn server_reply(err: &SmtpError) -> String {
    let code = err.status().map(|c| c.to_string()).unwrap_or_default();
    let text = std::error::Error::source(err)
        .map(|s| s.to_string())
        .unwrap_or_default();
    format!("{code} {text}").trim().to_string()
}

fn reply_text(reply: &lettre::transport::smtp::response::Response) -> String {
    format!(
        "{} {}",
        reply.code(),
        reply.message().collect::<Vec<_>>().join(" ")
    )
    .trim()
    .to_string()
}

/// Maps a lettre error at a given stage to postie's error and exit code.
fn smtp_error(endpoint: &Endpoint, stage: Stage, err: SmtpError) -> Error {
    let at = stage.name();
    if let Some(_code) = err.status() {
        let reply = server_reply(&err);
        let (exit, hint) = if err.is_transient() {
            (Exit::TempFail, "a temporary failure; try again later")
        } else {
            match stage {
                Stage::Auth => (stage.permanent_exit(), "check the user name and password"),
                Stage::Mail => (
                    stage.permanent_exit(),
                    "the server does not accept this sender; check --from and the account",
                ),
                _ => (stage.permanent_exit(), "the server refused the message"),
            }
        };
        return Error::new(exit, format!("{at}: {endpoint} replied {reply}")).hint(hint);
    }
    let detail = error_chain(&err);
    if detail.contains("certificate verify failed")
        || detail.contains("Hostname mismatch")
        || stage == Stage::StartTls && err.is_tls()
    {
        return tls_error(endpoint, &detail);
    }
    if is_connection_lost(&err, &detail) {
        return Error::new(Exit::IoErr, format!("{at}: connection to {endpoint} lost"))
            .hint("the server closed the connection; try again later");
    }
    if err.is_response() {
        return Error::new(
            Exit::Protocol,
            format!("{at}: {endpoint} sent a reply that is not SMTP: {detail}"),
        )
        .hint("check that this port speaks SMTP (and whether it expects implicit TLS)");
    }
    if stage == Stage::StartTls || detail.to_ascii_lowercase().contains("ssl") {
        return tls_error(endpoint, &detail);
    }
    Error::new(Exit::IoErr, format!("{at}: {endpoint}: {detail}"))
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
            return matches!(
                io_err.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::NotConnected
            );
        }
        source = inner.source();
    }
    false
}

fn error_chain(err: &dyn std::error::Error) -> String {
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

/// A failed TLS handshake: an untrusted certificate is 69 and says which of
/// self-signed, expired or wrong name it is; anything else is 76.
fn tls_error(endpoint: &Endpoint, detail: &str) -> Error {
    let lower = detail.to_ascii_lowercase();
    let reason = if lower.contains("hostname mismatch") || lower.contains("ip address mismatch") {
        Some(format!(
            "its certificate is not valid for the name {:?}",
            endpoint.host
        ))
    } else if lower.contains("expired") {
        Some("its certificate has expired".to_string())
    } else if lower.contains("not yet valid") {
        Some("its certificate is not valid yet".to_string())
    } else if lower.contains("self-signed") || lower.contains("self signed") {
        Some("its certificate is self-signed".to_string())
    } else if lower.contains("unable to get local issuer")
        || lower.contains("certificate verify failed")
    {
        Some("its certificate is issued by an authority this machine does not trust".to_string())
    } else {
        None
    };
    match reason {
        Some(reason) => Error::new(
            Exit::Unavailable,
            format!("TLS: cannot verify {endpoint}: {reason}"),
        )
        .hint("trust its CA with --ca-file; --insecure skips the check (unsafe)"),
        None => Error::new(
            Exit::Protocol,
            format!("TLS: handshake with {endpoint} failed: {detail}"),
        )
        .hint("check the port and --tls mode (465 is implicit TLS, 587 and 25 use STARTTLS)"),
    }
}

fn refusal_error(endpoint: &Endpoint, refused: &[Refusal], all_refused: bool) -> Error {
    let list: Vec<String> = refused
        .iter()
        .map(|r| format!("<{}>: {}", r.recipient, r.reply))
        .collect();
    // Any 4xx means a later retry may succeed: cron and queues act on 75.
    let exit = if refused.iter().any(|r| r.temporary) {
        Exit::TempFail
    } else {
        Exit::NoUser
    };
    let hint = if all_refused {
        "nothing was sent"
    } else {
        "nothing was sent; fix or remove these recipients, or use --partial to send to the others"
    };
    Error::new(
        exit,
        format!("RCPT TO: {endpoint} refused {}", list.join("; ")),
    )
    .hint(hint)
}

/// Bytes with every bare LF turned into CRLF (RFC 5322 line endings);
/// borrowed when they already are.
pub fn crlf(bytes: &[u8]) -> Cow<'_, [u8]> {
    let is_bare_lf = |i: usize| bytes[i] == b'\n' && (i == 0 || bytes[i - 1] != b'\r');
    if !(0..bytes.len()).any(is_bare_lf) {
        return Cow::Borrowed(bytes);
    }
    let mut fixed = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    for (i, &b) in bytes.iter().enumerate() {
        if is_bare_lf(i) {
            fixed.push(b'\r');
        }
        fixed.push(b);
    }
    Cow::Owned(fixed)
}

/// The message as it goes on the wire: CRLF line endings, without the final
/// CRLF (lettre appends "\r\n.\r\n" itself and would add a blank line).
pub fn wire_form(message: &[u8]) -> Cow<'_, [u8]> {
    let mut out = crlf(message);
    if out.ends_with(b"\r\n") {
        match &mut out {
            Cow::Borrowed(slice) => *slice = &slice[..slice.len() - 2],
            Cow::Owned(vec) => vec.truncate(vec.len() - 2),
        }
    }
    out
}

/// CA certificates and client identity, read once and used by both the
/// STARTTLS (lettre) and the implicit TLS (own connector) paths.
struct TlsMaterial {
    roots: Vec<Vec<u8>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    insecure: bool,
}

impl TlsMaterial {
    fn load(files: &TlsFiles) -> Result<TlsMaterial> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path).map_err(|err| Error::input(what, path, &err))
        };
        let roots = match &files.ca_file {
            Some(path) => {
                let blocks = pem_certificates(&read("CA file", path)?);
                if blocks.is_empty() {
                    return Err(Error::config(format!(
                        "CA file {} holds no PEM certificate",
                        path.display()
                    )));
                }
                blocks
            }
            None => Vec::new(),
        };
        let identity = match (&files.client_cert, &files.client_key) {
            (Some(cert), Some(key)) => {
                Some((read("client certificate", cert)?, read("client key", key)?))
            }
            (None, None) => None,
            _ => return Err(Error::usage("--client-cert and --client-key go together")),
        };
        Ok(TlsMaterial {
            roots,
            identity,
            insecure: files.insecure,
        })
    }

    fn lettre_parameters(&self, domain: &str) -> Result<TlsParameters> {
        let mut builder = TlsParameters::builder(domain.to_string())
            .dangerous_accept_invalid_certs(self.insecure)
            .dangerous_accept_invalid_hostnames(self.insecure);
        for root in &self.roots {
            let cert = Certificate::from_pem(root).map_err(|err| {
                Error::config(format!("invalid certificate in the CA file: {err}"))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        if let Some((cert, key)) = &self.identity {
            let identity = Identity::from_pem(cert, key).map_err(|_| identity_error())?;
            builder = builder.identify_with(identity);
        }
        builder
            .build_native()
            .map_err(|err| Error::config(format!("cannot set up TLS: {err}")))
    }

    fn native_connector(&self) -> Result<native_tls::TlsConnector> {
        let mut builder = native_tls::TlsConnector::builder();
        builder
            .danger_accept_invalid_certs(self.insecure)
            .danger_accept_invalid_hostnames(self.insecure)
            .min_protocol_version(Some(native_tls::Protocol::Tlsv12));
        for root in &self.roots {
            let cert = native_tls::Certificate::from_pem(root).map_err(|err| {
                Error::config(format!("invalid certificate in the CA file: {err}"))
            })?;
            builder.add_root_certificate(cert);
        }
        if let Some((cert, key)) = &self.identity {
            let identity =
                native_tls::Identity::from_pkcs8(cert, key).map_err(|_| identity_error())?;
            builder.identity(identity);
        }
        builder
            .build()
            .map_err(|err| Error::config(format!("cannot set up TLS: {err}")))
    }
}

fn identity_error() -> Error {
    Error::config("cannot use the client certificate and key").hint(
        "both must be PEM, the key in PKCS#8 (convert with: openssl pkcs8 -topk8 -nocrypt -in KEY)",
    )
}

/// Splits a PEM bundle into its certificates: native-tls reads one per call.
fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = String::from_utf8_lossy(pem);
    let mut blocks = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let end = start + len + END.len();
        blocks.push(format!("{}\n", &rest[start..end]).into_bytes());
        rest = &rest[end..];
    }
    blocks
}

/// A TLS stream lettre can drive: implicit TLS is set up before lettre
/// reads the greeting, so postie wraps the socket itself.
#[derive(Debug)]
struct ImplicitTls(tokio_native_tls::TlsStream<TcpStream>);

impl AsyncRead for ImplicitTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().get_ref().get_ref().peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_normalises_line_endings_and_drops_final_crlf() {
        assert_eq!(&*wire_form(b"a\nb\r\nc\n"), b"a\r\nb\r\nc");
        assert_eq!(&*wire_form(b"a\r\n"), b"a");
        assert_eq!(&*wire_form(b"a"), b"a");
        assert!(matches!(wire_form(b"x\r\ny\r\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn pem_bundle_is_split() {
        let one = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----";
        let bundle = format!("junk\n{one}\n{one}\n");
        assert_eq!(pem_certificates(bundle.as_bytes()).len(), 2);
        assert!(pem_certificates(b"nothing").is_empty());
    }

    #[test]
    fn tls_errors_name_the_reason() {
        let endpoint = Endpoint {
            host: "mx.example".into(),
            port: 465,
        };
        let cases = [
            (
                "certificate verify failed: (self-signed certificate)",
                "self-signed",
            ),
            (
                "certificate verify failed: (certificate has expired)",
                "expired",
            ),
            (
                "certificate verify failed: (Hostname mismatch)",
                "not valid for the name",
            ),
        ];
        for (detail, expected) in cases {
            let err = tls_error(&endpoint, detail);
            assert_eq!(err.exit, Exit::Unavailable);
            assert!(err.message.contains(expected), "{}", err.message);
        }
        assert_eq!(
            tls_error(&endpoint, "wrong version number").exit,
            Exit::Protocol
        );
    }

    #[test]
    fn refusals_pick_67_or_75() {
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
            refusal_error(&endpoint, &[permanent, temporary], true).exit,
            Exit::TempFail
        );
    }

    #[test]
    fn plaintext_auth_only_on_loopback_or_by_name() {
        let remote: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        let local: std::net::IpAddr = "::1".parse().unwrap();
        assert!(!plaintext_auth_allowed(false, remote, false));
        assert!(plaintext_auth_allowed(true, remote, false));
        assert!(plaintext_auth_allowed(false, local, false));
        assert!(plaintext_auth_allowed(false, remote, true));
    }

    #[test]
    fn endpoint_display_brackets_ipv6() {
        let v6 = Endpoint {
            host: "::1".into(),
            port: 25,
        };
        assert_eq!(v6.to_string(), "[::1]:25");
    }
}
