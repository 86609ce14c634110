//! The fault matrix: every way a send can go wrong, run through the three
//! ways a message reaches postie (composed from flags, a ready-made
//! `--message`, and the sendmail link as cron calls it), each asserting
//! one of the only ends postie allows: delivered once, in the queue, or
//! refused with its exit code and a log line (and, in sendmail mode, kept
//! in `failed/`: cron reads no exit status).
//!
//! Queueing is on in every mode (`--queue`; sendmail mode's default), as a
//! cron job or a careful script has it.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{closed_port, ScriptedServer, ServerOptions, TestServer};

const GREETING: &[u8] = b"220 faulty.test ESMTP\r\n";
const EHLO: &[u8] = b"250-faulty.test\r\n250 8BITMIME\r\n";
const EHLO_PIPELINING: &[u8] = b"250-faulty.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n";
const OK: &[u8] = b"250 2.0.0 ok\r\n";
const GO_AHEAD: &[u8] = b"354 go ahead\r\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Compose,
    Message,
    Sendmail,
}

const ALL: &[Mode] = &[Mode::Compose, Mode::Message, Mode::Sendmail];
const READY_MADE: &[Mode] = &[Mode::Message, Mode::Sendmail];

/// How a scenario must end.
#[derive(Clone, Debug)]
enum End {
    /// Every recipient got the message, once.
    Delivered,
    /// Nothing was delivered; one queue entry holds every recipient.
    Queued,
    /// The first recipients got it; one queue entry holds the rest.
    Split { delivered: usize },
    /// Nothing delivered, nothing queued: this exit code, a log line, and
    /// in sendmail mode the message in failed/.
    Refused(i32),
}

enum Server {
    Mailin(TestServer),
    Scripted(ScriptedServer),
    Down(u16),
}

impl Server {
    fn addr(&self) -> String {
        match self {
            Server::Mailin(server) => server.addr(),
            Server::Scripted(server) => server.addr(),
            Server::Down(port) => format!("127.0.0.1:{port}"),
        }
    }

    /// The recipients of each message the server took.
    fn delivered(&self) -> Vec<Vec<String>> {
        std::thread::sleep(std::time::Duration::from_millis(150));
        match self {
            Server::Mailin(server) => server.received().into_iter().map(|r| r.rcpt_to).collect(),
            // No script here ends a message with 250.
            Server::Scripted(_) | Server::Down(_) => Vec::new(),
        }
    }
}

fn mailin(options: ServerOptions) -> Server {
    Server::Mailin(TestServer::start(options))
}

/// A server postie refuses to send to before it connects.
fn unreached(options: ServerOptions) -> Server {
    let server = TestServer::start(options);
    server.expect_unused();
    Server::Mailin(server)
}

fn scripted(greeting: &'static [u8], replies: &[&'static [u8]]) -> Server {
    Server::Scripted(ScriptedServer::start(
        greeting,
        replies.iter().map(|r| r.to_vec()).collect(),
    ))
}

struct Scenario {
    name: &'static str,
    server: fn() -> Server,
    args: &'static [&'static str],
    /// Keys added to the config's [defaults] (sendmail mode has no
    /// --partial).
    config: &'static str,
    recipients: &'static [&'static str],
    /// Header lines of the ready-made message (the composed one has the
    /// same body).
    headers: &'static str,
    body: &'static str,
    modes: &'static [Mode],
    end: End,
}

