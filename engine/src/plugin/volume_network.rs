//! The host side of the `volume` and `network` interfaces: volumes scoped to
//! the job's target, volumes shared beyond it (named, or external: used,
//! never removed unless the engine created them for the target) and
//! user-defined networks, made available (created when
//! absent, journaled with the undo that removes only what this job created)
//! and removed at commit only when the journal records that the engine
//! created them. Whether a call created a resource is the runtime's answer:
//! a create of an existing name leaves it and returns it with its own
//! labels, so the job label tells, with no race between look and create.

use std::collections::BTreeMap;

use super::bindings::{HostError, HostResult, NetworkInfo, VolumeInfo, network, volume};
use super::host_state::HostState;
use super::scope::{host_error, journal_error};
use crate::journal::Event;
use crate::runtime::{LABEL_JOB, LABEL_MANAGED, LABEL_TARGET};
use crate::steps::{Call, Compensation, Deferred, RESOURCE_NETWORK, RESOURCE_VOLUME};

use crate::ownership::volume_docker_name;

/// What the journal and the runtime say of a volume shared beyond one
/// target.
#[derive(serde::Serialize, serde::Deserialize)]
struct NamedVolume {
    /// It exists.
    exists: bool,
    /// The target the engine created it for, if it did.
    owner: Option<String>,
}

/// Whether `docker_name` is one of `target`'s volume names.
fn is_targets_volume_name(target: &str, docker_name: &str) -> bool {
    let Some(rest) = docker_name.strip_prefix(&format!("deckhand-{target}-V")) else {
        return false;
    };
    let Some((generation, name)) = rest.split_once('-') else {
        return false;
    };
    generation
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && deckhand_params::check_volume_name(name).is_ok()
}

impl HostState {
    /// The ownership labels of what this job creates.
    fn resource_labels(&self) -> BTreeMap<String, String> {
        [
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_TARGET.to_owned(), self.scope.target.clone()),
            (LABEL_JOB.to_owned(), self.scope.job_id.to_string()),
        ]
        .into()
    }

    /// Create volume `docker_name` (the target's `name`) unless it exists,
    /// journaled with the undo that removes it only if this job created
    /// it; this job's containers may mount it from then on. Whether this
    /// call created it.
    async fn create_volume_unless_present(
        &mut self,
        docker_name: &str,
        name: &str,
    ) -> HostResult<bool> {
        let labels = self.resource_labels();
        let job = self.scope.job_id.to_string();
        let (rt, probe, create_labels) = (
            self.scope.runtime.clone(),
            docker_name.to_owned(),
            labels.clone(),
        );
        let created: bool = self
            .scope
            .perform(
                Call::EnsureVolume {
                    name: docker_name.to_owned(),
                    labels,
                },
                Some(Compensation::RemoveCreatedVolume {
                    name: docker_name.to_owned(),
                    job: job.clone(),
                }),
                async move {
                    let v = rt
                        .create_volume(&probe, &create_labels)
                        .await
                        .map_err(host_error)?;
                    Ok::<_, HostError>(v.labels.get(LABEL_JOB) == Some(&job))
                },
            )
            .await?;
        if created {
            self.scope
                .record(Event::Acquired {
                    resource: RESOURCE_VOLUME.into(),
                    id: docker_name.to_owned(),
                    name: name.to_owned(),
                })
                .await?;
        }
        self.scope.volumes.insert(docker_name.to_owned());
        Ok(created)
    }

    /// The checks every creating call starts with.
    fn may_create(&mut self, what: &str, name: &str) -> HostResult<()> {
        self.scope.tick()?;
        self.scope.check_size(what, name)?;
        self.scope
            .ensure_not_compensating(&format!("creating a {what}"))?;
        self.scope.ensure_not_cancelled()?;
        Ok(())
    }
}

impl volume::Host for HostState {
    async fn ensure_volume(&mut self, name: String) -> HostResult<VolumeInfo> {
        self.may_create("volume", &name)?;
        deckhand_params::check_volume_name(&name).map_err(HostError::Invalid)?;
        let docker_name = volume_docker_name(&self.scope.target, None, &name);
        let created = self
            .create_volume_unless_present(&docker_name, &name)
            .await?;
        Ok(VolumeInfo {
            name,
            docker_name,
            created,
        })
    }

