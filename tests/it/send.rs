//! End-to-end: postie submits to a real SMTP server (mailin-embedded) on a
//! loopback port, and each test checks what a user would: the bytes and
//! envelope the server received, the exit code and the stderr line.

use crate::common;

use std::fs;

use crate::common::{
    parse, postie, CertKind, ServerOptions, TestServer, Tls, PASSWORD, SMALL_MESSAGE, USER,
};
use mail_parser::MimeHeaders;

fn server() -> TestServer {
    TestServer::start(ServerOptions::default())
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// postie with `args` and the small message: its exit code and stderr.
fn send_small(args: &[&str]) -> (Option<i32>, String) {
    let output = postie().args(args).args(SMALL_MESSAGE).output().unwrap();
    (output.status.code(), stderr_of(&output))
}

#[test]
fn text_message_arrives_with_envelope_and_encoded_headers() {
    let srv = server();
    postie()
        .args([
            "--server",
            &srv.addr(),
            "-f",
            "Jörg Sender <sender@example.com>",
        ])
        .args(["-s", "Grüße: backup done ✓", "-H", "X-Job: nightly"])
        .args(["Ops Team <ops@example.com>", "--body", "all fine\n"])
        .assert()
        .success()
        .stderr("");
    let mail = srv.wait_for_messages(1).remove(0);
    assert_eq!(mail.mail_from, "sender@example.com");
    assert_eq!(mail.rcpt_to, vec!["ops@example.com"]);
    assert!(mail.data.is_ascii(), "composed messages are 7-bit");

    let msg = parse(&mail.data);
    assert_eq!(msg.subject(), Some("Grüße: backup done ✓"));
    let from = msg.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some("Jörg Sender"));
    assert_eq!(from.address(), Some("sender@example.com"));
    let to = msg.to().unwrap().first().unwrap();
    assert_eq!(to.name(), Some("Ops Team"));
    assert_eq!(msg.header_raw("X-Job").map(str::trim), Some("nightly"));
    assert!(msg.date().is_some(), "Date header");
    assert!(msg.message_id().is_some(), "Message-ID header");
    assert_eq!(msg.body_text(0).unwrap().trim_end(), "all fine");
}

#[test]
fn body_is_read_from_stdin_like_mailx() {
    let srv = server();
    postie()
        .args([
            "--server",
            &srv.addr(),
            "-f",
            "a@example.com",
            "-s",
            "piped",
        ])
        .arg("b@example.com")
        .write_stdin("line one\nline two\n")
        .assert()
        .success();
    let msg = parse(&srv.wait_for_messages(1)[0].data);
    assert_eq!(msg.body_text(0).unwrap(), "line one\r\nline two\r\n");
}

#[test]
fn body_file_dash_reads_stdin_and_path_reads_file() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.txt");
    fs::write(&body, "from a file\n").unwrap();
    postie()
        .args([
            "--server",
            &srv.addr(),
            "-f",
            "a@example.com",
            "b@example.com",
        ])
        .arg("--body-file")
        .arg(&body)
        .assert()
        .success();
    postie()
        .args([
            "--server",
            &srv.addr(),
            "-f",
            "a@example.com",
            "b@example.com",
        ])
        .args(["--body-file", "-"])
        .write_stdin("from stdin\n")
        .assert()
        .success();
    let got = srv.wait_for_messages(2);
    assert_eq!(
        parse(&got[0].data).body_text(0).unwrap().trim_end(),
        "from a file"
    );
    assert_eq!(
        parse(&got[1].data).body_text(0).unwrap().trim_end(),
        "from stdin"
    );
}

#[test]
fn bcc_goes_to_the_envelope_only_and_lists_are_split() {
    let srv = server();
    postie()
        .args(["--server", &srv.addr(), "-f", "a@example.com"])
        .args(["one@example.com, \"Two, Esq.\" <two@example.com>"])
        .args(["--to", "three@example.com", "-c", "cc@example.com"])
        .args(["-b", "hidden@example.com,ONE@example.com", "--body", "x"])
        .args(["-r", "replies@example.com"])
        .assert()
        .success();
    let mail = srv.wait_for_messages(1).remove(0);
    assert_eq!(
        mail.rcpt_to,
        vec![
            "one@example.com",
            "two@example.com",
            "three@example.com",
            "cc@example.com",
            "hidden@example.com"
        ],
        "each address once, Bcc last"
    );
    let raw = String::from_utf8(mail.data.clone()).unwrap();
    assert!(!raw.contains("hidden@example.com"), "Bcc leaked:\n{raw}");
    assert!(
        !raw.to_ascii_lowercase().contains("\nbcc:"),
        "Bcc header:\n{raw}"
    );
    let msg = parse(&mail.data);
    let to: Vec<_> = msg
        .to()
        .unwrap()
        .iter()
        .map(|a| a.address().unwrap().to_string())
        .collect();
    assert_eq!(
        to,
        ["one@example.com", "two@example.com", "three@example.com"]
    );
    assert_eq!(
        msg.to().unwrap().iter().nth(1).unwrap().name(),
        Some("Two, Esq.")
    );
    assert_eq!(
        msg.cc().unwrap().first().unwrap().address(),
        Some("cc@example.com")
    );
    assert_eq!(
        msg.reply_to().unwrap().first().unwrap().address(),
        Some("replies@example.com")
    );
}

