//! Compensations of a plugin's own, a rollback that cannot finish (`failed`),
//! and its retry.

use deckhand::journal::{Event, JobFilter, JobState};
use serde_json::json;

use crate::harness::*;

fn undo_results(engine: &TestEngine, job: &deckhand::journal::JobId) -> Vec<(u32, bool)> {
    engine
        .journal()
        .events(job, 0)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            Event::UndoResult { step, outcome } => Some((step, outcome.is_ok())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_compensation_runs_in_reverse_order_with_the_built_in_undos() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    engine
        .executor
        .host()
        .register(
            "custom-undo",
            &plugin_wasm("deckhand-test-custom-undo"),
            false,
        )
        .unwrap();
    let target = unique_target("custom");
    let img = image("rollback:crash");
    ensure_image_absent(&engine.docker, &img).await;
    let params = json!({"image": img, "blocker": image("never-present:1")});
    let job = run_job(&engine, "custom-undo", &target, params).await;
    assert_eq!(job.state, JobState::RolledBack, "{:?}", job.error);
    // Step 1 registered the compensation, step 3 pulled (2 was a read): undone 3 then 1.
    assert_eq!(undo_results(&engine, &job.id), [(3, true), (1, true)]);
    let events = engine.journal().events(&job.id, 0).unwrap();
    let logged = events.iter().any(|e| matches!(&e.event, Event::Log { message, .. } if message == "compensating note (compensating=true)"));
    assert!(logged, "the plugin's compensate export ran");
    let refused = events.iter().any(|e| {
        matches!(&e.event, Event::Log { message, .. } if message.starts_with("nested registration refused: denied"))
    });
    assert!(refused, "a compensation cannot register another");
    assert!(!image_present(&engine.docker, &img).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_that_cannot_finish_ends_failed_is_listed_and_a_retry_completes_it() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    engine
        .executor
        .host()
        .register(
            "custom-undo",
            &plugin_wasm("deckhand-test-custom-undo"),
            false,
        )
        .unwrap();
    let target = unique_target("failed");
    let img = image("health:2");
    let blocker = image("owned:crash");
    ensure_image_absent(&engine.docker, &img).await;
    let pulled = std::process::Command::new("docker")
        .args(["pull", "-q", &blocker])
        .output()
        .unwrap();
    assert!(pulled.status.success());

    let job = run_job(
        &engine,
        "custom-undo",
        &target,
        json!({"image": img, "blocker": blocker}),
    )
    .await;
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.clone().unwrap();
    assert!(
        error.contains("rollback incomplete") && error.contains("cannot undo note"),
        "{error}"
    );
    // The built-in undo ran; the plugin's did not succeed.
    assert_eq!(undo_results(&engine, &job.id), [(3, true), (1, false)]);
    let failed = engine
        .journal()
        .list_jobs(&JobFilter {
            state: Some(JobState::Failed),
            ..Default::default()
        })
        .unwrap();
    assert!(
        failed.iter().any(|j| j.id == job.id),
        "failed jobs are listed as needing attention"
    );
    // The target stays held by nothing: a failed job is terminal.
    assert!(engine.journal().active_job_on(&target).unwrap().is_none());

    ensure_image_absent(&engine.docker, &blocker).await;
    let retried = engine.executor.retry(&job.id).await.unwrap();
    assert_eq!(retried.state, JobState::RolledBack, "{:?}", retried.error);
    // Only the remaining compensation ran again.
    assert_eq!(
        undo_results(&engine, &job.id),
        [(3, true), (1, false), (1, true)]
    );
    assert!(matches!(
        engine.executor.retry(&job.id).await,
        Err(deckhand::executor::RetryError::NotFailed(
            JobState::RolledBack
        ))
    ));
}
