//! A server that attacks its client: response injection around STARTTLS
//! and after other commands, endless replies on every reader, a 30 MB
//! line, a slowloris greeting, bytes that are not UTF-8 and terminal
//! escapes. Each case asserts the exit code, what the server received and,
//! where memory is the attack, the client's peak memory (`ru_maxrss` from
//! `wait4` on its pid).
//!
//! Exit codes: 76 (EX_PROTOCOL) for anything that is not SMTP or is more
//! than was asked for; 75 for a 421 (RFC 5321 3.8) and for a timeout.
//!
//! A module of its own so that a one-test-binary layout can move it as is.

use crate::common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{postie, postie_std, Flood, ScriptedServer, SMALL_MESSAGE};
use proptest::prelude::*;

const GREETING: &[u8] = b"220 evil.example ESMTP\r\n";
const EHLO: &[u8] = b"250-evil.example\r\n250 8BITMIME\r\n";
const OK: &[u8] = b"250 2.0.0 ok\r\n";

/// Peak memory allowed to a client under a flood: postie itself needs
/// about 15 MiB; an unbounded reader needs gigabytes.
const MAX_RSS_KIB: i64 = 64 * 1024;

/// How a measured run of postie ended.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    signal: Option<i32>,
    /// Peak resident set size, KiB (Linux `ru_maxrss`).
    max_rss_kib: i64,
    elapsed: Duration,
    stderr: String,
}

/// Runs postie with `args`, reaps it with `wait4` for its peak memory, and
/// kills it after `limit` (a hung client is then reported, not waited for).
fn run_measured(args: &[&str], limit: Duration) -> Run {
    let (mut cmd, home) = postie_std();
    let stderr_path = home.join("stderr");
    let stderr_file = fs::File::create(&stderr_path).expect("stderr file");
    // Reaped by wait4 below, not Child::wait: only wait4 gives the rusage.
    #[allow(clippy::zombie_processes)]
    let child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr_file)
        .spawn()
        .expect("spawn postie");
    let pid = child.id() as libc::pid_t;
    let started = Instant::now();
    let (done, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut status = 0;
        // SAFETY: plain system call on our own child, with valid pointers.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        let _ = done.send((reaped, status, usage.ru_maxrss));
    });
    let (reaped, status, max_rss_kib) = match waited.recv_timeout(limit) {
        Ok(result) => result,
        Err(_) => {
            // SAFETY: the child is not reaped yet, so the pid is still ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!("postie still running after {limit:?}; stderr so far:\n{stderr}");
        }
    };
    assert_eq!(reaped, pid, "wait4 failed");
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&fs::read(&stderr_path).unwrap_or_default()).into_owned();
    Run {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        max_rss_kib,
        elapsed,
        stderr,
    }
}

fn send_args<'a>(server: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--server", server, "--tls", "none", "--timeout", "10"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&SMALL_MESSAGE);
    args
}

fn assert_flood_refused(run: &Run) {
    assert_eq!(run.code, Some(76), "{run:?}");
    assert!(run.max_rss_kib < MAX_RSS_KIB, "{run:?}");
    assert!(run.elapsed < Duration::from_secs(6), "{run:?}");
}

// ---------------------------------------------------------------------------
// Injection
// ---------------------------------------------------------------------------

fn starttls_args(server: &str) -> Vec<&str> {
    let mut args = vec!["--server", server, "--tls", "starttls", "--timeout", "10"];
    args.extend_from_slice(&SMALL_MESSAGE);
    args
}

#[test]
fn starttls_injection_in_the_same_packet_is_76() {
    let server = ScriptedServer::start(
        GREETING,
        vec![
            b"250-evil.example\r\n250 STARTTLS\r\n".to_vec(),
            b"220 go ahead\r\nMAIL FROM:<evil@example.com>\r\n".to_vec(),
        ],
    );
    let addr = server.addr();
    let output = postie().args(starttls_args(&addr)).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(76), "{stderr}");
    assert!(stderr.contains("injection"), "{stderr}");
    let lines = server.lines();
    assert!(!lines.iter().any(|l| l.starts_with("MAIL")), "{lines:?}");
}

/// The injected line comes in a later packet than the 220, so it is not
/// among the bytes read with the 220: it meets the TLS handshake instead.
#[test]
fn starttls_injection_in_the_next_packet_is_76() {
    let server = ScriptedServer::start_line_by_line(
        GREETING,
        vec![
            b"250-evil.example\r\n250 STARTTLS\r\n".to_vec(),
            b"220 go ahead\r\n250 2.1.0 injected\r\n".to_vec(),
        ],
        Duration::from_millis(50),
    );
    let addr = server.addr();
    let output = postie().args(starttls_args(&addr)).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(76), "{stderr}");
    assert!(stderr.contains("injection"), "{stderr}");
}