#[test]
fn a_bcc_only_message_is_to_undisclosed_recipients() {
    let srv = server();
    postie()
        .args(["--server", &srv.addr(), "-f", "a@example.com"])
        .args(["-b", "hidden@example.com", "--body", "x\n"])
        .assert()
        .success();
    let mail = srv.wait_for_messages(1).remove(0);
    assert_eq!(mail.rcpt_to, ["hidden@example.com"]);
    let raw = String::from_utf8(mail.data.clone()).unwrap();
    assert!(
        raw.contains("\r\nTo: undisclosed-recipients:;\r\n"),
        "{raw}"
    );
    assert!(!raw.contains("hidden@"), "{raw}");
    let msg = parse(&mail.data);
    assert!(msg.header("Bcc").is_none());
    let Some(mail_parser::HeaderValue::Address(to)) = msg.header("To") else {
        panic!("no To: {raw}");
    };
    let group = to.as_group().expect("a group").first().unwrap();
    assert_eq!(group.name.as_deref(), Some("undisclosed-recipients"));
    assert!(group.addresses.is_empty());
}

#[test]
fn html_only_from_an_empty_stdin_gets_a_text_rendering_or_none() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    fs::write(
        &html,
        "<html><body><h1>Disk report</h1><p>All <b>fine</b> on backup1.</p></body></html>\n",
    )
    .unwrap();
    for (n, alone) in [false, true].into_iter().enumerate() {
        let mut cmd = postie();
        cmd.args(["--server", &srv.addr(), "-f", "cron@example.com"])
            .args(["-s", "report", "ops@example.com", "--html"])
            .arg(&html);
        if alone {
            cmd.arg("--no-text-alternative");
        }
        // cron: standard input is a pipe with nothing in it.
        cmd.write_stdin("").assert().success();
        let mail = srv.wait_for_messages(n + 1).remove(n);
        let msg = parse(&mail.data);
        let raw = String::from_utf8_lossy(&mail.data).into_owned();
        assert!(msg.body_html(0).unwrap().contains("<h1>Disk report</h1>"));
        let text_parts: Vec<_> = msg
            .parts
            .iter()
            .filter(|part| {
                part.content_type()
                    .is_some_and(|ct| ct.ctype() == "text" && ct.subtype() == Some("plain"))
            })
            .collect();
        if alone {
            assert!(text_parts.is_empty(), "{raw}");
            assert!(!raw.contains("multipart/alternative"), "{raw}");
        } else {
            assert_eq!(text_parts.len(), 1, "{raw}");
            assert!(raw.contains("multipart/alternative"), "{raw}");
            let text = text_parts[0].text_contents().unwrap();
            assert!(
                text.contains("Disk report") && text.contains("on backup1."),
                "{text:?}"
            );
            assert!(!text.contains('<'), "{text:?}");
        }
    }
}

#[test]
fn html_attachments_and_inline_images_round_trip() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    fs::write(&html, "<p>Hallo <img src=\"cid:logo.png\"></p>\n").unwrap();
    let logo = dir.path().join("logo.png");
    let logo_bytes: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    fs::write(&logo, &logo_bytes).unwrap();
    let csv = dir.path().join("résumé données.csv");
    fs::write(&csv, "a,b\n1,2\n").unwrap();
    let blob = dir.path().join("blob.xyz");
    fs::write(&blob, [0u8, 1, 2, 255]).unwrap();

    postie()
        .args([
            "--server",
            &srv.addr(),
            "-f",
            "a@example.com",
            "b@example.com",
        ])
        .args(["-s", "report", "--body", "plain version\n"])
        .arg("--html")
        .arg(&html)
        .arg("--inline")
        .arg(&logo)
        .arg("-a")
        .arg(&csv)
        .arg("-a")
        .arg(format!("{};type=application/x-postie-test", blob.display()))
        .assert()
        .success();
    let mail = srv.wait_for_messages(1).remove(0);
    let raw = String::from_utf8(mail.data.clone()).unwrap();
    assert!(raw.contains("multipart/mixed"), "{raw}");
    assert!(raw.contains("multipart/alternative"), "{raw}");
    assert!(
        raw.contains("multipart/related"),
        "inline images belong in related:\n{raw}"
    );

    let msg = parse(&mail.data);
    assert_eq!(msg.body_text(0).unwrap().trim_end(), "plain version");
    assert!(msg.body_html(0).unwrap().contains("cid:logo.png"));
    let parts: Vec<_> = msg.attachments().collect();
    let logo_part = parts
        .iter()
        .find(|p| p.content_id() == Some("logo.png"))
        .expect("inline part with Content-ID logo.png");
    assert_eq!(logo_part.contents(), &logo_bytes[..]);
    assert_eq!(logo_part.content_type().unwrap().subtype(), Some("png"));
    let csv_part = parts
        .iter()
        .find(|p| p.attachment_name() == Some("résumé données.csv"))
        .expect("attachment with its UTF-8 name");
    // Text in canonical form (RFC 2046 4.1.1): LF as CRLF.
    assert_eq!(csv_part.contents(), b"a,b\r\n1,2\r\n");
    assert_eq!(csv_part.content_type().unwrap().subtype(), Some("csv"));
    let blob_part = parts
        .iter()
        .find(|p| p.attachment_name() == Some("blob.xyz"))
        .unwrap();
    assert_eq!(blob_part.contents(), [0u8, 1, 2, 255]);
    assert_eq!(
        blob_part.content_type().unwrap().subtype(),
        Some("x-postie-test")
    );
}

