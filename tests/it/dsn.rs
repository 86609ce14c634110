//! Delivery status notifications (RFC 3461): --notify, --ret, --envid and
//! sendmail's -N, -R, -V become parameters of MAIL and RCPT when the
//! server offers DSN, are dropped (said under -v) or refused
//! (`dsn_required`) when it does not, and stay with their recipients
//! through the queue. A scripted server records the exact lines.

use crate::common;

use std::fs;

use crate::common::dns::DnsServer;
use crate::common::{postie, sendmail, ScriptedServer, ServerOptions, TestServer};

type Setup = common::QueueSetup;

const GREETING: &[u8] = b"220 dsn.test ESMTP\r\n";
const EHLO_DSN: &[u8] = b"250-dsn.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 DSN\r\n";
const EHLO_DSN_PIPELINING: &[u8] =
    b"250-dsn.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 DSN\r\n";
const EHLO_PLAIN: &[u8] = b"250-plain.test\r\n250 8BITMIME\r\n";
const OK: &[u8] = b"250 2.0.0 ok\r\n";

/// A server that takes one message for `recipients` recipients: EHLO,
/// MAIL, each RCPT, DATA, the message and QUIT.
fn server(ehlo: &[u8], recipients: usize) -> ScriptedServer {
    let mut replies = vec![ehlo.to_vec(), OK.to_vec()];
    replies.extend(std::iter::repeat_n(OK.to_vec(), recipients));
    replies.push(b"354 go ahead\r\n".to_vec());
    replies.push(b"250 2.0.0 queued\r\n".to_vec());
    replies.push(b"221 2.0.0 bye\r\n".to_vec());
    ScriptedServer::start(GREETING, replies)
}

/// The MAIL and RCPT lines the server got.
fn envelope_lines(server: &ScriptedServer) -> Vec<String> {
    server
        .lines()
        .into_iter()
        .filter(|line| line.starts_with("MAIL ") || line.starts_with("RCPT "))
        .collect()
}

