//! Shared integration-test harness for `postie`.
//!
//! Every integration test file does `mod common;`; not every file uses every
//! item, hence the crate-wide `dead_code` allowance below.
//!
//! Everything here talks to 127.0.0.1 on ephemeral ports only, generates its
//! throwaway TLS certificate at run time (never written anywhere but a
//! `TempDir`), and bounds every wait with a timeout.
//!
//! # How the SMTP test server is built
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
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mailin_embedded::response::{AUTH_OK, INVALID_CREDENTIALS, OK};
use mailin_embedded::{AuthMechanism, Handler, Response, Server, SslConfig};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslConnector, SslMethod, SslStream, SslVerifyMode};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{X509NameBuilder, X509};
use tempfile::TempDir;

/// Username accepted by the test server's AUTH PLAIN and AUTH LOGIN.
pub const USER: &str = "alice";
/// Password accepted by the test server's AUTH PLAIN and AUTH LOGIN.
pub const PASSWORD: &str = "s3cret-Pa55";

/// How long `wait_for_messages` (and `ScriptedServer::lines`) poll.
const WAIT: Duration = Duration::from_secs(5);
/// Bound on every blocking socket operation inside the harness.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Poll interval of the single-threaded TLS<->TLS pump.
const PUMP_POLL: Duration = Duration::from_millis(5);
/// mailin's reply to STARTTLS (mailin::response::START_TLS, crate-private).
const MAILIN_STARTTLS_REPLY: &[u8] = b"220 Ready to start TLS\r\n";

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

/// The server certificate's flaw, for the certificate-check tests. All are
/// self-signed; `ca_file()` makes a good one trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertKind {
    /// localhost / 127.0.0.1, valid from yesterday for 30 days.
    Good,
    /// Valid names, but expired yesterday.
    Expired,
    /// Valid dates, but only for wrong.example.
    WrongName,
    /// Valid, but expires in 5 days (the report warns under 14).
    ExpiresSoon,
    /// A client's certificate (CN=postie client, for clientAuth, no SAN).
    Client,
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

// ---------------------------------------------------------------------------
// Shared recording state
// ---------------------------------------------------------------------------

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not turn every later assertion into a
    // PoisonError.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone, Copy, Debug)]
enum TlsTracking {
    Never,
    Always,
    /// Look the session ordinal up in `Shared::session_tls`.
    PerSession,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    auth_attempts: Mutex<Vec<(String, bool)>>,
    /// Ordinal handed to the next handler clone (= next mailin connection).
    next_session: AtomicUsize,
    /// Session ordinal -> "mailin has replied 220 to STARTTLS".
    session_tls: Mutex<HashMap<usize, Arc<AtomicBool>>>,
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

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

struct CertFiles {
    dir: TempDir,
    cert_path: PathBuf,
    key_path: PathBuf,
    cert: X509,
    key: PKey<Private>,
}

/// Self-signed EC P-256 certificate, CA:FALSE. By default CN=localhost,
/// SAN DNS:localhost and IP:127.0.0.1, valid from now-1day to now+30days;
/// `kind` changes the names (WrongName, Client) or the dates (Expired,
/// ExpiresSoon), see [`CertKind`].
fn generate_cert(kind: CertKind) -> CertFiles {
    let build = || -> Result<(X509, PKey<Private>), openssl::error::ErrorStack> {
        let host = match kind {
            CertKind::WrongName => "wrong.example",
            CertKind::Client => "postie client",
            _ => "localhost",
        };
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let key = PKey::from_ec_key(EcKey::generate(&group)?)?;

        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::COMMONNAME, host)?;
        let name = name.build();

        let mut b = X509::builder()?;
        b.set_version(2)?;
        let mut serial = BigNum::new()?;
        serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
        let serial = serial.to_asn1_integer()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&key)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (not_before, not_after) = match kind {
            CertKind::Expired => (
                Asn1Time::from_unix((now - 30 * 86_400) as _)?,
                Asn1Time::from_unix((now - 86_400) as _)?,
            ),
            CertKind::ExpiresSoon => (
                Asn1Time::from_unix((now - 86_400) as _)?,
                Asn1Time::days_from_now(5)?,
            ),
            _ => (
                Asn1Time::from_unix((now - 86_400) as _)?,
                Asn1Time::days_from_now(30)?,
            ),
        };
        b.set_not_before(&not_before)?;
        b.set_not_after(&not_after)?;

