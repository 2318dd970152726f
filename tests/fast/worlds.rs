//! The versions of the workflow world: a component built against
//! `deckhand:workflow@0.1.0`, `@0.2.0` or `@0.2.1` runs unchanged next to
//! the 0.2.2 built-ins, and journals the calls it always did.

use std::sync::Arc;

use deckhand::journal::{Event, JobState};
use deckhand::plugin::WorldVersion;
use deckhand::runtime::MemoryRuntime;
use serde_json::{Value, json};

use crate::harness::*;

const LEGACY_INSTALL: &[u8] = include_bytes!("../fixtures/workflow-0.1.0/install.wasm");
const INSTALL_0_2_0: &[u8] = include_bytes!("../fixtures/workflow-0.2.0/install.wasm");
const INSTALL_0_2_1: &[u8] = include_bytes!("../fixtures/workflow-0.2.1/install.wasm");

/// The calls of a job's intents, with its own names (target, job id) made
/// neutral, so that two jobs on two targets compare.
fn neutral_calls(
    executor: &deckhand::executor::Executor,
    job: &deckhand::journal::JobRecord,
) -> Vec<Value> {
    let events = executor.journal().events(&job.id, 0).unwrap();
    events
        .into_iter()
        .filter_map(|e| match e.event {
            Event::Intent { call, .. } => Some(call),
            _ => None,
        })
        .map(|call| {
            let text = call
                .to_string()
                .replace(job.id.as_str(), "JOB")
                .replace(&format!("deckhand-{}", job.target), "deckhand-TARGET")
                .replace(&format!("\"{}\"", job.target), "\"TARGET\"");
            serde_json::from_str(&text).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workflow_built_against_0_1_0_runs_unchanged_and_journals_what_the_builtin_does() {
    // Two engines on two runtimes, so that each job finds the same world.
    let (_dir, executor) = memory_engine(Arc::new(MemoryRuntime::new()));
    let (_other_dir, other) = memory_engine(Arc::new(MemoryRuntime::new()));
    let legacy = executor
        .host()
        .register("legacy-install", LEGACY_INSTALL, false)
        .unwrap();
    assert_eq!(legacy.world, WorldVersion::V0_1);
    assert_eq!(
        executor.host().get("install").unwrap().world,
        WorldVersion::V0_2
    );
    let params = json!({"image": "app:1", "env": {"MODE": "prod"}, "cmd": ["serve"]});
    let old = submit_and_wait(&executor, "legacy-install", "old", params.clone()).await;
    let new = submit_and_wait(&other, "install", "new", params).await;
    assert_eq!(old.state, JobState::Succeeded, "{:?}", old.error);
    assert_eq!(new.state, JobState::Succeeded, "{:?}", new.error);
    assert_eq!(neutral_calls(&executor, &old), neutral_calls(&other, &new));
    let target = executor.journal().target("old").unwrap().unwrap();
    assert_eq!(target.current.unwrap().image, "app:1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workflow_built_against_0_2_0_links_against_0_2_2_and_journals_what_the_builtin_does() {
    let (_dir, executor) = memory_engine(Arc::new(MemoryRuntime::new()));
    let (_other_dir, other) = memory_engine(Arc::new(MemoryRuntime::new()));
    let older = executor
        .host()
        .register("install-0-2-0", INSTALL_0_2_0, false)
        .unwrap();
    assert_eq!(older.world, WorldVersion::V0_2);
    let params = json!({"image": "app:1", "ports": ["8080:80"], "networks": ["appnet"],
                        "volumes": ["data:/data"], "restart": "always"});
    let old = submit_and_wait(&executor, "install-0-2-0", "old", params.clone()).await;
    let new = submit_and_wait(&other, "install", "new", params).await;
    assert_eq!(old.state, JobState::Succeeded, "{:?}", old.error);
    assert_eq!(new.state, JobState::Succeeded, "{:?}", new.error);
    assert_eq!(neutral_calls(&executor, &old), neutral_calls(&other, &new));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_workflow_built_against_0_2_1_links_against_0_2_2_and_pulls_one_image_at_a_time() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor) = memory_engine(rt.clone());
    let older = executor
        .host()
        .register("install-0-2-1", INSTALL_0_2_1, false)
        .unwrap();
    assert_eq!(older.world, WorldVersion::V0_2);
    let compose = "services:\n  web:\n    image: app:1\n  db:\n    image: db:1\n";
    let job = submit_and_wait(
        &executor,
        "install-0-2-1",
        "shop",
        json!({"compose": compose}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let services = executor
        .journal()
        .target("shop")
        .unwrap()
        .unwrap()
        .current
        .unwrap()
        .services;
    assert_eq!(services.len(), 2);
    // 0.2.1 had no pull-images: each pull is journaled and done before the next.
    let events = executor.journal().events(&job.id, 0).unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Intent { call, .. } if call["op"] == "pull_image" => Some("pull"),
            Event::Result { .. } => Some("result"),
            _ => None,
        })
        .collect();
    let first_pull = kinds.iter().position(|k| *k == "pull").unwrap();
    assert_eq!(
        kinds[first_pull..first_pull + 3],
        ["pull", "result", "result"]
    );
}
