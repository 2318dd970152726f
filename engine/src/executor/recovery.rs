//! Recovery on start: finish every job the journal shows unfinished.
//! Before the commit point a job rolls back; from `committing` on, its
//! commit is completed. Both are idempotent, so crashing during recovery and
//! recovering again is safe.

use super::{Inner, RollbackReason};
use crate::journal::{JobId, JobState, JournalError};

/// What recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Each recovered job and the terminal state it reached.
    pub jobs: Vec<(JobId, JobState)>,
}

/// Jobs recovered at the same time: they are on different targets, and
/// their journal writes share group commits.
const RECOVERY_CONCURRENCY: usize = 64;

impl Inner {
    pub(super) async fn recover(&self) -> Result<RecoveryReport, JournalError> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        let jobs: Vec<_> = self
            .journal
            .unfinished_jobs()?
            .into_iter()
            .filter(|job| {
                !self
                    .running
                    .lock()
                    .expect("running lock")
                    .contains_key(&job.id)
            })
            .collect();
        let jobs = stream::iter(jobs)
            .map(|job| async move {
                self.recover_job(&job).await?;
                let state = self
                    .journal
                    .job(&job.id)?
                    .map(|j| j.state)
                    .unwrap_or(job.state);
                Ok::<_, JournalError>((job.id, state))
            })
            .buffered(RECOVERY_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(RecoveryReport { jobs })
    }

    async fn recover_job(&self, job: &crate::journal::JobRecord) -> Result<(), JournalError> {
        // Timelines show where the engine stopped: a kill leaves no trace.
        let why = format!(
            "recovery: the engine stopped while the job was {}",
            job.state
        );
        self.finish_interrupted(job, &why).await
    }

    /// Finish a job whose run ended without a terminal state, by the
    /// recovery rules: before the commit point it rolls back (cancelled if a
    /// cancel was recorded), from `committing` on its commit is completed.
    /// `why` goes into its timeline (and its error, if it had none).
    pub(super) async fn finish_interrupted(
        &self,
        job: &crate::journal::JobRecord,
        why: &str,
    ) -> Result<(), JournalError> {
        match job.state {
            JobState::Committing => self.commit(job).await,
            JobState::Queued if job.cancel_requested => self
                .journal
                .append(
                    &job.id,
                    crate::journal::Event::State {
                        state: JobState::Cancelled,
                        error: None,
                    },
                )
                .await
                .map(|_| ()),
            _ => {
                let reason = if job.cancel_requested {
                    RollbackReason::Cancelled
                } else {
                    RollbackReason::Failed(
                        job.error
                            .clone()
                            .unwrap_or_else(|| format!("interrupted: {why}")),
                    )
                };
                let note = format!("{why}; rolling back");
                self.rollback_noting(job, reason, Some(note)).await
            }
        }
    }

    /// Finish `job`, whose run stopped because the journal could not be
    /// written (`first`), as soon as it can be: every `pause` (growing to
    /// 5 s) a probe write tells whether it can; then [`Self::finish_interrupted`]
    /// runs. No Docker call runs meanwhile: the job's next step needs its
    /// intent written first. Returns once the job is terminal, or with an
    /// error that is not the journal's being unwritable.
    pub(super) async fn finish_when_journal_writable(
        &self,
        job: &JobId,
        first: &JournalError,
    ) -> Result<(), JournalError> {
        tracing::warn!(
            job = %job,
            "job paused: {first}; it is finished (rolled back before its commit point, committed after) as soon as the journal can be written"
        );
        let mut pause = std::time::Duration::from_millis(200);
        loop {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(5));
            match self.journal.probe().await {
                Ok(()) => {}
                Err(e) if e.is_unwritable() => continue,
                Err(e) => return Err(e),
            }
            let record = self
                .journal
                .job(job)?
                .ok_or_else(|| JournalError::UnknownJob(job.clone()))?;
            if record.state.is_terminal() {
                return Ok(());
            }
            let why = format!(
                "the journal could not be written ({first}) while the job was {}",
                record.state
            );
            match self.finish_interrupted(&record, &why).await {
                Ok(()) => {
                    tracing::info!(job = %job, "job resumed after the journal outage and finished");
                    return Ok(());
                }
                Err(e) if e.is_unwritable() => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
