//! The plugin host: runs workflow components on wasmtime and adapts their
//! WIT imports to the container runtime and the journal.
//!
//! Components are compiled once (and cached on disk, precompiled, when a
//! cache directory is given), linked once into an `InstancePre`, and each job
//! gets a fresh instance in a fresh `Store` whose WASI context has no
//! preopened directories, no environment and no network. One module per WIT
//! interface implements its host side ([`container`], [`job`],
//! [`target_state`], and [`clocks`] of WASI's); [`scope`] is the job they
//! act for.

mod bindings;
mod builtin;
mod clocks;
mod container;
mod container_spec;
mod host_state;
mod job;
mod pulls;
mod scope;
pub mod store;
mod target_state;
mod v1;
mod volume_network;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{ResourceTable, WasiCtx};

pub use bindings::{HostError, PluginInfo};
pub use builtin::BUILTIN_WORKFLOWS;
use host_state::HostState;
pub use scope::{Divergence, HostSettings, JobScope, RecordedEntry, RecordedStep, Replay};

/// How often the epoch advances: how soon a cancelled guest is stopped.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Fuel (≈ wasm instructions) per millisecond of guest CPU time allowed.
const FUEL_PER_MS: u64 = 1_000_000;

/// A busy guest yields to other tasks after this much fuel.
const FUEL_YIELD_INTERVAL: u64 = 10_000_000;

/// The fuel a CPU-time budget stands for.
fn fuel_for(budget: Duration) -> u64 {
    (budget.as_millis() as u64)
        .saturating_mul(FUEL_PER_MS)
        .max(FUEL_PER_MS)
}

/// Why a plugin could not be loaded or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The bytes are not a component of the Deckhand workflow world.
    #[error("plugin `{name}` is not a valid Deckhand workflow component: {detail}")]
    Invalid {
        /// Workflow name.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// The engine could not be set up.
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    /// A built-in workflow's name cannot be taken by an upload.
    #[error("`{0}` is a built-in workflow and cannot be replaced")]
    Builtin(String),
    /// The workflow name is not valid.
    #[error(
        "invalid workflow name `{0}`: use 1–63 characters from a-z, 0-9 and `-`, starting with a letter"
    )]
    InvalidName(String),
    /// The component store failed.
    #[error("cannot store plugin {digest}: {detail}")]
    Store {
        /// The component.
        digest: String,
        /// Why.
        detail: String,
    },
}

/// Whether `name` can name a workflow: `[a-z][a-z0-9-]{0,62}`.
pub fn valid_workflow_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// How a plugin run ended, short of the journal failing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The plugin returned an error.
    #[error("{0}")]
    Failed(String),
    /// The plugin trapped or hit a limit.
    #[error("plugin trapped: {0}")]
    Trapped(String),
    /// The job was cancelled while the plugin ran.
    #[error("cancelled")]
    Cancelled,
    /// The journal could not be read or written: the engine stopped the
    /// plugin (this is neither the plugin's fault nor the runtime's).
    #[error("the journal failed: {0}")]
    Journal(String),
}

/// A registered workflow component, compiled and linked.
pub struct Plugin {
    /// Workflow name it runs under.
    pub name: String,
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
    /// Whether it ships with the engine.
    pub builtin: bool,
    /// The version of the workflow world it was built against.
    pub world: WorldVersion,
    pre: Pre,
}

/// The version of `deckhand:workflow` a component was built against, read
/// from the versions of its `deckhand:workflow/*` imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorldVersion {
    /// 0.1.0: a container with image, env, command and network mode.
    V0_1,
    /// 0.2.x: ports, volumes, networks, limits and health checks (0.2.0),
    /// stacks of services (0.2.1) and several pulls at once (0.2.2). A 0.2.0
    /// or 0.2.1 component links against the 0.2.2 host: it imports a subset
    /// of its functions.
    V0_2,
}

