//! Getting the first token, once, interactively: the device authorization
//! grant (RFC 8628) or the authorization-code grant with PKCE (RFC 7636)
//! and a loopback redirect (RFC 8252 §7.3). What the user must see (the
//! URL, the code) goes through `show`: printing is the command's.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::exit::{Error, Exit, Result};
use crate::oauth2::http::{self, Failure, Reply};
use crate::oauth2::provider::{now, Setup};
use crate::oauth2::store::{self, Stored};

/// A token endpoint's successful answer (RFC 6749 §5.1).
pub(crate) struct Token {
    pub(crate) access_token: String,
    pub(crate) refresh_token: Option<String>,
    pub(crate) scope: Option<String>,
    /// Seconds since the epoch.
    pub(crate) expires_at: u64,
}

impl Token {
    pub(crate) fn from_reply(reply: Reply) -> std::result::Result<Token, Failure> {
        if let Some(error) = reply.text("error") {
            let description = reply.text("error_description").unwrap_or("");
            // The provider's words, escaped: nothing it sends may move
            // the terminal's cursor.
            return Err(Failure::Refused(escape(
                format!("{error} {description}").trim(),
            )));
        }
        let Some(access_token) = reply.text("access_token").filter(|t| !t.is_empty()) else {
            return Err(if (400..500).contains(&reply.status) {
                Failure::Refused(format!("HTTP {}", reply.status))
            } else {
                Failure::Malformed("the answer has no access_token".to_string())
            });
        };
        // RFC 6749 §5.1 recommends expires_in; without it, an hour is
        // what the providers give.
        let expires_in = reply
            .json
            .get("expires_in")
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .unwrap_or(3600);
        Ok(Token {
            access_token: access_token.to_string(),
            refresh_token: reply.text("refresh_token").map(str::to_string),
            scope: reply.text("scope").map(str::to_string),
            // A hostile u64::MAX must not overflow (a panic, or a token
            // that is never refreshed after a wrap).
            expires_at: now().saturating_add(expires_in),
        })
    }
}

/// A provider's text for the terminal, control characters escaped.
fn escape(text: &str) -> String {
    crate::smtp::reply::escape(text.as_bytes())
}

/// Stores the token that a grant gave.
fn keep(setup: &Setup, token: Token) -> Result<Stored> {
    let stored = Stored {
        provider: setup.provider.name.clone(),
        scopes: token.scope.unwrap_or_else(|| setup.provider.scopes.clone()),
        access_token: token.access_token,
        expires_at: token.expires_at,
        refresh_token: token.refresh_token,
    };
    let _lock = store::lock(&setup.store)?;
    store::write(&setup.store, &stored)?;
    Ok(stored)
}

fn login_failed(setup: &Setup, why: impl std::fmt::Display) -> Error {
    setup.login_again(format_args!("login: {why}"))
}

