//! The `deckhand` binary as a user runs it.

use std::process::Command;

use crate::harness::*;

fn deckhand(data_dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deckhand"));
    c.arg("--data-dir").arg(data_dir);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_install_shows_steps_and_jobs_show_prints_the_journal() {
    let docker = docker().await;
    let dir = tempfile::tempdir().unwrap();
    let target = unique_target("cli");
    let out = deckhand(dir.path()).args(["install", &target, &image("app:2"), "--network", "none"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("step 1: pull_image"), "{stdout}");
    assert!(stdout.contains("succeeded in"), "{stdout}");

    let list = deckhand(dir.path()).args(["jobs", "list", "--json"]).output().unwrap();
    let jobs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let id = jobs[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(jobs[0]["state"], "succeeded");

    let show = deckhand(dir.path()).args(["jobs", "show", &id]).output().unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    for expected in ["intent  1: pull_image", "result  1: ok", "intent  2: create_container", "state   succeeded"] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    remove_target_containers(&docker, &target).await;
}

#[test]
fn cli_without_a_reachable_daemon_says_so_in_one_line_naming_docker_host() {
    let dir = tempfile::tempdir().unwrap();
    let out = deckhand(dir.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["install", "web", "app:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DOCKER_HOST"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn cli_refuses_an_invalid_target_name_before_creating_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let out = deckhand(dir.path()).args(["install", "Bad Name", "app:1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid target name"));
    assert!(!dir.path().join("journal.sqlite").exists(), "no journal was even created");
}
