//! The --timing clock: how long each stage of a session took, summed up
//! in one transcript line at the end.
//!
//! Belongs here: measuring and the summary line. Not here: the time
//! limits of each step (`classify::timed`, `settings::Timeouts`).

use std::time::{Duration, Instant};

use crate::smtp::transcript::Transcript;

/// Stage durations for --timing.
pub(crate) struct Clock {
    enabled: bool,
    started: Instant,
    last: Instant,
    marks: Vec<(&'static str, Duration)>,
}

impl Clock {
    pub(crate) fn new(enabled: bool) -> Clock {
        let now = Instant::now();
        Clock {
            enabled,
            started: now,
            last: now,
            marks: Vec::new(),
        }
    }

    pub(crate) fn mark(&mut self, stage: &'static str) {
        let now = Instant::now();
        self.marks.push((stage, now - self.last));
        self.last = now;
    }

    pub(crate) fn summary(&self, transcript: &Transcript) {
        if !self.enabled {
            return;
        }
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        let mut parts: Vec<String> = self
            .marks
            .iter()
            .map(|(s, d)| format!("{s} {}", ms(*d)))
            .collect();
        parts.push(format!("total {}", ms(self.started.elapsed())));
        transcript.note(&format!("timing: {}", parts.join(", ")));
    }
}
