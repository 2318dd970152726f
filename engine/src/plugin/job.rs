//! Host side of the `job` interface: identity, params, phase, log and the
//! cancel flag of the job an instance runs.

use super::bindings::{HostError, HostResult, LogLevel, job};
use super::host_state::HostState;
use super::scope::JobScope;
use crate::journal::Event;
use crate::steps::{Call, Compensation};

/// Longest log line kept; longer ones are cut.
const MAX_LOG_LINE: usize = 4096;

impl job::Host for HostState {
    async fn id(&mut self) -> wasmtime::Result<String> {
        self.scope.tick()?;
        Ok(self.scope.job_id.to_string())
    }

    async fn target(&mut self) -> wasmtime::Result<String> {
        self.scope.tick()?;
        Ok(self.scope.target.clone())
    }

    async fn params(&mut self) -> wasmtime::Result<String> {
        self.scope.tick()?;
        Ok(self.scope.params.clone())
    }

    async fn set_phase(&mut self, phase: String) -> wasmtime::Result<()> {
        self.scope.tick()?;
        let phase: String = phase.chars().take(64).collect();
        self.scope.enter_phase(&phase).await
    }

    async fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        self.scope.tick()?;
        let level = match level {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        if self.scope.log_bytes >= self.scope.settings.max_log_bytes {
            return Ok(());
        }
        let mut message = message;
        self.scope.log_bytes += message.len().min(MAX_LOG_LINE);
        if self.scope.log_bytes >= self.scope.settings.max_log_bytes {
            message = format!(
                "log limit of {} bytes reached; later lines are dropped",
                self.scope.settings.max_log_bytes
            );
        }
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        self.scope
            .record(Event::Log {
                level: level.to_owned(),
                message,
            })
            .await
    }

    async fn cancel_requested(&mut self) -> wasmtime::Result<bool> {
        self.scope.tick()?;
        let cancelled = self.scope.cancel.is_cancelled();
        self.scope
            .perform(Call::ReadCancelRequested, None, async move {
                Ok::<_, HostError>(cancelled)
            })
            .await
            .map_err(|e| e.into_trap("reading the cancel flag"))
    }

    async fn register_compensation(&mut self, action: String, data: String) -> HostResult<()> {
        self.scope.tick()?;
        let scope = &mut self.scope;
        for (what, s) in [("action", &action), ("data", &data)] {
            scope.check_size(what, s)?;
        }
        scope.ensure_not_compensating("registering a compensation")?;
        scope.ensure_not_cancelled()?;
        let limit = scope.settings.max_compensations_per_job;
        JobScope::count(
            &mut scope.registered,
            limit,
            "compensations",
            "DECKHAND_MAX_COMPENSATIONS",
        )?;
        let undo = Compensation::Plugin {
            action: action.clone(),
            data,
        };
        scope
            .perform(Call::RegisterCompensation { action }, Some(undo), async {
                Ok::<_, HostError>(())
            })
            .await
    }

    async fn compensating(&mut self) -> wasmtime::Result<bool> {
        self.scope.tick()?;
        Ok(self.scope.compensating)
    }

    async fn now_ms(&mut self) -> wasmtime::Result<u64> {
        self.scope.tick()?;
        let now = crate::journal::now_millis().max(0) as u64;
        self.scope
            .perform(Call::Now, None, async move { Ok::<_, HostError>(now) })
            .await
            .map_err(|e| e.into_trap("reading the time"))
    }

    async fn random_u64(&mut self) -> wasmtime::Result<u64> {
        self.scope.tick()?;
        let value = rand::random::<u64>();
        self.scope
            .perform(Call::Random, None, async move { Ok::<_, HostError>(value) })
            .await
            .map_err(|e| e.into_trap("drawing a random number"))
    }
}
