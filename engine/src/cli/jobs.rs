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
}

/// Run a `jobs` subcommand.
pub async fn run(data_dir: &Path, cmd: JobsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobsCommand::List { target, state, limit, all, format } => {
            let journal = super::open_journal(data_dir)?;
            let filter = JobFilter { target, state, include_dismissed: all, before: None, limit: Some(limit) };
            let jobs = journal.list_jobs(&filter)?;
            if format.json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else {
                println!("{:<36}  {:<9}  {:<16}  {:<12}  {}", "ID", "WORKFLOW", "TARGET", "STATE", "ERROR");
                for j in jobs {
                    println!(
                        "{:<36}  {:<9}  {:<16}  {:<12}  {}",
                        j.id,
                        j.workflow,
                        j.target,
                        j.state,
                        j.error.unwrap_or_default().chars().take(60).collect::<String>()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Show { id, format } => {
            let journal = super::open_journal(data_dir)?;
            let job = journal.job(&id)?.with_context(|| format!("no job with id {id}"))?;
            let events = journal.events(&id, 0)?;
            if format.json {
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "job": job, "events": events }))?);
            } else {
                print!("{}", render::job_header(&job));
                println!("journal:");
                print!("{}", render::timeline(&events));
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Cancel { id } => {
            let executor = super::engine(data_dir).await?;
            let outcome = executor.cancel(&id, Some("deckhand jobs cancel".into())).await?;
            println!("{}", serde_json::to_string(&outcome)?);
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Retry { id } => {
            let executor = super::engine(data_dir).await?;
            let job = executor.retry(&id).await?;
            match &job.error {
                Some(e) => println!("{}: {e}", job.state),
                None => println!("{}", job.state),
            }
            Ok(if job.state == JobState::Failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
    }
}
