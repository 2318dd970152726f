//! Live rendering of a job's events in the terminal: step lines above a
//! progress line — a spinner with the phase while a step has no measurable
//! progress, a bar once it has — and, when stderr is not a terminal (a CI
//! log), plain lines, progress included every tenth of the way. The same
//! for a job run in-process and one watched over HTTP.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::render;
use crate::journal::{Event, JobState};

/// A progress bar with step lines above it.
pub struct LiveView {
    bar: ProgressBar,
    tty: bool,
    /// The fraction last printed as a line (no terminal), this phase.
    printed: std::cell::Cell<Option<f64>>,
}

/// The spinner shown while a step has no measurable progress.
fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:>15} {msg}").expect("valid template")
}

/// The bar shown once it has.
fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:>15} [{bar:30}] {percent:>3}% {msg}")
        .expect("valid template")
        .progress_chars("=> ")
}

/// Whether a progress line is due without a terminal: the first measurable
/// progress of a phase, every further tenth, and the end.
fn progress_line_due(printed: Option<f64>, now: f64) -> bool {
    match printed {
        None => true,
        Some(before) => now >= 1.0 || (now * 10.0).floor() > (before * 10.0).floor(),
    }
}

impl LiveView {
    /// Start drawing.
    pub fn new() -> Self {
        // Without a terminal the bar is hidden, so lines go to stdout.
        let tty = std::io::stderr().is_terminal();
        let bar = ProgressBar::new(1000);
        bar.set_style(spinner_style());
        bar.enable_steady_tick(Duration::from_millis(120));
        LiveView {
            bar,
            tty,
            printed: std::cell::Cell::new(None),
        }
    }

    /// Print a line above the bar.
    pub fn line(&self, line: String) {
        if self.tty {
            self.bar.println(line)
        } else {
            outln!("{line}")
        }
    }

    /// Show one event; returns the terminal state when the job reached one.
    pub fn show(&self, event: &Event) -> Option<JobState> {
        if let Some(line) = render::event_line(event) {
            self.line(line);
        }
        match event {
            Event::Phase { phase } => {
                // No bar until the step says how far it is.
                self.bar.set_style(spinner_style());
                self.bar.set_prefix(phase.clone());
                self.bar.set_position(0);
                self.bar.set_message("");
                self.printed.set(None);
            }
            Event::Progress(p) => {
                let text = render::progress_text(p);
                match p.fraction {
                    Some(f) => {
                        self.bar.set_style(bar_style());
                        self.bar.set_position((f * 1000.0) as u64);
                        if !self.tty && progress_line_due(self.printed.get(), f) {
                            self.printed.set(Some(f));
                            outln!("  {} {:>3.0}% {text}", self.bar.prefix(), f * 100.0);
                        }
                    }
                    None => self.bar.set_style(spinner_style()),
                }
                self.bar.set_message(text);
            }
            Event::State { state, .. } if state.is_terminal() => return Some(*state),
            _ => {}
        }
        None
    }

    /// Remove the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The closing line of a job: what became of it.
pub fn summary_line(
    state: JobState,
    secs: f64,
    summary: Option<&str>,
    error: Option<&str>,
) -> String {
    match state {
        JobState::Succeeded => format!("{state} in {secs:.1} s: {}", summary.unwrap_or("done")),
        JobState::Cancelled => {
            format!("cancelled after {secs:.1} s: rolled back to the state before the job")
        }
        _ => format!(
            "{state} after {secs:.1} s: {}",
            error.unwrap_or("no error recorded")
        ),
    }
}

/// SIGINT (Ctrl-C) as a stream, registered once: unlike a fresh
/// `ctrl_c()` future per loop turn, it keeps a signal that arrives between
/// two polls.
pub fn interrupts() -> anyhow::Result<tokio::signal::unix::Signal> {
    Ok(tokio::signal::unix::signal(
        tokio::signal::unix::SignalKind::interrupt(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::progress_line_due;

    #[test]
    fn without_a_terminal_progress_is_a_line_every_tenth_of_the_way() {
        let mut printed = None;
        let mut lines = Vec::new();
        for f in [0.01, 0.02, 0.05, 0.11, 0.12, 0.35, 0.36, 0.999, 1.0] {
            if progress_line_due(printed, f) {
                printed = Some(f);
                lines.push(f);
            }
        }
        assert_eq!(lines, [0.01, 0.11, 0.35, 0.999, 1.0]);
    }
}