#[test]
fn long_lines_and_leading_dots_survive_the_wire() {
    let srv = server();
    let long_line = "x".repeat(5000);
    let body = format!(".\n..two dots\n.leading\n{long_line}\nünïcödé {long_line}\n");
    postie()
        .args([
            "--server",
            &srv.addr(),
            "-f",
            "a@example.com",
            "b@example.com",
        ])
        .write_stdin(body.clone())
        .assert()
        .success();
    let mail = srv.wait_for_messages(1).remove(0);
    for line in mail.data.split(|&b| b == b'\n') {
        assert!(
            line.len() <= 998,
            "a line of {} octets on the wire",
            line.len()
        );
    }
    let msg = parse(&mail.data);
    assert_eq!(msg.body_text(0).unwrap(), body.replace('\n', "\r\n"));
}

#[test]
fn starttls_with_auth_plain_and_password_from_env() {
    let srv = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        auth: true,
        ..ServerOptions::default()
    });
    postie()
        .args([
            "--server",
            &format!("localhost:{}", srv.port),
            "--tls",
            "starttls",
        ])
        .arg("--ca-file")
        .arg(srv.ca_file())
        .args([
            "--user",
            USER,
            "-f",
            "a@example.com",
            "b@example.com",
            "--body",
            "x",
        ])
        .env("POSTIE_PASSWORD", PASSWORD)
        .assert()
        .success();
    let mail = srv.wait_for_messages(1).remove(0);
    assert!(mail.tls, "the message went over TLS");
    assert_eq!(mail.auth_user.as_deref(), Some(USER));
}

#[test]
fn auth_login_with_password_command() {
    let srv = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        auth: true,
        ..ServerOptions::default()
    });
    postie()
        .args(["--server", &srv.addr(), "--auth", "login"])
        .arg("--ca-file")
        .arg(srv.ca_file())
        .args([
            "--user",
            USER,
            "--password-cmd",
            &format!("printf '%s\\n' '{PASSWORD}'"),
        ])
        .args(SMALL_MESSAGE)
        .assert()
        .success();
    assert_eq!(srv.wait_for_messages(1)[0].auth_user.as_deref(), Some(USER));
    assert_eq!(srv.auth_attempts(), vec![(USER.to_string(), true)]);
}

#[test]
fn wrong_password_is_77_and_never_echoed() {
    let srv = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        auth: true,
        ..ServerOptions::default()
    });
    let wrong = "not-the-Pa55word";
    let output = postie()
        .args(["--server", &srv.addr()])
        .arg("--ca-file")
        .arg(srv.ca_file())
        .args([
            "--user",
            USER,
            "-f",
            "a@example.com",
            "b@example.com",
            "--body",
            "x",
        ])
        .env("POSTIE_PASSWORD", wrong)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(77));
    let stderr = stderr_of(&output);
    assert!(stderr.starts_with("postie: error: AUTH: "), "{stderr}");
    assert!(stderr.contains("535"), "{stderr}");
    assert!(!stderr.contains(wrong), "password leaked: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(srv.received().is_empty());
}

#[test]
fn implicit_tls_by_url_and_by_flag() {
    let srv = TestServer::start(ServerOptions {
        tls: Tls::Implicit,
        ..ServerOptions::default()
    });
    for server_args in [
        vec![format!("--server=smtps://localhost:{}", srv.port)],
        vec![
            format!("--server=127.0.0.1:{}", srv.port),
            "--tls=implicit".into(),
        ],
    ] {
        postie()
            .args(&server_args)
            .arg("--ca-file")
            .arg(srv.ca_file())
            .args(SMALL_MESSAGE)
            .assert()
            .success();
    }
    let got = srv.wait_for_messages(2);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|m| m.tls));
}

fn client_cert_server() -> TestServer {
    TestServer::start(ServerOptions {
        tls: Tls::Implicit,
        require_client_cert: true,
        ..ServerOptions::default()
    })
}

#[test]
fn a_client_certificate_gets_through_a_server_that_requires_one() {
    let srv = client_cert_server();
    let (cert, key) = srv.client_cert();
    postie()
        .args(["--server", &srv.addr(), "--tls", "implicit", "--ca-file"])
        .arg(srv.ca_file())
        .arg("--client-cert")
        .arg(&cert)
        .arg("--client-key")
        .arg(&key)
        .args(SMALL_MESSAGE)
        .assert()
        .success();
    assert_eq!(srv.wait_for_messages(1).len(), 1);
}

