//! postie as /usr/sbin/sendmail: the exact command lines that cron, mailx
//! and git send-email run, through a symlink named `sendmail`, against a
//! real SMTP server. Each test checks the envelope and bytes received.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::{closed_port, parse, postie, sendmail, ServerOptions, TestServer};

/// Debian cron's mail (cron 3.0pl1): From with a comment, local To.
const DEBIAN_CRON_MAIL: &str = "From: root (Cron Daemon)\n\
To: root\n\
Subject: Cron <root@backup1> /usr/local/bin/nightly\n\
MIME-Version: 1.0\n\
Content-Type: text/plain; charset=UTF-8\n\
Content-Transfer-Encoding: 8bit\n\
X-Cron-Env: <SHELL=/bin/sh>\n\
X-Cron-Env: <HOME=/root>\n\
\n\
rsync: 1532 files, 0 errors\n\
.\n\
done\n";

struct Setup {
    server: TestServer,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

/// A server plus a config whose account sends to it; `extra` adds keys to
/// the account (aliases, local_domain, from_policy).
fn setup(options: ServerOptions, extra: &str) -> Setup {
    setup_with_top(options, "", extra)
}

/// As [`setup`], with `top` added to the config's top-level keys.
fn setup_with_top(options: ServerOptions, top: &str, extra: &str) -> Setup {
    let server = TestServer::start(options);
    let dir = tempfile::tempdir().unwrap();
    let aliases = dir.path().join("aliases");
    fs::write(
        &aliases,
        "# test aliases\npostmaster: root\nroot: admin@example.com\n",
    )
    .unwrap();
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "default = \"relay\"\naliases = \"{}\"\n{top}\n\n[accounts.relay]\nserver = \"{}\"\n\
             from = \"Reports <reports@example.com>\"\ntimeout = 5\n{extra}\n",
            aliases.display(),
            server.addr()
        ),
    )
    .unwrap();
    Setup {
        server,
        _dir: dir,
        config,
    }
}

fn run_sendmail(config: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    let (_link_dir, mut cmd) = sendmail();
    cmd.env("POSTIE_CONFIG", config)
        .args(args)
        .write_stdin(stdin.to_string())
        .output()
        .unwrap()
}

fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

