//! Small socket helpers of the servers.

use std::io::{self, ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

pub(super) fn bind_local() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")
}

pub(super) fn set_timeouts(s: &TcpStream, t: Duration) {
    let _ = s.set_read_timeout(Some(t));
    let _ = s.set_write_timeout(Some(t));
}

/// Reads one line (up to and including `\n`) byte by byte, so that nothing
/// beyond the line is consumed from the stream.
pub(super) fn read_line_raw<R: Read>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match r.read(&mut byte) {
            Ok(0) => {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "connection closed mid-line",
                ))
            }
            Ok(_) => {
                line.push(byte[0]);
                if byte[0] == b'\n' {
                    return Ok(line);
                }
                if line.len() > 4096 {
                    return Err(io::Error::new(ErrorKind::InvalidData, "line too long"));
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Reads a complete (possibly multi-line) SMTP reply.
pub(super) fn read_reply_raw<R: Read>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut reply = Vec::new();
    loop {
        let line = read_line_raw(r)?;
        let last = line.len() < 4 || line[3] != b'-';
        reply.extend_from_slice(&line);
        if last {
            return Ok(reply);
        }
    }
}

pub(super) fn expect_code(reply: &[u8], code: &[u8; 3]) -> io::Result<()> {
    if reply.starts_with(code) {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "expected {}, got {:?}",
            String::from_utf8_lossy(code),
            String::from_utf8_lossy(reply)
        )))
    }
}

pub(super) fn accept_within(listener: &TcpListener, limit: Duration) -> Option<TcpStream> {
    listener.set_nonblocking(true).ok()?;
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).ok()?;
                return Some(s);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
    None
}
