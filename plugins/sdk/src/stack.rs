//! Stacks: a target that runs the services of a Compose file
//! ([`Stack`]), installed, upgraded, rolled back and torn down as one job,
//! with the same all-or-nothing guarantee as one container (every call
//! below is journaled with its undo by the host).
//!
//! Names are Compose's, scoped to the target as Compose scopes them to
//! the project:
//!
//! | what | Docker name |
//! | --- | --- |
//! | service `db` of target `shop` | container `deckhand-shop-db`, labelled `io.deckhand.service=db` |
//! | volume `data` | `deckhand-shop-V-data` |
//! | network `default` (a service's unless it names others), `back` | `deckhand-shop-N-default`, `deckhand-shop-N-back` |
//! | a network or volume with `name:` or `external: true` | that name |
//!
//! On each of its networks a service answers to its own name, so `web`
//! reaches `db` at `db`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{
    ContainerSpec, HostError, ImagePull, NetworkSpec, Permissions, Prepared, Revision,
    ServiceRevision, Spec, SpecExt, container, job, live_name, network, state, volume,
};
use deckhand_params::{Condition, Service, Stack, StackParams};

/// Seconds each service may take to run (and be healthy, when it has a
/// check) unless the params say otherwise.
pub const DEFAULT_HEALTH_TIMEOUT_S: u32 = 60;

/// What a stack revision stores as its spec: the stack as it was read
/// (interpolated and checked), and the job settings that later upgrades
/// keep when they do not set them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackRecord {
    /// The stack.
    pub stack: Stack,
    /// [`StackParams::health_timeout_s`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_timeout_s: Option<u32>,
    /// [`StackParams::snapshot_volumes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_volumes: Option<bool>,
}

impl StackRecord {
    /// The stack record a revision stores (`None`: the revision is one
    /// container).
    pub fn of_revision(rev: &Revision) -> Result<Option<StackRecord>, String> {
        if !rev.container_id.is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&rev.spec)
            .map(Some)
            .map_err(|e| format!("revision {} has an unreadable stack: {e}", rev.number))
    }

    fn timeout(&self) -> u32 {
        self.health_timeout_s.unwrap_or(DEFAULT_HEALTH_TIMEOUT_S)
    }

    /// The settings an upgrade does not set keep `before`'s.
    pub fn over(mut self, before: Option<&StackRecord>) -> StackRecord {
        if let Some(b) = before {
            self.health_timeout_s = self.health_timeout_s.or(b.health_timeout_s);
            self.snapshot_volumes = self.snapshot_volumes.or(b.snapshot_volumes);
        }
        self
    }
}

/// The job's params as a stack's, when they are one (`{"compose": …}`).
pub fn params() -> Result<Option<StackParams>, String> {
    let raw: serde_json::Value = crate::params()?;
    if !deckhand_params::is_stack_params(&raw) {
        return Ok(None);
    }
    serde_json::from_value(raw)
        .map(Some)
        .map_err(|e| format!("invalid params: {e}"))
}

/// The stack `params` describe. Bind mounts are the host's to allow or
/// refuse (it checked them against the server's setting).
pub fn read(params: &StackParams) -> Result<StackRecord, String> {
    Ok(StackRecord {
        stack: params.stack(&Permissions { bind_mounts: true })?,
        health_timeout_s: params.health_timeout_s,
        snapshot_volumes: params.snapshot_volumes,
    })
}

/// The Docker name of the stack network `name` of `target`.
fn network_docker_name(target: &str, stack: &Stack, name: &str) -> String {
    match stack.networks.iter().find(|n| n.name == name) {
        Some(n) if n.docker_name.is_some() => n.docker_name.clone().unwrap_or_default(),
        _ => format!("deckhand-{target}-N-{name}"),
    }
}

