//! The scripted server, for failure classes mailin cannot produce.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::net::{accept_within, bind_local, set_timeouts};
use super::usage::Usage;
use super::{lock, WAIT};

/// A scripted server for failure classes mailin cannot produce.
///
/// Accepts one connection (waiting up to 30 s for it), writes `greeting`,
/// then for each line the client sends writes the next entry of `replies`
/// (exact bytes; multi-line allowed). DATA-aware: after a reply starting
/// with `354` the message lines are recorded but consume no reply until the
/// terminating `.` line, which consumes one. When the replies run out the
/// server half-closes (FIN after the last reply), records whatever the
/// client still sends for a moment, and closes.
/// `start_abrupt` and `start_interrupting_data` close at once instead, the
/// way a server that hangs up on the client does.
pub struct ScriptedServer {
    pub port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    accepted: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    started: Instant,
    usage: Arc<Usage>,
}

impl ScriptedServer {
    pub fn start(greeting: &[u8], replies: Vec<Vec<u8>>) -> ScriptedServer {
        Self::start_with(greeting, replies, Script::default())
    }

    /// As `start`, but every reply is written a few bytes at a time with
    /// pauses, so that the client gets each reply across several reads.
    pub fn start_trickling(greeting: &[u8], replies: Vec<Vec<u8>>) -> ScriptedServer {
        Self::start_with(
            greeting,
            replies,
            Script {
                trickle: true,
                ..Script::default()
            },
        )
    }

    /// As `start`, but when the replies run out the server closes at once
    /// instead of reading on: whatever the client sends after the last
    /// reply meets a reset.
    pub fn start_abrupt(greeting: &[u8], replies: Vec<Vec<u8>>) -> ScriptedServer {
        Self::start_with(
            greeting,
            replies,
            Script {
                abrupt_end: true,
                ..Script::default()
            },
        )
    }

    /// As `start`, but `after_lines` lines into a message (after a 354)
    /// the server writes `reply` and closes at once, unread data and all,
    /// so that a client still writing the message gets a reset: a server
    /// that refuses a message mid-way (552 too big, 421 shutting down).
    pub fn start_interrupting_data(
        greeting: &[u8],
        replies: Vec<Vec<u8>>,
        after_lines: usize,
        reply: &[u8],
    ) -> ScriptedServer {
        Self::start_with(
            greeting,
            replies,
            Script {
                interrupt_data: Some((after_lines, reply.to_vec())),
                ..Script::default()
            },
        )
    }

    /// As `start`, but the reply at `at` (0 the greeting, 1 the first of
    /// `replies`) is replaced by `flood`: an endless multi-line reply or
    /// one huge line, written until done or until the client goes away.
    pub fn start_flooding(
        greeting: &[u8],
        replies: Vec<Vec<u8>>,
        at: usize,
        flood: Flood,
    ) -> ScriptedServer {
        Self::start_with(
            greeting,
            replies,
            Script {
                flood: Some((at, flood)),
                ..Script::default()
            },
        )
    }

    /// As `start`, but every byte is written on its own after `pause`: a
    /// slowloris server, or (with a pause of a few ms) one whose every
    /// line of a reply comes in a later packet than the one before.
    pub fn start_slow(greeting: &[u8], replies: Vec<Vec<u8>>, pause: Duration) -> ScriptedServer {
        Self::start_with(
            greeting,
            replies,
            Script {
                byte_pause: Some(pause),
                ..Script::default()
            },
        )
    }

    /// As `start`, but each line of a reply is written on its own, `pause`
    /// after the one before: a second line is in a later packet.
    pub fn start_line_by_line(
        greeting: &[u8],
        replies: Vec<Vec<u8>>,
        pause: Duration,
    ) -> ScriptedServer {
        Self::start_with(
            greeting,
            replies,
            Script {
                line_pause: Some(pause),
                ..Script::default()
            },
        )
    }

    fn start_with(greeting: &[u8], replies: Vec<Vec<u8>>, script: Script) -> ScriptedServer {
        let listener = bind_local();
        let port = listener.local_addr().expect("local_addr").port();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let greeting = greeting.to_vec();
        let usage = Arc::new(Usage::default());
        let (l, a, d) = (Arc::clone(&lines), Arc::clone(&accepted), Arc::clone(&done));
        let u = Arc::clone(&usage);
        usage
            .spawn("scripted-smtp", move || {
                if let Some(stream) = accept_within(&listener, Duration::from_secs(30)) {
                    drop(listener);
                    a.store(true, Ordering::SeqCst);
                    u.connected();
                    let _ = run_script(stream, &greeting, replies, &l, &script);
                }
                d.store(true, Ordering::SeqCst);
            })
            .expect("spawn scripted server thread");
        ScriptedServer {
            port,
            lines,
            accepted,
            done,
            started: Instant::now(),
            usage,
        }
    }

    /// "127.0.0.1:PORT"
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Says that postie is not meant to connect: the drop then checks
    /// that it did not, instead of that it did.
    pub fn expect_unused(&self) {
        self.usage.expect_unused();
    }

    /// Lines received so far, without the trailing CRLF/LF.
    ///
    /// If a client connected, waits (up to 5 s) for the scripted session to
    /// end first, so that calling this right after postie exited is not racy.
    pub fn lines(&self) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        while !self.done.load(Ordering::SeqCst) && Instant::now() < deadline {
            if !self.accepted.load(Ordering::SeqCst)
                && self.started.elapsed() > Duration::from_millis(300)
            {
                thread::sleep(Duration::from_millis(50));
                if !self.accepted.load(Ordering::SeqCst) {
                    break;
                }
            }
            thread::sleep(Duration::from_millis(10));
        }
        lock(&self.lines).clone()
    }
}

