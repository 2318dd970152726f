//! Host side of the `container` interface: each call checks the plugin may
//! make it (the container belongs to the job's target) and goes through
//! [`JobScope::perform`], which journals its intent and undo, performs it on
//! the runtime, and journals the result. Reads are journaled too, so a
//! replay can answer them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::bindings::{
    ContainerInfo, ContainerSpec, HostCallError, HostError, HostResult, ImagePull, container,
};
use super::host_state::HostState;
use super::pulls::{PullBoard, pull_reporting};
use super::scope::{ConcurrentEffect, JobScope, host_error, journal_error, within};
use crate::journal::{Event, JobId, Journal};
use crate::ownership::MAX_SUFFIX_LEN;
use crate::runtime::{ContainerRuntime, ContainerState, LABEL_MANAGED, LABEL_TARGET, RuntimeError};
use crate::steps::{Call, Compensation, Deferred, RESOURCE_CONTAINER, RESOURCE_IMAGE};

fn info_of(s: ContainerState) -> ContainerInfo {
    ContainerInfo {
        id: s.id,
        name: s.name,
        image: s.image,
        running: s.running,
        health: s.health,
        exit_code: s.exit_code,
    }
}

impl JobScope {
    /// Inspect a container of this job's target (a journaled read). A
    /// container counts as the target's only if the journal records that a
    /// job of the target created that very id (labels can be copied onto
    /// any container). One that is not answers exactly like a missing one,
    /// and nothing about it reaches the journal: the filter runs before the
    /// answer is recorded.
    pub(super) async fn inspect(&mut self, id: &str) -> HostResult<Option<ContainerState>> {
        self.check_size("container id", id)?;
        let rt = self.runtime.clone();
        let (journal, target) = (self.journal.clone(), self.target.clone());
        let id = id.to_owned();
        let found = self
            .perform(
                Call::InspectContainer { id: id.clone() },
                None,
                async move {
                    let Some(found) = rt.inspect_container(&id).await.map_err(host_error)? else {
                        return HostResult::Ok(None);
                    };
                    let ours = crate::ownership::is_targets_container(&journal, &found.id, &target)
                        .map_err(journal_error)?;
                    Ok(ours.then_some(found))
                },
            )
            .await?;
        // Filtered again for records made before the journal kept only
        // the target's containers (replay answers from the record).
        let target = self.target.clone();
        Ok(found.filter(|s| {
            s.label(LABEL_MANAGED) == Some("true") && s.label(LABEL_TARGET) == Some(&target)
        }))
    }

    /// Whether this job created container `id`, as the journal records it.
    pub(super) fn created_here(&self, id: &str) -> HostResult<bool> {
        crate::ownership::created_by_job(&self.journal, id, &self.job_id).map_err(journal_error)
    }

    /// The container `id`, if it belongs to this job's target. Any other —
    /// another target's, the user's, or none at all — is refused with the
    /// same "not found", so that the answer reveals nothing about it; the
    /// refusal is journaled (with the id the plugin gave, nothing else).
    async fn owned_container(&mut self, id: &str) -> HostResult<ContainerState> {
        match self.inspect(id).await? {
            Some(s) => Ok(s),
            None => {
                let why = format!("no container `{id}` of target `{}`", self.target);
                self.record(Event::Log {
                    level: "warn".into(),
                    message: format!("refused: {why}"),
                })
                .await?;
                Err(HostError::NotFound(why).into())
            }
        }
    }

