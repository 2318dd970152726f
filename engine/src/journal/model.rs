//! Journal record types: jobs, their states, and the events appended for them.
//!
//! These types know nothing of SQL, Docker or WebAssembly. Step calls and
//! compensations are carried as opaque JSON here; `crate::steps` gives them
//! their typed meaning.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Position of an event in the journal; strictly increasing across all jobs.
pub type Seq = i64;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The current time in [`Millis`].
pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// A job's id: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub(super) String);

impl JobId {
    /// A fresh id.
    pub fn new() -> Self {
        JobId(uuid::Uuid::now_v7().to_string())
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for JobId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        uuid::Uuid::parse_str(s)
            .map(|u| JobId(u.to_string()))
            .map_err(|_| format!("`{s}` is not a job id"))
    }
}

/// Lifecycle state of a job.
///
/// `queued → running → (committing → succeeded) | (rolling_back → cancelled |
/// rolled_back) | failed`. The last four are terminal and never rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted, not started.
    Queued,
    /// The plugin is running.
    Running,
    /// Past the point of no return: deferred effects are being applied.
    Committing,
    /// Committed; the new revision is complete.
    Succeeded,
    /// Undoing the job's effects.
    RollingBack,
    /// Rolled back because of a cancel.
    Cancelled,
    /// Rolled back because of a failure.
    RolledBack,
    /// The rollback itself could not complete; needs attention.
    Failed,
}

impl JobState {
    /// All states, in lifecycle order.
    pub const ALL: [JobState; 8] = [
        JobState::Queued,
        JobState::Running,
        JobState::Committing,
        JobState::Succeeded,
        JobState::RollingBack,
        JobState::Cancelled,
        JobState::RolledBack,
        JobState::Failed,
    ];

    /// The state's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Committing => "committing",
            JobState::Succeeded => "succeeded",
            JobState::RollingBack => "rolling_back",
            JobState::Cancelled => "cancelled",
            JobState::RolledBack => "rolled_back",
            JobState::Failed => "failed",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown job state `{s}`"))
    }
}

/// Progress of a job's current long step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Progress {
    /// 0.0–1.0, never decreasing within a step; `None` while indeterminate.
    pub fraction: Option<f64>,
    /// Layers finished (pulled or already present).
    pub layers_done: u32,
    /// Distinct layers seen so far.
    pub layers_total: u32,
    /// Bytes downloaded.
    pub bytes_done: u64,
    /// Bytes to download over all layers, once every layer's size is known;
    /// 0 until then, so that a total shown never grows.
    pub bytes_total: u64,
    /// The layers of a pull one by one, in the daemon's order (at most 128);
    /// empty for other steps, and in journals written before it existed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerProgress>,
    /// Each image of a step that pulls several at once
    /// (`container.pull-images`), in the order asked, with its own counts
    /// and layers; the counts above sum them. Empty for other steps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pulls: Vec<ImagePullProgress>,
}

/// One image of a step that pulls several at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImagePullProgress {
    /// The image reference.
    pub image: String,
    /// What it is pulled for (service names).
    pub labels: Vec<String>,
    /// Its own progress (its `pulls` is empty).
    #[serde(flatten)]
    pub progress: Progress,
}

/// One layer of an image pull in a [`Progress`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LayerProgress {
    /// The daemon's layer id (at most 64 characters).
    pub id: String,
    /// `waiting`, `downloading`, `retrying`, `downloaded`, `extracting`,
    /// `done` or `already_present`. A string, so that a journal with a state
    /// added later still reads.
    pub state: String,
    /// Bytes of the layer's current activity: downloaded so far, extracted
    /// so far while `extracting`, all of them once `downloaded` or `done`.
    pub current: u64,
    /// The layer's size, fixed once known; absent until then, and for a
    /// layer already present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// What a journaled effect ended with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// It happened; `value` is what it returned.
    Ok {
        /// The call's return value.
        #[serde(default)]
        value: Value,
    },
    /// It failed with this message.
    Err {
        /// The error message.
        error: String,
        /// The kind of error the plugin saw (`runtime`, `cancelled`,
        /// `denied`, `invalid`, `not_found`, `timed_out`), when it saw one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_kind: Option<String>,
    },
}

