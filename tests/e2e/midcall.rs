//! The mid-call matrices: interrupt every Docker call of every workflow
//! *while it is in flight* — held by a slow Docker proxy, or carried out by
//! the daemon — by killing the engine (SIGKILL, a real child process, then
//! `deckhand recover`) or by cancelling the job, and check that the world
//! ends exactly as before the job or with the complete new revision, once
//! the daemon has carried out every call it was ever given.
//!
//! The images are "stubborn" (PID 1 ignores SIGTERM): every stop lasts its
//! whole 10 s timeout and ends with SIGKILL. The proxy holds each create,
//! start, stop, rename and remove for [`CALL_DELAY`], and forwards it even
//! if the engine is gone by then; so a call interrupted "in the proxy"
//! still happens, later, like a daemon that completes a call after its
//! client went away.
//!
//! Each image alias is used by several tests here: a test that needs its
//! images absent at the start of each point (and checks that the engine
//! removes what it pulled) runs its points one after another and holds the
//! alias exclusively; the others pull the images first, so the engine never
//! owns them, and run several points at a time.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use deckhand::executor::JobRequest;
use deckhand::journal::{Event, EventRecord, JobFilter, JobRecord, JobState, Journal};
use deckhand::plugin::HostSettings;
use serde_json::json;

use crate::harness::*;
use crate::slow_docker::{DelayRule, SlowDocker, call_delays};

/// How long the proxy holds each create, start, stop, rename and remove.
/// At most the engine's call settle grace, which covers a late landing.
const CALL_DELAY: Duration = Duration::from_millis(1000);

/// How long the engine watches for an interrupted call to land late: this
/// daemon holds calls for [`CALL_DELAY`], so a call sent just before a kill
/// reaches it up to that long after recovery began.
const SETTLE_GRACE: Duration = Duration::from_millis(3 * CALL_DELAY.as_millis() as u64);

fn engine_settings() -> HostSettings {
    HostSettings {
        call_settle_grace: SETTLE_GRACE,
        ..quick_settings()
    }
}

/// Points run at the same time in the matrices that keep images present.
const PARALLEL: usize = 5;

/// How long the daemon may still be busy with calls after the engine ended:
/// a held stop and a stubborn container's whole stop timeout, with margin.
const IDLE_LIMIT: Duration = Duration::from_secs(40);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workflow {
    Install,
    Upgrade,
    Teardown,
    Rollback,
}

/// How the images of a matrix's alias are handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Images {
    /// Removed before each point: the engine pulls (and owns) them.
    AbsentFirst,
    /// Pulled before the matrix: the engine never removes them.
    Present,
}

