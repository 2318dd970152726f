//! Evidence of a failed container: the end of its logs is journaled before
//! the rollback removes it, shown by `jobs show` and `replay --timeline`,
//! bounded, and never fetched by a replay.

use std::sync::Arc;

use deckhand::journal::{Event, EventRecord, JobState};
use deckhand::runtime::MemoryRuntime;
use deckhand::runtime::memory::{CRASH_LOG_LINE, Fault, Op};
use serde_json::json;

use crate::harness::*;

/// How much of a failed container's logs the journal keeps.
const EVIDENCE_LOG_BYTES: usize = 64 << 10;

/// The log events of a job: (seq, level, message).
fn logs(events: &[EventRecord]) -> Vec<(i64, String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Log { level, message } => Some((e.seq, level.clone(), message.clone())),
            _ => None,
        })
        .collect()
}

/// The seqs of the `wait_healthy` step's intent and result.
fn wait_healthy_step(events: &[EventRecord]) -> (i64, i64) {
    let (seq, step) = events
        .iter()
        .find_map(|e| match &e.event {
            Event::Intent { step, call, .. } if call["op"] == "wait_healthy" => {
                Some((e.seq, *step))
            }
            _ => None,
        })
        .expect("a wait_healthy step");
    let result = events
        .iter()
        .find_map(|e| match &e.event {
            Event::Result { step: s, .. } if *s == step => Some(e.seq),
            _ => None,
        })
        .expect("its result");
    (seq, result)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_containers_logs_outlive_it_in_the_journal_jobs_show_and_replay() {
    let rt = Arc::new(
        MemoryRuntime::new()
            .with_crashing_image("bad:1")
            .with_image_logs("bad:1", "app: starting\napp: connecting to db:5432\n"),
    );
    let (dir, executor) = memory_engine(rt.clone());
    let job = submit_and_wait(&executor, "install", "web", json!({"image": "bad:1"})).await;
    assert_eq!(job.state, JobState::RolledBack);
    assert!(
        job.error.as_deref().unwrap().contains("exited with code 1"),
        "{:?}",
        job.error
    );
    assert!(
        rt.containers().is_empty(),
        "the rollback removed the container"
    );

    // Kept in the journal, between the health wait's intent and its result.
    let events = executor.journal().events(&job.id, 0).unwrap();
    let (intent, result) = wait_healthy_step(&events);
    let evidence: Vec<_> = logs(&events)
        .into_iter()
        .filter(|(_, _, m)| m.starts_with("container deckhand-web logs"))
        .collect();
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    let (seq, level, message) = &evidence[0];
    assert!(
        intent < *seq && *seq < result,
        "{intent} < {seq} < {result}"
    );
    assert_eq!(level, "error");
    let text = format!("app: starting\napp: connecting to db:5432\n{CRASH_LOG_LINE}");
    assert_eq!(
        message,
        &format!(
            "container deckhand-web logs (last {} bytes):\n{}",
            text.len(),
            text.trim_end()
        )
    );

    // `jobs show` (and `replay --timeline`) print it as a block under its event.
    let id = job.id.to_string();
    for args in [
        vec!["jobs", "show", id.as_str()],
        vec!["replay", id.as_str(), "--timeline"],
    ] {
        let shown = run_cli(dir.path(), &args, None);
        let out = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.status.success(), "{args:?}: {}", cli_text(&shown));
        let at = out
            .find("log     [error] container deckhand-web logs (last ")
            .unwrap_or_else(|| panic!("{args:?}:\n{out}"));
        let block: Vec<&str> = out[at..].lines().skip(1).take(3).collect();
        assert_eq!(
            block,
            [
                format!("{:27}| app: starting", ""),
                format!("{:27}| app: connecting to db:5432", ""),
                format!("{:27}| {}", "", CRASH_LOG_LINE.trim_end()),
            ],
            "{args:?}:\n{out}"
        );
    }

    // A replay answers from the record: it reads no logs and agrees.
    let calls = rt.calls();
    let report = deckhand::replay::replay(executor.host(), executor.journal(), &job, None, None)
        .await
        .unwrap();
    assert!(report.divergence.is_none(), "{:?}", report.divergence);
    assert!(report.same_outcome, "{report:?}");
    assert_eq!(rt.calls(), calls, "the replay touched no runtime");
    assert!(
        !report
            .observed
            .iter()
            .any(|o| o.to_string().contains("deckhand-web logs")),
        "the replay fetched no logs: {:?}",
        report.observed
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_logging_megabytes_leaves_only_the_last_64_kib_outside_the_plugins_log_budget()
{
    let lines: String = (0..40_000)
        .map(|i| format!("line {i:06}: the app says a lot\n"))
        .collect();
    assert!(lines.len() > 1 << 20);
    let rt = Arc::new(
        MemoryRuntime::new()
            .with_crashing_image("loud:1")
            .with_image_logs("loud:1", &lines),
    );
    // The plugin's own log budget is tiny; the engine's evidence is not part of it.
    let settings = deckhand::plugin::HostSettings {
        max_log_bytes: 64,
        ..quick_settings()
    };
    let (_dir, executor) = memory_engine_with(rt.clone(), settings);
    let job = submit_and_wait(&executor, "install", "web", json!({"image": "loud:1"})).await;
    assert_eq!(job.state, JobState::RolledBack, "{:?}", job.error);
    let events = executor.journal().events(&job.id, 0).unwrap();
    let (_, _, message) = logs(&events)
        .into_iter()
        .find(|(_, _, m)| m.starts_with("container deckhand-web logs"))
        .expect("the evidence");
    let (header, tail) = message.split_once('\n').unwrap();
    assert!(tail.len() <= EVIDENCE_LOG_BYTES, "{} bytes", tail.len());
    assert!(
        tail.len() > EVIDENCE_LOG_BYTES - 100,
        "{} bytes",
        tail.len()
    );
    assert_eq!(header, "container deckhand-web logs (last 65536 bytes):");
    assert!(tail.ends_with(CRASH_LOG_LINE.trim_end()), "the end is kept");
    assert!(tail.contains("line 039999: the app says a lot\n"));
    assert!(!tail.contains("line 000000"), "the start is dropped");
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_that_cannot_be_read_are_noted_and_the_job_fails_for_its_own_reason() {
    let rt = Arc::new(MemoryRuntime::new().with_crashing_image("bad:1"));
    rt.inject(Op::Logs, Fault::Fail("log driver says no".into()), 1);
    let (_dir, executor) = memory_engine(rt.clone());
    let job = submit_and_wait(&executor, "install", "web", json!({"image": "bad:1"})).await;
    assert_eq!(job.state, JobState::RolledBack);
    assert!(
        job.error.as_deref().unwrap().contains("exited with code 1"),
        "{:?}",
        job.error
    );
    assert!(rt.containers().is_empty());
    let events = executor.journal().events(&job.id, 0).unwrap();
    let noted: Vec<_> = logs(&events)
        .into_iter()
        .filter(|(_, _, m)| m.contains("deckhand-web logs"))
        .map(|(_, level, m)| (level, m))
        .collect();
    assert_eq!(
        noted,
        [(
            "warn".to_owned(),
            "container deckhand-web logs could not be read: log driver says no".to_owned()
        )]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_that_comes_up_leaves_no_logs_in_the_journal() {
    let rt = Arc::new(MemoryRuntime::new().with_image_logs("app:1", "app: listening\n"));
    let (_dir, executor) = memory_engine(rt.clone());
    let job = submit_and_wait(&executor, "install", "web", json!({"image": "app:1"})).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let events = executor.journal().events(&job.id, 0).unwrap();
    assert!(
        !logs(&events)
            .iter()
            .any(|(_, _, m)| m.contains("deckhand-web logs")),
        "{:?}",
        logs(&events)
    );
}