const REPORT_BODY: &str = "rsync: 1532 files, 0 errors\n";
const LONG_LINE_BODY: &str = concat!(
    "backup done\n{\"files\":[",
    "\"/var/lib/postgresql/15/main/base/16384/2619\",\"/var/lib/postgresql/15/main/base/16384/2840\",",
    "\"/var/lib/postgresql/15/main/base/16384/2619\",\"/var/lib/postgresql/15/main/base/16384/2840\",",
    "\"/var/lib/postgresql/15/main/base/16384/2619\",\"/var/lib/postgresql/15/main/base/16384/2840\",",
    "\"/var/lib/postgresql/15/main/base/16384/2619\",\"/var/lib/postgresql/15/main/base/16384/2840\",",
    "\"/var/lib/postgresql/15/main/base/16384/2619\",\"/var/lib/postgresql/15/main/base/16384/2840\",",
    "\"/var/lib/postgresql/15/main/base/16384/2619\",\"/var/lib/postgresql/15/main/base/16384/2840\",",
    "\"/var/lib/postgresql/15/main/base/16384/2619\",\"/var/lib/postgresql/15/main/base/16384/2840\",",
    "\"/var/lib/postgresql/15/main/base/16384/2619\",\"/var/lib/postgresql/15/main/base/16384/2840\",",
    "\"/var/lib/postgresql/15/main/base/16384/2619\",\"/var/lib/postgresql/15/main/base/16384/2840\",",
    "\"/var/lib/postgresql/15/main/base/16384/2619\",\"/var/lib/postgresql/15/main/base/16384/2840\",",
    "\"/var/lib/postgresql/15/main/base/16384/2619\",\"/var/lib/postgresql/15/main/base/16384/2840\",",
    "\"/var/lib/postgresql/15/main/base/16384/2619\",\"/var/lib/postgresql/15/main/base/16384/2840\",",
    "\"/var/lib/postgresql/15/main/base/16384/2619\",\"/var/lib/postgresql/15/main/base/16384/2840\",",
    "\"/var/lib/postgresql/15/main/base/16384/2619\",\"/var/lib/postgresql/15/main/base/16384/2840\"]}\n",
    "end\n"
);

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "no fault at all",
            server: || mailin(ServerOptions::default()),
            args: &[],
            config: "",
            recipients: &["a@example.com", "b@example.com"],
            headers: "Subject: report\n",
            body: REPORT_BODY,
            modes: ALL,
            end: End::Delivered,
        },
        Scenario {
            name: "server down",
            server: || Server::Down(closed_port()),
            args: &[],
            config: "",
            recipients: &["a@example.com"],
            headers: "Subject: report\n",
            body: REPORT_BODY,
            modes: ALL,
            end: End::Queued,
        },
        Scenario {
            name: "421 at the greeting",
            server: || scripted(b"421 4.3.2 busy\r\n", &[]),
            args: &[],
            config: "",
            recipients: &["a@example.com"],
            headers: "Subject: report\n",
            body: REPORT_BODY,
            modes: ALL,
            end: End::Queued,
        },
        Scenario {
            name: "421 to a pipelined MAIL, then a close",
            server: || {
                scripted(
                    GREETING,
                    &[EHLO_PIPELINING, b"421 4.7.0 Try again later\r\n"],
                )
            },
            args: &[],
            config: "",
            recipients: &["a@example.com", "b@example.com"],
            headers: "Subject: report\n",
            body: REPORT_BODY,
            modes: ALL,
            end: End::Queued,
        },
        Scenario {
            name: "451 for one of two recipients",
            server: || {
                mailin(ServerOptions {
                    tempfail_rcpt: vec!["b@example.com".into()],
                    ..ServerOptions::default()
                })
            },
            args: &[],
            config: "",
            recipients: &["a@example.com", "b@example.com"],
            headers: "Subject: report\n",
            body: REPORT_BODY,
            modes: ALL,
            // All or none: nothing went out, so both are owed.
            end: End::Queued,
        },
        Scenario {
            name: "451 for one of two recipients, --partial",
            server: || {
                mailin(ServerOptions {
                    tempfail_rcpt: vec!["b@example.com".into()],
                    ..ServerOptions::default()
                })
            },
            args: &[],
            config: "partial = true",
            recipients: &["a@example.com", "b@example.com"],
            headers: "Subject: report\n",
            body: REPORT_BODY,
            modes: ALL,
            end: End::Split { delivered: 1 },
        },
        Scenario {
            name: "550 for one of two recipients",
            server: || {
                mailin(ServerOptions {
                    refuse_rcpt: vec!["b@example.com".into()],
                    ..ServerOptions::default()
                })
            },
            args: &[],
            config: "",
            recipients: &["a@example.com", "b@example.com"],
            headers: "Subject: report\n",
            body: REPORT_BODY,
            modes: ALL,
            end: End::Refused(67),
        },
        Scenario {
            name: "connection closed mid-DATA",
            // The replies run out after 354: the server closes while the
            // message is on its way.
            server: || scripted(GREETING, &[EHLO, OK, OK, GO_AHEAD]),
            args: &[],
            config: "",
            recipients: &["a@example.com"],
            headers: "Subject: report\n",
            body: REPORT_BODY,
            modes: ALL,
            end: End::Queued,
        },
        Scenario {
            name: "554 to the end of DATA",
            server: || scripted(GREETING, &[EHLO, OK, OK, GO_AHEAD, b"554 5.7.1 spam\r\n"]),
            args: &[],
            config: "",
            recipients: &["a@example.com"],
            headers: "Subject: report\n",
            body: REPORT_BODY,
            modes: ALL,
            end: End::Refused(69),
        },
        Scenario {
            name: "an 8-bit message for a server without 8BITMIME",
            server: || scripted(GREETING, &[b"250 faulty.test\r\n", b"221 bye\r\n"]),
            args: &[],
            config: "",
            recipients: &["a@example.com"],
            headers: "Subject: report\nContent-Type: text/plain; charset=utf-8\n",
            body: "Grüße vom Backup\n",
            // Composed messages are 7-bit whatever the body.
            modes: READY_MADE,
            end: End::Refused(69),
        },
        Scenario {
            name: "500 Line too long to the end of DATA",
            server: || {
                scripted(
                    GREETING,
                    &[EHLO, OK, OK, GO_AHEAD, b"500 5.5.2 Line too long\r\n"],
                )
            },
            args: &[],
            config: "",
            recipients: &["a@example.com"],
            headers: "Subject: report\n",
            body: REPORT_BODY,
            modes: ALL,
            end: End::Refused(76),
        },
        Scenario {
            name: "a 5000-octet line (minified JSON)",
            server: || mailin(ServerOptions::default()),
            args: &[],
            config: "",
            recipients: &["a@example.com"],
            headers: "Subject: report\n",
            body: LONG_LINE_BODY,
            modes: ALL,
            end: End::Delivered,
        },
        Scenario {
            name: "a bare CR and a NUL in the body",
            server: || mailin(ServerOptions::default()),
            args: &[],
            config: "",
            recipients: &["a@example.com"],
            headers: "Subject: report\n",
            body: "progress 10%\rprogress 100%\nend\0\n",
            // A composed body is text from a flag: such bytes come only
            // in ready-made messages.
            modes: READY_MADE,
            end: End::Delivered,
        },
        Scenario {
            name: "an unqualified -f root (cron's)",
            server: || mailin(ServerOptions::default()),
            args: &["-f", "root"],
            config: "",
            recipients: &["a@example.com"],
            headers: "From: root (Cron Daemon)\nSubject: report\n",
            body: REPORT_BODY,
            modes: ALL,
            end: End::Delivered,
        },
        Scenario {
            name: "To: a local name with no alias",
            server: || unreached(ServerOptions::default()),
            args: &["-t"],
            config: "",
            recipients: &[],
            headers: "To: www-data\nSubject: report\n",
            body: REPORT_BODY,
            modes: READY_MADE,
            end: End::Refused(67),
        },
    ]
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new(extra: &str) -> Env {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::write(
            env.dir.path().join("config.toml"),
            format!(
                "[defaults]\nfrom = \"cron@example.com\"\ntimeout = 3\nlogfile = \"{}\"\n{extra}\n",
                env.log().display()
            ),
        )
        .unwrap();
        env
    }

    fn queue(&self) -> PathBuf {
        self.dir.path().join("queue")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("postie.log")
    }

    fn run(&self, scenario: &Scenario, mode: Mode, server: &str) -> std::process::Output {
        let message = format!("{}\n{}", scenario.headers, scenario.body);
        let mut cmd = match mode {
            Mode::Sendmail => {
                let (link, cmd) = common::sendmail();
                // The link must outlive the command: leak its directory.
                std::mem::forget(link);
                cmd
            }
            Mode::Compose | Mode::Message => common::postie(),
        };
        cmd.env("POSTIE_CONFIG", self.dir.path().join("config.toml"))
            .env("POSTIE_QUEUE_DIR", self.queue())
            .env("POSTIE_SERVER", server);
        match mode {
            Mode::Compose => {
                cmd.args(["--queue", "-s", "report", "--body", scenario.body]);
            }
            Mode::Message => {
                let path = self.dir.path().join("message.eml");
                fs::write(&path, &message).unwrap();
                cmd.arg("--queue").arg("--message").arg(&path);
            }
            Mode::Sendmail => {
                cmd.arg("-i").write_stdin(message.clone());
            }
        }
        let args: Vec<&str> = scenario
            .args
            .iter()
            .copied()
            .filter(|a| mode != Mode::Compose || *a != "-t")
            .collect();
        cmd.args(args).args(scenario.recipients).output().unwrap()
    }
}

