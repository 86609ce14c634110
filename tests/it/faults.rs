//! Servers that misbehave on purpose. For each fault: without the queue,
//! the exit code and the one stderr line; with the queue, a temporary fault
//! leaves the message queued (and `postie queue flush` then delivers it
//! exactly once) while a permanent one is never queued.

use crate::common;

use std::fs;
use std::path::PathBuf;

use crate::common::{silent_server, ScriptedServer, ServerOptions, TestServer, Tls, PASSWORD};

const GREETING: &[u8] = b"220 faulty.test ESMTP\r\n";
const EHLO: &[u8] = b"250-faulty.test\r\n250 8BITMIME\r\n";
const OK: &[u8] = b"250 2.0.0 ok\r\n";
const GO_AHEAD: &[u8] = b"354 go ahead\r\n";

/// A scripted fault: its greeting and replies, and what postie must do.
struct Fault {
    greeting: &'static [u8],
    replies: Vec<&'static [u8]>,
    args: Vec<&'static str>,
    exit: i32,
    stderr_has: &'static str,
}

struct Run {
    code: i32,
    stderr: String,
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    fn queue(&self) -> PathBuf {
        self.dir.path().join("queue")
    }

    fn point_at(&self, server: &str) {
        self.point_at_with(server, "");
    }

    fn point_at_with(&self, server: &str, extra: &str) {
        fs::write(
            self.config(),
            format!(
                "[defaults]\nserver = \"{server}\"\nfrom = \"cron@example.com\"\ntimeout = 3\n{extra}"
            ),
        )
        .unwrap();
    }

    fn run(&self, extra: &[&str], args: &[&str]) -> Run {
        let mut all = extra.to_vec();
        all.extend_from_slice(args);
        all.extend([
            "a@example.com",
            "b@example.com",
            "-s",
            "fault test",
            "--body",
            "x",
        ]);
        self.run_args(&all)
    }

    fn run_args(&self, args: &[&str]) -> Run {
        let output = common::postie()
            .env("POSTIE_CONFIG", self.config())
            .env("POSTIE_QUEUE_DIR", self.queue())
            .env("POSTIE_PASSWORD", PASSWORD)
            .args(args)
            .output()
            .unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn queued(&self) -> usize {
        fs::read_dir(self.queue())
            .map(|r| {
                r.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .count()
            })
            .unwrap_or(0)
    }
}

fn check(name: &str, fault: Fault) {
    check_with(name, fault, ScriptedServer::start);
}

/// `check` with a server that departs from the plain script (see the
/// ScriptedServer constructors).
fn check_with(name: &str, fault: Fault, start: fn(&[u8], Vec<Vec<u8>>) -> ScriptedServer) {
    let temporary = fault.exit == 75 || fault.exit == 74;
    let env = Env::new();

    // Without the queue: the exit code and one stderr line.
    let server = start(
        fault.greeting,
        fault.replies.iter().map(|r| r.to_vec()).collect(),
    );
    env.point_at(&server.addr());
    let run = env.run(&["--no-queue"], &fault.args);
    assert_eq!(run.code, fault.exit, "{name}: {}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{name}: {}", run.stderr);
    assert!(
        run.stderr.contains(fault.stderr_has),
        "{name}: {}",
        run.stderr
    );
    // A reply the server sent is the reason, never the close after it.
    if !fault.stderr_has.contains("lost") && !fault.stderr_has.contains("connection") {
        assert!(!run.stderr.contains("lost"), "{name}: {}", run.stderr);
    }

    // With the queue: kept if temporary, never if permanent.
    let server = start(
        fault.greeting,
        fault.replies.iter().map(|r| r.to_vec()).collect(),
    );
    env.point_at(&server.addr());
    let run = env.run(&["--queue"], &fault.args);
    if temporary {
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("postie: queued as "),
            "{name}: {}",
            run.stderr
        );
        assert_eq!(env.queued(), 1, "{name}");
        // The server recovers: the flush delivers it once (with AUTH when
        // the message was queued with a user).
        let with_auth = fault.args.contains(&"--user");
        let good = TestServer::start(ServerOptions {
            tls: if with_auth { Tls::StartTls } else { Tls::None },
            auth: with_auth,
            ..ServerOptions::default()
        });
        if with_auth {
            let ca = good.ca_file();
            env.point_at_with(&good.addr(), &format!("ca_file = \"{}\"\n", ca.display()));
        } else {
            env.point_at(&good.addr());
        }
        let flush = common::postie()
            .env("POSTIE_CONFIG", env.config())
            .env("POSTIE_QUEUE_DIR", env.queue())
            .env("POSTIE_PASSWORD", PASSWORD)
            // --now: the failed try counts, so the entry is in its backoff.
            .args(["queue", "flush", "--now"])
            .output()
            .unwrap();
        assert!(
            flush.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&flush.stderr)
        );
        let got = good.wait_for_messages(1);
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(got[0].rcpt_to, ["a@example.com", "b@example.com"], "{name}");
        assert_eq!(env.queued(), 0, "{name}");
    } else {
        assert_eq!(run.code, fault.exit, "{name}: {}", run.stderr);
        assert_eq!(env.queued(), 0, "{name}: a permanent failure is not queued");
    }
}

