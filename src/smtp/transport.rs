//! SMTP submission: one session, stage by stage, over a socket postie owns.
//!
//! lettre's `SmtpTransport::send` stops at the first refused recipient and
//! leaves Nagle's algorithm on (about 40 ms lost per message), so postie
//! drives lettre's lower-level `AsyncSmtpConnection` instead, over a
//! [`Wire`] it opens itself (TCP_NODELAY, address family, connect timeout)
//! and upgrades to TLS itself (implicit TLS and STARTTLS alike), so that
//! the transcript sees every line in clear and the certificate can be
//! reported. Greeting, EHLO, STARTTLS, AUTH, MAIL, RCPT and DATA run one at
//! a time, each under its own timeout, so every failure is known by its
//! stage and mapped to the right exit code, and `--quit-after` can stop
//! cleanly after any of them.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Auth, Data, Ehlo, Mail, Rcpt, Rset, Starttls};
use lettre::transport::smtp::extension::{ClientId, MailBodyParameter, MailParameter};
use lettre::transport::smtp::Error as SmtpError;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::exit::error_chain;
use crate::exit::{io_reason, Cause, Error, Exit, Result};
use crate::mail::address::envelope_address;
use crate::mail::content::Content;
use crate::smtp::capabilities::Capabilities;
use crate::smtp::mx::{self, Family, Nameserver};
use crate::smtp::reply::Malformed;
use crate::smtp::tls::{
    certificate_flaws, client_certificate_refused, handshake_error, sha256, CertReport,
    TlsMaterial, Verify,
};
use crate::smtp::transcript::Transcript;
use crate::smtp::wire::Wire;
use crate::types::human_size;
use crate::types::QuitAfter;
use crate::types::{AuthMethod, TlsMode};
use crate::types::{Endpoint, Envelope, TlsFiles};
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

/// Where the message goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
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
    },
}

/// A submission server and how to secure the connection to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub endpoint: Endpoint,
    pub tls: TlsMode,
}

/// Everything the session needs besides the message.
#[derive(Clone, Debug)]
pub struct Settings {
    pub route: Route,
    pub tls_files: TlsFiles,
    /// How certificates are checked (opportunistic TLS to MX hosts is
    /// never authenticated unless --tls starttls asks for it).
    pub verify: Verify,
    pub login: Option<Login>,
    pub allow_plaintext_auth: bool,
    pub helo: String,
    pub timeouts: Timeouts,
    /// Send to the accepted recipients when some are refused.
    pub partial: bool,
    pub family: Family,
    /// 0 quiet; 1 the dialogue; 2 with message headers; 3 everything.
    pub verbosity: u8,
    /// Time each reply and print a summary.
    pub timing: bool,
    /// Stop cleanly with QUIT after this stage.
    pub quit_after: Option<QuitAfter>,
}

/// A recipient the server would not take, with its reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub recipient: String,
    pub reply: String,
    pub temporary: bool,
}

/// How one message's transaction ended, once MAIL and RCPT were answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The server's reply to the end of DATA ("250 2.0.0 queued as ...");
    /// `None` when DATA was never sent because every recipient was refused
    /// (only with `partial`: otherwise that is an error).
    pub reply: Option<String>,
    /// Recipients refused while the rest were sent to (only with `partial`).
    pub refused: Vec<Refusal>,
}

/// One message to send, with its envelope.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// What to call it in messages: the file it came from.
    pub label: String,
    pub envelope: Envelope,
    pub content: Content,
}

/// One SMTP session's results, for reports and --capabilities.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SessionReport {
    /// "host:port (address)".
    pub server: String,
    /// EHLO replies: ("before STARTTLS" | "after STARTTLS" | "EHLO", ...).
    pub capabilities: Vec<(String, Capabilities)>,
    pub certificate: Option<CertReport>,
    /// Present when the message was accepted.
    pub delivery: Option<Delivery>,
    /// The stage the session stopped after, with --quit-after.
    pub stopped_after: Option<String>,
    /// The outcome of each further message sent over this session.
    #[serde(skip)]
    pub more: Vec<Result<Delivery>>,
    /// The envelope recipients this session was about: all of them with a
    /// submission server, one domain's with MX delivery.
    #[serde(skip)]
    pub recipients: Vec<String>,
    /// MX delivery: why this domain's recipients did not get the message
    /// (no session took place, or it failed).
    #[serde(skip)]
    pub failure: Option<Error>,
}

/// Submits one message (or runs a test up to --quit-after). With a server
/// route that is one session; with MX delivery one session per domain.
pub fn submit(
    settings: &Settings,
    envelope: &Envelope,
    message: &Content,
) -> Result<Vec<SessionReport>> {
    let material = TlsMaterial::load(&settings.tls_files)?;
    let context = Context {
        settings,
        material: &material,
    };
    runtime()?.block_on(context.deliver(envelope, message))
}

/// One thread is plenty for one SMTP session at a time, and starts fastest.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|err| {
            Error::new(
                Exit::Software,
                format!("cannot start the I/O runtime: {err}"),
            )
        })
}

/// Submits several messages: over one session where a submission server
/// is used (MAIL, RCPT, DATA again after each final reply), else one at a
/// time. One result per message, in order.
pub fn submit_all(settings: &Settings, messages: &[Outgoing]) -> Vec<Result<Vec<SessionReport>>> {
    let Route::Servers(servers) = &settings.route else {
        return messages
            .iter()
            .map(|m| submit(settings, &m.envelope, &m.content))
            .collect();
    };
    let setup = TlsMaterial::load(&settings.tls_files).and_then(|m| Ok((m, runtime()?)));
    let (material, runtime) = match setup {
        Ok(setup) => setup,
        Err(err) => return messages.iter().map(|_| Err(err.clone())).collect(),
    };
    let context = Context {
        settings,
        material: &material,
    };
    let mut results = Vec::with_capacity(messages.len());
    let mut remaining = messages;
    while let Some((first, rest)) = remaining.split_first() {
        let shared = runtime.block_on(context.deliver_to_servers(
            servers,
            &first.envelope,
            &first.content,
            rest,
        ));
        match shared {
            Ok(mut reports) => {
                let (server, more) = reports
                    .first_mut()
                    .map(|r| (r.server.clone(), std::mem::take(&mut r.more)))
                    .unwrap_or_default();
                results.push(Ok(reports));
                results.extend(more.into_iter().zip(rest).map(|(r, message)| {
                    r.map(|delivery| {
                        vec![SessionReport {
                            server: server.clone(),
                            delivery: Some(delivery),
                            recipients: message.envelope.recipients.clone(),
                            ..SessionReport::default()
                        }]
                    })
                }));
                break;
            }
            // No server answered: the others would only wait out the same
            // timeouts, one message at a time.
            Err(err) if err.cause == Cause::Unreachable => {
                results.extend(std::iter::repeat_n(Err(err), remaining.len()));
                break;
            }
            // The first message did not get through, and the session ended
            // with it: the others go over the next one.
            Err(err) => {
                results.push(Err(err));
                remaining = rest;
            }
        }
    }
    results
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
}

