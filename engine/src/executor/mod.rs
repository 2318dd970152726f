//! The job executor: accepts jobs, runs their plugin, and drives each to a
//! terminal state — commit on success, rollback on failure, cancel or trap,
//! and recovery of jobs a previous process left unfinished.
//!
//! Lifecycle: `queued → running → committing → succeeded`, or
//! `→ rolling_back → cancelled | rolled_back`, or `failed` when the rollback
//! (or the commit) itself cannot complete. One job per target at a time;
//! jobs on different targets run concurrently.

mod auto_retry;
mod commit;
mod lease;
mod params;
pub mod plan;
mod recovery;
mod rollback;
mod settle;
mod step_error;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::journal::{
    Event, IdempotencyKey, JobId, JobRecord, JobState, Journal, JournalError, NewJob,
};
use crate::plugin::{HostSettings, JobScope, PluginHost, RunError};
use crate::runtime::{ContainerRuntime, ImageSource};

pub use recovery::RecoveryReport;

/// Why a job was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The target name is not valid.
    #[error(
        "invalid target name `{0}`: use 1–63 characters from a-z, 0-9, `_`, `.`, `-`, starting with a letter or digit"
    )]
    InvalidTarget(String),
    /// No workflow is registered under that name.
    #[error("unknown workflow `{0}`")]
    UnknownWorkflow(String),
    /// The workflow needs an installed target and there is none.
    #[error("unknown target `{0}`: it is not installed")]
    UnknownTarget(String),
    /// Params are not a JSON object.
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// `install` of a target that is installed: that is an upgrade.
    #[error("target `{target}` is already installed (revision {revision}, {image}); use upgrade")]
    AlreadyInstalled {
        /// The target.
        target: String,
        /// Its current revision.
        revision: u64,
        /// The image it runs.
        image: String,
    },
    /// `rollback` to a revision the target never had.
    #[error("target `{target}` has no revision {revision} (its revisions: {})", known.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))]
    UnknownRevision {
        /// The target.
        target: String,
        /// The revision asked for.
        revision: u64,
        /// The revisions it has.
        known: Vec<u64>,
    },
    /// A name the job's containers would have is another target's: the
    /// target's name is a stack service's container name
    /// (`deckhand-<stack>-<service>`), or a service's is another target's.
    #[error("the container name `deckhand-{name}` is taken by {holder}")]
    NameTaken {
        /// The name without `deckhand-`.
        name: String,
        /// Who holds it (`service `db` of target `web``, `target `web-db``).
        holder: String,
    },
    /// Another job holds the target.
    #[error("target `{target}` is busy with job {job}")]
    Busy {
        /// The target.
        target: String,
        /// The job holding it.
        job: JobId,
    },
    /// A `failed` job on the target still has undos (or commit effects)
    /// left: retry it, or force the new job.
    #[error(
        "target `{target}` needs attention: job {job} failed and its rollback did not finish; retry it (`deckhand jobs retry {job}`, POST /v1/jobs/{job}/retry), or force this job (`--force`, \"force\": true) to go ahead and leave those undos undone"
    )]
    NeedsAttention {
        /// The target.
        target: String,
        /// The failed job.
        job: JobId,
    },
    /// The container runtime cannot be reached: no job is created while it
    /// is known to be away (nothing would happen but a rollback).
    #[error("{0}; no job was created, try again once it is back")]
    RuntimeUnavailable(#[source] crate::runtime::RuntimeError),
    /// The idempotency key was first given with another request.
    #[error(
        "Idempotency-Key `{key}` was given to job {job} for another request; use a new key for a new request"
    )]
    IdempotencyKeyReused {
        /// The key.
        key: String,
        /// The job it was first given to.
        job: JobId,
    },
    /// The job's image is not on this machine and its registry does not
    /// give it (no such image or tag, no access, no registry there).
    #[error("image `{image}` is not on this machine and cannot be pulled: {reason}")]
    ImageUnavailable {
        /// The image reference.
        image: String,
        /// The registry's answer.
        reason: String,
    },
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

