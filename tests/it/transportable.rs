//! Ready-made messages that SMTP cannot carry as they are (long lines, bare
//! CR, NUL, long headers), sent through `--message FILE` and through the
//! sendmail link: what the server receives fits RFC 5321, decodes to the
//! original text, and differs from the input only in the re-encoded part;
//! what cannot be fixed is refused with 65 before any connection.

use crate::common;

use std::fs;
use std::path::PathBuf;
use std::process::Output;

use crate::common::{closed_port, parse, postie, sendmail, Received, ServerOptions, TestServer};
use mail_parser::PartType;

/// The two ways a ready-made message reaches postie.
#[derive(Clone, Copy, Debug)]
enum Route {
    MessageFile,
    Sendmail,
}

const ROUTES: [Route; 2] = [Route::MessageFile, Route::Sendmail];

/// A config whose account sends to `server` (an address), and the
/// directory holding it and the message files.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup(server: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "default = \"relay\"\n\n[accounts.relay]\nserver = \"{server}\"\n\
             from = \"Reports <reports@example.com>\"\ntimeout = 5\n"
        ),
    )
    .unwrap();
    Setup { dir, config }
}

/// postie -v -t with the message, by `route`.
fn send(setup: &Setup, route: Route, message: &[u8]) -> Output {
    match route {
        Route::MessageFile => {
            let path = setup.dir.path().join("message.eml");
            fs::write(&path, message).unwrap();
            postie()
                .env("POSTIE_CONFIG", &setup.config)
                .args(["-v", "-t", "--message"])
                .arg(&path)
                .output()
                .unwrap()
        }
        Route::Sendmail => {
            let (_link, mut cmd) = sendmail();
            cmd.env("POSTIE_CONFIG", &setup.config)
                .args(["-v", "-t", "-i"])
                .write_stdin(message.to_vec())
                .output()
                .unwrap()
        }
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Sends by both routes to one server; both must succeed. Returns what
/// the server received (message file first) and each run's stderr.
fn delivered(message: &[u8]) -> Vec<(Received, String)> {
    let server = TestServer::start(ServerOptions::default());
    let s = setup(&server.addr());
    let mut logs = Vec::new();
    for route in ROUTES {
        let out = send(&s, route, message);
        assert!(out.status.success(), "{route:?}: {}", stderr(&out));
        logs.push(stderr(&out));
    }
    let got = server.wait_for_messages(2);
    assert_eq!(got.len(), 2);
    got.into_iter().zip(logs).collect()
}

/// Refused by both routes with 65 before any connection: the server is a
/// closed port, which would have given 75.
fn refused(message: &[u8]) -> Vec<String> {
    let s = setup(&format!("127.0.0.1:{}", closed_port()));
    ROUTES
        .iter()
        .map(|&route| {
            let out = send(&s, route, message);
            assert_eq!(out.status.code(), Some(65), "{route:?}: {}", stderr(&out));
            stderr(&out)
        })
        .collect()
}

/// Every line fits SMTP: at most 998 octets, CR and LF only as CRLF, no NUL.
fn assert_fits(data: &[u8]) {
    assert!(!data.contains(&0), "a NUL on the wire");
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(line.len() <= 998, "a line of {} octets", line.len());
        assert!(!line.contains(&b'\r'), "a bare CR on the wire");
    }
    let mut previous = 0u8;
    for &b in data {
        assert!(b != b'\n' || previous == b'\r', "a bare LF on the wire");
        previous = b;
    }
}

fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

fn first_text_body(data: &[u8]) -> String {
    parse(data).body_text(0).unwrap().into_owned()
}

/// Headers complete enough that postie adds nothing (no Date, no
/// Message-ID, From kept), so every header byte can be compared.
const CRON_HEAD: &str = "From: root@example.com (Cron Daemon)\n\
To: admin@example.com\n\
Subject: Cron <root@backup1> /usr/local/bin/export --json\n\
Date: Mon, 23 Nov 2026 10:00:00 +0000\n\
Message-ID: <cron.4711@backup1.example.com>\n\
X-Cron-Env: <SHELL=/bin/sh>\n";

fn minified_json() -> String {
    let item = "{\"host\":\"db1\",\"ok\":true,\"ms\":12},";
    let json = format!("{{\"checks\":[{}]}}", item.repeat(160));
    assert!(json.len() > 5000);
    json
}

#[test]
fn a_cron_report_with_a_5000_octet_json_line_arrives_quoted_printable() {
    let json = minified_json();
    let body = format!("export done\n{json}\nrows: 300\n");
    let message = format!("{CRON_HEAD}\n{body}");
    for (mail, log) in delivered(message.as_bytes()) {
        assert_eq!(mail.rcpt_to, ["admin@example.com"]);
        assert_fits(&mail.data);
        let data = String::from_utf8(mail.data.clone()).unwrap();
        // The original headers are untouched; the MIME headers a plain
        // message needs follow them.
        assert!(
            data.starts_with(&format!(
                "{}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\
                 Content-Transfer-Encoding: quoted-printable\r\n\r\nexport done\r\n",
                crlf(CRON_HEAD)
            )),
            "{data}"
        );
        assert!(data.ends_with("\r\nrows: 300\r\n"), "{data}");
        assert_eq!(first_text_body(&mail.data), crlf(&body));
        let note = format!(
            "re-encoded the message body (text/plain) as quoted-printable: \
             line 2 is {} octets long (SMTP allows 998)",
            json.len()
        );
        assert!(
            log.lines()
                .any(|l| l.starts_with("postie: note: ") && l.ends_with(&note)),
            "{log}"
        );
    }
}

#[test]
fn without_v_nothing_is_said_about_the_re_encoding() {
    let server = TestServer::start(ServerOptions::default());
    let s = setup(&server.addr());
    let path = s.dir.path().join("quiet.eml");
    fs::write(&path, format!("{CRON_HEAD}\n{}\n", minified_json())).unwrap();
    postie()
        .env("POSTIE_CONFIG", &s.config)
        .args(["-t", "--message"])
        .arg(&path)
        .assert()
        .success()
        .stderr("");
    assert_fits(&server.wait_for_messages(1)[0].data);
}

#[test]
fn a_bare_cr_and_a_nul_in_the_body_arrive_encoded_and_decode_to_the_original() {
    let body = "progress 10%\r50%\r100%\ndump: \0\0 end\ntrailing \n";
    let message = format!("{CRON_HEAD}\n{body}");
    for (mail, log) in delivered(message.as_bytes()) {
        assert_fits(&mail.data);
        let data = String::from_utf8(mail.data.clone()).unwrap();
        assert!(
            data.ends_with(
                "\r\n\r\nprogress 10%=0D50%=0D100%\r\ndump: =00=00 end\r\ntrailing=20\r\n"
            ),
            "{data}"
        );
        assert_eq!(first_text_body(&mail.data), crlf(body));
        assert!(
            log.contains("line 1 has a CR that is not followed by LF, line 2 has a NUL octet"),
            "{log}"
        );
    }
}

const MIXED_HEAD: &str = "From: reports@example.com\n\
To: admin@example.com\n\
Subject: nightly export\n\
Date: Mon, 23 Nov 2026 10:00:00 +0000\n\
Message-ID: <mixed.1@example.com>\n\
MIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"=_b1\"\n\
\n\
This is a multi-part message in MIME format.\n\
--=_b1\n\
Content-Type: text/plain; charset=utf-8\n\
Content-Transfer-Encoding: 8bit\n\
\n\
Grüße, the export is attached.\n\
--=_b1\n\
Content-Type: application/json; name=export.json\n\
Content-Disposition: attachment; filename=export.json\n";

#[test]
fn in_a_multipart_only_the_leaf_with_the_long_line_changes() {
    let json = minified_json();
    let tail = "\n--=_b1--\nepilogue\n";
    let message = format!("{MIXED_HEAD}\n{json}{tail}");
    for (mail, log) in delivered(message.as_bytes()) {
        assert_fits(&mail.data);
        let data = String::from_utf8(mail.data.clone()).unwrap();
        // Everything before the leaf's blank line and after its body is
        // byte for byte the input; only the leaf's encoding header and body
        // differ. application/json is not text/*: base64.
        let head = crlf(MIXED_HEAD);
        assert!(data.starts_with(&head), "{data}");
        assert!(data.ends_with(&crlf(tail)), "{data}");
        let leaf = &data[head.len()..data.len() - crlf(tail).len()];
        let (leaf_header, leaf_body) = leaf.split_once("\r\n\r\n").unwrap();
        assert_eq!(leaf_header, "Content-Transfer-Encoding: base64");
        assert!(leaf_body.lines().all(|l| l.len() <= 76), "{leaf_body}");
        let parsed = parse(&mail.data);
        match &parsed.parts[2].body {
            PartType::Binary(bytes) => assert_eq!(&bytes[..], json.as_bytes()),
            other => panic!("{other:?}"),
        }
        assert!(
            log.contains("re-encoded part 2 (application/json) as base64: line 1 is"),
            "{log}"
        );
    }
}

#[test]
fn a_text_leaf_in_a_multipart_becomes_quoted_printable() {
    let long = "ä ".repeat(10) + &"w".repeat(1500);
    let message = MIXED_HEAD.replace("Grüße, the export is attached.", &format!("Grüße\n{long}"))
        + "\n{}\n--=_b1--\n";
    for (mail, _) in delivered(message.as_bytes()) {
        assert_fits(&mail.data);
        let data = String::from_utf8(mail.data.clone()).unwrap();
        assert!(
            data.contains(
                "Content-Type: text/plain; charset=utf-8\r\n\
                 Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe\r\n"
            ),
            "{data}"
        );
        assert_eq!(first_text_body(&mail.data), format!("Grüße\r\n{long}"));
    }
}

#[test]
fn a_signed_message_is_refused_not_broken() {
    let message = format!(
        "From: a@example.com\nTo: b@example.com\nSubject: signed\nMIME-Version: 1.0\n\
         Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; \
         micalg=pgp-sha256; boundary=\"s\"\n\n--s\nContent-Type: text/plain\n\n{}\n\
         --s\nContent-Type: application/pgp-signature\n\n-----BEGIN PGP SIGNATURE-----\n\
         --s--\n",
        minified_json()
    );
    for log in refused(message.as_bytes()) {
        assert!(log.contains("part 1 (text/plain)"), "{log}");
        assert!(log.contains("multipart/signed signature"), "{log}");
        assert!(log.contains("(EX_DATAERR 65)"), "{log}");
    }
}

#[test]
fn a_base64_part_with_a_long_line_is_refused() {
    let message = MIXED_HEAD.replace(
        "filename=export.json\n",
        "filename=export.json\nContent-Transfer-Encoding: base64\n",
    ) + &format!("\n{}\n--=_b1--\n", "QUJD".repeat(400));
    for log in refused(message.as_bytes()) {
        assert!(log.contains("part 2 (application/json)"), "{log}");
        assert!(log.contains("already encoded as base64"), "{log}");
    }
}

#[test]
fn a_long_header_is_folded_at_white_space() {
    let references: Vec<String> = (0..60)
        .map(|i| format!("<thread.{i}.1234567890@lists.example.com>"))
        .collect();
    let header = format!("References: {}", references.join(" "));
    assert!(header.len() > 2000);
    let message = format!("{CRON_HEAD}{header}\n\nshort body\n");
    for (mail, log) in delivered(message.as_bytes()) {
        assert_fits(&mail.data);
        let data = String::from_utf8(mail.data.clone()).unwrap();
        // Unfolding (RFC 5322 §2.2.3) gives the input back.
        assert_eq!(data.replace("\r\n <", " <"), crlf(&message));
        assert!(
            log.contains(&format!(
                "folded header References: a line of {} octets",
                header.len()
            )),
            "{log}"
        );
    }
}

#[test]
fn a_header_with_no_white_space_to_fold_at_is_refused_before_connecting() {
    let message = format!("{CRON_HEAD}X-Token: {}\n\nbody\n", "t".repeat(1200));
    for log in refused(message.as_bytes()) {
        assert!(log.contains("header X-Token"), "{log}");
        assert!(log.contains("no white space to fold it at"), "{log}");
    }
}

#[test]
fn a_bare_cr_in_the_header_is_refused_so_no_bcc_can_leak() {
    let server = TestServer::start(ServerOptions::default());
    server.expect_unused();
    let s = setup(&server.addr());
    let message =
        b"From: a@example.com\nTo: to@example.com\rBcc: secret@example.com\nSubject: x\n\nbody\n";
    for route in ROUTES {
        let out = send(&s, route, message);
        assert_eq!(out.status.code(), Some(65), "{route:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("CR (carriage return)"),
            "{}",
            stderr(&out)
        );
    }
    // Nothing was sent: no Bcc header delivered, no envelope guessed.
    assert!(server.received().is_empty());
}

/// A server without 8BITMIME: re-encoding decides what it can take.
fn send_to_7bit_server(message: &str, replies: Vec<Vec<u8>>) -> (Output, Vec<String>) {
    let server = common::ScriptedServer::start(b"220 plain.test ESMTP\r\n", replies);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("8bit.eml");
    fs::write(&path, message).unwrap();
    let out = postie()
        .args([
            "--server",
            &server.addr(),
            "-f",
            "a@example.com",
            "--message",
        ])
        .arg(&path)
        .arg("b@example.com")
        .output()
        .unwrap();
    (out, server.lines())
}

#[test]
fn without_8bitmime_a_message_whose_only_8bit_part_was_re_encoded_goes_through() {
    let message = format!("{CRON_HEAD}\nGrüße\n{}\n", "x".repeat(1200));
    let reply = |r: &[u8]| r.to_vec();
    let (out, lines) = send_to_7bit_server(
        &message,
        vec![
            reply(b"250 plain.test\r\n"),
            reply(b"250 ok\r\n"),
            reply(b"250 ok\r\n"),
            reply(b"354 go\r\n"),
            reply(b"250 queued\r\n"),
            reply(b"221 bye\r\n"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // 7-bit now: no BODY=8BITMIME asked of a server that lacks it.
    assert!(
        lines.contains(&"MAIL FROM:<a@example.com>".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"Gr=C3=BC=C3=9Fe".to_string()), "{lines:?}");
}

#[test]
fn without_8bitmime_8bit_content_elsewhere_is_still_69() {
    // The long line is in part 2; part 1 stays 8-bit, as it was.
    let message = MIXED_HEAD.to_string() + &format!("\n{}\n--=_b1--\n", minified_json());
    let (out, lines) = send_to_7bit_server(
        &message,
        vec![b"250 plain.test\r\n".to_vec(), b"221 bye\r\n".to_vec()],
    );
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not support 8BITMIME"),
        "{}",
        stderr(&out)
    );
    assert!(!lines.iter().any(|l| l.starts_with("MAIL")), "{lines:?}");
}
