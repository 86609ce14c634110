//! SCRAM-SHA-256, SCRAM-SHA-1 and CRAM-MD5 against a server that checks
//! them for real (tests/it/common/sasl_server.rs), and `--auth auto`'s
//! choice among what a server offers.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::common::{postie, SaslServer, SaslTwist, PASSWORD, SMALL_MESSAGE, USER};

const ALL: &[&str] = &["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"];

struct Run {
    code: i32,
    stderr: String,
}

/// postie to `server` on loopback without TLS, with -v.
fn send(server: &SaslServer, password: &str, extra: &[&str]) -> Run {
    let output = postie()
        .args(["--server", &server.addr(), "--tls", "none", "--user", USER])
        .args(["-v", "--timeout", "10"])
        .args(extra)
        .args(SMALL_MESSAGE)
        .env("POSTIE_PASSWORD", password)
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn mail_sent(server: &SaslServer) -> bool {
    server
        .lines()
        .iter()
        .any(|l| l.to_ascii_uppercase().starts_with("MAIL"))
}

#[test]
fn each_mechanism_with_the_right_password_delivers() {
    for mechanism in ["scram-sha-256", "scram-sha-1", "cram-md5"] {
        let server = SaslServer::start(ALL, SaslTwist::None);
        let run = send(&server, PASSWORD, &["--auth", mechanism]);
        assert_eq!(run.code, 0, "{mechanism}: {}", run.stderr);
        assert_eq!(
            server.logins(),
            [(mechanism.to_ascii_uppercase(), true)],
            "{mechanism}"
        );
        assert_eq!(server.messages().len(), 1, "{mechanism}");
    }
}

#[test]
fn auto_without_tls_picks_scram_sha_256_over_plain_and_says_so() {
    let server = SaslServer::start(ALL, SaslTwist::None);
    let run = send(&server, PASSWORD, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.logins(), [("SCRAM-SHA-256".to_string(), true)]);
    assert!(
        run.stderr
            .contains("AUTH with SCRAM-SHA-256: auto takes the first of"),
        "{}",
        run.stderr
    );
    // Without SCRAM, CRAM-MD5; never PLAIN or LOGIN in clear.
    let server = SaslServer::start(&["PLAIN", "LOGIN", "CRAM-MD5"], SaslTwist::None);
    let run = send(&server, PASSWORD, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.logins(), [("CRAM-MD5".to_string(), true)]);
}

/// postie to `server` (started with `start_tls`) over implicit TLS.
fn send_tls(server: &SaslServer, extra: &[&str]) -> Run {
    let output = postie()
        .args(["--server", &format!("smtps://127.0.0.1:{}", server.port)])
        .arg("--ca-file")
        .arg(server.ca_file())
        .args(["--user", USER, "-v", "--timeout", "10"])
        .args(extra)
        .args(SMALL_MESSAGE)
        .env("POSTIE_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn auto_over_tls_prefers_scram_then_plain() {
    for (offered, chosen) in [
        (
            &["PLAIN", "LOGIN", "SCRAM-SHA-1", "SCRAM-SHA-256"][..],
            "SCRAM-SHA-256",
        ),
        (&["LOGIN", "PLAIN", "SCRAM-SHA-1"][..], "SCRAM-SHA-1"),
        (&["CRAM-MD5", "LOGIN", "PLAIN"][..], "PLAIN"),
    ] {
        let server = SaslServer::start_tls(offered, SaslTwist::None);
        let run = send_tls(&server, &[]);
        assert_eq!(run.code, 0, "{offered:?}: {}", run.stderr);
        assert_eq!(server.logins(), [(chosen.to_string(), true)], "{offered:?}");
        assert_eq!(server.messages().len(), 1);
        assert!(!run.stderr.contains(PASSWORD), "{}", run.stderr);
    }
}

#[test]
fn auto_without_tls_sends_no_password_in_clear() {
    let server = SaslServer::start(&["PLAIN", "LOGIN"], SaslTwist::None);
    let run = send(&server, PASSWORD, &[]);
    assert_eq!(run.code, 69, "{}", run.stderr);
    assert!(run.stderr.contains("SCRAM"), "{}", run.stderr);
    assert!(server.logins().is_empty());
    // Asked for by name, PLAIN keeps today's rules (loopback allows it).
    let server = SaslServer::start(&["PLAIN", "LOGIN"], SaslTwist::None);
    let run = send(&server, PASSWORD, &["--auth", "plain"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.logins(), [("PLAIN".to_string(), true)]);
}

#[test]
fn a_wrong_password_is_77_with_no_other_mechanism_tried() {
    for (auth, mechanism) in [
        ("auto", "SCRAM-SHA-256"),
        ("scram-sha-1", "SCRAM-SHA-1"),
        ("cram-md5", "CRAM-MD5"),
    ] {
        let server = SaslServer::start(ALL, SaslTwist::None);
        let run = send(&server, "not-the-password", &["--auth", auth]);
        assert_eq!(run.code, 77, "{auth}: {}", run.stderr);
        assert_eq!(server.logins(), [(mechanism.to_string(), false)], "{auth}");
        assert!(!mail_sent(&server), "{auth}");
        if mechanism.starts_with("SCRAM") {
            assert!(run.stderr.contains("--auth plain"), "{}", run.stderr);
        }
    }
}

#[test]
fn a_server_that_cannot_prove_it_knows_the_password_gets_no_mail() {
    for auth in ["scram-sha-256", "scram-sha-1"] {
        let server = SaslServer::start(ALL, SaslTwist::WrongSignature);
        let run = send(&server, PASSWORD, &["--auth", auth]);
        assert_eq!(run.code, 77, "{auth}: {}", run.stderr);
        assert!(run.stderr.contains("signature"), "{}", run.stderr);
        assert!(!mail_sent(&server), "{auth}: {:?}", server.lines());
        assert!(server.messages().is_empty());
    }
}

/// A 235 to the client-first message is no proof either: an impostor that
/// knows nothing would get the mail.
#[test]
fn a_server_that_accepts_scram_before_any_proof_gets_no_mail() {
    for auth in ["scram-sha-256", "scram-sha-1", "auto"] {
        let server = SaslServer::start(ALL, SaslTwist::AcceptAtOnce);
        let run = send(&server, PASSWORD, &["--auth", auth]);
        assert_eq!(run.code, 77, "{auth}: {}", run.stderr);
        assert!(run.stderr.contains("signature"), "{}", run.stderr);
        assert!(!mail_sent(&server), "{auth}: {:?}", server.lines());
        assert!(server.messages().is_empty());
    }
}

#[test]
fn too_few_or_too_many_iterations_are_76_before_any_proof() {
    for iterations in [1000, 4095, 2_000_000] {
        let server = SaslServer::start(ALL, SaslTwist::Iterations(iterations));
        let run = send(&server, PASSWORD, &[]);
        assert_eq!(run.code, 76, "{iterations}: {}", run.stderr);
        let lines = server.lines();
        assert!(!mail_sent(&server), "{lines:?}");
        // The exchange is cancelled: no client-final (no proof) went out.
        assert!(lines.iter().any(|l| l == "*"), "{lines:?}");
    }
    let server = SaslServer::start(ALL, SaslTwist::Iterations(4096));
    assert_eq!(send(&server, PASSWORD, &[]).code, 0);
}

/// The transcript shows neither the password nor what was computed from
/// it: the SCRAM client-final message and its proof, the CRAM-MD5 digest.
#[test]
fn the_transcript_has_no_password_proof_or_digest() {
    for auth in ["scram-sha-256", "scram-sha-1", "cram-md5"] {
        let server = SaslServer::start(ALL, SaslTwist::None);
        let run = send(&server, PASSWORD, &["--auth", auth]);
        assert_eq!(run.code, 0, "{auth}: {}", run.stderr);
        let lines = server.lines();
        let start = lines.iter().position(|l| l.starts_with("AUTH")).unwrap();
        // The answers to challenges, as sent and decoded.
        let mut secrets = vec![PASSWORD.to_string()];
        for line in lines[start + 1..].iter().take(1) {
            secrets.push(line.clone());
            let decoded = String::from_utf8(STANDARD.decode(line).unwrap()).unwrap();
            let secret = match decoded.rsplit_once(",p=") {
                Some((_, proof)) => proof.to_string(),
                None => decoded.rsplit_once(' ').unwrap().1.to_string(),
            };
            secrets.push(secret);
        }
        assert_eq!(secrets.len(), 3, "{auth}: {lines:?}");
        for secret in &secrets {
            assert!(
                !run.stderr.contains(secret.as_str()),
                "{auth}: -v shows {secret:?}:\n{}",
                run.stderr
            );
        }
        assert!(
            run.stderr.contains("[credentials hidden]"),
            "{}",
            run.stderr
        );
    }
}

/// An OAuth2 error challenge (RFC 7628 3.2.2) is decoded into the error,
/// answered with the dummy response so that the final 535 is read, and
/// the token is hidden even where the server echoes it back.
#[test]
fn an_oauth2_error_challenge_is_shown_and_answered() {
    use crate::common::ScriptedServer;
    let json = r#"{"status":"invalid_token","scope":"https://mail.example/send"}"#;
    for (auth, dummy) in [("oauthbearer", "AQ=="), ("xoauth2", "")] {
        let server = ScriptedServer::start(
            b"220 oauth.test ESMTP\r\n",
            vec![
                b"250-oauth.test\r\n250 AUTH OAUTHBEARER XOAUTH2\r\n".to_vec(),
                format!("334 {}\r\n", STANDARD.encode(json)).into_bytes(),
                format!("535 5.7.8 token {PASSWORD} refused\r\n").into_bytes(),
                b"221 bye\r\n".to_vec(),
            ],
        );
        let output = postie()
            .args(["--server", &server.addr(), "--tls", "none", "--user", USER])
            .args(["-v", "--timeout", "10", "--auth", auth])
            .args(SMALL_MESSAGE)
            .env("POSTIE_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(77), "{auth}: {stderr}");
        assert!(
            stderr.contains(r#"refused the OAuth2 access token (status "invalid_token""#),
            "{auth}: {stderr}"
        );
        assert!(stderr.contains("postie oauth2 login"), "{stderr}");
        assert!(!stderr.contains(PASSWORD), "{auth}: {stderr}");
        let lines = server.lines();
        assert!(
            lines[1].starts_with(&format!("AUTH {} ", auth.to_ascii_uppercase())),
            "{lines:?}"
        );
        assert_eq!(lines[2], dummy, "{auth}: {lines:?}");
        assert!(!lines.iter().any(|l| l.starts_with("MAIL")), "{lines:?}");
    }
}
