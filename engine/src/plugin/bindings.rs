//! The only `bindgen!`s over `wit/`: host-side types and traits of the
//! `deckhand:workflow` world, version 0.2.2 (`wit/`, which 0.2.0 and 0.2.1 plugins also link against) and the frozen 0.1.0
//! (`wit/v0.1.0/`) that older plugins were built against, each sealed in a
//! private module. Everything else in the crate uses the re-exports below;
//! the 0.1.0 types only reach [`super::v1`], which adapts them.

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

/// The 0.1.0 world. Its host functions answer the same [`HostCallError`]
/// (with a 0.2.2 `host-error`, which has the same cases), so an adapter
/// only converts records.
pub(super) mod v1 {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../wit/v0.1.0",
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
    ContainerInfo, ContainerSpec, HostError, ImagePull, LogLevel, MountKind, NetworkInfo,
    PluginInfo, RestartPolicy, Revision, ServiceRevision, VolumeInfo,
};
pub use generated::deckhand::workflow::{container, job, network, state, types, volume};
pub use generated::{Workflow, WorkflowPre};