/// The device authorization grant (RFC 8628 §3): asks for a code, shows
/// where to enter it, and polls the token endpoint until the user has
/// approved, declined, or the code has expired.
pub(crate) fn device(
    setup: &Setup,
    client_secret: Option<&str>,
    show: &dyn Fn(&str),
) -> Result<Stored> {
    let provider = &setup.provider;
    let Some(device_url) = &provider.device_url else {
        return Err(Error::config(format!(
            "the OAuth2 account {} has no oauth2_device_url for the device flow",
            setup.account
        ))
        .hint("set oauth2_device_url, or use --browser"));
    };
    let mut form = vec![
        ("client_id", provider.client_id.as_str()),
        ("scope", provider.scopes.as_str()),
    ];
    if let Some(secret) = client_secret {
        form.push(("client_secret", secret));
    }
    let asking = "asking for a device code";
    let reply = http::post_form(device_url, &form).map_err(|f| f.error(setup, asking))?;
    if let Some(error) = reply.text("error") {
        return Err(login_failed(
            setup,
            format!("{asking}: the provider refused: {}", escape(error)),
        ));
    }
    let field = |key: &str| reply.text(key).map(str::to_string);
    let (Some(device_code), Some(user_code)) = (field("device_code"), field("user_code")) else {
        return Err(Failure::Malformed("no device_code or user_code".into()).error(setup, asking));
    };
    // Google says verification_url.
    let Some(uri) = field("verification_uri").or_else(|| field("verification_url")) else {
        return Err(Failure::Malformed("no verification_uri".into()).error(setup, asking));
    };
    let number = |key: &str| reply.json.get(key).and_then(|v| v.as_u64());
    let (mut interval, wait) = device_timing(number("interval"), number("expires_in"));
    let deadline = Instant::now() + wait;
    show(&format!(
        "To sign in, open {} and enter the code {}",
        escape(&uri),
        escape(&user_code)
    ));
    if let Some(complete) = field("verification_uri_complete") {
        show(&format!("(or open {})", escape(&complete)));
    }
    let mut form = vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code.as_str()),
        ("client_id", provider.client_id.as_str()),
    ];
    if let Some(secret) = client_secret {
        form.push(("client_secret", secret));
    }
    let waiting = "waiting for the sign-in";
    loop {
        if Instant::now() >= deadline {
            return Err(login_failed(setup, "the code expired before the sign-in"));
        }
        std::thread::sleep(Duration::from_secs(interval));
        let reply =
            http::post_form(&provider.token_url, &form).map_err(|f| f.error(setup, waiting))?;
        match reply.text("error") {
            // RFC 8628 §3.5.
            Some("authorization_pending") => continue,
            Some("slow_down") => {
                interval = (interval + 5).min(MAX_POLL_INTERVAL);
                continue;
            }
            Some("expired_token") => {
                return Err(login_failed(setup, "the code expired before the sign-in"))
            }
            Some("access_denied") => return Err(login_failed(setup, "the sign-in was declined")),
            _ => {}
        }
        let token = Token::from_reply(reply).map_err(|f| f.error(setup, waiting))?;
        return keep(setup, token);
    }
}

/// The longest poll interval and code lifetime taken from a device
/// authorization answer: a hostile or broken provider's huge numbers would
/// otherwise sleep for ever or overflow `Instant + Duration` (a panic).
const MAX_POLL_INTERVAL: u64 = 60;
const MAX_DEVICE_WAIT: u64 = 3600;

/// The poll interval in seconds and how long the code is good for
/// (RFC 8628 §3.2 defaults: 5 s; 900 s is what the providers give).
fn device_timing(interval: Option<u64>, expires_in: Option<u64>) -> (u64, Duration) {
    let interval = interval.unwrap_or(5).clamp(1, MAX_POLL_INTERVAL);
    let wait = expires_in.unwrap_or(900).min(MAX_DEVICE_WAIT);
    (interval, Duration::from_secs(wait))
}

/// How long one connection to the redirect listener may take to send its
/// request.
const REQUEST_WAIT: Duration = Duration::from_secs(10);

/// How long the browser flow waits for the redirect.
const BROWSER_WAIT: Duration = Duration::from_secs(300);