fn json_entries(dir: &Path) -> Vec<serde_json::Value> {
    let Ok(reader) = fs::read_dir(dir) else {
        return Vec::new();
    };
    reader
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| serde_json::from_slice(&fs::read(p).unwrap()).unwrap())
        .collect()
}

fn check(scenario: &Scenario, mode: Mode) {
    let env = Env::new(scenario.config);
    let server = (scenario.server)();
    let output = env.run(scenario, mode, &server.addr());
    let code = output.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let what = format!("{} ({mode:?}): exit {code}: {stderr}", scenario.name);
    let delivered = server.delivered();
    let queued = json_entries(&env.queue());
    let failed = json_entries(&env.queue().join("failed"));
    let log = fs::read_to_string(env.log()).unwrap_or_default();
    let recipients: Vec<String> = scenario.recipients.iter().map(|r| r.to_string()).collect();
    match &scenario.end {
        End::Delivered => {
            assert_eq!(code, 0, "{what}");
            assert_eq!(delivered, vec![recipients], "{what}");
            // What arrived is what SMTP can carry, and reads as it was sent.
            let Server::Mailin(mailin) = &server else {
                unreachable!("only mailin delivers")
            };
            let data = &mailin.received()[0].data;
            assert!(
                data.split(|&b| b == b'\n').all(|line| line.len() <= 1000),
                "{what}: a line over 998 octets arrived"
            );
            let text = common::parse(data)
                .body_text(0)
                .unwrap_or_default()
                .into_owned();
            assert_eq!(
                text.replace("\r\n", "\n"),
                scenario.body,
                "{what}: the body reads differently"
            );
            assert!(queued.is_empty() && failed.is_empty(), "{what}");
            assert!(log.contains("outcome=sent"), "{what}\n{log}");
        }
        End::Queued => {
            assert_eq!(code, 0, "{what}");
            assert!(delivered.is_empty(), "{what}: {delivered:?}");
            assert_eq!(queued.len(), 1, "{what}");
            assert_eq!(
                queued[0]["recipients"],
                serde_json::json!(recipients),
                "{what}"
            );
            assert!(failed.is_empty(), "{what}");
            assert!(log.contains("outcome=queued"), "{what}\n{log}");
        }
        End::Split { delivered: n } => {
            assert_eq!(code, 0, "{what}");
            assert_eq!(delivered, vec![recipients[..*n].to_vec()], "{what}");
            assert_eq!(queued.len(), 1, "{what}");
            assert_eq!(
                queued[0]["recipients"],
                serde_json::json!(recipients[*n..]),
                "{what}"
            );
            assert!(failed.is_empty(), "{what}");
        }
        End::Refused(expected) => {
            assert_eq!(code, *expected, "{what}");
            assert!(delivered.is_empty(), "{what}: {delivered:?}");
            assert!(queued.is_empty(), "{what}");
            let kept = if mode == Mode::Sendmail { 1 } else { 0 };
            assert_eq!(failed.len(), kept, "{what}");
            assert!(
                log.contains("outcome=failed") && log.contains(&format!("exit={expected}")),
                "{what}\n{log}"
            );
        }
    }
}

#[test]
fn every_fault_ends_delivered_queued_or_refused_with_a_trace() {
    for scenario in scenarios() {
        for &mode in scenario.modes {
            check(&scenario, mode);
        }
    }
}
