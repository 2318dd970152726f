//! The JSON shapes of the API (SPEC "Names, labels and params"), built from
//! journal records.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, SchemaFormat};

use crate::executor::AutoRetryState;
use crate::journal::{
    Event, EventRecord, JobRecord, JobState, Millis, Outcome, RevisionRecord, TargetRecord,
};
use crate::redact::Redaction;

/// The schema of a job's state: one of [`JobState::ALL`]'s names.
pub struct JobStateSchema;

impl utoipa::PartialSchema for JobStateSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A job's state: `queued → running → committing → succeeded`, or \
                 `→ rolling_back → cancelled | rolled_back`, or `failed`.",
            ))
            .enum_values(Some(JobState::ALL.iter().map(|s| s.as_str())))
            .into()
    }
}

impl ToSchema for JobStateSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "JobState".into()
    }
}

/// The schema of a job id: a UUID (hyphenated, lower case).
pub struct JobIdSchema;

impl utoipa::PartialSchema for JobIdSchema {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("uuid".into())))
            .into()
    }
}

impl ToSchema for JobIdSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "JobId".into()
    }
}

/// RFC 3339 time of a journal timestamp.
pub fn rfc3339(ms: Millis) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Progress of the job's current step.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressView {
    /// 0–1, never decreasing within a step; null while indeterminate.
    pub fraction: Option<f64>,
    /// Layers finished.
    pub layers_done: u32,
    /// Layers known.
    pub layers_total: u32,
    /// Bytes downloaded.
    pub bytes_done: u64,
    /// Bytes to download over all layers, once every layer's size is known;
    /// 0 until then, so that a total shown never grows.
    pub bytes_total: u64,
    /// The layers of a pull, in the daemon's order (at most 128); left out
    /// for other steps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(nullable = false)]
    pub layers: Vec<LayerView>,
    /// Each image of a step that pulls several at once (a stack's
    /// services), in the order asked; the counts above sum them. Left out
    /// for other steps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(nullable = false)]
    pub pulls: Vec<PullView>,
}

/// One image of a step that pulls several at once.
#[derive(Debug, Serialize, ToSchema)]
pub struct PullView {
    /// The image reference.
    pub image: String,
    /// What it is pulled for (the services that run it).
    pub labels: Vec<String>,
    /// 0–1, never decreasing; null while indeterminate.
    pub fraction: Option<f64>,
    /// Layers finished.
    pub layers_done: u32,
    /// Layers known.
    pub layers_total: u32,
    /// Bytes downloaded.
    pub bytes_done: u64,
    /// Bytes to download, once every layer's size is known; 0 until then.
    pub bytes_total: u64,
    /// Its layers, in the daemon's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(nullable = false)]
    pub layers: Vec<LayerView>,
}

fn layer_views(layers: Vec<crate::journal::LayerProgress>) -> Vec<LayerView> {
    layers
        .into_iter()
        .map(|l| LayerView {
            id: l.id,
            state: l.state,
            current: l.current,
            total: l.total,
        })
        .collect()
}

/// One layer of a pull.
#[derive(Debug, Serialize, ToSchema)]
pub struct LayerView {
    /// The daemon's layer id.
    pub id: String,
    /// `waiting`, `downloading`, `retrying`, `downloaded`, `extracting`,
    /// `done` or `already_present`.
    pub state: String,
    /// Bytes of its current activity (downloaded, or extracted while
    /// `extracting`).
    pub current: u64,
    /// Its size, fixed once known; left out until then and for a layer
    /// already present.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub total: Option<u64>,
}

/// One journaled step: the call, its undo, and what became of both.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    /// Step number.
    pub step: u32,
    /// `call` (done now, undone on rollback) or `deferred` (done at commit).
    pub kind: &'static str,
    /// The call or deferred effect.
    #[schema(value_type = Object)]
    pub call: Value,
    /// Its compensation, if any.
    #[schema(value_type = Option<Object>)]
    pub undo: Option<Value>,
    /// `ok`, `error` or null while in flight / not yet run.
    pub outcome: Option<&'static str>,
    /// The error, when it failed.
    pub error: Option<String>,
    /// When it started.
    #[schema(format = DateTime)]
    pub started_at: String,
    /// When it finished.
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// `ok` / `error` once compensated (rolled back) or committed.
    pub settled: Option<&'static str>,
}

