//! The --timing clock: how long each stage of a session took, summed up
//! in one transcript line at the end.
//!
//! Belongs here: measuring and the summary line. Not here: the time
//! limits of each step (`classify::timed`, `settings::Timeouts`), the
//! stage names (`stage`).

use std::time::{Duration, Instant};

use crate::smtp::stage::Stage;
use crate::smtp::transcript::Transcript;

/// Stage durations for --timing.
pub(crate) struct Clock {
    enabled: bool,
    started: Instant,
    last: Instant,
    marks: Vec<(String, Duration)>,
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

    /// The time since the last mark, for the stages done in it (several
    /// when one exchange covers them, as the greeting and EHLO).
    pub(crate) fn mark(&mut self, stages: &[Stage]) {
        let now = Instant::now();
        let label: Vec<&str> = stages.iter().map(|s| s.timing_label()).collect();
        self.marks.push((label.join(" and "), now - self.last));
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
