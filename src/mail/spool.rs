//! A ready-made message read from standard input (sendmail mode), held
//! whole before anything can fail, without holding a large one in memory.
//!
//! Sendmail mode must read its input before planning: a message that
//! cannot be planned is still kept in failed/, as cron reads no exit
//! status. Small messages stay in memory; past [`SPOOL_THRESHOLD`] the
//! input goes to an unlinked file (O_TMPFILE in the queue's `tmp/`, or in
//! $TMPDIR without a queue), so that 300 MB of cron output costs 300 MB of
//! disk, not several copies of it in root's memory. Reading the message
//! for planning and keeping it in failed/ both stream from that file.
//!
//! Not here: parsing the message (`message`), or the queue (`queue`).

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::exit::{io_reason, Error, Exit, Result};

/// Input up to this size is kept in memory; more goes to a file.
pub(crate) const SPOOL_THRESHOLD: usize = 4 * 1024 * 1024;

/// How much is read or written at a time.
const CHUNK: usize = 64 * 1024;

/// The message as read: in memory, or in an unlinked file.
#[derive(Debug)]
pub(crate) enum Input {
    Memory(Vec<u8>),
    Spooled { file: File, len: u64 },
}

/// A message over `max_message_size`: what was kept of it (the first
/// `limit` octets) and how long it was.
#[derive(Debug)]
pub(crate) struct Oversized {
    pub(crate) input: Input,
    pub(crate) len: u64,
    pub(crate) limit: u64,
}

impl Oversized {
    /// Exit 65: the message, not the system, is at fault; retrying cannot
    /// help.
    pub(crate) fn error(&self) -> Error {
        Error::data(format!(
            "the message is {} octets, more than max_message_size ({}); only its first {} octets were kept",
            self.len, self.limit, self.limit
        ))
        .hint("raise max_message_size in the config, or send less")
    }
}

impl Input {
    /// The number of octets read.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Input::Memory(bytes) => bytes.len() as u64,
            Input::Spooled { len, .. } => *len,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader from the start of the message.
    pub(crate) fn reader(&mut self) -> io::Result<Box<dyn Read + '_>> {
        match self {
            Input::Memory(bytes) => Ok(Box::new(bytes.as_slice())),
            Input::Spooled { file, .. } => {
                file.rewind()?;
                Ok(Box::new(&*file))
            }
        }
    }
}

/// Reads all of `reader`. Past [`SPOOL_THRESHOLD`] it is spooled to an
/// unlinked file in `spool_dir` (else $TMPDIR); when no such file can be
/// made it stays in memory, as before: losing cron's mail is worse. More
/// than `limit` octets is an [`Oversized`] (its excess read and dropped,
/// so that the writer sees no broken pipe).
pub(crate) fn read(
    reader: &mut dyn Read,
    spool_dir: Option<&Path>,
    limit: u64,
) -> Result<std::result::Result<Input, Oversized>> {
    let mut writer = Writer::new(spool_dir, limit);
    let mut buf = vec![0; CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return writer.finish(),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                return Err(Error::new(
                    Exit::IoErr,
                    format!(
                        "cannot read the message from standard input: {}",
                        io_reason(&err)
                    ),
                ))
            }
        };
        writer.write(&buf[..n])?;
    }
}

/// A message taken piece by piece (standard input, or the DATA of `-bs`),
/// held as [`read`] holds it: in memory up to [`SPOOL_THRESHOLD`], then in
/// an unlinked file; past `limit` only counted.
#[derive(Debug)]
pub(crate) struct Writer {
    held: Input,
    spool_dir: Option<PathBuf>,
    limit: u64,
    /// Every octet written, those past the limit included.
    seen: u64,
    /// A spool file was tried once; when none could be made, or the disk
    /// filled, the message stays in memory: losing it is worse.
    spool_tried: bool,
}

impl Writer {
    pub(crate) fn new(spool_dir: Option<&Path>, limit: u64) -> Writer {
        Writer {
            held: Input::Memory(Vec::new()),
            spool_dir: spool_dir.map(Path::to_path_buf),
            limit,
            seen: 0,
            spool_tried: false,
        }
    }

    /// Takes `bytes`; what goes past the limit is dropped and counted.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.seen = self.seen.saturating_add(bytes.len() as u64);
        let room = self.limit.saturating_sub(self.held.len());
        let kept = &bytes[..bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
        if kept.is_empty() {
            return Ok(());
        }
        match &mut self.held {
            Input::Memory(memory) => {
                memory.extend_from_slice(kept);
                if memory.len() > SPOOL_THRESHOLD && !self.spool_tried {
                    self.spool_tried = true;
                    if let Ok(mut file) = unlinked_file(self.spool_dir.as_deref()) {
                        if file.write_all(memory).is_ok() {
                            let len = memory.len() as u64;
                            self.held = Input::Spooled { file, len };
                        }
                    }
                }
            }
            Input::Spooled { file, len } => {
                if file.write_all(kept).is_ok() {
                    *len += kept.len() as u64;
                } else {
                    // A full disk: what was spooled is read back, and the
                    // rest is held in memory.
                    let mut memory = Vec::new();
                    file.rewind()
                        .and_then(|()| (&*file).take(*len).read_to_end(&mut memory))
                        .map_err(|err| spool_error(&err))?;
                    memory.extend_from_slice(kept);
                    self.held = Input::Memory(memory);
                }
            }
        }
        Ok(())
    }

    /// The message, or an [`Oversized`] when more than the limit came.
    pub(crate) fn finish(self) -> Result<std::result::Result<Input, Oversized>> {
        if self.seen <= self.limit {
            return Ok(Ok(self.held));
        }
        Ok(Err(Oversized {
            input: self.held,
            len: self.seen,
            limit: self.limit,
        }))
    }
}

