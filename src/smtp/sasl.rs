//! The SASL mechanisms postie speaks itself, as pure functions over the
//! decoded challenge and response texts (lettre's `Mechanism` knows only
//! PLAIN, LOGIN and XOAUTH2): SCRAM-SHA-256 and SCRAM-SHA-1 (RFC 5802,
//! RFC 7677), CRAM-MD5 (RFC 2195), OAUTHBEARER (RFC 7628) and XOAUTH2, and
//! which mechanism `--auth` picks among those a server offers.
//!
//! Belongs here: the texts of each exchange and their checks. Not here:
//! base64 on the wire, sending and reading (`session`), what a failure is
//! called (`classify`).

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::PKey;
use openssl::sign::Signer;

use crate::types::AuthMethod;

/// A SASL mechanism, as offered in EHLO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    Login,
    Xoauth2,
    Oauthbearer,
    ScramSha256,
    ScramSha1,
    CramMd5,
}

impl Mechanism {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::Xoauth2 => "XOAUTH2",
            Mechanism::Oauthbearer => "OAUTHBEARER",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::CramMd5 => "CRAM-MD5",
        }
    }
}

/// The mechanisms `method` may use, best first; the session takes the
/// first the server offers and never falls back to another after a
/// refusal (a 535 is an answer about the password, not the mechanism).
/// `bearer`: the secret is an OAuth2 access token. `encrypted`: TLS is on.
pub(crate) fn candidates(
    method: AuthMethod,
    bearer: bool,
    encrypted: bool,
) -> &'static [Mechanism] {
    use Mechanism::*;
    match method {
        // A token is only good for the OAuth2 mechanisms; RFC 7628 is the
        // standard one, XOAUTH2 Google's and Microsoft's older spelling.
        // Like a password, a token goes in clear only when asked by name.
        AuthMethod::Auto if bearer && encrypted => &[Oauthbearer, Xoauth2],
        AuthMethod::Auto if bearer => &[],
        AuthMethod::Auto if encrypted => &[ScramSha256, ScramSha1, Plain, Login],
        // Without TLS only mechanisms that never send the password itself
        // (anyone on the path could read PLAIN and LOGIN).
        AuthMethod::Auto => &[ScramSha256, ScramSha1, CramMd5],
        AuthMethod::Plain => &[Plain],
        AuthMethod::Login => &[Login],
        AuthMethod::Xoauth2 => &[Xoauth2],
        AuthMethod::Oauthbearer => &[Oauthbearer],
        AuthMethod::ScramSha256 => &[ScramSha256],
        AuthMethod::ScramSha1 => &[ScramSha1],
        AuthMethod::CramMd5 => &[CramMd5],
    }
}

/// Why an exchange cannot go on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SaslError {
    /// The server broke the protocol or asked for something unsafe (exit 76).
    Protocol(String),
    /// The server did not prove it knows the password (exit 77).
    Unproven(String),
    /// The server refused the proof with a SCRAM error (`e=`, exit 77).
    Refused(String),
    /// Our own user name or password cannot be used with the mechanism.
    Credentials(String),
}

/// SASLprep (RFC 4013), as RFC 5802 5.1 asks for SCRAM's name and password.
/// The error names no character of the password: stringprep's own says
/// "prohibited character `x`", a piece of the secret on stderr and in the
/// log.
pub(crate) fn saslprep(what: &str, text: &str) -> Result<String, SaslError> {
    stringprep::saslprep(text)
        .map(Cow::into_owned)
        .map_err(|err| {
            let why = if what == "password" {
                "it holds a character SASLprep prohibits, or mixes scripts wrongly".to_string()
            } else {
                crate::smtp::reply::escape(err.to_string().as_bytes())
            };
            SaslError::Credentials(format!(
                "the {what} is not allowed in SCRAM after SASLprep (RFC 4013): {why}"
            ))
        })
}

/// RFC 5802 5.1: "," and "=" in a saslname are written "=2C" and "=3D".
fn escape_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// RFC 7677 4 asks for at least 4096 iterations; fewer makes a stolen
/// exchange cheap to crack, so postie does not hash the password for it.
pub(crate) const MIN_ITERATIONS: u32 = 4096;
/// More than this is a server making postie burn CPU (a million rounds of
/// PBKDF2-SHA-256 take about a second).
pub(crate) const MAX_ITERATIONS: u32 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    fn digest(self) -> MessageDigest {
        match self {
            ScramHash::Sha1 => MessageDigest::sha1(),
            ScramHash::Sha256 => MessageDigest::sha256(),
        }
    }
}

/// One SCRAM exchange from the client's side, without channel binding
/// (`n,,`: postie's TLS layer does not export tls-exporter or tls-unique).
pub(crate) struct Scram {
    hash: ScramHash,
    password: String,
    client_first_bare: String,
    nonce: String,
    /// Set once the server-first message is answered.
    server_signature: Option<Vec<u8>>,
}

