//! The hostile plugins that need a real Docker daemon: a trap half-way
//! through an upgrade, and attack B — a user's container, even one carrying
//! copies of the engine's labels, is not the engine's. The in-memory rest of
//! the suite is in `tests/fast/sandbox.rs`.

use deckhand::journal::JobState;
use serde_json::json;

use crate::harness::*;

/// An engine on Docker with the `hostile` test workflow registered.
async fn hostile_engine() -> TestEngine {
    let engine = TestEngine::with_settings(quick_settings()).await;
    engine
        .executor
        .host()
        .register("hostile", &plugin_wasm("deckhand-test-hostile"), false)
        .unwrap();
    engine
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_b_a_plugin_cannot_touch_a_container_deckhand_did_not_create() {
    let engine = hostile_engine().await;
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
        error.contains("stop: not found") && error.contains("remove: not found"),
        "refused exactly as a missing container would be: {error}"
    );
    let state = run(&["inspect", "-f", "{{.State.Running}}", &name]);
    assert_eq!(
        String::from_utf8_lossy(&state.stdout).trim(),
        "true",
        "the user's container survives, running"
    );
    let events = engine.journal().events(&job.id, 0).unwrap();
    assert!(events.iter().any(|e| matches!(&e.event, deckhand::journal::Event::Log { message, .. } if message.starts_with("refused:"))), "the attempt is journaled");
    // Nothing the daemon knows of the user's container reached the journal.
    let id = String::from_utf8(run(&["inspect", "-f", "{{.Id}}", &name]).stdout).unwrap();
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(id.trim()), "its id is not journaled");
    assert!(!text.contains("owned:1"), "nor its image");
    run(&["rm", "-f", &name]);
}

/// Attack B: `docker commit deckhand-T` then `docker run` gives a user's
/// container the engine's labels. It is still not the engine's: the journal
/// never recorded creating it.
#[tokio::test(flavor = "multi_thread")]
async fn attack_b_a_users_container_with_copied_deckhand_labels_is_not_adopted_touched_or_torn_down()
 {
    let engine = hostile_engine().await;
    let target = unique_target("labelled");
    let app = image("app:1");
    let install = run_job(
        &engine,
        "install",
        &target,
        json!({"image": app, "network": "none"}),
    )
    .await;
    assert_eq!(install.state, JobState::Succeeded, "{:?}", install.error);
    let docker_cli = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let copy = format!("deckhand-test/copy-of-{target}:1");
    docker_cli(&["commit", &format!("deckhand-{target}"), &copy]);
    let users = format!("users-{target}");
    docker_cli(&["run", "-d", "--network", "none", "--name", &users, &copy]);
    let labels = docker_cli(&["inspect", "-f", "{{json .Config.Labels}}", &users]);
    assert!(
        labels.contains(&format!("\"io.deckhand.target\":\"{target}\"")),
        "the copy carries the target's labels: {labels}"
    );

    let job = run_job(
        &engine,
        "hostile",
        &target,
        json!({"mode": "adopt", "container": users, "image": copy}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let answers = job.summary.unwrap();
    assert!(answers.starts_with("inspect: Ok(None)"), "{answers}");
    for refused in [
        "stop: not found",
        "rename: not found",
        "remove-at-commit: not found",
        "record-revision: denied",
    ] {
        assert!(answers.contains(refused), "{refused}: {answers}");
    }
    let revision = engine.journal().target(&target).unwrap().unwrap();
    assert_eq!(revision.current.unwrap().revision, 1, "nothing adopted");

    let teardown = run_job(&engine, "teardown", &target, json!({})).await;
    assert_eq!(teardown.state, JobState::Succeeded, "{:?}", teardown.error);
    assert_eq!(
        docker_cli(&["inspect", "-f", "{{.State.Running}} {{.Name}}", &users]),
        format!("true /{users}"),
        "the user's container runs on, under its name"
    );
    docker_cli(&["rm", "-f", &users]);
    docker_cli(&["rmi", &copy]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_in_the_middle_of_an_upgrade_rolls_back_to_the_old_container() {
    let engine = hostile_engine().await;
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
