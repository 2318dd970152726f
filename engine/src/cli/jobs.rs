//! `deckhand jobs list|show|watch|cancel|retry`: read the journal, cancel
//! and retry by id. A job is named by its id or a unique start of it
//! ([`JobIdPrefix`]), in-process and through a server alike.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::Value;

use super::remote::Client;
use super::{Format, render};
use crate::journal::job_ids::{JobIdError, JobIdPrefix, MAX_CANDIDATES, candidate_line};
use crate::journal::{
    EventRecord, JobFilter, JobId, JobRecord, JobState, Journal, Millis, Progress,
};

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
        /// Job id, or its start (at least 4 characters, naming one job).
        id: JobIdPrefix,
        #[command(flatten)]
        format: Format,
    },
    /// Cancel a job by id (recorded in the journal before this returns).
    /// Prints `{"cancelled": bool, "state": …, "reason": …}`.
    Cancel {
        /// Job id, or its start (at least 4 characters, naming one job).
        id: JobIdPrefix,
    },
    /// Retry a `failed` job: resume its rollback (or commit) where it stopped.
    Retry {
        /// Job id, or its start (at least 4 characters, naming one job).
        id: JobIdPrefix,
    },
    /// Follow a job's progress until it ends. Ctrl-C stops watching; it
    /// never cancels the job.
    Watch {
        /// Job id, or its start (at least 4 characters, naming one job).
        id: JobIdPrefix,
    },
}

/// The table `jobs list` prints: id, workflow, target, state, and the start
/// of the error.
fn print_job_table(rows: impl Iterator<Item = [String; 5]>) {
    outln!(
        "{:<36}  {:<9}  {:<16}  {:<12}  ERROR",
        "ID",
        "WORKFLOW",
        "TARGET",
        "STATE"
    );
    for [id, workflow, target, state, error] in rows {
        let error: String = error.chars().take(60).collect();
        outln!("{id:<36}  {workflow:<9}  {target:<16}  {state:<12}  {error}");
    }
}

/// The job `id` names in `journal` (its whole id or a unique start of it).
pub(crate) fn resolve(journal: &Journal, id: &JobIdPrefix) -> anyhow::Result<JobId> {
    Ok(journal.resolve_job_id(&id.to_string())?)
}

/// The job `id` names on the server: a whole id as it is (the server says
/// if it has no such job); a start of one from the first page of jobs below
/// the prefix's upper bound, where every job it names comes first (see
/// [`crate::journal::job_ids`]) — one request, however many jobs there are.
pub(crate) async fn resolve_remote(client: &Client, id: &JobIdPrefix) -> anyhow::Result<JobId> {
    if let Some(full) = id.full() {
        return Ok(full);
    }
    let mut path = format!("/v1/jobs?all=true&limit={}", MAX_CANDIDATES + 1);
    if let Some(upper) = id.upper_bound() {
        path += &format!("&cursor={upper}");
    }
    let page = client.call(reqwest::Method::GET, &path, None).await?;
    let named: Vec<&Value> = page["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .take_while(|j| j["id"].as_str().is_some_and(|s| id.matches(s)))
        .collect();
    let text = |j: &Value, k: &str| j[k].as_str().unwrap_or("").to_owned();
    match named.as_slice() {
        [] => Err(JobIdError::NotFound(format!("starting with {id}")).into()),
        [one] => text(one, "id").parse().map_err(anyhow::Error::msg),
        many => Err(JobIdError::Ambiguous {
            prefix: id.to_string(),
            candidates: many
                .iter()
                .take(MAX_CANDIDATES)
                .map(|j| {
                    candidate_line(
                        &text(j, "id"),
                        &text(j, "workflow"),
                        &text(j, "target"),
                        &text(j, "state"),
                    )
                })
                .collect(),
            more: many.len() > MAX_CANDIDATES,
        }
        .into()),
    }
}

/// The answer to a cancel, the same in-process and through a server:
/// `{"cancelled": bool, "state": …, "reason": …}`, `reason` only when there
/// is one.
fn print_cancel(cancelled: bool, state: &str, reason: Option<&str>) {
    /// In this order, as the API documents it.
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        cancelled: bool,
        state: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
    }
    let answer = Answer {
        cancelled,
        state,
        reason,
    };
    outln!(
        "{}",
        serde_json::to_string(&answer).expect("the answer serializes")
    );
}

