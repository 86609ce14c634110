//! Testing servers by hand, as with swaks: the transcript (-v), its
//! redaction of credentials, --timing, --quit-after, --capabilities,
//! certificate checks and pinning, and --test-message.

use crate::common::{
    parse, postie, schema, CertKind, ScriptedServer, ServerOptions, TestServer, Tls, PASSWORD,
    SMALL_MESSAGE, USER,
};

/// "AB:CD:..." as postie shows a fingerprint, from plain hex.
fn colon_hex(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

fn capabilities_schema() -> serde_json::Value {
    schema::schema("capabilities.schema.json")
}

fn tls_auth_server() -> TestServer {
    TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        auth: true,
        ..ServerOptions::default()
    })
}

fn b64(bytes: &[u8]) -> String {
    // A small encoder so the test does not trust postie's own.
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn run(args: &[&str], server: &TestServer) -> (i32, String, String) {
    let output = postie()
        .args(["--server", &format!("localhost:{}", server.port)])
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `run` with the small message after `args`.
fn run_small(args: &[&str], server: &TestServer) -> (i32, String, String) {
    run(&[args, &SMALL_MESSAGE[..]].concat(), server)
}

fn assert_no_secret(transcript: &str) {
    let secrets = [
        PASSWORD.to_string(),
        b64(format!("\0{USER}\0{PASSWORD}").as_bytes()),
        b64(PASSWORD.as_bytes()),
        b64(USER.as_bytes()),
    ];
    for secret in secrets {
        assert!(
            !transcript.contains(&secret),
            "{secret:?} leaked:\n{transcript}"
        );
    }
}

#[test]
fn transcript_shows_each_line_with_prefixes_and_hides_auth_plain() {
    let server = tls_auth_server();
    let ca = server.ca_file();
    let (code, _, stderr) = run(
        &[
            "-v",
            "--ca-file",
            ca.to_str().unwrap(),
            "--user",
            USER,
            "--password-cmd",
        ]
        .into_iter()
        .chain([format!("echo {PASSWORD}").as_str()])
        .chain([
            "-f",
            "a@example.com",
            "b@example.com",
            "--body",
            "one\ntwo\n",
        ])
        .collect::<Vec<_>>(),
        &server,
    );
    assert_eq!(code, 0, "{stderr}");
    for expected in [
        "=== Trying localhost:",
        "=== Connected to localhost:",
        "<- 220 ",
        "-> EHLO ",
        "-> STARTTLS",
        "=== TLS started",
        "=== certificate subject: CN=localhost",
        "=== certificate SHA-256: ",
        "~> EHLO ",
        "~> AUTH PLAIN [credentials hidden]",
        "<~ 235",
        "~> MAIL FROM:<a@example.com>",
        "~> RCPT TO:<b@example.com>",
        "~> DATA",
        "<~ 354",
        "~> [message: ",
        "~> .",
        "<~ 250",
        "~> QUIT",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("~> one"),
        "the body is not shown at -v:\n{stderr}"
    );
    assert_no_secret(&stderr);
    assert_eq!(server.wait_for_messages(1).len(), 1);
}

#[test]
fn auth_login_steps_are_hidden() {
    let server = tls_auth_server();
    let ca = server.ca_file();
    let output = postie()
        .args(["--server", &server.addr(), "--auth", "login", "-v"])
        .args(["--ca-file", ca.to_str().unwrap(), "--user", USER])
        .env("POSTIE_PASSWORD", PASSWORD)
        .args(SMALL_MESSAGE)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("~> AUTH LOGIN\n"), "{stderr}");
    assert_eq!(
        stderr.matches("~> [credentials hidden]").count(),
        2,
        "{stderr}"
    );
    assert_no_secret(&stderr);
}

#[test]
fn more_v_shows_headers_then_everything() {
    let server = TestServer::start(ServerOptions::default());
    let body = ["--body", "secret body line\n"];
    let (_, _, vv) = run(
        &[
            &[
                "-vv",
                "-s",
                "Hello there",
                "-f",
                "a@example.com",
                "b@example.com",
            ][..],
            &body,
        ]
        .concat(),
        &server,
    );
    assert!(vv.contains("-> Subject: Hello there"), "{vv}");
    assert!(!vv.contains("secret body line"), "{vv}");
    let (_, _, vvv) = run(
        &[&["-vvv", "-f", "a@example.com", "b@example.com"][..], &body].concat(),
        &server,
    );
    assert!(vvv.contains("-> secret body line"), "{vvv}");
}

#[test]
fn timing_marks_replies_and_prints_a_summary() {
    let server = TestServer::start(ServerOptions::default());
    let (code, _, stderr) = run_small(&["--timing"], &server);
    assert_eq!(code, 0, "{stderr}");
    let timed_reply = stderr
        .lines()
        .find(|l| l.starts_with("<- 220"))
        .unwrap_or_else(|| panic!("no greeting in:\n{stderr}"));
    assert!(timed_reply.ends_with(" ms)"), "{timed_reply}");
    let summary = stderr
        .lines()
        .find(|l| l.starts_with("=== timing: "))
        .expect("summary");
    for stage in [
        "connect",
        "banner and EHLO",
        "MAIL",
        "RCPT",
        "DATA",
        "total",
    ] {
        assert!(summary.contains(stage), "{summary}");
    }
}

#[test]
fn quit_after_rcpt_tests_recipients_without_sending() {
    let server = TestServer::start(ServerOptions {
        refuse_rcpt: vec!["nobody@example.com".into()],
        ..ServerOptions::default()
    });
    // No body source and stdin left alone: a test run needs no message.
    let (code, _, stderr) = run(
        &[
            "--quit-after",
            "rcpt",
            "-v",
            "-f",
            "a@example.com",
            "ok@example.com",
        ],
        &server,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("-> RCPT TO:<ok@example.com>"), "{stderr}");
    assert!(stderr.contains("=== stopping after rcpt"), "{stderr}");
    assert!(stderr.contains("-> QUIT"), "{stderr}");
    assert!(!stderr.contains("-> DATA"), "{stderr}");

    let (code, _, stderr) = run(
        &[
            "--quit-after",
            "rcpt",
            "-f",
            "a@example.com",
            "nobody@example.com",
        ],
        &server,
    );
    assert_eq!(code, 67, "{stderr}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(server.received().is_empty());
}

#[test]
fn quit_after_banner_sends_no_ehlo_and_connect_sends_nothing() {
    let server = ScriptedServer::start(b"220 scripted ESMTP\r\n", vec![b"221 bye\r\n".to_vec()]);
    let output = postie()
        .args(["--server", &server.addr(), "--quit-after", "banner", "-v"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("<- 220 scripted ESMTP"), "{stderr}");
    assert_eq!(server.lines(), ["QUIT"]);

    let server = ScriptedServer::start(b"220 scripted ESMTP\r\n", vec![]);
    let output = postie()
        .args(["--server", &server.addr(), "--quit-after", "connect", "-v"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // It connected (lines() is empty for a server nobody reached, too).
    assert!(stderr.contains("=== Connected to"), "{stderr}");
    assert!(!stderr.contains("<- 220"), "{stderr}");
    assert!(server.lines().is_empty());

    let server = ScriptedServer::start(b"554 no thanks\r\n", vec![b"221 bye\r\n".to_vec()]);
    let output = postie()
        .args(["--server", &server.addr(), "--quit-after", "banner"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("554 no thanks"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn quit_after_auth_reports_a_wrong_password() {
    let server = tls_auth_server();
    let ca = server.ca_file();
    let output = postie()
        .args(["--server", &server.addr(), "--quit-after", "auth"])
        .args(["--ca-file", ca.to_str().unwrap(), "--user", USER])
        .env("POSTIE_PASSWORD", "wrong")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(77), "{stderr}");
    assert!(stderr.contains("AUTH"), "{stderr}");
    assert!(
        !stderr.contains("wrong"),
        "the password must not show: {stderr}"
    );
    let output = postie()
        .args(["--server", &server.addr(), "--quit-after", "auth"])
        .args(["--ca-file", ca.to_str().unwrap(), "--user", USER])
        .env("POSTIE_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn capabilities_table_and_json() {
    let server = tls_auth_server();
    let ca = server.ca_file();
    let (code, stdout, stderr) = run(
        &["--capabilities", "--ca-file", ca.to_str().unwrap()],
        &server,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("before STARTTLS"), "{stdout}");
    assert!(stdout.contains("after STARTTLS"), "{stdout}");
    let starttls_row = stdout.lines().find(|l| l.starts_with("STARTTLS")).unwrap();
    assert_eq!(
        starttls_row.split_whitespace().collect::<Vec<_>>(),
        ["STARTTLS", "yes", "no"]
    );
    let auth_row = stdout.lines().find(|l| l.starts_with("AUTH")).unwrap();
    assert!(
        auth_row.contains("none offered") && auth_row.contains("PLAIN LOGIN"),
        "{auth_row}"
    );
    assert!(
        stdout.contains("certificate subject: CN=localhost"),
        "{stdout}"
    );
    assert!(
        stderr.contains("-> EHLO"),
        "the transcript goes to stderr:\n{stderr}"
    );

    let (code, stdout, _) = run(
        &[
            "--capabilities",
            "--json",
            "--ca-file",
            ca.to_str().unwrap(),
        ],
        &server,
    );
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    schema::assert_valid(&capabilities_schema(), &json);
    assert_eq!(json["version"], 1);
    let session = &json["sessions"][0];
    assert_eq!(session["before_tls"]["starttls"], true);
    assert_eq!(
        session["after_tls"]["auth"],
        serde_json::json!(["PLAIN", "LOGIN"])
    );
    assert_eq!(session["tls"]["certificate"]["subject"], "CN=localhost");
    assert_eq!(session["tls"]["verified"], true);
    assert_eq!(session["tls"]["verify_error"], serde_json::Value::Null);
    assert_eq!(session["error"], serde_json::Value::Null);
    assert!(server.received().is_empty());
}

#[test]
fn capabilities_of_a_plain_session_are_one_ehlo_column() {
    let server = TestServer::start(ServerOptions::default());
    for tls in ["none", "opportunistic"] {
        let (code, stdout, stderr) = run(&["--capabilities", "--json", "--tls", tls], &server);
        assert_eq!(code, 0, "{stderr}");
        let json: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
        schema::assert_valid(&capabilities_schema(), &json);
        let session = &json["sessions"][0];
        assert!(session["before_tls"].is_object(), "--tls {tls}: {json}");
        assert!(
            session["after_tls"].is_null(),
            "--tls {tls}: no TLS: {json}"
        );
        assert!(session["tls"].is_null(), "--tls {tls}: {json}");
        let (code, stdout, stderr) = run(&["--capabilities", "--tls", tls], &server);
        assert_eq!(code, 0, "{stderr}");
        let header = stdout.lines().find(|l| l.starts_with("extension")).unwrap();
        assert_eq!(
            header.split_whitespace().collect::<Vec<_>>(),
            ["extension", "EHLO"],
            "--tls {tls}: no STARTTLS is to follow"
        );
    }
}

#[test]
fn with_v_a_certificate_that_fails_verification_is_shown() {
    for (tls, mode) in [(Tls::Implicit, "implicit"), (Tls::StartTls, "starttls")] {
        let server = TestServer::start(ServerOptions {
            tls,
            cert: CertKind::WrongName,
            ..ServerOptions::default()
        });
        let ca = server.ca_file();
        let args = ["--tls", mode, "--ca-file", ca.to_str().unwrap()];
        let (code, _, stderr) = run_small(&[&args[..], &["-v"]].concat(), &server);
        assert_eq!(code, 69, "{mode}: {stderr}");
        assert!(
            stderr.contains("=== certificate subject: CN=wrong.example"),
            "{mode}: {stderr}"
        );
        assert!(
            stderr.contains("=== certificate NOT verified (see the error below)"),
            "{mode}: {stderr}"
        );
        let last = stderr.lines().last().unwrap();
        assert!(
            last.contains("not valid for the name \"localhost\""),
            "{mode}: {stderr}"
        );
        // Without -v nothing connects a second time and stderr is one line.
        let (code, _, stderr) = run_small(&args, &server);
        assert_eq!(code, 69, "{mode}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{mode}: {stderr}");
        assert!(server.received().is_empty());
    }
}

#[test]
fn certificate_problems_are_69_and_named() {
    for (kind, expected) in [
        (CertKind::Expired, "expired"),
        (CertKind::WrongName, "not valid for the name \"localhost\""),
    ] {
        let server = TestServer::start(ServerOptions {
            tls: Tls::Implicit,
            cert: kind,
            ..ServerOptions::default()
        });
        let ca = server.ca_file();
        let (code, _, stderr) = run_small(
            &["--tls", "implicit", "--ca-file", ca.to_str().unwrap()],
            &server,
        );
        assert_eq!(code, 69, "{kind:?}: {stderr}");
        assert!(stderr.contains(expected), "{kind:?}: {stderr}");
    }
}

#[test]
fn pinned_fingerprint_trusts_a_self_signed_server() {
    let server = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        ..ServerOptions::default()
    });
    let pin = server.cert_sha256();
    let (code, _, stderr) = run_small(
        &["--tls", "starttls", "--tls-fingerprint", &pin, "-v"],
        &server,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("=== certificate pinned"), "{stderr}");
    let wrong = "00".repeat(32);
    let (code, _, stderr) = run_small(&["--tls", "starttls", "--tls-fingerprint", &wrong], &server);
    assert_eq!(code, 69, "{stderr}");
    assert!(stderr.contains("--tls-fingerprint"), "{stderr}");
    assert_eq!(server.wait_for_messages(1).len(), 1);
}

#[test]
fn certificate_expiring_soon_is_warned_about() {
    let server = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        cert: CertKind::ExpiresSoon,
        ..ServerOptions::default()
    });
    let ca = server.ca_file();
    let (code, _, stderr) = run(
        &["--capabilities", "--ca-file", ca.to_str().unwrap()],
        &server,
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("=== warning: the certificate expires in "),
        "{stderr}"
    );
}

#[test]
fn starttls_injection_is_refused() {
    let server = ScriptedServer::start(
        b"220 evil ESMTP\r\n",
        vec![
            b"250-evil\r\n250 STARTTLS\r\n".to_vec(),
            b"220 go ahead\r\n250 injected\r\n".to_vec(),
        ],
    );
    let output = postie()
        .args([
            "--server",
            &server.addr(),
            "--tls",
            "starttls",
            "-f",
            "a@example.com",
            "b@example.com",
            "--body",
            "x",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(76), "{stderr}");
    assert!(stderr.contains("injection"), "{stderr}");
}

#[test]
fn test_message_is_generated() {
    let server = TestServer::start(ServerOptions::default());
    let (code, _, stderr) = run(
        &["--test-message", "-f", "a@example.com", "b@example.com"],
        &server,
    );
    assert_eq!(code, 0, "{stderr}");
    let msg = parse(&server.wait_for_messages(1)[0].data);
    assert!(
        msg.subject().unwrap().starts_with("postie test "),
        "{:?}",
        msg.subject()
    );
    assert!(msg
        .body_text(0)
        .unwrap()
        .contains("test message sent by postie"));
}

#[test]
fn address_family_can_be_forced() {
    let server = TestServer::start(ServerOptions::default());
    let output = postie()
        .args(["--server", &server.addr(), "-4", "--quit-after", "ehlo"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = postie()
        .args(["--server", &server.addr(), "-6", "--quit-after", "ehlo"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(68));
    assert!(String::from_utf8_lossy(&output.stderr).contains("-4 / -6"));
}

/// The probe always reports: a certificate that does not verify is a row
/// of the table (after the TLS version, cipher and chain), then exit 69.
#[test]
fn capabilities_of_a_self_signed_server_are_reported_then_69() {
    for (tls, mode) in [(Tls::StartTls, "starttls"), (Tls::Implicit, "implicit")] {
        let server = TestServer::start(ServerOptions {
            tls,
            ..ServerOptions::default()
        });
        let (code, stdout, stderr) = run(&["--capabilities", "--tls", mode], &server);
        assert_eq!(code, 69, "{mode}: {stderr}");
        let rows: Vec<&str> = stdout.lines().collect();
        assert!(rows.iter().any(|r| r.starts_with("extension")), "{stdout}");
        assert!(rows.iter().any(|r| r.starts_with("AUTH")), "{stdout}");
        let row = |prefix: &str| {
            rows.iter()
                .find(|r| r.starts_with(prefix))
                .unwrap_or_else(|| panic!("{mode}: no {prefix:?} row in:\n{stdout}"))
                .to_string()
        };
        assert!(row("TLS version: ").starts_with("TLS version: TLSv1."));
        assert!(row("TLS cipher: ").len() > "TLS cipher: ".len());
        assert_eq!(row("chain 0 subject: "), "chain 0 subject: CN=localhost");
        assert_eq!(row("chain 0 issuer: "), "chain 0 issuer: CN=localhost");
        assert!(row("chain 0 valid: ").contains("Z to 20"), "{stdout}");
        assert_eq!(
            row("chain 0 SHA-256: "),
            format!("chain 0 SHA-256: {}", colon_hex(&server.cert_sha256()))
        );
        assert_eq!(
            rows.last().copied(),
            Some("verified: no (self-signed certificate)"),
            "{mode}: the verdict is the last row:\n{stdout}"
        );
        assert!(
            stderr.lines().last().unwrap().contains("self-signed"),
            "{mode}: {stderr}"
        );
        if tls == Tls::StartTls {
            // The EHLO over TLS was read, to be reported: nothing after it.
            assert!(row("extension").contains("after STARTTLS"), "{stdout}");
            assert!(stderr.contains("~> EHLO"), "{stderr}");
            assert!(!stderr.contains("~> AUTH"), "{stderr}");
            assert!(!stderr.contains("~> MAIL"), "{stderr}");
        }
        assert!(server.received().is_empty());
    }
}

#[test]
fn capabilities_json_follows_its_schema_verified_or_not() {
    let server = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        ..ServerOptions::default()
    });
    let ca = server.ca_file();
    let schema = capabilities_schema();
    let (code, stdout, stderr) = run(&["--capabilities", "--json", "--tls", "starttls"], &server);
    assert_eq!(code, 69, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    schema::assert_valid(&schema, &json);
    let session = &json["sessions"][0];
    assert!(session["before_tls"].is_object(), "{json}");
    assert!(session["after_tls"].is_object(), "{json}");
    assert_eq!(session["tls"]["verified"], false);
    assert_eq!(session["tls"]["verify_error"], "self-signed certificate");
    assert!(
        session["tls"]["version"]
            .as_str()
            .unwrap()
            .starts_with("TLSv1."),
        "{json}"
    );
    assert_eq!(
        session["tls"]["chain"][0]["sha256"],
        colon_hex(&server.cert_sha256())
    );
    assert!(
        session["error"].as_str().unwrap().contains("self-signed"),
        "{json}"
    );

    let (code, stdout, stderr) = run(
        &[
            "--capabilities",
            "--json",
            "--tls",
            "starttls",
            "--ca-file",
            ca.to_str().unwrap(),
        ],
        &server,
    );
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    schema::assert_valid(&schema, &json);
    assert_eq!(json["sessions"][0]["tls"]["verified"], true);
    assert_eq!(json["sessions"][0]["stopped_after"], "starttls");

    // The validator is not vacuous: it sees what the schema forbids.
    let mut broken = json.clone();
    broken["sessions"][0]["tls"]["verified"] = "yes".into();
    broken["sessions"][0]["tls"]["chain"][0]["not_after"] = "Dec  1 00:00:00 2026 GMT".into();
    broken["sessions"][0]["extra"] = 1.into();
    let errors = schema::violations(&schema, &broken).join("\n");
    for expected in [
        "/sessions/0/tls/verified: ",
        "/sessions/0/tls/chain/0/not_after: ",
        "/sessions/0: unexpected \"extra\"",
    ] {
        assert!(errors.contains(expected), "{expected:?} in:\n{errors}");
    }
}

/// A local relay with a self-signed certificate, in the default
/// (opportunistic) mode, as msmtp, swaks and curl send to it; an explicit
/// --tls starttls still verifies.
#[test]
fn a_loopback_relay_gets_tls_without_verification_unless_starttls_is_asked() {
    let server = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        ..ServerOptions::default()
    });
    let (code, _, stderr) = run_small(&["-v"], &server);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(
            "=== certificate not verified (opportunistic TLS to a relay on loopback; --tls starttls verifies); it is self-signed"
        ),
        "{stderr}"
    );
    let received = server.wait_for_messages(1);
    assert!(received[0].tls, "sent over TLS");

    let (code, _, stderr) = run_small(&["--tls", "starttls"], &server);
    assert_eq!(code, 69, "{stderr}");
    assert!(stderr.contains("self-signed"), "{stderr}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(server.received().len(), 1);
}

#[test]
fn tls_fingerprint_in_the_config_pins_the_certificate() {
    let server = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        ..ServerOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = |pin: &str| {
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            format!(
                "[accounts.relay]\nserver = \"localhost:{}\"\ntls = \"starttls\"\ntls_fingerprint = \"{pin}\"\n",
                server.port
            ),
        )
        .unwrap();
        path
    };
    let path = config(&server.cert_sha256());
    let output = postie()
        .args(["--config", path.to_str().unwrap(), "-v"])
        .args(SMALL_MESSAGE)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("=== certificate pinned"), "{stderr}");
    assert_eq!(server.wait_for_messages(1).len(), 1);

    let path = config(&"00".repeat(32));
    let output = postie()
        .args(["--config", path.to_str().unwrap()])
        .args(SMALL_MESSAGE)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("--tls-fingerprint"), "{stderr}");

    // A malformed one is the config's fault, and says so.
    let path = config("AB:CD");
    let output = postie()
        .args(["--config", path.to_str().unwrap()])
        .args(SMALL_MESSAGE)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("invalid tls_fingerprint \"AB:CD\" in the config"),
        "{stderr}"
    );
}

#[test]
fn a_wrong_name_error_lists_the_names_the_certificate_is_valid_for() {
    let server = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        cert: CertKind::WrongName,
        ..ServerOptions::default()
    });
    let ca = server.ca_file();
    let args = ["--tls", "starttls", "--ca-file", ca.to_str().unwrap()];
    let (code, _, stderr) = run_small(&args, &server);
    assert_eq!(code, 69, "{stderr}");
    assert!(
        stderr.contains("is not valid for the name \"localhost\", only for wrong.example; connect to one of those names"),
        "{stderr}"
    );
    let (code, _, stderr) = run_small(&[&args[..], &["-v"]].concat(), &server);
    assert_eq!(code, 69, "{stderr}");
    assert!(
        stderr.contains("=== certificate names: DNS:wrong.example"),
        "{stderr}"
    );
    assert!(server.received().is_empty());
}

