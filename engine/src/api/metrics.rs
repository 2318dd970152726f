//! Prometheus metrics: jobs by state (read from the journal at scrape time),
//! step latency (intent → result, from the journal's live events), journal
//! append latency, and open event streams.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::journal::{Event, JobId, JobState, Journal, Millis};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    jobs: Family<StateLabel, Gauge>,
    /// Open `/events` streams.
    pub sse_streams: Gauge,
    journal_writable: Gauge,
    docker_reachable: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Register the metrics and start observing `journal`.
    pub fn new(journal: &Journal) -> std::sync::Arc<Self> {
        let mut registry = Registry::with_prefix("deckhand");
        let jobs = Family::<StateLabel, Gauge>::default();
        registry.register("jobs", "Jobs in the journal by state", jobs.clone());
        let step_seconds = Histogram::new(exponential_buckets(0.001, 4.0, 10));
        registry.register(
            "step_duration_seconds",
            "Time from a step's intent to its result",
            step_seconds.clone(),
        );
        let append_seconds = Histogram::new(exponential_buckets(0.000_05, 3.0, 12));
        registry.register(
            "journal_append_seconds",
            "Latency of a durable journal append",
            append_seconds.clone(),
        );
        let sse_streams = Gauge::default();
        registry.register("sse_streams", "Open job event streams", sse_streams.clone());
        let journal_writable = Gauge::default();
        registry.register(
            "journal_writable",
            "1 when the journal takes writes, 0 while it cannot (disk full, I/O error)",
            journal_writable.clone(),
        );
        let docker_reachable = Gauge::default();
        registry.register(
            "docker_reachable",
            "1 when the Docker daemon answers, 0 while it is away",
            docker_reachable.clone(),
        );

        let observe = append_seconds.clone();
        journal.observe_appends(std::sync::Arc::new(move |s| observe.observe(s)));

        let steps = step_seconds.clone();
        let mut live = journal.subscribe();
        tokio::spawn(async move {
            let started: Mutex<HashMap<(JobId, u32), Millis>> = Mutex::default();
            loop {
                match live.recv().await {
                    Ok(rec) => match rec.event {
                        Event::Intent { step, .. } => {
                            started
                                .lock()
                                .expect("step timer lock")
                                .insert((rec.job_id, step), rec.at);
                        }
                        Event::Result { step, .. } => {
                            if let Some(at) = started
                                .lock()
                                .expect("step timer lock")
                                .remove(&(rec.job_id, step))
                            {
                                steps.observe((rec.at - at).max(0) as f64 / 1000.0);
                            }
                        }
                        _ => {}
                    },
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        std::sync::Arc::new(Metrics {
            registry,
            jobs,
            sse_streams,
            journal_writable,
            docker_reachable,
        })
    }

    /// The text exposition, with job counts read now and the given
    /// availability of the journal and the Docker daemon.
    pub fn render(
        &self,
        journal: &Journal,
        journal_writable: bool,
        docker_reachable: bool,
    ) -> Result<String, crate::journal::JournalError> {
        self.journal_writable.set(i64::from(journal_writable));
        self.docker_reachable.set(i64::from(docker_reachable));
        let counts: HashMap<JobState, u64> = journal.count_by_state()?.into_iter().collect();
        for state in JobState::ALL {
            let n = counts.get(&state).copied().unwrap_or(0);
            self.jobs
                .get_or_create(&StateLabel {
                    state: state.to_string(),
                })
                .set(n as i64);
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        Ok(out)
    }
}
