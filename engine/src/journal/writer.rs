//! The journal's single writer: one thread owns the write connection and
//! commits queued writes in groups.
//!
//! Every caller waits until the transaction holding its write is durable
//! (`synchronous=FULL`), so a write that returned survives a crash. Writes
//! that arrive while a commit is in flight share the next commit: concurrent
//! jobs pay one `fsync` per group, not one each. When fewer writes are queued
//! than the last group held, the writer waits a fraction of a commit for the
//! callers that last group answered, so the groups stay as large as the
//! concurrency allows. The statements it runs for every write are prepared
//! once and cached.

use std::any::Any;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::health::{HealthSignal, unwritable_cause};
use super::live::Publisher;
use super::{EventRecord, JournalError};

/// The largest number of writes committed together.
const MAX_GROUP: usize = 256;

/// The longest a group waits for more writes before it commits.
const MAX_LINGER: Duration = Duration::from_micros(200);

type Output = Box<dyn Any + Send>;
type Apply =
    Box<dyn FnOnce(&Connection, &mut Vec<EventRecord>) -> Result<Output, JournalError> + Send>;

struct WriteOp {
    apply: Apply,
    reply: oneshot::Sender<Result<Output, JournalError>>,
}

/// Handle to the writer thread; cloning shares the thread.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<WriteOp>,
}

impl Writer {
    /// Start the writer thread on `conn`; committed events go to `live`.
    pub(super) fn start(
        conn: Connection,
        live: Arc<Publisher>,
        health: Arc<HealthSignal>,
    ) -> Writer {
        let (queue, ops) = mpsc::channel::<WriteOp>();
        std::thread::Builder::new()
            .name("deckhand-journal-writer".into())
            .spawn(move || {
                conn.set_prepared_statement_cache_capacity(64);
                run(conn, ops, live, &health)
            })
            .expect("spawn journal writer thread");
        Writer { queue }
    }

    /// Run `apply` in the next group's transaction and wait until it is durable.
    pub(super) async fn write<T, F>(&self, apply: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<EventRecord>) -> Result<T, JournalError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let apply: Apply = Box::new(move |c, ev| apply(c, ev).map(|t| Box::new(t) as Output));
        self.queue
            .send(WriteOp { apply, reply })
            .map_err(|_| JournalError::WriterGone)?;
        let out = answer.await.map_err(|_| JournalError::WriterGone)??;
        Ok(*out
            .downcast::<T>()
            .expect("write output has the type its closure returned"))
    }
}

/// Fault injection for crash tests: with `DECKHAND_FAULT_KILL_AFTER_EVENTS=N`
/// the process kills itself with SIGKILL as soon as the group holding its
/// N-th event is durable, before answering anyone — a crash at that exact
/// point of the journal.
fn kill_after_events() -> Option<u64> {
    std::env::var("DECKHAND_FAULT_KILL_AFTER_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
}

fn run(
    conn: Connection,
    ops: mpsc::Receiver<WriteOp>,
    live: Arc<Publisher>,
    health: &HealthSignal,
) {
    let kill_after = kill_after_events();
    let mut events_written = 0u64;
    let mut last_group = 1;
    let mut last_commit = Duration::ZERO;
    while let Ok(first) = ops.recv() {
        let mut group = vec![first];
        // Writers answered by the last commit are coming back: wait a
        // little for them (a fraction of a commit) rather than commit a
        // group half their size and make the rest wait a whole commit.
        let linger_until = Instant::now() + (last_commit / 2).min(MAX_LINGER);
        while group.len() < MAX_GROUP {
            match ops.try_recv() {
                Ok(op) => group.push(op),
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) => {
                    let now = Instant::now();
                    if group.len() >= last_group || now >= linger_until {
                        break;
                    }
                    match ops.recv_timeout(linger_until - now) {
                        Ok(op) => group.push(op),
                        Err(_) => break,
                    }
                }
            }
        }
        last_group = group.len();
        let started = Instant::now();
        events_written += commit_group(
            &conn,
            group,
            &live,
            health,
            kill_after.map(|n| n.saturating_sub(events_written)),
        );
        last_commit = started.elapsed();
    }
}

/// Apply each write under its own savepoint (a failing write does not undo
/// the others), commit once, then answer every caller. Returns the number
/// of events written; with `kill_within` events to go before the injected
/// crash, it crashes once they are durable.
fn commit_group(
    conn: &Connection,
    group: Vec<WriteOp>,
    live: &Publisher,
    health: &HealthSignal,
    kill_within: Option<u64>,
) -> u64 {
    let mut answers = Vec::with_capacity(group.len());
    let mut events = Vec::new();
    if let Err(e) = run_cached(conn, "BEGIN IMMEDIATE") {
        let e = classify(e, health);
        for op in group {
            let _ = op.reply.send(Err(same_error(&e)));
        }
        return 0;
    }
    for op in group {
        let mut own_events = Vec::new();
        let result =
            run_cached(conn, "SAVEPOINT op").and_then(|_| (op.apply)(conn, &mut own_events));
        let result = match result {
            Ok(out) => run_cached(conn, "RELEASE op").map(|_| out),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK TO op; RELEASE op");
                own_events.clear();
                Err(classify(e, health))
            }
        };
        if result.is_ok() {
            events.append(&mut own_events);
        }
        answers.push((op.reply, result));
    }
    if let Err(e) = run_cached(conn, "COMMIT") {
        let _ = conn.execute_batch("ROLLBACK");
        let e = match classify(e, health) {
            e @ JournalError::Unwritable { .. } => e,
            other => JournalError::Commit(other.to_string()),
        };
        for (reply, _) in answers {
            let _ = reply.send(Err(same_error(&e)));
        }
        return 0;
    }
    health.report_written();
    let written = events.len() as u64;
    if kill_within.is_some_and(|n| written >= n) {
        // SAFETY: raising a signal on our own process has no memory effects.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    for (reply, result) in answers {
        let _ = reply.send(result);
    }
    live.publish(events);
    written
}

/// A write's error as callers see it: a failure of the machine becomes
/// [`JournalError::Unwritable`] and is reported to `health`.
fn classify(e: JournalError, health: &HealthSignal) -> JournalError {
    match unwritable_cause(&e) {
        Some(disk_full) => {
            let detail = match e {
                JournalError::Unwritable { detail, .. } => detail,
                other => other.to_string(),
            };
            health.report_unwritable(disk_full, &detail);
            JournalError::Unwritable { disk_full, detail }
        }
        None => e,
    }
}

/// One error for each caller of a failed group (errors are not `Clone`).
fn same_error(e: &JournalError) -> JournalError {
    match e {
        JournalError::Unwritable { disk_full, detail } => JournalError::Unwritable {
            disk_full: *disk_full,
            detail: detail.clone(),
        },
        other => JournalError::Commit(other.to_string()),
    }
}

/// Run a parameterless statement through the connection's statement cache:
/// the writer runs the same few for every write.
fn run_cached(conn: &Connection, sql: &str) -> Result<(), JournalError> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}
