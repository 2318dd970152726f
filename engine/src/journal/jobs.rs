//! Jobs: creating them, appending their events (each checked by the
//! [`super::lifecycle`] state machine and projected onto the job's row in the
//! same transaction), cancels, dismissals, and the queries over jobs and
//! their events.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::*;

impl Journal {
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
                |r| Ok((raw_job(r)?, r.get::<_, Option<String>>("idempotency_fingerprint")?)),
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

    /// The intents of every unfinished job other than `except`, decoded as
    /// events: the caller reads the typed call (the journal does not know
    /// the calls, and matches no JSON inside them).
    pub fn unfinished_intents(&self, except: &JobId) -> Result<Vec<IntentRecord>> {
        self.read(|c| {
            let sql = format!(
                "SELECT e.seq, e.job_id, e.at, e.data FROM events e JOIN jobs j ON j.id = e.job_id \
                 WHERE e.kind = 'intent' AND j.state NOT IN ({}) AND e.job_id != ?1 ORDER BY e.seq",
                JobState::sql_list(&JobState::TERMINAL)
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![except.as_str()], raw_event)?;
            let mut intents = Vec::new();
            for row in rows {
                let record = decode_event(row?)?;
                if let Event::Intent { step, call, .. } = record.event {
                    intents.push(IntentRecord {
                        job_id: record.job_id,
                        step,
                        call,
                    });
                }
            }
            Ok(intents)
        })
    }
}

/// A step a job declared before running it (see [`Event::Intent`]).
#[derive(Debug, Clone, PartialEq)]
pub struct IntentRecord {
    /// The job.
    pub job_id: JobId,
    /// The step's number within the job.
    pub step: u32,
    /// The call, as the engine encoded it.
    pub call: Value,
}

// ---- row codecs ------------------------------------------------------------

pub(super) const JOB_COLUMNS: &str = "id, workflow, target, params, plugin_digest, state, phase, progress, error, summary, cancel_requested, dismissed, created_at, updated_at";

/// A job row as stored, read by column name (the columns are
/// [`JOB_COLUMNS`]); [`decode_job`] turns it into a [`JobRecord`].
pub(super) struct RawJob {
    id: String,
    workflow: String,
    target: String,
    params: String,
    plugin_digest: String,
    state: String,
    phase: Option<String>,
    progress: String,
    error: Option<String>,
    summary: Option<String>,
    cancel_requested: bool,
    dismissed: bool,
    created_at: i64,
    updated_at: i64,
}

pub(super) fn raw_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawJob> {
    Ok(RawJob {
        id: r.get("id")?,
        workflow: r.get("workflow")?,
        target: r.get("target")?,
        params: r.get("params")?,
        plugin_digest: r.get("plugin_digest")?,
        state: r.get("state")?,
        phase: r.get("phase")?,
        progress: r.get("progress")?,
        error: r.get("error")?,
        summary: r.get("summary")?,
        cancel_requested: r.get("cancel_requested")?,
        dismissed: r.get("dismissed")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

pub(super) fn decode_job(raw: RawJob) -> Result<JobRecord> {
    let corrupt = |detail: String| JournalError::Corrupt {
        what: format!("job {}", raw.id),
        detail,
    };
    Ok(JobRecord {
        params: serde_json::from_str(&raw.params).map_err(|e| corrupt(e.to_string()))?,
        progress: serde_json::from_str(&raw.progress).map_err(|e| corrupt(e.to_string()))?,
        state: raw.state.parse().map_err(corrupt)?,
        id: JobId(raw.id),
        workflow: raw.workflow,
        target: raw.target,
        plugin_digest: raw.plugin_digest,
        phase: raw.phase,
        error: raw.error,
        summary: raw.summary,
        cancel_requested: raw.cancel_requested,
        dismissed: raw.dismissed,
        created_at: raw.created_at,
        updated_at: raw.updated_at,
    })
}

/// An event row (`seq, job_id, at, data`), read by column name.
pub(super) fn raw_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, String, i64, String)> {
    Ok((
        r.get("seq")?,
        r.get("job_id")?,
        r.get("at")?,
        r.get("data")?,
    ))
}

pub(super) fn decode_event(
    (seq, job, at, data): (i64, String, i64, String),
) -> Result<EventRecord> {
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

pub(super) fn parse_state(s: &str) -> Result<JobState> {
    s.parse().map_err(|detail| JournalError::Corrupt {
        what: "job state".into(),
        detail,
    })
}

pub(super) fn insert_event(
    c: &Connection,
    job: &JobId,
    at: Millis,
    event: Event,
) -> Result<EventRecord> {
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
pub(super) fn append_event(
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
