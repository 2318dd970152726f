//! Write Deckhand workflow plugins in Rust.
//!
//! A workflow is a WebAssembly component built for `wasm32-wasip2` that
//! implements [`Workflow`] and exports it with [`export!`]. It reaches the
//! world only through the host interfaces re-exported here ([`container`],
//! [`job`], [`state`]); the host journals every call that changes something,
//! with its undo, before it happens, and rolls the job back if `run` returns
//! an error, the job is cancelled or the engine crashes before commit.
//!
//! ```ignore
//! use deckhand_sdk::{container, export, job, PluginInfo, Workflow};
//!
//! struct Hello;
//! impl Workflow for Hello {
//!     fn describe() -> PluginInfo {
//!         deckhand_sdk::info("hello", "pulls the image named in params")
//!     }
//!     fn run() -> Result<String, String> {
//!         let p: deckhand_sdk::Spec = deckhand_sdk::params()?;
//!         container::pull_image(p.image.as_deref().unwrap_or("busybox"))?;
//!         Ok(format!("pulled for {}", job::target()))
//!     }
//!     fn compensate(action: String, data: String) -> Result<(), String> {
//!         deckhand_sdk::no_compensations(&action, &data)
//!     }
//! }
//! export!(Hello);
//! ```
//!
//! The contract itself, with every function documented, is `wit/deckhand.wit`.

#![deny(missing_docs)]

use serde::de::DeserializeOwned;

/// Bindings generated from `wit/deckhand.wit`; use the re-exports instead.
#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "workflow",
        default_bindings_module: "deckhand_sdk::bindings",
        pub_export_macro: true,
        export_macro_name: "export",
    });
}

pub use bindings::Guest as Workflow;
/// Export a type implementing [`Workflow`] as the component's `workflow` world.
pub use bindings::export;
pub use bindings::deckhand::workflow::types::{
    ContainerInfo, ContainerSpec, HostError, LogLevel, PluginInfo, Revision,
};
/// Container operations on the job's target (journaled, undone on rollback).
pub use bindings::deckhand::workflow::container;
/// The job this instance runs: id, target, params, phase, log, cancel flag.
pub use bindings::deckhand::workflow::job;
/// The target's committed state: current revision, recording the new one.
pub use bindings::deckhand::workflow::state;

/// A one-line description of a host error, for job errors and logs.
/// (The generated `Display` prints the variant's debug form.)
pub fn describe(e: &HostError) -> String {
    match e {
        HostError::Runtime(m) => format!("container runtime: {m}"),
        HostError::Cancelled => "cancelled".to_owned(),
        HostError::Denied(m) => format!("denied: {m}"),
        HostError::Invalid(m) => format!("invalid argument: {m}"),
        HostError::NotFound(m) => format!("not found: {m}"),
        HostError::TimedOut(m) => format!("timed out: {m}"),
    }
}

impl From<HostError> for String {
    fn from(e: HostError) -> String {
        describe(&e)
    }
}

/// The `compensate` export of a workflow that registers no compensation of
/// its own: `fn compensate(a: String, d: String) -> Result<(), String> { deckhand_sdk::no_compensations(&a, &d) }`.
pub fn no_compensations(action: &str, _data: &str) -> Result<(), String> {
    Err(format!("this workflow registers no compensations, but was asked to run `{action}`"))
}

/// Build a [`PluginInfo`] with this crate's version.
pub fn info(name: &str, description: &str) -> PluginInfo {
    PluginInfo {
        name: name.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        description: description.to_owned(),
    }
}

/// The job's params, deserialized; an error message names what is wrong.
pub fn params<T: DeserializeOwned>() -> Result<T, String> {
    serde_json::from_str(&job::params()).map_err(|e| format!("invalid params: {e}"))
}

/// Write an info line to the job's log.
pub fn log(message: &str) {
    job::log(LogLevel::Info, message);
}

/// The params contract of the built-in workflows (the engine checks the
/// same types before a job exists).
pub use deckhand_params::{Health, Rollback, Spec, Teardown};

/// What a [`Spec`] means to the host: the container it describes, and the
/// spec a revision stored.
pub trait SpecExt: Sized {
    /// The container spec for a container called `name` running this spec.
    fn container(&self, name: String) -> Result<ContainerSpec, String>;
    /// The spec a revision stores.
    fn of_revision(rev: &Revision) -> Result<Self, String>;
}

impl SpecExt for Spec {
    fn container(&self, name: String) -> Result<ContainerSpec, String> {
        Ok(ContainerSpec {
            name,
            image: self.require_image()?.to_owned(),
            env: self.env.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect(),
            cmd: self.cmd.clone(),
            network: self.network.clone(),
        })
    }

    fn of_revision(rev: &Revision) -> Result<Spec, String> {
        let mut spec: Spec = serde_json::from_str(&rev.spec).map_err(|e| format!("revision {} has an unreadable spec: {e}", rev.number))?;
        spec.image = Some(rev.image.clone());
        Ok(spec)
    }
}

/// The live container's name for `target`: `deckhand-<target>`.
pub fn live_name(target: &str) -> String {
    format!("deckhand-{target}")
}

/// Building blocks the built-in workflows are made of, for plugin authors too.
pub mod recipes {
    use super::{Revision, Spec, SpecExt, container, job, live_name, state};

    /// Replace the target's running revision `current` with a container
    /// running `spec`, atomically: pull → create under a temporary name →
    /// stop the old one → swap names → start the new one → wait healthy →
    /// record the revision; the old container (and its image, if the engine
    /// pulled it and nothing else uses it) is removed only at commit. If any
    /// step fails, the host's rollback restores the old container, with the
    /// same id, running under its name. Returns the new revision number.
    pub fn replace(current: &Revision, spec: &Spec) -> Result<u64, String> {
        let target = job::target();
        let image = spec.require_image()?.to_owned();
        let live = live_name(&target);

        container::pull_image(&image)?;
        let next = container::create_container(&spec.container(format!("{live}-Next"))?)?;
        let old = container::inspect_container(&current.container_id)?;
        if let Some(old) = &old {
            if old.running {
                container::stop_container(&old.id, 10)?;
            }
            container::rename_container(&old.id, &format!("{live}-Prev"))?;
        }
        container::rename_container(&next, &live)?;
        container::start_container(&next)?;
        container::wait_healthy(&next, spec.health.clone().unwrap_or_default().timeout())?;
        let revision = state::record_revision(&image, &next, &spec.to_json())?;
        if let Some(old) = &old {
            container::remove_container_at_commit(&old.id)?;
        }
        if current.image != image {
            container::remove_image_at_commit(&current.image)?;
        }
        Ok(revision)
    }
}
