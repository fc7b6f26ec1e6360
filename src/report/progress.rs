//! `check`'s progress line on a terminal: while probes run, one line on standard error names
//! each probe still running and for how long (`running 2: quay.io secret=pull 3.2s · …`),
//! redrawn in place (`\r`, erase line) and erased before each result is printed, so the
//! results on standard output stay clean. Shown only when both standard output and standard
//! error are terminals: piped or redirected output never carries it.

use std::io::{IsTerminal, Write};
use std::time::Duration;

/// How often the line is redrawn.
pub const TICK: Duration = Duration::from_millis(250);

/// The progress line's state on standard error.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    width: usize,
    shown: bool,
}

impl Progress {
    /// A progress line `width` columns wide at most, enabled when standard output and standard
    /// error are both terminals.
    pub fn for_terminal(width: usize) -> Progress {
        Progress {
            enabled: std::io::stdout().is_terminal() && std::io::stderr().is_terminal(),
            width,
            shown: false,
        }
    }

    /// Whether anything is ever drawn.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Draws the line for `running` (label, time running so far); erases it when empty.
    pub fn draw(&mut self, running: &[(String, Duration)]) {
        if !self.enabled {
            return;
        }
        if running.is_empty() {
            self.clear();
            return;
        }
        let line = progress_line(running, self.width);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        self.shown = true;
    }

    /// Erases the line, if drawn (before a result is written to standard output).
    pub fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.shown = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// `running N: LABEL 1.2s · LABEL 0.4s`, longest-running first, cut to `width - 1` columns
/// (the last column stays free so the terminal does not wrap) with an ellipsis.
pub fn progress_line(running: &[(String, Duration)], width: usize) -> String {
    let mut items: Vec<&(String, Duration)> = running.iter().collect();
    items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let list: Vec<String> = items
        .iter()
        .map(|(label, d)| format!("{label} {:.1}s", d.as_secs_f64()))
        .collect();
    let line = format!("running {}: {}", running.len(), list.join(" · "));
    super::width::cut(&line, width.saturating_sub(1).max(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_first_and_cut_to_the_width() {
        let running = vec![
            ("quay.io secret=a".to_string(), Duration::from_millis(400)),
            (
                "127.0.0.1:5000 secret=stuck".to_string(),
                Duration::from_millis(3200),
            ),
        ];
        assert_eq!(
            progress_line(&running, 100),
            "running 2: 127.0.0.1:5000 secret=stuck 3.2s · quay.io secret=a 0.4s"
        );
        let cut = progress_line(&running, 30);
        assert_eq!(cut, "running 2: 127.0.0.1:5000 se…");
        assert_eq!(unicode_width::UnicodeWidthStr::width(cut.as_str()), 29);
    }
}
