//! Rollback: undo a job's journaled steps in reverse order.
//!
//! The plan comes from the journal alone: every intent that carries an undo,
//! whatever its result (an intent without a result has an unknown outcome,
//! and compensations are idempotent, so undoing it is always safe), minus the
//! undos already completed by an earlier, interrupted rollback.

use std::collections::BTreeSet;

use serde_json::json;

use tokio_util::sync::CancellationToken;

use super::{Inner, RollbackReason};
use crate::plugin::JobScope;
use crate::journal::{Event, EventRecord, JobId, JobRecord, JobState, JournalError, Outcome};
use crate::runtime::{LABEL_JOB, RuntimeError};
use crate::steps::Compensation;

/// The highest step number a job's events use.
pub fn last_step(events: &[EventRecord]) -> u32 {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Intent { step, .. } | Event::Deferred { step, .. } => Some(*step),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// The compensations still to run for a job, last step first.
pub fn rollback_plan(events: &[EventRecord]) -> Vec<(u32, serde_json::Value)> {
    let done: BTreeSet<u32> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::UndoResult { step, outcome: Outcome::Ok { .. } } => Some(*step),
            _ => None,
        })
        .collect();
    let mut plan: Vec<(u32, serde_json::Value)> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Intent { step, undo: Some(undo), .. } if !done.contains(step) => Some((*step, undo.clone())),
            _ => None,
        })
        .collect();
    plan.sort_by(|a, b| b.0.cmp(&a.0));
    plan
}

impl Inner {
    /// Whether the engine brought `image` onto the machine: some job pulled
    /// it while it was absent. An image that was there first is never ours.
    pub(super) fn engine_pulled(&self, image: &str) -> Result<bool, RuntimeError> {
        let fields = [("op", json!("pull_image")), ("image", json!(image)), ("present_before", json!(false))];
        self.journal.jobs_with_intent(&fields, false, None).map(|j| !j.is_empty()).map_err(|e| RuntimeError::Daemon(e.to_string()))
    }

    /// Whether an unfinished job other than `except` pulled `image`.
    pub(super) fn image_in_flight(&self, image: &str, except: &JobId) -> Result<bool, RuntimeError> {
        let fields = [("op", json!("pull_image")), ("image", json!(image))];
        self.journal.jobs_with_intent(&fields, true, Some(except)).map(|j| !j.is_empty()).map_err(|e| RuntimeError::Daemon(e.to_string()))
    }

    /// Call the job's plugin to undo what it registered.
    async fn plugin_compensation(&self, job: &JobRecord, action: &str, data: &str) -> Result<(), RuntimeError> {
        let plugin = self
            .host
            .get(&job.workflow)
            .filter(|p| p.digest == job.plugin_digest)
            .ok_or_else(|| RuntimeError::Daemon(format!("plugin {} ({}) is not registered", job.workflow, job.plugin_digest)))?;
        let events = self.journal.events(&job.id, 0).map_err(|e| RuntimeError::Daemon(e.to_string()))?;
        let mut scope = JobScope::new(
            job.id.clone(),
            job.target.clone(),
            job.params.to_string(),
            self.journal.clone(),
            self.runtime.clone(),
            // The job's own cancel has fired; the compensation must still run.
            CancellationToken::new(),
            self.settings.clone(),
        );
        scope.last_step = last_step(&events);
        self.host
            .compensate(&plugin, scope, action, data)
            .await
            .map_err(|e| RuntimeError::Daemon(format!("plugin compensation `{action}`: {e}")))
    }

    /// Roll `job` back and record the terminal state.
    pub(super) async fn rollback(&self, job: &JobRecord, reason: RollbackReason) -> Result<(), JournalError> {
        let current = self.journal.job(&job.id)?.ok_or_else(|| JournalError::UnknownJob(job.id.clone()))?;
        let error = match &reason {
            RollbackReason::Cancelled => None,
            RollbackReason::Failed(e) => Some(e.clone()),
        };
        if current.state != JobState::RollingBack {
            self.journal.append(&job.id, Event::State { state: JobState::RollingBack, error: error.clone() }).await?;
            self.journal.append(&job.id, Event::Phase { phase: "rolling_back".into() }).await?;
        }
        let events = self.journal.events(&job.id, 0)?;
        let mut failures = Vec::new();
        for (step, undo) in rollback_plan(&events) {
            self.journal.append(&job.id, Event::UndoIntent { step, undo: undo.clone() }).await?;
            let result = match serde_json::from_value::<Compensation>(undo) {
                Ok(c) => self.compensate(job, &c).await,
                Err(e) => Err(RuntimeError::Daemon(format!("unreadable compensation: {e}"))),
            };
            let outcome = match result {
                Ok(()) => Outcome::Ok { value: serde_json::Value::Null },
                Err(e) => {
                    failures.push(format!("undo of step {step}: {e}"));
                    Outcome::Err { error: e.to_string() }
                }
            };
            self.journal.append(&job.id, Event::UndoResult { step, outcome }).await?;
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
        self.journal.append(&job.id, Event::State { state, error }).await.map(|_| ())
    }

    /// Run one compensation; idempotent.
    async fn compensate(&self, record: &JobRecord, undo: &Compensation) -> Result<(), RuntimeError> {
        let (job, target) = (&record.id, record.target.as_str());
        let rt = &self.runtime;
        match undo {
            Compensation::Plugin { action, data } => self.plugin_compensation(record, action, data).await,
            Compensation::RemoveImage { image } => {
                if self.journal.images_in_use(target).map_err(|e| RuntimeError::Daemon(e.to_string()))?.contains(image) {
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
                    Some(c) if c.label(LABEL_JOB) == Some(creator.as_str()) => rt.remove_container(&c.id).await,
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
                None => Err(RuntimeError::NotFound(format!("container {id} to rename back to {to}"))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(seq: i64, event: Event) -> EventRecord {
        EventRecord { seq, job_id: JobId::new(), at: 0, event }
    }

    #[test]
    fn plan_undoes_steps_with_an_undo_in_reverse_order_including_unknown_outcomes() {
        let events = vec![
            ev(1, Event::Intent { step: 1, call: json!({}), undo: Some(json!({"op": "remove_image", "image": "a"})) }),
            ev(2, Event::Result { step: 1, outcome: Outcome::Ok { value: json!(null) } }),
            ev(3, Event::Intent { step: 2, call: json!({}), undo: None }),
            ev(4, Event::Intent { step: 3, call: json!({}), undo: Some(json!({"op": "stop_container", "id": "c"})) }),
        ];
        let steps: Vec<u32> = rollback_plan(&events).into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, [3, 1]);
    }

    #[test]
    fn plan_skips_undos_already_completed() {
        let events = vec![
            ev(1, Event::Intent { step: 1, call: json!({}), undo: Some(json!({"op": "remove_image", "image": "a"})) }),
            ev(2, Event::Intent { step: 2, call: json!({}), undo: Some(json!({"op": "stop_container", "id": "c"})) }),
            ev(3, Event::UndoIntent { step: 2, undo: json!({}) }),
            ev(4, Event::UndoResult { step: 2, outcome: Outcome::Ok { value: json!(null) } }),
        ];
        let steps: Vec<u32> = rollback_plan(&events).into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, [1]);
    }
}
