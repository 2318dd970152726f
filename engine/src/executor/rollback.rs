//! Rollback: undo a job's journaled steps in reverse order (the plan is
//! [`rollback_plan`]), each undo journaled and proven by an observation of
//! the runtime ([`super::settle`]), stopping at the first that fails.

use crate::plugin::JobScope;

use super::auto_retry::TRANSIENT;
use super::plan::{PlannedUndo, last_step, rollback_plan};
use super::settle::{
    MAX_ATTEMPTS, Observed, Postcondition, backoff, late_effect_window, remove_container_settled,
    settle_before_undo, watch_until, while_unreachable,
};
use super::step_error::StepError;
use super::{Inner, RollbackReason};
use crate::journal::{Event, JobId, JobLog, JobRecord, JobState, JournalError, Outcome};
use crate::ownership;
use crate::runtime::{LABEL_JOB, RuntimeError};
use crate::steps::{
    Call, Compensation, RESOURCE_CONTAINER, RESOURCE_IMAGE, RESOURCE_NETWORK, RESOURCE_VOLUME,
};

impl Inner {
    /// Whether an unfinished job other than `except` pulled `image`.
    pub(super) fn image_in_flight(&self, image: &str, except: &JobId) -> Result<bool, StepError> {
        let intents = self.journal.unfinished_intents(except)?;
        Ok(intents.into_iter().any(|intent| {
            matches!(serde_json::from_value::<Call>(intent.call),
                     Ok(Call::PullImage { image: pulled, .. }) if pulled == image)
        }))
    }

    /// Call the job's plugin to undo what it registered. Its calls are
    /// journaled as steps after `next_step`, which is moved past them (the
    /// rollback counts steps once, instead of reading the job's events again
    /// for each compensation).
    async fn plugin_compensation(
        &self,
        job: &JobRecord,
        action: &str,
        data: &str,
        next_step: &std::sync::atomic::AtomicU32,
    ) -> Result<(), StepError> {
        use std::sync::atomic::Ordering;
        let plugin =
            self.host
                .by_digest(&job.plugin_digest)
                .ok_or_else(|| StepError::PluginMissing {
                    workflow: job.workflow.clone(),
                    digest: job.plugin_digest.clone(),
                })?;
        let scope = JobScope::compensation(
            job.id.clone(),
            job.target.clone(),
            job.params.to_string(),
            self.journal.clone(),
            self.runtime.clone(),
            self.settings.clone(),
            next_step.load(Ordering::Relaxed),
        );
        let (result, last) = self.host.compensate(&plugin, scope, action, data).await;
        next_step.fetch_max(last, Ordering::Relaxed);
        result.map_err(|e| StepError::Plugin {
            action: action.to_owned(),
            detail: e.to_string(),
        })
    }

    /// Roll `job` back and record the terminal state.
    pub(super) async fn rollback(
        &self,
        job: &JobRecord,
        reason: RollbackReason,
    ) -> Result<(), JournalError> {
        self.rollback_noting(job, reason, None).await
    }