#[test]
fn debian_cron_invocation() {
    let s = setup(ServerOptions::default(), "");
    let out = run_sendmail(
        &s.config,
        &["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
        DEBIAN_CRON_MAIL,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = s.server.wait_for_messages(1).remove(0);
    assert_eq!(
        mail.rcpt_to,
        ["admin@example.com"],
        "root via the aliases file"
    );
    assert_eq!(mail.mail_from, "reports@example.com", "the account's from");
    let data = String::from_utf8(mail.data).unwrap();
    // -i: the lone dot is part of the body.
    assert!(
        data.ends_with("\r\nrsync: 1532 files, 0 errors\r\n.\r\ndone\r\n"),
        "{data}"
    );
    // Qualified with the domain of the account's from; the alias target
    // is where the mail goes, not a header.
    assert!(
        data.starts_with("From: \"Cron Daemon\" <root@example.com>\r\nTo: <root@example.com>\r\n"),
        "{data}"
    );
    assert!(!data.contains("admin@example.com"), "{data}");
    assert!(data.contains("X-Cron-Env: <HOME=/root>\r\n"));
    assert!(
        data.contains("\r\nDate: ") && data.contains("\r\nMessage-ID: <"),
        "{data}"
    );
}

#[test]
fn cronie_invocation_with_from_policy_override() {
    let s = setup(ServerOptions::default(), "from_policy = \"override\"");
    let out = run_sendmail(
        &s.config,
        &[
            "-FCronDaemon",
            "-i",
            "-odi",
            "-oem",
            "-oi",
            "-t",
            "-f",
            "root",
        ],
        DEBIAN_CRON_MAIL,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = s.server.wait_for_messages(1).remove(0);
    assert_eq!(
        mail.mail_from, "reports@example.com",
        "override replaces envelope root"
    );
    assert_eq!(mail.rcpt_to, ["admin@example.com"], "-t read To: root");
    let msg = parse(&mail.data);
    let from = msg.from().unwrap().first().unwrap();
    assert_eq!(from.address(), Some("reports@example.com"));
    assert_eq!(from.name(), Some("Cron Daemon"), "the display name is kept");
    assert_eq!(
        String::from_utf8_lossy(&mail.data).matches("From:").count(),
        1
    );
}

#[test]
fn cron_envelope_root_is_qualified_by_local_domain() {
    let s = setup(
        ServerOptions::default(),
        "local_domain = \"backup1.example.com\"",
    );
    let out = run_sendmail(
        &s.config,
        &[
            "-FCronDaemon",
            "-i",
            "-odi",
            "-oem",
            "-oi",
            "-t",
            "-f",
            "root",
        ],
        &DEBIAN_CRON_MAIL.replace("To: root", "To: backup"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = s.server.wait_for_messages(1).remove(0);
    assert_eq!(mail.mail_from, "root@backup1.example.com");
    assert_eq!(mail.rcpt_to, ["backup@backup1.example.com"]);
    let from = parse(&mail.data).from().unwrap().first().unwrap().clone();
    assert_eq!(
        from.address(),
        Some("root@backup1.example.com"),
        "From qualified too"
    );
}

#[test]
fn mailx_style_invocation_and_the_lone_dot() {
    let s = setup(ServerOptions::default(), "");
    let message = "To: user@example.com\nSubject: disk usage\n\n91% used\n.\nnot part of it\n";
    // `mail -s subject user` runs `sendmail -oi user`: the dot is text.
    let out = run_sendmail(&s.config, &["-oi", "user@example.com"], message);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without -i/-oi, a line with a single dot ends the message.
    let out = run_sendmail(&s.config, &["user@example.com"], message);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = s.server.wait_for_messages(2);
    let with_oi = String::from_utf8_lossy(&got[0].data).into_owned();
    let without = String::from_utf8_lossy(&got[1].data).into_owned();
    assert!(
        with_oi.ends_with("91% used\r\n.\r\nnot part of it\r\n"),
        "{with_oi}"
    );
    assert!(without.ends_with("\r\n\r\n91% used\r\n"), "{without}");
    assert_eq!(got[0].rcpt_to, ["user@example.com"]);
}

#[test]
fn git_send_email_invocation_is_sent_byte_for_byte() {
    let s = setup(ServerOptions::default(), "");
    let patch = "From: Dev Eloper <dev@example.com>\n\
To: a@example.com\n\
Cc: b@example.com\n\
Subject: [PATCH] fix the frobnicator\n\
Date: Mon, 23 Nov 2026 10:00:00 +0000\n\
Message-ID: <20261123100000.1-1-dev@example.com>\n\
X-Mailer: git-send-email 2.47.3\n\
MIME-Version: 1.0\n\
Content-Transfer-Encoding: 8bit\n\
\n\
Grüße, this is 8-bit.\n\
---\n\
\x20frob.c | 2 +-\n\
.leading dot in a diff line\n";
    let out = run_sendmail(&s.config, &["-i", "a@example.com", "b@example.com"], patch);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = s.server.wait_for_messages(1).remove(0);
    assert_eq!(mail.rcpt_to, ["a@example.com", "b@example.com"]);
    assert!(
        mail.body_8bit,
        "8-bit content is announced with BODY=8BITMIME"
    );
    assert_eq!(
        String::from_utf8(mail.data).unwrap(),
        crlf(patch),
        "unchanged but for CRLF"
    );
}

#[test]
fn t_merges_headers_with_arguments_and_strips_bcc() {
    let s = setup(ServerOptions::default(), "");
    let message = "From: a@example.com\nTo: to@example.com\nCc: \"C, C\" <cc@example.com>\n\
Bcc: hidden@example.com,\n secret@example.com\nSubject: x\n\nbody\n";
    let out = run_sendmail(&s.config, &["-t", "-i", "extra@example.com"], message);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = s.server.wait_for_messages(1).remove(0);
    assert_eq!(
        mail.rcpt_to,
        [
            "extra@example.com",
            "to@example.com",
            "cc@example.com",
            "hidden@example.com",
            "secret@example.com"
        ]
    );
    let data = String::from_utf8(mail.data).unwrap();
    assert!(
        !data.contains("hidden@") && !data.contains("secret@"),
        "{data}"
    );
    assert!(!data.to_ascii_lowercase().contains("bcc:"), "{data}");
}

#[test]
fn t_with_only_bcc_is_sent_to_undisclosed_recipients() {
    let s = setup(ServerOptions::default(), "");
    let message = "From: a@example.com\nBcc: hidden@example.com\nSubject: x\n\nbody\n";
    let out = run_sendmail(&s.config, &["-t", "-i"], message);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = s.server.wait_for_messages(1).remove(0);
    assert_eq!(mail.rcpt_to, ["hidden@example.com"]);
    let data = String::from_utf8(mail.data.clone()).unwrap();
    assert!(
        data.contains("\r\nTo: undisclosed-recipients:;\r\n"),
        "{data}"
    );
    assert!(!data.contains("hidden@"), "{data}");
    let msg = parse(&mail.data);
    assert!(msg.header("Bcc").is_none());
    let Some(mail_parser::HeaderValue::Address(to)) = msg.header("To") else {
        panic!("no To: {data}");
    };
    let group = to.as_group().expect("a group").first().unwrap();
    assert_eq!(group.name.as_deref(), Some("undisclosed-recipients"));
    assert!(group.addresses.is_empty());
}

#[test]
fn a_resend_gets_resent_date_and_from_in_its_own_block_only() {
    let s = setup(ServerOptions::default(), "");
    let message = "Resent-To: new@example.com\n\
Received: from x by y; Mon, 23 Nov 2026 10:00:00 +0000\n\
Resent-From: first@example.org\n\
Resent-Date: Mon, 23 Nov 2026 10:00:00 +0000\n\
Resent-To: old@example.com\n\
From: author@example.org\n\
To: to@example.org\n\
Date: Sun, 22 Nov 2026 10:00:00 +0000\n\
Message-ID: <orig@example.org>\n\
Subject: x\n\nbody\n";
    let out = run_sendmail(&s.config, &["-t", "-i", "-F", "Resender"], message);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = s.server.wait_for_messages(1).remove(0);
    let data = String::from_utf8(mail.data.clone()).unwrap();
    let (top, rest) = data.split_once("Received: ").unwrap();
    assert!(top.starts_with("Resent-Date: "), "{data}");
    assert!(
        top.contains(
            "\r\nResent-From: \"Resender\" <reports@example.com>\r\nResent-To: new@example.com\r\n"
        ),
        "{data}"
    );
    assert_eq!(rest.matches("Resent-From:").count(), 1, "{data}");
    assert_eq!(rest.matches("Resent-Date:").count(), 1, "{data}");
    let msg = parse(&mail.data);
    let resent_from: Vec<_> = msg
        .header_values("Resent-From")
        .filter_map(|value| value.as_address()?.first()?.address().map(str::to_string))
        .collect();
    assert_eq!(resent_from, ["reports@example.com", "first@example.org"]);
    let resent_dates = msg
        .header_values("Resent-Date")
        .filter(|v| v.as_datetime().is_some())
        .count();
    assert_eq!(resent_dates, 2, "{data}");
}

#[test]
fn refused_recipient_is_67_and_server_down_is_75_or_queued() {
    let s = setup(
        ServerOptions {
            refuse_rcpt: vec!["gone@example.com".into()],
            ..ServerOptions::default()
        },
        "",
    );
    let out = run_sendmail(
        &s.config,
        &["-i", "gone@example.com"],
        "Subject: x\n\nbody\n",
    );
    assert_eq!(out.status.code(), Some(67));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("<gone@example.com>: 550"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[defaults]\nserver = \"127.0.0.1:{}\"\nfrom = \"r@example.com\"\n",
            closed_port()
        ),
    )
    .unwrap();
    let out = run_sendmail(
        &config,
        &["--no-queue", "-i", "a@example.com"],
        "Subject: x\n\nbody\n",
    );
    assert_eq!(out.status.code(), Some(75), "cron and queues retry on 75");
    assert!(String::from_utf8_lossy(&out.stderr).contains("connection refused"));
    // By default sendmail mode keeps the message instead (tests/it/queue.rs).
    let out = run_sendmail(&config, &["-i", "a@example.com"], "Subject: x\n\nbody\n");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("postie: queued as "));
}

/// cronie's exact command line.
const CRONIE: [&str; 8] = [
    "-FCronDaemon",
    "-i",
    "-odi",
    "-oem",
    "-oi",
    "-t",
    "-f",
    "root",
];

#[test]
fn cronie_without_local_domain_sends_as_the_account() {
    let s = setup(ServerOptions::default(), "");
    let out = run_sendmail(&s.config, &CRONIE, DEBIAN_CRON_MAIL);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = s.server.wait_for_messages(1).remove(0);
    assert_eq!(
        mail.mail_from, "reports@example.com",
        "-f root has no domain"
    );
    assert_eq!(mail.rcpt_to, ["admin@example.com"], "To: root, aliased");
    let data = String::from_utf8(mail.data).unwrap();
    assert!(
        data.starts_with("From: \"Cron Daemon\" <root@example.com>\r\nTo: <root@example.com>\r\n"),
        "{data}"
    );
    assert!(!data.contains("admin@example.com"), "{data}");
}

#[test]
fn keep_never_touches_headers_but_the_envelope_is_still_qualified() {
    let s = setup(ServerOptions::default(), "from_policy = \"keep\"");
    let out = run_sendmail(&s.config, &CRONIE, DEBIAN_CRON_MAIL);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = s.server.wait_for_messages(1).remove(0);
    assert_eq!(mail.mail_from, "reports@example.com");
    let data = String::from_utf8(mail.data).unwrap();
    assert!(
        data.starts_with("From: root (Cron Daemon)\r\nTo: root\r\n"),
        "{data}"
    );
}

#[test]
fn override_qualifies_to_with_local_domain_and_logwatch_from_root() {
    let s = setup(
        ServerOptions::default(),
        "from_policy = \"override\"\nlocal_domain = \"backup1.example.com\"",
    );
    // logwatch: `From: root`, recipients on the command line.
    let logwatch =
        "From: root\nTo: root, Web <www-data>\nSubject: Logwatch for backup1\n\nall quiet\n";
    let out = run_sendmail(&s.config, &["-t", "-i"], logwatch);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = s.server.wait_for_messages(1).remove(0);
    assert_eq!(mail.mail_from, "reports@example.com");
    assert_eq!(
        mail.rcpt_to,
        ["admin@example.com", "www-data@backup1.example.com"]
    );
    let data = String::from_utf8(mail.data).unwrap();
    assert!(
        data.starts_with(
            "From: \"Reports\" <reports@example.com>\r\nTo: <root@backup1.example.com>, \"Web\" <www-data@backup1.example.com>\r\n"
        ),
        "{data}"
    );
}

#[test]
fn admin_receives_what_no_alias_maps() {
    let s = setup_with_top(
        ServerOptions::default(),
        "admin = \"Ops <ops@example.org>\"",
        "",
    );
    let out = run_sendmail(
        &s.config,
        &["-i", "www-data", "root"],
        "Subject: x\n\nbody\n",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = s.server.wait_for_messages(1).remove(0);
    assert_eq!(mail.rcpt_to, ["ops@example.org", "admin@example.com"]);
}

#[test]
fn the_aliases_default_entry_wins_over_admin() {
    let dir = tempfile::tempdir().unwrap();
    let aliases = dir.path().join("aliases");
    fs::write(
        &aliases,
        "root: admin@example.com\ndefault: rest@example.com\n",
    )
    .unwrap();
    let s = setup_with_top(
        ServerOptions::default(),
        "admin = \"ops@example.org\"",
        &format!("aliases = \"{}\"", aliases.display()),
    );
    let out = run_sendmail(&s.config, &["-i", "www-data"], "Subject: x\n\nbody\n");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        s.server.wait_for_messages(1)[0].rcpt_to,
        ["rest@example.com"]
    );
}

#[test]
fn unknown_local_recipient_names_the_three_fixes() {
    let s = setup(ServerOptions::default(), "");
    s.server.expect_unused();
    let out = run_sendmail(&s.config, &["-i", "www-data"], "Subject: x\n\nbody\n");
    assert_eq!(out.status.code(), Some(67));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"www-data\" has no domain"), "{stderr}");
    assert!(
        stderr.contains("aliases") && stderr.contains("admin =") && stderr.contains("local_domain"),
        "{stderr}"
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(s.server.received().is_empty());
}

#[test]
fn unsupported_modes_and_options_are_64() {
    let s = setup(ServerOptions::default(), "");
    s.server.expect_unused();
    for args in [
        vec!["-bv", "a@example.com"],
        vec!["-bs", "-Z"],
        vec!["-q30m"],
        vec!["-bd"],
        vec!["-Z", "a@example.com"],
    ] {
        let out = run_sendmail(&s.config, &args, "");
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[test]
fn malformed_message_is_65_with_the_reason() {
    let s = setup(ServerOptions::default(), "");
    s.server.expect_unused();
    let out = run_sendmail(
        &s.config,
        &["-i", "a@example.com"],
        "just a body line\n\nmore\n",
    );
    assert_eq!(out.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("malformed message: line 1"), "{stderr}");
}

#[test]
fn sendmail_flag_and_message_option_outside_the_link() {
    let s = setup(ServerOptions::default(), "");
    postie()
        .env("POSTIE_CONFIG", &s.config)
        .args(["--sendmail", "-t", "-i"])
        .write_stdin("To: a@example.com\nSubject: via flag\n\nx\n")
        .assert()
        .success();
    let dir = tempfile::tempdir().unwrap();
    let eml = dir.path().join("ready.eml");
    fs::write(
        &eml,
        "From: x@example.com\nTo: a@example.com\nSubject: ready\n\nx\n",
    )
    .unwrap();
    postie()
        .env("POSTIE_CONFIG", &s.config)
        .arg("--message")
        .arg(&eml)
        .args(["-t", "b@example.com"])
        .assert()
        .success();
    let got = s.server.wait_for_messages(2);
    assert_eq!(got[0].rcpt_to, ["a@example.com"]);
    assert_eq!(got[1].rcpt_to, ["b@example.com", "a@example.com"]);
    assert_eq!(parse(&got[1].data).subject(), Some("ready"));
}

#[test]
fn default_config_path_is_used_without_postie_config() {
    let s = setup(ServerOptions::default(), "");
    let xdg = tempfile::tempdir().unwrap();
    fs::create_dir_all(xdg.path().join("postie")).unwrap();
    fs::copy(&s.config, xdg.path().join("postie/config.toml")).unwrap();
    let (_link_dir, mut cmd) = sendmail();
    cmd.env("XDG_CONFIG_HOME", xdg.path())
        .args(["-i", "root"])
        .write_stdin("Subject: x\n\nbody\n")
        .assert()
        .success();
    assert_eq!(
        s.server.wait_for_messages(1)[0].rcpt_to,
        ["admin@example.com"]
    );
}

#[test]
fn several_messages_go_over_one_session() {
    let dir = tempfile::tempdir().unwrap();
    // No PIPELINING: one command, one reply.
    let mut replies: Vec<Vec<u8>> = vec![b"250-one.test\r\n250 8BITMIME\r\n".to_vec()];
    for _ in 0..3 {
        replies.extend([ok(), ok(), go(), ok()]);
    }
    replies.push(b"221 bye\r\n".to_vec());
    let server = common::ScriptedServer::start(b"220 one.test ESMTP\r\n", replies);
    postie()
        .args(["--server", &server.addr(), "-f", "a@example.com"])
        .args(three_messages(dir.path()))
        .arg("b@example.com")
        .assert()
        .success();
    let lines = server.lines();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("EHLO")).count(),
        1,
        "{lines:?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("MAIL FROM:")).count(),
        3,
        "{lines:?}"
    );
    for i in 1..=3 {
        assert!(lines.contains(&format!("Subject: number {i}")), "{lines:?}");
    }
}

/// Three ready-made messages in `dir`, as `--message` arguments.
fn three_messages(dir: &Path) -> Vec<String> {
    let mut args = vec![];
    for i in 1..=3 {
        let path = dir.join(format!("{i}.eml"));
        fs::write(
            &path,
            format!("From: a@example.com\nSubject: number {i}\n\n.dot line {i}\n"),
        )
        .unwrap();
        args.push("--message".to_string());
        args.push(path.display().to_string());
    }
    args
}

const PIPELINING_EHLO: &[u8] = b"250-one.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n";

fn ok() -> Vec<u8> {
    b"250 ok\r\n".to_vec()
}

fn go() -> Vec<u8> {
    b"354 go\r\n".to_vec()
}

/// A pipelining server's replies up to the 354 for the second message:
/// the first delivered, the second's MAIL and RCPT answered behind it.
fn replies_until_the_second_message() -> Vec<Vec<u8>> {
    vec![
        PIPELINING_EHLO.to_vec(),
        ok(),
        ok(),
        go(),
        ok(),
        ok(),
        ok(),
        go(),
    ]
}

#[test]
fn with_pipelining_the_next_mail_follows_the_final_dot() {
    let dir = tempfile::tempdir().unwrap();
    // Each message's reply comes with the next one's MAIL and RCPT
    // answered behind it.
    let mut replies = replies_until_the_second_message();
    replies.extend([ok(), ok(), ok(), go(), ok(), b"221 bye\r\n".to_vec()]);
    let server = common::ScriptedServer::start(b"220 one.test ESMTP\r\n", replies);
    let output = postie()
        .args(["--server", &server.addr(), "-f", "a@example.com", "-v"])
        .args(three_messages(dir.path()))
        .arg("b@example.com")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let lines = server.lines();
    for i in 1..=3 {
        // Dot-stuffed on the wire, so the server reads it back as ".dot line".
        assert!(lines.contains(&format!("..dot line {i}")), "{lines:?}");
    }
    assert_eq!(
        lines
            .iter()
            .filter(|l| *l == "MAIL FROM:<a@example.com>")
            .count(),
        3
    );
    // The transcript shows the second MAIL sent before the first message's reply.
    let transcript: Vec<&str> = stderr.lines().collect();
    let dot = transcript
        .iter()
        .position(|l| l.ends_with("-> ."))
        .expect("a dot");
    assert!(
        transcript[dot + 1].ends_with("-> MAIL FROM:<a@example.com>"),
        "{stderr}"
    );
    assert!(
        transcript[dot + 2].ends_with("-> RCPT TO:<b@example.com>"),
        "{stderr}"
    );
}

#[test]
fn with_pipelining_a_rejected_message_does_not_stop_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let mut replies = replies_until_the_second_message();
    replies.extend([
        // 2: rejected at the end of DATA; 3's MAIL and RCPT were already sent.
        b"554 5.7.1 spam\r\n".to_vec(),
        ok(),
        b"550 5.1.1 no such user\r\n".to_vec(),
        // 3: its recipient refused, so RSET; then postie checks the session.
        ok(),
        ok(),
        b"221 bye\r\n".to_vec(),
    ]);
    let server = common::ScriptedServer::start(b"220 one.test ESMTP\r\n", replies);
    let messages = three_messages(dir.path());
    let output = postie()
        .args([
            "--server",
            &server.addr(),
            "-f",
            "a@example.com",
            "--no-queue",
        ])
        .args(&messages)
        .arg("b@example.com")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The first failure's code: 69 for the message the server rejected.
    assert_eq!(output.status.code(), Some(69), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: end of DATA: ", messages[3])),
        "{stderr}"
    );
    assert!(stderr.contains("554 5.7.1 spam"), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: RCPT TO: ", messages[5])),
        "{stderr}"
    );
    assert!(
        stderr.contains("2 of 3 messages did not reach every recipient"),
        "{stderr}"
    );
    let lines = server.lines();
    let commands: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| {
            ["MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT"]
                .iter()
                .any(|c| l.starts_with(c))
        })
        .collect();
    assert_eq!(
        commands,
        [
            "MAIL FROM:<a@example.com>",
            "RCPT TO:<b@example.com>",
            "DATA",
            "MAIL FROM:<a@example.com>",
            "RCPT TO:<b@example.com>",
            "DATA",
            "MAIL FROM:<a@example.com>",
            "RCPT TO:<b@example.com>",
            "RSET",
            "NOOP",
            "QUIT"
        ],
        "{lines:?}"
    );
}

