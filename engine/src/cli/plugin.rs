//! `deckhand plugin list|add|new`: the workflows a data directory (or a
//! server) runs, registering new ones, and scaffolding a plugin crate.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::PluginCommand;
use super::remote::Client;
use crate::plugin::{BUILTIN_WORKFLOWS, PluginHost, digest_of, store};

/// Run a `plugin` subcommand, against `remote` when given.
pub async fn run(
    data_dir: &Path,
    remote: Option<&Client>,
    cmd: PluginCommand,
) -> anyhow::Result<ExitCode> {
    match (cmd, remote) {
        (PluginCommand::List, Some(client)) => {
            let list = client
                .call(reqwest::Method::GET, "/v1/plugins", None)
                .await?;
            for p in list.as_array().into_iter().flatten() {
                print_row(
                    p["name"].as_str().unwrap_or(""),
                    p["digest"].as_str().unwrap_or(""),
                    p["builtin"] == true,
                );
            }
        }
        (PluginCommand::List, None) => {
            for (name, bytes) in BUILTIN_WORKFLOWS {
                print_row(name, &digest_of(bytes), true);
            }
            let journal = super::open_journal(data_dir)?;
            let mut current = std::collections::BTreeMap::new();
            for (name, digest, _) in journal.plugin_registrations()? {
                current.insert(name, digest);
            }
            for (name, digest) in current {
                print_row(&name, &digest, false);
            }
        }
        (PluginCommand::Add { name, file }, remote) => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            match remote {
                Some(client) => {
                    let p = client.upload_plugin(&name, bytes).await?;
                    outln!(
                        "registered {} as {}",
                        p["digest"].as_str().unwrap_or("?"),
                        p["name"].as_str().unwrap_or("?")
                    );
                }
                None => {
                    if !super::try_lock_data_dir(data_dir)? {
                        anyhow::bail!(
                            "another deckhand process is running jobs on {}; use --server",
                            data_dir.display()
                        );
                    }
                    let journal = super::open_journal(data_dir)?;
                    let host = PluginHost::with_builtins(Some(super::cache_dir(data_dir)))?;
                    let dir = super::plugin_store(data_dir);
                    store::load(&host, &journal, &dir)?;
                    let p = store::register(&host, &journal, Some(&dir), &name, &bytes).await?;
                    outln!("registered {} as {}", p.digest, p.name);
                }
            }
        }
        (PluginCommand::Test(args), _) => return test(args).await,
        (PluginCommand::New { name, dir }, _) => {
            let path = scaffold(&name, &dir)?;
            outln!(
                "created {}; build it with:\n  cd {} && cargo build --release --target wasm32-wasip2",
                path.display(),
                path.display()
            );
            outln!(
                "then register it: deckhand plugin add {name} {}/target/wasm32-wasip2/release/{}.wasm",
                path.display(),
                name.replace('-', "_")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `deckhand plugin test FILE`
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The component to try.
    pub file: PathBuf,
    /// Target name to run it on.
    #[arg(long, default_value = "web")]
    pub target: String,
    /// Params as a JSON object.
    #[arg(long, default_value = "{}")]
    pub params: String,
    /// Install this image on the target first (for workflows that change an
    /// installed target).
    #[arg(long, value_name = "IMAGE")]
    pub install: Option<String>,
    /// Make a runtime operation fail once: `pull`, `create`, `start`,
    /// `stop`, `rename`, `remove-container`, `remove-image`, `inspect`,
    /// `create-volume`, `copy-volume`, `remove-volume`, `create-network` or
    /// `remove-network`.
    #[arg(long, value_name = "OP")]
    pub fail: Option<String>,
}

async fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    use crate::executor::{Executor, JobRequest};
    use crate::runtime::MemoryRuntime;
    use crate::runtime::memory::{Fault, Op};
    use std::sync::Arc;
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let params: serde_json::Value =
        serde_json::from_str(&args.params).context("--params is not JSON")?;
    let dir = tempfile_dir()?;
    let journal = super::open_journal(&dir)?;
    let host = Arc::new(PluginHost::with_builtins(None)?);
    let runtime = Arc::new(MemoryRuntime::new());
    let executor = Executor::new(journal, runtime.clone(), host, super::host_settings()?);
    let plugin = executor.register_plugin("under-test", &bytes).await?;
    outln!("component {} is a valid workflow", plugin.digest);
    if let Some(image) = &args.install {
        let job = executor
            .submit(JobRequest::new(
                "install",
                args.target.clone(),
                serde_json::json!({"image": image}),
            ))
            .await?;
        let done = executor.wait(&job.id).await?;
        anyhow::ensure!(
            done.state == crate::journal::JobState::Succeeded,
            "the preparatory install failed: {:?}",
            done.error
        );
    }
    if let Some(op) = &args.fail {
        let op = match op.as_str() {
            "pull" => Op::Pull,
            "create" => Op::Create,
            "start" => Op::Start,
            "stop" => Op::Stop,
            "rename" => Op::Rename,
            "remove-container" => Op::RemoveContainer,
            "remove-image" => Op::RemoveImage,
            "inspect" => Op::Inspect,
            "create-volume" => Op::CreateVolume,
            "copy-volume" => Op::CopyVolume,
            "remove-volume" => Op::RemoveVolume,
            "create-network" => Op::CreateNetwork,
            "remove-network" => Op::RemoveNetwork,
            other => anyhow::bail!("unknown operation `{other}` for --fail"),
        };
        runtime.inject(
            op,
            Fault::Fail("injected by deckhand plugin test".into()),
            1,
        );
    }
    let job = executor
        .submit(JobRequest::new("under-test", args.target, params))
        .await?;
    let done = executor.wait(&job.id).await?;
    out!(
        "{}",
        super::render::timeline(&executor.journal().events(&job.id, 0)?)
    );
    outln!("containers after the job:");
    for c in runtime.containers().values() {
        outln!("  {} {} running={}", c.name, c.image, c.running);
    }
    outln!("images after the job: {:?}", runtime.images());
    outln!(
        "{}",
        done.error
            .as_deref()
            .map(|e| format!("{}: {e}", done.state))
            .unwrap_or_else(|| done.state.to_string())
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(if done.state == crate::journal::JobState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("deckhand-plugin-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn print_row(name: &str, digest: &str, builtin: bool) {
    outln!(
        "{name:<14} {digest}{}",
        if builtin { "  (built-in)" } else { "" }
    );
}

/// Where this build's SDK and WIT live (the scaffold depends on them by path).
fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk")
}

/// Write a new plugin crate `dir/name`.
pub fn scaffold(name: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    if !crate::plugin::valid_workflow_name(name) {
        anyhow::bail!(
            "invalid workflow name `{name}`: use a-z, 0-9 and `-`, starting with a letter"
        );
    }
    let root = dir.join(name);
    if root.exists() {
        anyhow::bail!("{} already exists", root.display());
    }
    std::fs::create_dir_all(root.join("src"))?;
    let sdk = sdk_dir()
        .canonicalize()
        .with_context(|| format!("the Deckhand SDK is not at {}", sdk_dir().display()))?;
    std::fs::write(
        root.join("Cargo.toml"),
        format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
deckhand-sdk = {{ path = "{sdk}" }}
serde = {{ version = "1", features = ["derive"] }}

[profile.release]
opt-level = "s"
strip = true

# A workspace of its own, wherever it is created.
[workspace]
"#,
            sdk = sdk.display()
        ),
    )?;
    std::fs::write(
        root.join("rust-toolchain.toml"),
        "[toolchain]\ntargets = [\"wasm32-wasip2\"]\n",
    )?;
    std::fs::write(
        root.join("src/lib.rs"),
        format!(
            r#"//! The `{name}` workflow. Params: `{{"image": "..."}}`.
//!
//! Every container call is journaled by the host with its undo; if `run`
//! returns an error, the job is cancelled or the engine crashes before the
//! commit, the host rolls back. See wit/deckhand.wit for the contract.

use deckhand_sdk::{{Spec, SpecExt, Workflow, container, export, job, state}};

struct Plugin;

impl Workflow for Plugin {{
    fn describe() -> deckhand_sdk::PluginInfo {{
        deckhand_sdk::info("{name}", "install the image in params unless the target exists")
    }}

    fn run() -> Result<String, String> {{
        let spec: Spec = deckhand_sdk::params()?;
        let image = spec.require_image()?.to_owned();
        let target = job::target();
        if state::current_revision().is_some() {{
            return Err(format!("`{{target}}` is already installed"));
        }}
        container::pull_image(&image)?;
        let id = container::create_container(&spec.container(deckhand_sdk::live_name(&target))?)?;
        container::start_container(&id)?;
        container::wait_healthy(&id, spec.health.clone().unwrap_or_default().timeout())?;
        let revision = state::record_revision(&image, &id, &spec.to_json())?;
        Ok(format!("{name}: `{{target}}` runs {{image}} as revision {{revision}}"))
    }}

    fn compensate(action: String, data: String) -> Result<(), String> {{
        deckhand_sdk::no_compensations(&action, &data)
    }}
}}

export!(Plugin);
"#
        ),
    )?;
    Ok(root)
}
