//! Background retries of `failed` jobs whose failure was transient.
//!
//! A rollback (or commit) step that failed because the Docker daemon could
//! not be reached — after its own retries for
//! [`HostSettings::daemon_retry_deadline`] — leaves the job `failed`, and
//! the app possibly down. Nobody may be watching, so the engine retries such
//! a job by itself: first after 5 s, then after twice the previous pause, at
//! most every 60 s, for as long as the job stays `failed` and undismissed.
//! An attempt first pings the daemon and only retries the job when it
//! answers. What the engine plans is visible on the job
//! ([`AutoRetryState`]: attempts made, when the next one is due). A job that
//! failed for another reason (a compensation the plugin got wrong, a
//! postcondition that cannot be established) waits for an operator's
//! `jobs retry`.
//!
//! [`HostSettings::daemon_retry_deadline`]: crate::plugin::HostSettings::daemon_retry_deadline

use std::time::Duration;

use super::{Executor, RetryError};
use crate::journal::{
    Event, EventRecord, JobId, JobState, JournalError, Millis, Outcome, now_millis,
};

/// The `error_kind` journaled with an undo or commit result whose failure
/// was the daemon's being unreachable.
pub(crate) const TRANSIENT: &str = "unreachable";

const FIRST_PAUSE: Duration = Duration::from_secs(5);
const LONGEST_PAUSE: Duration = Duration::from_secs(60);

/// The background retry of one job, as the job's JSON shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AutoRetryState {
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (ms since the epoch).
    pub next_at: Millis,
}

/// Whether a failed job's last undo or commit step failed because the
/// daemon was away.
pub(crate) fn failed_transiently(events: &[EventRecord]) -> bool {
    events
        .iter()
        .rev()
        .find_map(|e| match &e.event {
            Event::UndoResult { outcome, .. } | Event::CommitResult { outcome, .. } => {
                Some(outcome)
            }
            _ => None,
        })
        .is_some_and(
            |o| matches!(o, Outcome::Err { error_kind: Some(kind), .. } if kind == TRANSIENT),
        )
}

impl Executor {
    /// The background retry planned for `job`, if any.
    pub fn auto_retry(&self, job: &JobId) -> Option<AutoRetryState> {
        self.inner
            .auto_retries
            .lock()
            .expect("auto-retry lock")
            .get(job)
            .cloned()
    }

    /// Start retrying `job` in the background if it is `failed` because the
    /// daemon was away (and not already being retried).
    pub(crate) fn retry_if_transient(&self, job: &JobId) -> Result<(), JournalError> {
        if !self
            .inner
            .background_retries
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(());
        }
        let Some(record) = self.inner.journal.job(job)? else {
            return Ok(());
        };
        if record.state != JobState::Failed
            || record.dismissed
            || !failed_transiently(&self.inner.journal.events(job, 0)?)
        {
            return Ok(());
        }
        let first = AutoRetryState {
            attempts: 0,
            next_at: now_millis() + FIRST_PAUSE.as_millis() as Millis,
        };
        {
            let mut planned = self.inner.auto_retries.lock().expect("auto-retry lock");
            if planned.contains_key(job) {
                return Ok(());
            }
            planned.insert(job.clone(), first);
        }
        tracing::warn!(job = %job, "job failed while the Docker daemon was away; retrying it in the background");
        let executor = self.clone();
        let job = job.clone();
        tokio::spawn(async move {
            executor.keep_retrying(&job).await;
            executor
                .inner
                .auto_retries
                .lock()
                .expect("auto-retry lock")
                .remove(&job);
        });
        Ok(())
    }

    /// Every failed job of the journal whose failure was transient.
    pub(crate) fn retry_transient_failures(&self) -> Result<(), JournalError> {
        let failed = self.inner.journal.list_jobs(&crate::journal::JobFilter {
            state: Some(JobState::Failed),
            ..Default::default()
        })?;
        for job in failed {
            self.retry_if_transient(&job.id)?;
        }
        Ok(())
    }

    async fn keep_retrying(&self, job: &JobId) {
        let mut pause = FIRST_PAUSE;
        loop {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
            let attempts = {
                let mut planned = self.inner.auto_retries.lock().expect("auto-retry lock");
                let Some(state) = planned.get_mut(job) else {
                    return;
                };
                state.attempts += 1;
                state.next_at = now_millis() + pause.as_millis() as Millis;
                state.attempts
            };
            if self.check_runtime().await.is_err() {
                continue;
            }
            match self.retry(job).await {
                Ok(record) if record.state != JobState::Failed => {
                    tracing::info!(job = %job, attempts, "background retry finished the job: {}", record.state);
                    return;
                }
                Ok(_) => {
                    // Failed again: go on only while the failure is the daemon's.
                    let transient = self
                        .inner
                        .journal
                        .events(job, 0)
                        .map(|e| failed_transiently(&e))
                        .unwrap_or(true);
                    if !transient {
                        tracing::warn!(job = %job, "background retry stopped: the job failed for another reason");
                        return;
                    }
                }
                // Someone else retried or dismissed it, or it is no longer failed.
                Err(RetryError::NotFailed(_) | RetryError::Dismissed(_)) => return,
                Err(RetryError::Busy(_)) => {}
                Err(RetryError::Journal(e)) => {
                    tracing::warn!(job = %job, "background retry: {e}");
                }
            }
        }
    }
}
