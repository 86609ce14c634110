//! Getting to the point where SMTP can start: the TCP connection, the
//! greeting read by hand for --quit-after banner, and the TLS handshake
//! (implicit or after STARTTLS) with its certificate report.
//!
//! Belongs here: sockets and handshakes, each under the connect timeout.
//! Not here: the SMTP dialogue after the greeting (`session`), the TLS
//! library's configuration (`tls`), the bytes on the socket (`wire`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openssl::x509::X509VerifyResult;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::exit::{Error, Exit, Result};
use crate::smtp::classify::{
    closed_before_greeting, connect_error, connection_dropped, endpoint_at, greeting_reply,
    hung_up, hung_up_before_greeting, implicit_tls_hint, plain_smtp_on_implicit_tls,
    reply_read_error, starttls_injection, timed, timed_out, tls_record_before_greeting,
};
use crate::smtp::settings::SessionSettings;
use crate::smtp::stage::Stage;
use crate::smtp::tls::{
    certificate_flaws, certificate_names, handshake_error, sha256, CertReport, ChainCert,
    TlsMaterial, TlsReport, Verify,
};
use crate::smtp::transcript::Transcript;
use crate::smtp::wire::Wire;
use crate::types::Endpoint;

/// What a TLS handshake needs besides the wire: the session's settings
/// (the time limit, the verbosity, the EHLO name for a second look at a
/// refused certificate) and the trust material, loaded once per run.
#[derive(Clone, Copy)]
pub(crate) struct Handshaker<'a> {
    pub(crate) settings: &'a SessionSettings,
    pub(crate) material: &'a TlsMaterial,
}

/// What a TLS handshake established. `untrusted` is the verification
/// failure that, with --capabilities, did not end the handshake: the
/// session is reported, then ends with it, before anything is sent that
/// the server would need to be trusted with.
pub(crate) struct Secured {
    pub(crate) certificate: CertReport,
    pub(crate) tls: TlsReport,
    pub(crate) untrusted: Option<Error>,
}

impl Handshaker<'_> {
    /// TLS on the wire, checked as `verify` says; the certificate report.
    pub(crate) async fn handshake(
        &self,
        wire: &Wire,
        endpoint: &Endpoint,
        verify: Verify,
        transcript: &Transcript,
        upgrade: Upgrade,
    ) -> Result<Secured> {
        let (mut connector, trust) = self.material.connector(verify)?;
        if let Some(trust) = trust {
            transcript.note(&trust);
        }
        if self.settings.probe {
            connector = connector.recording_only();
        }
        let started = timed(
            self.settings.timeouts.connect,
            Stage::TlsHandshake,
            endpoint,
            wire.start_tls(connector, &endpoint.host),
        )
        .await?;
        if let Err(failure) = started {
            if upgrade == Upgrade::Starttls && wire.plaintext_in_handshake() {
                return Err(starttls_injection(endpoint));
            }
            if upgrade == Upgrade::Implicit && wire.plaintext_in_handshake() {
                return Err(plain_smtp_on_implicit_tls(endpoint));
            }
            let names = failure
                .chain
                .first()
                .map(|der| certificate_names(der))
                .unwrap_or_default();
            let err = handshake_error(endpoint, &failure.detail, &names);
            if verify == Verify::Full
                && err.exit == Exit::Unavailable
                && self.settings.verbosity > 0
            {
                self.show_unverified_certificate(wire.peer(), endpoint, upgrade, transcript)
                    .await;
            }
            return Err(err);
        }
        let negotiated = wire.negotiated().ok_or_else(|| {
            Error::new(
                Exit::Software,
                format!("TLS: no session with {endpoint} after the handshake"),
            )
        })?;
        transcript.note(&format!(
            "TLS started: {}, {}",
            negotiated.version, negotiated.cipher
        ));
        let der = wire.peer_certificate().unwrap_or_default();
        // OpenSSL's verdict on the chain and the name, recorded also where
        // it was not enforced (--insecure, opportunistic TLS, --capabilities).
        let chain_ok = negotiated.verify == X509VerifyResult::OK;
        let chain_error = (!chain_ok).then(|| negotiated.verify.error_string().to_string());
        let with_flaws = |why: &str| match certificate_flaws(&der, &endpoint.host)[..] {
            [] => why.to_string(),
            ref flaws => format!("{why}; it is {}", flaws.join(", ")),
        };
        let mut untrusted = None;
        let (verification, verified, verify_error) = match verify {
            // On loopback nothing is required, but a certificate that
            // verifies (a relay with a CA the user trusts) is said to.
            Verify::Full | Verify::Loopback if chain_ok => (
                "verified: trusted issuer, name matches".to_string(),
                true,
                None,
            ),
            Verify::Full => {
                // Only when recorded (--capabilities): enforced, the
                // failure ended the handshake above.
                let why = negotiated.verify.error_string();
                let detail = format!("certificate verify failed ({why})");
                untrusted = Some(handshake_error(endpoint, &detail, &certificate_names(&der)));
                (format!("NOT verified: {why}"), false, chain_error)
            }
            // No trust store was loaded to ask (`tls::TlsMaterial`):
            // whether a CA vouches for it is not known, only what the
            // certificate itself shows.
            Verify::Insecure => (
                with_flaws("NOT verified (--insecure)"),
                false,
                Some("not checked: --insecure".to_string()),
            ),
            Verify::Unauthenticated => (
                "not verified (opportunistic TLS to a mail exchanger)".to_string(),
                chain_ok,
                chain_error,
            ),
            Verify::Loopback => (
                with_flaws("not verified (opportunistic TLS to a relay on loopback; --tls starttls verifies)"),
                chain_ok,
                chain_error,
            ),
            Verify::Pinned(pin) if sha256(&der) == pin => (
                "pinned: SHA-256 matches --tls-fingerprint".to_string(),
                true,
                None,
            ),
            Verify::Pinned(_) => {
                let err = Error::new(
                    Exit::Unavailable,
                    format!(
                        "TLS: the certificate of {endpoint} has SHA-256 {}, not the one given with --tls-fingerprint",
                        crate::smtp::tls::format_fingerprint(&sha256(&der))
                    ),
                )
                .hint("the server's certificate changed, or this is not the server you meant");
                if !self.settings.probe {
                    return Err(err);
                }
                untrusted = Some(err);
                let why = "the SHA-256 does not match --tls-fingerprint";
                (format!("NOT verified: {why}"), false, Some(why.to_string()))
            }
        };
        let certificate = CertReport::from_der(&der, verification).ok_or_else(|| {
            Error::new(
                Exit::Protocol,
                format!("TLS: {endpoint} sent no readable certificate"),
            )
        })?;
        for line in certificate.lines() {
            transcript.note(&line);
        }
        let tls = TlsReport {
            version: negotiated.version,
            cipher: negotiated.cipher,
            chain: negotiated
                .chain
                .iter()
                .filter_map(|der| ChainCert::from_der(der))
                .collect(),
            verified,
            verify_error,
        };
        Ok(Secured {
            certificate,
            tls,
            untrusted,
        })
    }
}

