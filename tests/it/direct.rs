//! Direct delivery to MX hosts, end to end through the binary: a DNS server
//! and SMTP servers on loopback, postie told to use that resolver and port.

use crate::common;

use std::time::Duration;

use crate::common::dns::DnsServer;
use crate::common::{postie, GateServer, ScriptedServer, ServerOptions, TestServer};

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
    // The two domains' sessions run at once: either may end first.
    let mut sessions: Vec<Vec<String>> = got.iter().map(|m| m.rcpt_to.clone()).collect();
    sessions.sort();
    assert_eq!(
        sessions,
        [
            vec!["a@good.test".to_string(), "b@GOOD.test".to_string()],
            vec!["x@other.test".to_string()]
        ]
    );
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

/// Five domains, each its own name as exchanger (no MX), all on loopback.
const FIVE: [&str; 5] = ["d1.test", "d2.test", "d3.test", "d4.test", "d5.test"];

fn five_domains() -> DnsServer {
    let zone: Vec<_> = FIVE.iter().map(|d| (*d, "A", "127.0.0.1")).collect();
    DnsServer::start(&zone)
}

/// A config file whose `[defaults]` hold `lines`; kept with its directory.
fn config(lines: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, format!("[defaults]\n{lines}\n")).unwrap();
    (dir, path)
}

