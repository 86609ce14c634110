//! A message's bytes, without holding large attachments in memory.
//!
//! mail-builder builds the whole message in memory; for a 500 MiB
//! attachment that is 500 MiB of file plus 680 MiB of base64. So large
//! attachments are left out of what mail-builder sees (a placeholder stands
//! in for each) and the message becomes a list of segments: bytes
//! mail-builder wrote, and files to base64-encode on the fly. Whatever
//! consumes the message (the SMTP session, --dry-run, the queue) reads the
//! same segments, so the bytes on the wire are the bytes --dry-run prints.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

/// Base64 line length (RFC 2045: at most 76).
const LINE: usize = 76;
/// Input bytes per base64 line.
const LINE_INPUT: usize = LINE / 4 * 3;
/// How much of a file is encoded at a time: 64 KiB of lines.
const CHUNK_LINES: usize = 1024;

/// One piece of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Bytes as they go on the wire (CRLF line endings).
    Bytes(Vec<u8>),
    /// A file, base64-encoded in CRLF-separated lines of 76, with no CRLF
    /// after the last line (the MIME boundary that follows brings its own).
    Base64File { path: PathBuf, len: u64 },
    /// The same for an unlinked file that has no path (standard input
    /// spooled by `-a -`), read by offset so that it can be read again.
    Base64Spooled { file: SpooledFile, len: u64 },
}

/// An open file with no name: input spooled to disk, shared by the
/// message's copies (a `Content` is cloned for the queue and the retries).
#[derive(Clone, Debug)]
pub(crate) struct SpooledFile(pub(crate) Arc<File>);

/// The same file, not the same bytes: two spools are never equal.
impl PartialEq for SpooledFile {
    fn eq(&self, other: &SpooledFile) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SpooledFile {}

/// A whole message, ready for the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Content {
    pub(crate) segments: Vec<Segment>,
}

/// Bytes with every bare LF turned into CRLF (RFC 5322 line endings);
/// borrowed when they already are.
pub(crate) fn crlf(bytes: &[u8]) -> Cow<'_, [u8]> {
    let is_bare_lf = |i: usize| bytes[i] == b'\n' && (i == 0 || bytes[i - 1] != b'\r');
    if !(0..bytes.len()).any(is_bare_lf) {
        return Cow::Borrowed(bytes);
    }
    let mut fixed = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    for (i, &b) in bytes.iter().enumerate() {
        if is_bare_lf(i) {
            fixed.push(b'\r');
        }
        fixed.push(b);
    }
    Cow::Owned(fixed)
}

/// The size of a file's base64 form as `Segment::Base64File` writes it.
fn base64_len(len: u64) -> u64 {
    let encoded = len.div_ceil(3) * 4;
    let lines = encoded.div_ceil(LINE as u64);
    encoded + lines.saturating_sub(1) * 2
}

impl Content {
    /// A message held in memory (composed without large files, or read
    /// from --message); line endings become CRLF.
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Content {
        let bytes = match crlf(&bytes) {
            Cow::Borrowed(_) => bytes,
            Cow::Owned(fixed) => fixed,
        };
        Content {
            segments: vec![Segment::Bytes(bytes)],
        }
    }

