//! Live rendering of a job's events in the terminal: step lines above a
//! progress line — a spinner with the phase while a step has no measurable
//! progress, a bar once it has — and under it, while a pull runs, a line per
//! layer (a bar once the layer has bytes to count, its state until then),
//! or, while several images are pulled at once (a stack's), a line per
//! image with the services it is for; removed when the step ends. When
//! stderr is not a terminal (a CI log): plain lines, progress included
//! every tenth of the way, a line as each of several pulls ends, no layer
//! lines.
//! The same for a job run in-process and one watched over HTTP.

use std::cell::{Cell, RefCell};
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::render;
use crate::journal::{Event, ImagePullProgress, JobState, LayerProgress};
use crate::runtime::progress::DOWNLOAD_SHARE;

/// The most layer lines under the progress line; more would push it off a
/// small terminal. The step's line still counts every layer.
const MAX_LAYER_LINES: usize = 12;

/// The characters of a layer id shown (the daemon's are 12).
const LAYER_ID_CHARS: usize = 15;

/// A progress bar with step lines above it and layer lines under it.
pub struct LiveView {
    multi: MultiProgress,
    bar: ProgressBar,
    /// The lines under the bar (layers, or pulls), in their order, with
    /// their keys (layer ids, images).
    layers: RefCell<Vec<(String, ProgressBar)>>,
    /// The pulls of this step whose end was printed (no terminal).
    pulls_ended: RefCell<Vec<String>>,
    tty: bool,
    /// The fraction last printed as a line (no terminal), this phase.
    printed: Cell<Option<f64>>,
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

/// A layer's bar, starting under the step's, shorter so that the line fits
/// 80 columns. No percentage: the bar weighs download and extraction, while
/// the text counts the current one's bytes.
fn layer_bar_style() -> ProgressStyle {
    ProgressStyle::with_template("  {prefix:>15} [{bar:20}] {msg}")
        .expect("valid template")
        .progress_chars("=> ")
}

/// A layer with nothing to measure (waiting, already present): its state
/// alone, not a bar frozen at 0%.
fn layer_state_style() -> ProgressStyle {
    ProgressStyle::with_template("  {prefix:>15}  {msg}").expect("valid template")
}

/// Whether a progress line is due without a terminal: the first measurable
/// progress of a phase, every further tenth, and the end.
fn progress_line_due(printed: Option<f64>, now: f64) -> bool {
    match printed {
        None => true,
        Some(before) => now >= 1.0 || (now * 10.0).floor() > (before * 10.0).floor(),
    }
}

/// How far a layer is, 0–1, for its bar: the download counts
/// [`DOWNLOAD_SHARE`] and extraction the rest, as in the step's fraction, so
/// that a bar never goes back when the download ends and extraction starts.
/// `None` while there is nothing to measure: the line shows the state.
fn layer_position(l: &LayerProgress) -> Option<f64> {
    let ratio = match l.total {
        Some(t) if t > 0 => (l.current as f64 / t as f64).min(1.0),
        _ => 0.0,
    };
    match l.state.as_str() {
        "done" => Some(1.0),
        "downloaded" => Some(DOWNLOAD_SHARE),
        "extracting" => Some(DOWNLOAD_SHARE + (1.0 - DOWNLOAD_SHARE) * ratio),
        "downloading" | "retrying" => l.total.filter(|t| *t > 0).map(|_| DOWNLOAD_SHARE * ratio),
        _ => None,
    }
}

/// The layers given a line: all of them when they fit, else the unfinished
/// ones (up to `max`), in the daemon's order.
fn shown_layers(layers: &[LayerProgress], max: usize) -> Vec<&LayerProgress> {
    if layers.len() <= max {
        return layers.iter().collect();
    }
    layers
        .iter()
        .filter(|l| !matches!(l.state.as_str(), "done" | "already_present"))
        .take(max)
        .collect()
}

/// A line under the progress bar: a layer, or one of several pulls.
struct SubLine {
    /// What identifies it from one progress record to the next.
    key: String,
    prefix: String,
    /// How far, 0–1; `None`: nothing to measure, the message says why.
    position: Option<f64>,
    message: String,
}

fn layer_line(l: &LayerProgress) -> SubLine {
    SubLine {
        key: l.id.clone(),
        prefix: render::one_line(&l.id.chars().take(LAYER_ID_CHARS).collect::<String>()),
        position: layer_position(l),
        message: render::layer_text(l),
    }
}

/// One of several pulls: the services it is for, its image and counts.
fn pull_line(p: &ImagePullProgress) -> SubLine {
    let labels: String = p.labels.join(",").chars().take(LAYER_ID_CHARS).collect();
    SubLine {
        key: p.image.clone(),
        prefix: render::one_line(&labels),
        position: p.progress.fraction,
        message: render::pull_text(p),
    }
}

impl LiveView {
    /// Start drawing.
    pub fn new() -> Self {
        // Without a terminal the bars are hidden, so lines go to stdout.
        let tty = std::io::stderr().is_terminal();
        let multi = MultiProgress::new();
        let bar = multi.add(ProgressBar::new(1000));
        bar.set_style(spinner_style());
        bar.enable_steady_tick(Duration::from_millis(120));
        LiveView {
            multi,
            bar,
            layers: RefCell::new(Vec::new()),
            pulls_ended: RefCell::new(Vec::new()),
            tty,
            printed: Cell::new(None),
        }
    }