        let basic = BasicConstraints::new().critical().build()?;
        b.append_extension(basic)?;
        if kind == CertKind::Client {
            b.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
        } else {
            b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
            let mut san = SubjectAlternativeName::new();
            san.dns(host);
            if kind != CertKind::WrongName {
                san.ip("127.0.0.1");
            }
            let san = san.build(&b.x509v3_context(None, None))?;
            b.append_extension(san)?;
        }
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
        b.append_extension(ski)?;

        b.sign(&key, MessageDigest::sha256())?;
        Ok((b.build(), key))
    };

    let (cert, key) = build().expect("generate throwaway TLS certificate");
    let dir = tempfile::Builder::new()
        .prefix("postie-test-tls-")
        .tempdir()
        .expect("create temp dir for TLS certificate");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.to_pem().expect("cert to PEM")).expect("write cert.pem");
    std::fs::write(
        &key_path,
        key.private_key_to_pem_pkcs8().expect("key to PEM"),
    )
    .expect("write key.pem");
    // postie refuses a client key that group or others can read.
    std::fs::set_permissions(
        &key_path,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .expect("chmod key.pem");
    CertFiles {
        dir,
        cert_path,
        key_path,
        cert,
        key,
    }
}

// ---------------------------------------------------------------------------
// Small socket helpers
// ---------------------------------------------------------------------------

fn bind_local() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")
}

fn set_timeouts(s: &TcpStream, t: Duration) {
    let _ = s.set_read_timeout(Some(t));
    let _ = s.set_write_timeout(Some(t));
}

/// Reads one line (up to and including `\n`) byte by byte, so that nothing
/// beyond the line is consumed from the stream.
fn read_line_raw<R: Read>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match r.read(&mut byte) {
            Ok(0) => {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "connection closed mid-line",
                ))
            }
            Ok(_) => {
                line.push(byte[0]);
                if byte[0] == b'\n' {
                    return Ok(line);
                }
                if line.len() > 4096 {
                    return Err(io::Error::new(ErrorKind::InvalidData, "line too long"));
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads a complete (possibly multi-line) SMTP reply.
fn read_reply_raw<R: Read>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut reply = Vec::new();
    loop {
        let line = read_line_raw(r)?;
        let last = line.len() < 4 || line[3] != b'-';
        reply.extend_from_slice(&line);
        if last {
            return Ok(reply);
        }
    }
}

fn expect_code(reply: &[u8], code: &[u8; 3]) -> io::Result<()> {
    if reply.starts_with(code) {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "expected {}, got {:?}",
            String::from_utf8_lossy(code),
            String::from_utf8_lossy(reply)
        )))
    }
}

/// Copies `from` -> `to` until EOF/error, calling `inspect` on every chunk
/// before forwarding it; then half-closes `to`.
fn pipe(mut from: TcpStream, mut to: TcpStream, mut inspect: impl FnMut(&[u8])) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                inspect(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = to.flush();
    let _ = to.shutdown(Shutdown::Write);
}

#[derive(PartialEq)]
enum Step {
    Data,
    Idle,
    Closed,
}

fn pump_step<R: Read, W: Write>(from: &mut R, to: &mut W, buf: &mut [u8]) -> Step {
    match from.read(buf) {
        Ok(0) => Step::Closed,
        Ok(n) => {
            if to.write_all(&buf[..n]).and_then(|_| to.flush()).is_ok() {
                Step::Data
            } else {
                Step::Closed
            }
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
            ) =>
        {
            Step::Idle
        }
        Err(_) => Step::Closed,
    }
}

/// Relays between two TLS streams from one thread (an `SslStream` cannot be
/// split across threads) by polling both with a short read timeout. Returns
/// when either side closes or after `IO_TIMEOUT` without traffic, then closes
/// both sides with close_notify.
fn pump_tls(mut a: SslStream<TcpStream>, mut b: SslStream<TcpStream>) {
    let _ = a.get_ref().set_read_timeout(Some(PUMP_POLL));
    let _ = b.get_ref().set_read_timeout(Some(PUMP_POLL));
    let mut buf = vec![0u8; 16 * 1024];
    let mut last_traffic = Instant::now();
    loop {
        let s1 = pump_step(&mut a, &mut b, &mut buf);
        let s2 = if s1 == Step::Closed {
            Step::Closed
        } else {
            pump_step(&mut b, &mut a, &mut buf)
        };
        if s1 == Step::Closed || s2 == Step::Closed {
            break;
        }
        if s1 == Step::Data || s2 == Step::Data {
            last_traffic = Instant::now();
        } else if last_traffic.elapsed() > IO_TIMEOUT {
            break;
        }
    }
    for s in [&mut a, &mut b] {
        let _ = s
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)));
        let _ = s.shutdown();
        let _ = s.get_ref().shutdown(Shutdown::Both);
    }
}

