//! Real apps through the engine on the real daemon: a web server published
//! on a loopback port, data in a volume across upgrades, a failed migration
//! undone by `snapshot_volumes`, a cancelled upgrade that added a volume and
//! a network, and teardown keeping volumes.

use std::collections::HashMap;

use bollard::Docker;
use deckhand::executor::JobRequest;
use deckhand::journal::JobState;
use serde_json::json;

use crate::harness::*;

/// What `cmd` prints in container `id`.
async fn exec(docker: &Docker, id: &str, cmd: &[&str]) -> String {
    exec_in(docker, id, cmd).await.0
}

/// The id of the target's live container.
fn live_container(engine: &TestEngine, target: &str) -> String {
    engine
        .journal()
        .target(target)
        .unwrap()
        .unwrap()
        .current
        .unwrap()
        .container_id
}

/// Install `web:1` on `target` with volume `data` at `/data` holding `db`
/// = `content`: the engine and the live container's id.
async fn installed_with_data(name: &str, content: &str) -> (TestEngine, String, String) {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let target = unique_target(name);
    let job = run_job(
        &engine,
        "install",
        &target,
        json!({"image": image("web:1"), "network": "none", "volumes": ["data:/data"]}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let id = live_container(&engine, &target);
    exec(
        &engine.docker,
        &id,
        &["sh", "-c", &format!("echo {content} > /data/db")],
    )
    .await;
    (engine, target, id)
}

/// The Docker volumes and networks labelled as `target`'s.
async fn labelled(docker: &Docker, target: &str) -> (Vec<String>, Vec<String>) {
    let label = format!("io.deckhand.target={target}");
    let filters: HashMap<&str, Vec<&str>> = HashMap::from([("label", vec![label.as_str()])]);
    let volumes = docker
        .list_volumes(Some(
            bollard::query_parameters::ListVolumesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap()
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect();
    let networks = docker
        .list_networks(Some(
            bollard::query_parameters::ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|n| n.name)
        .collect();
    (volumes, networks)
}

/// Remove what the test left: containers, then volumes and networks.
async fn clean_up(docker: &Docker, target: &str) {
    remove_target_containers(docker, target).await;
    let (volumes, networks) = labelled(docker, target).await;
    for v in volumes {
        let _ = docker
            .remove_volume(&v, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await;
    }
    for n in networks {
        let _ = docker.remove_network(&n).await;
    }
}

async fn get(port: u16) -> Option<String> {
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .ok()?;
    resp.text().await.ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_web_server_published_on_a_loopback_port_answers_over_http_across_an_upgrade() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let target = unique_target("webapp");
    let port = free_port();
    let network = format!("{target}-net");
    let job = run_job(
        &engine,
        "install",
        &target,
        json!({"image": image("web:1"), "ports": [format!("127.0.0.1:{port}:80")], "networks": [network]}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert_eq!(get(port).await.as_deref().map(str::trim), Some("1"));
    let job = run_job(
        &engine,
        "upgrade",
        &target,
        json!({"image": image("web:2")}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert_eq!(get(port).await.as_deref().map(str::trim), Some("2"));
    let job = run_job(&engine, "teardown", &target, json!({})).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert_eq!(get(port).await, None, "nothing answers once torn down");
    let (_, networks) = labelled(&engine.docker, &target).await;
    assert!(
        networks.is_empty(),
        "the engine's network went: {networks:?}"
    );
    clean_up(&engine.docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn data_written_to_a_volume_survives_an_upgrade_and_teardown_keeps_the_volume() {
    let (engine, target, _) = installed_with_data("vol", "rows").await;
    let job = run_job(
        &engine,
        "upgrade",
        &target,
        json!({"image": image("web:2")}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let id = live_container(&engine, &target);
    assert_eq!(
        exec(&engine.docker, &id, &["cat", "/data/db"]).await.trim(),
        "rows"
    );
    let job = run_job(&engine, "teardown", &target, json!({})).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let (volumes, _) = labelled(&engine.docker, &target).await;
    assert_eq!(volumes, [format!("deckhand-{target}-V-data")]);
    clean_up(&engine.docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_migration_with_snapshot_volumes_is_rolled_back_with_the_old_data_and_container()
{
    let (engine, target, old) = installed_with_data("snap", "v1").await;
    // The new version migrates the data, then fails.
    let job = run_job(
        &engine,
        "upgrade",
        &target,
        json!({"image": image("web:2"), "snapshot_volumes": true, "cmd": ["sh", "-c", "echo migrated > /data/db; exit 1"]}),
    )
    .await;
    assert_eq!(job.state, JobState::RolledBack, "{:?}", job.error);
    assert_eq!(live_container(&engine, &target), old, "the same container");
    let state = engine.docker.inspect_container(&old, None).await.unwrap();
    assert_eq!(state.state.unwrap().running, Some(true));
    assert_eq!(
        exec(&engine.docker, &old, &["cat", "/data/db"])
            .await
            .trim(),
        "v1"
    );
    let (volumes, _) = labelled(&engine.docker, &target).await;
    assert_eq!(
        volumes,
        [format!("deckhand-{target}-V-data")],
        "the copy is gone"
    );
    clean_up(&engine.docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_mid_pull_of_an_upgrade_removes_the_volume_and_network_it_added_and_keeps_the_old_one()
 {
    let (engine, target, old) = installed_with_data("cvol", "rows").await;
    let proxy = SlowProxy::start(4 << 20).await;
    let big = proxy.image("big:2");
    ensure_image_absent(&engine.docker, &big).await;
    let network = format!("{target}-net2");
    let mut live = engine.journal().subscribe();
    let req = JobRequest::new(
        "upgrade",
        target.clone(),
        json!({"image": big, "volumes": ["data:/data", "cache:/cache"], "networks": [network]}),
    );
    let job = engine.executor.submit(req).await.unwrap();
    wait_for_pull_bytes(&mut live, &job.id).await;
    let (volumes, networks) = labelled(&engine.docker, &target).await;
    assert!(
        volumes.contains(&format!("deckhand-{target}-V-cache")),
        "{volumes:?}"
    );
    assert_eq!(networks, [network.clone()]);
    assert!(
        engine
            .executor
            .cancel(&job.id, None)
            .await
            .unwrap()
            .cancelled
    );
    let done = engine.executor.wait(&job.id).await.unwrap();
    assert_eq!(done.state, JobState::Cancelled, "{:?}", done.error);
    let (volumes, networks) = labelled(&engine.docker, &target).await;
    assert_eq!(volumes, [format!("deckhand-{target}-V-data")]);
    assert!(networks.is_empty(), "{networks:?}");
    assert_eq!(live_container(&engine, &target), old);
    assert_eq!(
        exec(&engine.docker, &old, &["cat", "/data/db"])
            .await
            .trim(),
        "rows"
    );
    clean_up(&engine.docker, &target).await;
}

/// The test registry that requires basic auth, and its credentials.
fn auth_registry() -> (String, String, String, String) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run `eval \"$(tests/env/up.sh)\"` first (it starts the registry with basic auth)")
        })
    };
    (
        var("DECKHAND_TEST_AUTH_REGISTRY"),
        var("DECKHAND_TEST_AUTH_CONFIG"),
        var("DECKHAND_TEST_AUTH_USER"),
        var("DECKHAND_TEST_AUTH_PASSWORD"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_from_a_registry_with_basic_auth_uses_the_configured_credentials_and_no_artifact_holds_them()
 {
    let docker = docker().await;
    let (registry, config, user, password) = auth_registry();
    let private = format!("{registry}/deckhand-test/private:1");
    ensure_image_absent(&docker, &private).await;
    let dir = tempfile::tempdir().unwrap();
    let target = unique_target("priv");
    // Without credentials: refused in one clear line, no job.
    let refused = deckhand(dir.path())
        .env("DECKHAND_REGISTRY_AUTH", "/nonexistent/config.json")
        .args(["install", &target, &private, "--network", "none"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let empty = tempfile::tempdir().unwrap();
    let anonymous = deckhand(dir.path())
        .env("DOCKER_CONFIG", empty.path())
        .args(["install", &target, &private, "--network", "none"])
        .output()
        .unwrap();
    assert!(!anonymous.status.success());
    let text = cli_text(&anonymous);
    assert!(
        text.contains("cannot be pulled")
            && (text.contains("auth") || text.contains("unauthorized")),
        "{text}"
    );
    // With them (the file given by DECKHAND_REGISTRY_AUTH): installed.
    let install = deckhand(dir.path())
        .env("DECKHAND_REGISTRY_AUTH", &config)
        .args(["install", &target, &private, "--network", "none"])
        .output()
        .unwrap();
    assert!(install.status.success(), "{}", cli_text(&install));
    let mut artifacts = vec![(
        "install output",
        cli_text(&refused) + &text + &cli_text(&install),
    )];
    for args in [
        vec!["jobs", "list", "--all"],
        vec!["jobs", "show", "--json"],
        vec!["journal", "export"],
        vec!["targets", "show", &target],
    ] {
        let mut args = args;
        let id;
        if args[1] == "show" && args[0] == "jobs" {
            let list = deckhand(dir.path())
                .args(["jobs", "list", "--json"])
                .output()
                .unwrap();
            let jobs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
            id = jobs[0]["id"].as_str().unwrap().to_owned();
            args.insert(2, &id);
        }
        let out = deckhand(dir.path()).args(&args).output().unwrap();
        artifacts.push(("command", format!("{args:?}: {}", cli_text(&out))));
    }
    let journal = std::fs::read(dir.path().join(deckhand::journal::Journal::FILE_NAME)).unwrap();
    artifacts.push((
        "journal file",
        String::from_utf8_lossy(&journal).into_owned(),
    ));
    // The encoded `user:password` as config.json holds it.
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let basic = stored["auths"][&registry]["auth"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!user.is_empty() && !basic.is_empty());
    for (what, text) in &artifacts {
        assert!(!text.contains(&password), "{what} holds the password");
        assert!(
            !text.contains(&basic),
            "{what} holds the encoded credentials"
        );
    }
    remove_target_containers(&docker, &target).await;
    ensure_image_absent(&docker, &private).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reserved_label_a_bad_port_or_a_relative_bind_path_gets_422_naming_the_field_and_no_job()
{
    let docker = docker().await;
    let s = Server::start("docker", None);
    let target = unique_target("bad");
    for (params, field) in [
        (
            json!({"image": image("web:1"), "labels": {"io.deckhand.job": "x"}}),
            "labels",
        ),
        (
            json!({"image": image("web:1"), "ports": ["127.0.0.1:70000:80"], "networks": ["n"]}),
            "ports[0]",
        ),
        (
            json!({"image": image("web:1"), "volumes": ["relative/dir:/x"]}),
            "volumes[0]",
        ),
    ] {
        let resp = s
            .post_job(json!({"workflow": "install", "target": target, "params": params}))
            .await;
        assert_eq!(resp.status(), 422, "{params}");
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "application/problem+json"
        );
        let problem: serde_json::Value = resp.json().await.unwrap();
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(field), "{params}: {detail}");
    }
    let jobs = s.get_json("/v1/jobs?all=true").await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0, "{jobs}");
    let (volumes, networks) = labelled(&docker, &target).await;
    assert!(volumes.is_empty() && networks.is_empty());
}

/// The host port the daemon published container `id`'s port 80 on.
async fn published_port(docker: &Docker, id: &str) -> u16 {
    let c = docker.inspect_container(id, None).await.unwrap();
    let ports = c.network_settings.unwrap().ports.unwrap();
    let bindings = ports["80/tcp"].clone().unwrap();
    bindings[0].host_port.as_ref().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_first_upgrade_serves_from_the_new_container_once_it_is_healthy() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let target = unique_target("sfirst");
    let job = run_job(
        &engine,
        "install",
        &target,
        json!({"image": image("web:1"), "ports": ["127.0.0.1::80"], "networks": [format!("{target}-net")]}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let old = live_container(&engine, &target);
    let old_port = published_port(&engine.docker, &old).await;
    assert_eq!(get(old_port).await.as_deref().map(str::trim), Some("1"));
    let job = run_job(
        &engine,
        "upgrade",
        &target,
        json!({"image": image("web:2"), "strategy": "start-first"}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let new = live_container(&engine, &target);
    assert_ne!(new, old);
    let port = published_port(&engine.docker, &new).await;
    assert_eq!(get(port).await.as_deref().map(str::trim), Some("2"));
    assert!(
        engine.docker.inspect_container(&old, None).await.is_err(),
        "the old container went at commit"
    );
    clean_up(&engine.docker, &target).await;
}
