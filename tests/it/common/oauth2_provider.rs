//! A local OAuth2 provider and an SMTP server that checks XOAUTH2 and
//! OAUTHBEARER tokens against it, both on 127.0.0.1.
//!
//! The provider speaks real HTTP/1.1 (one request per connection, then
//! close) with a device-authorization endpoint (RFC 8628), a token
//! endpoint for the device_code, authorization_code (with the PKCE S256
//! check of RFC 7636) and refresh_token grants (rotating the refresh
//! token, as Microsoft and Google do), tokens that expire in seconds, and
//! revocation. The SMTP server is a small scripted one: EHLO, AUTH (the
//! token must be the provider's and unexpired), MAIL, RCPT, DATA, QUIT.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

use super::lock;

pub const CLIENT_ID: &str = "postie-test-client";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[derive(Default)]
struct State {
    /// access token -> expiry (seconds since the epoch).
    access: HashMap<String, u64>,
    /// valid refresh tokens.
    refresh: Vec<String>,
    /// device_code -> polls so far.
    devices: HashMap<String, usize>,
    /// code -> (code_challenge, redirect_uri).
    codes: HashMap<String, (String, String)>,
    serial: u64,
    /// What the device-code polls answer before the token, in order.
    device_answers: Vec<String>,
    /// Answer every request with 503.
    down: bool,
    /// Every request: "METHOD PATH grant_type".
    requests: Vec<String>,
}

impl State {
    fn next(&mut self, prefix: &str) -> String {
        self.serial += 1;
        format!("{prefix}-{}-{}", self.serial, now())
    }
}

