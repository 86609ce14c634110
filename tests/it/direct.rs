//! Direct delivery to MX hosts, end to end through the binary: a DNS server
//! and SMTP servers on loopback, postie told to use that resolver and port.

use crate::common;

use crate::common::dns::DnsServer;
use crate::common::{postie, ScriptedServer, ServerOptions, TestServer};

fn zone() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("good.test", "MX", "10 mx1.good.test."),
        ("good.test", "MX", "20 mx2.good.test."),
        ("mx1.good.test", "A", "127.0.0.1"),
        ("mx2.good.test", "A", "127.0.0.1"),
        ("other.test", "MX", "5 mx.other.test."),
        ("mx.other.test", "A", "127.0.0.1"),
        ("nomx.test", "A", "127.0.0.1"),
        ("nullmx.test", "MX", "0 ."),
    ]
}

fn mx_postie(dns: &DnsServer, port: u16) -> assert_cmd::Command {
    let mut cmd = postie();
    cmd.args([
        "--mx",
        "--resolver",
        &dns.addr.to_string(),
        "--port",
        &port.to_string(),
    ])
    .args(["--timeout", "5", "-f", "sender@example.com"]);
    cmd
}

#[test]
fn recipients_are_grouped_per_domain_one_session_each() {
    let dns = DnsServer::start(&zone());
    let server = TestServer::start(ServerOptions::default());
    mx_postie(&dns, server.port)
        .args([
            "a@good.test",
            "x@other.test",
            "b@GOOD.test",
            "--body",
            "hi",
            "-v",
        ])
        .assert()
        .success();
    let got = server.wait_for_messages(2);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].rcpt_to, ["a@good.test", "b@GOOD.test"]);
    assert_eq!(got[1].rcpt_to, ["x@other.test"]);
}

