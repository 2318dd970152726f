//! API errors as RFC 9457 problem documents (`application/problem+json`).
//! The only place that maps errors to HTTP statuses; a 5xx never shows
//! internals (they are logged instead).

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::executor::{RetryError, SubmitError};
use crate::journal::JournalError;

/// A problem document.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong, specifically.
    pub detail: String,
    /// Extra members (e.g. `active_job` for 409).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
}

/// An RFC 9457 problem document (the schema of [`Problem`], its extra members named).
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct ProblemSchema {
    /// A URI naming the kind of problem, `https://deckhand.dev/problems/<kind>`.
    #[serde(rename = "type")]
    #[schema(format = "uri")]
    kind: String,
    /// Short summary of the kind (the status's reason phrase).
    title: String,
    /// HTTP status.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// What went wrong, specifically.
    detail: String,
    /// `409 target-busy`: the job holding the target.
    #[schema(nullable = false, format = "uuid")]
    active_job: Option<String>,
    /// `409 target-needs-attention`: the failed job whose rollback did not finish.
    #[schema(nullable = false, format = "uuid")]
    failed_job: Option<String>,
    /// `422 idempotency-key-reused`: the job the key was first used for.
    #[schema(nullable = false, format = "uuid")]
    existing_job: Option<String>,
}

impl utoipa::PartialSchema for Problem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <ProblemSchema as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for Problem {
    fn name() -> std::borrow::Cow<'static, str> {
        "Problem".into()
    }
}

/// Seconds a client is asked to wait before trying again when a resource
/// the engine needs (the Docker daemon, the journal's disk) is away.
const RETRY_AFTER_S: u64 = 5;

/// An error an API handler returns.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    detail: String,
    extra: Option<Value>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, a problem kind and a detail.
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            detail: detail.into(),
            extra: None,
            retry_after: None,
        }
    }

    /// Ask the client to try again after `seconds` (`Retry-After`).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 400 with a detail.
    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, detail)
    }

    /// 404 with a detail.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// Add extra members to the document.
    pub fn with_extra(mut self, extra: Value) -> Self {
        self.extra = Some(extra);
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("https://deckhand.dev/problems/{}", self.kind),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            extra: self.extra.clone(),
        }
    }

    /// The error for a response that is not a problem document yet: its
    /// kind from the status, the text of its body as the detail (for a 5xx
    /// it is logged instead).
    pub fn from_status(status: StatusCode, text: &str) -> Self {
        let kind = match status {
            StatusCode::BAD_REQUEST => "bad-request",
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
            StatusCode::REQUEST_TIMEOUT => "request-timeout",
            StatusCode::PAYLOAD_TOO_LARGE => "body-too-large",
            StatusCode::URI_TOO_LONG => "uri-too-long",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid-body",
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers-too-large",
            s if s.is_server_error() => "internal",
            _ => "error",
        };
        let text = text.trim();
        let detail = if status.is_server_error() {
            tracing::error!("{status} from the API: {text}");
            "the server failed; see its log".to_owned()
        } else if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            text.to_owned()
        };
        ApiError::new(status, kind, detail)
    }
}

/// The problem documents' media type.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Every error response is a problem document: one that is not (a
/// rejection by an extractor or a layer, in plain text or empty) becomes
/// one, keeping its status and its text as the detail. A JSON document a
/// handler answers with on purpose (`/readyz`'s `503` report) stays.
pub async fn problem_documents(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.starts_with(PROBLEM_JSON.as_bytes()) || v.starts_with(b"application/json")
    });
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let mut new = ApiError::from_status(status, &String::from_utf8_lossy(&text)).into_response();
    // Keep what the answer said besides its body (`Allow`, `Connection`, …).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    new
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let mut resp = (self.status, Json(problem)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            PROBLEM_JSON.parse().expect("valid header"),
        );
        if let Some(seconds) = self.retry_after {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                seconds.to_string().parse().expect("digits"),
            );
        }
        resp
    }
}

impl From<JournalError> for ApiError {
    fn from(e: JournalError) -> Self {
        match e {
            JournalError::UnknownJob(id) => ApiError::not_found(format!("no job with id {id}")),
            JournalError::Unwritable { disk_full, .. } => {
                let (status, what) = if disk_full {
                    (StatusCode::INSUFFICIENT_STORAGE, "its disk is full")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "an I/O error")
                };
                ApiError::new(
                    status,
                    "journal-unwritable",
                    format!(
                        "the journal cannot be written ({what}); nothing was changed. Jobs in flight are paused and finish once it can; try again later"
                    ),
                )
                .with_retry_after(RETRY_AFTER_S)
            }
            other => {
                tracing::error!("journal error in API: {other}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the journal failed; see the server log",
                )
            }
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::InvalidTarget(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-target",
                e.to_string(),
            ),
            SubmitError::UnknownWorkflow(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-workflow",
                e.to_string(),
            ),
            SubmitError::InvalidParams(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-params",
                e.to_string(),
            ),
            SubmitError::UnknownTarget(_) => ApiError::not_found(e.to_string()),
            SubmitError::AlreadyInstalled { .. } => {
                ApiError::new(StatusCode::CONFLICT, "target-installed", e.to_string())
            }
            SubmitError::NameTaken { .. } => {
                ApiError::new(StatusCode::CONFLICT, "name-taken", e.to_string())
            }
            SubmitError::UnknownRevision { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-revision",
                e.to_string(),
            ),
            SubmitError::Busy { ref job, .. } => {
                let job = job.to_string();
                ApiError::new(StatusCode::CONFLICT, "target-busy", e.to_string())
                    .with_extra(serde_json::json!({ "active_job": job }))
            }
            SubmitError::NeedsAttention { ref job, .. } => {
                let job = job.to_string();
                ApiError::new(
                    StatusCode::CONFLICT,
                    "target-needs-attention",
                    e.to_string(),
                )
                .with_extra(serde_json::json!({ "failed_job": job }))
            }
            SubmitError::RuntimeUnavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "docker-unavailable",
                e.to_string(),
            )
            .with_retry_after(RETRY_AFTER_S),
            SubmitError::IdempotencyKeyReused { ref job, .. } => {
                let job = job.to_string();
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency-key-reused",
                    e.to_string(),
                )
                .with_extra(serde_json::json!({ "existing_job": job }))
            }
            SubmitError::ImageUnavailable { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "image-unavailable",
                e.to_string(),
            ),
            SubmitError::Journal(j) => j.into(),
        }
    }
}

impl From<RetryError> for ApiError {
    fn from(e: RetryError) -> Self {
        match e {
            RetryError::NotFailed(_) | RetryError::Busy(_) | RetryError::Dismissed(_) => {
                ApiError::new(StatusCode::CONFLICT, "not-retryable", e.to_string())
            }
            RetryError::Journal(j) => j.into(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let kind = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "body-too-large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid-body",
            _ => "malformed-json",
        };
        ApiError::new(status, kind, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request("invalid-query", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        if r.status().is_server_error() {
            return ApiError::from_status(r.status(), &r.body_text());
        }
        ApiError::bad_request("invalid-path", r.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        let kind = match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => "body-too-large",
            _ => "invalid-body",
        };
        ApiError::new(r.status(), kind, r.body_text())
    }
}
