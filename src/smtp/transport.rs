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
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Auth, Data, Ehlo, Mail, Rcpt, Rset, Starttls};
use lettre::transport::smtp::extension::{ClientId, MailBodyParameter, MailParameter};
use lettre::transport::smtp::Error as SmtpError;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::exit::{io_reason, Cause, Error, Exit, Result};
use crate::mail::address::envelope_address;
use crate::mail::content::Content;
use crate::smtp::capabilities::Capabilities;
use crate::smtp::classify::{
    connect_error, hung_up, is_closing, lookup_error, malformed, malformed_error, refusal_error,
    reply_text, server_reply, smtp_error, starttls_injection, timed, unreachable, write_error,
};
use crate::smtp::data::{write_message, MessageWriteError};
use crate::smtp::mx::{self, Nameserver};
use crate::smtp::outgoing::Outgoing;
use crate::smtp::reply::Malformed;
use crate::smtp::report::{Delivery, Refusal, SessionReport};
use crate::smtp::settings::{Route, Server, Settings};
use crate::smtp::stage::Stage;
use crate::smtp::timing::Clock;
use crate::smtp::tls::{
    certificate_flaws, handshake_error, sha256, CertReport, TlsMaterial, Verify,
};
use crate::smtp::transcript::Transcript;
use crate::smtp::wire::Wire;
use crate::types::human_size;
use crate::types::{AuthMethod, Endpoint, Envelope, QuitAfter, TlsMode};

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

/// How long to look for a reply the server sent before hanging up.
const REPLY_LEFT_WAIT: Duration = Duration::from_secs(2);

fn mechanism_name(mechanism: Mechanism) -> &'static str {
    match mechanism {
        Mechanism::Plain => "PLAIN",
        Mechanism::Login => "LOGIN",
        Mechanism::Xoauth2 => "XOAUTH2",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
