//! Hostile tests for credentials (issue 12, "Credentials"): a mail
//! exchanger that asks for AUTH must never get a password, and a password
//! command that hangs, floods or prints nonsense must neither hang postie,
//! fill its memory, nor cost a cron job its message.
//!
//! Self-contained apart from `common`, so that the one-test-binary layout
//! can take it over as a module.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::dns::DnsServer;
use crate::common::{
    closed_port, postie, sendmail, ScriptedServer, ServerOptions, TestServer, Tls, PASSWORD,
    SMALL_MESSAGE, USER,
};

/// How long the old, unbounded behaviour may hang before the test calls it
/// a failure (instead of hanging the suite with it).
const HANG: Duration = Duration::from_secs(20);

/// A command that never ends and holds its stdout. Its stderr goes away so
/// that, should postie be killed for hanging, the test's own pipe closes.
const HANGING: &str = "exec 2>/dev/null; sleep 1000";

fn zone() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("corp.test", "MX", "10 mx.corp.test."),
        ("mx.corp.test", "A", "127.0.0.1"),
    ]
}

/// An exchanger that offers AUTH and takes one message; it answers
/// whatever comes with the next line of the script, so a stray AUTH would
/// still get through and show up in its received lines.
fn auth_offering_mx() -> ScriptedServer {
    let replies: Vec<&[u8]> = vec![
        b"250-mx.corp.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
        b"250 2.1.0 ok\r\n",
        b"250 2.1.5 ok\r\n",
        b"354 go ahead\r\n",
        b"250 2.0.0 queued\r\n",
        b"221 2.0.0 bye\r\n",
    ];
    ScriptedServer::start(
        b"220 mx.corp.test ESMTP\r\n",
        replies.into_iter().map(<[u8]>::to_vec).collect(),
    )
}

/// A password command that leaves a mark when it runs.
fn marking_command(dir: &Path) -> (String, PathBuf) {
    let mark = dir.join("password-command-ran");
    (format!("touch '{}'; echo secret", mark.display()), mark)
}

fn write_config(dir: &Path, account: &str) -> PathBuf {
    let config = dir.join("config.toml");
    fs::write(&config, format!("[accounts.corp]\n{account}\n")).unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).unwrap();
    config
}