#[test]
fn without_the_client_certificate_the_server_refuses_the_handshake() {
    let srv = client_cert_server();
    let ca = srv.ca_file();
    let (code, stderr) = send_small(&[
        "--server",
        &srv.addr(),
        "--tls",
        "implicit",
        "--ca-file",
        ca.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(77), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "TLS: {} requires a client certificate",
            srv.addr()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--client-cert"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(srv.received().is_empty());
}

#[test]
fn required_starttls_missing_is_69_not_a_downgrade() {
    let srv = server();
    let (code, stderr) = send_small(&["--server", &srv.addr(), "--tls", "starttls"]);
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains("does not offer STARTTLS"), "{stderr}");
    assert!(srv.received().is_empty());
}

#[test]
fn untrusted_certificate_is_69_and_says_self_signed() {
    let srv = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        ..ServerOptions::default()
    });
    let server = format!("localhost:{}", srv.port);
    let (code, stderr) = send_small(&["--server", &server, "--tls", "starttls"]);
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains("self-signed"), "{stderr}");
    assert!(srv.received().is_empty());
}

#[test]
fn insecure_skips_verification_with_a_warning() {
    let srv = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        ..ServerOptions::default()
    });
    let (code, stderr) = send_small(&["--server", &srv.addr(), "--tls", "starttls", "--insecure"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.starts_with("postie: warning: --insecure"),
        "{stderr}"
    );
    assert!(srv.wait_for_messages(1)[0].tls);
}

#[test]
fn with_insecure_the_report_says_what_verification_would_reject() {
    let srv = TestServer::start(ServerOptions {
        tls: Tls::Implicit,
        cert: CertKind::WrongName,
        ..ServerOptions::default()
    });
    let (code, stderr) = send_small(&[
        "--server",
        &srv.addr(),
        "--tls",
        "implicit",
        "--insecure",
        "-v",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "=== certificate NOT verified (--insecure); it is self-signed, not valid for the name \"127.0.0.1\""
        ),
        "{stderr}"
    );
}

#[test]
fn opportunistic_tls_is_the_loopback_default() {
    let tls_srv = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        ..ServerOptions::default()
    });
    postie()
        .args(["--server", &tls_srv.addr()])
        .arg("--ca-file")
        .arg(tls_srv.ca_file())
        .args(SMALL_MESSAGE)
        .assert()
        .success();
    assert!(
        tls_srv.wait_for_messages(1)[0].tls,
        "STARTTLS used when offered"
    );
    let plain_srv = server();
    postie()
        .args(["--server", &plain_srv.addr()])
        .args(SMALL_MESSAGE)
        .assert()
        .success();
    assert!(!plain_srv.wait_for_messages(1)[0].tls);
}