    /// The names a container of this target may have
    /// ([`crate::ownership::container_service`]): its live name
    /// `deckhand-<target>`, `deckhand-<target>-<Suffix>` where the suffix
    /// starts with an uppercase letter, or a stack service's
    /// `deckhand-<target>-<service>[-<Suffix>]`. No target or service name
    /// has an uppercase letter, so no name of one target can be another's
    /// but where a service's name is another target's (`deckhand-p-q` for
    /// service `q` of `p`, or target `p-q`): that claim is checked with the
    /// journal ([`Self::check_service_claim`]). `Ok` tells the service.
    fn check_name<'a>(&self, name: &'a str) -> Result<Option<&'a str>, HostError> {
        let live = format!("deckhand-{}", self.target);
        crate::ownership::container_service(&self.target, name).ok_or_else(|| {
            let shown: String = name.chars().take(96).collect();
            HostError::Invalid(format!(
                "container name `{shown}` must be `{live}`, `{live}-<Suffix>`, or a service's `{live}-<service>[-<Suffix>]`: a suffix starts with an uppercase letter (which no target or service name has, so that no name of one target is another's) and has 1–{MAX_SUFFIX_LEN} characters from A-Z, a-z, 0-9, `_`, `.`, `-`; a service name has 1–63 characters from a-z, 0-9, `_`, `.`, `-`"
            ))
        })
    }

    /// A service's containers are named `deckhand-<target>-<service>`,
    /// which is also target `<target>-<service>`'s live name: the first to
    /// use the name keeps it. A journaled read, so that a replay decides
    /// as the job did.
    async fn check_service_claim(&mut self, service: &str) -> HostResult<()> {
        let stem = format!("{}-{service}", self.target);
        let (journal, target) = (self.journal.clone(), self.target.clone());
        let read_stem = stem.clone();
        let holder: Option<String> = self
            .perform(
                Call::ReadNameHolder { name: stem.clone() },
                None,
                async move {
                    crate::ownership::service_name_holder(&journal, &target, &read_stem)
                        .map_err(journal_error)
                },
            )
            .await?;
        match holder {
            None => Ok(()),
            Some(holder) => Err(HostError::Denied(format!(
                "the name `deckhand-{stem}` of service `{service}` is {holder}'s"
            ))
            .into()),
        }
    }
}

/// The most of a failed container's logs the journal keeps: the end of them.
pub(crate) const EVIDENCE_LOG_BYTES: usize = 64 << 10;

/// How long reading a failed container's logs may take.
const EVIDENCE_READ_LIMIT: Duration = Duration::from_secs(10);

/// Why a health wait failed: `container_failed` when the container itself
/// did (it exited, turned unhealthy, or was not up in time), which is when
/// its logs are worth keeping; not for a cancel, a daemon that cannot be
/// reached, or a container that is gone.
struct WaitFailure {
    error: RuntimeError,
    container_failed: bool,
}

/// Journal the end of failed container `id`'s logs (at most
/// [`EVIDENCE_LOG_BYTES`]) as an `error` log event, so that the evidence
/// outlives the container, which the rollback removes. Never fails: logs
/// that cannot be read are noted as such, and a journal that cannot take
/// the note is only logged (the step's result, written next, will say).
/// Live runs only: this runs inside the step's effect, which a replay
/// never runs. The plugin's own log budget is not used.
async fn keep_log_evidence(
    runtime: &dyn ContainerRuntime,
    journal: &Journal,
    job: &JobId,
    id: &str,
    name: &str,
) {
    let tail = tokio::time::timeout(
        EVIDENCE_READ_LIMIT,
        runtime.log_tail(id, EVIDENCE_LOG_BYTES),
    )
    .await
    .unwrap_or_else(|_| {
        Err(RuntimeError::Stalled {
            seconds: EVIDENCE_READ_LIMIT.as_secs(),
        })
    });
    let event = match tail {
        Ok(text) if text.is_empty() => Event::Log {
            level: "error".into(),
            message: format!("container {name} logs: (empty)"),
        },
        Ok(text) => Event::Log {
            level: "error".into(),
            message: format!(
                "container {name} logs (last {} bytes):\n{}",
                text.len(),
                text.strip_suffix('\n').unwrap_or(&text)
            ),
        },
        Err(e) => Event::Log {
            level: "warn".into(),
            message: format!("container {name} logs could not be read: {e}"),
        },
    };
    if let Err(e) = journal.append(job, event).await {
        tracing::warn!(job = %job, "could not journal the logs of container {name}: {e}");
    }
}

