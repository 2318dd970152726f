//! The parts of a container's configuration beyond image, env and command
//! — published ports, mounts, network attachments, restart policy, limits,
//! health check — as the runtime takes them. They are already checked (the
//! params contract, `deckhand-params`, parses people's syntax into them);
//! the runtime only maps them to the daemon's API. Every field is journaled
//! inside a create call, so each serializes only when set: a call without
//! them reads exactly as it did before they existed.

use serde::{Deserialize, Serialize};

/// A published port (`-p [ip:][host_port:]container_port[/protocol]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    /// Host address to bind, all addresses when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Host port; absent lets the daemon pick one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// Port inside the container.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

/// What a mount mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountKind {
    /// A Docker volume, by its Docker name.
    Volume,
    /// A host path (only when the server allows bind mounts).
    Bind,
}

/// A volume or host path mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Volume or bind.
    pub kind: MountKind,
    /// The Docker volume name, or the absolute host path.
    pub source: String,
    /// Absolute path inside the container.
    pub target: String,
    /// Mounted read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// A user-defined network the container joins, and the names it answers to
/// there besides its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// Docker network name.
    pub name: String,
    /// Extra DNS names on that network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// When the daemon restarts the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never.
    No,
    /// Whenever it stops, also after a daemon restart.
    Always,
    /// Like `always`, unless it was stopped on purpose.
    UnlessStopped,
    /// When it exits non-zero, at most `max_retries` times when given.
    OnFailure {
        /// Retries before giving up.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_retries: Option<u32>,
    },
}

/// A health check run by the daemon inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Compose/Docker form: `["CMD", prog, args…]`, `["CMD-SHELL", "…"]`
    /// or `["NONE"]` (turn the image's check off).
    pub test: Vec<String>,
    /// Between checks, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// One check's time limit, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Failures in a row that make it unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Grace after start during which failures do not count, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period_ms: Option<u64>,
}

/// A Docker volume as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeState {
    /// Docker name.
    pub name: String,
    /// Its labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A Docker network as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkState {
    /// Full id.
    pub id: String,
    /// Docker name.
    pub name: String,
    /// Its labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Ids of the containers attached to it now.
    #[serde(default)]
    pub containers: Vec<String>,
}
