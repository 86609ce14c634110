//! Proves the integration-test harness in `tests/it/common` works, without
//! involving postie: raw SMTP over std TcpStream / openssl.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::*;
use openssl::base64::encode_block;
use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode};

// ---------------------------------------------------------------------------
// A tiny raw SMTP client
// ---------------------------------------------------------------------------

struct Client<S: Read + Write> {
    s: S,
}

impl<S: Read + Write> Client<S> {
    /// Reads one complete reply (all lines, CRLFs included).
    fn reply(&mut self) -> String {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            loop {
                let n = self.s.read(&mut b).expect("read reply");
                assert!(
                    n == 1,
                    "connection closed; got so far: {:?}",
                    String::from_utf8_lossy(&out)
                );
                line.push(b[0]);
                if b[0] == b'\n' {
                    break;
                }
            }
            let last = line.len() < 4 || line[3] != b'-';
            out.extend_from_slice(&line);
            if last {
                return String::from_utf8(out).expect("utf-8 reply");
            }
        }
    }

    fn send(&mut self, raw: &[u8]) {
        self.s.write_all(raw).expect("write");
        self.s.flush().expect("flush");
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Asserts the next reply starts with `code` and returns it.
    fn expect(&mut self, line: &str, code: &str) -> String {
        let r = self.cmd(line);
        assert!(
            r.starts_with(code),
            "{line:?} -> expected {code}, got {r:?}"
        );
        r
    }

    /// Reads until EOF (or error); returns what arrived.
    fn rest(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        let _ = self.s.read_to_end(&mut v);
        v
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn tls_connector(server: &TestServer) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(server.ca_file()).unwrap();
    b.set_verify(SslVerifyMode::PEER);
    b.build()
}

fn tls_wrap(server: &TestServer, domain: &str, tcp: TcpStream) -> SslStream<TcpStream> {
    tls_connector(server)
        .connect(domain, tcp)
        .unwrap_or_else(|e| panic!("TLS handshake (verifying {domain}) failed: {e}"))
}

fn auth_plain_token(user: &str, pass: &str) -> String {
    encode_block(format!("\0{user}\0{pass}").as_bytes())
}

fn send_simple_message<S: Read + Write>(c: &mut Client<S>, from: &str, to: &str, body: &str) {
    c.expect(&format!("MAIL FROM:<{from}>"), "250");
    c.expect(&format!("RCPT TO:<{to}>"), "250");
    c.expect("DATA", "354");
    c.send(body.as_bytes());
    let r = c.cmd(".");
    assert!(r.starts_with("250"), "end of data -> {r:?}");
}

// ---------------------------------------------------------------------------
// TestServer, plain
// ---------------------------------------------------------------------------

#[test]
fn plain_session_records_envelope_and_unstuffed_data() {
    let server = TestServer::start(ServerOptions::default());
    assert_eq!(server.addr(), format!("127.0.0.1:{}", server.port));
    let mut c = Client {
        s: connect(server.port),
    };

    let greeting = c.reply();
    assert_eq!(greeting, "220 localhost ESMTP\r\n");
    let ehlo = c.expect("EHLO client.example", "250");
    assert!(ehlo.contains("8BITMIME"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");

    c.expect("MAIL FROM:<sender@example.com> BODY=8BITMIME", "250");
    c.expect("RCPT TO:<one@example.com>", "250");
    c.expect("RCPT TO:<two@example.org>", "250");
    c.expect("DATA", "354");
    // Client-side dot-stuffing: ".leading dot" is sent as "..leading dot".
    c.send(
        b"From: sender@example.com\r\n\
          To: one@example.com\r\n\
          Subject: harness \xc3\xa9\r\n\
          \r\n\
          ..leading dot\r\n\
          ...two dots\r\n\
          plain line\r\n",
    );
    c.expect(".", "250");
    c.expect("QUIT", "221");
    assert!(c.rest().is_empty());

    let got = server.wait_for_messages(1);
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    assert_eq!(m.helo, "client.example");
    assert_eq!(m.mail_from, "sender@example.com");
    assert_eq!(m.rcpt_to, vec!["one@example.com", "two@example.org"]);
    assert!(m.body_8bit);
    assert_eq!(m.auth_user, None);
    assert!(!m.tls);
    assert_eq!(
        m.data,
        b"From: sender@example.com\r\n\
          To: one@example.com\r\n\
          Subject: harness \xc3\xa9\r\n\
          \r\n\
          .leading dot\r\n\
          ..two dots\r\n\
          plain line\r\n"
    );

    let parsed = parse(&m.data);
    assert_eq!(parsed.subject(), Some("harness é"));
    assert_eq!(
        parsed.body_text(0).as_deref(),
        Some(".leading dot\r\n..two dots\r\nplain line\r\n")
    );
    assert!(server.auth_attempts().is_empty());
}

#[test]
fn several_messages_in_one_session_and_body_7bit() {
    let server = TestServer::start(ServerOptions::default());
    let mut c = Client {
        s: connect(server.port),
    };
    c.reply();
    c.expect("HELO old.example", "250");
    send_simple_message(
        &mut c,
        "a@example.com",
        "b@example.com",
        "Subject: 1\r\n\r\none\r\n",
    );
    c.expect("MAIL FROM:<c@example.com> BODY=7BIT", "250");
    c.expect("RCPT TO:<d@example.com>", "250");
    c.expect("DATA", "354");
    c.send(b"Subject: 2\r\n\r\ntwo\r\n");
    c.expect(".", "250");
    c.expect("QUIT", "221");

    let got = server.wait_for_messages(2);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].mail_from, "a@example.com");
    assert_eq!(got[0].data, b"Subject: 1\r\n\r\none\r\n");
    assert!(!got[0].body_8bit);
    assert_eq!(got[1].helo, "old.example");
    assert_eq!(got[1].mail_from, "c@example.com");
    assert_eq!(got[1].rcpt_to, vec!["d@example.com"]);
    assert!(!got[1].body_8bit);
}

#[test]
fn refused_and_tempfailed_recipients() {
    let server = TestServer::start(ServerOptions {
        refuse_rcpt: vec!["nobody@example.com".into()],
        tempfail_rcpt: vec!["later@example.com".into()],
        ..Default::default()
    });
    let mut c = Client {
        s: connect(server.port),
    };
    c.reply();
    c.expect("EHLO client.example", "250");
    c.expect("MAIL FROM:<sender@example.com>", "250");
    assert_eq!(
        c.cmd("RCPT TO:<nobody@example.com>"),
        "550 5.1.1 no such user\r\n"
    );
    // Case-insensitive match.
    assert_eq!(
        c.cmd("RCPT TO:<NoBody@Example.com>"),
        "550 5.1.1 no such user\r\n"
    );
    assert_eq!(
        c.cmd("RCPT TO:<later@example.com>"),
        "451 4.3.0 try later\r\n"
    );
    // mailin: DATA with no accepted recipient is a sequence error.
    c.expect("DATA", "503");
    c.expect("RCPT TO:<ok@example.com>", "250");
    c.expect("DATA", "354");
    c.send(b"Subject: x\r\n\r\nbody\r\n");
    c.expect(".", "250");
    c.expect("QUIT", "221");

    let got = server.wait_for_messages(1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_to, vec!["ok@example.com"]);
}

/// Documents mailin's parser limits that postie tests may run into.
#[test]
fn mailin_quirks() {
    let server = TestServer::start(ServerOptions::default());
    let mut c = Client {
        s: connect(server.port),
    };
    c.reply();
    // MAIL before EHLO/HELO.
    c.expect("MAIL FROM:<a@example.com>", "503");
    // EHLO without a domain.
    c.expect("EHLO", "500");
    c.expect("EHLO client.example", "250");
    // Null reverse path, unknown parameters, space after the colon: all 500.
    c.expect("MAIL FROM:<>", "500");
    c.expect("MAIL FROM:<a@example.com> SIZE=100", "500");
    c.expect("MAIL FROM:<a@example.com> SMTPUTF8", "500");
    c.expect("MAIL FROM: <a@example.com>", "500");
    c.expect("mail from:<a@example.com> body=8bitmime", "250");
    c.expect("RCPT TO:<b@example.com> NOTIFY=NEVER", "500");
    c.expect("RSET", "250");
    c.expect("NOOP", "250");
    c.expect("VRFY b@example.com", "252");
    c.expect("HELP", "500");
    c.expect("QUIT", "221");
    assert!(server.received().is_empty());
}

// ---------------------------------------------------------------------------
// TestServer, STARTTLS
// ---------------------------------------------------------------------------

#[test]
fn starttls_then_auth_plain() {
    let server = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        auth: true,
        ..Default::default()
    });
    assert!(server.ca_file().is_file());
    let mut c = Client {
        s: connect(server.port),
    };
    assert_eq!(c.reply(), "220 localhost ESMTP\r\n");
    let ehlo = c.expect("EHLO client.example", "250");
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(
        !ehlo.contains("AUTH"),
        "AUTH must not be offered before TLS: {ehlo}"
    );
    // With auth enabled mailin refuses MAIL until AUTH succeeded.
    c.expect("MAIL FROM:<a@example.com>", "503");
    c.expect("STARTTLS", "220");

    let mut c = Client {
        s: tls_wrap(&server, "localhost", c.s),
    };
    // mailin's STARTTLS acceptor is openssl's mozilla_modern (v4): TLS 1.2 only.
    assert_eq!(c.s.ssl().version_str(), "TLSv1.2");
    let ehlo = c.expect("EHLO client.example", "250");
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    c.expect("MAIL FROM:<a@example.com>", "503");
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", auth_plain_token(USER, PASSWORD))),
        "235 Authentication succeeded\r\n"
    );
    send_simple_message(
        &mut c,
        "a@example.com",
        "b@example.com",
        "Subject: s\r\n\r\nhi\r\n",
    );
    c.expect("QUIT", "221");

    let got = server.wait_for_messages(1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].auth_user.as_deref(), Some(USER));
    assert!(got[0].tls);
    assert_eq!(got[0].helo, "client.example");
    assert_eq!(server.auth_attempts(), vec![(USER.to_string(), true)]);
}

