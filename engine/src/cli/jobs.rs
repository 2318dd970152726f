//! `deckhand jobs list|show|cancel`: read the journal, cancel by id.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::{Format, render};
use crate::journal::{JobFilter, JobId, JobState};

/// `deckhand jobs …`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only this target's jobs.
        #[arg(long)]
        target: Option<String>,
        /// Only jobs in this state.
        #[arg(long)]
        state: Option<JobState>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Include dismissed jobs.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        format: Format,
    },
    /// Show one job and its journal timeline.
    Show {
        /// Job id.
        id: JobId,
        #[command(flatten)]
        format: Format,
    },
    /// Cancel a job by id (recorded in the journal before this returns).
    Cancel {
        /// Job id.
        id: JobId,
    },
    /// Retry a `failed` job: resume its rollback (or commit) where it stopped.
    Retry {
        /// Job id.
        id: JobId,
    },
    /// Follow a job's progress until it ends. Ctrl-C stops watching; it
    /// never cancels the job.
    Watch {
        /// Job id.
        id: JobId,
    },
}

/// The table `jobs list` prints: id, workflow, target, state, and the start
/// of the error.
fn print_job_table(rows: impl Iterator<Item = [String; 5]>) {
    println!(
        "{:<36}  {:<9}  {:<16}  {:<12}  ERROR",
        "ID", "WORKFLOW", "TARGET", "STATE"
    );
    for [id, workflow, target, state, error] in rows {
        let error: String = error.chars().take(60).collect();
        println!("{id:<36}  {workflow:<9}  {target:<16}  {state:<12}  {error}");
    }
}

/// Run a `jobs` subcommand.
pub async fn run(data_dir: &Path, cmd: JobsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobsCommand::List {
            target,
            state,
            limit,
            all,
            format,
        } => {
            let journal = super::open_journal(data_dir)?;
            let filter = JobFilter {
                target,
                state,
                include_dismissed: all,
                active: false,
                before: None,
                limit: Some(limit),
            };
            let jobs = journal.list_jobs(&filter)?;
            if format.json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else {
                print_job_table(jobs.into_iter().map(|j| {
                    [
                        j.id.to_string(),
                        j.workflow,
                        j.target,
                        j.state.to_string(),
                        j.error.unwrap_or_default(),
                    ]
                }));
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Show { id, format } => {
            let journal = super::open_journal(data_dir)?;
            let job = journal
                .job(&id)?
                .with_context(|| format!("no job with id {id}"))?;
            let events = journal.events(&id, 0)?;
            if format.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "job": job, "events": events })
                    )?
                );
            } else {
                print!("{}", render::job_header(&job));
                println!("journal:");
                print!("{}", render::timeline(&events));
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Cancel { id } => {
            let reason = Some("deckhand jobs cancel".to_owned());
            if super::try_lock_data_dir(data_dir)? {
                // No process runs jobs here: record the cancel, then recover,
                // which rolls the job back if it was left unfinished.
                let journal = super::open_journal(data_dir)?;
                journal
                    .job(&id)?
                    .with_context(|| format!("no job with id {id}"))?;
                journal.request_cancel(&id, reason).await?;
                drop(journal);
                let executor = super::engine_unlocked(data_dir).await?;
                let job = executor
                    .journal()
                    .job(&id)?
                    .with_context(|| format!("no job with id {id}"))?;
                println!(
                    "{}",
                    serde_json::json!({"cancelled": job.state == JobState::Cancelled, "state": job.state})
                );
            } else {
                // The process running the job notices the journaled cancel.
                let journal = super::open_journal(data_dir)?;
                let (state_then, _) = journal.request_cancel(&id, reason).await?;
                let job = journal
                    .job(&id)?
                    .with_context(|| format!("no job with id {id}"))?;
                let cancelled = job.cancel_requested && !state_then.is_terminal();
                println!(
                    "{}",
                    serde_json::json!({"cancelled": cancelled, "state": job.state})
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Watch { id } => watch_local(data_dir, &id).await,
        JobsCommand::Retry { id } => {
            let executor = super::engine(data_dir).await?;
            let job = executor.retry(&id).await?;
            match &job.error {
                Some(e) => println!("{}: {e}", job.state),
                None => println!("{}", job.state),
            }
            Ok(if job.state == JobState::Failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// Follow a job in the journal of `data_dir` (written by another process).
async fn watch_local(data_dir: &Path, id: &JobId) -> anyhow::Result<ExitCode> {
    let journal = super::open_journal(data_dir)?;
    journal
        .job(id)?
        .with_context(|| format!("no job with id {id}"))?;
    let view = super::live::LiveView::new();
    let mut interrupts = super::live::interrupts()?;
    let mut last = 0;
    loop {
        let mut ended = None;
        for rec in journal.events(id, last)? {
            last = rec.seq;
            ended = ended.or(view.show(&rec.event));
        }
        if ended.is_some() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            _ = interrupts.recv() => {
                view.finish();
                println!("stopped watching; job {id} goes on");
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    view.finish();
    let job = journal
        .job(id)?
        .with_context(|| format!("no job with id {id}"))?;
    let secs = (job.updated_at - job.created_at) as f64 / 1000.0;
    println!(
        "{}",
        super::live::summary_line(
            job.state,
            secs,
            job.summary.as_deref(),
            job.error.as_deref()
        )
    );
    Ok(if job.state == JobState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Run a `jobs` subcommand against a server.
pub async fn run_remote(
    client: &super::remote::Client,
    cmd: JobsCommand,
) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    match cmd {
        JobsCommand::List {
            target,
            state,
            limit,
            all,
            format,
        } => {
            let mut query = vec![format!("limit={limit}")];
            if let Some(t) = target {
                query.push(format!("target={t}"));
            }
            if let Some(s) = state {
                query.push(format!("state={s}"));
            }
            if all {
                query.push("all=true".into());
            }
            let page = client
                .call(Method::GET, &format!("/v1/jobs?{}", query.join("&")), None)
                .await?;
            if format.json {
                println!("{}", serde_json::to_string_pretty(&page["jobs"])?);
            } else {
                print_job_table(page["jobs"].as_array().into_iter().flatten().map(|j| {
                    ["id", "workflow", "target", "state", "error"]
                        .map(|k| j[k].as_str().unwrap_or("").to_owned())
                }));
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Show { id, .. } => {
            let job = client
                .call(Method::GET, &format!("/v1/jobs/{id}"), None)
                .await?;
            println!("{}", serde_json::to_string_pretty(&job)?);
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Cancel { id } => {
            let o = client
                .call(Method::POST, &format!("/v1/jobs/{id}/cancel"), None)
                .await?;
            println!("{o}");
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Retry { id } => {
            let job = client
                .call(Method::POST, &format!("/v1/jobs/{id}/retry"), None)
                .await?;
            println!("{}", job["state"].as_str().unwrap_or("?"));
            Ok(if job["state"] == "failed" {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        JobsCommand::Watch { id } => super::remote::follow(client, id.as_str(), false).await,
    }
}
