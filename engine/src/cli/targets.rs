//! `deckhand targets list|show`: committed state and revision history.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::Format;

/// `deckhand targets …`
#[derive(Debug, Subcommand)]
pub enum TargetsCommand {
    /// List targets and their current revision.
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Show a target's revision history.
    Show {
        /// Target name.
        name: String,
        #[command(flatten)]
        format: Format,
    },
}

/// Run a `targets` subcommand.
pub fn run(data_dir: &Path, cmd: TargetsCommand) -> anyhow::Result<ExitCode> {
    let journal = super::open_journal(data_dir)?;
    match cmd {
        TargetsCommand::List { format } => {
            let targets = journal.targets()?;
            if format.json {
                println!("{}", serde_json::to_string_pretty(&targets)?);
            } else {
                println!(
                    "{:<16}  {:>8}  {:<40}  CONTAINER",
                    "TARGET", "REVISION", "IMAGE"
                );
                for t in targets {
                    match &t.current {
                        Some(r) => println!(
                            "{:<16}  {:>8}  {:<40}  {}",
                            t.name,
                            r.revision,
                            r.image,
                            &r.container_id[..r.container_id.len().min(12)]
                        ),
                        None => println!("{:<16}  {:>8}  {:<40}", t.name, "-", "(torn down)"),
                    }
                }
            }
        }
        TargetsCommand::Show { name, format } => {
            let t = journal
                .target(&name)?
                .with_context(|| format!("no target named `{name}`"))?;
            if format.json {
                println!("{}", serde_json::to_string_pretty(&t)?);
            } else {
                println!(
                    "target {}  current revision: {}",
                    t.name,
                    t.current
                        .as_ref()
                        .map(|r| r.revision.to_string())
                        .unwrap_or("-".into())
                );
                for r in &t.history {
                    println!(
                        "  revision {:>3}  {}  container {}  job {}",
                        r.revision,
                        r.image,
                        &r.container_id[..r.container_id.len().min(12)],
                        r.job_id
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Run a `targets` subcommand against a server.
pub async fn run_remote(
    client: &super::remote::Client,
    cmd: TargetsCommand,
) -> anyhow::Result<ExitCode> {
    let path = match &cmd {
        TargetsCommand::List { .. } => "/v1/targets".to_owned(),
        TargetsCommand::Show { name, .. } => format!("/v1/targets/{name}"),
    };
    let v = client.call(reqwest::Method::GET, &path, None).await?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(ExitCode::SUCCESS)
}
