//! [`ContainerRuntime`] in memory, with fault injection: for testing
//! workflows and the engine without Docker, and for benchmarks of the engine
//! alone. Containers "run" as records; pulls report layer progress over a
//! configurable time; any operation can be made to fail or hang.
//!
//! Logs: a container has logs only from what starting it writes — the text
//! given to [`MemoryRuntime::with_image_logs`] for its image, then, for a
//! crashing image ([`MemoryRuntime::with_crashing_image`]), the line
//! [`CRASH_LOG_LINE`]. They go with the container when it is removed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    ContainerConfig, ContainerRuntime, ContainerState, ImageSource, PullPhase, PullProgress,
    Result, RuntimeError, with_default_tag,
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
    /// `ping`
    Ping,
    /// `log_tail`
    Logs,
}

/// The line a container of a crashing image writes to its logs as it exits.
pub const CRASH_LOG_LINE: &str = "app: fatal: cannot start (the memory runtime's crashing image)\n";

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The call fails with this daemon message.
    Fail(String),
    /// The call never returns (until cancelled, for a pull).
    Hang,
    /// The call fails at once as if the connection to the daemon dropped,
    /// but the daemon still carries it out this long after: a request the
    /// engine gave up on (or was killed during) that completes anyway.
    CompleteLate(Duration),
    /// The daemon cannot be reached (connection refused): nothing happens.
    Unreachable,
}

/// An effect of an interrupted call that the "daemon" still applies.
#[derive(Debug, Clone)]
enum LateEffect {
    LandImage(String),
    Create(ContainerState),
    Start(String),
    Stop(String),
    Rename(String, String),
    Remove(String),
}

#[derive(Debug, Default)]
struct State {
    /// Image references and the ids they point at.
    images: BTreeMap<String, String>,
    containers: BTreeMap<String, ContainerState>,
    /// What each container (by id) wrote to its logs.
    logs: BTreeMap<String, String>,
    next_id: u64,
    faults: Vec<(Op, Fault, usize)>,
    calls: u64,
    /// Effects of interrupted calls still to happen, and when.
    late: Vec<(std::time::Instant, LateEffect)>,
}

/// An in-memory container runtime.
#[derive(Debug)]
pub struct MemoryRuntime {
    state: Mutex<State>,
    pull_time: Duration,
    /// Images whose containers exit at once (code 1) when started.
    crashing: Arc<BTreeSet<String>>,
    /// What containers of an image write to their logs when started.
    output: Arc<BTreeMap<String, String>>,
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
            crashing: Arc::new(BTreeSet::new()),
            output: Arc::new(BTreeMap::new()),
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
        Arc::make_mut(&mut self.crashing).insert(with_default_tag(image));
        self
    }

    /// Containers of `image` write `text` to their logs each time they
    /// start (before [`CRASH_LOG_LINE`], for a crashing image).
    pub fn with_image_logs(mut self, image: &str, text: &str) -> Self {
        Arc::make_mut(&mut self.output).insert(with_default_tag(image), text.to_owned());
        self
    }

    /// `image` is not in any registry.
    pub fn with_missing_image(mut self, image: &str) -> Self {
        self.missing.insert(with_default_tag(image));
        self
    }

    /// Point `image` at the image `id`, as if the user had pulled a newer
    /// image of that name (or tagged another one with it).
    pub fn retag_image(&self, image: &str, id: &str) {
        self.lock()
            .images
            .insert(with_default_tag(image), id.to_owned());
    }

    /// Put an image in the local store, as if the user had pulled it.
    pub fn add_image(&self, image: &str) {
        let reference = with_default_tag(image);
        self.lock()
            .images
            .insert(reference.clone(), image_id_of(&reference));
    }

    /// Make the next `times` calls of `op` fail or hang.
    pub fn inject(&self, op: Op, fault: Fault, times: usize) {
        self.lock().faults.push((op, fault, times));
    }

    /// Images in the local store.
    pub fn images(&self) -> BTreeSet<String> {
        self.lock().images.keys().cloned().collect()
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
        let (due, waiting) = std::mem::take(&mut state.late)
            .into_iter()
            .partition::<Vec<_>, _>(|(at, _)| *at <= now);
        state.late = waiting;
        for (_, effect) in due {
            // The daemon's own answer went nowhere: errors are dropped.
            let _ = match effect {
                LateEffect::LandImage(image) => {
                    let id = image_id_of(&image);
                    state.images.insert(image, id);
                    Ok(())
                }
                LateEffect::Create(c) => state.create(c).map(|_| ()),
                LateEffect::Start(id) => state.start(&id, &self.crashing, &self.output),
                LateEffect::Stop(id) => state.stop(&id),
                LateEffect::Rename(id, name) => state.rename(&id, &name),
                LateEffect::Remove(id) => {
                    state.remove(&id);
                    Ok(())
                }
            };
        }
        state
    }

    /// Count the call and apply a pending fault for `op`, if any. `Ok(Some(d))`:
    /// the call is to fail now and take effect `d` later.
    async fn enter(&self, op: Op, cancel: Option<&CancellationToken>) -> Result<Option<Duration>> {
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
            None => Ok(None),
            Some(Fault::Fail(m)) => Err(RuntimeError::Daemon(m)),
            Some(Fault::CompleteLate(after)) => Ok(Some(after)),
            Some(Fault::Unreachable) => Err(RuntimeError::Unreachable {
                endpoint: "memory".into(),
                operation: format!("{op:?}"),
                cause: super::Cause("connection refused".into()),
            }),
            Some(Fault::Hang) => {
                match cancel {
                    Some(c) => c.cancelled().await,
                    None => std::future::pending().await,
                }
                Err(RuntimeError::Cancelled)
            }
        }
    }

    /// Apply `effect` now, or — for a call the fault makes complete late —
    /// after `late`, failing the call as a dropped connection would.
    fn apply<T>(
        &self,
        late: Option<Duration>,
        effect: LateEffect,
        now: impl FnOnce(&mut State) -> Result<T>,
    ) -> Result<T> {
        let mut s = self.lock();
        match late {
            None => now(&mut s),
            Some(after) => {
                s.late.push((std::time::Instant::now() + after, effect));
                Err(RuntimeError::Unreachable {
                    endpoint: "memory".into(),
                    operation: "carry out a call".into(),
                    cause: super::Cause("connection reset by peer".into()),
                })
            }
        }
    }
}

