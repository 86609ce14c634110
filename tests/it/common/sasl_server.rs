//! An SMTP server that checks SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5 and
//! PLAIN logins for real: it computes what a client that knows
//! [`PASSWORD`] must send (RFC 5802 5, RFC 2195) from its own copy of the
//! password, and proves its own knowledge with the SCRAM server signature.
//! In clear, as a server on loopback, or with implicit TLS
//! ([`SaslServer::start_tls`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::PKey;
use openssl::sign::Signer;

use super::net::{accept_within, bind_local, set_timeouts};
use super::server::{PASSWORD, USER};
use super::tls::{generate_cert, implicit_acceptor, CertFiles, CertKind};
use super::{lock, WAIT};

/// How the server behaves beyond checking the login.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SaslTwist {
    /// An honest server.
    #[default]
    None,
    /// Its SCRAM server signature is wrong: it does not know the password
    /// (an impostor that got the client's proof anyway).
    WrongSignature,
    /// An impostor that answers SCRAM's client-first message with 235 at
    /// once: it has proved nothing, and seen no proof.
    AcceptAtOnce,
    /// It asks for this many SCRAM iterations.
    Iterations(u32),
    /// A hostile server: it refuses the login with a 535 that echoes the
    /// client's answer to its challenge, as sent and decoded (the SCRAM
    /// proof, the CRAM-MD5 digest).
    Echo,
}

/// What the server saw.
#[derive(Default)]
struct Seen {
    lines: Vec<String>,
    /// (mechanism, accepted) per AUTH command.
    logins: Vec<(String, bool)>,
    messages: Vec<String>,
}

pub struct SaslServer {
    pub port: u16,
    seen: Arc<Mutex<Seen>>,
    done: Arc<Mutex<bool>>,
    /// With implicit TLS: the certificate, to be trusted with --ca-file.
    certs: Option<CertFiles>,
}

/// What a session runs over: TCP, or TLS over it.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

impl SaslServer {
    /// Offers `mechanisms` in EHLO (as written there) and checks each
    /// against [`USER`] / [`PASSWORD`]; accepts one connection.
    pub fn start(mechanisms: &[&str], twist: SaslTwist) -> SaslServer {
        Self::start_with(mechanisms, twist, None)
    }

    /// As `start`, with implicit TLS and a certificate for 127.0.0.1
    /// ([`SaslServer::ca_file`]).
    pub fn start_tls(mechanisms: &[&str], twist: SaslTwist) -> SaslServer {
        Self::start_with(mechanisms, twist, Some(generate_cert(CertKind::Good)))
    }

    /// The certificate to trust (`--ca-file`) with `start_tls`.
    pub fn ca_file(&self) -> PathBuf {
        self.certs.as_ref().expect("a TLS server").cert_path.clone()
    }

