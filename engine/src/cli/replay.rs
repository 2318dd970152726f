//! `deckhand journal export|import` and `deckhand replay`: the journal as
//! text, and a recorded job re-run without Docker.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::render;
use crate::journal::Journal;
use crate::journal::job_ids::JobIdPrefix;
use crate::plugin::PluginHost;
use crate::replay::{self, ReplayEnd};

/// `deckhand journal …`
#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Write the journal (or one job of it) as text, one JSON object a line.
    Export {
        /// Only this job (its id, or a unique start of it).
        #[arg(long, value_name = "ID")]
        job: Option<JobIdPrefix>,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Read an exported journal into the data directory (all or nothing).
    Import {
        /// The exported file.
        file: PathBuf,
    },
}

/// `deckhand replay JOB`
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The job to replay: its id, or a unique start of it (at least 4
    /// characters).
    pub job: JobIdPrefix,
    /// Read the job from an exported journal file instead of the data directory.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// Run this component instead of the one the job recorded (to see where a
    /// changed plugin behaves differently).
    #[arg(long, value_name = "FILE.wasm")]
    pub plugin: Option<PathBuf>,
    /// Stop after this step and show the plugin's state so far.
    #[arg(long, value_name = "STEP")]
    pub until: Option<u32>,
    /// Print the timeline only; do not re-run the plugin.
    #[arg(long)]
    pub timeline: bool,
    /// Also write a self-contained HTML timeline (a Gantt chart of steps,
    /// undos and commit effects) to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// List what a cancel or recovery would run now for this job — its
    /// remaining undos in order, or its remaining commit effects — without
    /// running anything.
    #[arg(long)]
    pub plan: bool,
    /// Print JSON for tools.
    #[arg(long)]
    pub json: bool,
}

