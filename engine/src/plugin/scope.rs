//! The job a plugin instance runs, as the host functions see it: its
//! identity, the journal and runtime it works through, its cancel signal,
//! and [`JobScope::perform`], through which every host call goes: it
//! journals the call's intent (and undo) before the effect and its result
//! after — or, when replaying, checks the call against the record and
//! answers with the recorded result instead of touching anything.
//!
//! Only an intent has to be durable before its effect. A step's result, a
//! read's record and a phase go with the job's next durable write
//! ([`JobLog`]), at the latest when the run ends ([`JobScope::flush`]); a
//! job that crashes before then is rolled back, so a lost read changes
//! nothing.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::bindings::{HostCallError, HostError, HostResult};
use crate::journal::{Event, JobId, JobLog, Journal, Outcome};
use crate::runtime::{ContainerRuntime, RuntimeError};
use crate::steps::{self, Call, Compensation, Deferred};

/// `effect`, failing with `timed-out` when it has not ended after `limit`.
pub(super) async fn within<T>(
    limit: Duration,
    effect: impl std::future::Future<Output = HostResult<T>>,
) -> HostResult<T> {
    tokio::time::timeout(limit, effect)
        .await
        .unwrap_or_else(|_| {
            Err(HostError::TimedOut(format!("no progress for {} s", limit.as_secs())).into())
        })
}

/// One effect of [`JobScope::perform_concurrently`].
pub(super) type ConcurrentEffect<T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = HostResult<T>> + Send>>;

/// Limits and timings the host applies to one job.
#[derive(Debug, Clone)]
pub struct HostSettings {
    /// A step with no progress for this long fails (a stalled pull).
    pub stall_timeout: Duration,
    /// How often progress is written to the journal at most.
    pub progress_interval: Duration,
    /// How long a container without a health check must keep running
    /// before `wait-healthy` accepts it.
    pub settle_time: Duration,
    /// Linear memory a plugin instance may grow to, in bytes.
    pub max_memory_bytes: usize,
    /// Guest execution time allowed per job.
    pub max_guest_time: Duration,
    /// Largest string a plugin may pass to the host, in bytes.
    pub max_arg_bytes: usize,
    /// Host calls one instance may make.
    pub max_host_calls: u32,
    /// Log bytes one job may write; later lines are dropped.
    pub max_log_bytes: usize,
    /// Wall-clock time a plugin run may take, host calls included.
    pub max_job_time: Duration,
    /// How long the daemon may still carry out a call after its client
    /// went away (the engine gave up waiting, or was killed): before an
    /// interrupted call's undo counts as done, the engine keeps checking
    /// for this long that the call did not land late; it is also the margin
    /// on top of an interrupted stop's own timeout.
    pub call_settle_grace: Duration,
    /// How long an undo or a commit effect keeps being tried while the
    /// Docker daemon cannot be reached, before the job ends `failed` (and
    /// is then retried in the background).
    pub daemon_retry_deadline: Duration,
    /// Whether containers may share the host's network stack (`host`) or
    /// another container's (`container:…`). Off: loopback services on the
    /// machine (the API among them) stay out of a plugin's reach.
    pub allow_host_network: bool,
    /// Whether containers may mount host paths (bind mounts): they reach
    /// the machine's files, so only when the operator says so
    /// (`serve --allow-bind-mounts`, `DECKHAND_ALLOW_BIND_MOUNTS=1`).
    pub allow_bind_mounts: bool,
    /// Wall-clock time a plugin's own compensation may take; past it the
    /// rollback fails (the job ends `failed`, its remaining undos kept).
    pub max_compensation_time: Duration,
    /// Containers one job may create.
    pub max_containers_per_job: u32,
    /// Compensations one job may register.
    pub max_compensations_per_job: u32,
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings {
            stall_timeout: Duration::from_secs(120),
            progress_interval: Duration::from_millis(250),
            settle_time: Duration::from_millis(1000),
            max_memory_bytes: 64 << 20,
            max_guest_time: Duration::from_secs(2),
            max_arg_bytes: 64 << 10,
            max_host_calls: 10_000,
            max_log_bytes: 1 << 20,
            max_job_time: Duration::from_secs(3600),
            call_settle_grace: Duration::from_millis(1000),
            daemon_retry_deadline: Duration::from_secs(60),
            allow_host_network: false,
            allow_bind_mounts: false,
            max_compensation_time: Duration::from_secs(60),
            max_containers_per_job: 16,
            max_compensations_per_job: 1_000,
        }
    }
}