#[test]
fn starttls_auth_login_and_bad_password() {
    let server = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        auth: true,
        ..Default::default()
    });
    let mut c = Client {
        s: connect(server.port),
    };
    c.reply();
    c.expect("EHLO client.example", "250");
    c.expect("STARTTLS", "220");
    // Certificate also verifies for IP 127.0.0.1 (SAN IP).
    let mut c = Client {
        s: tls_wrap(&server, "127.0.0.1", c.s),
    };
    c.expect("EHLO client.example", "250");

    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", auth_plain_token(USER, "wrong"))),
        "535 Invalid credentials\r\n"
    );
    assert_eq!(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(
        c.cmd(&encode_block(USER.as_bytes())),
        "334 UGFzc3dvcmQ6\r\n"
    );
    assert_eq!(
        c.cmd(&encode_block(PASSWORD.as_bytes())),
        "235 Authentication succeeded\r\n"
    );
    send_simple_message(
        &mut c,
        "a@example.com",
        "b@example.com",
        "Subject: s\r\n\r\nhi\r\n",
    );
    c.expect("QUIT", "221");

    let got = server.wait_for_messages(1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].auth_user.as_deref(), Some(USER));
    assert_eq!(
        server.auth_attempts(),
        vec![(USER.to_string(), false), (USER.to_string(), true)]
    );
}