fn direct(dns: &DnsServer, port: u16) -> assert_cmd::Command {
    let mut cmd = postie();
    cmd.args(["--resolver", &dns.addr.to_string()])
        .args(["--port", &port.to_string(), "--timeout", "5"])
        .args(["-f", "me@corp.example", "boss@corp.test", "--body", "hi"])
        .timeout(HANG);
    cmd
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn no_auth_in(server: &ScriptedServer) {
    let lines = server.lines();
    assert!(
        lines.iter().any(|l| l.starts_with("MAIL FROM")),
        "the exchanger got no message: {lines:?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.to_ascii_uppercase().starts_with("AUTH")),
        "the exchanger got AUTH: {lines:?}"
    );
}

#[test]
fn an_account_login_is_never_sent_to_an_exchanger_under_mx() {
    let dir = tempfile::tempdir().unwrap();
    let (cmd, mark) = marking_command(dir.path());
    let config = write_config(
        dir.path(),
        &format!("user = \"me@corp.example\"\npassword_cmd = \"{cmd}\""),
    );
    let dns = DnsServer::start(&zone());
    let mx = auth_offering_mx();
    let output = direct(&dns, mx.port)
        .env("POSTIE_CONFIG", &config)
        .args(["--mx", "-v"])
        .output()
        .unwrap();
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    no_auth_in(&mx);
    assert!(!mark.exists(), "the password command ran");
    assert!(
        stderr.contains("warning: --mx: not logging in as \"me@corp.example\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("direct delivery to each recipient domain's mail exchangers (MX), without a login: --mx was given"),
        "{stderr}"
    );
}

#[test]
fn a_login_from_the_environment_is_ignored_under_mx() {
    let dns = DnsServer::start(&zone());
    let mx = auth_offering_mx();
    let output = direct(&dns, mx.port)
        .env("POSTIE_USER", "me@corp.example")
        .env("POSTIE_PASSWORD", "hunter2")
        .arg("--mx")
        .output()
        .unwrap();
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    no_auth_in(&mx);
    assert!(stderr.contains("not logging in as"), "{stderr}");
}

#[test]
fn mx_with_a_login_on_the_command_line_is_64() {
    let dir = tempfile::tempdir().unwrap();
    let (cmd, mark) = marking_command(dir.path());
    let dns = DnsServer::start(&zone());
    for login in [
        vec!["--user", "me@corp.example", "--password-cmd", &cmd],
        vec!["--password-cmd", &cmd],
        vec!["--auth", "plain"],
    ] {
        let mx = auth_offering_mx();
        mx.expect_unused();
        let output = direct(&dns, mx.port)
            .arg("--mx")
            .args(&login)
            .output()
            .unwrap();
        let stderr = stderr(&output);
        assert_eq!(output.status.code(), Some(64), "{login:?}: {stderr}");
        assert!(stderr.contains("--mx does not go with"), "{stderr}");
        assert!(
            mx.lines().is_empty(),
            "{login:?}: the exchanger was contacted"
        );
    }
    assert!(!mark.exists(), "the password command ran");
}

#[test]
fn an_account_with_a_login_and_no_server_is_78() {
    let dir = tempfile::tempdir().unwrap();
    let (cmd, mark) = marking_command(dir.path());
    let config = write_config(
        dir.path(),
        &format!("user = \"me@corp.example\"\npassword_cmd = \"{cmd}\""),
    );
    let dns = DnsServer::start(&zone());
    let mx = auth_offering_mx();
    mx.expect_unused();
    let output = direct(&dns, mx.port)
        .env("POSTIE_CONFIG", &config)
        .output()
        .unwrap();
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("a login"), "{stderr}");
    assert!(stderr.contains("no server"), "{stderr}");
    assert!(mx.lines().is_empty(), "the exchanger was contacted");
    assert!(!mark.exists(), "the password command ran");
}

#[test]
fn verbose_says_why_direct_delivery_was_chosen() {
    let dns = DnsServer::start(&zone());
    let mx = auth_offering_mx();
    let output = direct(&dns, mx.port).arg("-v").output().unwrap();
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("direct delivery to each recipient domain's mail exchangers (MX), without a login: no server is given or configured"),
        "{stderr}"
    );
}

/// postie with a password command and a server that is never reached
/// when the command fails (and refuses the connection when it does not).
fn with_password_cmd(cmd: &str) -> assert_cmd::Command {
    let mut postie = postie();
    postie
        .args(["--server", &format!("127.0.0.1:{}", closed_port())])
        .args(["--user", "me", "--password-cmd", cmd, "--timeout", "1"])
        .args(SMALL_MESSAGE)
        .timeout(HANG);
    postie
}

#[test]
fn a_hanging_password_command_is_killed_at_the_deadline() {
    let started = Instant::now();
    let output = with_password_cmd(HANGING).output().unwrap();
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(75), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10), "{stderr}");
    assert!(stderr.contains("did not finish within 1 s"), "{stderr}");
}

#[test]
fn a_grandchild_holding_the_pipe_does_not_hold_postie() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("grandchild.pid");
    // The command itself ends at once; what it started keeps its stdout.
    let cmd = format!(
        "sh -c 'echo $$ > {}; {HANGING}' & echo secret",
        pid_file.display()
    );
    let started = Instant::now();
    let output = with_password_cmd(&cmd).output().unwrap();
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(75), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10), "{stderr}");
    // The whole group was killed, not only the shell.
    let pid = fs::read_to_string(&pid_file).unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc_dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!proc_dir.exists(), "the grandchild {} lives on", pid.trim());
}

/// The highest resident set of any child this test process waited for, in
/// KiB (Linux). The other tests here run small postie processes only.
fn children_peak_kib() -> i64 {
    // SAFETY: getrusage only fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let status = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(status, 0);
    usage.ru_maxrss
}

#[test]
fn a_flood_of_output_is_78_quickly_with_bounded_memory() {
    // Measures a child's peak memory: alone, as other tests' would count.
    if crate::common::rerun_alone() {
        return;
    }
    let started = Instant::now();
    let output = with_password_cmd("yes | head -c 300000000")
        .output()
        .unwrap();
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("more than 64 KiB"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5), "{stderr}");
    let peak = children_peak_kib();
    assert!(peak < 100 * 1024, "a child peaked at {peak} KiB");
}