#[test]
fn the_flags_become_mail_and_rcpt_parameters_xtext_encoded() {
    let server = server(EHLO_DSN, 2);
    let output = postie()
        .args(["--server", &server.addr(), "-f", "a@example.com"])
        .args(["--notify", "Success,failure", "--ret", "HDRS"])
        .args(["--envid", "Q+1=x"])
        .args(["b+tag@example.com", "c=d@example.com", "--body", "hi"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        envelope_lines(&server),
        [
            "MAIL FROM:<a@example.com> RET=HDRS ENVID=Q+2B1+3Dx",
            "RCPT TO:<b+tag@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Btag@example.com",
            "RCPT TO:<c=d@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c+3Dd@example.com",
        ]
    );
}

#[test]
fn pipelined_rcpts_carry_them_too_and_a_non_ascii_orcpt_is_utf8() {
    let server = server(EHLO_DSN_PIPELINING, 2);
    let output = postie()
        .args(["--server", &server.addr(), "-f", "a@example.com"])
        .args(["--notify", "never"])
        .args(["jö+x@example.com", "b@example.com", "--body", "hi"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    // SMTPUTF8 is on (the address needs it): utf-8-addr-unitext, with '+'
    // as \x{2B} (RFC 6533 3).
    assert_eq!(
        envelope_lines(&server),
        [
            "MAIL FROM:<a@example.com> SMTPUTF8 BODY=8BITMIME",
            "RCPT TO:<jö+x@example.com> NOTIFY=NEVER ORCPT=utf-8;jö\\x{2B}x@example.com",
            "RCPT TO:<b@example.com> NOTIFY=NEVER ORCPT=rfc822;b@example.com",
        ]
    );
}

#[test]
fn ret_alone_sends_orcpt_without_notify() {
    let server = server(EHLO_DSN, 1);
    postie()
        .args(["--server", &server.addr(), "-f", "a@example.com"])
        .args(["--ret", "full", "b@example.com", "--body", "hi"])
        .assert()
        .success();
    assert_eq!(
        envelope_lines(&server),
        [
            "MAIL FROM:<a@example.com> RET=FULL",
            "RCPT TO:<b@example.com> ORCPT=rfc822;b@example.com",
        ]
    );
}

#[test]
fn without_a_request_nothing_is_added() {
    let server = server(EHLO_DSN, 1);
    postie()
        .args(["--server", &server.addr(), "-f", "a@example.com"])
        .args(["b@example.com", "--body", "hi"])
        .assert()
        .success();
    assert_eq!(
        envelope_lines(&server),
        ["MAIL FROM:<a@example.com>", "RCPT TO:<b@example.com>"]
    );
}

#[test]
fn sendmail_n_r_v_are_the_same_request() {
    let server = server(EHLO_DSN, 1);
    let (_link, mut cmd) = sendmail();
    let output = cmd
        .args([&format!("--server={}", server.addr()), "-i"])
        .args(["-N", "success,delay", "-Rhdrs", "-V", "cron.42"])
        .args(["-f", "root@example.com", "ops@example.com"])
        .write_stdin("Subject: disk\n\nfull\n")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        envelope_lines(&server),
        [
            "MAIL FROM:<root@example.com> RET=HDRS ENVID=cron.42",
            "RCPT TO:<ops@example.com> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;ops@example.com",
        ]
    );
}

#[test]
fn a_server_without_dsn_gets_none_and_v_says_so_once() {
    let server = server(EHLO_PLAIN, 2);
    let output = postie()
        .args(["--server", &server.addr(), "-f", "a@example.com", "-v"])
        .args(["--notify", "success", "--ret", "hdrs", "--envid", "x1"])
        .args(["b@example.com", "c@example.com", "--body", "hi"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        envelope_lines(&server),
        [
            "MAIL FROM:<a@example.com>",
            "RCPT TO:<b@example.com>",
            "RCPT TO:<c@example.com>",
        ]
    );
    assert_eq!(stderr.matches("does not offer DSN").count(), 1, "{stderr}");
    // Not without -v.
    let quiet = server_quiet_run();
    assert!(!quiet.contains("DSN"), "{quiet}");
}

fn server_quiet_run() -> String {
    let server = server(EHLO_PLAIN, 1);
    let output = postie()
        .args(["--server", &server.addr(), "-f", "a@example.com"])
        .args(["--notify", "success", "b@example.com", "--body", "hi"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn dsn_required_fails_the_message_at_a_server_without_dsn() {
    let server = ScriptedServer::start(
        GREETING,
        vec![EHLO_PLAIN.to_vec(), b"221 2.0.0 bye\r\n".to_vec()],
    );
    let setup = Setup::new(&server.addr(), "dsn_required = true");
    let output = setup
        .cmd()
        .args(["--notify", "success", "b@example.com", "--body", "hi"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(69), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("does not support DSN"), "{stderr}");
    assert!(stderr.contains("dsn_required = false"), "{stderr}");
    assert!(envelope_lines(&server).is_empty());
    assert!(
        setup.entries().is_empty(),
        "a permanent failure is not queued"
    );
}

#[test]
fn dsn_required_in_sendmail_mode_keeps_the_message_in_failed() {
    let server = ScriptedServer::start(
        GREETING,
        vec![EHLO_PLAIN.to_vec(), b"221 2.0.0 bye\r\n".to_vec()],
    );
    let setup = Setup::new(&server.addr(), "dsn_required = true");
    let (_link, mut cmd) = setup.sendmail();
    let output = cmd
        .args(["-N", "failure", "-i", "ops@example.com"])
        .write_stdin("Subject: disk\n\nfull\n")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("does not support DSN"), "{stderr}");
    assert!(stderr.contains("kept the message in "), "{stderr}");
    let failed = common::files_ending(&setup.queue.join("failed"), "json");
    assert_eq!(failed.len(), 1, "{stderr}");
    let entry: serde_json::Value = serde_json::from_slice(&fs::read(&failed[0]).unwrap()).unwrap();
    // Kept with what was asked, for a retry through a server with DSN.
    assert_eq!(
        entry["dsn"]["recipients"]["ops@example.com"]["notify"],
        "FAILURE"
    );
}

#[test]
fn bad_values_are_one_line_usage_errors() {
    for args in [
        ["--notify", "never,success"],
        ["--notify", "sometimes"],
        ["--ret", "x"],
        ["--envid", "a b"],
        ["--envid", "a\rb"],
    ] {
        let output = postie()
            .args(["--server", "127.0.0.1:1", "-f", "a@example.com"])
            .args(args)
            .args(["b@example.com", "--body", "hi"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            !stderr.contains('\r'),
            "a CR reaches the terminal: {stderr:?}"
        );
    }
    let long = "x".repeat(101);
    let output = postie()
        .args(["--envid", &long, "b@example.com", "--body", "hi"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("100"));
}

#[test]
fn a_partial_delivery_flushes_the_owed_recipient_with_its_own_request() {
    // The first server has no DSN: the request is dropped there, and kept
    // in the queue for the recipient it could not take yet.
    let greylisting = TestServer::start(ServerOptions {
        tempfail_rcpt: vec!["later@example.com".into()],
        ..ServerOptions::default()
    });
    let setup = Setup::new(&greylisting.addr(), "partial = true");
    let output = setup
        .cmd()
        .args(["--queue", "--notify", "success,failure", "--envid", "run7"])
        .args(["--ret", "hdrs", "now@example.com", "later@example.com"])
        .args(["--body", "report"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        greylisting.wait_for_messages(1)[0].rcpt_to,
        ["now@example.com"]
    );
    let entries = setup.entries();
    assert_eq!(entries.len(), 1, "{stderr}");
    let entry: serde_json::Value = serde_json::from_slice(&fs::read(&entries[0]).unwrap()).unwrap();
    assert_eq!(
        entry["dsn"],
        serde_json::json!({
            "ret": "hdrs",
            "envid": "run7",
            "recipients": {
                "later@example.com": {"notify": "SUCCESS,FAILURE", "orcpt": "later@example.com"}
            }
        })
    );

    let back = server(EHLO_DSN, 1);
    setup.write_config(&back.addr(), "partial = true");
    let output = setup
        .cmd()
        .args(["queue", "flush", "--now"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        envelope_lines(&back),
        [
            "MAIL FROM:<cron@example.com> RET=HDRS ENVID=run7",
            "RCPT TO:<later@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;later@example.com",
        ]
    );
    assert!(setup.entries().is_empty());
}

#[test]
fn an_entry_written_before_dsn_still_flushes_without_parameters() {
    let server = server(EHLO_DSN, 1);
    let setup = Setup::new("127.0.0.1:1", "");
    fs::create_dir_all(&setup.queue).unwrap();
    let message = b"Subject: old\r\n\r\nx\r\n";
    fs::write(setup.queue.join("1-2-3.eml"), message).unwrap();
    // Version 1, as postie wrote it before this change: no "dsn" key.
    fs::write(
        setup.queue.join("1-2-3.json"),
        format!(
            r#"{{"version":1,"id":"1-2-3","created":{},"sender":"cron@example.com","recipients":["ops@example.com"],
                "settings":{{"server":"{}","timeout":5}},"size":{},"attempts":0,"last_attempt":null,"last_error":null}}"#,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            server.addr(),
            message.len()
        ),
    )
    .unwrap();
    setup
        .cmd()
        .args(["queue", "flush"])
        .assert()
        .success()
        .stderr("");
    assert_eq!(
        envelope_lines(&server),
        ["MAIL FROM:<cron@example.com>", "RCPT TO:<ops@example.com>"]
    );
    assert!(setup.entries().is_empty());
}

#[test]
fn direct_delivery_carries_the_request_to_each_exchanger() {
    let dns = DnsServer::start(&[
        ("good.test", "MX", "10 mx.good.test."),
        ("mx.good.test", "A", "127.0.0.1"),
    ]);
    let server = server(EHLO_DSN, 1);
    let output = postie()
        .args(["--mx", "--resolver", &dns.addr.to_string()])
        .args(["--port", &server.port.to_string(), "--timeout", "5"])
        .args(["-f", "sender@example.com", "--notify", "failure"])
        .args(["a@good.test", "--body", "hi"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        envelope_lines(&server),
        [
            "MAIL FROM:<sender@example.com>",
            "RCPT TO:<a@good.test> NOTIFY=FAILURE ORCPT=rfc822;a@good.test",
        ]
    );
}

#[test]
fn dry_run_shows_the_request_in_the_envelope() {
    let output = postie()
        .args([
            "--dry-run",
            "--server",
            "127.0.0.1:1",
            "-f",
            "a@example.com",
        ])
        .args([
            "--notify",
            "delay",
            "--envid",
            "d1",
            "b@example.com",
            "--body",
            "hi",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("MAIL FROM:<a@example.com> ENVID=d1\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("RCPT TO:<b@example.com> NOTIFY=DELAY ORCPT=rfc822;b@example.com\n"),
        "{stderr}"
    );
}