/// The stack's volumes and networks, made available: each volume the
/// target has is its newest (`volume.list-volumes`), another is
/// `volume.ensure-volume`d; a volume with `name:` or `external: true` is
/// `volume.use-named-volume`d (an external one must exist); each network
/// `network.ensure-network`ed. An external network must exist already (one
/// the call had to create is undone by the rollback).
pub struct Resources {
    /// Volume key → Docker name, as [`SpecExt::container_on`] mounts them.
    pub prepared: Prepared,
}

/// Make `stack`'s volumes and networks available for `target`.
pub fn prepare(target: &str, stack: &Stack) -> Result<Resources, String> {
    let mut prepared = Prepared::default();
    for n in &stack.networks {
        let docker = network_docker_name(target, stack, &n.name);
        let info = network::ensure_network(&docker)?;
        if n.external && info.created {
            return Err(format!("external network `{docker}` does not exist"));
        }
    }
    if !stack.volumes.is_empty() {
        let existing = volume::list_volumes()?;
        for v in &stack.volumes {
            if let Some(docker_name) = &v.docker_name {
                // Shared beyond the target: used in place, never copied.
                let info = volume::use_named_volume(docker_name, !v.external)?;
                prepared.volumes.insert(v.name.clone(), info.docker_name);
                continue;
            }
            match existing.iter().rev().find(|e| e.name == v.name) {
                Some(e) => {
                    prepared
                        .volumes
                        .insert(v.name.clone(), e.docker_name.clone());
                }
                None => {
                    let info = volume::ensure_volume(&v.name)?;
                    if info.created {
                        prepared.created.insert(v.name.clone());
                    }
                    prepared.volumes.insert(v.name.clone(), info.docker_name);
                }
            }
        }
    }
    Ok(Resources { prepared })
}

/// The container spec of `service` under `name`, its networks given their
/// Docker names.
fn container_of(
    target: &str,
    stack: &Stack,
    service: &Service,
    name: String,
    resources: &Resources,
) -> Result<ContainerSpec, String> {
    let mut spec = service.spec.clone();
    spec.networks = spec.networks.map(|networks| {
        networks
            .into_iter()
            .map(|n| NetworkSpec {
                name: network_docker_name(target, stack, &n.name),
                aliases: n.aliases,
            })
            .collect()
    });
    spec.container_on(name, &resources.prepared)
}

/// Services another waits for until they complete: they run once and exit,
/// so "running and healthy" is not what they are waited for.
fn one_shots(stack: &Stack) -> BTreeSet<&str> {
    stack
        .services
        .iter()
        .flat_map(|s| &s.depends_on)
        .filter(|d| d.condition == Condition::CompletedSuccessfully)
        .map(|d| d.service.as_str())
        .collect()
}