    /// [`Self::rollback`], journaling `note` (a log line saying why it runs)
    /// with its first write.
    pub(super) async fn rollback_noting(
        &self,
        job: &JobRecord,
        reason: RollbackReason,
        note: Option<String>,
    ) -> Result<(), JournalError> {
        let current = self
            .journal
            .job(&job.id)?
            .ok_or_else(|| JournalError::UnknownJob(job.id.clone()))?;
        let error = match &reason {
            RollbackReason::Cancelled => None,
            RollbackReason::Failed(e) => Some(e.clone()).filter(|e| !e.is_empty()),
        };
        // `rolling_back` goes with the first undo's intent, and each undo's
        // outcome with the next write: durable before anything is undone,
        // one write an undo. (An undo whose outcome a crash lost runs again:
        // undos are idempotent.)
        let mut log = JobLog::new(self.journal.clone(), job.id.clone());
        if let Some(message) = note {
            log.later(Event::Log {
                level: "info".into(),
                message,
            });
        }
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
        let next_step = std::sync::atomic::AtomicU32::new(last_step(&events));
        let mut failures = Vec::new();
        for planned in rollback_plan(&events) {
            let step = planned.step;
            log.write(Event::UndoIntent {
                step,
                undo: planned.undo.clone(),
            })
            .await?;
            crate::fault::call_starting(&format!("undo:{}", crate::steps::op_of(&planned.undo)));
            let outcome = match self.undo_step(job, &planned, &next_step).await {
                Ok((observed, released)) => {
                    released.into_iter().for_each(|e| log.later(e));
                    Outcome::Ok { value: observed }
                }
                Err(e) => {
                    failures.push(format!("undo of step {step}: {e}"));
                    Outcome::Err {
                        error: e.to_string(),
                        error_kind: e.is_transient().then(|| TRANSIENT.to_owned()),
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

    /// Undo one step so that its postcondition is observed (see
    /// [`super::settle`]): settle an unfinished call, compensate, check, and
    /// for an unsettled call keep checking while it may still land. Returns
    /// what was observed, for the journal, and the release of what the undo
    /// removed.
    async fn undo_step(
        &self,
        job: &JobRecord,
        planned: &PlannedUndo,
        next_step: &std::sync::atomic::AtomicU32,
    ) -> Result<(serde_json::Value, Option<Event>), StepError> {
        let undo: Compensation =
            serde_json::from_value(planned.undo.clone()).map_err(|e| StepError::Unreadable {
                what: "compensation",
                detail: e.to_string(),
            })?;
        let call: Option<Call> = serde_json::from_value(planned.call.clone()).ok();
        let rt = self.runtime.as_ref();
        let settled = planned.result.is_some();
        let grace = self.settings.call_settle_grace;
        // A late effect lands at the latest this long from now.
        let watch_for = match (&call, settled) {
            (_, true) | (None, _) => std::time::Duration::ZERO,
            (Some(call), false) => late_effect_window(call, grace, rt.pull_abort_grace()),
        };
        let away = self.settings.daemon_retry_deadline;
        if !settled && let Some(call) = &call {
            while_unreachable(away, || settle_before_undo(rt, planned, call, grace)).await?;
        }
        let watch_until_at = tokio::time::Instant::now() + watch_for;
        let mut last_violation = String::new();
        // A plugin's own compensation runs once: it says itself whether it
        // worked, and running it again at once would not change its mind.
        let attempts = if matches!(undo, Compensation::Plugin { .. }) {
            1
        } else {
            MAX_ATTEMPTS
        };
        // While the daemon is away, every call is tried again until it is
        // back (or the deadline passes); that costs no attempt.
        for attempt in 1..=attempts {
            tokio::time::sleep(backoff(attempt)).await;
            let post =
                match while_unreachable(away, || self.compensate(job, &undo, planned, next_step))
                    .await
                {
                    Ok(post) => post,
                    Err(e) if attempt < attempts && !e.is_transient() => {
                        last_violation = e.to_string();
                        continue;
                    }
                    Err(e) => return Err(e),
                };
            let seen = if settled {
                while_unreachable(away, || post.observe(rt)).await?
            } else {
                while_unreachable(away, || watch_until(rt, &post, watch_until_at)).await?
            };
            match seen {
                Observed::Holds(value) => {
                    return Ok((
                        serde_json::json!({ "observed": value }),
                        released(planned, &post),
                    ));
                }
                Observed::Violated(why) => last_violation = why,
            }
        }
        Err(StepError::NotEstablished {
            attempts,
            evidence: last_violation,
        })
    }

    /// Run one compensation; idempotent. Returns what must hold afterwards.
    async fn compensate(
        &self,
        record: &JobRecord,
        undo: &Compensation,
        planned: &PlannedUndo,
        next_step: &std::sync::atomic::AtomicU32,
    ) -> Result<Postcondition, StepError> {
        let (job, target) = (&record.id, record.target.as_str());
        let rt = &self.runtime;
        match undo {
            Compensation::Plugin { action, data } => self
                .plugin_compensation(record, action, data, next_step)
                .await
                .map(|()| Postcondition::Unobservable),
            Compensation::RemoveImage { image } => {
                if self.journal.images_in_use(target)?.contains(image) {
                    // Another target's revision runs it now: not ours to remove.
                    return Ok(Postcondition::Unobservable);
                }
                if self.image_in_flight(image, job)? {
                    // Another unfinished job pulled it too and may be about to use it.
                    return Ok(Postcondition::Unobservable);
                }
                // The image the pull brought (its journaled result); a name
                // moved to another image since is someone else's now.
                let pulled = planned.result.as_ref().and_then(|v| v.as_str());
                if let Some(pulled) = pulled
                    && rt.image_id(image).await?.is_some_and(|now| now != pulled)
                {
                    return Ok(Postcondition::Unobservable);
                }
                match rt.remove_image(image).await {
                    // Still used by some container (e.g. another job's): leave it.
                    Err(RuntimeError::Conflict(_)) => Ok(Postcondition::Unobservable),
                    Err(e) => Err(e.into()),
                    Ok(()) => Ok(Postcondition::ImageAbsent(image.clone())),
                }
            }
            Compensation::RemoveCreatedContainer { name, job: creator } => {
                debug_assert_eq!(creator, job.as_str());
                // The id the create returned, when its answer was recorded.
                let id = planned
                    .result
                    .as_ref()
                    .and_then(|v| v.as_str())
                    .map(str::to_owned);
                if let Some(id) = &id {
                    remove_container_settled(rt.as_ref(), id, self.settings.call_settle_grace)
                        .await?;
                }
                match rt.inspect_container(name).await? {
                    Some(c) if c.label(LABEL_JOB) == Some(creator.as_str()) => {
                        remove_container_settled(
                            rt.as_ref(),
                            &c.id,
                            self.settings.call_settle_grace,
                        )
                        .await?
                    }
                    // Missing (create never happened) or not ours: nothing to undo.
                    _ => {}
                }
                Ok(Postcondition::CreatedContainerGone {
                    name: name.clone(),
                    job: creator.clone(),
                    id,
                })
            }
            Compensation::RemoveCreatedVolume { name, job: creator } => {
                match rt.inspect_volume(name).await? {
                    Some(v) if v.labels.get(LABEL_JOB) == Some(creator) => {
                        match rt.remove_volume(name).await {
                            // A container another job made uses it now:
                            // left, as a volume that existed would be.
                            Err(RuntimeError::Conflict(_)) => {
                                return Ok(Postcondition::Unobservable);
                            }
                            Err(e) => return Err(e.into()),
                            Ok(()) => {}
                        }
                    }
                    // Missing (the create never happened) or not this job's.
                    _ => {}
                }
                Ok(Postcondition::CreatedVolumeGone {
                    name: name.clone(),
                    job: creator.clone(),
                })
            }
            Compensation::RemoveCreatedNetwork { name, job: creator } => {
                match rt.inspect_network(name).await? {
                    Some(n) if n.labels.get(LABEL_JOB) == Some(creator) => {
                        // Someone else's container joined it since: it stays.
                        if !n.containers.is_empty() {
                            return Ok(Postcondition::Unobservable);
                        }
                        match rt.remove_network(&n.id).await {
                            Err(RuntimeError::Conflict(_)) => {
                                return Ok(Postcondition::Unobservable);
                            }
                            Err(e) => return Err(e.into()),
                            Ok(()) => {}
                        }
                    }
                    _ => {}
                }
                Ok(Postcondition::CreatedNetworkGone {
                    name: name.clone(),
                    job: creator.clone(),
                })
            }
            Compensation::StopContainer { id } => match rt.stop_container(id, 10).await {
                Ok(()) | Err(RuntimeError::NotFound(_)) => {
                    Ok(Postcondition::NotRunning(id.clone()))
                }
                Err(e) => Err(e.into()),
            },
            Compensation::StartContainer { id } => {
                rt.start_container(id).await?;
                Ok(Postcondition::Running(id.clone()))
            }
            Compensation::RenameContainer { id, to } => {
                match rt.inspect_container(id).await? {
                    Some(c) if c.name == *to => {}
                    Some(_) => rt.rename_container(id, to).await?,
                    // A container this job made is gone already: its name
                    // is nobody's to restore (the create's undo finds it
                    // gone too).
                    None if ownership::created_by_job(&self.journal, id, job)? => {
                        return Ok(Postcondition::Unobservable);
                    }
                    None => {
                        return Err(RuntimeError::NotFound(format!(
                            "container {id} to rename back to {to}"
                        ))
                        .into());
                    }
                }
                Ok(Postcondition::Named {
                    id: id.clone(),
                    name: to.clone(),
                })
            }
        }
    }
}

/// The `released` event for what an undo removed: the image its pull brought,
/// or the container its create made, by the id the step's result recorded.
fn released(planned: &PlannedUndo, post: &Postcondition) -> Option<Event> {
    match post {
        Postcondition::CreatedVolumeGone { name, .. } => {
            return Some(Event::Released {
                resource: RESOURCE_VOLUME.into(),
                id: name.clone(),
            });
        }
        Postcondition::CreatedNetworkGone { .. } => {
            let id = planned.result.as_ref()?.get("id")?.as_str()?.to_owned();
            return Some(Event::Released {
                resource: RESOURCE_NETWORK.into(),
                id,
            });
        }
        _ => {}
    }
    let id = planned.result.as_ref()?.as_str()?.to_owned();
    let resource = match post {
        Postcondition::ImageAbsent(_) => RESOURCE_IMAGE,
        Postcondition::CreatedContainerGone { .. } => RESOURCE_CONTAINER,
        _ => return None,
    };
    Some(Event::Released {
        resource: resource.into(),
        id,
    })
}
