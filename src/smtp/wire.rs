//! The connection under lettre: a socket postie owns, that postie can
//! upgrade to TLS itself, and that records every byte in the transcript.
//!
//! lettre's own STARTTLS wraps the stream it was given in TLS, after which
//! a recorder below it sees only ciphertext. So postie sends STARTTLS as a
//! plain command and swaps the socket for a TLS stream inside this shared
//! handle; lettre keeps reading and writing through the same handle, and
//! the transcript sees clear text on both sides of the upgrade. Owning the
//! TLS stream also gives postie the peer certificate for its report.
//!
//! Replies reach lettre only through [`crate::smtp::reply::Lines`]: whole, checked
//! replies with their text escaped (see that module for why).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use lettre::transport::smtp::client::AsyncTokioStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use crate::smtp::tls::{handshake_detail, sent_chain, Connector, HandshakeFailure, Negotiated};
use crate::smtp::transcript::Transcript;

use crate::smtp::reply::{Lines, Malformed, Next};

/// Read from the socket this much at a time.
const READ_CHUNK: usize = 8 * 1024;

#[derive(Debug)]
enum Link {
    Plain(TcpStream),
    Tls(Box<SslStream<Sniffed>>),
    /// Between taking the plain socket out and putting the TLS stream in.
    Upgrading,
}

/// A cloneable handle on the one connection; lettre holds one clone.
#[derive(Clone, Debug)]
pub(crate) struct Wire {
    link: Arc<Mutex<Link>>,
    transcript: Arc<Transcript>,
    peer: SocketAddr,
    /// Set when the message source failed mid-DATA: every later write
    /// fails, so the message can never be ended and accepted truncated.
    /// Also set when the server said it is closing (421) with replies
    /// left unread, so that none is taken for a later command's.
    poisoned: Arc<AtomicBool>,
    /// Shared by every clone: lettre and postie's own readers read the
    /// same replies.
    lines: Arc<Mutex<Lines>>,
    /// Set when the first byte the TLS handshake read was an ASCII digit:
    /// a TLS record starts with a content type of 20 to 24, a reply with
    /// its code. After STARTTLS that is a reply sent in the clear behind
    /// the 220, in a later packet than the 220 (CVE-2011-0411).
    plaintext_in_handshake: Arc<AtomicBool>,
}

fn upgrading() -> io::Error {
    io::Error::other("the connection is being upgraded to TLS")
}

impl Wire {
    pub(crate) fn plain(tcp: TcpStream, peer: SocketAddr, transcript: Arc<Transcript>) -> Wire {
        Wire {
            link: Arc::new(Mutex::new(Link::Plain(tcp))),
            transcript,
            peer,
            poisoned: Arc::new(AtomicBool::new(false)),
            lines: Arc::new(Mutex::new(Lines::default())),
            plaintext_in_handshake: Arc::new(AtomicBool::new(false)),
        }
    }