#[test]
fn refused_recipient_cancels_the_message_and_is_listed() {
    let srv = TestServer::start(ServerOptions {
        refuse_rcpt: vec!["nobody@example.com".into(), "ghost@example.com".into()],
        ..ServerOptions::default()
    });
    let output = postie()
        .args(["--server", &srv.addr(), "-f", "a@example.com"])
        .args([
            "ok@example.com",
            "nobody@example.com",
            "ghost@example.com",
            "--body",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(67));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("<nobody@example.com>: 550"), "{stderr}");
    assert!(
        stderr.contains("<ghost@example.com>: 550"),
        "every refusal listed: {stderr}"
    );
    assert!(stderr.contains("nothing was sent"), "{stderr}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(srv.received().is_empty(), "no message after a refusal");
}

#[test]
fn partial_sends_to_the_accepted_and_reports_the_refused() {
    let srv = TestServer::start(ServerOptions {
        refuse_rcpt: vec!["nobody@example.com".into()],
        ..ServerOptions::default()
    });
    let output = postie()
        .args(["--server", &srv.addr(), "-f", "a@example.com", "--partial"])
        .args(["ok@example.com", "nobody@example.com", "--body", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(67));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("warning: not sent to <nobody@example.com>: RCPT TO: "),
        "{stderr}"
    );
    assert!(stderr.contains("replied 550 5.1.1"), "{stderr}");
    assert!(
        stderr
            .contains("error: sent to 1 of 2 recipients; 1 refused (first: <nobody@example.com>)"),
        "{stderr}"
    );
    assert_eq!(srv.wait_for_messages(1)[0].rcpt_to, vec!["ok@example.com"]);
}

#[test]
fn temporary_recipient_failure_is_75() {
    let srv = TestServer::start(ServerOptions {
        tempfail_rcpt: vec!["later@example.com".into()],
        ..ServerOptions::default()
    });
    let output = postie()
        .args(["--server", &srv.addr(), "-f", "a@example.com"])
        .args(["later@example.com", "--body", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(75));
    assert!(stderr_of(&output).contains("451"), "{}", stderr_of(&output));
}

#[test]
fn non_ascii_envelope_needs_smtputf8() {
    let srv = server();
    let output = postie()
        .args(["--server", &srv.addr(), "-f", "a@example.com"])
        .args(["jürgen@example.com", "--body", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(69));
    assert!(
        stderr_of(&output).contains("SMTPUTF8"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn dry_run_prints_envelope_and_message_and_sends_nothing() {
    let output = postie()
        .args(["--dry-run", "-f", "Me <me@example.com>", "-s", "Hello"])
        .args([
            "you@example.com",
            "-b",
            "hidden@example.com",
            "--body",
            "Hi there",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = stderr_of(&output);
    assert!(stderr.contains("MAIL FROM:<me@example.com>"), "{stderr}");
    assert!(stderr.contains("RCPT TO:<you@example.com>"), "{stderr}");
    assert!(stderr.contains("RCPT TO:<hidden@example.com>"), "{stderr}");
    let msg = parse(&output.stdout);
    assert_eq!(msg.subject(), Some("Hello"));
    assert_eq!(msg.body_text(0).unwrap().trim_end(), "Hi there");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("hidden@"));
}

#[test]
fn a_body_without_a_final_newline_gets_one_and_dry_run_shows_the_wire() {
    let srv = server();
    let args = [
        "-f",
        "a@example.com",
        "-s",
        "no newline",
        "-H",
        "Date: Tue, 1 Dec 2026 10:00:00 +0000",
        "-H",
        "Message-ID: <fixed@example.com>",
        "b@example.com",
    ];
    for (n, body) in ["last line", "caf\u{e9}=1"].into_iter().enumerate() {
        postie()
            .args(["--server", &srv.addr()])
            .args(args)
            .args(["--body", body])
            .assert()
            .success();
        let received = srv.wait_for_messages(n + 1).remove(n).data;
        let text = String::from_utf8(received.clone()).unwrap();
        assert!(
            text.ends_with("\r\n") && !text.ends_with("\r\n\r\n"),
            "one CRLF before the dot: {text:?}"
        );
        let dry = postie()
            .arg("--dry-run")
            .args(args)
            .args(["--body", body])
            .output()
            .unwrap();
        assert!(dry.status.success());
        assert_eq!(String::from_utf8(dry.stdout).unwrap(), text);
        let msg = parse(&received);
        assert_eq!(msg.body_text(0).unwrap(), format!("{body}\r\n"));
    }
}

#[test]
fn help_and_version_exit_zero() {
    let help = postie().arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for heading in [
        "Recipients:",
        "Message:",
        "Server:",
        "TLS:",
        "Authentication:",
    ] {
        assert!(text.contains(heading), "missing {heading} in --help");
    }
    let version = postie().arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("postie "));
}

#[test]
fn xoauth2_sends_the_token_as_rfc_7628_says() {
    let srv = common::ScriptedServer::start(
        b"220 oauth.test ESMTP\r\n",
        [
            &b"250-oauth.test\r\n250 AUTH XOAUTH2\r\n"[..],
            b"235 2.7.0 accepted\r\n",
            b"250 ok\r\n",
            b"250 ok\r\n",
            b"354 go ahead\r\n",
            b"250 2.0.0 queued\r\n",
            b"221 bye\r\n",
        ]
        .iter()
        .map(|r| r.to_vec())
        .collect(),
    );
    postie()
        .args([
            "--server",
            &srv.addr(),
            "--auth",
            "xoauth2",
            "--user",
            "alice@example.com",
        ])
        .args([
            "--password-cmd",
            "echo ya29.token",
            "-f",
            "alice@example.com",
        ])
        .args(["b@example.com", "--body", "x"])
        .assert()
        .success();
    let lines = srv.lines();
    // base64("user=alice@example.com\x01auth=Bearer ya29.token\x01\x01")
    let expected = "AUTH XOAUTH2 dXNlcj1hbGljZUBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnRva2VuAQE=";
    assert!(lines.iter().any(|l| l == expected), "{lines:#?}");
}

#[cfg(unix)]
#[test]
fn password_from_a_private_config_file() {
    use std::os::unix::fs::PermissionsExt;
    let srv = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        auth: true,
        ..ServerOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[accounts.main]\nserver = \"{}\"\nca_file = \"{}\"\nuser = \"{USER}\"\n\
             password = \"{PASSWORD}\"\nfrom = \"a@example.com\"\n",
            srv.addr(),
            srv.ca_file().display()
        ),
    )
    .unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).unwrap();
    postie()
        .arg("--config")
        .arg(&config)
        .args(["--account", "main", "b@example.com", "--body", "x"])
        .assert()
        .success();
    assert_eq!(srv.wait_for_messages(1)[0].auth_user.as_deref(), Some(USER));
}

#[test]
fn large_attachments_are_streamed_and_arrive_intact() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("backup.tar");
    // Over the 1 MiB streaming threshold, and not a multiple of 3 or 57.
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 11)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(&big, &data).unwrap();
    let small = dir.path().join("notes.txt");
    fs::write(&small, "small one\n").unwrap();
    postie()
        .args([
            "--server",
            &srv.addr(),
            "-f",
            "a@example.com",
            "b@example.com",
            "--body",
            "two files",
        ])
        .arg("-a")
        .arg(&big)
        .arg("-a")
        .arg(&small)
        .assert()
        .success();
    let mail = srv.wait_for_messages(1).remove(0);
    for line in mail.data.split(|&b| b == b'\n') {
        assert!(line.len() <= 78, "a line of {} octets", line.len());
    }
    let msg = parse(&mail.data);
    let parts: Vec<_> = msg.attachments().collect();
    let got = parts
        .iter()
        .find(|p| p.attachment_name() == Some("backup.tar"))
        .unwrap();
    assert!(
        got.contents() == &data[..],
        "the streamed file arrives byte for byte"
    );
    let notes = parts
        .iter()
        .find(|p| p.attachment_name() == Some("notes.txt"))
        .unwrap();
    assert_eq!(notes.contents(), b"small one\r\n");

    // --dry-run prints the same structure from the same streamed file.
    let output = postie()
        .args([
            "--dry-run",
            "-f",
            "a@example.com",
            "b@example.com",
            "--body",
            "two files",
        ])
        .arg("-a")
        .arg(&big)
        .output()
        .unwrap();
    let printed = parse(&output.stdout);
    let again = printed.attachments().next().unwrap();
    assert!(again.contents() == &data[..]);
}

#[test]
fn standard_input_and_renamed_files_attach_under_the_given_names() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out-20261201.tmp");
    fs::write(&file, "renamed\n").unwrap();
    postie()
        .args(["--server", &srv.addr(), "-f", "a@example.com"])
        .args(["b@example.com", "--body", "the report"])
        .args(["-a", "-;name=report.csv;type=text/csv"])
        .arg("-a")
        .arg(format!("{};name=notes.txt", file.display()))
        .write_stdin("a,b\n1,2\n")
        .assert()
        .success();
    let msg = parse(&srv.wait_for_messages(1)[0].data);
    assert_eq!(msg.body_text(0).unwrap(), "the report");
    let parts: Vec<_> = msg.attachments().collect();
    let report = parts
        .iter()
        .find(|p| p.attachment_name() == Some("report.csv"))
        .expect("standard input attached as report.csv");
    assert_eq!(report.content_type().unwrap().subtype(), Some("csv"));
    assert_eq!(report.contents(), b"a,b\r\n1,2\r\n");
    let notes = parts
        .iter()
        .find(|p| p.attachment_name() == Some("notes.txt"))
        .expect("the file attached as notes.txt");
    assert_eq!(notes.contents(), b"renamed\r\n");
}

