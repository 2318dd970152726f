//! [`ContainerRuntime`] on a real Docker daemon, through bollard: the
//! mapping of a [`ContainerConfig`] to the daemon's create request
//! ([`create_body`], pure), volumes, networks (never two of one name),
//! copying a volume through the archive API, and pulls with the
//! credentials of a [`RegistryAuth`].
//!
//! The daemons this runs against may speak API 1.41 (every request goes
//! unversioned, see `connect_to`), so: one network at create and the others
//! connected after, no `CheckDuplicate` on network create, and the
//! `X-Registry-Auth` header re-encoded URL-safe.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, Mount as DockerMount,
    MountType, MountVolumeOptions, NetworkConnectRequest, NetworkCreateRequest, NetworkingConfig,
    PortBinding as DockerPortBinding, RestartPolicy as DockerRestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, DownloadFromContainerOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, RemoveVolumeOptionsBuilder,
    RenameContainerOptionsBuilder, StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::progress::{PullLine, PullTracker};
use super::registry_auth::{RegistryAuth, url_safe_registry_auth};
use super::{
    Cause, ContainerConfig, ContainerRuntime, ContainerState, ImageSource, LABEL_HELPER,
    LABEL_MANAGED, MountKind, NetworkState, PullProgress, RestartPolicy, Result, RuntimeError,
    VolumeState, registry_reason, with_default_tag,
};

/// A Docker daemon, found through `DOCKER_HOST` or the default socket.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    endpoint: String,
    /// Credentials for pulls and registry lookups (its `Debug` shows no
    /// secret).
    auth: Arc<RegistryAuth>,
    /// One lock per network name being created, shared by clones: creation
    /// is a list-then-create, which must not interleave for one name.
    network_locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl DockerRuntime {
    /// Connect to the daemon named by `DOCKER_HOST`, or the default socket.
    /// Connecting does not contact the daemon; call [`ContainerRuntime::ping`].
    pub fn connect() -> Result<Self> {
        let endpoint =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        Self::connect_to(&endpoint)
    }

    /// Connect to the daemon at `endpoint` (`unix:///path/to/docker.sock`
    /// or `tcp://host:port`), whatever `DOCKER_HOST` says.
    pub fn connect_to(endpoint: &str) -> Result<Self> {
        let unreachable = |detail: String| RuntimeError::Unreachable {
            endpoint: endpoint.to_owned(),
            operation: "connect".into(),
            cause: Cause(detail),
        };
        // Pulls of large images stream for long; stalls are detected by the caller.
        let timeout = 3600;
        let docker = if let Some(path) = endpoint.strip_prefix("unix://") {
            Docker::connect_with_socket(path, timeout, bollard::API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_http(endpoint, timeout, bollard::API_DEFAULT_VERSION)
        }
        .map_err(|e| unreachable(e.to_string()))?
        // dockerd decodes X-Registry-Auth URL-safe; bollard encodes standard.
        .with_request_modifier(url_safe_registry_auth);
        Ok(DockerRuntime {
            docker,
            endpoint: endpoint.to_owned(),
            auth: Arc::new(RegistryAuth::none()),
            network_locks: Arc::default(),
        })
    }

    /// Use these registry credentials for pulls and registry lookups.
    pub fn with_registry_auth(mut self, auth: RegistryAuth) -> Self {
        self.auth = Arc::new(auth);
        self
    }

    /// The registry credentials in use (none unless given).
    pub fn registry_auth(&self) -> &RegistryAuth {
        &self.auth
    }

    /// Where the daemon is.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn map_err(&self, what: &str, e: BollardError) -> RuntimeError {
        match e {
            BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            } => RuntimeError::NotFound(message),
            BollardError::DockerResponseServerError {
                status_code: 409,
                message,
            } => RuntimeError::Conflict(message),
            BollardError::DockerResponseServerError { message, .. } => {
                RuntimeError::Daemon(message)
            }
            BollardError::DockerStreamError { error } => RuntimeError::Daemon(error),
            e @ (BollardError::IOError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::HyperLegacyError { .. }
            | BollardError::SocketNotFoundError(_)
            | BollardError::RequestTimeoutError) => {
                // The job's message says it in words; the client's error is
                // kept as the source, and here for whoever debugs.
                tracing::debug!(endpoint = %self.endpoint, "Docker daemon unreachable ({what}): {e}");
                RuntimeError::Unreachable {
                    endpoint: self.endpoint.clone(),
                    operation: what.to_owned(),
                    cause: Cause(e.to_string()),
                }
            }
            e => RuntimeError::Daemon(format!("Docker daemon error ({what}): {e}")),
        }
    }
}

/// Treat "not modified" (already started / already stopped) as success.
fn not_modified_is_ok(
    r: std::result::Result<(), BollardError>,
) -> std::result::Result<(), BollardError> {
    match r {
        Err(BollardError::DockerResponseServerError {
            status_code: 304, ..
        }) => Ok(()),
        other => other,
    }
}

fn state_of(r: bollard::models::ContainerInspectResponse) -> ContainerState {
    let config = r.config.unwrap_or_default();
    let state = r.state.unwrap_or_default();
    ContainerState {
        id: r.id.unwrap_or_default(),
        name: r
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        image: config.image.unwrap_or_default(),
        running: state.running.unwrap_or(false),
        health: state
            .health
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty() && s != "none"),
        exit_code: if state.running.unwrap_or(false) {
            None
        } else {
            state.exit_code
        },
        labels: config.labels.unwrap_or_default().into_iter().collect(),
    }
}

