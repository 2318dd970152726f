//! Real apps on the in-memory runtime: published ports, volumes and
//! networks made by the built-in workflows, journaled, undone when a job
//! does not commit, kept or removed at teardown as the params say, and bad
//! params refused before a job exists.

use std::sync::Arc;

use deckhand::executor::{Executor, JobRequest, SubmitError};
use deckhand::journal::{Event, JobRecord, JobState};
use deckhand::runtime::{ContainerRuntime, LABEL_JOB, LABEL_MANAGED, LABEL_TARGET, MemoryRuntime};
use serde_json::{Value, json};

use crate::harness::*;

const DATA: &str = "deckhand-web-V-data";

/// The create calls a job journaled.
fn created_configs(executor: &Executor, job: &JobRecord) -> Vec<Value> {
    intent_calls(executor.journal(), &job.id, "create_container")
        .into_iter()
        .map(|call| call["config"].clone())
        .collect()
}

async fn installed_app(rt: Arc<MemoryRuntime>) -> (tempfile::TempDir, Executor, JobRecord) {
    let (dir, executor) = memory_engine(rt);
    let job = submit_and_wait(
        &executor,
        "install",
        "web",
        json!({"image": "app:1", "ports": ["127.0.0.1:8080:80"], "volumes": ["data:/var/lib/app"], "networks": [{"name": "appnet", "aliases": ["site"]}]}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    (dir, executor, job)
}

#[tokio::test(flavor = "multi_thread")]
async fn install_publishes_ports_and_creates_its_volume_and_network_labelled_as_the_engines() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor, job) = installed_app(rt.clone()).await;
    let volume = rt.volumes().remove(DATA).expect("the target's volume");
    let network = rt.networks().remove("appnet").expect("the network");
    for labels in [&volume.labels, &network.labels] {
        assert_eq!(labels[LABEL_MANAGED], "true");
        assert_eq!(labels[LABEL_TARGET], "web");
        assert_eq!(labels[LABEL_JOB], job.id.as_str());
    }
    let config = &created_configs(&executor, &job)[0];
    assert_eq!(
        config["ports"],
        json!([{"host_ip": "127.0.0.1", "host_port": 8080, "container_port": 80, "protocol": "tcp"}])
    );
    assert_eq!(
        config["mounts"],
        json!([{"kind": "volume", "source": DATA, "target": "/var/lib/app"}])
    );
    assert_eq!(
        config["networks"],
        json!([{"name": "appnet", "aliases": ["site"]}])
    );
    assert_eq!(
        executor
            .journal()
            .owned("volume", DATA)
            .unwrap()
            .unwrap()
            .job_id,
        job.id
    );
    // The target's JSON shows the effective spec, with the Docker names.
    let record = executor.journal().target("web").unwrap().unwrap();
    let view = deckhand::api::TargetView::of(record, executor.journal()).unwrap();
    let view = serde_json::to_value(view).unwrap();
    assert_eq!(view["ports"], json!(["127.0.0.1:8080:80"]));
    assert_eq!(
        view["volumes"],
        json!([{"name": "data", "docker_name": DATA, "path": "/var/lib/app", "read_only": false}])
    );
    assert_eq!(
        view["networks"],
        json!([{"name": "appnet", "aliases": ["site"]}])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_volumes_data_survives_an_upgrade_and_teardown_keeps_it_by_default() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor, _) = installed_app(rt.clone()).await;
    rt.write_volume_file(DATA, "db", b"rows").unwrap();
    let upgrade = submit_and_wait(&executor, "upgrade", "web", json!({"image": "app:2"})).await;
    assert_eq!(upgrade.state, JobState::Succeeded, "{:?}", upgrade.error);
    assert_eq!(
        created_configs(&executor, &upgrade)[0]["mounts"][0]["source"],
        DATA,
        "the new container mounts the same volume"
    );
    let teardown = submit_and_wait(&executor, "teardown", "web", json!({})).await;
    assert_eq!(teardown.state, JobState::Succeeded, "{:?}", teardown.error);
    assert!(rt.containers().is_empty());
    assert_eq!(rt.volume_files(DATA).unwrap()["db"], b"rows");
    assert!(
        !rt.networks().contains_key("appnet"),
        "the network the engine created goes once nothing is on it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_with_remove_volumes_removes_the_volumes_the_engine_created_only() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor) = memory_engine(rt.clone());
    // A volume someone made by hand under the target's name scheme.
    let theirs = "deckhand-web-V-theirs";
    rt.create_volume(theirs, &Default::default()).await.unwrap();
    let job = submit_and_wait(
        &executor,
        "install",
        "web",
        json!({"image": "app:1", "volumes": ["data:/d", "theirs:/t"]}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let teardown = submit_and_wait(
        &executor,
        "teardown",
        "web",
        json!({"remove_volumes": true}),
    )
    .await;
    assert_eq!(teardown.state, JobState::Succeeded, "{:?}", teardown.error);
    let volumes = rt.volumes();
    assert!(!volumes.contains_key(DATA), "{volumes:?}");
    assert!(
        volumes.contains_key(theirs),
        "used, never removed: {volumes:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_upgrade_removes_the_volume_and_network_it_added_and_keeps_the_existing_volume()
{
    let rt = Arc::new(MemoryRuntime::new().with_pull_time(std::time::Duration::from_secs(5)));
    rt.add_image("app:1");
    let (_dir, executor) = memory_engine(rt.clone());
    let install = submit_and_wait(
        &executor,
        "install",
        "web",
        json!({"image": "app:1", "volumes": ["data:/d"]}),
    )
    .await;
    assert_eq!(install.state, JobState::Succeeded, "{:?}", install.error);
    rt.write_volume_file(DATA, "db", b"rows").unwrap();
    let before = rt.containers();
    let upgrade = executor
        .submit(JobRequest::new(
            "upgrade",
            "web",
            json!({"image": "app:2", "volumes": ["data:/d", "cache:/c"], "networks": ["net2"]}),
        ))
        .await
        .unwrap();
    // Cancel while the pull crawls: the volume and network exist by then.
    wait_until(|| {
        rt.volumes().contains_key("deckhand-web-V-cache") && rt.networks().contains_key("net2")
    })
    .await;
    assert!(executor.cancel(&upgrade.id, None).await.unwrap().cancelled);
    let upgrade = executor.wait(&upgrade.id).await.unwrap();
    assert_eq!(upgrade.state, JobState::Cancelled, "{:?}", upgrade.error);
    assert!(!rt.volumes().contains_key("deckhand-web-V-cache"));
    assert!(!rt.networks().contains_key("net2"));
    assert_eq!(rt.volume_files(DATA).unwrap()["db"], b"rows");
    assert_eq!(
        rt.containers(),
        before,
        "the old container, same id, as it was"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reserved_label_a_bad_port_or_a_bind_mount_the_server_does_not_allow_is_refused_before_a_job()
 {
    let (_dir, executor) = memory_engine(Arc::new(MemoryRuntime::new()));
    for (params, field) in [
        (
            json!({"image": "app:1", "labels": {"io.deckhand.target": "x"}}),
            "labels",
        ),
        (
            json!({"image": "app:1", "ports": ["70000:80"], "networks": ["n"]}),
            "ports[0]",
        ),
        (
            json!({"image": "app:1", "volumes": ["rel/path:/x"]}),
            "volumes[0]",
        ),
        (
            json!({"image": "app:1", "volumes": ["/etc:/x"]}),
            "allow-bind-mounts",
        ),
        (json!({"image": "app:1", "restart": "sometimes"}), "restart"),
    ] {
        let refused = executor
            .submit(JobRequest::new("install", "web", params.clone()))
            .await
            .expect_err("refused");
        let message = refused.to_string();
        assert!(
            matches!(refused, SubmitError::InvalidParams(_)),
            "{params}: {message}"
        );
        assert!(message.contains(field), "{params}: {message}");
    }
    let jobs = executor.journal().list_jobs(&Default::default()).unwrap();
    assert!(jobs.is_empty(), "{jobs:?}");
}

/// Wait (at most 10 s) until `ready` holds.
async fn wait_until(ready: impl Fn() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready() {
        assert!(std::time::Instant::now() < until, "timed out waiting");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The volumes whose name starts with `prefix`.
fn volumes_like(rt: &MemoryRuntime, prefix: &str) -> Vec<String> {
    rt.volumes()
        .into_keys()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_with_snapshot_volumes_runs_on_a_copy_and_drops_the_original_at_commit() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor, _) = installed_app(rt.clone()).await;
    rt.write_volume_file(DATA, "db", b"rows").unwrap();
    let upgrade = submit_and_wait(
        &executor,
        "upgrade",
        "web",
        json!({"image": "app:2", "snapshot_volumes": true}),
    )
    .await;
    assert_eq!(upgrade.state, JobState::Succeeded, "{:?}", upgrade.error);
    let copies = volumes_like(&rt, "deckhand-web-V");
    assert_eq!(copies.len(), 1, "only the copy is left: {copies:?}");
    let copy = &copies[0];
    assert_ne!(copy, DATA);
    assert_eq!(rt.volume_files(copy).unwrap()["db"], b"rows");
    assert_eq!(
        created_configs(&executor, &upgrade)[0]["mounts"][0]["source"],
        copy.as_str()
    );
    let record = executor.journal().target("web").unwrap().unwrap();
    let view = deckhand::api::TargetView::of(record, executor.journal()).unwrap();
    assert_eq!(
        serde_json::to_value(view).unwrap()["volumes"][0]["docker_name"],
        copy.as_str()
    );
    // The next upgrade (snapshots off: the setting carries over) finds
    // the copy as the target's volume.
    let again = submit_and_wait(
        &executor,
        "upgrade",
        "web",
        json!({"image": "app:3", "snapshot_volumes": false}),
    )
    .await;
    assert_eq!(again.state, JobState::Succeeded, "{:?}", again.error);
    assert_eq!(
        created_configs(&executor, &again)[0]["mounts"][0]["source"],
        copy.as_str()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_upgrade_with_snapshot_volumes_leaves_the_old_data_and_container_as_they_were() {
    let rt = Arc::new(MemoryRuntime::new().with_crashing_image("app:bad"));
    let (_dir, executor, _) = installed_app(rt.clone()).await;
    rt.write_volume_file(DATA, "db", b"rows").unwrap();
    let before = rt.containers();
    let upgrade = submit_and_wait(
        &executor,
        "upgrade",
        "web",
        json!({"image": "app:bad", "snapshot_volumes": true}),
    )
    .await;
    assert_eq!(upgrade.state, JobState::RolledBack, "{:?}", upgrade.error);
    assert_eq!(
        volumes_like(&rt, "deckhand-web-V"),
        [DATA],
        "the copy is gone"
    );
    assert_eq!(
        rt.volume_files(DATA).unwrap(),
        [("db".to_owned(), b"rows".to_vec())].into()
    );
    assert_eq!(
        rt.containers(),
        before,
        "the old container, same id, running"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_first_upgrade_starts_the_new_container_healthy_before_it_stops_the_old_one() {
    let rt = Arc::new(MemoryRuntime::new());
    let (_dir, executor) = memory_engine(rt.clone());
    let install = submit_and_wait(&executor, "install", "web", json!({"image": "app:1"})).await;
    assert_eq!(install.state, JobState::Succeeded, "{:?}", install.error);
    let upgrade = submit_and_wait(
        &executor,
        "upgrade",
        "web",
        json!({"image": "app:2", "strategy": "start-first"}),
    )
    .await;
    assert_eq!(upgrade.state, JobState::Succeeded, "{:?}", upgrade.error);
    let ops: Vec<String> = executor
        .journal()
        .events(&upgrade.id, 0)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            Event::Intent { call, .. } => call["op"].as_str().map(str::to_owned),
            _ => None,
        })
        .filter(|op| ["start_container", "wait_healthy", "stop_container"].contains(&op.as_str()))
        .collect();
    assert_eq!(ops, ["start_container", "wait_healthy", "stop_container"]);
    let containers = rt.containers();
    assert_eq!(containers.len(), 1, "the old one went at commit");
    assert!(
        containers
            .values()
            .all(|c| c.running && c.name == "deckhand-web")
    );
}
