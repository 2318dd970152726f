//! Live rendering of a job's events in the terminal: step lines above a
//! progress bar (plain lines when stderr is not a terminal), the same for a
//! job run in-process and one watched over HTTP.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::render;
use crate::journal::{Event, JobState};

/// A progress bar with step lines above it.
pub struct LiveView {
    bar: ProgressBar,
    tty: bool,
}

impl LiveView {
    /// Start drawing.
    pub fn new() -> Self {
        // Without a terminal the bar is hidden, so lines go to stdout.
        let tty = std::io::stderr().is_terminal();
        let bar = ProgressBar::new(1000);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:>15} [{bar:30}] {percent:>3}% {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        LiveView { bar, tty }
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
                self.bar.set_prefix(phase.clone());
                self.bar.set_position(0);
                self.bar.set_message("");
            }
            Event::Progress(p) => {
                self.bar
                    .set_position((p.fraction.unwrap_or(0.0) * 1000.0) as u64);
                self.bar.set_message(render::progress_text(p));
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
