//! The built-in `install` workflow on a real daemon.

use deckhand::journal::{Event, JobState, Outcome};
use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn install_runs_a_labelled_container_and_records_the_revision() {
    let engine = TestEngine::start().await;
    let target = unique_target("inst");
    let img = image("app:1");
    let job = run_job(
        &engine,
        "install",
        &target,
        json!({"image": img, "network": "none"}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);

    let containers = containers_of(&engine.docker, &target).await;
    assert_eq!(
        containers.len(),
        1,
        "exactly one container carries the target label"
    );
    let c = &containers[0];
    assert_eq!(
        c.names.as_deref(),
        Some(&[format!("/deckhand-{target}")][..])
    );
    assert_eq!(c.state.map(|s| s.to_string()).as_deref(), Some("running"));
    let labels = c.labels.clone().unwrap();
    assert_eq!(
        labels.get("io.deckhand.managed").map(String::as_str),
        Some("true")
    );
    assert_eq!(labels.get("io.deckhand.target"), Some(&target));
    assert_eq!(
        labels.get("io.deckhand.job").map(String::as_str),
        Some(job.id.as_str())
    );

    let t = engine
        .journal()
        .target(&target)
        .unwrap()
        .expect("target recorded");
    let rev = t.current.expect("current revision");
    assert_eq!(rev.revision, 1);
    assert_eq!(rev.image, img);
    assert_eq!(Some(&rev.container_id), c.id.as_ref());
    assert_eq!(rev.job_id, job.id);
    remove_target_containers(&engine.docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn install_journals_intent_then_result_for_every_step_in_order() {
    let engine = TestEngine::start().await;
    let target = unique_target("order");
    let job = run_job(
        &engine,
        "install",
        &target,
        json!({"image": image("app:1"), "network": "none"}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);

    let events = engine.journal().events(&job.id, 0).unwrap();
    let mut ops = Vec::new();
    let mut open: Option<u32> = None;
    for e in &events {
        match &e.event {
            Event::Intent { step, call, .. } => {
                assert!(
                    open.is_none(),
                    "step {step} began before step {open:?} had its result"
                );
                open = Some(*step);
                ops.push(call["op"].as_str().unwrap().to_owned());
            }
            Event::Result { step, outcome } => {
                assert_eq!(open.take(), Some(*step), "a result follows its own intent");
                assert!(outcome.is_ok(), "step {step}: {outcome:?}");
            }
            _ => {}
        }
    }
    // Reads are steps too (replay answers them from the journal).
    assert_eq!(
        ops,
        [
            "read_revision",
            "image_present",
            "pull_image",
            "create_container",
            "inspect_container",
            "start_container",
            "inspect_container",
            "wait_healthy",
            "inspect_container",
            "read_last_revision_number"
        ]
    );
    // Sequence numbers strictly increase, and the job ends succeeded after committing.
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    let states: Vec<JobState> = events
        .iter()
        .filter_map(|e| match e.event {
            Event::State { state, .. } => Some(state),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [
            JobState::Queued,
            JobState::Running,
            JobState::Committing,
            JobState::Succeeded
        ]
    );
    remove_target_containers(&engine.docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn install_of_an_image_its_registry_does_not_have_is_refused_before_a_job_exists() {
    let engine = TestEngine::start().await;
    let target = unique_target("unknown");
    let img = image("does-not-exist:1");
    let req = deckhand::executor::JobRequest::new(
        "install",
        &target,
        json!({"image": img, "network": "none"}),
    );
    let refused = engine
        .executor
        .submit(req)
        .await
        .expect_err("no job for an image that cannot be had");
    let message = refused.to_string();
    assert!(
        matches!(
            refused,
            deckhand::executor::SubmitError::ImageUnavailable { .. }
        ),
        "{message}"
    );
    assert!(message.contains(&img), "names the image: {message}");
    assert!(
        message.matches("manifest unknown").count() <= 1,
        "the registry's words said once: {message}"
    );
    let jobs = engine
        .journal()
        .list_jobs(&deckhand::journal::JobFilter {
            target: Some(target.clone()),
            ..Default::default()
        })
        .unwrap();
    assert!(jobs.is_empty(), "no job was created: {jobs:?}");
    assert!(containers_of(&engine.docker, &target).await.is_empty());
    assert!(!image_present(&engine.docker, &img).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn install_whose_container_exits_rolls_back_everything_it_created() {
    let engine = TestEngine::start().await;
    let target = unique_target("crash");
    let img = image("crash:1");
    ensure_image_absent(&engine.docker, &img).await;
    let job = run_job(
        &engine,
        "install",
        &target,
        json!({"image": img, "network": "none"}),
    )
    .await;
    assert_eq!(job.state, JobState::RolledBack);
    assert!(
        job.error.as_deref().unwrap().contains("exited with code 3"),
        "{:?}",
        job.error
    );
    assert!(
        containers_of(&engine.docker, &target).await.is_empty(),
        "the created container is removed"
    );
    assert!(
        !image_present(&engine.docker, &img).await,
        "the image this job pulled is removed"
    );
    // Every undo ran and succeeded, last step first: start, create, pull.
    let events = engine.journal().events(&job.id, 0).unwrap();
    let mut with_undo: Vec<u32> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Intent {
                step,
                undo: Some(_),
                ..
            } => Some(*step),
            _ => None,
        })
        .collect();
    with_undo.reverse();
    let undone: Vec<u32> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::UndoResult {
                step,
                outcome: Outcome::Ok { .. },
            } => Some(*step),
            _ => None,
        })
        .collect();
    assert_eq!(with_undo.len(), 3);
    assert_eq!(undone, with_undo);
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_never_removes_an_image_that_was_present_before_the_job() {
    let engine = TestEngine::start().await;
    let target = unique_target("pre");
    let img = image("app:3");
    // Present before the job.
    let run = deckhand::runtime::DockerRuntime::connect().unwrap();
    let (tx, _rx) = tokio::sync::watch::channel(deckhand::runtime::PullTracker::new().progress());
    deckhand::runtime::ContainerRuntime::pull_image(&run, &img, &tx, &Default::default())
        .await
        .unwrap();
    assert!(image_present(&engine.docker, &img).await);

    let params = json!({"image": img, "network": "none", "cmd": ["/bin/sh", "-c", "exit 1"]});
    let job = run_job(&engine, "install", &target, params).await;
    assert_eq!(job.state, JobState::RolledBack);
    assert!(
        image_present(&engine.docker, &img).await,
        "pre-existing image survives the rollback"
    );
    assert!(containers_of(&engine.docker, &target).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn reinstalling_a_running_target_is_refused_before_a_job_exists_and_changes_nothing() {
    let engine = TestEngine::start().await;
    let target = unique_target("again");
    let img = image("app:1");
    let first = run_job(
        &engine,
        "install",
        &target,
        json!({"image": img, "network": "none"}),
    )
    .await;
    assert_eq!(first.state, JobState::Succeeded, "{:?}", first.error);
    let before = containers_of(&engine.docker, &target).await;

    let jobs_before = engine
        .journal()
        .list_jobs(&Default::default())
        .unwrap()
        .len();
    let second = engine
        .executor
        .submit(deckhand::executor::JobRequest::new(
            "install",
            &target,
            json!({"image": img, "network": "none"}),
        ))
        .await
        .unwrap_err();
    assert!(
        second.to_string().contains("already installed (revision 1")
            && second.to_string().contains("use upgrade"),
        "{second}"
    );
    let jobs_after = engine.journal().list_jobs(&Default::default()).unwrap();
    assert_eq!(jobs_after.len(), jobs_before, "no job was created");
    let after = containers_of(&engine.docker, &target).await;
    assert_eq!(before.len(), 1);
    assert_eq!(after.len(), 1);
    assert_eq!(before[0].id, after[0].id, "same container");
    assert_eq!(
        after[0].state.map(|s| s.to_string()).as_deref(),
        Some("running")
    );
    assert!(image_present(&engine.docker, &img).await);
    assert_eq!(
        engine
            .journal()
            .target(&target)
            .unwrap()
            .unwrap()
            .current
            .unwrap()
            .job_id,
        first.id
    );
    remove_target_containers(&engine.docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_target_name_is_refused_before_any_job_exists() {
    let engine = TestEngine::start().await;
    let req = deckhand::executor::JobRequest::new(
        "install",
        "Not Valid",
        json!({"image": image("app:1")}),
    );
    let err = engine.executor.submit(req).await.unwrap_err();
    assert!(
        matches!(err, deckhand::executor::SubmitError::InvalidTarget(_)),
        "{err}"
    );
    assert!(
        engine
            .journal()
            .list_jobs(&Default::default())
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_progress_is_journaled_per_layer_and_reaches_one_only_at_the_end() {
    let engine = TestEngine::start().await;
    let target = unique_target("big");
    let img = image("big:1");
    ensure_image_absent(&engine.docker, &img).await;
    let job = run_job(
        &engine,
        "install",
        &target,
        json!({"image": img, "network": "none"}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let progress: Vec<_> = engine
        .journal()
        .events(&job.id, 0)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event {
            Event::Progress(p) => Some(p),
            _ => None,
        })
        .collect();
    let last = progress.last().unwrap();
    assert_eq!(last.fraction, Some(1.0));
    assert_eq!(last.layers_done, last.layers_total);
    assert!(
        last.layers_total >= 5,
        "base + 5 copied layers, not {}",
        last.layers_total
    );
    assert!(last.bytes_total >= 120 << 20, "{} bytes", last.bytes_total);
    let fractions: Vec<f64> = progress.iter().filter_map(|p| p.fraction).collect();
    assert!(
        fractions.windows(2).all(|w| w[0] <= w[1]),
        "never goes back: {fractions:?}"
    );
    assert!(fractions[..fractions.len() - 1].iter().all(|f| *f < 1.0));
    remove_target_containers(&engine.docker, &target).await;
    ensure_image_absent(&engine.docker, &img).await;
}
