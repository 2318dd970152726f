//! The HTTP job API (SPEC "HTTP API"): JSON over axum, errors as problem
//! documents, job events as Server-Sent Events, an OpenAPI 3.1 document
//! generated from the handlers, bearer-token auth, Prometheus metrics.
//!
//! [`app`] builds the router for a running [`Executor`]; [`serve`] serves
//! it over TCP at a bounded cost per connection (`deckhand serve`). Handlers
//! only translate HTTP to executor and journal calls.

mod body;
mod error;
mod events;
mod jobs;
mod metrics;
mod openapi;
mod server;
mod system;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, Problem};
pub use metrics::Metrics;
pub use server::{MAX_HEAD_BYTES, serve};
pub use views::{JobView, TargetView};

use crate::executor::Executor;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Bearer token every endpoint but `/healthz` and `/readyz` requires, if set.
    pub token: Option<String>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Largest plugin component accepted by `POST /v1/plugins`.
    pub max_plugin_bytes: usize,
    /// Interval of keep-alive comments on event streams.
    pub keep_alive: Duration,
    /// How long a request's head may take to arrive in full, from its first
    /// byte (or from the end of the previous answer on the connection).
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive in full.
    pub body_timeout: Duration,
    /// A connection that sends and receives nothing for this long is closed
    /// (an answer in progress, such as an event stream, is finished first).
    pub idle_timeout: Duration,
    /// The most connections served at once; more wait until one closes.
    pub max_connections: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            token: None,
            max_body_bytes: 64 << 10,
            max_plugin_bytes: 16 << 20,
            keep_alive: Duration::from_secs(15),
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(15),
            max_connections: 1024,
        }
    }
}

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub executor: Executor,
    /// Settings.
    pub config: Arc<ApiConfig>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Deckhand job API",
        description = "Atomic install, upgrade and teardown of containerized apps. Every \
            operation but `/healthz` and `/readyz` needs `Authorization: Bearer <token>` \
            (this document too). Errors are RFC 9457 problem documents \
            (`application/problem+json`): `type` names the kind of problem \
            (`https://deckhand.dev/problems/<kind>`), `detail` what went wrong. Any request \
            may also be answered `405` (a method the path does not have, with `Allow`) or \
            `404` (no such path)."
    ),
    tags(
        (name = "jobs", description = "Submit, watch, cancel and retry jobs"),
        (name = "targets", description = "What is installed"),
        (name = "plugins", description = "Workflows"),
        (name = "system", description = "Liveness, readiness and metrics"),
    )
)]
struct ApiDoc;

/// A JSON body whose rejections become problem documents (through
/// `From<JsonRejection> for ApiError`).
#[derive(FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
pub struct ValidJson<T>(pub T);

/// A path parameter whose rejections (`%ff`, which is not UTF-8) become
/// problem documents (through `From<PathRejection> for ApiError`).
#[derive(FromRequestParts)]
#[from_request(via(Path), rejection(ApiError))]
pub struct ValidPath<T>(pub T);

/// The handlers' routes, with their part of the OpenAPI document.
fn routes(config: &ApiConfig) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        // Components are larger than any JSON body; this route's limit wins.
        .routes(routes!(system::upload_plugin))
        .layer(DefaultBodyLimit::max(config.max_plugin_bytes))
        .routes(routes!(jobs::create_job, jobs::list_jobs))
        .routes(routes!(jobs::get_job, jobs::dismiss_job))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(jobs::retry_job))
        .routes(routes!(events::job_events))
        .routes(routes!(system::list_targets))
        .routes(routes!(system::get_target))
        .routes(routes!(system::list_plugins))
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
        .routes(routes!(system::metrics))
}

/// The OpenAPI document of a server with `config`.
pub fn openapi(config: &ApiConfig) -> utoipa::openapi::OpenApi {
    let (_, mut api) = routes(config).split_for_parts();
    openapi::Conventions { config }.modify(&mut api);
    api
}

/// The router and its OpenAPI document.
pub fn app_and_openapi(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (router, mut api) = routes(&state.config).split_for_parts();
    openapi::Conventions {
        config: &state.config,
    }
    .modify(&mut api);
    // Serialized once: a handler is cloned for each request.
    let doc = axum::body::Bytes::from(serde_json::to_vec(&api).expect("the document serializes"));
    let router = router
        .route(
            "/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], doc) }
            }),
        )
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this method is not allowed on this path",
            )
        })
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        // Inside the token check: no stranger makes the server read a body.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            body::read_body,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        // Whatever answers an error (an extractor, a layer) answers a problem.
        .layer(middleware::map_response(error::problem_documents))
        .with_state(state);
    (router, api)
}

/// The router.
pub fn app(state: AppState) -> Router {
    app_and_openapi(state).0
}

/// Serve the API of `executor` on a free loopback port, in the background
/// for as long as the Tokio runtime runs (an engine embedded in another
/// program, a test, a benchmark). Returns its base URL.
pub async fn serve_on_loopback(executor: Executor, config: ApiConfig) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = app(state(executor, config.clone()));
    tokio::spawn(async move { serve(listener, app, &config, std::future::pending()).await });
    Ok(base)
}

/// Build the state for `executor` with `config`.
pub fn state(executor: Executor, config: ApiConfig) -> AppState {
    let metrics = Metrics::new(executor.journal());
    AppState {
        executor,
        config: Arc::new(config),
        metrics,
    }
}

fn digest(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

/// Every endpoint but `/healthz` and `/readyz` needs `Authorization: Bearer <token>` when
/// a token is configured (compared in constant time).
async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = &state.config.token else {
        return next.run(req).await;
    };
    if openapi::OPEN_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::as_bytes);
    let ok = given.is_some_and(|g| bool::from(digest(g).ct_eq(&digest(token.as_bytes()))));
    if ok {
        next.run(req).await
    } else {
        let mut resp = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid `Authorization: Bearer <token>` header is required",
        )
        .into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Bearer".parse().expect("valid header"),
        );
        resp
    }
}