    fn start_with(mechanisms: &[&str], twist: SaslTwist, certs: Option<CertFiles>) -> SaslServer {
        let acceptor = certs.as_ref().map(|c| implicit_acceptor(c, None));
        let listener = bind_local();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let done = Arc::new(Mutex::new(false));
        let offered = mechanisms.join(" ");
        let (s, d) = (Arc::clone(&seen), Arc::clone(&done));
        thread::spawn(move || {
            if let Some(stream) = accept_within(&listener, Duration::from_secs(30)) {
                set_timeouts(&stream, Duration::from_secs(10));
                let stream: Option<Box<dyn Stream>> = match &acceptor {
                    Some(acceptor) => acceptor.accept(stream).ok().map(|s| Box::new(s) as _),
                    None => Some(Box::new(stream)),
                };
                if let Some(stream) = stream {
                    let _ = serve(stream, &offered, twist, &s);
                }
            }
            *lock(&d) = true;
        });
        SaslServer {
            port,
            seen,
            done,
            certs,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn wait(&self) {
        let deadline = Instant::now() + WAIT;
        while !*lock(&self.done) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every line the client sent, once the session is over.
    pub fn lines(&self) -> Vec<String> {
        self.wait();
        lock(&self.seen).lines.clone()
    }

    /// (mechanism, accepted) per AUTH command.
    pub fn logins(&self) -> Vec<(String, bool)> {
        self.wait();
        lock(&self.seen).logins.clone()
    }

    /// The messages received (DATA), without the final dot.
    pub fn messages(&self) -> Vec<String> {
        self.wait();
        lock(&self.seen).messages.clone()
    }
}

struct Conversation<'a> {
    io: BufReader<Box<dyn Stream>>,
    seen: &'a Mutex<Seen>,
}

impl Conversation<'_> {
    fn send(&mut self, reply: &str) -> std::io::Result<()> {
        let writer = self.io.get_mut();
        writer.write_all(format!("{reply}\r\n").as_bytes())?;
        writer.flush()
    }

    /// The next line, without CRLF; None at the end.
    fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.io.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let line = line.trim_end_matches(['\r', '\n']).to_string();
                lock(self.seen).lines.push(line.clone());
                Some(line)
            }
        }
    }

    fn challenge(&mut self, text: &[u8]) -> Option<Vec<u8>> {
        self.send(&format!("334 {}", STANDARD.encode(text))).ok()?;
        let answer = self.line()?;
        STANDARD.decode(answer).ok()
    }
}

fn serve(
    stream: Box<dyn Stream>,
    offered: &str,
    twist: SaslTwist,
    seen: &Mutex<Seen>,
) -> std::io::Result<()> {
    let mut c = Conversation {
        io: BufReader::new(stream),
        seen,
    };
    c.send("220 sasl.test ESMTP")?;
    let mut authenticated = false;
    while let Some(line) = c.line() {
        let upper = line.to_ascii_uppercase();
        let mut words = line.split(' ');
        let verb = words.next().unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => c.send(&format!("250-sasl.test\r\n250 AUTH {offered}"))?,
            "AUTH" => {
                let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
                let initial = words.next().map(str::to_string);
                let ok = match mechanism.as_str() {
                    "SCRAM-SHA-256" => scram(&mut c, MessageDigest::sha256(), initial, twist),
                    "SCRAM-SHA-1" => scram(&mut c, MessageDigest::sha1(), initial, twist),
                    "CRAM-MD5" => cram_md5(&mut c, twist),
                    "PLAIN" => plain(&mut c, initial),
                    _ => Some(false),
                };
                lock(seen).logins.push((mechanism, ok == Some(true)));
                match ok {
                    Some(true) => {
                        authenticated = true;
                        c.send("235 2.7.0 Authentication successful")?
                    }
                    Some(false) if twist == SaslTwist::Echo => {
                        let echo = lock(seen).lines.last().cloned().unwrap_or_default();
                        let decoded = STANDARD.decode(&echo).unwrap_or_default();
                        let decoded = String::from_utf8_lossy(&decoded);
                        let secret = decoded
                            .rsplit_once(",p=")
                            .or_else(|| decoded.rsplit_once(' '))
                            .map_or("", |(_, secret)| secret);
                        c.send(&format!("535 5.7.8 no: {echo} {decoded} {secret}"))?
                    }
                    Some(false) => c.send("535 5.7.8 Authentication credentials invalid")?,
                    None => c.send("501 5.5.2 Authentication cancelled")?,
                }
            }
            "MAIL" if !authenticated => c.send("530 5.7.0 Authentication required")?,
            "MAIL" | "RCPT" | "RSET" | "NOOP" => c.send("250 2.0.0 OK")?,
            "DATA" => {
                c.send("354 go ahead")?;
                let mut message = String::new();
                while let Some(line) = c.line() {
                    if line == "." {
                        break;
                    }
                    message.push_str(&line);
                    message.push('\n');
                }
                lock(seen).messages.push(message);
                c.send("250 2.0.0 queued")?;
            }
            "QUIT" => {
                c.send("221 2.0.0 bye")?;
                break;
            }
            _ if upper.is_empty() => c.send("500 5.5.2 empty line")?,
            _ => c.send("500 5.5.2 what?")?,
        }
    }
    Ok(())
}

