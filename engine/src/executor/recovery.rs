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

impl Inner {
    pub(super) async fn recover(&self) -> Result<RecoveryReport, JournalError> {
        let mut report = RecoveryReport::default();
        for job in self.journal.unfinished_jobs()? {
            if self
                .running
                .lock()
                .expect("running lock")
                .contains_key(&job.id)
            {
                continue;
            }
            match job.state {
                JobState::Committing => self.commit(&job).await?,
                JobState::Queued if job.cancel_requested => {
                    self.journal
                        .append(
                            &job.id,
                            crate::journal::Event::State {
                                state: JobState::Cancelled,
                                error: None,
                            },
                        )
                        .await?;
                }
                _ => {
                    let reason = if job.cancel_requested {
                        RollbackReason::Cancelled
                    } else {
                        RollbackReason::Failed(job.error.clone().unwrap_or_else(|| {
                            "interrupted: the engine stopped while the job ran".into()
                        }))
                    };
                    self.rollback(&job, reason).await?
                }
            }
            let state = self
                .journal
                .job(&job.id)?
                .map(|j| j.state)
                .unwrap_or(job.state);
            report.jobs.push((job.id, state));
        }
        Ok(report)
    }
}