    /// The exact number of octets [`Content::write_to`] writes.
    pub(crate) fn len(&self) -> u64 {
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Bytes(bytes) => bytes.len() as u64,
                Segment::Base64File { len, .. } | Segment::Base64Spooled { len, .. } => {
                    base64_len(*len)
                }
            })
            .sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of the first header field called `name` (any case),
    /// unfolded and trimmed; `None` when there is none. The header block is
    /// always in the first segment: files are only ever attached in a body
    /// part.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        let Some(Segment::Bytes(bytes)) = self.segments.first() else {
            return None;
        };
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(bytes.len(), |at| at + 2);
        let block = String::from_utf8_lossy(&bytes[..end]);
        let mut value: Option<String> = None;
        for line in block.split("\r\n") {
            let folded = line.starts_with([' ', '\t']);
            match (&mut value, folded) {
                // RFC 5322 2.2.3: a line starting with white space goes on
                // the field before it.
                (Some(value), true) => value.push_str(line),
                (Some(_), false) => break,
                (None, _) => {
                    if let Some((field, rest)) = line.split_once(':') {
                        if !folded && field.trim_end().eq_ignore_ascii_case(name) {
                            value = Some(rest.to_string());
                        }
                    }
                }
            }
        }
        value.map(|value| value.trim().to_string())
    }

    /// True when the header block holds raw UTF-8 (RFC 6532), which only
    /// SMTPUTF8 may carry (RFC 6531 3.4). A composed message's headers are
    /// ASCII except for a non-ASCII local part: display names and text are
    /// RFC 2047-encoded and domains are A-labels. The header block is in
    /// the first segment (see [`Content::header`]).
    pub(crate) fn needs_smtputf8(&self) -> bool {
        let Some(Segment::Bytes(bytes)) = self.segments.first() else {
            return false;
        };
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(bytes.len(), |at| at + 2);
        !bytes[..end].is_ascii()
    }

    /// True when every octet is 7-bit (base64 always is).
    pub(crate) fn is_ascii(&self) -> bool {
        self.segments.iter().all(|segment| match segment {
            Segment::Bytes(bytes) => bytes.is_ascii(),
            Segment::Base64File { .. } | Segment::Base64Spooled { .. } => true,
        })
    }

    /// Writes the whole message, streaming the files.
    pub(crate) fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        for chunk in self.chunks() {
            out.write_all(&chunk?)?;
        }
        Ok(())
    }

    /// The message in pieces of at most about 64 KiB, files read as they
    /// are needed. An error reading a file ends the iteration with it.
    pub(crate) fn chunks(&self) -> impl Iterator<Item = io::Result<Vec<u8>>> + '_ {
        self.segments.iter().flat_map(
            |segment| -> Box<dyn Iterator<Item = io::Result<Vec<u8>>> + '_> {
                match segment {
                    // One chunk at a time: a large ready-made message must
                    // not be copied whole first.
                    Segment::Bytes(bytes) => Box::new(
                        bytes
                            .chunks(CHUNK_LINES * (LINE + 2))
                            .map(|chunk| Ok(chunk.to_vec())),
                    ),
                    Segment::Base64File { path, len } => {
                        Box::new(Base64Reader::new(Source::Path(path.clone()), *len))
                    }
                    Segment::Base64Spooled { file, len } => {
                        Box::new(Base64Reader::new(Source::Spooled(file.0.clone()), *len))
                    }
                }
            },
        )
    }
}

/// Where a streamed file's bytes are: a path, opened when the first
/// chunk is wanted, or a spooled file already open.
enum Source {
    Path(PathBuf),
    Spooled(Arc<File>),
}

/// Reads a file and yields its base64 lines, a chunk at a time.
struct Base64Reader {
    source: Source,
    file: Option<Arc<File>>,
    offset: u64,
    remaining: u64,
    started: bool,
    failed: bool,
}

impl Base64Reader {
    fn new(source: Source, len: u64) -> Base64Reader {
        Base64Reader {
            source,
            file: None,
            offset: 0,
            remaining: len,
            started: false,
            failed: false,
        }
    }

    fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        if self.file.is_none() {
            self.file = Some(match &self.source {
                Source::Path(path) => Arc::new(File::open(path)?),
                Source::Spooled(file) => file.clone(),
            });
        }
        let file = self.file.as_ref().expect("opened above");
        let want = (CHUNK_LINES * LINE_INPUT).min(self.remaining as usize);
        let mut input = vec![0u8; want];
        // By offset: a spooled file is shared, and read again for each
        // copy of the message (--dry-run, the queue, a retry).
        file.read_exact_at(&mut input, self.offset).map_err(|err| {
            let what = match &self.source {
                Source::Path(path) => path.display().to_string(),
                Source::Spooled(_) => "the spooled standard input".to_string(),
            };
            io::Error::new(
                err.kind(),
                format!("{what} changed while it was being sent: {err}"),
            )
        })?;
        self.offset += want as u64;
        self.remaining -= want as u64;
        let mut out = Vec::with_capacity(want / 3 * 4 + want / LINE_INPUT * 2 + 8);
        for line in input.chunks(LINE_INPUT) {
            if self.started {
                out.extend_from_slice(b"\r\n");
            }
            self.started = true;
            out.extend_from_slice(BASE64.encode(line).as_bytes());
        }
        Ok(Some(out))
    }
}

