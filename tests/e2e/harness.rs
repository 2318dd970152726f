//! Shared set-up for the end-to-end tests: the Docker daemon and registry of
//! `tests/env/up.sh`, an engine on a fresh data directory, and independent
//! views of Docker (straight through bollard) to check what happened.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveImageOptionsBuilder};
use deckhand::executor::Executor;
use deckhand::journal::Journal;
use deckhand::plugin::{HostSettings, PluginHost};
use deckhand::runtime::DockerRuntime;

/// The registry the test images live in.
pub fn registry() -> String {
    std::env::var("DECKHAND_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into())
}

/// Full reference of a test image, e.g. `image("app:1")`.
pub fn image(name_tag: &str) -> String {
    format!("{}/deckhand-test/{name_tag}", registry())
}

/// A Docker client for checking, independent of the engine's runtime.
/// Without a daemon the test fails, naming the script that starts one.
pub async fn docker() -> Docker {
    let hint = "no Docker daemon: run `eval \"$(tests/env/up.sh)\"` first (sets DOCKER_HOST), or use scripts/test.sh";
    let d = Docker::connect_with_defaults().expect(hint);
    if let Err(e) = d.ping().await {
        panic!("{hint} ({e})");
    }
    d
}

/// An engine on a fresh data directory.
pub struct TestEngine {
    /// Its data directory, removed when the engine is dropped.
    #[allow(dead_code)]
    pub dir: tempfile::TempDir,
    /// The executor.
    pub executor: Executor,
    /// Independent Docker client.
    pub docker: Docker,
}

impl TestEngine {
    /// Start one with default settings.
    pub async fn start() -> TestEngine {
        Self::with_settings(HostSettings::default()).await
    }

    /// Start one with these host settings.
    pub async fn with_settings(settings: HostSettings) -> TestEngine {
        Self::with_runtime(settings, DockerRuntime::connect().unwrap()).await
    }

    /// Start one with these host settings on `runtime`; [`TestEngine::docker`]
    /// talks to `DOCKER_HOST` directly.
    pub async fn with_runtime(settings: HostSettings, runtime: DockerRuntime) -> TestEngine {
        let docker = docker().await;
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path().join(Journal::FILE_NAME)).unwrap();
        let host = Arc::new(PluginHost::with_builtins(Some(plugin_cache())).unwrap());
        let executor = Executor::new(journal, Arc::new(runtime), host, settings);
        TestEngine {
            dir,
            executor,
            docker,
        }
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        self.executor.journal()
    }
}

/// Compiled plugins are cached across tests, as the CLI does per data dir.
fn plugin_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")
}

/// A target name no other test uses.
pub fn unique_target(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid_like()[..8])
}

fn uuid_like() -> String {
    deckhand::journal::JobId::new()
        .to_string()
        .replace('-', "")
        .chars()
        .rev()
        .collect()
}

