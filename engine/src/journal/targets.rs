//! Targets and their revisions: committing a revision, clearing a torn-down
//! target (its history stays), and reading them.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::*;

impl Journal {
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
                    "INSERT INTO revisions (target, revision, image, container_id, spec, job_id, created_at, services)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        target,
                        rev.revision as i64,
                        rev.image,
                        rev.container_id,
                        rev.spec.to_string(),
                        rev.job_id.as_str(),
                        rev.created_at,
                        services_json(&rev.services)
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

    /// Images referenced by the current revision of any target other than
    /// `except` (by any service of a stack).
    pub fn images_in_use(&self, except: &str) -> Result<Vec<String>> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT r.image FROM targets t JOIN revisions r ON r.target = t.name AND r.revision = t.current_revision
                 WHERE t.name != ?1 AND r.image != ''
                 UNION
                 SELECT json_extract(s.value, '$.image')
                 FROM targets t JOIN revisions r ON r.target = t.name AND r.revision = t.current_revision,
                      json_each(r.services) s
                 WHERE t.name != ?1",
            )?;
            let rows = stmt.query_map([except], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}

pub(super) fn target_record(c: &Connection, name: &str) -> Result<Option<TargetRecord>> {
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
        "SELECT revision, image, container_id, spec, job_id, created_at, services FROM revisions WHERE target = ?1 ORDER BY revision",
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
                r.get::<_, String>(6)?,
            ))
        })?
        .map(|row| {
            let (revision, image, container_id, spec, job_id, created_at, services) = row?;
            let corrupt = |e: serde_json::Error| JournalError::Corrupt {
                what: format!("revision {revision} of {name}"),
                detail: e.to_string(),
            };
            let spec: Value = serde_json::from_str(&spec).map_err(corrupt)?;
            let services: Vec<ServiceRecord> = serde_json::from_str(&services).map_err(corrupt)?;
            Ok(RevisionRecord {
                revision: revision as u64,
                image,
                container_id,
                spec,
                services,
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

/// A stack's services as the `revisions.services` column holds them.
pub(super) fn services_json(services: &[ServiceRecord]) -> String {
    serde_json::to_string(services).expect("services serialize")
}
