//! Serving the API over TCP: HTTP/1.1 at a bounded cost per connection.
//!
//! - At most [`ApiConfig::max_connections`] connections are served at once;
//!   more wait in the listen backlog until one closes.
//! - Until its first byte a connection is only its socket and a small task.
//!   One that sends and receives nothing for the idle timeout is closed; an
//!   answer in progress (an event stream) is finished first.
//! - A request's head must be complete within the header timeout (counted
//!   from its first byte, or from the end of the previous answer on the same
//!   connection) and within [`MAX_HEAD_BYTES`].
//! - hyper answers a request it cannot parse by itself, with an empty body;
//!   that answer is replaced by a problem document.
//! - Closing reads what the client still sends for a moment, so that it
//!   gets the answer rather than a reset.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};

use super::error::PROBLEM_JSON;
use super::{ApiConfig, ApiError};

/// The largest request head (request line and headers) accepted; a larger
/// one is answered `431 headers-too-large`.
pub const MAX_HEAD_BYTES: usize = 16 << 10;
/// The most request header fields accepted.
const MAX_HEADERS: usize = 100;
/// hyper's buffer per connection, at most (it grows only while reading).
const MAX_BUF_BYTES: usize = 64 << 10;
/// How long closing a connection reads what the client still sends.
const LINGER: Duration = Duration::from_secs(1);
/// The most bytes closing a connection reads.
const LINGER_BYTES: usize = 256 << 10;
/// How long a shutdown waits for the answers in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The timeouts of one connection.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header: Duration,
    idle: Duration,
}

/// Serve `app` on `listener` until `shutdown` completes; then stop
/// accepting and give the answers in progress a few seconds to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &ApiConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let max = config.max_connections.clamp(1, u32::MAX as usize);
    let permits = Arc::new(Semaphore::new(max));
    let timeouts = Timeouts {
        header: config.header_timeout,
        idle: config.idle_timeout,
    };
    let (closing_tx, closing) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            app.clone(),
            timeouts,
            closing.clone(),
            permit,
        ));
    }
    drop(listener);
    let _ = closing_tx.send(true);
    // Every permit back: every connection closed.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, permits.acquire_many(max as u32)).await;
    Ok(())
}

/// A failed accept: a connection that went away meanwhile is nothing; out
/// of file descriptors (or the like), pause a moment rather than spin.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    ) {
        return;
    }
    tracing::warn!("cannot accept a connection: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn connection(
    stream: TcpStream,
    app: Router,
    timeouts: Timeouts,
    mut closing: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    // Until its first byte, a connection costs its socket and this task.
    tokio::select! {
        r = tokio::time::timeout(timeouts.idle, stream.readable()) => {
            if !matches!(r, Ok(Ok(()))) {
                return;
            }
        }
        _ = closing.wait_for(|c| *c) => return,
    }
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(ConnIo::new(stream, activity.clone()));
    let mut conn = Box::pin(
        http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(timeouts.header)
            .max_header_size(MAX_HEAD_BYTES)
            .max_headers(MAX_HEADERS)
            .max_buf_size(MAX_BUF_BYTES)
            .serve_connection(io, TowerToHyperService::new(app)),
    );
    let mut shutting_down = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = tokio::time::sleep_until(activity.last() + timeouts.idle), if !shutting_down => {
                if activity.last().elapsed() >= timeouts.idle {
                    // Closes an idle connection now, a busy one after its answer.
                    conn.as_mut().graceful_shutdown();
                    shutting_down = true;
                }
            }
            _ = closing.wait_for(|c| *c), if !shutting_down => {
                conn.as_mut().graceful_shutdown();
                shutting_down = true;
            }
        }
    }
}

/// When a connection last read or wrote a byte.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A connection's socket as hyper sees it: it records activity, replaces
/// hyper's own error answers with problem documents, and lingers on close.
struct ConnIo {
    stream: TcpStream,
    activity: Arc<Activity>,
    /// A problem document being written in place of hyper's answer, and how
    /// much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
    /// While closing: until when it reads what the client still sends.
    linger: Option<Pin<Box<Sleep>>>,
    lingered: usize,
}

impl ConnIo {
    fn new(stream: TcpStream, activity: Arc<Activity>) -> Self {
        ConnIo {
            stream,
            activity,
            replacement: None,
            linger: None,
            lingered: 0,
        }
    }

