//! An SMTP server that proves sessions run at once, without timing them:
//! it holds every new connection before its greeting until `wanted`
//! connections are open together (or, for a client that never opens that
//! many, until a fallback deadline), and records the most it saw open at
//! once. A client that connects one at a time waits out the deadline once
//! and shows a peak of 1; one that runs sessions side by side shows its
//! real peak. It answers the plainest SMTP (no extensions) and accepts
//! every message.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Counts {
    open: usize,
    peak: usize,
    /// Set once `wanted` were open together, or the deadline passed:
    /// nobody is held from then on.
    released: bool,
    /// The recipients of each accepted message.
    messages: Vec<Vec<String>>,
}

pub struct GateServer {
    pub port: u16,
    counts: Arc<(Mutex<Counts>, Condvar)>,
}

impl GateServer {
    /// Holds connections until `wanted` are open at once, or `fallback`
    /// after the first one arrived.
    pub fn start(wanted: usize, fallback: Duration) -> GateServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let counts = Arc::new((Mutex::new(Counts::default()), Condvar::new()));
        let shared = Arc::clone(&counts);
        std::thread::spawn(move || {
            let mut first: Option<Instant> = None;
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let deadline = *first.get_or_insert_with(|| Instant::now() + fallback);
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &shared, wanted, deadline));
            }
        });
        GateServer { port, counts }
    }

    /// The most connections that were open at the same time.
    pub fn peak(&self) -> usize {
        self.counts.0.lock().unwrap().peak
    }

    /// The recipients of each message accepted, in no particular order.
    pub fn messages(&self) -> Vec<Vec<String>> {
        let mut messages = self.counts.0.lock().unwrap().messages.clone();
        messages.sort();
        messages
    }
}

fn serve(stream: TcpStream, shared: &(Mutex<Counts>, Condvar), wanted: usize, deadline: Instant) {
    let (lock, changed) = shared;
    {
        let mut counts = lock.lock().unwrap();
        counts.open += 1;
        counts.peak = counts.peak.max(counts.open);
        if counts.open >= wanted {
            counts.released = true;
        }
        changed.notify_all();
        while !counts.released {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                counts.released = true;
                changed.notify_all();
                break;
            }
            counts = changed.wait_timeout(counts, left).unwrap().0;
        }
    }
    let mut session = Session {
        counts: lock,
        left: false,
    };
    let accepted = dialogue(stream, &mut session);
    session.leave(accepted);
}

/// One connection's place in the count.
struct Session<'a> {
    counts: &'a Mutex<Counts>,
    left: bool,
}

impl Session<'_> {
    /// No longer open (once), with the message accepted, if any.
    fn leave(&mut self, accepted: Option<Vec<String>>) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        let mut counts = self.counts.lock().unwrap();
        counts.open -= 1;
        counts.messages.extend(accepted);
    }
}

/// One session; the message's recipients when one was accepted.
fn dialogue(stream: TcpStream, session: &mut Session) -> Option<Vec<String>> {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut out = stream.try_clone().ok()?;
    let mut lines = BufReader::new(stream);
    out.write_all(b"220 gate.test ESMTP\r\n").ok()?;
    let mut recipients = Vec::new();
    let mut accepted = None;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).ok()? == 0 {
            return accepted;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 gate.test\r\n",
            "MAIL" => b"250 ok\r\n",
            "RCPT" => {
                let address = line.trim_end().split_once(':').map(|(_, a)| a.trim());
                let address = address.unwrap_or("").trim_matches(['<', '>']);
                recipients.push(address.to_string());
                b"250 ok\r\n"
            }
            "DATA" => {
                out.write_all(b"354 go on\r\n").ok()?;
                loop {
                    line.clear();
                    if lines.read_line(&mut line).ok()? == 0 {
                        return accepted;
                    }
                    if line.trim_end_matches(['\r', '\n']) == "." {
                        break;
                    }
                }
                accepted = Some(std::mem::take(&mut recipients));
                b"250 queued\r\n"
            }
            "QUIT" => {
                // Counted as closed before the client hears 221, after
                // which it may open its next session at once.
                session.leave(accepted);
                let _ = out.write_all(b"221 bye\r\n");
                return None;
            }
            _ => b"502 not here\r\n",
        };
        out.write_all(reply).ok()?;
    }
}