#[test]
fn unusable_output_is_78_saying_which() {
    for (cmd, why) in [
        (r"printf 'sec\000ret\n'", "NUL byte"),
        (r"printf 'secr\377t\n'", "not UTF-8"),
        (r"printf '\nsecret\n'", "empty first line"),
    ] {
        let output = with_password_cmd(cmd).output().unwrap();
        let stderr = stderr(&output);
        assert_eq!(output.status.code(), Some(78), "{cmd}: {stderr}");
        assert!(stderr.contains(why), "{cmd}: {stderr}");
    }
}

#[test]
fn the_password_command_sees_no_postie_password() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("env");
    let output = with_password_cmd(&format!("env > '{}'; echo secret", seen.display()))
        .env("POSTIE_PASSWORD", "hunter2")
        .output()
        .unwrap();
    // The command ran and its password was used: the server is down.
    assert_eq!(output.status.code(), Some(75), "{}", stderr(&output));
    let env = fs::read_to_string(&seen).unwrap();
    assert!(env.contains("PATH="), "{env}");
    assert!(!env.contains("POSTIE_PASSWORD"), "{env}");
    assert!(!env.contains("hunter2"), "{env}");
}

#[test]
fn the_shell_is_not_looked_up_in_path() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("sh");
    let mark = dir.path().join("fake-shell-ran");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\ntouch '{}'\nexec /bin/sh \"$@\"\n",
            mark.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = with_password_cmd("echo secret")
        .env("PATH", path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(75), "{}", stderr(&output));
    assert!(
        !mark.exists(),
        "the sh found in PATH ran the password command"
    );
}

/// The sendmail link with an account whose password command fails:
/// returns the output and the queue directory.
fn sendmail_with_password_cmd(dir: &Path, cmd: &str) -> (std::process::Output, PathBuf) {
    let queue = dir.join("queue");
    let config = write_config(
        dir,
        &format!(
            "server = \"127.0.0.1:{}\"\nfrom = \"cron@corp.example\"\nuser = \"cron\"\n\
             password_cmd = \"{cmd}\"\ntimeout = 1",
            closed_port()
        ),
    );
    let (_link, mut cmd) = sendmail();
    let output = cmd
        .env("POSTIE_CONFIG", &config)
        .env("POSTIE_QUEUE_DIR", &queue)
        .args(["-i", "ops@corp.example"])
        .write_stdin("Subject: nightly\n\nall good\n")
        .timeout(HANG)
        .output()
        .unwrap();
    (output, queue)
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect()
}

fn assert_queued_not_failed(output: &std::process::Output, queue: &Path, why: &str) {
    let stderr = stderr(output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.starts_with("postie: queued as "), "{stderr}");
    assert!(stderr.contains(why), "{stderr}");
    assert_eq!(json_files(queue).len(), 1, "{stderr}");
    assert!(json_files(&queue.join("failed")).is_empty(), "{stderr}");
}

#[test]
fn sendmail_queues_the_message_when_the_password_command_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (output, queue) = sendmail_with_password_cmd(dir.path(), HANGING);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_queued_not_failed(&output, &queue, "did not finish within 1 s");
}

#[test]
fn sendmail_queues_the_message_when_the_password_output_is_unusable() {
    let dir = tempfile::tempdir().unwrap();
    let (output, queue) = sendmail_with_password_cmd(dir.path(), r"printf 'sec\\000ret'");
    assert_queued_not_failed(&output, &queue, "NUL byte");
}

#[test]
fn the_flush_runs_the_mended_password_command_again() {
    let dir = tempfile::tempdir().unwrap();
    let (output, queue) = sendmail_with_password_cmd(dir.path(), HANGING);
    assert_queued_not_failed(&output, &queue, "did not finish within 1 s");
    // The keyring is back: the same config file now has a working command
    // and a server that takes the login.
    let server = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        auth: true,
        ..ServerOptions::default()
    });
    write_config(
        dir.path(),
        &format!(
            "server = \"{}\"\nca_file = \"{}\"\nfrom = \"cron@corp.example\"\n\
             user = \"{USER}\"\npassword_cmd = \"echo {PASSWORD}\"\ntimeout = 5",
            server.addr(),
            server.ca_file().display()
        ),
    );
    let output = postie()
        .env("POSTIE_QUEUE_DIR", &queue)
        .args(["queue", "flush", "--now"])
        .timeout(HANG)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        server.wait_for_messages(1)[0].auth_user.as_deref(),
        Some(USER)
    );
    assert!(json_files(&queue).is_empty());
}

