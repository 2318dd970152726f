//! The `deckhand` command line: argument definitions and dispatch.
//!
//! Without a server URL every command works in-process on the data
//! directory: it opens the journal there, finishes any job a previous
//! process left unfinished, and runs the job itself.

#[macro_use]
mod out;

mod html;
mod jobs;
mod live;
mod plugin;
mod remote;
mod render;
mod replay;
mod run;
mod serve;
mod targets;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::executor::Executor;
use crate::journal::{Journal, JournalError};
use crate::plugin::{HostSettings, PluginHost};
use crate::runtime::{ContainerRuntime, DockerRuntime};

/// Atomic install, upgrade and teardown of containerized apps.
#[derive(Debug, Parser)]
#[command(name = "deckhand", version, about)]
pub struct Cli {
    /// Directory holding the journal and the plugin cache.
    #[arg(
        long,
        global = true,
        env = "DECKHAND_DATA_DIR",
        default_value = ".deckhand"
    )]
    pub data_dir: PathBuf,
    /// Talk to a `deckhand serve` at this URL instead of working in-process
    /// (the token comes from `DECKHAND_TOKEN`, else from the data directory's
    /// `api-token`, which a server on this machine wrote).
    #[arg(long, global = true, env = "DECKHAND_URL")]
    pub server: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install an image as a new target, with a live progress bar.
    Install(run::InstallArgs),
    /// Replace a target's container with a new image or config, atomically.
    Upgrade(run::UpgradeArgs),
    /// Stop and remove a target's container and forget the target.
    Teardown(run::TeardownArgs),
    /// Bring back an earlier revision's image and config.
    Rollback(run::RollbackArgs),
    /// Finish every job a previous process left unfinished, then exit.
    Recover,
    /// Serve the HTTP job API.
    Serve(serve::ServeArgs),
    /// Run any registered workflow with JSON params, in the foreground.
    Run(run::RunArgs),
    /// Export or import the journal as text.
    #[command(subcommand)]
    Journal(replay::JournalCommand),
    /// Show a recorded job's timeline and re-run its plugin against the
    /// record, without Docker, reporting the first divergence.
    Replay(replay::ReplayArgs),
    /// Inspect and cancel jobs.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Inspect targets and their revision history.
    #[command(subcommand)]
    Targets(targets::TargetsCommand),
    /// List registered workflow plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

/// `deckhand plugin …`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List the registered workflows and their digests.
    List,
    /// Register a workflow component (validated against the WIT world,
    /// stored by digest). Replacing a workflow keeps the old digest for the
    /// jobs that ran it.
    Add {
        /// Workflow name.
        name: String,
        /// The component (`.wasm`, built for wasm32-wasip2).
        file: PathBuf,
    },
    /// Try a workflow component without Docker: run it once on the
    /// in-memory runtime (optionally after a plain install, and with a
    /// fault injected) and print the journal.
    Test(plugin::TestArgs),
    /// Create a new plugin crate, ready to build with
    /// `cargo build --release --target wasm32-wasip2`.
    New {
        /// Workflow name; the crate goes into a directory of that name.
        name: String,
        /// Parent directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

/// Output format flag shared by read commands.
#[derive(Debug, Args, Clone, Copy)]
pub struct Format {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Parse the arguments, run, and map the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DECKHAND_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            errln!("error: {e:#}");
            ExitCode::FAILURE
        }
    };
    out::finish(code)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let remote = cli
        .server
        .as_deref()
        .map(|url| remote::Client::new(url, token::client_token(&cli.data_dir)));
    let job = |req: crate::executor::JobRequest| async {
        match &remote {
            Some(client) => remote::foreground(client, req).await,
            None => run::foreground(&cli.data_dir, req).await,
        }
    };
    match cli.command {
        Command::Install(args) => job(args.request()).await,
        Command::Upgrade(args) => job(args.request()).await,
        Command::Teardown(args) => job(args.request()).await,
        Command::Rollback(args) => job(args.request()).await,
        Command::Run(args) => job(args.request()?).await,
        Command::Journal(cmd) => {
            refuse_remote(cli.server.as_deref(), "journal", LOCAL_JOURNAL)?;
            replay::journal(&cli.data_dir, cmd).await
        }
        // With `--from FILE` the journal is that file, wherever it came from.
        Command::Replay(args) => {
            if args.from.is_none() {
                refuse_remote(cli.server.as_deref(), "replay", LOCAL_REPLAY)?;
            }
            replay::run(&cli.data_dir, args).await
        }
        Command::Serve(args) => serve::run(&cli.data_dir, args).await,
        Command::Recover => {
            refuse_remote(
                cli.server.as_deref(),
                "recover",
                "a server recovers its own jobs when it starts",
            )?;
            // `engine` recovers and reports each job it finished.
            engine(&cli.data_dir).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs(cmd) => match &remote {
            Some(client) => jobs::run_remote(client, cmd).await,
            None => jobs::run(&cli.data_dir, cmd).await,
        },
        Command::Targets(cmd) => match &remote {
            Some(client) => targets::run_remote(client, cmd).await,
            None => targets::run(&cli.data_dir, cmd),
        },
        Command::Plugin(cmd) => plugin::run(&cli.data_dir, remote.as_ref(), cmd).await,
    }
}

