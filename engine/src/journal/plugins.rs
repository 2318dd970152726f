//! Plugin registrations: which component digest each workflow name runs;
//! the latest registration of a name is current.

use rusqlite::params;

use super::*;

impl Journal {
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
}
