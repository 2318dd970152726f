//! `GET /v1/jobs/{id}/events`: a job's journal as Server-Sent Events.
//!
//! `id:` is the journal sequence number, `event:` the kind (`snapshot`,
//! `state`, `step`, `progress`, `log`, `end`), `data:` JSON. A new
//! subscriber gets a `snapshot` (the job now), then every event of the job
//! in order, then live ones; with `Last-Event-ID` it resumes after that id,
//! nothing lost or repeated. After the job's terminal state comes `end`, and
//! the stream closes. The journal is the source: a watch on the job only
//! wakes the stream up (other jobs' events never do), so a slow client never
//! loses events, and a client that goes away only ends its own task.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::error::{ApiError, Problem};
use super::jobs::parse_id;
use super::views::{JobView, rfc3339};
use super::{AppState, ValidPath};
use crate::journal::{Event, EventRecord, JobId, Seq};
use crate::redact::Redaction;

/// The SSE kind of a journal event.
pub fn kind_of(e: &Event) -> &'static str {
    match e {
        Event::Progress(_) => "progress",
        Event::Log { .. } => "log",
        Event::Intent { .. }
        | Event::Result { .. }
        | Event::Deferred { .. }
        | Event::UndoIntent { .. }
        | Event::UndoResult { .. }
        | Event::CommitIntent { .. }
        | Event::CommitResult { .. }
        | Event::Acquired { .. }
        | Event::Released { .. } => "step",
        Event::Created { .. }
        | Event::State { .. }
        | Event::Phase { .. }
        | Event::CancelRequested { .. }
        | Event::Finished { .. } => "state",
    }
}

/// The SSE frame of an event, its secrets masked (learnt first: a job's
/// first event carries its params).
fn frame(rec: &EventRecord, redaction: &mut Redaction) -> SseEvent {
    let mut data = serde_json::to_value(&rec.event).unwrap_or_default();
    redaction.learn(&data);
    redaction.value(&mut data);
    if let Some(obj) = data.as_object_mut() {
        obj.insert("seq".into(), rec.seq.into());
        obj.insert("at".into(), rfc3339(rec.at).into());
    }
    SseEvent::default()
        .id(rec.seq.to_string())
        .event(kind_of(&rec.event))
        .data(data.to_string())
}

/// Counts open streams for `/metrics`; decrements when the stream's task ends.
struct StreamGuard(AppState);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.metrics.sse_streams.dec();
    }
}

/// Stream a job's events.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs",
    params(
        ("id" = String, Path, format = "uuid", description = "Job id"),
        ("Last-Event-ID" = Option<i64>, Header, nullable = false, description = "Resume after the event with this id (a journal sequence number)"),
    ),
    responses(
        (status = 200, description = "The job's events as Server-Sent Events: `snapshot` (unless resuming), \
            `state`, `step`, `progress`, `log` (`id:` = journal sequence number, `data:` = JSON), \
            keep-alive comments, and `end` after the job's terminal state; then the stream closes",
            content_type = "text/event-stream"),
        (status = 400, description = "`Last-Event-ID` is not a sequence number (`invalid-header`)", body = Problem),
        (status = 404, description = "No such job", body = Problem),
    ))]
pub async fn job_events(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id)?;
    let journal = state.executor.journal().clone();
    let job = journal
        .job(&id)?
        .ok_or_else(|| ApiError::not_found(format!("no job with id {id}")))?;
    let resume: Option<Seq> = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid-header",
                        "Last-Event-ID must be a sequence number",
                    )
                })?,
        ),
        None => None,
    };
    // Watch before reading, so nothing falls between the read and the wake-ups.
    let live = journal.watch_job(&id);
    let (tx, rx) = mpsc::channel(64);
    state.metrics.sse_streams.inc();
    let guard = StreamGuard(state.clone());
    tokio::spawn(async move {
        let _guard = guard;
        let redaction = Redaction::for_job(&job);
        if resume.is_none() {
            let snapshot = serde_json::to_string(&JobView::summary(job)).unwrap_or_default();
            if tx
                .send(Ok(SseEvent::default().event("snapshot").data(snapshot)))
                .await
                .is_err()
            {
                return;
            }
        }
        stream_job(&journal, &id, resume.unwrap_or(0), live, redaction, &tx).await;
    });
    Ok(Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(state.config.keep_alive)))
}

async fn stream_job(
    journal: &crate::journal::Journal,
    id: &JobId,
    mut last: Seq,
    mut live: watch::Receiver<Seq>,
    mut redaction: Redaction,
    tx: &mpsc::Sender<Result<SseEvent, Infallible>>,
) {
    loop {
        let Ok(batch) = journal.events(id, last) else {
            return;
        };
        for rec in &batch {
            if tx.send(Ok(frame(rec, &mut redaction))).await.is_err() {
                return;
            }
            last = rec.seq;
        }
        let done = match journal.job(id) {
            Ok(Some(j)) => {
                j.state.is_terminal()
                    && journal
                        .events(id, last)
                        .map(|e| e.is_empty())
                        .unwrap_or(true)
            }
            _ => true,
        };
        if done {
            let end = journal
                .job(id)
                .ok()
                .flatten()
                .map(|j| serde_json::to_string(&JobView::summary(j)).unwrap_or_default());
            let _ = tx
                .send(Ok(SseEvent::default()
                    .event("end")
                    .data(end.unwrap_or_default())))
                .await;
            return;
        }
        // Sleep until the journal has something new for this job, or the client leaves.
        tokio::select! {
            _ = tx.closed() => return,
            r = live.changed() => if r.is_err() { return },
        }
    }
}