    /// Write the replacement of hyper's answer `len` bytes long; done when
    /// all of it is written.
    fn poll_replacement(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<usize>> {
        let Some((bytes, written)) = &mut self.replacement else {
            return Poll::Ready(Ok(len));
        };
        while *written < bytes.len() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
            self.activity.touch();
        }
        self.replacement = None;
        Poll::Ready(Ok(len))
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = ready!(Pin::new(&mut this.stream).poll_read(cx, buf));
        if buf.filled().len() > before {
            this.activity.touch();
        }
        Poll::Ready(r)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacement.is_none() {
            match problem_for_hyper_answer(buf) {
                Some(doc) => this.replacement = Some((doc, 0)),
                None => {
                    let n = ready!(Pin::new(&mut this.stream).poll_write(cx, buf))?;
                    this.activity.touch();
                    return Poll::Ready(Ok(n));
                }
            }
        }
        this.poll_replacement(cx, buf.len())
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len = bufs.iter().map(|b| b.len()).sum();
        if this.replacement.is_none() {
            let first = bufs.iter().find(|b| !b.is_empty());
            match first.and_then(|b| problem_for_hyper_answer(b)) {
                Some(doc) => this.replacement = Some((doc, 0)),
                None => {
                    let n = ready!(Pin::new(&mut this.stream).poll_write_vectored(cx, bufs))?;
                    this.activity.touch();
                    return Poll::Ready(Ok(n));
                }
            }
        }
        this.poll_replacement(cx, len)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    /// Send FIN, then read (and drop) what the client still sends until it
    /// closes too, for [`LINGER`] at most: closing a socket with unread
    /// bytes resets the connection, and the client may lose the answer.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.linger.is_none() {
            ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
            this.linger = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        let mut scratch = [0u8; 2048];
        loop {
            let done = this
                .linger
                .as_mut()
                .is_some_and(|l| l.as_mut().poll(cx).is_ready());
            if done || this.lingered >= LINGER_BYTES {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut this.stream).poll_read(cx, &mut buf)) {
                Ok(()) if !buf.filled().is_empty() => this.lingered += buf.filled().len(),
                _ => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// The problem document (a whole HTTP answer) in place of `head` when
/// `head` is hyper's own answer to a request it could not parse: `400`,
/// `414` or `431` with an empty body and `connection: close`. The API's
/// own error answers always have a body, so they never match.
fn problem_for_hyper_answer(head: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(head).ok()?;
    let status_code = head.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    if !head.ends_with("\r\n\r\n")
        || !head.contains("\r\ncontent-length: 0\r\n")
        || !head.contains("\r\nconnection: close\r\n")
        || head.contains("\r\ncontent-type:")
    {
        return None;
    }
    let error = match status_code {
        "400" => ApiError::bad_request(
            "malformed-request",
            "the request could not be parsed: its request line or a header is malformed",
        ),
        "414" => ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri-too-long",
            "the request's URI is too long",
        ),
        "431" => ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            format!(
                "the request's head is larger than {MAX_HEAD_BYTES} bytes or has more than {MAX_HEADERS} header fields"
            ),
        ),
        _ => return None,
    };
    let body = serde_json::to_string(&error.problem()).expect("problems serialize");
    let status = error.status();
    let date = head
        .split("\r\n")
        .find(|l| l.starts_with("date: "))
        .map(|l| format!("{l}\r\n"))
        .unwrap_or_default();
    Some(
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {PROBLEM_JSON}\r\ncontent-length: {}\r\nconnection: close\r\n{date}\r\n{body}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error"),
            body.len(),
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_error_answers_become_problem_documents_and_nothing_else_does() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 04:16:51 GMT\r\n\r\n";
        let doc = String::from_utf8(problem_for_hyper_answer(hyper).unwrap()).unwrap();
        assert!(doc.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(doc.contains("\r\ncontent-type: application/problem+json\r\n"));
        assert!(doc.contains("\r\ndate: Wed, 02 Dec 2026 04:16:51 GMT\r\n"));
        let (head, body) = doc.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let p: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(p["status"], 431);
        assert_eq!(p["type"], "https://deckhand.dev/problems/headers-too-large");

        let bad = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert!(problem_for_hyper_answer(bad).is_some());
        // The API's own answers: with a body, or another status.
        for own in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 90\r\ndate: x\r\n\r\n"[..],
            b"HTTP/1.1 204 No Content\r\ndate: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            b"data: {}\n\n",
        ] {
            assert!(problem_for_hyper_answer(own).is_none());
        }
    }
}
