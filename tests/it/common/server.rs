//! The SMTP test server: mailin with a recording handler.
//!
//! [`TestServer`] is `mailin-embedded` (blocking, thread pool) with a recording
//! [`Handler`]. mailin-embedded has no way to stop a server, so server threads
//! live until the test process exits; each test gets its own ports.
//!
//! * `Tls::None`: mailin listens directly on the public port.
//! * `Tls::StartTls`: mailin (with STARTTLS configured) listens on an internal
//!   port; a transparent byte relay sits on the public port. The relay only
//!   exists so the harness can tell *which* sessions upgraded to TLS (a mailin
//!   `Handler` is never told): it watches mailin's plaintext output for the
//!   `220 Ready to start TLS` reply. Sessions are matched to handler instances
//!   by ordinal (see [`Recorder`]'s `Clone`).
//! * `Tls::Implicit`: mailin has no implicit TLS, so an openssl TLS terminator
//!   sits on the public port. mailin only offers AUTH once *it* has seen TLS
//!   (`SessionBuilder::insecure_enable_plaintext_auth` exists in mailin but is
//!   not reachable through mailin-embedded), so the terminator performs
//!   `EHLO` + `STARTTLS` towards mailin itself, upgrades the internal hop to
//!   TLS too, then forwards mailin's original greeting to the client and
//!   relays bytes both ways. Net effect: the client sees a normal implicit-TLS
//!   server whose first EHLO reply offers AUTH (when enabled) and no STARTTLS.

use std::collections::HashMap;
use std::io;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mailin_embedded::response::{AUTH_OK, INVALID_CREDENTIALS, OK};
use mailin_embedded::{AuthMechanism, Handler, Response, Server, SslConfig};
use openssl::hash::MessageDigest;

use super::net::bind_local;
use super::relay::{spawn_implicit_terminator, spawn_starttls_relay};
use super::tls::{generate_cert, implicit_acceptor, CertFiles, CertKind};
use super::usage::Usage;
use super::{lock, WAIT};

/// Username accepted by the test server's AUTH PLAIN and AUTH LOGIN.
pub const USER: &str = "alice";
/// Password accepted by the test server's AUTH PLAIN and AUTH LOGIN.
pub const PASSWORD: &str = "s3cret-Pa55";

/// TLS mode of a [`TestServer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // `Tls::StartTls` is the agreed API name
pub enum Tls {
    /// Plain SMTP; STARTTLS is not advertised.
    None,
    /// Plain SMTP that advertises and accepts STARTTLS.
    StartTls,
    /// TLS from the first byte (SMTPS / "submissions"); STARTTLS not advertised.
    Implicit,
}

/// Configuration of a [`TestServer`].
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub tls: Tls,
    /// Enable AUTH PLAIN and AUTH LOGIN (accepting [`USER`] / [`PASSWORD`]).
    ///
    /// mailin semantics: AUTH is only advertised/accepted once the session is
    /// TLS, and while auth is enabled MAIL is refused with
    /// `503 Bad sequence of commands` until AUTH succeeded. Requires
    /// `tls != Tls::None` (`TestServer::start` panics otherwise).
    pub auth: bool,
    /// `RCPT TO` any of these (ASCII case-insensitive) gets
    /// `550 5.1.1 no such user`.
    pub refuse_rcpt: Vec<String>,
    /// `RCPT TO` any of these (ASCII case-insensitive) gets
    /// `451 4.3.0 try later`.
    pub tempfail_rcpt: Vec<String>,
    /// Which certificate the server presents (with TLS).
    pub cert: CertKind,
    /// Implicit TLS only: the handshake fails unless the client presents the
    /// certificate in [`TestServer::client_cert`].
    pub require_client_cert: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            tls: Tls::None,
            auth: false,
            refuse_rcpt: Vec::new(),
            tempfail_rcpt: Vec::new(),
            cert: CertKind::Good,
            require_client_cert: false,
        }
    }
}

/// One message accepted by a [`TestServer`] (recorded when the final `.`
/// got its 250).
#[derive(Clone, Debug)]
pub struct Received {
    /// The EHLO/HELO domain of the session.
    pub helo: String,
    /// The reverse path without angle brackets.
    pub mail_from: String,
    /// Accepted recipients only (refused/tempfailed ones are not listed), in
    /// order, without angle brackets.
    pub rcpt_to: Vec<String>,
    /// Exact message bytes after dot-unstuffing, without the final `.\r\n`.
    pub data: Vec<u8>,
    /// Whether MAIL FROM carried `BODY=8BITMIME`.
    pub body_8bit: bool,
    /// The user that authenticated successfully in this session, if any.
    pub auth_user: Option<String>,
    /// Whether the session was TLS (STARTTLS completed, or implicit TLS) when
    /// the message was transferred.
    pub tls: bool,
    /// Which connection it came over: 0, 1, 2... in accept order.
    pub session: usize,
}

#[derive(Clone, Copy, Debug)]
enum TlsTracking {
    Never,
    Always,
    /// Look the session ordinal up in `Shared::session_tls`.
    PerSession,
}

