//! Replies explained by what they mean: each real provider's wording
//! (Gmail, Exchange Online, Postfix, Exim) gives one exact stderr line and
//! the exit code of `smtp::classify`'s table; and the port mix-ups (plain
//! SMTP on an implicit TLS port, TLS on a plain one) say which to use.

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::common::{closed_port, postie, silent_server, skip, ScriptedServer};

const GREETING: &[u8] = b"220 mx.test ESMTP\r\n";
/// An EHLO reply that offers AUTH (and no STARTTLS, so that the loopback
/// default, opportunistic TLS, goes on in clear text).
const EHLO_AUTH: &[u8] =
    b"250-mx.test\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN\r\n";
const EHLO_PLAIN: &[u8] = b"250-mx.test\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n";
const OK: &[u8] = b"250 2.0.0 ok\r\n";
const BYE: &[u8] = b"221 2.0.0 bye\r\n";

fn scripted(greeting: &[u8], replies: &[&[u8]]) -> ScriptedServer {
    ScriptedServer::start(greeting, replies.iter().map(|r| r.to_vec()).collect())
}

/// postie sending one message from a@example.com to b@example.org through
/// `server`, plus `extra`; returns (exit code, stderr).
fn send(server: &str, extra: &[&str]) -> (i32, String) {
    let output = postie()
        .args(["--server", server, "-f", "a@example.com", "--no-queue"])
        .args(["b@example.org", "--body", "x"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr)
}

/// A server that takes MAIL, RCPT and DATA and answers the end of the
/// message with `reply`: the send's server address, exit code and stderr.
fn refused_at_end_of_data(reply: &str) -> (String, i32, String) {
    let srv = scripted(
        GREETING,
        &[
            EHLO_PLAIN,
            OK,
            OK,
            b"354 go ahead\r\n",
            format!("{reply}\r\n").as_bytes(),
            BYE,
        ],
    );
    let (code, stderr) = send(&srv.addr(), &[]);
    (srv.addr(), code, stderr)
}

fn line(text: &str) -> String {
    format!("postie: error: {text}\n")
}

const TLS_REQUIRED: &str = "the server requires TLS: use --tls starttls (the account's `tls`), or an smtps:// URL for port 465 (EX_UNAVAILABLE 69)";
const AUTH_REQUIRED: &str = "the server requires authentication: give --user and --password-cmd, or set the account's `user` and `password_cmd` (EX_NOPERM 77)";

#[test]
fn gmail_starttls_required_names_the_tls_setting() {
    let reply = "530 5.7.0 Must issue a STARTTLS command first. d2-20020a05600c4e8200b0040e3635ca65sm1234567wmq.1 - gsmtp";
    let srv = scripted(
        b"220 smtp.gmail.com ESMTP d2-20020a05600c4e8200b0040e3635ca65sm1234567wmq.1 - gsmtp\r\n",
        &[EHLO_PLAIN, format!("{reply}\r\n").as_bytes(), BYE],
    );
    let (code, stderr) = send(&srv.addr(), &["--tls", "none"]);
    assert_eq!(code, 69, "{stderr}");
    assert_eq!(
        stderr,
        line(&format!(
            "MAIL FROM: {} replied {reply}; {TLS_REQUIRED}",
            srv.addr()
        ))
    );
}

#[test]
fn exchange_online_client_not_authenticated_asks_for_a_login() {
    let reply = "530 5.7.57 Client not authenticated to send mail. [AM0PR10CA0001.EURPRD10.PROD.OUTLOOK.COM 2026-12-02T06:00:00.000Z 08DD1234567890AB]";
    let srv = scripted(
        b"220 AM0PR10CA0001.outlook.office365.com Microsoft ESMTP MAIL Service ready\r\n",
        &[EHLO_AUTH, format!("{reply}\r\n").as_bytes(), BYE],
    );
    let (code, stderr) = send(&srv.addr(), &[]);
    assert_eq!(code, 77, "{stderr}");
    assert_eq!(
        stderr,
        line(&format!(
            "MAIL FROM: {} replied {reply}; {AUTH_REQUIRED}",
            srv.addr()
        ))
    );
}

#[test]
fn authentication_required_asks_for_a_login() {
    let reply = "530 5.7.0 Authentication required";
    let srv = scripted(
        GREETING,
        &[EHLO_AUTH, b"530 5.7.0 Authentication required\r\n", BYE],
    );
    let (code, stderr) = send(&srv.addr(), &[]);
    assert_eq!(code, 77, "{stderr}");
    assert_eq!(
        stderr,
        line(&format!(
            "MAIL FROM: {} replied {reply}; {AUTH_REQUIRED}",
            srv.addr()
        ))
    );
}

#[test]
fn postfix_relay_access_denied_asks_for_a_login() {
    let reply = "554 5.7.1 <b@example.org>: Relay access denied";
    let srv = scripted(
        GREETING,
        &[EHLO_AUTH, OK, format!("{reply}\r\n").as_bytes(), OK, BYE],
    );
    let (code, stderr) = send(&srv.addr(), &[]);
    assert_eq!(code, 77, "{stderr}");
    assert_eq!(
        stderr,
        line(&format!(
            "RCPT TO: {} refused <b@example.org>: {reply}; {AUTH_REQUIRED}",
            srv.addr()
        ))
    );
}

#[test]
fn exim_relay_not_permitted_asks_for_a_login() {
    let srv = scripted(
        b"220 mail.example.org ESMTP Exim 4.96 Wed, 02 Dec 2026 06:00:00 +0000\r\n",
        &[EHLO_AUTH, OK, b"550 relay not permitted\r\n", OK, BYE],
    );
    let (code, stderr) = send(&srv.addr(), &[]);
    assert_eq!(code, 77, "{stderr}");
    assert_eq!(
        stderr,
        line(&format!(
            "RCPT TO: {} refused <b@example.org>: 550 relay not permitted; {AUTH_REQUIRED}",
            srv.addr()
        ))
    );
}

/// Where neither a login nor TLS (to get one through) was offered, a
/// login is not the answer: this server does not take the mail from this
/// client, and the recipient is not delivered (67).
#[test]
fn relay_denied_without_auth_or_tls_offered_says_to_use_a_submission_server() {
    let reply = "554 5.7.1 <b@example.org>: Relay access denied";
    let srv = scripted(
        GREETING,
        &[EHLO_PLAIN, OK, format!("{reply}\r\n").as_bytes(), OK, BYE],
    );
    let (code, stderr) = send(&srv.addr(), &[]);
    assert_eq!(code, 67, "{stderr}");
    assert_eq!(
        stderr,
        line(&format!(
            "RCPT TO: {} refused <b@example.org>: {reply}; the server does not take this mail from this client and offers no login; send through your own provider's submission server (port 587); nothing was sent (EX_NOUSER 67)",
            srv.addr()
        ))
    );
}

#[test]
fn gmail_wrong_password_says_so() {
    let srv = scripted(
        GREETING,
        &[
            EHLO_AUTH,
            b"535-5.7.8 Username and Password not accepted. For more information, go to\r\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials d2-20020a05600c4e8200b0040e3635ca65sm1234567wmq.1 - gsmtp\r\n",
            BYE,
        ],
    );
    let (code, stderr) = send(
        &srv.addr(),
        // PLAIN by name: on loopback without TLS `auto` uses only SCRAM.
        &[
            "--user",
            "me",
            "--password-cmd",
            "echo wrong",
            "--auth",
            "plain",
        ],
    );
    assert_eq!(code, 77, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "postie: error: AUTH: {} replied 535 5.7.8 Username and Password not accepted.",
            srv.addr()
        )),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("; wrong user name or password (EX_NOPERM 77)\n"),
        "{stderr}"
    );
}

