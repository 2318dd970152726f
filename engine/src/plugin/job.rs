//! Host side of the `job` interface: identity, params, phase, log and the
//! cancel flag of the job an instance runs.

use super::bindings::{LogLevel, job};
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
}