/// How the TLS handshake is reached: at once, or after STARTTLS.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upgrade {
    Implicit,
    Starttls,
}

impl Handshaker<'_> {
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
            let (connector, _) = self.material.connector(Verify::Insecure).ok()?;
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
pub(crate) async fn banner_only(wire: &Wire, endpoint: &Endpoint, limit: Duration) -> Result<()> {
    let mut reader = tokio::io::BufReader::new(wire.clone());
    let greeting = timed(limit, Stage::Banner, endpoint, read_reply(&mut reader)).await??;
    let mut writer = wire.clone();
    let quit = async {
        let lost = |err: io::Error| connection_dropped(&err);
        writer.write_all(b"QUIT\r\n").await.map_err(lost)?;
        writer.flush().await.map_err(lost)?;
        read_reply(&mut reader).await
    };
    let _ = timed(limit, Stage::Quit, endpoint, quit).await;
    greeting_reply(endpoint, &greeting)
}

/// Reads one (possibly multi-line) reply; returns its last line.
async fn read_reply(reader: &mut tokio::io::BufReader<Wire>) -> Result<String> {
    loop {
        let mut line = String::new();
        let read = reader
            .read_line(&mut line)
            .await
            .map_err(|err| reply_read_error(&err))?;
        if read == 0 {
            return Err(closed_before_greeting());
        }
        let line = line.trim_end().to_string();
        if line.len() <= 3 || line.as_bytes()[3] != b'-' {
            return Ok(line);
        }
    }
}

/// Connects to the first address that answers, noting each attempt.
pub(crate) async fn connect_tcp(
    endpoint: &Endpoint,
    addresses: &[SocketAddr],
    limit: Duration,
    transcript: &Transcript,
) -> Result<(TcpStream, SocketAddr)> {
    let mut last_error = None;
    for (index, address) in addresses.iter().enumerate() {
        let target = endpoint_at(endpoint, address);
        transcript.note(&format!("Trying {target}..."));
        match timed(limit, Stage::Connect, endpoint, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                // Without this the final dot waits on a delayed ACK (~40 ms).
                let _ = stream.set_nodelay(true);
                transcript.note(&format!("Connected to {target}"));
                return Ok((stream, *address));
            }
            Ok(Err(err)) => last_error = Some(connect_error(endpoint, address, &err)),
            Err(timeout) => last_error = Some(timeout),
        }
        // The last failure is the run's error, which the caller prints.
        if let Some(err) = last_error.as_ref().filter(|_| index + 1 < addresses.len()) {
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

/// How long a plain connection to port 465 may stay silent: that port
/// speaks implicit TLS (RFC 8314 3.3), where the server waits for the
/// client to start, so the reply timeout would only be waited out.
const PORT_465_SILENCE: Duration = Duration::from_secs(10);

/// Waits for the server's first byte on a plain connection, before SMTP
/// starts, to tell a greeting from what an implicit TLS port does: stay
/// silent (waiting for the client's handshake), hang up, or start a TLS
/// record (0x16). Each of those fails with a hint to use implicit TLS; on
/// port 465 the silence is given up after at most 10 s. `stage` names the
/// greeting as the caller reads it.
pub(crate) async fn await_greeting(
    tcp: &TcpStream,
    endpoint: &Endpoint,
    limit: Duration,
    stage: Stage,
) -> Result<()> {
    let limit = if endpoint.port == 465 {
        limit.min(PORT_465_SILENCE)
    } else {
        limit
    };
    let mut first = [0u8; 1];
    let hint = |err| implicit_tls_hint(err, endpoint.port);
    match tokio::time::timeout(limit, tcp.peek(&mut first)).await {
        Err(_) => Err(hint(timed_out(limit, stage, endpoint))),
        Ok(Ok(0)) => Err(hint(hung_up_before_greeting(endpoint, stage))),
        Ok(Ok(_)) if first[0] == 0x16 => Err(tls_record_before_greeting(endpoint, stage)),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) if hung_up(&err) => Err(hint(hung_up_before_greeting(endpoint, stage))),
        Ok(Err(err)) => Err(connection_dropped(&err)),
    }
}