impl Iterator for Base64Reader {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_chunk() {
            Ok(chunk) => chunk.map(Ok),
            Err(err) => {
                self.failed = true;
                Some(Err(err))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(data: &[u8]) -> (tempfile::TempDir, Content) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        std::fs::write(&path, data).unwrap();
        let content = Content {
            segments: vec![
                Segment::Bytes(b"head\r\n".to_vec()),
                Segment::Base64File {
                    path,
                    len: data.len() as u64,
                },
                Segment::Bytes(b"\r\ntail\r\n".to_vec()),
            ],
        };
        (dir, content)
    }

    #[test]
    fn streamed_base64_matches_encoding_in_memory_and_len_is_exact() {
        for size in [0usize, 1, 56, 57, 58, 114, 1000, 3 * 57 * 1024 + 7] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let (_dir, content) = streamed(&data);
            let mut out = Vec::new();
            content.write_to(&mut out).unwrap();
            let encoded = BASE64.encode(&data);
            let lines: Vec<&str> = encoded
                .as_bytes()
                .chunks(76)
                .map(|l| std::str::from_utf8(l).unwrap())
                .collect();
            let expected = format!("head\r\n{}\r\ntail\r\n", lines.join("\r\n"));
            assert_eq!(
                String::from_utf8(out.clone()).unwrap(),
                expected,
                "size {size}"
            );
            assert_eq!(content.len(), out.len() as u64, "size {size}");
        }
    }

    #[test]
    fn a_spooled_file_streams_like_a_path_and_can_be_read_twice() {
        let data: Vec<u8> = (0..3 * 57 * 1024 + 11).map(|i| (i % 253) as u8).collect();
        let (_dir, by_path) = streamed(&data);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        let spooled = Content {
            segments: vec![
                Segment::Bytes(b"head\r\n".to_vec()),
                Segment::Base64Spooled {
                    file: SpooledFile(Arc::new(file)),
                    len: data.len() as u64,
                },
                Segment::Bytes(b"\r\ntail\r\n".to_vec()),
            ],
        };
        let (mut expected, mut once, mut twice) = (Vec::new(), Vec::new(), Vec::new());
        by_path.write_to(&mut expected).unwrap();
        spooled.write_to(&mut once).unwrap();
        spooled.clone().write_to(&mut twice).unwrap();
        assert!(once == expected && twice == expected);
        assert_eq!(spooled.len(), expected.len() as u64);
    }

    #[test]
    fn a_vanished_file_is_an_error_not_a_short_message() {
        let (dir, content) = streamed(b"some data");
        drop(dir);
        let mut out = Vec::new();
        assert!(content.write_to(&mut out).is_err());
    }

    #[test]
    fn raw_utf8_in_the_header_needs_smtputf8_in_the_body_not() {
        let header = Content::from_bytes("From: pelé@example.com\r\n\r\nbody\r\n".into());
        assert!(header.needs_smtputf8());
        let body = Content::from_bytes("From: a@example.com\r\n\r\npelé\r\n".into());
        assert!(!body.needs_smtputf8());
        assert!(!Content::default().needs_smtputf8());
    }

    #[test]
    fn bytes_become_crlf() {
        let content = Content::from_bytes(b"a\nb\r\n".to_vec());
        assert_eq!(
            content.segments,
            vec![Segment::Bytes(b"a\r\nb\r\n".to_vec())]
        );
        assert!(content.is_ascii());
        assert!(!content.needs_smtputf8());
    }

    #[test]
    fn a_header_is_found_in_any_case_and_unfolded() {
        let content = Content::from_bytes(
            b"Subject: hi\nmessage-id:\n <a@b>\nX: y\n\nMessage-ID: <body@x>\n".to_vec(),
        );
        assert_eq!(content.header("Message-ID").as_deref(), Some("<a@b>"));
        assert_eq!(content.header("Subject").as_deref(), Some("hi"));
        // Not from the body.
        assert_eq!(content.header("Date"), None);
        assert_eq!(Content::default().header("Subject"), None);
    }
}