/// Documents mailin's AUTH state machine quirks (auth enabled).
#[test]
fn mailin_auth_quirks() {
    let server = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        auth: true,
        ..Default::default()
    });
    let mut c = Client {
        s: connect(server.port),
    };
    c.reply();
    // With auth enabled mailin insists on EHLO.
    c.expect("HELO client.example", "550");
    c.expect("EHLO client.example", "250");
    // AUTH before TLS is not even recognised as allowed.
    c.expect(
        &format!("AUTH PLAIN {}", auth_plain_token(USER, PASSWORD)),
        "503",
    );
    c.expect("STARTTLS", "220");
    let mut c = Client {
        s: tls_wrap(&server, "localhost", c.s),
    };
    // The session restarts after STARTTLS: MAIL needs a new EHLO first.
    c.expect("MAIL FROM:<a@example.com>", "503");
    c.expect("EHLO client.example", "250");
    c.expect(
        &format!("AUTH PLAIN {}", auth_plain_token(USER, PASSWORD)),
        "235",
    );
    // RSET (or a new EHLO) after a successful AUTH drops back to the
    // "needs AUTH" state: MAIL is refused until AUTH is repeated.
    c.expect("RSET", "250");
    c.expect("MAIL FROM:<a@example.com>", "503");
    c.expect(
        &format!("AUTH PLAIN {}", auth_plain_token(USER, PASSWORD)),
        "235",
    );
    c.expect("MAIL FROM:<a@example.com>", "250");
    c.expect("QUIT", "221");
    assert!(server.received().is_empty());
    assert_eq!(server.auth_attempts().len(), 2);
}

