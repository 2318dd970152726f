//! Image pulls of the `container` interface, one (`pull-image`) or several
//! at once (`pull-images`): each pull fails on its own when its stream
//! stalls, and a [`PullBoard`] folds what the pulls report into the job's
//! progress, journaled a few times a second at most, with a fraction that
//! never goes backwards and reaches 1.0 only when every pull is done.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;

use super::bindings::HostError;
use super::scope::host_error;
use crate::journal::{Event, ImagePullProgress, JobId, Journal, LayerProgress, Progress};
use crate::runtime::{
    ContainerRuntime, PullPhase, PullProgress, RuntimeError, progress::MAX_LAYERS,
};

/// The fewest layers each pull of several lists one by one (the journal
/// keeps at most [`MAX_LAYERS`] over all of them, a few times a second).
const MIN_LAYERS_PER_PULL: usize = 8;

/// The journal's form of one pull's progress, listing at most `max_layers`
/// of its layers.
fn progress_of(p: &PullProgress, max_layers: usize) -> Progress {
    Progress {
        fraction: p.fraction,
        layers_done: p.layers_done,
        layers_total: p.layers_total,
        bytes_done: p.bytes_done,
        bytes_total: p.bytes_total,
        layers: p
            .layers
            .iter()
            .take(max_layers)
            .map(|l| LayerProgress {
                id: l.id.clone(),
                state: l.state.as_str().to_owned(),
                current: l.current,
                total: l.total,
            })
            .collect(),
        pulls: Vec::new(),
    }
}

/// A pull not begun yet.
fn resolving() -> PullProgress {
    PullProgress {
        phase: PullPhase::Resolving,
        layers_done: 0,
        layers_total: 0,
        bytes_done: 0,
        bytes_total: 0,
        fraction: None,
        layers: Vec::new(),
    }
}

/// One pull on a board.
struct Entry {
    image: String,
    labels: Vec<String>,
    progress: PullProgress,
    done: bool,
}

struct BoardState {
    entries: Vec<Entry>,
    /// Something changed since the last record.
    pending: bool,
    last_written: Option<Instant>,
    /// The highest fraction journaled, so that none goes backwards.
    shown: Option<f64>,
}

/// The progress of one pull step, or of several pulled at once, journaled
/// as the job's progress.
pub(super) struct PullBoard {
    state: Mutex<BoardState>,
    journal: Journal,
    job: JobId,
    interval: Duration,
    /// Several pulls: each listed in `pulls`; one: its layers listed as
    /// `pull-image` always did.
    several: bool,
}

impl PullBoard {
    /// A board for `pulls` (image, labels), none begun.
    pub fn new(
        journal: Journal,
        job: JobId,
        interval: Duration,
        pulls: Vec<(String, Vec<String>)>,
        several: bool,
    ) -> Arc<PullBoard> {
        Arc::new(PullBoard {
            state: Mutex::new(BoardState {
                entries: pulls
                    .into_iter()
                    .map(|(image, labels)| Entry {
                        image,
                        labels,
                        progress: resolving(),
                        done: false,
                    })
                    .collect(),
                pending: false,
                last_written: None,
                shown: None,
            }),
            journal,
            job,
            interval,
            several,
        })
    }

    /// Pull `which` reported `p`; journaled once the interval allows.
    async fn update(&self, which: usize, p: PullProgress) -> Result<(), HostError> {
        let mut state = self.state.lock().await;
        state.entries[which].progress = p;
        state.pending = true;
        self.write_if_due(&mut state).await
    }

    /// How long until a pending change may be journaled (`None`: nothing
    /// is pending).
    async fn due_in(&self) -> Option<Duration> {
        let state = self.state.lock().await;
        state.pending.then(|| {
            state.last_written.map_or(Duration::ZERO, |t| {
                self.interval.saturating_sub(t.elapsed())
            })
        })
    }

    /// Journal a pending change if the interval since the last has passed.
    async fn flush_if_due(&self) -> Result<(), HostError> {
        let mut state = self.state.lock().await;
        self.write_if_due(&mut state).await
    }