#[test]
fn a_reply_injected_after_ehlo_is_76_and_nothing_more_is_sent() {
    // A reply ready for MAIL before MAIL was sent.
    let server = ScriptedServer::start(
        GREETING,
        vec![
            b"250-evil.example\r\n250 PIPELINING\r\n250 2.1.0 injected\r\n".to_vec(),
            OK.to_vec(),
            OK.to_vec(),
            b"354 go\r\n".to_vec(),
            OK.to_vec(),
        ],
    );
    let addr = server.addr();
    let output = postie().args(send_args(&addr, &[])).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(76), "{stderr}");
    assert!(stderr.contains("no command asked for"), "{stderr}");
    let lines = server.lines();
    assert!(!lines.iter().any(|l| l.starts_with("MAIL")), "{lines:?}");
}

#[test]
fn extra_lines_after_mail_are_76_before_rcpt() {
    let server = ScriptedServer::start(
        GREETING,
        vec![
            EHLO.to_vec(),
            b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n".to_vec(),
            OK.to_vec(),
            b"354 go\r\n".to_vec(),
            OK.to_vec(),
        ],
    );
    let addr = server.addr();
    let output = postie().args(send_args(&addr, &[])).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(76), "{stderr}");
    let lines = server.lines();
    assert!(!lines.iter().any(|l| l.starts_with("RCPT")), "{lines:?}");
}

#[test]
fn an_extra_reply_after_pipelined_rcpt_stops_before_the_message() {
    let server = ScriptedServer::start(
        GREETING,
        vec![
            b"250-evil.example\r\n250 PIPELINING\r\n".to_vec(),
            OK.to_vec(),
            b"250 2.1.5 ok\r\n354 go ahead\r\n".to_vec(),
            b"354 go\r\n".to_vec(),
            OK.to_vec(),
        ],
    );
    let addr = server.addr();
    let output = postie().args(send_args(&addr, &[])).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(76), "{stderr}");
    let lines = server.lines();
    assert!(!lines.iter().any(|l| l.starts_with("DATA")), "{lines:?}");
}

/// RFC 5321 3.8: a 421 may come at any time; it is a 421, not an injection.
#[test]
fn an_unasked_421_is_a_421() {
    let server = ScriptedServer::start(
        GREETING,
        vec![[EHLO, b"421 4.3.2 shutting down\r\n"].concat()],
    );
    let addr = server.addr();
    let output = postie().args(send_args(&addr, &[])).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("421 4.3.2 shutting down"), "{stderr}");
}

/// Capabilities come from the EHLO reply: a STARTTLS line sent behind it
/// must not make postie start TLS, nor a missing one make it give up.
#[test]
fn capabilities_injected_behind_the_ehlo_reply_are_not_believed() {
    let server = ScriptedServer::start(
        GREETING,
        vec![
            b"250-evil.example\r\n250 STARTTLS\r\n250-evil\r\n250 AUTH PLAIN\r\n".to_vec(),
            b"220 go ahead\r\n".to_vec(),
        ],
    );
    let addr = server.addr();
    let output = postie().args(starttls_args(&addr)).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Not 69 ("does not offer STARTTLS"): the STARTTLS was offered; the
    // reply behind it is what is wrong.
    assert_eq!(output.status.code(), Some(76), "{stderr}");
    let lines = server.lines();
    assert!(
        !lines.iter().any(|l| l.starts_with("STARTTLS")),
        "{lines:?}"
    );
}

// ---------------------------------------------------------------------------
// Endless replies, huge lines, slow servers
// ---------------------------------------------------------------------------

#[test]
fn an_endless_greeting_is_76_with_bounded_memory() {
    // Measures a child's peak memory: alone, as other tests' would count.
    if common::rerun_alone() {
        return;
    }
    let server = ScriptedServer::start_flooding(GREETING, vec![], 0, Flood::endless_reply("220"));
    let addr = server.addr();
    let run = run_measured(&send_args(&addr, &[]), Duration::from_secs(30));
    assert_flood_refused(&run);
}

#[test]
fn an_endless_greeting_under_quit_after_banner_is_76() {
    // Measures a child's peak memory: alone, as other tests' would count.
    if common::rerun_alone() {
        return;
    }
    let server = ScriptedServer::start_flooding(GREETING, vec![], 0, Flood::endless_reply("220"));
    let addr = server.addr();
    let run = run_measured(
        &send_args(&addr, &["--quit-after", "banner"]),
        Duration::from_secs(30),
    );
    assert_flood_refused(&run);
    assert!(run.stderr.contains("100000 bytes"), "{run:?}");
}