/// Per-session TLS tracking: a plain session and an upgraded one on the same
/// STARTTLS server, interleaved.
#[test]
fn starttls_server_records_tls_per_session() {
    let server = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        ..Default::default()
    });
    let mut plain = Client {
        s: connect(server.port),
    };
    plain.reply();
    let mut upgraded = Client {
        s: connect(server.port),
    };
    upgraded.reply();

    upgraded.expect("EHLO tls.example", "250");
    upgraded.expect("STARTTLS", "220");
    let mut upgraded = Client {
        s: tls_wrap(&server, "localhost", upgraded.s),
    };
    let ehlo = upgraded.expect("EHLO tls.example", "250");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");

    plain.expect("EHLO plain.example", "250");
    send_simple_message(
        &mut plain,
        "p@example.com",
        "x@example.com",
        "Subject: p\r\n\r\np\r\n",
    );
    plain.expect("QUIT", "221");
    assert_eq!(server.wait_for_messages(1).len(), 1);

    send_simple_message(
        &mut upgraded,
        "t@example.com",
        "x@example.com",
        "Subject: t\r\n\r\nt\r\n",
    );
    upgraded.expect("QUIT", "221");

    let got = server.wait_for_messages(2);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].helo, "plain.example");
    assert!(!got[0].tls, "{:?}", got[0]);
    assert_eq!(got[1].helo, "tls.example");
    assert!(got[1].tls, "{:?}", got[1]);
}