pub use crate::plugin::store::PluginStoreError;
pub use auto_retry::AutoRetryState;

/// Why waiting for a job did not end in its terminal record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The job's run stopped without reaching a terminal state.
    #[error(
        "job {job} stopped without reaching a terminal state ({error}); `deckhand recover` finishes it"
    )]
    Stopped {
        /// The job.
        job: JobId,
        /// Why.
        error: String,
    },
}

/// Why a retry was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetryError {
    /// Only `failed` jobs can be retried.
    #[error("only failed jobs can be retried; this one is {0}")]
    NotFailed(JobState),
    /// Another job holds the target.
    #[error("the target is busy with job {0}")]
    Busy(JobId),
    /// The job was dismissed, or superseded by a job forced on its target:
    /// its undos would now act on a world other jobs changed.
    #[error("job {0} was dismissed (or superseded by a forced job); it is not retried")]
    Dismissed(JobId),
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// The answer to a cancel request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CancelOutcome {
    /// Whether this request (or an earlier one) will cancel the job.
    pub cancelled: bool,
    /// The job's state when the request was handled.
    pub state: JobState,
    /// Why not, when `cancelled` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a job asks for.
#[derive(Debug, Clone)]
pub struct JobRequest {
    /// Workflow name.
    pub workflow: String,
    /// Target name.
    pub target: String,
    /// Params, a JSON object.
    pub params: Value,
    /// The client's idempotency key: a second request with the same key
    /// gets the first one's job.
    pub idempotency_key: Option<String>,
    /// Go ahead although a `failed` job on the target did not finish its
    /// rollback; the decision is journaled on that job, which is dismissed.
    pub force: bool,
}

/// The most of a plugin's summary or error message the journal keeps.
const MAX_MESSAGE_BYTES: usize = 4096;

/// `text` cut to [`MAX_MESSAGE_BYTES`] (on a character boundary), saying
/// how much was left out: a plugin's words are stored and served with the
/// job, so their size is bounded like every other string it passes.
fn bounded_text(text: String) -> String {
    if text.len() <= MAX_MESSAGE_BYTES {
        return text;
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… ({} more bytes left out)",
        &text[..end],
        text.len() - end
    )
}

/// Why a job first failed, without what its rollbacks added since
/// (`…; rollback incomplete: …`): each retry states its own outcome once,
/// so the error does not grow with every attempt.
fn first_error(error: Option<&str>) -> String {
    let error = error.unwrap_or_default();
    match error.find("rollback incomplete:") {
        Some(i) => error[..i].trim_end_matches("; ").to_owned(),
        None => error.to_owned(),
    }
}

/// How long a submit waits for the daemon to answer a ping.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a submission waits (at most; never longer than the stall
/// timeout) for the registry to say whether it has the job's image; without
/// an answer the job goes ahead (its pull has its own bounds).
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Built-in workflows that act on an installed target; for an unknown
/// target they are refused before a job exists.
/// What identifies a request for its idempotency key: a digest of the
/// canonical JSON (keys sorted, no spaces) of the fields that define the job.
fn request_fingerprint(req: &JobRequest) -> String {
    use sha2::{Digest, Sha256};
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::from(k.as_str()).to_string());
                    out.push(':');
                    canonical(v, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(v, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    canonical(
        &serde_json::json!({
            "workflow": req.workflow,
            "target": req.target,
            "params": req.params,
            "force": req.force,
        }),
        &mut text,
    );
    format!("sha256:{:x}", Sha256::digest(text.as_bytes()))
}

/// The lock of one idempotency key, held while a submission with that key
/// is decided; a lock lives as long as someone holds or waits for it.
async fn idempotency_lock(key: &str) -> tokio::sync::OwnedMutexGuard<()> {
    type Locks = HashMap<String, std::sync::Weak<tokio::sync::Mutex<()>>>;
    static LOCKS: std::sync::LazyLock<Mutex<Locks>> = std::sync::LazyLock::new(Default::default);
    let lock = {
        let mut locks = LOCKS.lock().expect("idempotency locks");
        locks.retain(|_, l| l.strong_count() > 0);
        match locks.get(key).and_then(std::sync::Weak::upgrade) {
            Some(lock) => lock,
            None => {
                let lock = Arc::new(tokio::sync::Mutex::new(()));
                locks.insert(key.to_owned(), Arc::downgrade(&lock));
                lock
            }
        }
    };
    lock.lock_owned().await
}

impl JobRequest {
    /// A request without an idempotency key.
    pub fn new(workflow: impl Into<String>, target: impl Into<String>, params: Value) -> Self {
        JobRequest {
            workflow: workflow.into(),
            target: target.into(),
            params,
            idempotency_key: None,
            force: false,
        }
    }
}

/// Whether `name` is a valid target name: `[a-z0-9][a-z0-9_.-]{0,62}`.
pub fn valid_target_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
}

