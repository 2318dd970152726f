//! The crash and cancel matrices: kill the engine (SIGKILL, a real child
//! process) right after each journal append in turn, or cancel right after
//! each event in turn, and check that Docker and the target registry end
//! either exactly as before the job or with the complete new revision.

use std::os::unix::process::ExitStatusExt;

use deckhand::executor::JobRequest;
use deckhand::journal::{JobFilter, JobState, Journal};
use serde_json::json;

use crate::harness::*;

#[derive(Clone, Copy, Debug)]
enum Workflow {
    Install,
    Upgrade,
    Teardown,
}

impl Workflow {
    fn alias(self) -> &'static str {
        match self {
            Workflow::Install => "mx-install",
            Workflow::Upgrade => "mx-upgrade",
            Workflow::Teardown => "mx-teardown",
        }
    }

    fn args(self, target: &str, v1: &str, v2: &str) -> Vec<String> {
        let s = |x: &str| x.to_owned();
        match self {
            Workflow::Install => vec![s("install"), s(target), s(v1), s("--network"), s("none")],
            Workflow::Upgrade => vec![s("upgrade"), s(target), s(v2)],
            Workflow::Teardown => vec![s("teardown"), s(target)],
        }
    }

    fn request(self, target: &str, v1: &str, v2: &str) -> JobRequest {
        let (workflow, params) = match self {
            Workflow::Install => ("install", json!({"image": v1, "network": "none"})),
            Workflow::Upgrade => ("upgrade", json!({"image": v2})),
            Workflow::Teardown => ("teardown", json!({})),
        };
        JobRequest::new(workflow, target, params)
    }

    fn assert_committed(self, after: &Snapshot, target: &str, v1: &str, v2: &str, context: &str) {
        let present = |r: &str| after.images.iter().any(|(i, p)| i == r && *p);
        match self {
            Workflow::Install | Workflow::Upgrade => {
                let (rev, image) = if matches!(self, Workflow::Install) { (1, v1) } else { (2, v2) };
                assert_eq!(after.containers.len(), 1, "{context}: {after:?}");
                let (id, name, running) = &after.containers[0];
                assert_eq!(name, &format!("deckhand-{target}"), "{context}");
                assert!(running, "{context}: the new revision runs");
                assert_eq!(after.revision, Some((rev, id.clone())), "{context}");
                assert!(present(image), "{context}: {image} present");
                if matches!(self, Workflow::Upgrade) {
                    assert!(!present(v1), "{context}: v1 image removed at commit");
                }
            }
            Workflow::Teardown => {
                assert!(after.containers.is_empty(), "{context}: {after:?}");
                assert_eq!(after.revision, None, "{context}");
                assert!(!present(v1), "{context}: image removed at commit");
            }
        }
    }
}

