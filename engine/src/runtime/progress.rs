//! Image-pull progress, computed from the daemon's pull stream: the
//! aggregate (layers done, bytes, an overall fraction) and a bounded
//! per-layer breakdown (state and bytes of each layer).
//!
//! The stream is one JSON object per status line. Layers are keyed by their
//! `id`; the first line's id is the tag (`Pulling from …`), and lines without
//! an id (`Digest: …`, `Status: …`) are not layers. A layer is done at
//! `Pull complete` or `Already exists`; bytes come from `Downloading`'s
//! `progressDetail`. A pull has succeeded only once the final `Status:` line
//! arrived with no error before it.
//!
//! Nothing shown grows while the pull runs: each layer's size is fixed once
//! the daemon first gives it, and the byte total over all layers is only
//! reported once every layer's size is known.

use std::collections::HashMap;

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

/// The most layers a [`PullProgress`] lists one by one (Docker's own limit
/// is 128): the list is journaled a few times per second. The counts cover
/// every layer.
pub const MAX_LAYERS: usize = 128;

/// The longest layer id listed, in characters (the daemon's are 12).
pub const MAX_LAYER_ID_CHARS: usize = 64;

/// The share of a layer's work that is its download; extraction is the rest.
/// Per-layer bars use it too, so that the overall fraction is their mean.
pub const DOWNLOAD_SHARE: f64 = 0.8;

/// What a layer is doing, as the daemon last said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerState {
    /// Announced (`Pulling fs layer`) or queued (`Waiting`); no bytes yet.
    Waiting,
    /// Downloading.
    Downloading,
    /// The download broke; the daemon retries it (`Retrying in N seconds`).
    Retrying,
    /// Downloaded and verified; waiting for the layers below to extract.
    Downloaded,
    /// Extracting.
    Extracting,
    /// Pulled and extracted.
    Done,
    /// Present before the pull; nothing to download.
    AlreadyPresent,
}

impl LayerState {
    /// The state's name in the journal and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            LayerState::Waiting => "waiting",
            LayerState::Downloading => "downloading",
            LayerState::Retrying => "retrying",
            LayerState::Downloaded => "downloaded",
            LayerState::Extracting => "extracting",
            LayerState::Done => "done",
            LayerState::AlreadyPresent => "already_present",
        }
    }
}

/// One layer in a [`PullProgress`].
#[derive(Debug, Clone, PartialEq)]
pub struct PullLayer {
    /// The daemon's layer id, cut to [`MAX_LAYER_ID_CHARS`].
    pub id: String,
    /// What the layer is doing.
    pub state: LayerState,
    /// Bytes of the layer's current activity: downloaded so far, extracted
    /// so far while extracting, all of them once downloaded or done.
    pub current: u64,
    /// The layer's size, fixed once the daemon first gives it; `None` until
    /// then, and for a layer already present.
    pub total: Option<u64>,
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
    /// Bytes to download over all layers, once every layer's size is known;
    /// 0 until then, so that the total never grows while it is shown.
    pub bytes_total: u64,
    /// 0.0–1.0, never decreasing, 1.0 only when done; `None` while no layer
    /// is known yet.
    pub fraction: Option<f64>,
    /// The first [`MAX_LAYERS`] layers, in the order the daemon announced
    /// them.
    pub layers: Vec<PullLayer>,
}

#[derive(Debug, Clone)]
struct Layer {
    id: String,
    state: LayerState,
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
    fn new(id: &str) -> Self {
        Layer {
            id: id.to_owned(),
            state: LayerState::Waiting,
            downloaded: 0,
            size: None,
            extracted: 0,
            extract_total: None,
            download_done: false,
            done: false,
        }
    }

    /// Share of this layer's work that is finished: the download counts
    /// [`DOWNLOAD_SHARE`], extraction the rest.
    fn fraction(&self) -> f64 {
        if self.done {
            return 1.0;
        }
        let ratio = |cur: u64, total: Option<u64>| match total {
            Some(t) if t > 0 => (cur as f64 / t as f64).min(1.0),
            _ => 0.0,
        };
        if self.download_done {
            DOWNLOAD_SHARE + (1.0 - DOWNLOAD_SHARE) * ratio(self.extracted, self.extract_total)
        } else {
            DOWNLOAD_SHARE * ratio(self.downloaded, self.size)
        }
    }

