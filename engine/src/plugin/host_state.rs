//! The data a plugin instance's `Store` holds: its sandboxed WASI context
//! (no files, network, environment or clock access beyond the defaults that
//! replay can tolerate), its resource limits, and its [`JobScope`].

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::scope::JobScope;

/// Store data of one plugin instance.
pub struct HostState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limits: StoreLimits,
    /// The job the instance runs.
    pub scope: JobScope,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The `types` interface has no functions; its host trait only says how a
/// host function's error reaches the plugin: as its `host-error`, or as a
/// trap.
impl super::bindings::types::Host for HostState {
    fn convert_host_error(
        &mut self,
        err: super::bindings::HostCallError,
    ) -> wasmtime::Result<super::bindings::HostError> {
        match err {
            super::bindings::HostCallError::Plugin(e) => Ok(e),
            super::bindings::HostCallError::Trap(t) => Err(t),
        }
    }
}