async fn crash_matrix(workflow: Workflow) -> usize {
    let t0 = std::time::Instant::now();
    let docker = docker().await;
    let (v1, v2) = (image(&format!("{}:1", workflow.alias())), image(&format!("{}:2", workflow.alias())));
    let images = vec![v1.clone(), v2.clone()];
    let mut kill_points = 0;
    for n in 1.. {
        let dir = tempfile::tempdir().unwrap();
        let target = unique_target("mx");
        for i in &images { ensure_image_absent(&docker, i).await; }
        if !matches!(workflow, Workflow::Install) {
            cli_ok(dir.path(), &["install", &target, &v1, "--network", "none"]);
        }
        let before = snapshot_in(&docker, dir.path(), &target, &images).await;
        let args = workflow.args(&target, &v1, &v2);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = run_cli(dir.path(), &args, Some(n));
        if run.status.success() {
            let after = snapshot_in(&docker, dir.path(), &target, &images).await;
            workflow.assert_committed(&after, &target, &v1, &v2, "uninterrupted run");
            remove_target_containers(&docker, &target).await;
            break;
        }
        assert_eq!(run.status.signal(), Some(9));
        kill_points += 1;
        let recover = run_cli(dir.path(), &["recover"], None);
        assert!(recover.status.success());
        let journal = Journal::open(dir.path().join(Journal::FILE_NAME)).unwrap();
        let jobs = journal.list_jobs(&JobFilter { target: Some(target.clone()), ..Default::default() }).unwrap();
        let job = &jobs[0];
        drop(journal);
        let after = snapshot_in(&docker, dir.path(), &target, &images).await;
        let context = format!("{workflow:?} killed after event {n}, recovered to {}", job.state);
        match job.state {
            JobState::Succeeded => workflow.assert_committed(&after, &target, &v1, &v2, &context),
            JobState::RolledBack => assert_eq!(after, before, "{context}"),
            other => panic!("{context}: unexpected state {other} ({:?})", job.error),
        }
        remove_target_containers(&docker, &target).await;
    }
    eprintln!("ORIG crash matrix {workflow:?}: {kill_points} kill points in {:.1} s", t0.elapsed().as_secs_f64());
    kill_points
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_matrix_install_recovers_to_before_or_complete_at_every_kill_point() { assert!(crash_matrix(Workflow::Install).await >= 15); }
#[tokio::test(flavor = "multi_thread")]
async fn crash_matrix_upgrade_recovers_to_before_or_complete_at_every_kill_point() { assert!(crash_matrix(Workflow::Upgrade).await >= 25); }
#[tokio::test(flavor = "multi_thread")]
async fn crash_matrix_teardown_recovers_to_before_or_complete_at_every_kill_point() { assert!(crash_matrix(Workflow::Teardown).await >= 8); }

async fn cancel_matrix(workflow: Workflow, alias: &str) -> (usize, usize) {
    let t0 = std::time::Instant::now();
    let (v1, v2) = (image(&format!("{alias}:1")), image(&format!("{alias}:2")));
    let images = vec![v1.clone(), v2.clone()];
    let (mut cancelled, mut too_late) = (0, 0);
    for n in 1.. {
        let engine = TestEngine::with_settings(quick_settings()).await;
        let target = unique_target("cmx");
        for i in &images { ensure_image_absent(&engine.docker, i).await; }
        if !matches!(workflow, Workflow::Install) {
            let job = run_job(&engine, "install", &target, json!({"image": v1, "network": "none"})).await;
            assert_eq!(job.state, JobState::Succeeded);
        }
        let before = snapshot(&engine.docker, engine.journal(), &target, &images).await;
        let mut live = engine.journal().subscribe();
        let job = engine.executor.submit(workflow.request(&target, &v1, &v2)).await.unwrap();
        let mut seen = 2;
        let mut outcome = None;
        if seen >= n { outcome = Some(engine.executor.cancel(&job.id, None).await.unwrap()); }
        while outcome.is_none() {
            let ev = live.recv().await.unwrap();
            if ev.job_id != job.id { continue; }
            seen += 1;
            if seen >= n { outcome = Some(engine.executor.cancel(&job.id, None).await.unwrap()); }
            if matches!(ev.event, deckhand::journal::Event::State { state, .. } if state.is_terminal()) { break; }
        }
        let done = engine.executor.wait(&job.id).await.unwrap();
        let after = snapshot(&engine.docker, engine.journal(), &target, &images).await;
        let context = format!("{workflow:?} cancelled after event {n}: {}", done.state);
        match (done.state, outcome) {
            (JobState::Cancelled, Some(o)) => { assert!(o.cancelled); assert_eq!(after, before, "{context}"); cancelled += 1; }
            (JobState::Succeeded, Some(o)) => { assert!(!o.cancelled); workflow.assert_committed(&after, &target, &v1, &v2, &context); too_late += 1; }
            (JobState::Succeeded, None) => { workflow.assert_committed(&after, &target, &v1, &v2, &context); remove_target_containers(&engine.docker, &target).await; break; }
            (state, _) => panic!("{context}: unexpected {state} ({:?})", done.error),
        }
        remove_target_containers(&engine.docker, &target).await;
    }
    eprintln!("ORIG cancel matrix {workflow:?}: {cancelled} cancelled, {too_late} too late in {:.1} s", t0.elapsed().as_secs_f64());
    (cancelled, too_late)
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_matrix_install_restores_the_prior_state_at_every_point_before_commit() { let (c, _) = cancel_matrix(Workflow::Install, "cmx-install").await; assert!(c >= 10); }
#[tokio::test(flavor = "multi_thread")]
async fn cancel_matrix_upgrade_restores_v1_at_every_point_before_commit() { let (c, _) = cancel_matrix(Workflow::Upgrade, "cmx-upgrade").await; assert!(c >= 20); }
