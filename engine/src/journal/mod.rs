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

pub mod export;
mod health;
pub mod job_ids;
mod job_log;
mod lifecycle;
mod live;
mod model;
mod resources;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::broadcast;

pub use health::JournalHealth;
pub use job_log::JobLog;
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

    // ---- writes ----------------------------------------------------------

    /// Record a new job in state `queued`. When the job carries an
    /// idempotency key that an earlier job already has, nothing is written
    /// and that job is returned instead (its id tells the caller which
    /// happened): the check and the insert are one write, so two jobs never
    /// share a key.
    pub async fn create_job(&self, job: NewJob) -> Result<JobRecord> {
        let id = job.id.clone();
        let existing = self
            .inner
            .writer
            .write(move |c, out| {
                if let Some(k) = &job.idempotency_key {
                    let earlier = c
                        .query_row(
                            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE idempotency_key = ?1"),
                            [&k.key],
                            raw_job,
                        )
                        .optional()?;
                    if let Some(raw) = earlier {
                        return decode_job(raw).map(Some);
                    }
                }
                let (key, fingerprint) = match job.idempotency_key {
                    Some(k) => (Some(k.key), Some(k.fingerprint)),
                    None => (None, None),
                };
                let at = now_millis();
                c.execute(
                    "INSERT INTO jobs (id, workflow, target, params, plugin_digest, state, created_at, updated_at, idempotency_key, idempotency_fingerprint)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?6, ?7, ?8)",
                    params![job.id.as_str(), job.workflow, job.target, job.params.to_string(), job.plugin_digest, at, key, fingerprint],
                )?;
                let created = Event::Created {
                    workflow: job.workflow,
                    target: job.target,
                    params: job.params,
                    plugin_digest: job.plugin_digest,
                };
                out.push(insert_event(c, &job.id, at, created)?);
                out.push(insert_event(c, &job.id, at, Event::State { state: JobState::Queued, error: None })?);
                Ok(None)
            })
            .await?;
        match existing {
            Some(earlier) => Ok(earlier),
            None => self.job(&id)?.ok_or(JournalError::UnknownJob(id)),
        }
    }

    /// Append an event for `job` durably, updating the job's projection.
    /// Returns its sequence number.
    pub async fn append(&self, job: &JobId, event: Event) -> Result<Seq> {
        self.append_all(job, vec![event]).await
    }

    /// Append several events for `job` in one durable write, in order.
    pub async fn append_all(&self, job: &JobId, events: Vec<Event>) -> Result<Seq> {
        let job = job.clone();
        let started = std::time::Instant::now();
        let seq = self
            .inner
            .writer
            .write(move |c, out| {
                let mut last = 0;
                for e in events {
                    last = append_event(c, &job, e, out)?;
                }
                Ok(last)
            })
            .await?;
        if let Some(observe) = self.inner.append_observer.get() {
            observe(started.elapsed().as_secs_f64());
        }
        Ok(seq)
    }

    /// Report every append's latency to `observer` (set once; for metrics).
    pub fn observe_appends(&self, observer: AppendObserver) {
        let _ = self.inner.append_observer.set(observer);
    }

    /// Append a cancel request unless the job is terminal or committing.
    /// Returns the job's state and whether the request was recorded now
    /// (`false` also when one was already recorded: cancel is idempotent).
    pub async fn request_cancel(
        &self,
        job: &JobId,
        reason: Option<String>,
    ) -> Result<(JobState, bool)> {
        let job = job.clone();
        self.inner
            .writer
            .write(move |c, out| {
                let (state, already) = c
                    .query_row(
                        "SELECT state, cancel_requested FROM jobs WHERE id = ?1",
                        [job.as_str()],
                        |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)),
                    )
                    .optional()?
                    .ok_or_else(|| JournalError::UnknownJob(job.clone()))?;
                let state = parse_state(&state)?;
                if state.is_terminal() || state == JobState::Committing || already {
                    return Ok((state, false));
                }
                append_event(c, &job, Event::CancelRequested { reason }, out)?;
                Ok((state, true))
            })
            .await
    }

    /// Make a revision the target's current one (at commit). Idempotent per
    /// job: committing the same job's revision again changes nothing.
    pub async fn commit_revision(&self, target: &str, rev: RevisionRecord) -> Result<u64> {
        let target = target.to_owned();
        self.inner
            .writer
            .write(move |c, _| {
                let existing: Option<i64> = c
                    .query_row("SELECT revision FROM revisions WHERE job_id = ?1", [rev.job_id.as_str()], |r| r.get(0))
                    .optional()?;
                if let Some(n) = existing {
                    return Ok(n as u64);
                }
                c.execute("INSERT OR IGNORE INTO targets (name, current_revision) VALUES (?1, NULL)", [&target])?;
                c.execute(
                    "INSERT INTO revisions (target, revision, image, container_id, spec, job_id, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        target,
                        rev.revision as i64,
                        rev.image,
                        rev.container_id,
                        rev.spec.to_string(),
                        rev.job_id.as_str(),
                        rev.created_at
                    ],
                )?;
                c.execute("UPDATE targets SET current_revision = ?2 WHERE name = ?1", params![target, rev.revision as i64])?;
                Ok(rev.revision)
            })
            .await
    }

    /// Mark a target as having no current revision (teardown committed).
    /// Its history stays. Idempotent.
    pub async fn clear_target(&self, target: &str) -> Result<()> {
        let target = target.to_owned();
        self.inner
            .writer
            .write(move |c, _| {
                c.execute(
                    "UPDATE targets SET current_revision = NULL WHERE name = ?1",
                    [&target],
                )?;
                Ok(())
            })
            .await
    }

    /// Record that `name` now runs the component with `digest`.
    pub async fn record_plugin(&self, name: &str, digest: &str) -> Result<()> {
        let (name, digest) = (name.to_owned(), digest.to_owned());
        self.inner
            .writer
            .write(move |c, _| {
                c.execute(
                    "INSERT INTO plugins (name, digest, registered_at) VALUES (?1, ?2, ?3)",
                    params![name, digest, now_millis()],
                )?;
                Ok(())
            })
            .await
    }

    /// Every plugin registration, oldest first: (name, digest, when).
    pub fn plugin_registrations(&self) -> Result<Vec<(String, String, Millis)>> {
        self.read(|c| {
            let mut stmt =
                c.prepare("SELECT name, digest, registered_at FROM plugins ORDER BY seq")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
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

    /// Hide a terminal job from default listings (it stays in the journal).
    pub async fn dismiss(&self, job: &JobId) -> Result<JobState> {
        let job = job.clone();
        self.inner
            .writer
            .write(move |c, _| {
                let state: String = c
                    .query_row(
                        "SELECT state FROM jobs WHERE id = ?1",
                        [job.as_str()],
                        |r| r.get(0),
                    )
                    .optional()?
                    .ok_or_else(|| JournalError::UnknownJob(job.clone()))?;
                let state = parse_state(&state)?;
                if state.is_terminal() {
                    c.execute(
                        "UPDATE jobs SET dismissed = 1 WHERE id = ?1",
                        [job.as_str()],
                    )?;
                }
                Ok(state)
            })
            .await
    }

    // ---- reads -----------------------------------------------------------

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

    /// One job, if it exists.
    pub fn job(&self, id: &JobId) -> Result<Option<JobRecord>> {
        self.read(|c| {
            c.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
                .query_row([id.as_str()], raw_job)
                .optional()?
                .map(decode_job)
                .transpose()
        })
    }

    /// Jobs, newest first.
    pub fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>> {
        self.read(|c| {
            let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1=1");
            let mut args: Vec<String> = Vec::new();
            if let Some(t) = &filter.target {
                args.push(t.clone());
                sql += &format!(" AND target = ?{}", args.len());
            }
            if let Some(s) = filter.state {
                args.push(s.as_str().to_owned());
                sql += &format!(" AND state = ?{}", args.len());
            }
            if let Some(b) = &filter.before {
                args.push(b.as_str().to_owned());
                sql += &format!(" AND id < ?{}", args.len());
            }
            if !filter.include_dismissed {
                sql += " AND dismissed = 0";
            }
            if filter.active {
                sql += &format!(
                    " AND state NOT IN ({})",
                    JobState::sql_list(&JobState::SETTLED)
                );
            }
            sql += " ORDER BY id DESC";
            if let Some(l) = filter.limit {
                sql += &format!(" LIMIT {l}");
            }
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), raw_job)?;
            rows.map(|r| decode_job(r?)).collect()
        })
    }

    /// The job created with this idempotency key, if any, with the
    /// fingerprint of the request that created it (none for a job from a
    /// journal older than fingerprints).
    pub fn job_by_idempotency_key(&self, key: &str) -> Result<Option<(JobRecord, Option<String>)>> {
        self.read(|c| {
            c.query_row(
                &format!(
                    "SELECT {JOB_COLUMNS}, idempotency_fingerprint FROM jobs WHERE idempotency_key = ?1"
                ),
                [key],
                |r| Ok((raw_job(r)?, r.get::<_, Option<String>>(14)?)),
            )
            .optional()?
            .map(|(raw, fingerprint)| Ok((decode_job(raw)?, fingerprint)))
            .transpose()
        })
    }

    /// How many jobs are in each state.
    pub fn count_by_state(&self) -> Result<Vec<(JobState, u64)>> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            rows.map(|r| {
                let (s, n) = r?;
                Ok((parse_state(&s)?, n as u64))
            })
            .collect()
        })
    }

    /// Jobs not in a terminal state, oldest first.
    pub fn unfinished_jobs(&self) -> Result<Vec<JobRecord>> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE state NOT IN ({}) ORDER BY id",
                JobState::sql_list(&JobState::TERMINAL)
            ))?;
            let rows = stmt.query_map([], raw_job)?;
            rows.map(|r| decode_job(r?)).collect()
        })
    }

    /// The active (non-terminal) job on a target, if any.
    pub fn active_job_on(&self, target: &str) -> Result<Option<JobId>> {
        self.job_on(
            &format!(
                "SELECT id FROM jobs WHERE target = ?1 AND state NOT IN ({}) ORDER BY id LIMIT 1",
                JobState::sql_list(&JobState::TERMINAL)
            ),
            target,
        )
    }

    /// The job id `sql` selects for `target` (bound as `?1`), if any.
    fn job_on(&self, sql: &str, target: &str) -> Result<Option<JobId>> {
        self.read(|c| {
            let id: Option<String> = c
                .prepare_cached(sql)?
                .query_row([target], |r| r.get(0))
                .optional()?;
            Ok(id.map(JobId))
        })
    }

    /// The newest `failed` job on `target` that nobody dismissed: its
    /// rollback (or commit) did not finish, and the target needs attention
    /// before another job may run on it.
    pub fn failed_job_on(&self, target: &str) -> Result<Option<JobId>> {
        self.job_on(
            "SELECT id FROM jobs WHERE target = ?1 AND state = 'failed' AND dismissed = 0 ORDER BY id DESC LIMIT 1",
            target,
        )
    }

    /// Record an operator's decision to go ahead on `failed`'s target with
    /// `by` although `failed` did not finish its rollback: a warning in
    /// `failed`'s timeline, and `failed` dismissed (it is no longer retried
    /// nor listed as needing attention). Both in one write.
    pub async fn supersede(&self, failed: &JobId, by: &JobId) -> Result<()> {
        let event = Event::Log {
            level: "warn".into(),
            message: format!(
                "superseded: the operator forced job {by} on this target; the undos left here will not run"
            ),
        };
        self.append(failed, event).await?;
        self.dismiss(failed).await.map(|_| ())
    }

    /// A job's events after `after` (exclusive), in order.
    pub fn events(&self, job: &JobId, after: Seq) -> Result<Vec<EventRecord>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT seq, job_id, at, data FROM events WHERE job_id = ?1 AND seq > ?2 ORDER BY seq")?;
            let rows = stmt.query_map(params![job.as_str(), after], raw_event)?;
            rows.map(|r| decode_event(r?)).collect()
        })
    }

    /// A target's current revision and history; `None` if it never existed.
    pub fn target(&self, name: &str) -> Result<Option<TargetRecord>> {
        self.read(|c| target_record(c, name))
    }

    /// Every target ever installed, by name.
    pub fn targets(&self) -> Result<Vec<TargetRecord>> {
        self.read(|c| {
            let names: Vec<String> = c
                .prepare("SELECT name FROM targets ORDER BY name")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            names
                .iter()
                .filter_map(|n| target_record(c, n).transpose())
                .collect()
        })
    }

    /// Jobs with an intent whose call has every `(field, value)` given
    /// (`$.call.<field> = value`), optionally only unfinished ones, other
    /// than `except`. The journal matches the JSON without knowing the calls.
    pub fn jobs_with_intent(
        &self,
        fields: &[(&str, Value)],
        only_active: bool,
        except: Option<&JobId>,
    ) -> Result<Vec<JobId>> {
        self.read(|c| {
            let mut sql = String::from("SELECT DISTINCT e.job_id FROM events e JOIN jobs j ON j.id = e.job_id WHERE e.kind = 'intent'");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            for (field, value) in fields {
                if !field.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
                    return Err(JournalError::Corrupt { what: "intent query".into(), detail: format!("bad field name {field}") });
                }
                args.push(match value {
                    Value::Bool(b) => rusqlite::types::Value::Integer(*b as i64),
                    Value::Number(n) if n.is_i64() => rusqlite::types::Value::Integer(n.as_i64().unwrap_or(0)),
                    Value::String(s) => rusqlite::types::Value::Text(s.clone()),
                    other => rusqlite::types::Value::Text(other.to_string()),
                });
                sql += &format!(" AND json_extract(e.data, '$.call.{field}') = ?{}", args.len());
            }
            if only_active {
                sql += &format!(" AND j.state NOT IN ({})", JobState::sql_list(&JobState::TERMINAL));
            }
            if let Some(job) = except {
                args.push(rusqlite::types::Value::Text(job.as_str().to_owned()));
                sql += &format!(" AND e.job_id != ?{}", args.len());
            }
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| r.get::<_, String>(0))?;
            Ok(rows.map(|r| r.map(JobId)).collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The resource of `kind` with `id`, if the engine created it and has
    /// not removed it (see [`OwnedResource`]).
    pub fn owned(&self, kind: &str, id: &str) -> Result<Option<OwnedResource>> {
        self.read(|c| resources::owned(c, kind, id))
    }

    /// The owned resources of `kind` acquired under `name`, oldest first.
    pub fn owned_named(&self, kind: &str, name: &str) -> Result<Vec<OwnedResource>> {
        self.read(|c| resources::owned_named(c, kind, name))
    }

    /// The owned resources of `kind` that jobs of `target` acquired, oldest
    /// first.
    pub fn owned_by_target(&self, kind: &str, target: &str) -> Result<Vec<OwnedResource>> {
        self.read(|c| resources::owned_by_target(c, kind, target))
    }

    /// Images referenced by the current revision of any target other than `except`.
    pub fn images_in_use(&self, except: &str) -> Result<Vec<String>> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT r.image FROM targets t JOIN revisions r ON r.target = t.name AND r.revision = t.current_revision
                 WHERE t.name != ?1",
            )?;
            let rows = stmt.query_map([except], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}

// ---- row codecs ------------------------------------------------------------

const JOB_COLUMNS: &str = "id, workflow, target, params, plugin_digest, state, phase, progress, error, summary, cancel_requested, dismissed, created_at, updated_at";

type RawJob = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    bool,
    bool,
    i64,
    i64,
);

