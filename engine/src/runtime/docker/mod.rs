//! [`ContainerRuntime`] on a real Docker daemon, through bollard: the
//! [`DockerRuntime`] type, its connection, the mapping of bollard's errors
//! to [`RuntimeError`]s, and the trait's implementation, which hands each
//! operation to the module of its concern:
//!
//! - `create`: the mapping of a [`ContainerConfig`] to the daemon's create
//!   request ([`create_body`](create::create_body), pure);
//! - `containers`: creating (and joining the other networks), starting,
//!   stopping, renaming, removing, inspecting and waiting for containers,
//!   and the tail of their logs;
//! - `images`: the local store, registry lookups, and pulls with the
//!   credentials of a [`RegistryAuth`];
//! - `volumes`: creating, inspecting and removing volumes;
//! - `networks`: creating (never two of one name), inspecting and removing
//!   networks;
//! - `copy`: copying a volume through the archive API.
//!
//! The daemons this runs against may speak API 1.41 (every request goes
//! unversioned, see `connect_to`), so: one network at create and the others
//! connected after, no `CheckDuplicate` on network create, and the
//! `X-Registry-Auth` header re-encoded URL-safe.

mod containers;
mod copy;
mod create;
mod images;
mod networks;
mod volumes;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::registry_auth::{RegistryAuth, url_safe_registry_auth};
use super::{
    Cause, ContainerConfig, ContainerRuntime, ContainerState, ImageSource, NetworkState,
    PullProgress, Result, RuntimeError, VolumeState,
};

/// A Docker daemon, found through `DOCKER_HOST` or the default socket.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    endpoint: String,
    /// Credentials for pulls and registry lookups (its `Debug` shows no
    /// secret).
    auth: Arc<RegistryAuth>,
    /// One lock per network name being created, shared by clones: creation
    /// is a list-then-create, which must not interleave for one name.
    network_locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl DockerRuntime {
    /// Connect to the daemon named by `DOCKER_HOST`, or the default socket.
    /// Connecting does not contact the daemon; call [`ContainerRuntime::ping`].
    pub fn connect() -> Result<Self> {
        let endpoint =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        Self::connect_to(&endpoint)
    }

    /// Connect to the daemon at `endpoint` (`unix:///path/to/docker.sock`
    /// or `tcp://host:port`), whatever `DOCKER_HOST` says.
    pub fn connect_to(endpoint: &str) -> Result<Self> {
        let unreachable = |detail: String| RuntimeError::Unreachable {
            endpoint: endpoint.to_owned(),
            operation: "connect".into(),
            cause: Cause(detail),
        };
        // Pulls of large images stream for long; stalls are detected by the caller.
        let timeout = 3600;
        let docker = if let Some(path) = endpoint.strip_prefix("unix://") {
            Docker::connect_with_socket(path, timeout, bollard::API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_http(endpoint, timeout, bollard::API_DEFAULT_VERSION)
        }
        .map_err(|e| unreachable(e.to_string()))?
        // dockerd decodes X-Registry-Auth URL-safe; bollard encodes standard.
        .with_request_modifier(url_safe_registry_auth);
        Ok(DockerRuntime {
            docker,
            endpoint: endpoint.to_owned(),
            auth: Arc::new(RegistryAuth::none()),
            network_locks: Arc::default(),
        })
    }

    /// Use these registry credentials for pulls and registry lookups.
    pub fn with_registry_auth(mut self, auth: RegistryAuth) -> Self {
        self.auth = Arc::new(auth);
        self
    }

    /// The registry credentials in use (none unless given).
    pub fn registry_auth(&self) -> &RegistryAuth {
        &self.auth
    }

    /// Where the daemon is.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn map_err(&self, what: &str, e: BollardError) -> RuntimeError {
        match e {
            BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            } => RuntimeError::NotFound(message),
            BollardError::DockerResponseServerError {
                status_code: 409,
                message,
            } => RuntimeError::Conflict(message),
            BollardError::DockerResponseServerError { message, .. } => {
                RuntimeError::Daemon(message)
            }
            BollardError::DockerStreamError { error } => RuntimeError::Daemon(error),
            e @ (BollardError::IOError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::HyperLegacyError { .. }
            | BollardError::SocketNotFoundError(_)
            | BollardError::RequestTimeoutError) => {
                // The job's message says it in words; the client's error is
                // kept as the source, and here for whoever debugs.
                tracing::debug!(endpoint = %self.endpoint, "Docker daemon unreachable ({what}): {e}");
                RuntimeError::Unreachable {
                    endpoint: self.endpoint.clone(),
                    operation: what.to_owned(),
                    cause: Cause(e.to_string()),
                }
            }
            e => RuntimeError::Daemon(format!("Docker daemon error ({what}): {e}")),
        }
    }
}

#[async_trait::async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn ping(&self) -> Result<()> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| self.map_err("ping", e))
    }

    async fn image_present(&self, image: &str) -> Result<bool> {
        images::present(self, image).await
    }

    async fn resolve_image(&self, image: &str) -> Result<ImageSource> {
        images::resolve(self, image).await
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>> {
        images::id(self, image).await
    }

    /// Measured: a pull whose client goes away during its last step still
    /// tags the image some milliseconds later; a second leaves margin.
    fn pull_abort_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    async fn pull_image(
        &self,
        image: &str,
        progress: &watch::Sender<PullProgress>,
        cancel: &CancellationToken,
    ) -> Result<()> {
        images::pull(self, image, progress, cancel).await
    }

    async fn create_container(&self, config: &ContainerConfig) -> Result<String> {
        containers::create(self, config).await
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        containers::start(self, id).await
    }

    async fn stop_container(&self, id: &str, timeout_s: u32) -> Result<()> {
        containers::stop(self, id, timeout_s).await
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        containers::rename(self, id, new_name).await
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        containers::remove(self, id).await
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        images::remove(self, image).await
    }

    async fn wait_not_running(&self, id: &str, limit: Duration) -> Result<bool> {
        containers::wait_not_running(self, id, limit).await
    }

    async fn log_tail(&self, id: &str, max_bytes: usize) -> Result<String> {
        containers::log_tail(self, id, max_bytes).await
    }

    async fn inspect_container(&self, id_or_name: &str) -> Result<Option<ContainerState>> {
        containers::inspect(self, id_or_name).await
    }

    async fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<VolumeState> {
        volumes::create(self, name, labels).await
    }

    async fn inspect_volume(&self, name: &str) -> Result<Option<VolumeState>> {
        volumes::inspect(self, name).await
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        volumes::remove(self, name).await
    }

    async fn create_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<NetworkState> {
        networks::create(self, name, labels).await
    }

    async fn inspect_network(&self, name_or_id: &str) -> Result<Option<NetworkState>> {
        networks::inspect(self, name_or_id).await
    }

    async fn remove_network(&self, name_or_id: &str) -> Result<()> {
        networks::remove(self, name_or_id).await
    }

    async fn copy_volume(&self, from: &str, to: &str, helper_image: &str) -> Result<()> {
        copy::copy_volume(self, from, to, helper_image).await
    }
}