/// Runs jobs; cheap to clone.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    journal: Journal,
    runtime: Arc<dyn ContainerRuntime>,
    host: Arc<PluginHost>,
    settings: HostSettings,
    /// Where uploaded plugin components are kept, by digest.
    plugin_store: Mutex<Option<std::path::PathBuf>>,
    /// Cancel signal of each job this process is working on.
    running: Mutex<HashMap<JobId, CancellationToken>>,
    /// The job holding each busy target.
    targets: lease::TargetLocks,
    /// Jobs whose run stopped short of a terminal state, with why.
    stopped: Mutex<HashMap<JobId, String>>,
    /// Failed jobs retried in the background (the daemon was away).
    auto_retries: Mutex<HashMap<JobId, AutoRetryState>>,
    /// Whether such jobs are retried in the background at all (a one-shot
    /// command's process ends before a retry would come).
    background_retries: std::sync::atomic::AtomicBool,
}

impl Executor {
    /// An executor over this journal, runtime and plugin host.
    pub fn new(
        journal: Journal,
        runtime: Arc<dyn ContainerRuntime>,
        host: Arc<PluginHost>,
        settings: HostSettings,
    ) -> Self {
        Executor {
            inner: Arc::new(Inner {
                journal,
                runtime,
                host,
                settings,
                plugin_store: Mutex::new(None),
                running: Mutex::new(HashMap::new()),
                targets: lease::TargetLocks::default(),
                stopped: Mutex::new(HashMap::new()),
                auto_retries: Mutex::new(HashMap::new()),
                background_retries: std::sync::atomic::AtomicBool::new(true),
            }),
        }
    }

    /// The journal it writes.
    pub fn journal(&self) -> &Journal {
        &self.inner.journal
    }

    /// Whether the container runtime answers now: `Err` when it cannot be
    /// reached (not running, restarting) or does not answer within 5 s.
    pub async fn check_runtime(&self) -> Result<(), crate::runtime::RuntimeError> {
        match tokio::time::timeout(PING_TIMEOUT, self.inner.runtime.ping()).await {
            Ok(Err(e)) if e.is_transient() => Err(e),
            Ok(_) => Ok(()),
            Err(_) => Err(crate::runtime::RuntimeError::Unreachable {
                endpoint: "the configured daemon".into(),
                operation: "ping it".into(),
                cause: crate::runtime::Cause(format!(
                    "no answer within {} s",
                    PING_TIMEOUT.as_secs()
                )),
            }),
        }
    }