/// Containers carrying `io.deckhand.target=<target>`, with their state.
pub async fn containers_of(
    docker: &Docker,
    target: &str,
) -> Vec<bollard::models::ContainerSummary> {
    let filters = HashMap::from([("label", vec![format!("io.deckhand.target={target}")])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    docker.list_containers(Some(options)).await.unwrap()
}

/// Whether an image reference is in the daemon's store.
pub async fn image_present(docker: &Docker, reference: &str) -> bool {
    docker.inspect_image(reference).await.is_ok()
}

/// Remove an image reference if present (test set-up).
pub async fn ensure_image_absent(docker: &Docker, reference: &str) {
    let options = RemoveImageOptionsBuilder::default().force(true).build();
    let _ = docker.remove_image(reference, Some(options), None).await;
}

/// Remove every container of `target` (test clean-up; the engine never
/// removes by label alone).
pub async fn remove_target_containers(docker: &Docker, target: &str) {
    let options = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
        .force(true)
        .build();
    for c in containers_of(docker, target).await {
        let _ = docker
            .remove_container(c.id.as_deref().unwrap_or_default(), Some(options.clone()))
            .await;
    }
}

/// Submit a job and wait for its end.
pub async fn run_job(
    engine: &TestEngine,
    workflow: &str,
    target: &str,
    params: serde_json::Value,
) -> deckhand::journal::JobRecord {
    let req = deckhand::executor::JobRequest::new(workflow, target, params);
    let job = engine.executor.submit(req).await.expect("job accepted");
    engine.executor.wait(&job.id).await.expect("job ends")
}

/// What a test compares before and after a job: the target's containers
/// (id, name, running), which of some image references are present, the
/// target's current revision (number and container id, and a stack's
/// services), its volumes with their content, and its networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// (id, name, running), sorted: the containers labelled as the
    /// target's, and any other container that mounts one of its volumes
    /// (e.g. a volume-copy helper left behind).
    pub containers: Vec<(String, String, bool)>,
    /// (reference, present).
    pub images: Vec<(String, bool)>,
    /// (revision, container id) of the current revision (no container id
    /// for a stack).
    pub revision: Option<(u64, String)>,
    /// (service, container id) of each service of the current revision,
    /// in start order; none unless it is a stack.
    pub services: Vec<(String, String)>,
    /// The target's volumes, by name: those labelled as its and those named
    /// as its (`deckhand-<target>-V…`, labelled or not).
    pub volumes: Vec<VolumeSnapshot>,
    /// (name, id), sorted: the networks labelled as the target's and those
    /// whose name contains the target's.
    pub networks: Vec<(String, String)>,
}

/// One volume in a [`Snapshot`]: one whose content, modes or owners
/// changed is not equal, nor one removed and made again (by another job,
/// or in another second).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSnapshot {
    /// The Docker volume name.
    pub name: String,
    /// When Docker created it.
    pub created_at: String,
    /// Its labels, sorted.
    pub labels: Vec<(String, String)>,
    /// [`VOLUME_LISTING`]'s lines for it: every entry, sorted by path.
    pub content: Vec<String>,
}

/// Every entry of the volume mounted at `$1`: path, mode, owner, and the
/// size and checksum of a file, the target of a symbolic link.
pub const VOLUME_LISTING: &str = r#"cd "$1" && find . | sort | while read -r f; do
  if [ -L "$f" ]; then echo "$f $(stat -c '%a %u %g' "$f") link $(readlink "$f")";
  elif [ -d "$f" ]; then echo "$f $(stat -c '%a %u %g' "$f") dir";
  else echo "$f $(stat -c '%a %u %g %s' "$f") $(md5sum < "$f" | cut -d' ' -f1)"; fi; done"#;

/// Take a [`Snapshot`] of `target`.
pub async fn snapshot(
    docker: &Docker,
    journal: &Journal,
    target: &str,
    images: &[String],
) -> Snapshot {
    let (volumes, networks) = target_volumes_and_networks(docker, target).await;
    let mut containers: Vec<_> = containers_of(docker, target).await;
    for v in &volumes {
        containers.extend(containers_mounting(docker, &v.name).await);
    }
    let mut containers: Vec<_> = containers
        .into_iter()
        .map(|c| {
            let name = c
                .names
                .unwrap_or_default()
                .first()
                .cloned()
                .unwrap_or_default();
            let running = c.state.map(|s| s.to_string()) == Some("running".into());
            (
                c.id.unwrap_or_default(),
                name.trim_start_matches('/').to_owned(),
                running,
            )
        })
        .collect();
    containers.sort();
    containers.dedup();
    let mut present = Vec::new();
    for i in images {
        present.push((i.clone(), image_present(docker, i).await));
    }
    let current = journal.target(target).unwrap().and_then(|t| t.current);
    let services = current
        .iter()
        .flat_map(|r| &r.services)
        .map(|s| (s.name.clone(), s.container_id.clone()))
        .collect();
    let revision = current.map(|r| (r.revision, r.container_id));
    let names: Vec<String> = volumes.iter().map(|v| v.name.clone()).collect();
    let mut contents = volume_contents(docker, &names).await.into_iter();
    let volumes = volumes
        .into_iter()
        .map(|v| {
            let mut labels: Vec<_> = v.labels.into_iter().collect();
            labels.sort();
            VolumeSnapshot {
                name: v.name,
                created_at: v.created_at.map(|d| format!("{d:?}")).unwrap_or_default(),
                labels,
                content: contents.next().unwrap_or_default(),
            }
        })
        .collect();
    let mut networks: Vec<_> = networks
        .into_iter()
        .map(|n| (n.name.unwrap_or_default(), n.id.unwrap_or_default()))
        .collect();
    networks.sort();
    networks.dedup();
    Snapshot {
        containers,
        images: present,
        revision,
        services,
        volumes,
        networks,
    }
}

