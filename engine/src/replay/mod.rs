//! Replay: re-run a recorded job's plugin with every host call answered
//! from the journal instead of Docker, and report the first place where the
//! plugin does something other than the record (a different call, or
//! different arguments). Needs no container runtime at all.
//!
//! The record is the job's run: every intent and deferred effect up to the
//! point where the run ended (rollback and commit steps are the engine's,
//! not the plugin's). A record cut short by a crash is replayed up to its
//! end; going past the end is not a divergence then.

use std::sync::Arc;

use serde::Serialize;

use crate::journal::{Event, EventRecord, JobRecord, JobState, Journal, Outcome};
use crate::plugin::{
    Divergence, JobScope, Plugin, PluginHost, RecordedEntry, RecordedStep, Replay, RunError,
};

/// The plugin's run as recorded: its steps in order with their outcomes,
/// and whether the run ended (rather than being cut short).
pub fn script_of(events: &[EventRecord]) -> (Vec<RecordedEntry>, bool) {
    let mut script: Vec<RecordedEntry> = Vec::new();
    let mut complete = false;
    for e in events {
        match &e.event {
            Event::Intent { step, call, undo } => script.push(RecordedEntry {
                step: *step,
                entry: RecordedStep::Call {
                    call: call.clone(),
                    undo: undo.clone(),
                },
                outcome: None,
            }),
            Event::Deferred { step, effect } => script.push(RecordedEntry {
                step: *step,
                entry: RecordedStep::Deferred {
                    effect: effect.clone(),
                },
                outcome: Some(Outcome::Ok {
                    value: serde_json::Value::Null,
                }),
            }),
            Event::Result { step, outcome } => {
                if let Some(s) = script.iter_mut().rev().find(|s| s.step == *step) {
                    s.outcome = Some(outcome.clone());
                }
            }
            Event::Finished { .. }
            | Event::State {
                state: JobState::RollingBack | JobState::Committing,
                ..
            } => {
                // The run is over: what follows are the engine's steps.
                complete = true;
                break;
            }
            _ => {}
        }
    }
    (script, complete)
}

/// How a replay ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "ended", rename_all = "snake_case")]
pub enum ReplayEnd {
    /// The plugin returned `ok` with this summary.
    Finished {
        /// The summary.
        summary: String,
    },
    /// The plugin returned `err` (or trapped) with this message.
    Failed {
        /// The message.
        error: String,
    },
    /// The plugin did something other than the record.
    Diverged,
    /// The record ends here (the recorded run was cut short).
    RecordEnded {
        /// The step the record had no more of.
        step: u32,
    },
    /// Stopped at `--until`.
    Stopped {
        /// The step.
        step: u32,
    },
}

/// The result of a replay.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// The job replayed.
    pub job: String,
    /// Digest of the component that was run.
    pub digest: String,
    /// Steps in the record.
    pub recorded_steps: usize,
    /// Steps the replayed plugin matched.
    pub matched_steps: usize,
    /// How it ended.
    pub end: ReplayEnd,
    /// The first difference, if any.
    pub divergence: Option<Divergence>,
    /// Whether the replayed run ended as the recorded one did.
    pub same_outcome: bool,
    /// What the plugin logged and which phases it entered while replaying.
    pub observed: Vec<serde_json::Value>,
}

/// Why a replay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The component the job ran is not available.
    #[error("the job ran plugin {0}, which is not loaded here; pass the component with --plugin")]
    MissingPlugin(String),
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
}

/// The innermost reason of an error message: its last `: `-separated part.
fn reason(message: &str) -> &str {
    message.rsplit(": ").next().unwrap_or(message).trim()
}

/// Replay `job` from `journal` with `plugin` (default: the digest the job
/// recorded), stopping after step `until` if given.
pub async fn replay(
    host: &PluginHost,
    journal: &Journal,
    job: &JobRecord,
    plugin: Option<Arc<Plugin>>,
    until: Option<u32>,
) -> Result<ReplayReport, ReplayError> {
    let plugin = match plugin {
        Some(p) => p,
        None => host
            .by_digest(&job.plugin_digest)
            .ok_or_else(|| ReplayError::MissingPlugin(job.plugin_digest.clone()))?,
    };
    let events = journal.events(&job.id, 0)?;
    let (script, complete) = script_of(&events);
    let recorded_end = events.iter().find_map(|e| match &e.event {
        Event::Finished { summary } => Some(Ok(summary.clone())),
        // A rollback without an error is a cancel's.
        Event::State {
            state: JobState::RollingBack,
            error,
        } => Some(Err(error.clone().unwrap_or_else(|| "cancelled".into()))),
        _ => None,
    });
    let recorded_steps = script.len();
    let scope = JobScope::replaying(
        job.id.clone(),
        job.target.clone(),
        job.params.to_string(),
        journal.clone(),
        Replay::new(script, complete, until),
    );
    let (result, scope) = host.run_keeping_scope(&plugin, scope).await;
    let replay = scope.into_replay().expect("replay state");
    let observed = replay
        .observed
        .lock()
        .expect("replay log lock")
        .iter()
        .map(|e| serde_json::to_value(e).unwrap_or_default())
        .collect();
    let mut divergence = replay.divergence.clone();
    let end = if divergence.is_some() {
        ReplayEnd::Diverged
    } else if let Some(step) = replay.stopped_at {
        ReplayEnd::Stopped { step }
    } else if let Some(step) = replay.record_ended_at {
        ReplayEnd::RecordEnded { step }
    } else {
        match &result {
            Ok(summary) => ReplayEnd::Finished {
                summary: summary.clone(),
            },
            Err(RunError::Failed(e)) | Err(RunError::Trapped(e)) => {
                ReplayEnd::Failed { error: e.clone() }
            }
            Err(e @ RunError::Journal(_)) => ReplayEnd::Failed {
                error: e.to_string(),
            },
            Err(RunError::Cancelled) => ReplayEnd::Failed {
                error: "cancelled".into(),
            },
        }
    };
    // A plugin that stops before the record does has diverged too.
    if matches!(end, ReplayEnd::Finished { .. } | ReplayEnd::Failed { .. })
        && replay.next < replay.script.len()
    {
        let next = &replay.script[replay.next];
        divergence = Some(Divergence {
            step: next.step,
            expected: Some(next.entry.clone()),
            actual: None,
        });
    }
    let same_outcome = match (&end, &recorded_end) {
        (ReplayEnd::Finished { summary }, Some(Ok(recorded))) => summary == recorded,
        // Compare the reason, not the wording around it (a trap's backtrace
        // offsets depend on how the engine compiled the component).
        (ReplayEnd::Failed { error }, Some(Err(recorded))) => reason(error) == reason(recorded),
        (ReplayEnd::RecordEnded { .. } | ReplayEnd::Stopped { .. }, _) => true,
        _ => false,
    };
    Ok(ReplayReport {
        job: job.id.to_string(),
        digest: plugin.digest.clone(),
        recorded_steps,
        // The step that diverged or had no recorded result was consumed but not matched.
        matched_steps: if replay.divergence.is_some() || replay.record_ended_at.is_some() {
            replay.next.saturating_sub(1)
        } else {
            replay.next.min(recorded_steps)
        },
        end: if divergence.is_some() {
            ReplayEnd::Diverged
        } else {
            end
        },
        divergence,
        same_outcome,
        observed,
    })
}
