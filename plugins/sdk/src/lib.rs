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

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

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

/// Health-check settings of the built-in workflows' params.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Seconds to wait for the container to be running (and healthy, when the
    /// image has a health check) before the job fails. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
}

impl Health {
    /// The timeout to use.
    pub fn timeout(&self) -> u32 {
        self.timeout_s.unwrap_or(30)
    }
}

/// The container spec of the built-in workflows' params and of a revision.
/// In an upgrade, unset fields keep the current revision's value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Image reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Command and arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Network mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Health-check settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

impl Spec {
    /// Fields set in `self` win; the others come from `base`.
    pub fn over(self, base: &Spec) -> Spec {
        Spec {
            image: self.image.or_else(|| base.image.clone()),
            env: self.env.or_else(|| base.env.clone()),
            cmd: self.cmd.or_else(|| base.cmd.clone()),
            network: self.network.or_else(|| base.network.clone()),
            health: self.health.or_else(|| base.health.clone()),
        }
    }

    /// The image, or an error saying it is required.
    pub fn require_image(&self) -> Result<&str, String> {
        self.image.as_deref().filter(|i| !i.is_empty()).ok_or_else(|| "invalid params: `image` is required".to_owned())
    }

    /// The container spec for a container called `name` running this spec.
    pub fn container(&self, name: String) -> Result<ContainerSpec, String> {
        Ok(ContainerSpec {
            name,
            image: self.require_image()?.to_owned(),
            env: self.env.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect(),
            cmd: self.cmd.clone(),
            network: self.network.clone(),
        })
    }

    /// This spec as the JSON a revision stores.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("spec serializes")
    }

    /// The spec a revision stores.
    pub fn of_revision(rev: &Revision) -> Result<Spec, String> {
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
    use super::{Revision, Spec, container, job, live_name, state};

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