/// Everything a plugin instance's host functions need about their job.
pub struct JobScope {
    /// The job.
    pub job_id: JobId,
    /// Its target.
    pub target: String,
    /// Its params, as JSON text.
    pub params: String,
    /// Where steps are journaled.
    pub journal: Journal,
    /// Where effects happen.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// Fires when the job is cancelled.
    pub cancel: CancellationToken,
    /// Limits and timings.
    pub settings: HostSettings,
    /// The last step number used.
    pub(super) last_step: u32,
    /// Whether the instance runs a compensation: its calls are journaled
    /// without undo, and nothing may be registered or deferred.
    pub(super) compensating: bool,
    /// The phase last journaled.
    pub(super) phase: Option<String>,
    /// Set when replaying a recorded job instead of running it.
    pub(super) replay: Option<Replay>,
    /// Host calls made so far by this instance.
    pub(super) calls: u32,
    /// Log bytes written so far.
    pub(super) log_bytes: usize,
    /// Containers created and compensations registered so far.
    pub(super) created: u32,
    pub(super) registered: u32,
    /// Docker names of the volumes this instance ensured or snapshotted:
    /// the only volumes its containers may mount.
    pub(super) volumes: std::collections::BTreeSet<String>,
    /// Names of the networks this instance ensured: the only user-defined
    /// networks its containers may join.
    pub(super) networks: std::collections::BTreeSet<String>,
    /// The job's writes; results and reads wait in it for the next durable one.
    log: JobLog,
    /// Host calls in progress (0 or 1): a cancel lets one finish, but stops
    /// a guest that waits anywhere else (a WASI sleep) at once.
    pub(super) calls_in_flight: Arc<std::sync::atomic::AtomicU32>,
}

/// Counts a host call in progress for as long as it lives.
struct InFlight(Arc<std::sync::atomic::AtomicU32>);

