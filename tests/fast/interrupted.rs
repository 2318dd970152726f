//! Calls the daemon carries out after the engine stopped waiting for them:
//! the undo waits them out, proves its postcondition, and undoes a late
//! effect again. On the in-memory runtime, whose `CompleteLate` fault fails
//! a call as a dropped connection would and applies it later (the same on
//! Docker, with an app whose PID 1 ignores SIGTERM, is in
//! `tests/e2e/interrupted.rs`).

use std::sync::Arc;
use std::time::Duration;

use deckhand::journal::{Event, JobState};
use deckhand::plugin::HostSettings;
use deckhand::runtime::MemoryRuntime;
use deckhand::runtime::memory::{Fault, Op};
use serde_json::json;

use crate::harness::*;

fn settings_with_grace(grace_ms: u64) -> HostSettings {
    HostSettings {
        call_settle_grace: Duration::from_millis(grace_ms),
        ..quick_settings()
    }
}

/// The one container of the memory runtime: (id, name, running).
fn only_container(rt: &MemoryRuntime) -> (String, String, bool) {
    let all = rt.containers();
    assert_eq!(all.len(), 1, "{all:?}");
    let c = all.values().next().unwrap();
    (c.id.clone(), c.name.clone(), c.running)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_the_daemon_finishes_after_the_engine_gave_up_is_waited_out_before_the_app_is_started_again()
 {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor) = memory_engine_with(rt.clone(), settings_with_grace(300));
    let install = submit_and_wait(&executor, "install", "web", json!({"image": "app:1"})).await;
    assert_eq!(install.state, JobState::Succeeded);
    let (id, _, _) = only_container(&rt);
    // The stop's connection drops at once; the daemon stops the app 600 ms later.
    rt.inject(Op::Stop, Fault::CompleteLate(Duration::from_millis(600)), 1);
    let teardown = submit_and_wait(&executor, "teardown", "web", json!({})).await;
    assert_eq!(teardown.state, JobState::RolledBack, "{:?}", teardown.error);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        only_container(&rt),
        (id, "deckhand-web".into(), true),
        "the app runs again, with the same id, after the late stop"
    );
    let web = executor.journal().target("web").unwrap().unwrap();
    assert!(web.current.is_some(), "the target is still installed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_that_lands_after_its_undo_looked_is_removed_again() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor) = memory_engine_with(rt.clone(), settings_with_grace(800));
    rt.inject(
        Op::Create,
        Fault::CompleteLate(Duration::from_millis(300)),
        1,
    );
    let job = submit_and_wait(&executor, "install", "web", json!({"image": "app:1"})).await;
    assert_eq!(job.state, JobState::RolledBack, "{:?}", job.error);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        rt.containers().is_empty(),
        "the late container was removed: {:?}",
        rt.containers()
    );
    assert!(rt.images().is_empty(), "{:?}", rt.images());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rename_that_lands_after_its_undo_looked_is_renamed_back_again() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor) = memory_engine_with(rt.clone(), settings_with_grace(800));
    let install = submit_and_wait(&executor, "install", "web", json!({"image": "app:1"})).await;
    assert_eq!(install.state, JobState::Succeeded);
    let (id, _, _) = only_container(&rt);
    // The old container's rename to `deckhand-web-Prev` lands 300 ms late.
    rt.inject(
        Op::Rename,
        Fault::CompleteLate(Duration::from_millis(300)),
        1,
    );
    let job = submit_and_wait(&executor, "upgrade", "web", json!({"image": "app:2"})).await;
    assert_eq!(job.state, JobState::RolledBack, "{:?}", job.error);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(only_container(&rt), (id, "deckhand-web".into(), true));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_undo_records_what_it_observed_once_done() {
    let rt = Arc::new(MemoryRuntime::new().with_crashing_image("bad:1"));
    let (_dir, executor) = memory_engine(rt.clone());
    let job = submit_and_wait(&executor, "install", "web", json!({"image": "bad:1"})).await;
    assert_eq!(job.state, JobState::RolledBack);
    let events = executor.journal().events(&job.id, 0).unwrap();
    let observed: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::UndoResult { outcome, .. } => Some(outcome.clone()),
            _ => None,
        })
        .collect();
    assert!(!observed.is_empty());
    for outcome in observed {
        match outcome {
            deckhand::journal::Outcome::Ok { value } => {
                assert!(value.get("observed").is_some(), "{value}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_undo_whose_postcondition_cannot_be_established_fails_the_job_with_the_evidence() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor) = memory_engine_with(rt.clone(), settings_with_grace(100));
    let install = submit_and_wait(&executor, "install", "web", json!({"image": "app:1"})).await;
    assert_eq!(install.state, JobState::Succeeded);
    rt.inject(Op::Stop, Fault::CompleteLate(Duration::from_millis(50)), 1);
    // Every attempt of the undo `start` fails.
    rt.inject(Op::Start, Fault::Fail("daemon hiccup".into()), 5);
    let job = submit_and_wait(&executor, "teardown", "web", json!({})).await;
    assert_eq!(
        job.state,
        JobState::Failed,
        "never rolled_back over a wrong world"
    );
    let error = job.error.unwrap();
    assert!(
        error.contains("undo of step") && error.contains("daemon hiccup"),
        "{error}"
    );
    assert!(
        !only_container(&rt).2,
        "the app is down, and the job says so"
    );
    // Once the daemon behaves, a retry restores it.
    let retried = executor.retry(&job.id).await.unwrap();
    assert_eq!(retried.state, JobState::RolledBack, "{:?}", retried.error);
    assert!(only_container(&rt).2);
}