#[test]
fn gmail_unauthenticated_sender_at_the_end_of_data_is_a_policy_refusal() {
    let reply = "550 5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM. - gsmtp";
    let (addr, code, stderr) = refused_at_end_of_data(reply);
    assert_eq!(code, 69, "{stderr}");
    assert_eq!(
        stderr,
        line(&format!(
            "end of DATA: {} replied {reply}; refused by the server's policy (SPF, a blocklist, a sender it does not allow); its reply says why (EX_UNAVAILABLE 69)",
            addr
        ))
    );
}

#[test]
fn postfix_unknown_sender_domain_at_rcpt_names_from() {
    let reply = "550 5.1.8 <a@example.com>: Sender address rejected: Domain not found";
    let srv = scripted(
        GREETING,
        &[EHLO_PLAIN, OK, format!("{reply}\r\n").as_bytes(), OK, BYE],
    );
    let (code, stderr) = send(&srv.addr(), &[]);
    assert_eq!(code, 69, "{stderr}");
    assert_eq!(
        stderr,
        line(&format!(
            "RCPT TO: {} refused <b@example.org>: {reply}; the server does not accept this sender address; check --from (or the account's `from`) (EX_UNAVAILABLE 69)",
            srv.addr()
        ))
    );
}

#[test]
fn postfix_message_too_big_at_the_end_of_data() {
    let reply = "552 5.3.4 Message size exceeds fixed limit";
    let (addr, code, stderr) = refused_at_end_of_data(reply);
    assert_eq!(code, 69, "{stderr}");
    assert_eq!(
        stderr,
        line(&format!(
            "end of DATA: {} replied {reply}; the message is too big for the server or the mailbox; send smaller attachments, or a link to the file (EX_UNAVAILABLE 69)",
            addr
        ))
    );
}