/// A job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// Job id.
    #[schema(value_type = JobIdSchema)]
    pub id: String,
    /// Workflow name.
    pub workflow: String,
    /// Target name.
    #[schema(pattern = "^[a-z0-9][a-z0-9_.-]{0,62}$")]
    pub target: String,
    /// Its state.
    #[schema(value_type = JobStateSchema)]
    pub state: String,
    /// Current phase (`pulling`, `creating`, …).
    pub phase: Option<String>,
    /// Progress of the current step.
    pub progress: ProgressView,
    /// Why it failed or rolled back.
    pub error: Option<String>,
    /// The plugin's summary on success.
    pub summary: Option<String>,
    /// Whether a cancel was requested.
    pub cancel_requested: bool,
    /// Params as given.
    #[schema(value_type = Object)]
    pub params: Value,
    /// Digest of the plugin that runs it.
    pub plugin_digest: String,
    /// Created.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Steps in order (only in single-job responses).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub steps: Option<Vec<StepView>>,
    /// For a `failed` job the engine retries by itself (the Docker daemon
    /// was away): attempts so far and when the next is due (only in
    /// single-job responses).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub auto_retry: Option<AutoRetryView>,
}

/// The background retry of a `failed` job.
#[derive(Debug, Serialize, ToSchema)]
pub struct AutoRetryView {
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (milliseconds since the Unix epoch).
    #[schema(format = Int64)]
    pub next_at: i64,
}

impl From<AutoRetryState> for AutoRetryView {
    fn from(a: AutoRetryState) -> Self {
        AutoRetryView {
            attempts: a.attempts,
            next_at: a.next_at,
        }
    }
}

fn outcome_word(o: &Outcome) -> (&'static str, Option<String>) {
    match o {
        Outcome::Ok { .. } => ("ok", None),
        Outcome::Err { error, .. } => ("error", Some(error.clone())),
    }
}

impl JobView {
    /// The job without its steps, secrets masked (see [`crate::redact`]).
    pub fn summary(j: JobRecord) -> Self {
        let j = Redaction::for_job(&j).masked(&j);
        JobView::unmasked(j)
    }

    fn unmasked(j: JobRecord) -> Self {
        JobView {
            id: j.id.to_string(),
            workflow: j.workflow,
            target: j.target,
            state: j.state.to_string(),
            phase: j.phase,
            progress: ProgressView {
                fraction: j.progress.fraction,
                layers_done: j.progress.layers_done,
                layers_total: j.progress.layers_total,
                bytes_done: j.progress.bytes_done,
                bytes_total: j.progress.bytes_total,
                layers: layer_views(j.progress.layers),
                pulls: j
                    .progress
                    .pulls
                    .into_iter()
                    .map(|p| PullView {
                        image: p.image,
                        labels: p.labels,
                        fraction: p.progress.fraction,
                        layers_done: p.progress.layers_done,
                        layers_total: p.progress.layers_total,
                        bytes_done: p.progress.bytes_done,
                        bytes_total: p.progress.bytes_total,
                        layers: layer_views(p.progress.layers),
                    })
                    .collect(),
            },
            error: j.error,
            summary: j.summary,
            cancel_requested: j.cancel_requested,
            params: j.params,
            plugin_digest: j.plugin_digest,
            created_at: rfc3339(j.created_at),
            updated_at: rfc3339(j.updated_at),
            steps: None,
            auto_retry: None,
        }
    }