/// Run a `journal` subcommand.
pub async fn journal(data_dir: &Path, cmd: JournalCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JournalCommand::Export { job, output } => {
            let journal = super::open_journal(data_dir)?;
            let job = job
                .map(|j| super::jobs::resolve(&journal, &j))
                .transpose()?;
            // Secrets stay in the journal, not in what leaves it.
            let mut redaction = crate::redact::Redaction::from_env();
            let text = journal.export_mapped(job.as_ref(), &mut |v| {
                redaction.learn(v);
                redaction.value(v);
            })?;
            match output {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => out!("{text}"),
            }
        }
        JournalCommand::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let report = super::open_journal(data_dir)?
                .import(&text)
                .await
                .with_context(|| format!("importing {}", file.display()))?;
            outln!("imported {} jobs, {} events", report.jobs, report.events);
            if let Some(n) = report.torn_last_line {
                outln!("line {n} was torn (cut short while being written) and was left out");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Open the journal to replay from: the data directory's, or a temporary
/// one the exported file is imported into.
async fn source(
    data_dir: &Path,
    from: Option<&Path>,
) -> anyhow::Result<(Journal, Option<PathBuf>)> {
    let Some(file) = from else {
        return Ok((super::open_journal(data_dir)?, None));
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let dir = std::env::temp_dir().join(format!("deckhand-replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let journal = Journal::open(dir.join(Journal::FILE_NAME))?;
    let report = journal
        .import(&text)
        .await
        .with_context(|| format!("reading {}", file.display()))?;
    if let Some(n) = report.torn_last_line {
        errln!(
            "note: line {n} of {} is torn and was left out",
            file.display()
        );
    }
    Ok((journal, Some(dir)))
}

/// Run `deckhand replay`.
pub async fn run(data_dir: &Path, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let (journal, temp) = source(data_dir, args.from.as_deref()).await?;
    let outcome = replay_job(data_dir, &journal, &args).await;
    drop(journal);
    if let Some(dir) = temp {
        let _ = std::fs::remove_dir_all(dir);
    }
    outcome
}

async fn replay_job(
    data_dir: &Path,
    journal: &Journal,
    args: &ReplayArgs,
) -> anyhow::Result<ExitCode> {
    let id = super::jobs::resolve(journal, &args.job)?;
    let job = journal
        .job(&id)?
        .with_context(|| format!("no job with id {id} in this journal"))?;
    let events = journal.events(&job.id, 0)?;
    if let Some(path) = &args.html {
        std::fs::write(path, super::html::timeline(&job, &events))
            .with_context(|| format!("writing {}", path.display()))?;
        errln!("timeline written to {}", path.display());
    }
    if args.plan {
        print_plan(&job, &events, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.timeline {
        if args.json {
            outln!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "job": job, "events": events }))?
            );
        } else {
            out!("{}", render::job_header(&job));
            out!("{}", render::timeline(&events));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let host = PluginHost::with_builtins(Some(super::cache_dir(data_dir)))?;
    let store = super::plugin_store(data_dir);
    if store.exists() && args.from.is_none() {
        crate::plugin::store::load(&host, journal, &store)?;
    }
    let plugin = match &args.plugin {
        Some(file) => {
            let bytes =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            Some(host.register("(replay candidate)", &bytes, false)?)
        }
        None => None,
    };
    let report = replay::replay(&host, journal, &job, plugin, args.until).await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", render::job_header(&job));
        outln!("replayed with {}", report.digest);
        outln!(
            "steps matched: {} of {} recorded",
            report.matched_steps,
            report.recorded_steps
        );
        match &report.end {
            ReplayEnd::Finished { summary } => outln!("the plugin finished: {summary}"),
            ReplayEnd::Failed { error } => outln!("the plugin failed: {error}"),
            ReplayEnd::RecordEnded { step } => {
                outln!("the record ends at step {step} (the recorded run was cut short)")
            }
            ReplayEnd::Stopped { step } => outln!("stopped after step {step}"),
            ReplayEnd::Diverged => {}
        }
        match &report.divergence {
            None => outln!(
                "no divergence{}",
                if report.same_outcome {
                    ""
                } else {
                    " in the calls, but the outcome differs from the record"
                }
            ),
            Some(d) => {
                outln!("DIVERGENCE at step {}:", d.step);
                outln!(
                    "  recorded: {}",
                    d.expected
                        .as_ref()
                        .map(|e| serde_json::to_string(e).unwrap_or_default())
                        .unwrap_or_else(|| "(the record had ended)".into())
                );
                outln!(
                    "  replayed: {}",
                    d.actual
                        .as_ref()
                        .map(|e| serde_json::to_string(e).unwrap_or_default())
                        .unwrap_or_else(|| "(the plugin stopped here)".into())
                );
            }
        }
        if args.until.is_some() || !report.observed.is_empty() {
            outln!("observed while replaying:");
            for o in &report.observed {
                outln!("  {o}");
            }
            outln!("params: {}", job.params);
        }
    }
    Ok(if report.divergence.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What finishing `job` would run now, without running it.
fn print_plan(
    job: &crate::journal::JobRecord,
    events: &[crate::journal::EventRecord],
    json: bool,
) -> anyhow::Result<()> {
    use crate::executor::plan::{commit_plan, rollback_plan};
    use crate::journal::JobState;
    let (kind, steps) = match job.state {
        s if s.is_terminal() && s != JobState::Failed => ("nothing", Vec::new()),
        JobState::Committing => ("commit", commit_plan(events)),
        JobState::Failed
            if events.iter().any(|e| {
                matches!(
                    e.event,
                    crate::journal::Event::State {
                        state: JobState::Committing,
                        ..
                    }
                )
            }) =>
        {
            ("commit", commit_plan(events))
        }
        _ => (
            "rollback",
            rollback_plan(events)
                .into_iter()
                .map(|u| (u.step, u.undo))
                .collect(),
        ),
    };
    if json {
        let steps: Vec<_> = steps
            .iter()
            .map(|(step, v)| serde_json::json!({"step": step, "effect": v}))
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"job": job.id, "state": job.state, "plan": kind, "steps": steps})
            )?
        );
        return Ok(());
    }
    match kind {
        "nothing" => outln!("job {} is {}: nothing left to run", job.id, job.state),
        _ => {
            outln!(
                "job {} is {}; a cancel or recovery would run this {kind}, in order:",
                job.id,
                job.state
            );
            for (step, v) in &steps {
                outln!("  step {step}: {}", render::call_text(v));
            }
            if steps.is_empty() {
                outln!(
                    "  (nothing: no step has anything to {})",
                    if kind == "commit" { "apply" } else { "undo" }
                );
            }
        }
    }
    Ok(())
}
