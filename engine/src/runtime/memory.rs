//! [`ContainerRuntime`] in memory, with fault injection: for testing
//! workflows and the engine without Docker, and for benchmarks of the engine
//! alone. Containers "run" as records; pulls report layer progress over a
//! configurable time; any operation can be made to fail or hang.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    ContainerConfig, ContainerRuntime, ContainerState, PullPhase, PullProgress, Result,
    RuntimeError, with_default_tag,
};

/// The operations of [`ContainerRuntime`], to aim faults at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `image_present`
    ImagePresent,
    /// `pull_image`
    Pull,
    /// `create_container`
    Create,
    /// `start_container`
    Start,
    /// `stop_container`
    Stop,
    /// `rename_container`
    Rename,
    /// `remove_container`
    RemoveContainer,
    /// `remove_image`
    RemoveImage,
    /// `inspect_container`
    Inspect,
}

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The call fails with this daemon message.
    Fail(String),
    /// The call never returns (until cancelled, for a pull).
    Hang,
}

#[derive(Debug, Default)]
struct State {
    images: BTreeSet<String>,
    containers: BTreeMap<String, ContainerState>,
    next_id: u64,
    faults: Vec<(Op, Fault, usize)>,
    calls: u64,
    /// Images of interrupted pulls still to land, and when.
    landing: Vec<(String, std::time::Instant)>,
}

/// An in-memory container runtime.
#[derive(Debug)]
pub struct MemoryRuntime {
    state: Mutex<State>,
    pull_time: Duration,
    /// Images whose containers exit at once (code 1) when started.
    crashing: BTreeSet<String>,
    /// Images that cannot be pulled (`manifest unknown`).
    missing: BTreeSet<String>,
    /// An interrupted pull still lands its image this long after.
    late_pull: Option<Duration>,
}

impl Default for MemoryRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRuntime {
    /// A runtime where every image can be pulled, instantly.
    pub fn new() -> Self {
        MemoryRuntime {
            state: Mutex::default(),
            pull_time: Duration::ZERO,
            crashing: BTreeSet::new(),
            missing: BTreeSet::new(),
            late_pull: None,
        }
    }

    /// An interrupted pull still lands its image `after` the interruption,
    /// as a Docker daemon may when the client goes away just before the
    /// pull's last step.
    pub fn with_late_pull_completion(mut self, after: Duration) -> Self {
        self.late_pull = Some(after);
        self
    }

    /// Pulls take this long, reporting progress along the way.
    pub fn with_pull_time(mut self, d: Duration) -> Self {
        self.pull_time = d;
        self
    }

    /// Containers of `image` exit with code 1 as soon as they start.
    pub fn with_crashing_image(mut self, image: &str) -> Self {
        self.crashing.insert(with_default_tag(image));
        self
    }

    /// `image` is not in any registry.
    pub fn with_missing_image(mut self, image: &str) -> Self {
        self.missing.insert(with_default_tag(image));
        self
    }

    /// Put an image in the local store, as if the user had pulled it.
    pub fn add_image(&self, image: &str) {
        self.lock().images.insert(with_default_tag(image));
    }

    /// Make the next `times` calls of `op` fail or hang.
    pub fn inject(&self, op: Op, fault: Fault, times: usize) {
        self.lock().faults.push((op, fault, times));
    }

    /// Images in the local store.
    pub fn images(&self) -> BTreeSet<String> {
        self.lock().images.clone()
    }

    /// Every container, by id.
    pub fn containers(&self) -> BTreeMap<String, ContainerState> {
        self.lock().containers.clone()
    }

    /// How many runtime calls were made.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        let mut state = self.state.lock().expect("memory runtime lock");
        let now = std::time::Instant::now();
        let (landed, waiting) = std::mem::take(&mut state.landing)
            .into_iter()
            .partition::<Vec<_>, _>(|(_, at)| *at <= now);
        state.landing = waiting;
        state
            .images
            .extend(landed.into_iter().map(|(image, _)| image));
        state
    }

    /// Count the call and apply a pending fault for `op`, if any.
    async fn enter(&self, op: Op, cancel: Option<&CancellationToken>) -> Result<()> {
        let fault = {
            let mut s = self.lock();
            s.calls += 1;
            match s.faults.iter_mut().position(|(o, _, n)| *o == op && *n > 0) {
                Some(i) => {
                    s.faults[i].2 -= 1;
                    Some(s.faults[i].1.clone())
                }
                None => None,
            }
        };
        match fault {
            None => Ok(()),
            Some(Fault::Fail(m)) => Err(RuntimeError::Daemon(m)),
            Some(Fault::Hang) => {
                match cancel {
                    Some(c) => c.cancelled().await,
                    None => std::future::pending().await,
                }
                Err(RuntimeError::Cancelled)
            }
        }
    }

    fn container_mut<'a>(s: &'a mut State, id: &str) -> Option<&'a mut ContainerState> {
        if s.containers.contains_key(id) {
            return s.containers.get_mut(id);
        }
        s.containers
            .values_mut()
            .find(|c| c.name == id || (id.len() >= 12 && c.id.starts_with(id)))
    }
}

