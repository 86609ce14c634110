//! `sendmail -bs`: postie as an SMTP server on stdin and stdout, as
//! Symfony Mailer and Laravel drive `/usr/sbin/sendmail -bs`. Each test
//! writes a dialogue (exact bytes, or Python's smtplib over the pipes) to
//! the `sendmail` link and checks the replies on stdout, what the relay
//! (a real SMTP server) received, and the queue.

use crate::common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::common::{closed_port, files_ending, QueueSetup, ServerOptions, TestServer};

/// `sendmail -bs ARGS` with this setup's config and queue, `dialogue` on
/// its stdin.
fn bs(setup: &QueueSetup, args: &[&str], dialogue: &[u8]) -> Output {
    let (_link, mut cmd) = setup.sendmail();
    cmd.arg("-bs")
        .args(args)
        .write_stdin(dialogue.to_vec())
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap()
}

/// The replies on stdout, one string each without CRLF; the greeting's
/// host name is made `HOST`. Fails unless stdout holds CRLF-ended SMTP
/// reply lines and nothing else.
fn replies(output: &Output) -> Vec<String> {
    let stdout = String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8");
    assert!(stdout.ends_with("\r\n"), "{stdout:?}");
    let lines: Vec<String> = stdout
        .strip_suffix("\r\n")
        .unwrap()
        .split("\r\n")
        .map(str::to_string)
        .collect();
    for line in &lines {
        let bytes = line.as_bytes();
        assert!(
            bytes.len() >= 4
                && bytes[..3].iter().all(u8::is_ascii_digit)
                && (bytes[3] == b' ' || bytes[3] == b'-')
                && !line.contains(['\r', '\n']),
            "not an SMTP reply line on stdout: {line:?}"
        );
    }
    let greeting = &lines[0];
    assert!(
        greeting.starts_with("220 ") && greeting.ends_with(" ESMTP"),
        "{greeting}"
    );
    let mut lines = lines;
    lines[0] = "220 HOST ESMTP".into();
    lines
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// One transaction, from a@example.com to `to`, with `body`.
fn transaction(to: &[&str], body: &str) -> String {
    let mut text = "MAIL FROM:<a@example.com>\r\n".to_string();
    for to in to {
        text.push_str(&format!("RCPT TO:<{to}>\r\n"));
    }
    text.push_str("DATA\r\n");
    text.push_str(body);
    text.push_str(".\r\n");
    text
}

const EHLO_REPLY: [&str; 2] = ["250-server offers extensions:", "250 8BITMIME"];

#[test]
fn a_message_is_relayed_with_the_smtp_envelope_and_250_after_delivery() {
    let server = TestServer::start(ServerOptions::default());
    let setup = QueueSetup::new(&server.addr(), "");
    let dialogue = format!(
        "EHLO app.example\r\n{}NOOP\r\nQUIT\r\n",
        transaction(
            &["b@example.com", "c@example.com"],
            "Subject: hello\r\n\r\nfirst\r\n..starts with a dot\r\nlast\r\n"
        )
    );
    let output = bs(&setup, &[], dialogue.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let mut expected = vec!["220 HOST ESMTP"];
    expected.extend(EHLO_REPLY);
    expected.extend([
        "250 2.1.0 OK",
        "250 2.1.5 OK",
        "250 2.1.5 OK",
        "354 Start mail input; end with <CRLF>.<CRLF>",
        "250 2.0.0 Sent",
        "250 OK",
        "221 Goodbye",
    ]);
    assert_eq!(replies(&output), expected);
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].mail_from, "a@example.com");
    assert_eq!(got[0].rcpt_to, ["b@example.com", "c@example.com"]);
    let data = String::from_utf8_lossy(&got[0].data);
    assert!(data.contains("Subject: hello\r\n"), "{data}");
    assert!(
        data.contains("\r\n\r\nfirst\r\n.starts with a dot\r\nlast\r\n"),
        "unstuffed once, sent as it came: {data}"
    );
    assert_eq!(stderr(&output), "");
    assert!(setup.entries().is_empty());
}

