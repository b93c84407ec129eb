//! A progress line on standard error while a large snapshot is replayed or
//! a cluster's pods are listed: only when standard error is a terminal (a
//! pipe or a log file gets nothing), and only once the work has taken long
//! enough to wonder.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A replay shorter than this shows nothing.
const QUIET_FOR: Duration = Duration::from_secs(1);
/// How often the line is redrawn.
const EVERY: Duration = Duration::from_millis(200);

pub struct Progress {
    enabled: bool,
    started: Instant,
    drawn: Option<Instant>,
}

impl Progress {
    pub fn on_stderr() -> Progress {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            started: Instant::now(),
            drawn: None,
        }
    }

    /// `done` of `total` items of `what` (`replaying bindings`, `list
    /// pods`); at the end the line is erased.
    pub fn update(&mut self, what: &str, done: usize, total: usize) {
        if !self.enabled || self.started.elapsed() < QUIET_FOR {
            return;
        }
        let mut err = std::io::stderr().lock();
        if done >= total {
            if self.drawn.take().is_some() {
                // Carriage return, then erase to the end of the line.
                let _ = write!(err, "\r\x1b[K");
            }
            return;
        }
        if self.drawn.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        let percent = done * 100 / total.max(1);
        let _ = write!(err, "\r{what}: {done}/{total} ({percent}%)\x1b[K");
        let _ = err.flush();
        self.drawn = Some(Instant::now());
    }
}