// ---------------------------------------------------------------------------
// Relays in front of mailin
// ---------------------------------------------------------------------------

/// Plain relay for `Tls::StartTls`. Connections are handled strictly in
/// order: the relay connects to mailin and waits for mailin's greeting
/// before accepting the next client, which guarantees that relay ordinal N
/// and mailin's N-th handler clone are the same session.
fn spawn_starttls_relay(public: TcpListener, internal: SocketAddr, shared: Arc<Shared>) {
    let spawned = thread::Builder::new()
        .name("smtp-starttls-relay".into())
        .spawn(move || {
            let mut ordinal = 0usize;
            for client in public.incoming() {
                let Ok(client) = client else { continue };
                let Ok(mut upstream) = TcpStream::connect_timeout(&internal, IO_TIMEOUT) else {
                    continue;
                };
                let session = ordinal;
                ordinal += 1;
                let tls_flag = Arc::new(AtomicBool::new(false));
                lock(&shared.session_tls).insert(session, Arc::clone(&tls_flag));
                set_timeouts(&client, IO_TIMEOUT);
                set_timeouts(&upstream, IO_TIMEOUT);
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let Ok(greeting) = read_line_raw(&mut upstream) else {
                    continue;
                };
                let (Ok(client_r), Ok(upstream_w)) = (client.try_clone(), upstream.try_clone())
                else {
                    continue;
                };
                let mut client_w = client;
                if client_w.write_all(&greeting).is_err() {
                    continue;
                }
                let _ = thread::Builder::new()
                    .name("smtp-relay-c2s".into())
                    .spawn(move || pipe(client_r, upstream_w, |_| {}));
                let _ = thread::Builder::new()
                    .name("smtp-relay-s2c".into())
                    .spawn(move || {
                        let mut window: Vec<u8> = Vec::new();
                        pipe(upstream, client_w, move |chunk| {
                            if tls_flag.load(Ordering::SeqCst) {
                                return;
                            }
                            window.extend_from_slice(chunk);
                            if window
                                .windows(MAILIN_STARTTLS_REPLY.len())
                                .any(|w| w == MAILIN_STARTTLS_REPLY)
                            {
                                tls_flag.store(true, Ordering::SeqCst);
                                window = Vec::new();
                            } else if window.len() > 256 {
                                window.drain(..window.len() - 64);
                            }
                        })
                    });
            }
        });
    spawned.expect("spawn STARTTLS relay thread");
}

/// Implicit-TLS terminator: TLS-accepts the client, opens a session to
/// mailin, upgrades that hop with EHLO + STARTTLS (so mailin considers the
/// session TLS and offers AUTH), sends mailin's greeting to the client and
/// relays.
fn spawn_implicit_terminator(public: TcpListener, internal: SocketAddr, acceptor: SslAcceptor) {
    let acceptor = Arc::new(acceptor);
    let spawned = thread::Builder::new()
        .name("smtps-terminator".into())
        .spawn(move || {
            for client in public.incoming() {
                let Ok(client) = client else { continue };
                let acceptor = Arc::clone(&acceptor);
                let _ = thread::Builder::new()
                    .name("smtps-conn".into())
                    .spawn(move || {
                        let _ = terminate_one(client, internal, &acceptor);
                    });
            }
        });
    spawned.expect("spawn implicit TLS terminator thread");
}

fn terminate_one(
    client: TcpStream,
    internal: SocketAddr,
    acceptor: &SslAcceptor,
) -> io::Result<()> {
    set_timeouts(&client, IO_TIMEOUT);
    let _ = client.set_nodelay(true);
    let mut client = acceptor.accept(client).map_err(io::Error::other)?;

    let mut upstream = TcpStream::connect_timeout(&internal, IO_TIMEOUT)?;
    set_timeouts(&upstream, IO_TIMEOUT);
    let _ = upstream.set_nodelay(true);
    let greeting = read_reply_raw(&mut upstream)?;
    expect_code(&greeting, b"220")?;
    upstream.write_all(b"EHLO implicit-tls-terminator.invalid\r\n")?;
    expect_code(&read_reply_raw(&mut upstream)?, b"250")?;
    upstream.write_all(b"STARTTLS\r\n")?;
    expect_code(&read_reply_raw(&mut upstream)?, b"220")?;

    let mut connector = SslConnector::builder(SslMethod::tls_client()).map_err(io::Error::other)?;
    connector.set_verify(SslVerifyMode::NONE);
    let upstream = connector
        .build()
        .configure()
        .map_err(io::Error::other)?
        .verify_hostname(false)
        .use_server_name_indication(false)
        .connect("localhost", upstream)
        .map_err(io::Error::other)?;

    client.write_all(&greeting)?;
    client.flush()?;
    pump_tls(client, upstream);
    Ok(())
}