impl Outcome {
    /// Whether the effect succeeded.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. })
    }
}

/// One record of the journal's event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The job was accepted.
    Created {
        /// Workflow name.
        workflow: String,
        /// Target name.
        target: String,
        /// Params as given.
        params: Value,
        /// Digest of the plugin component that runs the job.
        plugin_digest: String,
    },
    /// The job entered a state.
    State {
        /// The new state.
        state: JobState,
        /// Why, for failures and rollbacks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The job entered a phase (`pulling`, `creating`, …).
    Phase {
        /// Phase name.
        phase: String,
    },
    /// A step is about to run: what it does and how to undo it.
    Intent {
        /// Step number within the job, from 1.
        step: u32,
        /// The call, typed by `crate::steps::Call`.
        call: Value,
        /// The compensation, typed by `crate::steps::Compensation`; `None`
        /// when the step changes nothing that needs undoing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        undo: Option<Value>,
    },
    /// A step finished.
    Result {
        /// The step's number.
        step: u32,
        /// How it ended.
        #[serde(flatten)]
        outcome: Outcome,
    },
    /// An effect deferred to commit was requested (not run yet).
    Deferred {
        /// Step number it was requested at.
        step: u32,
        /// The effect, typed by `crate::steps::Deferred`.
        effect: Value,
    },
    /// Progress of the current step (coalesced, a few per second).
    Progress(Progress),
    /// A log line from the plugin or the engine.
    Log {
        /// `debug`, `info`, `warn` or `error`.
        level: String,
        /// The text.
        message: String,
    },
    /// A cancel was requested.
    CancelRequested {
        /// Who or why, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A compensation (undo of `step`) or a deferred effect (at commit) is
    /// about to run.
    UndoIntent {
        /// The step being undone.
        step: u32,
        /// The compensation.
        undo: Value,
    },
    /// A compensation finished.
    UndoResult {
        /// The step that was undone.
        step: u32,
        /// How it ended.
        #[serde(flatten)]
        outcome: Outcome,
    },
    /// A deferred effect is about to run at commit.
    CommitIntent {
        /// Step number the effect was requested at.
        step: u32,
        /// The effect.
        effect: Value,
    },
    /// A deferred effect finished.
    CommitResult {
        /// Step number the effect was requested at.
        step: u32,
        /// How it ended.
        #[serde(flatten)]
        outcome: Outcome,
    },
    /// The plugin returned successfully with this summary.
    Finished {
        /// One line from the plugin.
        summary: String,
    },
    /// The engine created a resource and owns it from now on (see
    /// [`crate::journal::OwnedResource`]): only what the journal records
    /// this way is ever changed or removed as the engine's.
    Acquired {
        /// What kind of resource (`container`, `image`).
        resource: String,
        /// Its identity: a container id, an image id.
        id: String,
        /// Its name when acquired (container name, image reference).
        name: String,
    },
    /// The engine removed a resource it owned; it is no longer the
    /// engine's (an image of the same id pulled later by someone else is
    /// theirs).
    Released {
        /// What kind of resource.
        resource: String,
        /// Its identity.
        id: String,
    },
}

impl Event {
    /// The event's kind, as stored in its own column.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Created { .. } => "created",
            Event::State { .. } => "state",
            Event::Phase { .. } => "phase",
            Event::Intent { .. } => "intent",
            Event::Result { .. } => "result",
            Event::Deferred { .. } => "deferred",
            Event::Progress(_) => "progress",
            Event::Log { .. } => "log",
            Event::CancelRequested { .. } => "cancel_requested",
            Event::UndoIntent { .. } => "undo_intent",
            Event::UndoResult { .. } => "undo_result",
            Event::CommitIntent { .. } => "commit_intent",
            Event::CommitResult { .. } => "commit_result",
            Event::Finished { .. } => "finished",
            Event::Acquired { .. } => "acquired",
            Event::Released { .. } => "released",
        }
    }
}

/// An event as stored: where it is in the journal, for which job, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Journal position.
    pub seq: Seq,
    /// The job it belongs to.
    pub job_id: JobId,
    /// When it was appended.
    pub at: Millis,
    /// The event.
    pub event: Event,
}