#[test]
fn in_a_batch_a_reply_that_never_comes_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let mut replies = replies_until_the_second_message();
    // 2's end of data, and 3's MAIL and RCPT sent behind it: no reply.
    replies.extend([vec![], vec![], vec![], b"221 bye\r\n".to_vec()]);
    let server = common::ScriptedServer::start(b"220 one.test ESMTP\r\n", replies);
    let messages = three_messages(dir.path());
    let output = postie()
        .args(["--server", &server.addr(), "-f", "a@example.com"])
        .args(["--no-queue", "--timeout", "1"])
        .args(&messages)
        .arg("b@example.com")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(75), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: end of DATA: timed out after 1 s waiting for the reply to the end of the message from {}",
            messages[3],
            server.addr()
        )),
        "{stderr}"
    );
    // 3 is not read against replies that may still come for 2.
    assert!(
        stderr.contains(&format!(
            "{}: not sent: a reply did not come in the session with",
            messages[5]
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("2 of 3 messages did not reach every recipient"),
        "{stderr}"
    );
}

#[test]
fn a_batch_to_a_server_that_does_not_answer_connects_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = format!("127.0.0.1:{}", closed_port());
    let output = postie()
        .args([
            "--server",
            &server,
            "-f",
            "a@example.com",
            "--no-queue",
            "-v",
        ])
        .args(three_messages(dir.path()))
        .arg("b@example.com")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(75), "{stderr}");
    assert_eq!(stderr.matches("=== Trying").count(), 1, "{stderr}");
    assert!(
        stderr.contains("3 of 3 messages did not reach every recipient"),
        "{stderr}"
    );
}

