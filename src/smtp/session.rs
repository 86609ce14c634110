//! One SMTP session with one server, stage by stage: greeting and EHLO,
//! STARTTLS, AUTH, MAIL and RCPT (pipelined when offered), DATA, and
//! further messages over the same connection.
//!
//! lettre's `SmtpTransport::send` stops at the first refused recipient and
//! leaves Nagle's algorithm on (about 40 ms lost per message), so postie
//! drives lettre's lower-level `AsyncSmtpConnection` instead, over a
//! [`Wire`] it opens itself (TCP_NODELAY, address family, connect timeout)
//! and upgrades to TLS itself (implicit TLS and STARTTLS alike), so that
//! the transcript sees every line in clear and the certificate can be
//! reported. Each stage runs under its own timeout, so every failure is
//! known by its stage, and `--quit-after` can stop cleanly after any.
//!
//! A session is given all it needs: its settings (the login already left
//! out by `route` where none is to be sent), the target, the TLS material,
//! the transcript and the --timing clock. It knows nothing of routing.
//! Belongs here: the dialogue and its rules. Not here: which
//! server to try next (`route`), sockets and handshakes (`connect`), the
//! message bytes (`data`), what a failure is called (`classify`).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Auth, Data, Ehlo, Mail, Rcpt, Rset, Starttls};
use lettre::transport::smtp::extension::{
    ClientId, MailBodyParameter, MailParameter, RcptParameter,
};
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::Error as SmtpError;
use tokio::io::AsyncWriteExt;

use crate::exit::{Cause, Error, Exit, Result};
use crate::mail::address::envelope_address;
use crate::mail::content::Content;
use crate::smtp::capabilities::Capabilities;
use crate::smtp::classify::{
    attachment_unreadable, auth_refused, endpoint_at, hung_up, implicit_tls_hint, is_closing,
    malformed, malformed_error, refusal_error, reply_text, server_reply, session_broken,
    smtp_error, starttls_injection, timed, unexpected_challenge, unreachable, write_error,
    ReplyContext,
};
use crate::smtp::connect::{await_greeting, banner_only, connect_tcp, Handshaker, Upgrade};
use crate::smtp::data::{write_message, MessageWriteError};
use crate::smtp::outgoing::Outgoing;
use crate::smtp::report::{Delivery, EhloReply, Refusal, SessionReport};
use crate::smtp::sasl::{
    self, candidates, Mechanism as SaslMechanism, SaslError, Scram, ScramHash,
};
use crate::smtp::settings::Login;
use crate::smtp::settings::SessionSettings;
use crate::smtp::stage::Stage;
use crate::smtp::timing::Clock;
use crate::smtp::tls::Verify;
use crate::smtp::transcript::Transcript;
use crate::smtp::wire::Wire;
use crate::types::human_size;
use crate::types::{AuthMethod, Dsn, Endpoint, Envelope, QuitAfter, TlsMode};

/// Where one session goes and how it is secured.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) endpoint: &'a Endpoint,
    pub(crate) tls: TlsMode,
    /// `tls` was chosen, not the default for the port and host.
    pub(crate) tls_explicit: bool,
    pub(crate) addresses: &'a [SocketAddr],
    pub(crate) verify: Verify,
}

/// One session with one server, up to --quit-after or the final reply.
/// `handshaker` carries the session's settings and the TLS material; the
/// session ends by writing the --timing summary to `transcript`. Its
/// error is returned, not shown: the caller prints it once, -v or not.
pub(crate) async fn run(
    handshaker: Handshaker<'_>,
    target: &Target<'_>,
    transcript: Arc<Transcript>,
    mut clock: Clock,
    envelope: &Envelope,
    message: &Content,
    more: &[Outgoing],
) -> Result<SessionReport> {
    let result = stages(
        handshaker,
        target,
        envelope,
        message,
        more,
        &transcript,
        &mut clock,
    )
    .await;
    clock.summary(&transcript);
    without_secrets(result, &transcript)
}

