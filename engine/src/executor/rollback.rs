//! Rollback: undo a job's journaled steps in reverse order (the plan is
//! [`rollback_plan`]), each undo journaled, stopping at the first that fails.

use tokio_util::sync::CancellationToken;

use super::plan::{last_step, rollback_plan, steps_finished_ok};
use super::{Inner, RollbackReason};
use crate::journal::{Event, JobId, JobLog, JobRecord, JobState, JournalError, Outcome};
use crate::runtime::{LABEL_JOB, RuntimeError};
use crate::steps::{Compensation, pull_intent_fields};

impl Inner {
    /// Whether the engine brought `image` onto the machine: some job pulled
    /// it while it was absent. An image that was there first is never ours.
    pub(super) fn engine_pulled(&self, image: &str) -> Result<bool, RuntimeError> {
        let fields = pull_intent_fields(image, true);
        self.journal
            .jobs_with_intent(&fields, false, None)
            .map(|j| !j.is_empty())
            .map_err(|e| RuntimeError::Daemon(e.to_string()))
    }

    /// Whether an unfinished job other than `except` pulled `image`.
    pub(super) fn image_in_flight(
        &self,
        image: &str,
        except: &JobId,
    ) -> Result<bool, RuntimeError> {
        let fields = pull_intent_fields(image, false);
        self.journal
            .jobs_with_intent(&fields, true, Some(except))
            .map(|j| !j.is_empty())
            .map_err(|e| RuntimeError::Daemon(e.to_string()))
    }

    /// Call the job's plugin to undo what it registered.
    async fn plugin_compensation(
        &self,
        job: &JobRecord,
        action: &str,
        data: &str,
    ) -> Result<(), RuntimeError> {
        let plugin = self.host.by_digest(&job.plugin_digest).ok_or_else(|| {
            RuntimeError::Daemon(format!(
                "plugin {} ({}) is not registered",
                job.workflow, job.plugin_digest
            ))
        })?;
        let events = self
            .journal
            .events(&job.id, 0)
            .map_err(|e| RuntimeError::Daemon(e.to_string()))?;
        // The job's own cancel has fired; the compensation must still run.
        let mut scope = self.scope(job, CancellationToken::new());
        scope.last_step = last_step(&events);
        self.host
            .compensate(&plugin, scope, action, data)
            .await
            .map_err(|e| RuntimeError::Daemon(format!("plugin compensation `{action}`: {e}")))
    }

    /// Roll `job` back and record the terminal state.
    pub(super) async fn rollback(
        &self,
        job: &JobRecord,
        reason: RollbackReason,
    ) -> Result<(), JournalError> {
        let current = self
            .journal
            .job(&job.id)?
            .ok_or_else(|| JournalError::UnknownJob(job.id.clone()))?;
        let error = match &reason {
            RollbackReason::Cancelled => None,
            RollbackReason::Failed(e) => Some(e.clone()),
        };
        // `rolling_back` goes with the first undo's intent, and each undo's
        // outcome with the next write: durable before anything is undone,
        // one write an undo. (An undo whose outcome a crash lost runs again:
        // undos are idempotent.)
        let mut log = JobLog::new(self.journal.clone(), job.id.clone());
        if current.state != JobState::RollingBack {
            log.later(Event::State {
                state: JobState::RollingBack,
                error: error.clone(),
            });
            log.later(Event::Phase {
                phase: "rolling_back".into(),
            });
        }
        let events = self.journal.events(&job.id, 0)?;
        let finished = steps_finished_ok(&events);
        let mut failures = Vec::new();
        for (step, undo) in rollback_plan(&events) {
            log.write(Event::UndoIntent {
                step,
                undo: undo.clone(),
            })
            .await?;
            let result = match serde_json::from_value::<Compensation>(undo) {
                // A pull that did not finish may still land its image after
                // it was interrupted: watch for that, and remove it again.
                Ok(c @ Compensation::RemoveImage { .. }) if !finished.contains(&step) => {
                    self.undo_interrupted_pull(job, &c).await
                }
                Ok(c) => self.compensate(job, &c).await,
                Err(e) => Err(RuntimeError::Daemon(format!(
                    "unreadable compensation: {e}"
                ))),
            };
            let outcome = match result {
                Ok(()) => Outcome::Ok {
                    value: serde_json::Value::Null,
                },
                Err(e) => {
                    failures.push(format!("undo of step {step}: {e}"));
                    Outcome::Err {
                        error: e.to_string(),
                        error_kind: None,
                    }
                }
            };
            log.later(Event::UndoResult { step, outcome });
            // Earlier steps' undos may depend on this one (an image cannot go
            // while the container made from it is still there): stop here and
            // keep the rest for a retry.
            if !failures.is_empty() {
                break;
            }
        }
        let cancelled = matches!(reason, RollbackReason::Cancelled) || current.cancel_requested;
        let (state, error) = if !failures.is_empty() {
            let mut msg = format!("rollback incomplete: {}", failures.join("; "));
            if let Some(e) = error {
                msg = format!("{e}; {msg}");
            }
            (JobState::Failed, Some(msg))
        } else if cancelled {
            (JobState::Cancelled, None)
        } else {
            (JobState::RolledBack, error)
        };
        log.write(Event::State { state, error }).await.map(|_| ())
    }

