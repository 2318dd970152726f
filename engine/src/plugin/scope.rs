//! The job a plugin instance runs, as the host functions see it: its
//! identity, the journal and runtime it works through, its cancel signal,
//! and the helper that journals a step's intent before the effect and its
//! result after.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::bindings::HostError;
use crate::journal::{Event, JobId, Journal, Outcome};
use crate::runtime::{ContainerRuntime, RuntimeError};
use crate::steps::{self, Call, Compensation, Deferred};

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
    /// The last step number used (resumes after earlier steps on recovery).
    pub last_step: u32,
    /// Whether the instance runs a compensation: its calls are journaled
    /// without undo, and nothing may be registered or deferred.
    pub compensating: bool,
    /// The phase last journaled.
    pub(super) phase: Option<String>,
    /// Host calls made so far by this instance.
    pub(super) calls: u32,
    /// Log bytes written so far.
    pub(super) log_bytes: usize,
}

impl JobScope {
    /// A scope for a job whose steps start at 1.
    pub fn new(
        job_id: JobId,
        target: String,
        params: String,
        journal: Journal,
        runtime: Arc<dyn ContainerRuntime>,
        cancel: CancellationToken,
        settings: HostSettings,
    ) -> Self {
        JobScope { job_id, target, params, journal, runtime, cancel, settings, last_step: 0, compensating: false, phase: None, calls: 0, log_bytes: 0 }
    }

    /// Count a host call; past the limit the plugin traps.
    pub(super) fn tick(&mut self) -> wasmtime::Result<()> {
        self.calls += 1;
        if self.calls > self.settings.max_host_calls {
            return Err(wasmtime::Error::msg(format!("plugin exceeded its limit of {} host calls", self.settings.max_host_calls)));
        }
        Ok(())
    }

    /// Append an event; a journal failure ends the plugin (it traps), since
    /// no step may happen unrecorded.
    pub(super) async fn record(&self, event: Event) -> wasmtime::Result<()> {
        self.journal.append(&self.job_id, event).await.map(|_| ()).map_err(wasmtime::Error::from)
    }

    /// Journal a phase change, once per distinct phase.
    pub(super) async fn enter_phase(&mut self, phase: &str) -> wasmtime::Result<()> {
        if self.phase.as_deref() != Some(phase) {
            self.phase = Some(phase.to_owned());
            self.record(Event::Phase { phase: phase.to_owned() }).await?;
        }
        Ok(())
    }

    /// `Err(cancelled)` once the job is cancelled: no new step starts then.
    pub(super) fn ensure_not_cancelled(&self) -> Result<(), HostError> {
        if self.cancel.is_cancelled() { Err(HostError::Cancelled) } else { Ok(()) }
    }

    /// Journal a step's intent (call + undo) durably; returns its number.
    pub(super) async fn begin(&mut self, call: &Call, undo: Option<&Compensation>) -> wasmtime::Result<u32> {
        self.enter_phase(call.phase()).await?;
        self.last_step += 1;
        let step = self.last_step;
        // What a compensation does is not itself undone.
        let undo = if self.compensating { None } else { undo.map(steps::to_value) };
        self.record(Event::Intent { step, call: steps::to_value(call), undo }).await?;
        Ok(step)
    }

    /// Journal a step's result; maps a runtime error to the plugin's error.
    pub(super) async fn end<T: Serialize>(
        &self,
        step: u32,
        result: Result<T, RuntimeError>,
    ) -> wasmtime::Result<Result<T, HostError>> {
        let outcome = match &result {
            Ok(v) => Outcome::Ok { value: serde_json::to_value(v).unwrap_or_default() },
            Err(e) => Outcome::Err { error: e.to_string() },
        };
        self.record(Event::Result { step, outcome }).await?;
        Ok(result.map_err(host_error))
    }

    /// Refuse registrations and deferrals while compensating.
    pub(super) fn ensure_not_compensating(&self, what: &str) -> Result<(), HostError> {
        if self.compensating { Err(HostError::Denied(format!("{what} is not available while compensating"))) } else { Ok(()) }
    }

    /// Journal an effect deferred to commit.
    pub(super) async fn defer(&mut self, effect: Deferred) -> wasmtime::Result<Result<(), HostError>> {
        if let Err(e) = self.ensure_not_compensating("deferring an effect to commit") {
            return Ok(Err(e));
        }
        self.last_step += 1;
        self.record(Event::Deferred { step: self.last_step, effect: steps::to_value(&effect) }).await?;
        Ok(Ok(()))
    }

    /// Reject an argument larger than the configured cap.
    pub(super) fn check_size(&self, what: &str, s: &str) -> Result<(), HostError> {
        if s.len() > self.settings.max_arg_bytes {
            Err(HostError::Invalid(format!("{what} is {} bytes; the limit is {}", s.len(), self.settings.max_arg_bytes)))
        } else {
            Ok(())
        }
    }
}

/// The plugin-visible form of a runtime error.
pub(super) fn host_error(e: RuntimeError) -> HostError {
    match e {
        RuntimeError::Cancelled => HostError::Cancelled,
        RuntimeError::NotFound(m) => HostError::NotFound(m),
        RuntimeError::Stalled { seconds } => HostError::TimedOut(format!("no progress for {seconds} s")),
        other => HostError::Runtime(other.to_string()),
    }
}