/// A hostile server that echoes the AUTH response, and the password it
/// decoded from it, in its replies: neither may reach the error line, the
/// -v transcript, the JSON result or the queue entry.
#[test]
fn credentials_a_server_echoes_back_are_hidden_everywhere() {
    use base64::Engine;
    let response =
        base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASSWORD}"));
    let echo = format!("{response} {PASSWORD}");
    for (code, queued) in [("535 5.7.8", false), ("454 4.7.0", true)] {
        let server = ScriptedServer::start(
            b"220 evil.test ESMTP\r\n",
            vec![
                b"250-evil.test\r\n250 AUTH PLAIN\r\n".to_vec(),
                format!("{code} no: {echo}\r\n").into_bytes(),
                b"221 bye\r\n".to_vec(),
            ],
        );
        let queue = tempfile::tempdir().unwrap();
        let mut cmd = postie();
        cmd.args(["--server", &server.addr(), "--tls", "none", "--user", USER])
            .args(["--auth", "plain"])
            .args([
                "-f",
                "a@example.com",
                "--body",
                "x",
                "-v",
                "--json",
                "--queue",
            ])
            .arg("--queue-dir")
            .arg(queue.path())
            .arg("b@example.com")
            .env("POSTIE_PASSWORD", PASSWORD);
        let output = cmd.output().unwrap();
        let stderr = stderr(&output);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let mut kept = String::new();
        for entry in fs::read_dir(queue.path()).unwrap().flatten() {
            if entry.path().extension().is_some_and(|ext| ext == "json") {
                kept.push_str(&fs::read_to_string(entry.path()).unwrap());
            }
        }
        assert_eq!(!kept.is_empty(), queued, "{code}: {stderr}");
        for (what, text) in [
            ("stderr", &stderr),
            ("--json", &stdout),
            ("the queue", &kept),
        ] {
            assert!(
                !text.contains(&response),
                "{code}: {what} has the AUTH response:\n{text}"
            );
            assert!(
                !text.contains(PASSWORD),
                "{code}: {what} has the password:\n{text}"
            );
        }
        assert!(
            stderr.contains("no: [credentials hidden]"),
            "{code}: {stderr}"
        );
    }
}

/// The same for the mechanisms postie computes itself: a server that
/// echoes the SCRAM client-final message (and its proof) or the CRAM-MD5
/// answer (and its digest) in its 535 shows none of them, nor the
/// password, in the error line, the -v transcript or the JSON result.
#[test]
fn computed_answers_a_server_echoes_back_are_hidden_too() {
    use crate::common::{SaslServer, SaslTwist};
    use base64::Engine;
    let all = ["CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"];
    for auth in ["scram-sha-256", "scram-sha-1", "cram-md5"] {
        let server = SaslServer::start(&all, SaslTwist::Echo);
        let output = postie()
            .args(["--server", &server.addr(), "--tls", "none", "--user", USER])
            .args(["--auth", auth, "-v", "--json", "--no-queue"])
            .args(SMALL_MESSAGE)
            .env("POSTIE_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        let stderr = stderr(&output);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert_eq!(output.status.code(), Some(77), "{auth}: {stderr}");
        let lines = server.lines();
        let answer = lines
            .iter()
            .skip_while(|l| !l.starts_with("AUTH"))
            .nth(1)
            .expect("an answer to the challenge")
            .clone();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&answer)
            .unwrap();
        let decoded = String::from_utf8(decoded).unwrap();
        let (_, secret) = decoded
            .rsplit_once(",p=")
            .or_else(|| decoded.rsplit_once(' '))
            .unwrap();
        for (what, text) in [("stderr", &stderr), ("--json", &stdout)] {
            for hidden in [answer.as_str(), secret, PASSWORD] {
                assert!(
                    !text.contains(hidden),
                    "{auth}: {what} has {hidden:?}:\n{text}"
                );
            }
        }
        assert!(
            stderr.contains("no: [credentials hidden]"),
            "{auth}: {stderr}"
        );
    }
}