    async fn use_named_volume(
        &mut self,
        docker_name: String,
        create: bool,
    ) -> HostResult<VolumeInfo> {
        self.may_create("volume", &docker_name)?;
        deckhand_params::check_shared_volume_name(&docker_name).map_err(HostError::Invalid)?;
        let target = self.scope.target.clone();
        let (journal, rt, probe) = (
            self.scope.journal.clone(),
            self.scope.runtime.clone(),
            docker_name.clone(),
        );
        let seen: NamedVolume = self
            .scope
            .perform(
                Call::ReadNamedVolume {
                    name: docker_name.clone(),
                },
                None,
                async move {
                    let owner = journal
                        .owned(RESOURCE_VOLUME, &probe)
                        .map_err(journal_error)?
                        .map(|o| o.target);
                    let exists = rt
                        .inspect_volume(&probe)
                        .await
                        .map_err(host_error)?
                        .is_some();
                    HostResult::Ok(NamedVolume { exists, owner })
                },
            )
            .await?;
        if let Some(owner) = seen.owner.filter(|o| *o != target) {
            return Err(HostError::Denied(format!(
                "volume `{docker_name}` was created by the engine for `{owner}`"
            ))
            .into());
        }
        let created = if create {
            self.create_volume_unless_present(&docker_name, &docker_name)
                .await?
        } else if seen.exists {
            self.scope.volumes.insert(docker_name.clone());
            false
        } else {
            return Err(HostError::NotFound(format!(
                "external volume `{docker_name}` does not exist (create it first, or drop `external: true`)"
            ))
            .into());
        };
        Ok(VolumeInfo {
            name: docker_name.clone(),
            docker_name,
            created,
        })
    }

    async fn snapshot_volume(
        &mut self,
        name: String,
        docker_name: String,
    ) -> HostResult<VolumeInfo> {
        self.may_create("volume", &name)?;
        self.scope.check_size("docker name", &docker_name)?;
        let target = self.scope.target.clone();
        deckhand_params::check_volume_name(&name).map_err(HostError::Invalid)?;
        if !is_targets_volume_name(&target, &docker_name) {
            return Err(HostError::Denied(format!(
                "volume `{docker_name}` is not one of `{target}`'s volumes"
            ))
            .into());
        }
        // The current revision's image is on the machine and runs nothing
        // while the copy is made: the helpers are created, never started.
        // Read through the journal, so that a replay reads the same.
        let helper_image = self
            .read_revision(None)
            .await?
            .and_then(|r| r.containers().first().map(|(_, image)| (*image).to_owned()))
            .ok_or_else(|| {
                HostError::Invalid(format!(
                    "`{target}` has no current revision whose volumes could be copied"
                ))
            })?;
        // Named after the job, not a revision number: a replay later makes
        // the same call whatever revisions came since.
        let generation: String = self
            .scope
            .job_id
            .as_str()
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .rev()
            .take(12)
            .collect();
        let copy = volume_docker_name(&target, Some(&generation), &name);
        let labels = self.resource_labels();
        let job = self.scope.job_id.to_string();
        let (rt, from, to, create_labels, image) = (
            self.scope.runtime.clone(),
            docker_name.clone(),
            copy.clone(),
            labels.clone(),
            helper_image.clone(),
        );
        self.scope
            .perform(
                Call::SnapshotVolume {
                    from: docker_name.clone(),
                    to: copy.clone(),
                    labels,
                    helper_image,
                },
                Some(Compensation::RemoveCreatedVolume {
                    name: copy.clone(),
                    job: job.clone(),
                }),
                async move {
                    let made = rt
                        .create_volume(&to, &create_labels)
                        .await
                        .map_err(host_error)?;
                    if made.labels.get(LABEL_JOB) != Some(&job) {
                        return Err(HostError::Denied(format!(
                            "volume `{to}` exists already and is not this job's"
                        )));
                    }
                    rt.copy_volume(&from, &to, &image).await.map_err(host_error)
                },
            )
            .await?;
        self.scope
            .record(Event::Acquired {
                resource: RESOURCE_VOLUME.into(),
                id: copy.clone(),
                name: name.clone(),
            })
            .await?;
        self.scope.volumes.insert(copy.clone());
        Ok(VolumeInfo {
            name,
            docker_name: copy,
            created: true,
        })
    }

    async fn list_volumes(&mut self) -> HostResult<Vec<VolumeInfo>> {
        self.scope.tick()?;
        let (journal, target) = (self.scope.journal.clone(), self.scope.target.clone());
        let owned: Vec<(String, String)> = self
            .scope
            .perform(Call::ListVolumes, None, async move {
                let owned = journal
                    .owned_by_target(RESOURCE_VOLUME, &target)
                    .map_err(journal_error)?;
                HostResult::Ok(owned.into_iter().map(|o| (o.name, o.id)).collect())
            })
            .await?;
        // The target's own volumes: its containers may mount them.
        self.scope
            .volumes
            .extend(owned.iter().map(|(_, docker_name)| docker_name.clone()));
        Ok(owned
            .into_iter()
            .map(|(name, docker_name)| VolumeInfo {
                name,
                docker_name,
                created: true,
            })
            .collect())
    }