/// The volumes (sorted by name) and networks of `target`: labelled as its,
/// or named as its (volumes `deckhand-<target>-V…`, networks whose name
/// contains the target's).
pub async fn target_volumes_and_networks(
    docker: &Docker,
    target: &str,
) -> (Vec<bollard::models::Volume>, Vec<bollard::models::Network>) {
    use bollard::query_parameters::{ListNetworksOptionsBuilder, ListVolumesOptionsBuilder};
    let label = format!("io.deckhand.target={target}");
    let prefix = format!("deckhand-{target}-V");
    let mut volumes: Vec<bollard::models::Volume> = Vec::new();
    let mut networks: Vec<bollard::models::Network> = Vec::new();
    for (key, value) in [("label", label.as_str()), ("name", target)] {
        let filters: HashMap<&str, Vec<&str>> = HashMap::from([(key, vec![value])]);
        let listed = docker
            .list_volumes(Some(
                ListVolumesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .unwrap()
            .volumes
            .unwrap_or_default();
        // The name filter matches a part of the name.
        volumes.extend(
            listed
                .into_iter()
                .filter(|v| key == "label" || v.name.starts_with(&prefix)),
        );
        let listed = docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .unwrap();
        networks.extend(listed.into_iter().filter(|n| {
            key == "label" || n.name.as_deref().is_some_and(|name| name.contains(target))
        }));
    }
    volumes.sort_by(|a, b| a.name.cmp(&b.name));
    volumes.dedup_by(|a, b| a.name == b.name);
    networks.sort_by(|a, b| a.id.cmp(&b.id));
    networks.dedup_by(|a, b| a.id == b.id);
    (volumes, networks)
}

/// Every container, running or not, that mounts volume `name`.
pub async fn containers_mounting(
    docker: &Docker,
    name: &str,
) -> Vec<bollard::models::ContainerSummary> {
    let filters = HashMap::from([("volume", vec![name.to_owned()])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    docker.list_containers(Some(options)).await.unwrap()
}

/// [`VOLUME_LISTING`] of each of `volumes`, in order, read by one helper
/// container (no network; mounted read-only; never labelled as a
/// target's) that is removed before this returns.
pub async fn volume_contents(docker: &Docker, volumes: &[String]) -> Vec<Vec<String>> {
    use bollard::models::{ContainerCreateBody, HostConfig};
    use bollard::query_parameters::{
        CreateContainerOptionsBuilder, CreateImageOptionsBuilder, LogsOptionsBuilder,
        RemoveContainerOptionsBuilder,
    };
    use futures_util::{StreamExt, TryStreamExt};
    if volumes.is_empty() {
        return Vec::new();
    }
    // The busybox base image every test image is built on (tests/env/up.sh
    // keeps it on the machine; no test removes it).
    let probe_image = image("base:1");
    if !image_present(docker, &probe_image).await {
        let options = CreateImageOptionsBuilder::default()
            .from_image(&probe_image)
            .build();
        docker
            .create_image(Some(options), None, None)
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
    }
    let mut script = String::from("set -e; list() { ");
    script.push_str(VOLUME_LISTING);
    script.push_str("; }; ");
    for i in 0..volumes.len() {
        script.push_str(&format!("echo '@@ {i}'; list /v/{i}; "));
    }
    let name = format!("volume-probe-{}", &uuid_like()[..12]);
    let body = ContainerCreateBody {
        image: Some(probe_image),
        cmd: Some(vec!["/bin/sh".into(), "-c".into(), script]),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            binds: Some(
                volumes
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("{v}:/v/{i}:ro"))
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    docker.create_container(Some(options), body).await.unwrap();
    docker.start_container(&name, None).await.unwrap();
    // An exit code other than 0 comes as an error: read below.
    let _ = docker.wait_container(&name, None).collect::<Vec<_>>().await;
    let state = docker.inspect_container(&name, None).await.unwrap().state;
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .build();
    let logs: Vec<_> = docker.logs(&name, Some(options)).collect().await;
    let options = RemoveContainerOptionsBuilder::default().force(true).build();
    docker.remove_container(&name, Some(options)).await.unwrap();
    let text: String = logs.into_iter().map(|l| l.unwrap().to_string()).collect();
    let exit = state.and_then(|s| s.exit_code);
    assert_eq!(exit, Some(0), "listing volumes {volumes:?}: {text}");
    let mut out: Vec<Vec<String>> = vec![Vec::new(); volumes.len()];
    let mut current = None;
    for line in text.lines() {
        match line.strip_prefix("@@ ") {
            Some(i) => current = Some(i.parse::<usize>().unwrap()),
            None => out[current.expect("a volume's header first")].push(line.to_owned()),
        }
    }
    out
}

/// Remove what a test left of `target` in Docker: its containers (and any
/// container that mounts one of its volumes), then its volumes and networks.
pub async fn remove_target_resources(docker: &Docker, target: &str) {
    let (volumes, networks) = target_volumes_and_networks(docker, target).await;
    remove_target_containers(docker, target).await;
    let options = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
        .force(true)
        .build();
    for v in &volumes {
        for c in containers_mounting(docker, &v.name).await {
            let _ = docker
                .remove_container(c.id.as_deref().unwrap_or_default(), Some(options.clone()))
                .await;
        }
    }
    for v in volumes {
        let _ = docker
            .remove_volume(
                &v.name,
                None::<bollard::query_parameters::RemoveVolumeOptions>,
            )
            .await;
    }
    for n in networks {
        let _ = docker
            .remove_network(n.id.as_deref().unwrap_or_default())
            .await;
    }
}

/// A TCP proxy on loopback in front of the registry that forwards at most
/// `bytes_per_sec` in each direction per connection: makes pulls slow enough
/// to cancel in the middle. Stops when dropped.
pub struct SlowProxy {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SlowProxy {
    /// Start one in front of the test registry.
    pub async fn start(bytes_per_sec: u64) -> SlowProxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let upstream = registry();
        async fn pump(
            mut from: tokio::net::tcp::OwnedReadHalf,
            mut to: tokio::net::tcp::OwnedWriteHalf,
            rate: u64,
        ) {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match from.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_secs_f64(n as f64 / rate as f64))
                    .await;
            }
            let _ = to.shutdown().await;
        }
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pump(cr, sw, bytes_per_sec), pump(sr, cw, bytes_per_sec));
                });
            }
        });
        SlowProxy { addr, task }
    }

    /// A test image's reference through this proxy.
    pub fn image(&self, name_tag: &str) -> String {
        format!("{}/deckhand-test/{name_tag}", self.addr)
    }
}

