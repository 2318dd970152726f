//! Host side of the `container` interface: each call checks the plugin may
//! make it (the container belongs to the job's target), journals its intent
//! and undo, performs it on the runtime, and journals the result.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::bindings::{ContainerInfo, ContainerSpec, HostError, container};
use super::host_state::HostState;
use super::scope::{JobScope, host_error};
use crate::journal::{Event, Progress};
use crate::runtime::{ContainerConfig, ContainerState, LABEL_JOB, LABEL_MANAGED, LABEL_TARGET, PullProgress, RuntimeError};
use crate::steps::{Call, Compensation, Deferred};

type HostResult<T> = wasmtime::Result<Result<T, HostError>>;

/// Return the plugin-visible error from a `Result<_, HostError>` early.
macro_rules! check {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

fn info_of(s: ContainerState) -> ContainerInfo {
    ContainerInfo { id: s.id, name: s.name, image: s.image, running: s.running, health: s.health, exit_code: s.exit_code }
}

fn progress_of(p: &PullProgress) -> Progress {
    Progress {
        fraction: p.fraction,
        layers_done: p.layers_done,
        layers_total: p.layers_total,
        bytes_done: p.bytes_done,
        bytes_total: p.bytes_total,
    }
}

impl JobScope {
    /// The container `id`, if it belongs to this job's target.
    async fn owned_container(&self, id: &str) -> Result<ContainerState, HostError> {
        let scope = self;
        scope.check_size("container id", id)?;
        let state = scope.runtime.inspect_container(id).await.map_err(host_error)?;
        match state {
            Some(s) if s.label(LABEL_MANAGED) == Some("true") && s.label(LABEL_TARGET) == Some(scope.target.as_str()) => Ok(s),
            Some(_) => {
                let why = format!("container {id} does not belong to target `{}`", scope.target);
                // Attempts on others' containers are on the record.
                let _ = scope.journal.append(&scope.job_id, Event::Log { level: "warn".into(), message: format!("denied: {why}") }).await;
                Err(HostError::Denied(why))
            }
            None => Err(HostError::NotFound(format!("no container {id}"))),
        }
    }

    /// Pull `image`, journaling coalesced progress, failing when no progress
    /// arrives for the stall timeout.
    async fn pull_with_progress(&self, image: &str) -> wasmtime::Result<Result<(), RuntimeError>> {
        let scope = self;
        let (tx, mut rx) = watch::channel(PullProgress {
            phase: crate::runtime::PullPhase::Resolving,
            layers_done: 0,
            layers_total: 0,
            bytes_done: 0,
            bytes_total: 0,
            fraction: None,
        });
        let pull = scope.runtime.pull_image(image, &tx, &scope.cancel);
        tokio::pin!(pull);
        let mut last_written = Instant::now() - scope.settings.progress_interval;
        let mut unwritten: Option<PullProgress> = None;
        let result = loop {
            let flush_in = scope.settings.progress_interval.saturating_sub(last_written.elapsed());
            tokio::select! {
                r = &mut pull => break r,
                changed = tokio::time::timeout(scope.settings.stall_timeout, rx.changed()) => match changed {
                    Err(_) => break Err(RuntimeError::Stalled { seconds: scope.settings.stall_timeout.as_secs() }),
                    Ok(Err(_)) => {}
                    Ok(Ok(())) => unwritten = Some(rx.borrow_and_update().clone()),
                },
                _ = tokio::time::sleep(flush_in), if unwritten.is_some() => {}
            }
            // Coalesce: at most one progress record per interval.
            if last_written.elapsed() >= scope.settings.progress_interval
                && let Some(p) = unwritten.take()
            {
                scope.record(Event::Progress(progress_of(&p))).await?;
                last_written = Instant::now();
            }
        };
        if result.is_ok() {
            let last = rx.borrow().clone();
            scope.record(Event::Progress(Progress { fraction: Some(1.0), ..progress_of(&last) })).await?;
        }
        Ok(result)
    }

    /// The names a container of this target may have.
    fn check_name(&self, name: &str) -> Result<(), HostError> {
        let live = format!("deckhand-{}", self.target);
        let ok = name == live
            || name
                .strip_prefix(&format!("{live}-"))
                .is_some_and(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
        if ok { Ok(()) } else { Err(HostError::Invalid(format!("container name `{name}` must be `{live}` or `{live}-<suffix>`"))) }
    }
}

impl container::Host for HostState {
    async fn image_present(&mut self, image: String) -> HostResult<bool> {
        self.scope.tick()?;
        check!(self.scope.check_size("image", &image));
        Ok(self.scope.runtime.image_present(&image).await.map_err(host_error))
    }

    async fn pull_image(&mut self, image: String) -> HostResult<()> {
        self.scope.tick()?;
        check!(self.scope.check_size("image", &image));
        check!(self.scope.ensure_not_cancelled());
        let present_before = check!(self.scope.runtime.image_present(&image).await.map_err(host_error));
        let call = Call::PullImage { image: image.clone(), present_before };
        let undo = (!present_before).then(|| Compensation::RemoveImage { image: image.clone() });
        let step = self.scope.begin(&call, undo.as_ref()).await?;

        let result = self.scope.pull_with_progress(&image).await?;
        self.scope.end(step, result).await
    }

    async fn create_container(&mut self, spec: ContainerSpec) -> HostResult<String> {
        self.scope.tick()?;
        check!(self.scope.check_name(&spec.name));
        check!(self.scope.check_size("image", &spec.image));
        let arg_bytes: usize = spec.env.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            + spec.cmd.iter().flatten().map(String::len).sum::<usize>();
        if arg_bytes > self.scope.settings.max_arg_bytes {
            return Ok(Err(HostError::Invalid(format!("env and cmd are {arg_bytes} bytes; the limit is {}", self.scope.settings.max_arg_bytes))));
        }
        check!(self.scope.ensure_not_cancelled());
        let scope = &self.scope;
        let config = ContainerConfig {
            name: spec.name.clone(),
            image: spec.image,
            env: spec.env.into_iter().collect(),
            cmd: spec.cmd,
            network: spec.network,
            labels: [
                (LABEL_MANAGED.to_owned(), "true".to_owned()),
                (LABEL_TARGET.to_owned(), scope.target.clone()),
                (LABEL_JOB.to_owned(), scope.job_id.to_string()),
            ]
            .into(),
        };
        let undo = Compensation::RemoveCreatedContainer { name: spec.name, job: scope.job_id.to_string() };
        let call = Call::CreateContainer { config };
        let step = self.scope.begin(&call, Some(&undo)).await?;
        let Call::CreateContainer { config } = call else { unreachable!() };
        let result = self.scope.runtime.create_container(&config).await;
        self.scope.end(step, result).await
    }

    async fn start_container(&mut self, id: String) -> HostResult<()> {
        self.scope.tick()?;
        let c = check!(self.scope.owned_container(&id).await);
        check!(self.scope.ensure_not_cancelled());
        let undo = (!c.running).then(|| Compensation::StopContainer { id: c.id.clone() });
        let step = self.scope.begin(&Call::StartContainer { id: c.id.clone() }, undo.as_ref()).await?;
        let result = self.scope.runtime.start_container(&c.id).await;
        self.scope.end(step, result).await
    }

    async fn stop_container(&mut self, id: String, timeout_s: u32) -> HostResult<()> {
        self.scope.tick()?;
        let c = check!(self.scope.owned_container(&id).await);
        check!(self.scope.ensure_not_cancelled());
        let undo = c.running.then(|| Compensation::StartContainer { id: c.id.clone() });
        let call = Call::StopContainer { id: c.id.clone(), timeout_s, was_running: c.running };
        let step = self.scope.begin(&call, undo.as_ref()).await?;
        let result = self.scope.runtime.stop_container(&c.id, timeout_s.min(300)).await;
        self.scope.end(step, result).await
    }

    async fn rename_container(&mut self, id: String, new_name: String) -> HostResult<()> {
        self.scope.tick()?;
        let c = check!(self.scope.owned_container(&id).await);
        check!(self.scope.check_name(&new_name));
        check!(self.scope.ensure_not_cancelled());
        let undo = Compensation::RenameContainer { id: c.id.clone(), to: c.name.clone() };
        let call = Call::RenameContainer { id: c.id.clone(), from: c.name, to: new_name.clone() };
        let step = self.scope.begin(&call, Some(&undo)).await?;
        let result = self.scope.runtime.rename_container(&c.id, &new_name).await;
        self.scope.end(step, result).await
    }

    async fn remove_container(&mut self, id: String) -> HostResult<()> {
        self.scope.tick()?;
        let c = check!(self.scope.owned_container(&id).await);
        if c.label(LABEL_JOB) != Some(self.scope.job_id.as_str()) {
            return Ok(Err(HostError::Denied(format!(
                "container {id} was not created by this job; use remove-container-at-commit"
            ))));
        }
        check!(self.scope.ensure_not_cancelled());
        let step = self.scope.begin(&Call::RemoveContainer { id: c.id.clone() }, None).await?;
        let result = self.scope.runtime.remove_container(&c.id).await;
        self.scope.end(step, result).await
    }

    async fn remove_container_at_commit(&mut self, id: String) -> HostResult<()> {
        self.scope.tick()?;
        let c = check!(self.scope.owned_container(&id).await);
        self.scope.defer(Deferred::RemoveContainer { id: c.id }).await
    }

    async fn remove_image_at_commit(&mut self, image: String) -> HostResult<()> {
        self.scope.tick()?;
        check!(self.scope.check_size("image", &image));
        self.scope.defer(Deferred::RemoveImage { image }).await
    }

    async fn inspect_container(&mut self, id_or_name: String) -> HostResult<Option<ContainerInfo>> {
        self.scope.tick()?;
        match self.scope.owned_container(&id_or_name).await {
            Ok(c) => Ok(Ok(Some(info_of(c)))),
            // Other targets' containers are invisible, not forbidden.
            Err(HostError::NotFound(_)) | Err(HostError::Denied(_)) => Ok(Ok(None)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn wait_healthy(&mut self, id: String, timeout_s: u32) -> HostResult<ContainerInfo> {
        self.scope.tick()?;
        let c = check!(self.scope.owned_container(&id).await);
        check!(self.scope.ensure_not_cancelled());
        let step = self.scope.begin(&Call::WaitHealthy { id: c.id.clone(), timeout_s }, None).await?;
        let scope = &self.scope;
        let deadline = Instant::now() + Duration::from_secs(timeout_s.into());
        let mut running_since: Option<Instant> = None;
        let result = loop {
            let state = match scope.runtime.inspect_container(&c.id).await {
                Ok(Some(s)) => s,
                Ok(None) => break Err(RuntimeError::NotFound(format!("container {} disappeared", c.id))),
                Err(e) => break Err(e),
            };
            if !state.running {
                let code = state.exit_code.map(|c| format!(" with code {c}")).unwrap_or_default();
                break Err(RuntimeError::Daemon(format!("container {} exited{code}", state.name)));
            }
            match state.health.as_deref() {
                Some("healthy") => break Ok(state),
                Some("unhealthy") => break Err(RuntimeError::Daemon(format!("container {} is unhealthy", state.name))),
                Some(_) => {}
                None => {
                    let since = *running_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= scope.settings.settle_time {
                        break Ok(state);
                    }
                }
            }
            if Instant::now() >= deadline {
                break Err(RuntimeError::Stalled { seconds: timeout_s.into() });
            }
            tokio::select! {
                _ = scope.cancel.cancelled() => break Err(RuntimeError::Cancelled),
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        };
        let result = result.map(info_of);
        let outcome = self.scope.end(step, result.clone().map(|i| i.running)).await?;
        Ok(outcome.and(result.map_err(host_error)))
    }
}