#[test]
fn every_message_of_a_batch_is_logged_with_its_server() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("postie.log");
    let s = setup(
        ServerOptions::default(),
        &format!("logfile = \"{}\"", log.display()),
    );
    postie()
        .env("POSTIE_CONFIG", &s.config)
        .args(three_messages(dir.path()))
        .arg("b@example.com")
        .assert()
        .success();
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let server = format!("server={}", s.server.addr());
    for line in lines {
        assert!(line.contains("outcome=sent"), "{line}");
        assert!(line.contains(&server), "{line}");
    }
}

#[test]
fn in_a_batch_a_refused_message_does_not_stop_the_others() {
    let s = setup(
        ServerOptions {
            refuse_rcpt: vec!["gone@example.com".into()],
            ..ServerOptions::default()
        },
        "",
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.eml");
    fs::write(&bad, "To: gone@example.com\nSubject: bad\n\nx\n").unwrap();
    let mut command = postie();
    command
        .env("POSTIE_CONFIG", &s.config)
        .args(["-t", "--message"])
        .arg(&bad);
    for i in 1..=3 {
        let good = dir.path().join(format!("good{i}.eml"));
        fs::write(
            &good,
            format!("To: ok@example.com\nSubject: good {i}\n\nx\n"),
        )
        .unwrap();
        command.arg("--message").arg(&good);
    }
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(67), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: RCPT TO:", bad.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 of 4 messages did not reach every recipient"),
        "{stderr}"
    );
    let got = s.server.wait_for_messages(3);
    let subjects: Vec<_> = got
        .iter()
        .map(|m| parse(&m.data).subject().unwrap_or_default().to_string())
        .collect();
    assert_eq!(subjects, ["good 1", "good 2", "good 3"]);
    // The failed first message ended its session; the others share the next.
    assert!(got.iter().all(|m| m.session == got[0].session), "{got:?}");
}