/// Where one session goes and how it is secured.
#[derive(Clone, Copy)]
struct Target<'a> {
    endpoint: &'a Endpoint,
    tls: TlsMode,
    addresses: &'a [SocketAddr],
    verify: Verify,
}

struct Context<'a> {
    settings: &'a Settings,
    material: &'a TlsMaterial,
}

impl Context<'_> {
    async fn deliver(&self, envelope: &Envelope, message: &Content) -> Result<Vec<SessionReport>> {
        match &self.settings.route {
            Route::Servers(servers) => {
                self.deliver_to_servers(servers, envelope, message, &[])
                    .await
            }
            Route::Mx {
                port,
                nameserver,
                tls,
            } => {
                self.deliver_mx(*port, nameserver, *tls, envelope, message)
                    .await
            }
        }
    }

    /// The servers in order; a temporary failure at one goes on to the
    /// next, and the last failure is the result.
    async fn deliver_to_servers(
        &self,
        servers: &[Server],
        envelope: &Envelope,
        message: &Content,
        more: &[Outgoing],
    ) -> Result<Vec<SessionReport>> {
        let mut last_error = None;
        for (index, server) in servers.iter().enumerate() {
            let attempt = async {
                let addresses = self.resolve(&server.endpoint).await?;
                let target = Target {
                    endpoint: &server.endpoint,
                    tls: server.tls,
                    addresses: &addresses,
                    verify: self.settings.verify,
                };
                self.session(&target, envelope, message, more).await
            };
            match attempt.await {
                Ok(report) => {
                    return Ok(vec![SessionReport {
                        recipients: envelope.recipients.clone(),
                        ..report
                    }])
                }
                Err(err)
                    if index + 1 < servers.len()
                        && matches!(err.exit, Exit::TempFail | Exit::IoErr | Exit::NoHost) =>
                {
                    // Not the run's end: no hint, no exit code.
                    eprintln!(
                        "postie: warning: {}; trying {} next",
                        err.message,
                        servers[index + 1].endpoint
                    );
                    last_error = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::config("no server to send to")))
    }

    /// RFC 5321 5.1: per domain, the exchangers in preference order; a
    /// temporary failure at one goes on to the next. Every domain's result
    /// comes back as its own report, failed ones included, so that the
    /// caller settles each domain's recipients on their own (retrying the
    /// whole message would deliver it twice to the domains that have it).
    async fn deliver_mx(
        &self,
        port: u16,
        nameserver: &Nameserver,
        tls: TlsMode,
        envelope: &Envelope,
        message: &Content,
    ) -> Result<Vec<SessionReport>> {
        let resolver = mx::Resolver::new(nameserver, self.settings.timeouts.connect)?;
        let mut reports = Vec::new();
        for (domain, recipients) in mx::by_domain(&envelope.recipients) {
            let part = Envelope {
                sender: envelope.sender.clone(),
                recipients,
            };
            let report = match self
                .deliver_domain(&resolver, &domain, port, tls, &part, message)
                .await
            {
                Ok(report) => report,
                Err(err) => SessionReport {
                    failure: Some(Error {
                        message: format!("{domain}: {}", err.message),
                        ..err
                    }),
                    ..SessionReport::default()
                },
            };
            reports.push(SessionReport {
                recipients: part.recipients,
                ..report
            });
        }
        Ok(reports)
    }

    async fn deliver_domain(
        &self,
        resolver: &mx::Resolver,
        domain: &str,
        port: u16,
        tls: TlsMode,
        envelope: &Envelope,
        message: &Content,
    ) -> Result<SessionReport> {
        let exchangers = mx::exchangers(resolver, domain, self.settings.family).await?;
        // Opportunistic TLS to an MX host is encryption without
        // authentication (RFC 7435); --tls starttls asks for verification.
        let verify = match (tls, self.settings.verify) {
            (TlsMode::Starttls | TlsMode::Implicit, verify) => verify,
            (_, Verify::Full) => Verify::Unauthenticated,
            (_, verify) => verify,
        };
        let mut last_error = None;
        for exchanger in exchangers {
            let endpoint = Endpoint {
                host: exchanger.name.clone(),
                port,
            };
            let addresses: Vec<SocketAddr> = exchanger
                .addresses
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect();
            let target = Target {
                endpoint: &endpoint,
                tls,
                addresses: &addresses,
                verify,
            };
            match self.session(&target, envelope, message, &[]).await {
                Ok(report) => return Ok(report),
                Err(err) if err.is_temporary() => {
                    last_error = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            Error::new(
                Exit::NoHost,
                format!("{domain} has no mail exchanger to try"),
            )
        }))
    }

    /// The addresses of a submission server, of the wanted family.
    async fn resolve(&self, endpoint: &Endpoint) -> Result<Vec<SocketAddr>> {
        let lookup = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port));
        let found: Vec<SocketAddr> = timed(
            self.settings.timeouts.connect,
            "the host name lookup",
            lookup,
        )
        .await?
        .map_err(|err| lookup_error(&endpoint.host, &err))?
        .collect();
        let wanted: Vec<SocketAddr> = found
            .iter()
            .copied()
            .filter(|a| self.settings.family.allows(a.ip()))
            .collect();
        if wanted.is_empty() {
            return Err(Error::new(
                Exit::NoHost,
                format!(
                    "{} has no address of the family asked for (-4 / -6)",
                    endpoint.host
                ),
            ));
        }
        Ok(wanted)
    }

    /// One session with one server, up to --quit-after or the final reply.
    async fn session(
        &self,
        target: &Target<'_>,
        envelope: &Envelope,
        message: &Content,
        more: &[Outgoing],
    ) -> Result<SessionReport> {
        let settings = self.settings;
        let transcript = Arc::new(Transcript::new(settings.verbosity, settings.timing));
        let mut clock = Clock::new(settings.timing);
        let result = self
            .session_stages(target, envelope, message, more, &transcript, &mut clock)
            .await;
        if let Err(err) = &result {
            transcript.error(&err.to_string());
        }
        clock.summary(&transcript);
        result
    }

    async fn session_stages(
        &self,
        target: &Target<'_>,
        envelope: &Envelope,
        message: &Content,
        more: &[Outgoing],
        transcript: &Arc<Transcript>,
        clock: &mut Clock,
    ) -> Result<SessionReport> {
        let settings = self.settings;
        let Target {
            endpoint,
            tls,
            addresses,
            verify,
        } = *target;
        let (tcp, peer) = connect_tcp(endpoint, addresses, settings.timeouts.connect, transcript)
            .await
            .map_err(unreachable)?;
        clock.mark("connect");
        let mut report = SessionReport {
            server: format!("{endpoint} ({peer})"),
            ..SessionReport::default()
        };
        if settings.quit_after == Some(QuitAfter::Connect) {
            transcript.note("closing the connection (--quit-after connect)");
            report.stopped_after = Some("connect".into());
            return Ok(report);
        }
        let wire = Wire::plain(tcp, peer, transcript.clone());
        transcript.restart_clock();
        if tls == TlsMode::Implicit {
            let certificate = self
                .handshake(&wire, endpoint, verify, transcript, Upgrade::Implicit)
                .await?;
            report.certificate = Some(certificate);
            clock.mark("TLS handshake");
        }
        if settings.quit_after == Some(QuitAfter::Banner) {
            banner_only(&wire, endpoint, settings.timeouts.reply).await?;
            clock.mark("banner");
            report.stopped_after = Some("banner".into());
            return Ok(report);
        }
        let client_id = ClientId::Domain(settings.helo.clone());
        let greeting =
            AsyncSmtpConnection::connect_with_transport(Box::new(wire.clone()), &client_id);
        let conn = timed(settings.timeouts.reply, "the greeting", greeting)
            .await
            .map_err(unreachable)?
            .map_err(|err| unreachable(smtp_error(endpoint, Stage::Greeting, err)))?;
        clock.mark("banner and EHLO");
        // The reply to EHLO itself: the last reply received may be one
        // sent behind it, which the next read refuses (RFC 5321 4.2).
        let caps = Capabilities::parse(&transcript.ehlo_reply());
        let mut session = Session {
            context: self,
            conn,
            wire,
            transcript: transcript.clone(),
            endpoint: endpoint.clone(),
            client_id,
            caps,
            tls,
            verify,
            report,
        };
        // "before STARTTLS" only where an upgrade is to come.
        let upgrade_follows = match tls {
            TlsMode::Starttls => true,
            TlsMode::Opportunistic => session.caps.starttls,
            TlsMode::Implicit | TlsMode::None => false,
        };
        let label = if upgrade_follows {
            "before STARTTLS"
        } else {
            "EHLO"
        };
        session
            .report
            .capabilities
            .push((label.to_string(), session.caps.clone()));
        let outcome = session.stages(envelope, message, more.first(), clock).await;
        let outcome = match outcome {
            Ok(ahead) if !more.is_empty() => {
                session.report.more = session.more(more, ahead).await;
                Ok(())
            }
            other => other.map(|_| ()),
        };
        // A failing QUIT must not turn success into an error: a retry would
        // send the message twice.
        let _ = tokio::time::timeout(settings.timeouts.reply, session.conn.quit()).await;
        outcome.map(|()| session.report)
    }

    /// TLS on the wire, checked as `verify` says; the certificate report.
    async fn handshake(
        &self,
        wire: &Wire,
        endpoint: &Endpoint,
        verify: Verify,
        transcript: &Transcript,
        upgrade: Upgrade,
    ) -> Result<CertReport> {
        let connector = self.material.connector(verify)?;
        let started = timed(
            self.settings.timeouts.connect,
            "the TLS handshake",
            wire.start_tls(connector, &endpoint.host),
        )
        .await?;
        if let Err(detail) = started {
            if upgrade == Upgrade::Starttls && wire.plaintext_in_handshake() {
                return Err(starttls_injection(endpoint));
            }
            let err = handshake_error(endpoint, &detail);
            if verify == Verify::Full
                && err.exit == Exit::Unavailable
                && self.settings.verbosity > 0
            {
                self.show_unverified_certificate(wire.peer(), endpoint, upgrade, transcript)
                    .await;
            }
            return Err(err);
        }
        transcript.note("TLS started");
        let der = wire.peer_certificate().unwrap_or_default();
        let verification = match verify {
            Verify::Full => "verified: trusted issuer, name matches".to_string(),
            Verify::Insecure => match certificate_flaws(&der, &endpoint.host)[..] {
                [] => "NOT verified (--insecure)".to_string(),
                ref flaws => format!("NOT verified (--insecure); it is {}", flaws.join(", ")),
            },
            Verify::Unauthenticated => {
                "not verified (opportunistic TLS to a mail exchanger)".to_string()
            }
            Verify::Pinned(pin) => {
                if sha256(&der) != pin {
                    return Err(Error::new(
                        Exit::Unavailable,
                        format!(
                            "TLS: the certificate of {endpoint} has SHA-256 {}, not the one given with --tls-fingerprint",
                            crate::smtp::tls::format_fingerprint(&sha256(&der))
                        ),
                    )
                    .hint("the server's certificate changed, or this is not the server you meant"));
                }
                "pinned: SHA-256 matches --tls-fingerprint".to_string()
            }
        };
        let report = CertReport::from_der(&der, verification).ok_or_else(|| {
            Error::new(
                Exit::Protocol,
                format!("TLS: {endpoint} sent no readable certificate"),
            )
        })?;
        for line in report.lines() {
            transcript.note(&line);
        }
        Ok(report)
    }
}

