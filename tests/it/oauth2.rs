//! OAuth2 accounts end to end: `postie oauth2 login` (device flow and the
//! browser's loopback redirect), `status`, and sends that refresh the
//! access token, against the local provider and an SMTP server that checks
//! the token with it (tests/it/common/oauth2_provider.rs).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::{closed_port, hermetic_env, OAuthProvider, OAuthSmtp};

struct Setup {
    home: PathBuf,
    provider: OAuthProvider,
    smtp: OAuthSmtp,
}

impl Setup {
    fn new() -> Setup {
        Setup::with_keys(None)
    }

    /// `keys` replaces the provider's account keys (a provider that is down).
    fn with_keys(keys: Option<String>) -> Setup {
        let home = tempfile::Builder::new()
            .prefix("postie-oauth2-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        let provider = OAuthProvider::start();
        let smtp = OAuthSmtp::start(&provider);
        let setup = Setup {
            home,
            provider,
            smtp,
        };
        let keys = keys.unwrap_or_else(|| setup.provider.account_keys());
        let dir = setup.home.join(".config").join("postie");
        hermetic_env(&setup.home);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "default = \"work\"\n[accounts.work]\nserver = \"127.0.0.1:{}\"\ntls = \"none\"\n\
                 from = \"me@example.com\"\nuser = \"me@example.com\"\nauth = \"xoauth2\"\n\
                 logfile = \"{}\"\n{keys}",
                setup.smtp.port,
                setup.home.join("postie.log").display()
            ),
        )
        .unwrap();
        setup
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_postie"));
        cmd.env_clear().envs(hermetic_env(&self.home)).args(args);
        cmd
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn send(&self) -> Output {
        self.run(
            &["b@example.com", "--subject", "hi", "--body", "oauth body"],
            "",
        )
    }

    fn store(&self) -> PathBuf {
        self.home.join(".local/state/postie/oauth2/work.json")
    }