#[test]
fn with_the_queue_off_an_unsent_message_is_kept_in_failed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[defaults]\nserver = \"127.0.0.1:{}\"\nfrom = \"r@example.com\"\n",
            closed_port()
        ),
    )
    .unwrap();
    let (out, kept) = run_sendmail_keeping(
        &config,
        &["--no-queue", "-i", "a@example.com"],
        "Subject: down\n\nbody\n",
    );
    assert_eq!(out.status.code(), Some(75), "cron and queues retry on 75");
    // Nothing handed over is lost: no queue to wait in, so failed/.
    assert_eq!(kept.len(), 1, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        kept[0].0["recipients"],
        serde_json::json!(["a@example.com"])
    );
    assert!(kept[0].1.contains("Subject: down"), "{}", kept[0].1);
}

/// sendmail with its own queue directory; returns the output and what
/// `failed/` holds afterwards (each entry's JSON and message).
fn run_sendmail_keeping(
    config: &Path,
    args: &[&str],
    stdin: &str,
) -> (std::process::Output, Vec<(serde_json::Value, String)>) {
    let queue = tempfile::tempdir().unwrap();
    let (_link_dir, mut cmd) = sendmail();
    let out = cmd
        .env("POSTIE_CONFIG", config)
        .env("POSTIE_QUEUE_DIR", queue.path())
        .args(args)
        .write_stdin(stdin.to_string())
        .output()
        .unwrap();
    let failed = queue.path().join("failed");
    let mut kept = Vec::new();
    for item in fs::read_dir(&failed).into_iter().flatten().flatten() {
        let path = item.path();
        if path.extension().is_some_and(|e| e == "json") {
            let json: serde_json::Value =
                serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
            let eml = fs::read_to_string(path.with_extension("eml")).unwrap();
            kept.push((json, eml));
        }
    }
    (out, kept)
}