#[test]
fn a_refusal_at_the_end_of_data_says_what_to_try() {
    let reply = "554 5.6.0 Message rejected";
    let (addr, code, stderr) = refused_at_end_of_data(reply);
    assert_eq!(code, 69, "{stderr}");
    assert_eq!(
        stderr,
        line(&format!(
            "end of DATA: {} replied {reply}; the server refused the message after reading it; nothing was delivered, and its reply says why (EX_UNAVAILABLE 69)",
            addr
        ))
    );
}

#[test]
fn starttls_chosen_but_not_offered_names_the_choice() {
    let srv = scripted(GREETING, &[EHLO_PLAIN, BYE]);
    let (code, stderr) = send(&srv.addr(), &["--tls", "starttls"]);
    assert_eq!(code, 69, "{stderr}");
    assert_eq!(
        stderr,
        line(&format!(
            "STARTTLS: {} does not offer STARTTLS, which --tls starttls (or the account's `tls`) requires; use --tls implicit (an smtps:// URL) if the server listens for TLS, or --tls none only on a network you trust (EX_UNAVAILABLE 69)",
            srv.addr()
        ))
    );
}

#[test]
fn errors_name_their_stage() {
    let port = closed_port();
    let (code, stderr) = send(&format!("127.0.0.1:{port}"), &[]);
    assert_eq!(code, 75, "{stderr}");
    assert_eq!(
        stderr,
        line(&format!("connect: cannot connect to 127.0.0.1:{port}: connection refused; check the server and port; try again later (EX_TEMPFAIL 75)"))
    );

    let (code, stderr) = send(
        "127.0.0.1:25",
        &["--user", "me", "--password-cmd", "exit 3"],
    );
    assert_eq!(code, 78, "{stderr}");
    assert_eq!(
        stderr,
        line("password command: \"exit 3\" failed (exit status 3); run it in a shell to see why, or fix --password-cmd (the account's `password_cmd`) (EX_CONFIG 78)")
    );
}

/// With -v the dialogue shows what happened; the error line comes once,
/// at the end, not also in the transcript.
#[test]
fn with_v_the_error_is_printed_once() {
    let port = closed_port();
    let (code, stderr) = send(&format!("127.0.0.1:{port}"), &["-v"]);
    assert_eq!(code, 75, "{stderr}");
    assert_eq!(stderr.matches("connection refused").count(), 1, "{stderr}");
    assert!(stderr.ends_with("(EX_TEMPFAIL 75)\n"), "{stderr}");

    let reply = "530 5.7.0 Authentication required";
    let srv = scripted(
        GREETING,
        &[EHLO_AUTH, b"530 5.7.0 Authentication required\r\n", BYE],
    );
    let (code, stderr) = send(&srv.addr(), &["-v"]);
    assert_eq!(code, 77, "{stderr}");
    assert_eq!(
        stderr.matches("requires authentication").count(),
        1,
        "{stderr}"
    );
    // The reply itself is in the transcript and in the error line.
    assert_eq!(stderr.matches(reply).count(), 2, "{stderr}");
}

// ---- port mix-ups -------------------------------------------------------

const IMPLICIT_HINT_465: &str =
    "port 465 expects implicit TLS: use an smtps:// URL or --tls implicit";
const IMPLICIT_HINT: &str =
    "if this port expects implicit TLS, use an smtps:// URL or --tls implicit";

