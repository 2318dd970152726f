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
//!
//! It also holds the grammar of the names the engine gives what it creates
//! ([`container_service`], [`volume_docker_name`], [`stack_network_name`]),
//! which keeps one target's names apart from every other's, and the claim a
//! stack's service makes on a name ([`service_name_holder`]).

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

/// The longest suffix a temporary container's name may have: names stay
/// short enough for every daemon call that carries them (a rename's undo
/// puts the name in a URL).
pub const MAX_SUFFIX_LEN: usize = 32;

/// The longest service name (as long as a target name).
pub const MAX_SERVICE_LEN: usize = 63;

/// Whether `s` may follow `deckhand-<target>-` (or a service's name) in a
/// container name: it starts with an uppercase letter, which no target or
/// service name has.
pub fn valid_suffix(s: &str) -> bool {
    (1..=MAX_SUFFIX_LEN).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// Whether `s` is a stack service's name: 1–63 characters from
/// `a-z 0-9 _ . -`, starting with a letter or digit (the grammar of target
/// names).
pub fn valid_service(s: &str) -> bool {
    (1..=MAX_SERVICE_LEN).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
}

/// What a container name says about whom it is for, within `target`:
/// `Some(None)` for the target's own names (`deckhand-<target>` and
/// `deckhand-<target>-<Suffix>`), `Some(Some(service))` for a stack
/// service's (`deckhand-<target>-<service>` and
/// `deckhand-<target>-<service>-<Suffix>`), `None` for a name that is not
/// the target's. The first `-` followed by an uppercase letter starts the
/// suffix: neither target nor service names hold one.
pub fn container_service<'a>(target: &str, name: &'a str) -> Option<Option<&'a str>> {
    let rest = name.strip_prefix("deckhand-")?.strip_prefix(target)?;
    if rest.is_empty() {
        return Some(None);
    }
    let rest = rest.strip_prefix('-')?;
    if valid_suffix(rest) {
        return Some(None);
    }
    let suffix_at = rest
        .char_indices()
        .find(|&(i, c)| c.is_ascii_uppercase() && rest[..i].ends_with('-'))
        .map(|(i, _)| i);
    let (service, suffix) = match suffix_at {
        Some(i) => (&rest[..i - 1], Some(&rest[i..])),
        None => (rest, None),
    };
    (valid_service(service) && suffix.is_none_or(valid_suffix)).then_some(Some(service))
}

/// Who holds the name `<target>-<service>` other than `target` itself, if
/// anyone: a target of that name that is installed or has a job in flight,
/// or another target's stack service whose containers are named so. The
/// first to use a name keeps it; the answer says who, for the refusal.
pub fn service_name_holder(
    journal: &Journal,
    target: &str,
    stem: &str,
) -> Result<Option<String>, JournalError> {
    if stem != target {
        let installed = journal.target(stem)?.is_some_and(|t| t.current.is_some());
        if installed || journal.active_job_on(stem)?.is_some() {
            return Ok(Some(format!("target `{stem}`")));
        }
    }
    let prefix = format!("deckhand-{stem}");
    for owned in journal.owned_with_prefix(RESOURCE_CONTAINER, &prefix)? {
        if owned.target == target {
            continue;
        }
        if let Some(Some(service)) = container_service(&owned.target, &owned.name)
            && format!("{}-{service}", owned.target) == stem
        {
            return Ok(Some(format!(
                "service `{service}` of target `{}`",
                owned.target
            )));
        }
    }
    Ok(None)
}

/// The Docker name of a stack's network `name` (`default` is the one every
/// service joins unless it names others): `deckhand-<target>-N-<name>`.
/// Like a volume's, the `N` cannot occur in a target name.
pub fn stack_network_name(target: &str, name: &str) -> String {
    format!("deckhand-{target}-N-{name}")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suffix_starts_with_an_uppercase_letter_so_no_target_can_have_the_name() {
        assert!(valid_suffix("Next"));
        assert!(valid_suffix("Web-1.a_b"));
        assert!(!valid_suffix("next"), "deckhand-p-next is target p-next's");
        assert!(!valid_suffix("1x"));
        assert!(!valid_suffix(""));
        assert!(!valid_suffix(&format!("N{}", "x".repeat(MAX_SUFFIX_LEN))));
        assert!(!valid_suffix("Ne xt"));
    }

    #[test]
    fn a_container_name_says_which_service_of_its_target_it_is_for() {
        assert_eq!(container_service("web", "deckhand-web"), Some(None));
        assert_eq!(container_service("web", "deckhand-web-Next"), Some(None));
        assert_eq!(container_service("web", "deckhand-web-db"), Some(Some("db")));
        assert_eq!(container_service("web", "deckhand-web-db-Next"), Some(Some("db")));
        assert_eq!(
            container_service("web", "deckhand-web-db-x.1-Old-2"),
            Some(Some("db-x.1"))
        );
        assert_eq!(container_service("web", "deckhand-webx"), None);
        assert_eq!(container_service("web", "deckhand-web-"), None);
        assert_eq!(container_service("web", "deckhand-web-db-"), Some(Some("db-")));
        assert_eq!(container_service("web", "deckhand-web-Db"), Some(None));
        assert_eq!(container_service("web", "deckhand-web-db-next"), Some(Some("db-next")));
        assert_eq!(container_service("web", "deckhand-web-db-Ne xt"), None);
        assert_eq!(container_service("web", "other"), None);
        let long = format!("deckhand-web-{}", "s".repeat(MAX_SERVICE_LEN + 1));
        assert_eq!(container_service("web", &long), None);
    }
}