// ---------------------------------------------------------------------------
// TestServer
// ---------------------------------------------------------------------------

/// An SMTP server (mailin) on 127.0.0.1 that records what it receives.
pub struct TestServer {
    pub port: u16,
    tls: Tls,
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
            Tls::None => start_mailin(handler, public, None, opts.auth),
            Tls::StartTls => {
                let internal = bind_local();
                let internal_addr = internal.local_addr().expect("local_addr");
                start_mailin(handler, internal, cert.as_ref(), opts.auth);
                spawn_starttls_relay(public, internal_addr, Arc::clone(&shared));
            }
            Tls::Implicit => {
                let internal = bind_local();
                let internal_addr = internal.local_addr().expect("local_addr");
                let certs = cert.as_ref().expect("certificate");
                start_mailin(handler, internal, Some(certs), opts.auth);
                let acceptor = implicit_acceptor(certs, client.as_ref());
                spawn_implicit_terminator(public, internal_addr, acceptor);
            }
        }

        TestServer {
            port,
            tls: opts.tls,
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

fn start_mailin(handler: Recorder, listener: TcpListener, cert: Option<&CertFiles>, auth: bool) {
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
    thread::Builder::new()
        .name("mailin".into())
        .spawn(move || {
            let _ = server.serve();
        })
        .expect("spawn mailin thread");
}

fn implicit_acceptor(certs: &CertFiles, client: Option<&CertFiles>) -> SslAcceptor {
    let mut b =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).expect("SslAcceptor builder");
    b.set_private_key(&certs.key).expect("set private key");
    b.set_certificate(&certs.cert).expect("set certificate");
    b.check_private_key().expect("key matches certificate");
    if let Some(client) = client {
        // The self-signed client certificate is its own trust anchor.
        b.cert_store_mut()
            .add_cert(client.cert.clone())
            .expect("trust the client certificate");
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    }
    b.build()
}

// ---------------------------------------------------------------------------
// ScriptedServer
// ---------------------------------------------------------------------------

/// A scripted server for failure classes mailin cannot produce.
///
/// Accepts one connection (waiting up to 30 s for it), writes `greeting`,
/// then for each line the client sends writes the next entry of `replies`
/// (exact bytes; multi-line allowed). DATA-aware: after a reply starting
/// with `354` the message lines are recorded but consume no reply until the
/// terminating `.` line, which consumes one. When the replies run out the
/// server half-closes (FIN after the last reply), records whatever the
/// client still sends for a moment, and closes.
/// `start_abrupt` and `start_interrupting_data` close at once instead, the
/// way a server that hangs up on the client does.
pub struct ScriptedServer {
    pub port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    accepted: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    started: Instant,
}

impl ScriptedServer {
    pub fn start(greeting: &[u8], replies: Vec<Vec<u8>>) -> ScriptedServer {
        Self::start_with(greeting, replies, Script::default())
    }

    /// As `start`, but every reply is written a few bytes at a time with
    /// pauses, so that the client gets each reply across several reads.
    pub fn start_trickling(greeting: &[u8], replies: Vec<Vec<u8>>) -> ScriptedServer {
        Self::start_with(
            greeting,
            replies,
            Script {
                trickle: true,
                ..Script::default()
            },
        )
    }

    /// As `start`, but when the replies run out the server closes at once
    /// instead of reading on: whatever the client sends after the last
    /// reply meets a reset.
    pub fn start_abrupt(greeting: &[u8], replies: Vec<Vec<u8>>) -> ScriptedServer {
        Self::start_with(
            greeting,
            replies,
            Script {
                abrupt_end: true,
                ..Script::default()
            },
        )
    }

    /// As `start`, but `after_lines` lines into a message (after a 354)
    /// the server writes `reply` and closes at once, unread data and all,
    /// so that a client still writing the message gets a reset: a server
    /// that refuses a message mid-way (552 too big, 421 shutting down).
    pub fn start_interrupting_data(
        greeting: &[u8],
        replies: Vec<Vec<u8>>,
        after_lines: usize,
        reply: &[u8],
    ) -> ScriptedServer {
        Self::start_with(
            greeting,
            replies,
            Script {
                interrupt_data: Some((after_lines, reply.to_vec())),
                ..Script::default()
            },
        )
    }