fn raw_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawJob> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
        r.get(12)?,
        r.get(13)?,
    ))
}

fn decode_job(raw: RawJob) -> Result<JobRecord> {
    let (
        id,
        workflow,
        target,
        params,
        plugin_digest,
        state,
        phase,
        progress,
        error,
        summary,
        cancel,
        dismissed,
        created_at,
        updated_at,
    ) = raw;
    let corrupt = |detail: String| JournalError::Corrupt {
        what: format!("job {id}"),
        detail,
    };
    Ok(JobRecord {
        params: serde_json::from_str(&params).map_err(|e| corrupt(e.to_string()))?,
        progress: serde_json::from_str(&progress).map_err(|e| corrupt(e.to_string()))?,
        state: state.parse().map_err(corrupt)?,
        id: JobId(id.clone()),
        workflow,
        target,
        plugin_digest,
        phase,
        error,
        summary,
        cancel_requested: cancel,
        dismissed,
        created_at,
        updated_at,
    })
}

fn raw_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, String, i64, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn decode_event((seq, job, at, data): (i64, String, i64, String)) -> Result<EventRecord> {
    let event = serde_json::from_str(&data).map_err(|e| JournalError::Corrupt {
        what: format!("event {seq}"),
        detail: e.to_string(),
    })?;
    Ok(EventRecord {
        seq,
        job_id: JobId(job),
        at,
        event,
    })
}

