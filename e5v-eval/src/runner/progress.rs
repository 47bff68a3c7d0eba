//! A progress line on stderr: items done, throughput and ETA.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the line is redrawn on a terminal, and printed when stderr is a file.
const TTY_INTERVAL: Duration = Duration::from_millis(250);
const LOG_INTERVAL: Duration = Duration::from_secs(15);

/// Progress of one embedding pass. Throughput counts only the items the model computed (cache
/// hits are nearly free), so the ETA stays honest on a resumed run.
pub(crate) struct Progress {
    label: String,
    total: usize,
    done: usize,
    cached: usize,
    start: Instant,
    last: Option<Instant>,
    enabled: bool,
    tty: bool,
}

/// `1h02m`, `4m05s` or `12s`.
pub(crate) fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s / 60) % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

impl Progress {
    /// A progress line for `total` items; silent unless `enabled`.
    pub(crate) fn new(label: impl Into<String>, total: usize, enabled: bool) -> Self {
        Self {
            label: label.into(),
            total,
            done: 0,
            cached: 0,
            start: Instant::now(),
            last: None,
            enabled,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// The current line.
    pub(crate) fn line(&self) -> String {
        let elapsed = self.start.elapsed();
        let computed = self.done - self.cached;
        let pct = if self.total == 0 {
            100.0
        } else {
            100.0 * self.done as f64 / self.total as f64
        };
        let mut line = format!("{}: {}/{} ({pct:.0}%)", self.label, self.done, self.total);
        if self.cached > 0 {
            line += &format!(", {} cached", self.cached);
        }
        let secs = elapsed.as_secs_f64();
        if computed > 0 && secs > 0.0 {
            let rate = computed as f64 / secs;
            line += &format!(", {rate:.1} items/s");
            if self.done < self.total {
                let eta = (self.total - self.done) as f64 / rate;
                line += &format!(", ETA {}", format_duration(Duration::from_secs_f64(eta)));
            }
        }
        line + &format!(", {} elapsed", format_duration(elapsed))
    }

    /// Records `n` more items, `cached` of them from the cache.
    pub(crate) fn advance(&mut self, n: usize, cached: usize) {
        self.done += n;
        self.cached += cached;
        if !self.enabled || self.done >= self.total {
            // The last line is printed by `finish`.
            return;
        }
        let interval = if self.tty { TTY_INTERVAL } else { LOG_INTERVAL };
        let now = Instant::now();
        if self.last.is_some_and(|t| now - t < interval) {
            return;
        }
        self.last = Some(now);
        self.print(false);
    }

    /// Prints the final line.
    pub(crate) fn finish(&mut self) {
        if self.enabled {
            self.print(true);
        }
    }

    fn print(&self, last: bool) {
        let mut err = std::io::stderr().lock();
        // Progress is best effort: a closed stderr must not stop an evaluation.
        let _ = if self.tty {
            write!(
                err,
                "\r\x1b[K{}{}",
                self.line(),
                if last { "\n" } else { "" }
            )
        } else {
            writeln!(err, "{}", self.line())
        };
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_line() {
        assert_eq!(format_duration(Duration::from_secs(12)), "12s");
        assert_eq!(format_duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(format_duration(Duration::from_secs(3725)), "1h02m");
        let mut p = Progress::new("images", 10, false);
        p.advance(4, 1);
        let line = p.line();
        assert!(line.starts_with("images: 4/10 (40%), 1 cached"), "{line}");
        p.advance(6, 6);
        assert!(!p.line().contains("ETA"));
    }
}