    /// The job with its steps, folded from its events, secrets masked:
    /// those of the params and any a step's call carries.
    pub fn full(j: JobRecord, events: &[EventRecord]) -> Self {
        let mut redaction = Redaction::for_job(&j);
        events.iter().for_each(|e| redaction.learn_from(&e.event));
        let j = redaction.masked(&j);
        let events: Vec<EventRecord> = events.iter().map(|e| redaction.masked(e)).collect();
        let mut steps: Vec<StepView> = Vec::new();
        for e in &events {
            match &e.event {
                Event::Intent { step, call, undo } => steps.push(StepView {
                    step: *step,
                    kind: "call",
                    call: call.clone(),
                    undo: undo.clone(),
                    outcome: None,
                    error: None,
                    started_at: rfc3339(e.at),
                    finished_at: None,
                    settled: None,
                }),
                Event::Deferred { step, effect } => steps.push(StepView {
                    step: *step,
                    kind: "deferred",
                    call: effect.clone(),
                    undo: None,
                    outcome: None,
                    error: None,
                    started_at: rfc3339(e.at),
                    finished_at: None,
                    settled: None,
                }),
                Event::Result { step, outcome } => {
                    if let Some(s) = steps.iter_mut().find(|s| s.step == *step) {
                        let (word, error) = outcome_word(outcome);
                        s.outcome = Some(word);
                        s.error = error;
                        s.finished_at = Some(rfc3339(e.at));
                    }
                }
                Event::UndoResult { step, outcome } | Event::CommitResult { step, outcome } => {
                    if let Some(s) = steps.iter_mut().find(|s| s.step == *step) {
                        s.settled = Some(outcome_word(outcome).0);
                    }
                }
                _ => {}
            }
        }
        let mut view = JobView::unmasked(j);
        view.steps = Some(steps);
        view
    }
}

/// One revision of a target.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionView {
    /// Revision number.
    pub revision: u64,
    /// Image reference; empty for a stack's.
    pub image: String,
    /// Container that ran it; empty for a stack's.
    pub container_id: String,
    /// A stack revision's services (name, image, container); absent for
    /// one container.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<RevisionServiceView>,
    /// Job that made it.
    #[schema(value_type = JobIdSchema)]
    pub job_id: String,
    /// When it was committed.
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// One service of a stack revision.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionServiceView {
    /// Service name.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Container that ran it.
    pub container_id: String,
}

/// A target.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetView {
    /// Name.
    #[schema(pattern = "^[a-z0-9][a-z0-9_.-]{0,62}$")]
    pub name: String,
    /// Current revision, null once torn down.
    pub revision: Option<u64>,
    /// Current image.
    pub image: Option<String>,
    /// Current container.
    pub container_id: Option<String>,
    /// `installed` or `torn_down`.
    pub status: &'static str,
    /// Every revision, oldest first.
    pub history: Vec<RevisionView>,
    /// Published ports of the current revision (`-p` syntax).
    pub ports: Vec<String>,
    /// Its volumes and bind mounts.
    pub volumes: Vec<VolumeView>,
    /// The user-defined networks it joins.
    pub networks: Vec<NetworkView>,
    /// Its restart policy (`no`, `on-failure:3`, …); null: the runtime's default.
    pub restart: Option<String>,
    /// Its memory limit as given (`256m`).
    pub memory: Option<String>,
    /// Its CPU limit.
    pub cpus: Option<f64>,
    /// Its health settings (`timeout_s`, `cmd`, `interval_s`, …).
    #[schema(value_type = Option<Object>)]
    pub health: Option<Value>,
    /// A stack's services, in start order (empty for one container; then
    /// `image` and `container_id` say what runs, and for a stack they are
    /// null).
    pub services: Vec<ServiceView>,
}

/// One service of a stack target.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceView {
    /// The service's name (`db`); its container is `deckhand-<target>-db`.
    pub name: String,
    /// The image it runs.
    pub image: String,
    /// The container that runs it.
    pub container_id: String,
    /// What the runtime says of the container now: `running`, `healthy`,
    /// `unhealthy`, `starting`, `exited (N)`, `missing`, or `unknown`.
    pub status: String,
    /// Its published ports (`-p` syntax).
    pub ports: Vec<String>,
}

/// A volume or bind mount of a target.
#[derive(Debug, Serialize, ToSchema)]
pub struct VolumeView {
    /// The volume's name in the params (`data`), or the host path of a bind mount.
    pub name: String,
    /// The Docker volume it is (`deckhand-web-V-data`); null for a bind mount.
    pub docker_name: Option<String>,
    /// Where it is mounted in the container.
    pub path: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// A user-defined network a target joins.
#[derive(Debug, Serialize, ToSchema)]
pub struct NetworkView {
    /// Network name.
    pub name: String,
    /// The target's extra names there.
    pub aliases: Vec<String>,
}

impl TargetView {
    /// Each service's status as the runtime says it now.
    pub async fn with_live_status(mut self, executor: &crate::executor::Executor) -> Self {
        let statuses = futures_util::future::join_all(
            self.services
                .iter()
                .map(|s| executor.container_status(&s.container_id)),
        )
        .await;
        for (s, status) in self.services.iter_mut().zip(statuses) {
            s.status = status;
        }
        self
    }