#[test]
fn greeting_421() {
    check(
        "greeting 421",
        Fault {
            greeting: b"421 4.3.2 shutting down\r\n",
            replies: vec![],
            args: vec![],
            exit: 75,
            stderr_has: "421 4.3.2 shutting down",
        },
    );
}

#[test]
fn mail_451() {
    check(
        "451 to MAIL",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO, b"451 4.3.0 try again later\r\n"],
            args: vec![],
            exit: 75,
            stderr_has: "MAIL FROM: ",
        },
    );
}

#[test]
fn one_rcpt_451() {
    check(
        "451 to one RCPT",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO, OK, OK, b"451 4.2.0 greylisted\r\n", OK],
            args: vec![],
            exit: 75,
            stderr_has: "<b@example.com>: 451 4.2.0 greylisted",
        },
    );
}

#[test]
fn too_many_recipients_452() {
    check(
        "452 too many recipients",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO, OK, OK, b"452 4.5.3 too many recipients\r\n", OK],
            args: vec![],
            exit: 75,
            stderr_has: "452 4.5.3",
        },
    );
}

#[test]
fn data_451() {
    check(
        "451 to DATA",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO, OK, OK, OK, b"451 4.3.0 no DATA now\r\n"],
            args: vec![],
            exit: 75,
            stderr_has: "DATA: ",
        },
    );
}

#[test]
fn too_large_552_after_the_dot() {
    check(
        "552 after the dot",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO, OK, OK, OK, GO_AHEAD, b"552 5.3.4 message too big\r\n"],
            args: vec![],
            exit: 69,
            stderr_has: "end of DATA: ",
        },
    );
}

#[test]
fn rejected_554_after_the_dot() {
    check(
        "554 after the dot",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO, OK, OK, OK, GO_AHEAD, b"554 5.7.1 spam\r\n"],
            args: vec![],
            exit: 69,
            stderr_has: "554 5.7.1 spam",
        },
    );
}

#[test]
fn closed_during_the_greeting() {
    check(
        "closed during the greeting",
        Fault {
            greeting: b"220-faulty.test first line of a greeting that never ends\r\n",
            replies: vec![],
            args: vec![],
            exit: 74,
            stderr_has: "lost",
        },
    );
}

#[test]
fn closed_during_rcpt() {
    check(
        "closed during RCPT",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO, OK],
            args: vec![],
            exit: 74,
            stderr_has: "RCPT TO: connection",
        },
    );
}

#[test]
fn closed_during_data_before_the_final_reply() {
    check(
        "closed during DATA",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO, OK, OK, OK, GO_AHEAD],
            args: vec![],
            exit: 74,
            stderr_has: "end of DATA: connection",
        },
    );
}

#[test]
fn tls_handshake_failure_is_76_and_not_queued() {
    check(
        "TLS handshake failure",
        Fault {
            greeting: GREETING,
            replies: vec![b"250-faulty.test\r\n250 STARTTLS\r\n", b"220 go ahead\r\n"],
            args: vec!["--tls", "starttls"],
            exit: 76,
            stderr_has: "TLS: handshake",
        },
    );
}

