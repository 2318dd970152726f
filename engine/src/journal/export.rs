//! The journal's reviewable text form: one JSON object per line, in a fixed
//! order (header, jobs, events by sequence number, targets, revisions,
//! plugin registrations), so that export → import → export is
//! byte-identical. Import validates every line and refuses corrupt or
//! out-of-order input, naming the line; a torn *last* line (cut short by a
//! crash while writing the file) is detected and left out.

use std::collections::HashMap;

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use super::{
    EventRecord, JobId, JobRecord, Journal, JournalError, Millis, RevisionRecord, SCHEMA_VERSION,
    Seq,
};

/// Name of the format in the header line.
pub const FORMAT: &str = "deckhand-journal";
/// Version of the text format.
pub const FORMAT_VERSION: u32 = 1;

/// One line of the text form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    /// First line: what this is.
    Header {
        /// [`FORMAT`].
        format: String,
        /// [`FORMAT_VERSION`].
        version: u32,
        /// Journal schema version the data comes from.
        schema: u32,
    },
    /// A job, as its projection stands.
    Job {
        /// The job.
        #[serde(flatten)]
        job: JobRecord,
        /// Its idempotency key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        idempotency_key: Option<String>,
        /// What the key was given for (a digest of the request).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        idempotency_fingerprint: Option<String>,
    },
    /// An event.
    Event(EventRecord),
    /// A target and its current revision.
    Target {
        /// Name.
        name: String,
        /// Current revision number.
        current_revision: Option<u64>,
    },
    /// A committed revision.
    Revision {
        /// Target name.
        target: String,
        /// The revision.
        #[serde(flatten)]
        revision: RevisionRecord,
    },
    /// A plugin registration.
    Plugin {
        /// Workflow name.
        name: String,
        /// Component digest.
        digest: String,
        /// When.
        registered_at: Millis,
    },
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Jobs imported.
    pub jobs: usize,
    /// Events imported.
    pub events: usize,
    /// The line number of a torn last line that was left out.
    pub torn_last_line: Option<usize>,
}

/// Why an import was refused (nothing was imported).
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {detail}")]
pub struct ImportError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub detail: String,
}

fn line_of(l: &Line) -> String {
    serde_json::to_string(l).expect("lines serialize")
}

impl Journal {
    /// The text form of the whole journal, or of one job (its job and events,
    /// its target and the revisions it made).
    pub fn export(&self, job: Option<&JobId>) -> Result<String, JournalError> {
        self.export_mapped(job, &mut |_| {})
    }

    /// [`Journal::export`], each job, event and revision passed through
    /// `map` as JSON first (jobs come before events; a map that learns from
    /// jobs can use it on their events). For a view of the journal that
    /// leaves something out, such as secrets; the result still imports.
    pub fn export_mapped(
        &self,
        job: Option<&JobId>,
        map: &mut dyn FnMut(&mut serde_json::Value),
    ) -> Result<String, JournalError> {
        // Through JSON and back: the line keeps its fields' order.
        fn mapped<T: Serialize + serde::de::DeserializeOwned>(
            t: T,
            map: &mut dyn FnMut(&mut serde_json::Value),
        ) -> T {
            let Ok(mut v) = serde_json::to_value(&t) else {
                return t;
            };
            map(&mut v);
            serde_json::from_value(v).unwrap_or(t)
        }
        let jobs: Vec<JobRecord> = match job {
            Some(id) => vec![
                self.job(id)?
                    .ok_or_else(|| JournalError::UnknownJob(id.clone()))?,
            ],
            None => {
                let mut all = self.list_jobs(&super::JobFilter {
                    include_dismissed: true,
                    ..Default::default()
                })?;
                all.reverse();
                all
            }
        };
        let mut out = line_of(&Line::Header {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            schema: SCHEMA_VERSION,
        }) + "\n";
        // One query each for the keys and the events, whatever the size.
        type Keyed = (String, Option<String>);
        let mut keys: HashMap<String, Keyed> = self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, idempotency_key, idempotency_fingerprint FROM jobs WHERE idempotency_key IS NOT NULL",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })?;
        for j in &jobs {
            let (idempotency_key, idempotency_fingerprint) = match keys.remove(j.id.as_str()) {
                Some((key, fingerprint)) => (Some(key), fingerprint),
                None => (None, None),
            };
            out += &(line_of(&Line::Job {
                job: mapped(j.clone(), map),
                idempotency_key,
                idempotency_fingerprint,
            }) + "\n");
        }
        let events = match job {
            Some(id) => self.events(id, 0)?,
            None => self.read(|c| {
                let mut stmt =
                    c.prepare("SELECT seq, job_id, at, data FROM events ORDER BY seq")?;
                let rows = stmt.query_map([], super::raw_event)?;
                rows.map(|r| super::decode_event(r?)).collect()
            })?,
        };
        for e in events {
            out += &(line_of(&Line::Event(mapped(e, map))) + "\n");
        }
        let targets = match job {
            Some(_) => jobs
                .iter()
                .filter_map(|j| self.target(&j.target).transpose())
                .collect::<Result<Vec<_>, _>>()?,
            None => self.targets()?,
        };
        for t in &targets {
            out += &(line_of(&Line::Target {
                name: t.name.clone(),
                current_revision: t.current.as_ref().map(|r| r.revision),
            }) + "\n");
        }
        for t in &targets {
            for r in &t.history {
                if job.is_none_or(|id| r.job_id == *id) {
                    out += &(line_of(&Line::Revision {
                        target: t.name.clone(),
                        revision: mapped(r.clone(), map),
                    }) + "\n");
                }
            }
        }
        if job.is_none() {
            for (name, digest, registered_at) in self.plugin_registrations()? {
                out += &(line_of(&Line::Plugin {
                    name,
                    digest,
                    registered_at,
                }) + "\n");
            }
        }
        Ok(out)
    }

