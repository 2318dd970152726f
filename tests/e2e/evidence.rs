//! The end of a failed container's logs is in the journal after the
//! rollback removed the container, on a real daemon.

use bollard::query_parameters::CreateImageOptionsBuilder;
use deckhand::journal::{Event, JobState};
use futures_util::TryStreamExt;
use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_containers_stdout_and_stderr_are_in_the_journal_after_the_rollback() {
    let engine = TestEngine::with_settings(quick_settings()).await;
    let target = unique_target("evidence");
    // The busybox base image every test image is built on, present already
    // (tests/env/up.sh keeps it): the job does not pull it, so its rollback
    // never removes an image other tests use.
    let base = image("base:1");
    let options = CreateImageOptionsBuilder::default()
        .from_image(&base)
        .build();
    engine
        .docker
        .create_image(Some(options), None, None)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let marker = format!("evidence-{target}");
    let script = format!("echo {marker}: starting; echo {marker}: fatal: no database >&2; exit 3");
    let job = run_job(
        &engine,
        "install",
        &target,
        json!({"image": base, "network": "none", "cmd": ["/bin/sh", "-c", script]}),
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
        "the rollback removed the container"
    );
    assert!(
        image_present(&engine.docker, &base).await,
        "not the job's image"
    );

    let events = engine.journal().events(&job.id, 0).unwrap();
    let logs: Vec<(&str, &str)> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Log { level, message } => Some((level.as_str(), message.as_str())),
            _ => None,
        })
        .collect();
    let name = format!("deckhand-{target}");
    let evidence: Vec<_> = logs
        .iter()
        .filter(|(_, m)| m.starts_with(&format!("container {name} logs (last ")))
        .collect();
    assert_eq!(evidence.len(), 1, "{logs:#?}");
    let (level, message) = evidence[0];
    assert_eq!(*level, "error");
    // Two pipes: Docker may order lines written at the same instant either way.
    let mut lines: Vec<&str> = message.lines().skip(1).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            format!("{marker}: fatal: no database"),
            format!("{marker}: starting")
        ],
        "{message}"
    );
    remove_target_containers(&engine.docker, &target).await;
}
