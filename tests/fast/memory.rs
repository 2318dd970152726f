//! The engine on the in-memory runtime with injected faults: what Docker
//! cannot be made to do on demand.

use std::sync::Arc;

use deckhand::executor::{Executor, JobRequest, SubmitError};
use deckhand::journal::{Event, JobId, JobRecord, JobState};
use deckhand::runtime::MemoryRuntime;
use deckhand::runtime::memory::{Fault, Op};
use serde_json::{Value, json};

use crate::harness::*;

/// An engine (quick settings) on the in-memory runtime `rt`: the runtime, to
/// inject faults and look at, the data directory, and the executor.
fn engine(rt: MemoryRuntime) -> (Arc<MemoryRuntime>, tempfile::TempDir, Executor) {
    let rt = Arc::new(rt);
    let (dir, executor) = memory_engine(rt.clone());
    (rt, dir, executor)
}

/// [`engine`] on a fresh runtime after these jobs (workflow, image) on
/// target `web`, each of which succeeded.
async fn engine_after(jobs: &[(&str, &str)]) -> (Arc<MemoryRuntime>, tempfile::TempDir, Executor) {
    let (rt, dir, executor) = engine(MemoryRuntime::new());
    for (workflow, image) in jobs {
        let done = submit_and_wait(&executor, workflow, "web", json!({ "image": image })).await;
        assert_eq!(done.state, JobState::Succeeded);
    }
    (rt, dir, executor)
}

/// Submit `workflow` on target `web`: the job, accepted (not waited for).
async fn submit(executor: &Executor, workflow: &str, params: Value) -> JobRecord {
    executor
        .submit(JobRequest::new(workflow, "web", params))
        .await
        .unwrap()
}

/// Submit `workflow` on target `web`, which must be refused: why.
async fn refused(executor: &Executor, workflow: &str, params: Value) -> SubmitError {
    executor
        .submit(JobRequest::new(workflow, "web", params))
        .await
        .unwrap_err()
}

/// Cancel job `id`, which must take the request, and wait for its end.
async fn cancel_and_wait(executor: &Executor, id: &JobId) -> JobRecord {
    assert!(executor.cancel(id, None).await.unwrap().cancelled);
    executor.wait(id).await.unwrap()
}