    /// Read the text form into this journal, all or nothing.
    pub async fn import(&self, text: &str) -> Result<ImportReport, ImportError> {
        let lines = parse(text)?;
        let report = ImportReport {
            jobs: lines
                .0
                .iter()
                .filter(|l| matches!(l, Line::Job { .. }))
                .count(),
            events: lines
                .0
                .iter()
                .filter(|l| matches!(l, Line::Event(_)))
                .count(),
            torn_last_line: lines.1,
        };
        let parsed = lines.0;
        self.inner
            .writer
            .write(move |c, _| {
                insert_all(c, &parsed)?;
                super::resources::rebuild(c)
            })
            .await
            .map_err(|e| match e {
                JournalError::Corrupt { what, detail } => ImportError {
                    line: what.parse().unwrap_or(0),
                    detail,
                },
                other => ImportError {
                    line: 0,
                    detail: other.to_string(),
                },
            })?;
        Ok(report)
    }
}

/// Parse and validate; returns the lines and a torn last line's number.
fn parse(text: &str) -> Result<(Vec<Line>, Option<usize>), ImportError> {
    let raw: Vec<&str> = text.split('\n').collect();
    let ends_with_newline = text.ends_with('\n');
    let count = if ends_with_newline {
        raw.len() - 1
    } else {
        raw.len()
    };
    let mut lines = Vec::new();
    let mut torn = None;
    let mut last_seq: Seq = 0;
    let mut jobs = std::collections::BTreeSet::new();
    let mut rank = 0;
    for (i, raw_line) in raw.iter().take(count).enumerate() {
        let n = i + 1;
        let line: Line = match serde_json::from_str(raw_line) {
            Ok(l) => l,
            Err(_) if n == count && !ends_with_newline && n > 1 => {
                torn = Some(n);
                break;
            }
            Err(e) => {
                return Err(ImportError {
                    line: n,
                    detail: format!("not a journal record: {e}"),
                });
            }
        };
        // Sections come in a fixed order.
        let this_rank = match &line {
            Line::Header { .. } => 0,
            Line::Job { .. } => 1,
            Line::Event(_) => 2,
            Line::Target { .. } => 3,
            Line::Revision { .. } => 4,
            Line::Plugin { .. } => 5,
        };
        if n == 1 {
            match &line {
                Line::Header {
                    format,
                    version,
                    schema,
                } if format == FORMAT
                    && *version == FORMAT_VERSION
                    && *schema <= SCHEMA_VERSION => {}
                Line::Header { .. } => {
                    return Err(ImportError {
                        line: 1,
                        detail: format!(
                            "unsupported header (this build reads {FORMAT} version {FORMAT_VERSION}, schema ≤ {SCHEMA_VERSION})"
                        ),
                    });
                }
                _ => {
                    return Err(ImportError {
                        line: 1,
                        detail: "the first line must be the header".into(),
                    });
                }
            }
        } else if this_rank == 0 {
            return Err(ImportError {
                line: n,
                detail: "a second header".into(),
            });
        }
        if this_rank < rank {
            return Err(ImportError { line: n, detail: "out of order: records come as header, jobs, events, targets, revisions, plugins".into() });
        }
        rank = this_rank;
        match &line {
            Line::Job { job, .. } => {
                jobs.insert(job.id.clone());
            }
            Line::Event(e) => {
                if e.seq <= last_seq {
                    return Err(ImportError {
                        line: n,
                        detail: format!("out of order: event {} after event {last_seq}", e.seq),
                    });
                }
                if !jobs.contains(&e.job_id) {
                    return Err(ImportError {
                        line: n,
                        detail: format!(
                            "event {} belongs to job {}, which is not in the file",
                            e.seq, e.job_id
                        ),
                    });
                }
                last_seq = e.seq;
            }
            _ => {}
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return Err(ImportError {
            line: 1,
            detail: "empty input".into(),
        });
    }
    Ok((lines, torn))
}

fn corrupt_at(line: usize, detail: String) -> JournalError {
    JournalError::Corrupt {
        what: line.to_string(),
        detail,
    }
}

fn insert_all(c: &Connection, lines: &[Line]) -> Result<(), JournalError> {
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let fail = |e: rusqlite::Error| corrupt_at(n, format!("cannot import: {e}"));
        match line {
            Line::Header { .. } => {}
            Line::Job {
                job: j,
                idempotency_key,
                idempotency_fingerprint,
            } => {
                c.execute(
                    "INSERT INTO jobs (id, workflow, target, params, plugin_digest, state, phase, progress, error, summary, cancel_requested, dismissed, created_at, updated_at, idempotency_key, idempotency_fingerprint)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                    params![
                        j.id.as_str(),
                        j.workflow,
                        j.target,
                        j.params.to_string(),
                        j.plugin_digest,
                        j.state.as_str(),
                        j.phase,
                        serde_json::to_string(&j.progress).expect("progress serializes"),
                        j.error,
                        j.summary,
                        j.cancel_requested,
                        j.dismissed,
                        j.created_at,
                        j.updated_at,
                        idempotency_key,
                        idempotency_fingerprint
                    ],
                )
                .map_err(fail)?;
            }
            Line::Event(e) => {
                c.execute(
                    "INSERT INTO events (seq, job_id, at, kind, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        e.seq,
                        e.job_id.as_str(),
                        e.at,
                        e.event.kind(),
                        serde_json::to_string(&e.event).expect("events serialize")
                    ],
                )
                .map_err(fail)?;
            }
            Line::Target {
                name,
                current_revision,
            } => {
                c.execute(
                    "INSERT INTO targets (name, current_revision) VALUES (?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET current_revision = excluded.current_revision",
                    params![name, current_revision.map(|r| r as i64)],
                )
                .map_err(fail)?;
            }
            Line::Revision {
                target,
                revision: r,
            } => {
                c.execute(
                    "INSERT INTO revisions (target, revision, image, container_id, spec, job_id, created_at, services) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![target, r.revision as i64, r.image, r.container_id, r.spec.to_string(), r.job_id.as_str(), r.created_at, super::targets::services_json(&r.services)],
                )
                .map_err(fail)?;
            }
            Line::Plugin {
                name,
                digest,
                registered_at,
            } => {
                c.execute(
                    "INSERT INTO plugins (name, digest, registered_at) VALUES (?1, ?2, ?3)",
                    params![name, digest, registered_at],
                )
                .map_err(fail)?;
            }
        }
    }
    Ok(())
}

