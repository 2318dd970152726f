//! Targets, plugins, liveness and metrics.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, Problem};
use super::views::TargetView;

/// Every target with its current revision and history.
#[utoipa::path(get, path = "/v1/targets", tag = "targets", responses((status = 200, body = Vec<TargetView>)))]
pub async fn list_targets(State(state): State<AppState>) -> Result<Json<Vec<TargetView>>, ApiError> {
    Ok(Json(state.executor.journal().targets()?.into_iter().map(TargetView::from).collect()))
}

/// One target.
#[utoipa::path(get, path = "/v1/targets/{name}", tag = "targets", params(("name" = String, Path, description = "Target name")),
    responses((status = 200, body = TargetView), (status = 404, body = Problem)))]
pub async fn get_target(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<TargetView>, ApiError> {
    let t = state.executor.journal().target(&name)?.ok_or_else(|| ApiError::not_found(format!("no target named `{name}`")))?;
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
            .map(|p| PluginView { name: p.name.clone(), digest: p.digest.clone(), builtin: p.builtin })
            .collect(),
    )
}

/// Liveness (no token needed).
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, description = "`ok`")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Prometheus text metrics.
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let text = state.metrics.render(state.executor.journal())?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text))
}
