//! What is left to do for a job, read from its journal alone: the undos a
//! rollback still has to run, and the deferred effects a commit still has to
//! apply. Recovery, retry and the live paths all go through these.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::journal::{Event, EventRecord, Outcome};

/// Steps whose event matches `settled` with an `ok` outcome.
fn settled_ok(
    events: &[EventRecord],
    settled: impl Fn(&Event) -> Option<(u32, &Outcome)>,
) -> BTreeSet<u32> {
    events
        .iter()
        .filter_map(|e| settled(&e.event))
        .filter(|(_, o)| o.is_ok())
        .map(|(s, _)| s)
        .collect()
}

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

/// One undo a rollback still has to run, with what it needs to know about
/// the step it undoes.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedUndo {
    /// The step.
    pub step: u32,
    /// Its compensation, as journaled.
    pub undo: Value,
    /// The call it undoes, as journaled.
    pub call: Value,
    /// When the call's intent was written (ms since the epoch).
    pub intent_at: crate::journal::Millis,
    /// What the call answered, if its outcome is recorded. `ok` means the
    /// daemon is done with it; without a result, or after an error (the
    /// connection dropped, the engine gave up waiting), the daemon may
    /// still be carrying it out.
    pub result: Option<Value>,
}

/// The compensations still to run for a job, last step first: every intent
/// that carries an undo, whatever its result (an intent without a result has
/// an unknown outcome, and undos are idempotent, so undoing it is safe),
/// minus the undos an earlier, interrupted rollback already completed.
pub fn rollback_plan(events: &[EventRecord]) -> Vec<PlannedUndo> {
    let done = settled_ok(events, |e| match e {
        Event::UndoResult { step, outcome } => Some((*step, outcome)),
        _ => None,
    });
    let results: std::collections::BTreeMap<u32, Value> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Result {
                step,
                outcome: Outcome::Ok { value },
            } => Some((*step, value.clone())),
            _ => None,
        })
        .collect();
    let mut plan: Vec<PlannedUndo> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Intent {
                step,
                call,
                undo: Some(undo),
            } if !done.contains(step) => Some(PlannedUndo {
                step: *step,
                undo: undo.clone(),
                call: call.clone(),
                intent_at: e.at,
                result: results.get(step).cloned(),
            }),
            _ => None,
        })
        .collect();
    plan.sort_by_key(|entry| std::cmp::Reverse(entry.step));
    plan
}

/// The deferred effects a commit still has to apply, in the order the
/// plugin asked for them.
pub fn commit_plan(events: &[EventRecord]) -> Vec<(u32, Value)> {
    let done = settled_ok(events, |e| match e {
        Event::CommitResult { step, outcome } => Some((*step, outcome)),
        _ => None,
    });
    events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Deferred { step, effect } if !done.contains(step) => {
                Some((*step, effect.clone()))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::JobId;
    use serde_json::json;

    fn ev(seq: i64, event: Event) -> EventRecord {
        EventRecord {
            seq,
            job_id: JobId::new(),
            at: 0,
            event,
        }
    }

    #[test]
    fn plan_undoes_steps_with_an_undo_in_reverse_order_including_unknown_outcomes() {
        let events = vec![
            ev(
                1,
                Event::Intent {
                    step: 1,
                    call: json!({}),
                    undo: Some(json!({"op": "remove_image", "image": "a"})),
                },
            ),
            ev(
                2,
                Event::Result {
                    step: 1,
                    outcome: Outcome::Ok { value: json!(null) },
                },
            ),
            ev(
                3,
                Event::Intent {
                    step: 2,
                    call: json!({}),
                    undo: None,
                },
            ),
            ev(
                4,
                Event::Intent {
                    step: 3,
                    call: json!({}),
                    undo: Some(json!({"op": "stop_container", "id": "c"})),
                },
            ),
        ];
        let steps: Vec<u32> = rollback_plan(&events).into_iter().map(|u| u.step).collect();
        assert_eq!(steps, [3, 1]);
    }

    #[test]
    fn plan_skips_undos_already_completed() {
        let events = vec![
            ev(
                1,
                Event::Intent {
                    step: 1,
                    call: json!({}),
                    undo: Some(json!({"op": "remove_image", "image": "a"})),
                },
            ),
            ev(
                2,
                Event::Intent {
                    step: 2,
                    call: json!({}),
                    undo: Some(json!({"op": "stop_container", "id": "c"})),
                },
            ),
            ev(
                3,
                Event::UndoIntent {
                    step: 2,
                    undo: json!({}),
                },
            ),
            ev(
                4,
                Event::UndoResult {
                    step: 2,
                    outcome: Outcome::Ok { value: json!(null) },
                },
            ),
        ];
        let steps: Vec<u32> = rollback_plan(&events).into_iter().map(|u| u.step).collect();
        assert_eq!(steps, [1]);
    }
}