fn hmac(digest: MessageDigest, key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = PKey::hmac(key).unwrap();
    let mut signer = Signer::new(digest, &key).unwrap();
    signer.update(data).unwrap();
    signer.sign_to_vec().unwrap()
}

/// The server side of RFC 5802 5: Some(true) for a client that proved it
/// knows the password, Some(false) for a wrong proof, None when the
/// client cancelled ("*").
fn scram(
    c: &mut Conversation<'_>,
    digest: MessageDigest,
    initial: Option<String>,
    twist: SaslTwist,
) -> Option<bool> {
    let client_first = String::from_utf8(STANDARD.decode(initial?).ok()?).ok()?;
    let bare = client_first.strip_prefix("n,,")?.to_string();
    let user = bare.strip_prefix("n=")?.split(',').next()?.to_string();
    let client_nonce = bare.split(",r=").nth(1)?.to_string();
    if twist == SaslTwist::AcceptAtOnce {
        return Some(true);
    }
    let nonce = format!("{client_nonce}Srv+n0nce");
    let salt = b"sasl-test-salt!!";
    let iterations = match twist {
        SaslTwist::Iterations(i) => i,
        _ => 4096,
    };
    let server_first = format!("r={nonce},s={},i={iterations}", STANDARD.encode(salt));
    // None: the client cancelled ("*") instead of proving anything.
    let answer = c.challenge(server_first.as_bytes())?;
    let client_final = String::from_utf8(answer).ok()?;
    let (without_proof, proof) = client_final.rsplit_once(",p=")?;
    if without_proof != format!("c=biws,r={nonce}") {
        return Some(false);
    }
    let mut salted = vec![0u8; digest.size()];
    openssl::pkcs5::pbkdf2_hmac(
        PASSWORD.as_bytes(),
        salt,
        iterations as usize,
        digest,
        &mut salted,
    )
    .unwrap();
    let client_key = hmac(digest, &salted, b"Client Key");
    let stored_key = hash(digest, &client_key).unwrap();
    let auth_message = format!("{bare},{server_first},{without_proof}");
    let client_signature = hmac(digest, &stored_key, auth_message.as_bytes());
    let proof = STANDARD.decode(proof).ok()?;
    // RFC 5802 3: the ClientKey the proof hides must hash to StoredKey.
    let their_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(p, s)| p ^ s)
        .collect();
    let proven = hash(digest, &their_key).unwrap().to_vec() == stored_key.to_vec();
    if user != USER || !proven || twist == SaslTwist::Echo {
        return Some(false);
    }
    let server_key = hmac(digest, &salted, b"Server Key");
    let mut signature = hmac(digest, &server_key, auth_message.as_bytes());
    if twist == SaslTwist::WrongSignature {
        signature[0] ^= 1;
    }
    c.send(&format!(
        "334 {}",
        STANDARD.encode(format!("v={}", STANDARD.encode(signature)))
    ))
    .ok()?;
    match c.line()?.as_str() {
        "" => Some(true),
        _ => None,
    }
}

/// RFC 2195: the HMAC-MD5 of the challenge, keyed with the password.
fn cram_md5(c: &mut Conversation<'_>, twist: SaslTwist) -> Option<bool> {
    let challenge = b"<1896.697170952@sasl.test>";
    let answer = String::from_utf8(c.challenge(challenge)?).ok()?;
    let (user, digest) = answer.rsplit_once(' ')?;
    let expected: String = hmac(MessageDigest::md5(), PASSWORD.as_bytes(), challenge)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(user == USER && digest == expected && twist != SaslTwist::Echo)
}

fn plain(c: &mut Conversation<'_>, initial: Option<String>) -> Option<bool> {
    let response = match initial {
        Some(initial) => STANDARD.decode(initial).ok()?,
        None => c.challenge(b"")?,
    };
    Some(response == format!("\0{USER}\0{PASSWORD}").into_bytes())
}
