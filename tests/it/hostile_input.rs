//! Hostile input (issue 12): what a user, a script or a cron job hands
//! postie must not inject headers, smuggle SMTP commands, pass a dry run
//! and then fail on the wire, or exhaust memory. Each test fails without
//! the check it names.

use crate::common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::common::{closed_port, parse, postie, ServerOptions, TestServer};
use mail_parser::MimeHeaders;

fn server() -> TestServer {
    TestServer::start(ServerOptions::default())
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A server that is never there: a check that passes would end in 69.
fn nowhere() -> String {
    format!("127.0.0.1:{}", closed_port())
}

/// An HTML file that shows `cid`, in `dir`.
fn html(dir: &Path, cid: &str) -> std::path::PathBuf {
    let path = dir.join("page.html");
    fs::write(&path, format!("<p><img src=\"cid:{cid}\"></p>\n")).unwrap();
    path
}

// --- --inline Content-IDs -------------------------------------------------

#[test]
fn an_inline_name_that_is_no_dot_atom_needs_a_cid_and_gets_it() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("Bild Ä.png");
    fs::write(&image, b"\x89PNG fake").unwrap();
    let page = html(dir.path(), "logo");

    let output = postie()
        .args([
            "--server",
            &nowhere(),
            "-f",
            "a@example.com",
            "b@example.com",
        ])
        .args(["--body", "x", "--html"])
        .arg(&page)
        .arg("--inline")
        .arg(&image)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(65), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains(";cid="),
        "{}",
        stderr_of(&output)
    );

    let srv = server();
    postie()
        .args([
            "--server",
            &srv.addr(),
            "-f",
            "a@example.com",
            "b@example.com",
        ])
        .args(["--body", "x", "--html"])
        .arg(&page)
        .arg("--inline")
        .arg(format!("{};cid=logo", image.display()))
        .assert()
        .success();
    let mail = srv.wait_for_messages(1).remove(0);
    let raw = String::from_utf8(mail.data.clone()).expect("7-bit message");
    assert!(raw.contains("Content-ID: <logo>\r\n"), "{raw}");
    let msg = parse(&mail.data);
    let part = msg
        .attachments()
        .find(|p| p.content_id() == Some("logo"))
        .expect("inline part with Content-ID logo");
    assert_eq!(part.contents(), b"\x89PNG fake");
    assert_eq!(part.attachment_name(), Some("Bild Ä.png"));
}

#[test]
fn an_inline_name_with_a_line_break_cannot_inject_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("x\r\nX-Injected: yes.png");
    fs::write(&image, b"img").unwrap();
    let page = html(dir.path(), "x");
    let output = postie()
        .args(["--dry-run", "-f", "a@example.com", "b@example.com"])
        .args(["--body", "x", "--html"])
        .arg(&page)
        .arg("--inline")
        .arg(&image)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(65), "{}", stderr_of(&output));
    assert!(output.stdout.is_empty());
}

#[test]
fn two_inline_images_with_one_content_id_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["a", "b"] {
        fs::create_dir(dir.path().join(sub)).unwrap();
        fs::write(dir.path().join(sub).join("logo.png"), sub).unwrap();
    }
    let page = html(dir.path(), "logo.png");
    let run = |second: String| {
        postie()
            .args(["--dry-run", "-f", "a@example.com", "b@example.com"])
            .args(["--body", "x", "--html"])
            .arg(&page)
            .arg("--inline")
            .arg(dir.path().join("a").join("logo.png"))
            .arg("--inline")
            .arg(second)
            .output()
            .unwrap()
    };
    let b = dir.path().join("b").join("logo.png").display().to_string();
    let output = run(b.clone());
    assert_eq!(output.status.code(), Some(65), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("logo.png"),
        "{}",
        stderr_of(&output)
    );
    let output = run(format!("{b};cid=logo-b"));
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("Content-ID: <logo.png>"), "{printed}");
    assert!(printed.contains("Content-ID: <logo-b>"), "{printed}");
}

#[test]
fn cid_is_for_inline_parts_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.txt");
    fs::write(&file, "a").unwrap();
    postie()
        .args([
            "--dry-run",
            "-f",
            "a@example.com",
            "b@example.com",
            "--body",
            "x",
        ])
        .arg("-a")
        .arg(format!("{};cid=x", file.display()))
        .assert()
        .code(64);
}

// --- envelope addresses ---------------------------------------------------

