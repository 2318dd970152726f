//! Commit: past the point of no return, apply the effects the plugin
//! deferred (new revision, removal of the prior container and image, target
//! deletion) in the order it asked for them. Each is journaled and
//! idempotent, so recovery can finish an interrupted commit. What is
//! removed must be the engine's by the journal's record (see
//! [`crate::journal::OwnedResource`]), and its removal releases it.

use super::plan::commit_plan;
use super::step_error::StepError;
use super::{Inner, RollbackReason};
use crate::journal::{
    Event, JobLog, JobRecord, JobState, JournalError, Outcome, RevisionRecord, now_millis,
};
use crate::ownership;
use crate::runtime::RuntimeError;
use crate::steps::{
    Deferred, RESOURCE_CONTAINER, RESOURCE_IMAGE, RESOURCE_NETWORK, RESOURCE_VOLUME,
};

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
            let result: Result<Vec<Event>, StepError> =
                match serde_json::from_value::<Deferred>(effect) {
                    Ok(d) => {
                        let away = self.settings.daemon_retry_deadline;
                        super::settle::while_unreachable(away, || {
                            self.apply_deferred(job, d.clone())
                        })
                        .await
                    }
                    Err(e) => Err(StepError::Unreadable {
                        what: "deferred effect",
                        detail: e.to_string(),
                    }),
                };
            let failed = result.as_ref().err().map(ToString::to_string);
            let outcome = match result {
                Ok(released) => {
                    released.into_iter().for_each(|e| log.later(e));
                    Outcome::Ok {
                        value: serde_json::Value::Null,
                    }
                }
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
        // Last, the containers the job made that no revision runs: a job's
        // temporary containers never outlive it. Run again after a crash,
        // it finds only what is left.
        let away = self.settings.daemon_retry_deadline;
        match super::settle::while_unreachable(away, || self.remove_temporaries(job)).await {
            Ok(released) => released.into_iter().for_each(|e| log.later(e)),
            Err(e) => {
                return log
                    .write(Event::State {
                        state: JobState::Failed,
                        error: Some(format!(
                            "commit incomplete: removing the job's temporary containers: {e}"
                        )),
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

    /// Remove every container `job` created that the target's current
    /// revision (after the commit) does not run; their `released` events.
    async fn remove_temporaries(&self, job: &JobRecord) -> Result<Vec<Event>, StepError> {
        let current = self.journal.target(&job.target)?.and_then(|t| t.current);
        let runs = |id: &str| {
            current
                .as_ref()
                .is_some_and(|r| r.containers().iter().any(|(c, _)| *c == id))
        };
        let mut released = Vec::new();
        for c in self
            .journal
            .owned_by_target(RESOURCE_CONTAINER, &job.target)?
        {
            if c.job_id == job.id && !runs(&c.id) {
                released.extend(self.remove_owned_container(&c.id).await?);
            }
        }
        Ok(released)
    }

    /// Apply one deferred effect; returns the `released` events of what it
    /// removed.
    async fn apply_deferred(
        &self,
        job: &JobRecord,
        effect: Deferred,
    ) -> Result<Vec<Event>, StepError> {
        match effect {
            Deferred::CommitRevision {
                revision,
                image,
                container_id,
                spec,
                services,
            } => {
                let rev = RevisionRecord {
                    revision,
                    image,
                    container_id,
                    spec,
                    services,
                    job_id: job.id.clone(),
                    created_at: now_millis(),
                };
                self.journal.commit_revision(&job.target, rev).await?;
                Ok(Vec::new())
            }
            Deferred::RemoveContainer { id } => {
                if ownership::is_targets_container(&self.journal, &id, &job.target)? {
                    self.remove_owned_container(&id).await
                } else if self.runtime.inspect_container(&id).await?.is_none() {
                    // Removed already (a commit run again after a crash).
                    Ok(Vec::new())
                } else {
                    Err(StepError::NotOwned(format!(
                        "container {id} is not one the engine created for target `{}`",
                        job.target
                    )))
                }
            }
            Deferred::RemoveImage { image } => self.remove_image_if_owned(job, &image).await,
            Deferred::DeleteTarget => {
                // Every container the engine created for the target goes,
                // not only the one its current revision names.
                let mut released = Vec::new();
                let owned = self
                    .journal
                    .owned_by_target(RESOURCE_CONTAINER, &job.target)?;
                for container in owned {
                    released.extend(self.remove_owned_container(&container.id).await?);
                }
                self.journal.clear_target(&job.target).await?;
                Ok(released)
            }
            Deferred::RemoveVolume { name } => {
                if !ownership::is_targets_volume(&self.journal, &name, &job.target)? {
                    return Ok(Vec::new());
                }
                match self.runtime.remove_volume(&name).await {
                    // Some container still mounts it: left, still the engine's.
                    Err(RuntimeError::Conflict(_)) => Ok(Vec::new()),
                    Err(e) => Err(e.into()),
                    Ok(()) => Ok(vec![Event::Released {
                        resource: RESOURCE_VOLUME.into(),
                        id: name,
                    }]),
                }
            }
            Deferred::RemoveNetwork { name } => {
                let Some(network) = self.runtime.inspect_network(&name).await? else {
                    return Ok(Vec::new());
                };
                // Only the engine's own, and only once nothing is on it
                // (another target may use it): else it stays the engine's.
                if !ownership::is_engines_network(&self.journal, &network.id)?
                    || !network.containers.is_empty()
                {
                    return Ok(Vec::new());
                }
                match self.runtime.remove_network(&network.id).await {
                    Err(RuntimeError::Conflict(_)) => Ok(Vec::new()),
                    Err(e) => Err(e.into()),
                    Ok(()) => Ok(vec![Event::Released {
                        resource: RESOURCE_NETWORK.into(),
                        id: network.id,
                    }]),
                }
            }
        }
    }

    /// Remove a container the journal records as the engine's (and its
    /// anonymous volumes), settled; it is released.
    async fn remove_owned_container(&self, id: &str) -> Result<Vec<Event>, StepError> {
        super::settle::remove_container_settled(
            self.runtime.as_ref(),
            id,
            self.settings.call_settle_grace,
        )
        .await?;
        Ok(vec![Event::Released {
            resource: RESOURCE_CONTAINER.into(),
            id: id.to_owned(),
        }])
    }

    /// Remove `image` if the engine brought the very image it names now
    /// onto the machine and nothing else needs it; it is released. An image
    /// the name was moved to since (a newer pull by someone else) is not
    /// the engine's, nor one that was there before the engine's pull.
    async fn remove_image_if_owned(
        &self,
        job: &JobRecord,
        image: &str,
    ) -> Result<Vec<Event>, StepError> {
        let Some(id) = self.runtime.image_id(image).await? else {
            return Ok(Vec::new());
        };
        let owned = ownership::is_engines_image(&self.journal, &id)?;
        let in_use = self.journal.images_in_use(&job.target)?;
        let current = self.journal.target(&job.target)?.and_then(|t| t.current);
        if !owned
            || in_use.contains(&image.to_owned())
            || current.is_some_and(|r| r.runs_image(image))
            || self.image_in_flight(image, &job.id)?
        {
            return Ok(Vec::new());
        }
        match self.runtime.remove_image(image).await {
            // Still used by some container: left, and still the engine's.
            Err(RuntimeError::Conflict(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
            // Another name still points at it (two tags of one image, as
            // two services may run): only this name went, and the image is
            // still the engine's, for the other name's removal.
            Ok(()) if self.runtime.image_present(&id).await? => Ok(Vec::new()),
            Ok(()) => Ok(vec![Event::Released {
                resource: RESOURCE_IMAGE.into(),
                id,
            }]),
        }
    }
}