/// What a flooding ScriptedServer writes in place of one reply:
/// `prefix`, `unit` `count` times, then `suffix`.
pub struct Flood {
    pub prefix: Vec<u8>,
    pub unit: Vec<u8>,
    pub count: usize,
    pub suffix: Vec<u8>,
}

impl Flood {
    /// `220-xxx...` lines of 80 bytes (short enough for any reader's line
    /// limit), 1.3 GB of them: never ends in a test.
    pub fn endless_reply(code: &str) -> Flood {
        let mut unit = format!("{code}-").into_bytes();
        unit.resize(78, b'x');
        unit.extend_from_slice(b"\r\n");
        Flood {
            prefix: Vec::new(),
            unit,
            count: 1 << 24,
            suffix: Vec::new(),
        }
    }

    /// One line of `megabytes` MiB, ended by CRLF.
    pub fn huge_line(code: &str, megabytes: usize) -> Flood {
        Flood {
            prefix: format!("{code} ").into_bytes(),
            unit: vec![b'x'; 1 << 20],
            count: megabytes,
            suffix: b"\r\n".to_vec(),
        }
    }

    pub(super) fn write(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.prefix)?;
        for _ in 0..self.count {
            out.write_all(&self.unit)?;
        }
        out.write_all(&self.suffix)?;
        out.flush()
    }
}

/// How a ScriptedServer departs from plain replies.
#[derive(Default)]
struct Script {
    trickle: bool,
    /// The reply at this index (0 the greeting) is this flood instead.
    flood: Option<(usize, Flood)>,
    /// Write each byte on its own, after this pause.
    byte_pause: Option<Duration>,
    /// Write each line on its own, after this pause.
    line_pause: Option<Duration>,
    /// Close without draining when the replies run out.
    abrupt_end: bool,
    /// After this many message lines: write the reply, then close at once.
    interrupt_data: Option<(usize, Vec<u8>)>,
}

fn run_script(
    stream: TcpStream,
    greeting: &[u8],
    replies: Vec<Vec<u8>>,
    lines: &Mutex<Vec<String>>,
    script: &Script,
) -> io::Result<()> {
    set_timeouts(&stream, Duration::from_secs(10));
    let _ = stream.set_nodelay(true);
    let mut writer = TrickleWriter {
        inner: stream.try_clone()?,
        trickle: script.trickle,
        byte_pause: script.byte_pause,
        line_pause: script.line_pause,
    };
    let mut reader = BufReader::new(stream);
    let record = |raw: &[u8]| {
        let text = String::from_utf8_lossy(raw);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        lock(lines).push(text.to_string());
    };

    let mut written = 0;
    let mut reply = |writer: &mut TrickleWriter, bytes: &[u8]| -> io::Result<()> {
        let flood = script.flood.as_ref().filter(|(at, _)| *at == written);
        written += 1;
        match flood {
            Some((_, flood)) => flood.write(&mut writer.inner),
            None => {
                writer.write_all(bytes)?;
                writer.flush()
            }
        }
    };
    reply(&mut writer, greeting)?;
    let mut replies = replies.into_iter().peekable();
    let mut in_data = false;
    let mut raw = Vec::new();
    let mut client_closed = false;
    let mut message_lines = 0;
    // A message being interrupted still needs reading after the last reply.
    while replies.peek().is_some() || (in_data && script.interrupt_data.is_some()) {
        raw.clear();
        if reader.read_until(b'\n', &mut raw)? == 0 {
            client_closed = true;
            break;
        }
        record(&raw);
        // Inside DATA only the terminating "." line earns a reply.
        if in_data && raw != b".\r\n" && raw != b".\n" {
            message_lines += 1;
            if let Some((after, reply)) = &script.interrupt_data {
                if message_lines >= *after {
                    writer.write_all(reply)?;
                    writer.flush()?;
                    // Dropping both halves with the message unread: a reset.
                    return Ok(());
                }
            }
            continue;
        }
        let Some(next) = replies.next() else {
            break;
        };
        reply(&mut writer, &next)?;
        in_data = next.starts_with(b"354");
    }

    if script.abrupt_end {
        return Ok(());
    }
    // Out of replies: FIN, then drain briefly so the client reads our last
    // reply rather than a reset.
    let _ = writer.inner.shutdown(Shutdown::Write);
    if !client_closed {
        let _ = reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(2)));
        let drain_until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < drain_until {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => record(&raw),
            }
        }
    }
    Ok(())
}

/// Writes whole buffers, or (trickling) three bytes at a time with a pause
/// after each, flushing every piece so that each is its own TCP segment.
struct TrickleWriter {
    inner: TcpStream,
    trickle: bool,
    byte_pause: Option<Duration>,
    line_pause: Option<Duration>,
}

impl Write for TrickleWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(pause) = self.byte_pause {
            thread::sleep(pause);
            self.inner.write_all(&buf[..buf.len().min(1)])?;
            self.inner.flush()?;
            return Ok(buf.len().min(1));
        }
        if let Some(pause) = self.line_pause {
            let end = buf
                .iter()
                .position(|&b| b == b'\n')
                .map_or(buf.len(), |i| i + 1);
            self.inner.write_all(&buf[..end])?;
            self.inner.flush()?;
            if end < buf.len() {
                thread::sleep(pause);
            }
            return Ok(end);
        }
        if !self.trickle {
            return self.inner.write(buf);
        }
        let piece = &buf[..buf.len().min(3)];
        self.inner.write_all(piece)?;
        self.inner.flush()?;
        thread::sleep(Duration::from_millis(2));
        Ok(piece.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Fails the test if the server was never connected to (unless it was
/// told `expect_unused`) or if its thread panicked.
impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.usage
            .check(&format!("ScriptedServer on port {}", self.port));
    }
}