/// Nanoseconds, as the daemon takes every health check duration, from
/// milliseconds.
fn ms_to_ns(ms: u64) -> i64 {
    i64::try_from(ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The daemon's create request for `config`: a pure mapping, so that what
/// reaches the daemon can be checked without one. Only the first of
/// `config.networks` is in it (API 1.41 takes one network at create); the
/// others are connected after ([`DockerRuntime::create_container`]).
pub(crate) fn create_body(config: &ContainerConfig) -> Result<ContainerCreateBody> {
    if config.network.is_some() && !config.networks.is_empty() {
        return Err(RuntimeError::Daemon(format!(
            "container {}: a network mode (`{}`) and user-defined networks exclude each other",
            config.name,
            config.network.as_deref().unwrap_or_default()
        )));
    }
    // `80/tcp` → every host binding of it, in the order given.
    let mut exposed: Vec<String> = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<DockerPortBinding>>> = HashMap::new();
    for p in &config.ports {
        let key = format!("{}/{}", p.container_port, p.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(DockerPortBinding {
                host_ip: p.host_ip.clone(),
                host_port: p.host_port.map(|port| port.to_string()),
            });
    }
    let mounts: Vec<DockerMount> = config
        .mounts
        .iter()
        .map(|m| DockerMount {
            typ: Some(match m.kind {
                MountKind::Volume => MountType::VOLUME,
                MountKind::Bind => MountType::BIND,
            }),
            source: Some(m.source.clone()),
            target: Some(m.target.clone()),
            read_only: m.read_only.then_some(true),
            ..Default::default()
        })
        .collect();
    let restart_policy = config.restart.map(|r| match r {
        RestartPolicy::No => DockerRestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        },
        RestartPolicy::Always => DockerRestartPolicy {
            name: Some(RestartPolicyNameEnum::ALWAYS),
            maximum_retry_count: None,
        },
        RestartPolicy::UnlessStopped => DockerRestartPolicy {
            name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
            maximum_retry_count: None,
        },
        RestartPolicy::OnFailure { max_retries } => DockerRestartPolicy {
            name: Some(RestartPolicyNameEnum::ON_FAILURE),
            maximum_retry_count: max_retries.map(i64::from),
        },
    });
    let healthcheck = config.health_check.as_ref().map(|h| HealthConfig {
        test: Some(h.test.clone()),
        interval: h.interval_ms.map(ms_to_ns),
        timeout: h.timeout_ms.map(ms_to_ns),
        retries: h.retries.map(i64::from),
        start_period: h.start_period_ms.map(ms_to_ns),
        // API 1.44+: a 1.41 daemon ignores it.
        start_interval: None,
    });
    let (network_mode, networking_config) = match config.networks.first() {
        Some(first) => (
            Some(first.name.clone()),
            Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    first.name.clone(),
                    EndpointSettings {
                        aliases: (!first.aliases.is_empty()).then(|| first.aliases.clone()),
                        ..Default::default()
                    },
                )])),
            }),
        ),
        None => (config.network.clone(), None),
    };
    Ok(ContainerCreateBody {
        image: Some(with_default_tag(&config.image)),
        env: Some(config.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        cmd: config.cmd.clone(),
        entrypoint: config.entrypoint.clone(),
        user: config.user.clone(),
        working_dir: config.workdir.clone(),
        labels: Some(config.labels.clone().into_iter().collect::<HashMap<_, _>>()),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck,
        stop_timeout: config.stop_timeout_s.map(i64::from),
        host_config: Some(HostConfig {
            network_mode,
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            mounts: (!mounts.is_empty()).then_some(mounts),
            restart_policy,
            memory: config.memory_bytes.map(to_i64),
            nano_cpus: config.nano_cpus.map(to_i64),
            ..Default::default()
        }),
        networking_config,
        ..Default::default()
    })
}

/// A filter value matching exactly `name` (Docker's name filters are
/// regular expressions matched anywhere in the name).
fn exact_name_filter(name: &str) -> String {
    let mut pattern = String::from("^");
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' && c != '-' {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('$');
    pattern
}