#[derive(Default)]
pub(super) struct Shared {
    received: Mutex<Vec<Received>>,
    auth_attempts: Mutex<Vec<(String, bool)>>,
    /// Ordinal handed to the next handler clone (= next mailin connection).
    next_session: AtomicUsize,
    /// Session ordinal -> "mailin has replied 220 to STARTTLS".
    pub(super) session_tls: Mutex<HashMap<usize, Arc<AtomicBool>>>,
    /// For the drop check.
    pub(super) usage: Arc<Usage>,
}

struct Config {
    refuse_rcpt: Vec<String>,
    tempfail_rcpt: Vec<String>,
    tls: TlsTracking,
}

struct Envelope {
    helo: String,
    mail_from: String,
    rcpt_to: Vec<String>,
    body_8bit: bool,
}

/// The mailin handler. mailin-embedded clones the handler it was given
/// exactly once per accepted connection, in accept order, inside its accept
/// loop (mailin-embedded 0.8.3 `running::run`), and never uses the original
/// for a session. The manual `Clone` uses that to number sessions 0, 1, 2...
/// which the STARTTLS relay mirrors to report per-session TLS state.
struct Recorder {
    shared: Arc<Shared>,
    config: Arc<Config>,
    session: usize,
    auth_user: Option<String>,
    envelope: Option<Envelope>,
    data: Vec<u8>,
}

impl Clone for Recorder {
    fn clone(&self) -> Self {
        // mailin clones the handler as it accepts a connection.
        self.shared.usage.connected();
        Recorder {
            shared: Arc::clone(&self.shared),
            config: Arc::clone(&self.config),
            session: self.shared.next_session.fetch_add(1, Ordering::SeqCst),
            auth_user: None,
            envelope: None,
            data: Vec::new(),
        }
    }
}

/// A handler that panicked fails the server's drop check.
impl Drop for Recorder {
    fn drop(&mut self) {
        self.shared.usage.note_unwinding();
    }
}

impl Recorder {
    fn check_credentials(&mut self, user: &str, password: &str) -> Response {
        let ok = user == USER && password == PASSWORD;
        lock(&self.shared.auth_attempts).push((user.to_string(), ok));
        if ok {
            self.auth_user = Some(user.to_string());
            AUTH_OK
        } else {
            INVALID_CREDENTIALS
        }
    }

    fn session_is_tls(&self) -> bool {
        match self.config.tls {
            TlsTracking::Never => false,
            TlsTracking::Always => true,
            TlsTracking::PerSession => lock(&self.shared.session_tls)
                .get(&self.session)
                .is_some_and(|flag| flag.load(Ordering::SeqCst)),
        }
    }
}

fn listed(list: &[String], addr: &str) -> bool {
    list.iter().any(|a| a.eq_ignore_ascii_case(addr))
}

impl Handler for Recorder {
    fn rcpt(&mut self, to: &str) -> Response {
        if listed(&self.config.refuse_rcpt, to) {
            Response::custom(550, "5.1.1 no such user".to_string())
        } else if listed(&self.config.tempfail_rcpt, to) {
            Response::custom(451, "4.3.0 try later".to_string())
        } else {
            OK
        }
    }

    fn data_start(&mut self, domain: &str, from: &str, is8bit: bool, to: &[String]) -> Response {
        self.envelope = Some(Envelope {
            helo: domain.to_string(),
            mail_from: from.to_string(),
            rcpt_to: to.to_vec(),
            body_8bit: is8bit,
        });
        self.data.clear();
        OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let data = std::mem::take(&mut self.data);
        if let Some(env) = self.envelope.take() {
            let rec = Received {
                helo: env.helo,
                mail_from: env.mail_from,
                rcpt_to: env.rcpt_to,
                data,
                body_8bit: env.body_8bit,
                auth_user: self.auth_user.clone(),
                tls: self.session_is_tls(),
                session: self.session,
            };
            lock(&self.shared.received).push(rec);
        }
        OK
    }

    fn auth_plain(
        &mut self,
        authorization_id: &str,
        authentication_id: &str,
        password: &str,
    ) -> Response {
        if !authorization_id.is_empty() && authorization_id != authentication_id {
            lock(&self.shared.auth_attempts).push((authentication_id.to_string(), false));
            return INVALID_CREDENTIALS;
        }
        self.check_credentials(authentication_id, password)
    }

    fn auth_login(&mut self, username: &str, password: &str) -> Response {
        self.check_credentials(username, password)
    }
}

/// An SMTP server (mailin) on 127.0.0.1 that records what it receives.
pub struct TestServer {
    pub port: u16,
    shared: Arc<Shared>,
    /// Holds cert.pem / key.pem; deleted when the server is dropped.
    cert: Option<CertFiles>,
    /// The client certificate the server requires, if it does.
    client: Option<CertFiles>,
}