#[test]
fn a_dry_run_refuses_the_addresses_a_send_would_refuse() {
    let long_local = format!("{}@example.com", "l".repeat(65));
    let long = format!("a@{}.example", "d".repeat(250));
    for (sender, recipient) in [
        ("a@example.com", long_local.as_str()),
        ("a@example.com", long.as_str()),
        ("a@example.com", "trailing.@example.com"),
        ("a@example.com", "x@-dash.example"),
        ("dot..dot@example.com", "b@example.com"),
    ] {
        let output = postie()
            .args(["--dry-run", "-f", sender, recipient, "--body", "x"])
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(65),
            "{sender} -> {recipient}: {}",
            stderr_of(&output)
        );
        assert!(output.stdout.is_empty(), "{recipient}: nothing printed");
        assert!(
            stderr_of(&output).contains("address"),
            "{}",
            stderr_of(&output)
        );
        // Before any connection: not 69 from the closed port.
        let output = postie()
            .args([
                "--server",
                &nowhere(),
                "-f",
                sender,
                recipient,
                "--body",
                "x",
            ])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(65), "{}", stderr_of(&output));
    }
}

#[test]
fn a_ready_made_message_gets_the_same_address_checks() {
    let dir = tempfile::tempdir().unwrap();
    let message = dir.path().join("m.eml");
    fs::write(
        &message,
        format!(
            "From: a@example.com\nTo: {}@example.com\nSubject: x\n\nbody\n",
            "l".repeat(65)
        ),
    )
    .unwrap();
    let output = postie()
        .args(["--dry-run", "-t", "--message"])
        .arg(&message)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(65), "{}", stderr_of(&output));
}

// --- EHLO name ------------------------------------------------------------

#[test]
fn helo_is_a_domain_name_or_an_address_literal() {
    for bad in [
        "bad name",
        "under_score.example",
        "[::1]",
        "x.example\r\nRSET",
    ] {
        let output = postie()
            .args(["--server", &nowhere(), "--helo", bad])
            .args(common::SMALL_MESSAGE)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(65),
            "{bad:?}: {}",
            stderr_of(&output)
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    fs::write(&config, "[defaults]\nhelo = \"not a name\"\n").unwrap();
    let output = postie()
        .args(["--server", &nowhere(), "--config"])
        .arg(&config)
        .args(common::SMALL_MESSAGE)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(65), "{}", stderr_of(&output));

    let srv = server();
    for good in ["mail.example.com", "[127.0.0.1]", "[IPv6:::1]"] {
        postie()
            .args(["--server", &srv.addr(), "--helo", good])
            .args(common::SMALL_MESSAGE)
            .assert()
            .success();
    }
    let helos: Vec<String> = srv
        .wait_for_messages(3)
        .into_iter()
        .map(|m| m.helo)
        .collect();
    assert_eq!(helos, ["mail.example.com", "[127.0.0.1]", "[IPv6:::1]"]);
}