/// Wait until what `service` depends on is as its conditions say: started
/// (it is, having started before), healthy, or completed with code 0.
fn wait_for_dependencies(
    service: &Service,
    ids: &BTreeMap<String, String>,
    timeout: u32,
) -> Result<(), String> {
    for d in &service.depends_on {
        let id = ids
            .get(&d.service)
            .ok_or_else(|| format!("service `{}` has not started", d.service))?;
        match d.condition {
            Condition::Started => {}
            Condition::Healthy => {
                job::set_phase("waiting_dependencies");
                container::wait_healthy(id, timeout)?;
            }
            Condition::CompletedSuccessfully => {
                job::set_phase("waiting_dependencies");
                let code = container::wait_exited(id, timeout)?;
                if code != 0 {
                    return Err(format!(
                        "service `{}` exited with code {code}; `{}` waits for it to complete successfully",
                        d.service, service.name
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Pull the images of `services` at once (the host pulls an image that
/// several services run once), each labelled with its service.
fn pull_images<'a>(services: impl Iterator<Item = &'a Service>) -> Result<(), String> {
    let pulls = services
        .map(|s| {
            Ok(ImagePull {
                image: s.spec.require_image()?.to_owned(),
                label: s.name.clone(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    if !pulls.is_empty() {
        container::pull_images(&pulls)?;
    }
    Ok(())
}

/// The revision's record of each service.
fn service_revisions(
    stack: &Stack,
    ids: &BTreeMap<String, String>,
) -> Result<Vec<ServiceRevision>, String> {
    stack
        .services
        .iter()
        .map(|s| {
            Ok(ServiceRevision {
                name: s.name.clone(),
                image: s.spec.require_image()?.to_owned(),
                container_id: ids
                    .get(&s.name)
                    .cloned()
                    .ok_or_else(|| format!("service `{}` has no container", s.name))?,
                spec: s.spec.to_json(),
            })
        })
        .collect()
}

/// Record the stack revision: `record` with each service's container.
fn record_revision(record: &StackRecord, ids: &BTreeMap<String, String>) -> Result<u64, String> {
    let spec = serde_json::to_string(record).map_err(|e| e.to_string())?;
    Ok(state::record_stack_revision(
        &spec,
        &service_revisions(&record.stack, ids)?,
    )?)
}

/// The container name of `service` of `target`.
pub fn service_name(target: &str, service: &str) -> String {
    format!("{}-{service}", live_name(target))
}

/// Create the containers of `services` at once (`container.create-containers`),
/// each named `name(service)`: their ids, in the same order.
fn create_all<'a>(
    target: &str,
    stack: &Stack,
    services: impl Iterator<Item = &'a Service>,
    resources: &Resources,
    name: impl Fn(&str) -> String,
) -> Result<Vec<String>, String> {
    let specs = services
        .map(|s| container_of(target, stack, s, name(&s.name), resources))
        .collect::<Result<Vec<_>, String>>()?;
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    Ok(container::create_containers(&specs)?)
}

/// Install `record`'s stack on the job's target: volumes and networks →
/// pull every image at once → create every container at once → in start
/// order, start each service once what it depends on is as its condition
/// says → wait until every service runs (and is healthy, when it has a
/// check) → record the revision.
pub fn install(record: &StackRecord) -> Result<u64, String> {
    let target = job::target();
    let stack = &record.stack;
    let resources = prepare(&target, stack)?;
    pull_images(stack.services.iter())?;
    let timeout = record.timeout();
    // Creating a container waits for nothing: every one at once.
    let created = create_all(&target, stack, stack.services.iter(), &resources, |name| {
        service_name(&target, name)
    })?;
    let mut ids = BTreeMap::new();
    for (service, id) in stack.services.iter().zip(created) {
        wait_for_dependencies(service, &ids, timeout)?;
        container::start_container(&id)?;
        ids.insert(service.name.clone(), id);
    }
    wait_all_healthy(stack, &ids, None, timeout)?;
    record_revision(record, &ids)
}

/// Wait until each service (of `only`, when given) runs and is healthy —
/// or, for a one-shot, has completed with code 0: a changed one-shot that
/// no changed service waited for is checked here, so that it cannot fail
/// unseen.
fn wait_all_healthy(
    stack: &Stack,
    ids: &BTreeMap<String, String>,
    only: Option<&BTreeSet<String>>,
    timeout: u32,
) -> Result<(), String> {
    let one_shots = one_shots(stack);
    for s in &stack.services {
        if only.is_some_and(|o| !o.contains(&s.name)) {
            continue;
        }
        let id = &ids[&s.name];
        if one_shots.contains(s.name.as_str()) {
            let code = container::wait_exited(id, timeout)?;
            if code != 0 {
                return Err(format!("service `{}` exited with code {code}", s.name));
            }
        } else {
            container::wait_healthy(id, timeout)?;
        }
    }
    Ok(())
}

/// The stop grace a service's spec gives its container.
fn stop_timeout(spec: &str) -> u32 {
    serde_json::from_str::<Spec>(spec)
        .ok()
        .and_then(|s| s.stop_timeout_s)
        .unwrap_or(10)
}

/// Whether `old`'s container still runs the image its name points at now
/// (not when the container is gone).
fn runs_its_image(old: &ServiceRevision) -> Result<bool, String> {
    match container::runs_image(&old.container_id, &old.image) {
        Ok(runs) => Ok(runs),
        Err(HostError::NotFound(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether service `new` runs as `old` does: same image, same spec.
fn unchanged(old: &ServiceRevision, new: &Service) -> bool {
    new.spec.image.as_deref() == Some(old.image.as_str())
        && serde_json::from_str::<Spec>(&old.spec).ok().as_ref() == Some(&new.spec)
}

/// Replace the target's stack (the current revision's `old` services) with
/// `record`'s, atomically: volumes and networks → pull every service's
/// image, at once; a service changed when its image or spec did, or when
/// its name now points at another image → stop the services that are gone →
/// create every changed service's new container under a temporary name, at
/// once → in start order, for each changed service: stop and set aside its
/// old container, give the new one the service's name and start it → wait until every changed service is healthy → record
/// the revision. Services whose image (by id) and spec did not change keep
/// running, the same containers. The old containers (and images nothing uses then)
/// are removed only at commit; if anything fails, the host's rollback puts
/// every old container back, same ids, running under its name.
pub fn upgrade(old: &[ServiceRevision], record: &StackRecord) -> Result<u64, String> {
    let target = job::target();
    let stack = &record.stack;
    let timeout = record.timeout();
    let resources = prepare(&target, stack)?;
    let previous = |name: &str| old.iter().find(|o| o.name == name);
    // Every image is asked for again: a name that now points at another
    // image (a new digest behind the same tag) changes its services too.
    pull_images(stack.services.iter())?;
    let mut changed = BTreeSet::new();
    for s in &stack.services {
        let same = match previous(&s.name) {
            Some(o) if unchanged(o, s) => runs_its_image(o)?,
            _ => false,
        };
        if !same {
            changed.insert(s.name.clone());
        }
    }
    let mut resources = resources;
    let originals = if record.snapshot_volumes == Some(true) {
        snapshot_volumes(stack, old, &changed, &mut resources)?
    } else {
        Vec::new()
    };
    // Services that are gone stop first, last started first.
    let mut set_aside = Vec::new();
    for o in old.iter().rev() {
        if stack.service(&o.name).is_none()
            && let Some(c) = container::inspect_container(&o.container_id)?
        {
            if c.running {
                container::stop_container(&c.id, stop_timeout(&o.spec))?;
            }
            set_aside.push(c.id);
        }
    }
    let mut ids: BTreeMap<String, String> = old
        .iter()
        .map(|o| (o.name.clone(), o.container_id.clone()))
        .collect();
    // The changed services' new containers, each under a temporary name,
    // all created at once.
    let replaced: Vec<&Service> = stack
        .services
        .iter()
        .filter(|s| changed.contains(&s.name))
        .collect();
    let nexts = create_all(
        &target,
        stack,
        replaced.iter().copied(),
        &resources,
        |name| format!("{}-Next", service_name(&target, name)),
    )?;
    for (service, next) in replaced.into_iter().zip(nexts) {
        wait_for_dependencies(service, &ids, timeout)?;
        let live = service_name(&target, &service.name);
        if let Some(o) = previous(&service.name)
            && let Some(c) = container::inspect_container(&o.container_id)?
        {
            if c.running {
                container::stop_container(&c.id, stop_timeout(&o.spec))?;
            }
            container::rename_container(&c.id, &format!("{live}-Prev"))?;
            set_aside.push(c.id);
        }
        container::rename_container(&next, &live)?;
        container::start_container(&next)?;
        ids.insert(service.name.clone(), next);
    }
    ids.retain(|name, _| stack.service(name).is_some());
    wait_all_healthy(stack, &ids, Some(&changed), timeout)?;
    let revision = record_revision(record, &ids)?;
    for id in set_aside {
        container::remove_container_at_commit(&id)?;
    }
    let still_used: BTreeSet<&str> = stack
        .services
        .iter()
        .filter_map(|s| s.spec.image.as_deref())
        .collect();
    let mut released = BTreeSet::new();
    for o in old {
        if !still_used.contains(o.image.as_str()) && released.insert(o.image.as_str()) {
            container::remove_image_at_commit(&o.image)?;
        }
    }
    for original in originals {
        volume::remove_volume_at_commit(&original)?;
    }
    Ok(revision)
}

/// The volumes of `snapshot_volumes`: each of the target's own volumes
/// (not one shared with `name:` or `external`) that it had before, that
/// changed services mount and no unchanged service does (that one keeps
/// running on it), is copied while every old container mounting it
/// is stopped, and the new containers mount the copy. The originals are
/// returned, to be removed at commit; until then a rollback finds them as
/// they were.
fn snapshot_volumes(
    stack: &Stack,
    old: &[ServiceRevision],
    changed: &BTreeSet<String>,
    resources: &mut Resources,
) -> Result<Vec<String>, String> {
    let mounts = |spec: &Spec| -> Vec<String> {
        spec.volume_specs()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| match v.source {
                crate::VolumeSource::Named(n) => Some(n),
                crate::VolumeSource::Bind(_) => None,
            })
            .collect()
    };
    let kept_on: BTreeSet<String> = stack
        .services
        .iter()
        .filter(|s| !changed.contains(&s.name))
        .flat_map(|s| mounts(&s.spec))
        .collect();
    // A volume shared beyond the target (`name:`, external) is not copied.
    let shared: BTreeSet<&str> = stack
        .volumes
        .iter()
        .filter(|v| v.docker_name.is_some())
        .map(|v| v.name.as_str())
        .collect();
    let copied: BTreeSet<String> = stack
        .services
        .iter()
        .filter(|s| changed.contains(&s.name))
        .flat_map(|s| mounts(&s.spec))
        .filter(|v| {
            !kept_on.contains(v)
                && !resources.prepared.created.contains(v)
                && !shared.contains(v.as_str())
        })
        .collect();
    if copied.is_empty() {
        return Ok(Vec::new());
    }
    // Stop every old container that mounts one of them.
    for o in old {
        let spec: Spec = serde_json::from_str(&o.spec).unwrap_or_default();
        if mounts(&spec).iter().any(|v| copied.contains(v))
            && let Some(c) = container::inspect_container(&o.container_id)?
            && c.running
        {
            container::stop_container(&c.id, stop_timeout(&o.spec))?;
        }
    }
    let mut originals = Vec::new();
    for name in copied {
        let Some(original) = resources.prepared.volumes.get(&name).cloned() else {
            continue;
        };
        let copy = volume::snapshot_volume(&name, &original)?;
        resources.prepared.volumes.insert(name, copy.docker_name);
        originals.push(original);
    }
    Ok(originals)
}

/// Stop the stack's services, last started first, and remove them, their
/// images, the stack's own networks (those the engine created for it) and,
/// with `remove_volumes`, its volumes, all at commit; then forget the
/// target.
pub fn teardown(
    current: &Revision,
    services: &[ServiceRevision],
    remove_volumes: bool,
) -> Result<(), String> {
    let target = job::target();
    for s in services.iter().rev() {
        if let Some(c) = container::inspect_container(&s.container_id)? {
            if c.running {
                container::stop_container(&c.id, stop_timeout(&s.spec))?;
            }
            container::remove_container_at_commit(&c.id)?;
        }
    }
    state::delete_target_at_commit()?;
    let mut images = BTreeSet::new();
    for s in services {
        if images.insert(s.image.as_str()) {
            container::remove_image_at_commit(&s.image)?;
        }
    }
    if let Some(record) = StackRecord::of_revision(current)? {
        for n in record.stack.networks.iter().filter(|n| !n.external) {
            let docker = network_docker_name(&target, &record.stack, &n.name);
            match network::remove_network_at_commit(&docker) {
                Ok(()) | Err(HostError::Denied(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if remove_volumes {
        for v in volume::list_volumes()? {
            volume::remove_volume_at_commit(&v.docker_name)?;
        }
    }
    Ok(())
}