#[async_trait::async_trait]
impl ContainerRuntime for MemoryRuntime {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn image_present(&self, image: &str) -> Result<bool> {
        self.enter(Op::ImagePresent, None).await?;
        Ok(self.lock().images.contains(&with_default_tag(image)))
    }

    fn pull_abort_grace(&self) -> Duration {
        self.late_pull.unwrap_or_default()
    }

    async fn pull_image(
        &self,
        image: &str,
        progress: &watch::Sender<PullProgress>,
        cancel: &CancellationToken,
    ) -> Result<()> {
        self.enter(Op::Pull, Some(cancel)).await?;
        let reference = with_default_tag(image);
        if self.missing.contains(&reference) {
            return Err(RuntimeError::Pull {
                image: image.to_owned(),
                detail: format!("manifest for {reference} not found: manifest unknown"),
            });
        }
        const LAYERS: u32 = 3;
        const LAYER_BYTES: u64 = 1 << 20;
        let steps = 10u64;
        for i in 1..=steps {
            if !self.pull_time.is_zero() {
                tokio::select! {
                    _ = cancel.cancelled() => {
                        if let Some(after) = self.late_pull {
                            let at = std::time::Instant::now() + after;
                            self.lock().landing.push((reference, at));
                        }
                        return Err(RuntimeError::Cancelled);
                    }
                    _ = tokio::time::sleep(self.pull_time / steps as u32) => {}
                }
            }
            let done = LAYER_BYTES * LAYERS as u64 * i / steps;
            progress.send_replace(PullProgress {
                phase: PullPhase::Downloading,
                layers_done: (LAYERS as u64 * i / steps) as u32,
                layers_total: LAYERS,
                bytes_done: done,
                bytes_total: LAYER_BYTES * LAYERS as u64,
                fraction: Some((i as f64 / steps as f64).min(0.999)),
            });
        }
        self.lock().images.insert(reference);
        Ok(())
    }

    async fn create_container(&self, config: &ContainerConfig) -> Result<String> {
        self.enter(Op::Create, None).await?;
        let image = with_default_tag(&config.image);
        let mut s = self.lock();
        if !s.images.contains(&image) {
            return Err(RuntimeError::NotFound(format!("No such image: {image}")));
        }
        if s.containers.values().any(|c| c.name == config.name) {
            return Err(RuntimeError::Conflict(format!(
                "the container name \"/{}\" is already in use",
                config.name
            )));
        }
        s.next_id += 1;
        let id = format!("{:064x}", s.next_id);
        let state = ContainerState {
            id: id.clone(),
            name: config.name.clone(),
            image,
            running: false,
            health: None,
            exit_code: None,
            labels: config.labels.clone(),
        };
        s.containers.insert(id.clone(), state);
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.enter(Op::Start, None).await?;
        let mut s = self.lock();
        let c = Self::container_mut(&mut s, id)
            .ok_or_else(|| RuntimeError::NotFound(format!("No such container: {id}")))?;
        if self.crashing.contains(&c.image) {
            c.running = false;
            c.exit_code = Some(1);
        } else {
            c.running = true;
            c.exit_code = None;
        }
        Ok(())
    }

    async fn stop_container(&self, id: &str, _timeout_s: u32) -> Result<()> {
        self.enter(Op::Stop, None).await?;
        let mut s = self.lock();
        let c = Self::container_mut(&mut s, id)
            .ok_or_else(|| RuntimeError::NotFound(format!("No such container: {id}")))?;
        if c.running {
            c.running = false;
            c.exit_code = Some(0);
        }
        Ok(())
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        self.enter(Op::Rename, None).await?;
        let mut s = self.lock();
        if s.containers
            .values()
            .any(|c| c.name == new_name && c.id != id)
        {
            return Err(RuntimeError::Conflict(format!(
                "the container name \"/{new_name}\" is already in use"
            )));
        }
        let c = Self::container_mut(&mut s, id)
            .ok_or_else(|| RuntimeError::NotFound(format!("No such container: {id}")))?;
        c.name = new_name.to_owned();
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.enter(Op::RemoveContainer, None).await?;
        let mut s = self.lock();
        if let Some(key) = Self::container_mut(&mut s, id).map(|c| c.id.clone()) {
            s.containers.remove(&key);
        }
        Ok(())
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        self.enter(Op::RemoveImage, None).await?;
        let reference = with_default_tag(image);
        let mut s = self.lock();
        if s.containers.values().any(|c| c.image == reference) {
            return Err(RuntimeError::Conflict(format!(
                "image {reference} is being used by a container"
            )));
        }
        s.images.remove(&reference);
        Ok(())
    }

    async fn inspect_container(&self, id_or_name: &str) -> Result<Option<ContainerState>> {
        self.enter(Op::Inspect, None).await?;
        let mut s = self.lock();
        Ok(Self::container_mut(&mut s, id_or_name).map(|c| c.clone()))
    }
}
