//! The one ownership rule: what the engine may stop, rename or remove.
//!
//! A container is the engine's — and a given target's — only if the journal
//! records that a job of that target created that very container id (see
//! [`crate::journal::OwnedResource`]); an image only if the engine's own
//! pull brought the very image id the name points to. Labels are never
//! enough: anyone can copy them. The one place a label counts is the undo of
//! a create whose result a crash lost: the journal then holds the intent to
//! create exactly that name for exactly that job, and the job-id label on a
//! container of that name is the daemon's answer to "did it happen?".
//! The plugin host, the rollback and the commit all ask here.

use crate::journal::{JobId, Journal, JournalError, OwnedResource};
use crate::runtime::{ContainerState, LABEL_JOB};
use crate::steps::{RESOURCE_CONTAINER, RESOURCE_IMAGE, RESOURCE_NETWORK, RESOURCE_VOLUME};

/// The journal's record of the container `id`, if the engine created it
/// and has not removed it.
pub fn container(journal: &Journal, id: &str) -> Result<Option<OwnedResource>, JournalError> {
    journal.owned(RESOURCE_CONTAINER, id)
}

/// Whether the container `id` is one the engine created for `target`.
pub fn is_targets_container(
    journal: &Journal,
    id: &str,
    target: &str,
) -> Result<bool, JournalError> {
    Ok(container(journal, id)?.is_some_and(|o| o.target == target))
}

/// Whether the container `id` was created by `job`.
pub fn created_by_job(journal: &Journal, id: &str, job: &JobId) -> Result<bool, JournalError> {
    Ok(container(journal, id)?.is_some_and(|o| &o.job_id == job))
}

/// Whether `found`, a container with the name a crashed create of `job`
/// asked for, is the one that create made (see the module doc).
pub fn made_by_unrecorded_create(found: &ContainerState, job: &str) -> bool {
    found.label(LABEL_JOB) == Some(job)
}

/// Whether `job`'s own pull brought the image `reference` here.
pub fn pulled_by_job(
    journal: &Journal,
    reference: &str,
    job: &JobId,
) -> Result<bool, JournalError> {
    let name = crate::runtime::with_default_tag(reference);
    Ok(journal
        .owned_named(RESOURCE_IMAGE, &name)?
        .iter()
        .any(|o| &o.job_id == job))
}

/// The Docker name of `target`'s volume `name`; `generation` marks a
/// snapshot copy. The `V` cannot occur in a target name (no uppercase), so
/// the name says whose it is and no target's volume is another's.
pub fn volume_docker_name(target: &str, generation: Option<&str>, name: &str) -> String {
    format!("deckhand-{target}-V{}-{name}", generation.unwrap_or(""))
}

/// Whether the volume `name` (a Docker name) is one the engine created for
/// `target`.
pub fn is_targets_volume(
    journal: &Journal,
    name: &str,
    target: &str,
) -> Result<bool, JournalError> {
    Ok(journal
        .owned(RESOURCE_VOLUME, name)?
        .is_some_and(|o| o.target == target))
}

/// Whether the network `id` is one the engine created (for any target:
/// networks are shared).
pub fn is_engines_network(journal: &Journal, id: &str) -> Result<bool, JournalError> {
    Ok(journal.owned(RESOURCE_NETWORK, id)?.is_some())
}

/// Whether the image id `id` is one the engine's own pull brought here.
pub fn is_engines_image(journal: &Journal, id: &str) -> Result<bool, JournalError> {
    Ok(journal.owned(RESOURCE_IMAGE, id)?.is_some())
}
