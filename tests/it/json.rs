//! `--json` on a send: the document a script reads, checked against what
//! the servers and the queue really got; and the dry run's line saying
//! where a message would go.

use std::fs;

use serde_json::Value;

use crate::common::dns::DnsServer;
use crate::common::{parse, postie, schema, QueueSetup, ServerOptions, TestServer, Tls};

/// stdout parsed as JSON, with the exit code and stderr.
fn run_json(cmd: &mut assert_cmd::Command) -> (Option<i32>, Value, String) {
    let output = cmd.arg("--json").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "stdout is no JSON ({err}): {}\nstderr: {stderr}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    // Every document a test reads also follows the published schema.
    schema::assert_valid(&schema::schema("result.schema.json"), &json);
    (output.status.code(), json, stderr)
}

/// The recipient entry for `address` in the first message.
fn recipient<'a>(json: &'a Value, address: &str) -> &'a Value {
    json["messages"][0]["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == address)
        .unwrap_or_else(|| panic!("no {address} in {json:#}"))
}

#[test]
fn delivered_with_the_message_id_the_server_got_and_the_tls_used() {
    let srv = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        ..ServerOptions::default()
    });
    let (code, json, stderr) = run_json(
        postie()
            .args(["--server", &format!("localhost:{}", srv.port)])
            .args(["--tls", "starttls", "--ca-file"])
            .arg(srv.ca_file())
            .args(["-f", "a@example.com", "b@example.com", "--body", "x"]),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(json["version"], 1);
    assert_eq!(json["exit"], 0);
    assert!(json["error"].is_null());
    let received = srv.wait_for_messages(1).remove(0);
    let sent_id = parse(&received.data).message_id().unwrap().to_string();
    let message = &json["messages"][0];
    assert_eq!(message["message_id"], format!("<{sent_id}>"));
    assert_eq!(message["sender"], "a@example.com");
    assert_eq!(message["sessions"][0]["tls"], "starttls");
    let server = message["sessions"][0]["server"].as_str().unwrap();
    assert!(
        server.starts_with(&format!("localhost:{}", srv.port)),
        "{server}"
    );
    let b = recipient(&json, "b@example.com");
    assert_eq!(b["outcome"], "delivered");
    assert_eq!(b["server"], server);
    assert!(b["reply"].as_str().unwrap().starts_with("250"), "{b}");
    assert!(b["queue_id"].is_null() && b["error"].is_null(), "{b}");
}

#[test]
fn partial_says_which_recipient_was_refused_and_keeps_the_exit_code() {
    let srv = TestServer::start(ServerOptions {
        refuse_rcpt: vec!["nobody@example.com".into()],
        ..ServerOptions::default()
    });
    let args = [
        "--server",
        &srv.addr(),
        "-f",
        "a@example.com",
        "--partial",
        "ok@example.com",
        "nobody@example.com",
        "--body",
        "x",
    ];
    let (code, json, stderr) = run_json(postie().args(args));
    assert_eq!(code, Some(67), "{stderr}");
    assert_eq!(json["exit"], 67);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .starts_with("sent to 1 of 2 recipients; 1 refused"),
        "{json:#}"
    );
    assert_eq!(recipient(&json, "ok@example.com")["outcome"], "delivered");
    let nobody = recipient(&json, "nobody@example.com");
    assert_eq!(nobody["outcome"], "refused");
    assert!(
        nobody["reply"].as_str().unwrap().starts_with("550 5.1.1"),
        "{nobody}"
    );
    // Given by its address, the server is named once, not as
    // "127.0.0.1:N (127.0.0.1:N)".
    assert_eq!(nobody["server"], srv.addr(), "{nobody}");
    assert_eq!(json["messages"][0]["sessions"][0]["server"], srv.addr());
    assert_eq!(json["messages"][0]["sessions"][0]["tls"], "none");
    // The same exit code without --json, and nothing on stdout.
    let plain = postie().args(args).output().unwrap();
    assert_eq!(plain.status.code(), Some(67));
    assert!(plain.stdout.is_empty());
}