#[test]
fn a_message_that_cannot_be_planned_is_kept_in_failed_with_a_log_line() {
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("postie.log");
    let s = setup(
        ServerOptions::default(),
        &format!("logfile = \"{}\"", log.display()),
    );
    s.server.expect_unused();
    let report = "Subject: backup\n\nrsync: 1532 files, 0 errors\n";
    // A local name no alias or domain covers: 67 before any connection.
    let (out, kept) = run_sendmail_keeping(&s.config, &["-i", "www-data"], report);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(67), "{stderr}");
    assert!(stderr.contains("kept the message in "), "{stderr}");
    assert_eq!(kept.len(), 1, "{stderr}");
    assert!(kept[0].1.contains("rsync: 1532 files"), "{}", kept[0].1);
    assert_eq!(kept[0].0["recipients"], serde_json::json!(["www-data"]));
    assert!(
        kept[0].0["last_error"]
            .as_str()
            .unwrap()
            .contains("has no domain"),
        "{}",
        kept[0].0
    );
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("to=<www-data>")
            && text.contains("outcome=failed")
            && text.ends_with("exit=67\n"),
        "{text}"
    );
    assert!(s.server.received().is_empty());

    // A message that is not one (65) and arguments that do not parse (64).
    for (args, code) in [
        (&["-i", "a@example.com"][..], 65),
        (&["-Z", "a@example.com"][..], 64),
    ] {
        let input = if code == 65 {
            "just a body line\n\nmore\n"
        } else {
            report
        };
        let (out, kept) = run_sendmail_keeping(&s.config, args, input);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert_eq!(kept.len(), 1, "{args:?}: {stderr}");
        assert_eq!(kept[0].1, input.replace('\n', "\r\n").replace("\r\r", "\r"));
    }
}

