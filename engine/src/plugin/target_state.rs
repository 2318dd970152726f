//! Host side of the `state` interface: the target's committed revision, and
//! the revision (or deletion) this job will commit.

use super::bindings::{HostError, Revision, state};
use super::host_state::HostState;
use crate::steps::Deferred;

fn revision_of(r: crate::journal::RevisionRecord) -> Revision {
    Revision { number: r.revision, image: r.image, container_id: r.container_id, spec: r.spec.to_string() }
}

impl state::Host for HostState {
    async fn current_revision(&mut self) -> wasmtime::Result<Option<Revision>> {
        self.scope.tick()?;
        let target = self.scope.journal.target(&self.scope.target)?;
        Ok(target.and_then(|t| t.current).map(revision_of))
    }

    async fn lookup_revision(&mut self, number: u64) -> wasmtime::Result<Option<Revision>> {
        self.scope.tick()?;
        let target = self.scope.journal.target(&self.scope.target)?;
        Ok(target.and_then(|t| t.history.into_iter().find(|r| r.revision == number)).map(revision_of))
    }

    async fn record_revision(&mut self, image: String, container_id: String, spec: String) -> wasmtime::Result<Result<u64, HostError>> {
        self.scope.tick()?;
        let scope = &self.scope;
        for (what, s) in [("image", &image), ("container id", &container_id), ("spec", &spec)] {
            if let Err(e) = scope.check_size(what, s) {
                return Ok(Err(e));
            }
        }
        let spec: serde_json::Value = match serde_json::from_str(&spec) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => return Ok(Err(HostError::Invalid("spec must be a JSON object".into()))),
        };
        let container = match scope.runtime.inspect_container(&container_id).await {
            Ok(Some(c)) if c.label(crate::runtime::LABEL_TARGET) == Some(scope.target.as_str()) => c,
            Ok(_) => return Ok(Err(HostError::Denied(format!("container {container_id} is not a container of `{}`", scope.target)))),
            Err(e) => return Ok(Err(super::scope::host_error(e))),
        };
        let last = scope.journal.target(&scope.target)?.and_then(|t| t.history.last().map(|r| r.revision)).unwrap_or(0);
        let revision = last + 1;
        let deferred = self.scope.defer(Deferred::CommitRevision { revision, image, container_id: container.id, spec }).await?;
        Ok(deferred.map(|()| revision))
    }

    async fn delete_target_at_commit(&mut self) -> wasmtime::Result<Result<(), HostError>> {
        self.scope.tick()?;
        self.scope.defer(Deferred::DeleteTarget).await
    }
}