#[test]
fn a_temporary_failure_with_the_queue_names_the_queue_entry() {
    let srv = TestServer::start(ServerOptions {
        tempfail_rcpt: vec!["later@example.com".into()],
        ..ServerOptions::default()
    });
    let setup = QueueSetup::new(&srv.addr(), "");
    let (code, json, stderr) =
        run_json(
            setup
                .cmd()
                .args(["--queue", "later@example.com", "--body", "x"]),
        );
    assert_eq!(code, Some(0), "{stderr}");
    let later = recipient(&json, "later@example.com");
    assert_eq!(later["outcome"], "queued", "{json:#}");
    assert!(later["error"].as_str().unwrap().contains("451"), "{later}");
    let entries = setup.entries();
    assert_eq!(entries.len(), 1, "{stderr}");
    let id = entries[0].file_stem().unwrap().to_str().unwrap();
    assert_eq!(later["queue_id"], id);
    // The queued message is the one whose Message-ID was reported.
    let queued = fs::read_to_string(entries[0].with_extension("eml")).unwrap();
    let message_id = json["messages"][0]["message_id"].as_str().unwrap();
    assert!(
        queued.contains(&format!("Message-ID: {message_id}\r\n")),
        "{message_id}"
    );
}

#[test]
fn a_temporary_failure_without_the_queue_is_owed_and_exits_75() {
    let srv = TestServer::start(ServerOptions {
        tempfail_rcpt: vec!["later@example.com".into()],
        ..ServerOptions::default()
    });
    let (code, json, stderr) = run_json(postie().args([
        "--server",
        &srv.addr(),
        "-f",
        "a@example.com",
        "later@example.com",
        "--body",
        "x",
    ]));
    assert_eq!(code, Some(75), "{stderr}");
    assert_eq!(json["exit"], 75);
    let later = recipient(&json, "later@example.com");
    assert_eq!(later["outcome"], "owed");
    assert!(later["queue_id"].is_null());
}

#[test]
fn a_server_that_is_not_there_still_gives_a_document() {
    let port = crate::common::closed_port();
    let (code, json, stderr) = run_json(postie().args([
        "--server",
        &format!("127.0.0.1:{port}"),
        "--timeout",
        "5",
        "-f",
        "a@example.com",
        "b@example.com",
        "--body",
        "x",
    ]));
    assert_eq!(code, Some(75), "{stderr}");
    let b = recipient(&json, "b@example.com");
    assert_eq!(b["outcome"], "owed");
    assert!(b["server"].is_null() && b["reply"].is_null(), "{b}");
    assert_eq!(json["messages"][0]["sessions"], serde_json::json!([]));
}

#[test]
fn each_message_of_a_run_gets_its_own_entry() {
    let srv = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        ..ServerOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for n in 1..=2 {
        let path = dir.path().join(format!("m{n}.eml"));
        fs::write(
            &path,
            format!(
                "From: a@example.com\nTo: b@example.com\nSubject: {n}\nMessage-ID: <m{n}@example.com>\n\nbody {n}\n"
            ),
        )
        .unwrap();
        paths.push(path);
    }
    let (code, json, stderr) = run_json(
        postie()
            .args(["--server", &format!("localhost:{}", srv.port), "-t"])
            .arg("--ca-file")
            .arg(srv.ca_file())
            .arg("--message")
            .arg(&paths[0])
            .arg("--message")
            .arg(&paths[1]),
    );
    assert_eq!(code, Some(0), "{stderr}");
    let messages = json["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{json:#}");
    for (n, message) in messages.iter().enumerate() {
        assert_eq!(message["message_id"], format!("<m{}@example.com>", n + 1));
        assert_eq!(message["recipients"][0]["outcome"], "delivered");
        // The second went over the first one's session, and its TLS.
        assert_eq!(message["sessions"][0]["tls"], "starttls", "{json:#}");
    }
    assert_eq!(srv.wait_for_messages(2).len(), 2);
}

