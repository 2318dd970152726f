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
                    RollbackReason::Failed(job.error.clone().unwrap_or_else(|| {
                        "interrupted: the engine stopped while the job ran".into()
                    }))
                };
                // Timelines show where the engine stopped: a kill leaves no trace.
                let note = format!(
                    "recovery: the engine stopped while the job was {}; rolling back",
                    job.state
                );
                self.rollback_noting(job, reason, Some(note)).await
            }
        }
    }
}
