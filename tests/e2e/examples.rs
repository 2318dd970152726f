//! The example workflows in `plugins/examples/`, on a real daemon, through
//! the CLI a user would use: register, run, cancel, crash and recover.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use deckhand::journal::{JobFilter, JobState, Journal};

use crate::harness::*;

fn blue_green_wasm() -> String {
    Path::new(env!("DECKHAND_PLUGIN_WASM_DIR"))
        .join("deckhand_example_blue_green.wasm")
        .display()
        .to_string()
}

/// A data dir with blue-green registered and `target` installed from `v1`.
fn set_up(dir: &Path, target: &str, v1: &str) {
    cli_ok(dir, &["plugin", "add", "blue-green", &blue_green_wasm()]);
    cli_ok(dir, &["install", target, v1, "--network", "none"]);
}

fn last_job(dir: &Path, target: &str) -> deckhand::journal::JobRecord {
    let journal = Journal::open(dir.join(Journal::FILE_NAME)).unwrap();
    journal
        .list_jobs(&JobFilter {
            target: Some(target.into()),
            ..Default::default()
        })
        .unwrap()
        .remove(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn blue_green_switches_only_after_green_is_healthy_and_removes_blue_at_commit() {
    let docker = docker().await;
    let dir = tempfile::tempdir().unwrap();
    let target = unique_target("bg");
    let (v1, v2) = (image("bg:1"), image("bg:2"));
    set_up(dir.path(), &target, &v1);
    let params = format!(r#"{{"image": "{v2}"}}"#);
    let out = cli_ok(
        dir.path(),
        &["run", "blue-green", &target, "--params", &params],
    );
    // Green was started and healthy before blue was stopped.
    let start_green = out.find("start_container").unwrap();
    let wait_green = out.find("wait_healthy").unwrap();
    let stop_blue = out.find("stop_container").unwrap();
    assert!(start_green < wait_green && wait_green < stop_blue, "{out}");
    let after = containers_of(&docker, &target).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].image.as_deref(), Some(v2.as_str()));
    assert_eq!(
        after[0].names.as_deref(),
        Some(&[format!("/deckhand-{target}")][..])
    );
    // The job recorded the digest of the component it ran.
    let job = last_job(dir.path(), &target);
    assert_eq!(
        job.plugin_digest,
        deckhand::plugin::digest_of(&std::fs::read(blue_green_wasm()).unwrap())
    );
    remove_target_containers(&docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn blue_green_cancelled_while_green_warms_up_leaves_blue_as_it_was() {
    use std::io::{BufRead, BufReader};
    let docker = docker().await;
    let dir = tempfile::tempdir().unwrap();
    let target = unique_target("bgc");
    let (v1, v2) = (image("bg-cancel:1"), image("bg-cancel:2"));
    set_up(dir.path(), &target, &v1);
    let journal_path = dir.path().join(Journal::FILE_NAME);
    let before = snapshot(
        &docker,
        &Journal::open(&journal_path).unwrap(),
        &target,
        std::slice::from_ref(&v1),
    )
    .await;
    // A long health wait: green takes 30 s to count as up.
    let params = format!(r#"{{"image": "{v2}"}}"#);
    let mut child = Command::new(env!("CARGO_BIN_EXE_deckhand"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["run", "blue-green", &target, "--params", &params])
        .env("DECKHAND_SETTLE_MS", "30000")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("wait_healthy") {
            break;
        }
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert_eq!(child.wait().unwrap().code(), Some(1));
    assert!(
        rest.iter().any(|l| l.contains("cancelled after")),
        "{rest:?}"
    );
    let after = snapshot(
        &docker,
        &Journal::open(&journal_path).unwrap(),
        &target,
        std::slice::from_ref(&v1),
    )
    .await;
    assert_eq!(after, before, "blue runs on, same id; green is gone");
    remove_target_containers(&docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn blue_green_killed_anywhere_recovers_to_blue_or_to_complete_green() {
    let docker = docker().await;
    let (v1, v2) = (image("bg-crash:1"), image("bg-crash:2"));
    let images = vec![v1.clone(), v2.clone()];
    let params = format!(r#"{{"image": "{v2}"}}"#);
    let mut kills = 0;
    for n in (4..).step_by(5) {
        let dir = tempfile::tempdir().unwrap();
        let target = unique_target("bgk");
        for i in &images {
            ensure_image_absent(&docker, i).await;
        }
        set_up(dir.path(), &target, &v1);
        let journal_path = dir.path().join(Journal::FILE_NAME);
        let before = snapshot(
            &docker,
            &Journal::open(&journal_path).unwrap(),
            &target,
            &images,
        )
        .await;
        let run = run_cli(
            dir.path(),
            &["run", "blue-green", &target, "--params", &params],
            Some(n),
        );
        if run.status.success() {
            remove_target_containers(&docker, &target).await;
            break;
        }
        assert_eq!(run.status.signal(), Some(9), "{}", cli_text(&run));
        kills += 1;
        cli_ok(dir.path(), &["recover"]);
        let job = last_job(dir.path(), &target);
        let after = snapshot(
            &docker,
            &Journal::open(&journal_path).unwrap(),
            &target,
            &images,
        )
        .await;
        match job.state {
            JobState::RolledBack => assert_eq!(after, before, "killed after event {n}"),
            JobState::Succeeded => {
                assert_eq!(
                    after.containers.len(),
                    1,
                    "killed after event {n}: {after:?}"
                );
                assert_eq!(after.revision.as_ref().map(|r| r.0), Some(2));
                assert!(after.containers[0].2, "green runs");
            }
            other => panic!("killed after event {n}: {other}"),
        }
        remove_target_containers(&docker, &target).await;
    }
    assert!(kills >= 5, "{kills} kill points");
}

/// The example stack, `examples/stack/compose.yaml`.
fn example_stack() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/stack/compose.yaml")
        .display()
        .to_string()
}

/// The page `127.0.0.1:port` serves.
async fn page(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_stack_installs_upgrades_one_service_and_tears_down_through_the_cli() {
    let docker = docker().await;
    let dir = tempfile::tempdir().unwrap();
    let target = unique_target("shop");
    let port = free_port().to_string();
    let registry = registry();
    let file = example_stack();
    let env = [("REGISTRY", registry.as_str()), ("WEB_PORT", port.as_str())];
    let run = |args: &[&str], extra: &[(&str, &str)]| {
        let env: Vec<(&str, &str)> = env.iter().chain(extra).copied().collect();
        let out = run_cli_env(dir.path(), args, None, &env);
        let text = cli_text(&out);
        assert!(out.status.success(), "deckhand {}: {text}", args.join(" "));
        text
    };
    run(&["install", &target, "-f", &file], &[]);
    let journal = Journal::open(dir.path().join(Journal::FILE_NAME)).unwrap();
    let services = |journal: &Journal| -> Vec<(String, String)> {
        journal
            .target(&target)
            .unwrap()
            .unwrap()
            .current
            .unwrap()
            .services
            .into_iter()
            .map(|s| (s.name, s.container_id))
            .collect()
    };
    let before = services(&journal);
    let names: Vec<&str> = before.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["db", "migrate", "web"]);
    assert_eq!(page(port.parse().unwrap()).await.trim(), "1");
    // The migration ran once, into the volume web and db share with it.
    let web = &before[2].1;
    let (schema, _) = exec_in(&docker, &before[0].1, &["cat", "/data/schema"]).await;
    assert_eq!(schema.trim(), "schema-1");
    let (answer, code) = exec_in(
        &docker,
        web,
        &[
            "sh",
            "-c",
            "echo -e 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 db 80",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "web reaches db by name: {answer}");
    assert!(answer.contains("200 OK"), "{answer}");

    run(&["upgrade", &target, "-f", &file], &[("TAG", "2")]);
    let after = services(&journal);
    assert_eq!(after[0], before[0], "db kept its container");
    assert_eq!(after[1], before[1], "migrate kept its container");
    assert_ne!(after[2].1, before[2].1, "web runs a new container");
    assert_eq!(page(port.parse().unwrap()).await.trim(), "2");
    let shown = run(&["targets", "show", &target], &[]);
    assert!(shown.contains("service web"), "{shown}");

    run(&["teardown", &target, "--remove-volumes"], &[]);
    assert!(containers_of(&docker, &target).await.is_empty());
    let (volumes, networks) = target_volumes_and_networks(&docker, &target).await;
    assert!(
        volumes.is_empty() && networks.is_empty(),
        "{volumes:?} {networks:?}"
    );
}