/// How the TLS handshake is reached: at once, or after STARTTLS.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    Implicit,
    Starttls,
}

impl Context<'_> {
    /// After a certificate failed verification, at -v: connect again and
    /// fetch it without checking, only to show what the server presents
    /// (the failed handshake gives no certificate to show). Best effort:
    /// the verification error stays the result whatever happens here.
    async fn show_unverified_certificate(
        &self,
        peer: SocketAddr,
        endpoint: &Endpoint,
        upgrade: Upgrade,
        transcript: &Transcript,
    ) {
        transcript.note("connecting again without verification, only to show the certificate");
        let fetch = async {
            let tcp = TcpStream::connect(peer).await.ok()?;
            // The second dialogue is not shown: it repeats the first.
            let wire = Wire::plain(tcp, peer, Arc::new(Transcript::new(0, false)));
            if upgrade == Upgrade::Starttls {
                let mut reader = tokio::io::BufReader::new(wire.clone());
                let mut writer = wire.clone();
                read_reply(&mut reader).await.ok()?;
                let ehlo = format!("EHLO {}\r\n", self.settings.helo);
                writer.write_all(ehlo.as_bytes()).await.ok()?;
                read_reply(&mut reader).await.ok()?;
                writer.write_all(b"STARTTLS\r\n").await.ok()?;
                read_reply(&mut reader)
                    .await
                    .ok()?
                    .starts_with("220")
                    .then_some(())?;
            }
            let connector = self.material.connector(Verify::Insecure).ok()?;
            wire.start_tls(connector, &endpoint.host).await.ok()?;
            let der = wire.peer_certificate()?;
            CertReport::from_der(&der, "NOT verified (see the error below)".to_string())
        };
        match tokio::time::timeout(self.settings.timeouts.connect, fetch).await {
            Ok(Some(report)) => {
                for line in report.lines() {
                    transcript.note(&line);
                }
            }
            _ => transcript.note("could not fetch the certificate to show it"),
        }
    }
}