/// What a cancel request recorded in the journal amounts to, as the
/// executor answers it: `state` was the job's state when the request was
/// handled; `record` is the job after it.
fn cancel_outcome(state: JobState, record: &JobRecord) -> (bool, Option<String>) {
    if state.is_terminal() {
        (false, Some(format!("job already {state}")))
    } else if !record.cancel_requested {
        (
            false,
            Some("job is committing; it can no longer be cancelled".to_owned()),
        )
    } else {
        (true, None)
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
                outln!("{}", serde_json::to_string_pretty(&jobs)?);
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
            let id = resolve(&journal, &id)?;
            let job = journal
                .job(&id)?
                .with_context(|| format!("no job with id {id}"))?;
            let events = journal.events(&id, 0)?;
            if format.json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "job": job, "events": events })
                    )?
                );
            } else {
                print_job(&job, &events, true);
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Cancel { id } => {
            let reason = Some("deckhand jobs cancel".to_owned());
            let locked = super::try_lock_data_dir(data_dir)?;
            let journal = super::open_journal(data_dir)?;
            let id = resolve(&journal, &id)?;
            // Recorded in the journal: a process running the job (one holds
            // the lock) notices it within a moment.
            let (state_then, _) = journal.request_cancel(&id, reason).await?;
            let job = journal
                .job(&id)?
                .with_context(|| format!("no job with id {id}"))?;
            let (cancelled, why_not) = cancel_outcome(state_then, &job);
            let mut state = job.state;
            if locked && !state_then.is_terminal() {
                // No process runs jobs here: the job was left unfinished by
                // one that stopped. Recovery rolls it back (or, past its
                // commit point, commits it); the answer gives where it ended.
                drop(journal);
                let executor = super::engine_unlocked(data_dir).await?;
                state = executor
                    .journal()
                    .job(&id)?
                    .with_context(|| format!("no job with id {id}"))?
                    .state;
            }
            print_cancel(cancelled, state.as_str(), why_not.as_deref());
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Watch { id } => {
            let id = resolve(&super::open_journal(data_dir)?, &id)?;
            watch_local(data_dir, &id).await
        }
        JobsCommand::Retry { id } => {
            // Named before Docker is needed: a wrong id is said at once.
            let id = resolve(&super::open_journal(data_dir)?, &id)?;
            let executor = super::engine(data_dir).await?;
            let job = executor.retry(&id).await?;
            match &job.error {
                Some(e) => outln!("{}: {e}", job.state),
                None => outln!("{}", job.state),
            }
            Ok(if job.state == JobState::Failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// `jobs show` as text: the job's header and its journal timeline (the
/// timeline so far, if `complete` is false: a running job's, read through a
/// server).
fn print_job(job: &JobRecord, events: &[EventRecord], complete: bool) {
    out!("{}", render::job_header(job));
    outln!("journal:");
    out!("{}", render::timeline(events));
    if !complete && !job.state.is_terminal() {
        outln!(
            "  … the job goes on (follow it with `deckhand jobs watch {}`)",
            job.id
        );
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
        if super::out::stdout_gone() {
            // Nobody reads any more (`jobs watch ID | head`): stop watching.
            view.finish();
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            _ = interrupts.recv() => {
                view.finish();
                outln!("stopped watching; job {id} goes on");
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    view.finish();
    let job = journal
        .job(id)?
        .with_context(|| format!("no job with id {id}"))?;
    let secs = (job.updated_at - job.created_at) as f64 / 1000.0;
    outln!(
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

/// Milliseconds since the epoch of an RFC 3339 time in the API's JSON.
pub(crate) fn millis_of(v: &Value) -> Millis {
    v.as_str()
        .and_then(|s| humantime::parse_rfc3339(s).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// A job as the API shows it (`GET /v1/jobs/{id}`), as a journal record,
/// to render it as `jobs show` does in-process.
fn record_of_view(v: &Value) -> anyhow::Result<JobRecord> {
    let text = |k: &str| v[k].as_str().map(str::to_owned);
    Ok(JobRecord {
        id: v["id"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(anyhow::Error::msg)?,
        workflow: text("workflow").unwrap_or_default(),
        target: text("target").unwrap_or_default(),
        params: v["params"].clone(),
        plugin_digest: text("plugin_digest").unwrap_or_default(),
        state: v["state"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(anyhow::Error::msg)?,
        phase: text("phase"),
        progress: serde_json::from_value::<Progress>(v["progress"].clone()).unwrap_or_default(),
        error: text("error"),
        summary: text("summary"),
        cancel_requested: v["cancel_requested"] == true,
        dismissed: false,
        created_at: millis_of(&v["created_at"]),
        updated_at: millis_of(&v["updated_at"]),
    })
}

/// Run a `jobs` subcommand against a server.
pub async fn run_remote(client: &Client, cmd: JobsCommand) -> anyhow::Result<ExitCode> {
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
                outln!("{}", serde_json::to_string_pretty(&page["jobs"])?);
            } else {
                print_job_table(page["jobs"].as_array().into_iter().flatten().map(|j| {
                    ["id", "workflow", "target", "state", "error"]
                        .map(|k| j[k].as_str().unwrap_or("").to_owned())
                }));
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Show { id, format } => {
            let id = resolve_remote(client, &id).await?;
            let view = client
                .call(Method::GET, &format!("/v1/jobs/{id}"), None)
                .await?;
            if format.json {
                outln!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                let job = record_of_view(&view)?;
                let (events, complete) = client.recorded_events(id.as_str()).await?;
                print_job(&job, &events, complete);
                if let Some(retry) = view.get("auto_retry").filter(|r| !r.is_null()) {
                    outln!(
                        "automatic retry: {} attempts so far, the next at {}",
                        retry["attempts"],
                        humantime::format_rfc3339_millis(
                            std::time::UNIX_EPOCH
                                + std::time::Duration::from_millis(
                                    retry["next_at"].as_u64().unwrap_or(0)
                                )
                        )
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Cancel { id } => {
            let id = resolve_remote(client, &id).await?;
            let o = client
                .call(Method::POST, &format!("/v1/jobs/{id}/cancel"), None)
                .await?;
            print_cancel(
                o["cancelled"] == true,
                o["state"].as_str().unwrap_or("?"),
                o["reason"].as_str(),
            );
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Retry { id } => {
            let id = resolve_remote(client, &id).await?;
            let job = client
                .call(Method::POST, &format!("/v1/jobs/{id}/retry"), None)
                .await?;
            match job["error"].as_str() {
                Some(e) => outln!("{}: {e}", job["state"].as_str().unwrap_or("?")),
                None => outln!("{}", job["state"].as_str().unwrap_or("?")),
            }
            Ok(if job["state"] == "failed" {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        JobsCommand::Watch { id } => {
            let id = resolve_remote(client, &id).await?;
            super::remote::follow(client, id.as_str(), false).await
        }
    }
}
