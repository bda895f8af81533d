//! Transcoding progress: ffmpeg's `-progress` lines, where they are reported
//! ([`ProgressSink`]: a terminal line for `veza import`, a job's row for an upload),
//! and the terminal reporter itself.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Progress appears only once a transcode has run this long.
const PROGRESS_AFTER: Duration = Duration::from_secs(1);
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Where the progress of each file's transcode goes.
pub trait ProgressSink: Send + Sync {
    /// The transcode of `file`, expected to output `total_us` of audio, starts; the
    /// meter gets its updates and is dropped when it ends (however it ends).
    fn start(&self, file: &Path, total_us: u64) -> Box<dyn ProgressMeter>;
}

/// One transcode's progress.
pub trait ProgressMeter: Send {
    /// `out_us` of audio have been written.
    fn update(&mut self, out_us: u64);
}

/// The microseconds in one `-progress` line (`out_time_us=…`), if it is one.
pub fn progress_us(line: &str) -> Option<u64> {
    line.trim().strip_prefix("out_time_us=")?.parse().ok()
}

/// `m:ss` (or `h:mm:ss`), rounded to the nearest second.
pub fn display_duration(ms: i64) -> String {
    let s = (ms.max(0) + 500) / 1000;
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// A percentage on stderr (meant for a terminal): only after [`PROGRESS_AFTER`], at
/// most every [`PROGRESS_EVERY`]; the line is cleared at the end.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminalProgress;

impl TerminalProgress {
    /// The terminal reporter when stderr is a terminal, else none.
    pub fn if_stderr_is_a_terminal() -> Option<Arc<dyn ProgressSink>> {
        std::io::stderr()
            .is_terminal()
            .then(|| Arc::new(TerminalProgress) as Arc<dyn ProgressSink>)
    }
}

impl ProgressSink for TerminalProgress {
    fn start(&self, file: &Path, total_us: u64) -> Box<dyn ProgressMeter> {
        Box::new(TerminalMeter {
            label: file.display().to_string(),
            total_us,
            started: Instant::now(),
            last: None,
        })
    }
}

struct TerminalMeter {
    label: String,
    total_us: u64,
    started: Instant,
    last: Option<Instant>,
}

impl ProgressMeter for TerminalMeter {
    fn update(&mut self, out_us: u64) {
        if self.total_us == 0 || self.started.elapsed() < PROGRESS_AFTER {
            return;
        }
        if self.last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        let pct = (out_us.min(self.total_us) * 100) / self.total_us;
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{}: transcoding {pct:>3}%", self.label);
        let _ = err.flush();
    }
}

impl Drop for TerminalMeter {
    fn drop(&mut self) {
        if self.last.take().is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_and_display() {
        assert_eq!(progress_us("out_time_us=1500000"), Some(1_500_000));
        assert_eq!(progress_us("out_time_us=N/A"), None);
        assert_eq!(progress_us("progress=end"), None);
        assert_eq!(display_duration(5_000), "0:05");
        assert_eq!(display_duration(187_499), "3:07");
        assert_eq!(display_duration(3_723_000), "1:02:03");
    }
}