#[test]
fn starttls_rejected_by_client_that_does_not_trust_the_cert() {
    let server = TestServer::start(ServerOptions {
        tls: Tls::StartTls,
        ..Default::default()
    });
    let mut c = Client {
        s: connect(server.port),
    };
    c.reply();
    c.expect("EHLO client.example", "250");
    c.expect("STARTTLS", "220");
    // Default trust store only: our throwaway cert must not verify.
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_verify(SslVerifyMode::PEER);
    let err = b.build().connect("localhost", c.s).unwrap_err();
    assert!(
        err.to_string().contains("certificate verify failed"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// TestServer, implicit TLS
// ---------------------------------------------------------------------------

#[test]
fn implicit_tls_greets_inside_tls_and_auth_works() {
    let server = TestServer::start(ServerOptions {
        tls: Tls::Implicit,
        auth: true,
        ..Default::default()
    });
    let mut c = Client {
        s: tls_wrap(&server, "localhost", connect(server.port)),
    };
    // The implicit-TLS terminator uses mozilla_intermediate_v5: TLS 1.2 + 1.3.
    assert_eq!(c.s.ssl().version_str(), "TLSv1.3");
    assert_eq!(c.reply(), "220 localhost ESMTP\r\n");
    let ehlo = c.expect("EHLO client.example", "250");
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(
        c.cmd(&encode_block(USER.as_bytes())),
        "334 UGFzc3dvcmQ6\r\n"
    );
    c.expect(&encode_block(PASSWORD.as_bytes()), "235");
    c.expect("MAIL FROM:<a@example.com> BODY=8BITMIME", "250");
    c.expect("RCPT TO:<b@example.com>", "250");
    c.expect("DATA", "354");
    c.send(b"Subject: implicit\r\n\r\n..dot\r\n");
    c.expect(".", "250");
    c.expect("QUIT", "221");
    // The terminator closes cleanly after mailin hung up.
    assert!(c.rest().is_empty());

    let got = server.wait_for_messages(1);
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.helo, "client.example");
    assert_eq!(m.mail_from, "a@example.com");
    assert_eq!(m.rcpt_to, vec!["b@example.com"]);
    assert_eq!(m.data, b"Subject: implicit\r\n\r\n.dot\r\n");
    assert!(m.body_8bit);
    assert!(m.tls);
    assert_eq!(m.auth_user.as_deref(), Some(USER));
    assert_eq!(server.auth_attempts(), vec![(USER.to_string(), true)]);
}

#[test]
fn implicit_tls_without_auth_and_plaintext_client_gets_no_greeting() {
    let server = TestServer::start(ServerOptions {
        tls: Tls::Implicit,
        ..Default::default()
    });
    let mut raw = connect(server.port);
    raw.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    match raw.read(&mut buf) {
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{e}"
        ),
        Ok(n) => panic!("plaintext bytes from implicit TLS port: {:?}", &buf[..n]),
    }
    drop(raw);

    let mut c = Client {
        s: tls_wrap(&server, "127.0.0.1", connect(server.port)),
    };
    c.reply();
    let ehlo = c.expect("EHLO client.example", "250");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    send_simple_message(
        &mut c,
        "a@example.com",
        "b@example.com",
        "Subject: s\r\n\r\nhi\r\n",
    );
    c.expect("QUIT", "221");
    let got = server.wait_for_messages(1);
    assert_eq!(got.len(), 1);
    assert!(got[0].tls);
    assert_eq!(got[0].auth_user, None);
}

#[test]
#[should_panic(expected = "auth=true needs Tls::StartTls or Tls::Implicit")]
fn plain_server_with_auth_is_refused() {
    let _ = TestServer::start(ServerOptions {
        auth: true,
        ..Default::default()
    });
}

#[test]
#[should_panic(expected = "Tls::None")]
fn ca_file_panics_without_tls() {
    let _ = TestServer::start(ServerOptions::default()).ca_file();
}

// ---------------------------------------------------------------------------
// ScriptedServer, silent_server, closed_port, helpers
// ---------------------------------------------------------------------------

#[test]
fn scripted_server_replays_greeting_then_closes() {
    let server = ScriptedServer::start(
        b"554 5.3.2 go away\r\n",
        vec![b"221 2.0.0 bye\r\n".to_vec()],
    );
    assert_eq!(server.addr(), format!("127.0.0.1:{}", server.port));
    let mut c = Client {
        s: connect(server.port),
    };
    assert_eq!(c.reply(), "554 5.3.2 go away\r\n");
    assert_eq!(c.cmd("QUIT"), "221 2.0.0 bye\r\n");
    assert!(c.rest().is_empty());
    drop(c);
    assert_eq!(server.lines(), vec!["QUIT"]);
}

#[test]
fn scripted_server_multiline_and_data_mode() {
    let server = ScriptedServer::start(
        b"220 scripted ESMTP\r\n",
        vec![
            b"250-scripted\r\n250-SIZE 10\r\n250 AUTH PLAIN\r\n".to_vec(),
            b"250 ok\r\n".to_vec(),
            b"250 ok\r\n".to_vec(),
            b"354 go ahead\r\n".to_vec(),
            b"552 5.3.4 message too big\r\n".to_vec(),
        ],
    );
    let mut c = Client {
        s: connect(server.port),
    };
    c.reply();
    assert_eq!(
        c.cmd("EHLO c.example"),
        "250-scripted\r\n250-SIZE 10\r\n250 AUTH PLAIN\r\n"
    );
    c.expect("MAIL FROM:<a@example.com>", "250");
    c.expect("RCPT TO:<b@example.com>", "250");
    c.expect("DATA", "354");
    c.send(b"Subject: big\r\n\r\n..x\r\n");
    assert_eq!(c.cmd("."), "552 5.3.4 message too big\r\n");
    // Replies exhausted: EOF, and a further command is still recorded.
    c.send(b"QUIT\r\n");
    assert!(c.rest().is_empty());
    drop(c);
    assert_eq!(
        server.lines(),
        vec![
            "EHLO c.example",
            "MAIL FROM:<a@example.com>",
            "RCPT TO:<b@example.com>",
            "DATA",
            "Subject: big",
            "",
            "..x",
            ".",
            "QUIT",
        ]
    );
}

#[test]
fn scripted_server_without_client_returns_quickly() {
    let server = ScriptedServer::start(b"220 x\r\n", vec![]);
    server.expect_unused();
    let t = std::time::Instant::now();
    assert!(server.lines().is_empty());
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn silent_server_accepts_but_never_speaks() {
    let (_keep, port) = silent_server();
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    let err = s.read(&mut buf).expect_err("silent server said something");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
}

#[test]
fn closed_port_refuses() {
    let port = closed_port();
    let err = TcpStream::connect(("127.0.0.1", port)).expect_err("something listens");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn postie_command_is_hermetic() {
    // Only inspects the command (src/ is developed separately).
    let cmd = postie();
    assert!(cmd.get_program().to_string_lossy().ends_with("postie"));
    let mut envs: Vec<(String, Option<String>)> = cmd
        .get_envs()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.map(|v| v.to_string_lossy().into_owned()),
            )
        })
        .collect();
    envs.sort();
    let keys: Vec<&str> = envs.iter().map(|(k, _)| k.as_str()).collect();
    let mut expected = vec![
        "HOME",
        "POSTIE_OAUTH2_SYSTEM_DIR",
        "POSTIE_QUEUE_DIR",
        "POSTIE_SPOOL_DIR",
        "POSTIE_SYSTEM_CONFIG",
        "XDG_CONFIG_HOME",
        "XDG_STATE_HOME",
    ];
    if std::env::var_os("PATH").is_some() {
        expected.insert(1, "PATH");
    }
    assert_eq!(keys, expected);
    for (k, v) in &envs {
        // The queue directory is created by postie when it first queues,
        // the spool by `postie queue init`.
        if k == "POSTIE_SYSTEM_CONFIG" {
            let path = std::path::PathBuf::from(v.as_deref().expect("value"));
            assert!(!path.exists(), "{k}={path:?} must not exist");
            continue;
        }
        // The OAuth2 system directory is created by the first login.
        if ![
            "PATH",
            "POSTIE_QUEUE_DIR",
            "POSTIE_SPOOL_DIR",
            "POSTIE_OAUTH2_SYSTEM_DIR",
        ]
        .contains(&k.as_str())
        {
            let dir = std::path::PathBuf::from(v.as_deref().expect("value"));
            assert!(dir.is_dir(), "{k}={dir:?} should exist");
        }
    }
    // Every call gets a fresh HOME.
    let home = |c: &assert_cmd::Command| {
        c.get_envs()
            .find(|(k, _)| *k == "HOME")
            .and_then(|(_, v)| v.map(|v| v.to_os_string()))
    };
    assert_ne!(home(&cmd), home(&postie()));
}