/// The authorization-code grant with PKCE S256 (RFC 7636) and a loopback
/// redirect (RFC 8252 §7.3): listens on 127.0.0.1 at a port the system
/// picks, shows the URL to open, takes the one request that carries
/// `code` and the right `state`, and exchanges the code.
pub(crate) fn browser(
    setup: &Setup,
    client_secret: Option<&str>,
    show: &dyn Fn(&str),
) -> Result<Stored> {
    let provider = &setup.provider;
    let Some(auth_url) = &provider.auth_url else {
        return Err(Error::config(format!(
            "the OAuth2 account {} has no oauth2_auth_url for the browser flow",
            setup.account
        ))
        .hint("set oauth2_auth_url, or leave out --browser"));
    };
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|err| {
        Error::new(
            Exit::IoErr,
            format!("cannot listen on 127.0.0.1 for the redirect: {err}"),
        )
    })?;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let redirect_uri = format!("http://127.0.0.1:{port}/");
    let verifier = random_text(32)?;
    let challenge = URL_SAFE_NO_PAD.encode(openssl::sha::sha256(verifier.as_bytes()));
    let state = random_text(16)?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("response_type", "code")
        .append_pair("client_id", &provider.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", &provider.scopes)
        .append_pair("state", &state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    if provider.name == "google" {
        // Google gives a refresh token only when asked for offline access.
        query
            .append_pair("access_type", "offline")
            .append_pair("prompt", "consent");
    }
    let separator = if auth_url.contains('?') { '&' } else { '?' };
    show(&format!(
        "Open this URL in a browser to sign in:\n{auth_url}{separator}{}",
        query.finish()
    ));
    let code = redirected_code(&listener, &state).map_err(|why| login_failed(setup, why))?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("client_id", provider.client_id.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    if let Some(secret) = client_secret {
        form.push(("client_secret", secret));
    }
    let doing = "exchanging the authorization code";
    let reply = http::post_form(&provider.token_url, &form).map_err(|f| f.error(setup, doing))?;
    let token = Token::from_reply(reply).map_err(|f| f.error(setup, doing))?;
    keep(setup, token)
}

/// `bytes` random bytes as base64url: the PKCE verifier (43 characters
/// for 32 bytes, RFC 7636 §4.1) and the state.
fn random_text(bytes: usize) -> Result<String> {
    let mut buf = vec![0; bytes];
    openssl::rand::rand_bytes(&mut buf)
        .map_err(|err| Error::new(Exit::IoErr, format!("no random bytes: {err}")))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// Waits for the browser's request to the redirect URI. Only the request
/// line is read: this is not an HTTP server, it answers one redirect.
fn redirected_code(listener: &TcpListener, state: &str) -> std::result::Result<String, String> {
    let deadline = Instant::now() + BROWSER_WAIT;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    loop {
        if Instant::now() >= deadline {
            return Err(format!(
                "no redirect came within {} s",
                BROWSER_WAIT.as_secs()
            ));
        }
        let (stream, _) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(err) => return Err(format!("the redirect could not be taken: {err}")),
        };
        let Some(target) = request_target(&stream, REQUEST_WAIT) else {
            continue;
        };
        let Some((_, query)) = target.split_once('?') else {
            // The browser asking for /favicon.ico and the like.
            answer(stream, "404 Not Found", "Not the redirect.");
            continue;
        };
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        if get("state").as_deref() != Some(state) {
            answer(
                stream,
                "400 Bad Request",
                "The state does not match; sign in again.",
            );
            return Err("the redirect's state does not match (a stale or forged request)".into());
        }
        if let Some(error) = get("error") {
            answer(stream, "200 OK", "Sign-in failed; see the terminal.");
            return Err(format!("the provider said: {}", escape(&error)));
        }
        let Some(code) = get("code") else {
            answer(stream, "400 Bad Request", "No code in the redirect.");
            return Err("the redirect has no code".into());
        };
        answer(
            stream,
            "200 OK",
            "Signed in: you can close this window and return to postie.",
        );
        return Ok(code);
    }
}

/// The target of a GET's request line, read within `limit` in all and 8 KiB. The
/// header lines are read too (and ignored): closing a socket with unread
/// data resets it, and the browser would lose the answer.
fn request_target(stream: &TcpStream, limit: Duration) -> Option<String> {
    stream.set_nonblocking(false).ok()?;
    // 10 s for the whole request, not for each read: a local process
    // dribbling a byte every few seconds must not hold the listener (and
    // the browser's redirect behind it) for hours.
    let reader = Deadlined {
        stream,
        deadline: Instant::now() + limit,
    };
    let mut reader = BufReader::new(std::io::Read::take(reader, 8192));
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header.trim_end().is_empty() => break,
            Ok(_) => {}
        }
    }
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("GET"), Some(target)) => Some(target.to_string()),
        _ => None,
    }
}

