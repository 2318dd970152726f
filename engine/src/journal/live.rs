//! Who hears about events once they are durable: subscribers to every event
//! (a broadcast of the records) and watchers of one job (a wake-up carrying
//! the job's latest sequence number).
//!
//! A watcher of one job is woken by that job's events only, and is handed no
//! copies: it reads what it needs from the journal. That keeps the cost of a
//! commit independent of how many other jobs are being watched — a thousand
//! open event streams do not each receive every job's events.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{broadcast, watch};

use super::{EventRecord, JobId, Seq};

/// Past this many watched jobs, registering a watcher first forgets the jobs
/// nobody watches any more.
const SWEEP_ABOVE: usize = 1024;

/// The fan-out of committed events.
pub(super) struct Publisher {
    all: broadcast::Sender<EventRecord>,
    jobs: Mutex<HashMap<JobId, watch::Sender<Seq>>>,
}

impl Publisher {
    pub(super) fn new() -> Publisher {
        Publisher {
            all: broadcast::channel(4096).0,
            jobs: Mutex::default(),
        }
    }

    /// Every event published from now on.
    pub(super) fn subscribe(&self) -> broadcast::Receiver<EventRecord> {
        self.all.subscribe()
    }

    /// A receiver that changes whenever `job` gets a durable event.
    pub(super) fn watch(&self, job: &JobId) -> watch::Receiver<Seq> {
        let mut jobs = self.jobs.lock().expect("job watchers lock");
        if jobs.len() > SWEEP_ABOVE {
            jobs.retain(|_, tx| tx.receiver_count() > 0);
        }
        jobs.entry(job.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Hand durable events to their listeners, in order.
    pub(super) fn publish(&self, events: Vec<EventRecord>) {
        {
            let mut jobs = self.jobs.lock().expect("job watchers lock");
            if !jobs.is_empty() {
                for ev in &events {
                    let watched = jobs.get(&ev.job_id).map(|tx| tx.receiver_count() > 0);
                    match watched {
                        Some(true) => {
                            jobs[&ev.job_id].send_replace(ev.seq);
                        }
                        Some(false) => {
                            jobs.remove(&ev.job_id);
                        }
                        None => {}
                    }
                }
            }
        }
        for ev in events {
            // Nobody listening is fine.
            let _ = self.all.send(ev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Event;

    fn record(job: &JobId, seq: Seq) -> EventRecord {
        EventRecord {
            seq,
            job_id: job.clone(),
            at: 0,
            event: Event::Log {
                level: "info".into(),
                message: "x".into(),
            },
        }
    }

    #[tokio::test]
    async fn a_watcher_wakes_for_its_job_only() {
        let publisher = Publisher::new();
        let (mine, other) = (JobId::new(), JobId::new());
        let mut rx = publisher.watch(&mine);
        publisher.publish(vec![record(&other, 1)]);
        assert!(!rx.has_changed().unwrap());
        publisher.publish(vec![record(&mine, 2), record(&other, 3)]);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 2);
    }

    #[tokio::test]
    async fn a_dropped_watcher_is_forgotten() {
        let publisher = Publisher::new();
        let job = JobId::new();
        drop(publisher.watch(&job));
        publisher.publish(vec![record(&job, 1)]);
        assert!(publisher.jobs.lock().unwrap().is_empty());
    }
}