#[test]
fn a_large_attachment_on_standard_input_is_spooled_and_arrives_intact() {
    let srv = server();
    // Over the 4 MiB that stay in memory, so it goes through the spool.
    let data: Vec<u8> = (0..5 * 1024 * 1024 + 7)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    postie()
        .args(["--server", &srv.addr(), "-f", "a@example.com"])
        .args(["b@example.com", "--body", "a dump"])
        .args(["-a", "-;name=dump.bin"])
        .write_stdin(data.clone())
        .assert()
        .success();
    let msg = parse(&srv.wait_for_messages(1)[0].data);
    let dump = msg.attachments().next().expect("one attachment");
    assert_eq!(dump.attachment_name(), Some("dump.bin"));
    assert!(dump.contents() == &data[..], "arrives byte for byte");
}

/// A file over the 8 MiB above which an upload shows a progress bar.
fn nine_mib_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    fs::write(&path, vec![7u8; 9 * 1024 * 1024]).unwrap();
    (dir, path)
}

#[test]
fn no_progress_bar_when_stderr_is_not_a_terminal() {
    let srv = server();
    let (_dir, big) = nine_mib_file();
    let output = postie()
        .args(["--server", &srv.addr(), "-f", "a@example.com"])
        .args(["b@example.com", "--body", "big"])
        .arg("-a")
        .arg(&big)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert_eq!(stderr_of(&output), "", "nothing on stderr, no bar");
    srv.wait_for_messages(1);
}

#[test]
fn a_large_upload_shows_a_progress_bar_on_a_terminal() {
    // script(1) gives postie a pseudo-terminal for stderr.
    if !common::require_tool("script", "bsdutils") {
        return;
    }
    let srv = server();
    let (_dir, big) = nine_mib_file();
    let command = format!(
        "{} --server {} -f a@example.com b@example.com --body big -a {}",
        env!("CARGO_BIN_EXE_postie"),
        srv.addr(),
        big.display()
    );
    let (mut script, _home) = common::hermetic_std("script");
    // Without TERM (or with TERM=dumb) the terminal cannot redraw a line,
    // and indicatif draws nothing.
    let output = script
        .env("TERM", "xterm")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("postie: sending "), "{text}");
    srv.wait_for_messages(1);

    // A small message, on the same terminal, shows none.
    let small = format!(
        "{} --server {} -f a@example.com b@example.com --body small",
        env!("CARGO_BIN_EXE_postie"),
        srv.addr()
    );
    let (mut script, _home) = common::hermetic_std("script");
    let output = script
        .env("TERM", "xterm")
        .args(["-qec", &small, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(!text.contains("postie: sending"), "{text}");
}

#[test]
fn an_attachment_over_the_servers_size_fails_before_sending() {
    // A 2 GiB sparse file: postie must not read it to learn it is too big.
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.img");
    fs::File::create(&huge).unwrap().set_len(2 << 30).unwrap();
    let srv = common::ScriptedServer::start(
        b"220 small.test ESMTP\r\n",
        vec![
            b"250-small.test\r\n250 SIZE 10485760\r\n".to_vec(),
            b"221 bye\r\n".to_vec(),
        ],
    );
    let started = std::time::Instant::now();
    let output = postie()
        .args([
            "--server",
            &srv.addr(),
            "-f",
            "a@example.com",
            "b@example.com",
            "--body",
            "x",
        ])
        .arg("-a")
        .arg(&huge)
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(69), "{stderr}");
    assert!(
        stderr.contains("takes at most 10.0 MiB (SIZE 10485760)"),
        "{stderr}"
    );
    assert!(
        started.elapsed().as_secs() < 10,
        "it must not read 2 GiB first"
    );
    let lines = srv.lines();
    assert!(!lines.iter().any(|l| l.starts_with("MAIL")), "{lines:?}");
}