    async fn remove_volume_at_commit(&mut self, docker_name: String) -> HostResult<()> {
        self.scope.tick()?;
        self.scope.check_size("docker name", &docker_name)?;
        let target = self.scope.target.clone();
        // A journaled read: a replay answers what the job was answered.
        let (journal, probe, owner) = (
            self.scope.journal.clone(),
            docker_name.clone(),
            target.clone(),
        );
        let ours: bool = self
            .scope
            .perform(
                Call::ReadVolumeOwned {
                    name: docker_name.clone(),
                },
                None,
                async move {
                    crate::ownership::is_targets_volume(&journal, &probe, &owner)
                        .map_err(journal_error)
                },
            )
            .await?;
        if !ours {
            return Err(HostError::Denied(format!(
                "volume `{docker_name}` was not created by the engine for `{target}`"
            ))
            .into());
        }
        self.scope
            .defer(Deferred::RemoveVolume { name: docker_name })
            .await
    }
}

impl network::Host for HostState {
    async fn ensure_network(&mut self, name: String) -> HostResult<NetworkInfo> {
        self.may_create("network", &name)?;
        deckhand_params::check_network_name(&name).map_err(HostError::Invalid)?;
        let labels = self.resource_labels();
        let job = self.scope.job_id.to_string();
        let (rt, probe, create_labels) = (self.scope.runtime.clone(), name.clone(), labels.clone());
        let answer: serde_json::Value = self
            .scope
            .perform(
                Call::EnsureNetwork {
                    name: name.clone(),
                    labels,
                },
                Some(Compensation::RemoveCreatedNetwork {
                    name: name.clone(),
                    job: job.clone(),
                }),
                async move {
                    let n = rt
                        .create_network(&probe, &create_labels)
                        .await
                        .map_err(host_error)?;
                    let created = n.labels.get(LABEL_JOB) == Some(&job);
                    Ok::<_, HostError>(serde_json::json!({"id": n.id, "created": created}))
                },
            )
            .await?;
        let id = answer["id"].as_str().unwrap_or_default().to_owned();
        let created = answer["created"].as_bool().unwrap_or(false);
        if created {
            self.scope
                .record(Event::Acquired {
                    resource: RESOURCE_NETWORK.into(),
                    id: id.clone(),
                    name: name.clone(),
                })
                .await?;
        }
        self.scope.networks.insert(name.clone());
        Ok(NetworkInfo { name, id, created })
    }

    async fn remove_network_at_commit(&mut self, name: String) -> HostResult<()> {
        self.scope.tick()?;
        self.scope.check_size("network", &name)?;
        // Networks are shared, but only the target whose job created one may
        // ask for its removal (and it goes only once nothing is on it). A
        // journaled read: a replay answers what the job was answered.
        let target = self.scope.target.clone();
        let (journal, probe, owner) = (self.scope.journal.clone(), name.clone(), target.clone());
        let ours: bool = self
            .scope
            .perform(
                Call::ReadNetworkOwned { name: name.clone() },
                None,
                async move {
                    let owned = journal
                        .owned_named(RESOURCE_NETWORK, &probe)
                        .map_err(journal_error)?;
                    HostResult::Ok(owned.iter().any(|o| o.target == owner))
                },
            )
            .await?;
        if !ours {
            return Err(HostError::Denied(format!(
                "network `{name}` was not created by the engine for `{target}`"
            ))
            .into());
        }
        self.scope.defer(Deferred::RemoveNetwork { name }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_targets_volume_names_are_its_own_and_no_other_targets() {
        assert_eq!(
            volume_docker_name("web", None, "data"),
            "deckhand-web-V-data"
        );
        assert_eq!(
            volume_docker_name("web", Some("0a1b"), "data"),
            "deckhand-web-V0a1b-data"
        );
        assert!(is_targets_volume_name("web", "deckhand-web-V-data"));
        assert!(is_targets_volume_name("web", "deckhand-web-V0a1b-db-data"));
        // Target `web-db`'s volume `data` is not target `web`'s `db-data`.
        let other = volume_docker_name("web-db", None, "data");
        assert!(!is_targets_volume_name("web", &other), "{other}");
        assert!(is_targets_volume_name("web-db", &other));
        assert!(!is_targets_volume_name("web", "data"));
        assert!(is_targets_volume_name("web", "deckhand-web-V-Data"));
        assert!(!is_targets_volume_name("web", "deckhand-web-VX-data"));
        assert!(!is_targets_volume_name("web", "deckhand-web-V--data"));
    }
}