    /// Pull `which` is done, its last report `last`; once every pull is,
    /// the board says 1.0.
    async fn finish(&self, which: usize, last: PullProgress) -> Result<(), HostError> {
        let mut state = self.state.lock().await;
        state.entries[which].progress = last;
        state.entries[which].done = true;
        if state.entries.iter().all(|e| e.done) {
            self.write(&mut state).await
        } else {
            state.pending = true;
            self.write_if_due(&mut state).await
        }
    }

    async fn write_if_due(&self, state: &mut BoardState) -> Result<(), HostError> {
        let due = state
            .last_written
            .is_none_or(|t| t.elapsed() >= self.interval);
        if state.pending && due {
            self.write(state).await
        } else {
            Ok(())
        }
    }

    async fn write(&self, state: &mut BoardState) -> Result<(), HostError> {
        let mut progress = self.summary(&state.entries);
        progress.fraction = match (progress.fraction, state.shown) {
            (Some(f), Some(s)) => Some(f.max(s)),
            (f, s) => f.or(s),
        };
        state.shown = progress.fraction;
        state.pending = false;
        state.last_written = Some(Instant::now());
        self.journal
            .append(&self.job, Event::Progress(progress))
            .await
            .map(|_| ())
            .map_err(|e| HostError::Runtime(format!("journal: {e}")))
    }

    /// The job's progress over `entries`. 1.0 means the step is done: only
    /// the record after the last pull says so, even when every layer is in
    /// before the daemon ends a pull.
    fn summary(&self, entries: &[Entry]) -> Progress {
        let all_done = entries.iter().all(|e| e.done);
        let capped = |e: &Entry, max_layers: usize| {
            let mut p = progress_of(&e.progress, max_layers);
            p.fraction = if e.done {
                Some(1.0)
            } else {
                p.fraction.map(|f| f.min(0.999))
            };
            p
        };
        if !self.several {
            return entries
                .first()
                .map(|e| capped(e, MAX_LAYERS))
                .unwrap_or_default();
        }
        let per_pull = (MAX_LAYERS / entries.len().max(1)).max(MIN_LAYERS_PER_PULL);
        let pulls: Vec<ImagePullProgress> = entries
            .iter()
            .map(|e| ImagePullProgress {
                image: e.image.clone(),
                labels: e.labels.clone(),
                progress: capped(e, per_pull),
            })
            .collect();
        let fraction = if pulls.iter().all(|p| p.progress.fraction.is_none()) {
            None
        } else if all_done {
            Some(1.0)
        } else {
            let sum: f64 = pulls.iter().filter_map(|p| p.progress.fraction).sum();
            Some((sum / pulls.len() as f64).min(0.999))
        };
        // A byte total is shown once every pull's is known, so that it never
        // grows; a pull whose layers were all present has none to know.
        let totals_known = entries.iter().all(|e| e.done || e.progress.bytes_total > 0);
        Progress {
            fraction,
            layers_done: pulls.iter().map(|p| p.progress.layers_done).sum(),
            layers_total: pulls.iter().map(|p| p.progress.layers_total).sum(),
            bytes_done: pulls.iter().map(|p| p.progress.bytes_done).sum(),
            bytes_total: if totals_known {
                pulls.iter().map(|p| p.progress.bytes_total).sum()
            } else {
                0
            },
            layers: Vec::new(),
            pulls,
        }
    }
}

