//! The container runtime: what Deckhand needs from a container engine.
//!
//! [`ContainerRuntime`] is the whole surface: images, containers, labels,
//! volumes and networks, the tail of a container's logs, and a pull that
//! streams [`PullProgress`] and can be aborted. It knows
//! nothing of WebAssembly, plugins or the journal. [`DockerRuntime`] is the
//! implementation on a real Docker daemon (the only module that imports
//! bollard); [`MemoryRuntime`] keeps everything in memory, with fault
//! injection, for tests and benchmarks of the engine alone.

mod docker;
pub mod memory;
pub mod progress;
pub mod registry_auth;
pub mod spec;

use std::collections::BTreeMap;

pub use docker::DockerRuntime;
pub use memory::MemoryRuntime;
pub use progress::{PullPhase, PullProgress, PullTracker};
pub use registry_auth::{Credential, RegistryAuth};
pub use spec::{
    HealthCheck, Mount, MountKind, NetworkAttachment, NetworkState, PortBinding, RestartPolicy,
    VolumeState,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Label every container created by Deckhand carries (`true`).
pub const LABEL_MANAGED: &str = "io.deckhand.managed";
/// Label naming the target a container belongs to.
pub const LABEL_TARGET: &str = "io.deckhand.target";
/// Label naming the job that created a container.
pub const LABEL_JOB: &str = "io.deckhand.job";
/// Label naming the stack service a container runs (only on a stack's).
pub const LABEL_SERVICE: &str = "io.deckhand.service";
/// Label of the short-lived containers the runtime itself creates (never
/// started) to reach a volume's files, naming what for (`copy-volume`).
/// They also carry [`LABEL_MANAGED`]; one that outlives its call (the
/// process was killed) may be removed by anyone.
pub const LABEL_HELPER: &str = "io.deckhand.helper";

/// The text of an underlying error (a client library's), kept as the
/// source of a [`RuntimeError`] so that logs can show it while messages for
/// people stay readable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Cause(pub String);

/// Why a runtime operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The daemon cannot be reached: not running, restarting, or the
    /// connection dropped mid-call. Transient: worth retrying.
    #[error(
        "the Docker daemon at {endpoint} is not reachable (while trying to {operation}); is it running? (DOCKER_HOST names its socket)"
    )]
    Unreachable {
        /// Where it was looked for.
        endpoint: String,
        /// What the engine was doing, in words (`stop container 2e68…`).
        operation: String,
        /// What the connection said.
        #[source]
        cause: Cause,
    },
    /// The container or image does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The operation conflicts with the current state (e.g. a name in use).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The daemon refused or failed the operation.
    #[error("{0}")]
    Daemon(String),
    /// A pull failed: the daemon's message, or the stream ended early.
    #[error("pull of {image} failed: {detail}")]
    Pull {
        /// The image.
        image: String,
        /// Why.
        detail: String,
    },
    /// The operation was aborted because the job was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The operation made no progress for too long.
    #[error("no progress for {seconds} s")]
    Stalled {
        /// How long it was idle.
        seconds: u64,
    },
}

impl RuntimeError {
    /// Whether the daemon could not be reached, so that trying again later
    /// may succeed where trying again now would not.
    pub fn is_transient(&self) -> bool {
        matches!(self, RuntimeError::Unreachable { .. })
    }
}

/// Result alias for runtime operations.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// What to create a container from.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContainerConfig {
    /// Container name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Command; `None` keeps the image's.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Network mode; `None` for the daemon's default.
    #[serde(default)]
    pub network: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Entrypoint; `None` keeps the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// User (`name`, `uid`, `uid:gid`); `None` keeps the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Working directory; `None` keeps the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Published ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortBinding>,
    /// Volumes and bind mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// User-defined networks it joins (the first at create, the others
    /// right after, before it starts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachment>,
    /// Restart policy; `None` is the daemon's default (`no`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    /// Memory limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// CPU limit in billionths of a CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nano_cpus: Option<u64>,
    /// Health check; `None` keeps the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Seconds the daemon waits after SIGTERM before killing it on stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout_s: Option<u32>,
}