/// postie in a UTS namespace whose host name is `name`, or `None` when
/// this user cannot make one (only root can; CI runs as root).
fn with_hostname(name: &str) -> Option<assert_cmd::Command> {
    let probe = std::process::Command::new("unshare")
        .args(["--uts", "true"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        common::skip("setting a host name needs root and unshare (util-linux)");
        return None;
    }
    let mut cmd = common::hermetic("unshare");
    cmd.args(["--uts", "sh", "-c"])
        .arg(r#"printf '%s' "$1" > /proc/sys/kernel/hostname && shift && exec "$@""#)
        .args(["sh", name, env!("CARGO_BIN_EXE_postie")]);
    Some(cmd)
}

#[test]
fn a_host_name_that_is_no_domain_becomes_localhost_with_a_note() {
    let srv = server();
    let Some(mut cmd) = with_hostname("my_box (dev)") else {
        return;
    };
    let output = cmd
        .args(["-v", "--server", &srv.addr()])
        .args(common::SMALL_MESSAGE)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("note: this machine's name \"my_box (dev)\""),
        "{}",
        stderr_of(&output)
    );
    assert_eq!(srv.wait_for_messages(1)[0].helo, "localhost");
}

// --- -H -------------------------------------------------------------------

#[test]
fn headers_a_message_may_not_have_are_refused() {
    let long_name = format!("X-{}: v", "n".repeat(75));
    let cases: [&[&str]; 6] = [
        &[
            "-H",
            "Date: Tue, 1 Dec 2026 10:00:00 +0000",
            "-H",
            "date: Tue, 1 Dec 2026 11:00:00 +0000",
        ],
        &[
            "-H",
            "Message-ID: <a@example.com>",
            "-H",
            "Message-Id: <b@example.com>",
        ],
        &["-H", "Resent-Bcc: hidden@example.com"],
        &["-H", &long_name],
        &["-H", "Date: yesterday"],
        &["-H", "Date: 2026-12-01T10:00:00Z"],
    ];
    for args in cases {
        let output = postie()
            .arg("--dry-run")
            .args(args)
            .args(common::SMALL_MESSAGE)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(65),
            "{args:?}: {}",
            stderr_of(&output)
        );
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    let output = postie()
        .args(["--dry-run", "-H", "Date: Tue, 1 Dec 2026 10:00:00 +0000"])
        .args(common::SMALL_MESSAGE)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(printed.matches("\r\nDate: ").count(), 1, "{printed}");
}

// --- bare CR and smuggling ------------------------------------------------

/// Every CR in `data` starts a CRLF.
fn no_bare_cr(data: &[u8]) -> bool {
    data.iter()
        .enumerate()
        .all(|(i, &b)| b != b'\r' || data.get(i + 1) == Some(&b'\n'))
}

#[test]
fn smuggling_sequences_in_a_composed_message_never_reach_the_wire() {
    let srv = server();
    let dir = tempfile::tempdir().unwrap();
    let smuggled = "MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n";
    let attachment = dir.path().join("a\r.\r\nb.txt");
    fs::write(&attachment, format!("text\r.\r\n{smuggled}.\r\n")).unwrap();
    let body = format!("first\r.\r\n{smuggled}second\n.\n{smuggled}.\nend\n");
    postie()
        .args([
            "--server",
            &srv.addr(),
            "-f",
            "a@example.com",
            "b@example.com",
        ])
        .args(["-s", "smuggling", "--body", &body, "-a"])
        .arg(&attachment)
        .assert()
        .success();
    let mail = srv.wait_for_messages(1).remove(0);
    // A smuggled message would arrive as a second one, a moment later.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(srv.received().len(), 1, "one message, nothing smuggled");
    assert_eq!(mail.rcpt_to, ["b@example.com"]);
    assert!(
        no_bare_cr(&mail.data),
        "{}",
        String::from_utf8_lossy(&mail.data)
    );
    let msg = parse(&mail.data);
    assert_eq!(
        msg.body_text(0).unwrap().replace("\r\n", "\n"),
        body.replace("\r\n", "\n"),
        "the body arrives whole, lone dots and all"
    );
    let part = msg.attachments().next().expect("the attachment");
    assert_eq!(part.attachment_name(), Some("a\r.\r\nb.txt"));
    assert_eq!(
        part.contents(),
        format!("text\r.\r\n{smuggled}.\r\n").as_bytes()
    );
}

// --- sendmail mode's input ------------------------------------------------

/// A cron-like report of at least `size` octets, LF line endings.
fn cron_report(size: usize) -> Vec<u8> {
    let mut out =
        b"From: root (Cron Daemon)\nTo: ops@example.com\nSubject: Cron output\n\n".to_vec();
    let mut n = 0;
    while out.len() < size {
        out.extend_from_slice(format!("03:00:01 backup: copied file-{n:08} ok\n").as_bytes());
        n += 1;
    }
    out
}

/// A config file in `dir` with `text`.
fn config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    fs::write(&path, text).unwrap();
    path
}

/// The `.eml` files in `dir`.
fn messages_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

#[test]
fn sendmail_input_over_max_message_size_is_65_and_kept_in_failed() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    let config = config(dir.path(), "max_message_size = \"1M\"\n");
    let report = cron_report(3 << 20);
    let (_link, mut cmd) = common::sendmail();
    let output = cmd
        .env("POSTIE_QUEUE_DIR", &queue)
        .env("POSTIE_CONFIG", &config)
        .env("POSTIE_SERVER", nowhere())
        .args(["-t", "-i", "-f", "root@example.com"])
        .write_stdin(report.clone())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(65), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("max_message_size"),
        "{}",
        stderr_of(&output)
    );
    let kept = messages_in(&queue.join("failed"));
    assert_eq!(kept.len(), 1, "kept in failed/: {}", stderr_of(&output));
    let bytes = fs::read(&kept[0]).unwrap();
    let without_cr: Vec<u8> = bytes.iter().copied().filter(|&b| b != b'\r').collect();
    assert!(
        without_cr == report[..1 << 20],
        "the first max_message_size octets, with CRLF line endings"
    );
    assert!(bytes.starts_with(b"From: root (Cron Daemon)\r\n"));
    assert!(messages_in(&queue).is_empty(), "nothing queued to send");

    // A bad value is a config error when the file is read.
    let bad = config.with_file_name("bad.toml");
    fs::write(&bad, "max_message_size = \"lots\"\n").unwrap();
    let (_link, mut cmd) = common::sendmail();
    let output = cmd
        .env("POSTIE_QUEUE_DIR", &queue)
        .env("POSTIE_CONFIG", &bad)
        .args(["-i", "ops@example.com"])
        .write_stdin("Subject: x\n\nx\n")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("max_message_size"));
}

