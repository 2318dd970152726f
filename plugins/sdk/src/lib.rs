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
/// Container operations on the job's target (journaled, undone on rollback).
pub use bindings::deckhand::workflow::container;
/// The job this instance runs: id, target, params, phase, log, cancel flag.
pub use bindings::deckhand::workflow::job;
/// User-defined networks (journaled, undone on rollback).
pub use bindings::deckhand::workflow::network;
/// The target's committed state: current revision, recording the new one.
pub use bindings::deckhand::workflow::state;
pub use bindings::deckhand::workflow::types::{
    ContainerInfo, ContainerSpec, HostError, ImagePull, LogLevel, PluginInfo, Revision,
    ServiceRevision,
};
/// The target's volumes (journaled, undone on rollback).
pub use bindings::deckhand::workflow::volume;
/// Export a type implementing [`Workflow`] as the component's `workflow` world.
pub use bindings::export;

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
    Err(format!(
        "this workflow registers no compensations, but was asked to run `{action}`"
    ))
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
pub use deckhand_params::{
    Condition, Health, NetworkSpec, Permissions, PortSpec, RestartSpec, Rollback, Service, Spec,
    Stack, StackParams, Strategy, Teardown, VolumeSource, VolumeSpec, is_stack_params,
};

pub mod stack;

/// What a spec's container needs made available before it is created: the
/// Docker name of each named volume, by the name the spec gives it.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// Logical volume name → Docker name.
    pub volumes: std::collections::BTreeMap<String, String>,
    /// The logical names whose volume this job created (empty, new).
    pub created: std::collections::BTreeSet<String>,
}

/// Make the named volumes and the networks `spec` names available. A
/// volume the target has is its newest (a snapshotting upgrade leaves a
/// copy as the current one, `volume.list-volumes`); another is
/// `volume.ensure-volume`d (created when absent, undone on rollback; one
/// that exists is used as it is); each network is `network.ensure-network`ed.
/// A spec that names none makes no call.
pub fn prepare(spec: &Spec) -> Result<Prepared, String> {
    let mut prepared = Prepared::default();
    let named: Vec<String> = spec
        .volume_specs()?
        .into_iter()
        .filter_map(|v| match v.source {
            VolumeSource::Named(name) => Some(name),
            VolumeSource::Bind(_) => None,
        })
        .collect();
    if !named.is_empty() {
        let existing = volume::list_volumes()?;
        for name in named {
            if prepared.volumes.contains_key(&name) {
                continue;
            }
            match existing.iter().rev().find(|v| v.name == name) {
                Some(v) => {
                    prepared.volumes.insert(name, v.docker_name.clone());
                }
                None => {
                    let info = volume::ensure_volume(&name)?;
                    if info.created {
                        prepared.created.insert(name.clone());
                    }
                    prepared.volumes.insert(name, info.docker_name);
                }
            }
        }
    }
    for n in spec.network_specs()? {
        network::ensure_network(&n.name)?;
    }
    Ok(prepared)
}

/// What a [`Spec`] means to the host: the container it describes, and the
/// spec a revision stored.
pub trait SpecExt: Sized {
    /// The container spec for a container called `name` running this spec,
    /// its volumes and networks made available first ([`prepare`]).
    fn container(&self, name: String) -> Result<ContainerSpec, String>;
    /// The container spec for a container called `name` running this spec,
    /// mounting the volumes `prepared` names.
    fn container_on(&self, name: String, prepared: &Prepared) -> Result<ContainerSpec, String>;
    /// The spec a revision stores.
    fn of_revision(rev: &Revision) -> Result<Self, String>;
}

impl SpecExt for Spec {
    fn container(&self, name: String) -> Result<ContainerSpec, String> {
        self.container_on(name, &prepare(self)?)
    }