/// A stream whose reads fail once `deadline` has passed.
struct Deadlined<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl std::io::Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        std::io::Read::read(&mut self.stream, buf)
    }
}

fn answer(mut stream: TcpStream, status: &str, text: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, json: serde_json::Value) -> Reply {
        Reply { status, json }
    }

    #[test]
    fn token_answers_of_rfc_6749_section_5() {
        let token = Token::from_reply(reply(
            200,
            serde_json::json!({"access_token": "a", "expires_in": "60", "refresh_token": "r"}),
        ))
        .map_err(|_| ())
        .unwrap();
        assert_eq!(token.access_token, "a");
        assert_eq!(token.refresh_token.as_deref(), Some("r"));
        assert!(token.expires_at >= now() + 59 && token.expires_at <= now() + 60);
        let refused = Token::from_reply(reply(
            400,
            serde_json::json!({"error": "invalid_grant", "error_description": "revoked"}),
        ));
        assert!(matches!(refused, Err(Failure::Refused(why)) if why == "invalid_grant revoked"));
        let hostile = Token::from_reply(reply(
            400,
            serde_json::json!({"error": "invalid_grant", "error_description": "\u{1b}]0;pwned\u{7}"}),
        ));
        assert!(
            matches!(&hostile, Err(Failure::Refused(why)) if why == "invalid_grant \\x1B]0;pwned\\x07")
        );
        let nothing = Token::from_reply(reply(200, serde_json::json!({"token_type": "Bearer"})));
        assert!(matches!(nothing, Err(Failure::Malformed(_))));
        let unauthorized = Token::from_reply(reply(401, serde_json::json!({})));
        assert!(matches!(unauthorized, Err(Failure::Refused(_))));
    }

    #[test]
    fn a_reply_debug_shows_no_token() {
        let answer = reply(
            200,
            serde_json::json!({"access_token": "AT-s3cret", "refresh_token": "RT-s3cret"}),
        );
        assert!(!format!("{answer:?}").contains("s3cret"));
    }

    #[test]
    fn hostile_numbers_neither_overflow_nor_sleep_for_ever() {
        let token = Token::from_reply(reply(
            200,
            serde_json::json!({"access_token": "a", "expires_in": u64::MAX}),
        ))
        .map_err(|_| ())
        .unwrap();
        assert_eq!(token.expires_at, u64::MAX);
        let (interval, wait) = device_timing(Some(u64::MAX), Some(u64::MAX));
        assert_eq!(interval, MAX_POLL_INTERVAL);
        assert_eq!(wait, Duration::from_secs(MAX_DEVICE_WAIT));
        let _ = Instant::now() + wait;
        assert_eq!(device_timing(Some(0), None), (1, Duration::from_secs(900)));
        assert_eq!(
            device_timing(None, Some(600)),
            (5, Duration::from_secs(600))
        );
    }

    #[test]
    fn a_dribbling_connection_is_cut_off_at_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            for _ in 0..40 {
                if stream.write_all(b"G").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let (stream, _) = listener.accept().unwrap();
        let started = Instant::now();
        assert_eq!(request_target(&stream, Duration::from_secs(1)), None);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        drop(stream);
        client.join().unwrap();
    }

    #[test]
    fn pkce_verifier_is_43_characters_of_the_unreserved_set() {
        let verifier = random_text(32).unwrap();
        assert_eq!(verifier.len(), 43);
        assert!(verifier
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn pkce_challenge_of_rfc_7636_appendix_b() {
        let challenge = URL_SAFE_NO_PAD.encode(openssl::sha::sha256(
            b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        ));
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }
}