/// A network's creation time (RFC 3339, as the daemon writes it, with
/// 0–9 fraction digits and a zone) as nanoseconds since the epoch, to find
/// the oldest of several: the text itself does not sort (`.1Z` > `.12Z`).
fn created_ns(created: &str) -> Option<i128> {
    let b = created.as_bytes();
    let num = |from: usize, to: usize| -> Option<i64> { created.get(from..to)?.parse().ok() };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &created[start..i];
        let kept = &digits[..digits.len().min(9)];
        nanos = kept.parse::<i64>().ok()? * 10i64.pow(9 - kept.len() as u32);
    }
    let offset_s = match created.get(i..)? {
        "Z" | "z" => 0,
        zone => {
            let sign = match zone.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let h: i64 = zone.get(1..3)?.parse().ok()?;
            let m: i64 = zone.get(4..6)?.parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

/// Whether a tar entry of a volume downloaded at `root` is the volume's
/// root directory itself (and not content).
fn is_archive_root(entry: &str, root: &str) -> bool {
    entry.trim_start_matches("./").trim_end_matches('/') == root
}

/// The names of the entries of a tar stream, read incrementally (only the
/// headers are kept: an entry's data is skipped as it streams by). Enough of
/// the format for what the daemon's archive API writes: ustar names with
/// prefixes, PAX and GNU long-name records (which describe the next entry).
#[derive(Default)]
struct TarEntries {
    pending: Vec<u8>,
    /// Data bytes (padded to blocks) still to skip.
    skip: u64,
    /// The next entry's name from a PAX `path` or GNU `L` record.
    long_name: Option<String>,
    /// Reading a long-name record's data into `pending`, this many bytes.
    collecting: Option<(u8, u64)>,
    ended: bool,
}

impl TarEntries {
    /// Feed the next bytes; returns the names of the entries completed.
    fn feed(&mut self, mut chunk: &[u8]) -> Vec<String> {
        let mut names = Vec::new();
        while !chunk.is_empty() && !self.ended {
            if self.skip > 0 {
                let n = (self.skip.min(chunk.len() as u64)) as usize;
                if let Some((_, want)) = self.collecting {
                    let keep = (want as usize).saturating_sub(self.pending.len()).min(n);
                    self.pending.extend_from_slice(&chunk[..keep]);
                }
                self.skip -= n as u64;
                chunk = &chunk[n..];
                if self.skip == 0
                    && let Some((kind, _)) = self.collecting.take()
                {
                    let data = std::mem::take(&mut self.pending);
                    self.long_name = Self::long_name_of(kind, &data);
                }
                continue;
            }
            let need = 512 - self.pending.len();
            let n = need.min(chunk.len());
            self.pending.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.pending.len() < 512 {
                break;
            }
            let header = std::mem::take(&mut self.pending);
            if header.iter().all(|&b| b == 0) {
                self.ended = true;
                break;
            }
            let field = |from: usize, to: usize| {
                let f = &header[from..to];
                let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
                String::from_utf8_lossy(&f[..end]).into_owned()
            };
            let size = u64::from_str_radix(field(124, 136).trim(), 8).unwrap_or(0);
            let kind = header[156];
            self.skip = size.div_ceil(512) * 512;
            match kind {
                b'x' | b'L' => self.collecting = Some((kind, size)),
                b'g' | b'K' => {}
                _ => {
                    let name = self.long_name.take().unwrap_or_else(|| {
                        let (name, prefix) = (field(0, 100), field(345, 500));
                        if &header[257..262] == b"ustar" && !prefix.is_empty() {
                            format!("{prefix}/{name}")
                        } else {
                            name
                        }
                    });
                    names.push(name);
                }
            }
            if self.skip == 0
                && let Some((kind, _)) = self.collecting.take()
            {
                self.long_name = Self::long_name_of(kind, &[]);
            }
        }
        names
    }

    fn long_name_of(kind: u8, data: &[u8]) -> Option<String> {
        let text = String::from_utf8_lossy(data);
        match kind {
            b'L' => Some(text.trim_end_matches('\0').to_owned()),
            // PAX records: "<len> key=value\n"; only `path` names the entry.
            _ => text.lines().find_map(|record| {
                let (_, kv) = record.split_once(' ')?;
                kv.strip_prefix("path=").map(str::to_owned)
            }),
        }
    }
}

/// Where a copy helper mounts its volume: a path no image has, so that
/// nothing of the image is copied into the volume.
const HELPER_MOUNT: &str = "/deckhand-vol";

/// The helper containers of one call, removed when it ends, however it
/// ends: explicitly by [`Helpers::remove_all`], or, if the call's future is
/// dropped (a cancelled job), by a task spawned from `Drop`.
struct Helpers {
    docker: Docker,
    names: Vec<String>,
}

impl Helpers {
    async fn remove_all(mut self) -> std::result::Result<(), (String, BollardError)> {
        let names = std::mem::take(&mut self.names);
        let mut first_error = None;
        for name in names {
            if let Err(e) = remove_forced(&self.docker, &name).await {
                first_error.get_or_insert((name, e));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Helpers {
    fn drop(&mut self) {
        if self.names.is_empty() {
            return;
        }
        let (docker, names) = (self.docker.clone(), std::mem::take(&mut self.names));
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                for name in names {
                    if let Err(e) = remove_forced(&docker, &name).await {
                        tracing::warn!("could not remove copy helper container {name}: {e}");
                    }
                }
            });
        }
    }
}

/// Remove a container and its anonymous volumes, stopping it first; a
/// missing one is not an error.
async fn remove_forced(docker: &Docker, id: &str) -> std::result::Result<(), BollardError> {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(options)).await {
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        other => other,
    }
}

impl DockerRuntime {
    /// The networks named exactly `name`, oldest first.
    async fn networks_named(&self, name: &str) -> Result<Vec<bollard::models::Network>> {
        let filters = HashMap::from([("name", vec![exact_name_filter(name)])]);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let mut found: Vec<_> = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(|e| self.map_err(&format!("list networks named {name}"), e))?
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .collect();
        found.sort_by_key(|n| {
            (
                n.created
                    .as_deref()
                    .and_then(created_ns)
                    .unwrap_or(i128::MAX),
                n.id.clone(),
            )
        });
        Ok(found)
    }

    /// The per-name creation lock for `name`.
    fn network_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.network_locks.lock().expect("network locks");
        locks.entry(name.to_owned()).or_default().clone()
    }

    /// Forget `name`'s lock once no call holds or waits for it.
    fn release_network_lock(&self, name: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self.network_locks.lock().expect("network locks");
        drop(lock);
        if locks.get(name).is_some_and(|l| Arc::strong_count(l) == 1) {
            locks.remove(name);
        }
    }

    async fn create_network_locked(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<NetworkState> {
        if let Some(existing) = self.networks_named(name).await?.first() {
            let id = existing.id.clone().unwrap_or_default();
            return self.inspect_network(&id).await?.ok_or_else(|| {
                RuntimeError::NotFound(format!("network {name} ({id}) vanished while used"))
            });
        }
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let created = self
            .docker
            .create_network(request)
            .await
            .map_err(|e| self.map_err(&format!("create network {name}"), e))?;
        // Another client (another engine, the CLI) may have created one of
        // the same name meanwhile: every creator keeps the oldest and
        // removes its own if it is not that one, so they all agree. (Within
        // this process the per-name lock makes it exact; across processes a
        // create still in flight when this lists can slip by: the daemon
        // offers nothing atomic.)
        let same = self.networks_named(name).await?;
        let oldest = same.first().and_then(|n| n.id.clone());
        match oldest {
            Some(oldest) if oldest != created.id => {
                match self.docker.remove_network(&created.id).await {
                    Ok(())
                    | Err(BollardError::DockerResponseServerError {
                        status_code: 404, ..
                    }) => {}
                    Err(e) => {
                        return Err(self.map_err(
                            &format!("remove duplicate network {name} ({})", created.id),
                            e,
                        ));
                    }
                }
                self.inspect_network(&oldest).await?.ok_or_else(|| {
                    RuntimeError::NotFound(format!("network {name} ({oldest}) vanished while used"))
                })
            }
            _ => Ok(NetworkState {
                id: created.id,
                name: name.to_owned(),
                labels: labels.clone(),
                containers: Vec::new(),
            }),
        }
    }

    /// Create a helper container (never started) mounting `volume` at
    /// [`HELPER_MOUNT`].
    async fn create_helper(
        &self,
        name: &str,
        image: &str,
        volume: &str,
        read_only: bool,
    ) -> Result<()> {
        let body = ContainerCreateBody {
            image: Some(with_default_tag(image)),
            // Docker wants a command to create a container; it never runs.
            entrypoint: Some(vec!["/deckhand-helper-never-started".into()]),
            cmd: Some(Vec::new()),
            network_disabled: Some(true),
            labels: Some(HashMap::from([
                (LABEL_MANAGED.to_owned(), "true".to_owned()),
                (LABEL_HELPER.to_owned(), "copy-volume".to_owned()),
            ])),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                mounts: Some(vec![DockerMount {
                    typ: Some(MountType::VOLUME),
                    source: Some(volume.to_owned()),
                    target: Some(HELPER_MOUNT.into()),
                    read_only: Some(read_only),
                    volume_options: Some(MountVolumeOptions {
                        no_copy: Some(true),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map(|_| ())
            .map_err(|e| {
                self.map_err(
                    &format!("create a helper container for volume {volume} from {image}"),
                    e,
                )
            })
    }

    /// Whether the volume mounted in helper `helper` has no content (its
    /// root directory may have any mode and owner).
    async fn helper_volume_is_empty(&self, helper: &str, volume: &str) -> Result<bool> {
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(HELPER_MOUNT)
            .build();
        let mut stream = self.docker.download_from_container(helper, Some(options));
        let mut entries = TarEntries::default();
        let root = HELPER_MOUNT.trim_start_matches('/');
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.map_err(&format!("read volume {volume}"), e))?;
            if entries
                .feed(&chunk)
                .iter()
                .any(|e| !is_archive_root(e, root))
            {
                // Enough seen: dropping the stream ends the download.
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Stream the content of `src`'s volume into `dst`'s.
    async fn copy_between(&self, src: &str, dst: &str, from: &str, to: &str) -> Result<()> {
        if !self.helper_volume_is_empty(dst, to).await? {
            return Err(RuntimeError::Conflict(format!(
                "volume {to} is not empty: a copy of {from} goes only into an empty volume"
            )));
        }
        // The mount point itself, so that its mode and owner come along
        // (entries `deckhand-vol/…`, unpacked at `/`).
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(HELPER_MOUNT)
            .build();
        let read_error: Arc<Mutex<Option<BollardError>>> = Arc::default();
        let seen = read_error.clone();
        let tar = self
            .docker
            .download_from_container(src, Some(options))
            .map_err(move |e| {
                let text = e.to_string();
                seen.lock().expect("read error").get_or_insert(e);
                std::io::Error::other(text)
            });
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        let written = self
            .docker
            .upload_to_container(dst, Some(options), bollard::body_try_stream(tar))
            .await;
        // A failed read also fails the write; the read's error says why.
        if let Some(e) = read_error.lock().expect("read error").take() {
            return Err(self.map_err(&format!("read volume {from} to copy it to {to}"), e));
        }
        written.map_err(|e| self.map_err(&format!("write the copy of volume {from} into {to}"), e))
    }
}

#[async_trait::async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn ping(&self) -> Result<()> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| self.map_err("ping", e))
    }

    async fn image_present(&self, image: &str) -> Result<bool> {
        match self.docker.inspect_image(&with_default_tag(image)).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(self.map_err("inspect image", e)),
        }
    }

    async fn resolve_image(&self, image: &str) -> Result<ImageSource> {
        if self.image_present(image).await? {
            return Ok(ImageSource::Local);
        }
        let reference = with_default_tag(image);
        match self
            .docker
            .inspect_registry_image(&reference, self.auth.docker_credentials(&reference))
            .await
        {
            Ok(_) => Ok(ImageSource::Registry),
            // The daemon answered for the registry: no such image, no
            // access, or no registry there.
            Err(BollardError::DockerResponseServerError { message, .. }) => {
                Ok(ImageSource::Unavailable(registry_reason(&message)))
            }
            Err(e) => Err(self.map_err("ask the registry about an image", e)),
        }
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>> {
        match self.docker.inspect_image(&with_default_tag(image)).await {
            Ok(found) => Ok(found.id),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.map_err("inspect image", e)),
        }
    }

    /// Measured: a pull whose client goes away during its last step still
    /// tags the image some milliseconds later; a second leaves margin.
    fn pull_abort_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    async fn pull_image(
        &self,
        image: &str,
        progress: &watch::Sender<PullProgress>,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let reference = with_default_tag(image);
        let options = CreateImageOptionsBuilder::default()
            .from_image(&reference)
            .build();
        let credentials = self.auth.docker_credentials(&reference);
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        let mut tracker = PullTracker::new();
        let fail = |detail: String| RuntimeError::Pull {
            image: image.to_owned(),
            detail,
        };
        loop {
            let item = tokio::select! {
                // Dropping the stream closes the request, which aborts the pull in the daemon.
                _ = cancel.cancelled() => return Err(RuntimeError::Cancelled),
                item = stream.next() => item,
            };
            let Some(item) = item else { break };
            let info = match item {
                Ok(info) => info,
                Err(BollardError::DockerStreamError { error }) => return Err(fail(error)),
                Err(e) => {
                    return Err(match self.map_err("pull", e) {
                        RuntimeError::NotFound(m) | RuntimeError::Daemon(m) => fail(m),
                        other => other,
                    });
                }
            };
            let line = PullLine {
                id: info.id,
                status: info.status,
                progress_detail: info
                    .progress_detail
                    .map(|d| super::progress::ProgressDetail {
                        current: d.current.and_then(|c| u64::try_from(c).ok()),
                        total: d.total.and_then(|t| u64::try_from(t).ok()),
                    }),
                error: None,
                error_detail: info
                    .error_detail
                    .map(|d| super::progress::ErrorDetail { message: d.message }),
            };
            tracker.observe(&line).map_err(|e| fail(e.to_string()))?;
            progress.send_replace(tracker.progress());
        }
        tracker.finish().map_err(|e| fail(e.to_string()))
    }

    async fn create_container(&self, config: &ContainerConfig) -> Result<String> {
        let body = create_body(config)?;
        // The daemon checks the network it creates on, but connecting a
        // container that is not running to a network that does not exist
        // succeeds (it fails only at start): check the others first.
        for network in config.networks.iter().skip(1) {
            match self.docker.inspect_network(&network.name, None).await {
                Ok(_) => {}
                Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    return Err(RuntimeError::NotFound(format!(
                        "network {} not found (container {} is to join it)",
                        network.name, config.name
                    )));
                }
                Err(e) => {
                    return Err(self.map_err(&format!("inspect network {}", network.name), e));
                }
            }
        }
        let options = CreateContainerOptionsBuilder::default()
            .name(&config.name)
            .build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| self.map_err("create container", e))?;
        // The daemon takes one network at create; the others join now,
        // before anyone can start it.
        for network in config.networks.iter().skip(1) {
            let request = NetworkConnectRequest {
                container: created.id.clone(),
                endpoint_config: Some(EndpointSettings {
                    aliases: (!network.aliases.is_empty()).then(|| network.aliases.clone()),
                    ..Default::default()
                }),
            };
            if let Err(e) = self.docker.connect_network(&network.name, request).await {
                let error = self.map_err(
                    &format!(
                        "connect container {} to network {}",
                        config.name, network.name
                    ),
                    e,
                );
                // Half a container is none: take it back (best effort; if
                // the daemon is away, the caller's undo finds it by name).
                if let Err(e) = remove_forced(&self.docker, &created.id).await {
                    tracing::warn!(
                        "could not remove container {} after a failed network connect: {e}",
                        config.name
                    );
                }
                return Err(match error {
                    RuntimeError::NotFound(m) => RuntimeError::NotFound(format!(
                        "network {} for container {}: {m}",
                        network.name, config.name
                    )),
                    RuntimeError::Daemon(m) => RuntimeError::Daemon(format!(
                        "connect container {} to network {}: {m}",
                        config.name, network.name
                    )),
                    other => other,
                });
            }
        }
        Ok(created.id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        not_modified_is_ok(self.docker.start_container(id, None).await)
            .map_err(|e| self.map_err("start container", e))
    }

    async fn stop_container(&self, id: &str, timeout_s: u32) -> Result<()> {
        let options = StopContainerOptionsBuilder::default()
            .t(timeout_s as i32)
            .build();
        not_modified_is_ok(self.docker.stop_container(id, Some(options)).await)
            .map_err(|e| self.map_err("stop container", e))
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        let options = RenameContainerOptionsBuilder::default()
            .name(new_name)
            .build();
        self.docker
            .rename_container(id, options)
            .await
            .map_err(|e| self.map_err("rename container", e))
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        // Its anonymous volumes go with it: nothing else can ever use them.
        remove_forced(&self.docker, id)
            .await
            .map_err(|e| self.map_err("remove container", e))
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        let options = RemoveImageOptionsBuilder::default().force(false).build();
        match self
            .docker
            .remove_image(&with_default_tag(image), Some(options), None)
            .await
        {
            Ok(_)
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(self.map_err("remove image", e)),
        }
    }

    async fn wait_not_running(&self, id: &str, limit: Duration) -> Result<bool> {
        let options = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut wait = self.docker.wait_container(id, Some(options));
        match tokio::time::timeout(limit, wait.next()).await {
            Err(_) => Ok(false),
            // The daemon answers once the container is not running; a
            // non-zero exit code comes as an error carrying the code.
            Ok(None | Some(Ok(_)))
            | Ok(Some(Err(BollardError::DockerContainerWaitError { .. })))
            | Ok(Some(Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }))) => Ok(true),
            Ok(Some(Err(e))) => Err(self.map_err("wait for container", e)),
        }
    }

    async fn log_tail(&self, id: &str, max_bytes: usize) -> Result<String> {
        // Docker cuts by lines; the bytes are cut here. A line is seldom
        // shorter than 16 bytes, so this many lines fill `max_bytes`.
        let lines = (max_bytes / 16).clamp(100, 100_000).to_string();
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(false)
            .timestamps(false)
            .tail(&lines)
            .build();
        let mut stream = self.docker.logs(id, Some(options));
        let mut kept: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.map_err("read container logs", e))?;
            kept.extend_from_slice(chunk.as_ref());
            // A few long lines may still be megabytes: keep only the end.
            if kept.len() > 2 * max_bytes + 4 {
                kept.drain(..kept.len() - max_bytes - 4);
            }
        }
        Ok(super::log_tail_of(&kept, max_bytes))
    }

    async fn inspect_container(&self, id_or_name: &str) -> Result<Option<ContainerState>> {
        match self.docker.inspect_container(id_or_name, None).await {
            Ok(r) => Ok(Some(state_of(r))),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.map_err("inspect container", e)),
        }
    }

    async fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<VolumeState> {
        // Idempotent in the daemon: an existing volume is returned as it
        // is, with its own labels, and the ones sent here are ignored.
        let request = VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        let volume = self
            .docker
            .create_volume(request)
            .await
            .map_err(|e| self.map_err(&format!("create volume {name}"), e))?;
        Ok(VolumeState {
            name: volume.name,
            labels: volume.labels.into_iter().collect(),
        })
    }

    async fn inspect_volume(&self, name: &str) -> Result<Option<VolumeState>> {
        match self.docker.inspect_volume(name).await {
            Ok(volume) => Ok(Some(VolumeState {
                name: volume.name,
                labels: volume.labels.into_iter().collect(),
            })),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.map_err(&format!("inspect volume {name}"), e)),
        }
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        // Not forced: the daemon refuses (409) while a container, running
        // or not, mounts it.
        let options = RemoveVolumeOptionsBuilder::default().force(false).build();
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(self.map_err(&format!("remove volume {name}"), e)),
        }
    }

    async fn create_network(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<NetworkState> {
        let lock = self.network_lock(name);
        let result = {
            let _held = lock.lock().await;
            self.create_network_locked(name, labels).await
        };
        self.release_network_lock(name, lock);
        result
    }

    async fn inspect_network(&self, name_or_id: &str) -> Result<Option<NetworkState>> {
        let network = match self.docker.inspect_network(name_or_id, None).await {
            Ok(n) => n,
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(self.map_err(&format!("inspect network {name_or_id}"), e)),
        };
        let id = network.id.unwrap_or_default();
        let name = network.name.unwrap_or_default();
        // The network lists only running endpoints; a stopped container
        // configured for it counts too (it could not start without it).
        // By name and by id: a container that never started knows its
        // networks by name only (no network id yet), the daemon's filter
        // matches either.
        let filters = HashMap::from([("network", vec![id.clone(), name.clone()])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let listed = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.map_err(&format!("list containers on network {name_or_id}"), e))?;
        let mut containers: Vec<String> = listed.into_iter().filter_map(|c| c.id).collect();
        containers.extend(network.containers.unwrap_or_default().into_keys());
        containers.sort();
        containers.dedup();
        Ok(Some(NetworkState {
            id,
            name,
            labels: network.labels.unwrap_or_default().into_iter().collect(),
            containers,
        }))
    }

    async fn remove_network(&self, name_or_id: &str) -> Result<()> {
        let Some(network) = self.inspect_network(name_or_id).await? else {
            return Ok(());
        };
        if !network.containers.is_empty() {
            let short: Vec<&str> = network
                .containers
                .iter()
                .map(|id| &id[..id.len().min(12)])
                .collect();
            return Err(RuntimeError::Conflict(format!(
                "network {} is in use by container(s) {}",
                network.name,
                short.join(", ")
            )));
        }
        match self.docker.remove_network(&network.id).await {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            // "has active endpoints": a container joined since the check.
            Err(BollardError::DockerResponseServerError {
                status_code: 403,
                message,
            }) => Err(RuntimeError::Conflict(format!(
                "network {}: {message}",
                network.name
            ))),
            Err(e) => Err(self.map_err(&format!("remove network {}", network.name), e)),
        }
    }

    async fn copy_volume(&self, from: &str, to: &str, helper_image: &str) -> Result<()> {
        for volume in [from, to] {
            if self.inspect_volume(volume).await?.is_none() {
                return Err(RuntimeError::NotFound(format!(
                    "no such volume: {volume} (copying {from} to {to})"
                )));
            }
        }
        // Named, so that one whose create answer was lost is still found
        // and removed.
        let tag = uuid::Uuid::now_v7().simple().to_string();
        let (src, dst) = (
            format!("deckhand-copy-{tag}-src"),
            format!("deckhand-copy-{tag}-dst"),
        );
        let mut helpers = Helpers {
            docker: self.docker.clone(),
            names: Vec::new(),
        };
        let copied = async {
            helpers.names.push(src.clone());
            self.create_helper(&src, helper_image, from, true).await?;
            helpers.names.push(dst.clone());
            self.create_helper(&dst, helper_image, to, false).await?;
            self.copy_between(&src, &dst, from, to).await
        }
        .await;
        let removed = helpers.remove_all().await;
        copied?;
        // A helper left behind keeps both volumes in use: say so.
        removed
            .map_err(|(name, e)| self.map_err(&format!("remove copy helper container {name}"), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{HealthCheck, Mount, NetworkAttachment, PortBinding};

    fn config() -> ContainerConfig {
        ContainerConfig {
            name: "deckhand-web".into(),
            image: "127.0.0.1:5000/web".into(),
            env: BTreeMap::from([("K".into(), "V".into())]),
            cmd: Some(vec!["serve".into()]),
            labels: BTreeMap::from([(LABEL_MANAGED.into(), "true".into())]),
            ..Default::default()
        }
    }

    #[test]
    fn a_plain_config_maps_as_it_always_did() {
        let mut c = config();
        c.network = Some("none".into());
        let body = create_body(&c).unwrap();
        assert_eq!(body.image.as_deref(), Some("127.0.0.1:5000/web:latest"));
        assert_eq!(body.env, Some(vec!["K=V".to_string()]));
        assert_eq!(body.cmd, Some(vec!["serve".to_string()]));
        assert_eq!(body.entrypoint, None);
        assert_eq!(body.user, None);
        assert_eq!(body.working_dir, None);
        assert_eq!(body.exposed_ports, None);
        assert_eq!(body.healthcheck, None);
        assert_eq!(body.stop_timeout, None);
        assert_eq!(body.networking_config, None);
        let host = body.host_config.unwrap();
        assert_eq!(
            host,
            HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }
        );
    }

    #[test]
    fn every_field_of_a_real_app_reaches_the_create_request() {
        let c = ContainerConfig {
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            user: Some("1000:1000".into()),
            workdir: Some("/www".into()),
            ports: vec![
                PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(8080),
                    container_port: 80,
                    protocol: "tcp".into(),
                },
                PortBinding {
                    host_ip: None,
                    host_port: Some(8443),
                    container_port: 80,
                    protocol: "tcp".into(),
                },
                PortBinding {
                    host_ip: None,
                    host_port: None,
                    container_port: 53,
                    protocol: "udp".into(),
                },
            ],
            mounts: vec![
                Mount {
                    kind: MountKind::Volume,
                    source: "deckhand-web-data".into(),
                    target: "/var/lib/x".into(),
                    read_only: false,
                },
                Mount {
                    kind: MountKind::Bind,
                    source: "/abs/host".into(),
                    target: "/etc/app".into(),
                    read_only: true,
                },
            ],
            networks: vec![
                NetworkAttachment {
                    name: "appnet".into(),
                    aliases: vec!["web".into()],
                },
                NetworkAttachment {
                    name: "backend".into(),
                    aliases: vec![],
                },
            ],
            restart: Some(RestartPolicy::OnFailure {
                max_retries: Some(3),
            }),
            memory_bytes: Some(256 * 1024 * 1024),
            nano_cpus: Some(500_000_000),
            health_check: Some(HealthCheck {
                test: vec![
                    "CMD-SHELL".into(),
                    "wget -q -O /dev/null http://127.0.0.1/".into(),
                ],
                interval_ms: Some(1_000),
                timeout_ms: Some(2_500),
                retries: Some(3),
                start_period_ms: Some(500),
            }),
            stop_timeout_s: Some(10),
            ..config()
        };
        let body = create_body(&c).unwrap();
        assert_eq!(
            body.entrypoint,
            Some(vec!["/bin/sh".to_string(), "-c".to_string()])
        );
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(body.working_dir.as_deref(), Some("/www"));
        assert_eq!(
            body.exposed_ports,
            Some(vec!["80/tcp".to_string(), "53/udp".to_string()])
        );
        assert_eq!(body.stop_timeout, Some(10));
        assert_eq!(
            body.healthcheck,
            Some(HealthConfig {
                test: Some(vec![
                    "CMD-SHELL".into(),
                    "wget -q -O /dev/null http://127.0.0.1/".into()
                ]),
                interval: Some(1_000_000_000),
                timeout: Some(2_500_000_000),
                retries: Some(3),
                start_period: Some(500_000_000),
                start_interval: None,
            })
        );
        let host = body.host_config.clone().unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("appnet"));
        let bindings = host.port_bindings.unwrap();
        assert_eq!(bindings.len(), 2);
        assert_eq!(
            bindings["80/tcp"],
            Some(vec![
                DockerPortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some("8080".into())
                },
                DockerPortBinding {
                    host_ip: None,
                    host_port: Some("8443".into())
                },
            ])
        );
        assert_eq!(
            bindings["53/udp"],
            Some(vec![DockerPortBinding {
                host_ip: None,
                host_port: None
            }])
        );
        assert_eq!(
            host.mounts,
            Some(vec![
                DockerMount {
                    typ: Some(MountType::VOLUME),
                    source: Some("deckhand-web-data".into()),
                    target: Some("/var/lib/x".into()),
                    ..Default::default()
                },
                DockerMount {
                    typ: Some(MountType::BIND),
                    source: Some("/abs/host".into()),
                    target: Some("/etc/app".into()),
                    read_only: Some(true),
                    ..Default::default()
                },
            ])
        );
        assert_eq!(
            host.restart_policy,
            Some(DockerRestartPolicy {
                name: Some(RestartPolicyNameEnum::ON_FAILURE),
                maximum_retry_count: Some(3)
            })
        );
        assert_eq!(host.memory, Some(268_435_456));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        // Only the first network at create, with its aliases.
        let endpoints = body
            .networking_config
            .clone()
            .unwrap()
            .endpoints_config
            .unwrap();
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints["appnet"].aliases, Some(vec!["web".to_string()]));

        // On the wire: exposed ports as Docker's `{"80/tcp": {}}` map.
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json["ExposedPorts"],
            serde_json::json!({"80/tcp": {}, "53/udp": {}})
        );
        assert_eq!(json["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    }

    #[test]
    fn restart_policies_map_to_dockers_names() {
        for (policy, name, retries) in [
            (RestartPolicy::No, "no", None),
            (RestartPolicy::Always, "always", None),
            (RestartPolicy::UnlessStopped, "unless-stopped", None),
            (
                RestartPolicy::OnFailure { max_retries: None },
                "on-failure",
                None,
            ),
        ] {
            let body = create_body(&ContainerConfig {
                restart: Some(policy),
                ..config()
            })
            .unwrap();
            let r = body.host_config.unwrap().restart_policy.unwrap();
            assert_eq!(r.name.unwrap().to_string(), name);
            assert_eq!(r.maximum_retry_count, retries);
        }
    }

    #[test]
    fn a_network_mode_and_networks_exclude_each_other() {
        let c = ContainerConfig {
            network: Some("none".into()),
            networks: vec![NetworkAttachment {
                name: "appnet".into(),
                aliases: vec![],
            }],
            ..config()
        };
        let e = create_body(&c).unwrap_err();
        assert!(
            matches!(&e, RuntimeError::Daemon(m) if m.contains("exclude each other")),
            "{e}"
        );
    }

    #[test]
    fn name_filters_match_exactly() {
        assert_eq!(exact_name_filter("appnet"), "^appnet$");
        assert_eq!(exact_name_filter("a.b-c_d"), "^a\\.b-c_d$");
    }

    #[test]
    fn creation_times_compare_as_times_not_text() {
        let a = created_ns("2026-12-02T10:11:12.1Z").unwrap();
        let b = created_ns("2026-12-02T10:11:12.12Z").unwrap();
        assert!(a < b);
        assert_eq!(
            created_ns("2026-12-02T11:11:12.1+01:00"),
            Some(a),
            "zones are applied"
        );
        assert_eq!(created_ns("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(created_ns("1970-01-01T00:00:00.000000001Z"), Some(1));
        assert!(created_ns("2024-02-29T00:00:00Z") < created_ns("2024-03-01T00:00:00Z"));
        assert_eq!(created_ns("yesterday"), None);
    }

    /// A tar header block for `name` with `size` bytes of data.
    fn header(name: &str, kind: u8, size: usize) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let size = format!("{size:011o}\0");
        h[124..136].copy_from_slice(size.as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h
    }

    fn entry(name: &str, kind: u8, data: &[u8]) -> Vec<u8> {
        let mut e = header(name, kind, data.len());
        e.extend_from_slice(data);
        e.resize(512 + data.len().div_ceil(512) * 512, 0);
        e
    }

    #[test]
    fn tar_entries_are_read_incrementally_whatever_the_chunking() {
        let long = format!("deckhand-vol/{}", "d".repeat(150));
        let pax = format!("{} path={long}\n", 6 + long.len() + 6);
        let mut tar = Vec::new();
        tar.extend(entry("deckhand-vol/", b'5', b""));
        tar.extend(entry("deckhand-vol/a.txt", b'0', &[7u8; 700]));
        tar.extend(entry("PaxHeaders/x", b'x', pax.as_bytes()));
        tar.extend(entry("truncated", b'0', b"x"));
        tar.extend(entry(
            "././@LongLink",
            b'L',
            format!("{long}/z\0").as_bytes(),
        ));
        tar.extend(entry("cut", b'2', b""));
        tar.extend([0u8; 1024]);
        tar.extend(entry("after-the-end", b'0', b""));
        let expected = vec![
            "deckhand-vol/".to_string(),
            "deckhand-vol/a.txt".into(),
            long.clone(),
            format!("{long}/z"),
        ];
        for chunk in [1, 7, 511, 512, 513, 4096, tar.len()] {
            let mut entries = TarEntries::default();
            let names: Vec<String> = tar.chunks(chunk).flat_map(|c| entries.feed(c)).collect();
            assert_eq!(names, expected, "chunks of {chunk}");
        }
        assert!(is_archive_root("deckhand-vol/", "deckhand-vol"));
        assert!(is_archive_root("./deckhand-vol", "deckhand-vol"));
        assert!(!is_archive_root("deckhand-vol/a", "deckhand-vol"));
    }
}