    /// As `start`, but the reply at `at` (0 the greeting, 1 the first of
    /// `replies`) is replaced by `flood`: an endless multi-line reply or
    /// one huge line, written until done or until the client goes away.
    pub fn start_flooding(
        greeting: &[u8],
        replies: Vec<Vec<u8>>,
        at: usize,
        flood: Flood,
    ) -> ScriptedServer {
        Self::start_with(
            greeting,
            replies,
            Script {
                flood: Some((at, flood)),
                ..Script::default()
            },
        )
    }

    /// As `start`, but every byte is written on its own after `pause`: a
    /// slowloris server, or (with a pause of a few ms) one whose every
    /// line of a reply comes in a later packet than the one before.
    pub fn start_slow(greeting: &[u8], replies: Vec<Vec<u8>>, pause: Duration) -> ScriptedServer {
        Self::start_with(
            greeting,
            replies,
            Script {
                byte_pause: Some(pause),
                ..Script::default()
            },
        )
    }

    /// As `start`, but each line of a reply is written on its own, `pause`
    /// after the one before: a second line is in a later packet.
    pub fn start_line_by_line(
        greeting: &[u8],
        replies: Vec<Vec<u8>>,
        pause: Duration,
    ) -> ScriptedServer {
        Self::start_with(
            greeting,
            replies,
            Script {
                line_pause: Some(pause),
                ..Script::default()
            },
        )
    }

    fn start_with(greeting: &[u8], replies: Vec<Vec<u8>>, script: Script) -> ScriptedServer {
        let listener = bind_local();
        let port = listener.local_addr().expect("local_addr").port();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let greeting = greeting.to_vec();
        let (l, a, d) = (Arc::clone(&lines), Arc::clone(&accepted), Arc::clone(&done));
        thread::Builder::new()
            .name("scripted-smtp".into())
            .spawn(move || {
                if let Some(stream) = accept_within(&listener, Duration::from_secs(30)) {
                    drop(listener);
                    a.store(true, Ordering::SeqCst);
                    let _ = run_script(stream, &greeting, replies, &l, &script);
                }
                d.store(true, Ordering::SeqCst);
            })
            .expect("spawn scripted server thread");
        ScriptedServer {
            port,
            lines,
            accepted,
            done,
            started: Instant::now(),
        }
    }

    /// "127.0.0.1:PORT"
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Lines received so far, without the trailing CRLF/LF.
    ///
    /// If a client connected, waits (up to 5 s) for the scripted session to
    /// end first, so that calling this right after postie exited is not racy.
    pub fn lines(&self) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        while !self.done.load(Ordering::SeqCst) && Instant::now() < deadline {
            if !self.accepted.load(Ordering::SeqCst)
                && self.started.elapsed() > Duration::from_millis(300)
            {
                thread::sleep(Duration::from_millis(50));
                if !self.accepted.load(Ordering::SeqCst) {
                    break;
                }
            }
            thread::sleep(Duration::from_millis(10));
        }
        lock(&self.lines).clone()
    }
}

fn accept_within(listener: &TcpListener, limit: Duration) -> Option<TcpStream> {
    listener.set_nonblocking(true).ok()?;
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).ok()?;
                return Some(s);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
    None
}

/// What a flooding ScriptedServer writes in place of one reply:
/// `prefix`, `unit` `count` times, then `suffix`.
pub struct Flood {
    pub prefix: Vec<u8>,
    pub unit: Vec<u8>,
    pub count: usize,
    pub suffix: Vec<u8>,
}

impl Flood {
    /// `220-xxx...` lines of 80 bytes (short enough for any reader's line
    /// limit), 1.3 GB of them: never ends in a test.
    pub fn endless_reply(code: &str) -> Flood {
        let mut unit = format!("{code}-").into_bytes();
        unit.resize(78, b'x');
        unit.extend_from_slice(b"\r\n");
        Flood {
            prefix: Vec::new(),
            unit,
            count: 1 << 24,
            suffix: Vec::new(),
        }
    }

    /// One line of `megabytes` MiB, ended by CRLF.
    pub fn huge_line(code: &str, megabytes: usize) -> Flood {
        Flood {
            prefix: format!("{code} ").into_bytes(),
            unit: vec![b'x'; 1 << 20],
            count: megabytes,
            suffix: b"\r\n".to_vec(),
        }
    }

    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.prefix)?;
        for _ in 0..self.count {
            out.write_all(&self.unit)?;
        }
        out.write_all(&self.suffix)?;
        out.flush()
    }
}

