//! Request bodies: one announced (`Content-Length`) larger than the limit is
//! refused before a byte of it is read (`413 body-too-large`); the others
//! must arrive in full within the body timeout (`408 body-timeout`) and are
//! handed on buffered, so no handler waits on a slow client.

use axum::body::{Body, HttpBody as _};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::{ApiError, AppState};

/// The largest body `req` may have: a plugin component's, or a JSON document's.
fn limit_for(req: &Request, state: &AppState) -> usize {
    if req.method() == Method::POST && req.uri().path() == "/v1/plugins" {
        state.config.max_plugin_bytes
    } else {
        state.config.max_body_bytes
    }
}

fn too_large(limit: usize, size: Option<u64>) -> Response {
    let size = size.map_or_else(|| "larger".to_owned(), |n| format!("{n} bytes"));
    closing(ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        format!("the body is {size}; at most {limit} bytes are accepted here"),
    ))
}

/// An error answer after which the connection closes (its body was not
/// read to the end).
fn closing(e: ApiError) -> Response {
    let mut resp = e.into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Check the announced size, then read the body within the timeout.
pub(super) async fn read_body(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = limit_for(&req, &state);
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = announced
        && n > limit as u64
    {
        return too_large(limit, Some(n));
    }
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let timeout = state.config.body_timeout;
    let bytes = match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => return too_large(limit, None),
        Ok(Err(e)) => {
            return closing(ApiError::bad_request(
                "invalid-body",
                format!("the body could not be read: {e}"),
            ));
        }
        Err(_) => {
            return closing(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                format!(
                    "the body did not arrive in full within {} s",
                    timeout.as_secs_f64()
                ),
            ));
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