impl WorldVersion {
    /// `0.1.0` or `0.2.2` (the 0.2 contract the host serves).
    pub fn as_str(self) -> &'static str {
        match self {
            WorldVersion::V0_1 => "0.1.0",
            WorldVersion::V0_2 => "0.2.2",
        }
    }

    /// The version a component's imports name (`deckhand:workflow/container@0.1.0`);
    /// a component importing none of the workflow's interfaces gets the
    /// newest. `Err` for unknown versions or a mix.
    fn of_imports<'a>(names: impl Iterator<Item = &'a str>) -> Result<WorldVersion, String> {
        let mut found: Option<&str> = None;
        for name in names {
            let Some(rest) = name.strip_prefix("deckhand:workflow/") else {
                continue;
            };
            let version = rest.split_once('@').map_or("", |(_, v)| v);
            match found {
                Some(v) if v != version => {
                    return Err(format!(
                        "it imports deckhand:workflow both @{v} and @{version}"
                    ));
                }
                _ => found = Some(version),
            }
        }
        match found {
            None | Some("0.2.0" | "0.2.1" | "0.2.2") => Ok(WorldVersion::V0_2),
            Some("0.1.0") => Ok(WorldVersion::V0_1),
            Some(other) => Err(format!(
                "it was built against deckhand:workflow@{other}; this engine serves 0.1.0, 0.2.0, 0.2.1 and 0.2.2"
            )),
        }
    }
}

/// A component linked against the world it was built for.
enum Pre {
    V1(bindings::v1::WorkflowPre<HostState>),
    V2(bindings::WorkflowPre<HostState>),
}

impl Pre {
    async fn run(&self, store: &mut Store<HostState>) -> wasmtime::Result<Result<String, String>> {
        match self {
            Pre::V1(pre) => {
                pre.instantiate_async(&mut *store)
                    .await?
                    .call_run(store)
                    .await
            }
            Pre::V2(pre) => {
                pre.instantiate_async(&mut *store)
                    .await?
                    .call_run(store)
                    .await
            }
        }
    }

    async fn compensate(
        &self,
        store: &mut Store<HostState>,
        action: &str,
        data: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Pre::V1(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance.call_compensate(store, action, data).await
            }
            Pre::V2(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                instance.call_compensate(store, action, data).await
            }
        }
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("digest", &self.digest)
            .finish()
    }
}

/// Compiles, links and runs workflow plugins.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<HostState>,
    /// The current plugin of each workflow name.
    plugins: RwLock<BTreeMap<String, Arc<Plugin>>>,
    /// Every plugin loaded, by digest: jobs keep running (and replaying)
    /// the exact component they started with after a name is re-registered.
    by_digest: RwLock<BTreeMap<String, Arc<Plugin>>>,
    cache_dir: Option<PathBuf>,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// A trap's message, naming the limit when a limit was hit.
fn run_error_of_trap(trap: &wasmtime::Error) -> RunError {
    if let Some(e) = trap
        .chain()
        .find_map(|e| e.downcast_ref::<crate::journal::JournalError>())
    {
        return RunError::Journal(e.to_string());
    }
    RunError::Trapped(match trap.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => "plugin exceeded its CPU time limit".to_owned(),
        _ => format!("{trap:#}"),
    })
}

/// WASI with nothing granted: no preopened directories, environment,
/// arguments or network (denied by default), discarded stdio, frozen clocks
/// and timers ([`clocks`]) and constant-seeded randomness, so a run depends only on host answers.
fn sandboxed_wasi() -> WasiCtx {
    use rand::SeedableRng;
    WasiCtx::builder()
        .wall_clock(clocks::FrozenClock)
        .monotonic_clock(clocks::FrozenClock)
        .secure_random(rand::rngs::StdRng::seed_from_u64(0))
        .insecure_random(rand::rngs::StdRng::seed_from_u64(0))
        .insecure_random_seed(0)
        .build()
}