    /// Print a line above the bars.
    pub fn line(&self, line: String) {
        if self.tty {
            // Only fails when the terminal is gone; the line goes with it.
            let _ = self.multi.println(line);
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
                self.clear_layers();
                self.pulls_ended.borrow_mut().clear();
                // No bar until the step says how far it is.
                self.bar.set_style(spinner_style());
                self.bar.set_prefix(phase.clone());
                self.bar.set_position(0);
                self.bar.set_message("");
                self.printed.set(None);
            }
            // The step whose layers these were has ended.
            Event::Result { .. } => self.clear_layers(),
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
                if !p.pulls.is_empty() {
                    if self.tty {
                        self.show_sub_lines(p.pulls.iter().map(pull_line).collect());
                    } else {
                        self.print_ended_pulls(&p.pulls);
                    }
                } else if self.tty {
                    let shown = shown_layers(&p.layers, MAX_LAYER_LINES);
                    self.show_sub_lines(shown.into_iter().map(layer_line).collect());
                }
            }
            Event::State { state, .. } if state.is_terminal() => return Some(*state),
            _ => {}
        }
        None
    }

    /// Bring the lines under the bar in line with `lines`: update those on
    /// screen, add new ones after their predecessor, remove those no longer
    /// shown.
    fn show_sub_lines(&self, lines: Vec<SubLine>) {
        let mut on_screen = self.layers.borrow_mut();
        let mut kept: Vec<(String, ProgressBar)> = Vec::new();
        for l in lines {
            let bar = match on_screen.iter().position(|(key, _)| *key == l.key) {
                Some(i) => on_screen.remove(i).1,
                None => {
                    let after = kept.last().map_or(&self.bar, |(_, b)| b);
                    let bar = self.multi.insert_after(after, ProgressBar::new(1000));
                    bar.set_prefix(l.prefix);
                    bar
                }
            };
            match l.position {
                Some(f) => {
                    bar.set_style(layer_bar_style());
                    bar.set_position((f * 1000.0) as u64);
                }
                None => bar.set_style(layer_state_style()),
            }
            bar.set_message(l.message);
            kept.push((l.key, bar));
        }
        for (_, gone) in on_screen.drain(..) {
            gone.finish_and_clear();
            self.multi.remove(&gone);
        }
        *on_screen = kept;
    }

    /// Without a terminal: a line for each of several pulls as it ends.
    fn print_ended_pulls(&self, pulls: &[ImagePullProgress]) {
        let mut ended = self.pulls_ended.borrow_mut();
        for p in pulls {
            if p.progress.fraction == Some(1.0) && !ended.contains(&p.image) {
                ended.push(p.image.clone());
                outln!(
                    "  pulled {} for {}",
                    render::pull_text(p),
                    render::one_line(&p.labels.join(", "))
                );
            }
        }
    }

    /// Remove the lines under the bar.
    fn clear_layers(&self) {
        for (_, bar) in self.layers.borrow_mut().drain(..) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    /// Remove the bars.
    pub fn finish(&self) {
        self.clear_layers();
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
    use std::collections::HashMap;

    use super::*;
    use crate::runtime::progress::{PullLine, PullTracker};

    fn layer(id: &str, state: &str, current: u64, total: Option<u64>) -> LayerProgress {
        LayerProgress {
            id: id.into(),
            state: state.into(),
            current,
            total,
        }
    }

    /// The layer lists a real pull stream journals, one per line.
    fn journaled_layers(stream: &str) -> Vec<Vec<LayerProgress>> {
        let mut t = PullTracker::new();
        let mut out = Vec::new();
        for line in stream.lines() {
            let line: PullLine = serde_json::from_str(line).unwrap();
            if t.observe(&line).is_err() {
                break;
            }
            let layers = t
                .progress()
                .layers
                .into_iter()
                .map(|l| layer(&l.id, l.state.as_str(), l.current, l.total));
            out.push(layers.collect());
        }
        out
    }

    #[test]
    fn a_layer_bar_never_goes_back_through_a_real_pull_retries_included() {
        for stream in [
            include_str!("../../testdata/docker-pull/multi-layer-with-existing-base.jsonl"),
            include_str!("../../testdata/docker-pull/big-image-from-test-registry.jsonl"),
            include_str!("../../testdata/docker-pull/registry-dies-mid-pull.jsonl"),
        ] {
            let mut shown: HashMap<String, f64> = HashMap::new();
            let mut bars = 0;
            for layers in journaled_layers(stream) {
                for l in &layers {
                    if let Some(f) = layer_position(l) {
                        bars += 1;
                        let before = shown.insert(l.id.clone(), f).unwrap_or(0.0);
                        assert!(f >= before, "{l:?} went back from {before} to {f}");
                        assert!((0.0..=1.0).contains(&f));
                    }
                }
            }
            assert!(bars > 0);
        }
    }

    #[test]
    fn a_layer_with_nothing_to_measure_shows_its_state_not_an_empty_bar() {
        for (l, text) in [
            (layer("a", "waiting", 0, None), "waiting"),
            (layer("a", "already_present", 0, None), "already present"),
            (layer("a", "downloading", 0, None), "downloading"),
            (layer("a", "retrying", 0, None), "retrying"),
        ] {
            assert_eq!(layer_position(&l), None, "{l:?}");
            assert_eq!(render::layer_text(&l), text);
        }
        let done = layer("a", "done", 30_009_410, Some(30_009_410));
        assert_eq!(layer_position(&done), Some(1.0));
        let half = layer("a", "downloading", 15_004_705, Some(30_009_410));
        assert_eq!(layer_position(&half), Some(DOWNLOAD_SHARE / 2.0));
    }

    #[test]
    fn with_more_layers_than_lines_the_unfinished_ones_are_shown_in_order() {
        let layers: Vec<_> = [
            "done",
            "extracting",
            "already_present",
            "waiting",
            "downloading",
        ]
        .iter()
        .enumerate()
        .map(|(i, s)| layer(&i.to_string(), s, 0, None))
        .collect();
        let ids = |max| {
            shown_layers(&layers, max)
                .iter()
                .map(|l| l.id.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(5), ["0", "1", "2", "3", "4"]);
        assert_eq!(ids(4), ["1", "3", "4"]);
        assert_eq!(ids(2), ["1", "3"]);
    }

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
