//! Every class of failure gives one stderr line naming the problem, and the
//! sysexits code scripts branch on. Servers that misbehave on purpose are
//! scripted; the rest is bad input and bad configuration.

use crate::common;

use std::fs;
#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;

use crate::common::{
    closed_port, postie, silent_server, ScriptedServer, ServerOptions, TestServer, SMALL_MESSAGE,
};

const EHLO_OK: &[u8] = b"250-test.example\r\n250 8BITMIME\r\n";

/// Runs postie against `server` with a minimal valid message plus `extra`
/// args; returns (exit code, stderr).
fn send_to(server: &str, extra: &[&str]) -> (i32, String) {
    let output = postie()
        .args(["--server", server, "--timeout", "5", "-f", "a@example.com"])
        .args(["b@example.com", "--body", "x"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr)
}

/// The common shape of every error line.
fn assert_one_error_line(stderr: &str, code: i32) {
    assert_eq!(stderr.lines().count(), 1, "one line expected:\n{stderr}");
    assert!(stderr.starts_with("postie: error: "), "{stderr}");
    assert!(
        stderr.trim_end().ends_with(&format!(" {code})")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn scripted(greeting: &[u8], replies: &[&[u8]]) -> ScriptedServer {
    ScriptedServer::start(greeting, replies.iter().map(|r| r.to_vec()).collect())
}

#[test]
fn connection_refused_is_75() {
    let (code, stderr) = send_to(&format!("127.0.0.1:{}", closed_port()), &[]);
    assert_eq!(code, 75);
    assert_one_error_line(&stderr, 75);
    assert!(stderr.contains("connection refused"), "{stderr}");
}

#[test]
fn silent_server_times_out_with_75() {
    let (_listener, port) = silent_server();
    let started = std::time::Instant::now();
    let (code, stderr) = send_to(&format!("127.0.0.1:{port}"), &["--timeout", "1"]);
    assert_eq!(code, 75);
    assert_one_error_line(&stderr, 75);
    assert!(
        stderr.contains("timed out after 1 s waiting for the greeting"),
        "{stderr}"
    );
    assert!(started.elapsed().as_secs() < 10);
}

#[test]
fn greeting_554_is_69_and_421_is_75() {
    let srv = scripted(b"554 5.3.2 no service here\r\n", &[]);
    let (code, stderr) = send_to(&srv.addr(), &[]);
    assert_eq!(code, 69, "{stderr}");
    assert_one_error_line(&stderr, 69);
    assert!(stderr.contains("554"), "{stderr}");
    assert!(stderr.contains("no service here"), "{stderr}");

    let srv = scripted(b"421 4.3.2 busy, try later\r\n", &[]);
    let (code, stderr) = send_to(&srv.addr(), &[]);
    assert_eq!(code, 75, "{stderr}");
    assert!(stderr.contains("421"), "{stderr}");
}

#[test]
fn garbage_instead_of_smtp_is_76() {
    let srv = scripted(b"HTTP/1.1 400 Bad Request\r\n", &[]);
    let (code, stderr) = send_to(&srv.addr(), &[]);
    assert_eq!(code, 76, "{stderr}");
    assert_one_error_line(&stderr, 76);
    assert!(stderr.contains("not SMTP"), "{stderr}");
}

#[test]
fn connection_lost_during_rcpt_is_74() {
    // Greeting, EHLO and MAIL are answered; the connection closes at RCPT.
    let srv = scripted(b"220 test ESMTP\r\n", &[EHLO_OK, b"250 ok\r\n"]);
    let (code, stderr) = send_to(&srv.addr(), &[]);
    assert_eq!(code, 74, "{stderr}");
    assert_one_error_line(&stderr, 74);
    assert!(stderr.contains("RCPT TO: connection"), "{stderr}");
    assert!(stderr.contains("lost"), "{stderr}");
}

#[test]
fn sender_refused_is_69() {
    let srv = scripted(
        b"220 test ESMTP\r\n",
        &[EHLO_OK, b"553 5.7.1 sender not allowed\r\n"],
    );
    let (code, stderr) = send_to(&srv.addr(), &[]);
    assert_eq!(code, 69, "{stderr}");
    assert!(stderr.contains("MAIL FROM: "), "{stderr}");
    assert!(stderr.contains("553 5.7.1 sender not allowed"), "{stderr}");
}

#[test]
fn data_refused_is_69() {
    let srv = scripted(
        b"220 test ESMTP\r\n",
        &[
            EHLO_OK,
            b"250 ok\r\n",
            b"250 ok\r\n",
            b"554 no DATA for you\r\n",
        ],
    );
    let (code, stderr) = send_to(&srv.addr(), &[]);
    assert_eq!(code, 69, "{stderr}");
    assert!(stderr.contains("DATA: "), "{stderr}");
    // RFC 3463's X.5.x is protocol status: the command itself was not
    // taken, which no retry and no other sender fixes.
    let srv = scripted(
        b"220 test ESMTP\r\n",
        &[
            EHLO_OK,
            b"250 ok\r\n",
            b"250 ok\r\n",
            b"554 5.5.0 no DATA for you\r\n",
        ],
    );
    let (code, stderr) = send_to(&srv.addr(), &[]);
    assert_eq!(code, 76, "{stderr}");
}

#[test]
fn rejection_after_the_final_dot_is_69_and_4xx_is_75() {
    // The scripted server reads the whole message after its 354, then
    // gives the final reply.
    for (reply, expected) in [
        (&b"554 5.6.0 content rejected\r\n"[..], 69),
        (&b"451 4.3.0 queue full\r\n"[..], 75),
    ] {
        let srv = scripted(
            b"220 test ESMTP\r\n",
            &[
                EHLO_OK,
                b"250 ok\r\n",
                b"250 ok\r\n",
                b"354 go ahead\r\n",
                reply,
            ],
        );
        let (code, stderr) = send_to(&srv.addr(), &[]);
        assert_eq!(code, expected, "{stderr}");
        assert!(stderr.contains("end of DATA: "), "{stderr}");
    }
}

#[test]
fn missing_attachment_is_66_naming_the_file() {
    let (code, stderr) = send_to("127.0.0.1:1", &["-a", "/nonexistent/report.csv"]);
    assert_eq!(code, 66);
    assert_one_error_line(&stderr, 66);
    assert!(stderr.contains("/nonexistent/report.csv"), "{stderr}");
    assert!(stderr.contains("No such file"), "{stderr}");
}

#[test]
fn header_injection_and_multiline_subject_are_65() {
    let (code, stderr) = send_to("127.0.0.1:1", &["-H", "X-A: 1\r\nBcc: victim@example.com"]);
    assert_eq!(code, 65);
    assert_one_error_line(&stderr, 65);
    assert!(stderr.contains("CR or LF"), "{stderr}");

    let (code, stderr) = send_to("127.0.0.1:1", &["-s", "hi\nBcc: victim@example.com"]);
    assert_eq!(code, 65, "{stderr}");
}

#[test]
fn own_headers_via_h_are_usage_errors() {
    let (code, stderr) = send_to("127.0.0.1:1", &["-H", "Bcc: victim@example.com"]);
    assert_eq!(code, 64);
    assert!(stderr.contains("--bcc"), "{stderr}");
}

#[test]
fn malformed_address_is_65() {
    let (code, stderr) = send_to("127.0.0.1:1", &["--cc", "not an address"]);
    assert_eq!(code, 65);
    assert_one_error_line(&stderr, 65);
    assert!(stderr.contains("malformed address"), "{stderr}");
}

#[test]
fn non_utf8_body_is_65() {
    let output = postie()
        .args(["--dry-run", "-f", "a@example.com", "b@example.com"])
        .write_stdin(vec![b'a', 0xff, b'b'])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not UTF-8"));
}

#[test]
fn usage_errors_are_64_on_one_line() {
    // A missing argument is named on the same line.
    let output = postie().args(["queue", "show"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("not provided: <ID>"), "{stderr}");
    assert!(stderr.contains("see 'postie queue --help'"), "{stderr}");
    for args in [
        vec!["--no-such-flag"],
        vec!["--tls", "sometimes", "b@example.com"],
        vec!["-f", "a@example.com", "--body", "x"],
        vec![
            "-f",
            "a@example.com",
            "--body",
            "x",
            "--server",
            "http://x",
            "b@example.com",
        ],
        vec![
            "--quit-after",
            "rcpt",
            "--server",
            "127.0.0.1:1",
            "-f",
            "a@example.com",
        ],
        vec!["--mx", "-f", "a@example.com", "--body", "x"],
        vec![
            "--port",
            "0",
            "--server",
            "127.0.0.1",
            "-f",
            "a@example.com",
            "b@example.com",
        ],
        vec![
            "--timeout",
            "0",
            "--server",
            "127.0.0.1:1",
            "-f",
            "a@example.com",
            "b@example.com",
        ],
        vec!["-t", "a@example.com"],
        vec![
            "--tls-fingerprint",
            "abc",
            "--server",
            "127.0.0.1:1",
            "--quit-after",
            "ehlo",
        ],
    ] {
        let output = postie().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{args:?}: {stderr}");
        assert_one_error_line(&stderr, 64);
    }
}

#[test]
fn a_typo_is_one_error_line_and_the_tip_naming_the_flag() {
    for (args, help, tip) in [
        (
            &["--sever", "127.0.0.1", "b@example.com"][..],
            "postie --help",
            "postie: tip: a similar argument exists: '--server'",
        ),
        (
            &["queue", "flsh"][..],
            "postie queue --help",
            "postie: tip: a similar subcommand exists: 'flush'",
        ),
    ] {
        let output = postie().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{stderr}");
        assert!(lines[0].starts_with("postie: error: "), "{stderr}");
        assert!(
            lines[0].ends_with(&format!("; see '{help}' (EX_USAGE 64)")),
            "{stderr}"
        );
        assert_eq!(lines[1], tip);
    }
}

#[test]
fn standard_input_as_attachment_needs_the_body_elsewhere() {
    for extra in [
        &[][..],
        &["--body-file", "-"],
        &["--body", "x", "-a", "-;name=b.txt"],
    ] {
        let output = postie()
            .args(["--dry-run", "-f", "a@example.com", "b@example.com"])
            .args(["-a", "-;name=a.txt"])
            .args(extra)
            .write_stdin("data")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{extra:?}: {stderr}");
        assert_one_error_line(&stderr, 64);
    }
    let output = postie()
        .args(["--dry-run", "-f", "a@example.com", "b@example.com"])
        .args(["--body", "x", "-a", "-"])
        .write_stdin("data")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("filename=\"stdin\""), "{stdout}");
}

#[test]
fn a_command_word_first_is_that_command_and_a_recipient_elsewhere() {
    {
        let word = "dkim";
        let output = postie()
            .args([word, "--body", "x", "-f", "a@example.com"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{word}: {stderr}");
        assert_one_error_line(&stderr, 64);
        assert!(stderr.contains("postie dkim --help"), "{stderr}");
    }
    // Anywhere else, and with --to, it is a recipient as before.
    let output = postie()
        .args(["--dry-run", "-f", "a@example.com", "--body", "x"])
        .args(["--to", "config@example.com", "dkim@example.com"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("config@example.com"), "{stdout}");
    assert!(stdout.contains("dkim@example.com"), "{stdout}");
}

fn write_config(text: &str, mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    fs::write(&path, text).unwrap();
    #[cfg(unix)]
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    (dir, path)
}

#[cfg(unix)]
#[test]
fn readable_config_with_password_is_refused_with_chmod_hint() {
    let (_dir, path) = write_config(
        "[accounts.a]\nserver = \"127.0.0.1:1\"\nuser = \"u\"\npassword = \"hunter2\"\n",
        0o644,
    );
    let output = postie()
        .arg("--config")
        .arg(&path)
        .args(SMALL_MESSAGE)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert_one_error_line(&stderr, 78);
    assert!(
        stderr.contains(&format!("chmod 600 {}", path.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"));
}

#[test]
fn config_errors_are_78() {
    let (_dir, path) = write_config("[accounts.a]\nsevrer = \"x\"\n", 0o600);
    let output = postie()
        .arg("--config")
        .arg(&path)
        .args(SMALL_MESSAGE)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("sevrer"), "{stderr}");

    let (_dir, path) = write_config("[accounts.a]\nserver = \"x\"\n", 0o600);
    let output = postie()
        .arg("--config")
        .arg(&path)
        .args([
            "--account",
            "b",
            "-f",
            "a@example.com",
            "b@example.com",
            "--body",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no account \"b\""));
}

#[test]
fn user_without_any_password_source_is_78() {
    let srv = TestServer::start(ServerOptions::default());
    // No password to log in with: refused before connecting.
    srv.expect_unused();
    let (code, stderr) = send_to(&srv.addr(), &["--user", "alice"]);
    assert_eq!(code, 78, "{stderr}");
    assert!(
        stderr.contains("no password for user \"alice\""),
        "{stderr}"
    );
}

#[test]
fn account_is_chosen_by_from_and_flags_override_it() {
    let srv = TestServer::start(ServerOptions::default());
    let (_dir, path) = write_config(
        &format!(
            "default = \"other\"\n\
             [defaults]\ntimeout = 5\n\
             [accounts.other]\nserver = \"127.0.0.1:{}\"\nfrom = \"other@example.com\"\n\
             [accounts.reports]\nserver = \"{}\"\nfrom = \"Reports <reports@example.com>\"\n",
            closed_port(),
            srv.addr()
        ),
        0o600,
    );
    // --from picks the account whose `from` matches, and thus its server.
    postie()
        .arg("--config")
        .arg(&path)
        .args(["-f", "reports@example.com", "b@example.com", "--body", "x"])
        .assert()
        .success();
    // The env var POSTIE_ACCOUNT selects too, and the account's From is used.
    postie()
        .env("POSTIE_ACCOUNT", "reports")
        .arg("--config")
        .arg(&path)
        .args(["b@example.com", "--body", "y"])
        .assert()
        .success();
    // A flag beats the account: --server overrides the default account's.
    postie()
        .env("POSTIE_CONFIG", &path)
        .args(["--server", &srv.addr(), "b@example.com", "--body", "z"])
        .assert()
        .success();
    let got = srv.wait_for_messages(3);
    assert_eq!(got.len(), 3);
    assert_eq!(got[1].mail_from, "reports@example.com");
    assert_eq!(got[2].mail_from, "other@example.com");
    let from = common::parse(&got[1].data);
    assert_eq!(
        from.from().unwrap().first().unwrap().name(),
        Some("Reports")
    );
}

/// A terminal on stdin and no body flag must not hang waiting for input.
#[test]
fn no_body_with_a_terminal_is_a_usage_error() {
    // script(1) gives postie a pseudo-terminal.
    if !common::require_tool("script", "bsdutils") {
        return;
    }
    // script(1) runs the command on a pseudo-terminal; -e returns its status.
    let command = format!(
        "{} --dry-run -f a@example.com b@example.com",
        env!("CARGO_BIN_EXE_postie")
    );
    // script(1) passes its environment on: the machine's config and home
    // must stay out of reach, as for every other test.
    let (mut script, _home) = common::hermetic_std("script");
    let output = script
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(64), "{text}");
    assert!(text.contains("standard input is a terminal"), "{text}");
}

#[test]
fn config_syntax_error_names_line_and_column() {
    let (_dir, path) = write_config("[accounts.a]\nserver = \"x\"\ntimeout = = 5\n", 0o600);
    let output = postie()
        .arg("--config")
        .arg(&path)
        .args(SMALL_MESSAGE)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert_one_error_line(&stderr, 78);
    assert!(stderr.contains("line 3, column 11"), "{stderr}");
}

#[test]
fn a_directory_as_attachment_is_66() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = send_to("127.0.0.1:1", &["-a", dir.path().to_str().unwrap()]);
    assert_eq!(code, 66, "{stderr}");
    assert_one_error_line(&stderr, 66);
    assert!(
        stderr.contains("is a directory") || stderr.contains("Is a directory"),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn an_unreadable_attachment_is_66() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    fs::write(&secret, "x").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads any file, so there (as in CI) take one no one can read:
    // /proc/self/mem gives an I/O error at offset 0.
    let (path, reason) = if fs::read(&secret).is_err() {
        (secret.to_str().unwrap().to_string(), "Permission denied")
    } else {
        ("/proc/self/mem".to_string(), "Input/output error")
    };
    let (code, stderr) = send_to("127.0.0.1:1", &["-a", &path]);
    assert_eq!(code, 66, "{stderr}");
    assert_one_error_line(&stderr, 66);
    assert!(stderr.contains(reason), "{stderr}");
}