/// The effective uid of the tests.
fn test_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").unwrap().uid()
}

/// The home directory the password database gives `uid`, if it has one.
fn passwd_home(uid: u32) -> Option<String> {
    let out = std::process::Command::new("getent")
        .args(["passwd", &uid.to_string()])
        .output()
        .ok()?;
    let line = String::from_utf8(out.stdout).ok()?;
    line.trim_end().split(':').nth(5).map(str::to_string)
}

/// postie (in sendmail mode: `--sendmail`) run by a user other than root,
/// and that user's uid: as the tests' own user, or as nobody through
/// setpriv where the tests run as root. None when that is impossible
/// outside CI (where a missing setpriv must fail the test).
fn as_non_root() -> Option<(assert_cmd::Command, u32)> {
    let postie = env!("CARGO_BIN_EXE_postie");
    let uid = test_uid();
    if uid != 0 {
        return Some((common::hermetic(postie), uid));
    }
    if !common::require_tool("setpriv", "util-linux") {
        return None;
    }
    let mut cmd = common::hermetic("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        postie,
    ]);
    Some((cmd, 65534))
}

#[test]
fn a_config_that_cannot_be_read_is_78_naming_it_not_no_config() {
    let Some((mut cmd, _)) = as_non_root() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Reachable by the other user, up to the directory that is not.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let hidden = dir.path().join("postie");
    fs::create_dir(&hidden).unwrap();
    let config = hidden.join("config.toml");
    fs::write(&config, "[accounts.a]\nserver = \"127.0.0.1:1\"\n").unwrap();
    // EACCES on the directory: stat() fails too, so the file seems absent.
    fs::set_permissions(&hidden, fs::Permissions::from_mode(0o000)).unwrap();
    let out = cmd
        .env("POSTIE_SYSTEM_CONFIG", &config)
        // The ordinary command line: in sendmail mode the maildrop takes
        // it (tests/it/maildrop.rs).
        .args(["-f", "a@example.com", "root", "--body", "x"])
        .output()
        .unwrap();
    fs::set_permissions(&hidden, fs::Permissions::from_mode(0o755)).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot read config file {}", config.display())),
        "{stderr}"
    );
}