/// Sends one message to a recipient at each of `FIVE` through `gate`,
/// with a generous timeout: the gate may hold a session for seconds.
fn send_to_five(dns: &DnsServer, gate: &GateServer, config: Option<&std::path::Path>) {
    let mut cmd = mx_postie(dns, gate.port);
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    let recipients = FIVE.iter().map(|d| format!("rcpt@{d}"));
    let output = cmd
        .args(["--timeout", "30"])
        .args(recipients)
        .args(["--body", "hi"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let expected: Vec<Vec<String>> = FIVE.iter().map(|d| vec![format!("rcpt@{d}")]).collect();
    assert_eq!(gate.messages(), expected, "{stderr}");
}

/// The gate holds each session before its greeting until this many are
/// open at once; a client that never opens so many waits this long once.
const GATE_FALLBACK: Duration = Duration::from_secs(3);

#[test]
fn several_domains_are_delivered_to_at_once_by_default() {
    let dns = five_domains();
    // Held until all five are open together: one after another would
    // show a peak of 1 once the fallback lets the first through.
    let gate = GateServer::start(5, GATE_FALLBACK);
    send_to_five(&dns, &gate, None);
    let peak = gate.peak();
    assert!((2..=8).contains(&peak), "peak of {peak} sessions at once");
}

#[test]
fn mx_concurrency_2_reaches_two_sessions_at_once_and_never_more() {
    let dns = five_domains();
    let (_dir, path) = config("mx_concurrency = 2");
    // Held until three are open, which a limit of two never allows: every
    // session postie could open meanwhile would be counted.
    let gate = GateServer::start(3, GATE_FALLBACK);
    send_to_five(&dns, &gate, Some(&path));
    assert_eq!(gate.peak(), 2);
}

#[test]
fn mx_concurrency_1_is_one_domain_after_another() {
    let dns = five_domains();
    let (_dir, path) = config("mx_concurrency = 1");
    let gate = GateServer::start(2, GATE_FALLBACK);
    send_to_five(&dns, &gate, Some(&path));
    assert_eq!(gate.peak(), 1);
}

/// What a run left behind, with what differs from run to run (queue ids,
/// times, ports) taken out: exit code, stderr lines, the recipients of each
/// queue entry, the log lines.
#[derive(Debug, PartialEq)]
struct Outcome {
    code: Option<i32>,
    stderr: Vec<String>,
    queued: Vec<serde_json::Value>,
    log: Vec<String>,
}

fn outcome_with(dns: &DnsServer, server: &TestServer, concurrency: &str) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("queue");
    let log = dir.path().join("postie.log");
    let (_config_dir, path) = config(&format!("{concurrency}\nlogfile = \"{}\"", log.display()));
    let output = mx_postie(dns, server.port)
        .env("POSTIE_QUEUE_DIR", &queue)
        .arg("--config")
        .arg(&path)
        .args([
            "--queue",
            "a@refused.test",
            "b@later.test",
            "c@fine.test",
            "--body",
            "hi",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let queued = queue_entries(&queue)
        .into_iter()
        .map(|(_, entry)| entry["recipients"].clone())
        .collect();
    // Each queued message's id, as it appears on stderr and in the log.
    let ids: Vec<String> = queue_entries(&queue)
        .into_iter()
        .map(|(path, _)| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let same = |text: &str| {
        let text = ids
            .iter()
            .fold(text.to_string(), |t, id| t.replace(id, "ID"));
        let text = text.replace(&server.port.to_string(), "PORT");
        // The message's size varies with its Date and Message-ID.
        match text.split_once(" size=") {
            Some((before, after)) => {
                let rest = after.split_once(' ').map_or("", |(_, rest)| rest);
                format!("{before} size=N {rest}")
            }
            None => text,
        }
    };
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    Outcome {
        code: output.status.code(),
        stderr: stderr.lines().map(same).collect(),
        queued,
        // The time stamp leads each line.
        log: log
            .lines()
            .map(|line| same(line.split_once(" account=").map_or(line, |(_, rest)| rest)))
            .collect(),
    }
}

#[test]
fn results_at_once_are_those_of_one_domain_after_another() {
    let dns = DnsServer::start(&[
        ("refused.test", "A", "127.0.0.1"),
        ("later.test", "A", "127.0.0.1"),
        ("fine.test", "A", "127.0.0.1"),
    ]);
    let server = TestServer::start(ServerOptions {
        refuse_rcpt: vec!["a@refused.test".into()],
        tempfail_rcpt: vec!["b@later.test".into()],
        ..ServerOptions::default()
    });
    let sequential = outcome_with(&dns, &server, "mx_concurrency = 1");
    let concurrent = outcome_with(&dns, &server, "");
    assert_eq!(sequential.code, Some(67), "{sequential:#?}");
    assert_eq!(sequential.queued, [serde_json::json!(["b@later.test"])]);
    // Sent, refused, queued: one line each.
    assert_eq!(sequential.log.len(), 3, "{sequential:#?}");
    // One recipient has the message: the summary must not say otherwise.
    let summary = sequential.stderr.last().unwrap();
    assert!(
        summary.starts_with("postie: error: sent to 1 of 3 recipients")
            && !summary.contains("nothing was sent"),
        "{summary}"
    );
    assert_eq!(concurrent, sequential);
}

#[test]
fn with_v_each_domains_transcript_is_printed_whole_in_domain_order() {
    let domains = ["d1.test", "d2.test", "d3.test"];
    let dns = five_domains();
    // All three held until open together, so that their dialogues overlap.
    let gate = GateServer::start(3, GATE_FALLBACK);
    let output = mx_postie(&dns, gate.port)
        .args(["--timeout", "30", "-v", "--timing"])
        .args(domains.iter().map(|d| format!("rcpt@{d}")))
        .args(["--body", "hi"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(gate.peak(), 3, "the sessions must overlap: {stderr}");
    // Each domain's dialogue begins with its connection note and ends with
    // its --timing line; every line of it between the two, none of another
    // domain's.
    let lines: Vec<&str> = stderr.lines().collect();
    let mut rest = &lines[..];
    for domain in domains {
        let start = rest
            .iter()
            .position(|l| l.starts_with(&format!("=== Trying {domain}:")))
            .unwrap_or_else(|| panic!("no session with {domain} in order:\n{stderr}"));
        let end = start
            + rest[start..]
                .iter()
                .position(|l| l.starts_with("=== timing: "))
                .unwrap_or_else(|| panic!("{domain}'s session has no end:\n{stderr}"));
        let session = &rest[start..=end];
        for other in domains.iter().filter(|d| **d != domain) {
            assert!(
                !session.iter().any(|l| l.contains(*other)),
                "{other} within {domain}'s transcript:\n{stderr}"
            );
        }
        for (part, count) in [
            (format!("-> RCPT TO:<rcpt@{domain}>"), 1),
            ("<- 354 ".to_string(), 1),
            ("<- 221 ".to_string(), 1),
        ] {
            let found = session.iter().filter(|l| l.starts_with(&part)).count();
            assert_eq!(found, count, "{part} in {domain}'s transcript:\n{stderr}");
        }
        rest = &rest[end + 1..];
    }
}

#[test]
fn a_bad_mx_concurrency_is_a_config_error_on_one_line() {
    let dns = five_domains();
    for (value, says) in [
        (
            "0",
            "mx_concurrency = 0 in [defaults] must be from 1 to 100",
        ),
        ("\"x\"", "expected mx_concurrency as a number from 1 to 100"),
    ] {
        let (_dir, path) = config(&format!("mx_concurrency = {value}"));
        let output = mx_postie(&dns, common::closed_port())
            .arg("--config")
            .arg(&path)
            .args(["rcpt@d1.test", "--body", "hi"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(78), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains(says),
            "{value}: {stderr}"
        );
    }
}