#[test]
fn auth_535_is_77_and_454_is_75() {
    let auth_ehlo: &'static [u8] = b"250-faulty.test\r\n250 AUTH PLAIN LOGIN\r\n";
    check(
        "AUTH 535",
        Fault {
            greeting: GREETING,
            replies: vec![auth_ehlo, b"535 5.7.8 authentication failed\r\n"],
            args: vec!["--user", common::USER, "--auth", "plain"],
            exit: 77,
            stderr_has: "535 5.7.8",
        },
    );
    check(
        "AUTH 454",
        Fault {
            greeting: GREETING,
            replies: vec![auth_ehlo, b"454 4.7.0 temporary authentication failure\r\n"],
            args: vec!["--user", common::USER, "--auth", "plain"],
            exit: 75,
            stderr_has: "454 4.7.0",
        },
    );
}

#[test]
fn silent_server_times_out_and_is_queued() {
    let env = Env::new();
    let (_listener, port) = silent_server();
    env.point_at(&format!("127.0.0.1:{port}"));
    let run = env.run(&["--queue", "--timeout", "1"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("timed out after 1 s"), "{}", run.stderr);
    assert_eq!(env.queued(), 1);
}

#[test]
fn replies_split_across_reads_and_a_300_line_reply_are_fine() {
    let mut ehlo = String::new();
    for i in 0..299 {
        ehlo.push_str(&format!("250-X-EXTENSION-{i} with some text\r\n"));
    }
    ehlo.push_str("250 8BITMIME\r\n");
    let ehlo: &'static [u8] = Box::leak(ehlo.into_bytes().into_boxed_slice());
    let replies: Vec<Vec<u8>> = [ehlo, OK, OK, OK, GO_AHEAD, OK, b"221 bye\r\n"]
        .iter()
        .map(|r| r.to_vec())
        .collect();
    let env = Env::new();
    let server = ScriptedServer::start_trickling(GREETING, replies);
    env.point_at(&server.addr());
    let run = env.run(&["--no-queue", "--timeout", "30"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = server.lines();
    assert!(
        lines.iter().any(|l| l == "."),
        "the message was sent: {lines:?}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("QUIT"));
}

// ---------------------------------------------------------------------------
// Replies that come just before the server hangs up (issue 11)
// ---------------------------------------------------------------------------

const EHLO_PIPELINING: &[u8] = b"250-faulty.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n";

#[test]
fn pipelined_mail_421_then_close_reports_the_421() {
    check(
        "421 to a pipelined MAIL, then the close",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO_PIPELINING, b"421 4.7.0 Try again later\r\n"],
            args: vec![],
            exit: 75,
            stderr_has: "MAIL FROM: 127.0.0.1",
        },
    );
    let env = Env::new();
    let server = ScriptedServer::start(
        GREETING,
        vec![
            EHLO_PIPELINING.to_vec(),
            b"421 4.7.0 Try again later\r\n".to_vec(),
        ],
    );
    env.point_at(&server.addr());
    let run = env.run(&["--no-queue"], &[]);
    assert!(
        run.stderr.contains("replied 421 4.7.0 Try again later"),
        "{}",
        run.stderr
    );
}

#[test]
fn pipelined_mail_550_then_close_reports_the_550() {
    check(
        "550 to a pipelined MAIL, then the close",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO_PIPELINING, b"550 5.7.1 sender rejected\r\n"],
            args: vec![],
            exit: 69,
            stderr_has: "MAIL FROM: 127.0.0.1",
        },
    );
}

#[test]
fn pipelined_rcpt_421_then_close_reports_the_421() {
    check(
        "421 to a pipelined RCPT, then the close",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO_PIPELINING, OK, b"421 4.3.2 shutting down\r\n"],
            args: vec![],
            exit: 75,
            stderr_has: "RCPT TO: 127.0.0.1:",
        },
    );
}

#[test]
fn unpipelined_rcpt_421_then_close_reports_the_421() {
    check(
        "421 to RCPT one at a time, then the close",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO, OK, b"421 4.3.2 shutting down\r\n"],
            args: vec![],
            exit: 75,
            stderr_has: "RCPT TO: 127.0.0.1",
        },
    );
}

#[test]
fn unpipelined_mail_421_then_reset_reports_the_421() {
    check_with(
        "421 to MAIL, then a reset",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO, b"421 4.7.0 Try again later\r\n"],
            args: vec![],
            exit: 75,
            stderr_has: "MAIL FROM: 127.0.0.1",
        },
        ScriptedServer::start_abrupt,
    );
}

