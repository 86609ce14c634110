//! What a test server checks when it is dropped, as xh's test server
//! does: that it was connected to, and that none of its threads panicked.
//! A test whose server is not meant to be reached (postie must refuse
//! before connecting, or must not fall back to it) calls the server's
//! `expect_unused()`, and the check is then that nothing connected.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a drop waits for a connection not yet accepted when it would
/// otherwise say that none came.
const LATE_ACCEPT: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct Usage {
    /// Connections accepted by any layer of the server (mailin, a relay,
    /// the scripted loop); only whether it is zero matters.
    connections: AtomicUsize,
    /// A server thread or handler panicked.
    panicked: AtomicBool,
    /// The test said the server is not to be reached.
    unused: AtomicBool,
}

impl Usage {
    pub(super) fn connected(&self) {
        self.connections.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn expect_unused(&self) {
        self.unused.store(true, Ordering::SeqCst);
    }

    /// Records a panic if the current thread is unwinding: for the drop of
    /// something a server thread owns.
    pub(super) fn note_unwinding(&self) {
        if thread::panicking() {
            self.panicked.store(true, Ordering::SeqCst);
        }
    }

    /// Spawns a server thread; a panic in it fails the server's drop.
    pub(super) fn spawn(
        self: &Arc<Self>,
        name: &str,
        body: impl FnOnce() + Send + 'static,
    ) -> io::Result<JoinHandle<()>> {
        let watch = Watch(Arc::clone(self));
        thread::Builder::new().name(name.into()).spawn(move || {
            let _watch = watch;
            body();
        })
    }

    /// The drop check of the server `what`; nothing when the test is
    /// already failing (a second panic would abort the process) or skipped
    /// (it started a server, then found it cannot run here).
    pub(super) fn check(&self, what: &str) {
        if thread::panicking() || super::skip::skipped() {
            return;
        }
        assert!(
            !self.panicked.load(Ordering::SeqCst),
            "{what}: a server thread panicked (see its message above)"
        );
        if self.unused.load(Ordering::SeqCst) {
            assert_eq!(
                self.connections.load(Ordering::SeqCst),
                0,
                "{what} was connected to, but the test said expect_unused()"
            );
            return;
        }
        let deadline = Instant::now() + LATE_ACCEPT;
        while self.connections.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(
            self.connections.load(Ordering::SeqCst) > 0,
            "{what} was never connected to; a test whose server is not meant \
             to be reached says so with expect_unused()"
        );
    }
}

/// Owned by a server thread: marks the server if the thread unwinds.
struct Watch(Arc<Usage>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.note_unwinding();
    }
}
