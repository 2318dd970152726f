//! [`ContainerRuntime`] in memory, with fault injection: for testing
//! workflows and the engine without Docker, and for benchmarks of the engine
//! alone. Containers "run" as records; pulls report layer progress over a
//! configurable time; any operation can be made to fail or hang.
//!
//! Logs: a container has logs only from what starting it writes — the text
//! given to [`MemoryRuntime::with_image_logs`] for its image, then, for a
//! crashing image ([`MemoryRuntime::with_crashing_image`]), the line
//! [`CRASH_LOG_LINE`]. They go with the container when it is removed.
//!
//! Volumes and networks behave as Docker's do where the engine depends on
//! it: creating an existing one returns it untouched with its own labels; a
//! container's create makes the named volumes it mounts (unlabelled) and
//! fails on a network that does not exist; removing a volume or a network
//! that any container (running or not) uses is a `Conflict`. A volume's
//! content is a map of paths to bytes ([`MemoryRuntime::write_volume_file`],
//! [`MemoryRuntime::volume_files`]), which [`ContainerRuntime::copy_volume`]
//! copies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    ContainerConfig, ContainerRuntime, ContainerState, ImageSource, MountKind, NetworkState,
    PullPhase, PullProgress, Result, RuntimeError, VolumeState, with_default_tag,
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
    /// `create_volume`
    CreateVolume,
    /// `inspect_volume`
    InspectVolume,
    /// `remove_volume`
    RemoveVolume,
    /// `create_network`
    CreateNetwork,
    /// `inspect_network`
    InspectNetwork,
    /// `remove_network`
    RemoveNetwork,
    /// `copy_volume`
    CopyVolume,
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
    Create(ContainerState, Uses),
    CreateVolume(String, BTreeMap<String, String>),
    RemoveVolume(String),
    CreateNetwork(NetworkState),
    RemoveNetwork(String),
    CopyVolume(String, String, String),
    Start(String),
    Stop(String),
    Rename(String, String),
    Remove(String),
}

/// The volumes a container mounts and the networks it joins, by name.
#[derive(Debug, Clone, Default)]
struct Uses {
    volumes: Vec<String>,
    networks: Vec<String>,
}

/// A volume: its labels and its files (path → content).
#[derive(Debug, Clone, Default)]
struct Volume {
    labels: BTreeMap<String, String>,
    files: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, Default)]