    /// Undo a pull that was interrupted (or whose end is unknown): the
    /// daemon may finish it and tag the image after the client went away, so
    /// keep removing the image until the runtime's grace time has passed.
    async fn undo_interrupted_pull(
        &self,
        job: &JobRecord,
        undo: &Compensation,
    ) -> Result<(), RuntimeError> {
        self.compensate(job, undo).await?;
        let Compensation::RemoveImage { image } = undo else {
            return Ok(());
        };
        let until = std::time::Instant::now() + self.runtime.pull_abort_grace();
        // Look again every 50 ms, the last time once the grace time is over.
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            tokio::time::sleep(left.min(std::time::Duration::from_millis(50))).await;
            if self.runtime.image_present(image).await? {
                self.compensate(job, undo).await?;
            }
        }
        Ok(())
    }

    /// Run one compensation; idempotent.
    async fn compensate(
        &self,
        record: &JobRecord,
        undo: &Compensation,
    ) -> Result<(), RuntimeError> {
        let (job, target) = (&record.id, record.target.as_str());
        let rt = &self.runtime;
        match undo {
            Compensation::Plugin { action, data } => {
                self.plugin_compensation(record, action, data).await
            }
            Compensation::RemoveImage { image } => {
                if self
                    .journal
                    .images_in_use(target)
                    .map_err(|e| RuntimeError::Daemon(e.to_string()))?
                    .contains(image)
                {
                    // Another target's revision runs it now: not ours to remove.
                    return Ok(());
                }
                if self.image_in_flight(image, job)? {
                    // Another unfinished job pulled it too and may be about to use it.
                    return Ok(());
                }
                match rt.remove_image(image).await {
                    // Still used by some container (e.g. another job's): leave it.
                    Err(RuntimeError::Conflict(_)) => Ok(()),
                    other => other,
                }
            }
            Compensation::RemoveCreatedContainer { name, job: creator } => {
                debug_assert_eq!(creator, job.as_str());
                match rt.inspect_container(name).await? {
                    Some(c) if c.label(LABEL_JOB) == Some(creator.as_str()) => {
                        rt.remove_container(&c.id).await
                    }
                    // Missing (create never happened) or not ours: nothing to undo.
                    _ => Ok(()),
                }
            }
            Compensation::StopContainer { id } => match rt.stop_container(id, 10).await {
                Err(RuntimeError::NotFound(_)) => Ok(()),
                other => other,
            },
            Compensation::StartContainer { id } => rt.start_container(id).await,
            Compensation::RenameContainer { id, to } => match rt.inspect_container(id).await? {
                Some(c) if c.name == *to => Ok(()),
                Some(_) => rt.rename_container(id, to).await,
                None => Err(RuntimeError::NotFound(format!(
                    "container {id} to rename back to {to}"
                ))),
            },
        }
    }
}