/// How many jobs the journal holds.
fn job_count(executor: &Executor) -> usize {
    executor
        .journal()
        .list_jobs(&Default::default())
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_error_during_rollback_ends_failed_and_retry_finishes_the_rollback() {
    let (rt, _dir, executor) = engine(MemoryRuntime::new().with_crashing_image("bad:1"));
    // Every attempt of the undo fails (it is retried a few times).
    rt.inject(Op::RemoveContainer, Fault::Fail("daemon hiccup".into()), 5);
    let job = submit_and_wait(&executor, "install", "web", json!({"image": "bad:1"})).await;
    assert_eq!(job.state, JobState::Failed);
    assert!(
        job.error.as_deref().unwrap().contains("daemon hiccup"),
        "{:?}",
        job.error
    );
    assert_eq!(
        rt.containers().len(),
        1,
        "the created container is still there"
    );
    // A new job on the target is possible (failed is terminal), retry finishes the undo.
    let retried = executor.retry(&job.id).await.unwrap();
    assert_eq!(retried.state, JobState::RolledBack, "{:?}", retried.error);
    assert!(rt.containers().is_empty());
    assert!(rt.images().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_past_its_deadline_is_stopped_recorded_and_rolled_back() {
    let rt = Arc::new(MemoryRuntime::new().with_pull_time(std::time::Duration::from_secs(30)));
    let settings = deckhand::plugin::HostSettings {
        max_job_time: std::time::Duration::from_millis(500),
        ..quick_settings()
    };
    let (_dir, executor) = memory_engine_with(rt.clone(), settings);
    let started = std::time::Instant::now();
    let job = submit_and_wait(&executor, "install", "web", json!({"image": "app:1"})).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(job.state, JobState::RolledBack);
    assert!(
        job.error.as_deref().unwrap().contains("deadline"),
        "{:?}",
        job.error
    );
    // The reads made before the pull were recorded, not lost with the run.
    let events = executor.journal().events(&job.id, 0).unwrap();
    let reads = events
        .iter()
        .filter(|e| matches!(&e.event, Event::Intent { call, .. } if call["op"] == "image_present"))
        .count();
    assert_eq!(reads, 1);
    assert!(rt.containers().is_empty());
    assert!(rt.images().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_that_lands_after_its_pull_was_cancelled_is_still_removed() {
    // As a Docker daemon may: the pull's image is tagged 300 ms after the
    // client went away.
    let (rt, _dir, executor) = engine(
        MemoryRuntime::new()
            .with_pull_time(std::time::Duration::from_secs(5))
            .with_late_pull_completion(std::time::Duration::from_millis(300)),
    );
    let job = submit(&executor, "install", json!({"image": "app:1"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let done = cancel_and_wait(&executor, &job.id).await;
    assert_eq!(done.state, JobState::Cancelled);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        rt.images().is_empty(),
        "the late image was removed: {:?}",
        rt.images()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_hung_step_interrupts_it_and_rolls_back() {
    let (rt, _dir, executor) = engine(MemoryRuntime::new());
    rt.inject(Op::Pull, Fault::Hang, 1);
    let job = submit(&executor, "install", json!({"image": "app:1"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let done = cancel_and_wait(&executor, &job.id).await;
    assert_eq!(done.state, JobState::Cancelled);
    assert!(rt.containers().is_empty() && rt.images().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_can_be_cancelled_right_after_creation() {
    let (rt, _dir, executor) =
        engine(MemoryRuntime::new().with_pull_time(std::time::Duration::from_secs(5)));
    let job = submit(&executor, "install", json!({"image": "app:1"})).await;
    let done = cancel_and_wait(&executor, &job.id).await;
    assert_eq!(done.state, JobState::Cancelled);
    assert!(rt.containers().is_empty() && rt.images().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelling_job_still_holds_its_target() {
    let (rt, _dir, executor) = engine(MemoryRuntime::new());
    // The compensation of the create hangs, so the rollback cannot end yet.
    rt.inject(Op::Pull, Fault::Hang, 1);
    let job = submit(&executor, "install", json!({"image": "app:1"})).await;
    rt.inject(Op::RemoveImage, Fault::Hang, 1);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(executor.cancel(&job.id, None).await.unwrap().cancelled);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    match refused(&executor, "install", json!({"image": "app:1"})).await {
        SubmitError::Busy { job: holder, .. } => assert_eq!(holder, job.id),
        other => panic!("expected busy, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_neither_here_nor_in_its_registry_is_refused_before_a_job_exists() {
    let (_rt, _dir, executor) = engine(MemoryRuntime::new().with_missing_image("nope:1"));
    let e = refused(&executor, "install", json!({"image": "nope:1"})).await;
    let message = e.to_string();
    assert!(
        matches!(e, SubmitError::ImageUnavailable { .. }),
        "{message}"
    );
    assert!(message.contains("`nope:1`"), "{message}");
    assert_eq!(message.matches("manifest unknown").count(), 1, "{message}");
    assert_eq!(job_count(&executor), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_the_registry_fails_after_the_job_began_rolls_back_with_its_message() {
    let (rt, _dir, executor) = engine(MemoryRuntime::new());
    rt.inject(Op::Pull, Fault::Fail("manifest unknown".into()), 1);
    let job = submit_and_wait(&executor, "install", "web", json!({"image": "app:1"})).await;
    assert_eq!(job.state, JobState::RolledBack);
    assert!(job.error.unwrap().contains("manifest unknown"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_daemon_call_fails_after_the_no_progress_timeout_and_rolls_back() {
    let rt = Arc::new(MemoryRuntime::new());
    let dir = tempfile::tempdir().unwrap();
    let journal = deckhand::journal::Journal::open(dir.path().join("j.sqlite")).unwrap();
    let host = Arc::new(
        deckhand::plugin::PluginHost::with_builtins(Some(compiled_plugin_cache())).unwrap(),
    );
    let settings = deckhand::plugin::HostSettings {
        stall_timeout: std::time::Duration::from_secs(1),
        ..quick_settings()
    };
    let executor = deckhand::executor::Executor::new(journal, rt.clone(), host, settings);
    rt.inject(Op::Start, Fault::Hang, 1);
    let job = submit_and_wait(&executor, "install", "web", json!({"image": "app:1"})).await;
    assert_eq!(job.state, JobState::RolledBack);
    assert!(
        job.error
            .as_deref()
            .unwrap()
            .contains("no progress for 1 s"),
        "{:?}",
        job.error
    );
    assert!(rt.containers().is_empty() && rt.images().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_install_of_an_installed_target_is_refused_before_a_job_exists() {
    let (rt, _dir, executor) = engine_after(&[("install", "app:1")]).await;
    let before = rt.containers();
    let refused = refused(&executor, "install", json!({"image": "app:2"})).await;
    assert!(
        matches!(refused, SubmitError::AlreadyInstalled { revision: 1, .. }),
        "{refused}"
    );
    assert_eq!(
        refused.to_string(),
        "target `web` is already installed (revision 1, app:1); use upgrade"
    );
    assert_eq!(job_count(&executor), 1, "no job was created");
    assert_eq!(rt.containers(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_to_a_revision_the_target_never_had_is_refused_before_a_job_exists() {
    let (_rt, _dir, executor) = engine_after(&[("install", "app:1"), ("upgrade", "app:2")]).await;
    let refused = refused(&executor, "rollback", json!({"revision": 7})).await;
    assert_eq!(
        refused.to_string(),
        "target `web` has no revision 7 (its revisions: 1, 2)"
    );
    assert_eq!(job_count(&executor), 2);
    let back = submit_and_wait(&executor, "rollback", "web", json!({"revision": 1})).await;
    assert_eq!(back.state, JobState::Succeeded, "{:?}", back.error);
}