pub struct OAuthProvider {
    pub port: u16,
    state: Arc<Mutex<State>>,
    /// Lifetime of the access tokens it issues from now on.
    lifetime: Arc<AtomicU64>,
    refreshes: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl OAuthProvider {
    pub fn start() -> OAuthProvider {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let provider = OAuthProvider {
            port,
            state: Arc::new(Mutex::new(State {
                device_answers: vec!["authorization_pending".to_string()],
                ..State::default()
            })),
            lifetime: Arc::new(AtomicU64::new(2)),
            refreshes: Arc::default(),
            stop: Arc::default(),
        };
        let (state, lifetime, refreshes, stop) = (
            provider.state.clone(),
            provider.lifetime.clone(),
            provider.refreshes.clone(),
            provider.stop.clone(),
        );
        listener.set_nonblocking(true).unwrap();
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (state, lifetime, refreshes) =
                            (state.clone(), lifetime.clone(), refreshes.clone());
                        thread::spawn(move || {
                            let _ = serve(stream, &state, &lifetime, &refreshes);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        provider
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// The account keys that point at this provider.
    pub fn account_keys(&self) -> String {
        format!(
            "oauth2_provider = \"test\"\noauth2_client_id = \"{CLIENT_ID}\"\n\
             oauth2_token_url = \"{}\"\noauth2_device_url = \"{}\"\n\
             oauth2_auth_url = \"{}\"\noauth2_scopes = \"smtp offline\"\n",
            self.url("token"),
            self.url("device"),
            self.url("authorize")
        )
    }

    /// Access tokens issued from now on live this long.
    pub fn set_lifetime(&self, seconds: u64) {
        self.lifetime.store(seconds, Ordering::SeqCst);
    }

    /// How many refresh_token grants succeeded.
    pub fn refreshes(&self) -> usize {
        self.refreshes.load(Ordering::SeqCst)
    }

    /// Every refresh token stops working (the user revoked the grant).
    pub fn revoke(&self) {
        lock(&self.state).refresh.clear();
    }

    /// Every token it ever issued, access and refresh, for leak checks.
    pub fn all_tokens(&self) -> Vec<String> {
        let state = lock(&self.state);
        state.access.keys().chain(&state.refresh).cloned().collect()
    }

    /// The errors the next device-code polls get before the token
    /// (default: one `authorization_pending`).
    pub fn set_device_answers(&self, answers: &[&str]) {
        lock(&self.state).device_answers = answers.iter().map(|a| a.to_string()).collect();
    }

    /// While down, every request is answered 503.
    pub fn set_down(&self, down: bool) {
        lock(&self.state).down = down;
    }

    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).requests.clone()
    }

    /// A token file for `account`, as a login would have left it, whose
    /// access token expired a minute ago: the next send must refresh.
    pub fn seed_expired(&self, store: &std::path::Path) -> String {
        let mut state = lock(&self.state);
        let access = state.next("at");
        let refresh = state.next("rt");
        state.access.insert(access.clone(), now() - 60);
        state.refresh.push(refresh.clone());
        let json = serde_json::json!({
            "provider": "test",
            "scopes": "smtp offline",
            "access_token": access,
            "expires_at": now() - 60,
            "refresh_token": refresh,
        });
        std::fs::create_dir_all(store.parent().unwrap()).unwrap();
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(store)
            .unwrap();
        file.write_all(json.to_string().as_bytes()).unwrap();
        refresh
    }

    /// What the user's browser and the provider's sign-in page do for the
    /// authorization URL postie printed: a code bound to its PKCE
    /// challenge and redirect URI, and the redirect URL with code and state.
    pub fn approve(&self, authorization_url: &str) -> String {
        let query = authorization_url.split_once('?').unwrap().1;
        let pairs: HashMap<String, String> = url_pairs(query);
        assert_eq!(pairs["client_id"], CLIENT_ID);
        assert_eq!(pairs["code_challenge_method"], "S256");
        assert_eq!(pairs["response_type"], "code");
        let redirect = pairs["redirect_uri"].clone();
        assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");
        let mut state = lock(&self.state);
        let code = state.next("code");
        state.codes.insert(
            code.clone(),
            (pairs["code_challenge"].clone(), redirect.clone()),
        );
        format!("{redirect}?code={code}&state={}", pairs["state"])
    }
}

impl Drop for OAuthProvider {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn url_pairs(query: &str) -> HashMap<String, String> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn serve(
    stream: TcpStream,
    state: &Mutex<State>,
    lifetime: &AtomicU64,
    refreshes: &AtomicUsize,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0;
    let mut form_type = false;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "content-type" => {
                form_type = value
                    .trim()
                    .starts_with("application/x-www-form-urlencoded")
            }
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let form = url_pairs(&String::from_utf8_lossy(&body));
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    lock(state).requests.push(format!(
        "{} {path} {}",
        request_line.split_whitespace().next().unwrap_or(""),
        form.get("grant_type").map_or("", String::as_str)
    ));
    let (status, json) =
        if !form_type || form.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
            (400, serde_json::json!({"error": "invalid_client"}))
        } else {
            answer(&path, &form, state, lifetime, refreshes)
        };
    let text = json.to_string();
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )
}

fn answer(
    path: &str,
    form: &HashMap<String, String>,
    state: &Mutex<State>,
    lifetime: &AtomicU64,
    refreshes: &AtomicUsize,
) -> (u16, serde_json::Value) {
    let mut state = lock(state);
    if state.down {
        return (503, serde_json::json!({"error": "temporarily_unavailable"}));
    }
    let issue = |state: &mut State| {
        let access = state.next("at");
        let refresh = state.next("rt");
        let expires_in = lifetime.load(Ordering::SeqCst);
        state.access.insert(access.clone(), now() + expires_in);
        state.refresh.push(refresh.clone());
        (
            200,
            serde_json::json!({
                "token_type": "Bearer",
                "access_token": access,
                "refresh_token": refresh,
                "expires_in": expires_in,
                "scope": "smtp offline",
            }),
        )
    };
    let error = |e: &str| (400, serde_json::json!({"error": e}));
    match (path, form.get("grant_type").map(String::as_str)) {
        ("/device", _) => {
            let device_code = state.next("device");
            state.devices.insert(device_code.clone(), 0);
            (
                200,
                serde_json::json!({
                    "device_code": device_code,
                    "user_code": "WDJB-MJHT",
                    "verification_uri": "https://provider.example/device",
                    "expires_in": 60,
                    "interval": 1,
                }),
            )
        }
        ("/token", Some("urn:ietf:params:oauth:grant-type:device_code")) => {
            let code = form.get("device_code").cloned().unwrap_or_default();
            let answers = state.device_answers.clone();
            match state.devices.get_mut(&code) {
                None => error("invalid_grant"),
                // The user approves while postie waits: the scripted
                // answers first, then the token.
                Some(polls) if *polls < answers.len() => {
                    *polls += 1;
                    error(&answers[*polls - 1])
                }
                Some(_) => {
                    state.devices.remove(&code);
                    issue(&mut state)
                }
            }
        }
        ("/token", Some("authorization_code")) => {
            let code = form.get("code").cloned().unwrap_or_default();
            let Some((challenge, redirect)) = state.codes.remove(&code) else {
                return error("invalid_grant");
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let computed = URL_SAFE_NO_PAD.encode(openssl::sha::sha256(verifier.as_bytes()));
            if computed != challenge || form.get("redirect_uri") != Some(&redirect) {
                return error("invalid_grant");
            }
            issue(&mut state)
        }
        ("/token", Some("refresh_token")) => {
            let token = form.get("refresh_token").cloned().unwrap_or_default();
            let Some(at) = state.refresh.iter().position(|t| *t == token) else {
                return error("invalid_grant");
            };
            // Rotation: the old refresh token is spent.
            state.refresh.remove(at);
            refreshes.fetch_add(1, Ordering::SeqCst);
            issue(&mut state)
        }
        _ => (404, serde_json::json!({"error": "not_found"})),
    }
}

/// An SMTP server that takes any number of sessions and accepts AUTH
/// XOAUTH2 or OAUTHBEARER only with a token the provider issued and that
/// has not expired.
pub struct OAuthSmtp {
    pub port: u16,
    /// The message data of each accepted message.
    pub messages: Arc<Mutex<Vec<String>>>,
    /// "ok TOKEN-VALIDITY" lines per AUTH.
    pub auths: Arc<Mutex<Vec<bool>>>,
}

impl OAuthSmtp {
    pub fn start(provider: &OAuthProvider) -> OAuthSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages: Arc<Mutex<Vec<String>>> = Arc::default();
        let auths: Arc<Mutex<Vec<bool>>> = Arc::default();
        let (state, m, a) = (provider.state.clone(), messages.clone(), auths.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (state, m, a) = (state.clone(), m.clone(), a.clone());
                thread::spawn(move || {
                    let _ = smtp_session(stream, &state, &m, &a);
                });
            }
        });
        OAuthSmtp {
            port,
            messages,
            auths,
        }
    }

    pub fn messages(&self) -> Vec<String> {
        lock(&self.messages).clone()
    }

    pub fn auths(&self) -> Vec<bool> {
        lock(&self.auths).clone()
    }
}

