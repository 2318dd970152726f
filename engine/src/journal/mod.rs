//! The journal: a durable, append-only record of every job, in SQLite.
//!
//! Two representations live here. The **event log** (`events`) is the truth:
//! every state change, every step's intent (call + undo) before it runs and
//! its result after, progress, logs and cancels, in one global order (`seq`).
//! The **projections** (`jobs`, `targets`, `revisions`, and the
//! [`resources`] the engine owns) are derived from it in
//! the same transaction, so reads never replay the log.
//!
//! All writes go through one writer thread with group commit (see
//! [`writer`]); reads use their own connections, which WAL mode lets run
//! beside the writer. The journal knows nothing of Docker or WebAssembly.
//!
//! One concern per file: [`model`] (the types), [`lifecycle`] (the job
//! state machine, pure), `jobs` (jobs and their events), `targets`
//! (targets and revisions), `plugins` (plugin registrations),
//! [`resources`] (what the engine owns), [`schema`] (tables and
//! migrations), [`writer`] (the single writer), [`export`] (the text form),
//! [`job_ids`] (short ids), [`health`] (whether it can be written), `live`
//! (subscriptions). This file opens the journal and holds the shared read
//! path.

pub mod export;
mod health;
pub mod job_ids;
mod job_log;
mod jobs;
mod lifecycle;
mod live;
mod model;
mod plugins;
mod resources;
mod schema;
mod targets;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::broadcast;

use jobs::{JOB_COLUMNS, decode_event, decode_job, raw_event, raw_job};

pub use health::JournalHealth;
pub use job_log::JobLog;
pub use jobs::IntentRecord;
pub use model::*;
pub use resources::OwnedResource;
pub use schema::CURRENT_VERSION as SCHEMA_VERSION;

