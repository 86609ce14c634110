//! postie and swaks against the same server, case by case: they must stop
//! at the same stage with the same outcome. .ci/run installs swaks; where
//! it is missing the test says so and passes, except under CI.

use std::process::Command;

use crate::common::{postie, require_tool, ServerOptions, TestServer, Tls, PASSWORD, USER};

struct Case {
    name: &'static str,
    server: ServerOptions,
    recipient: &'static str,
    /// Extra arguments for (postie, swaks).
    postie_args: Vec<String>,
    swaks_args: Vec<String>,
    /// Expected exit codes (postie, swaks) and messages received.
    expected: (i32, i32, usize),
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn postie_and_swaks_agree_on_each_outcome() {
    if !require_tool("swaks", "swaks") {
        return;
    }
    let tls_auth = ServerOptions {
        tls: Tls::StartTls,
        auth: true,
        ..ServerOptions::default()
    };
    let cases = vec![
        Case {
            name: "accepted",
            server: ServerOptions::default(),
            recipient: "ok@example.com",
            postie_args: vec![],
            swaks_args: vec![],
            expected: (0, 0, 1),
        },
        Case {
            name: "refused recipient",
            server: ServerOptions {
                refuse_rcpt: vec!["gone@example.com".into()],
                ..ServerOptions::default()
            },
            recipient: "gone@example.com",
            postie_args: vec![],
            swaks_args: vec![],
            expected: (67, 24, 0),
        },
        Case {
            name: "AUTH failure",
            server: tls_auth.clone(),
            recipient: "ok@example.com",
            postie_args: strings(&["--insecure", "--user", USER, "--password-cmd", "echo wrong"]),
            swaks_args: strings(&[
                "--tls",
                "--auth",
                "PLAIN",
                "--auth-user",
                USER,
                "--auth-password",
                "wrong",
            ]),
            expected: (77, 28, 0),
        },
        Case {
            name: "AUTH success",
            server: tls_auth,
            recipient: "ok@example.com",
            postie_args: vec![
                "--insecure".into(),
                "--user".into(),
                USER.into(),
                "--password-cmd".into(),
                format!("echo {PASSWORD}"),
            ],
            swaks_args: vec![
                "--tls".into(),
                "--auth".into(),
                "PLAIN".into(),
                "--auth-user".into(),
                USER.into(),
                "--auth-password".into(),
                PASSWORD.into(),
            ],
            expected: (0, 0, 1),
        },
        Case {
            name: "STARTTLS required but not offered",
            server: ServerOptions::default(),
            recipient: "ok@example.com",
            postie_args: strings(&["--tls", "starttls"]),
            swaks_args: strings(&["--tls"]),
            expected: (69, 29, 0),
        },
    ];
    for case in cases {
        // A server each, so that what one tool did cannot hide the other.
        let for_postie = TestServer::start(case.server.clone());
        let postie_code = postie()
            .args(["--server", &for_postie.addr(), "--timeout", "10"])
            .args(["-f", "a@example.com", case.recipient, "--body", "interop"])
            .args(&case.postie_args)
            .output()
            .unwrap()
            .status
            .code();
        let for_swaks = TestServer::start(case.server.clone());
        let swaks = Command::new("swaks")
            .args([
                "--server",
                "127.0.0.1",
                "--port",
                &for_swaks.port.to_string(),
            ])
            .args([
                "--from",
                "a@example.com",
                "--to",
                case.recipient,
                "--body",
                "interop",
            ])
            .args(["--timeout", "10"])
            .args(&case.swaks_args)
            .output()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(
            (
                postie_code.unwrap_or(-1),
                swaks.status.code().unwrap_or(-1),
                for_postie.received().len(),
            ),
            case.expected,
            "{}: swaks said:\n{}",
            case.name,
            String::from_utf8_lossy(&swaks.stdout)
        );
        assert_eq!(
            for_postie.received().len(),
            for_swaks.received().len(),
            "{}: both deliver or neither",
            case.name
        );
    }
}
