//! Ports that misbehave below SMTP: nothing listening, a listener that
//! never speaks, a STARTTLS handshake and then a flood.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use openssl::ssl::SslAcceptor;

use super::net::{accept_within, bind_local, set_timeouts};
use super::scripted::Flood;
use super::tls::{generate_cert, implicit_acceptor, CertKind};

/// A server for postie's -v certificate re-fetch: the first connection
/// offers STARTTLS and completes the handshake with a self-signed
/// certificate (which postie refuses, then connects again to show it);
/// the second gets `flood` as its greeting. Returns the port.
pub fn starttls_then_flood(flood: Flood) -> u16 {
    let listener = bind_local();
    let port = listener.local_addr().expect("local_addr").port();
    let certs = generate_cert(CertKind::Good);
    thread::Builder::new()
        .name("starttls-then-flood".into())
        .spawn(move || {
            let acceptor = implicit_acceptor(&certs, None);
            if let Some(stream) = accept_within(&listener, Duration::from_secs(30)) {
                set_timeouts(&stream, Duration::from_secs(10));
                let _ = starttls_session(stream, &acceptor);
            }
            if let Some(mut stream) = accept_within(&listener, Duration::from_secs(30)) {
                set_timeouts(&stream, Duration::from_secs(10));
                let _ = flood.write(&mut stream);
            }
        })
        .expect("spawn starttls-then-flood thread");
    port
}

/// Greeting, EHLO with STARTTLS, 220, then the TLS handshake.
fn starttls_session(stream: TcpStream, acceptor: &SslAcceptor) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    writer.write_all(b"220 localhost ESMTP\r\n")?;
    for reply in [
        &b"250-localhost\r\n250 STARTTLS\r\n"[..],
        b"220 go ahead\r\n",
    ] {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        writer.write_all(reply)?;
    }
    let _ = acceptor.accept(reader.into_inner());
    Ok(())
}

/// A server that accepts connections and never says anything (for
/// timeouts). Accepted sockets are held open for ~30 s; keep the returned
/// listener alive for the duration of the test.
pub fn silent_server() -> (TcpListener, u16) {
    let listener = bind_local();
    let port = listener.local_addr().expect("local_addr").port();
    let acceptor = listener.try_clone().expect("clone listener");
    thread::Builder::new()
        .name("silent-server".into())
        .spawn(move || {
            let _ = acceptor.set_nonblocking(true);
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut held = Vec::new();
            while Instant::now() < deadline {
                match acceptor.accept() {
                    Ok((s, _)) => held.push(s),
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
            drop(held);
        })
        .expect("spawn silent server thread");
    (listener, port)
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
pub fn closed_port() -> u16 {
    let listener = bind_local();
    listener.local_addr().expect("local_addr").port()
}
