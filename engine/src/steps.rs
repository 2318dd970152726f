//! What a step is: the typed calls, compensations and deferred effects that
//! the journal stores as JSON.
//!
//! The plugin host writes them (an [`Call`] with its [`Compensation`] before
//! the effect, a [`Deferred`] for what waits until commit); the executor reads
//! them back to roll back, commit or recover; replay compares them. Every
//! compensation and deferred effect is idempotent: running it twice is
//! harmless, which is what makes recovery after a crash safe.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::runtime::ContainerConfig;

/// A host call a plugin made, as journaled in an intent. Reads are
/// journaled too (without undo): replay answers every call from the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Call {
    /// Pull an image.
    PullImage {
        /// Image reference.
        image: String,
        /// Whether it was in the local store before the pull.
        present_before: bool,
    },
    /// Create a container.
    CreateContainer {
        /// What it is created from (labels included).
        config: ContainerConfig,
    },
    /// Start a container.
    StartContainer {
        /// Container id.
        id: String,
    },
    /// Stop a container.
    StopContainer {
        /// Container id.
        id: String,
        /// Seconds before it is killed.
        timeout_s: u32,
        /// Whether it was running before.
        was_running: bool,
    },
    /// Rename a container.
    RenameContainer {
        /// Container id.
        id: String,
        /// Its name before.
        from: String,
        /// Its new name.
        to: String,
    },
    /// Remove a container the job created.
    RemoveContainer {
        /// Container id.
        id: String,
    },
    /// Read: whether an image is present.
    ImagePresent {
        /// Image reference.
        image: String,
    },
    /// Read: a container's state.
    InspectContainer {
        /// Container id or name.
        id: String,
    },
    /// Read: the target's current revision, or revision `number`.
    ReadRevision {
        /// A revision number; `None` for the current one.
        number: Option<u64>,
    },
    /// Read: the highest revision number the target ever had.
    ReadLastRevisionNumber,
    /// Read: whether a cancel was requested.
    ReadCancelRequested,
    /// Read: whether an image is the target's to remove (one of its
    /// revisions runs it, or this job pulled it when it was absent).
    ReadImageOwned {
        /// Image reference.
        image: String,
    },
    /// Register a compensation of the plugin's own (no effect now).
    RegisterCompensation {
        /// The plugin's name for it.
        action: String,
    },
    /// Read the clock.
    Now,
    /// Draw a random number.
    Random,
    /// Wait until a container runs (and is healthy).
    WaitHealthy {
        /// Container id.
        id: String,
        /// Seconds allowed.
        timeout_s: u32,
    },
    /// Wait until a container has exited; the result is its exit code.
    WaitExited {
        /// Container id.
        id: String,
        /// Seconds allowed.
        timeout_s: u32,
    },
    /// Create a volume of the target unless one of that name exists; the
    /// result says whether this call created it.
    EnsureVolume {
        /// Docker name.
        name: String,
        /// The labels it is created with (the job's among them).
        labels: BTreeMap<String, String>,
    },
    /// Create volume `to` (labelled) and copy volume `from`'s content into it.
    SnapshotVolume {
        /// Docker name of the original.
        from: String,
        /// Docker name of the copy.
        to: String,
        /// The labels the copy is created with.
        labels: BTreeMap<String, String>,
        /// The image the copying helper containers are created from.
        helper_image: String,
    },
    /// Read: the target's volumes the engine created.
    ListVolumes,
    /// Read: whether a volume is one the engine created for the target.
    ReadVolumeOwned {
        /// Docker name.
        name: String,
    },
    /// Read: the id of the image a name points at here (`null`: absent).
    ImageId {
        /// Image reference.
        image: String,
    },
    /// Read: whether a volume shared beyond the target exists, and which
    /// target the engine created it for, if any.
    ReadNamedVolume {
        /// Docker name.
        name: String,
    },
    /// Read: whether a network is one the engine created for the target.
    ReadNetworkOwned {
        /// Network name.
        name: String,
    },
    /// Read: who else holds the name `<target>-<service>` that a stack
    /// service's container would be named after (another target, or
    /// another target's service); `null` when nobody does.
    ReadNameHolder {
        /// The name, without `deckhand-`.
        name: String,
    },
    /// Create a network unless one of that name exists; the result is its
    /// id and whether this call created it.
    EnsureNetwork {
        /// Network name.
        name: String,
        /// The labels it is created with (the job's among them).
        labels: BTreeMap<String, String>,
    },
}