impl State {
    fn container_mut<'a>(&'a mut self, id: &str) -> Option<&'a mut ContainerState> {
        if self.containers.contains_key(id) {
            return self.containers.get_mut(id);
        }
        self.containers
            .values_mut()
            .find(|c| c.name == id || (id.len() >= 12 && c.id.starts_with(id)))
    }

    fn existing(&mut self, id: &str) -> Result<&mut ContainerState> {
        self.container_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(format!("No such container: {id}")))
    }

    fn create(&mut self, c: ContainerState) -> Result<String> {
        if !self.images.contains_key(&c.image) {
            return Err(RuntimeError::NotFound(format!(
                "No such image: {}",
                c.image
            )));
        }
        if self.containers.values().any(|o| o.name == c.name) {
            return Err(RuntimeError::Conflict(format!(
                "the container name \"/{}\" is already in use",
                c.name
            )));
        }
        let id = c.id.clone();
        self.containers.insert(id.clone(), c);
        Ok(id)
    }

    fn start(
        &mut self,
        id: &str,
        crashing: &BTreeSet<String>,
        output: &BTreeMap<String, String>,
    ) -> Result<()> {
        let c = self.existing(id)?;
        if c.running {
            return Ok(());
        }
        let crashes = crashing.contains(&c.image);
        if crashes {
            c.running = false;
            c.exit_code = Some(1);
        } else {
            c.running = true;
            c.exit_code = None;
        }
        let (key, image) = (c.id.clone(), c.image.clone());
        let logs = self.logs.entry(key).or_default();
        if let Some(text) = output.get(&image) {
            logs.push_str(text);
        }
        if crashes {
            logs.push_str(CRASH_LOG_LINE);
        }
        Ok(())
    }

    fn stop(&mut self, id: &str) -> Result<()> {
        let c = self.existing(id)?;
        if c.running {
            c.running = false;
            c.exit_code = Some(0);
        }
        Ok(())
    }

    fn rename(&mut self, id: &str, new_name: &str) -> Result<()> {
        let key = self.existing(id)?.id.clone();
        if self
            .containers
            .values()
            .any(|c| c.name == new_name && c.id != key)
        {
            return Err(RuntimeError::Conflict(format!(
                "the container name \"/{new_name}\" is already in use"
            )));
        }
        self.existing(&key)?.name = new_name.to_owned();
        Ok(())
    }

    fn remove(&mut self, id: &str) {
        if let Some(key) = self.container_mut(id).map(|c| c.id.clone()) {
            self.containers.remove(&key);
            self.logs.remove(&key);
        }
    }
}

