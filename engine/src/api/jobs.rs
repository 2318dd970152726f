//! `/v1/jobs`: submit, list, show, cancel, dismiss.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, Problem};
use super::views::{JobIdSchema, JobStateSchema, JobView};
use super::{AppState, ValidJson, ValidPath};
use crate::executor::JobRequest;
use crate::journal::{JobFilter, JobId, JobState};

/// Body of `POST /v1/jobs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"workflow": "install", "target": "web", "params": {"image": "registry.example/app:1"}}))]
pub struct CreateJob {
    /// Workflow name: `install`, `upgrade`, `teardown`, `rollback` or a
    /// registered plugin (`GET /v1/plugins`); another is `422 unknown-workflow`.
    #[schema(pattern = "^[a-z][a-z0-9-]{0,62}$")]
    pub workflow: String,
    /// Target name; another is `422 invalid-target`.
    #[schema(pattern = "^[a-z0-9][a-z0-9_.-]{0,62}$")]
    pub target: String,
    /// The workflow's params (a JSON object); `{}` when omitted. `install`:
    /// `{image, env?: {K: V}, cmd?: [..], network?, health?: {timeout_s}}`;
    /// `upgrade` the same with every field optional; `teardown` `{}`;
    /// `rollback` `{revision}`. Params the workflow refuses (a missing
    /// `image`, a string that is not an image reference, a line break or NUL
    /// in a string) are `422 invalid-params`, naming the field.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub params: Value,
    /// Go ahead although a `failed` job on the target did not finish its
    /// rollback (answered `409 target-needs-attention` otherwise); the
    /// decision is journaled on that job, which is dismissed.
    #[serde(default)]
    pub force: bool,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

pub(super) fn parse_id(id: &str) -> Result<JobId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("no job with id {id}")))
}

/// Submit a job. Answers at once; the job runs in the background.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = CreateJob,
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$",
        description = "Repeat a request safely: the same key and request, concurrent or not, get the same job; \
                       the key with another request is `422 idempotency-key-reused`")),
    responses(
        (status = 202, description = "Accepted; `Location` names the job", body = JobView,
            headers(("Location" = String, description = "`/v1/jobs/{id}` of the job"))),
        (status = 400, description = "The body is not JSON (`malformed-json`), or `Idempotency-Key` is not 1–255 visible ASCII characters (`invalid-header`)", body = Problem),
        (status = 404, description = "The workflow needs an installed target and there is none", body = Problem),
        (status = 409, description = "The target is busy (`target-busy`, `active_job` names the job holding it), or needs attention (`target-needs-attention`, `failed_job` names a failed job whose rollback did not finish), or an `install` finds it installed (`target-installed`; use `upgrade`), or a container name the job needs is another target's (`name-taken`: a target named like a stack's service container, `deckhand-<stack>-<service>`, or the reverse)", body = Problem),
        (status = 415, description = "The body is not `application/json`", body = Problem),
        (status = 422, description = "The body does not have this shape (`invalid-body`); an invalid target, workflow or params (`invalid-target`, `unknown-workflow`, `invalid-params`); a `rollback` to a revision the target never had (`unknown-revision`); an image neither on the machine nor in its registry (`image-unavailable`, with the registry's reason); the `Idempotency-Key` was used for another request (`idempotency-key-reused`, `existing_job` names its job)", body = Problem),
        (status = 503, description = "The Docker daemon is away (`docker-unavailable`), or the journal cannot be written (`journal-unwritable`); nothing was created", body = Problem),
        (status = 507, description = "The journal's disk is full (`journal-unwritable`); nothing was created", body = Problem),
    ))]
pub async fn create_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    ValidJson(body): ValidJson<CreateJob>,
) -> Result<impl IntoResponse, ApiError> {
    let key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid-header",
                        "Idempotency-Key must be 1–255 visible ASCII characters",
                    )
                })?
                .to_owned(),
        ),
        None => None,
    };
    let mut req = JobRequest::new(body.workflow, body.target, body.params);
    req.idempotency_key = key;
    req.force = body.force;
    let job = state.executor.submit(req).await?;
    let location = format!("/v1/jobs/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(JobView::summary(job)),
    ))
}

/// Query of `GET /v1/jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only jobs in this state.
    #[param(value_type = Option<JobStateSchema>, inline)]
    pub state: Option<String>,
    /// Only this target's jobs.
    pub target: Option<String>,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<JobIdSchema>, inline)]
    pub cursor: Option<String>,
    /// `true`: only jobs needing work or attention (unfinished or failed).
    pub active: Option<bool>,
    /// `true`: include dismissed jobs.
    pub all: Option<bool>,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    /// The jobs.
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// List jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListQuery),
    responses(
        (status = 200, description = "A page of jobs", body = JobPage),
        (status = 400, description = "A query parameter is invalid or unknown (`invalid-query`)", body = Problem),
    ))]
