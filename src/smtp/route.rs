//! Where a message goes: submission servers in order (failover on a
//! temporary failure), or each recipient domain's mail exchangers (RFC
//! 5321 5.1); batches of messages over one session; the I/O runtime.
//!
//! Belongs here: choosing targets and calling `session::run` for each,
//! with what that session is given (its settings, transcript and clock);
//! merging what the sessions report. Not here: the dialogue with one
//! server (`session`), what a failure is called (`classify`), printing
//! (a failover warning is handed to the caller's `warn`).

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::StreamExt;

use crate::exit::{Cause, Error, Exit, Result};
use crate::mail::content::Content;
use crate::smtp::classify::{lookup_error, timed};
use crate::smtp::connect::Handshaker;
use crate::smtp::mx::{self, Nameserver};
use crate::smtp::outgoing::Outgoing;
use crate::smtp::report::SessionReport;
use crate::smtp::session::{self, Target};
use crate::smtp::settings::{Route, Server, SessionSettings, Settings};
use crate::smtp::stage::Stage;
use crate::smtp::timing::Clock;
use crate::smtp::tls::{TlsMaterial, Verify};
use crate::smtp::transcript::Transcript;
use crate::types::{Endpoint, Envelope, TlsMode};

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
///
/// `warn` is given, as it happens, the warning line for a server given up
/// for the next one: the caller prints it, and at that moment, so that
/// with -v it stands between the two servers' transcripts.
pub(crate) fn submit_all(
    settings: &Settings,
    messages: &[Outgoing],
    warn: &dyn Fn(&str),
) -> Vec<Result<Vec<SessionReport>>> {
    // Once per run, whatever the number of messages, domains and
    // sessions: the TLS contexts are built at the first handshake that
    // needs each, and kept.
    let setup = TlsMaterial::shared(&settings.tls_files).and_then(|m| Ok((m, runtime()?)));
    let (material, runtime) = match setup {
        Ok(setup) => setup,
        Err(err) => return messages.iter().map(|_| Err(err.clone())).collect(),
    };
    let context = Context::new(settings, &material, warn);
    let Route::Servers(servers) = &settings.route else {
        // Each domain has exchangers of its own: one message at a time.
        return messages
            .iter()
            .map(|m| runtime.block_on(context.deliver(&m.envelope, &m.content)))
            .collect();
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
                // The later messages went over the same session, so over
                // the same TLS: their reports say so too.
                let (capabilities, certificate, tls) = reports
                    .first()
                    .map(|r| (r.capabilities.clone(), r.certificate.clone(), r.tls.clone()))
                    .unwrap_or_default();
                results.push(Ok(reports));
                results.extend(more.into_iter().zip(rest).map(|(r, message)| {
                    r.map(|delivery| {
                        vec![SessionReport {
                            server: server.clone(),
                            capabilities: capabilities.clone(),
                            certificate: certificate.clone(),
                            tls: tls.clone(),
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

/// Where a domain's exchangers listen, and how to secure the connection.
#[derive(Clone, Copy)]
struct MxRoute {
    port: u16,
    tls: TlsMode,
}

/// The transcripts of one domain's sessions (one per exchanger tried):
/// printed live, or held while other domains run beside it, to be printed
/// whole when its turn comes.
struct Transcripts {
    hold: bool,
    kept: Vec<Arc<Transcript>>,
}

impl Transcripts {
    /// The transcript of the domain's next session.
    fn new_session(&mut self, settings: &Settings) -> Arc<Transcript> {
        if !self.hold {
            return Arc::new(Transcript::new(settings.verbosity, settings.timing));
        }
        let transcript = Arc::new(Transcript::held(settings.verbosity, settings.timing));
        self.kept.push(Arc::clone(&transcript));
        transcript
    }

    /// Prints what was held, session by session.
    fn emit(&self) {
        for transcript in &self.kept {
            transcript.emit();
        }
    }
}

struct Context<'a> {
    settings: &'a Settings,
    /// What each session is given, the same for every one of a run.
    session: SessionSettings,
    material: &'a TlsMaterial,
    warn: &'a dyn Fn(&str),
}

impl<'a> Context<'a> {
    fn new(
        settings: &'a Settings,
        material: &'a TlsMaterial,
        warn: &'a dyn Fn(&str),
    ) -> Context<'a> {
        Context {
            settings,
            session: session_settings(settings),
            material,
            warn,
        }
    }
}

/// Opportunistic TLS to a relay on loopback (a local Postfix, stunnel),
/// which typically has a self-signed certificate: encrypted, not verified,
/// as msmtp, swaks and curl do; the traffic never leaves this machine.
/// `--tls starttls` (or a pin, or --insecure) keeps its own rule.
fn loopback_verify(tls: TlsMode, verify: Verify, addresses: &[SocketAddr]) -> Verify {
    let local = !addresses.is_empty() && addresses.iter().all(|a| a.ip().is_loopback());
    match (tls, verify) {
        (TlsMode::Opportunistic, Verify::Full) if local => Verify::Loopback,
        (_, verify) => verify,
    }
}

/// The part of the settings a session is given. A mail exchanger is
/// whoever the recipient's domain names, so it is never given the login
/// (plan gives an MX route none; this keeps it so should that change).
fn session_settings(settings: &Settings) -> SessionSettings {
    let login = match settings.route {
        Route::Servers(_) => settings.login.clone(),
        Route::Mx { .. } => None,
    };
    SessionSettings {
        helo: settings.helo.clone(),
        timeouts: settings.timeouts,
        login,
        allow_plaintext_auth: settings.allow_plaintext_auth,
        partial: settings.partial,
        quit_after: settings.quit_after,
        verbosity: settings.verbosity,
        mx: matches!(settings.route, Route::Mx { .. }),
        progress: settings.progress.clone(),
        probe: settings.probe,
        dsn_required: settings.dsn_required,
    }
}

impl Context<'_> {
    fn handshaker(&self) -> Handshaker<'_> {
        Handshaker {
            settings: &self.session,
            material: self.material,
        }
    }

    /// One session with `target`, with a clock of its own and
    /// `transcript`, which is that session's alone.
    async fn session(
        &self,
        target: &Target<'_>,
        transcript: Arc<Transcript>,
        envelope: &Envelope,
        message: &Content,
        more: &[Outgoing],
    ) -> Result<SessionReport> {
        let clock = Clock::new(self.settings.timing);
        let handshaker = self.handshaker();
        session::run(
            handshaker, target, transcript, clock, envelope, message, more,
        )
        .await
    }

    /// A new session's transcript, printed live.
    fn live_transcript(&self) -> Arc<Transcript> {
        Arc::new(Transcript::new(
            self.settings.verbosity,
            self.settings.timing,
        ))
    }

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
                concurrency,
            } => {
                let mx = MxRoute {
                    port: *port,
                    tls: *tls,
                };
                self.deliver_mx(mx, nameserver, *concurrency, envelope, message)
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
                    tls_explicit: server.tls_explicit,
                    addresses: &addresses,
                    verify: loopback_verify(server.tls, self.settings.verify, &addresses),
                };
                self.session(&target, self.live_transcript(), envelope, message, more)
                    .await
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
                    (self.warn)(&format!(
                        "{}; trying {} next",
                        err.message,
                        servers[index + 1].endpoint
                    ));
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
    /// Up to `concurrency` domains at once; the reports come back in the
    /// domains' order all the same.
    async fn deliver_mx(
        &self,
        mx: MxRoute,
        nameserver: &Nameserver,
        concurrency: usize,
        envelope: &Envelope,
        message: &Content,
    ) -> Result<Vec<SessionReport>> {
        let resolver = mx::Resolver::new(nameserver, self.settings.timeouts.connect)?;
        let domains = mx::by_domain(&envelope.recipients);
        let at_once = concurrency.clamp(1, domains.len().max(1));
        // Several domains at once: each domain's transcripts are held and
        // printed whole as its result is taken, so that -v reads domain by
        // domain, in the recipients' order, as one after another did. And
        // no progress bar: it shows one upload (its total, then how much
        // is sent), and two uploads at once would tear it between them.
        let concurrent;
        let context = if at_once > 1 {
            concurrent = Context {
                settings: self.settings,
                session: SessionSettings {
                    progress: None,
                    ..self.session.clone()
                },
                material: self.material,
                warn: self.warn,
            };
            &concurrent
        } else {
            self
        };
        let hold = at_once > 1;
        let resolver = &resolver;
        let attempts = domains.into_iter().map(|(domain, recipients)| async move {
            let part = Envelope {
                sender: envelope.sender.clone(),
                dsn: envelope.dsn.only_for(&recipients),
                recipients,
            };
            let mut transcripts = Transcripts {
                hold,
                kept: Vec::new(),
            };
            let report = match context
                .deliver_domain(resolver, &domain, mx, &part, message, &mut transcripts)
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
            let report = SessionReport {
                recipients: part.recipients,
                ..report
            };
            (report, transcripts)
        });
        // `buffered` runs up to `at_once` domains and yields their results
        // in the order of the domains, whichever finishes first: the
        // reports, and so the exit code, the log and the queue, are those
        // of one domain after another.
        let mut results = futures_util::stream::iter(attempts).buffered(at_once);
        let mut reports = Vec::new();
        while let Some((report, transcripts)) = results.next().await {
            transcripts.emit();
            reports.push(report);
        }
        Ok(reports)
    }

    async fn deliver_domain(
        &self,
        resolver: &mx::Resolver,
        domain: &str,
        mx: MxRoute,
        envelope: &Envelope,
        message: &Content,
        transcripts: &mut Transcripts,
    ) -> Result<SessionReport> {
        let MxRoute { port, tls } = mx;
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
                // Only opportunistic TLS is the default for an exchanger.
                tls_explicit: tls != TlsMode::Opportunistic,
                addresses: &addresses,
                verify,
            };
            let transcript = transcripts.new_session(self.settings);
            match self
                .session(&target, transcript, envelope, message, &[])
                .await
            {
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
            Stage::Lookup,
            endpoint,
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
}