#[test]
fn an_endless_ehlo_reply_is_76_with_bounded_memory() {
    // Measures a child's peak memory: alone, as other tests' would count.
    if common::rerun_alone() {
        return;
    }
    // The EHLO in the script is what the flood replaces.
    let server = ScriptedServer::start_flooding(
        GREETING,
        vec![EHLO.to_vec()],
        1,
        Flood::endless_reply("250"),
    );
    let addr = server.addr();
    let run = run_measured(&send_args(&addr, &["-v"]), Duration::from_secs(30));
    assert_flood_refused(&run);
}

#[test]
fn an_endless_reply_to_rcpt_is_76() {
    // Measures a child's peak memory: alone, as other tests' would count.
    if common::rerun_alone() {
        return;
    }
    let server = ScriptedServer::start_flooding(
        GREETING,
        vec![EHLO.to_vec(), OK.to_vec(), OK.to_vec()],
        3,
        Flood::endless_reply("250"),
    );
    let addr = server.addr();
    let run = run_measured(&send_args(&addr, &[]), Duration::from_secs(30));
    assert_flood_refused(&run);
}

/// At -v a refused certificate is fetched again to be shown, over a
/// second connection with postie's own reader: an endless greeting there
/// must end that fetch at once, not at the connect timeout.
#[test]
fn an_endless_greeting_on_the_certificate_refetch_ends_it_at_once() {
    // Measures a child's peak memory: alone, as other tests' would count.
    if common::rerun_alone() {
        return;
    }
    let port = common::starttls_then_flood(Flood::endless_reply("220"));
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec![
        "--server",
        addr.as_str(),
        "--tls",
        "starttls",
        "--timeout",
        "10",
        "-v",
    ];
    args.extend_from_slice(&SMALL_MESSAGE);
    let run = run_measured(&args, Duration::from_secs(30));
    assert_eq!(run.code, Some(69), "{run:?}");
    assert!(
        run.stderr.contains("could not fetch the certificate"),
        "{run:?}"
    );
    assert!(run.max_rss_kib < MAX_RSS_KIB, "{run:?}");
    assert!(run.elapsed < Duration::from_secs(6), "{run:?}");
}

#[test]
fn a_30_mb_line_is_76_within_seconds() {
    // Measures a child's peak memory: alone, as other tests' would count.
    if common::rerun_alone() {
        return;
    }
    let server = ScriptedServer::start_flooding(GREETING, vec![], 0, Flood::huge_line("220", 30));
    let addr = server.addr();
    let run = run_measured(&send_args(&addr, &["-v"]), Duration::from_secs(30));
    assert_flood_refused(&run);
    assert!(run.elapsed < Duration::from_secs(5), "{run:?}");
}

#[test]
fn a_slowloris_greeting_is_bounded_by_the_timeout() {
    let server = ScriptedServer::start_slow(
        b"220-slow.example ESMTP hello there, take your time\r\n220 ok\r\n",
        vec![],
        Duration::from_secs(1),
    );
    let addr = server.addr();
    let mut args = vec!["--server", &addr, "--tls", "none", "--timeout", "2"];
    args.extend_from_slice(&SMALL_MESSAGE);
    let run = run_measured(&args, Duration::from_secs(20));
    assert_eq!(run.code, Some(75), "{run:?}");
    assert!(run.elapsed < Duration::from_secs(8), "{run:?}");
    assert!(run.stderr.contains("timed out"), "{run:?}");
}

// ---------------------------------------------------------------------------
// Text from the server
// ---------------------------------------------------------------------------

/// What a hostile reply's text looks like after escaping.
const EVIL_TEXT: &[u8] = b"Benutzer \xfc \x1b]0;pwned\x07\x1b[2J";
const EVIL_SHOWN: &str = "Benutzer \\xFC \\x1B]0;pwned\\x07\\x1B[2J";

fn assert_escaped(text: &str, what: &str) {
    assert!(text.contains(EVIL_SHOWN), "{what}: {text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{what} has raw controls: {text:?}"
    );
}

#[test]
fn terminal_escapes_and_latin1_are_escaped_in_errors_transcript_and_log() {
    let refusal = [b"550 5.1.1 ", EVIL_TEXT, b"\r\n"].concat();
    let server = ScriptedServer::start(
        [b"220 ", EVIL_TEXT, b"\r\n"].concat().as_slice(),
        vec![EHLO.to_vec(), OK.to_vec(), refusal, OK.to_vec()],
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("postie.log");
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        format!("[defaults]\nlogfile = \"{}\"\n", log.display()),
    )
    .unwrap();
    let addr = server.addr();
    let mut args = vec!["--config", config.to_str().unwrap(), "-v"];
    args.extend(send_args(&addr, &[]));
    let output = postie().args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(67), "{stderr}");
    // The transcript (greeting and refusal) and the error line.
    assert_escaped(&stderr, "stderr");
    assert!(stderr.contains(&format!("<- 220 {EVIL_SHOWN}")), "{stderr}");
    let error = stderr
        .lines()
        .find(|line| line.starts_with("postie: error"))
        .unwrap_or_default();
    assert_escaped(error, "the error line");
    assert_escaped(&fs::read_to_string(&log).unwrap(), "the log file");
}