impl Call {
    /// Whether the call only reads (or draws a value) and changes nothing:
    /// it is journaled after it ran, intent and result in one write.
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Call::ImagePresent { .. }
                | Call::ImageId { .. }
                | Call::InspectContainer { .. }
                | Call::ReadRevision { .. }
                | Call::ReadLastRevisionNumber
                | Call::ReadCancelRequested
                | Call::ReadImageOwned { .. }
                | Call::ListVolumes
                | Call::ReadVolumeOwned { .. }
                | Call::ReadNamedVolume { .. }
                | Call::ReadNetworkOwned { .. }
                | Call::ReadNameHolder { .. }
                | Call::Now
                | Call::Random
        )
    }

    /// The phase a job is in while this call runs.
    pub fn phase(&self) -> &'static str {
        match self {
            Call::PullImage { .. } => "pulling",
            Call::CreateContainer { .. } => "creating",
            Call::StartContainer { .. } => "starting",
            Call::StopContainer { .. } => "stopping",
            Call::RenameContainer { .. } => "renaming",
            Call::RemoveContainer { .. } => "removing",
            Call::WaitHealthy { .. } => "waiting_healthy",
            Call::WaitExited { .. } => "waiting_exited",
            Call::RegisterCompensation { .. } => "registering",
            Call::EnsureVolume { .. } | Call::EnsureNetwork { .. } => "preparing",
            Call::SnapshotVolume { .. } => "snapshotting",
            Call::Now
            | Call::Random
            | Call::ImagePresent { .. }
            | Call::ImageId { .. }
            | Call::InspectContainer { .. }
            | Call::ReadRevision { .. }
            | Call::ReadLastRevisionNumber
            | Call::ReadCancelRequested
            | Call::ReadImageOwned { .. }
            | Call::ListVolumes
            | Call::ReadVolumeOwned { .. }
            | Call::ReadNamedVolume { .. }
            | Call::ReadNetworkOwned { .. }
            | Call::ReadNameHolder { .. } => "running",
        }
    }
}

/// How to undo a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Compensation {
    /// Remove an image the job pulled (it was absent before).
    RemoveImage {
        /// Image reference.
        image: String,
    },
    /// Remove the container called `name` if it carries `job`'s label.
    /// By name and label because the id is unknown until create returns.
    RemoveCreatedContainer {
        /// Container name.
        name: String,
        /// The job that created it.
        job: String,
    },
    /// Stop a container the step started.
    StopContainer {
        /// Container id.
        id: String,
    },
    /// Start a container the step stopped.
    StartContainer {
        /// Container id.
        id: String,
    },
    /// Rename a container back.
    RenameContainer {
        /// Container id.
        id: String,
        /// The name to give it back.
        to: String,
    },
    /// Remove the volume called `name` if it carries `job`'s label (the
    /// job created it) and no container uses it.
    RemoveCreatedVolume {
        /// Docker name.
        name: String,
        /// The job that created it.
        job: String,
    },
    /// Remove the network called `name` if it carries `job`'s label and
    /// no container is on it.
    RemoveCreatedNetwork {
        /// Network name.
        name: String,
        /// The job that created it.
        job: String,
    },
    /// Call the plugin's `compensate` export with these arguments.
    Plugin {
        /// The plugin's name for the compensation.
        action: String,
        /// Its data.
        data: String,
    },
}

/// An effect that waits until the job commits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Deferred {
    /// Make this the target's current revision.
    CommitRevision {
        /// Revision number.
        revision: u64,
        /// Image reference.
        image: String,
        /// Container id.
        container_id: String,
        /// Container spec (a stack's: the stack's).
        spec: Value,
        /// A stack's services; empty for one container.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        services: Vec<crate::journal::ServiceRecord>,
    },
    /// Remove a container of the target (the prior revision's).
    RemoveContainer {
        /// Container id.
        id: String,
    },
    /// Remove an image if the engine pulled it and no target uses it.
    RemoveImage {
        /// Image reference.
        image: String,
    },
    /// Remove every container the engine created for the target that is
    /// still there, then clear its current revision (teardown).
    DeleteTarget,
    /// Remove a volume the engine created for the target.
    RemoveVolume {
        /// Docker name.
        name: String,
    },
    /// Remove a network the engine created, if no container is on it.
    RemoveNetwork {
        /// Network name.
        name: String,
    },
}

/// The journal's name for a container the engine owns (see
/// [`crate::journal::OwnedResource`]); its id is the container's id.
pub const RESOURCE_CONTAINER: &str = "container";
/// The journal's name for a volume the engine created; its id and name are
/// its Docker name.
pub const RESOURCE_VOLUME: &str = "volume";
/// The journal's name for a network the engine created; its id is the
/// network's id, its name the network's name.
pub const RESOURCE_NETWORK: &str = "network";
/// The journal's name for an image the engine brought onto the machine; its
/// id is the image id, its name the reference it was pulled as.
pub const RESOURCE_IMAGE: &str = "image";

/// The `op` a journaled step type carries (`stop_container`, …).
pub fn op_of<T: Serialize>(t: &T) -> String {
    to_value(t)
        .get("op")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Encode a step type for the journal.
pub fn to_value<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).expect("step types serialize")
}
