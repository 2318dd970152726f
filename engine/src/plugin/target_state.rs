//! Host side of the `state` interface: the target's committed revision, and
//! the revision (or deletion) this job will commit.

use super::bindings::{HostError, HostResult, Revision, ServiceRevision, state};
use super::host_state::HostState;
use super::scope::journal_error;
use crate::journal::{RevisionRecord, ServiceRecord};
use crate::runtime::LABEL_SERVICE;
use crate::runtime::with_default_tag;
use crate::steps::{Call, Deferred};
use deckhand_params::MAX_SERVICES;

fn service_of(s: ServiceRecord) -> ServiceRevision {
    ServiceRevision {
        name: s.name,
        image: s.image,
        container_id: s.container_id,
        spec: s.spec.to_string(),
    }
}

fn revision_of(r: RevisionRecord) -> Revision {
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
    ) -> wasmtime::Result<Option<RevisionRecord>> {
        let journal = self.scope.journal.clone();
        let target = self.scope.target.clone();
        let read = async move {
            let t = journal.target(&target).map_err(journal_error)?;
            HostResult::Ok(t.and_then(|t| match number {
                None => t.current,
                Some(n) => t.history.into_iter().find(|r| r.revision == n),
            }))
        };
        self.scope
            .perform(Call::ReadRevision { number }, None, read)
            .await
            .map_err(|e| e.into_trap("reading the target's revision"))
    }
}

impl HostState {
    /// A revision may name only a container this job created, or one the
    /// target's current revision runs (for a stack's service, the one that
    /// runs that service), and only with the image that container really
    /// runs: a revision's image is what teardown and later upgrades may
    /// remove, so it must not be a name the plugin made up. A service's
    /// container must be one created for that service.
    fn check_revision_container(
        &self,
        container: &crate::runtime::ContainerState,
        image: &str,
        service: Option<&str>,
    ) -> HostResult<()> {
        let scope = &self.scope;
        let created_here = scope.created_here(&container.id)?;
        let current = scope
            .journal
            .target(&scope.target)
            .map_err(journal_error)?
            .and_then(|t| t.current)
            .is_some_and(|r| match service {
                None => r.container_id == container.id,
                Some(name) => r
                    .services
                    .iter()
                    .any(|s| s.name == name && s.container_id == container.id),
            });
        if !created_here && !current {
            return Err(HostError::Denied(format!(
                "container {} was not created by this job and is not `{}`'s current container",
                container.id, scope.target
            ))
            .into());
        }
        if container.label(LABEL_SERVICE) != service {
            return Err(HostError::Invalid(format!(
                "container {} was not created for service `{}`",
                container.id,
                service.unwrap_or("")
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

    /// The number the revision this job records gets: one more than the
    /// highest the target ever had (a journaled read).
    async fn next_revision_number(&mut self) -> HostResult<u64> {
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
        Ok(last + 1)
    }

    /// `spec` as a JSON object, or why not.
    fn spec_object(what: &str, spec: &str) -> HostResult<serde_json::Value> {
        match serde_json::from_str(spec) {
            Ok(v @ serde_json::Value::Object(_)) => Ok(v),
            _ => Err(HostError::Invalid(format!("{what} must be a JSON object")).into()),
        }
    }

    /// The container `id` of the target that a revision names, checked
    /// (live; a replay's record of the deferral holds the answer).
    async fn revision_container(
        &mut self,
        id: &str,
        image: &str,
        service: Option<&str>,
    ) -> HostResult<String> {
        let Some(container) = self.scope.inspect(id).await? else {
            return Err(HostError::Denied(format!(
                "container {id} is not a container of `{}`",
                self.scope.target
            ))
            .into());
        };
        if self.scope.replay.is_none() {
            self.check_revision_container(&container, image, service)?;
        }
        Ok(container.id)
    }
}

impl state::Host for HostState {
    async fn current_revision(&mut self) -> wasmtime::Result<Option<Revision>> {
        self.scope.tick()?;
        Ok(self.read_revision(None).await?.map(revision_of))
    }

    async fn lookup_revision(&mut self, number: u64) -> wasmtime::Result<Option<Revision>> {
        self.scope.tick()?;
        Ok(self.read_revision(Some(number)).await?.map(revision_of))
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
        let spec = Self::spec_object("spec", &spec)?;
        let container_id = self.revision_container(&container_id, &image, None).await?;
        let revision = self.next_revision_number().await?;
        self.scope
            .defer(Deferred::CommitRevision {
                revision,
                image,
                container_id,
                spec,
                services: Vec::new(),
            })
            .await?;
        Ok(revision)
    }

    async fn delete_target_at_commit(&mut self) -> HostResult<()> {
        self.scope.tick()?;
        self.scope.defer(Deferred::DeleteTarget).await
    }

    async fn revision_services(
        &mut self,
        number: Option<u64>,
    ) -> wasmtime::Result<Vec<ServiceRevision>> {
        self.scope.tick()?;
        Ok(self
            .read_revision(number)
            .await?
            .map_or_else(Vec::new, |r| {
                r.services.into_iter().map(service_of).collect()
            }))
    }

    async fn record_stack_revision(
        &mut self,
        spec: String,
        services: Vec<ServiceRevision>,
    ) -> HostResult<u64> {
        self.scope.tick()?;
        self.scope.check_size("stack spec", &spec)?;
        if services.is_empty() || services.len() > MAX_SERVICES {
            return Err(HostError::Invalid(format!(
                "a stack has 1–{MAX_SERVICES} services (got {})",
                services.len()
            ))
            .into());
        }
        let spec = Self::spec_object("the stack spec", &spec)?;
        let mut recorded: Vec<ServiceRecord> = Vec::with_capacity(services.len());
        for s in services {
            for (what, text) in [
                ("service name", &s.name),
                ("image", &s.image),
                ("container id", &s.container_id),
                ("spec", &s.spec),
            ] {
                self.scope.check_size(what, text)?;
            }
            if !crate::ownership::valid_service(&s.name) {
                return Err(HostError::Invalid(format!(
                    "`{}` is not a service name (1–63 characters from a-z, 0-9, `_`, `.`, `-`)",
                    s.name.chars().take(80).collect::<String>()
                ))
                .into());
            }
            if recorded.iter().any(|r| r.name == s.name) {
                return Err(HostError::Invalid(format!("service `{}` twice", s.name)).into());
            }
            let spec = Self::spec_object(&format!("the spec of service `{}`", s.name), &s.spec)?;
            let container_id = self
                .revision_container(&s.container_id, &s.image, Some(&s.name))
                .await?;
            if recorded.iter().any(|r| r.container_id == container_id) {
                return Err(HostError::Invalid(format!(
                    "container {container_id} runs two services"
                ))
                .into());
            }
            recorded.push(ServiceRecord {
                name: s.name,
                image: s.image,
                container_id,
                spec,
            });
        }
        let revision = self.next_revision_number().await?;
        self.scope
            .defer(Deferred::CommitRevision {
                revision,
                image: String::new(),
                container_id: String::new(),
                spec,
                services: recorded,
            })
            .await?;
        Ok(revision)
    }
}