/// A full disk is temporary (EX_TEMPFAIL): the sender may try again.
fn spool_error(err: &io::Error) -> Error {
    Error::new(
        Exit::TempFail,
        format!("cannot spool the message to disk: {}", io_reason(err)),
    )
}

/// A file no other process can open: O_TMPFILE (Linux 3.11) has no name
/// at all; elsewhere, or on a file system without it, a fresh private name
/// removed at once.
fn unlinked_file(spool_dir: Option<&Path>) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir: PathBuf = spool_dir
        .filter(|dir| dir.is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    #[cfg(target_os = "linux")]
    {
        let tmpfile = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(&dir);
        if let Ok(file) = tmpfile {
            return Ok(file);
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = dir.join(format!(".postie-spool-{}-{nanos:x}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// Reads all of `reader` with every bare LF made CRLF (RFC 5322 line
/// endings) as it goes, so that the message is held once, in its final
/// form, instead of being read and then copied to convert it. `limit`
/// bounds what is read (the caller checks the length).
pub(crate) fn read_crlf(reader: &mut dyn Read, size_hint: u64, limit: u64) -> io::Result<Vec<u8>> {
    let hint = size_hint.min(limit) as usize;
    let mut out = Vec::with_capacity(hint.saturating_add(hint / 32));
    let mut buf = vec![0; CHUNK];
    let mut reader = reader.take(limit);
    let mut last = 0u8;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        push_crlf(&mut out, &buf[..n], &mut last);
    }
}

/// Appends `chunk` with each bare LF made CRLF; `last` is the octet
/// before it (the previous chunk's last), so a CRLF split across two
/// chunks stays one.
fn push_crlf(out: &mut Vec<u8>, chunk: &[u8], last: &mut u8) {
    let mut start = 0;
    for (at, _) in chunk.iter().enumerate().filter(|(_, &b)| b == b'\n') {
        let before = if at == 0 { *last } else { chunk[at - 1] };
        if before != b'\r' {
            out.extend_from_slice(&chunk[start..at]);
            out.extend_from_slice(b"\r");
            start = at;
        }
    }
    out.extend_from_slice(&chunk[start..]);
    if let Some(&b) = chunk.last() {
        *last = b;
    }
}

/// Copies `input` to `out` with CRLF line endings, as
/// `Content::from_bytes` would hold it; returns the octets written.
pub(crate) fn copy_crlf(input: &mut Input, out: &mut dyn Write) -> io::Result<u64> {
    let mut reader = input.reader()?;
    let mut buf = vec![0; CHUNK];
    let mut fixed = Vec::with_capacity(CHUNK * 2);
    let mut last = 0u8;
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        fixed.clear();
        push_crlf(&mut fixed, &buf[..n], &mut last);
        out.write_all(&fixed)?;
        total += fixed.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_input_stays_in_memory() {
        let input = read(&mut &b"Subject: x\n\nhi\n"[..], None, 1 << 20)
            .unwrap()
            .unwrap();
        assert!(matches!(input, Input::Memory(ref b) if b.len() == 15));
    }

    #[test]
    fn large_input_is_spooled_and_read_back_whole() {
        let data: Vec<u8> = (0..SPOOL_THRESHOLD + 12345).map(|i| i as u8).collect();
        let dir = std::env::temp_dir();
        let mut input = read(&mut data.as_slice(), Some(&dir), 1 << 30)
            .unwrap()
            .unwrap();
        assert!(matches!(input, Input::Spooled { .. }));
        assert_eq!(input.len(), data.len() as u64);
        let mut back = Vec::new();
        input.reader().unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn a_full_disk_keeps_the_message_in_memory() {
        let Ok(full) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/full")
        else {
            return; // not Linux
        };
        let rest: Vec<u8> = (0..200_000).map(|i| i as u8).collect();
        let mut writer = Writer::new(None, 1 << 20);
        writer.held = Input::Spooled { file: full, len: 0 };
        writer.spool_tried = true;
        writer.write(b"head").unwrap();
        writer.write(&rest).unwrap();
        let Input::Memory(bytes) = writer.finish().unwrap().unwrap() else {
            panic!("expected the message in memory");
        };
        assert_eq!(&bytes[..4], b"head");
        assert_eq!(&bytes[4..], &rest[..]);
    }

    #[test]
    fn oversized_input_keeps_the_limit_and_counts_the_rest() {
        let data = vec![b'x'; SPOOL_THRESHOLD * 2];
        let over = read(&mut data.as_slice(), None, SPOOL_THRESHOLD as u64 + 10)
            .unwrap()
            .unwrap_err();
        assert_eq!(over.len, data.len() as u64);
        assert_eq!(over.input.len(), SPOOL_THRESHOLD as u64 + 10);
        assert_eq!(over.error().exit, Exit::DataErr);
        let over = read(&mut &b"0123456789"[..], None, 4).unwrap().unwrap_err();
        assert_eq!((over.len, over.input.len()), (10, 4));
    }

    #[test]
    fn crlf_as_it_is_read() {
        let mut out = Vec::new();
        let mut input = Input::Memory(b"a\nb\r\n\nc".to_vec());
        assert_eq!(copy_crlf(&mut input, &mut out).unwrap(), 9);
        assert_eq!(out, b"a\r\nb\r\n\r\nc");
        let read = read_crlf(&mut &b"a\nb\r\n"[..], 0, 100).unwrap();
        assert_eq!(read, b"a\r\nb\r\n");
        let (mut out, mut last) = (Vec::new(), 0);
        push_crlf(&mut out, b"\nx\r", &mut last);
        push_crlf(&mut out, b"\n\n", &mut last);
        assert_eq!(out, b"\r\nx\r\n\r\n");
    }
}