    fn lines(&self) -> MutexGuard<'_, Lines> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every later write fail (see `poisoned`).
    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::SeqCst);
    }

    fn lock(&self) -> MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(*self.lock(), Link::Tls(_))
    }

    /// Runs the TLS handshake on the plain socket (implicit TLS, or after
    /// the server's 220 to STARTTLS).
    pub(crate) async fn start_tls(
        &self,
        connector: Connector,
        domain: &str,
    ) -> Result<(), HandshakeFailure> {
        let failed = |detail: String| HandshakeFailure {
            detail,
            chain: Vec::new(),
        };
        let tcp = match std::mem::replace(&mut *self.lock(), Link::Upgrading) {
            Link::Plain(tcp) => tcp,
            other => {
                *self.lock() = other;
                return Err(failed("the connection is already encrypted".to_string()));
            }
        };
        // Anything received unread before the handshake is plaintext
        // (STARTTLS refuses to go on when there is any): never serve it
        // as if it had come over TLS.
        self.lines().reset();
        let tcp = Sniffed {
            tcp,
            first: Some(self.plaintext_in_handshake.clone()),
        };
        let mut tls = connector
            .ssl(domain)
            .and_then(|ssl| SslStream::new(ssl, tcp))
            .map_err(|err| failed(crate::exit::error_chain(&err)))?;
        match Pin::new(&mut tls).connect().await {
            Ok(()) => {
                *self.lock() = Link::Tls(Box::new(tls));
                Ok(())
            }
            Err(err) => Err(HandshakeFailure {
                detail: handshake_detail(&err, tls.ssl().verify_result()),
                chain: sent_chain(tls.ssl()),
            }),
        }
    }

    /// The negotiated version and cipher, the chain the server sent and
    /// OpenSSL's verdict on it, once TLS is up.
    pub(crate) fn negotiated(&self) -> Option<Negotiated> {
        match &*self.lock() {
            Link::Tls(tls) => Some(Negotiated::of(tls.ssl())),
            _ => None,
        }
    }

    /// The server's certificate (DER), once TLS is up.
    pub(crate) fn peer_certificate(&self) -> Option<Vec<u8>> {
        match &*self.lock() {
            Link::Tls(tls) => tls.ssl().peer_certificate()?.to_der().ok(),
            _ => None,
        }
    }

    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Why what the server sent already cannot be read on, if it cannot:
    /// a reply no command asked for, say, that came with the last one.
    pub(crate) fn failure(&self) -> Option<Malformed> {
        self.lines().failure().cloned()
    }

    /// True when the server answered the TLS handshake in plain text: an
    /// SMTP reply where a TLS record belongs.
    pub(crate) fn plaintext_in_handshake(&self) -> bool {
        self.plaintext_in_handshake.load(Ordering::SeqCst)
    }
}

/// The socket under TLS, looking at the first byte the server sends.
#[derive(Debug)]
struct Sniffed {
    tcp: TcpStream,
    /// Until the first byte arrives: where to say it was plain text.
    first: Option<Arc<AtomicBool>>,
}

impl AsyncRead for Sniffed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if let Some(&byte) = buf.filled().get(before) {
            if let Some(flag) = self.first.take() {
                flag.store(byte.is_ascii_digit(), Ordering::SeqCst);
            }
        }
        result
    }
}

impl AsyncWrite for Sniffed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            {
                let mut lines = self.lines();
                match lines.next() {
                    Next::Bytes(bytes) => {
                        let count = bytes.len().min(buf.remaining());
                        buf.put_slice(&bytes[..count]);
                        lines.consume(count);
                        return Poll::Ready(Ok(()));
                    }
                    Next::Failed(bad) => {
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, bad)))
                    }
                    Next::End => return Poll::Ready(Ok(())),
                    Next::NeedMore => {}
                }
            }
            let mut raw = [0u8; READ_CHUNK];
            let mut raw_buf = ReadBuf::new(&mut raw);
            let mut link = self.lock();
            let (result, tls) = match &mut *link {
                Link::Plain(tcp) => (Pin::new(tcp).poll_read(cx, &mut raw_buf), false),
                Link::Tls(tls) => (Pin::new(tls.as_mut()).poll_read(cx, &mut raw_buf), true),
                Link::Upgrading => return Poll::Ready(Err(upgrading())),
            };
            drop(link);
            match result {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let received = raw_buf.filled();
            self.transcript.received(received, tls);
            self.lines().push(received);
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Poll::Ready(Err(io::Error::other(
                "the message could not be read to its end",
            )));
        }
        let mut link = self.lock();
        let (result, tls) = match &mut *link {
            Link::Plain(tcp) => (Pin::new(tcp).poll_write(cx, data), false),
            Link::Tls(tls) => (Pin::new(tls.as_mut()).poll_write(cx, data), true),
            Link::Upgrading => return Poll::Ready(Err(upgrading())),
        };
        drop(link);
        if let Poll::Ready(Ok(written)) = &result {
            let asked = self.transcript.sent(&data[..*written], tls);
            self.lines().owe(asked);
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut *self.lock() {
            Link::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Link::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
            Link::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut *self.lock() {
            Link::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Link::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
            Link::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
}

impl AsyncTokioStream for Wire {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}
