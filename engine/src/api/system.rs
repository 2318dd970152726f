//! Targets, plugins, liveness and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, Problem};
use super::views::TargetView;
use super::{AppState, ValidPath};

/// Every target with its current revision and history.
#[utoipa::path(get, path = "/v1/targets", tag = "targets", responses((status = 200, body = Vec<TargetView>)))]
pub async fn list_targets(
    State(state): State<AppState>,
) -> Result<Json<Vec<TargetView>>, ApiError> {
    Ok(Json(
        state
            .executor
            .journal()
            .targets()?
            .into_iter()
            .map(TargetView::from)
            .collect(),
    ))
}

/// One target.
#[utoipa::path(get, path = "/v1/targets/{name}", tag = "targets", params(("name" = String, Path, description = "Target name")),
    responses((status = 200, body = TargetView), (status = 404, body = Problem)))]
pub async fn get_target(
    State(state): State<AppState>,
    ValidPath(name): ValidPath<String>,
) -> Result<Json<TargetView>, ApiError> {
    let t = state
        .executor
        .journal()
        .target(&name)?
        .ok_or_else(|| ApiError::not_found(format!("no target named `{name}`")))?;
    Ok(Json(t.into()))
}

/// A registered workflow.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginView {
    /// Workflow name.
    pub name: String,
    /// `sha256:<hex>` of the component.
    pub digest: String,
    /// Whether it ships with the engine.
    pub builtin: bool,
}

/// Registered workflows.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", responses((status = 200, body = Vec<PluginView>)))]
pub async fn list_plugins(State(state): State<AppState>) -> Json<Vec<PluginView>> {
    Json(
        state
            .executor
            .host()
            .list()
            .into_iter()
            .map(|p| PluginView {
                name: p.name.clone(),
                digest: p.digest.clone(),
                builtin: p.builtin,
            })
            .collect(),
    )
}

/// Query of `POST /v1/plugins`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// Workflow name to register the component under (`[a-z][a-z0-9-]{0,62}`).
    pub name: String,
}

/// Register a workflow component (the body, `application/wasm`): validated
/// against the WIT world, stored by digest. Built-in names are refused.
#[utoipa::path(post, path = "/v1/plugins", tag = "plugins", params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses(
        (status = 201, body = PluginView),
        (status = 400, body = Problem),
        (status = 409, description = "A built-in workflow's name", body = Problem),
        (status = 413, body = Problem),
        (status = 422, description = "Not a valid workflow component", body = Problem),
    ))]
pub async fn upload_plugin(
    State(state): State<AppState>,
    query: Result<axum::extract::Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(axum::http::StatusCode, Json<PluginView>), ApiError> {
    use crate::executor::PluginStoreError;
    use crate::plugin::PluginError;
    use axum::http::StatusCode;
    let axum::extract::Query(q) = query?;
    let bytes = body?;
    let p = state
        .executor
        .register_plugin(&q.name, &bytes)
        .await
        .map_err(|e| match e {
            PluginStoreError::Plugin(PluginError::Builtin(_)) => {
                ApiError::new(StatusCode::CONFLICT, "builtin-workflow", e.to_string())
            }
            PluginStoreError::Plugin(PluginError::InvalidName(_)) => {
                ApiError::bad_request("invalid-name", e.to_string())
            }
            PluginStoreError::Plugin(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-component",
                e.to_string(),
            ),
            PluginStoreError::Journal(j) => j.into(),
            PluginStoreError::Io(m) => {
                tracing::error!("plugin store: {m}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the plugin could not be stored; see the server log",
                )
            }
        })?;
    Ok((
        StatusCode::CREATED,
        Json(PluginView {
            name: p.name.clone(),
            digest: p.digest.clone(),
            builtin: p.builtin,
        }),
    ))
}

/// Liveness (no token needed).
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, description = "`ok`")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// What `/readyz` says about each resource the engine needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// Whether new jobs can be accepted now.
    pub ready: bool,
    /// `writable`, or `unwritable` (then `disk_full` says why).
    pub journal: String,
    /// Whether the journal's disk is full.
    pub disk_full: bool,
    /// `reachable` or `unreachable`.
    pub docker: String,
}

async fn readiness(state: &AppState) -> Readiness {
    let journal = state.executor.journal();
    // After a failure, find out whether it is over (a write nobody else makes).
    if !journal.health().is_writable() {
        let _ = journal.probe().await;
    }
    let health = journal.health();
    let docker_up = state.executor.check_runtime().await.is_ok();
    let disk_full = matches!(
        health,
        crate::journal::JournalHealth::Unwritable {
            disk_full: true,
            ..
        }
    );
    Readiness {
        ready: health.is_writable() && docker_up,
        journal: if health.is_writable() {
            "writable"
        } else {
            "unwritable"
        }
        .into(),
        disk_full,
        docker: if docker_up {
            "reachable"
        } else {
            "unreachable"
        }
        .into(),
    }
}

/// Readiness (no token needed): `200` when the journal can be written and
/// the Docker daemon answers, else `503` with `Retry-After`.
#[utoipa::path(get, path = "/readyz", tag = "system", responses(
    (status = 200, body = Readiness),
    (status = 503, description = "The journal cannot be written or Docker is away", body = Readiness),
))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let r = readiness(&state).await;
    let status = if r.ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::RETRY_AFTER, "5")], Json(r))
}

/// Prometheus text metrics.
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let r = readiness(&state).await;
    let text = state.metrics.render(
        state.executor.journal(),
        r.journal == "writable",
        r.docker == "reachable",
    )?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}