    /// Retry `failed` jobs whose failure was transient in the background
    /// (the default), or not: a process that ends with its command turns
    /// it off.
    pub fn set_background_retries(&self, on: bool) {
        self.inner
            .background_retries
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The plugin host it runs.
    pub fn host(&self) -> &PluginHost {
        &self.inner.host
    }

    /// What the runtime says of container `id` now, in a word for people:
    /// `running`, `healthy`, `unhealthy`, `starting`, `exited (N)`,
    /// `missing`, or `unknown` when the runtime cannot be asked.
    pub async fn container_status(&self, id: &str) -> String {
        match self.inner.runtime.inspect_container(id).await {
            Ok(None) => "missing".into(),
            Ok(Some(c)) if !c.running => match c.exit_code {
                Some(code) => format!("exited ({code})"),
                None => "exited".into(),
            },
            Ok(Some(c)) => c.health.unwrap_or_else(|| "running".into()),
            Err(_) => "unknown".into(),
        }
    }

    /// Validate and accept a job; it starts at once in the background.
    /// Nothing is written when the request is invalid or the target busy.
    pub async fn submit(&self, req: JobRequest) -> Result<JobRecord, SubmitError> {
        if !valid_target_name(&req.target) {
            return Err(SubmitError::InvalidTarget(req.target));
        }
        let plugin = self
            .inner
            .host
            .get(&req.workflow)
            .ok_or_else(|| SubmitError::UnknownWorkflow(req.workflow.clone()))?;
        if !req.params.is_object() {
            return Err(SubmitError::InvalidParams(
                "params must be a JSON object".into(),
            ));
        }
        let stack = params::check(&req.workflow, &req.params, &self.inner.settings)
            .map_err(SubmitError::InvalidParams)?;
        if let Some(stack) = &stack {
            params::check_stack_for_target(&req.target, stack)
                .map_err(SubmitError::InvalidParams)?;
        }
        // Submissions with one key go one at a time (a duplicate waits for
        // the first to create its job or be refused, then gets its job: never
        // a second job nor a busy target); the key with another request is
        // refused.
        let idempotency = match &req.idempotency_key {
            Some(key) => Some((
                idempotency_lock(key).await,
                IdempotencyKey {
                    key: key.clone(),
                    fingerprint: request_fingerprint(&req),
                },
            )),
            None => None,
        };
        if let Some((_, key)) = &idempotency
            && let Some((existing, fingerprint)) =
                self.inner.journal.job_by_idempotency_key(&key.key)?
        {
            if fingerprint.is_some_and(|f| f != key.fingerprint) {
                return Err(SubmitError::IdempotencyKeyReused {
                    key: key.key.clone(),
                    job: existing.id,
                });
            }
            return Ok(existing);
        }
        self.check_target_for(&req, stack.as_ref())?;
        // Refuse while the daemon is away rather than accept a job that can
        // only roll back (and create nothing meanwhile).
        self.check_runtime()
            .await
            .map_err(SubmitError::RuntimeUnavailable)?;
        self.check_image_for(&req, stack.as_ref()).await?;
        let id = JobId::new();
        // Held until the job's task ends (or this returns early).
        let lease = self
            .lease(&req.target, &id)
            .map_err(|refused| match refused {
                lease::Refused::Busy(job) => SubmitError::Busy {
                    target: req.target.clone(),
                    job,
                },
                lease::Refused::Journal(e) => e.into(),
            })?;
        // A job left unfinished by another process still holds its target.
        if let Some(job) = self.inner.journal.active_job_on(&req.target)? {
            return Err(SubmitError::Busy {
                target: req.target,
                job,
            });
        }
        // No job on top of an unfinished rollback, unless the operator says so.
        match self.inner.journal.failed_job_on(&req.target)? {
            None => {}
            Some(job) if !req.force => {
                return Err(SubmitError::NeedsAttention {
                    target: req.target,
                    job,
                });
            }
            Some(job) => self.inner.journal.supersede(&job, &id).await?,
        }
        let new = NewJob {
            id: id.clone(),
            workflow: req.workflow.clone(),
            target: req.target.clone(),
            params: req.params.clone(),
            plugin_digest: plugin.digest.clone(),
            idempotency_key: idempotency.as_ref().map(|(_, key)| key.clone()),
        };
        let record = self.inner.journal.create_job(new).await?;
        if record.id != id {
            // The key's job was made elsewhere meanwhile (the journal
            // checks and inserts in one write): that job is the answer.
            return Ok(record);
        }
        let cancel = CancellationToken::new();
        self.inner
            .running
            .lock()
            .expect("running lock")
            .insert(id.clone(), cancel.clone());
        let inner = self.inner.clone();
        let job = record.clone();
        tokio::spawn(async move {
            let mut result = inner.run(&job, cancel).await;
            if let Err(e) = &result
                && e.is_unwritable()
            {
                // Paused at its write-ahead point; finished once the journal
                // takes writes again, holding its target meanwhile.
                result = inner.finish_when_journal_writable(&job.id, e).await;
            }
            if let Err(e) = result {
                tracing::error!(job = %job.id, "job stopped without reaching a terminal state: {e}");
                inner
                    .stopped
                    .lock()
                    .expect("stopped lock")
                    .insert(job.id.clone(), e.to_string());
            }
            inner.running.lock().expect("running lock").remove(&job.id);
            drop(lease);
            if let Err(e) = (Executor { inner }).retry_if_transient(&job.id) {
                tracing::warn!(job = %job.id, "cannot plan a background retry: {e}");
            }
        });
        Ok(record)
    }

    /// Cancel a job: recorded in the journal before this returns, then the
    /// in-flight host call and the plugin are interrupted and the job rolls
    /// back. A committing or finished job is not cancelled.
    pub async fn cancel(
        &self,
        id: &JobId,
        reason: Option<String>,
    ) -> Result<CancelOutcome, JournalError> {
        let (state, _recorded_now) = self.inner.journal.request_cancel(id, reason).await?;
        let record = self
            .inner
            .journal
            .job(id)?
            .ok_or_else(|| JournalError::UnknownJob(id.clone()))?;
        if state.is_terminal() || !record.cancel_requested {
            let reason = if state.is_terminal() {
                format!("job already {state}")
            } else {
                "job is committing; it can no longer be cancelled".to_owned()
            };
            return Ok(CancelOutcome {
                cancelled: false,
                state,
                reason: Some(reason),
            });
        }
        if let Some(token) = self.inner.running.lock().expect("running lock").get(id) {
            token.cancel();
        }
        Ok(CancelOutcome {
            cancelled: true,
            state: record.state,
            reason: None,
        })
    }

    /// Keep uploaded plugins in `dir` and load the ones registered before.
    /// Returns how many were loaded.
    pub fn use_plugin_store(&self, dir: std::path::PathBuf) -> Result<usize, PluginStoreError> {
        let loaded = crate::plugin::store::load(&self.inner.host, &self.inner.journal, &dir)?;
        *self.inner.plugin_store.lock().expect("plugin store lock") = Some(dir);
        Ok(loaded)
    }

    /// Validate a component against the workflow world, store it by digest,
    /// and register it under `name` (built-in names are refused). Jobs that
    /// already ran keep the digest they recorded.
    pub async fn register_plugin(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<std::sync::Arc<crate::plugin::Plugin>, PluginStoreError> {
        let store = self
            .inner
            .plugin_store
            .lock()
            .expect("plugin store lock")
            .clone();
        crate::plugin::store::register(
            &self.inner.host,
            &self.inner.journal,
            store.as_deref(),
            name,
            bytes,
        )
        .await
    }

    /// Also honour cancels that other processes write to the journal (e.g.
    /// `deckhand jobs cancel` from another terminal): check every `interval`
    /// and interrupt the jobs this executor runs. Stops with the executor.
    pub fn watch_journal_cancels(&self, interval: std::time::Duration) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(inner) = weak.upgrade() else { return };
                let Ok(jobs) = inner.journal.unfinished_jobs() else {
                    continue;
                };
                let running = inner.running.lock().expect("running lock");
                for job in jobs.iter().filter(|j| j.cancel_requested) {
                    if let Some(token) = running.get(&job.id) {
                        token.cancel();
                    }
                }
            }
        });
    }

    /// Whether this executor is working on the job now.
    pub fn is_running(&self, id: &JobId) -> bool {
        self.inner
            .running
            .lock()
            .expect("running lock")
            .contains_key(id)
    }

    /// How many jobs this process is running now.
    pub fn running_count(&self) -> usize {
        self.inner.running.lock().expect("running lock").len()
    }

    /// Wait until the job is in a terminal state; returns its final record.
    /// Fails if the job's run stopped short of one (the journal failed; the
    /// job is left for recovery).
    pub async fn wait(&self, id: &JobId) -> Result<JobRecord, WaitError> {
        let mut changes = self.inner.journal.watch_job(id);
        loop {
            let record = self
                .inner
                .journal
                .job(id)?
                .ok_or_else(|| JournalError::UnknownJob(id.clone()))?;
            if record.state.is_terminal() {
                return Ok(record);
            }
            if let Some(error) = self.inner.stopped.lock().expect("stopped lock").get(id) {
                return Err(WaitError::Stopped {
                    job: id.clone(),
                    error: error.clone(),
                });
            }
            // Re-read the record after the job's next event, or after a
            // quiet while (a run that stopped writes nothing more).
            let quiet = std::time::Duration::from_millis(500);
            if let Ok(Err(_)) = tokio::time::timeout(quiet, changes.changed()).await {
                tokio::time::sleep(quiet).await;
            }
        }
    }

    /// Refuse, before a job exists, what the target's record already says
    /// will fail: an `upgrade`, `teardown` or `rollback` of a target that is
    /// not installed, an `install` of one that is (that is an upgrade), a
    /// `rollback` to a revision the target never had.
    fn check_target_for(
        &self,
        req: &JobRequest,
        stack: Option<&deckhand_params::Stack>,
    ) -> Result<(), SubmitError> {
        let target = self.inner.journal.target(&req.target)?;
        let current = target.as_ref().and_then(|t| t.current.clone());
        match (req.workflow.as_str(), &current) {
            ("upgrade" | "teardown" | "rollback", None) => {
                Err(SubmitError::UnknownTarget(req.target.clone()))
            }
            ("install", Some(current)) => Err(SubmitError::AlreadyInstalled {
                target: req.target.clone(),
                revision: current.revision,
                image: current.summary(),
            }),
            ("install", None) => self.check_names_for(req, Some(&req.target), stack),
            ("rollback", Some(_)) => {
                let wanted = req.params.get("revision").and_then(|v| v.as_u64());
                let history = target.map(|t| t.history).unwrap_or_default();
                match wanted {
                    Some(n) if !history.iter().any(|r| r.revision == n) => {
                        Err(SubmitError::UnknownRevision {
                            target: req.target.clone(),
                            revision: n,
                            known: history.iter().map(|r| r.revision).collect(),
                        })
                    }
                    _ => Ok(()),
                }
            }
            ("upgrade", Some(_)) => self.check_names_for(req, None, stack),
            _ => Ok(()),
        }
    }

    /// Refuse a job whose containers' names another target holds: the
    /// target's own name `own` (an install) when it is a stack service's
    /// container name, and each of `stack`'s services' `<target>-<service>`
    /// when another target has that name or uses it.
    fn check_names_for(
        &self,
        req: &JobRequest,
        own: Option<&str>,
        stack: Option<&deckhand_params::Stack>,
    ) -> Result<(), SubmitError> {
        let journal = &self.inner.journal;
        let mut names: Vec<String> = own.map(str::to_owned).into_iter().collect();
        names.extend(
            stack
                .iter()
                .flat_map(|stack| &stack.services)
                .map(|s| format!("{}-{}", req.target, s.name)),
        );
        for name in names {
            if let Some(holder) =
                crate::ownership::service_name_holder(journal, &req.target, &name)?
            {
                return Err(SubmitError::NameTaken { name, holder });
            }
        }
        Ok(())
    }

    /// Refuse, before a job exists, a built-in workflow whose image is
    /// neither here nor in its registry: the job could only fail at its
    /// pull. The image is the params' (`install`, `upgrade` that sets one)
    /// or the revision's (`rollback`).
    async fn check_image_for(
        &self,
        req: &JobRequest,
        stack: Option<&deckhand_params::Stack>,
    ) -> Result<(), SubmitError> {
        let mut images: Vec<String> = match req.workflow.as_str() {
            "install" | "upgrade" => match stack {
                Some(stack) => stack
                    .services
                    .iter()
                    .filter_map(|s| s.spec.image.clone())
                    .collect(),
                None => req
                    .params
                    .get("image")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
                    .into_iter()
                    .collect(),
            },
            "rollback" => {
                let wanted = req.params.get("revision").and_then(|v| v.as_u64());
                self.inner
                    .journal
                    .target(&req.target)?
                    .and_then(|t| t.history.into_iter().find(|r| Some(r.revision) == wanted))
                    .map(|r| {
                        r.containers()
                            .iter()
                            .map(|(_, image)| (*image).to_owned())
                            .collect()
                    })
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        };
        images.sort();
        images.dedup();
        // A registry silent for as long as a pull may be is no answer.
        let limit = RESOLVE_TIMEOUT.min(self.inner.settings.stall_timeout);
        let runtime = &self.inner.runtime;
        let answers = futures_util::future::join_all(
            images
                .iter()
                .map(|image| tokio::time::timeout(limit, runtime.resolve_image(image))),
        )
        .await;
        for (image, answer) in images.into_iter().zip(answers) {
            match answer {
                Ok(Ok(ImageSource::Unavailable(reason))) => {
                    return Err(SubmitError::ImageUnavailable { image, reason });
                }
                Ok(Err(e)) if e.is_transient() => return Err(SubmitError::RuntimeUnavailable(e)),
                Ok(Ok(_)) | Ok(Err(_)) | Err(_) => {}
            }
        }
        Ok(())
    }

    /// Take `target` for `job` until the lease is dropped; a holder whose
    /// terminal state is durable (its task is about to let go) is taken
    /// over.
    fn lease(&self, target: &str, job: &JobId) -> Result<lease::TargetLease, lease::Refused> {
        self.inner.targets.acquire(target, job, |holder| {
            Ok(self
                .inner
                .journal
                .job(holder)?
                .is_some_and(|j| j.state.is_terminal()))
        })
    }

    /// Retry a `failed` job: resume its rollback (or, if it failed while
    /// committing, its commit), skipping what already completed. Holds the
    /// target meanwhile. Returns the job's new terminal record.
    pub async fn retry(&self, id: &JobId) -> Result<JobRecord, RetryError> {
        let job = self
            .inner
            .journal
            .job(id)?
            .ok_or_else(|| JournalError::UnknownJob(id.clone()))?;
        if job.state != JobState::Failed {
            return Err(RetryError::NotFailed(job.state));
        }
        if job.dismissed {
            return Err(RetryError::Dismissed(job.id));
        }
        let _lease = self
            .lease(&job.target, id)
            .map_err(|refused| match refused {
                lease::Refused::Busy(holder) => RetryError::Busy(holder),
                lease::Refused::Journal(e) => e.into(),
            })?;
        let committed = self.inner.journal.events(id, 0)?.iter().any(|e| {
            matches!(
                e.event,
                Event::State {
                    state: JobState::Committing,
                    ..
                }
            )
        });
        let result = if committed {
            async {
                self.inner.set_state(id, JobState::Committing, None).await?;
                self.inner.commit(&job).await
            }
            .await
        } else {
            async {
                self.inner
                    .set_state(id, JobState::RollingBack, None)
                    .await?;
                let reason = if job.cancel_requested {
                    RollbackReason::Cancelled
                } else {
                    RollbackReason::Failed(first_error(job.error.as_deref()))
                };
                self.inner.rollback(&job, reason).await
            }
            .await
        };
        result?;
        Ok(self
            .inner
            .journal
            .job(id)?
            .ok_or_else(|| JournalError::UnknownJob(id.clone()))?)
    }

    /// Finish every job a previous process left unfinished: roll back those
    /// before their commit point, complete the commit of the others.
    /// Failed jobs whose failure was the daemon's being away are then
    /// retried in the background (see [`Executor::auto_retry`]).
    pub async fn recover(&self) -> Result<RecoveryReport, JournalError> {
        let report = self.inner.recover().await?;
        self.retry_transient_failures()?;
        Ok(report)
    }
}

