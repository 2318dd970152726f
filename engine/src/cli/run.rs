//! Commands that run a job in the foreground with a live progress bar:
//! `deckhand install|upgrade|teardown|rollback`. Ctrl-C cancels the job (after saying so) and waits for
//! its rollback.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use serde_json::{Value, json};

use super::live::{LiveView, summary_line};
use crate::executor::JobRequest;
use crate::journal::JobState;

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

/// Options of every command that submits a job.
#[derive(Debug, Args)]
pub struct JobOptions {
    /// Go ahead although a failed job on the target did not finish its
    /// rollback: its remaining undos are left undone (journaled on it).
    #[arg(long)]
    pub force: bool,
}

impl JobOptions {
    fn apply(&self, mut req: JobRequest) -> JobRequest {
        req.force = self.force;
        req
    }
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
    #[command(flatten)]
    pub options: JobOptions,
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
    #[command(flatten)]
    pub options: JobOptions,
}

/// `deckhand run WORKFLOW TARGET [--params JSON]`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Workflow name (built-in or registered with `deckhand plugin add`).
    pub workflow: String,
    /// Target name.
    pub target: String,
    /// Params as a JSON object.
    #[arg(long, default_value = "{}")]
    pub params: String,
    #[command(flatten)]
    pub options: JobOptions,
}

impl RunArgs {
    /// The job this command asks for.
    pub fn request(self) -> anyhow::Result<JobRequest> {
        let params: Value = serde_json::from_str(&self.params)
            .map_err(|e| anyhow::anyhow!("--params is not JSON: {e}"))?;
        Ok(self
            .options
            .apply(JobRequest::new(self.workflow, self.target, params)))
    }
}

/// `deckhand teardown TARGET`
#[derive(Debug, Args)]
pub struct TeardownArgs {
    /// Target name.
    pub target: String,
    #[command(flatten)]
    pub options: JobOptions,
}

/// `deckhand rollback TARGET REVISION`
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Target name.
    pub target: String,
    /// The earlier revision whose image and config to bring back.
    pub revision: u64,
    #[command(flatten)]
    pub options: JobOptions,
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

impl InstallArgs {
    /// The job this command asks for.
    pub fn request(self) -> JobRequest {
        let req = JobRequest::new("install", self.target, self.spec.params(Some(&self.image)));
        self.options.apply(req)
    }
}

impl UpgradeArgs {
    /// The job this command asks for.
    pub fn request(self) -> JobRequest {
        let req = JobRequest::new(
            "upgrade",
            self.target,
            self.spec.params(self.image.as_deref()),
        );
        self.options.apply(req)
    }
}

impl TeardownArgs {
    /// The job this command asks for.
    pub fn request(self) -> JobRequest {
        self.options
            .apply(JobRequest::new("teardown", self.target, json!({})))
    }
}

impl RollbackArgs {
    /// The job this command asks for.
    pub fn request(self) -> JobRequest {
        let req = JobRequest::new(
            "rollback",
            self.target,
            json!({ "revision": self.revision }),
        );
        self.options.apply(req)
    }
}

/// Submit a job, show its progress until it ends, and print a summary.
pub async fn foreground(data_dir: &Path, req: JobRequest) -> anyhow::Result<ExitCode> {
    // Refuse a bad name before touching the journal or Docker.
    if !crate::executor::valid_target_name(&req.target) {
        return Err(crate::executor::SubmitError::InvalidTarget(req.target).into());
    }
    let executor = super::engine(data_dir).await?;
    let mut live = executor.journal().subscribe();
    let job = executor.submit(req).await?;
    outln!("job {} ({} {}) accepted", job.id, job.workflow, job.target);

    let view = LiveView::new();
    let mut health = executor.journal().watch_health();
    let mut ctrl_c_pressed = false;
    // One listener for the whole wait: a Ctrl-C between two polls is not lost.
    let mut interrupts = super::live::interrupts()?;
    loop {
        tokio::select! {
            ev = live.recv() => match ev {
                Ok(ev) if ev.job_id == job.id => {
                    if view.show(&ev.event).is_some() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            Ok(()) = health.changed() => {
                let now = health.borrow_and_update().clone();
                view.line(match now {
                    crate::journal::JournalHealth::Unwritable { error, .. } => format!(
                        "the journal cannot be written ({error}): the job is paused and is finished (rolled back, or committed after its commit point) as soon as it can be"
                    ),
                    crate::journal::JournalHealth::Writable => {
                        "the journal can be written again: finishing the job".to_owned()
                    }
                });
            }
            // The run ended without a terminal state (the journal failed).
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)), if !executor.is_running(&job.id) => break,
            _ = interrupts.recv(), if !ctrl_c_pressed => {
                ctrl_c_pressed = true;
                view.line(format!("Ctrl-C: cancelling job {} and rolling back…", job.id));
                let outcome = executor.cancel(&job.id, Some("Ctrl-C in the foreground CLI".into())).await?;
                if !outcome.cancelled {
                    view.line(format!("not cancelled: {}", outcome.reason.unwrap_or_default()));
                }
            }
        }
    }
    view.finish();
    let done = executor.wait(&job.id).await?;
    let secs = (done.updated_at - done.created_at) as f64 / 1000.0;
    outln!(
        "{}",
        summary_line(
            done.state,
            secs,
            done.summary.as_deref(),
            done.error.as_deref()
        )
    );
    outln!(
        "journal: {}  (deckhand jobs show {})",
        executor.journal().path().display(),
        done.id
    );
    Ok(if done.state == JobState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