/// `sha256:<hex>` of some bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl PluginHost {
    /// A host with no plugins. Compiled components are cached in `cache_dir`.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, PluginError> {
        let mut config = Config::new();
        // Epochs interrupt a cancelled job's guest; fuel bounds its CPU.
        config.epoch_interruption(true);
        config.consume_fuel(true);
        let engine = Engine::new(&config).map_err(|e| PluginError::Engine(e.to_string()))?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| clocks::link_frozen_timers(&mut linker))
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        // Both versions of the world: their names carry the version.
        bindings::Workflow::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            .and_then(|()| {
                bindings::v1::Workflow::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            })
            .map_err(|e| PluginError::Engine(e.to_string()))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (stop, weak_engine) = (ticker_stop.clone(), engine.weak());
        std::thread::Builder::new()
            .name("deckhand-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak_engine.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        Ok(PluginHost {
            engine,
            linker,
            plugins: RwLock::new(BTreeMap::new()),
            by_digest: RwLock::new(BTreeMap::new()),
            cache_dir,
            ticker_stop,
        })
    }

    /// A host with the built-in workflows registered.
    pub fn with_builtins(cache_dir: Option<PathBuf>) -> Result<Self, PluginError> {
        let host = Self::new(cache_dir)?;
        for (name, bytes) in BUILTIN_WORKFLOWS {
            host.register(name, bytes, true)?;
        }
        Ok(host)
    }

    /// Compile (or load from cache), type-check against the workflow world,
    /// and register `bytes` under `name`.
    pub fn register(
        &self,
        name: &str,
        bytes: &[u8],
        builtin: bool,
    ) -> Result<Arc<Plugin>, PluginError> {
        let invalid = |detail: String| PluginError::Invalid {
            name: name.to_owned(),
            detail,
        };
        let digest = digest_of(bytes);
        let component = self
            .compile(&digest, bytes)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let ty = component.component_type();
        let world = WorldVersion::of_imports(ty.imports(&self.engine).map(|(name, _)| name))
            .map_err(invalid)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let pre = match world {
            WorldVersion::V0_1 => bindings::v1::WorkflowPre::new(pre).map(Pre::V1),
            WorldVersion::V0_2 => bindings::WorkflowPre::new(pre).map(Pre::V2),
        }
        .map_err(|e| invalid(format!("{e:#}")))?;
        let plugin = Arc::new(Plugin {
            name: name.to_owned(),
            digest: digest.clone(),
            builtin,
            world,
            pre,
        });
        self.plugins
            .write()
            .expect("plugin registry lock")
            .insert(name.to_owned(), plugin.clone());
        self.by_digest
            .write()
            .expect("plugin registry lock")
            .insert(digest, plugin.clone());
        Ok(plugin)
    }

    /// Validate an uploaded component and make it the current plugin of
    /// `name`. Built-in names are refused; nothing changes on error.
    pub fn register_upload(&self, name: &str, bytes: &[u8]) -> Result<Arc<Plugin>, PluginError> {
        if !valid_workflow_name(name) {
            return Err(PluginError::InvalidName(name.to_owned()));
        }
        if self.get(name).is_some_and(|p| p.builtin) {
            return Err(PluginError::Builtin(name.to_owned()));
        }
        self.register(name, bytes, false)
    }

    /// Make `plugin` the current one of its name again.
    pub fn reinstate(&self, plugin: Arc<Plugin>) {
        self.plugins
            .write()
            .expect("plugin registry lock")
            .insert(plugin.name.clone(), plugin);
    }

    /// Unregister `name` (its digest stays loadable).
    pub fn forget(&self, name: &str) {
        self.plugins
            .write()
            .expect("plugin registry lock")
            .remove(name);
    }

    /// The plugin with this digest, current or not.
    pub fn by_digest(&self, digest: &str) -> Option<Arc<Plugin>> {
        self.by_digest
            .read()
            .expect("plugin registry lock")
            .get(digest)
            .cloned()
    }

    fn compile(&self, digest: &str, bytes: &[u8]) -> wasmtime::Result<Component> {
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, bytes);
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        let file = dir.join(format!(
            "{}-{:016x}.cwasm",
            digest.trim_start_matches("sha256:"),
            h.finish()
        ));
        if file.exists() {
            // SAFETY: files in the cache directory are written only by
            // `precompile_component` below, for this engine configuration.
            if let Ok(c) = unsafe { Component::deserialize_file(&self.engine, &file) } {
                return Ok(c);
            }
        }
        let compiled = self.engine.precompile_component(bytes)?;
        std::fs::create_dir_all(dir)?;
        write_whole(&file, &compiled)?;
        // SAFETY: the bytes come from `precompile_component` of this engine.
        unsafe { Component::deserialize(&self.engine, &compiled) }
    }

    /// The plugin registered under `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.plugins
            .read()
            .expect("plugin registry lock")
            .get(name)
            .cloned()
    }

    /// Every registered plugin, by name.
    pub fn list(&self) -> Vec<Arc<Plugin>> {
        self.plugins
            .read()
            .expect("plugin registry lock")
            .values()
            .cloned()
            .collect()
    }

    /// A fresh sandboxed store for one instance: WASI with nothing granted,
    /// memory and table limits, and guest time bounded by epoch ticks (the
    /// callback also ends a cancelled job's guest).
    fn new_store(&self, scope: JobScope) -> Store<HostState> {
        let cancel = scope.cancel.clone();
        let fuel = fuel_for(scope.settings.max_guest_time);
        let limits = StoreLimitsBuilder::new()
            .memory_size(scope.settings.max_memory_bytes)
            .instances(16)
            .tables(16)
            .memories(4)
            .table_elements(100_000)
            // A memory bomb ends with a clear trap, not an allocator abort.
            .trap_on_grow_failure(true)
            .build();
        let state = HostState {
            wasi: sandboxed_wasi(),
            table: ResourceTable::new(),
            limits,
            scope,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Guest instructions only: time spent in host calls is not counted.
        store.set_fuel(fuel).expect("fuel is enabled");
        store
            .fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))
            .expect("fuel is enabled");
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if cancel.is_cancelled() {
                return Err(wasmtime::Error::msg("job cancelled"));
            }
            // Yield so other jobs run, then check again on the next tick.
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    /// Run `plugin` for the job in `scope`, in a fresh sandboxed instance.
    /// Returns the plugin's summary, or how it failed.
    pub async fn run(&self, plugin: &Plugin, scope: JobScope) -> Result<String, RunError> {
        self.run_keeping_scope(plugin, scope).await.0
    }

    /// [`run`](Self::run), handing the scope back (replay reads its state).
    pub async fn run_keeping_scope(
        &self,
        plugin: &Plugin,
        scope: JobScope,
    ) -> (Result<String, RunError>, JobScope) {
        let cancel = scope.cancel.clone();
        let in_flight = scope.calls_in_flight.clone();
        let deadline = scope.settings.max_job_time;
        let mut store = self.new_store(scope);
        // After a cancel, a host call in progress is let finish (and its
        // result recorded); a guest waiting anywhere else — a WASI sleep,
        // which no epoch interrupts — is stopped at once.
        let stopped_by_cancel = async {
            cancel.cancelled().await;
            while in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        // The deadline and a cancel stop the run here, so the scope
        // survives to record what the run did.
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(deadline, plugin.pre.run(&mut store)) => Some(outcome),
            () = stopped_by_cancel => None,
        };
        let result = match outcome {
            None => Err(RunError::Cancelled),
            Some(outcome) => match outcome {
                Ok(Ok(Ok(summary))) => Ok(summary),
                Ok(Ok(Err(_)) | Err(_)) if cancel.is_cancelled() => Err(RunError::Cancelled),
                Ok(Ok(Err(message))) => Err(RunError::Failed(message)),
                Ok(Err(trap)) => Err(run_error_of_trap(&trap)),
                Err(_) => Err(RunError::Trapped(format!(
                    "the job exceeded its deadline of {} s",
                    deadline.as_secs_f64()
                ))),
            },
        };
        let mut scope = store.into_data().scope;
        let result = match scope.flush().await {
            Ok(()) => result,
            Err(e) => Err(RunError::Journal(format!("{e:#}"))),
        };
        (result, scope)
    }

    /// Run the plugin's `compensate` export for a compensation it
    /// registered, in a fresh instance whose calls are journaled without undo.
    /// It has [`HostSettings::max_compensation_time`]; past it the
    /// compensation fails. Returns the last step number it used, with how
    /// it ended.
    pub async fn compensate(
        &self,
        plugin: &Plugin,
        scope: JobScope,
        action: &str,
        data: &str,
    ) -> (Result<(), RunError>, u32) {
        debug_assert!(scope.compensating, "built by JobScope::compensation");
        let deadline = scope.settings.max_compensation_time;
        let mut store = self.new_store(scope);
        let outcome = tokio::time::timeout(deadline, async {
            plugin.pre.compensate(&mut store, action, data).await
        })
        .await;
        let mut scope = store.into_data().scope;
        let last_step = scope.last_step;
        if let Err(e) = scope.flush().await {
            return (Err(RunError::Journal(format!("{e:#}"))), last_step);
        }
        let result = match outcome {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(message))) => Err(RunError::Failed(message)),
            Ok(Err(trap)) => Err(run_error_of_trap(&trap)),
            Err(_) => Err(RunError::Trapped(format!(
                "the compensation exceeded its deadline of {} s",
                deadline.as_secs_f64()
            ))),
        };
        (result, last_step)
    }
}