/// --quit-after banner: read the greeting and say QUIT, without EHLO
/// (lettre's connection always sends EHLO, so this is done by hand).
async fn banner_only(wire: &Wire, endpoint: &Endpoint, limit: Duration) -> Result<()> {
    let mut reader = tokio::io::BufReader::new(wire.clone());
    let greeting = timed(limit, "the greeting", read_reply(&mut reader)).await??;
    let mut writer = wire.clone();
    let quit = async {
        let lost = |err: io::Error| {
            Error::new(Exit::IoErr, format!("connection lost: {}", io_reason(&err)))
        };
        writer.write_all(b"QUIT\r\n").await.map_err(lost)?;
        writer.flush().await.map_err(lost)?;
        read_reply(&mut reader).await
    };
    let _ = timed(limit, "the reply to QUIT", quit).await;
    match greeting.chars().next() {
        Some('2') => Ok(()),
        Some('4') => Err(Error::new(
            Exit::TempFail,
            format!("greeting: {endpoint} replied {greeting}"),
        )),
        Some('5') => Err(Error::new(
            Exit::Unavailable,
            format!("greeting: {endpoint} replied {greeting}"),
        )),
        _ => Err(Error::new(
            Exit::Protocol,
            // Escaped by the Wire already; {:?} would double each '\'.
            format!("greeting: {endpoint} sent a reply that is not SMTP: \"{greeting}\""),
        )),
    }
}

/// Reads one (possibly multi-line) reply; returns its last line.
async fn read_reply(reader: &mut tokio::io::BufReader<Wire>) -> Result<String> {
    loop {
        let mut line = String::new();
        let read =
            reader
                .read_line(&mut line)
                .await
                .map_err(|err| match Malformed::in_io(&err) {
                    Some(bad) => Error::new(
                        Exit::Protocol,
                        format!("greeting: the server sent a reply that is not SMTP: {bad}"),
                    ),
                    None => {
                        Error::new(Exit::IoErr, format!("connection lost: {}", io_reason(&err)))
                    }
                })?;
        if read == 0 {
            return Err(Error::new(
                Exit::IoErr,
                "connection lost before the greeting",
            ));
        }
        let line = line.trim_end().to_string();
        if line.len() <= 3 || line.as_bytes()[3] != b'-' {
            return Ok(line);
        }
    }
}

/// Stage durations for --timing.
struct Clock {
    enabled: bool,
    started: Instant,
    last: Instant,
    marks: Vec<(&'static str, Duration)>,
}

impl Clock {
    fn new(enabled: bool) -> Clock {
        let now = Instant::now();
        Clock {
            enabled,
            started: now,
            last: now,
            marks: Vec::new(),
        }
    }

    fn mark(&mut self, stage: &'static str) {
        let now = Instant::now();
        self.marks.push((stage, now - self.last));
        self.last = now;
    }

    fn summary(&self, transcript: &Transcript) {
        if !self.enabled {
            return;
        }
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        let mut parts: Vec<String> = self
            .marks
            .iter()
            .map(|(s, d)| format!("{s} {}", ms(*d)))
            .collect();
        parts.push(format!("total {}", ms(self.started.elapsed())));
        transcript.note(&format!("timing: {}", parts.join(", ")));
    }
}

struct Session<'a> {
    context: &'a Context<'a>,
    conn: AsyncSmtpConnection,
    wire: Wire,
    transcript: Arc<Transcript>,
    endpoint: Endpoint,
    client_id: ClientId,
    caps: Capabilities,
    tls: TlsMode,
    verify: Verify,
    report: SessionReport,
}

