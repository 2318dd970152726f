//! Commit: past the point of no return, apply the effects the plugin
//! deferred (new revision, removal of the prior container and image, target
//! deletion) in the order it asked for them. Each is journaled and
//! idempotent, so recovery can finish an interrupted commit.

use super::plan::commit_plan;
use super::{Inner, RollbackReason};
use crate::journal::{
    Event, JobLog, JobRecord, JobState, JournalError, Outcome, RevisionRecord, now_millis,
};
use crate::runtime::{LABEL_MANAGED, LABEL_TARGET, RuntimeError};
use crate::steps::Deferred;

impl Inner {
    /// Commit `job` and record `succeeded` (or `failed` if an effect cannot
    /// be applied). A cancel recorded before the commit point wins: the job
    /// rolls back instead.
    pub(super) async fn commit(&self, job: &JobRecord) -> Result<(), JournalError> {
        let current = self
            .journal
            .job(&job.id)?
            .ok_or_else(|| JournalError::UnknownJob(job.id.clone()))?;
        // Commit outcomes go with the next write (an effect whose outcome a
        // crash lost is applied again: commit effects are idempotent).
        let mut log = JobLog::new(self.journal.clone(), job.id.clone());
        if current.state != JobState::Committing {
            let entered = log
                .write_all(vec![
                    Event::State {
                        state: JobState::Committing,
                        error: None,
                    },
                    Event::Phase {
                        phase: "committing".into(),
                    },
                ])
                .await;
            match entered {
                Ok(_) => {}
                Err(JournalError::CancelPending(_)) => {
                    return self.rollback(job, RollbackReason::Cancelled).await;
                }
                Err(e) => return Err(e),
            }
        }
        let pending = commit_plan(&self.journal.events(&job.id, 0)?);
        for (step, effect) in pending {
            log.write(Event::CommitIntent {
                step,
                effect: effect.clone(),
            })
            .await?;
            crate::fault::call_starting(&format!("commit:{}", crate::steps::op_of(&effect)));
            let result = match serde_json::from_value::<Deferred>(effect) {
                Ok(d) => {
                    let away = self.settings.daemon_retry_deadline;
                    super::settle::while_unreachable(away, || self.apply_deferred(job, d.clone()))
                        .await
                }
                Err(e) => Err(RuntimeError::Daemon(format!(
                    "unreadable deferred effect: {e}"
                ))),
            };
            let failed = result.as_ref().err().map(ToString::to_string);
            let outcome = match result {
                Ok(()) => Outcome::Ok {
                    value: serde_json::Value::Null,
                },
                Err(e) => Outcome::Err {
                    error: e.to_string(),
                    error_kind: e
                        .is_transient()
                        .then(|| super::auto_retry::TRANSIENT.to_owned()),
                },
            };
            log.later(Event::CommitResult { step, outcome });
            if let Some(e) = failed {
                let error = format!("commit incomplete at step {step}: {e}");
                return log
                    .write(Event::State {
                        state: JobState::Failed,
                        error: Some(error),
                    })
                    .await
                    .map(|_| ());
            }
        }
        log.write(Event::State {
            state: JobState::Succeeded,
            error: None,
        })
        .await
        .map(|_| ())
    }

    async fn apply_deferred(&self, job: &JobRecord, effect: Deferred) -> Result<(), RuntimeError> {
        let journal_err = |e: JournalError| RuntimeError::Daemon(e.to_string());
        match effect {
            Deferred::CommitRevision {
                revision,
                image,
                container_id,
                spec,
            } => {
                let rev = RevisionRecord {
                    revision,
                    image,
                    container_id,
                    spec,
                    job_id: job.id.clone(),
                    created_at: now_millis(),
                };
                self.journal
                    .commit_revision(&job.target, rev)
                    .await
                    .map(|_| ())
                    .map_err(journal_err)
            }
            Deferred::RemoveContainer { id } => match self.runtime.inspect_container(&id).await? {
                Some(c)
                    if c.label(LABEL_MANAGED) == Some("true")
                        && c.label(LABEL_TARGET) == Some(job.target.as_str()) =>
                {
                    super::settle::remove_container_settled(
                        self.runtime.as_ref(),
                        &c.id,
                        self.settings.call_settle_grace,
                    )
                    .await
                }
                Some(_) => Err(RuntimeError::Daemon(format!(
                    "container {id} is not owned by target `{}`",
                    job.target
                ))),
                None => Ok(()),
            },
            Deferred::RemoveImage { image } => {
                let in_use = self
                    .journal
                    .images_in_use(&job.target)
                    .map_err(journal_err)?;
                let current = self
                    .journal
                    .target(&job.target)
                    .map_err(journal_err)?
                    .and_then(|t| t.current);
                if in_use.contains(&image)
                    || current.is_some_and(|r| r.image == image)
                    || !self.engine_pulled(&image)?
                {
                    return Ok(());
                }
                if self.image_in_flight(&image, &job.id)? {
                    return Ok(());
                }
                match self.runtime.remove_image(&image).await {
                    Err(RuntimeError::Conflict(_)) => Ok(()),
                    other => other,
                }
            }
            Deferred::DeleteTarget => self
                .journal
                .clear_target(&job.target)
                .await
                .map_err(journal_err),
        }
    }
}
