//! The journal's single writer: one thread owns the write connection and
//! commits queued writes in groups.
//!
//! Every caller waits until the transaction holding its write is durable
//! (`synchronous=FULL`), so a write that returned survives a crash. Writes
//! that arrive while a commit is in flight share the next commit: concurrent
//! jobs pay one `fsync` per group, not one each.

use std::any::Any;
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::{broadcast, oneshot};

use super::{EventRecord, JournalError};

/// The largest number of writes committed together.
const MAX_GROUP: usize = 256;

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
    pub(super) fn start(conn: Connection, live: broadcast::Sender<EventRecord>) -> Writer {
        let (queue, ops) = mpsc::channel::<WriteOp>();
        std::thread::Builder::new()
            .name("deckhand-journal-writer".into())
            .spawn(move || run(conn, ops, live))
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

fn run(conn: Connection, ops: mpsc::Receiver<WriteOp>, live: broadcast::Sender<EventRecord>) {
    let kill_after = kill_after_events();
    let mut events_written = 0u64;
    while let Ok(first) = ops.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match ops.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        events_written += commit_group(
            &conn,
            group,
            &live,
            kill_after.map(|n| n.saturating_sub(events_written)),
        );
    }
}

/// Apply each write under its own savepoint (a failing write does not undo
/// the others), commit once, then answer every caller. Returns the number
/// of events written; with `kill_within` events to go before the injected
/// crash, it crashes once they are durable.
fn commit_group(
    conn: &Connection,
    group: Vec<WriteOp>,
    live: &broadcast::Sender<EventRecord>,
    kill_within: Option<u64>,
) -> u64 {
    let mut answers = Vec::with_capacity(group.len());
    let mut events = Vec::new();
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let msg = e.to_string();
        for op in group {
            let _ = op.reply.send(Err(JournalError::Commit(msg.clone())));
        }
        return 0;
    }
    for op in group {
        let mut own_events = Vec::new();
        let result = conn
            .execute_batch("SAVEPOINT op")
            .map_err(JournalError::from)
            .and_then(|_| (op.apply)(conn, &mut own_events));
        let result = match result {
            Ok(out) => conn
                .execute_batch("RELEASE op")
                .map(|_| out)
                .map_err(JournalError::from),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK TO op; RELEASE op");
                own_events.clear();
                Err(e)
            }
        };
        if result.is_ok() {
            events.append(&mut own_events);
        }
        answers.push((op.reply, result));
    }
    if let Err(e) = conn.execute_batch("COMMIT") {
        let _ = conn.execute_batch("ROLLBACK");
        let msg = e.to_string();
        for (reply, _) in answers {
            let _ = reply.send(Err(JournalError::Commit(msg.clone())));
        }
        return 0;
    }
    let written = events.len() as u64;
    if kill_within.is_some_and(|n| written >= n) {
        // SAFETY: raising a signal on our own process has no memory effects.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    for (reply, result) in answers {
        let _ = reply.send(result);
    }
    for ev in events {
        // Nobody listening is fine.
        let _ = live.send(ev);
    }
    written
}