/// The session's result with every secret a server echoed back hidden: a
/// hostile server can put the AUTH response, or the password it decoded,
/// into any later reply, and replies reach the error line, the JSON
/// result, the log and the queue.
fn without_secrets(
    result: Result<SessionReport>,
    transcript: &Transcript,
) -> Result<SessionReport> {
    let hide = |text: &mut String| *text = transcript.hide_secrets(text);
    // The hint is postie's own text, never a reply.
    let hide_error = |mut err: Error| {
        hide(&mut err.message);
        err
    };
    let hide_delivery = |delivery: &mut Delivery| {
        if let Some(reply) = delivery.reply.as_mut() {
            hide(reply);
        }
        for refusal in &mut delivery.refused {
            hide(&mut refusal.reply);
        }
    };
    let mut report = result.map_err(hide_error)?;
    report.failure = report.failure.map(hide_error);
    if let Some(delivery) = report.delivery.as_mut() {
        hide_delivery(delivery);
    }
    report.more = std::mem::take(&mut report.more)
        .into_iter()
        .map(|more| {
            more.map(|mut delivery| {
                hide_delivery(&mut delivery);
                delivery
            })
            .map_err(hide_error)
        })
        .collect();
    Ok(report)
}

async fn stages(
    handshaker: Handshaker<'_>,
    target: &Target<'_>,
    envelope: &Envelope,
    message: &Content,
    more: &[Outgoing],
    transcript: &Arc<Transcript>,
    clock: &mut Clock,
) -> Result<SessionReport> {
    let settings = handshaker.settings;
    let Target {
        endpoint,
        tls,
        tls_explicit,
        addresses,
        verify,
    } = *target;
    let (tcp, peer) = connect_tcp(endpoint, addresses, settings.timeouts.connect, transcript)
        .await
        .map_err(unreachable)?;
    clock.mark(&[Stage::Connect]);
    let mut report = SessionReport {
        server: endpoint_at(endpoint, &peer),
        ..SessionReport::default()
    };
    if let Some(stop) = quits_after(settings, Stage::Connect) {
        transcript.note(&format!(
            "closing the connection (--quit-after {})",
            stop.name()
        ));
        report.stopped_after = Some(stop.name());
        return Ok(report);
    }
    transcript.restart_clock();
    let greeting_stage = if quits_after(settings, Stage::Banner).is_some() {
        Stage::Banner
    } else {
        Stage::Greeting
    };
    if tls != TlsMode::Implicit {
        await_greeting(&tcp, endpoint, settings.timeouts.reply, greeting_stage)
            .await
            .map_err(unreachable)?;
    }
    let wire = Wire::plain(tcp, peer, transcript.clone());
    let mut untrusted = None;
    if tls == TlsMode::Implicit {
        let secured = handshaker
            .handshake(&wire, endpoint, verify, transcript, Upgrade::Implicit)
            .await?;
        report.certificate = Some(secured.certificate);
        report.tls = Some(secured.tls);
        untrusted = secured.untrusted;
        clock.mark(&[Stage::TlsHandshake]);
    }
    if let Some(stop) = quits_after(settings, Stage::Banner) {
        banner_only(&wire, endpoint, settings.timeouts.reply).await?;
        clock.mark(&[Stage::Banner]);
        report.stopped_after = Some(stop.name());
        report.failure = untrusted;
        return Ok(report);
    }
    let client_id = ClientId::Domain(settings.helo.clone());
    let greeting = AsyncSmtpConnection::connect_with_transport(Box::new(wire.clone()), &client_id);
    // Hung up after the first byte, within the greeting: an implicit TLS
    // port that sent something first may still be behind it. (A greeting
    // that is not SMTP has a hint of its own, which says as much.)
    let mixed_up = |err: Error| match err.exit {
        Exit::IoErr if tls != TlsMode::Implicit => implicit_tls_hint(err, endpoint.port),
        _ => err,
    };
    let conn = timed(settings.timeouts.reply, Stage::Greeting, endpoint, greeting)
        .await
        .map_err(unreachable)?
        .map_err(|err| {
            let err = smtp_error(endpoint, &ReplyContext::at(Stage::Greeting), err);
            unreachable(mixed_up(err))
        })?;
    clock.mark(&[Stage::Banner, Stage::Greeting]);
    // The reply to EHLO itself: the last reply received may be one
    // sent behind it, which the next read refuses (RFC 5321 4.2).
    let caps = Capabilities::parse(&transcript.ehlo_reply());
    let mut session = Session {
        settings,
        handshaker,
        conn,
        wire,
        transcript: transcript.clone(),
        endpoint: endpoint.clone(),
        client_id,
        caps,
        tls,
        tls_explicit,
        verify,
        report,
        authenticated: false,
        untrusted,
        dsn_dropped: AtomicBool::new(false),
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
    let over_tls = session.wire.is_tls();
    session.report.capabilities.push(EhloReply {
        label: label.to_string(),
        over_tls,
        capabilities: session.caps.clone(),
    });
    let outcome = session.stages(envelope, message, more.first(), clock).await;
    let outcome = match outcome {
        Ok(ahead) if !more.is_empty() && session.untrusted.is_none() => {
            session.report.more = session.more(more, ahead).await;
            Ok(())
        }
        other => other.map(|_| ()),
    };
    // A failing QUIT must not turn success into an error: a retry would
    // send the message twice.
    let _ = tokio::time::timeout(settings.timeouts.reply, session.conn.quit()).await;
    outcome.map(|()| SessionReport {
        failure: session.untrusted,
        ..session.report
    })
}

struct Session<'a> {
    settings: &'a SessionSettings,
    handshaker: Handshaker<'a>,
    conn: AsyncSmtpConnection,
    wire: Wire,
    transcript: Arc<Transcript>,
    endpoint: Endpoint,
    client_id: ClientId,
    caps: Capabilities,
    tls: TlsMode,
    tls_explicit: bool,
    verify: Verify,
    report: SessionReport,
    /// AUTH succeeded in this session.
    authenticated: bool,
    /// With --capabilities, a certificate that did not verify: the session
    /// goes as far as the EHLO over TLS, to be reported, and ends with it.
    untrusted: Option<Error>,
    /// -v was told that this server drops the DSN requests: once is enough.
    dsn_dropped: AtomicBool,
}