impl Workflow {
    fn alias(self) -> &'static str {
        match self {
            Workflow::Install => "midcall-install",
            Workflow::Upgrade => "midcall-upgrade",
            Workflow::Teardown => "midcall-teardown",
            Workflow::Rollback => "midcall-rollback",
        }
    }

    fn images(self) -> (String, String) {
        (
            image(&format!("{}:1", self.alias())),
            image(&format!("{}:2", self.alias())),
        )
    }

    /// The Docker calls the job makes, in order: (journaled op, occurrence).
    fn calls(self) -> &'static [(&'static str, u32)] {
        match self {
            Workflow::Install => &[
                ("pull_image", 1),
                ("create_container", 1),
                ("start_container", 1),
                ("wait_healthy", 1),
            ],
            Workflow::Teardown => &[("stop_container", 1)],
            // Old renamed to -Prev, then the new one to the live name.
            Workflow::Upgrade | Workflow::Rollback => &[
                ("pull_image", 1),
                ("create_container", 1),
                ("stop_container", 1),
                ("rename_container", 1),
                ("rename_container", 2),
                ("start_container", 1),
                ("wait_healthy", 1),
            ],
        }
    }

    /// The Docker calls its commit makes (after the commit point a kill
    /// ends in the complete new state): (`commit:` + deferred op, occurrence).
    fn commit_calls(self) -> &'static [(&'static str, u32)] {
        match self {
            Workflow::Install => &[],
            // Images present before the matrix are never the engine's to remove.
            Workflow::Upgrade | Workflow::Rollback => &[("commit:remove_container", 1)],
            Workflow::Teardown => &[("commit:remove_container", 1), ("commit:remove_image", 1)],
        }
    }

    /// The CLI commands that make the prior state.
    fn setup_args(self, target: &str, v1: &str, v2: &str) -> Vec<Vec<String>> {
        let install = args(&["install", target, v1, "--network", "none"]);
        match self {
            Workflow::Install => vec![],
            Workflow::Upgrade | Workflow::Teardown => vec![install],
            Workflow::Rollback => vec![install, args(&["upgrade", target, v2])],
        }
    }

    /// The jobs that make the prior state.
    fn setup_requests(self, target: &str, v1: &str, v2: &str) -> Vec<JobRequest> {
        let install = JobRequest::new("install", target, json!({"image": v1, "network": "none"}));
        match self {
            Workflow::Install => vec![],
            Workflow::Upgrade | Workflow::Teardown => vec![install],
            Workflow::Rollback => vec![
                install,
                JobRequest::new("upgrade", target, json!({"image": v2})),
            ],
        }
    }

    /// The job under test, as CLI arguments.
    fn args(self, target: &str, v1: &str, v2: &str) -> Vec<String> {
        match self {
            Workflow::Install => args(&["install", target, v1, "--network", "none"]),
            Workflow::Upgrade => args(&["upgrade", target, v2]),
            Workflow::Teardown => args(&["teardown", target]),
            Workflow::Rollback => args(&["rollback", target, "1"]),
        }
    }

    /// The job under test, as a request.
    fn request(self, target: &str, v1: &str, v2: &str) -> JobRequest {
        let (workflow, params) = match self {
            Workflow::Install => ("install", json!({"image": v1, "network": "none"})),
            Workflow::Upgrade => ("upgrade", json!({"image": v2})),
            Workflow::Teardown => ("teardown", json!({})),
            Workflow::Rollback => ("rollback", json!({"revision": 1})),
        };
        JobRequest::new(workflow, target, params)
    }

    /// The complete new state after the job committed. `engine_pulled`:
    /// the engine brought the images here, so it removes the replaced one.
    #[allow(clippy::too_many_arguments)]
    async fn assert_committed(
        self,
        docker: &bollard::Docker,
        after: &Snapshot,
        target: &str,
        v1: &str,
        v2: &str,
        engine_pulled: bool,
        context: &str,
    ) {
        let present = |r: &str| after.images.iter().any(|(i, p)| i == r && *p);
        let (revision, runs, replaced) = match self {
            Workflow::Install => (1, v1, None),
            Workflow::Upgrade => (2, v2, Some(v1)),
            Workflow::Rollback => (3, v1, Some(v2)),
            Workflow::Teardown => {
                assert!(after.containers.is_empty(), "{context}: {after:?}");
                assert_eq!(after.revision, None, "{context}");
                assert_eq!(
                    present(v1),
                    !engine_pulled,
                    "{context}: the image goes at commit if (and only if) the engine pulled it"
                );
                return;
            }
        };
        assert_eq!(after.containers.len(), 1, "{context}: {after:?}");
        let (id, name, running) = &after.containers[0];
        assert_eq!(name, &format!("deckhand-{target}"), "{context}");
        assert!(running, "{context}: the new revision runs: {after:?}");
        assert_eq!(after.revision, Some((revision, id.clone())), "{context}");
        assert!(present(runs), "{context}: {runs} present");
        if let Some(old) = replaced {
            assert_eq!(
                present(old),
                !engine_pulled,
                "{context}: {old} goes at commit if (and only if) the engine pulled it"
            );
        }
        let image = docker
            .inspect_container(id, None)
            .await
            .unwrap()
            .config
            .and_then(|c| c.image);
        assert_eq!(image.as_deref(), Some(runs), "{context}");
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// One interruption: `kind`'s `nth` call (1-based), `offset_ms` after it
/// started (its intent was durable).
#[derive(Clone, Copy, Debug)]
struct Point {
    kind: &'static str,
    nth: u32,
    offset_ms: u64,
}

impl Point {
    /// `DECKHAND_FAULT_KILL_DURING`.
    fn spec(&self) -> String {
        format!("{}:{}:{}", self.kind, self.nth, self.offset_ms)
    }
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} #{} at {} ms", self.kind, self.nth, self.offset_ms)
    }
}