/// The client-final message and the proof inside it (to be hidden).
pub(crate) struct ClientFinal {
    pub(crate) message: String,
    pub(crate) proof: String,
}

impl Scram {
    /// A new exchange with a random nonce (OpenSSL's CSPRNG).
    pub(crate) fn new(hash: ScramHash, user: &str, password: &str) -> Result<Scram, SaslError> {
        let mut bytes = [0u8; 24];
        openssl::rand::rand_bytes(&mut bytes)
            .map_err(|err| SaslError::Credentials(format!("no random nonce: {err}")))?;
        Scram::with_nonce(hash, user, password, &STANDARD.encode(bytes))
    }

    /// As `new` with a given nonce: for the RFC examples.
    pub(crate) fn with_nonce(
        hash: ScramHash,
        user: &str,
        password: &str,
        nonce: &str,
    ) -> Result<Scram, SaslError> {
        let user = escape_name(&saslprep("user name", user)?);
        let password = saslprep("password", password)?;
        Ok(Scram {
            hash,
            password,
            client_first_bare: format!("n={user},r={nonce}"),
            nonce: nonce.to_string(),
            server_signature: None,
        })
    }

    /// The client-first message: no channel binding, no authzid.
    pub(crate) fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Checks the server-first message and returns the client-final one.
    pub(crate) fn client_final(&mut self, server_first: &str) -> Result<ClientFinal, SaslError> {
        let bad = |why: &str| SaslError::Protocol(format!("{why} in the SCRAM challenge"));
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for (index, attribute) in server_first.split(',').enumerate() {
            let (key, value) = attribute
                .split_once('=')
                .ok_or_else(|| bad("an attribute without a value"))?;
            match key {
                // RFC 5802 5.1: a mandatory extension postie cannot know.
                "m" if index == 0 => return Err(bad("a mandatory extension (m=)")),
                "e" => {
                    return Err(SaslError::Protocol(format!(
                        "the server ended the SCRAM exchange: {}",
                        crate::smtp::reply::escape(value.as_bytes())
                    )))
                }
                "r" => nonce = Some(value),
                "s" => salt = Some(value),
                "i" => iterations = Some(value),
                _ => {}
            }
        }
        let nonce = nonce.ok_or_else(|| bad("no nonce (r=)"))?;
        // RFC 5802 5.1: the server's nonce starts with the client's.
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(&self.nonce) {
            return Err(bad("a nonce that does not extend postie's"));
        }
        if nonce.chars().any(|c| !c.is_ascii_graphic() || c == ',') {
            return Err(bad("a nonce with unprintable characters"));
        }
        let salt = salt
            .and_then(|s| STANDARD.decode(s).ok())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("no salt (s=) or one that is not base64"))?;
        let iterations: u32 = iterations
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| bad("no iteration count (i=) or one that is not a number"))?;
        if iterations < MIN_ITERATIONS {
            return Err(SaslError::Protocol(format!(
                "the server asks for {iterations} SCRAM iterations, fewer than the {MIN_ITERATIONS} RFC 7677 requires"
            )));
        }
        if iterations > MAX_ITERATIONS {
            return Err(SaslError::Protocol(format!(
                "the server asks for {iterations} SCRAM iterations, more than the {MAX_ITERATIONS} postie computes"
            )));
        }
        let digest = self.hash.digest();
        let mut salted = vec![0u8; digest.size()];
        openssl::pkcs5::pbkdf2_hmac(
            self.password.as_bytes(),
            &salt,
            iterations as usize,
            digest,
            &mut salted,
        )
        .map_err(openssl_failed)?;
        let client_key = hmac(digest, &salted, b"Client Key")?;
        let stored_key = hash(digest, &client_key).map_err(openssl_failed)?;
        // "biws" is base64("n,,"), the GS2 header sent first.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = hmac(digest, &stored_key, auth_message.as_bytes())?;
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(digest, &salted, b"Server Key")?;
        self.server_signature = Some(hmac(digest, &server_key, auth_message.as_bytes())?);
        let proof = STANDARD.encode(proof);
        Ok(ClientFinal {
            message: format!("{without_proof},p={proof}"),
            proof,
        })
    }

    /// Checks the server-final message: the server proves it knows the
    /// password (RFC 5802 3, "v="), or says why it refused ("e=").
    pub(crate) fn verify(&self, server_final: &str) -> Result<(), SaslError> {
        let Some(expected) = &self.server_signature else {
            return Err(SaslError::Protocol(
                "a SCRAM server-final message before the client-final one".to_string(),
            ));
        };
        let first = server_final.split(',').next().unwrap_or("");
        if let Some(error) = first.strip_prefix("e=") {
            return Err(SaslError::Refused(format!(
                "the server refused the login with the SCRAM error {:?}",
                crate::smtp::reply::escape(error.as_bytes())
            )));
        }
        let Some(signature) = first.strip_prefix("v=") else {
            return Err(SaslError::Unproven(
                "the server sent no SCRAM server signature (v=)".to_string(),
            ));
        };
        let signature = STANDARD.decode(signature).unwrap_or_default();
        if signature.len() != expected.len() || !openssl::memcmp::eq(&signature, expected) {
            return Err(SaslError::Unproven(
                "the server's SCRAM signature is wrong: it did not prove that it knows the password"
                    .to_string(),
            ));
        }
        Ok(())
    }
}

