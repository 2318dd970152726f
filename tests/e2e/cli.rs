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
    let out = deckhand(dir.path())
        .args(["install", &target, &image("app:2"), "--network", "none"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(": pull_image image="), "{stdout}");
    assert!(stdout.contains("succeeded in"), "{stdout}");

    let list = deckhand(dir.path())
        .args(["jobs", "list", "--json"])
        .output()
        .unwrap();
    let jobs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let id = jobs[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(jobs[0]["state"], "succeeded");

    let show = deckhand(dir.path())
        .args(["jobs", "show", &id])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    for expected in [
        "intent  1: read_revision",
        "intent  3: pull_image",
        "result  3: ok",
        "intent  4: create_container",
        "state   succeeded",
    ] {
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
    let out = deckhand(dir.path())
        .args(["install", "Bad Name", "app:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid target name"));
    assert!(
        !dir.path().join("journal.sqlite").exists(),
        "no journal was even created"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_of_a_foreground_upgrade_says_so_cancels_and_rolls_back() {
    use std::io::{BufRead, BufReader};
    let docker = docker().await;
    let dir = tempfile::tempdir().unwrap();
    let target = unique_target("ctrlc");
    let out = deckhand(dir.path())
        .args(["install", &target, &image("cli:1"), "--network", "none"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = containers_of(&docker, &target).await[0].id.clone();

    let hole = BlackHole::start().await;
    let mut child = deckhand(dir.path())
        .args(["upgrade", &target, &hole.image()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Wait until the pull is under way, then press Ctrl-C.
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains(": pull_image image=") {
            break;
        }
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    seen.extend(lines.map(|l| l.unwrap()));
    let status = child.wait().unwrap();
    let all = seen.join("\n");
    assert!(!status.success(), "{all}");
    assert!(all.contains("Ctrl-C: cancelling job"), "{all}");
    assert!(all.contains("cancelled after"), "{all}");
    let after = containers_of(&docker, &target).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, before, "the old container runs on, same id");
    assert_eq!(
        after[0].state.map(|s| s.to_string()).as_deref(),
        Some("running")
    );
    remove_target_containers(&docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_cancel_from_another_terminal_cancels_a_foreground_job_and_one_process_owns_the_data_dir()
 {
    use std::io::{BufRead, BufReader};
    let docker = docker().await;
    let dir = tempfile::tempdir().unwrap();
    let target = unique_target("xcancel");
    let hole = BlackHole::start().await;
    let mut child = deckhand(dir.path())
        .args(["install", &target, &hole.image()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let id = first.split_whitespace().nth(1).unwrap().to_owned();
    for line in lines.by_ref() {
        if line.unwrap().contains(": pull_image image=") {
            break;
        }
    }
    // A second engine on the same data directory is refused.
    let second = deckhand(dir.path())
        .args(["install", "other", &image("cli:1")])
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another deckhand process"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    let cancel = deckhand(dir.path())
        .args(["jobs", "cancel", &id])
        .output()
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&cancel.stdout).unwrap();
    assert_eq!(answer["cancelled"], true, "{answer}");
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(child.wait().unwrap().code() == Some(1));
    assert!(
        rest.iter().any(|l| l.contains("cancelled after")),
        "{rest:?}"
    );
    assert!(containers_of(&docker, &target).await.is_empty());
}

#[test]
fn plugin_new_scaffolds_a_crate_that_builds_and_passes_plugin_test() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = deckhand(data.path())
        .args(["plugin", "new", "hello-world", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let krate = dir.path().join("hello-world");
    let target_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold");
    let build =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&krate)
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm = target_dir.join("wasm32-wasip2/release/hello_world.wasm");
    let test = deckhand(data.path())
        .args(["plugin", "test"])
        .arg(&wasm)
        .args(["--params", r#"{"image": "app:1"}"#])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(
        stdout.contains("deckhand-web app:1 running=true"),
        "{stdout}"
    );
    let add = deckhand(data.path())
        .args(["plugin", "add", "hello-world"])
        .arg(&wasm)
        .output()
        .unwrap();
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let list = deckhand(data.path())
        .args(["plugin", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("hello-world"));
}

#[test]
fn plugin_test_with_an_injected_fault_shows_the_rollback() {
    let data = tempfile::tempdir().unwrap();
    let wasm =
        std::path::Path::new(env!("DECKHAND_PLUGIN_WASM_DIR")).join("deckhand_plugin_upgrade.wasm");
    let out = deckhand(data.path())
        .args(["plugin", "test"])
        .arg(&wasm)
        .args([
            "--install",
            "app:1",
            "--params",
            r#"{"image": "app:2"}"#,
            "--fail",
            "start",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("rolled_back: container runtime: injected by deckhand plugin test"),
        "{stdout}"
    );
    assert!(
        stdout.contains("deckhand-web app:1 running=true"),
        "the old container runs again: {stdout}"
    );
}
