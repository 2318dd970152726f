//! What the engine owns: the resources its jobs created (containers) or
//! brought onto the machine (images that were not there before a pull), as
//! a projection of the `acquired` and `released` events.
//!
//! Ownership is decided here and nowhere else. Labels on a container are a
//! hint anyone can copy (`docker commit` keeps them); an image name is a
//! pointer anyone can move. What counts is that the journal recorded the
//! exact id when the engine created it, and has not recorded its removal
//! since. Kinds and ids are opaque strings to the journal.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Event, JobId, Millis, Result};

/// A resource the engine created and has not removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedResource {
    /// What kind of resource (`container`, `image`).
    pub kind: String,
    /// Its identity.
    pub id: String,
    /// Its name when acquired.
    pub name: String,
    /// The target of the job that acquired it.
    pub target: String,
    /// The job that acquired it.
    pub job_id: JobId,
    /// When it was acquired.
    pub acquired_at: Millis,
}

/// Columns of [`OwnedResource`], in its order.
const COLUMNS: &str = "kind, id, name, target, job_id, acquired_at";

/// Containers that journals written before acquisitions were journaled
/// recorded as created: the id each successful create step returned.
/// Images are not derived: those journals did not record image ids, and
/// what cannot be proven the engine's is not.
macro_rules! legacy_containers_sql {
    () => {
        "INSERT OR IGNORE INTO resources (kind, id, name, target, job_id, acquired_at)
         SELECT 'container', json_extract(r.data, '$.value'), json_extract(i.data, '$.call.config.name'),
                j.target, j.id, r.at
         FROM events i
         JOIN events r ON r.job_id = i.job_id AND r.kind = 'result'
                      AND json_extract(r.data, '$.step') = json_extract(i.data, '$.step')
         JOIN jobs j ON j.id = i.job_id
         WHERE i.kind = 'intent' AND json_extract(i.data, '$.call.op') = 'create_container'
           AND json_extract(r.data, '$.outcome') = 'ok'
           AND json_type(r.data, '$.value') = 'text';"
    };
}
pub(super) use legacy_containers_sql;

/// Apply an `acquired` or `released` event of `job` to the projection
/// (other events change nothing here).
pub(super) fn project(c: &Connection, job: &JobId, at: Millis, event: &Event) -> Result<()> {
    match event {
        Event::Acquired {
            resource: kind,
            id,
            name,
        } => {
            c.prepare_cached(
                "INSERT INTO resources (kind, id, name, target, job_id, acquired_at)
                 SELECT ?1, ?2, ?3, target, id, ?5 FROM jobs WHERE id = ?4
                 ON CONFLICT (kind, id) DO UPDATE SET name = excluded.name, target = excluded.target,
                     job_id = excluded.job_id, acquired_at = excluded.acquired_at, released_at = NULL",
            )?
            .execute(params![kind, id, name, job.as_str(), at])?;
        }
        Event::Released { resource: kind, id } => {
            c.prepare_cached(
                "UPDATE resources SET released_at = ?3 WHERE kind = ?1 AND id = ?2 AND released_at IS NULL",
            )?
            .execute(params![kind, id, at])?;
        }
        _ => {}
    }
    Ok(())
}

/// Derive the whole projection again from the event log (after an import).
pub(super) fn rebuild(c: &Connection) -> Result<()> {
    c.execute("DELETE FROM resources", [])?;
    c.execute_batch(legacy_containers_sql!())?;
    let mut stmt = c.prepare(
        "SELECT job_id, at, data FROM events WHERE kind IN ('acquired', 'released') ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (job, at, data) = row?;
        let event: Event =
            serde_json::from_str(&data).map_err(|e| super::JournalError::Corrupt {
                what: format!("event of job {job}"),
                detail: e.to_string(),
            })?;
        project(c, &JobId(job), at, &event)?;
    }
    Ok(())
}

fn owned_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OwnedResource> {
    Ok(OwnedResource {
        kind: r.get(0)?,
        id: r.get(1)?,
        name: r.get(2)?,
        target: r.get(3)?,
        job_id: JobId(r.get(4)?),
        acquired_at: r.get(5)?,
    })
}

/// The owned resource of `kind` with `id`, if the engine owns it.
pub(super) fn owned(c: &Connection, kind: &str, id: &str) -> Result<Option<OwnedResource>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM resources WHERE kind = ?1 AND id = ?2 AND released_at IS NULL"
    ))?
    .query_row([kind, id], owned_row)
    .optional()?)
}

/// Owned resources of `kind` acquired under `name`, oldest first.
pub(super) fn owned_named(c: &Connection, kind: &str, name: &str) -> Result<Vec<OwnedResource>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM resources WHERE kind = ?1 AND name = ?2 AND released_at IS NULL ORDER BY acquired_at"
    ))?;
    let rows = stmt.query_map([kind, name], owned_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Owned resources of `kind` that jobs of `target` acquired, oldest first.
pub(super) fn owned_by_target(
    c: &Connection,
    kind: &str,
    target: &str,
) -> Result<Vec<OwnedResource>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM resources WHERE kind = ?1 AND target = ?2 AND released_at IS NULL ORDER BY acquired_at"
    ))?;
    let rows = stmt.query_map([kind, target], owned_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Owned resources of `kind` acquired under a name starting with
/// `prefix`, oldest first.
pub(super) fn owned_with_prefix(
    c: &Connection,
    kind: &str,
    prefix: &str,
) -> Result<Vec<OwnedResource>> {
    // Compared by substr, not LIKE: names hold `_`, LIKE's wildcard.
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM resources WHERE kind = ?1 AND substr(name, 1, length(?2)) = ?2
           AND released_at IS NULL ORDER BY acquired_at"
    ))?;
    let rows = stmt.query_map([kind, prefix], owned_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

impl super::Journal {
    /// The owned resources of `kind` acquired under a name that starts
    /// with `prefix`, oldest first.
    pub fn owned_with_prefix(&self, kind: &str, prefix: &str) -> Result<Vec<OwnedResource>> {
        self.read(|c| owned_with_prefix(c, kind, prefix))
    }

    /// The resource of `kind` with `id`, if the engine created it and has
    /// not removed it (see [`OwnedResource`]).
    pub fn owned(&self, kind: &str, id: &str) -> Result<Option<OwnedResource>> {
        self.read(|c| owned(c, kind, id))
    }

    /// The owned resources of `kind` acquired under `name`, oldest first.
    pub fn owned_named(&self, kind: &str, name: &str) -> Result<Vec<OwnedResource>> {
        self.read(|c| owned_named(c, kind, name))
    }

    /// The owned resources of `kind` that jobs of `target` acquired, oldest
    /// first.
    pub fn owned_by_target(&self, kind: &str, target: &str) -> Result<Vec<OwnedResource>> {
        self.read(|c| owned_by_target(c, kind, target))
    }
}