/// Write `file` so that a reader sees all of it or none of it, while other
/// threads and processes may write the same file at the same time (hosts
/// compiling the same component): each writer has its own temporary file and
/// renames it into place, which is atomic.
fn write_whole(file: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = file.with_extension(format!("tmp{}-{n}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_cache_writes_of_one_file_never_show_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("component.cwasm");
        let bytes = vec![7u8; 4 << 20];
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut whole = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(read) = std::fs::read(&file) {
                        assert_eq!(read.len(), bytes.len(), "a partial file was visible");
                        whole += 1;
                    }
                }
                whole
            });
            let writers: Vec<_> = (0..8)
                .map(|_| s.spawn(|| (0..20).try_for_each(|_| write_whole(&file, &bytes))))
                .collect();
            let written: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            let seen_whole = reader.join().expect("the reader saw only whole files");
            for w in written {
                w.expect("every write succeeds");
            }
            assert!(seen_whole > 0);
        });
    }

    #[test]
    fn hosts_compiling_into_one_cache_at_once_all_get_whole_components() {
        let dir = tempfile::tempdir().unwrap();
        let hosts: Vec<_> = (0..4)
            .map(|_| {
                let dir = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    PluginHost::with_builtins(Some(dir)).map(|h| h.list().len())
                })
            })
            .collect();
        for h in hosts {
            assert_eq!(h.join().unwrap().unwrap(), BUILTIN_WORKFLOWS.len());
        }
        // A host started afterwards loads every one of them from the cache.
        let later = PluginHost::with_builtins(Some(dir.path().to_path_buf())).unwrap();
        assert_eq!(later.list().len(), BUILTIN_WORKFLOWS.len());
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                !name.to_string_lossy().ends_with(".cwasm")
            })
            .count();
        assert_eq!(leftovers, 0, "no temporary files are left behind");
    }

    #[test]
    fn a_job_stopped_by_a_failing_journal_says_so_and_not_that_the_plugin_trapped() {
        let trap =
            match scope::journal_error(crate::journal::JournalError::Commit("disk full".into())) {
                bindings::HostCallError::Trap(t) => t,
                bindings::HostCallError::Plugin(e) => panic!("answered the plugin: {e:?}"),
            };
        let e = run_error_of_trap(&trap);
        assert!(matches!(e, RunError::Journal(_)), "{e:?}");
        assert!(e.to_string().contains("disk full"), "{e}");
        let fuel = run_error_of_trap(&wasmtime::Error::from(wasmtime::Trap::OutOfFuel));
        assert!(matches!(fuel, RunError::Trapped(_)), "{fuel:?}");
    }

    #[test]
    fn a_components_world_is_the_version_its_workflow_imports_name() {
        let of = |names: &[&str]| WorldVersion::of_imports(names.iter().copied());
        assert_eq!(
            of(&["wasi:io/streams@0.2.6", "deckhand:workflow/container@0.1.0"]),
            Ok(WorldVersion::V0_1)
        );
        assert_eq!(
            of(&[
                "deckhand:workflow/container@0.2.0",
                "deckhand:workflow/volume@0.2.0"
            ]),
            Ok(WorldVersion::V0_2)
        );
        assert_eq!(
            of(&[
                "deckhand:workflow/container@0.2.1",
                "deckhand:workflow/state@0.2.1"
            ]),
            Ok(WorldVersion::V0_2)
        );
        assert_eq!(
            of(&["deckhand:workflow/container@0.2.2"]),
            Ok(WorldVersion::V0_2)
        );
        assert_eq!(of(&["wasi:io/streams@0.2.6"]), Ok(WorldVersion::V0_2));
        let mixed = of(&[
            "deckhand:workflow/job@0.1.0",
            "deckhand:workflow/volume@0.2.0",
        ]);
        assert!(mixed.unwrap_err().contains("both"));
        let future = of(&["deckhand:workflow/job@0.9.0"]);
        assert!(future.unwrap_err().contains("0.9.0"));
    }
}