fn parse_state(s: &str) -> Result<JobState> {
    s.parse().map_err(|detail| JournalError::Corrupt {
        what: "job state".into(),
        detail,
    })
}

fn insert_event(c: &Connection, job: &JobId, at: Millis, event: Event) -> Result<EventRecord> {
    let data = serde_json::to_string(&event).expect("events serialize");
    c.prepare_cached("INSERT INTO events (job_id, at, kind, data) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![job.as_str(), at, event.kind(), data])?;
    Ok(EventRecord {
        seq: c.last_insert_rowid(),
        job_id: job.clone(),
        at,
        event,
    })
}

/// Insert `event` and update the job's projection to match.
fn append_event(
    c: &Connection,
    job: &JobId,
    event: Event,
    out: &mut Vec<EventRecord>,
) -> Result<Seq> {
    let at = now_millis();
    let (current, cancel_requested): (String, bool) = c
        .prepare_cached("SELECT state, cancel_requested FROM jobs WHERE id = ?1")?
        .query_row([job.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or_else(|| JournalError::UnknownJob(job.clone()))?;
    let current = parse_state(&current)?;
    match lifecycle::admit(current, cancel_requested, &event) {
        Ok(()) => {}
        Err(lifecycle::Refusal::Terminal(state)) => {
            return Err(JournalError::Terminal {
                job: job.clone(),
                state,
            });
        }
        Err(lifecycle::Refusal::CancelPending) => {
            return Err(JournalError::CancelPending(job.clone()));
        }
        Err(lifecycle::Refusal::Transition { from, to }) => {
            return Err(JournalError::Transition {
                job: job.clone(),
                from,
                to,
            });
        }
    }
    // The job's projection follows its events: one cached statement for
    // every kind (a NULL leaves a column as it was).
    let (mut state, mut error, mut phase, mut progress, mut summary) =
        (None, None, None, None, None);
    match &event {
        Event::State { state: s, error: e } => (state, error) = (Some(s.as_str()), e.clone()),
        Event::Phase { phase: p } => (phase, progress) = (Some(p.clone()), Some("{}".to_owned())),
        Event::Progress(p) => {
            progress = Some(serde_json::to_string(p).expect("progress serializes"))
        }
        Event::Finished { summary: s } => summary = Some(s.clone()),
        _ => {}
    }
    let cancel = matches!(event, Event::CancelRequested { .. });
    c.prepare_cached(
        "UPDATE jobs SET state = COALESCE(?2, state), error = COALESCE(?3, error),
                phase = COALESCE(?4, phase), progress = COALESCE(?5, progress),
                summary = COALESCE(?6, summary), cancel_requested = (cancel_requested OR ?7),
                updated_at = ?8
         WHERE id = ?1",
    )?
    .execute(params![
        job.as_str(),
        state,
        error,
        phase,
        progress,
        summary,
        cancel,
        at
    ])?;
    resources::project(c, job, at, &event)?;
    let rec = insert_event(c, job, at, event)?;
    let seq = rec.seq;
    out.push(rec);
    Ok(seq)
}

fn target_record(c: &Connection, name: &str) -> Result<Option<TargetRecord>> {
    let current: Option<Option<i64>> = c
        .query_row(
            "SELECT current_revision FROM targets WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    let Some(current) = current else {
        return Ok(None);
    };
    let mut stmt = c.prepare(
        "SELECT revision, image, container_id, spec, job_id, created_at FROM revisions WHERE target = ?1 ORDER BY revision",
    )?;
    let history = stmt
        .query_map([name], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?
        .map(|row| {
            let (revision, image, container_id, spec, job_id, created_at) = row?;
            let spec: Value = serde_json::from_str(&spec).map_err(|e| JournalError::Corrupt {
                what: format!("revision {revision} of {name}"),
                detail: e.to_string(),
            })?;
            Ok(RevisionRecord {
                revision: revision as u64,
                image,
                container_id,
                spec,
                job_id: JobId(job_id),
                created_at,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let current = current.and_then(|n| history.iter().find(|r| r.revision == n as u64).cloned());
    Ok(Some(TargetRecord {
        name: name.to_owned(),
        current,
        history,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Take a queued job through its lifecycle to `succeeded`.
    pub(super) async fn succeed(j: &Journal, job: &JobId) {
        for state in [JobState::Running, JobState::Committing, JobState::Succeeded] {
            j.append(job, Event::State { state, error: None })
                .await
                .unwrap();
        }
    }

    fn new_job(target: &str) -> NewJob {
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