impl Session<'_> {
    fn settings(&self) -> &SessionSettings {
        self.settings
    }

    /// What the table of replies needs to know at `stage`.
    fn context(&self, stage: Stage) -> ReplyContext {
        ReplyContext {
            stage,
            auth_offered: !self.caps.auth.is_empty(),
            authenticated: self.authenticated,
            mx: self.settings.mx,
            encrypted: self.wire.is_tls(),
            starttls_offered: self.caps.starttls,
        }
    }

    fn smtp_error(&self, stage: Stage, err: SmtpError) -> Error {
        smtp_error(&self.endpoint, &self.context(stage), err)
    }

    /// Says so and records it when --quit-after stops after `stage`.
    fn stop_after(&mut self, stage: Stage) -> bool {
        let Some(stop) = quits_after(self.settings(), stage) else {
            return false;
        };
        let name = stop.name();
        self.transcript
            .note(&format!("stopping after {name} (--quit-after {name})"));
        self.report.stopped_after = Some(name);
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
        if self.stop_after(Stage::Greeting) {
            return Ok(Ahead::Nothing);
        }
        if self.secure().await? {
            clock.mark(&[Stage::StartTls]);
        }
        if self.stop_after(Stage::StartTls) || self.untrusted.is_some() {
            return Ok(Ahead::Nothing);
        }
        if self.authenticate().await? {
            clock.mark(&[Stage::Auth]);
        }
        if self.stop_after(Stage::Auth) {
            return Ok(Ahead::Nothing);
        }
        let refused = if self.settings().quit_after.is_none() {
            let refused = self
                .mail_and_recipients(envelope, message, Ahead::Nothing)
                .await?;
            clock.mark(&[Stage::Mail, Stage::Rcpt]);
            refused
        } else {
            self.mail(envelope, message).await?;
            clock.mark(&[Stage::Mail]);
            if self.stop_after(Stage::Mail) {
                return Ok(Ahead::Nothing);
            }
            let refused = self.recipients(envelope, message).await?;
            clock.mark(&[Stage::Rcpt]);
            refused
        };
        if self.stop_after(Stage::Rcpt) {
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
        clock.mark(&[Stage::Data]);
        self.report.delivery = Some(Delivery {
            reply: Some(reply),
            refused,
        });
        let _ = self.stop_after(Stage::Data);
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
                for _ in index + 1..messages.len() {
                    results.push(Err(session_broken(&self.endpoint, timed_out)));
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
            .map_err(|err| self.smtp_error(stage, err))
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
        let line = command.to_string();
        let mut wire = self.wire.clone();
        let send = async {
            wire.write_all(line.as_bytes()).await?;
            wire.flush().await
        };
        if let Err(err) = timed(limit, stage, &self.endpoint, send).await? {
            return self.reply_left_after(stage, &err).await;
        }
        timed(limit, stage, &self.endpoint, self.conn.read_response()).await
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
            TlsMode::Starttls if !offered => return Err(self.no_starttls()),
            _ => {}
        }
        self.command(Starttls, Stage::StartTls).await?;
        if !self.transcript.nothing_pending() {
            return Err(starttls_injection(&self.endpoint));
        }
        let secured = self
            .handshaker
            .handshake(
                &self.wire,
                &self.endpoint,
                self.verify,
                &self.transcript,
                Upgrade::Starttls,
            )
            .await?;
        self.report.certificate = Some(secured.certificate);
        self.report.tls = Some(secured.tls);
        self.untrusted = secured.untrusted;
        self.command(Ehlo::new(self.client_id.clone()), Stage::StartTls)
            .await?;
        self.caps = Capabilities::parse(&self.transcript.ehlo_reply());
        self.report.capabilities.push(EhloReply {
            label: "after STARTTLS".to_string(),
            over_tls: true,
            capabilities: self.caps.clone(),
        });
        Ok(true)
    }

    /// STARTTLS is required but not offered. When that was only the
    /// default (a server not on this machine, on a port other than 465),
    /// the user chose nothing to blame.
    fn no_starttls(&self) -> Error {
        let at = Stage::StartTls.name();
        let endpoint = &self.endpoint;
        let (message, hint) = if self.tls_explicit {
            (
                format!("{at}: {endpoint} does not offer STARTTLS, which --tls starttls (or the account's `tls`) requires"),
                "use --tls implicit (an smtps:// URL) if the server listens for TLS, or --tls none only on a network you trust",
            )
        } else {
            (
                format!("{at}: {endpoint} does not offer STARTTLS, and postie uses TLS with every server not on this machine"),
                "if the server speaks implicit TLS, use an smtps:// URL (port 465); --tls none sends in clear text, only on a network you trust",
            )
        };
        Error::new(Exit::Unavailable, message).hint(hint)
    }

    /// AUTH when the session was given a login; true when it was done.
    async fn authenticate(&mut self) -> Result<bool> {
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
                    "AUTH: refusing to send the password for {:?} to {} over an unencrypted connection",
                    login.user, self.endpoint
                ),
            )
            .hint("use --tls starttls or implicit; --allow-plaintext-auth overrides this"));
        }
        let encrypted = self.wire.is_tls();
        let wanted = candidates(login.method, login.bearer, encrypted);
        let Some(mechanism) = wanted
            .iter()
            .copied()
            .find(|m| self.caps.offers_auth(m.name()))
        else {
            return Err(self.no_mechanism(wanted, login.bearer));
        };
        let why = if login.method == AuthMethod::Auto {
            let names: Vec<&str> = wanted.iter().map(|m| m.name()).collect();
            format!(
                "auto takes the first of {} the server offers",
                names.join(", ")
            )
        } else {
            "as --auth or the account's `auth` asks".to_string()
        };
        self.transcript
            .note(&format!("AUTH with {}: {why}", mechanism.name()));
        self.transcript.add_secret(&login.secret);
        self.transcript.set_secret(true);
        let result = self.sasl(mechanism, &login).await;
        self.transcript.set_secret(false);
        self.authenticated = result.is_ok();
        result.map(|()| true)
    }

    /// No mechanism `--auth` allows is offered.
    fn no_mechanism(&self, wanted: &[SaslMechanism], bearer: bool) -> Error {
        let offered = if self.caps.auth.is_empty() {
            "no AUTH mechanism".to_string()
        } else {
            self.caps.auth.join(", ")
        };
        let endpoint = &self.endpoint;
        if wanted.is_empty() {
            return Error::new(
                Exit::Unavailable,
                format!("AUTH: refusing to send the OAuth2 access token to {endpoint} over an unencrypted connection"),
            )
            .hint("use --tls starttls or implicit; --auth oauthbearer or xoauth2 sends it anyway");
        }
        let wanted: Vec<&str> = wanted.iter().map(|m| m.name()).collect();
        let hint = if !self.wire.is_tls() && !bearer {
            "without TLS --auth auto uses only SCRAM or CRAM-MD5, which keep the password off the wire: use TLS, or name a mechanism with --auth"
        } else {
            "pick another --auth, or check that TLS is on (many servers offer AUTH only after STARTTLS)"
        };
        Error::new(
            Exit::Unavailable,
            format!(
                "AUTH: {endpoint} offers {offered}, not {}",
                wanted.join(" or ")
            ),
        )
        .hint(hint)
    }

    /// One SASL exchange; a refusal is the session's end (no fallback).
    async fn sasl(&mut self, mechanism: SaslMechanism, login: &Login) -> Result<()> {
        match mechanism {
            SaslMechanism::Plain => self.lettre_sasl(Mechanism::Plain, login).await,
            SaslMechanism::Login => self.lettre_sasl(Mechanism::Login, login).await,
            SaslMechanism::Xoauth2 => {
                let first = sasl::xoauth2(&login.user, &login.secret);
                self.bearer_sasl(mechanism, &first, "").await
            }
            SaslMechanism::Oauthbearer => {
                let first = sasl::oauthbearer(
                    &login.user,
                    &self.endpoint.host,
                    self.endpoint.port,
                    &login.secret,
                );
                self.bearer_sasl(mechanism, &first, sasl::OAUTHBEARER_DUMMY)
                    .await
            }
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha1 => {
                let hash = if mechanism == SaslMechanism::ScramSha256 {
                    ScramHash::Sha256
                } else {
                    ScramHash::Sha1
                };
                self.scram(hash, login).await
            }
            SaslMechanism::CramMd5 => self.cram_md5(login).await,
        }
    }

    /// PLAIN and LOGIN, which lettre computes: the first command, then an
    /// answer per 334.
    async fn lettre_sasl(&mut self, mechanism: Mechanism, login: &Login) -> Result<()> {
        let credentials = Credentials::new(login.user.clone(), login.secret.clone());
        let first = Auth::new(mechanism, credentials.clone(), None)
            .map_err(|err| Error::new(Exit::Software, format!("AUTH: {err}")))?;
        let mut reply = self.command(first, Stage::Auth).await?;
        for _ in 0..10 {
            if !reply.has_code(334) {
                break;
            }
            let next = Auth::new_from_response(mechanism, credentials.clone(), &reply)
                .map_err(|err| unexpected_challenge(&self.endpoint, &err))?;
            reply = self.command(next, Stage::Auth).await?;
        }
        self.auth_done(&reply)
    }

    /// The end of an exchange: 235, or the refusal.
    fn auth_done(&self, reply: &Response) -> Result<()> {
        if reply.code().to_string().starts_with('2') {
            Ok(())
        } else {
            Err(auth_refused(
                &self.endpoint,
                &self.context(Stage::Auth),
                reply,
            ))
        }
    }

    /// One line of a SASL exchange, base64-encoded, and the reply.
    async fn sasl_line(&mut self, text: &str) -> Result<Response> {
        let line = format!("{}\r\n", STANDARD.encode(text));
        self.command(line, Stage::Auth).await
    }

    /// The decoded text of a 334 challenge (RFC 4954 4: base64, maybe
    /// empty).
    fn challenge(&self, reply: &Response) -> Result<Vec<u8>> {
        let word = reply.first_word().unwrap_or("");
        STANDARD
            .decode(word)
            .map_err(|_| unexpected_challenge(&self.endpoint, &"it is not base64"))
    }

    /// Cancels an exchange postie will not finish (RFC 4954 4: "*"); the
    /// server's answer (501) is of no interest.
    async fn cancel_sasl(&mut self) {
        let _ = self.exchange("*\r\n", Stage::Auth).await;
    }

    fn sasl_failed(&self, err: SaslError) -> Error {
        let endpoint = &self.endpoint;
        let at = Stage::Auth.name();
        match err {
            SaslError::Protocol(why) => {
                Error::new(Exit::Protocol, format!("{at}: {endpoint}: {why}"))
                    .hint("nothing was sent; the server's SASL setup is broken or hostile")
            }
            SaslError::Unproven(why) => Error::new(
                Exit::NoPerm,
                format!("{at}: {endpoint}: {why}; nothing was sent"),
            )
            .hint("the server is not the one that holds your password, or its SCRAM setup is broken; --auth plain trusts TLS alone"),
            SaslError::Refused(why) => {
                Error::new(Exit::NoPerm, format!("{at}: {endpoint}: {why}")).hint(SCRAM_REFUSED)
            }
            SaslError::Credentials(why) => Error::new(Exit::Config, format!("{at}: {why}"))
                .hint("use --auth plain (over TLS)"),
        }
    }

    /// SCRAM (RFC 5802): client-first, client-final, and the server's
    /// proof checked before anything else is sent.
    async fn scram(&mut self, hash: ScramHash, login: &Login) -> Result<()> {
        let mechanism = match hash {
            ScramHash::Sha256 => SaslMechanism::ScramSha256,
            ScramHash::Sha1 => SaslMechanism::ScramSha1,
        };
        let mut scram =
            Scram::new(hash, &login.user, &login.secret).map_err(|err| self.sasl_failed(err))?;
        let first = STANDARD.encode(scram.client_first());
        let reply = self
            .command(
                format!("AUTH {} {first}\r\n", mechanism.name()),
                Stage::Auth,
            )
            .await
            .map_err(scram_refused)?;
        if !reply.has_code(334) {
            // A 235 to the client-first message proves nothing either: an
            // impostor that knows no password would get the mail.
            if reply.code().to_string().starts_with('2') {
                return Err(self.sasl_failed(SaslError::Unproven(
                    "the server accepted the login before any SCRAM proof, without its signature (v=)"
                        .to_string(),
                )));
            }
            return self.auth_done(&reply).map_err(scram_refused);
        }
        let server_first = self.challenge(&reply)?;
        let server_first = String::from_utf8_lossy(&server_first).into_owned();
        let last = match scram.client_final(&server_first) {
            Ok(last) => last,
            Err(err) => {
                self.cancel_sasl().await;
                return Err(self.sasl_failed(err));
            }
        };
        // The proof is as good as the password for a replay of this
        // exchange; a server echoing it back must not show it.
        self.transcript.add_secret(&last.proof);
        let reply = self.sasl_line(&last.message).await.map_err(scram_refused)?;
        if !reply.has_code(334) {
            // RFC 5802 3: the server proves it knows the password in its
            // final message; a 235 without one proves nothing.
            if reply.code().to_string().starts_with('2') {
                return Err(self.sasl_failed(SaslError::Unproven(
                    "the server accepted the login without its SCRAM signature (v=)".to_string(),
                )));
            }
            return self.auth_done(&reply).map_err(scram_refused);
        }
        let server_final = self.challenge(&reply)?;
        if let Err(err) = scram.verify(&String::from_utf8_lossy(&server_final)) {
            self.cancel_sasl().await;
            return Err(self.sasl_failed(err));
        }
        let reply = self
            .command("\r\n", Stage::Auth)
            .await
            .map_err(scram_refused)?;
        self.auth_done(&reply).map_err(scram_refused)
    }

    /// CRAM-MD5 (RFC 2195): the HMAC-MD5 of the server's challenge.
    async fn cram_md5(&mut self, login: &Login) -> Result<()> {
        let reply = self.command("AUTH CRAM-MD5\r\n", Stage::Auth).await?;
        if !reply.has_code(334) {
            return self.auth_done(&reply);
        }
        let challenge = self.challenge(&reply)?;
        let response = sasl::cram_md5(&login.user, &login.secret, &challenge)
            .map_err(|err| self.sasl_failed(err))?;
        if let Some((_, digest)) = response.rsplit_once(' ') {
            self.transcript.add_secret(digest);
        }
        let reply = self.sasl_line(&response).await?;
        self.auth_done(&reply)
    }

    /// XOAUTH2 and OAUTHBEARER: one initial response. A 334 after it is
    /// the server's error (base64 JSON, RFC 7628 3.2.2): it is shown, and
    /// `dummy` sent so that the server ends with its final reply.
    async fn bearer_sasl(
        &mut self,
        mechanism: SaslMechanism,
        first: &str,
        dummy: &str,
    ) -> Result<()> {
        let line = format!("AUTH {} {}\r\n", mechanism.name(), STANDARD.encode(first));
        let reply = self.command(line, Stage::Auth).await?;
        if !reply.has_code(334) {
            return self.auth_done(&reply);
        }
        let decoded = STANDARD
            .decode(reply.first_word().unwrap_or(""))
            .unwrap_or_default();
        let said =
            sasl::bearer_error(&decoded).map_or_else(String::new, |status| format!(" ({status})"));
        // Its final reply (535) is read, and is no more than this.
        let _ = self.exchange(format!("{dummy}\r\n"), Stage::Auth).await?;
        Err(Error::new(
            Exit::NoPerm,
            format!(
                "{}: {} refused the OAuth2 access token{said}",
                Stage::Auth.name(),
                self.endpoint
            ),
        )
        .hint("the token has expired or was revoked: refresh it, or run `postie oauth2 login`"))
    }

    /// MAIL FROM, with SIZE, SMTPUTF8 and BODY=8BITMIME as needed, and
    /// RET and ENVID when a DSN was asked for.
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
                        "{}: the message is {} but {endpoint} takes at most {} (SIZE {limit})",
                        Stage::Mail.name(),
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
        // RFC 6531 3.4: a non-ASCII local part in the envelope, or raw
        // UTF-8 in the header (RFC 6532), is only for a server that offers
        // SMTPUTF8. Non-ASCII domains are A-labels by now.
        let needs = if envelope.needs_smtputf8() {
            Some("the non-ASCII addresses in the envelope need")
        } else if message.needs_smtputf8() {
            Some("the UTF-8 in this message's header (a non-ASCII address) needs")
        } else {
            None
        };
        if let Some(needs) = needs {
            if !self.caps.smtputf8 {
                return Err(Error::new(
                    Exit::Unavailable,
                    format!(
                        "{}: {endpoint} does not support SMTPUTF8, which {needs}",
                        Stage::Mail.name()
                    ),
                )
                .hint("use ASCII addresses or another server"));
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !message.is_ascii() {
            if !self.caps.eight_bit_mime {
                return Err(Error::new(
                    Exit::Unavailable,
                    format!("{}: {endpoint} does not support 8BITMIME, which this message's 8-bit content needs", Stage::Mail.name()),
                )
                .hint("send it through a server that offers 8BITMIME"));
            }
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        parameters.extend(
            self.dsn(envelope)?
                .mail_parameters()
                .into_iter()
                .map(|keyword| MailParameter::Other {
                    keyword,
                    value: None,
                }),
        );
        let sender = if envelope.sender.is_empty() {
            None
        } else {
            Some(envelope_address(&envelope.sender)?)
        };
        Ok(Mail::new(sender, parameters))
    }

    /// RCPT TO, with NOTIFY and ORCPT when a DSN was asked for.
    fn rcpt_command(
        &self,
        envelope: &Envelope,
        message: &Content,
        recipient: &str,
    ) -> Result<Rcpt> {
        // SMTPUTF8 is on this transaction exactly when something needs it
        // (mail_command refuses a server without it).
        let smtputf8 = envelope.needs_smtputf8() || message.needs_smtputf8();
        let parameters = self
            .dsn(envelope)?
            .rcpt_parameters(recipient, smtputf8)
            .into_iter()
            .map(|keyword| RcptParameter::Other {
                keyword,
                value: None,
            })
            .collect();
        Ok(Rcpt::new(envelope_address(recipient)?, parameters))
    }

    /// The DSN request to send: the envelope's when the server offers DSN
    /// (RFC 3461). Otherwise none, said once under -v; or, with
    /// dsn_required, the message's failure, as for SMTPUTF8 (a server that
    /// cannot do what was asked; another server might).
    fn dsn<'e>(&self, envelope: &'e Envelope) -> Result<std::borrow::Cow<'e, Dsn>> {
        if self.caps.dsn || envelope.dsn.is_empty() {
            return Ok(std::borrow::Cow::Borrowed(&envelope.dsn));
        }
        if self.settings().dsn_required {
            return Err(Error::new(
                Exit::Unavailable,
                format!(
                    "{}: {} does not support DSN, which the delivery status notification request (--notify, --ret, --envid) needs with dsn_required",
                    Stage::Mail.name(),
                    self.endpoint
                ),
            )
            .hint("drop the request (--notify, --ret, --envid; sendmail's -N, -R, -V), set dsn_required = false, or use another server"));
        }
        if !self.dsn_dropped.swap(true, Ordering::Relaxed) {
            self.transcript.note(&format!(
                "warning: {} does not offer DSN: the delivery status notification request (--notify, --ret, --envid) is not passed on",
                self.endpoint
            ));
        }
        Ok(std::borrow::Cow::Owned(Dsn::default()))
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
            batch.push_str(&self.rcpt_command(envelope, message, recipient)?.to_string());
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
            if let Err(err) = timed(limit, Stage::MailAndRcpt, &self.endpoint, send).await? {
                let reply = self.reply_left_after(Stage::Mail, &err).await?;
                return Err(reply.map_or_else(
                    |err| self.smtp_error(Stage::Mail, err),
                    |_| write_error(&self.endpoint, Stage::Mail, &err),
                ));
            }
        }
        let limit = self.settings().timeouts.reply;
        let mail_reply = timed(
            limit,
            Stage::Mail,
            &self.endpoint,
            self.conn.read_response(),
        )
        .await?;
        let mail_failure = match mail_reply {
            Ok(_) => None,
            // RFC 5321 3.8: a 421 is followed by the close; the RCPT
            // replies will never come, so waiting for them is pointless.
            Err(err) if is_closing(&err) => {
                return Err(self.closed_by_server(self.smtp_error(Stage::Mail, err)))
            }
            Err(err) => Some(self.smtp_error(Stage::Mail, err)),
        };
        let mut refused = Vec::new();
        for recipient in &envelope.recipients {
            let reply = timed(
                limit,
                Stage::Rcpt,
                &self.endpoint,
                self.conn.read_response(),
            )
            .await?;
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
        self.recipients(envelope, message).await
    }

    /// Every RCPT, even after a refusal, so that all refusals are listed.
    async fn recipients(&mut self, envelope: &Envelope, message: &Content) -> Result<Vec<Refusal>> {
        let mut refused = Vec::new();
        for recipient in &envelope.recipients {
            let rcpt = self.rcpt_command(envelope, message, recipient)?;
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
                Err(self.closed_by_server(self.smtp_error(Stage::Rcpt, err)))
            }
            Err(err) if err.status().is_some() => {
                refused.push(Refusal {
                    recipient: recipient.to_string(),
                    reply: server_reply(&err),
                    temporary: err.is_transient(),
                });
                Ok(())
            }
            Err(err) => Err(self.smtp_error(Stage::Rcpt, err)),
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
            return Err(refusal_error(
                &self.endpoint,
                &self.context(Stage::Rcpt),
                &refused,
                all_refused,
            ));
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
        let progress = self.settings().progress.as_ref();
        let send = write_message(wire, message, trailer.as_bytes(), progress);
        let written = match timed(limit, Stage::Message, &self.endpoint, send).await {
            Ok(written) => written,
            Err(err) => return (Err(err), Ahead::Nothing),
        };
        match written {
            Ok(()) => {}
            Err(MessageWriteError::Source(err)) => {
                return (Err(attachment_unreadable(&err)), Ahead::Nothing);
            }
            Err(MessageWriteError::Wire(err)) => {
                let err = match self.reply_left_after(Stage::Message, &err).await {
                    Ok(Err(reply)) => self.smtp_error(Stage::Message, reply),
                    Ok(Ok(_)) => write_error(&self.endpoint, Stage::Message, &err),
                    Err(err) => err,
                };
                return (Err(err), Ahead::Nothing);
            }
        }
        let reply = timed(
            limit,
            Stage::Message,
            &self.endpoint,
            self.conn.read_response(),
        )
        .await
        .and_then(|reply| reply.map_err(|err| self.smtp_error(Stage::Message, err)));
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

/// The --quit-after value, when it stops the session after `stage`.
fn quits_after(settings: &SessionSettings, stage: Stage) -> Option<QuitAfter> {
    settings
        .quit_after
        .filter(|&stop| Stage::from(stop) == stage)
}

/// A SCRAM login the server refused. A server that advertises SCRAM may
/// keep only hashes SCRAM cannot use: its refusal is no proof that the
/// password is wrong, and postie does not try another mechanism itself.
fn scram_refused(err: Error) -> Error {
    match err.exit {
        Exit::NoPerm => err.hint(SCRAM_REFUSED),
        _ => err,
    }
}

const SCRAM_REFUSED: &str = "wrong user name or password; or the server offers SCRAM but cannot check it for this account (it keeps only hashes of another kind): --auth plain is the way out";

/// How long to look for a reply the server sent before hanging up.
const REPLY_LEFT_WAIT: Duration = Duration::from_secs(2);

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
}