/// `ehlo` is the last EHLO: over TLS when TLS is used, so that the test
/// covers TLS; `first-ehlo` stops before STARTTLS. swaks' names work too.
#[test]
fn quit_after_ehlo_is_the_last_ehlo_and_first_ehlo_the_first() {
    let server = tls_auth_server();
    let ca = server.ca_file();
    let quit = |stage: &str| {
        run(
            &[
                "--tls",
                "starttls",
                "--ca-file",
                ca.to_str().unwrap(),
                "-v",
                "--quit-after",
                stage,
            ],
            &server,
        )
    };
    for stage in ["ehlo", "helo", "tls", "first-tls"] {
        let (code, _, stderr) = quit(stage);
        assert_eq!(code, 0, "{stage}: {stderr}");
        assert!(stderr.contains("=== TLS started"), "{stage}: {stderr}");
        assert!(stderr.contains("~> EHLO"), "{stage}: {stderr}");
        assert!(stderr.contains("~> QUIT"), "{stage}: {stderr}");
        assert!(!stderr.contains("~> AUTH"), "{stage}: {stderr}");
    }
    let (_, _, stderr) = quit("helo");
    assert!(
        stderr.contains("=== stopping after ehlo (--quit-after ehlo)"),
        "{stderr}"
    );
    for stage in ["first-ehlo", "first-helo"] {
        let (code, _, stderr) = quit(stage);
        assert_eq!(code, 0, "{stage}: {stderr}");
        assert!(stderr.contains("-> EHLO"), "{stage}: {stderr}");
        assert!(!stderr.contains("-> STARTTLS"), "{stage}: {stderr}");
        assert!(!stderr.contains("TLS started"), "{stage}: {stderr}");
        assert!(stderr.contains("-> QUIT"), "{stage}: {stderr}");
    }
}
