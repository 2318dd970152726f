//! Host side of the `job` interface: identity, params, phase, log and the
//! cancel flag of the job an instance runs.

use super::bindings::{HostError, LogLevel, job};
use crate::runtime::RuntimeError;
use crate::steps::{Call, Compensation};
use super::host_state::HostState;
use crate::journal::Event;

/// Longest log line kept; longer ones are cut.
const MAX_LOG_LINE: usize = 4096;

impl job::Host for HostState {
    async fn id(&mut self) -> wasmtime::Result<String> {
        Ok(self.scope.job_id.to_string())
    }

    async fn target(&mut self) -> wasmtime::Result<String> {
        Ok(self.scope.target.clone())
    }

    async fn params(&mut self) -> wasmtime::Result<String> {
        Ok(self.scope.params.clone())
    }

    async fn set_phase(&mut self, phase: String) -> wasmtime::Result<()> {
        let phase: String = phase.chars().take(64).collect();
        self.scope.enter_phase(&phase).await
    }

    async fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let level = match level {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        self.scope.record(Event::Log { level: level.to_owned(), message }).await
    }

    async fn cancel_requested(&mut self) -> wasmtime::Result<bool> {
        Ok(self.scope.cancel.is_cancelled())
    }

    async fn register_compensation(&mut self, action: String, data: String) -> wasmtime::Result<Result<(), HostError>> {
        let scope = &mut self.scope;
        for (what, s) in [("action", &action), ("data", &data)] {
            if let Err(e) = scope.check_size(what, s) {
                return Ok(Err(e));
            }
        }
        if let Err(e) = scope.ensure_not_compensating("registering a compensation").and(scope.ensure_not_cancelled()) {
            return Ok(Err(e));
        }
        let undo = Compensation::Plugin { action: action.clone(), data };
        let step = scope.begin(&Call::RegisterCompensation { action }, Some(&undo)).await?;
        scope.end(step, Ok::<(), RuntimeError>(())).await
    }

    async fn compensating(&mut self) -> wasmtime::Result<bool> {
        Ok(self.scope.compensating)
    }
}