/// Short settle time for containers without a health check, so that the
/// many jobs of the matrices run quickly.
pub fn quick_settings() -> HostSettings {
    HostSettings {
        settle_time: std::time::Duration::from_millis(300),
        ..HostSettings::default()
    }
}

/// A component from the plugins workspace (examples, test workflows).
pub fn plugin_wasm(crate_name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("DECKHAND_PLUGIN_WASM_DIR"))
        .join(format!("{}.wasm", crate_name.replace('-', "_")));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A registry address that accepts connections and never answers: a pull
/// from it makes no progress at all.
pub struct BlackHole {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BlackHole {
    /// Start one.
    pub async fn start() -> BlackHole {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        BlackHole { addr, task }
    }

    /// An image reference served by nobody.
    pub fn image(&self) -> String {
        format!("{}/deckhand-test/app:1", self.addr)
    }
}

/// An engine on the in-memory runtime (no Docker needed).
pub fn memory_engine(
    runtime: Arc<deckhand::runtime::MemoryRuntime>,
) -> (tempfile::TempDir, Executor) {
    memory_engine_with(runtime, quick_settings())
}

/// [`memory_engine`] with other host settings.
pub fn memory_engine_with(
    runtime: Arc<deckhand::runtime::MemoryRuntime>,
    settings: HostSettings,
) -> (tempfile::TempDir, Executor) {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path().join(Journal::FILE_NAME)).unwrap();
    let host = Arc::new(PluginHost::with_builtins(Some(plugin_cache())).unwrap());
    (dir, Executor::new(journal, runtime, host, settings))
}

/// The token test servers require when a test names none (a server never
/// runs open); [`http_client`] presents it.
pub const TEST_TOKEN: &str = "deckhand-test-token";

/// An HTTP client that presents [`TEST_TOKEN`].
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().unwrap()
}

/// A client builder that presents [`TEST_TOKEN`].
pub fn http_client_builder() -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {TEST_TOKEN}").parse().unwrap(),
    );
    reqwest::Client::builder().default_headers(headers)
}