    /// No token the provider issued in `texts`, nor in any file under
    /// `dir` but the token file itself.
    fn assert_no_token(&self, texts: &[&[u8]]) {
        let tokens = self.provider.all_tokens();
        assert!(!tokens.is_empty());
        let mut all: Vec<(String, Vec<u8>)> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("output {i}"), t.to_vec()))
            .collect();
        for file in walk(&self.home) {
            if file.extension().is_some_and(|e| e == "json")
                && file.starts_with(self.store().parent().unwrap())
            {
                continue;
            }
            all.push((
                file.display().to_string(),
                std::fs::read(&file).unwrap_or_default(),
            ));
        }
        for (name, text) in all {
            let text = String::from_utf8_lossy(&text);
            for token in &tokens {
                assert!(!text.contains(token.as_str()), "a token in {name}: {text}");
            }
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn device_login_stores_a_private_token_and_status_shows_its_expiry_only() {
    let s = Setup::new();
    let login = s.run(&["oauth2", "login", "--account", "work"], "");
    let stderr = text(&login.stderr);
    assert_eq!(login.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("https://provider.example/device") && stderr.contains("WDJB-MJHT"),
        "{stderr}"
    );
    let mode = std::fs::metadata(s.store()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(s.store().parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    // One pending poll, then the token (RFC 8628 §3.5).
    let device_polls = s
        .provider
        .requests()
        .iter()
        .filter(|r| r.ends_with("device_code"))
        .count();
    assert_eq!(device_polls, 2, "{:?}", s.provider.requests());

    let status = s.run(&["oauth2", "status"], "");
    let stdout = text(&status.stdout);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    for wanted in [
        "account: work",
        "provider: test",
        "scopes: smtp offline",
        "expires: in ",
        "refresh token: stored",
    ] {
        assert!(stdout.contains(wanted), "{wanted}: {stdout}");
    }
    s.assert_no_token(&[&login.stdout, &login.stderr, &status.stdout, &status.stderr]);
}

/// `postie oauth2 login --browser` started, its stderr read up to the
/// authorization URL it prints: the child, the rest of its stderr, the URL.
fn start_browser_login(
    s: &Setup,
) -> (
    std::process::Child,
    BufReader<std::process::ChildStderr>,
    String,
) {
    let mut child = s
        .command(&["oauth2", "login", "--browser"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let url = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no URL printed");
        if line.starts_with(&s.provider.url("authorize")) {
            break line.trim().to_string();
        }
    };
    (child, stderr, url)
}

#[test]
fn browser_login_takes_the_loopback_redirect_with_pkce() {
    let s = Setup::new();
    let (mut child, mut stderr, url) = start_browser_login(&s);
    // The browser: a forged state is refused... only after the real one
    // would be too late, so the real redirect is the one sent.
    let redirect = s.provider.approve(&url);
    let answer = http_get(&redirect);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(s.store().exists());
    // The token works for a send.
    let sent = s.send();
    assert_eq!(sent.status.code(), Some(0), "{}", text(&sent.stderr));
    assert_eq!(s.provider.refreshes(), 1, "the 2 s token was refreshed");
}

/// A GET by hand: the test plays the browser following the redirect.
fn http_get(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    // One write, as a browser sends it.
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn an_expired_access_token_is_refreshed_once_and_the_message_sent() {
    let s = Setup::new();
    s.provider.set_lifetime(3600);
    s.provider.seed_expired(&s.store());
    let out = s.run(
        &[
            "-vv",
            "b@example.com",
            "--subject",
            "hi",
            "--body",
            "oauth body",
        ],
        "",
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("AUTH XOAUTH2 [credentials hidden]"),
        "{stderr}"
    );
    assert!(s.home.join("postie.log").exists());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(s.provider.refreshes(), 1);
    assert_eq!(s.smtp.auths(), [true]);
    assert!(s.smtp.messages()[0].contains("oauth body"));
    // The rotated refresh token was kept: the next send needs no refresh,
    // and the one after a revocation-free expiry could still refresh.
    let again = s.send();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(s.provider.refreshes(), 1);
    let mode = std::fs::metadata(s.store()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    s.assert_no_token(&[&out.stdout, &out.stderr, &again.stdout, &again.stderr]);
}

#[test]
fn a_revoked_refresh_token_is_77_with_the_login_hint() {
    let s = Setup::new();
    s.provider.seed_expired(&s.store());
    s.provider.revoke();
    let out = s.send();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{stderr}");
    assert!(stderr.contains("invalid_grant"), "{stderr}");
    assert!(
        stderr.contains("run `postie oauth2 login --account work` again"),
        "{stderr}"
    );
    assert!(s.smtp.messages().is_empty());
    s.assert_no_token(&[&out.stdout, &out.stderr]);
}

#[test]
fn an_unreachable_provider_is_75_and_sendmail_mode_queues() {
    let down = format!(
        "oauth2_provider = \"test\"\noauth2_client_id = \"{}\"\n\
         oauth2_token_url = \"http://127.0.0.1:{}/token\"\n",
        crate::common::OAUTH2_CLIENT_ID,
        closed_port()
    );
    let s = Setup::with_keys(Some(down));
    s.provider.seed_expired(&s.store());
    let out = s.run(&["--no-queue", "b@example.com", "--body", "x"], "");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("could not be reached"), "{stderr}");
    let queued = s.run(
        &["--sendmail", "-i", "b@example.com"],
        "Subject: x\n\nqueued body\n",
    );
    let stderr = text(&queued.stderr);
    assert_eq!(queued.status.code(), Some(0), "{stderr}");
    assert!(stderr.starts_with("postie: queued as "), "{stderr}");
    assert!(
        !walk(&s.home.join("queue")).is_empty(),
        "the message is in the queue"
    );
    s.assert_no_token(&[&out.stdout, &out.stderr, &queued.stdout, &queued.stderr]);
}

#[test]
fn two_concurrent_sends_refresh_only_once() {
    let s = Setup::new();
    s.provider.set_lifetime(3600);
    s.provider.seed_expired(&s.store());
    let spawn = || {
        s.command(&["b@example.com", "--body", "together"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    // The second waited for the lock, read the first's new token under it
    // and used it: with rotation, a second refresh would have failed.
    assert_eq!(s.provider.refreshes(), 1);
    assert_eq!(s.smtp.messages().len(), 2);
}

#[test]
fn a_password_on_an_oauth2_account_is_78() {
    let s = Setup::with_keys(Some(
        "oauth2_provider = \"microsoft\"\noauth2_client_id = \"x\"\npassword_cmd = \"echo pw\"\n"
            .to_string(),
    ));
    let out = s.send();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("OAuth2 account"), "{stderr}");
}

#[test]
fn the_system_configs_accounts_keep_their_tokens_in_the_system_directory() {
    let s = Setup::new();
    let system_config = s.home.join("no-system-config").join("config.toml");
    std::fs::create_dir_all(system_config.parent().unwrap()).unwrap();
    std::fs::rename(s.home.join(".config/postie/config.toml"), &system_config).unwrap();
    let login = s.run(&["oauth2", "login"], "");
    assert_eq!(login.status.code(), Some(0), "{}", text(&login.stderr));
    let store = s.home.join("system-oauth2").join("work.json");
    assert!(store.exists(), "{}", text(&login.stderr));
    assert!(!s.store().exists());
    let dir_mode = std::fs::metadata(store.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    let out = s.send();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn device_login_slows_down_when_told_and_a_declined_sign_in_is_77() {
    let s = Setup::new();
    s.provider.set_device_answers(&["slow_down"]);
    let started = std::time::Instant::now();
    let login = s.run(&["oauth2", "login"], "");
    assert_eq!(login.status.code(), Some(0), "{}", text(&login.stderr));
    // interval 1, then 1 + 5 after slow_down (RFC 8628 §3.5).
    assert!(started.elapsed() >= std::time::Duration::from_secs(7));
    for (answer, says) in [("access_denied", "declined"), ("expired_token", "expired")] {
        s.provider.set_device_answers(&[answer]);
        let login = s.run(&["oauth2", "login"], "");
        let stderr = text(&login.stderr);
        assert_eq!(login.status.code(), Some(77), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}

#[test]
fn a_provider_answering_503_is_75_and_the_queued_message_goes_at_the_flush() {
    let s = Setup::new();
    s.provider.set_lifetime(3600);
    s.provider.seed_expired(&s.store());
    s.provider.set_down(true);
    let queued = s.run(
        &["--sendmail", "-i", "b@example.com"],
        "Subject: x\n\nlater\n",
    );
    let stderr = text(&queued.stderr);
    assert_eq!(queued.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("503"), "{stderr}");
    assert!(s.smtp.messages().is_empty());
    s.provider.set_down(false);
    let flush = s.run(&["queue", "flush", "--now"], "");
    assert_eq!(flush.status.code(), Some(0), "{}", text(&flush.stderr));
    assert_eq!(s.provider.refreshes(), 1);
    assert!(s.smtp.messages()[0].contains("later"));
    s.assert_no_token(&[&queued.stdout, &queued.stderr, &flush.stdout, &flush.stderr]);
}

#[test]
fn a_redirect_with_another_state_is_refused_and_nothing_stored() {
    let s = Setup::new();
    let (mut child, mut stderr, url) = start_browser_login(&s);
    let redirect = s.provider.approve(&url);
    let (before, state) = redirect.rsplit_once("state=").unwrap();
    let forged = format!("{before}state=x{state}");
    let answer = http_get(&forged);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(77), "{rest}");
    assert!(rest.contains("state does not match"), "{rest}");
    assert!(!s.store().exists());
}

#[test]
fn oauthbearer_carries_the_token_and_auto_never_sends_it_in_clear() {
    let s = Setup::new();
    s.provider.set_lifetime(3600);
    s.provider.seed_expired(&s.store());
    let args = |auth: &'static str| {
        [
            "-vv",
            "--auth",
            auth,
            "b@example.com",
            "--subject",
            "hi",
            "--body",
            "bearer body",
        ]
    };
    let out = s.run(&args("oauthbearer"), "");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("AUTH OAUTHBEARER [credentials hidden]"),
        "{stderr}"
    );
    assert_eq!(s.smtp.auths(), [true]);
    assert!(s.smtp.messages()[0].contains("bearer body"));
    // auto with an OAuth2 account picks OAUTHBEARER or XOAUTH2, and like
    // a password the token goes over a connection without TLS only when
    // asked for by name.
    let auto = s.run(&args("auto"), "");
    let stderr = text(&auto.stderr);
    assert_eq!(auto.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("--auth oauthbearer"), "{stderr}");
    assert_eq!(s.smtp.auths(), [true], "no second AUTH");
    s.assert_no_token(&[&out.stdout, &out.stderr, &auto.stdout, &auto.stderr]);
}

/// A plain-http endpoint is allowed only because it is on this machine: a
/// proxy from the environment must not carry the refresh token off it.
#[test]
fn a_loopback_token_endpoint_is_reached_without_the_environments_proxy() {
    let s = Setup::new();
    s.provider.set_lifetime(3600);
    s.provider.seed_expired(&s.store());
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    proxy.set_nonblocking(true).unwrap();
    let out = s
        .command(&["b@example.com", "--subject", "hi", "--body", "b"])
        .env("ALL_PROXY", &proxy_url)
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(proxy.accept().is_err(), "the proxy was asked");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(s.provider.refreshes(), 1);
}
