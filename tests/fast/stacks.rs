//! Stacks on the in-memory runtime: a Compose file installed, upgraded and
//! torn down as one job by the built-in workflows, with services named
//! and labelled as the spec says, only changed services replaced, every
//! service restored when the upgrade fails, and bad Compose files or taken
//! names refused before a job exists.

use std::sync::Arc;

use deckhand::executor::{Executor, JobRequest, SubmitError};
use deckhand::journal::{JobRecord, JobState, RevisionRecord};
use deckhand::runtime::{ContainerRuntime, LABEL_SERVICE, LABEL_TARGET, MemoryRuntime};
use serde_json::{Value, json};

use crate::harness::*;

/// A web service that waits for a healthy `db`, which keeps its data in a
/// volume; `WEB` is the web image.
fn compose(web: &str) -> String {
    format!(
        r#"
services:
  web:
    image: {web}
    ports: ["127.0.0.1:8080:80"]
    environment:
      DB_HOST: db
    depends_on:
      db: {{condition: service_healthy}}
  db:
    image: db:1
    volumes: ["data:/var/lib/db"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
volumes:
  data: {{}}
"#
    )
}

async fn installed_stack(rt: Arc<MemoryRuntime>) -> (tempfile::TempDir, Executor, JobRecord) {
    let (dir, executor) = memory_engine(rt);
    let job = succeeded(
        &executor,
        "install",
        "shop",
        json!({"compose": compose("app:1")}),
    )
    .await;
    (dir, executor, job)
}

fn current(executor: &Executor) -> RevisionRecord {
    executor
        .journal()
        .target("shop")
        .unwrap()
        .unwrap()
        .current
        .unwrap()
}

/// Service name → container id of the current revision.
fn service_ids(executor: &Executor) -> Vec<(String, String)> {
    current(executor)
        .services
        .into_iter()
        .map(|s| (s.name, s.container_id))
        .collect()
}

/// The containers a job's intents stopped, by id, in order.
fn stopped(executor: &Executor, job: &JobRecord) -> Vec<String> {
    intent_calls(executor.journal(), &job.id, "stop_container")
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect()
}

/// Install `compose` on `target`: the job must roll back, its error
/// saying `says`.
async fn install_rolls_back(
    executor: &Executor,
    target: &str,
    compose: impl Into<Value>,
    says: &str,
) -> JobRecord {
    let job = submit_and_wait(
        executor,
        "install",
        target,
        json!({"compose": compose.into()}),
    )
    .await;
    assert_eq!(job.state, JobState::RolledBack, "{:?}", job.error);
    let error = job.error.clone().unwrap_or_default();
    assert!(error.contains(says), "{error}");
    job
}

async fn refused(executor: &Executor, target: &str, params: Value) -> SubmitError {
    executor
        .submit(JobRequest::new("install", target, params))
        .await
        .expect_err("refused")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_install_runs_each_service_as_deckhand_target_service_on_the_stacks_network() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor, _job) = installed_stack(rt.clone()).await;
    let revision = current(&executor);
    assert!(revision.is_stack());
    let names: Vec<&str> = revision.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["db", "web"],
        "start order: db before the web that waits for it"
    );
    let containers = rt.containers();
    for s in &revision.services {
        let c = &containers[&s.container_id];
        assert_eq!(c.name, format!("deckhand-shop-{}", s.name));
        assert_eq!(c.label(LABEL_SERVICE), Some(s.name.as_str()));
        assert_eq!(c.label(LABEL_TARGET), Some("shop"));
        assert!(c.running);
    }
    assert!(rt.networks().contains_key("deckhand-shop-N-default"));
    assert!(rt.volumes().contains_key("deckhand-shop-V-data"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_upgrade_replaces_only_the_changed_service() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor, _job) = installed_stack(rt.clone()).await;
    let before = service_ids(&executor);
    succeeded(
        &executor,
        "upgrade",
        "shop",
        json!({"compose": compose("app:2")}),
    )
    .await;
    let after = service_ids(&executor);
    assert_eq!(after[0], before[0], "db is unchanged: same container");
    assert_ne!(after[1].1, before[1].1, "web runs a new container");
    let containers = rt.containers();
    assert_eq!(containers[&after[1].1].image, "app:2");
    assert_eq!(containers[&after[1].1].name, "deckhand-shop-web");
    assert!(
        !containers.contains_key(&before[1].1),
        "the old web is removed at commit"
    );
    assert_eq!(current(&executor).revision, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_stack_upgrade_restores_every_service_with_the_same_containers() {
    let rt = Arc::new(MemoryRuntime::new().with_crashing_image("app:broken"));
    let (_dir, executor, _job) = installed_stack(rt.clone()).await;
    let before = service_ids(&executor);
    let containers_before = rt.containers();
    let job = submit_and_wait(
        &executor,
        "upgrade",
        "shop",
        json!({"compose": compose("app:broken").replace("db:1", "db:2"), "health_timeout_s": 5}),
    )
    .await;
    assert_eq!(job.state, JobState::RolledBack, "{:?}", job.error);
    assert_eq!(service_ids(&executor), before);
    let containers_after = rt.containers();
    assert_eq!(containers_after.len(), containers_before.len());
    for (id, c) in &containers_before {
        let now = &containers_after[id];
        assert_eq!((&now.name, now.running), (&c.name, c.running), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_teardown_stops_services_in_reverse_start_order_and_removes_them() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor, _job) = installed_stack(rt.clone()).await;
    let ids = service_ids(&executor);
    let job = succeeded(
        &executor,
        "teardown",
        "shop",
        json!({"remove_volumes": true}),
    )
    .await;
    assert_eq!(
        stopped(&executor, &job),
        [ids[1].1.clone(), ids[0].1.clone()],
        "web stops before the db it depends on"
    );
    assert!(rt.containers().is_empty());
    assert!(!rt.networks().contains_key("deckhand-shop-N-default"));
    assert!(!rt.volumes().contains_key("deckhand-shop-V-data"));
    assert!(
        executor
            .journal()
            .target("shop")
            .unwrap()
            .unwrap()
            .current
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsupported_compose_key_is_refused_naming_its_path_and_no_job_exists() {
    let (_dir, executor) = memory_engine(Arc::new(MemoryRuntime::new()));
    let text = "services:\n  web:\n    image: app:1\n    build: .\n";
    let e = refused(&executor, "shop", json!({"compose": text})).await;
    assert!(matches!(e, SubmitError::InvalidParams(_)), "{e}");
    assert!(e.to_string().contains("services.web.build"), "{e}");
    let cycle = "services:\n  a:\n    image: x:1\n    depends_on: [b]\n  b:\n    image: x:1\n    depends_on: [a]\n";
    let e = refused(&executor, "shop", json!({"compose": cycle})).await;
    assert!(e.to_string().contains("cycle"), "{e}");
    let missing = "services:\n  web:\n    image: ${TAG:?set TAG}\n";
    let e = refused(&executor, "shop", json!({"compose": missing})).await;
    assert!(e.to_string().contains("TAG"), "{e}");
    assert!(executor.journal().target("shop").unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_named_like_a_stacks_service_container_is_refused_and_the_reverse() {
    let (_dir, executor, _job) = installed_stack(Arc::new(MemoryRuntime::new())).await;
    // `deckhand-shop-db` runs the stack `shop`'s service `db`.
    let e = refused(&executor, "shop-db", json!({"image": "app:1"})).await;
    assert!(matches!(e, SubmitError::NameTaken { .. }), "{e}");
    assert!(
        e.to_string().contains("service `db` of target `shop`"),
        "{e}"
    );
    // Target `blog-db` runs in `deckhand-blog-db`: the stack `blog` may not
    // have a service `db`.
    let ok = submit_and_wait(&executor, "install", "blog-db", json!({"image": "app:1"})).await;
    assert_eq!(ok.state, JobState::Succeeded);
    let text = "services:\n  db:\n    image: db:1\n";
    let e = refused(&executor, "blog", json!({"compose": text})).await;
    assert!(matches!(e, SubmitError::NameTaken { .. }), "{e}");
    assert!(e.to_string().contains("target `blog-db`"), "{e}");
    assert!(executor.journal().target("blog").unwrap().is_none());
}

/// `GET /v1/targets/shop` from an in-process server (no token configured).
async fn target_json(executor: &Executor) -> Value {
    let base = deckhand::api::serve_on_loopback(executor.clone(), Default::default())
        .await
        .unwrap();
    let resp = reqwest::get(format!("{base}/v1/targets/shop"))
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stacks_target_json_lists_its_services_with_containers_images_and_live_status() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor, _job) = installed_stack(rt.clone()).await;
    let json = target_json(&executor).await;
    assert_eq!(json["image"], Value::Null);
    assert_eq!(json["container_id"], Value::Null);
    let ids = service_ids(&executor);
    assert_eq!(
        json["services"],
        json!([
            {"name": "db", "image": "db:1", "container_id": ids[0].1, "status": "running", "ports": []},
            {"name": "web", "image": "app:1", "container_id": ids[1].1, "status": "running", "ports": ["127.0.0.1:8080:80"]},
        ])
    );
    assert_eq!(json["history"][0]["services"][1]["name"], "web");
    rt.stop_container(&ids[0].1, 0).await.unwrap();
    let json = target_json(&executor).await;
    let status = json["services"][0]["status"].as_str().unwrap();
    assert!(status.starts_with("exited"), "{status}");
}

/// A `db` service keeping its data in volume `data`, declared as `decl`
/// (the lines under `data:`).
fn shared_volume_compose(decl: &str) -> String {
    format!(
        "services:\n  db:\n    image: db:1\n    volumes: [\"data:/d\"]\nvolumes:\n  data:\n{decl}"
    )
}

/// The volume sources of the containers a job created.
fn mounted(executor: &Executor, job: &JobRecord) -> Vec<String> {
    intent_calls(executor.journal(), &job.id, "create_container")
        .iter()
        .flat_map(|c| {
            c["config"]["mounts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|m| m["source"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_external_volume_is_mounted_as_it_is_and_never_removed() {
    let rt = Arc::new(MemoryRuntime::new());
    rt.create_volume("shared-data", &Default::default())
        .await
        .unwrap();
    let (_dir, executor) = memory_engine(rt.clone());
    let compose = shared_volume_compose("    external: true\n    name: shared-data\n");
    let job = succeeded(&executor, "install", "shop", json!({"compose": compose})).await;
    assert_eq!(mounted(&executor, &job), ["shared-data"]);
    succeeded(
        &executor,
        "teardown",
        "shop",
        json!({"remove_volumes": true}),
    )
    .await;
    assert!(
        rt.volumes().contains_key("shared-data"),
        "not the engine's to remove"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_external_volume_fails_the_install_and_leaves_nothing() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor) = memory_engine(rt.clone());
    let compose = shared_volume_compose("    external: true\n");
    install_rolls_back(
        &executor,
        "shop",
        compose,
        "external volume `data` does not exist",
    )
    .await;
    assert!(rt.volumes().is_empty(), "{:?}", rt.volumes());
    assert!(rt.containers().is_empty());
    assert!(rt.networks().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_volume_is_created_under_its_name_and_removed_only_with_remove_volumes() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor) = memory_engine(rt.clone());
    let compose = shared_volume_compose("    name: shop-data\n");
    let job = succeeded(&executor, "install", "shop", json!({"compose": compose})).await;
    assert_eq!(mounted(&executor, &job), ["shop-data"]);
    let volume = &rt.volumes()["shop-data"];
    assert_eq!(
        volume.labels.get(LABEL_TARGET).map(String::as_str),
        Some("shop")
    );
    // Kept by a teardown without remove_volumes, like Compose's `down`.
    succeeded(&executor, "teardown", "shop", json!({})).await;
    assert!(rt.volumes().contains_key("shop-data"));
    let again = succeeded(&executor, "install", "shop", json!({"compose": compose})).await;
    assert_eq!(
        mounted(&executor, &again),
        ["shop-data"],
        "the same data again"
    );
    succeeded(
        &executor,
        "teardown",
        "shop",
        json!({"remove_volumes": true}),
    )
    .await;
    assert!(!rt.volumes().contains_key("shop-data"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_volume_the_engine_made_for_another_target_is_denied_and_left_alone() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor) = memory_engine(rt.clone());
    let compose = shared_volume_compose("    name: shop-data\n");
    succeeded(&executor, "install", "shop", json!({"compose": compose})).await;
    for decl in [
        "    name: shop-data\n",
        "    external: true\n    name: shop-data\n",
    ] {
        let compose = shared_volume_compose(decl);
        let thief = install_rolls_back(
            &executor,
            "thief",
            compose,
            "created by the engine for `shop`",
        )
        .await;
        assert!(mounted(&executor, &thief).is_empty());
    }
    assert!(rt.volumes().contains_key("shop-data"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shared_volume_named_like_the_engines_own_is_refused_before_a_job_exists() {
    let (_dir, executor) = memory_engine(Arc::new(MemoryRuntime::new()));
    for (decl, path) in [
        ("    name: deckhand-web-V-data\n", "volumes.data.name"),
        (
            "    external: true\n    name: deckhand-web-V-data\n",
            "volumes.data.name",
        ),
    ] {
        let e = refused(
            &executor,
            "shop",
            json!({"compose": shared_volume_compose(decl)}),
        )
        .await;
        assert!(e.to_string().contains(path), "{e}");
        assert!(e.to_string().contains("engine's own"), "{e}");
    }
    assert!(
        executor
            .journal()
            .list_jobs(&Default::default())
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshotting_stack_upgrade_runs_the_changed_service_on_a_copy_and_a_rollback_finds_the_original()
 {
    let rt = Arc::new(MemoryRuntime::new().with_crashing_image("app:broken"));
    let (_dir, executor, _job) = installed_stack(rt.clone()).await;
    let original = "deckhand-shop-V-data";
    rt.write_volume_file(original, "db", b"v1").unwrap();
    let failing = json!({"compose": compose("app:broken").replace("db:1", "db:2"),
                         "snapshot_volumes": true, "health_timeout_s": 5});
    let job = submit_and_wait(&executor, "upgrade", "shop", failing).await;
    assert_eq!(job.state, JobState::RolledBack, "{:?}", job.error);
    let volumes: Vec<String> = rt.volumes().into_keys().collect();
    assert_eq!(volumes, [original], "the copy went with the rollback");
    assert_eq!(rt.volume_files(original).unwrap()["db"], b"v1");

    let upgrade =
        json!({"compose": compose("app:1").replace("db:1", "db:2"), "snapshot_volumes": true});
    let job = submit_and_wait(&executor, "upgrade", "shop", upgrade).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let volumes: Vec<String> = rt.volumes().into_keys().collect();
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    let copy = &volumes[0];
    assert!(
        copy.starts_with("deckhand-shop-V") && copy != original,
        "{copy}"
    );
    assert_eq!(rt.volume_files(copy).unwrap()["db"], b"v1");
    let created = intent_calls(executor.journal(), &job.id, "create_container");
    let db = created
        .iter()
        .find(|c| c["config"]["name"] == "deckhand-shop-db-Next")
        .expect("db was replaced");
    assert_eq!(db["config"]["mounts"][0]["source"], copy.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_removes_every_tag_the_engine_pulled_of_an_image_two_services_ran() {
    // `db:1` and `app:1` are two tags of one image.
    let rt = Arc::new(MemoryRuntime::new().with_same_image("db:1", "app:1"));
    let (_dir, executor, _job) = installed_stack(rt.clone()).await;
    let upgrade = json!({"compose": compose("app:2").replace("db:1", "db:2")});
    let job = submit_and_wait(&executor, "upgrade", "shop", upgrade).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let images = rt.images();
    assert!(
        !images.contains("db:1") && !images.contains("app:1"),
        "both old tags went: {images:?}"
    );
}

/// The events of `job`, in order.
fn events(executor: &Executor, job: &JobRecord) -> Vec<deckhand::journal::Event> {
    executor
        .journal()
        .events(&job.id, 0)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stacks_images_are_pulled_at_once_each_its_own_step_with_progress_per_service() {
    use deckhand::journal::Event;
    let rt = Arc::new(MemoryRuntime::new().with_pull_time(std::time::Duration::from_millis(300)));
    let (_dir, executor, job) = installed_stack(rt.clone()).await;
    let events = events(&executor, &job);
    let pulls: Vec<(usize, u32)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Event::Intent { step, call, .. } if call["op"] == "pull_image" => Some((i, *step)),
            _ => None,
        })
        .collect();
    assert_eq!(pulls.len(), 2, "one step per image");
    let first_result = events
        .iter()
        .position(
            |e| matches!(e, Event::Result { step, .. } if pulls.iter().any(|(_, s)| s == step)),
        )
        .unwrap();
    assert!(
        pulls.iter().all(|(i, _)| *i < first_result),
        "both pulls are journaled before either ends: they run at once"
    );
    let progress: Vec<&deckhand::journal::Progress> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress(p) => Some(p),
            _ => None,
        })
        .collect();
    let last = progress.last().unwrap();
    let listed: Vec<(&str, Vec<&str>)> = last
        .pulls
        .iter()
        .map(|p| {
            (
                p.image.as_str(),
                p.labels.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(listed, [("db:1", vec!["db"]), ("app:1", vec!["web"])]);
    assert_eq!(last.fraction, Some(1.0));
    assert_eq!(last.layers_total, 6, "the counts sum both pulls");
    let fractions: Vec<f64> = progress.iter().filter_map(|p| p.fraction).collect();
    assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "{fractions:?}");
    assert!(
        progress
            .iter()
            .any(|p| p.pulls.iter().any(|q| q.progress.fraction < Some(1.0))
                && p.fraction < Some(1.0)),
        "progress was reported while the pulls ran"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_that_fails_among_several_cancels_the_others_and_the_install_leaves_nothing() {
    let rt = Arc::new(MemoryRuntime::new().with_pull_time(std::time::Duration::from_secs(5)));
    rt.inject(
        deckhand::runtime::memory::Op::Pull,
        deckhand::runtime::memory::Fault::Fail(
            "pull access denied for db, repository does not exist".into(),
        ),
        1,
    );
    let (_dir, executor) = memory_engine(rt.clone());
    let started = std::time::Instant::now();
    // The failed pull's error, not the cancel of the other.
    let job = install_rolls_back(&executor, "shop", compose("app:1"), "pull access denied").await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "db's 5 s pull was cancelled, not waited for"
    );
    let results: Vec<String> = events(&executor, &job)
        .into_iter()
        .filter_map(|e| match e {
            deckhand::journal::Event::Result { outcome, .. } => Some(format!("{outcome:?}")),
            _ => None,
        })
        .collect();
    assert!(
        results.iter().any(|r| r.contains("cancelled")),
        "{results:?}"
    );
    assert!(rt.images().is_empty(), "{:?}", rt.images());
    assert!(rt.containers().is_empty());
    assert!(
        executor
            .journal()
            .target("shop")
            .unwrap()
            .is_none_or(|t| t.current.is_none())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stacks_containers_are_created_at_once_before_any_starts() {
    use deckhand::journal::Event;
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor, job) = installed_stack(rt).await;
    let events = events(&executor, &job);
    let position = |op: &str| {
        events
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, Event::Intent { call, .. } if call["op"] == op))
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    let (creates, starts) = (position("create_container"), position("start_container"));
    assert_eq!(creates.len(), 2);
    let create_steps: Vec<u32> = creates
        .iter()
        .map(|&i| match &events[i] {
            Event::Intent { step, .. } => *step,
            _ => unreachable!(),
        })
        .collect();
    let first_result = events
        .iter()
        .position(|e| matches!(e, Event::Result { step, .. } if create_steps.contains(step)))
        .unwrap();
    assert!(
        creates.iter().all(|&i| i < first_result),
        "both journaled before either ends"
    );
    assert!(creates.iter().all(|c| starts.iter().all(|s| c < s)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_that_fails_among_several_rolls_the_install_back_leaving_nothing() {
    let rt = Arc::new(MemoryRuntime::new());
    rt.inject(
        deckhand::runtime::memory::Op::Create,
        deckhand::runtime::memory::Fault::Fail("Conflict: no space for the container".into()),
        1,
    );
    let (_dir, executor) = memory_engine(rt.clone());
    install_rolls_back(
        &executor,
        "shop",
        compose("app:1"),
        "no space for the container",
    )
    .await;
    assert!(rt.containers().is_empty(), "{:?}", rt.containers());
    assert!(rt.volumes().is_empty());
    assert!(rt.networks().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_replaces_a_service_whose_tag_now_names_another_image_and_only_it() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor, _job) = installed_stack(rt.clone()).await;
    let before = service_ids(&executor);
    // The registry's app:1 is a new image now; the file is the same.
    rt.republish_image("app:1");
    let job = succeeded(
        &executor,
        "upgrade",
        "shop",
        json!({"compose": compose("app:1")}),
    )
    .await;
    let after = service_ids(&executor);
    assert_eq!(
        after[0], before[0],
        "db's image did not move: same container"
    );
    assert_ne!(after[1].1, before[1].1, "web runs the new app:1");
    assert_eq!(stopped(&executor, &job), [before[1].1.clone()]);
    // With nothing moved, nothing is replaced.
    let again = succeeded(
        &executor,
        "upgrade",
        "shop",
        json!({"compose": compose("app:1")}),
    )
    .await;
    assert_eq!(service_ids(&executor), after);
    assert!(stopped(&executor, &again).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_whose_network_name_would_be_too_long_for_its_target_is_refused_before_a_job_exists()
 {
    let (_dir, executor) = memory_engine(Arc::new(MemoryRuntime::new()));
    let target = "a".repeat(50);
    let e = refused(&executor, &target, json!({"compose": compose("app:1")})).await;
    let text = e.to_string();
    assert!(text.contains("`networks.default`"), "{text}");
    assert!(text.contains("the most is 64"), "{text}");
    assert!(
        executor
            .journal()
            .list_jobs(&Default::default())
            .unwrap()
            .is_empty()
    );
}