fn openssl_failed(err: openssl::error::ErrorStack) -> SaslError {
    SaslError::Credentials(format!("OpenSSL: {err}"))
}

fn hmac(digest: MessageDigest, key: &[u8], data: &[u8]) -> Result<Vec<u8>, SaslError> {
    let key = PKey::hmac(key).map_err(openssl_failed)?;
    let mut signer = Signer::new(digest, &key).map_err(openssl_failed)?;
    signer.update(data).map_err(openssl_failed)?;
    signer.sign_to_vec().map_err(openssl_failed)
}

/// RFC 2195: the user name, a space and the hex HMAC-MD5 of the challenge
/// keyed with the password.
pub(crate) fn cram_md5(user: &str, password: &str, challenge: &[u8]) -> Result<String, SaslError> {
    let digest = hmac(MessageDigest::md5(), password.as_bytes(), challenge)?;
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{user} {hex}"))
}

/// RFC 7628 3.1: the initial client response, with the GS2 header naming
/// the user, and the host and port the client connected to.
pub(crate) fn oauthbearer(user: &str, host: &str, port: u16, token: &str) -> String {
    let user = escape_name(user);
    format!("n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01")
}

/// The XOAUTH2 initial response (Google's and Microsoft's documentation).
pub(crate) fn xoauth2(user: &str, token: &str) -> String {
    format!("user={user}\x01auth=Bearer {token}\x01\x01")
}

/// RFC 7628 3.2.3: after an error challenge the client sends this, so that
/// the server ends the exchange with its final reply.
pub(crate) const OAUTHBEARER_DUMMY: &str = "AQ==";