/// Why `journal` works on a data directory only.
const LOCAL_JOURNAL: &str = "it reads and writes the journal file in the data directory; export a server's journal on its machine (`deckhand --data-dir DIR journal export`)";

/// Why `replay` works on a journal file only.
const LOCAL_REPLAY: &str = "it reads a journal file; export the job on the server's machine (`deckhand --data-dir DIR journal export --job ID -o job.jsonl`) and replay it here with `deckhand replay ID --from job.jsonl`";

/// Refuse a command that works on the data directory only when a server URL
/// was given (`--server` or `DECKHAND_URL`), rather than ignore the URL.
fn refuse_remote(server: Option<&str>, command: &str, why: &str) -> anyhow::Result<()> {
    match server {
        Some(url) => anyhow::bail!(
            "`deckhand {command}` does not work through a server ({url}): {why}; run it without --server (and without DECKHAND_URL)"
        ),
        None => Ok(()),
    }
}

/// Open the journal in `data_dir`.
pub(crate) fn open_journal(data_dir: &std::path::Path) -> anyhow::Result<Journal> {
    Journal::open(data_dir.join(Journal::FILE_NAME))
        .with_context(|| format!("opening the journal in {}", data_dir.display()))
}

/// Host settings, with overrides from the environment:
/// `DECKHAND_SETTLE_MS` (how long a container without a health check must
/// keep running), `DECKHAND_STALL_TIMEOUT_S` (no-progress timeout),
/// `DECKHAND_PLUGIN_MEMORY_MB`, `DECKHAND_PLUGIN_CPU_MS`,
/// `DECKHAND_PLUGIN_MAX_CALLS` and `DECKHAND_JOB_DEADLINE_S` (plugin limits),
/// `DECKHAND_CALL_SETTLE_GRACE_MS` (how long an interrupted call may still land),
/// `DECKHAND_DAEMON_RETRY_S` (how long undos retry while Docker is away),
/// `DECKHAND_ALLOW_HOST_NETWORK=1` (containers may use `host` / `container:…` networks),
/// `DECKHAND_ALLOW_BIND_MOUNTS=1` (containers may mount host paths; also
/// `serve --allow-bind-mounts`, through [`allow_bind_mounts`]),
/// `DECKHAND_COMPENSATION_DEADLINE_S` (time a plugin's own compensation may take),
/// `DECKHAND_MAX_CONTAINERS` and `DECKHAND_MAX_COMPENSATIONS` (per job).
pub(crate) fn host_settings() -> anyhow::Result<HostSettings> {
    let mut s = HostSettings::default();
    let var = |name: &str| -> anyhow::Result<Option<u64>> {
        std::env::var(name)
            .ok()
            .map(|v| {
                v.parse::<u64>()
                    .with_context(|| format!("{name}={v} is not a number"))
            })
            .transpose()
    };
    if let Some(ms) = var("DECKHAND_SETTLE_MS")? {
        s.settle_time = std::time::Duration::from_millis(ms);
    }
    if let Some(secs) = var("DECKHAND_STALL_TIMEOUT_S")? {
        s.stall_timeout = std::time::Duration::from_secs(secs);
    }
    if let Some(mb) = var("DECKHAND_PLUGIN_MEMORY_MB")? {
        s.max_memory_bytes = (mb as usize) << 20;
    }
    if let Some(ms) = var("DECKHAND_PLUGIN_CPU_MS")? {
        s.max_guest_time = std::time::Duration::from_millis(ms);
    }
    if let Some(n) = var("DECKHAND_PLUGIN_MAX_CALLS")? {
        s.max_host_calls = n.min(u32::MAX as u64) as u32;
    }
    if let Some(secs) = var("DECKHAND_JOB_DEADLINE_S")? {
        s.max_job_time = std::time::Duration::from_secs(secs);
    }
    if let Some(ms) = var("DECKHAND_CALL_SETTLE_GRACE_MS")? {
        s.call_settle_grace = std::time::Duration::from_millis(ms);
    }
    if let Some(secs) = var("DECKHAND_DAEMON_RETRY_S")? {
        s.daemon_retry_deadline = std::time::Duration::from_secs(secs);
    }
    if let Some(secs) = var("DECKHAND_COMPENSATION_DEADLINE_S")? {
        s.max_compensation_time = std::time::Duration::from_secs(secs);
    }
    if let Some(n) = var("DECKHAND_MAX_CONTAINERS")? {
        s.max_containers_per_job = n.min(u32::MAX as u64) as u32;
    }
    if let Some(n) = var("DECKHAND_MAX_COMPENSATIONS")? {
        s.max_compensations_per_job = n.min(u32::MAX as u64) as u32;
    }
    if let Some(allow) = var("DECKHAND_ALLOW_HOST_NETWORK")? {
        s.allow_host_network = allow != 0;
    }
    if let Some(allow) = var("DECKHAND_ALLOW_BIND_MOUNTS")? {
        s.allow_bind_mounts = allow != 0;
    }
    s.allow_bind_mounts |= BIND_MOUNTS_FLAG.load(std::sync::atomic::Ordering::Relaxed);
    Ok(s)
}

