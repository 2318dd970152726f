//! The only `bindgen!` over `wit/`: host-side types and traits of the
//! `deckhand:workflow` world, sealed in a private module. Everything else in
//! the crate uses the re-exports below.

mod generated {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "workflow",
        imports: { default: async | trappable },
        exports: { default: async },
        trappable_error_type: {
            "deckhand:workflow/types.host-error" => super::HostCallError,
        },
    });
}

/// How a host function whose WIT result is `result<_, host-error>` fails:
/// with an answer the plugin gets (`host-error`), or with a trap that ends
/// the plugin (the journal could not be written, a limit was passed). Host
/// functions return `Result<T, HostCallError>` and use `?` on both kinds.
#[derive(Debug)]
pub enum HostCallError {
    /// The plugin is told this.
    Plugin(HostError),
    /// The plugin is stopped with this.
    Trap(wasmtime::Error),
}

impl From<HostError> for HostCallError {
    fn from(e: HostError) -> Self {
        HostCallError::Plugin(e)
    }
}

impl From<wasmtime::Error> for HostCallError {
    fn from(e: wasmtime::Error) -> Self {
        HostCallError::Trap(e)
    }
}

impl HostCallError {
    /// For a host function whose WIT signature has no `host-error`: any
    /// failure stops the plugin.
    pub fn into_trap(self, context: &str) -> wasmtime::Error {
        match self {
            HostCallError::Plugin(e) => wasmtime::Error::msg(format!("{context}: {e:?}")),
            HostCallError::Trap(t) => t,
        }
    }
}

/// The result of a host function that may answer the plugin with an error.
pub type HostResult<T> = Result<T, HostCallError>;

pub use generated::deckhand::workflow::types::{
    ContainerInfo, ContainerSpec, HostError, LogLevel, PluginInfo, Revision,
};
pub use generated::deckhand::workflow::{container, job, state, types};
pub use generated::{Workflow, WorkflowPre};
