//! Hostile input (issue 12): what a user, a script or a cron job hands
//! postie must not inject headers, smuggle SMTP commands, pass a dry run
//! and then fail on the wire, or exhaust memory. Each test fails without
//! the check it names.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::{closed_port, parse, postie, ServerOptions, TestServer};
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
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and needs unshare (util-linux) to set a host name"
        );
        eprintln!("skipped: cannot unshare the UTS namespace");
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