/// Set by `serve --allow-bind-mounts` before the server builds its engine:
/// a flag rather than the environment, which a running process cannot
/// safely change.
static BIND_MOUNTS_FLAG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Let the engines this process builds from now on mount host paths (as
/// `DECKHAND_ALLOW_BIND_MOUNTS=1` does).
pub(crate) fn allow_bind_mounts() {
    BIND_MOUNTS_FLAG.store(true, std::sync::atomic::Ordering::Relaxed);
}

pub(crate) fn plugin_store(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("plugins")
}

pub(crate) fn cache_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("cache").join("plugins")
}

/// Take the data directory's engine lock (an exclusive `flock` on
/// `engine.lock`, held until the process exits): only one process at a time
/// runs and recovers jobs on a journal. `Ok(false)` if another holds it.
pub(crate) fn try_lock_data_dir(data_dir: &std::path::Path) -> anyhow::Result<bool> {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let path = data_dir.join("engine.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own has no memory effects.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Ok(false);
    }
    // Held for the life of the process; the kernel releases it at exit, crash included.
    std::mem::forget(file);
    Ok(true)
}

/// The Docker daemon of `DOCKER_HOST`, pulling with the registry
/// credentials of `auth_file` (a Docker `config.json`), else of
/// `DECKHAND_REGISTRY_AUTH`, else of Docker's own `config.json`
/// (`$DOCKER_CONFIG`, `~/.docker`). Credentials are never printed.
pub(crate) fn docker_runtime(auth_file: Option<&std::path::Path>) -> anyhow::Result<DockerRuntime> {
    use crate::runtime::registry_auth::RegistryAuth;
    let from_env = std::env::var_os("DECKHAND_REGISTRY_AUTH").filter(|v| !v.is_empty());
    let auth = match auth_file.map(PathBuf::from).or(from_env.map(PathBuf::from)) {
        Some(path) => RegistryAuth::from_file(&path)?,
        None => RegistryAuth::from_docker_config()?,
    };
    for unsupported in auth.unsupported() {
        eprintln!("warning: {unsupported}");
    }
    Ok(DockerRuntime::connect()?.with_registry_auth(auth))
}

