//! A slow Docker daemon for tests: a proxy on a unix socket in front of the
//! real daemon (`DOCKER_HOST`) that holds chosen requests for a while before
//! forwarding them, so that every call lasts long enough to be interrupted —
//! by a cancel, or by killing the engine — while it is held here or while
//! the daemon works on it.
//!
//! It reads the HTTP/1.1 requests of each client connection one after
//! another (keep-alive), each head up to its blank line and its body by
//! `Content-Length` or chunked framing, and pipes each response back byte
//! for byte as it streams (pulls, `/wait`). A request it has accepted is
//! forwarded, and its response drained, even if the client goes away
//! meanwhile: that is a daemon completing a call after the engine stopped
//! waiting for it (killed, or gave up). Only streams that change nothing by
//! themselves — a pull (the daemon aborts a pull whose client went away),
//! `/wait`, `/events`, logs, stats — are closed upstream when their client
//! goes away, as the daemon would see on a direct connection.
//!
//! One upstream connection per client connection. The proxy runs on its
//! own thread and runtime, so it keeps forwarding whatever the test's
//! runtime is doing (blocked in a child process, say).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

/// Hold requests of `method` whose path matches `path` for `delay`.
///
/// `path` is matched against the request path without its query string and
/// without a `/v1.41`-style version prefix: `*` matches one or more
/// characters other than `/`, `**` any characters at all, e.g.
/// `/containers/*/stop`, `/images/**`.
#[derive(Debug, Clone, Copy)]
pub struct DelayRule {
    /// HTTP method, e.g. `POST`.
    pub method: &'static str,
    /// Path pattern.
    pub path: &'static str,
    /// How long a matching request is held before it is forwarded.
    pub delay: Duration,
}

impl DelayRule {
    /// A rule.
    pub const fn new(method: &'static str, path: &'static str, delay: Duration) -> DelayRule {
        DelayRule {
            method,
            path,
            delay,
        }
    }

    /// Whether it applies to a request.
    pub fn matches(&self, method: &str, target: &str) -> bool {
        self.method.eq_ignore_ascii_case(method) && glob(self.path, api_path(target))
    }
}

/// The container calls that change something, each held for `delay`:
/// create (`POST /containers/create`), start, stop, rename (`POST
/// /containers/*/…`) and remove (`DELETE /containers/*`).
pub fn call_delays(delay: Duration) -> Vec<DelayRule> {
    vec![
        DelayRule::new("POST", "/containers/create", delay),
        DelayRule::new("POST", "/containers/*/start", delay),
        DelayRule::new("POST", "/containers/*/stop", delay),
        DelayRule::new("POST", "/containers/*/rename", delay),
        DelayRule::new("DELETE", "/containers/*", delay),
    ]
}

/// A request's path without query and version prefix (`/v1.41/_ping` →
/// `/_ping`).
fn api_path(target: &str) -> &str {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    if let Some(rest) = path.strip_prefix("/v")
        && let Some(i) = rest.find('/')
        && !rest[..i].is_empty()
        && rest[..i].chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        return &rest[i..];
    }
    path
}

/// `*`: one or more characters other than `/`; `**`: any characters.
fn glob(pattern: &str, s: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p {
            [] => s.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| go(rest, &s[i..])),
            [b'*', rest @ ..] => (1..=s.len())
                .take_while(|&i| s[i - 1] != b'/')
                .any(|i| go(rest, &s[i..])),
            [c, rest @ ..] => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    go(pattern.as_bytes(), s.as_bytes())
}

/// Whether a request is a stream that changes nothing by itself, closed
/// upstream when its client goes away (see the module documentation).
fn ends_with_its_client(method: &str, target: &str) -> bool {
    let path = api_path(target);
    (method == "POST" && path == "/images/create")
        || path == "/events"
        || glob("/containers/*/wait", path)
        || glob("/containers/*/logs", path)
        || glob("/containers/*/stats", path)
        || glob("/containers/*/attach", path)
}