#[test]
fn unsolicited_421_after_ehlo_is_the_answer_to_mail() {
    check_with(
        "421 sent unasked after EHLO, then a reset",
        Fault {
            greeting: GREETING,
            replies: vec![b"250-faulty.test\r\n250 8BITMIME\r\n421 4.4.2 idle too long\r\n"],
            args: vec![],
            exit: 75,
            stderr_has: "421 4.4.2 idle too long",
        },
        ScriptedServer::start_abrupt,
    );
}

#[test]
fn greeting_421_then_reset_is_75() {
    check_with(
        "421 greeting, then a reset",
        Fault {
            greeting: b"421-4.3.2 too busy\r\n421 4.3.2 come back later\r\n",
            replies: vec![],
            args: vec![],
            exit: 75,
            stderr_has: "greeting/EHLO: 127.0.0.1",
        },
        ScriptedServer::start_abrupt,
    );
}

#[test]
fn data_421_then_close_is_75() {
    check(
        "421 to DATA, then the close",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO, OK, OK, OK, b"421 4.3.2 shutting down\r\n"],
            args: vec![],
            exit: 75,
            stderr_has: "DATA: 127.0.0.1",
        },
    );
}

/// A message larger than the socket buffers, so that the server's reset
/// reaches postie while it is still writing the message.
fn big_message(env: &Env) -> PathBuf {
    let path = env.dir.path().join("big.eml");
    let mut text =
        String::from("From: cron@example.com\r\nTo: a@example.com\r\nSubject: big\r\n\r\n");
    let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    text.reserve(12 << 20);
    while text.len() < 12 << 20 {
        text.push_str(line);
    }
    fs::write(&path, text).unwrap();
    path
}

fn interrupted_data(reply: &'static [u8]) -> ScriptedServer {
    ScriptedServer::start_interrupting_data(
        GREETING,
        vec![
            EHLO.to_vec(),
            OK.to_vec(),
            OK.to_vec(),
            OK.to_vec(),
            GO_AHEAD.to_vec(),
        ],
        20,
        reply,
    )
}