/// What an OAuth2 error challenge says (RFC 7628 3.2.2: base64 JSON with
/// `status`, maybe `scope`), for the error line; None when it is not that.
pub(crate) fn bearer_error(decoded: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(decoded).ok()?;
    let object = json.as_object()?;
    let field = |key: &str| match object.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    };
    let status = field("status")?;
    let mut text = format!("status {:?}", crate::smtp::reply::escape(status.as_bytes()));
    if let Some(scope) = field("scope") {
        text.push_str(&format!(
            ", scope {:?}",
            crate::smtp::reply::escape(scope.as_bytes())
        ));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5802_scram_sha1_example() {
        let mut scram = Scram::with_nonce(
            ScramHash::Sha1,
            "user",
            "pencil",
            "fyko+d2lbbFgONRv9qkxdawL",
        )
        .unwrap();
        assert_eq!(scram.client_first(), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let last = scram
            .client_final("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
            .unwrap();
        assert_eq!(
            last.message,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        assert_eq!(last.proof, "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
        scram.verify("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").unwrap();
    }

    fn rfc7677() -> Scram {
        let mut scram =
            Scram::with_nonce(ScramHash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(scram.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let last = scram
            .client_final("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        assert_eq!(
            last.message,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        scram
    }

    #[test]
    fn rfc7677_scram_sha256_example() {
        rfc7677()
            .verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
    }

    #[test]
    fn a_wrong_or_missing_server_signature_is_refused() {
        let scram = rfc7677();
        for server_final in [
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
            "v=",
            "v=not base64!",
            "",
            "x=1",
        ] {
            assert!(
                matches!(scram.verify(server_final), Err(SaslError::Unproven(_))),
                "{server_final:?}"
            );
        }
        assert!(matches!(
            scram.verify("e=invalid-proof"),
            Err(SaslError::Refused(e)) if e.contains("invalid-proof")
        ));
    }

    #[test]
    fn a_server_first_message_is_checked() {
        let first = |server_first: &str| {
            let mut scram = Scram::with_nonce(ScramHash::Sha256, "user", "pencil", "abc").unwrap();
            scram.client_final(server_first).map(|last| last.message)
        };
        let protocol = |server_first: &str| {
            assert!(
                matches!(first(server_first), Err(SaslError::Protocol(_))),
                "{server_first:?}"
            )
        };
        protocol("r=abc,s=QSXCR+Q6sek8bf92,i=4096"); // nonce not extended
        protocol("r=xyzdef,s=QSXCR+Q6sek8bf92,i=4096"); // not postie's
        protocol("r=abcdef,i=4096"); // no salt
        protocol("r=abcdef,s=QSXCR+Q6sek8bf92"); // no count
        protocol("m=ext,r=abcdef,s=QSXCR+Q6sek8bf92,i=4096");
        protocol("e=other-error");
        // A hostile server's text cannot move the terminal's cursor.
        assert!(matches!(
            first("e=x\x1b[2Jy"),
            Err(SaslError::Protocol(why)) if why.ends_with("x\\x1B[2Jy")
        ));
        protocol("r=abcdef,s=QSXCR+Q6sek8bf92,i=4095");
        protocol("r=abcdef,s=QSXCR+Q6sek8bf92,i=1000001");
        protocol("r=abcdef,s=QSXCR+Q6sek8bf92,i=-1");
        assert!(first("r=abcdef,s=QSXCR+Q6sek8bf92,i=4096").is_ok());
        // Extensions after the mandatory attributes are ignored.
        assert!(first("r=abcdef,s=QSXCR+Q6sek8bf92,i=4096,x=y").is_ok());
    }

    #[test]
    fn the_user_name_is_escaped_and_both_go_through_saslprep() {
        let scram = Scram::with_nonce(ScramHash::Sha1, "a=b,c", "x", "n").unwrap();
        assert_eq!(scram.client_first(), "n,,n=a=3Db=2Cc,r=n");
        // RFC 4013 3: the soft hyphen is mapped to nothing, U+00AA to "a",
        // the Roman numeral nine to "IX"; U+00A0 to a space.
        assert_eq!(saslprep("x", "I\u{AD}X").unwrap(), "IX");
        assert_eq!(saslprep("x", "user").unwrap(), "user");
        assert_eq!(saslprep("x", "USER").unwrap(), "USER");
        assert_eq!(saslprep("x", "\u{AA}").unwrap(), "a");
        assert_eq!(saslprep("x", "\u{2168}").unwrap(), "IX");
        assert_eq!(saslprep("x", "a\u{A0}b").unwrap(), "a b");
        // Prohibited: a control character; bidirectional text mixed wrongly.
        assert!(matches!(
            saslprep("password", "\u{7}"),
            Err(SaslError::Credentials(_))
        ));
        assert!(saslprep("x", "\u{627}\u{31}").is_err());
        assert!(Scram::with_nonce(ScramHash::Sha256, "user", "a\u{7}", "n").is_err());
        // No character of a refused password reaches the error.
        match Scram::with_nonce(ScramHash::Sha256, "user", "pa\u{E000}ss", "n") {
            Err(SaslError::Credentials(why)) => assert!(!why.contains('\u{E000}'), "{why}"),
            _ => panic!("a private-use character passed SASLprep"),
        }
    }

    #[test]
    fn rfc2195_cram_md5_example() {
        let response = cram_md5(
            "tim",
            "tanstaaftanstaaf",
            b"<1896.697170952@postoffice.reston.mci.net>",
        )
        .unwrap();
        assert_eq!(response, "tim b913a602c7eda7a495b4e6e7334d3890");
    }

    #[test]
    fn oauth2_initial_responses() {
        // RFC 7628 4.1, with the token of its example.
        assert_eq!(
            oauthbearer("user@example.com", "server.example.com", 143, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="),
            "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
        );
        assert_eq!(
            xoauth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg"),
            "user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg\x01\x01"
        );
    }

    #[test]
    fn an_oauth2_error_challenge_says_its_status() {
        let json = br#"{"status":"invalid_token","scope":"example_scope","openid-configuration":"https://example.com/.well-known/openid-configuration"}"#;
        assert_eq!(
            bearer_error(json).unwrap(),
            r#"status "invalid_token", scope "example_scope""#
        );
        assert_eq!(
            bearer_error(br#"{"status":"400","schemes":"Bearer"}"#).unwrap(),
            r#"status "400""#
        );
        assert_eq!(bearer_error(b"not json"), None);
        assert_eq!(bearer_error(br#"{"scope":"x"}"#), None);
    }

    #[test]
    fn auto_prefers_scram_and_never_sends_a_password_in_clear() {
        use Mechanism::*;
        assert_eq!(
            candidates(AuthMethod::Auto, false, true),
            [ScramSha256, ScramSha1, Plain, Login]
        );
        assert_eq!(
            candidates(AuthMethod::Auto, false, false),
            [ScramSha256, ScramSha1, CramMd5]
        );
        assert_eq!(
            candidates(AuthMethod::Auto, true, true),
            [Oauthbearer, Xoauth2]
        );
        assert!(candidates(AuthMethod::Auto, true, false).is_empty());
        assert_eq!(candidates(AuthMethod::Plain, false, false), [Plain]);
        assert_eq!(candidates(AuthMethod::CramMd5, false, true), [CramMd5]);
    }
}
