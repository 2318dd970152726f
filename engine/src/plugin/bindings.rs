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
    });
}

pub use generated::deckhand::workflow::types::{
    ContainerInfo, ContainerSpec, HostError, LogLevel, PluginInfo, Revision,
};
pub use generated::deckhand::workflow::{container, job, state, types};
pub use generated::{Workflow, WorkflowPre};