/// A container as the runtime reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContainerState {
    /// Full id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Image reference it was created from.
    pub image: String,
    /// Id of the image it runs (`sha256:…`): what `image` named when it was
    /// created, whatever the name points at now. Empty in records made
    /// before it was kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_id: String,
    /// Whether its process runs.
    pub running: bool,
    /// `starting`, `healthy`, `unhealthy` when it has a health check.
    pub health: Option<String>,
    /// Exit code once exited.
    pub exit_code: Option<i64>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

impl ContainerState {
    /// The value of `key` among its labels.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// The operations Deckhand performs on a container engine.
///
/// Idempotence matters for compensation: starting a running container,
/// stopping a stopped one, and removing a missing one all succeed.
#[async_trait::async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Check the daemon answers.
    async fn ping(&self) -> Result<()>;
    /// Whether the image is in the local store.
    async fn image_present(&self, image: &str) -> Result<bool>;
    /// The id (`sha256:…`) of the image `image` names in the local store,
    /// `None` when it names none. A name can be moved to another image; an
    /// id cannot.
    async fn image_id(&self, image: &str) -> Result<Option<String>>;
    /// Where `image` would come from for a job: the local store, or its
    /// registry (asked without pulling anything), or nowhere, with the
    /// registry's reason. `Err` only when the daemon itself did not answer.
    async fn resolve_image(&self, image: &str) -> Result<ImageSource>;
    /// Pull an image, publishing progress to `progress`, aborting when
    /// `cancel` fires. Succeeds only on the daemon's final status line.
    async fn pull_image(
        &self,
        image: &str,
        progress: &watch::Sender<PullProgress>,
        cancel: &CancellationToken,
    ) -> Result<()>;
    /// Create a container; returns its id. With several `networks`, it is
    /// created on the first and connected to the others before this
    /// returns; if a connect fails, the container is removed again. Setting
    /// both `network` (a network mode) and `networks` is refused.
    async fn create_container(&self, config: &ContainerConfig) -> Result<String>;
    /// Start a container (no-op if running).
    async fn start_container(&self, id: &str) -> Result<()>;
    /// Stop a container, killing it after `timeout_s` (no-op if stopped).
    async fn stop_container(&self, id: &str, timeout_s: u32) -> Result<()>;
    /// Rename a container.
    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()>;
    /// Remove a container, stopping it first (no-op if missing).
    async fn remove_container(&self, id: &str) -> Result<()>;
    /// Remove an image reference (no-op if missing).
    async fn remove_image(&self, image: &str) -> Result<()>;
    /// Inspect a container by id or name; `None` if missing.
    async fn inspect_container(&self, id_or_name: &str) -> Result<Option<ContainerState>>;
    /// Wait until the container is not running (or gone), for at most
    /// `limit`. Returns whether it was seen not running; `false` means it
    /// still ran when the time was up. A stop that a client gave up on goes
    /// on in the daemon; this is how the engine waits it out.
    async fn wait_not_running(&self, id: &str, limit: std::time::Duration) -> Result<bool>;
    /// The end of a container's logs (stdout and stderr, interleaved as the
    /// runtime returns them), at most `max_bytes` bytes of it, cut at a
    /// character boundary (see [`log_tail_of`]). `NotFound` once the
    /// container is gone: logs go with their container.
    async fn log_tail(&self, id: &str, max_bytes: usize) -> Result<String>;
    /// Create the volume `name` with `labels`, or, when a volume of that
    /// name exists, leave it as it is. Either way returns the volume as it
    /// now is, with its own labels: a caller that put its job id in
    /// [`LABEL_JOB`] learns from the answer whether it created it (Docker's
    /// own create is idempotent this way, which leaves no race between a
    /// check and a create).
    async fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<VolumeState>;
    /// Inspect a volume; `None` if missing.
    async fn inspect_volume(&self, name: &str) -> Result<Option<VolumeState>>;
    /// Remove a volume and its content (no-op if missing). `Conflict` while
    /// any container, running or not, mounts it.
    async fn remove_volume(&self, name: &str) -> Result<()>;
    /// Create the user-defined (bridge) network `name` with `labels`, or
    /// return the existing one of that name as it is (its own labels, as
    /// for [`ContainerRuntime::create_volume`]). Never leaves two networks
    /// of one name (Docker would allow it, and then refuses to attach a
    /// container to either).
    async fn create_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<NetworkState>;
    /// Inspect a network by name or id; `None` if missing. Its
    /// `containers` are all that are attached or configured to join it,
    /// stopped ones included.
    async fn inspect_network(&self, name_or_id: &str) -> Result<Option<NetworkState>>;
    /// Remove a network (no-op if missing). `Conflict` while any container,
    /// even a stopped one, is on it: a stopped container whose network was
    /// removed can never start again.
    async fn remove_network(&self, name_or_id: &str) -> Result<()>;
    /// Make the content of volume `to` a copy of volume `from`'s: files,
    /// modes, owners, symlinks, and the root directory's mode and owner.
    /// `to` must exist and be empty (`Conflict` otherwise); `from` is only
    /// read. `helper_image` must be in the local store: Docker needs an
    /// image to create the (never started) containers through which the
    /// volumes are reached; nothing of it runs. On failure `to` may hold
    /// part of the copy: remove it.
    async fn copy_volume(&self, from: &str, to: &str, helper_image: &str) -> Result<()>;
    /// How long after an interrupted pull the daemon may still finish it and
    /// tag the image. Undoing such a pull watches for the image this long.
    fn pull_abort_grace(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// Where an image for a job would come from (see
/// [`ContainerRuntime::resolve_image`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// It is in the local store.
    Local,
    /// Its registry has it.
    Registry,
    /// Neither: the registry's answer, said once (see [`registry_reason`]).
    Unavailable(String),
}

/// A registry's error as people read it: Docker repeats the registry's
/// words (`manifest unknown: manifest unknown`); each is said once.
pub fn registry_reason(message: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in message.split(": ").map(str::trim) {
        if !part.is_empty() && !parts.contains(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

/// The last `max_bytes` bytes (at most) of `bytes`, as text: cut at the
/// start, never inside a character; invalid UTF-8 becomes `U+FFFD`.
pub fn log_tail_of(bytes: &[u8], max_bytes: usize) -> String {
    let mut start = bytes.len().saturating_sub(max_bytes);
    // Not half a character: skip the continuation bytes of one cut in two.
    while start > 0 && start < bytes.len() && bytes[start] & 0xC0 == 0x80 {
        start += 1;
    }
    let text = String::from_utf8_lossy(&bytes[start..]);
    // Replacement characters may have made it longer than the bytes were.
    let mut cut = text.len().saturating_sub(max_bytes);
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    text[cut..].to_owned()
}

/// A container's network mode, as Docker names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// `none`: no network at all.
    Isolated,
    /// `bridge` or `default`: the daemon's default bridge.
    DefaultBridge,
    /// A user-defined network, by name.
    Named(String),
    /// `host`: the machine's own network stack, loopback included.
    Host,
    /// `container:<name|id>`: another container's network stack.
    Container(String),
}

impl NetworkMode {
    /// Parse Docker's name of a network mode; `Err` says what is wrong.
    pub fn parse(mode: &str) -> std::result::Result<NetworkMode, String> {
        let valid_name = |n: &str| {
            let mut chars = n.chars();
            n.len() <= 128
                && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
                && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        };
        match mode {
            "none" => Ok(NetworkMode::Isolated),
            "bridge" | "default" => Ok(NetworkMode::DefaultBridge),
            "host" => Ok(NetworkMode::Host),
            m => match m.strip_prefix("container:") {
                Some(other) if valid_name(other) => Ok(NetworkMode::Container(other.to_owned())),
                Some(_) => Err(format!("`{m}` names no container")),
                None if valid_name(m) => Ok(NetworkMode::Named(m.to_owned())),
                None => Err(format!(
                    "`{}` is not a network mode: use none, bridge, or a network name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 128 characters)",
                    m.chars().take(64).collect::<String>()
                )),
            },
        }
    }

    /// Whether the container would share a network stack it does not own
    /// (the host's, reaching every loopback service, or another
    /// container's): allowed only when the operator says so.
    pub fn shares_a_foreign_stack(&self) -> bool {
        matches!(self, NetworkMode::Host | NetworkMode::Container(_))
    }
}

/// Check a network mode a job asks for: well formed, and sharing the host's
/// or another container's network only when `allow_shared` (the operator's
/// `DECKHAND_ALLOW_HOST_NETWORK`).
pub fn check_network_mode(mode: &str, allow_shared: bool) -> std::result::Result<(), String> {
    let parsed = NetworkMode::parse(mode)?;
    if parsed.shares_a_foreign_stack() && !allow_shared {
        return Err(format!(
            "network mode `{mode}` shares a network stack the job does not own (the host's loopback services, or another container's); this server does not allow it (DECKHAND_ALLOW_HOST_NETWORK=1 does)"
        ));
    }
    Ok(())
}

/// `image` with `:latest` added when it names neither a tag nor a digest.
pub fn with_default_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes_that_share_a_foreign_stack_need_the_operators_consent() {
        assert!(check_network_mode("none", false).is_ok());
        assert!(check_network_mode("bridge", false).is_ok());
        assert!(check_network_mode("appnet", false).is_ok());
        let host = check_network_mode("host", false).unwrap_err();
        assert!(host.contains("DECKHAND_ALLOW_HOST_NETWORK"), "{host}");
        assert!(check_network_mode("container:deckhand-other", false).is_err());
        assert!(check_network_mode("host", true).is_ok());
        assert!(check_network_mode("container:deckhand-other", true).is_ok());
        assert!(check_network_mode("", true).is_err());
        assert!(check_network_mode("a b", true).is_err());
        assert!(check_network_mode(&"n".repeat(200), true).is_err());
        assert!(check_network_mode("container:", true).is_err());
    }

    #[test]
    fn a_log_tail_keeps_the_end_and_whole_characters() {
        assert_eq!(log_tail_of(b"abc\ndef\n", 100), "abc\ndef\n");
        assert_eq!(log_tail_of(b"abc\ndef\n", 4), "def\n");
        assert_eq!(log_tail_of(b"", 4), "");
        assert_eq!(log_tail_of(b"abc", 0), "");
        // `é` is two bytes: a cut through it drops it whole.
        assert_eq!(log_tail_of("aéb".as_bytes(), 2), "b");
        assert_eq!(log_tail_of("aéb".as_bytes(), 3), "éb");
        // Invalid bytes are replaced, and the bound still holds.
        let t = log_tail_of(b"\xff\xff\xffz", 4);
        assert!(t.len() <= 4 && t.ends_with('z'), "{t:?}");
    }

    #[test]
    fn a_registry_reason_says_each_of_its_words_once() {
        assert_eq!(
            registry_reason("manifest unknown: manifest unknown"),
            "manifest unknown"
        );
        assert_eq!(
            registry_reason(
                "manifest for r:5000/x:1 not found: manifest unknown: manifest unknown"
            ),
            "manifest for r:5000/x:1 not found: manifest unknown"
        );
        assert_eq!(registry_reason("unauthorized"), "unauthorized");
    }

    #[test]
    fn default_tag_is_added_only_when_missing() {
        assert_eq!(with_default_tag("busybox"), "busybox:latest");
        assert_eq!(
            with_default_tag("127.0.0.1:5000/app"),
            "127.0.0.1:5000/app:latest"
        );
        assert_eq!(
            with_default_tag("127.0.0.1:5000/app:2"),
            "127.0.0.1:5000/app:2"
        );
        assert_eq!(with_default_tag("app@sha256:ab"), "app@sha256:ab");
    }
}
