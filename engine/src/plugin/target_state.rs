//! Host side of the `state` interface: the target's committed revision, and
//! the revision (or deletion) this job will commit.

use super::bindings::{HostError, HostResult, Revision, state};
use super::host_state::HostState;
use super::scope::journal_error;
use crate::runtime::with_default_tag;
use crate::steps::{Call, Deferred};

fn revision_of(r: crate::journal::RevisionRecord) -> Revision {
    Revision {
        number: r.revision,
        image: r.image,
        container_id: r.container_id,
        spec: r.spec.to_string(),
    }
}

impl HostState {
    /// The current revision or revision `number`: a journaled read.
    pub(super) async fn read_revision(
        &mut self,
        number: Option<u64>,
    ) -> wasmtime::Result<Option<Revision>> {
        let journal = self.scope.journal.clone();
        let target = self.scope.target.clone();
        let read = async move {
            let t = journal.target(&target).map_err(journal_error)?;
            HostResult::Ok(t.and_then(|t| match number {
                None => t.current,
                Some(n) => t.history.into_iter().find(|r| r.revision == n),
            }))
        };
        let found: Option<crate::journal::RevisionRecord> = self
            .scope
            .perform(Call::ReadRevision { number }, None, read)
            .await
            .map_err(|e| e.into_trap("reading the target's revision"))?;
        Ok(found.map(revision_of))
    }
}

impl HostState {
    /// A revision may name only a container this job created, or the one
    /// the target's current revision runs, and only with the image that
    /// container really runs: a revision's image is what teardown and later
    /// upgrades may remove, so it must not be a name the plugin made up.
    fn check_revision_container(
        &self,
        container: &crate::runtime::ContainerState,
        image: &str,
    ) -> HostResult<()> {
        let scope = &self.scope;
        let created_here = scope.created_here(&container.id)?;
        let current = scope
            .journal
            .target(&scope.target)
            .map_err(journal_error)?
            .and_then(|t| t.current)
            .is_some_and(|r| r.container_id == container.id);
        if !created_here && !current {
            return Err(HostError::Denied(format!(
                "container {} was not created by this job and is not `{}`'s current container",
                container.id, scope.target
            ))
            .into());
        }
        if with_default_tag(&container.image) != with_default_tag(image) {
            let shown: String = image.chars().take(200).collect();
            return Err(HostError::Invalid(format!(
                "container {} runs image {}, not {shown}",
                container.id, container.image
            ))
            .into());
        }
        Ok(())
    }
}

impl state::Host for HostState {
    async fn current_revision(&mut self) -> wasmtime::Result<Option<Revision>> {
        self.scope.tick()?;
        self.read_revision(None).await
    }

    async fn lookup_revision(&mut self, number: u64) -> wasmtime::Result<Option<Revision>> {
        self.scope.tick()?;
        self.read_revision(Some(number)).await
    }

    async fn record_revision(
        &mut self,
        image: String,
        container_id: String,
        spec: String,
    ) -> HostResult<u64> {
        self.scope.tick()?;
        for (what, s) in [
            ("image", &image),
            ("container id", &container_id),
            ("spec", &spec),
        ] {
            self.scope.check_size(what, s)?;
        }
        let spec: serde_json::Value = match serde_json::from_str(&spec) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => return Err(HostError::Invalid("spec must be a JSON object".into()).into()),
        };
        let Some(container) = self.scope.inspect(&container_id).await? else {
            return Err(HostError::Denied(format!(
                "container {container_id} is not a container of `{}`",
                self.scope.target
            ))
            .into());
        };
        // Replaying, the record of the deferral holds the answer.
        if self.scope.replay.is_none() {
            self.check_revision_container(&container, &image)?;
        }
        let journal = self.scope.journal.clone();
        let target = self.scope.target.clone();
        let last = async move {
            let t = journal.target(&target).map_err(journal_error)?;
            HostResult::Ok(
                t.and_then(|t| t.history.last().map(|r| r.revision))
                    .unwrap_or(0),
            )
        };
        let last: u64 = self
            .scope
            .perform(Call::ReadLastRevisionNumber, None, last)
            .await?;
        let revision = last + 1;
        self.scope
            .defer(Deferred::CommitRevision {
                revision,
                image,
                container_id: container.id,
                spec,
            })
            .await?;
        Ok(revision)
    }

    async fn delete_target_at_commit(&mut self) -> HostResult<()> {
        self.scope.tick()?;
        self.scope.defer(Deferred::DeleteTarget).await
    }
}
