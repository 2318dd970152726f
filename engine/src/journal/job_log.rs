//! One job's writes, in order, where the events that need not be durable on
//! their own wait for the job's next durable write.
//!
//! Write-ahead only needs an intent to be durable before its effect starts.
//! An outcome, a read's record or a phase can ride along with whatever the
//! job writes next — one fsync a step instead of two or three. Losing them
//! to a crash costs nothing recovery does not already handle: an intent
//! without its outcome is resolved by asking the runtime, and undos and
//! commit effects are idempotent.

use super::{Event, JobId, Journal, JournalError, Seq};

/// A job's event writer; see the module docs.
pub struct JobLog {
    journal: Journal,
    job: JobId,
    unwritten: Vec<Event>,
}

impl JobLog {
    /// A writer for `job`'s events.
    pub fn new(journal: Journal, job: JobId) -> JobLog {
        JobLog {
            journal,
            job,
            unwritten: Vec::new(),
        }
    }

    /// Queue `event`; it is written, in order, with the next
    /// [`write`](Self::write) or [`flush`](Self::flush).
    pub fn later(&mut self, event: Event) {
        self.unwritten.push(event);
    }

    /// Write `event` durably, after everything queued, in one transaction.
    pub async fn write(&mut self, event: Event) -> Result<Seq, JournalError> {
        self.write_all(vec![event]).await
    }

    /// Write `events` durably, after everything queued, in one transaction.
    /// Refused, it writes nothing, and what was queued stays queued.
    pub async fn write_all(&mut self, events: Vec<Event>) -> Result<Seq, JournalError> {
        let queued = self.unwritten.len();
        let mut all = std::mem::take(&mut self.unwritten);
        all.extend(events);
        // The journal consumes the events; keep a copy of the queued ones
        // only when there are any.
        let keep = (queued > 0).then(|| all[..queued].to_vec());
        let written = self.journal.append_all(&self.job, all).await;
        if written.is_err()
            && let Some(keep) = keep
        {
            self.unwritten = keep;
        }
        written
    }

    /// Write whatever is queued, durably.
    pub async fn flush(&mut self) -> Result<(), JournalError> {
        if self.unwritten.is_empty() {
            return Ok(());
        }
        self.write_all(Vec::new()).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::JobState;

    async fn journal_with_job() -> (tempfile::TempDir, Journal, JobId) {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path().join("j.sqlite")).unwrap();
        let job = journal
            .create_job(crate::journal::tests::new_job("web"))
            .await
            .unwrap();
        (dir, journal, job.id)
    }

    fn log_line(message: &str) -> Event {
        Event::Log {
            level: "info".into(),
            message: message.into(),
        }
    }

    fn messages(journal: &Journal, job: &JobId) -> Vec<String> {
        journal
            .events(job, 0)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.event {
                Event::Log { message, .. } => Some(message),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn queued_events_are_written_in_order_with_the_next_write() {
        let (_dir, journal, job) = journal_with_job().await;
        let mut log = JobLog::new(journal.clone(), job.clone());
        log.later(log_line("a"));
        log.later(log_line("b"));
        assert!(messages(&journal, &job).is_empty(), "nothing written yet");
        log.write(log_line("c")).await.unwrap();
        assert_eq!(messages(&journal, &job), ["a", "b", "c"]);
        log.later(log_line("d"));
        log.flush().await.unwrap();
        assert_eq!(messages(&journal, &job), ["a", "b", "c", "d"]);
    }

    #[tokio::test]
    async fn a_refused_write_keeps_what_was_queued() {
        let (_dir, journal, job) = journal_with_job().await;
        let mut log = JobLog::new(journal.clone(), job.clone());
        crate::journal::tests::succeed(&journal, &job).await;
        log.later(log_line("kept"));
        // A terminal job takes no more state changes: refused, nothing written.
        let refused = log
            .write(Event::State {
                state: JobState::Running,
                error: None,
            })
            .await;
        assert!(matches!(refused, Err(JournalError::Terminal { .. })));
        assert!(messages(&journal, &job).is_empty());
        // Logs are still taken after the end; the queued line goes with it.
        log.flush().await.unwrap();
        assert_eq!(messages(&journal, &job), ["kept"]);
    }
}