pub async fn list_jobs(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobPage>, ApiError> {
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid-query",
            "limit must be between 1 and 500",
        ));
    }
    let job_state = q
        .state
        .as_deref()
        .map(str::parse::<JobState>)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid-query", e))?;
    let before = q
        .cursor
        .as_deref()
        .map(str::parse::<JobId>)
        .transpose()
        .map_err(|_| ApiError::bad_request("invalid-query", "cursor is not a job id"))?;
    let filter = JobFilter {
        target: q.target,
        state: job_state,
        include_dismissed: q.all.unwrap_or(false),
        active: q.active.unwrap_or(false),
        before,
        limit: Some(limit + 1),
    };
    let mut jobs = state.executor.journal().list_jobs(&filter)?;
    let next_cursor = if jobs.len() > limit {
        jobs.truncate(limit);
        jobs.last().map(|j| j.id.to_string())
    } else {
        None
    };
    Ok(Json(JobPage {
        jobs: jobs.into_iter().map(JobView::summary).collect(),
        next_cursor,
    }))
}

/// One job with its steps.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, format = "uuid", description = "Job id")),
    responses(
        (status = 200, description = "The job with its steps", body = JobView),
        (status = 404, description = "No such job", body = Problem),
    ))]
pub async fn get_job(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = parse_id(&id)?;
    let journal = state.executor.journal();
    let job = journal
        .job(&id)?
        .ok_or_else(|| ApiError::not_found(format!("no job with id {id}")))?;
    let events = journal.events(&id, 0)?;
    // A background retry is shown while the job is failed: the retry's own
    // record is dropped a moment after the job it finished has ended.
    let failed = job.state == crate::journal::JobState::Failed;
    let mut view = JobView::full(job, &events);
    view.auto_retry = failed
        .then(|| state.executor.auto_retry(&id).map(Into::into))
        .flatten();
    Ok(Json(view))
}

/// Answer to a cancel.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelView {
    /// Whether the job will be (or was) cancelled by this request.
    pub cancelled: bool,
    /// Its state when the request was handled.
    #[schema(value_type = JobStateSchema)]
    pub state: String,
    /// Why not, when `cancelled` is false.
    pub reason: Option<String>,
}

/// Cancel a job. Journaled before the answer; idempotent. A committing or
/// finished job answers `cancelled: false` with its state.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path, format = "uuid", description = "Job id")),
    responses(
        (status = 200, description = "Whether the job is cancelled", body = CancelView),
        (status = 404, description = "No such job", body = Problem),
        (status = 503, description = "The journal cannot be written (`journal-unwritable`); nothing was changed", body = Problem),
        (status = 507, description = "The journal's disk is full (`journal-unwritable`); nothing was changed", body = Problem),
    ))]
pub async fn cancel_job(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<String>,
) -> Result<Json<CancelView>, ApiError> {
    let id = parse_id(&id)?;
    let o = state
        .executor
        .cancel(&id, Some("POST /v1/jobs/{id}/cancel".into()))
        .await?;
    Ok(Json(CancelView {
        cancelled: o.cancelled,
        state: o.state.to_string(),
        reason: o.reason,
    }))
}

/// Dismiss a terminal job from default listings (it stays in the journal).
#[utoipa::path(delete, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, format = "uuid", description = "Job id")),
    responses(
        (status = 204, description = "Dismissed"),
        (status = 404, description = "No such job", body = Problem),
        (status = 409, description = "The job is not finished (`not-finished`)", body = Problem),
        (status = 503, description = "The journal cannot be written (`journal-unwritable`); nothing was changed", body = Problem),
        (status = 507, description = "The journal's disk is full (`journal-unwritable`); nothing was changed", body = Problem),
    ))]
pub async fn dismiss_job(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let job_state = state.executor.journal().dismiss(&id).await?;
    if !job_state.is_terminal() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not-finished",
            format!("job {id} is {job_state}; only finished jobs can be dismissed"),
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Retry a `failed` job's rollback (or commit).
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs", params(("id" = String, Path, format = "uuid", description = "Job id")),
    responses(
        (status = 200, description = "The job, resuming", body = JobView),
        (status = 404, description = "No such job", body = Problem),
        (status = 409, description = "The job is not `failed`, is being retried, or was dismissed (`not-retryable`)", body = Problem),
        (status = 503, description = "The journal cannot be written (`journal-unwritable`); nothing was changed", body = Problem),
        (status = 507, description = "The journal's disk is full (`journal-unwritable`); nothing was changed", body = Problem),
    ))]
pub async fn retry_job(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = parse_id(&id)?;
    if state.executor.journal().job(&id)?.is_none() {
        return Err(ApiError::not_found(format!("no job with id {id}")));
    }
    let job = state.executor.retry(&id).await?;
    Ok(Json(JobView::summary(job)))
}