#[test]
fn queue_list_shows_a_stored_error_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    fs::create_dir_all(&queue).unwrap();
    plant_entry(&queue, "550 \u{1b}]0;pwned\u{7}\u{1b}[2J");
    let output = postie()
        .env("POSTIE_QUEUE_DIR", &queue)
        .args(["queue", "list"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("last error: 550 \\x1B]0;pwned\\x07\\x1B[2J"),
        "{stdout}"
    );
    assert!(!stdout.contains('\u{1b}'), "{stdout:?}");
}

/// A queue entry as an older postie (or a server's words before escaping
/// existed) left it: version 0, its last error as stored.
fn plant_entry(queue: &Path, last_error: &str) {
    let message = b"Subject: old\r\n\r\nx\r\n";
    fs::write(queue.join("1-2-3.eml"), message).unwrap();
    let entry = serde_json::json!({
        "id": "1-2-3",
        "created": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        "sender": "cron@example.com",
        "recipients": ["ops@example.com"],
        "args": ["--server=127.0.0.1:9", "--timeout=5"],
        "size": message.len(),
        "attempts": 1,
        "last_attempt": null,
        "last_error": last_error,
    });
    fs::write(queue.join("1-2-3.json"), entry.to_string()).unwrap();
}

// ---------------------------------------------------------------------------
// Random reply streams
// ---------------------------------------------------------------------------

/// One line of a reply: a code (from 100 to 699, so that some are out of
/// range) and text, or random bytes without a line feed.
#[derive(Clone, Debug)]
enum Line {
    Coded(u16, String),
    Junk(Vec<u8>),
}

fn line() -> impl Strategy<Value = Line> {
    prop_oneof![
        3 => (100u16..700, ".{0,20}").prop_map(|(code, text)| Line::Coded(code, text)),
        1 => prop::collection::vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 0..40)
            .prop_map(Line::Junk),
    ]
}

/// A reply: a few lines, coded ones continued with `-` but the last, each
/// ended by CRLF or (sometimes) a bare LF. A reply whose last line is
/// coded always ends, so that no case waits for the timeout.
fn reply() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((line(), prop::bool::weighted(0.9)), 1..4).prop_map(|lines| {
        let mut out = Vec::new();
        let count = lines.len();
        for (index, (line, crlf)) in lines.into_iter().enumerate() {
            match line {
                Line::Coded(code, text) => {
                    let more = if index + 1 < count { '-' } else { ' ' };
                    out.extend_from_slice(format!("{code}{more}{text}").as_bytes());
                }
                Line::Junk(bytes) => out.extend_from_slice(&bytes),
            }
            out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        }
        out
    })
}

/// The rule of src/wire/reply.rs, for deciding what a stream is.
fn is_reply_line(line: &[u8]) -> bool {
    let Some(body) = line.strip_suffix(b"\r") else {
        return false;
    };
    body.len() >= 3
        && (b'2'..=b'5').contains(&body[0])
        && (b'0'..=b'5').contains(&body[1])
        && body[2].is_ascii_digit()
        && matches!(body.get(3), None | Some(b' ') | Some(b'-'))
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(cases),
        max_shrink_iters: 50,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Whatever the server sends: no signal, never EX_SOFTWARE, bounded
/// memory and time; a greeting that is not a reply is 74, 75 or 76.
#[test]
fn random_reply_streams_never_crash_postie() {
    // Measures a child's peak memory: alone, as other tests' would count.
    if common::rerun_alone() {
        return;
    }
    proptest!(config(64), |(
        greeting in reply(),
        replies in prop::collection::vec(reply(), 0..6),
        verbose in prop::bool::ANY,
    )| {
        let server = ScriptedServer::start(&greeting, replies);
        let addr = server.addr();
        let mut args = vec!["--server", addr.as_str(), "--tls", "none", "--timeout", "3"];
        if verbose {
            args.push("-v");
        }
        args.extend_from_slice(&SMALL_MESSAGE);
        let run = run_measured(&args, Duration::from_secs(20));
        prop_assert_eq!(run.signal, None, "{:?}", run);
        prop_assert!(run.code.is_some_and(|code| code != 70), "{:?}", run);
        prop_assert!(run.max_rss_kib < MAX_RSS_KIB, "{:?}", run);
        let greeting_is_smtp = greeting
            .split_inclusive(|&b| b == b'\n')
            .all(|line| is_reply_line(line.strip_suffix(b"\n").unwrap_or(line)));
        if !greeting_is_smtp {
            prop_assert!(matches!(run.code, Some(74..=76)), "{:?}", run);
        }
        prop_assert!(!run.stderr.contains('\u{1b}'), "{:?}", run);
    });
}