/// A job as the journal's projection of its events shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Id.
    pub id: JobId,
    /// Workflow name.
    pub workflow: String,
    /// Target name.
    pub target: String,
    /// Params as given.
    pub params: Value,
    /// Digest of the plugin component.
    pub plugin_digest: String,
    /// Current state.
    pub state: JobState,
    /// Current phase.
    pub phase: Option<String>,
    /// Progress of the current step.
    pub progress: Progress,
    /// Why it failed or rolled back.
    pub error: Option<String>,
    /// The plugin's summary when it finished.
    pub summary: Option<String>,
    /// Whether a cancel was requested.
    pub cancel_requested: bool,
    /// Whether a terminal job was dismissed from default listings.
    pub dismissed: bool,
    /// When it was created.
    pub created_at: Millis,
    /// When any of its events was last appended.
    pub updated_at: Millis,
}

/// What a new job is.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Id to use.
    pub id: JobId,
    /// Workflow name.
    pub workflow: String,
    /// Target name.
    pub target: String,
    /// Params.
    pub params: Value,
    /// Digest of the plugin component.
    pub plugin_digest: String,
    /// The client's idempotency key, if it gave one, with what it was given for.
    pub idempotency_key: Option<IdempotencyKey>,
}

/// A client's `Idempotency-Key` and the request it was first given with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The key.
    pub key: String,
    /// What identifies the request (a digest of the fields that define the
    /// job): the same key with another request is refused, not answered
    /// with the first request's job.
    pub fingerprint: String,
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this target's.
    pub target: Option<String>,
    /// Only in this state.
    pub state: Option<JobState>,
    /// Include dismissed jobs.
    pub include_dismissed: bool,
    /// Only jobs needing attention or work: unfinished, or failed.
    pub active: bool,
    /// Only jobs older than this id (paging cursor).
    pub before: Option<JobId>,
    /// At most this many.
    pub limit: Option<usize>,
}

/// One committed revision of a target: one container (`image`,
/// `container_id`, `spec`), or a stack of [`services`](Self::services)
/// (then `image` and `container_id` are empty and `spec` is the stack's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionRecord {
    /// Revision number, from 1.
    pub revision: u64,
    /// Image reference; empty for a stack.
    pub image: String,
    /// Container that runs it; empty for a stack.
    pub container_id: String,
    /// Container spec (or the stack's), as JSON.
    pub spec: Value,
    /// The services of a stack, in start order; empty for one container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceRecord>,
    /// The job that made it.
    pub job_id: JobId,
    /// When it was committed.
    pub created_at: Millis,
}

impl RevisionRecord {
    /// Whether this revision is a stack of services.
    pub fn is_stack(&self) -> bool {
        !self.services.is_empty()
    }

    /// Every container the revision runs, with its image.
    pub fn containers(&self) -> Vec<(&str, &str)> {
        if self.is_stack() {
            self.services
                .iter()
                .map(|s| (s.container_id.as_str(), s.image.as_str()))
                .collect()
        } else {
            vec![(self.container_id.as_str(), self.image.as_str())]
        }
    }

    /// What it runs, in a few words: the image, or the stack's services
    /// (`stack of db, web`).
    pub fn summary(&self) -> String {
        if self.is_stack() {
            let names: Vec<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
            format!("stack of {}", names.join(", "))
        } else {
            self.image.clone()
        }
    }

    /// Whether the revision runs `image` (in any service).
    pub fn runs_image(&self, image: &str) -> bool {
        self.containers().iter().any(|(_, i)| *i == image)
    }
}

/// One service of a stack revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// The service's name.
    pub name: String,
    /// Image reference it runs.
    pub image: String,
    /// Container that runs it.
    pub container_id: String,
    /// Its container spec, as JSON.
    pub spec: Value,
}

/// A target's committed state and history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRecord {
    /// Name.
    pub name: String,
    /// The current revision; `None` after a teardown.
    pub current: Option<RevisionRecord>,
    /// Every revision, oldest first.
    pub history: Vec<RevisionRecord>,
}
