//! [`ContainerRuntime`] on a real Docker daemon, through bollard.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, RenameContainerOptionsBuilder,
    StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::progress::{PullLine, PullTracker};
use super::{
    Cause, ContainerConfig, ContainerRuntime, ContainerState, ImageSource, PullProgress, Result,
    RuntimeError, registry_reason, with_default_tag,
};

/// A Docker daemon, found through `DOCKER_HOST` or the default socket.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    endpoint: String,
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
        .map_err(|e| unreachable(e.to_string()))?;
        Ok(DockerRuntime {
            docker,
            endpoint: endpoint.to_owned(),
        })
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

/// Treat "not modified" (already started / already stopped) as success.
fn not_modified_is_ok(
    r: std::result::Result<(), BollardError>,
) -> std::result::Result<(), BollardError> {
    match r {
        Err(BollardError::DockerResponseServerError {
            status_code: 304, ..
        }) => Ok(()),
        other => other,
    }
}

fn state_of(r: bollard::models::ContainerInspectResponse) -> ContainerState {
    let config = r.config.unwrap_or_default();
    let state = r.state.unwrap_or_default();
    ContainerState {
        id: r.id.unwrap_or_default(),
        name: r
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        image: config.image.unwrap_or_default(),
        running: state.running.unwrap_or(false),
        health: state
            .health
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty() && s != "none"),
        exit_code: if state.running.unwrap_or(false) {
            None
        } else {
            state.exit_code
        },
        labels: config.labels.unwrap_or_default().into_iter().collect(),
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
        match self.docker.inspect_image(&with_default_tag(image)).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(self.map_err("inspect image", e)),
        }
    }

    async fn resolve_image(&self, image: &str) -> Result<ImageSource> {
        if self.image_present(image).await? {
            return Ok(ImageSource::Local);
        }
        match self
            .docker
            .inspect_registry_image(&with_default_tag(image), None)
            .await
        {
            Ok(_) => Ok(ImageSource::Registry),
            // The daemon answered for the registry: no such image, no
            // access, or no registry there.
            Err(BollardError::DockerResponseServerError { message, .. }) => {
                Ok(ImageSource::Unavailable(registry_reason(&message)))
            }
            Err(e) => Err(self.map_err("ask the registry about an image", e)),
        }
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>> {
        match self.docker.inspect_image(&with_default_tag(image)).await {
            Ok(found) => Ok(found.id),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.map_err("inspect image", e)),
        }
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
        let reference = with_default_tag(image);
        let options = CreateImageOptionsBuilder::default()
            .from_image(&reference)
            .build();
        let mut stream = self.docker.create_image(Some(options), None, None);
        let mut tracker = PullTracker::new();
        let fail = |detail: String| RuntimeError::Pull {
            image: image.to_owned(),
            detail,
        };
        loop {
            let item = tokio::select! {
                // Dropping the stream closes the request, which aborts the pull in the daemon.
                _ = cancel.cancelled() => return Err(RuntimeError::Cancelled),
                item = stream.next() => item,
            };
            let Some(item) = item else { break };
            let info = match item {
                Ok(info) => info,
                Err(BollardError::DockerStreamError { error }) => return Err(fail(error)),
                Err(e) => {
                    return Err(match self.map_err("pull", e) {
                        RuntimeError::NotFound(m) | RuntimeError::Daemon(m) => fail(m),
                        other => other,
                    });
                }
            };
            let line = PullLine {
                id: info.id,
                status: info.status,
                progress_detail: info
                    .progress_detail
                    .map(|d| super::progress::ProgressDetail {
                        current: d.current.and_then(|c| u64::try_from(c).ok()),
                        total: d.total.and_then(|t| u64::try_from(t).ok()),
                    }),
                error: None,
                error_detail: info
                    .error_detail
                    .map(|d| super::progress::ErrorDetail { message: d.message }),
            };
            tracker.observe(&line).map_err(|e| fail(e.to_string()))?;
            progress.send_replace(tracker.progress());
        }
        tracker.finish().map_err(|e| fail(e.to_string()))
    }

    async fn create_container(&self, config: &ContainerConfig) -> Result<String> {
        let body = ContainerCreateBody {
            image: Some(with_default_tag(&config.image)),
            env: Some(config.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            cmd: config.cmd.clone(),
            labels: Some(config.labels.clone().into_iter().collect::<HashMap<_, _>>()),
            host_config: Some(HostConfig {
                network_mode: config.network.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&config.name)
            .build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| self.map_err("create container", e))?;
        Ok(created.id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        not_modified_is_ok(self.docker.start_container(id, None).await)
            .map_err(|e| self.map_err("start container", e))
    }

    async fn stop_container(&self, id: &str, timeout_s: u32) -> Result<()> {
        let options = StopContainerOptionsBuilder::default()
            .t(timeout_s as i32)
            .build();
        not_modified_is_ok(self.docker.stop_container(id, Some(options)).await)
            .map_err(|e| self.map_err("stop container", e))
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        let options = RenameContainerOptionsBuilder::default()
            .name(new_name)
            .build();
        self.docker
            .rename_container(id, options)
            .await
            .map_err(|e| self.map_err("rename container", e))
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        // Its anonymous volumes go with it: nothing else can ever use them.
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(self.map_err("remove container", e)),
        }
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        let options = RemoveImageOptionsBuilder::default().force(false).build();
        match self
            .docker
            .remove_image(&with_default_tag(image), Some(options), None)
            .await
        {
            Ok(_)
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(self.map_err("remove image", e)),
        }
    }

    async fn wait_not_running(&self, id: &str, limit: Duration) -> Result<bool> {
        let options = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut wait = self.docker.wait_container(id, Some(options));
        match tokio::time::timeout(limit, wait.next()).await {
            Err(_) => Ok(false),
            // The daemon answers once the container is not running; a
            // non-zero exit code comes as an error carrying the code.
            Ok(None | Some(Ok(_)))
            | Ok(Some(Err(BollardError::DockerContainerWaitError { .. })))
            | Ok(Some(Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }))) => Ok(true),
            Ok(Some(Err(e))) => Err(self.map_err("wait for container", e)),
        }
    }

    async fn log_tail(&self, id: &str, max_bytes: usize) -> Result<String> {
        // Docker cuts by lines; the bytes are cut here. A line is seldom
        // shorter than 16 bytes, so this many lines fill `max_bytes`.
        let lines = (max_bytes / 16).clamp(100, 100_000).to_string();
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(false)
            .timestamps(false)
            .tail(&lines)
            .build();
        let mut stream = self.docker.logs(id, Some(options));
        let mut kept: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.map_err("read container logs", e))?;
            kept.extend_from_slice(chunk.as_ref());
            // A few long lines may still be megabytes: keep only the end.
            if kept.len() > 2 * max_bytes + 4 {
                kept.drain(..kept.len() - max_bytes - 4);
            }
        }
        Ok(super::log_tail_of(&kept, max_bytes))
    }

    async fn inspect_container(&self, id_or_name: &str) -> Result<Option<ContainerState>> {
        match self.docker.inspect_container(id_or_name, None).await {
            Ok(r) => Ok(Some(state_of(r))),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.map_err("inspect container", e)),
        }
    }
}