#[test]
fn two_messages_in_one_session_and_rset_drops_a_transaction() {
    let server = TestServer::start(ServerOptions::default());
    let setup = QueueSetup::new(&server.addr(), "");
    let dialogue = format!(
        "HELO app.example\r\nMAIL FROM:<dropped@example.com>\r\nRCPT TO:<never@example.com>\r\nRSET\r\n{}{}QUIT\r\n",
        transaction(&["one@example.com"], "Subject: one\r\n\r\n1\r\n"),
        transaction(&["two@example.com"], "Subject: two\r\n\r\n2\r\n"),
    );
    // Laravel's command line.
    let output = bs(&setup, &["-i"], dialogue.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let replies = replies(&output);
    assert_eq!(
        replies
            .iter()
            .filter(|line| line.as_str() == "250 2.0.0 Sent")
            .count(),
        2,
        "{replies:?}"
    );
    assert_eq!(replies.last().unwrap(), "221 Goodbye");
    let got = server.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].rcpt_to, ["one@example.com"]);
    assert_eq!(got[1].rcpt_to, ["two@example.com"]);
    assert!(String::from_utf8_lossy(&got[0].data).contains("Subject: one"));
    assert!(String::from_utf8_lossy(&got[1].data).contains("Subject: two"));
    assert!(got
        .iter()
        .all(|message| message.mail_from == "a@example.com"));
}

#[test]
fn a_relays_5xx_reaches_the_client_and_the_message_is_kept_in_failed() {
    let server = TestServer::start(ServerOptions {
        refuse_rcpt: vec!["gone@example.com".into()],
        ..ServerOptions::default()
    });
    let setup = QueueSetup::new(&server.addr(), "");
    let dialogue = format!(
        "EHLO app.example\r\n{}{}QUIT\r\n",
        transaction(&["gone@example.com"], "Subject: refused\r\n\r\nx\r\n"),
        // After a refused DATA the session is back between messages.
        transaction(&["b@example.com"], "Subject: next\r\n\r\ny\r\n"),
    );
    let output = bs(&setup, &[], dialogue.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let replies = replies(&output);
    let data_replies: Vec<&String> = replies
        .iter()
        .filter(|line| line.starts_with("550") || line.starts_with("250 2.0.0"))
        .collect();
    assert_eq!(
        data_replies,
        ["550 5.1.1 no such user", "250 2.0.0 Sent"],
        "{replies:?}"
    );
    assert_eq!(replies.last().unwrap(), "221 Goodbye");
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_to, ["b@example.com"]);
    let failed = files_ending(&setup.queue.join("failed"), "json");
    assert_eq!(failed.len(), 1, "{}", stderr(&output));
    assert!(setup.entries().is_empty());
}

