//! Atomic jobs on a real daemon: upgrade, teardown and rollback workflows,
//! automatic rollback, cancel, ownership and concurrency.

use deckhand::executor::{JobRequest, SubmitError};
use deckhand::journal::JobState;
use serde_json::json;

use crate::harness::*;

fn params(img: &str) -> serde_json::Value {
    json!({"image": img, "network": "none"})
}

async fn install(engine: &TestEngine, target: &str, img: &str) {
    let job = run_job(engine, "install", target, params(img)).await;
    assert_eq!(job.state, JobState::Succeeded, "install: {:?}", job.error);
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_v1_to_v2_runs_v2_and_removes_v1s_container_and_owned_image() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let target = unique_target("up");
    let (v1, v2) = (image("upgrade:1"), image("upgrade:2"));
    ensure_image_absent(&engine.docker, &v1).await;
    ensure_image_absent(&engine.docker, &v2).await;
    install(&engine, &target, &v1).await;
    let old = containers_of(&engine.docker, &target).await[0]
        .id
        .clone()
        .unwrap();

    let job = run_job(&engine, "upgrade", &target, json!({"image": v2})).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let after = containers_of(&engine.docker, &target).await;
    assert_eq!(after.len(), 1, "the temporary and old containers are gone");
    assert_ne!(after[0].id.as_ref(), Some(&old));
    assert_eq!(after[0].image.as_deref(), Some(v2.as_str()));
    assert_eq!(
        after[0].names.as_deref(),
        Some(&[format!("/deckhand-{target}")][..])
    );
    assert!(
        !image_present(&engine.docker, &v1).await,
        "v1 was pulled by the engine and nothing uses it"
    );
    let t = engine.journal().target(&target).unwrap().unwrap();
    assert_eq!(t.current.as_ref().unwrap().revision, 2);
    assert_eq!(t.current.as_ref().unwrap().image, v2);
    assert_eq!(t.history.len(), 2);
    // Unset fields keep the current revision's: the network stayed `none`.
    assert_eq!(t.current.unwrap().spec["network"], "none");
    remove_target_containers(&engine.docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_to_an_image_whose_container_exits_rolls_back_to_v1_with_the_same_container_id() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let target = unique_target("health");
    let (v1, bad) = (image("health:1"), image("health:crash"));
    ensure_image_absent(&engine.docker, &bad).await;
    install(&engine, &target, &v1).await;
    let images = vec![v1.clone(), bad.clone()];
    let before = snapshot(&engine.docker, engine.journal(), &target, &images).await;

    let job = run_job(&engine, "upgrade", &target, json!({"image": bad})).await;
    assert_eq!(job.state, JobState::RolledBack);
    assert!(
        job.error.as_deref().unwrap().contains("exited"),
        "{:?}",
        job.error
    );
    let after = snapshot(&engine.docker, engine.journal(), &target, &images).await;
    assert_eq!(
        after, before,
        "v1 runs again, same id and name; no v2 image; revision unchanged"
    );
    assert!(after.containers[0].2, "v1 is running");
    remove_target_containers(&engine.docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_during_a_slow_pull_aborts_it_and_leaves_v1_exactly_as_it_was() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let target = unique_target("cancel");
    let v1 = image("cancel:1");
    install(&engine, &target, &v1).await;
    let proxy = SlowProxy::start(4 << 20).await;
    let big = proxy.image("big:2");
    ensure_image_absent(&engine.docker, &big).await;
    let images = vec![v1.clone(), big.clone()];
    let before = snapshot(&engine.docker, engine.journal(), &target, &images).await;

    let mut live = engine.journal().subscribe();
    let req = JobRequest::new("upgrade", target.clone(), json!({"image": big}));
    let job = engine.executor.submit(req).await.unwrap();
    // Cancel once bytes are flowing.
    wait_for_pull_bytes(&mut live, &job.id).await;
    let started = std::time::Instant::now();
    let outcome = engine.executor.cancel(&job.id, None).await.unwrap();
    assert!(outcome.cancelled);
    let done = engine.executor.wait(&job.id).await.unwrap();
    assert_eq!(done.state, JobState::Cancelled);
    assert!(
        started.elapsed().as_secs() < 10,
        "the pull was aborted, not waited out ({:?})",
        started.elapsed()
    );
    let after = snapshot(&engine.docker, engine.journal(), &target, &images).await;
    assert_eq!(after, before);
    // A second cancel is idempotent and says the job is over.
    let again = engine.executor.cancel(&job.id, None).await.unwrap();
    assert!(!again.cancelled);
    assert_eq!(again.state, JobState::Cancelled);
    remove_target_containers(&engine.docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_finished_job_answers_false_with_its_state() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let target = unique_target("fin");
    let job = run_job(&engine, "install", &target, params(&image("fin:1"))).await;
    let outcome = engine.executor.cancel(&job.id, None).await.unwrap();
    assert!(!outcome.cancelled);
    assert_eq!(outcome.state, JobState::Succeeded);
    assert_eq!(
        engine.journal().job(&job.id).unwrap().unwrap().state,
        JobState::Succeeded,
        "never rewritten"
    );
    remove_target_containers(&engine.docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_is_persisted_and_survives_a_restart() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let target = unique_target("persist");
    let req = JobRequest::new("install", target.clone(), params(&image("persist:1")));
    let job = engine.executor.submit(req).await.unwrap();
    assert!(
        engine
            .executor
            .cancel(&job.id, None)
            .await
            .unwrap()
            .cancelled
    );
    let done = engine.executor.wait(&job.id).await.unwrap();
    assert_eq!(done.state, JobState::Cancelled);
    // Reopen the journal as a restarted engine would.
    let reopened = deckhand::journal::Journal::open(engine.journal().path()).unwrap();
    let record = reopened.job(&job.id).unwrap().unwrap();
    assert_eq!(record.state, JobState::Cancelled);
    assert!(record.cancel_requested);
    assert!(containers_of(&engine.docker, &target).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_that_existed_before_is_never_removed_by_commit() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let target = unique_target("owned");
    let (v1, v2) = (image("owned:1"), image("owned:2"));
    // v1 is the user's: present before Deckhand ever pulled it.
    let status = std::process::Command::new("docker")
        .args(["pull", "-q", &v1])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    install(&engine, &target, &v1).await;
    let job = run_job(&engine, "upgrade", &target, json!({"image": v2})).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert!(
        image_present(&engine.docker, &v1).await,
        "the pre-existing image survives the commit"
    );
    remove_target_containers(&engine.docker, &target).await;
    ensure_image_absent(&engine.docker, &v1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_targets_upgrade_concurrently_and_a_busy_target_refuses_a_second_job() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let (a, b) = (unique_target("conc-a"), unique_target("conc-b"));
    install(&engine, &a, &image("conc-a:1")).await;
    install(&engine, &b, &image("conc-b:1")).await;

    let up = |t: &str, img: String| JobRequest::new("upgrade", t, json!({"image": img}));
    let ja = engine
        .executor
        .submit(up(&a, image("conc-a:2")))
        .await
        .unwrap();
    let jb = engine
        .executor
        .submit(up(&b, image("conc-b:2")))
        .await
        .unwrap();
    match engine.executor.submit(up(&a, image("conc-a:1"))).await {
        Err(SubmitError::Busy { job, .. }) => {
            assert_eq!(job, ja.id, "the refusal names the active job")
        }
        other => panic!("expected busy, got {other:?}"),
    }
    let (da, db) = (
        engine.executor.wait(&ja.id).await.unwrap(),
        engine.executor.wait(&jb.id).await.unwrap(),
    );
    assert_eq!(
        (da.state, db.state),
        (JobState::Succeeded, JobState::Succeeded),
        "{:?} {:?}",
        da.error,
        db.error
    );
    // Both ran at the same time: each started before the other finished.
    assert!(da.created_at < db.updated_at && db.created_at < da.updated_at);
    for t in [&a, &b] {
        remove_target_containers(&engine.docker, t).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_removes_the_container_the_owned_image_and_the_target_but_keeps_history() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let target = unique_target("down");
    let v1 = image("teardown:1");
    ensure_image_absent(&engine.docker, &v1).await;
    install(&engine, &target, &v1).await;
    let job = run_job(&engine, "teardown", &target, json!({})).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    assert!(containers_of(&engine.docker, &target).await.is_empty());
    assert!(!image_present(&engine.docker, &v1).await);
    let t = engine.journal().target(&target).unwrap().unwrap();
    assert!(t.current.is_none());
    assert_eq!(t.history.len(), 1);
    // After a teardown commits, nothing recreates the target: it is unknown now.
    let again = engine
        .executor
        .submit(JobRequest::new("teardown", target.clone(), json!({})))
        .await;
    assert!(
        matches!(again, Err(SubmitError::UnknownTarget(_))),
        "{again:?}"
    );
    assert!(containers_of(&engine.docker, &target).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_to_revision_one_brings_back_its_image_as_a_new_revision() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let target = unique_target("rb");
    let (v1, v2) = (image("rollback:1"), image("rollback:2"));
    install(&engine, &target, &v1).await;
    assert_eq!(
        run_job(&engine, "upgrade", &target, json!({"image": v2}))
            .await
            .state,
        JobState::Succeeded
    );
    let job = run_job(&engine, "rollback", &target, json!({"revision": 1})).await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let current = engine
        .journal()
        .target(&target)
        .unwrap()
        .unwrap()
        .current
        .unwrap();
    assert_eq!((current.revision, current.image.as_str()), (3, v1.as_str()));
    let running = containers_of(&engine.docker, &target).await;
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].image.as_deref(), Some(v1.as_str()));
    // A revision the target never had is refused before a job exists.
    let missing = engine
        .executor
        .submit(JobRequest::new(
            "rollback",
            &target,
            json!({"revision": 42}),
        ))
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains("has no revision 42"),
        "{missing}"
    );
    remove_target_containers(&engine.docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn workflows_that_need_a_target_refuse_an_unknown_one_before_any_job_exists() {
    let engine = TestEngine::start().await;
    for (workflow, params) in [
        ("upgrade", json!({})),
        ("teardown", json!({})),
        ("rollback", json!({"revision": 1})),
    ] {
        let req = JobRequest::new(workflow, "never-installed", params);
        assert!(
            matches!(
                engine.executor.submit(req).await,
                Err(SubmitError::UnknownTarget(_))
            ),
            "{workflow}"
        );
    }
    assert!(
        engine
            .journal()
            .list_jobs(&Default::default())
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_with_no_progress_for_the_stall_timeout_fails_and_rolls_back() {
    let settings = deckhand::plugin::HostSettings {
        stall_timeout: std::time::Duration::from_secs(2),
        ..quick_settings()
    };
    let engine = TestEngine::with_settings(settings).await;
    let target = unique_target("stall");
    let v1 = image("cancel:2");
    install(&engine, &target, &v1).await;
    let hole = BlackHole::start().await;
    let before = snapshot(
        &engine.docker,
        engine.journal(),
        &target,
        std::slice::from_ref(&v1),
    )
    .await;
    let started = std::time::Instant::now();
    let job = run_job(&engine, "upgrade", &target, json!({"image": hole.image()})).await;
    assert_eq!(job.state, JobState::RolledBack);
    assert!(
        job.error
            .as_deref()
            .unwrap()
            .contains("no progress for 2 s"),
        "{:?}",
        job.error
    );
    assert!(started.elapsed().as_secs() < 15, "{:?}", started.elapsed());
    assert_eq!(
        snapshot(
            &engine.docker,
            engine.journal(),
            &target,
            std::slice::from_ref(&v1)
        )
        .await,
        before
    );
    remove_target_containers(&engine.docker, &target).await;
}