/// Kill offsets: one while the proxy holds the call, one just after the
/// daemon got it; a stop (1 s held + 10 s in the daemon) also early and
/// late in the daemon. Pulls are not held (the daemon aborts a pull whose
/// client goes away), and a health wait is 300 ms of polling. A rollback's
/// last undos (a quick removal) are caught right after they are forwarded,
/// or the recovery is over before the kill.
fn kill_offsets(kind: &str) -> &'static [u64] {
    match kind.trim_start_matches("undo:") {
        // Held by the proxy, then just after it reached the daemon.
        "commit:remove_container" | "commit:remove_image" => &[100, 1010],
        "pull_image" => &[50, 400],
        "wait_healthy" => &[100],
        "stop_container" => &[100, 1500, 5000],
        "remove_created_container" | "remove_image" => &[100, 1010],
        _ => &[100, 1100],
    }
}

/// Cancel offsets: 50 ms (held by the proxy) and 500 ms for every call,
/// 3 s into a stop too (in the daemon, 2 s into the stubborn timeout).
fn cancel_offsets(kind: &str) -> &'static [u64] {
    match kind {
        "wait_healthy" => &[50],
        "stop_container" => &[50, 500, 3000],
        _ => &[50, 500],
    }
}

/// Every call at each of its offsets; with `MIDCALL_POINTS` set (e.g.
/// `stop_container #1 at 100 ms,rename`), only the points whose description
/// contains one of its comma-separated parts, to re-run a failing one.
fn points(calls: &[(&'static str, u32)], offsets: fn(&str) -> &'static [u64]) -> Vec<Point> {
    let only = std::env::var("MIDCALL_POINTS").ok();
    calls
        .iter()
        .flat_map(|&(kind, nth)| {
            offsets(kind).iter().map(move |&offset_ms| Point {
                kind,
                nth,
                offset_ms,
            })
        })
        .filter(|p| {
            only.as_deref()
                .is_none_or(|only| only.split(',').any(|part| p.to_string().contains(part)))
        })
        .collect()
}

/// How a point ended, for the summaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Outcome {
    /// Killed, and recovery rolled the job back to the prior state.
    KilledRolledBack,
    /// Killed at or after the commit point, and recovery committed.
    KilledCommitted,
    /// The job ended before the kill was due (asserted from the journal).
    FinishedFirst,
    /// Cancelled, and the prior state is back.
    Cancelled,
    /// The cancel came at or after the commit point: the job succeeded.
    TooLate,
}

// ---- shared set-up ------------------------------------------------------

/// A lock per image alias: exclusive for tests that remove its images,
/// shared for tests that keep them present.
fn alias_lock(alias: &'static str) -> Arc<tokio::sync::RwLock<()>> {
    type AliasLocks = Mutex<HashMap<&'static str, Arc<tokio::sync::RwLock<()>>>>;
    static LOCKS: LazyLock<AliasLocks> = LazyLock::new(Mutex::default);
    LOCKS.lock().unwrap().entry(alias).or_default().clone()
}

/// Pull an alias's images (directly), so that no job pulls them.
async fn pull_images(docker: &bollard::Docker, images: &[&str]) {
    use futures_util::TryStreamExt;
    for i in images {
        let options = bollard::query_parameters::CreateImageOptionsBuilder::default()
            .from_image(i)
            .build();
        docker
            .create_image(Some(options), None, None)
            .try_collect::<Vec<_>>()
            .await
            .unwrap_or_else(|e| panic!("pull {i}: {e}"));
    }
}

/// The CLI on data directory `dir`, off the async runtime.
async fn cli(dir: &Path, args: &[String], env: &[(&str, String)]) -> std::process::Output {
    let dir = dir.to_owned();
    let args = args.to_vec();
    let mut env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    env.push((
        "DECKHAND_CALL_SETTLE_GRACE_MS".into(),
        SETTLE_GRACE.as_millis().to_string(),
    ));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_cli_env(&dir, &args, None, &env)
    })
    .await
    .unwrap()
}

async fn cli_must(dir: &Path, args: &[String], env: &[(&str, String)], context: &str) {
    let out = cli(dir, args, env).await;
    assert!(
        out.status.success(),
        "{context}: `deckhand {}` failed: {}",
        args.join(" "),
        cli_text(&out)
    );
}