/// Wait until the container runs (and is healthy), or fail.
async fn wait_until_healthy(
    runtime: Arc<dyn ContainerRuntime>,
    cancel: CancellationToken,
    settle: Duration,
    id: String,
    timeout_s: u32,
) -> Result<ContainerState, WaitFailure> {
    let failed = |error| WaitFailure {
        error,
        container_failed: true,
    };
    let other = |error| WaitFailure {
        error,
        container_failed: false,
    };
    let deadline = Instant::now() + Duration::from_secs(timeout_s.into());
    let mut running_since: Option<Instant> = None;
    loop {
        let state = match runtime.inspect_container(&id).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                break Err(other(RuntimeError::NotFound(format!(
                    "container {id} disappeared"
                ))));
            }
            Err(e) => break Err(other(e)),
        };
        if !state.running {
            let code = state
                .exit_code
                .map(|c| format!(" with code {c}"))
                .unwrap_or_default();
            break Err(failed(RuntimeError::Daemon(format!(
                "container {} exited{code}",
                state.name
            ))));
        }
        match state.health.as_deref() {
            Some("healthy") => break Ok(state),
            Some("unhealthy") => {
                break Err(failed(RuntimeError::Daemon(format!(
                    "container {} is unhealthy",
                    state.name
                ))));
            }
            Some(_) => {}
            None => {
                let since = *running_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= settle {
                    break Ok(state);
                }
            }
        }
        if Instant::now() >= deadline {
            break Err(failed(RuntimeError::Stalled {
                seconds: timeout_s.into(),
            }));
        }
        tokio::select! {
            _ = cancel.cancelled() => break Err(other(RuntimeError::Cancelled)),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// Wait until container `id` has exited: its exit code, or why not
/// (gone, the deadline passed, cancelled).
async fn wait_until_exited(
    runtime: Arc<dyn ContainerRuntime>,
    cancel: CancellationToken,
    id: String,
    timeout_s: u32,
) -> Result<i64, RuntimeError> {
    let deadline = Instant::now() + Duration::from_secs(timeout_s.into());
    loop {
        let Some(state) = runtime.inspect_container(&id).await? else {
            return Err(RuntimeError::NotFound(format!(
                "container {id} disappeared"
            )));
        };
        if !state.running {
            return Ok(state.exit_code.unwrap_or(0));
        }
        if Instant::now() >= deadline {
            return Err(RuntimeError::Stalled {
                seconds: timeout_s.into(),
            });
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(RuntimeError::Cancelled),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// The error of several calls made at once: the first, in the order they
/// were asked, that is not a cancel (one failure cancels the others), else
/// the first; `None` when none failed.
fn first_failure(failures: Vec<HostError>) -> Option<HostError> {
    let cancelled = |e: &HostError| matches!(e, HostError::Cancelled);
    match failures.iter().position(|e| !cancelled(e)) {
        Some(i) => failures.into_iter().nth(i),
        None => failures.into_iter().next(),
    }
}

/// The longest label of a pull in `pull-images`, in bytes.
const MAX_PULL_LABEL_BYTES: usize = 64;

/// The most distinct images one `pull-images` call pulls.
const MAX_PULLS_AT_ONCE: usize = deckhand_params::MAX_SERVICES;

/// The most containers one `create-containers` call creates.
const MAX_CREATES_AT_ONCE: usize = deckhand_params::MAX_SERVICES;

/// A create, checked and ready to be journaled: the call, its undo
/// (removing what this job created under that name) and the effect.
struct CreateStep {
    name: String,
    call: Call,
    undo: Option<Compensation>,
    effect: std::pin::Pin<Box<dyn std::future::Future<Output = HostResult<String>> + Send>>,
}

/// A pull, ready to be journaled: the call and its undo (removing the
/// image, unless it was there before).
struct PullStep {
    call: Call,
    undo: Option<Compensation>,
    present_before: bool,
}

impl JobScope {
    /// Whether `image` is in the local store (a journaled read).
    async fn image_present(&mut self, image: &str) -> HostResult<bool> {
        let rt = self.runtime.clone();
        let probe = image.to_owned();
        self.perform(
            Call::ImagePresent {
                image: image.to_owned(),
            },
            None,
            async move { rt.image_present(&probe).await.map_err(host_error) },
        )
        .await
    }

    /// Whether `image` is here already, and the pull step that follows
    /// from it.
    async fn pull_step(&mut self, image: &str) -> HostResult<PullStep> {
        let present_before = self.image_present(image).await?;
        Ok(PullStep {
            call: Call::PullImage {
                image: image.to_owned(),
                present_before,
            },
            undo: (!present_before).then(|| Compensation::RemoveImage {
                image: image.to_owned(),
            }),
            present_before,
        })
    }

    /// Pull `image` as pull `which` of `board`. Its result is the id the
    /// name then points at: what the engine brought here, should the name
    /// move on later.
    fn pull_effect(
        &self,
        board: Arc<PullBoard>,
        which: usize,
        cancel: CancellationToken,
        image: String,
    ) -> impl std::future::Future<Output = HostResult<Option<String>>> + Send + 'static {
        let rt = self.runtime.clone();
        let pull = pull_reporting(
            rt.clone(),
            board,
            which,
            cancel,
            self.settings.stall_timeout,
            image.clone(),
        );
        async move {
            pull.await?;
            rt.image_id(&image).await.map_err(|e| host_error(e).into())
        }
    }

    /// Check `spec` for a create (its name is the target's, its service
    /// name is not another's, the job's container budget allows it) and
    /// make the step that creates it.
    async fn create_step(&mut self, spec: ContainerSpec) -> HostResult<CreateStep> {
        let service = self.check_name(&spec.name)?.map(str::to_owned);
        self.check_size("image", &spec.image)?;
        self.ensure_not_cancelled()?;
        let config = super::container_spec::config_of(spec, service.as_deref(), self)?;
        if let Some(service) = &service {
            self.check_service_claim(service).await?;
        }
        let limit = self.settings.max_containers_per_job;
        JobScope::count(
            &mut self.created,
            limit,
            "containers",
            "DECKHAND_MAX_CONTAINERS",
        )?;
        let undo = Compensation::RemoveCreatedContainer {
            name: config.name.clone(),
            job: self.job_id.to_string(),
        };
        let rt = self.runtime.clone();
        let create = config.clone();
        let effect = async move {
            let id = rt.create_container(&create).await.map_err(host_error)?;
            // Record the daemon's settled result, not just its answer.
            match rt.inspect_container(&id).await.map_err(host_error)? {
                Some(c) if c.name == create.name => Ok(id),
                _ => Err(HostError::Runtime(format!(
                    "the daemon said it created {} as {id}, but no such container exists",
                    create.name
                ))
                .into()),
            }
        };
        Ok(CreateStep {
            name: config.name.clone(),
            call: Call::CreateContainer { config },
            undo: Some(undo),
            effect: Box::pin(effect),
        })
    }

    /// Record container `id`, created by this job as `name`, as the
    /// engine's: by its id, durable before the plugin can name it in
    /// another call.
    async fn acquire_created(&mut self, id: &str, name: String) -> HostResult<()> {
        self.record(Event::Acquired {
            resource: RESOURCE_CONTAINER.into(),
            id: id.to_owned(),
            name,
        })
        .await?;
        Ok(())
    }

    /// Record an image the engine's pull brought here as the engine's.
    async fn acquire_pulled(
        &mut self,
        image: &str,
        present_before: bool,
        id: Option<String>,
    ) -> HostResult<()> {
        if let (false, Some(id)) = (present_before, id) {
            self.record(Event::Acquired {
                resource: RESOURCE_IMAGE.into(),
                id,
                name: crate::runtime::with_default_tag(image),
            })
            .await?;
        }
        Ok(())
    }
}

impl container::Host for HostState {
    async fn image_present(&mut self, image: String) -> HostResult<bool> {
        self.scope.tick()?;
        self.scope.check_size("image", &image)?;
        self.scope.image_present(&image).await
    }

    async fn pull_image(&mut self, image: String) -> HostResult<()> {
        self.scope.tick()?;
        self.scope.check_size("image", &image)?;
        self.scope.ensure_not_cancelled()?;
        let step = self.scope.pull_step(&image).await?;
        let scope = &mut self.scope;
        let board = PullBoard::new(
            scope.journal.clone(),
            scope.job_id.clone(),
            scope.settings.progress_interval,
            vec![(image.clone(), Vec::new())],
            false,
        );
        let effect = scope.pull_effect(board, 0, scope.cancel.clone(), image.clone());
        let id = scope.perform(step.call, step.undo, effect).await?;
        scope.acquire_pulled(&image, step.present_before, id).await
    }

    async fn pull_images(&mut self, pulls: Vec<ImagePull>) -> HostResult<()> {
        self.scope.tick()?;
        let scope = &mut self.scope;
        // Each image once, in the order first asked, with all its labels.
        let mut wanted: Vec<(String, Vec<String>)> = Vec::new();
        for p in pulls {
            scope.check_size("image", &p.image)?;
            if p.label.len() > MAX_PULL_LABEL_BYTES {
                return Err(HostError::Invalid(format!(
                    "a pull's label is {} bytes; the most is {MAX_PULL_LABEL_BYTES}",
                    p.label.len()
                ))
                .into());
            }
            match wanted.iter().position(|(image, _)| *image == p.image) {
                Some(i) => wanted[i].1.push(p.label),
                None if wanted.len() == MAX_PULLS_AT_ONCE => {
                    return Err(HostError::Invalid(format!(
                        "more than {MAX_PULLS_AT_ONCE} images in one pull-images call"
                    ))
                    .into());
                }
                None => wanted.push((p.image, vec![p.label])),
            }
        }
        scope.ensure_not_cancelled()?;
        let mut steps = Vec::with_capacity(wanted.len());
        for (image, _) in &wanted {
            steps.push(scope.pull_step(image).await?);
        }
        let images: Vec<String> = wanted.iter().map(|(image, _)| image.clone()).collect();
        let board = PullBoard::new(
            scope.journal.clone(),
            scope.job_id.clone(),
            scope.settings.progress_interval,
            wanted,
            true,
        );
        let siblings = scope.cancel.child_token();
        let present: Vec<bool> = steps.iter().map(|s| s.present_before).collect();
        let effects = steps
            .into_iter()
            .zip(&images)
            .enumerate()
            .map(|(i, (step, image))| {
                let effect = scope.pull_effect(board.clone(), i, siblings.clone(), image.clone());
                (
                    step.call,
                    step.undo,
                    Box::pin(effect) as ConcurrentEffect<_>,
                )
            })
            .collect();
        let answers = scope.perform_concurrently(effects, &siblings).await?;
        let mut failures = Vec::new();
        for ((image, present_before), answer) in images.iter().zip(present).zip(answers) {
            match answer {
                Ok(id) => scope.acquire_pulled(image, present_before, id).await?,
                Err(e) => failures.push(e),
            }
        }
        first_failure(failures).map_or(Ok(()), |e| Err(e.into()))
    }

    async fn create_container(&mut self, spec: ContainerSpec) -> HostResult<String> {
        self.scope.tick()?;
        let step = self.scope.create_step(spec).await?;
        let name = step.name.clone();
        let id = self
            .scope
            .perform(step.call, step.undo, step.effect)
            .await?;
        self.scope.acquire_created(&id, name).await?;
        Ok(id)
    }

    async fn create_containers(&mut self, specs: Vec<ContainerSpec>) -> HostResult<Vec<String>> {
        self.scope.tick()?;
        if specs.len() > MAX_CREATES_AT_ONCE {
            return Err(HostError::Invalid(format!(
                "{} containers in one create-containers call; the most is {MAX_CREATES_AT_ONCE}",
                specs.len()
            ))
            .into());
        }
        let mut names = std::collections::BTreeSet::new();
        if let Some(twice) = specs.iter().find(|s| !names.insert(s.name.as_str())) {
            return Err(HostError::Invalid(format!(
                "container name `{}` is asked for twice",
                twice.name
            ))
            .into());
        }
        let mut steps = Vec::with_capacity(specs.len());
        for spec in specs {
            steps.push(self.scope.create_step(spec).await?);
        }
        let stall = self.scope.settings.stall_timeout;
        let names: Vec<String> = steps.iter().map(|s| s.name.clone()).collect();
        let effects = steps
            .into_iter()
            .map(|s| {
                // Each create is bounded as one `create-container` is.
                let effect = within(stall, s.effect);
                (s.call, s.undo, Box::pin(effect) as ConcurrentEffect<String>)
            })
            .collect();
        // A create cannot be called off half-way: the others run to their end.
        let unused = CancellationToken::new();
        let answers = self.scope.perform_concurrently(effects, &unused).await?;
        let mut ids = Vec::with_capacity(answers.len());
        let mut failures = Vec::new();
        for (name, answer) in names.into_iter().zip(answers) {
            match answer {
                Ok(id) => {
                    self.scope.acquire_created(&id, name).await?;
                    ids.push(id);
                }
                Err(e) => failures.push(e),
            }
        }
        first_failure(failures).map_or(Ok(ids), |e| Err(e.into()))
    }

    async fn runs_image(&mut self, id: String, image: String) -> HostResult<bool> {
        self.scope.tick()?;
        self.scope.check_size("image", &image)?;
        let c = self.scope.owned_container(&id).await?;
        let rt = self.scope.runtime.clone();
        let probe = image.clone();
        let now: Option<String> = self
            .scope
            .perform(Call::ImageId { image }, None, async move {
                rt.image_id(&probe).await.map_err(host_error)
            })
            .await?;
        Ok(!c.image_id.is_empty() && now.as_deref() == Some(c.image_id.as_str()))
    }

    async fn start_container(&mut self, id: String) -> HostResult<()> {
        self.scope.tick()?;
        let c = self.scope.owned_container(&id).await?;
        self.scope.ensure_not_cancelled()?;
        let undo = (!c.running).then(|| Compensation::StopContainer { id: c.id.clone() });
        let rt = self.scope.runtime.clone();
        let cid = c.id.clone();
        self.scope
            .perform(Call::StartContainer { id: c.id }, undo, async move {
                rt.start_container(&cid).await.map_err(host_error)?;
                // It may exit at once (the health wait reports that), but it
                // must still be there.
                match rt.inspect_container(&cid).await.map_err(host_error)? {
                    Some(_) => Ok(()),
                    None => Err(HostError::Runtime(format!(
                        "container {cid} disappeared while it was started"
                    ))),
                }
            })
            .await
    }

    async fn stop_container(&mut self, id: String, timeout_s: u32) -> HostResult<()> {
        self.scope.tick()?;
        let c = self.scope.owned_container(&id).await?;
        self.scope.ensure_not_cancelled()?;
        let undo = c
            .running
            .then(|| Compensation::StartContainer { id: c.id.clone() });
        let call = Call::StopContainer {
            id: c.id.clone(),
            timeout_s,
            was_running: c.running,
        };
        let rt = self.scope.runtime.clone();
        let grace = self.scope.settings.call_settle_grace;
        self.scope
            .perform(call, undo, async move {
                rt.stop_container(&c.id, timeout_s.min(300))
                    .await
                    .map_err(host_error)?;
                if rt
                    .wait_not_running(&c.id, grace)
                    .await
                    .map_err(host_error)?
                {
                    Ok(())
                } else {
                    Err(HostError::Runtime(format!(
                        "container {} still runs after the daemon said it stopped",
                        c.id
                    )))
                }
            })
            .await
    }

    async fn rename_container(&mut self, id: String, new_name: String) -> HostResult<()> {
        self.scope.tick()?;
        let c = self.scope.owned_container(&id).await?;
        if let Some(service) = self.scope.check_name(&new_name)?.map(str::to_owned) {
            self.scope.check_service_claim(&service).await?;
        }
        self.scope.ensure_not_cancelled()?;
        let undo = Compensation::RenameContainer {
            id: c.id.clone(),
            to: c.name.clone(),
        };
        let call = Call::RenameContainer {
            id: c.id.clone(),
            from: c.name,
            to: new_name.clone(),
        };
        let rt = self.scope.runtime.clone();
        self.scope
            .perform(call, Some(undo), async move {
                rt.rename_container(&c.id, &new_name)
                    .await
                    .map_err(host_error)?;
                match rt.inspect_container(&c.id).await.map_err(host_error)? {
                    Some(now) if now.name == new_name => Ok(()),
                    now => Err(HostError::Runtime(format!(
                        "container {} is not named `{new_name}` after its rename (it is {:?})",
                        c.id,
                        now.map(|s| s.name)
                    ))),
                }
            })
            .await
    }

    async fn remove_container(&mut self, id: String) -> HostResult<()> {
        self.scope.tick()?;
        let c = self.scope.owned_container(&id).await?;
        // Replaying, the record already holds the answer.
        if self.scope.replay.is_none() && !self.scope.created_here(&c.id)? {
            return Err(HostCallError::Plugin(HostError::Denied(format!(
                "container {id} was not created by this job; use remove-container-at-commit"
            ))));
        }
        self.scope.ensure_not_cancelled()?;
        let rt = self.scope.runtime.clone();
        let cid = c.id.clone();
        self.scope
            .perform(
                Call::RemoveContainer { id: c.id.clone() },
                None,
                async move {
                    rt.remove_container(&cid).await.map_err(host_error)?;
                    match rt.inspect_container(&cid).await.map_err(host_error)? {
                        None => Ok(()),
                        Some(_) => Err(HostError::Runtime(format!(
                            "container {cid} still exists after the daemon removed it"
                        ))),
                    }
                },
            )
            .await?;
        self.scope
            .record(Event::Released {
                resource: RESOURCE_CONTAINER.into(),
                id: c.id,
            })
            .await?;
        Ok(())
    }

    async fn remove_container_at_commit(&mut self, id: String) -> HostResult<()> {
        self.scope.tick()?;
        let c = self.scope.owned_container(&id).await?;
        self.scope
            .defer(Deferred::RemoveContainer { id: c.id })
            .await
    }

    async fn remove_image_at_commit(&mut self, image: String) -> HostResult<()> {
        self.scope.tick()?;
        self.scope.check_size("image", &image)?;
        let (journal, target, job) = (
            self.scope.journal.clone(),
            self.scope.target.clone(),
            self.scope.job_id.clone(),
        );
        let probe = image.clone();
        // Whether the job may ask at all; whether the image really goes is
        // decided at commit, by the image id the engine pulled.
        let owned = async move {
            let runs_it = journal
                .target(&target)
                .map_err(journal_error)?
                .is_some_and(|t| t.history.iter().any(|r| r.runs_image(&probe)));
            let pulled_here =
                crate::ownership::pulled_by_job(&journal, &probe, &job).map_err(journal_error)?;
            HostResult::Ok(runs_it || pulled_here)
        };
        if !self
            .scope
            .perform(
                Call::ReadImageOwned {
                    image: image.clone(),
                },
                None,
                owned,
            )
            .await?
        {
            let why = format!(
                "image {image} is not `{}`'s: no revision of it runs it and this job did not pull it",
                self.scope.target
            );
            self.scope
                .record(Event::Log {
                    level: "warn".into(),
                    message: format!("denied: {why}"),
                })
                .await?;
            return Err(HostCallError::Plugin(HostError::Denied(why)));
        }
        self.scope.defer(Deferred::RemoveImage { image }).await
    }

    async fn inspect_container(&mut self, id_or_name: String) -> HostResult<Option<ContainerInfo>> {
        self.scope.tick()?;
        // Other targets' and the user's containers are invisible.
        let found = self.scope.inspect(&id_or_name).await?;
        Ok(found.map(info_of))
    }

    async fn wait_healthy(&mut self, id: String, timeout_s: u32) -> HostResult<ContainerInfo> {
        self.scope.tick()?;
        let c = self.scope.owned_container(&id).await?;
        self.scope.ensure_not_cancelled()?;
        let scope = &mut self.scope;
        let (runtime, journal, job) = (
            scope.runtime.clone(),
            scope.journal.clone(),
            scope.job_id.clone(),
        );
        let wait = wait_until_healthy(
            scope.runtime.clone(),
            scope.cancel.clone(),
            scope.settings.settle_time,
            c.id.clone(),
            timeout_s,
        );
        let (id, name) = (c.id.clone(), c.name.clone());
        // A container that failed is removed by the rollback, its logs with
        // it: their end is journaled first, between the step's intent and
        // its result. Replaying, the effect is not run, so nothing is read.
        let effect = async move {
            match wait.await {
                Ok(state) => Ok(state),
                Err(failure) => {
                    if failure.container_failed {
                        keep_log_evidence(runtime.as_ref(), &journal, &job, &id, &name).await;
                    }
                    Err(host_error(failure.error))
                }
            }
        };
        let state = scope
            .perform(
                Call::WaitHealthy {
                    id: c.id,
                    timeout_s,
                },
                None,
                effect,
            )
            .await?;
        Ok(info_of(state))
    }

    async fn wait_exited(&mut self, id: String, timeout_s: u32) -> HostResult<i64> {
        self.scope.tick()?;
        let c = self.scope.owned_container(&id).await?;
        self.scope.ensure_not_cancelled()?;
        let wait = wait_until_exited(
            self.scope.runtime.clone(),
            self.scope.cancel.clone(),
            c.id.clone(),
            timeout_s,
        );
        self.scope
            .perform(
                Call::WaitExited {
                    id: c.id,
                    timeout_s,
                },
                None,
                async move { wait.await.map_err(host_error) },
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_calls_fail_with_the_first_real_error_not_the_cancels_it_caused() {
        let failed = |m: &str| HostError::Runtime(m.into());
        let picked = first_failure(vec![HostError::Cancelled, failed("a"), failed("b")]);
        assert!(matches!(picked, Some(HostError::Runtime(m)) if m == "a"));
        let picked = first_failure(vec![HostError::Cancelled, HostError::Cancelled]);
        assert!(matches!(picked, Some(HostError::Cancelled)));
        assert!(first_failure(Vec::new()).is_none());
    }
}
