//! The durable queue: what a temporary failure leaves behind, and what
//! `postie queue flush` does with it. Each test uses its own queue
//! directory and config.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{closed_port, sendmail, ServerOptions, TestServer, TinyDisk};

type Setup = common::QueueSetup;

fn list_json(dir: &Path) -> Vec<PathBuf> {
    common::files_ending(dir, "json")
}

fn down() -> String {
    format!("127.0.0.1:{}", closed_port())
}

#[test]
fn temporary_failure_is_queued_and_flush_delivers_it_once() {
    let setup = Setup::new(&down(), "");
    let output = setup
        .cmd()
        .args([
            "--queue",
            "-s",
            "nightly report",
            "ops@example.com",
            "--body",
            "all fine",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.starts_with("postie: queued as "), "{stderr}");
    assert!(stderr.contains("connection refused"), "{stderr}");
    assert_eq!(setup.entries().len(), 1);

    let list = setup.cmd().args(["queue", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("cron@example.com -> ops@example.com"),
        "{text}"
    );
    // The failed try is the entry's first attempt, and it says why.
    assert!(
        text.contains("attempts 1  last error: ") && text.contains("connection refused"),
        "{text}"
    );

    // The server comes back (at another address): flush uses today's
    // config. Right after the failed try the entry is in its backoff.
    let server = TestServer::start(ServerOptions::default());
    setup.write_config(&server.addr(), "");
    setup
        .cmd()
        .args(["queue", "flush"])
        .assert()
        .success()
        .stderr("");
    assert!(server.received().is_empty(), "not due yet");
    setup
        .cmd()
        .args(["queue", "flush", "--now"])
        .assert()
        .success()
        .stderr("");
    let got = server.wait_for_messages(1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_to, ["ops@example.com"]);
    assert_eq!(
        common::parse(&got[0].data).subject(),
        Some("nightly report")
    );
    assert!(setup.entries().is_empty(), "removed after the final 250");

    setup
        .cmd()
        .args(["queue", "flush", "--now"])
        .assert()
        .success();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(server.received().len(), 1, "delivered exactly once");
}

#[test]
fn sendmail_mode_queues_by_default_and_no_queue_turns_it_off() {
    let setup = Setup::new(&down(), "");
    let (_link, mut cmd) = sendmail();
    let output = cmd
        .env("POSTIE_CONFIG", &setup.config)
        .env("POSTIE_QUEUE_DIR", &setup.queue)
        .args(["-i", "root@example.com"])
        .write_stdin("Subject: cron\n\nout\n")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(setup.entries().len(), 1);

    let output = setup
        .cmd()
        .args(["--sendmail", "--no-queue", "-i", "root@example.com"])
        .write_stdin("Subject: cron\n\nout\n")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(75),
        "--no-queue: the failure is the exit code"
    );
    let output = setup
        .cmd()
        .args(["ops@example.com", "--body", "x"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(75),
        "outside sendmail mode nothing is queued"
    );
    assert_eq!(setup.entries().len(), 1);
}

/// The links an MTA package installs: `mailq` (and `sendmail -bp`) is
/// `postie queue list`, `newaliases` (and `sendmail -bi`) has nothing to
/// rebuild (aliases are read at send time), `sendmail -q` is a flush.
#[test]
fn mailq_lists_the_queue_and_newaliases_does_nothing() {
    let setup = Setup::new(&down(), "");
    let (_link, mut cmd) = setup.sendmail();
    cmd.args(["-i", "root@example.com"])
        .write_stdin("Subject: cron\n\nout\n")
        .assert()
        .code(0);
    let listed = setup.cmd().args(["queue", "list"]).output().unwrap();
    assert_eq!(listed.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("root@example.com"));

    let (_link, mut mailq) = setup.linked("mailq");
    let output = mailq.output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(output.stdout, listed.stdout);

    let (_link, mut bp) = setup.sendmail();
    let output = bp.arg("-bp").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(output.stdout, listed.stdout, "sendmail -bp is mailq");

    for (_link, mut newaliases) in [setup.linked("newaliases"), {
        let (link, mut cmd) = setup.sendmail();
        cmd.arg("-bi");
        (link, cmd)
    }] {
        let output = newaliases.output().unwrap();
        assert_eq!(
            (
                output.status.code(),
                output.stdout.len(),
                output.stderr.len()
            ),
            (Some(0), 0, 0)
        );
    }
}

/// `sendmail -q` is `postie queue flush`: the queued message is sent.
#[test]
fn sendmail_q_sends_the_queue() {
    let setup = Setup::new(&down(), "");
    let (_link, mut cmd) = setup.sendmail();
    cmd.args(["-i", "root@example.com"])
        .write_stdin("Subject: cron\n\nout\n")
        .assert()
        .code(0);
    assert_eq!(setup.entries().len(), 1);
    let server = TestServer::start(ServerOptions::default());
    setup.write_config(&server.addr(), "");
    let (_link, mut q) = setup.sendmail();
    let output = q.args(["-q"]).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(server.wait_for_messages(1)[0].rcpt_to, ["root@example.com"]);
    assert!(setup.entries().is_empty());
}

#[test]
fn permanent_failures_are_never_queued() {
    let server = TestServer::start(ServerOptions {
        refuse_rcpt: vec!["gone@example.com".into()],
        ..ServerOptions::default()
    });
    let setup = Setup::new(&server.addr(), "queue = \"on-tempfail\"");
    let output = setup
        .cmd()
        .args(["gone@example.com", "--body", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(67));
    assert!(setup.entries().is_empty());
}

#[test]
fn queue_always_defers_sending_to_flush() {
    let server = TestServer::start(ServerOptions::default());
    let setup = Setup::new(&server.addr(), "queue = \"always\"");
    setup
        .cmd()
        .args(["ops@example.com", "--body", "later"])
        .assert()
        .success();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        server.received().is_empty(),
        "nothing sent before the flush"
    );
    setup.cmd().args(["queue", "flush"]).assert().success();
    assert_eq!(server.wait_for_messages(1).len(), 1);
}

#[test]
fn a_locked_entry_is_left_to_the_flush_that_holds_it() {
    // A first flush holds the entry while its server keeps it waiting
    // before the greeting; a second flush, run meanwhile against a server
    // that answers, must leave it alone. Both are real flushes: the lock
    // is whatever postie takes, not the test's idea of it.
    let server = TestServer::start(ServerOptions::default());
    let stalling = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stalling_addr = stalling.local_addr().unwrap().to_string();
    let setup = Setup::new(&stalling_addr, "queue = \"always\"");
    setup
        .cmd()
        .args(["ops@example.com", "--body", "x"])
        .assert()
        .success();
    assert_eq!(setup.entries().len(), 1);
    let (mut first, _home) = common::postie_std();
    let mut first = first
        .env("POSTIE_CONFIG", &setup.config)
        .env("POSTIE_QUEUE_DIR", &setup.queue)
        .args(["queue", "flush", "--now"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Connected: the first flush has locked the entry and read it.
    let (held, _) = stalling.accept().unwrap();
    setup.write_config(&server.addr(), "");
    setup
        .cmd()
        .args(["queue", "flush", "--now"])
        .assert()
        .success();
    assert!(
        server.received().is_empty(),
        "a locked entry must not be sent"
    );
    // The stalled session ends without a greeting: deferred, unlocked.
    drop(held);
    drop(stalling);
    assert_eq!(first.wait().unwrap().code(), Some(75));
    setup
        .cmd()
        .args(["queue", "flush", "--now"])
        .assert()
        .success();
    assert_eq!(server.wait_for_messages(1).len(), 1);
    assert!(setup.entries().is_empty());
}

#[test]
fn flush_defers_with_backoff_and_gives_up_after_max_age() {
    let setup = Setup::new(&down(), "queue = \"always\"");
    setup
        .cmd()
        .args(["ops@example.com", "--body", "x"])
        .assert()
        .success();
    let output = setup.cmd().args(["queue", "flush"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("deferred"), "{stderr}");
    // Within the backoff nothing is tried, and that is no news for cron:
    // no output, exit 0.
    let output = setup.cmd().args(["queue", "flush"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    let listed = setup
        .cmd()
        .args(["queue", "list", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(json[0]["attempts"], 1);
    assert!(json[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("connection refused"));

    // Ten days later the entry is given up and kept in failed/.
    let meta = setup.entries().remove(0);
    let mut entry: serde_json::Value = serde_json::from_slice(&fs::read(&meta).unwrap()).unwrap();
    entry["created"] = serde_json::json!(entry["created"].as_u64().unwrap() - 10 * 86_400);
    fs::write(&meta, serde_json::to_vec(&entry).unwrap()).unwrap();
    let output = setup.cmd().args(["queue", "flush"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("gave up on"), "{stderr}");
    assert!(setup.entries().is_empty());
    assert_eq!(list_json(&setup.queue.join("failed")).len(), 1);
}

#[test]
fn flush_stops_knocking_on_a_server_that_does_not_answer() {
    let setup = Setup::new(&down(), "queue = \"always\"");
    for i in 1..=3 {
        setup
            .cmd()
            .args([
                "ops@example.com",
                "-s",
                &format!("report {i}"),
                "--body",
                "x",
            ])
            .assert()
            .success();
    }
    let output = setup.cmd().args(["queue", "flush"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(75), "{stderr}");
    assert_eq!(stderr.matches("connection refused").count(), 1, "{stderr}");
    assert!(
        stderr.contains("2 more message(s) not tried: their server did not answer"),
        "{stderr}"
    );
    let listed = setup
        .cmd()
        .args(["queue", "list", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let mut attempts: Vec<u64> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["attempts"].as_u64().unwrap())
        .collect();
    attempts.sort();
    assert_eq!(attempts, [0, 0, 1], "only one was tried");

    // Back at another address: the next flush sends all three.
    let server = TestServer::start(ServerOptions::default());
    setup.write_config(&server.addr(), "queue = \"always\"");
    setup
        .cmd()
        .args(["queue", "flush", "--now"])
        .assert()
        .success();
    assert_eq!(server.wait_for_messages(3).len(), 3);
    assert!(setup.entries().is_empty());
}

#[test]
fn a_failing_password_command_at_flush_time_leaves_the_queue_alone() {
    let setup = Setup::new(&down(), "queue = \"always\"");
    setup
        .cmd()
        .args(["ops@example.com", "--body", "x"])
        .assert()
        .success();
    // Loads, but the password command fails: a locked keyring, say.
    setup.write_config(&down(), "user = \"cron\"\npassword_cmd = \"false\"");
    let output = setup.cmd().args(["queue", "flush"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // The message is not at fault: it stays queued, untried.
    assert_eq!(setup.entries().len(), 1);
    assert!(list_json(&setup.queue.join("failed")).is_empty());
}

#[test]
fn queue_always_logs_a_failure_to_queue_as_failed() {
    let setup = Setup::new(&down(), "");
    let log = setup.dir.path().join("postie.log");
    setup.write_config(
        &down(),
        &format!("queue = \"always\"\nlogfile = \"{}\"", log.display()),
    );
    // A file where the queue directory should be: nothing can be queued.
    fs::write(&setup.queue, "not a directory").unwrap();
    let output = setup
        .cmd()
        .args(["ops@example.com", "--body", "x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let logged = fs::read_to_string(&log).unwrap();
    assert!(logged.contains("outcome=failed"), "{logged}");
    assert!(!logged.contains("outcome=queued"), "{logged}");
}

#[test]
fn show_and_drop() {
    let setup = Setup::new(&down(), "queue = \"always\"");
    setup
        .cmd()
        .args(["-s", "to be dropped", "ops@example.com", "--body", "x"])
        .assert()
        .success();
    let id = setup.entries()[0]
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let shown = setup.cmd().args(["queue", "show", &id]).output().unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains("\"recipients\"") && text.contains("Subject: to be dropped"),
        "{text}"
    );
    setup.cmd().args(["queue", "drop", &id]).assert().success();
    assert!(setup.entries().is_empty());
    let output = setup.cmd().args(["queue", "drop", &id]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(66), "{stderr}");
    assert!(stderr.contains(&format!("no entry {id}")), "{stderr}");
    // An id is a file name in the queue, never a path out of it.
    let output = setup
        .cmd()
        .args(["queue", "show", "../../etc/passwd"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "postie: error: queue: \"../../etc/passwd\" is not a queue id (EX_USAGE 64)"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn a_server_list_falls_over_to_the_next_on_temporary_failure() {
    let good = TestServer::start(ServerOptions::default());
    let setup = Setup::new(&down(), "");
    fs::write(
        &setup.config,
        format!(
            "default = \"relay\"\n[accounts.relay]\nserver = [\"{}\", \"{}\"]\nfrom = \"cron@example.com\"\ntimeout = 5\n",
            down(),
            good.addr()
        ),
    )
    .unwrap();
    let output = setup
        .cmd()
        .args(["ops@example.com", "--body", "x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("connection refused; ")
            && stderr.contains(&format!("trying {} next", good.addr())),
        "{stderr}"
    );
    assert_eq!(good.wait_for_messages(1).len(), 1);

    // A permanent refusal at the first server is final: the second is not
    // asked (it would refuse too, or worse, accept what the first refused).
    let refusing = TestServer::start(ServerOptions {
        refuse_rcpt: vec!["gone@example.com".into()],
        ..ServerOptions::default()
    });
    let other = TestServer::start(ServerOptions::default());
    other.expect_unused();
    fs::write(
        &setup.config,
        format!(
            "default = \"relay\"\n[accounts.relay]\nserver = [\"{}\", \"{}\"]\nfrom = \"cron@example.com\"\n",
            refusing.addr(),
            other.addr()
        ),
    )
    .unwrap();
    let output = setup
        .cmd()
        .args(["gone@example.com", "--body", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(67));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(other.received().is_empty());
}

#[test]
fn every_attempt_is_logged_on_one_line() {
    let good = TestServer::start(ServerOptions {
        refuse_rcpt: vec!["gone@example.com".into()],
        ..ServerOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("postie.log");
    let setup = Setup::new(&good.addr(), &format!("logfile = \"{}\"", log.display()));
    setup
        .cmd()
        .args(["ops@example.com", "--body", "x"])
        .assert()
        .success();
    let output = setup
        .cmd()
        .args(["gone@example.com", "--body", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(67));
    setup.write_config(&down(), &format!("logfile = \"{}\"", log.display()));
    setup
        .cmd()
        .args(["--queue", "ops@example.com", "--body", "x"])
        .assert()
        .success();

    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        // A server given by its address is named once.
        lines[0].contains(&format!("account=relay server={} from=", good.addr())),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("from=<cron@example.com> to=<ops@example.com>"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("outcome=sent reply=\"250") && lines[0].ends_with(" exit=0"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("outcome=failed")
            && lines[1].contains("550")
            && lines[1].ends_with(" exit=67"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("outcome=queued") && lines[2].contains("connection refused"),
        "{}",
        lines[2]
    );
}

#[test]
fn a_full_disk_is_an_error_not_a_lost_message() {
    let Some(disk) = TinyDisk::mount(64) else {
        common::skip("mounting a tmpfs needs root");
        return;
    };
    let setup = Setup::new(&down(), "");
    let queue = disk.dir.path().join("queue");
    let big_body = "x".repeat(200 * 1024);
    let output = setup
        .cmd()
        .env("POSTIE_QUEUE_DIR", &queue)
        .args(["--queue", "ops@example.com"])
        .write_stdin(big_body)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(75),
        "the send error stands: {stderr}"
    );
    assert!(stderr.contains("could not be queued"), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(list_json(&queue).is_empty(), "no half entry");
    let leftovers: Vec<_> = fs::read_dir(queue.join("tmp")).unwrap().flatten().collect();
    assert!(
        leftovers.is_empty(),
        "temporary files are cleaned up: {leftovers:?}"
    );
}

fn failed_json(setup: &Setup) -> Vec<serde_json::Value> {
    list_json(&setup.queue.join("failed"))
        .iter()
        .map(|p| serde_json::from_slice(&fs::read(p).unwrap()).unwrap())
        .collect()
}

#[test]
fn partial_queues_the_greylisted_recipient_and_flush_delivers_to_it_alone() {
    let greylisting = TestServer::start(ServerOptions {
        tempfail_rcpt: vec!["later@example.com".into()],
        ..ServerOptions::default()
    });
    let setup = Setup::new(&greylisting.addr(), "partial = true");
    let output = setup
        .cmd()
        .args(["--queue", "now@example.com", "later@example.com"])
        .args(["--body", "report"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(" for <later@example.com>: RCPT TO: ") && stderr.contains("451"),
        "{stderr}"
    );
    // Exit 0: nothing to fix, and no exit code named.
    assert!(!stderr.contains("fix or remove"), "{stderr}");
    assert!(!stderr.contains("EX_TEMPFAIL"), "{stderr}");
    assert_eq!(
        greylisting.wait_for_messages(1)[0].rcpt_to,
        ["now@example.com"]
    );
    let entries = setup.entries();
    assert_eq!(entries.len(), 1, "{stderr}");
    let entry: serde_json::Value = serde_json::from_slice(&fs::read(&entries[0]).unwrap()).unwrap();
    assert_eq!(
        entry["recipients"],
        serde_json::json!(["later@example.com"])
    );

    let back = TestServer::start(ServerOptions::default());
    setup.write_config(&back.addr(), "partial = true");
    setup
        .cmd()
        .args(["queue", "flush", "--now"])
        .assert()
        .success();
    assert_eq!(back.wait_for_messages(1)[0].rcpt_to, ["later@example.com"]);
    assert!(setup.entries().is_empty());
    assert_eq!(greylisting.received().len(), 1, "never sent twice");
}

#[test]
fn partial_without_a_queue_exits_75_naming_who_is_still_owed() {
    let greylisting = TestServer::start(ServerOptions {
        tempfail_rcpt: vec!["later@example.com".into()],
        ..ServerOptions::default()
    });
    let setup = Setup::new(&greylisting.addr(), "partial = true");
    let output = setup
        .cmd()
        .args(["now@example.com", "later@example.com", "--body", "x"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(75), "{stderr}");
    assert!(
        stderr.contains("sent to 1 of 2 recipients; 1 to try again later; not sent to <later@example.com> for now"),
        "{stderr}"
    );
    assert!(setup.entries().is_empty());
}

#[test]
fn sendmail_mode_keeps_a_refused_message_in_failed_with_a_log_line() {
    let refusing = TestServer::start(ServerOptions {
        refuse_rcpt: vec!["gone@example.com".into()],
        ..ServerOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("postie.log");
    let setup = Setup::new(
        &refusing.addr(),
        &format!("logfile = \"{}\"", log.display()),
    );
    let (_link, mut cmd) = sendmail();
    let output = cmd
        .env("POSTIE_CONFIG", &setup.config)
        .env("POSTIE_QUEUE_DIR", &setup.queue)
        .args(["-i", "gone@example.com"])
        .write_stdin("Subject: disk report\n\n/ is 91% full\n")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(67), "{stderr}");
    assert!(stderr.contains("kept the message in "), "{stderr}");
    assert!(setup.entries().is_empty(), "a refusal is never retried");
    let failed = failed_json(&setup);
    assert_eq!(failed.len(), 1, "{stderr}");
    assert_eq!(
        failed[0]["recipients"],
        serde_json::json!(["gone@example.com"])
    );
    assert!(
        failed[0]["last_error"].as_str().unwrap().contains("550"),
        "{}",
        failed[0]
    );
    let id = failed[0]["id"].as_str().unwrap();
    let kept = fs::read(setup.queue.join("failed").join(format!("{id}.eml"))).unwrap();
    assert!(
        String::from_utf8_lossy(&kept).contains("/ is 91% full"),
        "the report itself is on disk"
    );
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("to=<gone@example.com>") && text.contains("outcome=failed"),
        "{text}"
    );
}

#[test]
fn a_flush_moves_refused_recipients_to_failed_and_keeps_the_owed_ones() {
    let setup = Setup::new(&down(), "partial = true");
    setup
        .cmd()
        .args(["--queue", "gone@example.com", "later@example.com"])
        .args(["--body", "x"])
        .assert()
        .success();
    assert_eq!(setup.entries().len(), 1);
    let server = TestServer::start(ServerOptions {
        refuse_rcpt: vec!["gone@example.com".into()],
        tempfail_rcpt: vec!["later@example.com".into()],
        ..ServerOptions::default()
    });
    setup.write_config(&server.addr(), "partial = true");
    let output = setup
        .cmd()
        .args(["queue", "flush", "--now"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(67), "{stderr}");
    let entries = setup.entries();
    assert_eq!(entries.len(), 1, "{stderr}");
    let entry: serde_json::Value = serde_json::from_slice(&fs::read(&entries[0]).unwrap()).unwrap();
    assert_eq!(
        entry["recipients"],
        serde_json::json!(["later@example.com"])
    );
    let failed = failed_json(&setup);
    assert_eq!(failed.len(), 1, "{stderr}");
    assert_eq!(
        failed[0]["recipients"],
        serde_json::json!(["gone@example.com"])
    );
    assert!(server.received().is_empty());
}

fn id_of(meta: &Path) -> String {
    meta.file_stem().unwrap().to_string_lossy().into_owned()
}

fn queue_always(setup: &Setup, subject: &str) -> PathBuf {
    let before = setup.entries();
    setup
        .cmd()
        .args(["ops@example.com", "-s", subject, "--body", "x"])
        .assert()
        .success();
    setup
        .entries()
        .into_iter()
        .find(|e| !before.contains(e))
        .unwrap()
}

#[test]
fn damaged_entries_move_to_failed_and_the_flush_goes_on() {
    let server = TestServer::start(ServerOptions::default());
    let setup = Setup::new(&server.addr(), "queue = \"always\"");
    let missing = queue_always(&setup, "missing");
    let short = queue_always(&setup, "short");
    let garbled = queue_always(&setup, "garbled");
    let _good = queue_always(&setup, "good");
    fs::remove_file(missing.with_extension("eml")).unwrap();
    fs::write(short.with_extension("eml"), "Subject: sh").unwrap();
    fs::write(&garbled, "{\"id\": ").unwrap();

    let output = setup
        .cmd()
        .args(["queue", "flush", "--now"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(65), "{stderr}");
    let got = server.wait_for_messages(1);
    assert_eq!(common::parse(&got[0].data).subject(), Some("good"));
    for (meta, why) in [
        (&missing, "cannot be read"),
        (&short, "shorter than the"),
        (&garbled, "does not parse"),
    ] {
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("failed {}", id_of(meta))))
            .unwrap_or_else(|| panic!("no line for {why}: {stderr}"));
        assert!(line.contains(why) && line.contains("kept in"), "{line}");
    }
    assert!(setup.entries().is_empty());
    assert_eq!(list_json(&setup.queue.join("failed")).len(), 3);

    // What failed/ holds is visible, with why.
    let listed = setup
        .cmd()
        .args(["queue", "list", "--failed"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.contains(&format!("{}  damaged: ", id_of(&garbled))),
        "{text}"
    );
    assert!(text.contains("shorter than the"), "{text}");
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(server.received().len(), 1);
}

#[test]
fn a_failed_entry_can_be_retried() {
    let refusing = TestServer::start(ServerOptions {
        refuse_rcpt: vec!["ops@example.com".into()],
        ..ServerOptions::default()
    });
    let setup = Setup::new(&refusing.addr(), "queue = \"always\"");
    let meta = queue_always(&setup, "again");
    let id = id_of(&meta);
    let output = setup.cmd().args(["queue", "flush"]).output().unwrap();
    assert_eq!(output.status.code(), Some(67));
    let listed = setup
        .cmd()
        .args(["queue", "list", "--failed", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(json[0]["id"], id.as_str());
    assert_eq!(json[0]["attempts"], 1);
    assert!(
        json[0]["last_error"].as_str().unwrap().contains("550"),
        "{json}"
    );

    // The admin fixes the cause, then puts the message back.
    let good = TestServer::start(ServerOptions::default());
    setup.write_config(&good.addr(), "queue = \"always\"");
    setup.cmd().args(["queue", "retry", &id]).assert().success();
    let listed = setup.cmd().args(["queue", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.starts_with(&id) && text.contains("attempts 0"),
        "{text}"
    );
    setup.cmd().args(["queue", "flush"]).assert().success();
    assert_eq!(good.wait_for_messages(1).len(), 1);
    assert!(list_json(&setup.queue.join("failed")).is_empty());

    let output = setup.cmd().args(["queue", "retry", &id]).output().unwrap();
    assert_eq!(output.status.code(), Some(66));
}

#[test]
fn a_version_0_entry_is_still_sent() {
    let server = TestServer::start(ServerOptions::default());
    // The config points elsewhere: only the entry's own --server works.
    let setup = Setup::new(&down(), "");
    fs::create_dir_all(&setup.queue).unwrap();
    let message = b"Subject: old\r\n\r\nx\r\n";
    fs::write(setup.queue.join("1-2-3.eml"), message).unwrap();
    fs::write(
        setup.queue.join("1-2-3.json"),
        format!(
            r#"{{"id":"1-2-3","created":{},"sender":"cron@example.com","recipients":["ops@example.com"],
                "args":["--server={}","--timeout=5"],"size":{},"attempts":0,"last_attempt":null,"last_error":null}}"#,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            server.addr(),
            message.len()
        ),
    )
    .unwrap();
    setup
        .cmd()
        .args(["queue", "flush"])
        .assert()
        .success()
        .stderr("");
    assert_eq!(server.wait_for_messages(1).len(), 1);
}

#[test]
fn concurrent_flushes_print_no_warnings() {
    let server = TestServer::start(ServerOptions::default());
    let setup = Setup::new(&server.addr(), "queue = \"always\"");
    for i in 0..20 {
        queue_always(&setup, &format!("m{i}"));
    }
    let outputs: Vec<std::process::Output> = std::thread::scope(|scope| {
        let flushes: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    setup
                        .cmd()
                        .args(["queue", "flush", "--now"])
                        .output()
                        .unwrap()
                })
            })
            .collect();
        flushes.into_iter().map(|f| f.join().unwrap()).collect()
    });
    for output in &outputs {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert_eq!(stderr, "", "no warnings");
    }
    assert_eq!(server.wait_for_messages(20).len(), 20);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(server.received().len(), 20, "each sent once");
    assert!(setup.entries().is_empty());
}

#[test]
fn a_full_disk_while_saving_fails_that_entry_not_the_run() {
    let Some(disk) = TinyDisk::mount(64) else {
        common::skip("mounting a tmpfs needs root");
        return;
    };
    let good = TestServer::start(ServerOptions::default());
    let setup = Setup::new(&down(), "queue = \"always\"");
    let queue = disk.dir.path().join("queue");
    let queued = |server: &str| {
        setup
            .cmd()
            .env("POSTIE_QUEUE_DIR", &queue)
            .args(["--server", server, "ops@example.com", "--body", "x"])
            .assert()
            .success();
    };
    queued(&down());
    queued(&good.addr());
    let first = list_json(&queue).remove(0);
    let before = fs::read(&first).unwrap();
    // Fill the disk to the last byte.
    let mut filler = fs::File::create(disk.dir.path().join("filler")).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut filler, &chunk).is_ok() {}
    let _ = std::io::Write::write_all(&mut filler, &chunk[..1]);
    drop(filler);

    let output = setup
        .cmd()
        .env("POSTIE_QUEUE_DIR", &queue)
        .args(["queue", "flush"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(74), "{stderr}");
    assert!(
        stderr.contains(&format!("{} stays as it was", id_of(&first)))
            && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert_eq!(
        good.wait_for_messages(1).len(),
        1,
        "the next entry was sent"
    );
    assert_eq!(list_json(&queue), std::slice::from_ref(&first));
    assert_eq!(fs::read(&first).unwrap(), before, "the old state is intact");
}

#[test]
fn an_entry_that_cannot_be_set_up_does_not_hold_up_the_others() {
    let server = TestServer::start(ServerOptions::default());
    let setup = Setup::new(&server.addr(), "queue = \"always\"");
    let other = setup.dir.path().join("other.toml");
    fs::copy(&setup.config, &other).unwrap();
    setup
        .cmd()
        .arg("--config")
        .arg(&other)
        .args(["ops@example.com", "-s", "other config", "--body", "x"])
        .assert()
        .success();
    let stuck = setup.entries().remove(0);
    queue_always(&setup, "fine");
    // The config the first entry was queued with is gone.
    fs::remove_file(&other).unwrap();
    let output = setup.cmd().args(["queue", "flush"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot send {}", id_of(&stuck))),
        "{stderr}"
    );
    let got = server.wait_for_messages(1);
    assert_eq!(common::parse(&got[0].data).subject(), Some("fine"));
    assert_eq!(setup.entries(), [stuck]);
}

#[test]
fn a_flush_sends_entries_with_the_same_settings_over_one_session() {
    let setup = Setup::new(&down(), "");
    for subject in ["one", "two", "three"] {
        setup
            .cmd()
            .args(["--queue", "-s", subject, "ops@example.com", "--body", "x"])
            .assert()
            .success();
    }
    // Another sender may mean another account: its own session.
    setup
        .cmd()
        .args(["--queue", "-f", "other@example.com", "-s", "four"])
        .args(["ops@example.com", "--body", "x"])
        .assert()
        .success();
    assert_eq!(setup.entries().len(), 4);
    let server = TestServer::start(ServerOptions::default());
    setup.write_config(&server.addr(), "");
    setup
        .cmd()
        .args(["queue", "flush", "--now"])
        .assert()
        .success()
        .stderr("");
    let got = server.wait_for_messages(4);
    assert_eq!(got.len(), 4);
    let session_of = |subject: &str| {
        got.iter()
            .find(|m| common::parse(&m.data).subject() == Some(subject))
            .unwrap_or_else(|| panic!("{subject} not delivered"))
            .session
    };
    assert_eq!(session_of("one"), session_of("two"));
    assert_eq!(session_of("one"), session_of("three"));
    assert_ne!(session_of("one"), session_of("four"));
    assert!(setup.entries().is_empty());
}

#[test]
fn retry_plans_again_a_message_kept_before_it_could_be_planned() {
    let server = TestServer::start(ServerOptions::default());
    let setup = Setup::new(&server.addr(), "");
    // cronie, with a local recipient that nothing maps yet: kept in failed/.
    let (_link, mut cmd) = sendmail();
    let output = cmd
        .env("POSTIE_CONFIG", &setup.config)
        .env("POSTIE_QUEUE_DIR", &setup.queue)
        .args([
            "-FCronDaemon",
            "-i",
            "-odi",
            "-oem",
            "-oi",
            "-t",
            "-f",
            "root",
        ])
        .write_stdin("From: root (Cron Daemon)\nTo: www-data\nSubject: Cron job\n\noutput\n")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(67));
    let failed = failed_json(&setup);
    assert_eq!(failed.len(), 1);
    let id = failed[0]["id"].as_str().unwrap().to_string();

    // Retrying before the cause is fixed says so and keeps it.
    let again = setup.cmd().args(["queue", "retry", &id]).output().unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(67), "{stderr}");
    assert!(stderr.contains("still cannot be sent"), "{stderr}");
    assert_eq!(failed_json(&setup).len(), 1);

    // The admin adds `admin`, as the error line said: retry plans it with
    // today's config and queues it; the flush delivers it.
    setup.write_config(&server.addr(), "");
    let config = fs::read_to_string(&setup.config).unwrap();
    fs::write(
        &setup.config,
        format!("admin = \"admin@example.com\"\n{config}"),
    )
    .unwrap();
    let retried = setup.cmd().args(["queue", "retry", &id]).output().unwrap();
    let stderr = String::from_utf8_lossy(&retried.stderr);
    assert!(retried.status.success(), "{stderr}");
    assert!(stderr.contains("for admin@example.com"), "{stderr}");
    assert!(failed_json(&setup).is_empty());
    setup
        .cmd()
        .args(["queue", "flush", "--now"])
        .assert()
        .success();
    let got = server.wait_for_messages(1);
    assert_eq!(got[0].rcpt_to, ["admin@example.com"]);
    assert_eq!(got[0].mail_from, "cron@example.com");
    assert!(String::from_utf8_lossy(&got[0].data).contains("output"));
}
