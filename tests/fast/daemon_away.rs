//! The engine while the container daemon is away, on the in-memory runtime
//! (whose `Unreachable` fault answers as a daemon that is down would):
//! undos wait for it, a rollback that gave up is retried by itself, no job
//! is accepted meanwhile, and no job runs on top of an unfinished rollback.

use std::sync::Arc;
use std::time::Duration;

use deckhand::executor::{JobRequest, SubmitError};
use deckhand::journal::{Event, JobState};
use deckhand::plugin::HostSettings;
use deckhand::runtime::MemoryRuntime;
use deckhand::runtime::memory::{Fault, Op};
use serde_json::json;

use crate::harness::*;

fn settings(daemon_retry_ms: u64) -> HostSettings {
    HostSettings {
        daemon_retry_deadline: Duration::from_millis(daemon_retry_ms),
        ..quick_settings()
    }
}

/// An installed `web` on app:1, and an upgrade to a crashing image that
/// will roll back, with the undo `start` of the old container meeting a
/// daemon that is away `times` times.
async fn upgrade_rolling_back_into_an_absent_daemon(
    daemon_retry_ms: u64,
    times: usize,
) -> (
    Arc<MemoryRuntime>,
    tempfile::TempDir,
    deckhand::executor::Executor,
    String,
    deckhand::journal::JobRecord,
) {
    let rt = Arc::new(MemoryRuntime::new().with_crashing_image("bad:2"));
    let (dir, executor) = memory_engine_with(rt.clone(), settings(daemon_retry_ms));
    let install = submit_and_wait(&executor, "install", "web", json!({"image": "app:1"})).await;
    assert_eq!(install.state, JobState::Succeeded);
    let old = rt.containers().keys().next().unwrap().clone();
    let upgrade = executor
        .submit(JobRequest::new("upgrade", "web", json!({"image": "bad:2"})))
        .await
        .unwrap();
    // Once the new container has started (and crashed), the daemon goes away.
    let mut live = executor.journal().subscribe();
    loop {
        let ev = live.recv().await.unwrap();
        if ev.job_id == upgrade.id
            && matches!(&ev.event, Event::Intent { call, .. } if call["op"] == "wait_healthy")
        {
            break;
        }
    }
    rt.inject(Op::Start, Fault::Unreachable, times);
    let done = executor.wait(&upgrade.id).await.unwrap();
    (rt, dir, executor, old, done)
}

#[tokio::test(flavor = "multi_thread")]
async fn undos_wait_for_a_daemon_that_is_away_and_finish_when_it_is_back() {
    let (rt, _dir, _executor, old, done) =
        upgrade_rolling_back_into_an_absent_daemon(30_000, 3).await;
    assert_eq!(done.state, JobState::RolledBack, "{:?}", done.error);
    let c = &rt.containers()[&old];
    assert!(c.running && c.name == "deckhand-web", "{c:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_that_gave_up_on_an_absent_daemon_is_retried_by_itself_once_it_is_back() {
    // The undo gives up after 300 ms (two tries); the daemon stays away for
    // three calls, so the first background retry finds it back.
    let (rt, _dir, executor, old, done) = upgrade_rolling_back_into_an_absent_daemon(300, 3).await;
    assert_eq!(done.state, JobState::Failed, "{:?}", done.error);
    let error = done.error.clone().unwrap();
    assert!(
        error.contains("not reachable") && !error.contains("hyper"),
        "the error says in words what is wrong: {error}"
    );
    // Planned as the job's run ends, a moment after its terminal record.
    let mut planned = None;
    for _ in 0..50 {
        planned = executor.auto_retry(&done.id);
        if planned.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let planned = planned.expect("a background retry is planned");
    assert_eq!(planned.attempts, 0);
    assert!(planned.next_at > done.updated_at);
    // Its first attempt comes 5 s later; the daemon answers again by then.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job = executor.journal().job(&done.id).unwrap().unwrap();
        if job.state == JobState::RolledBack {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not retried: {:?} {:?}",
            job.state,
            executor.auto_retry(&done.id)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(executor.auto_retry(&done.id).is_none());
    let c = &rt.containers()[&old];
    assert!(c.running && c.name == "deckhand-web", "{c:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_submitted_while_the_daemon_is_away_is_refused_and_nothing_is_written() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor) = memory_engine(rt.clone());
    rt.inject(Op::Ping, Fault::Unreachable, 1);
    let refused = executor
        .submit(JobRequest::new("install", "web", json!({"image": "app:1"})))
        .await;
    match refused {
        Err(SubmitError::RuntimeUnavailable(e)) => assert!(e.is_transient()),
        other => panic!("expected the daemon to be named unavailable, got {other:?}"),
    }
    assert_no_jobs(executor.journal());
    assert!(rt.containers().is_empty() && rt.images().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_job_runs_on_a_target_whose_failed_job_did_not_finish_its_rollback_unless_forced() {
    let rt = Arc::new(MemoryRuntime::new().with_crashing_image("bad:1"));
    let (_dir, executor) = memory_engine(rt.clone());
    // Every attempt of the undo fails: the install ends `failed`.
    rt.inject(Op::RemoveContainer, Fault::Fail("daemon hiccup".into()), 5);
    let failed = submit_and_wait(&executor, "install", "web", json!({"image": "bad:1"})).await;
    assert_eq!(failed.state, JobState::Failed);

    let refused = executor
        .submit(JobRequest::new("install", "web", json!({"image": "app:1"})))
        .await;
    match refused {
        Err(SubmitError::NeedsAttention { job, .. }) => assert_eq!(job, failed.id),
        other => panic!("expected target-needs-attention, got {other:?}"),
    }

    let mut forced = JobRequest::new("install", "web", json!({"image": "app:1"}));
    forced.force = true;
    let job = executor.submit(forced).await.unwrap();
    let done = executor.wait(&job.id).await.unwrap();
    // The failed job's leftover container still holds the name: the forced
    // install fails on it, and rolls back cleanly. What matters here: it ran.
    assert!(done.state.is_terminal());
    let old = executor.journal().job(&failed.id).unwrap().unwrap();
    assert!(
        old.dismissed,
        "the operator's decision dismisses the failed job"
    );
    let events = executor.journal().events(&failed.id, 0).unwrap();
    assert!(
        events.iter().any(|e| matches!(
            &e.event,
            Event::Log { message, .. } if message.contains(&job.id.to_string()) && message.contains("superseded")
        )),
        "the decision is journaled on the failed job"
    );
    assert!(matches!(
        executor.retry(&failed.id).await,
        Err(deckhand::executor::RetryError::Dismissed(_))
    ));
}
