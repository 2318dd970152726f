//! Images on the daemon: whether one is in the local store and its id,
//! where one would come from (asking its registry without pulling), pulls
//! with the credentials of the runtime's [`RegistryAuth`] (progress and
//! cancellation), and removal of a reference.
//!
//! [`RegistryAuth`]: crate::runtime::RegistryAuth

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{CreateImageOptionsBuilder, RemoveImageOptionsBuilder};
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::DockerRuntime;
use crate::runtime::progress::{ErrorDetail, ProgressDetail, PullLine, PullTracker};
use crate::runtime::{
    ImageSource, PullProgress, Result, RuntimeError, registry_reason, with_default_tag,
};

/// [`ContainerRuntime::image_present`](crate::runtime::ContainerRuntime::image_present).
pub(super) async fn present(rt: &DockerRuntime, image: &str) -> Result<bool> {
    match rt.docker.inspect_image(&with_default_tag(image)).await {
        Ok(_) => Ok(true),
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(e) => Err(rt.map_err("inspect image", e)),
    }
}

/// [`ContainerRuntime::resolve_image`](crate::runtime::ContainerRuntime::resolve_image).
pub(super) async fn resolve(rt: &DockerRuntime, image: &str) -> Result<ImageSource> {
    if present(rt, image).await? {
        return Ok(ImageSource::Local);
    }
    let reference = with_default_tag(image);
    match rt
        .docker
        .inspect_registry_image(&reference, rt.auth.docker_credentials(&reference))
        .await
    {
        Ok(_) => Ok(ImageSource::Registry),
        // The daemon answered for the registry: no such image, no
        // access, or no registry there.
        Err(BollardError::DockerResponseServerError { message, .. }) => {
            Ok(ImageSource::Unavailable(registry_reason(&message)))
        }
        Err(e) => Err(rt.map_err("ask the registry about an image", e)),
    }
}

/// [`ContainerRuntime::image_id`](crate::runtime::ContainerRuntime::image_id).
pub(super) async fn id(rt: &DockerRuntime, image: &str) -> Result<Option<String>> {
    match rt.docker.inspect_image(&with_default_tag(image)).await {
        Ok(found) => Ok(found.id),
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(rt.map_err("inspect image", e)),
    }
}

/// [`ContainerRuntime::pull_image`](crate::runtime::ContainerRuntime::pull_image).
pub(super) async fn pull(
    rt: &DockerRuntime,
    image: &str,
    progress: &watch::Sender<PullProgress>,
    cancel: &CancellationToken,
) -> Result<()> {
    let reference = with_default_tag(image);
    let options = CreateImageOptionsBuilder::default()
        .from_image(&reference)
        .build();
    let credentials = rt.auth.docker_credentials(&reference);
    let mut stream = rt.docker.create_image(Some(options), None, credentials);
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
                return Err(match rt.map_err("pull", e) {
                    RuntimeError::NotFound(m) | RuntimeError::Daemon(m) => fail(m),
                    other => other,
                });
            }
        };
        let line = PullLine {
            id: info.id,
            status: info.status,
            progress_detail: info.progress_detail.map(|d| ProgressDetail {
                current: d.current.and_then(|c| u64::try_from(c).ok()),
                total: d.total.and_then(|t| u64::try_from(t).ok()),
            }),
            error: None,
            error_detail: info
                .error_detail
                .map(|d| ErrorDetail { message: d.message }),
        };
        tracker.observe(&line).map_err(|e| fail(e.to_string()))?;
        progress.send_replace(tracker.progress());
    }
    tracker.finish().map_err(|e| fail(e.to_string()))
}

/// [`ContainerRuntime::remove_image`](crate::runtime::ContainerRuntime::remove_image).
pub(super) async fn remove(rt: &DockerRuntime, image: &str) -> Result<()> {
    let options = RemoveImageOptionsBuilder::default().force(false).build();
    match rt
        .docker
        .remove_image(&with_default_tag(image), Some(options), None)
        .await
    {
        Ok(_)
        | Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(rt.map_err("remove image", e)),
    }
}
