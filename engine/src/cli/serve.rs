//! `deckhand serve`: the HTTP job API over an in-process engine.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::api::{self, ApiConfig};
use crate::runtime::{ContainerRuntime, MemoryRuntime};

/// Which container runtime the server drives.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RuntimeKind {
    /// The Docker daemon at `DOCKER_HOST`.
    Docker,
    /// In memory: containers are records (for trying the API and load tests).
    Memory,
}

/// `deckhand serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Without `DECKHAND_TOKEN` only loopback is allowed.
    #[arg(long, default_value = "127.0.0.1:8420")]
    pub listen: SocketAddr,
    /// Container runtime.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Docker)]
    pub runtime: RuntimeKind,
    /// Milliseconds between keep-alive comments on event streams.
    #[arg(long, default_value_t = 15_000)]
    pub keep_alive_ms: u64,
    /// Let jobs mount host paths into containers (`volumes` with an
    /// absolute source). Off: a job's params can reach no file of the
    /// machine. `DECKHAND_ALLOW_BIND_MOUNTS=1` does the same, for in-process
    /// commands too.
    #[arg(long)]
    pub allow_bind_mounts: bool,
    /// A Docker `config.json` whose `auths` give the registry credentials
    /// for pulls (default: `DECKHAND_REGISTRY_AUTH`, else Docker's own,
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`).
    #[arg(long, value_name = "FILE")]
    pub registry_auth: Option<std::path::PathBuf>,
}

/// Run the server until Ctrl-C.
pub async fn run(data_dir: &Path, args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Never open: loopback is no boundary once containers share the machine.
    let token = Some(super::token::server_token(data_dir)?);
    let runtime: Arc<dyn ContainerRuntime> = match args.runtime {
        RuntimeKind::Docker => {
            let docker = super::docker_runtime(args.registry_auth.as_deref())?;
            // A daemon that is away now may be back soon: the server starts
            // anyway, refuses jobs meanwhile and finishes the unfinished
            // ones once it can.
            if let Err(e) = docker.ping().await {
                eprintln!("warning: {e}; jobs are refused until it answers");
            }
            Arc::new(docker)
        }
        RuntimeKind::Memory => Arc::new(MemoryRuntime::new()),
    };
    super::lock_data_dir(data_dir)?;
    if args.allow_bind_mounts {
        super::allow_bind_mounts();
    }
    let executor = super::prepared_engine(data_dir, runtime)?;
    let config = ApiConfig {
        token,
        keep_alive: std::time::Duration::from_millis(args.keep_alive_ms),
        ..connection_limits()?
    };
    raise_open_files_limit(config.max_connections);
    let app = api::app(api::state(executor.clone(), config.clone()));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // Tests and scripts read this line for the port.
    println!("deckhand listening on http://{addr}");
    // The API answers while recovery runs (a compensation may take long);
    // the jobs it finishes hold their targets until then.
    tokio::spawn(recover_until_done(executor.clone()));
    api::serve(listener, app, &config, stop_signal()).await?;
    // No new job can come now. Jobs in flight get a moment to end; any left
    // are finished by recovery at the next start, as after a crash.
    let grace = shutdown_grace()?;
    let until = std::time::Instant::now() + grace;
    while executor.running_count() > 0 && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    match executor.running_count() {
        0 => errln!("deckhand stopped"),
        n => errln!(
            "deckhand stopped with {n} job(s) still running; the next start finishes them (rollback before their commit point, commit after)"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM or SIGINT (Ctrl-C): logged, then the server stops accepting.
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let which = tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        () = term => "SIGTERM",
    };
    errln!(
        "deckhand stopping ({which}): no new connections; running jobs get DECKHAND_SHUTDOWN_GRACE_S to end"
    );
}

/// How long running jobs may take to end once the server stops:
/// `DECKHAND_SHUTDOWN_GRACE_S` (default 10).
fn shutdown_grace() -> anyhow::Result<std::time::Duration> {
    match std::env::var("DECKHAND_SHUTDOWN_GRACE_S") {
        Ok(v) => v
            .parse::<u64>()
            .map(std::time::Duration::from_secs)
            .map_err(|_| {
                anyhow::anyhow!("DECKHAND_SHUTDOWN_GRACE_S={v} is not a number of seconds")
            }),
        Err(_) => Ok(std::time::Duration::from_secs(10)),
    }
}

/// The connection limits, with overrides from the environment:
/// `DECKHAND_HEADER_TIMEOUT_S` (default 30: a request's head must arrive in
/// full within it), `DECKHAND_BODY_TIMEOUT_S` (60: its body),
/// `DECKHAND_IDLE_TIMEOUT_S` (15: a connection silent that long is closed,
/// after the answer in progress) and `DECKHAND_MAX_CONNECTIONS` (1024: more
/// wait until one closes).
fn connection_limits() -> anyhow::Result<ApiConfig> {
    let mut c = ApiConfig::default();
    let var = |name: &str| -> anyhow::Result<Option<u64>> {
        std::env::var(name)
            .ok()
            .map(|v| match v.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(anyhow::anyhow!("{name}={v} is not a positive number")),
            })
            .transpose()
    };
    let secs = std::time::Duration::from_secs;
    if let Some(s) = var("DECKHAND_HEADER_TIMEOUT_S")? {
        c.header_timeout = secs(s);
    }
    if let Some(s) = var("DECKHAND_BODY_TIMEOUT_S")? {
        c.body_timeout = secs(s);
    }
    if let Some(s) = var("DECKHAND_IDLE_TIMEOUT_S")? {
        c.idle_timeout = secs(s);
    }
    if let Some(n) = var("DECKHAND_MAX_CONNECTIONS")? {
        c.max_connections = n.min(1 << 20) as usize;
    }
    Ok(c)
}

/// Let the process open a file per connection besides its own (the soft
/// limit is often 1024): up to the hard limit, never lowering it.
fn raise_open_files_limit(connections: usize) {
    let wanted = connections as u64 + 256;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur >= wanted
    {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: wanted.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads only `raised`.
    let now = if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        raised.rlim_cur
    } else {
        limit.rlim_cur
    };
    if now < wanted {
        eprintln!(
            "warning: at most {now} open files (ulimit -n): fewer than {connections} connections may be served"
        );
    }
}

/// Recover the unfinished jobs, trying again (200 ms, doubling to 5 s) while
/// the journal cannot be written or something else stands in the way; said
/// once on stderr, not per attempt.
async fn recover_until_done(executor: crate::executor::Executor) {
    let mut pause = std::time::Duration::from_millis(200);
    let mut said = false;
    loop {
        match super::recover_reporting(&executor).await {
            Ok(()) => {
                if said {
                    eprintln!("recovery finished");
                }
                return;
            }
            Err(e) => {
                if !said {
                    eprintln!("recovery waits: {e}; trying again until it can finish");
                    said = true;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
}
