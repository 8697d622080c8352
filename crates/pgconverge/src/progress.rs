//! One self-rewriting progress line on a terminal (standard error) for long steps: what is
//! waited for and how far behind, or what is copied, how much, how fast and how long is
//! left. Not a terminal: nothing, so logs and pipes get only the step lines.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pgconverge_engine::StepProgress;
use pgconverge_model::units::{describe_bytes, thousands};

/// Redraws at most this often: progress arrives with every chunk copied.
const REDRAW_EVERY: Duration = Duration::from_millis(200);

pub struct ProgressLine {
    enabled: bool,
    state: Mutex<LineState>,
}

#[derive(Default)]
struct LineState {
    /// When the current copy started; rate and time left are measured from it.
    copy_started: Option<Instant>,
    last_drawn: Option<Instant>,
    /// Width of the line on screen, to blank it.
    drawn_width: usize,
}

impl ProgressLine {
    pub fn on_terminal() -> ProgressLine {
        ProgressLine {
            enabled: std::io::stderr().is_terminal(),
            state: Mutex::new(LineState::default()),
        }
    }

    pub fn show(&self, node: &str, progress: StepProgress<'_>) {
        if !self.enabled {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if state
            .last_drawn
            .is_some_and(|last| now.duration_since(last) < REDRAW_EVERY)
        {
            return;
        }
        let text = match progress {
            StepProgress::Waiting { what, behind_bytes } => {
                state.copy_started = None;
                format!(
                    "{node}: waiting for {what}: {} behind",
                    describe_bytes(behind_bytes)
                )
            }
            StepProgress::Copying {
                table,
                bytes,
                estimated_bytes,
                rows,
            } => {
                let started = *state.copy_started.get_or_insert(now);
                copying_line(node, table, bytes, estimated_bytes, rows, now - started)
            }
            StepProgress::Copied { .. } | StepProgress::Merged { .. } => return,
        };
        let width = text.chars().count();
        let pad = " ".repeat(state.drawn_width.saturating_sub(width));
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{text}{pad}");
        let _ = err.flush();
        state.drawn_width = width;
        state.last_drawn = Some(now);
    }

    /// Blanks the line before a step line is printed.
    pub fn clear(&self) {
        if !self.enabled {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.drawn_width > 0 {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{}\r", " ".repeat(state.drawn_width));
            let _ = err.flush();
        }
        *state = LineState::default();
    }
}

/// `n4: copying public.items: 120.0 MiB of ~1.0 GiB, 45.2 MiB/s, ~20 s left (3,000 rows done)`.
fn copying_line(
    node: &str,
    table: &str,
    bytes: u64,
    estimated_bytes: u64,
    rows: u64,
    elapsed: Duration,
) -> String {
    let seconds = elapsed.as_secs_f64().max(0.001);
    let rate = bytes as f64 / seconds;
    let mut text = format!("{node}: copying {table}: {}", describe_bytes(bytes));
    if estimated_bytes > 0 {
        text.push_str(&format!(" of ~{}", describe_bytes(estimated_bytes)));
    }
    text.push_str(&format!(", {}/s", describe_bytes(rate as u64)));
    if estimated_bytes > bytes && rate > 0.0 {
        let left = (estimated_bytes - bytes) as f64 / rate;
        text.push_str(&format!(", ~{} s left", left.ceil() as u64));
    }
    if rows > 0 {
        text.push_str(&format!(" ({} rows done)", thousands(rows as i64)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_line_says_how_much_how_fast_and_how_long() {
        let line = copying_line(
            "n4",
            "public.items",
            10 * 1024 * 1024,
            30 * 1024 * 1024,
            3000,
            Duration::from_secs(2),
        );
        assert_eq!(
            line,
            "n4: copying public.items: 10.0 MiB of ~30.0 MiB, 5.0 MiB/s, ~4 s left (3,000 rows done)"
        );
        let unknown = copying_line("n4", "t", 2048, 0, 0, Duration::from_secs(1));
        assert_eq!(unknown, "n4: copying t: 2.0 KiB, 2.0 KiB/s");
    }
}