/// A ScriptedServer for one message; `extensions` are the EHLO lines
/// after the first.
fn scripted_one_message(extensions: &str) -> common::ScriptedServer {
    let ehlo = format!("250-utf8.test\r\n{extensions}250 HELP\r\n");
    common::ScriptedServer::start(
        b"220 utf8.test ESMTP\r\n",
        [
            ehlo.as_bytes(),
            b"250 ok\r\n",
            b"250 ok\r\n",
            b"354 go ahead\r\n",
            b"250 2.0.0 queued\r\n",
            b"221 bye\r\n",
        ]
        .iter()
        .map(|r| r.to_vec())
        .collect(),
    )
}

fn mail_line(lines: &[String]) -> String {
    lines
        .iter()
        .find(|l| l.starts_with("MAIL FROM:"))
        .cloned()
        .unwrap_or_else(|| panic!("no MAIL line in {lines:#?}"))
}

#[test]
fn a_non_ascii_domain_goes_as_a_labels_without_smtputf8() {
    let srv = server();
    postie()
        .args(["--server", &srv.addr(), "-f", "Jörg <user@bücher.example>"])
        .args(["-r", "reply@bücher.example", "--cc", "cc@bücher.example"])
        .args(["ops@bücher.example", "--body", "x"])
        .assert()
        .success();
    let mail = srv.wait_for_messages(1).remove(0);
    assert_eq!(mail.mail_from, "user@xn--bcher-kva.example");
    assert_eq!(
        mail.rcpt_to,
        vec!["ops@xn--bcher-kva.example", "cc@xn--bcher-kva.example"]
    );
    assert!(
        mail.data.is_ascii(),
        "{}",
        String::from_utf8_lossy(&mail.data)
    );
    let msg = parse(&mail.data);
    let from = msg.from().unwrap().first().unwrap();
    assert_eq!(from.address(), Some("user@xn--bcher-kva.example"));
    assert_eq!(from.name(), Some("Jörg"));
    for (list, want) in [
        (msg.to(), "ops@xn--bcher-kva.example"),
        (msg.cc(), "cc@xn--bcher-kva.example"),
        (msg.reply_to(), "reply@xn--bcher-kva.example"),
    ] {
        assert_eq!(list.unwrap().first().unwrap().address(), Some(want));
    }
    let id = msg.message_id().unwrap();
    assert!(id.ends_with("@xn--bcher-kva.example"), "{id}");
}