#[test]
fn home_of_another_user_is_not_searched_for_the_config() {
    let Some((mut cmd, uid)) = as_non_root() else {
        return;
    };
    let Some(home) = passwd_home(uid) else {
        // Containers may run the tests under a uid without an entry.
        common::skip(&format!("uid {uid} has no passwd entry"));
        return;
    };
    // Debian's cron: the crontab owner's uid, the daemon's HOME.
    let out = cmd
        .env("HOME", "/root")
        .args(["-v", "--dry-run", "-f", "a@example.com", "b@example.com"])
        .args(["--body", "x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "no config file; tried {home}/.config/postie/config.toml, "
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("/root/.config"), "{stderr}");
}

#[test]
fn the_only_account_is_used_without_default() {
    let server = TestServer::start(ServerOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[accounts.only]\nserver = \"{}\"\nfrom = \"only@example.com\"\n",
            server.addr()
        ),
    )
    .unwrap();
    let (_link_dir, mut cmd) = sendmail();
    let out = cmd
        .env("POSTIE_CONFIG", &config)
        .args(["-v", "-i", "a@example.com"])
        .write_stdin("Subject: x\n\nbody\n")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "=== config file {}; account only",
            config.display()
        )),
        "{stderr}"
    );
    assert_eq!(server.wait_for_messages(1)[0].mail_from, "only@example.com");
}

#[test]
fn a_local_from_on_the_command_line_sends_as_the_account() {
    let s = setup(ServerOptions::default(), "");
    // --dry-run: nothing is sent.
    s.server.expect_unused();
    let out = postie()
        .env("POSTIE_CONFIG", &s.config)
        .args(["--dry-run", "-f", "root", "b@example.com", "--body", "x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("MAIL FROM:<reports@example.com>"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The header keeps the name, qualified with the domain of `from`.
    assert!(stdout.contains("From: <root@example.com>\r\n"), "{stdout}");
}