/// The token in an XOAUTH2 or OAUTHBEARER initial response.
fn bearer_of(encoded: &str) -> Option<String> {
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    decoded
        .split('\x01')
        .find_map(|part| part.strip_prefix("auth=Bearer "))
        .map(str::to_string)
}

fn smtp_session(
    stream: TcpStream,
    state: &Mutex<State>,
    messages: &Mutex<Vec<String>>,
    auths: &Mutex<Vec<bool>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    out.write_all(b"220 oauth.test ESMTP\r\n")?;
    let mut authed = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-oauth.test\r\n250-AUTH XOAUTH2 OAUTHBEARER\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("AUTH ") {
            let mut words = line.split_whitespace().skip(1);
            let _mechanism = words.next();
            let token = words.next().and_then(bearer_of);
            let ok = token.is_some_and(|t| lock(state).access.get(&t).is_some_and(|&e| e > now()));
            lock(auths).push(ok);
            authed = ok;
            if ok {
                b"235 2.7.0 accepted\r\n"
            } else {
                b"535 5.7.8 invalid token\r\n"
            }
        } else if upper.starts_with("MAIL") && !authed {
            b"530 5.7.0 authentication required\r\n"
        } else if upper.starts_with("MAIL")
            || upper.starts_with("RCPT")
            || upper.starts_with("RSET")
            || upper.starts_with("NOOP")
        {
            b"250 ok\r\n"
        } else if upper.starts_with("DATA") {
            out.write_all(b"354 go\r\n")?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l)? == 0 {
                    return Ok(());
                }
                if l == ".\r\n" || l == ".\n" {
                    break;
                }
                data.push_str(&l);
            }
            lock(messages).push(data);
            b"250 queued\r\n"
        } else if upper.starts_with("QUIT") {
            out.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            b"502 unknown\r\n"
        };
        out.write_all(reply)?;
    }
}
