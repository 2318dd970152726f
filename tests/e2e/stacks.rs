//! Stacks on the real daemon: a Compose file installed, upgraded, rolled
//! back, cancelled and torn down as one job. Service `db` of target `t`
//! runs in container `deckhand-t-db` labelled `io.deckhand.service=db`, on
//! the stack's network `deckhand-t-N-default` where it answers to `db`;
//! volume `data` is `deckhand-t-V-data` (see `plugins/sdk/src/stack.rs`).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;
use deckhand::executor::JobRequest;
use deckhand::journal::{JobRecord, JobState, RevisionRecord};
use serde_json::json;

use crate::harness::*;

/// `db`'s health check: its server answers a GET (this busybox's `nc` has
/// no `-z`).
const DB_HEALTHCHECK: &str = r#"    healthcheck:
      test: ["CMD-SHELL", 'echo -e "GET / HTTP/1.0\r\n\r\n" | nc -w 1 127.0.0.1 80 | grep -q "200 OK"']
      interval: 1s
      retries: 30
"#;

/// A health check that never passes.
const FAILING_HEALTHCHECK: &str = r#"    healthcheck:
      test: ["CMD", "false"]
      interval: 1s
      retries: 1
"#;

/// The shop stack: `web` (image `web`, published on `127.0.0.1:port`)
/// waits for a healthy `db` (web:1 as a stand-in server, volume `data` at
/// `/data`). `web_extra` and `db_extra` are more keys of each service
/// (lines indented by four spaces).
fn shop(web: &str, port: u16, web_extra: &str, db_extra: &str) -> String {
    let db = image("web:1");
    format!(
        r#"services:
  web:
    image: {web}
    ports: ["127.0.0.1:{port}:80"]
    depends_on:
      db: {{condition: service_healthy}}
{web_extra}  db:
    image: {db}
    volumes: ["data:/data"]
{DB_HEALTHCHECK}{db_extra}volumes:
  data: {{}}
"#
    )
}

/// The install/upgrade params of `compose`.
fn stack_params(compose: &str) -> serde_json::Value {
    json!({"compose": compose, "health_timeout_s": 30})
}

