//! The upload progress bar: on stderr when it is a terminal, for a
//! message over [`MIN_SIZE`]; nothing at all otherwise, so cron mail and
//! scripts' logs never hold a bar's control characters.
//!
//! `smtp` counts the octets written ([`UploadProgress`]); drawing them is
//! here.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::smtp::data::{Progress, UploadProgress};

/// Smaller messages leave in a moment: a bar would only flicker.
pub(crate) const MIN_SIZE: u64 = 8 * 1024 * 1024;

/// A bar for the uploads of this run, when stderr is a terminal.
pub(crate) fn upload_bar() -> Option<Progress> {
    std::io::stderr()
        .is_terminal()
        .then(|| Progress(Arc::new(Bar::default())))
}

/// One message's bar at a time: a session uploads its messages in turn.
#[derive(Default)]
struct Bar {
    current: Mutex<Option<ProgressBar>>,
}

impl Bar {
    fn current(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        // A panic while drawing leaves nothing half-done worth refusing.
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl UploadProgress for Bar {
    fn start(&self, total: u64) {
        if total <= MIN_SIZE {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "postie: sending {binary_bytes}/{binary_total_bytes} [{bar:30}] {binary_bytes_per_sec}, {eta} left",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        *self.current() = Some(bar);
    }

    fn sent(&self, sent: u64) {
        if let Some(bar) = self.current().as_ref() {
            bar.set_position(sent);
        }
    }

    fn finish(&self) {
        // Cleared: what follows (the result, an error line) reads as if
        // there had been no bar.
        if let Some(bar) = self.current().take() {
            bar.finish_and_clear();
        }
    }
}