/// How a ScriptedServer departs from plain replies.
#[derive(Default)]
struct Script {
    trickle: bool,
    /// The reply at this index (0 the greeting) is this flood instead.
    flood: Option<(usize, Flood)>,
    /// Write each byte on its own, after this pause.
    byte_pause: Option<Duration>,
    /// Write each line on its own, after this pause.
    line_pause: Option<Duration>,
    /// Close without draining when the replies run out.
    abrupt_end: bool,
    /// After this many message lines: write the reply, then close at once.
    interrupt_data: Option<(usize, Vec<u8>)>,
}

fn run_script(
    stream: TcpStream,
    greeting: &[u8],
    replies: Vec<Vec<u8>>,
    lines: &Mutex<Vec<String>>,
    script: &Script,
) -> io::Result<()> {
    set_timeouts(&stream, Duration::from_secs(10));
    let _ = stream.set_nodelay(true);
    let mut writer = TrickleWriter {
        inner: stream.try_clone()?,
        trickle: script.trickle,
        byte_pause: script.byte_pause,
        line_pause: script.line_pause,
    };
    let mut reader = BufReader::new(stream);
    let record = |raw: &[u8]| {
        let text = String::from_utf8_lossy(raw);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        lock(lines).push(text.to_string());
    };

    let mut written = 0;
    let mut reply = |writer: &mut TrickleWriter, bytes: &[u8]| -> io::Result<()> {
        let flood = script.flood.as_ref().filter(|(at, _)| *at == written);
        written += 1;
        match flood {
            Some((_, flood)) => flood.write(&mut writer.inner),
            None => {
                writer.write_all(bytes)?;
                writer.flush()
            }
        }
    };
    reply(&mut writer, greeting)?;
    let mut replies = replies.into_iter().peekable();
    let mut in_data = false;
    let mut raw = Vec::new();
    let mut client_closed = false;
    let mut message_lines = 0;
    // A message being interrupted still needs reading after the last reply.
    while replies.peek().is_some() || (in_data && script.interrupt_data.is_some()) {
        raw.clear();
        if reader.read_until(b'\n', &mut raw)? == 0 {
            client_closed = true;
            break;
        }
        record(&raw);
        // Inside DATA only the terminating "." line earns a reply.
        if in_data && raw != b".\r\n" && raw != b".\n" {
            message_lines += 1;
            if let Some((after, reply)) = &script.interrupt_data {
                if message_lines >= *after {
                    writer.write_all(reply)?;
                    writer.flush()?;
                    // Dropping both halves with the message unread: a reset.
                    return Ok(());
                }
            }
            continue;
        }
        let Some(next) = replies.next() else {
            break;
        };
        reply(&mut writer, &next)?;
        in_data = next.starts_with(b"354");
    }

    if script.abrupt_end {
        return Ok(());
    }
    // Out of replies: FIN, then drain briefly so the client reads our last
    // reply rather than a reset.
    let _ = writer.inner.shutdown(Shutdown::Write);
    if !client_closed {
        let _ = reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(2)));
        let drain_until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < drain_until {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => record(&raw),
            }
        }
    }
    Ok(())
}

/// Writes whole buffers, or (trickling) three bytes at a time with a pause
/// after each, flushing every piece so that each is its own TCP segment.
struct TrickleWriter {
    inner: TcpStream,
    trickle: bool,
    byte_pause: Option<Duration>,
    line_pause: Option<Duration>,
}