/// An engine with the shop stack (web:1) installed on a new target: the
/// engine, the target and web's port.
async fn installed_shop(prefix: &str) -> (TestEngine, String, u16) {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let target = unique_target(prefix);
    let port = free_port();
    let job = run_job(
        &engine,
        "install",
        &target,
        stack_params(&shop(&image("web:1"), port, "", "")),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    (engine, target, port)
}

/// The target's current revision.
fn current(engine: &TestEngine, target: &str) -> Option<RevisionRecord> {
    engine
        .journal()
        .target(target)
        .unwrap()
        .and_then(|t| t.current)
}

/// Service name → container id, as the current revision records them.
fn service_ids(engine: &TestEngine, target: &str) -> BTreeMap<String, String> {
    current(engine, target)
        .expect("a current revision")
        .services
        .into_iter()
        .map(|s| (s.name, s.container_id))
        .collect()
}

/// (name, running) of container `id`; `None`: there is none.
async fn name_and_running(docker: &Docker, id: &str) -> Option<(String, bool)> {
    let c = docker.inspect_container(id, None).await.ok()?;
    Some((
        c.name.unwrap().trim_start_matches('/').to_owned(),
        c.state.unwrap().running.unwrap(),
    ))
}

/// Names of every container, labelled or not, whose name starts with
/// `deckhand-<target>-` (a service's, or one set aside as `-Next`/`-Prev`),
/// sorted.
async fn containers_named_after(docker: &Docker, target: &str) -> Vec<String> {
    let prefix = format!("deckhand-{target}-");
    let filters = HashMap::from([("name", vec![prefix.clone()])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let mut names: Vec<String> = docker
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .map(|n| n.trim_start_matches('/').to_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    names.sort();
    names
}

/// Every service of the current revision runs in the container the
/// revision names, under `deckhand-<target>-<service>`, and nothing else
/// named after the target exists.
async fn assert_services_run_as_recorded(engine: &TestEngine, target: &str) {
    let ids = service_ids(engine, target);
    let mut expected = Vec::new();
    for (service, id) in &ids {
        let name = format!("deckhand-{target}-{service}");
        assert_eq!(
            name_and_running(&engine.docker, id).await,
            Some((name.clone(), true)),
            "service {service}"
        );
        expected.push(name);
    }
    expected.sort();
    assert_eq!(
        containers_named_after(&engine.docker, target).await,
        expected,
        "no container set aside is left"
    );
}

/// GET / on `127.0.0.1:port`, retried for up to 5 s until it answers: the
/// body.
async fn get(port: u16) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(resp) = reqwest::get(format!("http://127.0.0.1:{port}/")).await
            && let Ok(text) = resp.text().await
        {
            return Some(text);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// From container `web`, `db` answers an HTTP GET on port 80 by its
/// service name (with the page of web:1, which db runs).
async fn assert_web_reaches_db(docker: &Docker, web: &str) {
    let get = r#"echo -e "GET / HTTP/1.0\r\n\r\n" | nc -w 2 db 80"#;
    let (answer, code) = exec_in(docker, web, &["sh", "-c", get]).await;
    assert_eq!(code, Some(0), "{answer}");
    assert!(
        answer.contains("200 OK"),
        "db answers on port 80 by name: {answer}"
    );
    assert_eq!(answer.lines().last().map(str::trim), Some("1"), "{answer}");
}

/// The containers a job's intents stopped, by id, in order.
fn stopped(engine: &TestEngine, job: &JobRecord) -> Vec<String> {
    intent_calls(engine.journal(), &job.id, "stop_container")
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect()
}

async fn volume_exists(docker: &Docker, name: &str) -> bool {
    docker.inspect_volume(name).await.is_ok()
}

async fn network_exists(docker: &Docker, name: &str) -> bool {
    docker
        .inspect_network(
            name,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .is_ok()
}

/// A Docker timestamp (RFC 3339, nanoseconds).
fn time(stamp: &str) -> SystemTime {
    humantime::parse_rfc3339(stamp).unwrap_or_else(|e| panic!("{stamp}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_install_runs_every_service_and_web_reaches_db_by_name() {
    let (engine, target, port) = installed_shop("stk-inst").await;
    let docker = &engine.docker;
    let revision = current(&engine, &target).unwrap();
    assert!(revision.is_stack());
    let names: Vec<&str> = revision.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["db", "web"],
        "db starts before the web that waits for it"
    );
    // Each service runs in its container, named and labelled as its, on
    // the stack's network.
    let network = format!("deckhand-{target}-N-default");
    for s in &revision.services {
        assert_eq!(s.image, image("web:1"));
        let c = docker
            .inspect_container(&s.container_id, None)
            .await
            .unwrap();
        assert_eq!(
            c.name.as_deref(),
            Some(format!("/deckhand-{target}-{}", s.name).as_str())
        );
        assert_eq!(c.state.unwrap().running, Some(true), "{}", s.name);
        let labels = c.config.unwrap().labels.unwrap();
        assert_eq!(labels["io.deckhand.service"], s.name);
        assert_eq!(labels["io.deckhand.target"], target);
        let networks = c.network_settings.unwrap().networks.unwrap();
        assert!(networks.contains_key(&network), "{}: {networks:?}", s.name);
    }
    let labelled: Vec<String> = containers_of(docker, &target)
        .await
        .into_iter()
        .map(|c| c.id.unwrap())
        .collect();
    assert_eq!(labelled.len(), 2, "{labelled:?}");
    assert_services_run_as_recorded(&engine, &target).await;
    // web reaches db by its service name.
    let ids = service_ids(&engine, &target);
    assert_web_reaches_db(docker, &ids["web"]).await;
    // The published port answers from the host.
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the published port accepts");
    assert_eq!(get(port).await.as_deref().map(str::trim), Some("1"));
    remove_target_resources(docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_upgrade_changing_one_service_keeps_the_others_container_ids() {
    let (engine, target, port) = installed_shop("stk-upg").await;
    let before = service_ids(&engine, &target);
    let job = run_job(
        &engine,
        "upgrade",
        &target,
        stack_params(&shop(&image("web:2"), port, "", "")),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let after = service_ids(&engine, &target);
    assert_eq!(after["db"], before["db"], "db is unchanged: same container");
    assert_ne!(after["web"], before["web"], "web runs a new container");
    assert_eq!(current(&engine, &target).unwrap().revision, 2);
    assert_services_run_as_recorded(&engine, &target).await;
    let web = engine
        .docker
        .inspect_container(&after["web"], None)
        .await
        .unwrap();
    assert_eq!(web.config.unwrap().image, Some(image("web:2")));
    assert!(
        engine
            .docker
            .inspect_container(&before["web"], None)
            .await
            .is_err(),
        "the old web went at commit"
    );
    assert_eq!(get(port).await.as_deref().map(str::trim), Some("2"));
    assert_web_reaches_db(&engine.docker, &after["web"]).await;
    remove_target_resources(&engine.docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_upgrade_whose_service_fails_its_health_check_restores_every_service() {
    let (engine, target, port) = installed_shop("stk-rb").await;
    let docker = &engine.docker;
    let before = service_ids(&engine, &target);
    let (_, code) = exec_in(docker, &before["db"], &["sh", "-c", "echo keep > /data/x"]).await;
    assert_eq!(code, Some(0));
    // db changes (a new variable) and web changes to a check that fails.
    let compose = shop(
        &image("web:1"),
        port,
        FAILING_HEALTHCHECK,
        "    environment:\n      MODE: v2\n",
    );
    let job = run_job(&engine, "upgrade", &target, stack_params(&compose)).await;
    assert_eq!(job.state, JobState::RolledBack, "{:?}", job.error);
    // Both changed services were replaced before the check failed.
    assert_eq!(
        stopped(&engine, &job),
        [before["db"].clone(), before["web"].clone()],
        "the upgrade got as far as replacing both"
    );
    let revision = current(&engine, &target).unwrap();
    assert_eq!(revision.revision, 1);
    assert_eq!(service_ids(&engine, &target), before);
    assert_services_run_as_recorded(&engine, &target).await;
    let (data, _) = exec_in(docker, &before["db"], &["cat", "/data/x"]).await;
    assert_eq!(data.trim(), "keep");
    let db = docker.inspect_container(&before["db"], None).await.unwrap();
    let env = db.config.unwrap().env.unwrap_or_default();
    assert!(!env.iter().any(|e| e.starts_with("MODE=")), "{env:?}");
    assert_eq!(get(port).await.as_deref().map(str::trim), Some("1"));
    assert_web_reaches_db(docker, &before["web"]).await;
    remove_target_resources(docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_stack_upgrade_mid_pull_leaves_the_stack_as_it_was() {
    let (engine, target, port) = installed_shop("stk-cancel").await;
    let docker = &engine.docker;
    let before = service_ids(&engine, &target);
    let proxy = SlowProxy::start(4 << 20).await;
    let big = proxy.image("big:2");
    ensure_image_absent(docker, &big).await;
    let mut live = engine.journal().subscribe();
    let req = JobRequest::new(
        "upgrade",
        target.clone(),
        stack_params(&shop(&big, port, "", "")),
    );
    let job = engine.executor.submit(req).await.unwrap();
    wait_for_pull_bytes(&mut live, &job.id).await;
    let started = Instant::now();
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
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the pull was aborted, not waited out ({:?})",
        started.elapsed()
    );
    assert_eq!(current(&engine, &target).unwrap().revision, 1);
    assert_eq!(service_ids(&engine, &target), before);
    assert_services_run_as_recorded(&engine, &target).await;
    assert!(stopped(&engine, &done).is_empty(), "no service was touched");
    assert!(
        !image_present(docker, &big).await,
        "the pulled image is not left"
    );
    assert_eq!(get(port).await.as_deref().map(str::trim), Some("1"));
    remove_target_resources(docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_teardown_stops_services_in_reverse_order_and_removes_them() {
    let (engine, target, port) = installed_shop("stk-down").await;
    let docker = &engine.docker;
    let ids = service_ids(&engine, &target);
    let job = run_job(&engine, "teardown", &target, json!({})).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert_eq!(
        stopped(&engine, &job),
        [ids["web"].clone(), ids["db"].clone()],
        "web stops before the db it depends on"
    );
    for id in ids.values() {
        assert!(
            docker.inspect_container(id, None).await.is_err(),
            "{id} is gone"
        );
    }
    assert!(containers_of(docker, &target).await.is_empty());
    assert!(containers_named_after(docker, &target).await.is_empty());
    assert!(
        !network_exists(docker, &format!("deckhand-{target}-N-default")).await,
        "the stack's network is gone"
    );
    assert!(
        volume_exists(docker, &format!("deckhand-{target}-V-data")).await,
        "volumes stay unless remove_volumes"
    );
    assert!(current(&engine, &target).is_none());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing answers on the port"
    );
    remove_target_resources(docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_teardown_with_remove_volumes_removes_its_volume() {
    let (engine, target, _port) = installed_shop("stk-downv").await;
    let docker = &engine.docker;
    let volume = format!("deckhand-{target}-V-data");
    assert!(volume_exists(docker, &volume).await);
    let job = run_job(
        &engine,
        "teardown",
        &target,
        json!({"remove_volumes": true}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert!(containers_named_after(docker, &target).await.is_empty());
    assert!(!volume_exists(docker, &volume).await, "the volume is gone");
    assert!(!network_exists(docker, &format!("deckhand-{target}-N-default")).await);
    let (volumes, networks) = target_volumes_and_networks(docker, &target).await;
    assert!(
        volumes.is_empty() && networks.is_empty(),
        "{volumes:?} {networks:?}"
    );
    remove_target_resources(docker, &target).await;
}

/// A stack whose `web` waits for the one-shot `migrate` (which runs
/// `script` with the volume `data` at `/data`) to complete successfully.
fn migrating(script: &str) -> String {
    let web = image("web:1");
    format!(
        r#"services:
  migrate:
    image: {web}
    command: ["sh", "-c", "{script}"]
    volumes: ["data:/data"]
  web:
    image: {web}
    volumes: ["data:/data"]
    depends_on:
      migrate: {{condition: service_completed_successfully}}
volumes:
  data: {{}}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_with_a_one_shot_service_waits_for_it_to_complete() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let docker = &engine.docker;
    let target = unique_target("stk-once");
    let job = run_job(
        &engine,
        "install",
        &target,
        stack_params(&migrating("echo done > /data/m")),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let ids = service_ids(&engine, &target);
    let migrate = docker
        .inspect_container(&ids["migrate"], None)
        .await
        .unwrap();
    assert_eq!(
        migrate.name.as_deref(),
        Some(format!("/deckhand-{target}-migrate").as_str())
    );
    let migrate = migrate.state.unwrap();
    assert_eq!(migrate.running, Some(false), "it ran once");
    assert_eq!(migrate.exit_code, Some(0));
    let web = docker.inspect_container(&ids["web"], None).await.unwrap();
    let web = web.state.unwrap();
    assert_eq!(web.running, Some(true));
    assert!(
        time(web.started_at.as_deref().unwrap()) >= time(migrate.finished_at.as_deref().unwrap()),
        "web started ({:?}) after migrate finished ({:?})",
        web.started_at,
        migrate.finished_at
    );
    let (m, _) = exec_in(docker, &ids["web"], &["cat", "/data/m"]).await;
    assert_eq!(m.trim(), "done", "web sees what migrate wrote");
    remove_target_resources(docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stack_whose_one_shot_service_fails_rolls_back_the_install_leaving_nothing() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let docker = &engine.docker;
    let target = unique_target("stk-oncefail");
    let job = run_job(
        &engine,
        "install",
        &target,
        stack_params(&migrating("exit 1")),
    )
    .await;
    assert_eq!(job.state, JobState::RolledBack, "{:?}", job.error);
    let error = job.error.as_deref().unwrap_or_default();
    assert!(error.contains("migrate"), "{error}");
    assert!(current(&engine, &target).is_none());
    let left = snapshot(docker, engine.journal(), &target, &[]).await;
    assert!(left.containers.is_empty(), "{:?}", left.containers);
    assert!(left.volumes.is_empty(), "{:?}", left.volumes);
    assert!(left.networks.is_empty(), "{:?}", left.networks);
    assert!(containers_named_after(docker, &target).await.is_empty());
    remove_target_resources(docker, &target).await;
}

/// An upgrade that changes only the one-shot, which now exits 1, does not
/// commit: a changed one-shot must complete even when no changed service
/// waits for it.
#[tokio::test(flavor = "multi_thread")]
async fn a_stack_upgrade_whose_one_shot_service_fails_restores_the_stack() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let docker = &engine.docker;
    let target = unique_target("stk-onceupg");
    let job = run_job(
        &engine,
        "install",
        &target,
        stack_params(&migrating("echo done > /data/m")),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let before = service_ids(&engine, &target);
    // Only `migrate` changes, and it fails; `web` waits for it to complete
    // successfully.
    let job = run_job(
        &engine,
        "upgrade",
        &target,
        stack_params(&migrating("exit 1")),
    )
    .await;
    // Observed first, then cleaned up, then checked: a failure here leaves
    // nothing behind.
    let revision = current(&engine, &target).unwrap().revision;
    let now = service_ids(&engine, &target);
    let exit = docker
        .inspect_container(&now["migrate"], None)
        .await
        .unwrap()
        .state
        .and_then(|s| s.exit_code);
    let old_migrate = name_and_running(docker, &before["migrate"]).await;
    let old_web = name_and_running(docker, &before["web"]).await;
    let named = containers_named_after(docker, &target).await;
    remove_target_resources(docker, &target).await;
    assert_eq!(
        job.state,
        JobState::RolledBack,
        "the upgrade committed revision {revision} with a migrate that exited {exit:?}"
    );
    assert!(
        job.error.as_deref().unwrap_or_default().contains("migrate"),
        "{:?}",
        job.error
    );
    assert_eq!(revision, 1);
    assert_eq!(now, before);
    assert_eq!(
        old_migrate,
        Some((format!("deckhand-{target}-migrate"), false))
    );
    assert_eq!(old_web, Some((format!("deckhand-{target}-web"), true)));
    assert_eq!(
        named,
        [
            format!("deckhand-{target}-migrate"),
            format!("deckhand-{target}-web")
        ]
    );
}

/// Two services on images of their own that wait for nothing: pulled at
/// once.
fn two_images(web: &str, db: &str) -> String {
    format!("services:\n  web:\n    image: {web}\n  db:\n    image: {db}\n")
}

/// The labels of each pull a progress record lists, sorted.
fn pull_labels(progress: &serde_json::Value) -> Vec<String> {
    let mut labels: Vec<String> = progress["pulls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["labels"].to_string())
        .collect();
    labels.sort();
    labels
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stacks_images_are_pulled_at_once_with_progress_per_service_in_job_json_and_events() {
    let docker = docker().await;
    // A layer of its own each, through a proxy slow enough that both
    // pulls are seen under way.
    let proxy = SlowProxy::start(512 << 10).await;
    let stamp = unique_target("pulls");
    let through_proxy = |reference: String| reference.replace(&registry(), &proxy.addr);
    let web = through_proxy(fresh_image(&format!("{stamp}-web"), 1 << 20));
    let db = through_proxy(fresh_image(&format!("{stamp}-db"), 1 << 20));
    let s = Server::start("docker", None);
    let target = unique_target("stk-pulls");
    let job = s
        .accepted(json!({"workflow": "install", "target": target,
                         "params": {"compose": two_images(&web, &db)}}))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let seen = s
        .wait_for_job(&id, |j| {
            pull_labels(&j["progress"]).len() == 2 || is_terminal(j)
        })
        .await;
    assert_eq!(
        pull_labels(&seen["progress"]),
        [r#"["db"]"#, r#"["web"]"#],
        "{seen}"
    );
    let events = read_events(
        &http_client(),
        &s.at(&format!("/v1/jobs/{id}/events")),
        None,
    )
    .await;
    let end = &events.last().unwrap().2;
    assert_eq!(end["state"], "succeeded", "{}", end["error"]);
    let progress: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e.1 == "progress")
        .map(|e| &e.2)
        .collect();
    let both_under_way = progress.iter().any(|p| {
        let pulls = p["pulls"].as_array().map(Vec::as_slice).unwrap_or_default();
        pulls.len() == 2
            && pulls
                .iter()
                .all(|q| q["layers_total"].as_u64() > Some(0) && q["fraction"].as_f64() < Some(1.0))
    });
    assert!(
        both_under_way,
        "no record shows both pulls under way: {progress:?}"
    );
    let last = progress.last().unwrap();
    assert_eq!(last["fraction"], 1.0);
    assert!(
        last["pulls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["fraction"] == 1.0)
    );
    let fractions: Vec<f64> = progress
        .iter()
        .filter_map(|p| p["fraction"].as_f64())
        .collect();
    assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "{fractions:?}");
    remove_target_resources(&docker, &target).await;
    ensure_image_absent(&docker, &web).await;
    ensure_image_absent(&docker, &db).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_prints_a_line_for_each_service_whose_image_is_pulled() {
    let docker = docker().await;
    let dir = cli_data_dir();
    let target = unique_target("stk-cli-pulls");
    let file = dir.path().join("compose.yaml");
    let web = fresh_image(&format!("{target}-web"), 4096);
    let db = fresh_image(&format!("{target}-db"), 4096);
    std::fs::write(&file, two_images(&web, &db)).unwrap();
    let out = cli_ok(
        dir.path(),
        &["install", &target, "-f", file.to_str().unwrap()],
    );
    for (service, img) in [("web", &web), ("db", &db)] {
        assert!(
            out.lines()
                .any(|l| l.contains("pulled") && l.contains(img.as_str()) && l.ends_with(service)),
            "no line for {service}: {out}"
        );
    }
    remove_target_resources(&docker, &target).await;
    ensure_image_absent(&docker, &web).await;
    ensure_image_absent(&docker, &db).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_external_volume_keeps_its_data_across_targets_and_outlives_their_teardown() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let docker = &engine.docker;
    let shared = unique_target("ext-data");
    docker
        .create_volume(bollard::models::VolumeCreateRequest {
            name: Some(shared.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let compose = format!(
        "services:\n  db:\n    image: {}\n    volumes: [\"data:/data\"]\nvolumes:\n  data:\n    external: true\n    name: {shared}\n",
        image("web:1")
    );
    let (first, second) = (unique_target("stk-ext-a"), unique_target("stk-ext-b"));
    let job = run_job(&engine, "install", &first, stack_params(&compose)).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let db = &service_ids(&engine, &first)["db"];
    let (_, code) = exec_in(docker, db, &["sh", "-c", "echo kept > /data/file"]).await;
    assert_eq!(code, Some(0));
    let down = run_job(&engine, "teardown", &first, json!({"remove_volumes": true})).await;
    assert_eq!(down.state, JobState::Succeeded, "{:?}", down.error);
    assert!(
        volume_exists(docker, &shared).await,
        "not the engine's to remove"
    );
    let job = run_job(&engine, "install", &second, stack_params(&compose)).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let db = &service_ids(&engine, &second)["db"];
    let (content, _) = exec_in(docker, db, &["cat", "/data/file"]).await;
    assert_eq!(content.trim(), "kept");
    remove_target_resources(docker, &second).await;
    remove_target_resources(docker, &first).await;
    docker
        .remove_volume(
            &shared,
            None::<bollard::query_parameters::RemoveVolumeOptions>,
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_replaces_a_service_whose_tag_was_pushed_again_and_keeps_the_others() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let docker = &engine.docker;
    let target = unique_target("stk-digest");
    let web = fresh_image(&format!("{target}-web"), 4096);
    let compose = two_images(&web, &image("web:1"));
    let job = run_job(&engine, "install", &target, stack_params(&compose)).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let before = service_ids(&engine, &target);
    let old_image = docker.inspect_image(&web).await.unwrap().id.unwrap();
    // The same tag, pushed again with other content; the file is the same.
    fresh_image(&format!("{target}-web"), 4096);
    let job = run_job(&engine, "upgrade", &target, stack_params(&compose)).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let after = service_ids(&engine, &target);
    assert_eq!(after["db"], before["db"], "db's image did not move");
    assert_ne!(after["web"], before["web"], "web runs the new push");
    let running = docker.inspect_container(&after["web"], None).await.unwrap();
    assert_ne!(running.image.as_deref(), Some(old_image.as_str()));
    assert_services_run_as_recorded(&engine, &target).await;
    remove_target_resources(docker, &target).await;
    ensure_image_absent(docker, &web).await;
    ensure_image_absent(docker, &old_image).await;
}
