//! Containers on the daemon: creating one (on its first network, then
//! joining the others before anyone can start it), starting, stopping,
//! renaming, removing (forced, also for the copy helpers), inspecting and
//! waiting for one, and the tail of its logs.

use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{EndpointSettings, NetworkConnectRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RenameContainerOptionsBuilder, StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::DockerRuntime;
use super::create::create_body;
use crate::runtime::{ContainerConfig, ContainerState, Result, RuntimeError, log_tail_of};

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
        image_id: r.image.unwrap_or_default(),
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

/// Remove a container and its anonymous volumes, stopping it first; a
/// missing one is not an error.
pub(super) async fn remove_forced(
    docker: &Docker,
    id: &str,
) -> std::result::Result<(), BollardError> {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(options)).await {
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        other => other,
    }
}

/// [`ContainerRuntime::create_container`](crate::runtime::ContainerRuntime::create_container).
pub(super) async fn create(rt: &DockerRuntime, config: &ContainerConfig) -> Result<String> {
    let body = create_body(config)?;
    // The daemon checks the network it creates on, but connecting a
    // container that is not running to a network that does not exist
    // succeeds (it fails only at start): check the others first.
    for network in config.networks.iter().skip(1) {
        match rt.docker.inspect_network(&network.name, None).await {
            Ok(_) => {}
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return Err(RuntimeError::NotFound(format!(
                    "network {} not found (container {} is to join it)",
                    network.name, config.name
                )));
            }
            Err(e) => {
                return Err(rt.map_err(&format!("inspect network {}", network.name), e));
            }
        }
    }
    let options = CreateContainerOptionsBuilder::default()
        .name(&config.name)
        .build();
    let created = rt
        .docker
        .create_container(Some(options), body)
        .await
        .map_err(|e| rt.map_err("create container", e))?;
    // The daemon takes one network at create; the others join now,
    // before anyone can start it.
    for network in config.networks.iter().skip(1) {
        let request = NetworkConnectRequest {
            container: created.id.clone(),
            endpoint_config: Some(EndpointSettings {
                aliases: (!network.aliases.is_empty()).then(|| network.aliases.clone()),
                ..Default::default()
            }),
        };
        if let Err(e) = rt.docker.connect_network(&network.name, request).await {
            let error = rt.map_err(
                &format!(
                    "connect container {} to network {}",
                    config.name, network.name
                ),
                e,
            );
            // Half a container is none: take it back (best effort; if
            // the daemon is away, the caller's undo finds it by name).
            if let Err(e) = remove_forced(&rt.docker, &created.id).await {
                tracing::warn!(
                    "could not remove container {} after a failed network connect: {e}",
                    config.name
                );
            }
            return Err(match error {
                RuntimeError::NotFound(m) => RuntimeError::NotFound(format!(
                    "network {} for container {}: {m}",
                    network.name, config.name
                )),
                RuntimeError::Daemon(m) => RuntimeError::Daemon(format!(
                    "connect container {} to network {}: {m}",
                    config.name, network.name
                )),
                other => other,
            });
        }
    }
    Ok(created.id)
}

/// [`ContainerRuntime::start_container`](crate::runtime::ContainerRuntime::start_container).
pub(super) async fn start(rt: &DockerRuntime, id: &str) -> Result<()> {
    not_modified_is_ok(rt.docker.start_container(id, None).await)
        .map_err(|e| rt.map_err("start container", e))
}

/// [`ContainerRuntime::stop_container`](crate::runtime::ContainerRuntime::stop_container).
pub(super) async fn stop(rt: &DockerRuntime, id: &str, timeout_s: u32) -> Result<()> {
    let options = StopContainerOptionsBuilder::default()
        .t(timeout_s as i32)
        .build();
    not_modified_is_ok(rt.docker.stop_container(id, Some(options)).await)
        .map_err(|e| rt.map_err("stop container", e))
}

/// [`ContainerRuntime::rename_container`](crate::runtime::ContainerRuntime::rename_container).
pub(super) async fn rename(rt: &DockerRuntime, id: &str, new_name: &str) -> Result<()> {
    let options = RenameContainerOptionsBuilder::default()
        .name(new_name)
        .build();
    rt.docker
        .rename_container(id, options)
        .await
        .map_err(|e| rt.map_err("rename container", e))
}

/// [`ContainerRuntime::remove_container`](crate::runtime::ContainerRuntime::remove_container).
pub(super) async fn remove(rt: &DockerRuntime, id: &str) -> Result<()> {
    // Its anonymous volumes go with it: nothing else can ever use them.
    remove_forced(&rt.docker, id)
        .await
        .map_err(|e| rt.map_err("remove container", e))
}

/// [`ContainerRuntime::wait_not_running`](crate::runtime::ContainerRuntime::wait_not_running).
pub(super) async fn wait_not_running(
    rt: &DockerRuntime,
    id: &str,
    limit: Duration,
) -> Result<bool> {
    let options = WaitContainerOptionsBuilder::default()
        .condition("not-running")
        .build();
    let mut wait = rt.docker.wait_container(id, Some(options));
    match tokio::time::timeout(limit, wait.next()).await {
        Err(_) => Ok(false),
        // The daemon answers once the container is not running; a
        // non-zero exit code comes as an error carrying the code.
        Ok(None | Some(Ok(_)))
        | Ok(Some(Err(BollardError::DockerContainerWaitError { .. })))
        | Ok(Some(Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }))) => Ok(true),
        Ok(Some(Err(e))) => Err(rt.map_err("wait for container", e)),
    }
}

/// [`ContainerRuntime::log_tail`](crate::runtime::ContainerRuntime::log_tail).
pub(super) async fn log_tail(rt: &DockerRuntime, id: &str, max_bytes: usize) -> Result<String> {
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
    let mut stream = rt.docker.logs(id, Some(options));
    let mut kept: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| rt.map_err("read container logs", e))?;
        kept.extend_from_slice(chunk.as_ref());
        // A few long lines may still be megabytes: keep only the end.
        if kept.len() > 2 * max_bytes + 4 {
            kept.drain(..kept.len() - max_bytes - 4);
        }
    }
    Ok(log_tail_of(&kept, max_bytes))
}

/// [`ContainerRuntime::inspect_container`](crate::runtime::ContainerRuntime::inspect_container).
pub(super) async fn inspect(
    rt: &DockerRuntime,
    id_or_name: &str,
) -> Result<Option<ContainerState>> {
    match rt.docker.inspect_container(id_or_name, None).await {
        Ok(r) => Ok(Some(state_of(r))),
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(rt.map_err("inspect container", e)),
    }
}