impl TestServer {
    pub fn start(opts: ServerOptions) -> TestServer {
        assert!(
            !(opts.auth && opts.tls == Tls::None),
            "TestServer: auth=true needs Tls::StartTls or Tls::Implicit: mailin only offers \
             AUTH on TLS sessions (and with auth enabled it refuses MAIL before AUTH), so a \
             plain server with auth could never accept mail. Use ScriptedServer for \
             'server wants auth but offers none' scenarios."
        );

        assert!(
            !opts.require_client_cert || opts.tls == Tls::Implicit,
            "TestServer: require_client_cert needs Tls::Implicit (the terminator checks it)"
        );
        let client = opts
            .require_client_cert
            .then(|| generate_cert(CertKind::Client));
        let shared = Arc::new(Shared::default());
        let cert = match opts.tls {
            Tls::None => None,
            Tls::StartTls | Tls::Implicit => Some(generate_cert(opts.cert)),
        };
        let tracking = match opts.tls {
            Tls::None => TlsTracking::Never,
            Tls::StartTls => TlsTracking::PerSession,
            Tls::Implicit => TlsTracking::Always,
        };
        let handler = Recorder {
            shared: Arc::clone(&shared),
            config: Arc::new(Config {
                refuse_rcpt: opts.refuse_rcpt.clone(),
                tempfail_rcpt: opts.tempfail_rcpt.clone(),
                tls: tracking,
            }),
            session: usize::MAX, // the template is never used for a session
            auth_user: None,
            envelope: None,
            data: Vec::new(),
        };

        let public = bind_local();
        let port = public.local_addr().expect("local_addr").port();

        match opts.tls {
            Tls::None => start_mailin(handler, public, None, opts.auth, &shared.usage),
            Tls::StartTls => {
                let internal = bind_local();
                let internal_addr = internal.local_addr().expect("local_addr");
                start_mailin(handler, internal, cert.as_ref(), opts.auth, &shared.usage);
                spawn_starttls_relay(public, internal_addr, Arc::clone(&shared));
            }
            Tls::Implicit => {
                let internal = bind_local();
                let internal_addr = internal.local_addr().expect("local_addr");
                let certs = cert.as_ref().expect("certificate");
                start_mailin(handler, internal, Some(certs), opts.auth, &shared.usage);
                let acceptor = implicit_acceptor(certs, client.as_ref());
                spawn_implicit_terminator(public, internal_addr, acceptor, &shared.usage);
            }
        }

        TestServer {
            port,
            shared,
            cert,
            client,
        }
    }

    /// The client certificate and key (PEM, PKCS#8) the server requires.
    /// Panics unless started with `require_client_cert`.
    pub fn client_cert(&self) -> (PathBuf, PathBuf) {
        let client = self
            .client
            .as_ref()
            .expect("server requires no client certificate");
        (client.cert_path.clone(), client.key_path.clone())
    }

    /// "127.0.0.1:PORT"
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Says that postie is not meant to connect: the drop then checks
    /// that it did not, instead of that it did.
    pub fn expect_unused(&self) {
        self.shared.usage.expect_unused();
    }

    /// The SHA-256 fingerprint of the server's certificate, as hex.
    pub fn cert_sha256(&self) -> String {
        let cert = &self.cert.as_ref().expect("server has no TLS").cert;
        let digest = cert.digest(MessageDigest::sha256()).expect("digest");
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// PEM file of the server's self-signed certificate, usable as a trust
    /// root (`--ca-file`). Panics for `Tls::None`.
    pub fn ca_file(&self) -> PathBuf {
        match &self.cert {
            Some(c) => c.cert_path.clone(),
            None => panic!("TestServer::ca_file(): server was started with Tls::None"),
        }
    }

    /// Messages completed so far.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }

    /// Polls for up to 5 s until at least `n` messages were received; returns
    /// whatever has been received by then (check the length yourself).
    pub fn wait_for_messages(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every AUTH PLAIN / AUTH LOGIN attempt: (user, accepted), in order.
    pub fn auth_attempts(&self) -> Vec<(String, bool)> {
        lock(&self.shared.auth_attempts).clone()
    }
}

/// Fails the test if the server was never connected to (unless it was
/// told `expect_unused`) or if one of its threads panicked.
impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared
            .usage
            .check(&format!("TestServer on port {}", self.port));
    }
}

fn start_mailin(
    handler: Recorder,
    listener: TcpListener,
    cert: Option<&CertFiles>,
    auth: bool,
    usage: &Arc<Usage>,
) {
    let mut server = Server::new(handler);
    server
        .with_name("localhost")
        .with_num_threads(8)
        .with_tcp_listener(listener);
    if let Some(c) = cert {
        server
            .with_ssl(SslConfig::SelfSigned {
                cert_path: c.cert_path.to_string_lossy().into_owned(),
                key_path: c.key_path.to_string_lossy().into_owned(),
            })
            .expect("configure mailin TLS");
    }
    if auth {
        server
            .with_auth(AuthMechanism::Plain)
            .with_auth(AuthMechanism::Login);
    }
    usage
        .spawn("mailin", move || {
            let _ = server.serve();
        })
        .expect("spawn mailin thread");
}
