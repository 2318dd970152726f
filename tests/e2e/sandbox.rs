//! Hostile plugins: each misbehaves in one way; the engine keeps serving,
//! the job ends `rolled_back` with a clear error, and the prior state stays.

use std::sync::Arc;
use std::time::Instant;

use deckhand::executor::{Executor, JobRequest};
use deckhand::journal::JobState;
use deckhand::runtime::MemoryRuntime;
use serde_json::json;

use crate::harness::*;

fn hostile_engine() -> (tempfile::TempDir, Executor, Arc<MemoryRuntime>) {
    let rt = Arc::new(MemoryRuntime::new());
    let (dir, executor) = memory_engine(rt.clone());
    executor
        .host()
        .register("hostile", &plugin_wasm("deckhand-test-hostile"), false)
        .unwrap();
    (dir, executor, rt)
}

/// Run a hostile mode on target `web` (installed first) while a normal
/// install on another target must still finish promptly.
async fn hostile(mode: &str, expected_error: &str) -> std::time::Duration {
    let (_dir, executor, rt) = hostile_engine();
    assert_eq!(
        submit_and_wait(&executor, "install", "web", json!({"image": "app:1"}))
            .await
            .state,
        JobState::Succeeded
    );
    let before = (rt.containers(), rt.images());
    let started = Instant::now();
    let bad = executor
        .submit(JobRequest::new("hostile", "web", json!({"mode": mode})))
        .await
        .unwrap();
    let other = submit_and_wait(&executor, "install", "other", json!({"image": "app:2"})).await;
    assert_eq!(other.state, JobState::Succeeded, "other jobs go on");
    assert!(
        started.elapsed().as_secs() < 5,
        "{mode}: other job waited {:?}",
        started.elapsed()
    );
    let done = executor.wait(&bad.id).await.unwrap();
    let took = started.elapsed();
    assert_eq!(done.state, JobState::RolledBack, "{mode}");
    let error = done.error.unwrap();
    assert!(error.contains(expected_error), "{mode}: {error}");
    let web: std::collections::BTreeMap<_, _> = rt
        .containers()
        .into_iter()
        .filter(|(_, c)| c.label("io.deckhand.target") == Some("web"))
        .collect();
    let web_before: std::collections::BTreeMap<_, _> = before
        .0
        .into_iter()
        .filter(|(_, c)| c.label("io.deckhand.target") == Some("web"))
        .collect();
    assert_eq!(web, web_before, "{mode}: prior state intact");
    took
}

#[tokio::test(flavor = "multi_thread")]
async fn an_infinite_loop_ends_the_job_not_the_engine() {
    let took = hostile("loop", "CPU time limit").await;
    eprintln!("infinite loop → rolled back in {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_bomb_hits_the_memory_limit() {
    hostile("memory", "memory").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_recursion_traps_cleanly() {
    hostile("recursion", "plugin trapped").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_string_is_refused_by_the_host() {
    hostile("huge-string", "limit is 65536").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_host_calls_hit_the_call_limit() {
    hostile("many-calls", "limit of 10000 host calls").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_in_the_middle_of_an_upgrade_rolls_back_to_the_old_container() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    engine
        .executor
        .host()
        .register("hostile", &plugin_wasm("deckhand-test-hostile"), false)
        .unwrap();
    let target = unique_target("trap");
    let (v1, v2) = (image("health:1"), image("health:2"));
    let job = run_job(
        &engine,
        "install",
        &target,
        json!({"image": v1, "network": "none"}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded);
    let images = vec![v1.clone()];
    let before = snapshot(&engine.docker, engine.journal(), &target, &images).await;
    let job = run_job(
        &engine,
        "hostile",
        &target,
        json!({"mode": "trap-mid-upgrade", "image": v2}),
    )
    .await;
    assert_eq!(job.state, JobState::RolledBack);
    assert!(
        job.error.as_deref().unwrap().contains("plugin trapped"),
        "{:?}",
        job.error
    );
    assert_eq!(
        snapshot(&engine.docker, engine.journal(), &target, &images).await,
        before
    );
    remove_target_containers(&engine.docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_cannot_touch_a_container_deckhand_did_not_create() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    engine
        .executor
        .host()
        .register("hostile", &plugin_wasm("deckhand-test-hostile"), false)
        .unwrap();
    let name = unique_target("users-own");
    let img = image("owned:1");
    let run = |args: &[&str]| {
        std::process::Command::new("docker")
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&["pull", "-q", &img]).status.success());
    let created = run(&["run", "-d", "--network", "none", "--name", &name, &img]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let target = unique_target("thief");
    let job = run_job(
        &engine,
        "hostile",
        &target,
        json!({"mode": "foreign", "container": name}),
    )
    .await;
    assert_eq!(job.state, JobState::RolledBack);
    let error = job.error.unwrap();
    assert!(
        error.contains("stop: denied") && error.contains("remove: denied"),
        "{error}"
    );
    let state = run(&["inspect", "-f", "{{.State.Running}}", &name]);
    assert_eq!(
        String::from_utf8_lossy(&state.stdout).trim(),
        "true",
        "the user's container survives, running"
    );
    let events = engine.journal().events(&job.id, 0).unwrap();
    assert!(events.iter().any(|e| matches!(&e.event, deckhand::journal::Event::Log { message, .. } if message.starts_with("denied:"))), "the attempt is journaled");
    run(&["rm", "-f", &name]);
}

#[test]
fn a_component_importing_an_interface_the_host_does_not_provide_is_rejected_at_registration() {
    let host = deckhand::plugin::PluginHost::new(None).unwrap();
    let err = host
        .register("bad", &plugin_wasm("deckhand-test-bad-import"), false)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("not a valid Deckhand workflow component"),
        "{err}"
    );
    assert!(host.get("bad").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_cannot_have_an_image_it_does_not_own_removed() {
    let (_dir, executor, rt) = hostile_engine();
    rt.add_image("users-own:1");
    assert_eq!(
        submit_and_wait(&executor, "install", "web", json!({"image": "app:1"}))
            .await
            .state,
        JobState::Succeeded
    );
    let job = submit_and_wait(
        &executor,
        "hostile",
        "web",
        json!({"mode": "foreign-image", "image": "users-own:1"}),
    )
    .await;
    assert_eq!(job.state, JobState::RolledBack);
    assert!(
        job.error
            .as_deref()
            .unwrap()
            .contains("denied: image users-own:1 is not `web`'s"),
        "{:?}",
        job.error
    );
    assert!(
        rt.images().contains("users-own:1"),
        "the user's image stays"
    );
}