#[test]
fn an_invalid_internationalized_domain_is_65_naming_the_address() {
    let output = postie()
        .args(["--dry-run", "-f", "user@bü_cher.example"])
        .args(["ops@example.com", "--body", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(65));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("user@bü_cher.example"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[test]
fn a_non_ascii_local_part_in_a_header_needs_smtputf8() {
    let args = [
        "-f",
        "a@example.com",
        "-r",
        "pelé@example.com",
        "b@example.com",
        "--body",
        "x",
    ];
    let offered = scripted_one_message("250-8BITMIME\r\n250-SMTPUTF8\r\n");
    postie()
        .args(["--server", &offered.addr()])
        .args(args)
        .assert()
        .success();
    let mail = mail_line(&offered.lines());
    assert!(mail.contains("SMTPUTF8"), "{mail}");
    assert!(mail.starts_with("MAIL FROM:<a@example.com>"), "{mail}");

    let srv = server();
    let output = postie()
        .args(["--server", &srv.addr()])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(69), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("SMTPUTF8"),
        "{}",
        stderr_of(&output)
    );
    assert!(srv.received().is_empty());

    // A UTF-8 display name alone is an encoded word: no SMTPUTF8.
    let offered = scripted_one_message("250-8BITMIME\r\n250-SMTPUTF8\r\n");
    postie()
        .args(["--server", &offered.addr(), "-f", "a@example.com"])
        .args([
            "-r",
            "Pelé <pele@example.com>",
            "b@example.com",
            "--body",
            "x",
        ])
        .assert()
        .success();
    let mail = mail_line(&offered.lines());
    assert!(!mail.contains("SMTPUTF8"), "{mail}");
}

#[test]
fn a_ready_made_message_with_a_utf8_local_part_needs_smtputf8() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("utf8.eml");
    fs::write(
        &path,
        "From: Pelé <pelé@example.com>\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nbody\r\n",
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let args = ["-f", "a@example.com", "--message", path, "b@example.com"];
    let offered = scripted_one_message("250-8BITMIME\r\n250-SMTPUTF8\r\n");
    postie()
        .args(["--server", &offered.addr()])
        .args(args)
        .assert()
        .success();
    let lines = offered.lines();
    let mail = mail_line(&lines);
    assert!(mail.contains("SMTPUTF8"), "{mail}");
    assert!(
        lines.iter().any(|l| l.contains("pelé@example.com")),
        "{lines:#?}"
    );

    let srv = server();
    let output = postie()
        .args(["--server", &srv.addr()])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(69), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("SMTPUTF8"),
        "{}",
        stderr_of(&output)
    );
    assert!(srv.received().is_empty());
}

/// The five long msg-ids of the References test, with their brackets.
fn five_msg_ids() -> Vec<String> {
    (1..=5)
        .map(|n| format!("<{n}.20261201.a-long-thread-identifier@mail.example.com>"))
        .collect()
}

const UNSUBSCRIBE_URLS: [&str; 2] = [
    "mailto:unsubscribe@lists.example.com?subject=unsubscribe",
    "https://lists.example.com/unsubscribe/opaque-token-0123456789abcdef",
];

#[test]
fn structured_headers_arrive_folded_at_white_space_and_unencoded() {
    let srv = server();
    let ids = five_msg_ids();
    let unsubscribe = format!(
        "List-Unsubscribe: <{}>, <{}>",
        UNSUBSCRIBE_URLS[0], UNSUBSCRIBE_URLS[1]
    );
    let references = format!("References: {}", ids.join(" "));
    let in_reply_to = format!("In-Reply-To: {}", ids[4]);
    let subject = format!("{} done, all fine", ["nightly backup"; 10].join(" and "));
    assert_eq!(subject.len(), 200);
    postie()
        .args(["--server", &srv.addr(), "-s", &subject])
        .args(["-H", &unsubscribe, "-H", &references, "-H", &in_reply_to])
        .args(["-H", "List-Unsubscribe-Post: List-Unsubscribe=One-Click"])
        .args(["-H", "Sender: Jörg Müller-Lüdenscheidt <joerg@example.com>"])
        .args(SMALL_MESSAGE)
        .assert()
        .success();
    let data = srv.wait_for_messages(1).remove(0).data;
    let text = String::from_utf8(data.clone()).expect("7-bit");
    let head = text.split("\r\n\r\n").next().unwrap();
    for lines in [
        "\r\nList-Unsubscribe: <mailto:unsubscribe@lists.example.com?subject=unsubscribe>,\r\n <https://lists.example.com/unsubscribe/opaque-token-0123456789abcdef>\r\n",
        "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        "\r\nReferences: <1.20261201.a-long-thread-identifier@mail.example.com>\r\n <2.20261201.a-long-thread-identifier@mail.example.com>\r\n <3.20261201.a-long-thread-identifier@mail.example.com>\r\n <4.20261201.a-long-thread-identifier@mail.example.com>\r\n <5.20261201.a-long-thread-identifier@mail.example.com>\r\n",
        "\r\nIn-Reply-To: <5.20261201.a-long-thread-identifier@mail.example.com>\r\n",
        "\r\nSender: =?utf-8?B?SsO2cmcgTcO8bGxlci1Mw7xkZW5zY2hlaWR0?= <joerg@example.com>\r\n",
        "\r\nSubject: nightly backup and nightly backup and nightly backup and nightly\r\n backup and nightly backup and nightly backup and nightly backup and nightly\r\n backup and nightly backup and nightly backup done, all fine\r\n",
    ] {
        assert!(head.contains(lines), "{lines:?} in\n{head}");
    }
    for line in head.split("\r\n") {
        assert!(line.len() <= 78, "{} octets: {line}", line.len());
    }

    let msg = parse(&data);
    assert_eq!(msg.subject(), Some(subject.as_str()));
    let unsubscribe: Vec<_> = msg
        .header("List-Unsubscribe")
        .and_then(|value| value.as_address())
        .map(|list| list.iter().filter_map(|a| a.address()).collect())
        .unwrap_or_default();
    assert_eq!(unsubscribe, UNSUBSCRIBE_URLS);
    let bare: Vec<String> = ids
        .iter()
        .map(|id| id.trim_matches(['<', '>']).to_string())
        .collect();
    let references: Vec<_> = msg
        .references()
        .as_text_list()
        .unwrap()
        .iter()
        .map(|id| id.to_string())
        .collect();
    assert_eq!(references, bare);
    assert_eq!(msg.in_reply_to().as_text(), Some(bare[4].as_str()));
    let sender = msg.sender().unwrap().first().unwrap();
    assert_eq!(sender.name(), Some("Jörg Müller-Lüdenscheidt"));
    assert_eq!(sender.address(), Some("joerg@example.com"));
}

#[test]
fn malformed_structured_headers_are_refused_naming_the_field() {
    for (header, code, named) in [
        ("References: 1.thread@example.com", 64, "References"),
        ("In-Reply-To: <a@example.com> x", 64, "In-Reply-To"),
        (
            "List-Unsubscribe: https://l.example/u",
            64,
            "List-Unsubscribe",
        ),
        ("Sender: a@example.com, b@example.com", 64, "Sender"),
        ("Message-ID: <grüße@example.com>", 65, "Message-ID"),
        (
            "List-Unsubscribe: <https://bücher.example/u>",
            65,
            "List-Unsubscribe",
        ),
    ] {
        let (code_got, stderr) = send_small(&["--dry-run", "-H", header]);
        assert_eq!(code_got, Some(code), "{header}: {stderr}");
        assert!(stderr.contains(named), "{header}: {stderr}");
    }
}
