//! The relays in front of mailin: a plain one that watches for STARTTLS
//! (for `Tls::StartTls`), and a TLS terminator (for `Tls::Implicit`).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openssl::ssl::{SslAcceptor, SslConnector, SslMethod, SslStream, SslVerifyMode};

use super::lock;
use super::net::{expect_code, read_line_raw, read_reply_raw, set_timeouts};
use super::server::Shared;
use super::usage::Usage;

/// Bound on every blocking socket operation inside the harness.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Poll interval of the single-threaded TLS<->TLS pump.
const PUMP_POLL: Duration = Duration::from_millis(5);
/// mailin's reply to STARTTLS (mailin::response::START_TLS, crate-private).
const MAILIN_STARTTLS_REPLY: &[u8] = b"220 Ready to start TLS\r\n";

/// Copies `from` -> `to` until EOF/error, calling `inspect` on every chunk
/// before forwarding it; then half-closes `to`.
fn pipe(mut from: TcpStream, mut to: TcpStream, mut inspect: impl FnMut(&[u8])) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                inspect(&buf[..n]);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = to.flush();
    let _ = to.shutdown(Shutdown::Write);
}

#[derive(PartialEq)]
enum Step {
    Data,
    Idle,
    Closed,
}

fn pump_step<R: Read, W: Write>(from: &mut R, to: &mut W, buf: &mut [u8]) -> Step {
    match from.read(buf) {
        Ok(0) => Step::Closed,
        Ok(n) => {
            if to.write_all(&buf[..n]).and_then(|_| to.flush()).is_ok() {
                Step::Data
            } else {
                Step::Closed
            }
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
            ) =>
        {
            Step::Idle
        }
        Err(_) => Step::Closed,
    }
}

/// Relays between two TLS streams from one thread (an `SslStream` cannot be
/// split across threads) by polling both with a short read timeout. Returns
/// when either side closes or after `IO_TIMEOUT` without traffic, then closes
/// both sides with close_notify.
fn pump_tls(mut a: SslStream<TcpStream>, mut b: SslStream<TcpStream>) {
    let _ = a.get_ref().set_read_timeout(Some(PUMP_POLL));
    let _ = b.get_ref().set_read_timeout(Some(PUMP_POLL));
    let mut buf = vec![0u8; 16 * 1024];
    let mut last_traffic = Instant::now();
    loop {
        let s1 = pump_step(&mut a, &mut b, &mut buf);
        let s2 = if s1 == Step::Closed {
            Step::Closed
        } else {
            pump_step(&mut b, &mut a, &mut buf)
        };
        if s1 == Step::Closed || s2 == Step::Closed {
            break;
        }
        if s1 == Step::Data || s2 == Step::Data {
            last_traffic = Instant::now();
        } else if last_traffic.elapsed() > IO_TIMEOUT {
            break;
        }
    }
    for s in [&mut a, &mut b] {
        let _ = s
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)));
        let _ = s.shutdown();
        let _ = s.get_ref().shutdown(Shutdown::Both);
    }
}

/// Plain relay for `Tls::StartTls`. Connections are handled strictly in
/// order: the relay connects to mailin and waits for mailin's greeting
/// before accepting the next client, which guarantees that relay ordinal N
/// and mailin's N-th handler clone are the same session.
pub(super) fn spawn_starttls_relay(public: TcpListener, internal: SocketAddr, shared: Arc<Shared>) {
    let usage = Arc::clone(&shared.usage);
    let spawned = usage.spawn("smtp-starttls-relay", move || {
        let mut ordinal = 0usize;
        for client in public.incoming() {
            let Ok(client) = client else { continue };
            shared.usage.connected();
            let Ok(mut upstream) = TcpStream::connect_timeout(&internal, IO_TIMEOUT) else {
                continue;
            };
            let session = ordinal;
            ordinal += 1;
            let tls_flag = Arc::new(AtomicBool::new(false));
            lock(&shared.session_tls).insert(session, Arc::clone(&tls_flag));
            set_timeouts(&client, IO_TIMEOUT);
            set_timeouts(&upstream, IO_TIMEOUT);
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let Ok(greeting) = read_line_raw(&mut upstream) else {
                continue;
            };
            let (Ok(client_r), Ok(upstream_w)) = (client.try_clone(), upstream.try_clone()) else {
                continue;
            };
            let mut client_w = client;
            if client_w.write_all(&greeting).is_err() {
                continue;
            }
            let _ = shared
                .usage
                .spawn("smtp-relay-c2s", move || pipe(client_r, upstream_w, |_| {}));
            let _ = shared.usage.spawn("smtp-relay-s2c", move || {
                let mut window: Vec<u8> = Vec::new();
                pipe(upstream, client_w, move |chunk| {
                    if tls_flag.load(Ordering::SeqCst) {
                        return;
                    }
                    window.extend_from_slice(chunk);
                    if window
                        .windows(MAILIN_STARTTLS_REPLY.len())
                        .any(|w| w == MAILIN_STARTTLS_REPLY)
                    {
                        tls_flag.store(true, Ordering::SeqCst);
                        window = Vec::new();
                    } else if window.len() > 256 {
                        window.drain(..window.len() - 64);
                    }
                })
            });
        }
    });
    spawned.expect("spawn STARTTLS relay thread");
}

/// Implicit-TLS terminator: TLS-accepts the client, opens a session to
/// mailin, upgrades that hop with EHLO + STARTTLS (so mailin considers the
/// session TLS and offers AUTH), sends mailin's greeting to the client and
/// relays.
pub(super) fn spawn_implicit_terminator(
    public: TcpListener,
    internal: SocketAddr,
    acceptor: SslAcceptor,
    usage: &Arc<Usage>,
) {
    let acceptor = Arc::new(acceptor);
    let conns = Arc::clone(usage);
    let spawned = usage.spawn("smtps-terminator", move || {
        for client in public.incoming() {
            let Ok(client) = client else { continue };
            conns.connected();
            let acceptor = Arc::clone(&acceptor);
            let _ = conns.spawn("smtps-conn", move || {
                let _ = terminate_one(client, internal, &acceptor);
            });
        }
    });
    spawned.expect("spawn implicit TLS terminator thread");
}

fn terminate_one(
    client: TcpStream,
    internal: SocketAddr,
    acceptor: &SslAcceptor,
) -> io::Result<()> {
    set_timeouts(&client, IO_TIMEOUT);
    let _ = client.set_nodelay(true);
    let mut client = acceptor.accept(client).map_err(io::Error::other)?;

    let mut upstream = TcpStream::connect_timeout(&internal, IO_TIMEOUT)?;
    set_timeouts(&upstream, IO_TIMEOUT);
    let _ = upstream.set_nodelay(true);
    let greeting = read_reply_raw(&mut upstream)?;
    expect_code(&greeting, b"220")?;
    upstream.write_all(b"EHLO implicit-tls-terminator.invalid\r\n")?;
    expect_code(&read_reply_raw(&mut upstream)?, b"250")?;
    upstream.write_all(b"STARTTLS\r\n")?;
    expect_code(&read_reply_raw(&mut upstream)?, b"220")?;

    let mut connector = SslConnector::builder(SslMethod::tls_client()).map_err(io::Error::other)?;
    connector.set_verify(SslVerifyMode::NONE);
    let upstream = connector
        .build()
        .configure()
        .map_err(io::Error::other)?
        .verify_hostname(false)
        .use_server_name_indication(false)
        .connect("localhost", upstream)
        .map_err(io::Error::other)?;

    client.write_all(&greeting)?;
    client.flush()?;
    pump_tls(client, upstream);
    Ok(())
}
