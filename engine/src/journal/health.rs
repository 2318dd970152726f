//! Whether the journal can be written now, as its writer last found it.
//!
//! The writer reports the outcome of every group it commits. A write that
//! fails for a reason of the machine (a full disk, an I/O error, a file
//! system gone read-only) makes the journal *unwritable* until a later write
//! succeeds. Jobs pause at their next write-ahead point meanwhile (no step
//! runs without its intent recorded) and the API refuses new ones; a change
//! of state is logged once, not per failed attempt.

use serde::Serialize;
use tokio::sync::watch;

use super::{JournalError, Millis, now_millis};

/// The journal's ability to take writes.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum JournalHealth {
    /// The last write succeeded.
    Writable,
    /// The last write failed for a reason of the machine.
    Unwritable {
        /// Since when (ms since the epoch).
        since: Millis,
        /// Whether the disk is full (else another I/O failure).
        disk_full: bool,
        /// What SQLite said.
        error: String,
    },
}

impl JournalHealth {
    /// Whether writes go through.
    pub fn is_writable(&self) -> bool {
        matches!(self, JournalHealth::Writable)
    }
}

/// The writer's side: reports outcomes; readers watch.
#[derive(Debug)]
pub(super) struct HealthSignal {
    tx: watch::Sender<JournalHealth>,
}

impl HealthSignal {
    pub(super) fn new() -> Self {
        HealthSignal {
            tx: watch::Sender::new(JournalHealth::Writable),
        }
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<JournalHealth> {
        self.tx.subscribe()
    }

    pub(super) fn current(&self) -> JournalHealth {
        self.tx.borrow().clone()
    }

    /// A group committed.
    pub(super) fn report_written(&self) {
        self.tx.send_if_modified(|h| {
            if h.is_writable() {
                return false;
            }
            tracing::info!("the journal can be written again");
            *h = JournalHealth::Writable;
            true
        });
    }

    /// A write failed with `error`, classified by [`unwritable_cause`].
    pub(super) fn report_unwritable(&self, disk_full: bool, error: &str) {
        self.tx.send_if_modified(|h| {
            if !h.is_writable() {
                return false;
            }
            tracing::error!(
                disk_full,
                "the journal cannot be written: {error}; jobs pause at their next step and new ones are refused until it can"
            );
            *h = JournalHealth::Unwritable {
                since: now_millis(),
                disk_full,
                error: error.to_owned(),
            };
            true
        });
    }
}

/// Whether `e` is a failure of the machine rather than of the write itself:
/// `Some(disk_full)` for a full disk or an I/O error, `None` otherwise (a
/// constraint, a terminal state, …).
pub(super) fn unwritable_cause(e: &JournalError) -> Option<bool> {
    use rusqlite::ErrorCode;
    match e {
        JournalError::Unwritable { disk_full, .. } => Some(*disk_full),
        JournalError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => match f.code {
            ErrorCode::DiskFull => Some(true),
            ErrorCode::SystemIoFailure
            | ErrorCode::ReadOnly
            | ErrorCode::CannotOpen
            | ErrorCode::FileLockingProtocolFailed => Some(false),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_change_is_reported_once_and_recovers_on_the_next_write() {
        let signal = HealthSignal::new();
        let mut rx = signal.subscribe();
        rx.mark_unchanged();
        signal.report_unwritable(true, "database or disk is full");
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        signal.report_unwritable(true, "database or disk is full");
        assert!(!rx.has_changed().unwrap(), "a second failure is no change");
        assert!(matches!(
            signal.current(),
            JournalHealth::Unwritable {
                disk_full: true,
                ..
            }
        ));
        signal.report_written();
        assert!(rx.has_changed().unwrap());
        assert!(signal.current().is_writable());
    }

    #[test]
    fn a_full_disk_is_told_apart_from_other_write_failures() {
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        assert_eq!(unwritable_cause(&JournalError::Sqlite(full)), Some(true));
        let io = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
            None,
        );
        assert_eq!(unwritable_cause(&JournalError::Sqlite(io)), Some(false));
        let constraint = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        );
        assert_eq!(unwritable_cause(&JournalError::Sqlite(constraint)), None);
    }
}