/// Why a rollback runs.
#[derive(Debug, Clone)]
pub(crate) enum RollbackReason {
    /// A cancel was requested.
    Cancelled,
    /// The job failed with this error.
    Failed(String),
}

impl Inner {
    /// What the plugin host needs to run `job`'s plugin.
    fn scope(&self, job: &JobRecord, cancel: CancellationToken) -> JobScope {
        JobScope::live(
            job.id.clone(),
            job.target.clone(),
            job.params.to_string(),
            self.journal.clone(),
            self.runtime.clone(),
            cancel,
            self.settings.clone(),
        )
    }

    async fn set_state(
        &self,
        job: &JobId,
        state: JobState,
        error: Option<String>,
    ) -> Result<(), JournalError> {
        self.journal
            .append(job, Event::State { state, error })
            .await
            .map(|_| ())
    }

    /// Run a freshly submitted job to a terminal state.
    async fn run(&self, job: &JobRecord, cancel: CancellationToken) -> Result<(), JournalError> {
        if cancel.is_cancelled() {
            return self.set_state(&job.id, JobState::Cancelled, None).await;
        }
        self.set_state(&job.id, JobState::Running, None).await?;
        let Some(plugin) = self.host.by_digest(&job.plugin_digest) else {
            let error = format!(
                "workflow `{}` with digest {} is no longer registered",
                job.workflow, job.plugin_digest
            );
            return self.rollback(job, RollbackReason::Failed(error)).await;
        };
        let run = self
            .host
            .run(&plugin, self.scope(job, cancel.clone()))
            .await;
        match run {
            Ok(summary) => {
                let summary = bounded_text(summary);
                self.journal
                    .append(&job.id, Event::Finished { summary })
                    .await?;
                self.commit(job).await
            }
            Err(RunError::Cancelled) => self.rollback(job, RollbackReason::Cancelled).await,
            Err(e) => {
                let reason = if cancel.is_cancelled() {
                    RollbackReason::Cancelled
                } else {
                    RollbackReason::Failed(bounded_text(e.to_string()))
                };
                self.rollback(job, reason).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_MESSAGE_BYTES, bounded_text, valid_target_name};

    #[test]
    fn a_retried_jobs_error_keeps_its_first_cause_once() {
        use super::first_error;
        assert_eq!(
            first_error(Some(
                "health check failed; rollback incomplete: undo of step 7: x"
            )),
            "health check failed"
        );
        assert_eq!(
            first_error(Some("rollback incomplete: undo of step 7: x")),
            ""
        );
        assert_eq!(first_error(Some("plain")), "plain");
        assert_eq!(first_error(None), "");
    }

    #[test]
    fn a_plugins_summary_or_error_is_kept_to_a_bounded_size() {
        assert_eq!(bounded_text("short".into()), "short");
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let cut = bounded_text(long.clone());
        assert!(cut.len() < MAX_MESSAGE_BYTES + 64, "{}", cut.len());
        assert!(cut.ends_with("more bytes left out)"));
        assert!(long.starts_with(cut.split('…').next().unwrap()));
    }

    #[test]
    fn target_names_follow_the_spec_pattern() {
        for ok in ["web", "a", "0", "my-app_1.2", &"a".repeat(63)] {
            assert!(valid_target_name(ok), "{ok}");
        }
        for bad in [
            "",
            "Web",
            "-web",
            ".web",
            "_web",
            "web app",
            "wéb",
            "web/1",
            &"a".repeat(64),
        ] {
            assert!(!valid_target_name(bad), "{bad}");
        }
    }
}
