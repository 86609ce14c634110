//! The DATA writer: the message as it goes on the wire after the 354,
//! dot-stuffed, ended with the lone dot, and the next pipelined commands
//! behind it.
//!
//! Belongs here: the bytes of the message transfer. Not here: the DATA
//! command and its replies (`session`), what a failed write means
//! (`classify`).

use std::io;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use crate::mail::content::Content;
use crate::smtp::wire::Wire;

/// Why a message could not be written to its end.
pub(crate) enum MessageWriteError {
    /// An attachment could not be read: the connection is poisoned so that
    /// nothing can end the message, and a truncated one is never accepted.
    Source(io::Error),
    Wire(io::Error),
}

/// Writes up to this much at a time: few system calls, little memory.
const WRITE_CHUNK: usize = 64 * 1024;

/// Told how the upload of a message goes, to show it (a progress bar is
/// `output`'s; this layer only counts). Called from the session's task.
pub(crate) trait UploadProgress: Send + Sync {
    /// The upload of `total` octets (the message before dot-stuffing) begins.
    fn start(&self, total: u64);
    /// `sent` octets of the message are written so far.
    fn sent(&self, sent: u64);
    /// The upload ended, written whole or not.
    fn finish(&self);
}

/// An [`UploadProgress`] the settings can carry.
#[derive(Clone)]
pub(crate) struct Progress(pub(crate) Arc<dyn UploadProgress>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// Ends the upload's display however `write_message` returns.
struct Finish<'a>(Option<&'a Progress>);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        if let Some(progress) = self.0 {
            progress.0.finish();
        }
    }
}

/// The message as it goes on the wire after DATA: dot-stuffed, ended with
/// the lone dot, and followed by `trailer` (pipelined commands) in the same
/// write, so that a small message and the next MAIL leave in one packet.
/// `progress` hears of each chunk written.
pub(crate) async fn write_message(
    mut wire: Wire,
    message: &Content,
    trailer: &[u8],
    progress: Option<&Progress>,
) -> std::result::Result<(), MessageWriteError> {
    if let Some(progress) = progress {
        progress.0.start(message.len());
    }
    let _finish = Finish(progress);
    let mut stuffing = DotStuffing::default();
    let mut out = Vec::with_capacity(WRITE_CHUNK + WRITE_CHUNK / 8);
    let mut sent = 0u64;
    for chunk in message.chunks() {
        let chunk = chunk.map_err(|err| {
            wire.poison();
            MessageWriteError::Source(err)
        })?;
        stuffing.encode(&chunk, &mut out);
        sent += chunk.len() as u64;
        if out.len() >= WRITE_CHUNK {
            wire.write_all(&out)
                .await
                .map_err(MessageWriteError::Wire)?;
            out.clear();
            if let Some(progress) = progress {
                progress.0.sent(sent);
            }
        }
    }
    out.extend_from_slice(stuffing.end());
    out.extend_from_slice(trailer);
    wire.write_all(&out)
        .await
        .map_err(MessageWriteError::Wire)?;
    wire.flush().await.map_err(MessageWriteError::Wire)?;
    if let Some(progress) = progress {
        progress.0.sent(sent);
    }
    Ok(())
}

/// SMTP transparency (RFC 5321 4.5.2): a line that starts with a dot gets
/// one more. lettre has this codec but keeps it private, and postie writes
/// the message itself to put the next commands behind the final dot.
#[derive(Default)]
struct DotStuffing {
    state: LineState,
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum LineState {
    #[default]
    AtStart,
    AfterCr,
    InLine,
}

impl DotStuffing {
    /// Copies whole lines at a time (memchr finds each LF): the message is
    /// the bulk of what postie writes, and a 500 MiB attachment must not
    /// cost a branch per byte. A dot is doubled only right after a CRLF.
    fn encode(&mut self, data: &[u8], out: &mut Vec<u8>) {
        out.reserve(data.len() + data.len() / 64);
        let mut rest = data;
        while let Some(&first) = rest.first() {
            if first == b'.' && self.state == LineState::AtStart {
                out.push(b'.');
            }
            let Some(lf) = memchr::memchr(b'\n', rest) else {
                out.extend_from_slice(rest);
                self.state = if rest.ends_with(b"\r") {
                    LineState::AfterCr
                } else {
                    LineState::InLine
                };
                return;
            };
            out.extend_from_slice(&rest[..=lf]);
            let after_cr = match lf {
                0 => self.state == LineState::AfterCr,
                _ => rest[lf - 1] == b'\r',
            };
            self.state = if after_cr {
                LineState::AtStart
            } else {
                LineState::InLine
            };
            rest = &rest[lf + 1..];
        }
    }

    /// The end of the message: the lone dot, after a CRLF if the last line
    /// has none (a message always ends with a line break on the wire).
    fn end(&self) -> &'static [u8] {
        if self.state == LineState::AtStart {
            b".\r\n"
        } else {
            b"\r\n.\r\n"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuffed(chunks: &[&[u8]]) -> Vec<u8> {
        let mut stuffing = DotStuffing::default();
        let mut out = Vec::new();
        for chunk in chunks {
            stuffing.encode(chunk, &mut out);
        }
        out.extend_from_slice(stuffing.end());
        out
    }

    #[test]
    fn dot_stuffing_doubles_leading_dots_even_across_chunks() {
        assert_eq!(
            stuffed(&[b".a\r\n.\r\n..b\r\n"]),
            b"..a\r\n..\r\n...b\r\n.\r\n"
        );
        assert_eq!(stuffed(&[b"a\r", b"\n.b\r\n"]), b"a\r\n..b\r\n.\r\n");
        assert_eq!(stuffed(&[b"a\r\n", b".b"]), b"a\r\n..b\r\n.\r\n");
        // A dot after a bare LF or mid-line is left alone, as lettre did.
        assert_eq!(stuffed(&[b"a.b\n.c"]), b"a.b\n.c\r\n.\r\n");
    }

    /// The byte-at-a-time rule the line-at-a-time encoder must match.
    fn stuffed_by_bytes(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut state = LineState::AtStart;
        for &byte in chunks.concat().iter() {
            if byte == b'.' && state == LineState::AtStart {
                out.push(b'.');
            }
            out.push(byte);
            state = match (byte, state) {
                (b'\r', _) => LineState::AfterCr,
                (b'\n', LineState::AfterCr) => LineState::AtStart,
                _ => LineState::InLine,
            };
        }
        out.extend_from_slice(DotStuffing { state }.end());
        out
    }

    proptest::proptest! {
        #[test]
        fn dot_stuffing_by_lines_matches_the_rule_byte_by_byte(
            bytes in proptest::collection::vec(
                proptest::sample::select(vec![b'.', b'\r', b'\n', b'a']),
                0..200,
            ),
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort();
            let mut chunks = Vec::new();
            let mut at = 0;
            for cut in cuts {
                chunks.push(&bytes[at..cut]);
                at = cut;
            }
            chunks.push(&bytes[at..]);
            proptest::prop_assert_eq!(stuffed(&chunks), stuffed_by_bytes(&chunks));
        }
    }

    #[test]
    fn the_message_ends_with_one_line_break_before_the_dot() {
        assert_eq!(stuffed(&[b"x\r\n"]), b"x\r\n.\r\n");
        assert_eq!(stuffed(&[b"x"]), b"x\r\n.\r\n");
        assert_eq!(stuffed(&[b"x\r\n\r\n"]), b"x\r\n\r\n.\r\n");
    }
}