    /// The target with its current revision's effective spec; `volumes`
    /// names the Docker volume each named volume is now: the newest the
    /// engine made for it (a snapshotting upgrade makes a copy), else the
    /// target's scoped name.
    pub fn of(
        t: TargetRecord,
        journal: &crate::journal::Journal,
    ) -> Result<Self, crate::journal::JournalError> {
        let owned = journal.owned_by_target(crate::steps::RESOURCE_VOLUME, &t.name)?;
        let spec: deckhand_params::Spec = t
            .current
            .as_ref()
            .and_then(|r| serde_json::from_value(r.spec.clone()).ok())
            .unwrap_or_default();
        let target = t.name.clone();
        let mut view = TargetView::from(t);
        view.ports = spec.ports.clone().unwrap_or_default();
        view.volumes = spec
            .volume_specs()
            .unwrap_or_default()
            .into_iter()
            .map(|v| match v.source {
                deckhand_params::VolumeSource::Named(name) => {
                    let docker = owned
                        .iter()
                        .rev()
                        .find(|o| o.name == name)
                        .map(|o| o.id.clone())
                        .unwrap_or_else(|| {
                            crate::ownership::volume_docker_name(&target, None, &name)
                        });
                    VolumeView {
                        name,
                        docker_name: Some(docker),
                        path: v.target,
                        read_only: v.read_only,
                    }
                }
                deckhand_params::VolumeSource::Bind(path) => VolumeView {
                    name: path,
                    docker_name: None,
                    path: v.target,
                    read_only: v.read_only,
                },
            })
            .collect();
        view.networks = spec
            .network_specs()
            .unwrap_or_default()
            .into_iter()
            .map(|n| NetworkView {
                name: n.name,
                aliases: n.aliases,
            })
            .collect();
        view.restart = spec.restart.clone();
        view.memory = spec.memory.clone();
        view.cpus = spec.cpus;
        view.health = spec
            .health
            .as_ref()
            .and_then(|h| serde_json::to_value(h).ok());
        Ok(view)
    }
}

impl From<TargetRecord> for TargetView {
    fn from(t: TargetRecord) -> Self {
        let rev = |r: &RevisionRecord| RevisionView {
            revision: r.revision,
            image: r.image.clone(),
            container_id: r.container_id.clone(),
            services: r
                .services
                .iter()
                .map(|s| RevisionServiceView {
                    name: s.name.clone(),
                    image: s.image.clone(),
                    container_id: s.container_id.clone(),
                })
                .collect(),
            job_id: r.job_id.to_string(),
            created_at: rfc3339(r.created_at),
        };
        // A stack's revision has neither: its services do.
        let single = t.current.as_ref().filter(|r| !r.is_stack());
        let services = t
            .current
            .iter()
            .flat_map(|r| &r.services)
            .map(|s| ServiceView {
                name: s.name.clone(),
                image: s.image.clone(),
                container_id: s.container_id.clone(),
                status: "unknown".into(),
                ports: serde_json::from_value::<deckhand_params::Spec>(s.spec.clone())
                    .ok()
                    .and_then(|spec| spec.ports)
                    .unwrap_or_default(),
            })
            .collect();
        TargetView {
            name: t.name,
            revision: t.current.as_ref().map(|r| r.revision),
            image: single.map(|r| r.image.clone()),
            container_id: single.map(|r| r.container_id.clone()),
            status: if t.current.is_some() {
                "installed"
            } else {
                "torn_down"
            },
            history: t.history.iter().map(rev).collect(),
            ports: Vec::new(),
            volumes: Vec::new(),
            networks: Vec::new(),
            restart: None,
            memory: None,
            cpus: None,
            health: None,
            services,
        }
    }
}