/// Why a journal operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// SQLite failed.
    #[error("journal database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored record does not decode: the journal is corrupt.
    #[error("journal record is corrupt ({what}): {detail}")]
    Corrupt {
        /// Which record.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The file was written by a newer Deckhand.
    #[error("journal schema version {found} is newer than this build supports ({supported})")]
    NewerSchema {
        /// Version found.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
    /// The file could not be opened.
    #[error("cannot open journal {path}: {detail}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The group commit failed; nothing of the group was written.
    #[error("journal commit failed: {0}")]
    Commit(String),
    /// The machine refused the write (a full disk, an I/O error); nothing
    /// of it was written. Writes go through again once the cause is gone.
    #[error("the journal cannot be written ({}): {detail}", if *disk_full { "disk full" } else { "I/O error" })]
    Unwritable {
        /// Whether the disk is full.
        disk_full: bool,
        /// What SQLite said.
        detail: String,
    },
    /// The writer thread is gone.
    #[error("journal writer stopped")]
    WriterGone,
    /// No such job.
    #[error("no job with id {0}")]
    UnknownJob(JobId),
    /// A job with a recorded cancel may not enter `committing`.
    #[error("job {0} has a pending cancel; it cannot commit")]
    CancelPending(JobId),
    /// A terminal state would have been rewritten.
    #[error("job {job} is already {state}; terminal states are never rewritten")]
    Terminal {
        /// The job.
        job: JobId,
        /// Its terminal state.
        state: JobState,
    },
    /// The job state machine has no such transition (see [`lifecycle`]).
    #[error("job {job} cannot go from {from} to {to}")]
    Transition {
        /// The job.
        job: JobId,
        /// Its state.
        from: JobState,
        /// The state asked for.
        to: JobState,
    },
}

impl JournalError {
    /// Whether the machine refused the write (disk full, I/O error): trying
    /// again once the cause is gone will work.
    pub fn is_unwritable(&self) -> bool {
        matches!(self, JournalError::Unwritable { .. })
    }
}

/// Result alias for journal operations.
pub type Result<T, E = JournalError> = std::result::Result<T, E>;

/// Handle to an open journal; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

/// Called with the latency of every durable append, in seconds.
pub type AppendObserver = Arc<dyn Fn(f64) + Send + Sync>;

struct Inner {
    append_observer: std::sync::OnceLock<AppendObserver>,
    path: PathBuf,
    writer: writer::Writer,
    readers: Mutex<Vec<Connection>>,
    live: Arc<live::Publisher>,
    health: Arc<health::HealthSignal>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Journal {
    /// The journal file's name inside a data directory.
    pub const FILE_NAME: &'static str = "journal.sqlite";

    /// Open (creating if needed) the journal at `path`, migrating its schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Journal> {
        let path = path.as_ref().to_path_buf();
        let open_err = |detail: String| JournalError::Open {
            path: path.clone(),
            detail,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        }
        let mut conn = Connection::open(&path).map_err(|e| open_err(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit is durable when it returns, also in WAL mode.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(JournalError::Corrupt {
                what: path.display().to_string(),
                detail: check,
            });
        }
        schema::migrate(&mut conn)?;
        let live = Arc::new(live::Publisher::new());
        let health = Arc::new(health::HealthSignal::new());
        let writer = writer::Writer::start(conn, live.clone(), health.clone());
        Ok(Journal {
            inner: Arc::new(Inner {
                append_observer: std::sync::OnceLock::new(),
                path,
                writer,
                readers: Mutex::new(Vec::new()),
                live,
                health,
            }),
        })
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Every event appended from now on, after it is durable.
    pub fn subscribe(&self) -> broadcast::Receiver<EventRecord> {
        self.inner.live.subscribe()
    }

    /// Wake-ups for one job: the receiver changes (to the sequence number
    /// of the job's latest event) whenever the job gets a durable event.
    /// Watch before reading, and nothing falls between the read and the
    /// wake-up. Cheaper than [`Journal::subscribe`] for one job: it is not
    /// woken by, nor handed, the other jobs' events.
    pub fn watch_job(&self, job: &JobId) -> tokio::sync::watch::Receiver<Seq> {
        self.inner.live.watch(job)
    }

    /// Whether the journal can be written, as the last write found it.
    pub fn health(&self) -> JournalHealth {
        self.inner.health.current()
    }

    /// Follow [`Self::health`] as it changes.
    pub fn watch_health(&self) -> tokio::sync::watch::Receiver<JournalHealth> {
        self.inner.health.subscribe()
    }

    /// Try a real write to find out whether the journal can be written
    /// now; updates [`Self::health`]. It rewrites the schema version with
    /// its own value: the header page goes to disk again, nothing changes.
    pub async fn probe(&self) -> Result<()> {
        self.inner
            .writer
            .write(|c, _| {
                c.pragma_update(None, "user_version", schema::CURRENT_VERSION)?;
                Ok(())
            })
            .await
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.inner.readers.lock().expect("reader pool lock").pop();
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.inner.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| JournalError::Open {
                    path: self.inner.path.clone(),
                    detail: e.to_string(),
                })?;
                c.busy_timeout(std::time::Duration::from_secs(10))?;
                c
            }
        };
        let out = f(&conn);
        self.inner
            .readers
            .lock()
            .expect("reader pool lock")
            .push(conn);
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::Value;

    /// Take a queued job through its lifecycle to `succeeded`.
    pub(super) async fn succeed(j: &Journal, job: &JobId) {
        for state in [JobState::Running, JobState::Committing, JobState::Succeeded] {
            j.append(job, Event::State { state, error: None })
                .await
                .unwrap();
        }
    }

    /// A new `install` job on `target` for tests.
    pub(crate) fn new_job(target: &str) -> NewJob {
        NewJob {
            id: JobId::new(),
            workflow: "install".into(),
            target: target.into(),
            params: serde_json::json!({"image": "app:1"}),
            plugin_digest: "sha256:00".into(),
            idempotency_key: None,
        }
    }

    #[tokio::test]
    async fn created_job_is_queued_with_created_and_state_events() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().join("j.sqlite")).unwrap();
        let job = j.create_job(new_job("web")).await.unwrap();
        assert_eq!(job.state, JobState::Queued);
        let events = j.events(&job.id, 0).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event.kind(), "created");
        assert_eq!(
            events[1].event,
            Event::State {
                state: JobState::Queued,
                error: None
            }
        );
        assert!(events[0].seq < events[1].seq);
    }

    #[tokio::test]
    async fn unfinished_intents_are_those_of_other_jobs_that_have_not_ended() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().join("j.sqlite")).unwrap();
        let intent = |step| Event::Intent {
            step,
            call: serde_json::json!({"op": "pull_image", "image": "app:1"}),
            undo: None,
        };
        let asking = j.create_job(new_job("a")).await.unwrap();
        let running = j.create_job(new_job("b")).await.unwrap();
        let ended = j.create_job(new_job("c")).await.unwrap();
        for job in [&asking, &running, &ended] {
            j.append(&job.id, intent(1)).await.unwrap();
        }
        j.append(&running.id, intent(2)).await.unwrap();
        succeed(&j, &ended.id).await;
        let found = j.unfinished_intents(&asking.id).unwrap();
        assert_eq!(
            found
                .iter()
                .map(|i| (&i.job_id, i.step))
                .collect::<Vec<_>>(),
            [(&running.id, 1), (&running.id, 2)]
        );
        assert_eq!(found[0].call["image"], "app:1");
    }

    #[tokio::test]
    async fn a_resource_is_owned_from_its_acquisition_until_its_release_and_again_after_a_new_one()
    {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().join("j.sqlite")).unwrap();
        let job = j.create_job(new_job("web")).await.unwrap();
        let acquired = || Event::Acquired {
            resource: "image".into(),
            id: "sha256:aa".into(),
            name: "app:1".into(),
        };
        assert!(j.owned("image", "sha256:aa").unwrap().is_none());
        j.append(&job.id, acquired()).await.unwrap();
        let owned = j.owned("image", "sha256:aa").unwrap().unwrap();
        assert_eq!((owned.target.as_str(), &owned.job_id), ("web", &job.id));
        assert_eq!(
            j.owned_named("image", "app:1").unwrap(),
            std::slice::from_ref(&owned)
        );
        assert_eq!(j.owned_by_target("image", "web").unwrap(), [owned]);
        assert!(
            j.owned("container", "sha256:aa").unwrap().is_none(),
            "kinds are apart"
        );
        j.append(
            &job.id,
            Event::Released {
                resource: "image".into(),
                id: "sha256:aa".into(),
            },
        )
        .await
        .unwrap();
        assert!(j.owned("image", "sha256:aa").unwrap().is_none());
        assert!(j.owned_by_target("image", "web").unwrap().is_empty());
        j.append(&job.id, acquired()).await.unwrap();
        assert!(j.owned("image", "sha256:aa").unwrap().is_some());
        // An export carries the events; the import derives the same.
        let text = j.export(None).unwrap();
        let dir2 = tempfile::tempdir().unwrap();
        let k = Journal::open(dir2.path().join("j.sqlite")).unwrap();
        k.import(&text).await.unwrap();
        assert_eq!(
            k.owned("image", "sha256:aa").unwrap(),
            j.owned("image", "sha256:aa").unwrap()
        );
    }

    #[tokio::test]
    async fn terminal_state_is_never_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().join("j.sqlite")).unwrap();
        let job = j.create_job(new_job("web")).await.unwrap();
        succeed(&j, &job.id).await;
        let err = j
            .append(
                &job.id,
                Event::State {
                    state: JobState::Failed,
                    error: Some("late".into()),
                },
            )
            .await;
        assert!(
            matches!(
                err,
                Err(JournalError::Terminal {
                    state: JobState::Succeeded,
                    ..
                })
            ),
            "{err:?}"
        );
        assert_eq!(j.job(&job.id).unwrap().unwrap().state, JobState::Succeeded);
    }

    #[tokio::test]
    async fn events_survive_reopening_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let id = {
            let j = Journal::open(&path).unwrap();
            let job = j.create_job(new_job("web")).await.unwrap();
            j.append(
                &job.id,
                Event::Intent {
                    step: 1,
                    call: serde_json::json!({"op": "x"}),
                    undo: None,
                },
            )
            .await
            .unwrap();
            job.id
        };
        let j = Journal::open(&path).unwrap();
        let kinds: Vec<_> = j
            .events(&id, 0)
            .unwrap()
            .iter()
            .map(|e| e.event.kind())
            .collect();
        assert_eq!(kinds, ["created", "state", "intent"]);
    }

    #[tokio::test]
    async fn cancel_is_recorded_once_and_refused_for_terminal_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().join("j.sqlite")).unwrap();
        let job = j.create_job(new_job("web")).await.unwrap();
        assert_eq!(
            j.request_cancel(&job.id, None).await.unwrap(),
            (JobState::Queued, true)
        );
        assert_eq!(
            j.request_cancel(&job.id, None).await.unwrap(),
            (JobState::Queued, false)
        );
        assert!(j.job(&job.id).unwrap().unwrap().cancel_requested);
        let done = j.create_job(new_job("api")).await.unwrap();
        succeed(&j, &done.id).await;
        assert_eq!(
            j.request_cancel(&done.id, None).await.unwrap(),
            (JobState::Succeeded, false)
        );
    }

    #[tokio::test]
    async fn concurrent_appends_all_land_in_order_per_job() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().join("j.sqlite")).unwrap();
        let mut tasks = Vec::new();
        for t in 0..16 {
            let j = j.clone();
            tasks.push(tokio::spawn(async move {
                let job = j.create_job(new_job(&format!("t{t}"))).await.unwrap();
                for step in 1..=20 {
                    j.append(
                        &job.id,
                        Event::Intent {
                            step,
                            call: Value::Null,
                            undo: None,
                        },
                    )
                    .await
                    .unwrap();
                }
                job.id
            }));
        }
        for t in tasks {
            let id = t.await.unwrap();
            let steps: Vec<u32> = j
                .events(&id, 0)
                .unwrap()
                .into_iter()
                .filter_map(|e| match e.event {
                    Event::Intent { step, .. } => Some(step),
                    _ => None,
                })
                .collect();
            assert_eq!(steps, (1..=20).collect::<Vec<_>>());
        }
    }

    #[tokio::test]
    async fn the_job_row_follows_every_kind_of_event() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().join("j.sqlite")).unwrap();
        let job = j.create_job(new_job("web")).await.unwrap();
        let state = |state, error: Option<&str>| Event::State {
            state,
            error: error.map(str::to_owned),
        };
        j.append(&job.id, state(JobState::Running, None))
            .await
            .unwrap();
        j.append(
            &job.id,
            Event::Phase {
                phase: "pull".into(),
            },
        )
        .await
        .unwrap();
        let progress = Progress {
            fraction: Some(0.5),
            layers_done: 1,
            layers_total: 2,
            bytes_done: 10,
            bytes_total: 20,
            layers: Vec::new(),
            pulls: Vec::new(),
        };
        j.append(&job.id, Event::Progress(progress.clone()))
            .await
            .unwrap();
        let row = j.job(&job.id).unwrap().unwrap();
        assert_eq!(
            (row.state, row.phase.as_deref(), &row.progress),
            (JobState::Running, Some("pull"), &progress)
        );
        // A new phase starts its progress afresh.
        j.append(
            &job.id,
            Event::Phase {
                phase: "start".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            j.job(&job.id).unwrap().unwrap().progress,
            Progress::default()
        );
        j.request_cancel(&job.id, None).await.unwrap();
        j.append(&job.id, state(JobState::RollingBack, Some("cancelled")))
            .await
            .unwrap();
        j.append(
            &job.id,
            Event::Finished {
                summary: "rolled back".into(),
            },
        )
        .await
        .unwrap();
        // A state without an error keeps the one already recorded.
        j.append(&job.id, state(JobState::Cancelled, None))
            .await
            .unwrap();
        let row = j.job(&job.id).unwrap().unwrap();
        assert_eq!(row.state, JobState::Cancelled);
        assert_eq!(row.error.as_deref(), Some("cancelled"));
        assert_eq!(row.summary.as_deref(), Some("rolled back"));
        assert!(row.cancel_requested);
        let last = j.events(&job.id, 0).unwrap().last().unwrap().at;
        assert_eq!(row.updated_at, last);
    }

    #[tokio::test]
    async fn a_refused_write_leaves_the_writes_committed_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().join("j.sqlite")).unwrap();
        let live = j.create_job(new_job("web")).await.unwrap();
        let intent = |step| Event::Intent {
            step,
            call: Value::Null,
            undo: None,
        };
        // Sent together, so they share groups: every other one is refused.
        let writes: Vec<_> = (0..64u32)
            .map(|step| {
                let (j, id) = (j.clone(), live.id.clone());
                tokio::spawn(async move {
                    if step % 2 == 0 {
                        j.append(&id, intent(step)).await.map(|_| ())
                    } else {
                        let missing = JobId(format!("missing-{step}"));
                        j.append_all(&missing, vec![intent(step)]).await.map(|_| ())
                    }
                })
            })
            .collect();
        let mut refused = 0;
        for (step, w) in writes.into_iter().enumerate() {
            match w.await.unwrap() {
                Ok(()) => assert_eq!(step % 2, 0),
                Err(JournalError::UnknownJob(_)) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(refused, 32);
        let intents = j
            .events(&live.id, 0)
            .unwrap()
            .iter()
            .filter(|e| e.event.kind() == "intent")
            .count();
        assert_eq!(intents, 32);
    }

    #[tokio::test]
    async fn revisions_commit_idempotently_and_keep_history() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().join("j.sqlite")).unwrap();
        let rev = |n: u64, job: &JobId| RevisionRecord {
            revision: n,
            image: format!("app:{n}"),
            container_id: format!("c{n}"),
            spec: serde_json::json!({}),
            services: Vec::new(),
            job_id: job.clone(),
            created_at: 0,
        };
        let (a, b) = (JobId::new(), JobId::new());
        j.commit_revision("web", rev(1, &a)).await.unwrap();
        j.commit_revision("web", rev(1, &a)).await.unwrap();
        j.commit_revision("web", rev(2, &b)).await.unwrap();
        let t = j.target("web").unwrap().unwrap();
        assert_eq!(t.current.unwrap().image, "app:2");
        assert_eq!(t.history.len(), 2);
        j.clear_target("web").await.unwrap();
        let t = j.target("web").unwrap().unwrap();
        assert!(t.current.is_none());
        assert_eq!(t.history.len(), 2);
    }

    #[tokio::test]
    async fn a_stack_revision_keeps_its_services_and_their_images_count_as_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().join("j.sqlite")).unwrap();
        let service = |name: &str, image: &str| ServiceRecord {
            name: name.into(),
            image: image.into(),
            container_id: format!("c-{name}"),
            spec: serde_json::json!({"image": image}),
        };
        let stack = RevisionRecord {
            revision: 1,
            image: String::new(),
            container_id: String::new(),
            spec: serde_json::json!({"compose": "services: {}"}),
            services: vec![service("db", "pg:15"), service("web", "app:1")],
            job_id: JobId::new(),
            created_at: 0,
        };
        j.commit_revision("shop", stack.clone()).await.unwrap();
        let current = j.target("shop").unwrap().unwrap().current.unwrap();
        assert_eq!(current, stack);
        assert!(current.is_stack() && current.runs_image("pg:15"));
        let mut in_use = j.images_in_use("other").unwrap();
        in_use.sort();
        assert_eq!(in_use, ["app:1", "pg:15"]);
        assert!(j.images_in_use("shop").unwrap().is_empty());
    }

    #[test]
    fn every_event_kind_round_trips_through_json() {
        let outcome_err = Outcome::Err {
            error: "boom".into(),
            error_kind: Some("runtime".into()),
        };
        let events = vec![
            Event::Result {
                step: 1,
                outcome: outcome_err.clone(),
            },
            Event::UndoResult {
                step: 1,
                outcome: outcome_err.clone(),
            },
            Event::CommitResult {
                step: 1,
                outcome: outcome_err,
            },
            Event::Result {
                step: 2,
                outcome: Outcome::Ok {
                    value: serde_json::json!({"a": 1}),
                },
            },
            Event::State {
                state: JobState::Failed,
                error: Some("x".into()),
            },
            Event::Progress(Progress {
                fraction: Some(0.5),
                layers_done: 1,
                layers_total: 2,
                bytes_done: 3,
                bytes_total: 4,
                layers: Vec::new(),
                pulls: vec![crate::journal::ImagePullProgress {
                    image: "web:2".into(),
                    labels: vec!["web".into(), "worker".into()],
                    progress: Progress {
                        fraction: Some(0.25),
                        layers_done: 1,
                        ..Progress::default()
                    },
                }],
            }),
        ];
        for e in events {
            let text = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), e, "{text}");
        }
    }

    #[test]
    fn a_journal_from_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        assert!(matches!(
            Journal::open(&path),
            Err(JournalError::NewerSchema { found: 99, .. })
        ));
    }

    #[test]
    fn a_file_that_is_not_a_database_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
        assert!(Journal::open(&path).is_err());
    }
}