    /// Bytes this layer adds to the pull's total, once known: its size, or
    /// what came when the download ended without one (a layer already
    /// present adds nothing).
    fn known_size(&self) -> Option<u64> {
        self.size.or(self.download_done.then_some(self.downloaded))
    }

    /// The layer as listed in [`PullProgress::layers`].
    fn listed(&self) -> PullLayer {
        let total = match self.state {
            LayerState::AlreadyPresent => None,
            // The extraction's total can differ from the download's by a few
            // bytes; the size first given stays the layer's total.
            _ => self.size.or(self.extract_total),
        };
        let current = match self.state {
            LayerState::Extracting => self.extracted,
            LayerState::Downloaded | LayerState::Done => total.unwrap_or(self.downloaded),
            LayerState::AlreadyPresent => 0,
            _ => self.downloaded,
        };
        PullLayer {
            id: self.id.chars().take(MAX_LAYER_ID_CHARS).collect(),
            state: self.state,
            current: total.map_or(current, |t| current.min(t)),
            total,
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
    /// In the order the daemon announced them, which is the image's.
    layers: Vec<Layer>,
    /// Position of each layer id in `layers`.
    index: HashMap<String, usize>,
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
        let at = match self.index.get(id) {
            Some(&at) => at,
            None => {
                self.layers.push(Layer::new(id));
                self.index.insert(id.to_owned(), self.layers.len() - 1);
                self.layers.len() - 1
            }
        };
        let layer = &mut self.layers[at];
        let detail = line.progress_detail.clone().unwrap_or_default();
        match status {
            "Pulling fs layer" | "Waiting" if !layer.done => layer.state = LayerState::Waiting,
            "Downloading" => {
                if let Some(t) = detail.total.filter(|t| *t > 0) {
                    // Fixed once known, so that the totals shown never move.
                    layer.size.get_or_insert(t);
                }
                if let Some(c) = detail.current {
                    layer.downloaded = layer.downloaded.max(c);
                    if let Some(size) = layer.size {
                        layer.downloaded = layer.downloaded.min(size);
                    }
                }
                if !layer.download_done {
                    layer.state = LayerState::Downloading;
                }
            }
            s if s.starts_with("Retrying") && !layer.download_done => {
                layer.state = LayerState::Retrying
            }
            "Verifying Checksum" | "Download complete" => {
                layer.download_done = true;
                if let Some(size) = layer.size {
                    layer.downloaded = size;
                }
                if !layer.done && layer.state != LayerState::Extracting {
                    layer.state = LayerState::Downloaded;
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
                if !layer.done {
                    layer.state = LayerState::Extracting;
                }
            }
            "Pull complete" | "Already exists" => {
                layer.download_done = true;
                layer.done = true;
                if let Some(size) = layer.size {
                    layer.downloaded = size;
                }
                layer.state = if status == "Already exists" {
                    LayerState::AlreadyPresent
                } else {
                    LayerState::Done
                };
            }
            _ => {}
        }
        Ok(())
    }

    /// The pull's progress now. The fraction never decreases between calls.
    pub fn progress(&mut self) -> PullProgress {
        let layers_total = self.layers.len() as u32;
        let layers_done = self.layers.iter().filter(|l| l.done).count() as u32;
        let bytes_done = self.layers.iter().map(|l| l.downloaded).sum();
        // A sum over the sizes known so far would grow as layers start: the
        // total is only given once it is the whole.
        let bytes_total = if self.done || self.layers_announced {
            self.layers
                .iter()
                .map(Layer::known_size)
                .sum::<Option<u64>>()
                .unwrap_or(0)
        } else {
            0
        };
        let fraction = if self.done {
            Some(1.0)
        } else if layers_total == 0 || !self.layers_announced {
            // The daemon announces every layer before any download starts;
            // until then a fraction would jump back as layers appear.
            None
        } else {
            let mean = self.layers.iter().map(Layer::fraction).sum::<f64>() / layers_total as f64;
            // 1.0 belongs to the final status line alone.
            let clamped = mean.clamp(0.0, 0.999);
            self.high_water = self.high_water.max(clamped);
            Some(self.high_water)
        };
        let phase = if self.done {
            PullPhase::Done
        } else if layers_total == 0 {
            PullPhase::Resolving
        } else if self.layers.iter().all(|l| l.download_done) {
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
            layers: self
                .layers
                .iter()
                .take(MAX_LAYERS)
                .map(Layer::listed)
                .collect(),
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
    fn bytes_come_from_downloading_progress_detail_and_the_total_waits_for_every_size() {
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
        // The fourth layer is still waiting, its size unknown: no total yet.
        assert_eq!(p.bytes_total, 0);
        assert!(p.fraction.unwrap() > 0.0 && p.fraction.unwrap() < 1.0);
    }

    #[test]
    fn the_byte_total_is_given_once_every_size_is_known_and_then_never_changes() {
        let (_, seen, _) = replay(MULTI);
        // The last layer to start downloading gives the last size.
        let last_size = MULTI
            .lines()
            .position(|l| l.contains(r#""Downloading""#) && l.contains("4d8b8862f1d4"))
            .unwrap();
        assert!(seen[..last_size].iter().all(|p| p.bytes_total == 0));
        let whole = 30009410 + 30009412 + 2 * 30009415;
        assert!(seen[last_size..].iter().all(|p| p.bytes_total == whole));
        assert!(seen.iter().all(|p| p.bytes_done <= whole));
    }

    /// The totals a view shows never grow along `seen`: the byte total and
    /// each layer's size stay as first given, and so does the layer count
    /// once the fraction is known.
    fn assert_totals_never_grow(name: &str, seen: &[PullProgress]) {
        let mut bytes_total = None;
        let mut sizes: HashMap<String, u64> = HashMap::new();
        let mut layers_total = None;
        for (n, p) in seen.iter().enumerate() {
            if p.bytes_total > 0 {
                assert_eq!(
                    *bytes_total.get_or_insert(p.bytes_total),
                    p.bytes_total,
                    "{name} line {n}"
                );
            }
            if p.fraction.is_some() {
                let total = *layers_total.get_or_insert(p.layers_total);
                assert_eq!(total, p.layers_total, "{name} line {n}");
            }
            for l in &p.layers {
                if let Some(t) = l.total {
                    let first = *sizes.entry(l.id.clone()).or_insert(t);
                    assert_eq!(first, t, "{name} line {n}: layer {}", l.id);
                }
                if let Some(t) = l.total {
                    assert!(l.current <= t, "{name} line {n}: {l:?}");
                }
            }
        }
    }

    #[test]
    fn totals_shown_never_grow_and_fraction_never_decreases_along_every_fixture() {
        for (name, stream) in [
            ("single", SINGLE),
            ("present", PRESENT),
            ("multi", MULTI),
            ("big", BIG),
            ("dies", DIES),
        ] {
            let (_, seen, _) = replay(stream);
            assert_totals_never_grow(name, &seen);
            assert_monotonic(&seen);
            // The per-layer list and the counts agree.
            for p in &seen {
                assert_eq!(p.layers.len(), p.layers_total as usize, "{name}");
                let finished = p
                    .layers
                    .iter()
                    .filter(|l| matches!(l.state, LayerState::Done | LayerState::AlreadyPresent))
                    .count();
                assert_eq!(finished, p.layers_done as usize, "{name}");
            }
        }
    }

    #[test]
    fn layers_are_listed_in_the_daemons_order_with_their_state_and_size() {
        let (_, seen, _) = replay(MULTI);
        let ids = [
            "d367b91f526b",
            "40f7e7a955c8",
            "2444352a396d",
            "e3ae306ed48e",
            "4d8b8862f1d4",
        ];
        let states = |p: &PullProgress| p.layers.iter().map(|l| l.state).collect::<Vec<_>>();
        // Announced: the base is present, the others wait, with no sizes.
        let announced = &seen[6];
        assert_eq!(
            announced
                .layers
                .iter()
                .map(|l| l.id.as_str())
                .collect::<Vec<_>>(),
            ids
        );
        use LayerState::*;
        assert_eq!(
            states(announced),
            [AlreadyPresent, Waiting, Waiting, Waiting, Waiting]
        );
        assert!(
            announced
                .layers
                .iter()
                .all(|l| l.total.is_none() && l.current == 0)
        );
        // Line 12: the third layer is halfway down, with its size.
        let l = &seen[11].layers[2];
        assert_eq!(
            (l.state, l.current, l.total),
            (Downloading, 15728322, Some(30009415))
        );
        // One layer extracts while the others are downloaded or still coming.
        let extracting = MULTI
            .lines()
            .position(|l| l.contains("Extracting"))
            .unwrap();
        assert_eq!(
            states(&seen[extracting]),
            [
                AlreadyPresent,
                Extracting,
                Downloaded,
                Downloaded,
                Downloading
            ]
        );
        assert_eq!(seen[extracting].layers[1].current, 327680);
        // At the end every layer is done with its size; the base has none.
        let last = seen.last().unwrap();
        assert_eq!(states(last), [AlreadyPresent, Done, Done, Done, Done]);
        let totals: Vec<_> = last.layers.iter().map(|l| l.total).collect();
        assert_eq!(
            totals,
            [
                None,
                Some(30009410),
                Some(30009415),
                Some(30009412),
                Some(30009415)
            ]
        );
        assert!(last.layers[1..].iter().all(|l| Some(l.current) == l.total));
    }

    #[test]
    fn a_download_the_daemon_retries_is_shown_as_retrying() {
        let (_, seen, _) = replay(DIES);
        let first_retry = DIES.lines().position(|l| l.contains("Retrying")).unwrap();
        let l = seen[first_retry]
            .layers
            .iter()
            .find(|l| l.id == "2444352a396d")
            .unwrap();
        // The bytes already in stay; the size stays.
        assert_eq!((l.state, l.total), (LayerState::Retrying, Some(30009415)));
        assert!(l.current > 20_000_000, "{l:?}");
        // A layer that never started still has no size.
        let waiting = seen
            .last()
            .unwrap()
            .layers
            .iter()
            .find(|l| l.id == "4d8b8862f1d4");
        assert_eq!(waiting.unwrap().total, None);
    }

    #[test]
    fn a_tiny_layer_and_the_big_ones_each_keep_their_own_size() {
        let (_, seen, _) = replay(BIG);
        let last = seen.last().unwrap();
        let tiny = last.layers.iter().find(|l| l.id == "8bf7397635bf").unwrap();
        assert_eq!(
            (tiny.state, tiny.current, tiny.total),
            (LayerState::Done, 111, Some(111))
        );
        assert_eq!(
            last.bytes_total,
            31467071 + 31467101 + 31467073 + 31467105 + 111
        );
    }

    #[test]
    fn the_listed_layers_are_bounded_in_number_and_id_length_but_all_are_counted() {
        let mut t = PullTracker::new();
        let line = |id: &str, status: &str| PullLine {
            id: Some(id.to_owned()),
            status: Some(status.to_owned()),
            ..Default::default()
        };
        t.observe(&line("1", "Pulling from x")).unwrap();
        for i in 0..200 {
            t.observe(&line(
                &format!("{i}-{}", "x".repeat(100)),
                "Pulling fs layer",
            ))
            .unwrap();
        }
        let p = t.progress();
        assert_eq!(p.layers_total, 200);
        assert_eq!(p.layers.len(), MAX_LAYERS);
        assert!(
            p.layers
                .iter()
                .all(|l| l.id.chars().count() == MAX_LAYER_ID_CHARS)
        );
        // In the daemon's order: the first announced come first.
        assert!(p.layers[0].id.starts_with("0-") && p.layers[1].id.starts_with("1-"));
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