/// Validate text without importing it.
pub fn validate(text: &str) -> Result<ImportReport, ImportError> {
    let (lines, torn) = parse(text)?;
    Ok(ImportReport {
        jobs: lines
            .iter()
            .filter(|l| matches!(l, Line::Job { .. }))
            .count(),
        events: lines.iter().filter(|l| matches!(l, Line::Event(_))).count(),
        torn_last_line: torn,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{IdempotencyKey, NewJob};
    use super::*;

    #[tokio::test]
    async fn an_idempotency_key_and_its_fingerprint_survive_export_and_import() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path().join("a.sqlite")).unwrap();
        let new = |key: Option<IdempotencyKey>| NewJob {
            id: JobId::new(),
            workflow: "install".into(),
            target: "web".into(),
            params: serde_json::json!({"image": "app:1"}),
            plugin_digest: "sha256:00".into(),
            idempotency_key: key,
        };
        let key = IdempotencyKey {
            key: "k".into(),
            fingerprint: "sha256:ab".into(),
        };
        let job = journal.create_job(new(Some(key.clone()))).await.unwrap();
        // The key taken: nothing written, the key's job answered.
        let again = journal.create_job(new(Some(key))).await.unwrap();
        assert_eq!(again.id, job.id);
        journal.create_job(new(None)).await.unwrap();
        assert_eq!(journal.list_jobs(&Default::default()).unwrap().len(), 2);

        let text = journal.export(None).unwrap();
        let copy = Journal::open(dir.path().join("b.sqlite")).unwrap();
        copy.import(&text).await.unwrap();
        assert_eq!(copy.export(None).unwrap(), text);
        let (found, fingerprint) = copy.job_by_idempotency_key("k").unwrap().unwrap();
        assert_eq!(found.id, job.id);
        assert_eq!(fingerprint.as_deref(), Some("sha256:ab"));
    }
}