#[test]
fn a_ready_made_message_file_over_max_message_size_is_65() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "max_message_size = \"1M\"\n");
    let message = dir.path().join("big.eml");
    fs::write(&message, cron_report(2 << 20)).unwrap();
    let output = postie()
        .env("POSTIE_CONFIG", &config)
        .args(["--dry-run", "--message"])
        .arg(&message)
        .arg("ops@example.com")
        .args(["-f", "root@example.com"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(65), "{}", stderr_of(&output));
    assert!(output.stdout.is_empty());
}

/// Runs `program` with `input` on stdin and returns its exit code, stderr
/// and peak resident set size in octets (`ru_maxrss` from wait4).
// The child is reaped by wait4, which std's wait cannot report rusage of.
#[allow(clippy::zombie_processes)]
fn run_measured(mut command: std::process::Command, input: Vec<u8>) -> (Option<i32>, String, u64) {
    use std::io::{Read, Write};
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // A refusal may close the pipe early; that is not the test's concern.
        let _ = stdin.write_all(&input);
    });
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of that plain C struct,
    // and wait4 only writes to the two pointers given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    writer.join().unwrap();
    let stderr = reader.join().unwrap();
    let status = std::process::ExitStatus::from_raw(status);
    // Linux reports ru_maxrss in KiB.
    (status.code(), stderr, usage.ru_maxrss as u64 * 1024)
}

#[test]
fn a_large_sendmail_message_is_held_in_memory_at_most_once() {
    // Measures a child's peak memory: alone, as other tests' would count.
    if common::rerun_alone() {
        return;
    }
    let size = 48 << 20;
    let report = cron_report(size);
    let (link, _) = common::sendmail();
    let (mut command, home) = common::hermetic_std(link.path().join("sendmail"));
    command
        .env("POSTIE_SERVER", nowhere())
        .args(["-t", "-i", "-f", "root@example.com"]);
    let (code, stderr, peak) = run_measured(command, report);
    // The closed port is a temporary failure: queued, whole.
    assert_eq!(code, Some(0), "{stderr}");
    let queued = messages_in(&home.join("queue"));
    assert_eq!(queued.len(), 1, "{stderr}");
    let queued_len = fs::metadata(&queued[0]).unwrap().len();
    assert!(queued_len > size as u64, "{queued_len}");
    // Read whole into a Vec, copied to plan, copied to rewrite and again
    // to make CRLF, it was four times the message (1.2 GB for 300 MB);
    // spooled and converted as it is read, the message is held once.
    assert!(
        peak < 2 * size as u64,
        "peak RSS {} MiB for a {} MiB message",
        peak >> 20,
        size >> 20
    );
}

#[test]
fn smuggling_sequences_in_a_ready_made_message_never_reach_the_wire() {
    let srv = server();
    let message = "From: root@example.com\nTo: ops@example.com\nSubject: cron\n\n\
         first\r.\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n\
         second\n..\n.x\nend\n";
    let (_link, mut cmd) = common::sendmail();
    let output = cmd
        .env("POSTIE_SERVER", srv.addr())
        .args(["-t", "-i"])
        .write_stdin(message)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let mail = srv.wait_for_messages(1).remove(0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(srv.received().len(), 1, "one message, nothing smuggled");
    assert_eq!(mail.rcpt_to, ["ops@example.com"]);
    assert!(
        no_bare_cr(&mail.data),
        "{}",
        String::from_utf8_lossy(&mail.data)
    );
    let text = parse(&mail.data)
        .body_text(0)
        .unwrap()
        .replace("\r\n", "\n");
    assert!(text.contains("MAIL FROM:<evil@example.com>"), "{text}");
    assert!(text.ends_with("second\n..\n.x\nend\n"), "{text}");
}