/// One request the proxy accepted, for assertions.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Request target (path and query).
    pub target: String,
    /// How long it was held (zero if no rule matched).
    pub held: Duration,
    /// When its whole request was read.
    pub accepted: Instant,
    /// When it was written upstream.
    pub forwarded: Option<Instant>,
    /// When the head of its response arrived.
    pub answered: Option<Instant>,
    /// When its response was complete.
    pub done: Option<Instant>,
    /// Response status.
    pub status: Option<u16>,
    /// Whether its client went away before the response was complete.
    pub client_gone: bool,
}

struct Shared {
    upstream: PathBuf,
    rules: Vec<DelayRule>,
    delays_on: AtomicBool,
    in_flight: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

impl Shared {
    fn update(&self, i: usize, f: impl FnOnce(&mut Seen)) {
        f(&mut self.seen.lock().unwrap()[i]);
    }
}

/// The proxy. Stops (cutting whatever is in flight) when dropped.
pub struct SlowDocker {
    dir: tempfile::TempDir,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for SlowDocker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl SlowDocker {
    /// Start one in front of the daemon `DOCKER_HOST` names (a unix socket),
    /// holding requests as `rules` say (the first matching rule applies).
    /// Without a daemon the test fails.
    pub fn start(rules: Vec<DelayRule>) -> SlowDocker {
        let hint = "no Docker daemon: run `eval \"$(tests/env/up.sh)\"` first (sets DOCKER_HOST), or use scripts/test.sh";
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let upstream = PathBuf::from(host.strip_prefix("unix://").unwrap_or_else(|| {
            panic!("SlowDocker forwards to a unix socket; DOCKER_HOST is {host}")
        }));
        assert!(
            upstream.exists(),
            "{hint} ({} is missing)",
            upstream.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("slow-docker")
            .tempdir()
            .unwrap();
        let listener = std::os::unix::net::UnixListener::bind(dir.path().join("docker.sock"))
            .expect("bind the proxy socket");
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared {
            upstream,
            rules,
            delays_on: AtomicBool::new(true),
            in_flight: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("slow-docker".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::UnixListener::from_std(listener).unwrap();
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            conn = listener.accept() => {
                                if let Ok((conn, _)) = conn {
                                    tokio::spawn(serve(conn, state.clone()));
                                }
                            }
                        }
                    }
                });
                rt.shutdown_background();
            })
            .unwrap();
        SlowDocker {
            dir,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `unix:///…/docker.sock`, for `DOCKER_HOST` or `DockerRuntime::connect_to`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket_path().display())
    }

    /// The socket's path.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// Turn the rules off (set-up through the proxy at full speed) or on.
    pub fn set_delays(&self, on: bool) {
        self.shared.delays_on.store(on, Ordering::SeqCst);
    }

    /// Every request accepted so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Requests accepted whose response is not complete yet.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Wait until every accepted request has its whole response (the daemon
    /// carried out every call it was given, late ones included); panics
    /// after `limit`, naming what is still in flight.
    pub async fn wait_idle(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.in_flight() > 0 {
            if Instant::now() > deadline {
                let pending: Vec<_> = self
                    .seen()
                    .into_iter()
                    .filter(|s| s.done.is_none())
                    .map(|s| format!("{} {}", s.method, s.target))
                    .collect();
                panic!("slow docker still busy after {limit:?}: {pending:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A Docker client (bollard) through a socket path.
pub fn docker_at(socket: &Path) -> bollard::Docker {
    bollard::Docker::connect_with_socket(
        &socket.to_string_lossy(),
        120,
        bollard::API_DEFAULT_VERSION,
    )
    .unwrap()
}

// ---- the proxy ----------------------------------------------------------

/// The client side of a connection: its bytes arrive through a reader
/// task, so that the proxy notices the client going away while it waits
/// for the daemon.
struct Client {
    rx: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    wr: OwnedWriteHalf,
    /// Its write side is still open.
    open: bool,
    /// Writing to it still works.
    writable: bool,
}

impl Client {
    fn gone(&self) -> bool {
        !self.open || !self.writable
    }

    /// More bytes from the client; false at its end.
    async fn more(&mut self) -> bool {
        match self.rx.recv().await {
            Some(bytes) => {
                self.buf.extend_from_slice(&bytes);
                true
            }
            None => {
                self.open = false;
                false
            }
        }
    }

    /// Pass response bytes on, unless the client is gone.
    async fn send(&mut self, bytes: &[u8]) {
        if self.writable && self.wr.write_all(bytes).await.is_err() {
            self.writable = false;
        }
    }
}

struct Upstream {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    buf: Vec<u8>,
}

struct Request {
    method: String,
    target: String,
    bytes: Vec<u8>,
    upgrade: bool,
}

/// Decrements the in-flight count when a request's exchange ends, however.
struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve(conn: UnixStream, shared: Arc<Shared>) {
    let (mut rd, wr) = conn.into_split();
    let (tx, rx) = mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut client = Client {
        rx,
        buf: Vec::new(),
        wr,
        open: true,
        writable: true,
    };
    let mut upstream: Option<Upstream> = None;
    loop {
        let Some(req) = read_request(&mut client).await else {
            return;
        };
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let _in_flight = InFlight(shared.clone());
        let held = if shared.delays_on.load(Ordering::SeqCst) {
            shared
                .rules
                .iter()
                .find(|r| r.matches(&req.method, &req.target))
                .map(|r| r.delay)
                .unwrap_or_default()
        } else {
            Duration::ZERO
        };
        let i = {
            let mut seen = shared.seen.lock().unwrap();
            seen.push(Seen {
                method: req.method.clone(),
                target: req.target.clone(),
                held,
                accepted: Instant::now(),
                forwarded: None,
                answered: None,
                done: None,
                status: None,
                client_gone: false,
            });
            seen.len() - 1
        };
        let abort_with_client = ends_with_its_client(&req.method, &req.target);
        // Held even if the client goes away meanwhile: the request was
        // sent, and a daemon would have it.
        tokio::time::sleep(held).await;
        if abort_with_client && client.gone() {
            shared.update(i, |s| s.client_gone = true);
            return;
        }
        if upstream.is_none() {
            match UnixStream::connect(&shared.upstream).await {
                Ok(s) => {
                    let (rd, wr) = s.into_split();
                    upstream = Some(Upstream {
                        rd,
                        wr,
                        buf: Vec::new(),
                    });
                }
                Err(e) => {
                    let body = format!("slow docker: upstream {e}");
                    let resp = format!(
                        "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    client.send(resp.as_bytes()).await;
                    return;
                }
            }
        }
        let up = upstream.as_mut().expect("connected");
        if up.wr.write_all(&req.bytes).await.is_err() {
            return;
        }
        shared.update(i, |s| s.forwarded = Some(Instant::now()));
        let reusable = relay_response(&req, up, &mut client, abort_with_client, &shared, i).await;
        let gone = client.gone();
        shared.update(i, |s| {
            s.client_gone |= gone;
            if reusable.is_some() {
                s.done = Some(Instant::now());
            }
        });
        match reusable {
            Some(true) if !gone => {}
            _ => return,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Headers of a head (after its first line), lower-cased names.
fn headers(head: &str) -> Vec<(String, String)> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

fn header<'a>(hs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    hs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn is_chunked(hs: &[(String, String)]) -> bool {
    header(hs, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

/// The length of a complete chunked body at the start of `buf` (trailers
/// included), or `None` if it is not all there yet.
fn chunked_len(buf: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let line_end = at + find(&buf[at..], b"\r\n")?;
        let line = std::str::from_utf8(&buf[at..line_end]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                let end = at + find(&buf[at..], b"\r\n")?;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some(at);
                }
            }
        }
        at += size + 2;
        if at > buf.len() {
            return None;
        }
    }
}

/// The next whole request from the client, or `None` at its end.
async fn read_request(c: &mut Client) -> Option<Request> {
    let head_end = loop {
        if let Some(i) = find(&c.buf, b"\r\n\r\n") {
            break i + 4;
        }
        if !c.more().await {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&c.buf[..head_end]).into_owned();
    let mut first = head.split("\r\n").next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?.to_owned();
    let hs = headers(&head);
    let body_len = if is_chunked(&hs) {
        loop {
            if let Some(n) = chunked_len(&c.buf[head_end..]) {
                break n;
            }
            if !c.more().await {
                return None;
            }
        }
    } else {
        let n: usize = header(&hs, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while c.buf.len() < head_end + n {
            if !c.more().await {
                return None;
            }
        }
        n
    };
    let upgrade = header(&hs, "upgrade").is_some()
        || header(&hs, "connection").is_some_and(|v| v.to_ascii_lowercase().contains("upgrade"));
    let bytes = c.buf.drain(..head_end + body_len).collect();
    Some(Request {
        method,
        target,
        bytes,
        upgrade,
    })
}

/// Read more from the daemon, noticing meanwhile whether the client goes
/// away. `Ok(false)`: the daemon closed; `Err(())`: stop relaying (the
/// daemon failed, or the client of a stream that ends with it went away).
async fn fill_upstream(
    up: &mut Upstream,
    c: &mut Client,
    abort_with_client: bool,
) -> Result<bool, ()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        if abort_with_client && c.gone() {
            return Err(());
        }
        tokio::select! {
            r = up.rd.read(&mut buf) => {
                return match r {
                    Ok(0) => Ok(false),
                    Ok(n) => {
                        up.buf.extend_from_slice(&buf[..n]);
                        Ok(true)
                    }
                    Err(_) => Err(()),
                };
            }
            // A client that does not pipeline sends nothing now but its
            // end; anything it does send waits for its turn.
            _ = c.more(), if c.open => {}
        }
    }
}

/// Pass the response to `req` to the client as it arrives. `Some(true)`:
/// complete, and the connection can carry another request; `Some(false)`:
/// complete, but the connection ends; `None`: cut short.
async fn relay_response(
    req: &Request,
    up: &mut Upstream,
    c: &mut Client,
    abort_with_client: bool,
    shared: &Shared,
    i: usize,
) -> Option<bool> {
    // The head, after any 1xx interim responses.
    let (status, hs) = loop {
        let head_end = loop {
            if let Some(i) = find(&up.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if !fill_upstream(up, c, abort_with_client).await.ok()? {
                return None;
            }
        };
        let head_bytes: Vec<u8> = up.buf.drain(..head_end).collect();
        let head = String::from_utf8_lossy(&head_bytes).into_owned();
        let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
        c.send(&head_bytes).await;
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        break (status, headers(&head));
    };
    shared.update(i, |s| {
        s.answered = Some(Instant::now());
        s.status = Some(status);
    });
    if status == 101 || (req.upgrade && (200..300).contains(&status)) {
        // A hijacked connection: both ways until either side ends.
        let rest: Vec<u8> = up.buf.drain(..).collect();
        c.send(&rest).await;
        let pending: Vec<u8> = c.buf.drain(..).collect();
        if up.wr.write_all(&pending).await.is_err() {
            return None;
        }
        loop {
            let mut buf = [0u8; 16 * 1024];
            tokio::select! {
                r = up.rd.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return Some(false),
                    Ok(n) => c.send(&buf[..n]).await,
                },
                more = c.more(), if c.open => {
                    if !more {
                        let _ = up.wr.shutdown().await;
                    } else {
                        let pending: Vec<u8> = c.buf.drain(..).collect();
                        if up.wr.write_all(&pending).await.is_err() {
                            return Some(false);
                        }
                    }
                }
            }
        }
    }
    let keep_alive = !header(&hs, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    if req.method == "HEAD" || status == 204 || status == 304 {
        return Some(keep_alive);
    }
    if is_chunked(&hs) {
        relay_chunked(up, c, abort_with_client).await?;
        return Some(keep_alive);
    }
    if let Some(n) = header(&hs, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut left = n;
        loop {
            let take = left.min(up.buf.len());
            let bytes: Vec<u8> = up.buf.drain(..take).collect();
            c.send(&bytes).await;
            left -= take;
            if left == 0 {
                return Some(keep_alive);
            }
            if !fill_upstream(up, c, abort_with_client).await.ok()? {
                return None;
            }
        }
    }
    // Delimited by the end of the connection.
    loop {
        let bytes: Vec<u8> = up.buf.drain(..).collect();
        c.send(&bytes).await;
        match fill_upstream(up, c, abort_with_client).await {
            Ok(true) => {}
            Ok(false) => return Some(false),
            Err(()) => return None,
        }
    }
}

/// Relay a chunked body as it streams, byte for byte; `None` if cut short.
async fn relay_chunked(up: &mut Upstream, c: &mut Client, abort_with_client: bool) -> Option<()> {
    enum S {
        Size,
        Data(usize),
        Trailer,
    }
    let mut s = S::Size;
    loop {
        match s {
            S::Size | S::Trailer => {
                if let Some(end) = find(&up.buf, b"\r\n") {
                    let line: Vec<u8> = up.buf.drain(..end + 2).collect();
                    c.send(&line).await;
                    s = match s {
                        S::Size => {
                            let text = String::from_utf8_lossy(&line[..end]).into_owned();
                            let size =
                                usize::from_str_radix(text.split(';').next()?.trim(), 16).ok()?;
                            if size == 0 {
                                S::Trailer
                            } else {
                                S::Data(size + 2)
                            }
                        }
                        // An empty line ends the trailers, and the body.
                        _ if end == 0 => return Some(()),
                        _ => S::Trailer,
                    };
                    continue;
                }
            }
            S::Data(left) => {
                if !up.buf.is_empty() {
                    let take = left.min(up.buf.len());
                    let bytes: Vec<u8> = up.buf.drain(..take).collect();
                    c.send(&bytes).await;
                    s = if take == left {
                        S::Size
                    } else {
                        S::Data(left - take)
                    };
                    continue;
                }
            }
        }
        if !fill_upstream(up, c, abort_with_client).await.ok()? {
            return None;
        }
    }
}

// ---- tests ----------------------------------------------------------------

#[test]
fn delay_rules_match_paths_without_query_or_version() {
    let stop = DelayRule::new("POST", "/containers/*/stop", Duration::ZERO);
    assert!(stop.matches("POST", "/containers/abc/stop?t=10"));
    assert!(stop.matches("POST", "/v1.41/containers/abc/stop"));
    assert!(!stop.matches("GET", "/containers/abc/stop"));
    assert!(!stop.matches("POST", "/containers/abc/start"));
    assert!(!stop.matches("POST", "/containers//stop"));
    let remove = DelayRule::new("DELETE", "/containers/*", Duration::ZERO);
    assert!(remove.matches("DELETE", "/containers/abc?force=true"));
    assert!(!remove.matches("DELETE", "/containers/abc/x"));
    let images = DelayRule::new("DELETE", "/images/**", Duration::ZERO);
    assert!(images.matches("DELETE", "/images/127.0.0.1:5000/deckhand-test/x:1"));
    assert_eq!(chunked_len(b"3\r\nabc\r\n0\r\n\r\nGET"), Some(13));
    assert_eq!(chunked_len(b"3\r\nabc\r\n0\r\n"), None);
    assert!(ends_with_its_client(
        "POST",
        "/v1.41/containers/x/wait?condition=not-running"
    ));
    assert!(!ends_with_its_client("POST", "/containers/x/stop"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_held_by_the_slow_daemon_still_lands_after_its_client_went_away() {
    use bollard::query_parameters::{
        CreateContainerOptionsBuilder, CreateImageOptionsBuilder, StopContainerOptionsBuilder,
    };
    use futures_util::TryStreamExt;

    let direct = crate::harness::docker().await;
    let proxy = SlowDocker::start(vec![DelayRule::new(
        "POST",
        "/containers/*/stop",
        Duration::from_millis(1500),
    )]);
    let via_proxy = docker_at(&proxy.socket_path());
    let target = crate::harness::unique_target("slowdocker");

    // Not held: a ping, a pull (a stream), a create, an inspect.
    let t = Instant::now();
    via_proxy.ping().await.unwrap();
    let base = crate::harness::image("base:1");
    let options = CreateImageOptionsBuilder::default()
        .from_image(&base)
        .build();
    via_proxy
        .create_image(Some(options), None, None)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let body = bollard::models::ContainerCreateBody {
        image: Some(base.clone()),
        // PID 1 ignores SIGTERM: the stop takes its timeout, then SIGKILL.
        cmd: Some(
            [
                "/bin/sh",
                "-c",
                "trap '' TERM; while true; do sleep 1; done",
            ]
            .map(String::from)
            .to_vec(),
        ),
        labels: Some([("io.deckhand.target".to_owned(), target.clone())].into()),
        host_config: Some(bollard::models::HostConfig {
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let name = format!("deckhand-{target}");
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    let id = via_proxy
        .create_container(Some(options), body)
        .await
        .unwrap()
        .id;
    via_proxy.start_container(&id, None).await.unwrap();
    let running = |d: &bollard::Docker| {
        let (d, id) = (d.clone(), id.clone());
        async move {
            d.inspect_container(&id, None)
                .await
                .unwrap()
                .state
                .and_then(|s| s.running)
                .unwrap_or(false)
        }
    };
    assert!(running(&via_proxy).await);
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "unheld calls took {:?}",
        t.elapsed()
    );
    assert!(
        proxy.seen().iter().all(|s| s.held.is_zero()),
        "{:?}",
        proxy.seen()
    );

    // A stop held for 1.5 s whose client gives up after 100 ms.
    let stop = {
        let (d, id) = (via_proxy.clone(), id.clone());
        tokio::spawn(async move {
            let options = StopContainerOptionsBuilder::default().t(1).build();
            d.stop_container(&id, Some(options)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.abort();
    let _ = stop.await;
    drop(via_proxy);
    assert!(running(&direct).await, "the stop is still held");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(running(&direct).await, "the stop is still held");
    // Forwarded at 1.5 s; the container ignores SIGTERM and is killed 1 s later.
    proxy.wait_idle(Duration::from_secs(20)).await;
    assert!(
        !running(&direct).await,
        "the stop landed after its client went away"
    );
    let seen = proxy.seen();
    let held = seen
        .iter()
        .find(|s| s.target.contains("/stop"))
        .expect("the stop went through the proxy");
    assert_eq!(held.held, Duration::from_millis(1500));
    assert!(held.client_gone, "{held:?}");
    let forwarded = held.forwarded.expect("forwarded") - held.accepted;
    assert!(forwarded >= Duration::from_millis(1500), "{forwarded:?}");
    assert!(matches!(held.status, Some(204 | 304)), "{held:?}");

    // A fresh client on the same proxy: the next calls are not held.
    let again = docker_at(&proxy.socket_path());
    let t = Instant::now();
    again.ping().await.unwrap();
    again.inspect_container(&id, None).await.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    crate::harness::remove_target_containers(&direct, &target).await;
}