#[test]
fn a_relays_4xx_is_250_when_the_message_is_queued_and_the_4xx_without_a_queue() {
    let server = TestServer::start(ServerOptions {
        tempfail_rcpt: vec!["later@example.com".into()],
        ..ServerOptions::default()
    });
    let setup = QueueSetup::new(&server.addr(), "");
    let dialogue = format!(
        "EHLO app.example\r\n{}QUIT\r\n",
        transaction(&["later@example.com"], "Subject: later\r\n\r\nx\r\n")
    );
    let output = bs(&setup, &[], dialogue.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let replies = replies(&output);
    let data_reply = &replies[replies.len() - 2];
    let entries = setup.entries();
    assert_eq!(entries.len(), 1, "{replies:?}");
    let id = entries[0].file_stem().unwrap().to_string_lossy();
    assert_eq!(data_reply, &format!("250 2.0.0 Queued as {id}"));

    let output = bs(&setup, &["--no-queue"], dialogue.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let replies = self::replies(&output);
    assert_eq!(replies[replies.len() - 2], "451 4.3.0 try later");
    assert_eq!(setup.entries().len(), 1, "nothing more queued");
    assert!(server.received().is_empty());
}

#[test]
fn a_relays_5xx_to_data_reaches_the_client_escaped_and_bounded() {
    let long = "z".repeat(450);
    let relay = common::ScriptedServer::start(
        b"220 relay ESMTP\r\n",
        vec![
            b"250 relay\r\n".to_vec(),
            b"250 2.1.0 ok\r\n".to_vec(),
            b"250 2.1.5 ok\r\n".to_vec(),
            b"354 go on\r\n".to_vec(),
            format!("554 5.7.1 Rejected as \x1b[31mspam\x07 {long}\r\n").into_bytes(),
            b"221 bye\r\n".to_vec(),
        ],
    );
    let setup = QueueSetup::new(&relay.addr(), "");
    let dialogue = format!(
        "EHLO app.example\r\n{}QUIT\r\n",
        transaction(&["b@example.com"], "Subject: spam?\r\n\r\nx\r\n")
    );
    let output = bs(&setup, &[], dialogue.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let replies = replies(&output);
    let data_reply = &replies[replies.len() - 2];
    assert!(
        data_reply.starts_with("554 5.7.1 Rejected as "),
        "{data_reply}"
    );
    assert!(!data_reply.chars().any(char::is_control), "{data_reply:?}");
    assert!(data_reply.len() < 512, "{}", data_reply.len());
    assert_eq!(files_ending(&setup.queue.join("failed"), "json").len(), 1);
}

#[test]
fn a_refusal_quoting_a_4xx_in_its_text_is_still_the_5xx() {
    let relay = common::ScriptedServer::start(
        b"220 relay ESMTP\r\n",
        vec![
            b"250 relay\r\n".to_vec(),
            b"250 2.1.0 ok\r\n".to_vec(),
            b"550 5.1.1 no such user; we replied 451 4.0.0 later\r\n".to_vec(),
            b"250 ok\r\n".to_vec(),
            b"221 bye\r\n".to_vec(),
        ],
    );
    let setup = QueueSetup::new(&relay.addr(), "");
    let dialogue = format!(
        "EHLO app.example\r\n{}QUIT\r\n",
        transaction(&["b@example.com"], "Subject: gone\r\n\r\nx\r\n")
    );
    let output = bs(&setup, &[], dialogue.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let replies = replies(&output);
    // A 451 would have the application try again a message that is in
    // failed/ for good.
    assert_eq!(
        replies[replies.len() - 2],
        "550 5.1.1 no such user; we replied 451 4.0.0 later"
    );
    assert_eq!(files_ending(&setup.queue.join("failed"), "json").len(), 1);
    assert!(setup.entries().is_empty());
}

#[test]
fn some_recipients_refused_is_250_naming_them_and_the_rest_is_in_failed() {
    let server = TestServer::start(ServerOptions {
        refuse_rcpt: vec!["gone@example.com".into()],
        ..ServerOptions::default()
    });
    let setup = QueueSetup::new(&server.addr(), "partial = true");
    let dialogue = format!(
        "EHLO app.example\r\n{}QUIT\r\n",
        transaction(
            &["b@example.com", "gone@example.com"],
            "Subject: partial\r\n\r\nx\r\n"
        )
    );
    let output = bs(&setup, &[], dialogue.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let replies = replies(&output);
    let data_reply = &replies[replies.len() - 2];
    assert!(
        data_reply.starts_with(
            "250 2.0.0 Sent to 1 recipient(s); not sent to <gone@example.com> (550 5.1.1 no such user"
        ),
        "{data_reply}"
    );
    assert_eq!(server.received()[0].rcpt_to, ["b@example.com"]);
    let failed = files_ending(&setup.queue.join("failed"), "json");
    assert_eq!(failed.len(), 1);
    let entry = std::fs::read_to_string(&failed[0]).unwrap();
    assert!(
        entry.contains("gone@example.com") && !entry.contains("b@example.com"),
        "{entry}"
    );
}

#[test]
fn queued_for_some_and_refused_for_others_is_250_naming_the_refused() {
    let server = TestServer::start(ServerOptions {
        refuse_rcpt: vec!["gone@example.com".into()],
        tempfail_rcpt: vec!["later@example.com".into()],
        ..ServerOptions::default()
    });
    let setup = QueueSetup::new(&server.addr(), "partial = true");
    let dialogue = format!(
        "EHLO app.example\r\n{}QUIT\r\n",
        transaction(
            &["later@example.com", "gone@example.com"],
            "Subject: mixed\r\n\r\nx\r\n"
        )
    );
    let output = bs(&setup, &[], dialogue.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let replies = replies(&output);
    let entries = setup.entries();
    assert_eq!(entries.len(), 1, "{replies:?}");
    let id = entries[0].file_stem().unwrap().to_string_lossy();
    // A 5xx would make the application send it again, and later@ would
    // get it twice.
    assert_eq!(
        replies[replies.len() - 2],
        format!(
            "250 2.0.0 Queued as {id} for 1 recipient(s); not sent to <gone@example.com> (550 5.1.1 no such user)"
        )
    );
    assert_eq!(files_ending(&setup.queue.join("failed"), "json").len(), 1);
    assert!(server.received().is_empty());
}

#[test]
fn with_the_queue_off_a_deferred_recipient_is_kept_in_failed() {
    let server = TestServer::start(ServerOptions {
        tempfail_rcpt: vec!["later@example.com".into()],
        ..ServerOptions::default()
    });
    let setup = QueueSetup::new(&server.addr(), "partial = true");
    let dialogue = format!(
        "EHLO app.example\r\n{}{}QUIT\r\n",
        transaction(
            &["b@example.com", "later@example.com"],
            "Subject: some\r\n\r\nx\r\n"
        ),
        transaction(&["later@example.com"], "Subject: none\r\n\r\ny\r\n"),
    );
    let output = bs(&setup, &["--no-queue"], dialogue.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let replies = replies(&output);
    let data_replies: Vec<&String> = replies
        .iter()
        .filter(|line| line.starts_with("250 2.0.0") || line.starts_with("451"))
        .collect();
    assert_eq!(data_replies.len(), 2, "{replies:?}");
    assert!(
        data_replies[0]
            .starts_with("250 2.0.0 Sent to 1 recipient(s); not sent to <later@example.com> (451"),
        "{}",
        data_replies[0]
    );
    assert!(data_replies[1].starts_with("451 "), "{}", data_replies[1]);
    assert_eq!(server.received()[0].rcpt_to, ["b@example.com"]);
    assert!(setup.entries().is_empty(), "the queue is off");
    // One copy each, for later@ alone: the 250 must not lose it.
    let failed = files_ending(&setup.queue.join("failed"), "json");
    assert_eq!(failed.len(), 2, "{}", stderr(&output));
    for entry in &failed {
        let entry = std::fs::read_to_string(entry).unwrap();
        assert!(
            entry.contains("later@example.com") && !entry.contains("b@example.com"),
            "{entry}"
        );
    }
}

#[test]
fn a_local_failure_is_451_with_the_line_postie_prints() {
    let setup = QueueSetup::new(&format!("127.0.0.1:{}", closed_port()), "");
    let dialogue = format!(
        "EHLO app.example\r\n{}QUIT\r\n",
        transaction(&["b@example.com"], "Subject: x\r\n\r\nx\r\n")
    );
    let output = bs(&setup, &["--no-queue"], dialogue.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let replies = replies(&output);
    let data_reply = &replies[replies.len() - 2];
    assert!(
        data_reply.starts_with("451 4.3.0 connect: cannot connect to 127.0.0.1:")
            && data_reply.ends_with("(EX_TEMPFAIL 75)"),
        "{data_reply}"
    );
}

#[test]
fn hostile_input_gets_5xx_and_the_session_goes_on() {
    let server = TestServer::start(ServerOptions::default());
    let setup = QueueSetup::new(&server.addr(), "");
    let mut dialogue = b"EHLO app.example\r\n".to_vec();
    dialogue.extend(vec![b'A'; 100_000]);
    dialogue.extend(b"\r\nNOOP\r\n");
    dialogue.extend(b"HELO a\0b\r\n");
    dialogue.extend(b"\xff\xfe\x01junk\r\n");
    dialogue.extend(b"MAIL FROM:<a@example.com>\r\n");
    dialogue.extend(b"RCPT TO:<x@example.com,y@example.com>\r\n");
    dialogue.extend(b"RCPT TO:<\"Name\"x@example.com>\r\n");
    dialogue.extend(b"RCPT TO:<ok@example.com>\r\n");
    // A line of the message longer than any bound: refused whole.
    dialogue.extend(b"DATA\r\nSubject: long\r\n\r\n");
    dialogue.extend(vec![b'x'; 3 * 1024 * 1024]);
    dialogue.extend(b"\r\nend\r\n.\r\nNOOP\r\nQUIT\r\n");
    server.expect_unused();
    let output = bs(&setup, &[], &dialogue);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let replies = replies(&output);
    let codes: Vec<&str> = replies.iter().map(|line| &line[..3]).collect();
    assert_eq!(
        codes,
        [
            "220", "250", "250", // greeting, EHLO
            "500", // the long line
            "250", // NOOP: the session goes on
            "500", // NUL
            "500", // junk
            "250", // MAIL
            "553", "553", // a list, a display name
            "250", "354", "552", // the long line of DATA
            "250", "221",
        ],
        "{replies:?}"
    );
    assert!(
        replies[3].starts_with("500 5.5.2 Line too long"),
        "{}",
        replies[3]
    );
    assert!(replies[12].starts_with("552 5.3.4 "), "{}", replies[12]);
    assert!(server.received().is_empty());
}

#[test]
fn a_message_over_max_message_size_is_552_and_one_of_5_mib_is_sent() {
    let server = TestServer::start(ServerOptions::default());
    let setup = QueueSetup::new(&server.addr(), "");
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        format!("max_message_size = \"6M\"\n{config}"),
    )
    .unwrap();
    // 5 MiB: past the 4 MiB kept in memory, under the limit.
    let line = format!("{}\r\n", "y".repeat(998));
    let large = line.repeat(5 * 1024 * 1024 / line.len());
    let too_large = line.repeat(7 * 1024 * 1024 / line.len());
    let dialogue = format!(
        "EHLO app.example\r\n{}{}QUIT\r\n",
        transaction(
            &["b@example.com"],
            &format!("Subject: big\r\n\r\n{too_large}")
        ),
        transaction(
            &["c@example.com"],
            &format!("Subject: large\r\n\r\n{large}")
        ),
    );
    let output = bs(&setup, &[], dialogue.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let replies = replies(&output);
    let data_replies: Vec<&String> = replies
        .iter()
        .filter(|line| line.starts_with("552") || line.starts_with("250 2.0.0"))
        .collect();
    assert_eq!(data_replies.len(), 2, "{replies:?}");
    assert!(
        data_replies[0].starts_with("552 5.3.4 the message is ")
            && data_replies[0].contains("more than max_message_size"),
        "{}",
        data_replies[0]
    );
    assert_eq!(data_replies[1], "250 2.0.0 Sent");
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_to, ["c@example.com"]);
    assert!(got[0].data.ends_with(large.as_bytes()));
}

#[test]
fn a_flood_of_recipients_stops_at_1000() {
    let server = TestServer::start(ServerOptions::default());
    let setup = QueueSetup::new(&server.addr(), "");
    let mut dialogue = "EHLO app.example\r\nMAIL FROM:<a@example.com>\r\n".to_string();
    for n in 0..1005 {
        dialogue.push_str(&format!("RCPT TO:<r{n}@example.com>\r\n"));
    }
    dialogue.push_str("RSET\r\nQUIT\r\n");
    server.expect_unused();
    let output = bs(&setup, &[], dialogue.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let replies = replies(&output);
    let rcpt = &replies[4..4 + 1005];
    assert!(rcpt[..1000].iter().all(|line| line == "250 2.1.5 OK"));
    assert!(rcpt[1000..]
        .iter()
        .all(|line| line == "452 4.5.3 Too many recipients"));
}

#[test]
fn the_input_ending_in_data_sends_nothing_and_exits_74() {
    let server = TestServer::start(ServerOptions::default());
    let setup = QueueSetup::new(&server.addr(), "");
    let dialogue = "EHLO app.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: cut\r\n\r\nhalf";
    server.expect_unused();
    let output = bs(&setup, &[], dialogue.as_bytes());
    assert_eq!(output.status.code(), Some(74));
    assert!(
        stderr(&output).contains("the input ended in the middle of a message's DATA"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        replies(&output).last().unwrap(),
        "354 Start mail input; end with <CRLF>.<CRLF>"
    );
    assert!(server.received().is_empty());
    assert!(setup.entries().is_empty());
    // Between messages the end of the input is a normal end.
    let output = bs(&setup, &[], b"EHLO app.example\r\n");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn dry_run_is_refused_before_any_reply() {
    let setup = QueueSetup::new("127.0.0.1:1", "");
    let output = bs(&setup, &["--dry-run"], b"EHLO x\r\n");
    assert_eq!(output.status.code(), Some(64));
    assert!(output.stdout.is_empty());
    assert!(stderr(&output).contains("--dry-run cannot be used with -bs"));
    // A -bs line that does not parse: stdin is an SMTP client, not a
    // message to keep.
    let output = bs(&setup, &["-Z"], b"EHLO x\r\n");
    assert_eq!(output.status.code(), Some(64));
    assert!(output.stdout.is_empty());
    assert!(files_ending(&setup.queue.join("failed"), "json").is_empty());
    // Nor when -bs is spelled otherwise: a client that keeps stdin open
    // would wait for ever, and its dialogue must not be kept as a message.
    for args in [
        ["-b", "s", "-Z"].as_slice(),
        &["-ibs", "-Z"],
        &["-i", "-b", "s", "-Z"],
    ] {
        let (_link, mut cmd) = setup.sendmail();
        let output = cmd
            .args(args)
            .write_stdin(b"EHLO x\r\nQUIT\r\n".to_vec())
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(64),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(output.stdout.is_empty(), "{args:?}");
        assert!(
            files_ending(&setup.queue.join("failed"), "json").is_empty(),
            "{args:?}"
        );
    }
}

#[test]
fn verbose_goes_to_stderr_and_stdout_keeps_only_replies() {
    let server = TestServer::start(ServerOptions::default());
    let setup = QueueSetup::new(&server.addr(), "");
    let dialogue = format!(
        "EHLO app.example\r\n{}QUIT\r\n",
        transaction(&["b@example.com"], "Subject: v\r\n\r\nx\r\n")
    );
    let output = bs(&setup, &["-v"], dialogue.as_bytes());
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    replies(&output);
    let err = stderr(&output);
    assert!(
        err.contains("RCPT TO:<b@example.com>"),
        "the -v transcript: {err}"
    );
    assert_eq!(server.received().len(), 1);
}

#[test]
fn stderr_left_unread_never_stalls_a_long_session() {
    // Symfony's ProcessStream keeps stderr as a pipe it does not read
    // during the session: a line per message would fill its 64 KiB and
    // block postie before a reply. 1500 queued messages say far more than
    // that would hold.
    let setup = QueueSetup::new(&format!("127.0.0.1:{}", closed_port()), "");
    let link_dir = tempfile::tempdir().unwrap();
    let link = link_dir.path().join("sendmail");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_postie"), &link).unwrap();
    let (mut cmd, _home) = common::hermetic_std(&link);
    let mut child = cmd
        .env("POSTIE_CONFIG", &setup.config)
        .env("POSTIE_QUEUE_DIR", &setup.queue)
        .arg("-bs")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let messages = 1500;
    let mut dialogue = "EHLO app.example\r\n".to_string();
    for n in 0..messages {
        dialogue.push_str(&transaction(
            &["b@example.com"],
            &format!("Subject: {n}\r\n\r\nx\r\n"),
        ));
    }
    dialogue.push_str("QUIT\r\n");
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(dialogue.as_bytes());
    });
    let mut stdout = child.stdout.take().unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        let _ = done.send(out);
    });
    // Held, never read, until postie has ended.
    let mut stderr_pipe = child.stderr.take().unwrap();
    let Ok(stdout) = finished.recv_timeout(Duration::from_secs(300)) else {
        let _ = child.kill();
        panic!("the session stalled: postie blocked on the stderr nobody reads");
    };
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr_pipe, &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    let stdout = String::from_utf8(stdout).unwrap();
    assert!(stdout.ends_with("221 Goodbye\r\n"), "{stdout}");
    assert_eq!(
        stdout.matches("250 2.0.0 Queued as ").count(),
        messages,
        "{stdout}"
    );
    assert_eq!(err, "", "nothing on stderr without -v");
    assert_eq!(setup.entries().len(), messages);
}

/// smtplib over the pipes of `sendmail -bs`: an SMTP subclass whose socket
/// writes to postie's stdin and whose file reads its stdout.
const SMTPLIB_CLIENT: &str = r#"
import json, smtplib, subprocess, sys

class Pipe:
    def __init__(self, proc):
        self.proc = proc
    def sendall(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()
    def close(self):
        self.proc.stdin.close()

class PipeSMTP(smtplib.SMTP):
    def __init__(self, argv):
        super().__init__()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.sock = Pipe(self.proc)
        self.file = self.proc.stdout
        code, _ = self.getreply()
        assert code == 220, code

results = {}
s = PipeSMTP(sys.argv[1:])
s.ehlo("app.example")
results["8bitmime"] = s.has_extn("8bitmime")
message = b"Subject: smtplib\r\n\r\n.a line with a leading dot\r\n.\r\nafter a lone dot\r\n"
results["sent"] = s.sendmail("app@example.com", ["b@example.com"], message)
try:
    s.sendmail("app@example.com", ["gone@example.com"], b"Subject: refused\r\n\r\nx\r\n")
except smtplib.SMTPRecipientsRefused as err:
    results["refused"] = [list(v) for v in err.recipients.values()]
except smtplib.SMTPDataError as err:
    results["refused"] = [err.smtp_code, err.smtp_error.decode()]
s.quit()
results["exit"] = s.proc.wait()
print(json.dumps(results))
"#;

#[test]
fn python_smtplib_sends_through_sendmail_bs() {
    if !common::require_tool("python3", "python3") {
        return;
    }
    let server = TestServer::start(ServerOptions {
        refuse_rcpt: vec!["gone@example.com".into()],
        ..ServerOptions::default()
    });
    let setup = QueueSetup::new(&server.addr(), "");
    let link_dir = tempfile::tempdir().unwrap();
    let link = link_dir.path().join("sendmail");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_postie"), &link).unwrap();
    let output = run_python(&setup, &link);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", stderr(&output));
    let results: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(results["8bitmime"], true);
    assert_eq!(results["sent"], serde_json::json!({}));
    assert_eq!(
        results["refused"],
        serde_json::json!([550, "5.1.1 no such user"])
    );
    assert_eq!(results["exit"], 0);
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].mail_from, "app@example.com");
    assert_eq!(got[0].rcpt_to, ["b@example.com"]);
    let data = String::from_utf8_lossy(&got[0].data);
    assert!(
        data.contains("\r\n\r\n.a line with a leading dot\r\n.\r\nafter a lone dot\r\n"),
        "{data}"
    );
    assert_eq!(files_ending(&setup.queue.join("failed"), "json").len(), 1);
}

fn run_python(setup: &QueueSetup, sendmail: &Path) -> Output {
    let mut cmd = common::hermetic("python3");
    cmd.env("POSTIE_CONFIG", &setup.config)
        .env("POSTIE_QUEUE_DIR", &setup.queue)
        .args(["-c", SMTPLIB_CLIENT])
        .arg(sendmail)
        .args(["-bs", "-i"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap()
}