#[test]
fn message_refused_mid_data_552_then_reset_reports_the_552() {
    let env = Env::new();
    let message = big_message(&env);
    let message = message.to_str().unwrap();
    let server = interrupted_data(b"552 5.3.4 message too big for this system\r\n");
    env.point_at(&server.addr());
    let run = env.run_args(&[
        "--no-queue",
        "--message",
        message,
        "a@example.com",
        "b@example.com",
    ]);
    assert_eq!(run.code, 69, "{}", run.stderr);
    assert!(
        run.stderr.contains("end of DATA: 127.0.0.1")
            && run.stderr.contains("552 5.3.4 message too big"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("lost"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);

    // Permanent: never queued.
    let server = interrupted_data(b"552 5.3.4 message too big for this system\r\n");
    env.point_at(&server.addr());
    let run = env.run_args(&[
        "--queue",
        "--message",
        message,
        "a@example.com",
        "b@example.com",
    ]);
    assert_eq!(run.code, 69, "{}", run.stderr);
    assert_eq!(env.queued(), 0);
}

#[test]
fn server_shutting_down_mid_data_421_is_75_and_queued() {
    let env = Env::new();
    let message = big_message(&env);
    let message = message.to_str().unwrap();
    let server = interrupted_data(b"421 4.3.2 shutting down\r\n");
    env.point_at(&server.addr());
    let run = env.run_args(&[
        "--no-queue",
        "--message",
        message,
        "a@example.com",
        "b@example.com",
    ]);
    assert_eq!(run.code, 75, "{}", run.stderr);
    assert!(
        run.stderr.contains("421 4.3.2 shutting down"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("lost"), "{}", run.stderr);

    let server = interrupted_data(b"421 4.3.2 shutting down\r\n");
    env.point_at(&server.addr());
    let run = env.run_args(&[
        "--queue",
        "--message",
        message,
        "a@example.com",
        "b@example.com",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(env.queued(), 1);
}

// ---------------------------------------------------------------------------
// Replies that are not UTF-8, and lines that are not replies (issue 11)
// ---------------------------------------------------------------------------

#[test]
fn latin1_rcpt_refusal_is_67_with_the_text_escaped() {
    check(
        "550 in Latin-1 to RCPT",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO, OK, b"550 5.1.1 Benutzer unbekannt \xfc\r\n", OK],
            args: vec![],
            exit: 67,
            stderr_has: "<a@example.com>: 550 5.1.1 Benutzer unbekannt \\xFC",
        },
    );
}

#[test]
fn latin1_greeting_421_is_75() {
    check(
        "421 in Latin-1 at the greeting",
        Fault {
            greeting: b"421 4.3.2 Dienst nicht verf\xfcgbar\r\n",
            replies: vec![],
            args: vec![],
            exit: 75,
            stderr_has: "421 4.3.2 Dienst nicht verf\\xFCgbar",
        },
    );
}

#[test]
fn latin1_lines_in_a_delivery_are_fine_and_escaped_in_the_transcript() {
    let env = Env::new();
    let server = ScriptedServer::start(
        b"220 faulty.test ESMTP Gr\xfc\xdf Gott\r\n",
        [
            EHLO,
            OK,
            OK,
            OK,
            GO_AHEAD,
            b"250 2.0.0 angenommen, \xfcbertragen\r\n",
            b"221 bye\r\n",
        ]
        .iter()
        .map(|r| r.to_vec())
        .collect(),
    );
    env.point_at(&server.addr());
    let run = env.run(&["--no-queue", "-v"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("<- 220 faulty.test ESMTP Gr\\xFC\\xDF Gott"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("\\xFCbertragen"), "{}", run.stderr);
}

#[test]
fn a_reply_with_no_text_is_accepted() {
    let env = Env::new();
    let server = ScriptedServer::start(
        GREETING,
        [EHLO, b"250\r\n", OK, OK, GO_AHEAD, OK, b"221 bye\r\n"]
            .iter()
            .map(|r| r.to_vec())
            .collect(),
    );
    env.point_at(&server.addr());
    let run = env.run(&["--no-queue"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn bare_lf_greeting_is_76_at_once() {
    let started = std::time::Instant::now();
    check(
        "bare LF greeting",
        Fault {
            greeting: b"220 faulty.test ESMTP\n",
            replies: vec![],
            args: vec![],
            exit: 76,
            stderr_has: "greeting/EHLO: 127.0.0.1",
        },
    );
    // Two runs, each well within the 3 s reply timeout.
    assert!(started.elapsed().as_secs() < 3, "{:?}", started.elapsed());
}

#[test]
fn bare_lf_rcpt_reply_is_76() {
    check(
        "bare LF to RCPT",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO, OK, b"550 5.1.1 no such user\n", OK],
            args: vec![],
            exit: 76,
            stderr_has: "bare LF",
        },
    );
}

#[test]
fn a_line_without_a_reply_code_is_76() {
    check(
        "no code",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO, b"hello there\r\n"],
            args: vec![],
            exit: 76,
            stderr_has: "MAIL FROM: 127.0.0.1",
        },
    );
    check(
        "non-numeric code",
        Fault {
            greeting: GREETING,
            replies: vec![EHLO, OK, b"2x0 ok\r\n", OK],
            args: vec![],
            exit: 76,
            stderr_has: "no valid reply code: \"2x0 ok\"",
        },
    );
}

#[test]
fn after_a_421_no_later_reply_is_taken_for_another_commands() {
    // A broken server: in a batch, 421 to the second message's first RCPT,
    // yet it stays open and answers everything with 250. The reply to the
    // second RCPT must not be read as the answer to a NOOP, nor the next
    // ones as the third message's MAIL, RCPT and DATA.
    let env = Env::new();
    let mut messages = Vec::new();
    for name in ["1.eml", "2.eml", "3.eml"] {
        let path = env.dir.path().join(name);
        fs::write(
            &path,
            "From: cron@example.com\r\nSubject: s\r\n\r\nbody\r\n",
        )
        .unwrap();
        messages.push(path.to_str().unwrap().to_string());
    }
    let mut replies = vec![EHLO_PIPELINING, OK, OK, OK, GO_AHEAD, OK, OK];
    replies.push(b"421 4.3.2 shutting down\r\n");
    replies.extend(std::iter::repeat_n(OK, 12));
    let server = ScriptedServer::start(GREETING, replies.iter().map(|r| r.to_vec()).collect());
    env.point_at(&server.addr());
    let mut args = vec!["--no-queue"];
    for message in &messages {
        args.extend(["--message", message.as_str()]);
    }
    args.extend(["a@example.com", "b@example.com"]);
    let run = env.run_args(&args);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("421 4.3.2 shutting down"),
        "{}",
        run.stderr
    );
    let lines = server.lines();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("MAIL FROM")).count(),
        2,
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l == "NOOP"), "{lines:?}");
}
