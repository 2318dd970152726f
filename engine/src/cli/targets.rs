//! `deckhand targets list|show`: committed state and revision history.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::Value;

use super::Format;
use crate::journal::TargetRecord;

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

/// A target as both outputs show it, from the journal or from the API.
struct TargetRow {
    name: String,
    /// Current revision, image and container; `None` once torn down.
    current: Option<(u64, String, String)>,
    /// Revision, image, container and job of every revision, oldest first.
    history: Vec<(u64, String, String, String)>,
    /// A stack's services now: name, image, container, status (when known).
    services: Vec<(String, String, String, Option<String>)>,
}

impl From<TargetRecord> for TargetRow {
    fn from(t: TargetRecord) -> Self {
        let services = t
            .current
            .iter()
            .flat_map(|r| &r.services)
            .map(|s| (s.name.clone(), s.image.clone(), s.container_id.clone(), None))
            .collect();
        TargetRow {
            name: t.name,
            current: t.current.map(|r| (r.revision, r.summary(), r.container_id)),
            history: t
                .history
                .into_iter()
                .map(|r| (r.revision, r.summary(), r.container_id, r.job_id.to_string()))
                .collect(),
            services,
        }
    }
}

impl TargetRow {
    /// From the API's target JSON (`{name, revision, image, container_id,
    /// status, history: [{revision, image, container_id, job_id, …}],
    /// services: [{name, image, container_id, status}]}`).
    fn from_view(v: &Value) -> TargetRow {
        let text = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_owned();
        let services: Vec<(String, String, String, Option<String>)> = v["services"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    text(s, "name"),
                    text(s, "image"),
                    text(s, "container_id"),
                    s["status"].as_str().map(str::to_owned),
                )
            })
            .collect();
        let what = if services.is_empty() {
            text(v, "image")
        } else {
            let names: Vec<&str> = services.iter().map(|s| s.0.as_str()).collect();
            format!("stack of {}", names.join(", "))
        };
        TargetRow {
            name: text(v, "name"),
            current: v["revision"]
                .as_u64()
                .map(|n| (n, what, text(v, "container_id"))),
            history: v["history"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    (
                        r["revision"].as_u64().unwrap_or(0),
                        text(r, "image"),
                        text(r, "container_id"),
                        text(r, "job_id"),
                    )
                })
                .collect(),
            services,
        }
    }
}

/// A container id as Docker shows it: its first 12 digits.
fn short(container_id: &str) -> &str {
    container_id.get(..12).unwrap_or(container_id)
}

fn print_list(targets: &[TargetRow]) {
    outln!(
        "{:<16}  {:>8}  {:<40}  CONTAINER",
        "TARGET",
        "REVISION",
        "IMAGE"
    );
    for t in targets {
        match &t.current {
            Some((revision, image, container)) => outln!(
                "{:<16}  {:>8}  {:<40}  {}",
                t.name,
                revision,
                image,
                short(container)
            ),
            None => outln!("{:<16}  {:>8}  {:<40}", t.name, "-", "(torn down)"),
        }
    }
}

fn print_target(t: &TargetRow) {
    outln!(
        "target {}  current revision: {}",
        t.name,
        t.current
            .as_ref()
            .map(|(r, ..)| r.to_string())
            .unwrap_or("-".into())
    );
    for (name, image, container, status) in &t.services {
        outln!(
            "  service {name:<16}  {image}  container {}{}",
            short(container),
            status.as_ref().map(|s| format!("  {s}")).unwrap_or_default()
        );
    }
    for (revision, image, container, job) in &t.history {
        let container = match short(container) {
            "" => String::new(),
            c => format!("  container {c}"),
        };
        outln!("  revision {revision:>3}  {image}{container}  job {job}");
    }
}

/// Run a `targets` subcommand.
pub fn run(data_dir: &Path, cmd: TargetsCommand) -> anyhow::Result<ExitCode> {
    let journal = super::open_journal(data_dir)?;
    match cmd {
        TargetsCommand::List { format } => {
            let targets = journal.targets()?;
            if format.json {
                outln!("{}", serde_json::to_string_pretty(&targets)?);
            } else {
                let rows: Vec<TargetRow> = targets.into_iter().map(TargetRow::from).collect();
                print_list(&rows);
            }
        }
        TargetsCommand::Show { name, format } => {
            let t = journal
                .target(&name)?
                .with_context(|| format!("no target named `{name}`"))?;
            if format.json {
                outln!("{}", serde_json::to_string_pretty(&t)?);
            } else {
                print_target(&TargetRow::from(t));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Run a `targets` subcommand against a server: the same tables, or with
/// `--json` the API's JSON.
pub async fn run_remote(
    client: &super::remote::Client,
    cmd: TargetsCommand,
) -> anyhow::Result<ExitCode> {
    let (path, format) = match &cmd {
        TargetsCommand::List { format } => ("/v1/targets".to_owned(), format),
        TargetsCommand::Show { name, format } => (format!("/v1/targets/{name}"), format),
    };
    let v = client.call(reqwest::Method::GET, &path, None).await?;
    if format.json {
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    match cmd {
        TargetsCommand::List { .. } => {
            let rows: Vec<TargetRow> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(TargetRow::from_view)
                .collect();
            print_list(&rows);
        }
        TargetsCommand::Show { .. } => print_target(&TargetRow::from_view(&v)),
    }
    Ok(ExitCode::SUCCESS)
}
