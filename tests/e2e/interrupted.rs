//! A stop the daemon goes on with after the engine gave up, on Docker with
//! an app whose PID 1 ignores SIGTERM: the undo waits it out (the in-memory
//! cases are in `tests/fast/interrupted.rs`).

use std::time::Duration;

use crate::harness::*;

/// The report this suite exists for, on Docker: a teardown of an app that
/// ignores SIGTERM is abandoned 2 s into its 10 s stop (the job's deadline
/// ends the run); the daemon goes on stopping. The rollback must wait the
/// stop out before it starts the app again, or the app ends down while the
/// target says installed.
#[tokio::test(flavor = "multi_thread")]
async fn a_teardown_abandoned_during_a_slow_stop_ends_with_the_app_running() {
    let docker = docker().await;
    let dir = tempfile::tempdir().unwrap();
    let target = unique_target("istop");
    let v1 = image("interrupted-stop:1");
    cli_ok(dir.path(), &["install", &target, &v1, "--network", "none"]);
    let before = containers_of(&docker, &target).await;
    assert_eq!(before.len(), 1);
    let id = before[0].id.clone().unwrap();

    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_deckhand"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["teardown", &target])
        .env("DECKHAND_SETTLE_MS", "300")
        .env("DECKHAND_JOB_DEADLINE_S", "2")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", cli_text(&out));
    // Past the stop's own timeout: a late stop would have landed by now.
    let stop_done = Duration::from_secs(12);
    if let Some(left) = stop_done.checked_sub(started.elapsed()) {
        tokio::time::sleep(left).await;
    }
    let after = docker.inspect_container(&id, None).await.unwrap();
    assert_eq!(
        after.state.and_then(|s| s.running),
        Some(true),
        "the app runs again after the abandoned stop: {}",
        cli_text(&out)
    );
    let journal =
        deckhand::journal::Journal::open(dir.path().join(deckhand::journal::Journal::FILE_NAME))
            .unwrap();
    let current = journal.target(&target).unwrap().unwrap().current;
    assert_eq!(current.expect("still installed").container_id, id);
    remove_target_containers(&docker, &target).await;
}