#[test]
fn mx_wins_over_a_server_in_the_environment_and_says_so() {
    let dns = DnsServer::start(&zone());
    let server = TestServer::start(ServerOptions::default());
    let unused = format!("127.0.0.1:{}", common::closed_port());
    let output = mx_postie(&dns, server.port)
        .env("POSTIE_SERVER", &unused)
        .args(["a@good.test", "--body", "hi"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!("postie: warning: --mx: not using the server {unused}")
    );
    assert_eq!(server.wait_for_messages(1)[0].rcpt_to, ["a@good.test"]);
}

#[test]
fn without_mx_the_domain_itself_is_used() {
    let dns = DnsServer::start(&zone());
    let server = TestServer::start(ServerOptions::default());
    mx_postie(&dns, server.port)
        .args(["a@nomx.test", "--body", "hi"])
        .assert()
        .success();
    assert_eq!(server.wait_for_messages(1)[0].rcpt_to, ["a@nomx.test"]);
}

#[test]
fn null_mx_is_67_and_unknown_domain_68() {
    let dns = DnsServer::start(&zone());
    let server = TestServer::start(ServerOptions::default());
    // A null MX and a missing domain are answered from DNS alone.
    server.expect_unused();
    let output = mx_postie(&dns, server.port)
        .args(["a@nullmx.test", "--body", "hi"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(67));
    assert!(String::from_utf8_lossy(&output.stderr).contains("null MX"));
    let output = mx_postie(&dns, server.port)
        .args(["a@missing.test", "--body", "hi"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(68), "{stderr}");
    assert!(stderr.contains("missing.test does not exist"), "{stderr}");
}

#[test]
fn a_failing_exchanger_hands_over_to_the_next() {
    // Both exchangers point at one scripted server that answers the first
    // session with 421 and then stops listening: postie must try mx2 after
    // mx1's temporary failure, and end with 75 when mx2 fails too.
    let dns = DnsServer::start(&zone());
    let busy = ScriptedServer::start(b"421 4.3.2 busy\r\n", vec![]);
    let output = mx_postie(&dns, busy.port)
        .args(["a@good.test", "--body", "hi", "-v"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Both exchangers were tried before giving up with a temporary failure.
    assert_eq!(output.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("Trying mx1.good.test:"), "{stderr}");
    assert!(stderr.contains("Trying mx2.good.test:"), "{stderr}");
}

#[test]
fn one_domain_failing_does_not_stop_the_others() {
    let dns = DnsServer::start(&zone());
    let server = TestServer::start(ServerOptions::default());
    let output = mx_postie(&dns, server.port)
        .args(["a@nullmx.test", "b@good.test", "--body", "hi"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(67), "{stderr}");
    assert!(
        stderr.contains("nullmx.test publishes a null MX"),
        "{stderr}"
    );
    assert!(
        stderr.contains("not sent to <a@nullmx.test>: nullmx.test: "),
        "{stderr}"
    );
    assert!(
        stderr.contains("sent to 1 of 2 recipients; 1 refused (first: <a@nullmx.test>)"),
        "{stderr}"
    );
    assert_eq!(server.wait_for_messages(1)[0].rcpt_to, ["b@good.test"]);
}

#[test]
fn only_the_failed_domain_is_queued() {
    // other.test's recipient gets a 451 while good.test takes the message:
    // queueing the whole message would deliver it twice to good.test.
    let dns = DnsServer::start(&zone());
    let server = TestServer::start(ServerOptions {
        tempfail_rcpt: vec!["x@other.test".into()],
        ..ServerOptions::default()
    });
    let queue = tempfile::tempdir().unwrap();
    let output = mx_postie(&dns, server.port)
        .env("POSTIE_QUEUE_DIR", queue.path())
        .args(["--queue", "a@good.test", "x@other.test", "--body", "hi"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("postie: queued as "), "{stderr}");
    assert_eq!(server.wait_for_messages(1)[0].rcpt_to, ["a@good.test"]);
    let entries = queue_entries(queue.path());
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].1["recipients"],
        serde_json::json!(["x@other.test"])
    );
}

/// The queue's entries: each metadata file and its JSON.
fn queue_entries(dir: &std::path::Path) -> Vec<(std::path::PathBuf, serde_json::Value)> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let json = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (p, json)
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

#[test]
fn a_flush_keeps_only_the_domains_still_owed_the_message() {
    let dns = DnsServer::start(&zone());
    let down = TestServer::start(ServerOptions {
        tempfail_rcpt: vec!["a@good.test".into(), "x@other.test".into()],
        ..ServerOptions::default()
    });
    let queue = tempfile::tempdir().unwrap();
    mx_postie(&dns, down.port)
        .env("POSTIE_QUEUE_DIR", queue.path())
        .args(["--queue", "a@good.test", "x@other.test", "--body", "hi"])
        .assert()
        .success();
    let (path, mut entry) = queue_entries(queue.path()).remove(0);
    assert_eq!(
        entry["recipients"],
        serde_json::json!(["a@good.test", "x@other.test"])
    );
    // good.test takes it at the flush, other.test still says 451. The
    // stored settings name the port, so the entry is pointed at the server.
    let back = TestServer::start(ServerOptions {
        tempfail_rcpt: vec!["x@other.test".into()],
        ..ServerOptions::default()
    });
    assert_eq!(entry["settings"]["port"], down.port);
    entry["settings"]["port"] = back.port.into();
    std::fs::write(&path, serde_json::to_vec(&entry).unwrap()).unwrap();
    let output = postie()
        .env("POSTIE_QUEUE_DIR", queue.path())
        .args(["queue", "flush", "--now"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("451"), "{stderr}");
    assert_eq!(back.wait_for_messages(1)[0].rcpt_to, ["a@good.test"]);
    let entries = queue_entries(queue.path());
    assert_eq!(entries.len(), 1, "{stderr}");
    assert_eq!(
        entries[0].1["recipients"],
        serde_json::json!(["x@other.test"])
    );
}

#[test]
fn a_refused_domain_is_reported_and_only_the_owed_one_is_queued() {
    let dns = DnsServer::start(&zone());
    let server = TestServer::start(ServerOptions {
        tempfail_rcpt: vec!["x@other.test".into()],
        ..ServerOptions::default()
    });
    let queue = tempfile::tempdir().unwrap();
    let output = mx_postie(&dns, server.port)
        .env("POSTIE_QUEUE_DIR", queue.path())
        .args(["--queue", "a@nullmx.test", "x@other.test", "--body", "hi"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The refused domain decides the exit code; the greylisted one alone
    // is queued, so a flush never knocks on the null MX again.
    assert_eq!(output.status.code(), Some(67), "{stderr}");
    assert!(stderr.contains("null MX"), "{stderr}");
    assert!(
        stderr.contains("postie: queued as ") && stderr.contains(" for <x@other.test>: "),
        "{stderr}"
    );
    let entries = queue_entries(queue.path());
    assert_eq!(entries.len(), 1, "{stderr}");
    assert_eq!(
        entries[0].1["recipients"],
        serde_json::json!(["x@other.test"])
    );
}