impl Session<'_> {
    fn settings(&self) -> &Settings {
        self.context.settings
    }

    fn stop_after(&mut self, stage: QuitAfter) -> bool {
        if self.settings().quit_after != Some(stage) {
            return false;
        }
        let name = stage.name();
        self.transcript
            .note(&format!("stopping after {name} (--quit-after {name})"));
        self.report.stopped_after = Some(name.to_string());
        true
    }

    /// The first message of a session, stage by stage. `next` is the
    /// message after it in a batch; returns whether that one's MAIL and RCPT
    /// already went out behind this one's final dot.
    async fn stages(
        &mut self,
        envelope: &Envelope,
        message: &Content,
        next: Option<&Outgoing>,
        clock: &mut Clock,
    ) -> Result<Ahead> {
        if self.stop_after(QuitAfter::Ehlo) {
            return Ok(Ahead::Nothing);
        }
        if self.secure().await? {
            clock.mark("STARTTLS");
        }
        if self.stop_after(QuitAfter::Starttls) {
            return Ok(Ahead::Nothing);
        }
        if self.authenticate().await? {
            clock.mark("AUTH");
        }
        if self.stop_after(QuitAfter::Auth) {
            return Ok(Ahead::Nothing);
        }
        let refused = if self.settings().quit_after.is_none() {
            let refused = self
                .mail_and_recipients(envelope, message, Ahead::Nothing)
                .await?;
            clock.mark("MAIL and RCPT");
            refused
        } else {
            self.mail(envelope, message).await?;
            clock.mark("MAIL");
            if self.stop_after(QuitAfter::Mail) {
                return Ok(Ahead::Nothing);
            }
            let refused = self.recipients(envelope).await?;
            clock.mark("RCPT");
            refused
        };
        if self.stop_after(QuitAfter::Rcpt) {
            let _ = self.command(Rset, Stage::Rcpt).await;
            return Ok(Ahead::Nothing);
        }
        if refused.len() == envelope.recipients.len() {
            self.report.delivery = Some(Delivery {
                reply: None,
                refused,
            });
            return Ok(Ahead::Nothing);
        }
        let (reply, ahead) = self.data(message, next).await;
        let reply = reply?;
        clock.mark("DATA");
        self.report.delivery = Some(Delivery {
            reply: Some(reply),
            refused,
        });
        let _ = self.stop_after(QuitAfter::Data);
        Ok(ahead)
    }

    /// Further messages over the same session. A failed one is reset and
    /// the next tried, unless the connection is gone (a NOOP tells, or the
    /// replies to commands already sent ahead) or a reply never came: after
    /// a timeout, a late reply would be read as the answer to the next
    /// command, so the session is given up.
    async fn more(&mut self, messages: &[Outgoing], mut ahead: Ahead) -> Vec<Result<Delivery>> {
        let mut results = Vec::with_capacity(messages.len());
        for (index, message) in messages.iter().enumerate() {
            let next = messages.get(index + 1);
            let (result, next_ahead) = self
                .transaction(&message.envelope, &message.content, ahead, next)
                .await;
            ahead = next_ahead;
            let failed = result.is_err();
            let timed_out = result
                .as_ref()
                .is_err_and(|err| err.cause == Cause::Timeout);
            results.push(result);
            // With commands in flight a NOOP's reply would be read as theirs.
            let broken = timed_out
                || (failed && ahead == Ahead::Nothing && !self.conn.test_connected().await);
            if broken {
                let reason = if timed_out {
                    "a reply did not come"
                } else {
                    "the connection was lost"
                };
                for _ in index + 1..messages.len() {
                    results.push(Err(Error::new(
                        Exit::TempFail,
                        format!(
                            "not sent: {reason} in the session with {} before this message",
                            self.endpoint
                        ),
                    )
                    .hint("try again later")));
                }
                break;
            }
        }
        results
    }

    /// MAIL, RCPT and DATA for one message of a batch; `ahead` says
    /// whether its MAIL and RCPT were already sent. Returns the same for
    /// `next`.
    async fn transaction(
        &mut self,
        envelope: &Envelope,
        message: &Content,
        ahead: Ahead,
        next: Option<&Outgoing>,
    ) -> (Result<Delivery>, Ahead) {
        let refused = match self.mail_and_recipients(envelope, message, ahead).await {
            Ok(refused) => refused,
            Err(err) => return (Err(err), Ahead::Nothing),
        };
        if refused.len() == envelope.recipients.len() {
            let delivery = Delivery {
                reply: None,
                refused,
            };
            return (Ok(delivery), Ahead::Nothing);
        }
        let (reply, ahead) = self.data(message, next).await;
        let delivery = reply.map(|reply| Delivery {
            reply: Some(reply),
            refused,
        });
        (delivery, ahead)
    }

    /// Sends a command and waits for its reply under the reply timeout.
    async fn command(
        &mut self,
        command: impl std::fmt::Display,
        stage: Stage,
    ) -> Result<lettre::transport::smtp::response::Response> {
        self.exchange(command, stage)
            .await?
            .map_err(|err| smtp_error(&self.endpoint, stage, err))
    }

    /// A command and its reply, as lettre's `command` does, but written
    /// here so that a write the server broke off is told from a failed
    /// read: then its reply may still be waiting (see `reply_left_after`).
    async fn exchange(
        &mut self,
        command: impl std::fmt::Display,
        stage: Stage,
    ) -> Result<std::result::Result<lettre::transport::smtp::response::Response, SmtpError>> {
        self.readable(stage)?;
        let limit = self.settings().timeouts.reply;
        let waiting_for = format!("the reply to {}", stage.name());
        let line = command.to_string();
        let mut wire = self.wire.clone();
        let send = async {
            wire.write_all(line.as_bytes()).await?;
            wire.flush().await
        };
        if let Err(err) = timed(limit, &waiting_for, send).await? {
            return self.reply_left_after(stage, &err).await;
        }
        timed(limit, &waiting_for, self.conn.read_response()).await
    }

    /// Fails when what the server already sent cannot be read on (a reply
    /// no command asked for came behind the last one): no further command
    /// is sent to a server that does that, least of all a password.
    fn readable(&self, stage: Stage) -> Result<()> {
        match self.wire.failure() {
            Some(bad) => Err(malformed_error(&self.endpoint, stage, &bad)),
            None => Ok(()),
        }
    }

    /// After a 421 postie stops reading a pipelined group's replies; a
    /// server that then stays open would have the rest read as answers to
    /// later commands. No later command is written, so nothing can be.
    fn closed_by_server(&self, err: Error) -> Error {
        self.wire.poison();
        err
    }

    /// A server that hangs up mid-command or mid-message usually says why
    /// first (a 421 before closing, a 552 to a message it will not take in
    /// full); the reset then fails the write while that reply is already in
    /// the socket. The reply is the reason the user needs, so it is read,
    /// briefly (the connection is gone: it is there or it never will be).
    /// Without one, the connection was lost.
    async fn reply_left_after(
        &mut self,
        stage: Stage,
        err: &io::Error,
    ) -> Result<std::result::Result<lettre::transport::smtp::response::Response, SmtpError>> {
        let lost = write_error(&self.endpoint, stage, err);
        if !hung_up(err) {
            return Err(lost);
        }
        let bound = REPLY_LEFT_WAIT.min(self.settings().timeouts.reply);
        match tokio::time::timeout(bound, self.conn.read_response()).await {
            Ok(Err(reply)) if reply.status().is_some() || malformed(&reply).is_some() => {
                Ok(Err(reply))
            }
            _ => Err(lost),
        }
    }

    /// STARTTLS when the mode asks for it; true when TLS was started.
    async fn secure(&mut self) -> Result<bool> {
        let offered = self.caps.starttls;
        match self.tls {
            TlsMode::Implicit | TlsMode::None => return Ok(false),
            TlsMode::Opportunistic if !offered => {
                self.transcript.note(
                    "the server does not offer STARTTLS; going on without TLS (opportunistic)",
                );
                return Ok(false);
            }
            TlsMode::Starttls if !offered => {
                return Err(Error::new(
                    Exit::Unavailable,
                    format!(
                        "{} does not offer STARTTLS, and --tls starttls requires it",
                        self.endpoint
                    ),
                )
                .hint(
                    "use --tls implicit for port 465, or --tls none only on a network you trust",
                ));
            }
            _ => {}
        }
        self.command(Starttls, Stage::StartTls).await?;
        if !self.transcript.nothing_pending() {
            return Err(starttls_injection(&self.endpoint));
        }
        let certificate = self
            .context
            .handshake(
                &self.wire,
                &self.endpoint,
                self.verify,
                &self.transcript,
                Upgrade::Starttls,
            )
            .await?;
        self.report.certificate = Some(certificate);
        self.command(Ehlo::new(self.client_id.clone()), Stage::StartTls)
            .await?;
        self.caps = Capabilities::parse(&self.transcript.ehlo_reply());
        self.report
            .capabilities
            .push(("after STARTTLS".to_string(), self.caps.clone()));
        Ok(true)
    }

    /// AUTH when a user is configured; true when it was done.
    async fn authenticate(&mut self) -> Result<bool> {
        // request never gives an MX route a login; this keeps it so should
        // that change: an exchanger is whoever the recipient's domain names.
        if matches!(self.settings().route, Route::Mx { .. }) {
            return Ok(false);
        }
        let Some(login) = self.settings().login.clone() else {
            return Ok(false);
        };
        if !plaintext_auth_allowed(
            self.wire.is_tls(),
            self.wire.peer().ip(),
            self.settings().allow_plaintext_auth,
        ) {
            return Err(Error::new(
                Exit::Unavailable,
                format!(
                    "refusing to send the password for {:?} to {} over an unencrypted connection",
                    login.user, self.endpoint
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
        let Some(mechanism) = wanted
            .iter()
            .copied()
            .find(|m| self.caps.offers_auth(mechanism_name(*m)))
        else {
            let offered = if self.caps.auth.is_empty() {
                "no AUTH mechanism".to_string()
            } else {
                self.caps.auth.join(", ")
            };
            let wanted: Vec<&str> = wanted.iter().copied().map(mechanism_name).collect();
            return Err(Error::new(
                Exit::Unavailable,
                format!("AUTH: {} offers {offered}, not {}", self.endpoint, wanted.join(" or ")),
            )
            .hint("pick another --auth, or check that TLS is on (many servers offer AUTH only after STARTTLS)"));
        };
        let credentials = Credentials::new(login.user.clone(), login.secret.clone());
        self.transcript.set_secret(true);
        let result = self.sasl(mechanism, &credentials).await;
        self.transcript.set_secret(false);
        result.map(|()| true)
    }

    /// The SASL exchange: the first command, then an answer per 334.
    async fn sasl(&mut self, mechanism: Mechanism, credentials: &Credentials) -> Result<()> {
        let first = Auth::new(mechanism, credentials.clone(), None)
            .map_err(|err| Error::new(Exit::Software, format!("AUTH: {err}")))?;
        let mut reply = self.command(first, Stage::Auth).await?;
        for _ in 0..10 {
            if !reply.has_code(334) {
                break;
            }
            let next =
                Auth::new_from_response(mechanism, credentials.clone(), &reply).map_err(|err| {
                    Error::new(
                        Exit::NoPerm,
                        format!("AUTH: unexpected challenge from {}: {err}", self.endpoint),
                    )
                })?;
            reply = self.command(next, Stage::Auth).await?;
        }
        if reply.code().to_string().starts_with('2') {
            Ok(())
        } else {
            Err(Error::new(
                Exit::NoPerm,
                format!("AUTH: {} replied {}", self.endpoint, reply_text(&reply)),
            ))
        }
    }

    /// MAIL FROM, with SIZE, SMTPUTF8 and BODY=8BITMIME as needed.
    fn mail_command(&self, envelope: &Envelope, message: &Content) -> Result<Mail> {
        let endpoint = &self.endpoint;
        let mut parameters = Vec::new();
        // The message and the ".\r\n" after it (write_message adds a CRLF
        // first when the message lacks one; SIZE is an estimate anyway).
        let size = message.len() as usize + 3;
        if let Some(limit) = self.caps.size {
            if let Some(limit) = limit.filter(|&l| size as u64 > l) {
                return Err(Error::new(
                    Exit::Unavailable,
                    format!(
                        "the message is {} but {endpoint} takes at most {} (SIZE {limit})",
                        human_size(size as u64),
                        human_size(limit)
                    ),
                )
                .hint("send smaller attachments, or a link to the file"));
            }
            if !message.is_empty() {
                parameters.push(MailParameter::Size(size));
            }
        }
        if envelope.needs_smtputf8() {
            if !self.caps.smtputf8 {
                return Err(Error::new(
                    Exit::Unavailable,
                    format!("{endpoint} does not support SMTPUTF8, which the non-ASCII addresses in the envelope need"),
                )
                .hint("use ASCII (IDNA) addresses or another server"));
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !message.is_ascii() {
            if !self.caps.eight_bit_mime {
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

    async fn mail(&mut self, envelope: &Envelope, message: &Content) -> Result<()> {
        let mail = self.mail_command(envelope, message)?;
        self.command(mail, Stage::Mail).await?;
        Ok(())
    }

    /// MAIL and every RCPT as one PIPELINING (RFC 2920) group. DATA is not
    /// part of it: after a refusal postie must be able to send RSET instead,
    /// and a 354 could only be undone by dropping the connection.
    fn mail_and_recipients_batch(&self, envelope: &Envelope, message: &Content) -> Result<String> {
        let mut batch = self.mail_command(envelope, message)?.to_string();
        for recipient in &envelope.recipients {
            batch.push_str(&Rcpt::new(envelope_address(recipient)?, vec![]).to_string());
        }
        Ok(batch)
    }

    /// With PIPELINING: MAIL and every RCPT in one write (unless they went
    /// out ahead, behind the previous message), then their replies, all of
    /// them whatever MAIL got.
    async fn mail_and_recipients_pipelined(
        &mut self,
        envelope: &Envelope,
        message: &Content,
        ahead: Ahead,
    ) -> Result<Vec<Refusal>> {
        if ahead == Ahead::Nothing {
            self.readable(Stage::Mail)?;
            let batch = self.mail_and_recipients_batch(envelope, message)?;
            let limit = self.settings().timeouts.reply;
            let mut wire = self.wire.clone();
            let send = async {
                wire.write_all(batch.as_bytes()).await?;
                wire.flush().await
            };
            if let Err(err) = timed(limit, "sending MAIL and RCPT", send).await? {
                let reply = self.reply_left_after(Stage::Mail, &err).await?;
                return Err(reply.map_or_else(
                    |err| smtp_error(&self.endpoint, Stage::Mail, err),
                    |_| write_error(&self.endpoint, Stage::Mail, &err),
                ));
            }
        }
        let limit = self.settings().timeouts.reply;
        let mail_reply = timed(limit, "the reply to MAIL FROM", self.conn.read_response()).await?;
        let mail_failure = match mail_reply {
            Ok(_) => None,
            // RFC 5321 3.8: a 421 is followed by the close; the RCPT
            // replies will never come, so waiting for them is pointless.
            Err(err) if is_closing(&err) => {
                return Err(self.closed_by_server(smtp_error(&self.endpoint, Stage::Mail, err)))
            }
            Err(err) => Some(smtp_error(&self.endpoint, Stage::Mail, err)),
        };
        let mut refused = Vec::new();
        for recipient in &envelope.recipients {
            let reply = timed(limit, "the reply to RCPT TO", self.conn.read_response()).await?;
            if let Err(err) = self.sort_rcpt_reply(recipient, reply, &mut refused) {
                // A server that refused MAIL and then hung up: its refusal
                // is the reason, not the RCPT replies that never came.
                return Err(mail_failure.unwrap_or(err));
            }
        }
        if let Some(err) = mail_failure {
            return Err(err);
        }
        self.judge_refusals(envelope, refused).await
    }

    /// MAIL and RCPT, pipelined when the server offers it and no
    /// --quit-after needs them one at a time.
    async fn mail_and_recipients(
        &mut self,
        envelope: &Envelope,
        message: &Content,
        ahead: Ahead,
    ) -> Result<Vec<Refusal>> {
        if self.caps.pipelining {
            return self
                .mail_and_recipients_pipelined(envelope, message, ahead)
                .await;
        }
        self.mail(envelope, message).await?;
        self.recipients(envelope).await
    }

    /// Every RCPT, even after a refusal, so that all refusals are listed.
    async fn recipients(&mut self, envelope: &Envelope) -> Result<Vec<Refusal>> {
        let mut refused = Vec::new();
        for recipient in &envelope.recipients {
            let rcpt = Rcpt::new(envelope_address(recipient)?, vec![]);
            let reply = self.exchange(rcpt, Stage::Rcpt).await?;
            self.sort_rcpt_reply(recipient, reply, &mut refused)?;
        }
        self.judge_refusals(envelope, refused).await
    }

    /// One RCPT reply: accepted, refused (kept, with the server's words,
    /// to be listed) or a failure of the whole session.
    fn sort_rcpt_reply(
        &self,
        recipient: &str,
        reply: std::result::Result<lettre::transport::smtp::response::Response, SmtpError>,
        refused: &mut Vec<Refusal>,
    ) -> Result<()> {
        match reply {
            Ok(_) => Ok(()),
            // RFC 5321 3.8: the server is closing the session, which is
            // no answer about this recipient.
            Err(err) if is_closing(&err) => {
                Err(self.closed_by_server(smtp_error(&self.endpoint, Stage::Rcpt, err)))
            }
            Err(err) if err.status().is_some() => {
                refused.push(Refusal {
                    recipient: recipient.to_string(),
                    reply: server_reply(&err),
                    temporary: err.is_transient(),
                });
                Ok(())
            }
            Err(err) => Err(smtp_error(&self.endpoint, Stage::Rcpt, err)),
        }
    }

    /// Without --partial a message goes to all its recipients or to none:
    /// any refusal cancels it (RSET) and is the message's failure. With
    /// --partial the refusals are returned, each recipient to be settled on
    /// its own; when every recipient was refused nothing is left to send.
    async fn judge_refusals(
        &mut self,
        envelope: &Envelope,
        refused: Vec<Refusal>,
    ) -> Result<Vec<Refusal>> {
        if refused.is_empty() {
            return Ok(refused);
        }
        let all_refused = refused.len() == envelope.recipients.len();
        if all_refused || !self.settings().partial {
            // Nothing is sent, so a retry after fixing the list cannot
            // deliver twice to the recipients that were accepted.
            let _ = self.command(Rset, Stage::Rcpt).await;
        }
        if !self.settings().partial {
            return Err(refusal_error(&self.endpoint, &refused, all_refused));
        }
        Ok(refused)
    }

    /// DATA, the message and the server's final reply. When the server
    /// offers PIPELINING, the MAIL and RCPT of `next` (the following message
    /// of a batch) go out in the same write as the final dot: RFC 2920 lets
    /// the message start a group, and it saves a round trip per message.
    /// Returns whether they did.
    async fn data(
        &mut self,
        message: &Content,
        next: Option<&Outgoing>,
    ) -> (Result<String>, Ahead) {
        if let Err(err) = self.command(Data, Stage::Data).await {
            return (Err(err), Ahead::Nothing);
        }
        // More behind the 354 would be read as the reply to the message:
        // the message is not sent to a server that did that.
        if let Err(err) = self.readable(Stage::Data) {
            return (Err(err), Ahead::Nothing);
        }
        // A next message that cannot be announced (too big for SIZE, say)
        // fails on its own turn, with its own error.
        let trailer = next
            .filter(|_| self.caps.pipelining && self.settings().quit_after.is_none())
            .and_then(|n| self.mail_and_recipients_batch(&n.envelope, &n.content).ok());
        let ahead = if trailer.is_some() {
            Ahead::MailAndRecipients
        } else {
            Ahead::Nothing
        };
        // Large messages take time to write; the limit covers the transfer
        // at a slow 32 KiB/s plus the wait for the final reply.
        let transfer = Duration::from_secs(message.len() / (32 * 1024));
        let limit = self.settings().timeouts.data_end + transfer;
        self.transcript.begin_message();
        let wire = self.wire.clone();
        let trailer = trailer.unwrap_or_default();
        let send = write_message(wire, message, trailer.as_bytes());
        let written = match timed(limit, "the reply to the end of the message", send).await {
            Ok(written) => written,
            Err(err) => return (Err(err), Ahead::Nothing),
        };
        match written {
            Ok(()) => {}
            Err(MessageWriteError::Source(err)) => {
                let err = Error::new(
                    Exit::NoInput,
                    format!("cannot read an attachment while sending: {}", io_reason(&err)),
                )
                .hint("the connection was dropped before the end of the message, so nothing was delivered");
                return (Err(err), Ahead::Nothing);
            }
            Err(MessageWriteError::Wire(err)) => {
                let err = match self.reply_left_after(Stage::Message, &err).await {
                    Ok(Err(reply)) => smtp_error(&self.endpoint, Stage::Message, reply),
                    Ok(Ok(_)) => write_error(&self.endpoint, Stage::Message, &err),
                    Err(err) => err,
                };
                return (Err(err), Ahead::Nothing);
            }
        }
        let reply = timed(
            limit,
            "the reply to the end of the message",
            self.conn.read_response(),
        )
        .await
        .and_then(|reply| reply.map_err(|err| smtp_error(&self.endpoint, Stage::Message, err)));
        (reply.map(|reply| reply_text(&reply)), ahead)
    }
}

/// Whether the next message's commands are already on the wire, their
/// replies still to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ahead {
    Nothing,
    MailAndRecipients,
}

/// Why a message could not be written to its end.
enum MessageWriteError {
    /// An attachment could not be read: the connection is poisoned so that
    /// nothing can end the message, and a truncated one is never accepted.
    Source(io::Error),
    Wire(io::Error),
}

/// Writes up to this much at a time: few system calls, little memory.
const WRITE_CHUNK: usize = 64 * 1024;

/// The message as it goes on the wire after DATA: dot-stuffed, ended with
/// the lone dot, and followed by `trailer` (pipelined commands) in the same
/// write, so that a small message and the next MAIL leave in one packet.
async fn write_message(
    mut wire: Wire,
    message: &Content,
    trailer: &[u8],
) -> std::result::Result<(), MessageWriteError> {
    let mut stuffing = DotStuffing::default();
    let mut out = Vec::with_capacity(WRITE_CHUNK + WRITE_CHUNK / 8);
    for chunk in message.chunks() {
        let chunk = chunk.map_err(|err| {
            wire.poison();
            MessageWriteError::Source(err)
        })?;
        stuffing.encode(&chunk, &mut out);
        if out.len() >= WRITE_CHUNK {
            wire.write_all(&out)
                .await
                .map_err(MessageWriteError::Wire)?;
            out.clear();
        }
    }
    out.extend_from_slice(stuffing.end());
    out.extend_from_slice(trailer);
    wire.write_all(&out)
        .await
        .map_err(MessageWriteError::Wire)?;
    wire.flush().await.map_err(MessageWriteError::Wire)
}

/// SMTP transparency (RFC 5321 4.5.2): a line that starts with a dot gets
/// one more. lettre has this codec but keeps it private, and postie writes
/// the message itself to put the next commands behind the final dot.
#[derive(Default)]
struct DotStuffing {
    state: LineState,
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum LineState {
    #[default]
    AtStart,
    AfterCr,
    InLine,
}

impl DotStuffing {
    /// Copies whole lines at a time (memchr finds each LF): the message is
    /// the bulk of what postie writes, and a 500 MiB attachment must not
    /// cost a branch per byte. A dot is doubled only right after a CRLF.
    fn encode(&mut self, data: &[u8], out: &mut Vec<u8>) {
        out.reserve(data.len() + data.len() / 64);
        let mut rest = data;
        while let Some(&first) = rest.first() {
            if first == b'.' && self.state == LineState::AtStart {
                out.push(b'.');
            }
            let Some(lf) = memchr::memchr(b'\n', rest) else {
                out.extend_from_slice(rest);
                self.state = if rest.ends_with(b"\r") {
                    LineState::AfterCr
                } else {
                    LineState::InLine
                };
                return;
            };
            out.extend_from_slice(&rest[..=lf]);
            let after_cr = match lf {
                0 => self.state == LineState::AfterCr,
                _ => rest[lf - 1] == b'\r',
            };
            self.state = if after_cr {
                LineState::AtStart
            } else {
                LineState::InLine
            };
            rest = &rest[lf + 1..];
        }
    }

    /// The end of the message: the lone dot, after a CRLF if the last line
    /// has none (a message always ends with a line break on the wire).
    fn end(&self) -> &'static [u8] {
        if self.state == LineState::AtStart {
            b".\r\n"
        } else {
            b"\r\n.\r\n"
        }
    }
}

/// Credentials go in clear text only over loopback, or when the user asked
/// for it by name: anyone on the path could read them otherwise.
fn plaintext_auth_allowed(encrypted: bool, peer: std::net::IpAddr, allowed_by_user: bool) -> bool {
    encrypted || peer.is_loopback() || allowed_by_user
}

/// Connects to the first address that answers, noting each attempt.
async fn connect_tcp(
    endpoint: &Endpoint,
    addresses: &[SocketAddr],
    limit: Duration,
    transcript: &Transcript,
) -> Result<(TcpStream, SocketAddr)> {
    let mut last_error = None;
    for address in addresses {
        let target = if endpoint.host.parse::<std::net::IpAddr>().is_ok() {
            address.to_string()
        } else {
            format!("{endpoint} ({address})")
        };
        transcript.note(&format!("Trying {target}..."));
        match timed(limit, "the connection", TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                // Without this the final dot waits on a delayed ACK (~40 ms).
                let _ = stream.set_nodelay(true);
                transcript.note(&format!("Connected to {target}"));
                return Ok((stream, *address));
            }
            Ok(Err(err)) => last_error = Some(connect_error(endpoint, address, &err)),
            Err(timeout) => last_error = Some(timeout),
        }
        if let Some(err) = &last_error {
            transcript.error(&err.message);
        }
    }
    Err(last_error.unwrap_or_else(|| {
        Error::new(
            Exit::NoHost,
            format!("{} has no address to connect to", endpoint.host),
        )
    }))
}

/// A temporary failure before the session started (no connection, no
/// greeting, or a 4xx greeting) says the server is not there for now.
fn unreachable(err: Error) -> Error {
    match err.exit {
        Exit::TempFail | Exit::IoErr | Exit::NoHost => err.cause(Cause::Unreachable),
        _ => err,
    }
}

/// Maps a lettre error at a given stage to postie's error and exit code.
fn smtp_error(endpoint: &Endpoint, stage: Stage, err: SmtpError) -> Error {
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

/// A line that is not a reply is a protocol error at once: retrying a
/// server that does not speak SMTP for days helps nobody (EX_PROTOCOL).
fn malformed_error(endpoint: &Endpoint, stage: Stage, bad: &Malformed) -> Error {
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
fn starttls_injection(endpoint: &Endpoint) -> Error {
    Error::new(
        Exit::Protocol,
        format!(
            "STARTTLS: {endpoint} sent more after its 220; refusing to go on (a STARTTLS injection attempt, or a broken server)"
        ),
    )
}

/// The Wire's verdict on a reply line, inside a lettre error.
fn malformed(err: &SmtpError) -> Option<&Malformed> {
    Malformed::in_chain(err)
}

/// How long to look for a reply the server sent before hanging up.
const REPLY_LEFT_WAIT: Duration = Duration::from_secs(2);

/// RFC 5321 3.8: 421 means the server is closing the connection.
fn is_closing(err: &SmtpError) -> bool {
    err.status().map(u16::from) == Some(421)
}

/// The server hung up (a reset or broken pipe).
fn hung_up(err: &io::Error) -> bool {
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
fn write_error(endpoint: &Endpoint, stage: Stage, err: &io::Error) -> Error {
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

fn mechanism_name(mechanism: Mechanism) -> &'static str {
    match mechanism {
        Mechanism::Plain => "PLAIN",
        Mechanism::Login => "LOGIN",
        Mechanism::Xoauth2 => "XOAUTH2",
    }
}

/// A failed host name lookup. getaddrinfo's EAI_AGAIN (the resolver did
/// not answer: a machine still booting, a flaky network) is temporary, so
/// a cron report waits in the queue instead of failing for good; std keeps
/// only its text, which glibc and musl word alike.
fn lookup_error(host: &str, err: &io::Error) -> Error {
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
        .cause(Cause::Timeout)
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

fn refusal_error(endpoint: &Endpoint, refused: &[Refusal], all_refused: bool) -> Error {
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

    fn stuffed(chunks: &[&[u8]]) -> Vec<u8> {
        let mut stuffing = DotStuffing::default();
        let mut out = Vec::new();
        for chunk in chunks {
            stuffing.encode(chunk, &mut out);
        }
        out.extend_from_slice(stuffing.end());
        out
    }

    #[test]
    fn dot_stuffing_doubles_leading_dots_even_across_chunks() {
        assert_eq!(
            stuffed(&[b".a\r\n.\r\n..b\r\n"]),
            b"..a\r\n..\r\n...b\r\n.\r\n"
        );
        assert_eq!(stuffed(&[b"a\r", b"\n.b\r\n"]), b"a\r\n..b\r\n.\r\n");
        assert_eq!(stuffed(&[b"a\r\n", b".b"]), b"a\r\n..b\r\n.\r\n");
        // A dot after a bare LF or mid-line is left alone, as lettre did.
        assert_eq!(stuffed(&[b"a.b\n.c"]), b"a.b\n.c\r\n.\r\n");
    }

    /// The byte-at-a-time rule the line-at-a-time encoder must match.
    fn stuffed_by_bytes(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut state = LineState::AtStart;
        for &byte in chunks.concat().iter() {
            if byte == b'.' && state == LineState::AtStart {
                out.push(b'.');
            }
            out.push(byte);
            state = match (byte, state) {
                (b'\r', _) => LineState::AfterCr,
                (b'\n', LineState::AfterCr) => LineState::AtStart,
                _ => LineState::InLine,
            };
        }
        out.extend_from_slice(DotStuffing { state }.end());
        out
    }

    proptest::proptest! {
        #[test]
        fn dot_stuffing_by_lines_matches_the_rule_byte_by_byte(
            bytes in proptest::collection::vec(
                proptest::sample::select(vec![b'.', b'\r', b'\n', b'a']),
                0..200,
            ),
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort();
            let mut chunks = Vec::new();
            let mut at = 0;
            for cut in cuts {
                chunks.push(&bytes[at..cut]);
                at = cut;
            }
            chunks.push(&bytes[at..]);
            proptest::prop_assert_eq!(stuffed(&chunks), stuffed_by_bytes(&chunks));
        }
    }

    #[test]
    fn the_message_ends_with_one_line_break_before_the_dot() {
        assert_eq!(stuffed(&[b"x\r\n"]), b"x\r\n.\r\n");
        assert_eq!(stuffed(&[b"x"]), b"x\r\n.\r\n");
        assert_eq!(stuffed(&[b"x\r\n\r\n"]), b"x\r\n\r\n.\r\n");
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