    fn container_on(&self, name: String, prepared: &Prepared) -> Result<ContainerSpec, String> {
        use bindings::deckhand::workflow::types as t;
        let mounts = self
            .volume_specs()?
            .into_iter()
            .map(|v| {
                let (kind, source) = match v.source {
                    VolumeSource::Named(n) => {
                        let docker = prepared
                            .volumes
                            .get(&n)
                            .ok_or_else(|| format!("volume `{n}` was not prepared"))?;
                        (t::MountKind::Volume, docker.clone())
                    }
                    VolumeSource::Bind(path) => (t::MountKind::Bind, path),
                };
                Ok(t::Mount {
                    kind,
                    source,
                    target: v.target,
                    read_only: v.read_only,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let restart = self.restart_spec()?.map(|r| match r.policy {
            deckhand_params::RestartPolicy::No => t::RestartPolicy::No,
            deckhand_params::RestartPolicy::Always => t::RestartPolicy::Always,
            deckhand_params::RestartPolicy::UnlessStopped => t::RestartPolicy::UnlessStopped,
            deckhand_params::RestartPolicy::OnFailure => t::RestartPolicy::OnFailure(r.max_retries),
        });
        let ms = |s: Option<u32>| s.map(|s| u64::from(s) * 1000);
        // Without a command the image's own check runs, with the timings
        // given (an empty test inherits it).
        let health_check = self.health.as_ref().and_then(|h| {
            let timed = h.interval_s.is_some()
                || h.probe_timeout_s.is_some()
                || h.retries.is_some()
                || h.start_period_s.is_some();
            (h.cmd.is_some() || timed).then(|| t::HealthCheck {
                test: h.cmd.clone().unwrap_or_default(),
                interval_ms: ms(h.interval_s),
                timeout_ms: ms(h.probe_timeout_s),
                retries: h.retries,
                start_period_ms: ms(h.start_period_s),
            })
        });
        Ok(ContainerSpec {
            env: self
                .env
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            cmd: self.cmd.clone(),
            network: self.network.clone(),
            entrypoint: self.entrypoint.clone(),
            user: self.user.clone(),
            workdir: self.workdir.clone(),
            labels: self.user_labels()?.into_iter().collect(),
            ports: self
                .port_specs()?
                .into_iter()
                .map(|p| t::PortBinding {
                    host_ip: p.host_ip,
                    host_port: p.host_port,
                    container_port: p.container_port,
                    protocol: p.protocol,
                })
                .collect(),
            mounts,
            networks: self
                .network_specs()?
                .into_iter()
                .map(|n| t::NetworkAttachment {
                    name: n.name,
                    aliases: n.aliases,
                })
                .collect(),
            restart,
            memory_bytes: self.memory_bytes()?,
            nano_cpus: self.nano_cpus()?,
            health_check,
            stop_timeout_s: self.stop_timeout_s,
            ..container_spec(name, self.require_image()?.to_owned())
        })
    }

    fn of_revision(rev: &Revision) -> Result<Spec, String> {
        let mut spec: Spec = serde_json::from_str(&rev.spec)
            .map_err(|e| format!("revision {} has an unreadable spec: {e}", rev.number))?;
        spec.image = Some(rev.image.clone());
        Ok(spec)
    }
}

/// A container spec for `name` running `image` with nothing else set (the
/// image's defaults); set the fields you need with struct update syntax:
/// `ContainerSpec { env, ..deckhand_sdk::container_spec(name, image) }`.
pub fn container_spec(name: String, image: String) -> ContainerSpec {
    ContainerSpec {
        name,
        image,
        env: Vec::new(),
        cmd: None,
        network: None,
        entrypoint: None,
        user: None,
        workdir: None,
        labels: Vec::new(),
        ports: Vec::new(),
        mounts: Vec::new(),
        networks: Vec::new(),
        restart: None,
        memory_bytes: None,
        nano_cpus: None,
        health_check: None,
        stop_timeout_s: None,
    }
}

/// The live container's name for `target`: `deckhand-<target>`.
pub fn live_name(target: &str) -> String {
    format!("deckhand-{target}")
}

/// Building blocks the built-in workflows are made of, for plugin authors too.
pub mod recipes {
    use super::{Revision, Spec, SpecExt, container, job, live_name, prepare, state, volume};

    /// Replace the target's running revision `current` with a container
    /// running `spec`, atomically (with `strategy: start-first`, the new one
    /// is started and healthy before the old one stops; with
    /// `snapshot_volumes`, it runs on copies of the shared volumes made
    /// while the old one is stopped): volumes and networks → pull → create under a temporary name →
    /// stop the old one → swap names → start the new one → wait healthy →
    /// record the revision; the old container (and its image, if the engine
    /// pulled it and nothing else uses it) is removed only at commit. If any
    /// step fails, the host's rollback restores the old container, with the
    /// same id, running under its name. Returns the new revision number.
    pub fn replace(current: &Revision, spec: &Spec) -> Result<u64, String> {
        let target = job::target();
        let image = spec.require_image()?.to_owned();
        let live = live_name(&target);

        // The old container stops with the grace its own spec gave it.
        let old_stop_s = Spec::of_revision(current)
            .ok()
            .and_then(|s| s.stop_timeout_s)
            .unwrap_or(10);
        // Volumes and networks first: a cancel during the pull undoes them.
        let mut prepared = prepare(spec)?;
        container::pull_image(&image)?;
        // With `snapshot_volumes`, the new container runs on copies of the
        // volumes it shares with the old one, made while the old one is
        // stopped; the originals stay as they are until the job commits, so
        // a rollback finds the old container's data untouched.
        let shared: Vec<(String, String)> = prepared
            .volumes
            .iter()
            .filter(|(name, _)| !prepared.created.contains(*name))
            .map(|(n, d)| (n.clone(), d.clone()))
            .collect();
        let snapshotting = spec.snapshot_volumes == Some(true) && !shared.is_empty();
        let mut originals = Vec::new();
        let mut old = None;
        if snapshotting {
            old = container::inspect_container(&current.container_id)?;
            if let Some(old) = &old
                && old.running
            {
                container::stop_container(&old.id, old_stop_s)?;
            }
            for (name, docker_name) in shared {
                let copy = volume::snapshot_volume(&name, &docker_name)?;
                prepared.volumes.insert(name, copy.docker_name);
                originals.push(docker_name);
            }
        }
        let next =
            container::create_container(&spec.container_on(format!("{live}-Next"), &prepared)?)?;
        let timeout = spec.health.clone().unwrap_or_default().timeout();
        // `start-first`: the old container serves until the new one is
        // healthy (no fixed host port: both may listen at once).
        let start_first = spec.strategy() == super::Strategy::StartFirst && !snapshotting;
        if start_first {
            container::start_container(&next)?;
            container::wait_healthy(&next, timeout)?;
        }
        if !snapshotting {
            old = container::inspect_container(&current.container_id)?;
        }
        if let Some(old) = &old {
            if old.running && !snapshotting {
                container::stop_container(&old.id, old_stop_s)?;
            }
            container::rename_container(&old.id, &format!("{live}-Prev"))?;
        }
        container::rename_container(&next, &live)?;
        if !start_first {
            container::start_container(&next)?;
            container::wait_healthy(&next, timeout)?;
        }
        let revision = state::record_revision(&image, &next, &spec.to_json())?;
        if let Some(old) = &old {
            container::remove_container_at_commit(&old.id)?;
        }
        if current.image != image {
            container::remove_image_at_commit(&current.image)?;
        }
        // The originals the engine made go at commit; one that was there
        // before the engine stays (it is not the engine's to remove).
        for original in originals {
            match volume::remove_volume_at_commit(&original) {
                Ok(()) | Err(super::HostError::Denied(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(revision)
    }
}