impl InFlight {
    fn enter(count: &Arc<std::sync::atomic::AtomicU32>) -> InFlight {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl JobScope {
    /// A scope for running a job's plugin: its steps start at 1, and
    /// `cancel` stops it.
    pub fn live(
        job_id: JobId,
        target: String,
        params: String,
        journal: Journal,
        runtime: Arc<dyn ContainerRuntime>,
        cancel: CancellationToken,
        settings: HostSettings,
    ) -> Self {
        JobScope {
            log: JobLog::new(journal.clone(), job_id.clone()),
            calls_in_flight: Arc::default(),
            job_id,
            target,
            params,
            journal,
            runtime,
            cancel,
            settings,
            last_step: 0,
            compensating: false,
            phase: None,
            replay: None,
            calls: 0,
            log_bytes: 0,
            created: 0,
            registered: 0,
            volumes: Default::default(),
            networks: Default::default(),
        }
    }

    /// A scope for running one of a job's own compensations during its
    /// rollback: its calls are journaled as steps after `after_step`,
    /// without undo; nothing may be registered or deferred; the job's
    /// cancel (which has fired) does not stop it.
    pub fn compensation(
        job_id: JobId,
        target: String,
        params: String,
        journal: Journal,
        runtime: Arc<dyn ContainerRuntime>,
        settings: HostSettings,
        after_step: u32,
    ) -> Self {
        let mut scope = Self::live(
            job_id,
            target,
            params,
            journal,
            runtime,
            CancellationToken::new(),
            settings,
        );
        scope.compensating = true;
        scope.last_step = after_step;
        scope
    }

    /// A scope replaying a job from its record: every host call is answered
    /// from `replay`, and nothing is touched or written.
    pub fn replaying(
        job_id: JobId,
        target: String,
        params: String,
        journal: Journal,
        replay: Replay,
    ) -> Self {
        let mut scope = Self::live(
            job_id,
            target,
            params,
            journal,
            // Never called: every answer comes from the record.
            Arc::new(crate::runtime::MemoryRuntime::new()),
            CancellationToken::new(),
            HostSettings::default(),
        );
        scope.replay = Some(replay);
        scope
    }

    /// The last step number this scope used.
    pub fn last_step(&self) -> u32 {
        self.last_step
    }

    /// The replay state, once a replaying run is over.
    pub fn into_replay(self) -> Option<Replay> {
        self.replay
    }

    /// Count a host call; past the limit the plugin traps.
    pub(super) fn tick(&mut self) -> wasmtime::Result<()> {
        self.calls += 1;
        if self.calls > self.settings.max_host_calls {
            return Err(wasmtime::Error::msg(format!(
                "plugin exceeded its limit of {} host calls",
                self.settings.max_host_calls
            )));
        }
        Ok(())
    }

    /// Append an event; a journal failure ends the plugin (it traps), since
    /// no step may happen unrecorded. Replaying, nothing is written.
    /// Whatever waits in [`Self::record_later`] is written first, in the
    /// same transaction.
    pub(super) async fn record(&mut self, event: Event) -> wasmtime::Result<()> {
        self.record_later(event);
        self.flush().await
    }

    /// Queue an event that need not be durable before the plugin goes on; it
    /// is written with the next [`Self::record`] or [`Self::flush`].
    pub(super) fn record_later(&mut self, event: Event) {
        match &self.replay {
            Some(replay) => replay.observed.lock().expect("replay log lock").push(event),
            None => self.log.later(event),
        }
    }

    /// Write every queued event durably. The host calls this when a run
    /// ends, however it ends.
    pub async fn flush(&mut self) -> wasmtime::Result<()> {
        self.log.flush().await.map_err(wasmtime::Error::from)
    }

    /// Make one host call a step: journal `call` with `undo`, run `effect`
    /// and journal its outcome. Replaying, `effect` is dropped unrun: the
    /// call is compared with the next recorded one (a difference stops the
    /// replay with a divergence) and the recorded outcome is returned.
    pub(super) async fn perform<T, E, F>(
        &mut self,
        call: Call,
        undo: Option<Compensation>,
        effect: F,
    ) -> HostResult<T>
    where
        T: Serialize + serde::de::DeserializeOwned,
        E: Into<HostCallError>,
        F: std::future::Future<Output = Result<T, E>>,
    {
        let effect = async move { effect.await.map_err(Into::into) };
        if self.replay.is_some() {
            return self.replay_step(call, undo);
        }
        let _in_flight = InFlight::enter(&self.calls_in_flight);
        if call.is_read() && undo.is_none() {
            // Nothing to undo and nothing changed: record question and
            // answer together, after the fact, with the next write.
            // A trap (the journal failed) records nothing: the question
            // was never answered.
            let result = plugin_answer(effect.await)?;
            self.last_step += 1;
            let step = self.last_step;
            self.record_later(Event::Intent {
                step,
                call: steps::to_value(&call),
                undo: None,
            });
            self.record_later(Event::Result {
                step,
                outcome: outcome_of(&result),
            });
            return Ok(result?);
        }
        let step = self.begin(&call, undo.as_ref()).await?;
        crate::fault::call_starting(&steps::op_of(&call));
        // A pull fails on its own when its progress stalls, and a health wait
        // has the plugin's timeout; any other call that hangs fails here.
        let result = if matches!(call, Call::PullImage { .. } | Call::WaitHealthy { .. }) {
            effect.await
        } else {
            // A stop may take its whole timeout; it is let finish rather
            // than abandoned while the daemon still works on it.
            let limit = match &call {
                Call::StopContainer { timeout_s, .. } => self.settings.stall_timeout.max(
                    Duration::from_secs((*timeout_s).min(300).into())
                        + self.settings.call_settle_grace,
                ),
                _ => self.settings.stall_timeout,
            };
            within(limit, effect).await
        };
        // A trap leaves the step without a result, as a crash would: the
        // rollback settles it.
        let result = plugin_answer(result)?;
        self.record_later(Event::Result {
            step,
            outcome: outcome_of(&result),
        });
        Ok(result?)
    }

    /// Several effects at once, each its own journaled step: every intent
    /// is durable, in the order given, before any effect starts; the
    /// effects then run concurrently and each result is journaled as it
    /// lands. The first effect to fail cancels `siblings` (which the
    /// effects watch). The answers come back in the order given. No time
    /// bound is added: each effect bounds itself (a pull fails when its
    /// progress stalls).
    pub(super) async fn perform_concurrently<T>(
        &mut self,
        steps: Vec<(Call, Option<Compensation>, ConcurrentEffect<T>)>,
        siblings: &CancellationToken,
    ) -> HostResult<Vec<Result<T, HostError>>>
    where
        T: Serialize + serde::de::DeserializeOwned,
    {
        if self.replay.is_some() {
            return steps
                .into_iter()
                .map(|(call, undo, _)| plugin_answer(self.replay_step(call, undo)))
                .collect();
        }
        let _in_flight = InFlight::enter(&self.calls_in_flight);
        let mut running = futures_util::stream::FuturesUnordered::new();
        let (calls, effects): (Vec<_>, Vec<_>) = steps
            .into_iter()
            .map(|(call, undo, effect)| ((call, undo), effect))
            .unzip();
        let mut numbers = Vec::with_capacity(calls.len());
        for (call, undo) in &calls {
            numbers.push(self.begin(call, undo.as_ref()).await?);
        }
        for (i, ((call, _), effect)) in calls.iter().zip(effects).enumerate() {
            crate::fault::call_starting(&steps::op_of(call));
            running.push(async move { (i, effect.await) });
        }
        let mut answers: Vec<Option<Result<T, HostError>>> = std::iter::repeat_with(|| None)
            .take(numbers.len())
            .collect();
        while let Some((i, result)) = futures_util::StreamExt::next(&mut running).await {
            // A trap leaves the steps still running without a result, as a
            // crash would: the rollback settles them.
            let result = plugin_answer(result)?;
            if result.is_err() {
                siblings.cancel();
            }
            self.record_later(Event::Result {
                step: numbers[i],
                outcome: outcome_of(&result),
            });
            answers[i] = Some(result);
        }
        Ok(answers.into_iter().flatten().collect())
    }

    fn replay_step<T: serde::de::DeserializeOwned>(
        &mut self,
        call: Call,
        undo: Option<Compensation>,
    ) -> HostResult<T> {
        self.last_step += 1;
        let replay = self.replay.as_mut().expect("replaying");
        replay.check_until(self.last_step)?;
        let actual = RecordedStep::Call {
            call: steps::to_value(&call),
            undo: undo.as_ref().map(steps::to_value),
        };
        let expected = replay.script.get(replay.next).cloned();
        replay.next += 1;
        match expected {
            Some(RecordedEntry {
                entry: RecordedStep::Call { call: c, undo: u },
                outcome,
                ..
            }) if c == steps::to_value(&call) && u == undo.as_ref().map(steps::to_value) => {
                match outcome {
                    Some(Outcome::Ok { value }) => serde_json::from_value(value).map_err(|e| {
                        HostCallError::Trap(wasmtime::Error::msg(format!(
                            "recorded result does not decode: {e}"
                        )))
                    }),
                    Some(Outcome::Err { error, error_kind }) => {
                        Err(host_error_from(error_kind.as_deref(), error).into())
                    }
                    // The record ends here (the engine stopped mid-step).
                    None => Err(replay.end_of_record(self.last_step).into()),
                }
            }
            None if !replay.complete => Err(replay.end_of_record(self.last_step).into()),
            expected => Err(replay
                .diverge(self.last_step, expected.map(|e| e.entry), actual)
                .into()),
        }
    }

    /// Journal (or, replaying, check) an effect deferred to commit.
    fn replay_deferred(&mut self, effect: &Deferred) -> wasmtime::Result<()> {
        self.last_step += 1;
        let replay = self.replay.as_mut().expect("replaying");
        replay.check_until(self.last_step)?;
        let actual = RecordedStep::Deferred {
            effect: steps::to_value(effect),
        };
        let expected = replay.script.get(replay.next).cloned();
        replay.next += 1;
        match expected {
            Some(e) if e.entry == actual => Ok(()),
            None if !replay.complete => Err(replay.end_of_record(self.last_step)),
            expected => Err(replay.diverge(self.last_step, expected.map(|e| e.entry), actual)),
        }
    }

    /// Journal a phase change, once per distinct phase.
    pub(super) async fn enter_phase(&mut self, phase: &str) -> wasmtime::Result<()> {
        if self.phase.as_deref() != Some(phase) {
            self.phase = Some(phase.to_owned());
            // Written with the intent that follows it.
            self.record_later(Event::Phase {
                phase: phase.to_owned(),
            });
        }
        Ok(())
    }

    /// `Err(cancelled)` once the job is cancelled: no new step starts then.
    pub(super) fn ensure_not_cancelled(&self) -> Result<(), HostError> {
        if self.cancel.is_cancelled() {
            Err(HostError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Journal a step's intent (call + undo) durably; returns its number.
    pub(super) async fn begin(
        &mut self,
        call: &Call,
        undo: Option<&Compensation>,
    ) -> wasmtime::Result<u32> {
        self.enter_phase(call.phase()).await?;
        self.last_step += 1;
        let step = self.last_step;
        // What a compensation does is not itself undone.
        let undo = if self.compensating {
            None
        } else {
            undo.map(steps::to_value)
        };
        self.record(Event::Intent {
            step,
            call: steps::to_value(call),
            undo,
        })
        .await?;
        Ok(step)
    }

    /// Refuse registrations and deferrals while compensating.
    pub(super) fn ensure_not_compensating(&self, what: &str) -> Result<(), HostError> {
        if self.compensating {
            Err(HostError::Denied(format!(
                "{what} is not available while compensating"
            )))
        } else {
            Ok(())
        }
    }

    /// Journal an effect deferred to commit.
    pub(super) async fn defer(&mut self, effect: Deferred) -> HostResult<()> {
        self.ensure_not_compensating("deferring an effect to commit")?;
        if self.replay.is_some() {
            return Ok(self.replay_deferred(&effect)?);
        }
        self.last_step += 1;
        self.record(Event::Deferred {
            step: self.last_step,
            effect: steps::to_value(&effect),
        })
        .await?;
        Ok(())
    }

    /// Count one more of something a job may do at most `limit` times;
    /// `Err` once it is past the limit.
    pub(super) fn count(
        used: &mut u32,
        limit: u32,
        what: &str,
        variable: &str,
    ) -> Result<(), HostError> {
        if *used >= limit {
            return Err(HostError::Denied(format!(
                "a job may have at most {limit} {what} ({variable})"
            )));
        }
        *used += 1;
        Ok(())
    }

    /// Reject an argument larger than the configured cap.
    pub(super) fn check_size(&self, what: &str, s: &str) -> Result<(), HostError> {
        if s.len() > self.settings.max_arg_bytes {
            Err(HostError::Invalid(format!(
                "{what} is {} bytes; the limit is {}",
                s.len(),
                self.settings.max_arg_bytes
            )))
        } else {
            Ok(())
        }
    }
}

/// One recorded step, as replay compares it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RecordedStep {
    /// A host call and its undo.
    Call {
        /// The call.
        call: serde_json::Value,
        /// Its undo.
        #[serde(skip_serializing_if = "Option::is_none")]
        undo: Option<serde_json::Value>,
    },
    /// An effect deferred to commit.
    Deferred {
        /// The effect.
        effect: serde_json::Value,
    },
}

/// A recorded step with its number and outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEntry {
    /// Step number in the record.
    pub step: u32,
    /// What it was.
    pub entry: RecordedStep,
    /// How it ended; `None` if the record has no result for it.
    pub outcome: Option<Outcome>,
}

/// Where a replayed plugin first did something other than the record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    /// The step number where it happened.
    pub step: u32,
    /// What the record has there (`None`: the record had ended).
    pub expected: Option<RecordedStep>,
    /// What the plugin did (`None`: it stopped before the record did).
    pub actual: Option<RecordedStep>,
}

/// Replay state of an instance: the record to answer from, and what the
/// plugin has done so far.
pub struct Replay {
    /// The recorded steps, in order.
    pub script: Vec<RecordedEntry>,
    /// The next one to consume.
    pub next: usize,
    /// Where the plugin diverged, if it did.
    pub divergence: Option<Divergence>,
    /// Stop when this step is reached (`--until`).
    pub until: Option<u32>,
    /// Whether the recorded run ended (else the record stops mid-run, as
    /// after a crash, and running past its end is not a divergence).
    pub complete: bool,
    /// Set when the replay stopped at the end of an incomplete record.
    pub record_ended_at: Option<u32>,
    /// Set when the replay stopped at `until`.
    pub stopped_at: Option<u32>,
    /// What the plugin recorded while replaying (logs, phases).
    pub observed: std::sync::Mutex<Vec<Event>>,
}

impl Replay {
    /// A replay of `script`.
    pub fn new(script: Vec<RecordedEntry>, complete: bool, until: Option<u32>) -> Self {
        Replay {
            script,
            next: 0,
            divergence: None,
            until,
            complete,
            record_ended_at: None,
            stopped_at: None,
            observed: Default::default(),
        }
    }

    fn check_until(&mut self, step: u32) -> wasmtime::Result<()> {
        match self.until {
            Some(u) if step > u => {
                self.stopped_at = Some(u);
                Err(wasmtime::Error::msg(format!("replay stopped at step {u}")))
            }
            _ => Ok(()),
        }
    }

    fn diverge(
        &mut self,
        step: u32,
        expected: Option<RecordedStep>,
        actual: RecordedStep,
    ) -> wasmtime::Error {
        self.divergence = Some(Divergence {
            step,
            expected,
            actual: Some(actual),
        });
        wasmtime::Error::msg(format!("replay diverged at step {step}"))
    }

    fn end_of_record(&mut self, step: u32) -> wasmtime::Error {
        self.record_ended_at = Some(step);
        wasmtime::Error::msg(format!("the record ends at step {step}"))
    }
}

/// How a host call ended, as journaled.
fn outcome_of<T: Serialize>(result: &Result<T, HostError>) -> Outcome {
    match result {
        Ok(v) => Outcome::Ok {
            value: serde_json::to_value(v).unwrap_or_default(),
        },
        Err(e) => Outcome::Err {
            error: host_error_text(e),
            error_kind: Some(host_error_kind(e).to_owned()),
        },
    }
}

/// The message of a plugin-visible error.
fn host_error_text(e: &HostError) -> String {
    match e {
        HostError::Runtime(m)
        | HostError::Denied(m)
        | HostError::Invalid(m)
        | HostError::NotFound(m)
        | HostError::TimedOut(m) => m.clone(),
        HostError::Cancelled => "cancelled".to_owned(),
    }
}

/// The kind of a plugin-visible error, as journaled.
fn host_error_kind(e: &HostError) -> &'static str {
    match e {
        HostError::Runtime(_) => "runtime",
        HostError::Cancelled => "cancelled",
        HostError::Denied(_) => "denied",
        HostError::Invalid(_) => "invalid",
        HostError::NotFound(_) => "not_found",
        HostError::TimedOut(_) => "timed_out",
    }
}

/// The plugin-visible error a journaled outcome stands for.
fn host_error_from(kind: Option<&str>, message: String) -> HostError {
    match kind {
        Some("cancelled") => HostError::Cancelled,
        Some("denied") => HostError::Denied(message),
        Some("invalid") => HostError::Invalid(message),
        Some("not_found") => HostError::NotFound(message),
        Some("timed_out") => HostError::TimedOut(message),
        _ => HostError::Runtime(message),
    }
}

/// A journal that cannot be read or written stops the plugin: the engine
/// cannot go on without its record, and the plugin must not take it for a
/// runtime error it could retry.
pub(super) fn journal_error(e: crate::journal::JournalError) -> HostCallError {
    HostCallError::Trap(wasmtime::Error::new(e).context("the journal failed"))
}

/// Split an effect's result into the plugin's answer and a trap.
fn plugin_answer<T>(result: HostResult<T>) -> HostResult<Result<T, HostError>> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(HostCallError::Plugin(e)) => Ok(Err(e)),
        Err(HostCallError::Trap(t)) => Err(HostCallError::Trap(t)),
    }
}

