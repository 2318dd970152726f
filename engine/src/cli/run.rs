//! Commands that run a job in the foreground with a live progress bar:
//! `deckhand install|upgrade|teardown|rollback`. Ctrl-C cancels the job (after saying so) and waits for
//! its rollback.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::render;
use crate::executor::{Executor, JobRequest};
use crate::journal::{Event, JobId, JobRecord, JobState};

/// Container settings shared by `install` and `upgrade`.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Environment variable for the container (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Network mode of the container (e.g. `none`, `bridge`).
    #[arg(long)]
    pub network: Option<String>,
    /// Seconds to wait for the container to run (and be healthy).
    #[arg(long, value_name = "SECONDS")]
    pub health_timeout: Option<u32>,
    /// Command and arguments for the container, after `--`.
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

/// `deckhand install TARGET IMAGE`
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Target name, e.g. `web`.
    pub target: String,
    /// Image reference, e.g. `127.0.0.1:5000/app:1`.
    pub image: String,
    #[command(flatten)]
    pub spec: SpecArgs,
}

/// `deckhand upgrade TARGET [IMAGE]`
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Target name.
    pub target: String,
    /// New image reference; omitted, the current one is kept.
    pub image: Option<String>,
    #[command(flatten)]
    pub spec: SpecArgs,
}

/// `deckhand teardown TARGET`
#[derive(Debug, Args)]
pub struct TeardownArgs {
    /// Target name.
    pub target: String,
}

/// `deckhand rollback TARGET REVISION`
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Target name.
    pub target: String,
    /// The earlier revision whose image and config to bring back.
    pub revision: u64,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

impl SpecArgs {
    /// Params with the fields that were given; `image` first when given.
    fn params(&self, image: Option<&str>) -> Value {
        let mut p = json!({});
        if let Some(image) = image {
            p["image"] = json!(image);
        }
        if !self.env.is_empty() {
            p["env"] = json!(self.env.iter().cloned().collect::<BTreeMap<_, _>>());
        }
        if let Some(n) = &self.network {
            p["network"] = json!(n);
        }
        if let Some(t) = self.health_timeout {
            p["health"] = json!({ "timeout_s": t });
        }
        if !self.cmd.is_empty() {
            p["cmd"] = json!(self.cmd);
        }
        p
    }
}

/// Run `deckhand install`.
pub async fn install(data_dir: &Path, args: InstallArgs) -> anyhow::Result<ExitCode> {
    let params = args.spec.params(Some(&args.image));
    foreground(data_dir, JobRequest { workflow: "install".into(), target: args.target, params }).await
}

/// Run `deckhand upgrade`.
pub async fn upgrade(data_dir: &Path, args: UpgradeArgs) -> anyhow::Result<ExitCode> {
    let params = args.spec.params(args.image.as_deref());
    foreground(data_dir, JobRequest { workflow: "upgrade".into(), target: args.target, params }).await
}

/// Run `deckhand teardown`.
pub async fn teardown(data_dir: &Path, args: TeardownArgs) -> anyhow::Result<ExitCode> {
    foreground(data_dir, JobRequest { workflow: "teardown".into(), target: args.target, params: json!({}) }).await
}

/// Run `deckhand rollback`.
pub async fn rollback(data_dir: &Path, args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let params = json!({ "revision": args.revision });
    foreground(data_dir, JobRequest { workflow: "rollback".into(), target: args.target, params }).await
}

/// Submit a job, show its progress until it ends, and print a summary.
async fn foreground(data_dir: &Path, req: JobRequest) -> anyhow::Result<ExitCode> {
    // Refuse a bad name before touching the journal or Docker.
    if !crate::executor::valid_target_name(&req.target) {
        return Err(crate::executor::SubmitError::InvalidTarget(req.target).into());
    }
    let executor = super::engine(data_dir).await?;
    let mut live = executor.journal().subscribe();
    let job = executor.submit(req).await?;
    println!("job {} ({} {}) accepted", job.id, job.workflow, job.target);

    // Without a terminal the bar is hidden, so step lines go to stdout.
    let tty = std::io::stderr().is_terminal();
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix:>15} [{bar:30}] {percent:>3}% {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let show = |line: String| if tty { bar.println(line) } else { println!("{line}") };
    let mut ctrl_c_pressed = false;
    loop {
        tokio::select! {
            ev = live.recv() => match ev {
                Ok(ev) if ev.job_id == job.id => {
                    if let Some(line) = render::event_line(&ev.event) {
                        show(line);
                    }
                    match &ev.event {
                        Event::Phase { phase } => {
                            bar.set_prefix(phase.clone());
                            bar.set_position(0);
                            bar.set_message("");
                        }
                        Event::Progress(p) => {
                            bar.set_position((p.fraction.unwrap_or(0.0) * 1000.0) as u64);
                            bar.set_message(render::progress_text(p));
                        }
                        Event::State { state, .. } if state.is_terminal() => break,
                        _ => {}
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            _ = tokio::signal::ctrl_c(), if !ctrl_c_pressed => {
                ctrl_c_pressed = true;
                show(format!("Ctrl-C: cancelling job {} and rolling back…", job.id));
                let outcome = executor.cancel(&job.id, Some("Ctrl-C in the foreground CLI".into())).await?;
                if !outcome.cancelled {
                    show(format!("not cancelled: {}", outcome.reason.unwrap_or_default()));
                }
            }
        }
    }
    bar.finish_and_clear();
    let done = executor.wait(&job.id).await?;
    print_summary(&executor, &done.id)?;
    Ok(if done.state == JobState::Succeeded { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print_summary(executor: &Executor, id: &JobId) -> anyhow::Result<()> {
    let job: JobRecord = executor.journal().job(id)?.context("job vanished from the journal")?;
    let secs = (job.updated_at - job.created_at) as f64 / 1000.0;
    match job.state {
        JobState::Succeeded => println!("{} in {secs:.1} s: {}", job.state, job.summary.as_deref().unwrap_or("done")),
        JobState::Cancelled => println!("cancelled after {secs:.1} s: rolled back to the state before the job"),
        state => println!("{state} after {secs:.1} s: {}", job.error.as_deref().unwrap_or("no error recorded")),
    }
    println!("journal: {}  (deckhand jobs show {})", executor.journal().path().display(), job.id);
    Ok(())
}