/// A listener on port 465 of some 127/8 address (any of them is
/// loopback), or None (after `skip`) where binding it is not allowed.
fn listen_on_465() -> Option<(TcpListener, String)> {
    for last in 2..40u8 {
        let address = format!("127.46.5.{last}:465");
        if let Ok(listener) = TcpListener::bind(&address) {
            return Some((listener, address));
        }
    }
    skip("cannot bind port 465 on a loopback address (needs root or CAP_NET_BIND_SERVICE)");
    None
}

#[test]
fn a_silent_port_465_without_implicit_tls_is_given_up_after_10_s() {
    let Some((listener, address)) = listen_on_465() else {
        return;
    };
    let started = Instant::now();
    let (code, stderr) = send(&address, &["--tls", "starttls"]);
    let waited = started.elapsed();
    drop(listener);
    assert_eq!(code, 75, "{stderr}");
    assert_eq!(
        stderr,
        line(&format!("greeting/EHLO: timed out after 10 s waiting for the greeting from {address}; {IMPLICIT_HINT_465} (EX_TEMPFAIL 75)"))
    );
    assert!(waited < Duration::from_secs(20), "{waited:?}");
}

#[test]
fn port_465_closed_before_the_greeting_suggests_implicit_tls() {
    let Some((listener, address)) = listen_on_465() else {
        return;
    };
    let closer = std::thread::spawn(move || {
        // Accepted and closed at once, as a server does on a bad handshake.
        let _ = listener.accept();
    });
    let (code, stderr) = send(&address, &["--tls", "starttls"]);
    closer.join().unwrap();
    assert_eq!(code, 74, "{stderr}");
    assert_eq!(
        stderr,
        line(&format!("greeting/EHLO: {address} closed the connection before its greeting; {IMPLICIT_HINT_465} (EX_IOERR 74)"))
    );
}

/// On other ports a slow greeting is legitimate: the timeout is the
/// user's, and only the hint is added.
#[test]
fn a_silent_port_elsewhere_keeps_its_timeout_and_gains_the_hint() {
    let (_listener, port) = silent_server();
    let (code, stderr) = send(&format!("127.0.0.1:{port}"), &["--timeout", "1"]);
    assert_eq!(code, 75, "{stderr}");
    assert_eq!(
        stderr,
        line(&format!("greeting/EHLO: timed out after 1 s waiting for the greeting from 127.0.0.1:{port}; the server is slow or unreachable; try again later or raise --timeout; {IMPLICIT_HINT} (EX_TEMPFAIL 75)"))
    );
}

#[test]
fn a_tls_record_where_the_greeting_was_expected_suggests_implicit_tls() {
    // The start of a TLS alert record, as an implicit TLS server that
    // read the client's first bytes as a broken ClientHello sends.
    let srv = scripted(b"\x16\x03\x01\x00\x02\x02\x28", &[]);
    let (code, stderr) = send(&srv.addr(), &["--tls", "starttls"]);
    assert_eq!(code, 76, "{stderr}");
    assert_eq!(
        stderr,
        line(&format!("greeting/EHLO: {} sent a TLS record where the SMTP greeting was expected; this port speaks implicit TLS: use an smtps:// URL or --tls implicit (EX_PROTOCOL 76)", srv.addr()))
    );
}

#[test]
fn implicit_tls_to_a_plain_server_suggests_smtp() {
    let srv = scripted(GREETING, &[]);
    let (code, stderr) = send(&format!("smtps://{}", srv.addr()), &[]);
    assert_eq!(code, 76, "{stderr}");
    assert_eq!(
        stderr,
        line(&format!("TLS handshake: {} answered the TLS handshake in plain text (an SMTP greeting); the server speaks plain SMTP here; use smtp:// (STARTTLS) or port 587 (EX_PROTOCOL 76)", srv.addr()))
    );
    // Also when the greeting comes only after the client's first bytes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let late = std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            std::thread::sleep(Duration::from_millis(200));
            let _ = stream.write_all(b"220 late.test ESMTP\r\n500 5.5.1 what?\r\n");
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let (code, stderr) = send(&format!("127.0.0.1:{port}"), &["--tls", "implicit"]);
    late.join().unwrap();
    assert_eq!(code, 76, "{stderr}");
    assert!(
        stderr.contains("use smtp:// (STARTTLS) or port 587"),
        "{stderr}"
    );
}