/// A `deckhand serve` child process on a loopback port of its own. What it
/// writes to stderr is kept ([`Server::stderr`]) and printed if the test
/// fails; it is killed when dropped.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its data directory, removed with the server.
    #[allow(dead_code)]
    pub dir: tempfile::TempDir,
    process: ServerProcess,
    /// How it was started, to start it again: its `serve` arguments but
    /// `--listen`, and its environment.
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The token it requires; `None` when it keeps its own in its data
    /// directory.
    token: Option<String>,
}

/// One run of a [`Server`]'s process.
struct ServerProcess {
    child: std::process::Child,
    /// What it has written to stderr so far.
    stderr: Arc<std::sync::Mutex<String>>,
    /// The thread that reads it, until the process closes it.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl ServerProcess {
    /// Wait for it to exit and for the last of its stderr.
    fn reap(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = self.child.wait();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        status
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.child.kill();
        let _ = self.process.reap();
        if std::thread::panicking() {
            eprintln!("deckhand serve ({}) stderr:\n{}", self.url, self.stderr());
        }
    }
}

impl Server {
    /// Start one on `runtime` (`docker` or `memory`), with `token` if given,
    /// else [`TEST_TOKEN`].
    pub fn start(runtime: &str, token: Option<&str>) -> Server {
        Self::start_with(runtime, token, &[])
    }

    /// Start one with extra `serve` arguments.
    pub fn start_with(runtime: &str, token: Option<&str>, extra: &[&str]) -> Server {
        Self::start_with_env(runtime, token, extra, &[])
    }

    /// Start one with extra `serve` arguments and environment variables.
    pub fn start_with_env(
        runtime: &str,
        token: Option<&str>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        Self::launch(runtime, Some(token.unwrap_or(TEST_TOKEN)), extra, env)
    }

    /// Start one with no `DECKHAND_TOKEN`: it makes up its own and keeps it
    /// in its data directory.
    pub fn start_without_token(runtime: &str) -> Server {
        Self::launch(runtime, None, &[], &[])
    }