struct State {
    /// Image references and the ids they point at.
    images: BTreeMap<String, String>,
    containers: BTreeMap<String, ContainerState>,
    /// What each container (by id) wrote to its logs.
    logs: BTreeMap<String, String>,
    /// What each container (by id) mounts and joins.
    uses: BTreeMap<String, Uses>,
    /// Volumes by name.
    volumes: BTreeMap<String, Volume>,
    /// Networks by id (`containers` is filled in when reported).
    networks: BTreeMap<String, NetworkState>,
    next_id: u64,
    /// Networks get ids of their own sequence, so that creating one does
    /// not change the ids containers get.
    next_network_id: u64,
    faults: Vec<(Op, Fault, usize)>,
    /// Images the "registry" has published again under the same name, and
    /// how often: a pull then brings a new id.
    republished: BTreeMap<String, u32>,
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
    /// References that name the same image as another (two tags of one
    /// image): pulled, they get that one's id.
    same_image: BTreeMap<String, String>,
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
            same_image: BTreeMap::new(),
        }
    }

    /// `alias` is another tag of `image`: pulled, it is the same image id.
    pub fn with_same_image(mut self, alias: &str, image: &str) -> Self {
        self.same_image
            .insert(with_default_tag(alias), with_default_tag(image));
        self
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

    /// Publish `image` again under the same name, as a new push to the
    /// registry would: the next pull brings a new image id (a new digest).
    pub fn republish_image(&self, image: &str) {
        *self
            .lock()
            .republished
            .entry(with_default_tag(image))
            .or_default() += 1;
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

    /// Every volume, by name.
    pub fn volumes(&self) -> BTreeMap<String, VolumeState> {
        self.lock()
            .volumes
            .iter()
            .map(|(name, v)| {
                let state = VolumeState {
                    name: name.clone(),
                    labels: v.labels.clone(),
                };
                (name.clone(), state)
            })
            .collect()
    }

    /// The files of volume `name` (path → content); `None` if it is missing.
    pub fn volume_files(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        self.lock().volumes.get(name).map(|v| v.files.clone())
    }

    /// Write a file into volume `name`, as a container mounting it would
    /// (not a runtime call: no fault applies). `NotFound` if it is missing.
    pub fn write_volume_file(&self, name: &str, path: &str, content: &[u8]) -> Result<()> {
        let mut s = self.lock();
        let volume = s
            .volumes
            .get_mut(name)
            .ok_or_else(|| RuntimeError::NotFound(format!("no such volume: {name}")))?;
        volume.files.insert(path.to_owned(), content.to_vec());
        Ok(())
    }

    /// Every network, by name, with the containers on it.
    pub fn networks(&self) -> BTreeMap<String, NetworkState> {
        let s = self.lock();
        s.networks
            .values()
            .map(|n| (n.name.clone(), s.reported(n)))
            .collect()
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
                LateEffect::Create(c, uses) => state.create(c, uses).map(|_| ()),
                LateEffect::CreateVolume(name, labels) => {
                    state.create_volume(&name, &labels);
                    Ok(())
                }
                LateEffect::RemoveVolume(name) => state.remove_volume(&name),
                LateEffect::CreateNetwork(n) => {
                    state.create_network(n);
                    Ok(())
                }
                LateEffect::RemoveNetwork(n) => state.remove_network(&n),
                LateEffect::CopyVolume(from, to, image) => state.copy_volume(&from, &to, &image),
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

    fn create(&mut self, c: ContainerState, uses: Uses) -> Result<String> {
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
        if let Some(missing) = uses.networks.iter().find(|n| self.network_key(n).is_none()) {
            return Err(RuntimeError::NotFound(format!(
                "network {missing} not found"
            )));
        }
        // As Docker does, a named volume a container mounts is made if
        // missing (with no labels: nobody's).
        for volume in &uses.volumes {
            self.create_volume(volume, &BTreeMap::new());
        }
        let id = c.id.clone();
        self.containers.insert(id.clone(), c);
        self.uses.insert(id.clone(), uses);
        Ok(id)
    }

    /// The containers (ids) mounting volume `name`.
    fn volume_users(&self, name: &str) -> Vec<String> {
        self.uses
            .iter()
            .filter(|(_, u)| u.volumes.iter().any(|v| v == name))
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn create_volume(&mut self, name: &str, labels: &BTreeMap<String, String>) -> VolumeState {
        let volume = self
            .volumes
            .entry(name.to_owned())
            .or_insert_with(|| Volume {
                labels: labels.clone(),
                files: BTreeMap::new(),
            });
        VolumeState {
            name: name.to_owned(),
            labels: volume.labels.clone(),
        }
    }

    fn remove_volume(&mut self, name: &str) -> Result<()> {
        if !self.volumes.contains_key(name) {
            return Ok(());
        }
        let users = self.volume_users(name);
        if !users.is_empty() {
            return Err(RuntimeError::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        self.volumes.remove(name);
        Ok(())
    }

    /// The id of the network `name_or_id` names: its id, its name, or a
    /// prefix of its id.
    fn network_key(&self, name_or_id: &str) -> Option<String> {
        if self.networks.contains_key(name_or_id) {
            return Some(name_or_id.to_owned());
        }
        self.networks
            .values()
            .find(|n| n.name == name_or_id)
            .or_else(|| {
                let mut by_prefix = self
                    .networks
                    .values()
                    .filter(|n| !name_or_id.is_empty() && n.id.starts_with(name_or_id));
                match (by_prefix.next(), by_prefix.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            })
            .map(|n| n.id.clone())
    }

    /// A network as reported: with every container configured for it.
    fn reported(&self, n: &NetworkState) -> NetworkState {
        let containers = self
            .uses
            .iter()
            .filter(|(_, u)| u.networks.iter().any(|m| m == &n.name || m == &n.id))
            .map(|(id, _)| id.clone())
            .collect();
        NetworkState {
            containers,
            ..n.clone()
        }
    }

    /// Create `n` unless a network of its name exists; the one there is.
    fn create_network(&mut self, n: NetworkState) -> NetworkState {
        if let Some(key) = self
            .networks
            .values()
            .find(|o| o.name == n.name)
            .map(|o| o.id.clone())
        {
            let existing = self.networks[&key].clone();
            return self.reported(&existing);
        }
        self.networks.insert(n.id.clone(), n.clone());
        n
    }

    fn remove_network(&mut self, name_or_id: &str) -> Result<()> {
        let Some(key) = self.network_key(name_or_id) else {
            return Ok(());
        };
        let n = self.reported(&self.networks[&key]);
        if !n.containers.is_empty() {
            return Err(RuntimeError::Conflict(format!(
                "network {} is in use by container(s) {}",
                n.name,
                n.containers.join(", ")
            )));
        }
        self.networks.remove(&key);
        Ok(())
    }

    fn copy_volume(&mut self, from: &str, to: &str, helper_image: &str) -> Result<()> {
        let source = self
            .volumes
            .get(from)
            .ok_or_else(|| RuntimeError::NotFound(format!("no such volume: {from}")))?
            .files
            .clone();
        let target = self
            .volumes
            .get_mut(to)
            .ok_or_else(|| RuntimeError::NotFound(format!("no such volume: {to}")))?;
        if !target.files.is_empty() {
            return Err(RuntimeError::Conflict(format!(
                "volume {to} is not empty: a copy of {from} goes only into an empty volume"
            )));
        }
        if !self.images.contains_key(&with_default_tag(helper_image)) {
            return Err(RuntimeError::NotFound(format!(
                "No such image: {}",
                with_default_tag(helper_image)
            )));
        }
        if let Some(target) = self.volumes.get_mut(to) {
            target.files = source;
        }
        Ok(())
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
            self.uses.remove(&key);
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
        // By reference, or by id as the daemon answers.
        let s = self.lock();
        Ok(s.images.contains_key(&with_default_tag(image))
            || s.images.values().any(|id| id == image))
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
        let base = self.same_image.get(&reference).unwrap_or(&reference);
        let mut s = self.lock();
        let id = match s.republished.get(&reference) {
            Some(n) => image_id_of(&format!("{base}#{n}")),
            None => image_id_of(base),
        };
        s.images.insert(reference, id);
        Ok(())
    }

    async fn create_container(&self, config: &ContainerConfig) -> Result<String> {
        // Refused before any request, as by the Docker runtime.
        if config.network.is_some() && !config.networks.is_empty() {
            return Err(RuntimeError::Daemon(format!(
                "container {}: a network mode and user-defined networks exclude each other",
                config.name
            )));
        }
        let late = self.enter(Op::Create, None).await?;
        let uses = Uses {
            volumes: config
                .mounts
                .iter()
                .filter(|m| m.kind == MountKind::Volume)
                .map(|m| m.source.clone())
                .collect(),
            networks: config.networks.iter().map(|n| n.name.clone()).collect(),
        };
        let container = {
            let mut s = self.lock();
            s.next_id += 1;
            let image = with_default_tag(&config.image);
            ContainerState {
                id: format!("{:064x}", s.next_id),
                name: config.name.clone(),
                image_id: s.images.get(&image).cloned().unwrap_or_default(),
                image,
                running: false,
                health: None,
                exit_code: None,
                labels: config.labels.clone(),
            }
        };
        self.apply(
            late,
            LateEffect::Create(container.clone(), uses.clone()),
            |s| s.create(container, uses),
        )
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

    async fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<VolumeState> {
        let late = self.enter(Op::CreateVolume, None).await?;
        self.apply(
            late,
            LateEffect::CreateVolume(name.to_owned(), labels.clone()),
            |s| Ok(s.create_volume(name, labels)),
        )
    }

    async fn inspect_volume(&self, name: &str) -> Result<Option<VolumeState>> {
        self.enter(Op::InspectVolume, None).await?;
        Ok(self.lock().volumes.get(name).map(|v| VolumeState {
            name: name.to_owned(),
            labels: v.labels.clone(),
        }))
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        let late = self.enter(Op::RemoveVolume, None).await?;
        self.apply(late, LateEffect::RemoveVolume(name.to_owned()), |s| {
            s.remove_volume(name)
        })
    }

    async fn create_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<NetworkState> {
        let late = self.enter(Op::CreateNetwork, None).await?;
        let network = {
            let mut s = self.lock();
            s.next_network_id += 1;
            NetworkState {
                id: image_id_of(&format!("network/{}", s.next_network_id))
                    .trim_start_matches("sha256:")
                    .to_owned(),
                name: name.to_owned(),
                labels: labels.clone(),
                containers: Vec::new(),
            }
        };
        self.apply(late, LateEffect::CreateNetwork(network.clone()), |s| {
            Ok(s.create_network(network))
        })
    }

    async fn inspect_network(&self, name_or_id: &str) -> Result<Option<NetworkState>> {
        self.enter(Op::InspectNetwork, None).await?;
        let s = self.lock();
        Ok(s.network_key(name_or_id)
            .map(|key| s.reported(&s.networks[&key])))
    }

    async fn remove_network(&self, name_or_id: &str) -> Result<()> {
        let late = self.enter(Op::RemoveNetwork, None).await?;
        self.apply(
            late,
            LateEffect::RemoveNetwork(name_or_id.to_owned()),
            |s| s.remove_network(name_or_id),
        )
    }

    async fn copy_volume(&self, from: &str, to: &str, helper_image: &str) -> Result<()> {
        let late = self.enter(Op::CopyVolume, None).await?;
        self.apply(
            late,
            LateEffect::CopyVolume(from.to_owned(), to.to_owned(), helper_image.to_owned()),
            |s| s.copy_volume(from, to, helper_image),
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{LABEL_JOB, Mount, NetworkAttachment};

    fn labels(job: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(LABEL_JOB.to_owned(), job.to_owned())])
    }

    fn config(name: &str, volume: Option<&str>, network: Option<&str>) -> ContainerConfig {
        ContainerConfig {
            name: name.into(),
            image: "app:1".into(),
            mounts: volume
                .map(|v| Mount {
                    kind: MountKind::Volume,
                    source: v.into(),
                    target: "/data".into(),
                    read_only: false,
                })
                .into_iter()
                .collect(),
            networks: network
                .map(|n| NetworkAttachment {
                    name: n.into(),
                    aliases: vec![],
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn creating_an_existing_volume_returns_it_with_its_own_labels() {
        let rt = MemoryRuntime::new();
        let first = rt.create_volume("data", &labels("job-1")).await.unwrap();
        assert_eq!(first.labels, labels("job-1"));
        rt.write_volume_file("data", "a.txt", b"kept").unwrap();
        let again = rt.create_volume("data", &labels("job-2")).await.unwrap();
        assert_eq!(again.labels, labels("job-1"), "the first creator's labels");
        assert_eq!(rt.volume_files("data").unwrap()["a.txt"], b"kept");
        assert_eq!(
            rt.inspect_volume("data").await.unwrap().map(|v| v.labels),
            Some(labels("job-1"))
        );
        assert_eq!(rt.inspect_volume("nope").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_volume_in_use_even_by_a_stopped_container_is_not_removed() {
        let rt = MemoryRuntime::new();
        rt.add_image("app:1");
        // Mounting a missing named volume makes it, unlabelled, as Docker does.
        let id = rt
            .create_container(&config("c", Some("data"), None))
            .await
            .unwrap();
        assert_eq!(rt.volumes()["data"].labels, BTreeMap::new());
        let e = rt.remove_volume("data").await.unwrap_err();
        assert!(matches!(e, RuntimeError::Conflict(_)), "{e}");
        rt.remove_container(&id).await.unwrap();
        rt.remove_volume("data").await.unwrap();
        assert!(rt.volumes().is_empty());
        rt.remove_volume("data").await.unwrap();
    }

    #[tokio::test]
    async fn a_network_is_never_duplicated_and_reports_stopped_containers() {
        let rt = Arc::new(MemoryRuntime::new());
        rt.add_image("app:1");
        let created = futures_util::future::join_all((0..8).map(|i| {
            let rt = rt.clone();
            async move {
                rt.create_network("appnet", &labels(&format!("job-{i}")))
                    .await
            }
        }))
        .await;
        let ids: BTreeSet<String> = created.into_iter().map(|n| n.unwrap().id).collect();
        assert_eq!(ids.len(), 1);
        assert_eq!(rt.networks().len(), 1);

        let e = rt
            .create_container(&config("lost", None, Some("nonet")))
            .await
            .unwrap_err();
        assert!(matches!(e, RuntimeError::NotFound(_)), "{e}");
        let id = rt
            .create_container(&config("c", None, Some("appnet")))
            .await
            .unwrap();
        let n = rt.inspect_network("appnet").await.unwrap().unwrap();
        assert_eq!(n.containers, vec![id.clone()]);
        assert_eq!(
            rt.inspect_network(&n.id).await.unwrap().unwrap().name,
            "appnet"
        );
        assert_eq!(
            rt.inspect_network(&n.id[..12]).await.unwrap().unwrap().id,
            n.id
        );
        // Stopped (never started) and still on it: refused.
        let e = rt.remove_network("appnet").await.unwrap_err();
        assert!(matches!(e, RuntimeError::Conflict(_)), "{e}");
        rt.remove_container(&id).await.unwrap();
        rt.remove_network(&n.id).await.unwrap();
        assert_eq!(rt.inspect_network("appnet").await.unwrap(), None);
        rt.remove_network("appnet").await.unwrap();
    }

    #[tokio::test]
    async fn creating_a_network_does_not_change_container_ids() {
        let rt = MemoryRuntime::new();
        rt.add_image("app:1");
        rt.create_network("appnet", &BTreeMap::new()).await.unwrap();
        let id = rt.create_container(&config("c", None, None)).await.unwrap();
        assert_eq!(id, format!("{:064x}", 1));
    }

    #[tokio::test]
    async fn a_network_mode_with_networks_is_refused() {
        let rt = MemoryRuntime::new();
        rt.add_image("app:1");
        let mut c = config("c", None, Some("appnet"));
        c.network = Some("none".into());
        let e = rt.create_container(&c).await.unwrap_err();
        assert!(matches!(e, RuntimeError::Daemon(_)), "{e}");
    }

    #[tokio::test]
    async fn copy_volume_copies_into_an_empty_existing_volume_only() {
        let rt = MemoryRuntime::new();
        rt.add_image("app:1");
        rt.create_volume("data", &BTreeMap::new()).await.unwrap();
        rt.write_volume_file("data", "db/x", b"v1").unwrap();
        let e = rt.copy_volume("data", "copy", "app:1").await.unwrap_err();
        assert!(matches!(e, RuntimeError::NotFound(_)), "{e}");
        rt.create_volume("copy", &BTreeMap::new()).await.unwrap();
        let e = rt.copy_volume("data", "copy", "nope:1").await.unwrap_err();
        assert!(matches!(e, RuntimeError::NotFound(_)), "{e}");
        rt.copy_volume("data", "copy", "app:1").await.unwrap();
        assert_eq!(rt.volume_files("copy"), rt.volume_files("data"));
        // Writes to the copy leave the original as it was.
        rt.write_volume_file("copy", "db/x", b"v2").unwrap();
        assert_eq!(rt.volume_files("data").unwrap()["db/x"], b"v1");
        let e = rt.copy_volume("data", "copy", "app:1").await.unwrap_err();
        assert!(matches!(e, RuntimeError::Conflict(_)), "{e}");
    }

    #[tokio::test]
    async fn volume_and_network_calls_take_injected_faults() {
        let rt = MemoryRuntime::new();
        rt.inject(Op::CreateVolume, Fault::Fail("disk full".into()), 1);
        let e = rt.create_volume("v", &BTreeMap::new()).await.unwrap_err();
        assert_eq!(e, RuntimeError::Daemon("disk full".into()));
        assert!(rt.volumes().is_empty());

        // A create whose answer is lost still happens, a little later.
        rt.inject(
            Op::CreateNetwork,
            Fault::CompleteLate(Duration::from_millis(20)),
            1,
        );
        let e = rt.create_network("n", &labels("j")).await.unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert!(rt.networks().is_empty());
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(rt.networks()["n"].labels, labels("j"));

        rt.create_volume("v", &labels("j")).await.unwrap();
        rt.inject(
            Op::RemoveVolume,
            Fault::CompleteLate(Duration::from_millis(20)),
            1,
        );
        assert!(rt.remove_volume("v").await.is_err());
        assert!(rt.volumes().contains_key("v"));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(rt.volumes().is_empty());

        rt.inject(Op::RemoveNetwork, Fault::Unreachable, 1);
        assert!(rt.remove_network("n").await.unwrap_err().is_transient());
        assert_eq!(rt.networks().len(), 1);

        for op in [Op::InspectVolume, Op::InspectNetwork, Op::CopyVolume] {
            rt.inject(op, Fault::Fail("boom".into()), 1);
        }
        assert!(rt.inspect_volume("v").await.is_err());
        assert!(rt.inspect_network("n").await.is_err());
        assert!(rt.copy_volume("a", "b", "i").await.is_err());
    }
}
