//! The journal's SQLite schema and its migrations.
//!
//! The schema version lives in `PRAGMA user_version`. Each migration moves it
//! up by one inside a transaction; a journal from a newer Deckhand is refused
//! rather than guessed at.

use rusqlite::Connection;

use super::JournalError;

/// Migrations in order; entry `i` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: jobs (a projection of their events), the event log, targets and revisions.
    r#"
    CREATE TABLE jobs (
        id               TEXT PRIMARY KEY,
        workflow         TEXT NOT NULL,
        target           TEXT NOT NULL,
        params           TEXT NOT NULL,
        plugin_digest    TEXT NOT NULL,
        state            TEXT NOT NULL,
        phase            TEXT,
        progress         TEXT NOT NULL DEFAULT '{}',
        error            TEXT,
        summary          TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        dismissed        INTEGER NOT NULL DEFAULT 0,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL
    );
    CREATE INDEX jobs_by_target ON jobs (target, id);
    CREATE INDEX jobs_by_state ON jobs (state, id);

    CREATE TABLE events (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL REFERENCES jobs (id),
        at     INTEGER NOT NULL,
        kind   TEXT NOT NULL,
        data   TEXT NOT NULL
    );
    CREATE INDEX events_by_job ON events (job_id, seq);

    CREATE TABLE targets (
        name             TEXT PRIMARY KEY,
        current_revision INTEGER
    );
    CREATE TABLE revisions (
        target       TEXT NOT NULL REFERENCES targets (name),
        revision     INTEGER NOT NULL,
        image        TEXT NOT NULL,
        container_id TEXT NOT NULL,
        spec         TEXT NOT NULL,
        job_id       TEXT NOT NULL UNIQUE,
        created_at   INTEGER NOT NULL,
        PRIMARY KEY (target, revision)
    );
    "#,
    // 2: the client's Idempotency-Key of a job, unique when given.
    r#"
    ALTER TABLE jobs ADD COLUMN idempotency_key TEXT;
    CREATE UNIQUE INDEX jobs_by_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
    "#,
    // 3: registrations of workflow plugins; the latest per name is current.
    r#"
    CREATE TABLE plugins (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,
        name          TEXT NOT NULL,
        digest        TEXT NOT NULL,
        registered_at INTEGER NOT NULL
    );
    "#,
    // 4: what the engine owns (a projection of `acquired` / `released`
    // events), filled for older journals from their create steps.
    concat!(
        r#"
    CREATE TABLE resources (
        kind        TEXT NOT NULL,
        id          TEXT NOT NULL,
        name        TEXT NOT NULL,
        target      TEXT NOT NULL,
        job_id      TEXT NOT NULL,
        acquired_at INTEGER NOT NULL,
        released_at INTEGER,
        PRIMARY KEY (kind, id)
    );
    CREATE INDEX resources_by_target ON resources (kind, target) WHERE released_at IS NULL;
    CREATE INDEX resources_by_name ON resources (kind, name) WHERE released_at IS NULL;
    "#,
        super::resources::legacy_containers_sql!()
    ),
    // 5: what an Idempotency-Key was first given for (a digest of the
    // request), so that the key with another request is refused.
    r#"
    ALTER TABLE jobs ADD COLUMN idempotency_fingerprint TEXT;
    "#,
    // 6: the services of a stack revision (JSON list of
    // `{name, image, container_id, spec}`; empty for one container).
    r#"
    ALTER TABLE revisions ADD COLUMN services TEXT NOT NULL DEFAULT '[]';
    "#,
];

/// The schema version this build writes.
pub const CURRENT_VERSION: u32 = MIGRATIONS.len() as u32;

/// Bring the database up to [`CURRENT_VERSION`].
pub fn migrate(conn: &mut Connection) -> Result<(), JournalError> {
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > CURRENT_VERSION {
        return Err(JournalError::NewerSchema {
            found: version,
            supported: CURRENT_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        tx.commit()?;
    }
    Ok(())
}
