//! Image-pull progress, computed from the daemon's pull stream.
//!
//! The stream is one JSON object per status line. Layers are keyed by their
//! `id`; the first line's id is the tag (`Pulling from …`), and lines without
//! an id (`Digest: …`, `Status: …`) are not layers. A layer is done at
//! `Pull complete` or `Already exists`; bytes come from `Downloading`'s
//! `progressDetail`. A pull has succeeded only once the final `Status:` line
//! arrived with no error before it.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One line of the daemon's pull stream.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PullLine {
    /// Layer id, or the tag on the first line.
    #[serde(default)]
    pub id: Option<String>,
    /// Status text.
    #[serde(default)]
    pub status: Option<String>,
    /// Byte counts of the current status.
    #[serde(default, rename = "progressDetail")]
    pub progress_detail: Option<ProgressDetail>,
    /// Error text of a failed pull.
    #[serde(default)]
    pub error: Option<String>,
    /// Structured error of a failed pull.
    #[serde(default, rename = "errorDetail")]
    pub error_detail: Option<ErrorDetail>,
}

/// Byte counts in a pull line.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ProgressDetail {
    /// Bytes so far.
    #[serde(default)]
    pub current: Option<u64>,
    /// Bytes in all.
    #[serde(default)]
    pub total: Option<u64>,
}

/// Structured error in a pull line.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ErrorDetail {
    /// The daemon's message.
    #[serde(default)]
    pub message: Option<String>,
}

/// What part of the pull is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPhase {
    /// Waiting for the first layer lines.
    Resolving,
    /// Some layer is downloading.
    Downloading,
    /// Every layer is downloaded; some are being extracted.
    Extracting,
    /// The daemon reported the final status.
    Done,
}

/// A snapshot of a pull's progress.
#[derive(Debug, Clone, PartialEq)]
pub struct PullProgress {
    /// Current phase.
    pub phase: PullPhase,
    /// Layers finished (pulled or already present).
    pub layers_done: u32,
    /// Distinct layers seen.
    pub layers_total: u32,
    /// Bytes downloaded over all layers.
    pub bytes_done: u64,
    /// Bytes to download over the layers whose size is known.
    pub bytes_total: u64,
    /// 0.0–1.0, never decreasing, 1.0 only when done; `None` while no layer
    /// is known yet.
    pub fraction: Option<f64>,
}

#[derive(Debug, Clone, Default)]
struct Layer {
    /// Bytes downloaded and the layer's compressed size, when known.
    downloaded: u64,
    size: Option<u64>,
    /// Extraction counts, when reported.
    extracted: u64,
    extract_total: Option<u64>,
    download_done: bool,
    done: bool,
}

impl Layer {
    /// Share of this layer's work that is finished: download counts 80%,
    /// extraction the rest.
    fn fraction(&self) -> f64 {
        if self.done {
            return 1.0;
        }
        let ratio = |cur: u64, total: Option<u64>| match total {
            Some(t) if t > 0 => (cur as f64 / t as f64).min(1.0),
            _ => 0.0,
        };
        if self.download_done {
            0.8 + 0.2 * ratio(self.extracted, self.extract_total)
        } else {
            0.8 * ratio(self.downloaded, self.size)
        }
    }
}

/// Why a pull failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullFailure {
    /// The daemon reported an error in the stream.
    #[error("{0}")]
    Daemon(String),
    /// The stream ended without the final `Status:` line.
    #[error("the pull stream ended before the daemon reported completion")]
    Incomplete,
}

/// Folds pull lines into [`PullProgress`].
#[derive(Debug, Default)]
pub struct PullTracker {
    tag: Option<String>,
    /// Whether the daemon has moved past announcing layers; until then the
    /// set of layers (and so the fraction) is not known.
    layers_announced: bool,
    layers: BTreeMap<String, Layer>,
    done: bool,
    error: Option<String>,
    high_water: f64,
}

impl PullTracker {
    /// A tracker for a new pull.
    pub fn new() -> Self {
        Self::default()
    }