impl Write for TrickleWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(pause) = self.byte_pause {
            thread::sleep(pause);
            self.inner.write_all(&buf[..buf.len().min(1)])?;
            self.inner.flush()?;
            return Ok(buf.len().min(1));
        }
        if let Some(pause) = self.line_pause {
            let end = buf
                .iter()
                .position(|&b| b == b'\n')
                .map_or(buf.len(), |i| i + 1);
            self.inner.write_all(&buf[..end])?;
            self.inner.flush()?;
            if end < buf.len() {
                thread::sleep(pause);
            }
            return Ok(end);
        }
        if !self.trickle {
            return self.inner.write(buf);
        }
        let piece = &buf[..buf.len().min(3)];
        self.inner.write_all(piece)?;
        self.inner.flush()?;
        thread::sleep(Duration::from_millis(2));
        Ok(piece.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

// ---------------------------------------------------------------------------
// Misc servers / ports
// ---------------------------------------------------------------------------

/// A server for postie's -v certificate re-fetch: the first connection
/// offers STARTTLS and completes the handshake with a self-signed
/// certificate (which postie refuses, then connects again to show it);
/// the second gets `flood` as its greeting. Returns the port.
pub fn starttls_then_flood(flood: Flood) -> u16 {
    let listener = bind_local();
    let port = listener.local_addr().expect("local_addr").port();
    let certs = generate_cert(CertKind::Good);
    thread::Builder::new()
        .name("starttls-then-flood".into())
        .spawn(move || {
            let acceptor = implicit_acceptor(&certs, None);
            if let Some(stream) = accept_within(&listener, Duration::from_secs(30)) {
                set_timeouts(&stream, Duration::from_secs(10));
                let _ = starttls_session(stream, &acceptor);
            }
            if let Some(mut stream) = accept_within(&listener, Duration::from_secs(30)) {
                set_timeouts(&stream, Duration::from_secs(10));
                let _ = flood.write(&mut stream);
            }
        })
        .expect("spawn starttls-then-flood thread");
    port
}

/// Greeting, EHLO with STARTTLS, 220, then the TLS handshake.
fn starttls_session(stream: TcpStream, acceptor: &SslAcceptor) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    writer.write_all(b"220 localhost ESMTP\r\n")?;
    for reply in [
        &b"250-localhost\r\n250 STARTTLS\r\n"[..],
        b"220 go ahead\r\n",
    ] {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        writer.write_all(reply)?;
    }
    let _ = acceptor.accept(reader.into_inner());
    Ok(())
}

/// A server that accepts connections and never says anything (for
/// timeouts). Accepted sockets are held open for ~30 s; keep the returned
/// listener alive for the duration of the test.
pub fn silent_server() -> (TcpListener, u16) {
    let listener = bind_local();
    let port = listener.local_addr().expect("local_addr").port();
    let acceptor = listener.try_clone().expect("clone listener");
    thread::Builder::new()
        .name("silent-server".into())
        .spawn(move || {
            let _ = acceptor.set_nonblocking(true);
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut held = Vec::new();
            while Instant::now() < deadline {
                match acceptor.accept() {
                    Ok((s, _)) => held.push(s),
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
            drop(held);
        })
        .expect("spawn silent server thread");
    (listener, port)
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
pub fn closed_port() -> u16 {
    let listener = bind_local();
    listener.local_addr().expect("local_addr").port()
}

// ---------------------------------------------------------------------------
// postie command / message parsing
// ---------------------------------------------------------------------------

/// The small message most tests send when the message itself does not
/// matter: from a@example.com to b@example.com, body "x".
pub const SMALL_MESSAGE: [&str; 5] = ["-f", "a@example.com", "b@example.com", "--body", "x"];

/// The hermetic `postie` command: empty environment except `PATH`, with
/// `HOME`, `XDG_CONFIG_HOME` (= `$HOME/.config`) and `XDG_STATE_HOME`
/// (= `$HOME/.local/state`), all created, in a fresh directory per call,
/// and `POSTIE_SYSTEM_CONFIG` naming a file that does not exist, so that a
/// machine with postie installed (/etc/postie/config.toml) passes too.
/// The directory is deliberately leaked so it outlives the command; it lives
/// under cargo's `CARGO_TARGET_TMPDIR` (`target/tmp`), so `cargo clean`
/// removes it.
pub fn postie() -> assert_cmd::Command {
    hermetic(env!("CARGO_BIN_EXE_postie"))
}

/// postie reached through a symlink named `sendmail`, as cron and mailx
/// find it; the directory holding the link is returned to keep it alive.
pub fn sendmail() -> (TempDir, assert_cmd::Command) {
    let dir = tempfile::tempdir().expect("temp dir for the sendmail link");
    let link = dir.path().join("sendmail");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_postie"), &link).expect("symlink");
    let cmd = hermetic(&link);
    (dir, cmd)
}

/// `program` with the hermetic environment `postie()` describes.
pub fn hermetic(program: impl AsRef<std::ffi::OsStr>) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(program);
    cmd.env_clear();
    for (name, value) in hermetic_env() {
        cmd.env(name, value);
    }
    cmd
}

/// The hermetic `postie` of [`postie()`] as a `std::process::Command`,
/// for tests that spawn and reap it themselves (to read its peak memory
/// from `wait4`). Same environment; the HOME directory is returned.
pub fn postie_std() -> (std::process::Command, PathBuf) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_postie"));
    cmd.env_clear();
    let env = hermetic_env();
    let home = env
        .iter()
        .find(|(name, _)| *name == "HOME")
        .map(|(_, home)| PathBuf::from(home))
        .expect("HOME is set");
    for (name, value) in env {
        cmd.env(name, value);
    }
    (cmd, home)
}

/// The one environment every postie of the tests gets: PATH, and a fresh
/// HOME (created, with XDG dirs) in which the queue, the maildrop spool
/// and the system config all live, so that no test reads or writes the
/// machine's.
fn hermetic_env() -> Vec<(&'static str, std::ffi::OsString)> {
    let home = tempfile::Builder::new()
        .prefix("postie-home-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create temp HOME")
        .keep();
    let config = home.join(".config");
    let state = home.join(".local").join("state");
    std::fs::create_dir_all(&config).expect("create XDG_CONFIG_HOME");
    std::fs::create_dir_all(&state).expect("create XDG_STATE_HOME");
    let mut env = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        env.push(("PATH", path));
    }
    env.extend([
        ("HOME", home.clone().into_os_string()),
        ("XDG_CONFIG_HOME", config.into_os_string()),
        ("XDG_STATE_HOME", state.into_os_string()),
        // Tests often run as root, whose default queue is /var/spool/postie.
        ("POSTIE_QUEUE_DIR", home.join("queue").into_os_string()),
        // Root's flush picks up /var/spool/postie/maildrop: never the
        // real one, whose users' mail is not the test's.
        ("POSTIE_SPOOL_DIR", home.join("spool").into_os_string()),
        // Nor the machine's /etc/postie/config.toml.
        (
            "POSTIE_SYSTEM_CONFIG",
            home.join("no-system-config")
                .join("config.toml")
                .into_os_string(),
        ),
    ]);
    env
}