/// The plugin-visible form of a runtime error.
pub(super) fn host_error(e: RuntimeError) -> HostError {
    match e {
        RuntimeError::Cancelled => HostError::Cancelled,
        RuntimeError::NotFound(m) => HostError::NotFound(m),
        RuntimeError::Stalled { seconds } => {
            HostError::TimedOut(format!("no progress for {seconds} s"))
        }
        other => HostError::Runtime(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::JournalError;

    #[test]
    fn a_journal_failure_stops_the_plugin_instead_of_answering_a_runtime_error() {
        let failed = journal_error(JournalError::Commit("disk full".into()));
        let HostCallError::Trap(trap) = failed else {
            panic!("a journal failure must trap, not answer the plugin");
        };
        let chain = format!("{trap:#}");
        assert!(chain.contains("the journal failed"), "{chain}");
        assert!(chain.contains("disk full"), "the source is kept: {chain}");
        assert!(!chain.to_lowercase().contains("docker"), "{chain}");
    }

    #[test]
    fn an_effects_answer_to_the_plugin_is_kept_apart_from_a_trap() {
        let answered: HostResult<u8> = Err(HostError::NotFound("x".into()).into());
        assert!(matches!(
            plugin_answer(answered),
            Ok(Err(HostError::NotFound(_)))
        ));
        let trapped: HostResult<u8> = Err(journal_error(JournalError::Commit("x".into())));
        assert!(plugin_answer(trapped).is_err());
        assert!(matches!(plugin_answer(Ok(3u8)), Ok(Ok(3))));
    }
}