/// The target's latest job and its events.
fn last_job(dir: &Path, target: &str) -> (JobRecord, Vec<EventRecord>) {
    let journal = Journal::open(dir.join(Journal::FILE_NAME)).unwrap();
    let job = journal
        .list_jobs(&JobFilter {
            target: Some(target.to_owned()),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .next()
        .expect("a job");
    let events = journal.events(&job.id, 0).unwrap();
    (job, events)
}

/// Whether `event` starts a call of `kind` (`op`, or `undo:op`).
fn starts_call(event: &Event, kind: &str) -> bool {
    if let Some(op) = kind.strip_prefix("commit:") {
        return matches!(event, Event::CommitIntent { effect, .. } if effect["op"] == op);
    }
    match (event, kind.strip_prefix("undo:")) {
        (Event::Intent { call, .. }, None) => call["op"] == kind,
        (Event::UndoIntent { undo, .. }, Some(op)) => undo["op"] == op,
        _ => false,
    }
}

/// A run that was to be killed at `p` succeeded: fine only if the journal
/// shows that call started and the job ended before the kill was due.
fn assert_finished_before_the_kill(events: &[EventRecord], p: &Point, context: &str) {
    let started = events
        .iter()
        .filter(|e| starts_call(&e.event, p.kind))
        .nth(p.nth as usize - 1)
        .unwrap_or_else(|| {
            panic!(
                "{context}: the run succeeded without making call {} #{}",
                p.kind, p.nth
            )
        })
        .at;
    let ended = events
        .iter()
        .rev()
        .find(|e| matches!(e.event, Event::State { state, .. } if state.is_terminal()))
        .expect("a terminal state")
        .at;
    assert!(
        ended - started < p.offset_ms as i64 + 50,
        "{context}: the run succeeded {} ms after the call started: the kill did not come",
        ended - started
    );
}

/// The job's journal in one line a step, for failure messages: each call,
/// undo and commit effect with its outcome, and the states.
fn timeline(events: &[EventRecord]) -> String {
    let t0 = events.first().map(|e| e.at).unwrap_or_default();
    let op = |v: &serde_json::Value| v["op"].as_str().unwrap_or("?").to_owned();
    let outcome = |o: &deckhand::journal::Outcome| match o {
        deckhand::journal::Outcome::Ok { value } => format!("ok {value}"),
        deckhand::journal::Outcome::Err { error, .. } => format!("err {error}"),
    };
    let lines: Vec<String> = events
        .iter()
        .filter_map(|e| {
            let what = match &e.event {
                Event::State { state, error } => {
                    format!("state {state} {}", error.as_deref().unwrap_or(""))
                }
                Event::Intent { step, call, .. } => format!("{step} {}", op(call)),
                Event::Result { step, outcome: o } => format!("{step} -> {}", outcome(o)),
                Event::UndoIntent { step, undo } => format!("undo {step} {}", op(undo)),
                Event::UndoResult { step, outcome: o } => format!("undo {step} -> {}", outcome(o)),
                Event::CommitIntent { step, effect } => format!("commit {step} {}", op(effect)),
                Event::CommitResult { step, outcome: o } => {
                    format!("commit {step} -> {}", outcome(o))
                }
                _ => return None,
            };
            Some(format!("    +{}ms {}", e.at - t0, what.trim_end()))
        })
        .collect();
    lines.join("\n")
}

/// What the proxy saw, for failure messages.
fn proxy_log(proxy: &SlowDocker) -> String {
    let seen = proxy.seen();
    let t0 = seen.first().map(|s| s.accepted);
    seen.iter()
        .map(|s| {
            let at = |t: Option<Instant>| match (t, t0) {
                (Some(t), Some(t0)) => format!("{}", (t - t0).as_millis()),
                _ => "-".into(),
            };
            format!(
                "    +{}ms {} {} held {:?} forwarded +{} done +{} {:?}{}",
                at(Some(s.accepted)),
                s.method,
                s.target,
                s.held,
                at(s.forwarded),
                at(s.done),
                s.status,
                if s.client_gone { " (client gone)" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Run `f` for each point, `parallel` at a time, each on its own target
/// (cleaned up after, whatever happened); the failures are collected, not
/// raised, so that a matrix reports all of them.
async fn run_points<F, Fut>(
    points: Vec<Point>,
    parallel: usize,
    f: F,
) -> Vec<(Point, Result<Outcome, String>)>
where
    F: Fn(Point, String) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    use futures_util::{FutureExt, StreamExt};
    let docker = docker().await;
    futures_util::stream::iter(points)
        .map(|p| {
            let target = unique_target("mc");
            let run = f(p, target.clone());
            let docker = docker.clone();
            async move {
                let result = std::panic::AssertUnwindSafe(run)
                    .catch_unwind()
                    .await
                    .map_err(|e| {
                        e.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "panic".into())
                    });
                remove_target_containers(&docker, &target).await;
                (p, result)
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await
}

/// Print a matrix's summary line; fail with every failed point.
fn report(matrix: &str, results: &[(Point, Result<Outcome, String>)], started: Instant) {
    let mut tally: std::collections::BTreeMap<Outcome, usize> = Default::default();
    let mut failures = Vec::new();
    for (p, r) in results {
        match r {
            Ok(o) => *tally.entry(*o).or_default() += 1,
            Err(e) => failures.push(format!("  {p}: {e}")),
        }
    }
    eprintln!(
        "{matrix}: {} points in {:.0?}: {tally:?}, {} failed",
        results.len(),
        started.elapsed(),
        failures.len()
    );
    let mut by_outcome: std::collections::BTreeMap<Outcome, Vec<String>> = Default::default();
    for (p, r) in results {
        if let Ok(o) = r {
            by_outcome.entry(*o).or_default().push(p.to_string());
        }
    }
    for (o, ps) in by_outcome {
        eprintln!("  {o:?}: {}", ps.join(", "));
    }
    failures.sort();
    assert!(
        failures.is_empty(),
        "{matrix}: {} of {} points failed:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
}

// ---- kill during a call -------------------------------------------------

/// A point run through the CLI: its images, a data directory with the
/// prior state made, and a snapshot of that state.
struct CliPoint {
    docker: bollard::Docker,
    v1: String,
    v2: String,
    images: Vec<String>,
    dir: tempfile::TempDir,
    before: Snapshot,
}

impl CliPoint {
    async fn prepare(workflow: Workflow, mode: Images, target: &str, context: &str) -> CliPoint {
        let docker = docker().await;
        let (v1, v2) = workflow.images();
        let images = vec![v1.clone(), v2.clone()];
        let dir = cli_data_dir();
        if mode == Images::AbsentFirst {
            for i in &images {
                ensure_image_absent(&docker, i).await;
            }
        }
        for a in workflow.setup_args(target, &v1, &v2) {
            cli_must(dir.path(), &a, &[], context).await;
        }
        let before = snapshot_in(&docker, dir.path(), target, &images).await;
        CliPoint {
            docker,
            v1,
            v2,
            images,
            dir,
            before,
        }
    }
}

/// Kill the job's CLI process during call `p`, recover, wait until the
/// daemon did everything it was asked, compare.
async fn kill_point(workflow: Workflow, mode: Images, p: Point, target: String) -> Outcome {
    let context = format!("{workflow:?} killed during {p}");
    let CliPoint {
        docker,
        v1,
        v2,
        images,
        dir,
        before,
    } = CliPoint::prepare(workflow, mode, &target, &context).await;

    // Image removals are held too: a commit or an undo removes the image.
    let mut rules = call_delays(CALL_DELAY);
    rules.push(DelayRule::new("DELETE", "/images/**", CALL_DELAY));
    let proxy = SlowDocker::start(rules);
    let via_proxy = ("DOCKER_HOST", proxy.endpoint());
    let fault = ("DECKHAND_FAULT_KILL_DURING", p.spec());
    let run = cli(
        dir.path(),
        &workflow.args(&target, &v1, &v2),
        &[via_proxy.clone(), fault],
    )
    .await;
    let killed = !run.status.success();
    if killed {
        assert_eq!(
            run.status.signal(),
            Some(9),
            "{context}: expected SIGKILL, got {:?}: {}",
            run.status,
            cli_text(&run)
        );
        let recover = cli(dir.path(), &args(&["recover"]), &[via_proxy]).await;
        assert!(
            recover.status.success(),
            "{context}: recover: {}",
            cli_text(&recover)
        );
    }
    proxy.wait_idle(IDLE_LIMIT).await;
    let (job, events) = last_job(dir.path(), &target);
    if !killed {
        assert_finished_before_the_kill(&events, &p, &context);
    }
    let after = snapshot_in(&docker, dir.path(), &target, &images).await;
    let context = format!(
        "{context}, recovered to {}\n  journal:\n{}\n  proxy:\n{}\n",
        job.state,
        timeline(&events),
        proxy_log(&proxy)
    );
    match job.state {
        JobState::Succeeded => {
            let engine_pulled = mode == Images::AbsentFirst;
            workflow
                .assert_committed(&docker, &after, &target, &v1, &v2, engine_pulled, &context)
                .await;
        }
        JobState::RolledBack => assert_eq!(after, before, "{context}"),
        other => panic!("{context}: unexpected state {other} ({:?})", job.error),
    }
    match (killed, job.state) {
        (false, _) => Outcome::FinishedFirst,
        (true, JobState::Succeeded) => Outcome::KilledCommitted,
        (true, _) => Outcome::KilledRolledBack,
    }
}

async fn kill_matrix(workflow: Workflow, mode: Images) {
    let started = Instant::now();
    let docker = docker().await;
    let lock = alias_lock(workflow.alias());
    let calls: Vec<_> = workflow
        .calls()
        .iter()
        .chain(workflow.commit_calls())
        .copied()
        .collect();
    let points = points(&calls, kill_offsets);
    let results = match mode {
        Images::AbsentFirst => {
            let _only_us = lock.write().await;
            run_points(points, 1, |p, t| kill_point(workflow, mode, p, t)).await
        }
        Images::Present => {
            let _shared = lock.read().await;
            let (v1, v2) = workflow.images();
            pull_images(&docker, &[&v1, &v2]).await;
            run_points(points, PARALLEL, |p, t| kill_point(workflow, mode, p, t)).await
        }
    };
    report(
        &format!("kill-during-call matrix {workflow:?}"),
        &results,
        started,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_install_killed_during_any_docker_call_recovers_to_nothing_or_installed() {
    kill_matrix(Workflow::Install, Images::AbsentFirst).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_killed_during_any_docker_call_recovers_to_v1_or_v2() {
    kill_matrix(Workflow::Upgrade, Images::Present).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_teardown_killed_during_its_stop_recovers_to_running_or_torn_down() {
    kill_matrix(Workflow::Teardown, Images::AbsentFirst).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_killed_during_any_docker_call_recovers_to_v2_or_v1_again() {
    kill_matrix(Workflow::Rollback, Images::Present).await;
}

// ---- kill during an undo ------------------------------------------------

/// Kill the job during `forward` (before its commit point), then kill the
/// recovery during undo `p`, then recover again: the prior state.
async fn undo_kill_point(
    workflow: Workflow,
    mode: Images,
    rules: Vec<DelayRule>,
    forward: Point,
    p: Point,
    target: String,
) -> Outcome {
    let context = format!("{workflow:?} killed during {forward}, its recovery during {p}");
    let CliPoint {
        docker,
        v1,
        v2,
        images,
        dir,
        before,
    } = CliPoint::prepare(workflow, mode, &target, &context).await;

    let proxy = SlowDocker::start(rules);
    let via_proxy = ("DOCKER_HOST", proxy.endpoint());
    let run = cli(
        dir.path(),
        &workflow.args(&target, &v1, &v2),
        &[
            via_proxy.clone(),
            ("DECKHAND_FAULT_KILL_DURING", forward.spec()),
        ],
    )
    .await;
    assert_eq!(
        run.status.signal(),
        Some(9),
        "{context}: the job was not killed: {}",
        cli_text(&run)
    );
    let recover = cli(
        dir.path(),
        &args(&["recover"]),
        &[via_proxy.clone(), ("DECKHAND_FAULT_KILL_DURING", p.spec())],
    )
    .await;
    let killed = !recover.status.success();
    if killed {
        assert_eq!(
            recover.status.signal(),
            Some(9),
            "{context}: the first recovery: {}",
            cli_text(&recover)
        );
    } else {
        let (_, events) = last_job(dir.path(), &target);
        assert_finished_before_the_kill(&events, &p, &context);
    }
    let again = cli(dir.path(), &args(&["recover"]), &[via_proxy]).await;
    assert!(
        again.status.success(),
        "{context}: the second recovery: {}",
        cli_text(&again)
    );
    proxy.wait_idle(IDLE_LIMIT).await;
    let (job, events) = last_job(dir.path(), &target);
    let context = format!(
        "{context}\n  journal:\n{}\n  proxy:\n{}\n",
        timeline(&events),
        proxy_log(&proxy)
    );
    assert_eq!(
        job.state,
        JobState::RolledBack,
        "{context}: {:?}",
        job.error
    );
    let after = snapshot_in(&docker, dir.path(), &target, &images).await;
    assert_eq!(after, before, "{context}");
    if killed {
        Outcome::KilledRolledBack
    } else {
        Outcome::FinishedFirst
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recovery_killed_during_any_undo_call_still_ends_in_the_prior_state() {
    let started = Instant::now();
    let docker = docker().await;

    // An upgrade killed while it waits for the new container, after every
    // forward call: its rollback stops the new container, renames both
    // back, starts the old one and removes the new one.
    let upgrade = Workflow::Upgrade;
    let undos = [
        ("undo:stop_container", 1),
        ("undo:rename_container", 1),
        ("undo:rename_container", 2),
        ("undo:start_container", 1),
        ("undo:remove_created_container", 1),
    ];
    let forward = Point {
        kind: "wait_healthy",
        nth: 1,
        offset_ms: 100,
    };
    let mut results = {
        let lock = alias_lock(upgrade.alias());
        let _shared = lock.read().await;
        let (v1, v2) = upgrade.images();
        pull_images(&docker, &[&v1, &v2]).await;
        run_points(points(&undos, kill_offsets), PARALLEL, |p, t| {
            undo_kill_point(
                upgrade,
                Images::Present,
                call_delays(CALL_DELAY),
                forward,
                p,
                t,
            )
        })
        .await
    };

    // An install killed just after its create reached the daemon, with
    // its image absent before: its rollback removes the container, then
    // the image it pulled (image removals held too, here).
    let install = Workflow::Install;
    let forward = Point {
        kind: "create_container",
        nth: 1,
        offset_ms: 1100,
    };
    let mut rules = call_delays(CALL_DELAY);
    rules.push(DelayRule::new("DELETE", "/images/**", CALL_DELAY));
    {
        let lock = alias_lock(install.alias());
        let _only_us = lock.write().await;
        let undo_image = points(&[("undo:remove_image", 1)], kill_offsets);
        results.extend(
            run_points(undo_image, 1, |p, t| {
                undo_kill_point(install, Images::AbsentFirst, rules.clone(), forward, p, t)
            })
            .await,
        );
    }
    report("kill-during-undo matrix", &results, started);
}

// ---- cancel during a call -----------------------------------------------

/// Cancel the job `p.offset_ms` after its call `p` started, with the
/// engine in this process on the slow proxy.
async fn cancel_point(workflow: Workflow, p: Point, target: String) -> Outcome {
    let (v1, v2) = workflow.images();
    let images = vec![v1.clone(), v2.clone()];
    let context = format!("{workflow:?} cancelled during {p}");
    let proxy = SlowDocker::start(call_delays(CALL_DELAY));
    proxy.set_delays(false);
    let engine = TestEngine::with_runtime_endpoint(engine_settings(), &proxy.endpoint()).await;
    for req in workflow.setup_requests(&target, &v1, &v2) {
        let job = engine.executor.submit(req).await.expect("set-up accepted");
        let done = engine.executor.wait(&job.id).await.unwrap();
        assert_eq!(
            done.state,
            JobState::Succeeded,
            "{context}: set-up {}: {:?}",
            done.workflow,
            done.error
        );
    }
    let before = snapshot(&engine.docker, engine.journal(), &target, &images).await;
    proxy.set_delays(true);

    let mut live = engine.journal().subscribe();
    let job = engine
        .executor
        .submit(workflow.request(&target, &v1, &v2))
        .await
        .unwrap();
    let mut calls = 0;
    let mut cancel = None;
    loop {
        let ev = match live.recv().await {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                panic!("{context}: missed {n} journal events")
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        };
        if ev.job_id != job.id {
            continue;
        }
        if starts_call(&ev.event, p.kind) {
            calls += 1;
            if calls == p.nth {
                tokio::time::sleep(Duration::from_millis(p.offset_ms)).await;
                cancel = Some(engine.executor.cancel(&job.id, None).await.unwrap());
                break;
            }
        }
        if matches!(ev.event, Event::State { state, .. } if state.is_terminal()) {
            break;
        }
    }
    let done = engine.executor.wait(&job.id).await.unwrap();
    proxy.wait_idle(IDLE_LIMIT).await;
    let after = snapshot(&engine.docker, engine.journal(), &target, &images).await;
    let events = engine.journal().events(&job.id, 0).unwrap();
    let context = format!(
        "{context}: {}\n  journal:\n{}\n  proxy:\n{}\n",
        done.state,
        timeline(&events),
        proxy_log(&proxy)
    );
    match (done.state, cancel) {
        (JobState::Cancelled, Some(o)) => {
            assert!(o.cancelled, "{context}: {o:?}");
            assert_eq!(after, before, "{context}");
            Outcome::Cancelled
        }
        (JobState::Succeeded, Some(o)) => {
            assert!(
                !o.cancelled,
                "{context}: a cancel that is honoured never ends in success"
            );
            workflow
                .assert_committed(&engine.docker, &after, &target, &v1, &v2, false, &context)
                .await;
            Outcome::TooLate
        }
        (JobState::Succeeded, None) => {
            panic!("{context}: the job made no call {} #{}", p.kind, p.nth)
        }
        (state, _) => panic!("{context}: unexpected {state} ({:?})", done.error),
    }
}

async fn cancel_matrix(workflow: Workflow) -> Vec<(Point, Result<Outcome, String>)> {
    let started = Instant::now();
    let docker = docker().await;
    let lock = alias_lock(workflow.alias());
    let _shared = lock.read().await;
    let (v1, v2) = workflow.images();
    pull_images(&docker, &[&v1, &v2]).await;
    let points = points(workflow.calls(), cancel_offsets);
    let results = run_points(points, PARALLEL, |p, t| cancel_point(workflow, p, t)).await;
    report(
        &format!("cancel-during-call matrix {workflow:?}"),
        &results,
        started,
    );
    results
}

fn count(results: &[(Point, Result<Outcome, String>)], outcome: Outcome) -> usize {
    results
        .iter()
        .filter(|(_, r)| r.as_ref().ok() == Some(&outcome))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_install_cancelled_during_any_docker_call_leaves_nothing_behind() {
    let results = cancel_matrix(Workflow::Install).await;
    assert!(count(&results, Outcome::Cancelled) >= 5, "{results:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_cancelled_during_any_docker_call_keeps_v1_running_with_the_same_id() {
    let results = cancel_matrix(Workflow::Upgrade).await;
    assert!(count(&results, Outcome::Cancelled) >= 12, "{results:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_teardown_cancelled_during_its_stop_keeps_the_app_running() {
    let results = cancel_matrix(Workflow::Teardown).await;
    assert_eq!(count(&results, Outcome::Cancelled), 3, "{results:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_cancelled_during_any_docker_call_keeps_v2_running_with_the_same_id() {
    let results = cancel_matrix(Workflow::Rollback).await;
    assert!(count(&results, Outcome::Cancelled) >= 12, "{results:?}");
}

// ---- the reproduction ---------------------------------------------------

/// A teardown killed 1 s into the stop of a container that ignores SIGTERM:
/// the daemon keeps stopping it for 9 s more (no proxy here: the real
/// daemon, directly). Recovery must wait that stop out before it starts
/// the container again; starting it at once ("already started") lets the
/// stop land afterwards and leaves the app down.
#[tokio::test(flavor = "multi_thread")]
async fn a_teardown_killed_during_a_slow_stop_recovers_with_the_app_running() {
    let docker = docker().await;
    let v1 = image("interrupted-stop:1");
    let images = vec![v1.clone()];
    let lock = alias_lock("interrupted-stop");
    let _only_us = lock.write().await;
    let dir = cli_data_dir();
    let target = unique_target("istop");
    cli_must(
        dir.path(),
        &args(&["install", &target, &v1, "--network", "none"]),
        &[],
        "install",
    )
    .await;
    let before = snapshot_in(&docker, dir.path(), &target, &images).await;
    assert!(before.containers[0].2, "installed and running: {before:?}");

    let run = cli(
        dir.path(),
        &args(&["teardown", &target]),
        &[(
            "DECKHAND_FAULT_KILL_DURING",
            "stop_container:1:1000".to_owned(),
        )],
    )
    .await;
    assert_eq!(
        run.status.signal(),
        Some(9),
        "the teardown was not killed: {}",
        cli_text(&run)
    );
    let killed_at = Instant::now();
    let recover = cli(dir.path(), &args(&["recover"]), &[]).await;
    assert!(recover.status.success(), "recover: {}", cli_text(&recover));
    let recovered_in = killed_at.elapsed();
    // The stop began 1 s before the kill and lasts 10 s: long over by then.
    tokio::time::sleep(Duration::from_secs(12).saturating_sub(killed_at.elapsed())).await;
    let (job, _) = last_job(dir.path(), &target);
    let after = snapshot_in(&docker, dir.path(), &target, &images).await;
    eprintln!(
        "teardown killed during a slow stop: recovered to {} after {recovered_in:.1?}; 12 s later: {:?}",
        job.state, after.containers
    );
    assert_eq!(job.state, JobState::RolledBack, "{:?}", job.error);
    assert_eq!(
        after, before,
        "12 s after the kill the app must run again, same container, target still installed"
    );
    remove_target_containers(&docker, &target).await;
}