/// Parses message bytes (e.g. `Received::data`) with mail-parser.
/// Panics if mail-parser cannot make a message out of them.
pub fn parse(data: &[u8]) -> mail_parser::Message<'static> {
    mail_parser::MessageParser::default()
        .parse(data)
        .map(|m| m.into_owned())
        .unwrap_or_else(|| {
            panic!(
                "mail-parser could not parse message:\n{}",
                String::from_utf8_lossy(data)
            )
        })
}

pub mod dns;

/// A tmpfs of a few KiB, for a full disk; unmounted when dropped.
pub struct TinyDisk {
    pub dir: tempfile::TempDir,
}

impl TinyDisk {
    /// Needs root (and a kernel that lets us mount); None otherwise.
    pub fn mount(kib: u32) -> Option<TinyDisk> {
        let dir = tempfile::tempdir().ok()?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(TinyDisk { dir })
    }

    /// Takes every free block.
    pub fn fill(&self) {
        let mut filler = std::fs::File::create(self.dir.path().join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while std::io::Write::write_all(&mut filler, &chunk).is_ok() {}
        let _ = std::io::Write::write_all(&mut filler, &chunk[..1]);
    }

    /// Gives back what `fill` took.
    pub fn free(&self) {
        std::fs::remove_file(self.dir.path().join("filler")).unwrap();
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// A relay account (`relay`, from cron@example.com) in a config of its
/// own, and a queue directory beside it: what the queue tests share.
pub struct QueueSetup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub queue: PathBuf,
}

impl QueueSetup {
    pub fn new(server: &str, extra: &str) -> QueueSetup {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        let queue = dir.path().join("queue");
        let setup = QueueSetup { dir, config, queue };
        setup.write_config(server, extra);
        setup
    }

    /// Rewrites the config: a flush uses today's settings.
    pub fn write_config(&self, server: &str, extra: &str) {
        std::fs::write(
            &self.config,
            format!(
                "default = \"relay\"\n[accounts.relay]\nserver = \"{server}\"\nfrom = \"cron@example.com\"\ntimeout = 5\n{extra}\n"
            ),
        )
        .unwrap();
    }

    /// `postie` with this config and queue.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = postie();
        cmd.env("POSTIE_CONFIG", &self.config)
            .env("POSTIE_QUEUE_DIR", &self.queue);
        cmd
    }

    /// The `sendmail` link with this config and queue.
    pub fn sendmail(&self) -> (TempDir, assert_cmd::Command) {
        let (link, mut cmd) = sendmail();
        cmd.env("POSTIE_CONFIG", &self.config)
            .env("POSTIE_QUEUE_DIR", &self.queue);
        (link, cmd)
    }

    /// The queue's entries (their `.json`), sorted.
    pub fn entries(&self) -> Vec<PathBuf> {
        files_ending(&self.queue, "json")
    }
}

/// The files in `dir` with this extension, sorted; none when `dir` is
/// missing.
pub fn files_ending(dir: &std::path::Path, extension: &str) -> Vec<PathBuf> {
    let Ok(reader) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = reader
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    found.sort();
    found
}