#[async_trait::async_trait]
impl ContainerRuntime for MemoryRuntime {
    async fn ping(&self) -> Result<()> {
        self.enter(Op::Ping, None).await.map(|_| ())
    }

    async fn image_present(&self, image: &str) -> Result<bool> {
        self.enter(Op::ImagePresent, None).await?;
        Ok(self.lock().images.contains_key(&with_default_tag(image)))
    }

    async fn resolve_image(&self, image: &str) -> Result<ImageSource> {
        self.enter(Op::ImagePresent, None).await?;
        let reference = with_default_tag(image);
        let state = self.lock();
        Ok(if state.images.contains_key(&reference) {
            ImageSource::Local
        } else if self.missing.contains(&reference) {
            ImageSource::Unavailable(format!(
                "manifest for {reference} not found: manifest unknown"
            ))
        } else {
            ImageSource::Registry
        })
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>> {
        self.enter(Op::ImagePresent, None).await?;
        Ok(self.lock().images.get(&with_default_tag(image)).cloned())
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
        if let Some(after) = self.enter(Op::Pull, Some(cancel)).await? {
            let at = std::time::Instant::now() + after;
            self.lock()
                .late
                .push((at, LateEffect::LandImage(with_default_tag(image))));
            return Err(RuntimeError::Pull {
                image: image.to_owned(),
                detail: "connection reset by peer".into(),
            });
        }
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
                            self.lock().late.push((at, LateEffect::LandImage(reference)));
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
                layers: Vec::new(),
            });
        }
        let id = image_id_of(&reference);
        self.lock().images.insert(reference, id);
        Ok(())
    }

    async fn create_container(&self, config: &ContainerConfig) -> Result<String> {
        let late = self.enter(Op::Create, None).await?;
        let container = {
            let mut s = self.lock();
            s.next_id += 1;
            ContainerState {
                id: format!("{:064x}", s.next_id),
                name: config.name.clone(),
                image: with_default_tag(&config.image),
                running: false,
                health: None,
                exit_code: None,
                labels: config.labels.clone(),
            }
        };
        self.apply(late, LateEffect::Create(container.clone()), |s| {
            s.create(container)
        })
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let late = self.enter(Op::Start, None).await?;
        self.apply(late, LateEffect::Start(id.to_owned()), |s| {
            s.start(id, &self.crashing, &self.output)
        })
    }

    async fn stop_container(&self, id: &str, _timeout_s: u32) -> Result<()> {
        let late = self.enter(Op::Stop, None).await?;
        self.apply(late, LateEffect::Stop(id.to_owned()), |s| s.stop(id))
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        let late = self.enter(Op::Rename, None).await?;
        self.apply(
            late,
            LateEffect::Rename(id.to_owned(), new_name.to_owned()),
            |s| s.rename(id, new_name),
        )
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let late = self.enter(Op::RemoveContainer, None).await?;
        self.apply(late, LateEffect::Remove(id.to_owned()), |s| {
            s.remove(id);
            Ok(())
        })
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
        Ok(s.container_mut(id_or_name).map(|c| c.clone()))
    }

    async fn log_tail(&self, id: &str, max_bytes: usize) -> Result<String> {
        self.enter(Op::Logs, None).await?;
        let mut s = self.lock();
        let key = s.existing(id)?.id.clone();
        let logs = s.logs.get(&key).map(String::as_str).unwrap_or_default();
        Ok(super::log_tail_of(logs.as_bytes(), max_bytes))
    }

    async fn wait_not_running(&self, id: &str, limit: Duration) -> Result<bool> {
        let until = tokio::time::Instant::now() + limit;
        loop {
            if !self.lock().container_mut(id).is_some_and(|c| c.running) {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= until {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(10).min(limit)).await;
        }
    }
}

/// The id of the image a reference names: derived from the reference, so
/// that pulling the same image again, by anyone, gives the same id (as a
/// registry's content addressing does).
fn image_id_of(reference: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(reference.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}