/// An in-process engine on `data_dir`, with unfinished jobs recovered.
pub(crate) async fn engine(data_dir: &std::path::Path) -> anyhow::Result<Executor> {
    let docker = docker_runtime(None)?;
    docker.ping().await?;
    engine_on(data_dir, Arc::new(docker)).await
}

/// [`engine`] for a caller that already holds the data directory's lock.
pub(crate) async fn engine_unlocked(data_dir: &std::path::Path) -> anyhow::Result<Executor> {
    let docker = docker_runtime(None)?;
    docker.ping().await?;
    engine_unlocked_on(data_dir, Arc::new(docker)).await
}

/// An in-process engine on `data_dir` and `runtime`, with unfinished jobs recovered.
pub(crate) async fn engine_on(
    data_dir: &std::path::Path,
    runtime: Arc<dyn ContainerRuntime>,
) -> anyhow::Result<Executor> {
    lock_data_dir(data_dir)?;
    engine_unlocked_on(data_dir, runtime).await
}

/// Take the data directory's lock, or say who has it.
pub(crate) fn lock_data_dir(data_dir: &std::path::Path) -> anyhow::Result<()> {
    if !try_lock_data_dir(data_dir)? {
        anyhow::bail!(
            "another deckhand process is running jobs on {}; wait for it, or talk to it with --server",
            data_dir.display()
        );
    }
    Ok(())
}

/// A one-shot command's engine: recovered before it is used, and without
/// background retries (the process ends with its command).
async fn engine_unlocked_on(
    data_dir: &std::path::Path,
    runtime: Arc<dyn ContainerRuntime>,
) -> anyhow::Result<Executor> {
    let executor = prepared_engine(data_dir, runtime)?;
    executor.set_background_retries(false);
    recover_reporting(&executor)
        .await
        .context("recovering unfinished jobs")?;
    Ok(executor)
}

/// An engine on `data_dir` and `runtime` (the caller holds the lock), with
/// registered plugins loaded and cancels from other processes followed;
/// unfinished jobs are not recovered yet.
pub(crate) fn prepared_engine(
    data_dir: &std::path::Path,
    runtime: Arc<dyn ContainerRuntime>,
) -> anyhow::Result<Executor> {
    let journal = open_journal(data_dir)?;
    let host = PluginHost::with_builtins(Some(cache_dir(data_dir)))?;
    let executor = Executor::new(journal, runtime, Arc::new(host), host_settings()?);
    executor
        .use_plugin_store(plugin_store(data_dir))
        .context("loading registered plugins")?;
    // `deckhand jobs cancel` from another terminal writes the journal only.
    executor.watch_journal_cancels(std::time::Duration::from_millis(250));
    Ok(executor)
}

/// Finish every unfinished job, saying which on stderr.
pub(crate) async fn recover_reporting(executor: &Executor) -> Result<(), JournalError> {
    let report = executor.recover().await?;
    for (job, state) in report.jobs {
        errln!("recovered job {job} left unfinished by an earlier run: now {state}");
    }
    Ok(())
}