fn zone() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("good.test", "MX", "10 mx.good.test."),
        ("mx.good.test", "A", "127.0.0.1"),
        ("other.test", "MX", "5 mx.other.test."),
        ("mx.other.test", "A", "127.0.0.1"),
        ("nullmx.test", "MX", "0 ."),
    ]
}

#[test]
fn mx_delivery_has_a_session_per_domain_and_a_refused_domain() {
    let dns = DnsServer::start(&zone());
    let srv = TestServer::start(ServerOptions::default());
    let (code, json, stderr) = run_json(
        postie()
            .args(["--mx", "--resolver", &dns.addr.to_string()])
            .args(["--port", &srv.port.to_string(), "--timeout", "5"])
            .args(["-f", "a@example.com", "x@good.test", "y@other.test"])
            .args(["z@nullmx.test", "--body", "hi"]),
    );
    assert_eq!(code, Some(67), "{stderr}");
    let sessions = json["messages"][0]["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{json:#}");
    let x = recipient(&json, "x@good.test");
    let y = recipient(&json, "y@other.test");
    assert_eq!(x["outcome"], "delivered");
    assert_eq!(y["outcome"], "delivered");
    assert!(
        x["server"].as_str().unwrap().starts_with("mx.good.test:"),
        "{x}"
    );
    assert!(
        y["server"].as_str().unwrap().starts_with("mx.other.test:"),
        "{y}"
    );
    let z = recipient(&json, "z@nullmx.test");
    assert_eq!(z["outcome"], "refused");
    assert!(z["server"].is_null(), "{z}");
    assert_eq!(srv.wait_for_messages(2).len(), 2);
}

#[test]
fn json_with_dry_run_is_a_usage_error_in_one_line() {
    let output = postie()
        .args([
            "--dry-run",
            "--json",
            "-f",
            "a@example.com",
            "b@example.com",
        ])
        .args(["--body", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--json cannot be used with --dry-run"),
        "{stderr}"
    );
}

/// The dry run's stderr.
fn dry_run(cmd: &mut assert_cmd::Command) -> String {
    let output = cmd
        .args([
            "--dry-run",
            "-f",
            "a@example.com",
            "b@example.com",
            "--body",
            "x",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    stderr
}

#[test]
fn dry_run_names_the_server_port_and_tls() {
    let stderr = dry_run(postie().args(["--server", "smtp.example.com:587", "--tls", "starttls"]));
    assert!(
        stderr.contains(
            "postie: would connect to smtp.example.com:587 with STARTTLS (required); no login\n"
        ),
        "{stderr}"
    );
    // Before the envelope it goes with.
    assert!(
        stderr.find("would connect") < stderr.find("MAIL FROM:"),
        "{stderr}"
    );
}

#[test]
fn dry_run_names_the_account_and_its_user_and_fetches_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let ran = dir.path().join("ran");
    fs::write(
        &config,
        format!(
            "default = \"work\"\n[accounts.work]\nserver = \"smtps://mail.example.com\"\nuser = \"alice\"\npassword_cmd = \"touch {}\"\n",
            ran.display()
        ),
    )
    .unwrap();
    let stderr = dry_run(postie().env("POSTIE_CONFIG", &config));
    assert!(
        stderr.contains(
            "postie: would connect to mail.example.com:465 with TLS from the first byte; account work, user alice\n"
        ),
        "{stderr}"
    );
    assert!(!ran.exists(), "the password command ran");
}

#[test]
fn dry_run_names_direct_delivery_to_the_mx() {
    let stderr = dry_run(postie().args(["--mx", "c@Other.example"]));
    assert!(
        stderr.contains(
            "postie: would deliver directly to the MX of other.example, example.com, port 25, with STARTTLS if offered\n"
        ),
        "{stderr}"
    );
}
