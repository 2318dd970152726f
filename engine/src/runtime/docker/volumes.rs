//! Volumes on the daemon: creating one (idempotent: an existing one is
//! returned as it is), inspecting, and removing one (never while mounted).
//! Copying one volume's content into another is `copy`'s.

use std::collections::BTreeMap;

use bollard::errors::Error as BollardError;
use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::RemoveVolumeOptionsBuilder;

use super::DockerRuntime;
use crate::runtime::{Result, VolumeState};

/// [`ContainerRuntime::create_volume`](crate::runtime::ContainerRuntime::create_volume).
pub(super) async fn create(
    rt: &DockerRuntime,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<VolumeState> {
    // Idempotent in the daemon: an existing volume is returned as it
    // is, with its own labels, and the ones sent here are ignored.
    let request = VolumeCreateRequest {
        name: Some(name.to_owned()),
        labels: Some(labels.clone().into_iter().collect()),
        ..Default::default()
    };
    let volume = rt
        .docker
        .create_volume(request)
        .await
        .map_err(|e| rt.map_err(&format!("create volume {name}"), e))?;
    Ok(VolumeState {
        name: volume.name,
        labels: volume.labels.into_iter().collect(),
    })
}

/// [`ContainerRuntime::inspect_volume`](crate::runtime::ContainerRuntime::inspect_volume).
pub(super) async fn inspect(rt: &DockerRuntime, name: &str) -> Result<Option<VolumeState>> {
    match rt.docker.inspect_volume(name).await {
        Ok(volume) => Ok(Some(VolumeState {
            name: volume.name,
            labels: volume.labels.into_iter().collect(),
        })),
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(rt.map_err(&format!("inspect volume {name}"), e)),
    }
}

/// [`ContainerRuntime::remove_volume`](crate::runtime::ContainerRuntime::remove_volume).
pub(super) async fn remove(rt: &DockerRuntime, name: &str) -> Result<()> {
    // The helpers of a copy into it that a killed process left behind go
    // first: else undoing a `snapshot_volume` killed in the middle would
    // find the copy in use (and leave it), and the helper on the source
    // would stay for good — not the state before the job.
    super::copy::remove_helpers_of(rt, name).await?;
    // Not forced: the daemon refuses (409) while a container, running
    // or not, mounts it.
    let options = RemoveVolumeOptionsBuilder::default().force(false).build();
    match rt.docker.remove_volume(name, Some(options)).await {
        Ok(())
        | Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(rt.map_err(&format!("remove volume {name}"), e)),
    }
}