    /// Take one line into account. An error line fails the pull.
    pub fn observe(&mut self, line: &PullLine) -> Result<(), PullFailure> {
        if let Some(msg) = line
            .error_detail
            .as_ref()
            .and_then(|d| d.message.clone())
            .or_else(|| line.error.clone())
        {
            self.error = Some(msg.clone());
            return Err(PullFailure::Daemon(msg));
        }
        let status = line.status.as_deref().unwrap_or("");
        let Some(id) = line.id.as_deref() else {
            if status.starts_with("Status:") {
                self.done = true;
            }
            return Ok(());
        };
        if status.starts_with("Pulling from")
            || self.tag.as_deref() == Some(id) && self.layers.is_empty()
        {
            self.tag = Some(id.to_owned());
            return Ok(());
        }
        if !matches!(status, "Already exists" | "Pulling fs layer" | "Waiting") {
            self.layers_announced = true;
        }
        let layer = self.layers.entry(id.to_owned()).or_default();
        let detail = line.progress_detail.clone().unwrap_or_default();
        match status {
            "Downloading" => {
                if let Some(c) = detail.current {
                    layer.downloaded = layer.downloaded.max(c);
                }
                if let Some(t) = detail.total.filter(|t| *t > 0) {
                    layer.size = Some(t);
                }
            }
            "Verifying Checksum" | "Download complete" => {
                layer.download_done = true;
                if let Some(size) = layer.size {
                    layer.downloaded = size;
                }
            }
            "Extracting" => {
                layer.download_done = true;
                if let Some(size) = layer.size {
                    layer.downloaded = size;
                }
                if let Some(c) = detail.current {
                    layer.extracted = layer.extracted.max(c);
                }
                if let Some(t) = detail.total.filter(|t| *t > 0) {
                    layer.extract_total = Some(t);
                }
            }
            "Pull complete" | "Already exists" => {
                layer.download_done = true;
                layer.done = true;
                if let Some(size) = layer.size {
                    layer.downloaded = size;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The pull's progress now. The fraction never decreases between calls.
    pub fn progress(&mut self) -> PullProgress {
        let layers_total = self.layers.len() as u32;
        let layers_done = self.layers.values().filter(|l| l.done).count() as u32;
        let bytes_done = self.layers.values().map(|l| l.downloaded).sum();
        let bytes_total = self.layers.values().filter_map(|l| l.size).sum();
        let fraction = if self.done {
            Some(1.0)
        } else if layers_total == 0 || !self.layers_announced {
            // The daemon announces every layer before any download starts;
            // until then a fraction would jump back as layers appear.
            None
        } else {
            let mean = self.layers.values().map(Layer::fraction).sum::<f64>() / layers_total as f64;
            // 1.0 belongs to the final status line alone.
            let clamped = mean.clamp(0.0, 0.999);
            self.high_water = self.high_water.max(clamped);
            Some(self.high_water)
        };
        let phase = if self.done {
            PullPhase::Done
        } else if layers_total == 0 {
            PullPhase::Resolving
        } else if self.layers.values().all(|l| l.download_done) {
            PullPhase::Extracting
        } else {
            PullPhase::Downloading
        };
        PullProgress {
            phase,
            layers_done,
            layers_total,
            bytes_done,
            bytes_total,
            fraction,
        }
    }

    /// The pull's outcome once the stream has ended.
    pub fn finish(&self) -> Result<(), PullFailure> {
        match (&self.error, self.done) {
            (Some(e), _) => Err(PullFailure::Daemon(e.clone())),
            (None, true) => Ok(()),
            (None, false) => Err(PullFailure::Incomplete),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(stream: &str) -> (PullTracker, Vec<PullProgress>, Result<(), PullFailure>) {
        let mut t = PullTracker::new();
        let mut seen = Vec::new();
        let mut outcome = Ok(());
        for line in stream.lines().filter(|l| !l.trim().is_empty()) {
            let line: PullLine = serde_json::from_str(line).expect("fixture line is JSON");
            if let Err(e) = t.observe(&line) {
                outcome = Err(e);
                break;
            }
            seen.push(t.progress());
        }
        let outcome = outcome.and_then(|_| t.finish());
        (t, seen, outcome)
    }

    fn assert_monotonic(seen: &[PullProgress]) {
        let mut last = 0.0;
        for p in seen {
            if let Some(f) = p.fraction {
                assert!((0.0..=1.0).contains(&f), "fraction {f} out of range");
                assert!(f >= last, "fraction went back from {last} to {f}");
                last = f;
            }
        }
    }

    const SINGLE: &str = include_str!("../../testdata/docker-pull/single-layer-fresh.jsonl");
    const PRESENT: &str = include_str!("../../testdata/docker-pull/already-present.jsonl");
    const MULTI: &str =
        include_str!("../../testdata/docker-pull/multi-layer-with-existing-base.jsonl");
    const BIG: &str = include_str!("../../testdata/docker-pull/big-image-from-test-registry.jsonl");
    const DIES: &str = include_str!("../../testdata/docker-pull/registry-dies-mid-pull.jsonl");

    #[test]
    fn single_fresh_layer_counts_one_layer_not_the_tag_line() {
        let (_, seen, outcome) = replay(SINGLE);
        outcome.unwrap();
        let last = seen.last().unwrap();
        assert_eq!((last.layers_done, last.layers_total), (1, 1));
        assert_eq!(last.fraction, Some(1.0));
        assert_eq!(last.phase, PullPhase::Done);
        assert_monotonic(&seen);
    }

    #[test]
    fn already_present_image_has_no_layers_and_completes() {
        let (_, seen, outcome) = replay(PRESENT);
        outcome.unwrap();
        let last = seen.last().unwrap();
        assert_eq!((last.layers_done, last.layers_total), (0, 0));
        assert_eq!(last.fraction, Some(1.0));
        // Before the final line, nothing is known: indeterminate.
        assert_eq!(seen[0].fraction, None);
    }

    #[test]
    fn multi_layer_counts_distinct_layer_ids_and_existing_base_as_done() {
        let (_, seen, outcome) = replay(MULTI);
        outcome.unwrap();
        let last = seen.last().unwrap();
        assert_eq!((last.layers_done, last.layers_total), (5, 5));
        // Four layers of about 30 MB were downloaded; the base was not.
        assert!(
            last.bytes_total > 4 * 29_000_000 && last.bytes_total < 4 * 33_000_000,
            "{}",
            last.bytes_total
        );
        assert_eq!(last.bytes_done, last.bytes_total);
        assert_monotonic(&seen);
        // Progress reaches 1.0 only at the end.
        assert!(
            seen[..seen.len() - 1]
                .iter()
                .all(|p| p.fraction.is_none_or(|f| f < 1.0))
        );
        // The download and the extraction are reported as phases.
        assert!(seen.iter().any(|p| p.phase == PullPhase::Downloading));
        assert!(seen.iter().any(|p| p.phase == PullPhase::Extracting));
        // Midway through, layers done is strictly between 1 and 5.
        assert!(seen.iter().any(|p| p.layers_done > 1 && p.layers_done < 5));
    }

    #[test]
    fn fraction_is_indeterminate_until_every_layer_is_announced() {
        let (_, seen, _) = replay(MULTI);
        // Lines 2–7 announce the layers (the first already exists) and
        // one waits; the first download comes on line 8.
        assert!(
            seen[..7].iter().all(|p| p.fraction.is_none()),
            "{:?}",
            &seen[..7]
        );
        assert_eq!(seen[6].layers_total, 5);
        assert!(seen[7..].iter().all(|p| p.fraction.is_some()));
    }

    #[test]
    fn fraction_midway_reflects_the_work_left() {
        let (_, seen, _) = replay(MULTI);
        // When the first downloaded layer completes, three 30 MB layers are
        // still to extract: well short of done.
        let first_complete = MULTI
            .lines()
            .position(|l| l.contains("Pull complete"))
            .unwrap();
        let f = seen[first_complete].fraction.unwrap();
        assert!(f > 0.3 && f < 0.9, "{f}");
    }

    #[test]
    fn a_stream_from_the_test_registry_counts_six_layers_and_finishes() {
        let (_, seen, outcome) = replay(BIG);
        outcome.unwrap();
        let last = seen.last().unwrap();
        assert_eq!((last.layers_done, last.layers_total), (6, 6));
        assert_monotonic(&seen);
        let first_download = BIG.lines().position(|l| l.contains("Downloading")).unwrap();
        assert!(
            seen[first_download].fraction.unwrap() < 0.3,
            "{:?}",
            seen[first_download]
        );
    }

    #[test]
    fn bytes_come_from_downloading_progress_detail() {
        let (mut t, _, _) = replay(
            MULTI
                .lines()
                .take(12)
                .collect::<Vec<_>>()
                .join("\n")
                .as_str(),
        );
        let p = t.progress();
        assert!(p.bytes_done > 0);
        assert!(p.bytes_done <= p.bytes_total);
        assert!(p.fraction.unwrap() > 0.0 && p.fraction.unwrap() < 1.0);
    }

    #[test]
    fn registry_dying_mid_pull_fails_with_the_daemons_message() {
        let (_, seen, outcome) = replay(DIES);
        assert_eq!(
            outcome,
            Err(PullFailure::Daemon(
                "dial tcp 127.0.0.1:5001: connect: connection refused".into()
            ))
        );
        assert_monotonic(&seen);
        assert!(seen.iter().all(|p| p.fraction.is_none_or(|f| f < 1.0)));
    }

    #[test]
    fn a_stream_cut_before_the_status_line_is_a_failure() {
        let cut: String = MULTI.lines().take(30).collect::<Vec<_>>().join("\n");
        let (_, _, outcome) = replay(&cut);
        assert_eq!(outcome, Err(PullFailure::Incomplete));
    }

    #[test]
    fn an_empty_stream_is_a_failure() {
        assert_eq!(PullTracker::new().finish(), Err(PullFailure::Incomplete));
    }
}