    fn launch(runtime: &str, token: Option<&str>, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = vec!["--runtime".into(), runtime.into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(token) = token {
            env.push(("DECKHAND_TOKEN".into(), token.to_owned()));
        }
        let (url, process) = Self::spawn(dir.path(), "127.0.0.1:0", &args, &env);
        Server {
            url,
            dir,
            process,
            args,
            env,
            token: token.map(str::to_owned),
        }
    }

    /// Kill it (SIGKILL) unless it has exited already, and start it again on
    /// the same data directory and port: its URL stays the same.
    pub fn restart(&mut self) {
        let _ = self.process.child.kill();
        let _ = self.process.reap();
        let listen = self.url.trim_start_matches("http://").to_owned();
        let (url, process) = Self::spawn(self.dir.path(), &listen, &self.args, &self.env);
        self.url = url;
        self.process = process;
    }

    /// Ask it to stop, as a service manager does (SIGTERM).
    pub fn sigterm(&self) {
        let pid = self.process.child.id();
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        assert_eq!(
            rc,
            0,
            "SIGTERM to {pid}: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Wait until it has exited: its exit status. All it wrote to stderr is
    /// in [`Server::stderr`] then.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.process.reap().unwrap()
    }

    /// What it has written to stderr since it was last started.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }

    fn spawn(
        dir: &std::path::Path,
        listen: &str,
        args: &[String],
        env: &[(String, String)],
    ) -> (String, ServerProcess) {
        use std::io::{BufRead, BufReader, Read};
        let mut cmd = deckhand(dir);
        cmd.args(["serve", "--listen", listen])
            .args(args)
            .env("DECKHAND_SETTLE_MS", "300")
            .env_remove("DECKHAND_TOKEN")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let mut from = child.stderr.take().unwrap();
        let into = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = from.read(&mut buf) {
                into.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut process = ServerProcess {
            child,
            stderr,
            stderr_reader: Some(stderr_reader),
        };
        let mut out = BufReader::new(process.child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let Some(url) = line.trim().strip_prefix("deckhand listening on ") else {
            let _ = process.child.kill();
            let _ = process.reap();
            panic!(
                "unexpected first line: {line}\nstderr:\n{}",
                process.stderr()
            );
        };
        let url = url.to_owned();
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || for _ in out.lines() {});
        (url, process)
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// POST a job: the answer, whatever it is.
    pub async fn post_job(&self, body: serde_json::Value) -> reqwest::Response {
        http_client()
            .post(self.at("/v1/jobs"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// POST a job that must be accepted (202): its JSON.
    pub async fn accepted(&self, body: serde_json::Value) -> serde_json::Value {
        let resp = self.post_job(body).await;
        assert_eq!(resp.status(), 202);
        resp.json().await.unwrap()
    }

    /// GET `path`: the JSON of the answer.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        http_client()
            .get(self.at(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// GET job `id`: its JSON.
    pub async fn job(&self, id: &str) -> serde_json::Value {
        self.get_json(&format!("/v1/jobs/{id}")).await
    }

    /// Poll job `id` until `done` holds of its JSON (within 30 s): that JSON.
    pub async fn wait_for_job(
        &self,
        id: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let job = self.job(id).await;
            if done(&job) {
                return job;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job never got there: {job}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// `deckhand --data-dir <data_dir> --server <url>`, presenting the
    /// server's token; for a server without one, none (the CLI then reads
    /// the one the server keeps, if `data_dir` is the server's).
    pub fn client(&self, data_dir: &std::path::Path) -> std::process::Command {
        let mut c = deckhand(data_dir);
        match &self.token {
            Some(token) => c.env("DECKHAND_TOKEN", token),
            None => c.env_remove("DECKHAND_TOKEN"),
        };
        c.arg("--server").arg(&self.url);
        c
    }

    /// Run `deckhand --server <url> <args>` to its end, from a data
    /// directory of its own (so nothing local is read).
    pub fn remote(&self, args: &[&str]) -> std::process::Output {
        let work = tempfile::tempdir().unwrap();
        self.client(work.path()).args(args).output().unwrap()
    }

    /// Run `deckhand <args>` in-process on the server's data directory (whose
    /// lock the server holds: commands that run jobs there refuse, reads and
    /// cancels work).
    pub fn local(&self, args: &[&str]) -> std::process::Output {
        deckhand(self.dir.path()).args(args).output().unwrap()
    }
}

/// Whether a job's JSON says it has ended.
pub fn is_terminal(job: &serde_json::Value) -> bool {
    ["succeeded", "cancelled", "rolled_back", "failed"].contains(&job["state"].as_str().unwrap())
}

/// The `deckhand` binary on data directory `data_dir`, to add arguments to.
pub fn deckhand(data_dir: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_deckhand"));
    c.arg("--data-dir").arg(data_dir);
    c
}

/// Read a job's event stream to its `end`: (id, event kind, data) of each event.
pub async fn read_events(
    client: &reqwest::Client,
    url: &str,
    last_event_id: Option<&str>,
) -> Vec<(String, String, serde_json::Value)> {
    use eventsource_stream::Eventsource;
    use futures_util::StreamExt;
    let mut req = client.get(url);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream().eventsource();
    let mut out = Vec::new();
    while let Some(ev) = stream.next().await {
        let ev = ev.unwrap();
        let data = serde_json::from_str(&ev.data).unwrap_or(serde_json::Value::Null);
        let end = ev.event == "end";
        out.push((ev.id, ev.event, data));
        if end {
            break;
        }
    }
    out
}

/// Run the `deckhand` binary on data directory `dir`, with a short settle
/// time, killing itself (SIGKILL) after `kill_after` journal events if given.
pub fn run_cli(
    dir: &std::path::Path,
    args: &[&str],
    kill_after: Option<usize>,
) -> std::process::Output {
    run_cli_env(dir, args, kill_after, &[])
}

/// [`submit_and_wait`], which must end `succeeded`.
#[allow(dead_code)]
pub async fn succeeded(
    executor: &Executor,
    workflow: &str,
    target: &str,
    params: serde_json::Value,
) -> deckhand::journal::JobRecord {
    let job = submit_and_wait(executor, workflow, target, params).await;
    assert_eq!(
        job.state,
        deckhand::journal::JobState::Succeeded,
        "{workflow} {target}: {:?}",
        job.error
    );
    job
}

/// Submit a job to `executor` and wait for its terminal record.
pub async fn submit_and_wait(
    executor: &Executor,
    workflow: &str,
    target: &str,
    params: serde_json::Value,
) -> deckhand::journal::JobRecord {
    let job = executor
        .submit(deckhand::executor::JobRequest::new(
            workflow, target, params,
        ))
        .await
        .unwrap();
    executor.wait(&job.id).await.unwrap()
}

/// [`snapshot`] of the journal in data directory `dir` (a CLI's).
pub async fn snapshot_in(
    docker: &Docker,
    dir: &std::path::Path,
    target: &str,
    images: &[String],
) -> Snapshot {
    let journal = Journal::open(dir.join(Journal::FILE_NAME)).unwrap();
    snapshot(docker, &journal, target, images).await
}

/// Run the CLI to its end and require success; its stdout and stderr.
pub fn cli_ok(dir: &std::path::Path, args: &[&str]) -> String {
    let out = run_cli(dir, args, None);
    let text = cli_text(&out);
    assert!(out.status.success(), "deckhand {}: {text}", args.join(" "));
    text
}

/// A command's stdout and stderr, for assertion messages.
pub fn cli_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl TestEngine {
    /// Start one with these host settings whose runtime talks to the daemon
    /// at `endpoint` (e.g. a [`crate::slow_docker::SlowDocker`]) instead of
    /// the one `DOCKER_HOST` names; [`TestEngine::docker`] still talks to
    /// `DOCKER_HOST` directly.
    #[allow(dead_code)]
    pub async fn with_runtime_endpoint(settings: HostSettings, endpoint: &str) -> TestEngine {
        Self::with_runtime(settings, DockerRuntime::connect_to(endpoint).unwrap()).await
    }
}

/// [`run_cli`] with extra environment variables for the child, e.g.
/// `DOCKER_HOST` of a proxy or a `DECKHAND_FAULT_KILL_DURING` kill point.
#[allow(dead_code)]
pub fn run_cli_env(
    dir: &std::path::Path,
    args: &[&str],
    kill_after: Option<usize>,
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut c = deckhand(dir);
    c.args(args).env("DECKHAND_SETTLE_MS", "300");
    if let Some(n) = kill_after {
        c.env("DECKHAND_FAULT_KILL_AFTER_EVENTS", n.to_string());
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// A fresh data directory for `deckhand` child processes whose plugin cache
/// starts with the tests' compiled built-in workflows, so that each child
/// does not compile them again.
#[allow(dead_code)]
pub fn cli_data_dir() -> tempfile::TempDir {
    static WARM: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    WARM.get_or_init(|| {
        PluginHost::with_builtins(Some(plugin_cache())).unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache").join("plugins");
    std::fs::create_dir_all(&cache).unwrap();
    for entry in std::fs::read_dir(plugin_cache()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".cwasm") {
            let _ = std::fs::copy(entry.path(), cache.join(name));
        }
    }
    dir
}

/// The directory of the tests' compiled built-in workflows, compiled once
/// (for engines built by hand, e.g. on a journal elsewhere).
#[allow(dead_code)]
pub fn compiled_plugin_cache() -> PathBuf {
    static WARM: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    WARM.get_or_init(|| {
        PluginHost::with_builtins(Some(plugin_cache())).unwrap();
    });
    plugin_cache()
}

/// A small tmpfs mounted on a fresh directory under `/tmp` (needs root), to
/// make its disk full at will: [`Tmpfs::fill`] writes a filler file until
/// the file system refuses (`ENOSPC`), [`Tmpfs::free`] removes it. Unmounted
/// and removed when dropped.
#[allow(dead_code)]
pub struct Tmpfs {
    /// Where it is mounted.
    pub path: PathBuf,
}

#[allow(dead_code)]
impl Tmpfs {
    /// Mount one of `size_mb` MiB.
    pub fn mount(size_mb: u64) -> Tmpfs {
        let path = tempfile::Builder::new()
            .prefix("dhfs")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_mb}m,mode=0755"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount -t tmpfs on {} (the tests run as root): {}",
            path.display(),
            cli_text(&out)
        );
        Tmpfs { path }
    }

    fn filler(&self) -> PathBuf {
        self.path.join("zz-filler")
    }

    /// Write the filler until the file system is full (every page taken);
    /// the bytes written.
    pub fn fill(&self) -> u64 {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.filler())
            .unwrap();
        let mut written = 0u64;
        for chunk in [1 << 20, 4 << 10, 1] {
            let buf = vec![0u8; chunk];
            loop {
                match f.write(&buf) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                    Err(e) => panic!("filling {}: {e}", self.path.display()),
                }
            }
        }
        written
    }

    /// Remove the filler: the space is back.
    pub fn free(&self) {
        let _ = std::fs::remove_file(self.filler());
    }

    /// Bytes free now.
    pub fn available(&self) -> u64 {
        let c = std::ffi::CString::new(self.path.to_string_lossy().as_bytes()).unwrap();
        // SAFETY: statvfs writes into the zeroed struct we pass.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
        assert_eq!(rc, 0, "statvfs {}", self.path.display());
        s.f_bavail as u64 * s.f_frsize as u64
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.path.to_string_lossy().as_bytes()).unwrap();
        // SAFETY: unmounting the tmpfs this value mounted.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The journal has no job at all (a refused request created nothing).
pub fn assert_no_jobs(journal: &Journal) {
    let jobs = journal.list_jobs(&Default::default()).unwrap();
    assert!(jobs.is_empty(), "{jobs:?}");
}

/// Wait on `live` (a journal subscription made before `job` was submitted)
/// until `job`'s pull has brought bytes: a moment to cancel it mid-pull.
pub async fn wait_for_pull_bytes(
    live: &mut tokio::sync::broadcast::Receiver<deckhand::journal::EventRecord>,
    job: &deckhand::journal::JobId,
) {
    loop {
        let ev = live.recv().await.unwrap();
        if &ev.job_id == job
            && matches!(&ev.event, deckhand::journal::Event::Progress(p) if p.bytes_done > 0)
        {
            return;
        }
    }
}

/// Run `cmd` in container `id`: what it printed (stdout and stderr) and its
/// exit code.
pub async fn exec_in(docker: &Docker, id: &str, cmd: &[&str]) -> (String, Option<i64>) {
    use bollard::exec::{CreateExecOptions, StartExecResults};
    use futures_util::StreamExt;
    let created = docker
        .create_exec(
            id,
            CreateExecOptions {
                cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut out = String::new();
    if let StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&created.id, None).await.unwrap()
    {
        while let Some(Ok(chunk)) = output.next().await {
            out.push_str(&chunk.to_string());
        }
    }
    let done = docker.inspect_exec(&created.id).await.unwrap();
    (out, done.exit_code)
}

/// A free loopback port (free when asked: bind it soon).
#[allow(dead_code)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The calls of `job`'s intents whose op is `op`, in order.
#[allow(dead_code)]
pub fn intent_calls(
    journal: &Journal,
    job: &deckhand::journal::JobId,
    op: &str,
) -> Vec<serde_json::Value> {
    journal
        .events(job, 0)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            deckhand::journal::Event::Intent { call, .. } if call["op"] == op => Some(call),
            _ => None,
        })
        .collect()
}

/// A two-service Compose stack: `web` (image `web`) waits for a healthy
/// `db` (image `db`, a server on port 80 such as the `web` test image),
/// which keeps its data in volume `data` at `/data`; both on the stack's
/// default network. The check connects with nothing to send (the test
/// images' busybox `nc` has no `-z`).
#[allow(dead_code)]
pub fn web_db_compose(web: &str, db: &str) -> String {
    format!(
        r#"services:
  web:
    image: {web}
    depends_on:
      db: {{condition: service_healthy}}
  db:
    image: {db}
    volumes: ["data:/data"]
    healthcheck:
      test: ["CMD-SHELL", "nc -w 1 127.0.0.1 80 </dev/null"]
      interval: 1s
      retries: 30
volumes:
  data: {{}}
"#
    )
}

/// A new image in the test registry whose top layer no other image has
/// (`size` random bytes on `base:1`), not in the daemon's store: pulling
/// it downloads that layer. It runs until stopped. Its reference is
/// `deckhand-test/<name>:1`.
#[allow(dead_code)]
pub fn fresh_image(name: &str, size: usize) -> String {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let mut blob = vec![0u8; size];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut blob)
        .unwrap();
    std::fs::write(dir.path().join("blob"), blob).unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM {}\nCOPY blob /blob\nCMD {}\n",
            image("base:1"),
            r#"["/bin/busybox","sh","-c","trap 'exit 0' TERM; while true; do sleep 1; done"]"#
        ),
    )
    .unwrap();
    let reference = image(&format!("{name}:1"));
    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .args(args)
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {}: {}",
            args.join(" "),
            cli_text(&out)
        );
    };
    let context = dir.path().to_str().unwrap();
    docker(&[
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        &reference,
        context,
    ]);
    docker(&["push", "-q", &reference]);
    docker(&["rmi", &reference]);
    reference
}
