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
#[utoipa::path(get, path = "/v1/targets", tag = "targets",
    responses((status = 200, description = "Every target", body = Vec<TargetView>)))]
pub async fn list_targets(
    State(state): State<AppState>,
) -> Result<Json<Vec<TargetView>>, ApiError> {
    let journal = state.executor.journal();
    let targets = journal
        .targets()?
        .into_iter()
        .map(|t| TargetView::of(t, journal))
        .collect::<Result<Vec<_>, _>>()?;
    let targets = futures_util::future::join_all(
        targets
            .into_iter()
            .map(|t| t.with_live_status(&state.executor)),
    )
    .await;
    Ok(Json(targets))
}

/// One target.
#[utoipa::path(get, path = "/v1/targets/{name}", tag = "targets",
    params(("name" = String, Path, pattern = "^[a-z0-9][a-z0-9_.-]{0,62}$", description = "Target name")),
    responses(
        (status = 200, description = "The target", body = TargetView),
        (status = 404, description = "No such target", body = Problem),
    ))]
pub async fn get_target(
    State(state): State<AppState>,
    ValidPath(name): ValidPath<String>,
) -> Result<Json<TargetView>, ApiError> {
    let t = state
        .executor
        .journal()
        .target(&name)?
        .ok_or_else(|| ApiError::not_found(format!("no target named `{name}`")))?;
    let view = TargetView::of(t, state.executor.journal())?;
    Ok(Json(view.with_live_status(&state.executor).await))
}

/// A registered workflow.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginView {
    /// Workflow name.
    #[schema(pattern = "^[a-z][a-z0-9-]{0,62}$")]
    pub name: String,
    /// `sha256:<hex>` of the component.
    #[schema(pattern = "^sha256:[0-9a-f]{64}$")]
    pub digest: String,
    /// Whether it ships with the engine.
    pub builtin: bool,
}

/// Registered workflows.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    responses((status = 200, description = "Every registered workflow", body = Vec<PluginView>)))]
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
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// Workflow name to register the component under; another is `400 invalid-name`.
    #[param(pattern = "^[a-z][a-z0-9-]{0,62}$")]
    pub name: String,
}

/// A WebAssembly component, the body of `POST /v1/plugins` (schema only).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary, content_media_type = "application/wasm")]
#[allow(dead_code)]
pub struct WasmComponent(Vec<u8>);

/// The media type of an uploaded component.
const WASM: &str = "application/wasm";

/// Register a workflow component (the body, `application/wasm`): validated
/// against the WIT world, stored by digest. Built-in names are refused.
#[utoipa::path(post, path = "/v1/plugins", tag = "plugins", params(UploadQuery),
    request_body(content = WasmComponent, content_type = "application/wasm", description = "The component's bytes"),
    responses(
        (status = 201, description = "Registered", body = PluginView),
        (status = 400, description = "`name` is missing or not a workflow name (`invalid-query`, `invalid-name`)", body = Problem),
        (status = 409, description = "A built-in workflow's name (`builtin-workflow`)", body = Problem),
        (status = 415, description = "The body is not `application/wasm`", body = Problem),
        (status = 422, description = "Not a valid workflow component (`invalid-component`)", body = Problem),
        (status = 503, description = "The journal cannot be written (`journal-unwritable`); nothing was registered", body = Problem),
        (status = 507, description = "The journal's disk is full (`journal-unwritable`); nothing was registered", body = Problem),
    ))]
pub async fn upload_plugin(
    State(state): State<AppState>,
    query: Result<axum::extract::Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    headers: axum::http::HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(axum::http::StatusCode, Json<PluginView>), ApiError> {
    use crate::executor::PluginStoreError;
    use crate::plugin::PluginError;
    use axum::http::StatusCode;
    let axum::extract::Query(q) = query?;
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !media_type.is_some_and(|m| m.eq_ignore_ascii_case(WASM)) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("the body must be a component, `Content-Type: {WASM}`"),
        ));
    }
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
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// What `/readyz` says about each resource the engine needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// Whether new jobs can be accepted now.
    pub ready: bool,
    /// `writable`, or `unwritable` (then `disk_full` says why).
    #[schema(pattern = "^(writable|unwritable)$")]
    pub journal: String,
    /// Whether the journal's disk is full.
    pub disk_full: bool,
    /// `reachable` or `unreachable`.
    #[schema(pattern = "^(reachable|unreachable)$")]
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
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "The journal cannot be written or Docker is away", body = Readiness,
        headers(("Retry-After" = u64, description = "Seconds to wait before asking again"))),
))]
pub async fn readyz(State(state): State<AppState>) -> axum::response::Response {
    let r = readiness(&state).await;
    if r.ready {
        Json(r).into_response()
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Json(r),
        )
            .into_response()
    }
}

/// Prometheus text metrics.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain")))]
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