/// Pull `image` as pull `which` of `board`, failing when no progress
/// arrives for `stall`.
pub(super) async fn pull_reporting(
    runtime: Arc<dyn ContainerRuntime>,
    board: Arc<PullBoard>,
    which: usize,
    cancel: CancellationToken,
    stall: Duration,
    image: String,
) -> Result<(), HostError> {
    let (tx, mut rx) = watch::channel(resolving());
    let pull = runtime.pull_image(&image, &tx, &cancel);
    tokio::pin!(pull);
    let result = loop {
        let due_in = board.due_in().await;
        tokio::select! {
            r = &mut pull => break r,
            changed = tokio::time::timeout(stall, rx.changed()) => match changed {
                Err(_) => break Err(RuntimeError::Stalled { seconds: stall.as_secs() }),
                Ok(Err(_)) => {}
                Ok(Ok(())) => {
                    let p = rx.borrow_and_update().clone();
                    board.update(which, p).await?;
                    continue;
                }
            },
            _ = tokio::time::sleep(due_in.unwrap_or_default()), if due_in.is_some() => {}
        }
        board.flush_if_due().await?;
    };
    if result.is_ok() {
        let last = rx.borrow().clone();
        board.finish(which, last).await?;
    }
    result.map_err(host_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn board(several: bool, n: usize) -> (tempfile::TempDir, Arc<PullBoard>, Journal, JobId) {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path().join("j.sqlite")).unwrap();
        let job = journal
            .create_job(crate::journal::tests::new_job("t"))
            .await
            .unwrap()
            .id;
        journal
            .append(
                &job,
                Event::State {
                    state: crate::journal::JobState::Running,
                    error: None,
                },
            )
            .await
            .unwrap();
        let pulls = (0..n)
            .map(|i| (format!("img{i}:1"), vec![format!("svc{i}")]))
            .collect();
        let b = PullBoard::new(journal.clone(), job.clone(), Duration::ZERO, pulls, several);
        (dir, b, journal, job)
    }

    fn at(fraction: f64, bytes_total: u64) -> PullProgress {
        PullProgress {
            phase: PullPhase::Downloading,
            layers_done: 0,
            layers_total: 2,
            bytes_done: (bytes_total as f64 * fraction) as u64,
            bytes_total,
            fraction: Some(fraction),
            layers: Vec::new(),
        }
    }

    fn journaled(journal: &Journal, job: &JobId) -> Vec<Progress> {
        journal
            .events(job, 0)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.event {
                Event::Progress(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn several_pulls_are_listed_each_and_summed() {
        let (_dir, b, journal, job) = board(true, 2).await;
        b.update(0, at(0.5, 100)).await.unwrap();
        b.update(1, at(0.25, 300)).await.unwrap();
        let last = journaled(&journal, &job).pop().unwrap();
        assert_eq!(last.pulls.len(), 2);
        assert_eq!(last.pulls[1].labels, ["svc1"]);
        assert_eq!(last.pulls[1].image, "img1:1");
        assert_eq!(last.bytes_total, 400);
        assert_eq!(last.bytes_done, 50 + 75);
        assert_eq!(last.layers_total, 4);
        assert_eq!(last.fraction, Some((0.5 + 0.25) / 2.0));
    }

    #[tokio::test]
    async fn the_byte_total_waits_until_every_pull_knows_its_own() {
        let (_dir, b, journal, job) = board(true, 2).await;
        b.update(0, at(0.5, 100)).await.unwrap();
        assert_eq!(journaled(&journal, &job).pop().unwrap().bytes_total, 0);
    }

    #[tokio::test]
    async fn the_fraction_never_goes_backwards_and_is_one_only_when_all_are_done() {
        let (_dir, b, journal, job) = board(true, 2).await;
        b.update(0, at(0.9, 100)).await.unwrap();
        b.update(1, at(0.9, 100)).await.unwrap();
        // A pull that restarts a layer reports less than before.
        b.update(1, at(0.1, 100)).await.unwrap();
        b.update(0, at(1.0, 100)).await.unwrap();
        b.finish(0, at(1.0, 100)).await.unwrap();
        let before_last = journaled(&journal, &job);
        assert!(before_last.iter().all(|p| p.fraction < Some(1.0)));
        b.finish(1, at(1.0, 100)).await.unwrap();
        let all = journaled(&journal, &job);
        let fractions: Vec<f64> = all.iter().filter_map(|p| p.fraction).collect();
        assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "{fractions:?}");
        assert_eq!(all.last().unwrap().fraction, Some(1.0));
        assert!(
            all.last()
                .unwrap()
                .pulls
                .iter()
                .all(|p| p.progress.fraction == Some(1.0))
        );
    }

    #[tokio::test]
    async fn one_pull_is_journaled_as_pull_image_always_was() {
        let (_dir, b, journal, job) = board(false, 1).await;
        b.update(0, at(0.5, 100)).await.unwrap();
        b.finish(0, at(1.0, 100)).await.unwrap();
        let all = journaled(&journal, &job);
        assert!(all.iter().all(|p| p.pulls.is_empty()));
        assert_eq!(all[0].bytes_total, 100);
        assert_eq!(all.last().unwrap().fraction, Some(1.0));
    }
}
