//! Outages of what the engine needs, for real: the journal's disk fills up
//! in the middle of an upgrade; the Docker daemon is `kill -9`ed in the
//! middle of one and comes back, or stays away long enough for the rollback
//! to give up. In every case the job finishes by itself once the resource is
//! back, with the prior state exact; meanwhile the API refuses new jobs with
//! a problem that says why, and `/readyz` and `/metrics` tell.
//!
//! The disk is a small tmpfs holding the journal (the compiled plugins stay
//! elsewhere); the daemon is a [`PrivateDaemon`] of the test's own, without
//! live restore (a restart also stops what the job had started, which the
//! rollback has to cope with). The API is served in-process on loopback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deckhand::api::{ApiConfig, app, state};
use deckhand::executor::{Executor, JobRequest};
use deckhand::journal::{Event, JobFilter, JobId, JobState, Journal};
use deckhand::plugin::{HostSettings, PluginHost};
use deckhand::runtime::DockerRuntime;
use serde_json::{Value, json};

use crate::harness::*;
use crate::private_daemon::PrivateDaemon;

const PROBLEMS: &str = "https://deckhand.dev/problems/";

/// The API of an executor, served in-process on a loopback port.
struct Api {
    url: String,
    task: tokio::task::JoinHandle<()>,
    client: reqwest::Client,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Api {
    async fn serve(executor: &Executor) -> Api {
        let router = app(state(executor.clone(), ApiConfig::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Api { url, task, client }
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// POST /v1/jobs: (status, Retry-After, body).
    async fn post_job(&self, body: Value) -> (u16, Option<String>, Value) {
        let resp = self
            .client
            .post(self.at("/v1/jobs"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (
            status,
            retry_after,
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self.client.get(self.at(path)).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str) -> (u16, Value) {
        let resp = self.client.post(self.at(path)).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn metrics(&self) -> String {
        self.client
            .get(self.at("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn job(&self, id: &JobId) -> Value {
        let (status, v) = self.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(status, 200, "{v}");
        v
    }
}

/// The value of a metric without labels in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).map(str::to_owned))
}

/// An executor on the journal at `journal` and the daemon at `endpoint`.
fn executor_on(journal: &std::path::Path, endpoint: &str, settings: HostSettings) -> Executor {
    let journal = Journal::open(journal).unwrap();
    let runtime = Arc::new(DockerRuntime::connect_to(endpoint).unwrap());
    let host = Arc::new(PluginHost::with_builtins(Some(compiled_plugin_cache())).unwrap());
    Executor::new(journal, runtime, host, settings)
}

/// Submit a job and wait for its end; it must end `expected`.
async fn run_expecting(
    executor: &Executor,
    workflow: &str,
    target: &str,
    params: Value,
    expected: JobState,
) -> deckhand::journal::JobRecord {
    let job = executor
        .submit(JobRequest::new(workflow, target, params))
        .await
        .expect("job accepted");
    let done = tokio::time::timeout(Duration::from_secs(120), executor.wait(&job.id))
        .await
        .expect("the job ends within 120 s")
        .unwrap();
    assert_eq!(
        done.state, expected,
        "{workflow} on {target}: {:?}",
        done.error
    );
    done
}

/// Wait (at most `within`) for `job`'s intent of `op`, on a container other
/// than `not_on` if given; the intent's call.
async fn wait_for_intent(
    live: &mut tokio::sync::broadcast::Receiver<deckhand::journal::EventRecord>,
    job: &JobId,
    op: &str,
    not_on: Option<&str>,
    within: Duration,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let ev = match tokio::time::timeout_at(deadline, live.recv()).await {
            Err(_) => panic!("no `{op}` intent of job {job} within {within:?}"),
            Ok(Ok(ev)) => ev,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => {
                panic!("missed {n} journal events")
            }
            Ok(Err(e)) => panic!("journal subscription: {e}"),
        };
        if &ev.job_id != job {
            continue;
        }
        if let Event::Intent { call, .. } = &ev.event
            && call["op"] == op
            && not_on.is_none_or(|id| call["id"] != id)
        {
            return call.clone();
        }
    }
}

/// The (name, running) of a container, as Docker has it now.
async fn name_and_running(docker: &bollard::Docker, id: &str) -> (String, bool) {
    let c = docker.inspect_container(id, None).await.unwrap();
    (
        c.name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        c.state.and_then(|s| s.running).unwrap_or(false),
    )
}

/// Whether the job's timeline has a log line containing `text`.
fn timeline_says(journal: &Journal, job: &JobId, text: &str) -> bool {
    journal
        .events(job, 0)
        .unwrap()
        .iter()
        .any(|e| matches!(&e.event, Event::Log { message, .. } if message.contains(text)))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_mid_upgrade_pauses_the_job_and_rolls_it_back_once_space_is_freed() {
    let docker = docker().await;
    // The journal alone on a 16 MiB tmpfs: a fresh journal's WAL grows with
    // every write, so once the disk is full every write needs a page that
    // is not there (a WAL already grown and reset would be rewritten in
    // place, full disk or not; the test checks that writes did fail).
    let disk = Tmpfs::mount(16);
    let endpoint = std::env::var("DOCKER_HOST").unwrap();
    let executor = executor_on(
        &disk.path.join(Journal::FILE_NAME),
        &endpoint,
        quick_settings(),
    );
    let api = Api::serve(&executor).await;
    let target = unique_target("dfull");
    // An app whose stop takes its whole 10 s timeout: the disk fills while
    // the upgrade stops it.
    let (v1, v2) = (image("outage-stubborn:1"), image("outage-stubborn:2"));
    ensure_image_absent(&docker, &v2).await;
    run_expecting(
        &executor,
        "install",
        &target,
        json!({"image": v1, "network": "none"}),
        JobState::Succeeded,
    )
    .await;
    let images = vec![v1.clone(), v2.clone()];
    let before = snapshot(&docker, executor.journal(), &target, &images).await;
    let old_id = before.revision.clone().unwrap().1;

    let mut live = executor.journal().subscribe();
    let job = executor
        .submit(JobRequest::new(
            "upgrade",
            &target,
            json!({"image": v2, "network": "none"}),
        ))
        .await
        .unwrap();
    let create = wait_for_intent(
        &mut live,
        &job.id,
        "create_container",
        None,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(create["config"]["name"], format!("deckhand-{target}-Next"));
    wait_for_intent(
        &mut live,
        &job.id,
        "stop_container",
        None,
        Duration::from_secs(60),
    )
    .await;
    let filled = disk.fill();
    let full_at = Instant::now();
    assert!(
        disk.available() < 64 << 10,
        "{} bytes left",
        disk.available()
    );

    // The stop ends after its 10 s; its result goes with the next step's
    // intent, which cannot be written.
    let mut health = executor.journal().watch_health();
    let unwritable = tokio::time::timeout(
        Duration::from_secs(25),
        health.wait_for(|h| !h.is_writable()),
    )
    .await;
    assert!(
        unwritable.is_ok(),
        "the journal took every write for 25 s on a full disk ({filled} bytes of filler): \
         SQLite rewrote pages it already had, so the test proves nothing"
    );
    drop(unwritable);
    eprintln!(
        "disk full: the journal refused a write {:.1} s after the disk filled up ({filled} bytes of filler)",
        full_at.elapsed().as_secs_f64()
    );
    let seq_paused = executor.journal().events(&job.id, 0).unwrap().len();
    // Wait out the stop in flight (the daemon finishes it regardless).
    let stop_ends = Instant::now() + Duration::from_secs(15);
    while name_and_running(&docker, &old_id).await.1 && Instant::now() < stop_ends {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let next = containers_of(&docker, &target)
        .await
        .into_iter()
        .find(|c| c.id.as_deref() != Some(old_id.as_str()))
        .expect("the upgrade's new container exists");
    let next_id = next.id.unwrap();

    // Paused: for 4 s nothing moves, in the journal or in Docker.
    let watch_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < watch_until {
        let j = executor.journal().job(&job.id).unwrap().unwrap();
        assert!(
            !j.state.is_terminal(),
            "the job ended while the journal could not be written: {:?}",
            j.state
        );
        assert_eq!(
            name_and_running(&docker, &old_id).await,
            (format!("deckhand-{target}"), false),
            "the old container is stopped, not renamed"
        );
        assert_eq!(
            name_and_running(&docker, &next_id).await,
            (format!("deckhand-{target}-Next"), false),
            "the new container is neither renamed nor started"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        executor.journal().events(&job.id, 0).unwrap().len(),
        seq_paused,
        "nothing was written meanwhile"
    );

    // The API refuses new work and says why; the job keeps its target.
    let other = unique_target("dfull-other");
    let (status, retry_after, problem) = api
        .post_job(json!({"workflow": "install", "target": other, "params": {"image": image("outage:1"), "network": "none"}}))
        .await;
    assert_refused_for_now(
        status,
        retry_after.as_deref(),
        &problem,
        507,
        "journal-unwritable",
    );
    assert!(containers_of(&docker, &other).await.is_empty());
    let (status, problem) = {
        let (s, _, p) = api
            .post_job(json!({"workflow": "teardown", "target": target}))
            .await;
        (s, p)
    };
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["active_job"], job.id.to_string(), "{problem}");
    let (status, ready) = api.get("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(
        ready,
        json!({"ready": false, "journal": "unwritable", "disk_full": true, "docker": "reachable"})
    );
    let m = api.metrics().await;
    assert_eq!(
        metric(&m, "deckhand_journal_writable").as_deref(),
        Some("0"),
        "{m}"
    );
    assert_eq!(
        metric(&m, "deckhand_docker_reachable").as_deref(),
        Some("1")
    );

    // Space is back: the job rolls back by itself, no restart.
    disk.free();
    let freed = Instant::now();
    let done = tokio::time::timeout(Duration::from_secs(60), executor.wait(&job.id))
        .await
        .expect("the job ends within 60 s of the space coming back")
        .unwrap();
    eprintln!(
        "disk full: job {} ended {} {:.1} s after the space came back",
        job.id,
        done.state,
        freed.elapsed().as_secs_f64()
    );
    assert_eq!(done.state, JobState::RolledBack, "{:?}", done.error);
    let after = snapshot(&docker, executor.journal(), &target, &images).await;
    assert_eq!(
        after, before,
        "the old container runs with the same id and name, no -Next, images as before"
    );
    assert!(timeline_says(
        executor.journal(),
        &job.id,
        "the journal could not be written"
    ));
    let (status, ready) = api.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(
        metric(&api.metrics().await, "deckhand_journal_writable").as_deref(),
        Some("1")
    );
    remove_target_containers(&docker, &target).await;
}

/// An engine on a private daemon, with its API served in-process.
struct OnPrivateDaemon {
    pd: PrivateDaemon,
    docker: bollard::Docker,
    engine: TestEngine,
    api: Api,
}

impl OnPrivateDaemon {
    async fn start(daemon_retry_deadline: Duration) -> OnPrivateDaemon {
        let pd = PrivateDaemon::start().await;
        let settings = HostSettings {
            daemon_retry_deadline,
            ..quick_settings()
        };
        let engine = TestEngine::with_runtime_endpoint(settings, &pd.endpoint()).await;
        let api = Api::serve(&engine.executor).await;
        let docker = pd.docker();
        OnPrivateDaemon {
            pd,
            docker,
            engine,
            api,
        }
    }

    fn executor(&self) -> &Executor {
        &self.engine.executor
    }

    /// Install `outage:1` on `target`; then start an upgrade to `outage:2`
    /// and `kill -9` the daemon when the new container's start is next.
    /// (snapshot before, old container id, the upgrade job).
    async fn upgrade_and_kill_the_daemon_at_its_start(
        &mut self,
        target: &str,
    ) -> (Snapshot, String, JobId, Vec<String>) {
        let (v1, v2) = (image("outage:1"), image("outage:2"));
        run_expecting(
            self.executor(),
            "install",
            target,
            json!({"image": v1, "network": "none"}),
            JobState::Succeeded,
        )
        .await;
        let images = vec![v1, v2.clone()];
        let before = snapshot(&self.docker, self.engine.journal(), target, &images).await;
        let old_id = before.revision.clone().unwrap().1;
        let mut live = self.engine.journal().subscribe();
        let job = self
            .executor()
            .submit(JobRequest::new("upgrade", target, json!({"image": v2})))
            .await
            .unwrap();
        // Both renames are done when the new container's start comes.
        wait_for_intent(
            &mut live,
            &job.id,
            "start_container",
            Some(&old_id),
            Duration::from_secs(60),
        )
        .await;
        self.pd.kill9();
        (before, old_id, job.id, images)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_docker_daemon_killed_mid_upgrade_and_restarted_ends_rolled_back_with_the_app_running()
{
    let mut t = OnPrivateDaemon::start(Duration::from_secs(120)).await;
    let target = unique_target("dkill");
    let (before, old_id, job, images) = t.upgrade_and_kill_the_daemon_at_its_start(&target).await;
    let down = Instant::now();

    // While the daemon is away, no job is accepted, nor anything created.
    let other = unique_target("dkill-other");
    let (status, retry_after, problem) = t
        .api
        .post_job(json!({"workflow": "install", "target": other, "params": {"image": image("outage:1"), "network": "none"}}))
        .await;
    assert_refused_for_now(
        status,
        retry_after.as_deref(),
        &problem,
        503,
        "docker-unavailable",
    );
    let (status, ready) = t.api.get("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["docker"], "unreachable", "{ready}");
    assert_eq!(
        metric(&t.api.metrics().await, "deckhand_docker_reachable").as_deref(),
        Some("0")
    );
    let state = t.engine.journal().job(&job).unwrap().unwrap().state;
    assert!(
        !state.is_terminal(),
        "the job waits for the daemon: {state:?}"
    );

    tokio::time::sleep_until((down + Duration::from_secs(3)).into()).await;
    t.pd.restart().await;
    let back = Instant::now();
    let done = tokio::time::timeout(Duration::from_secs(150), t.executor().wait(&job))
        .await
        .expect("the job ends by itself once the daemon is back")
        .unwrap();
    eprintln!(
        "daemon restart: job {job} ended {} {:.1} s after the daemon came back",
        done.state,
        back.elapsed().as_secs_f64()
    );
    assert_eq!(done.state, JobState::RolledBack, "{:?}", done.error);
    let error = done.error.unwrap_or_default();
    assert!(error.contains("not reachable"), "{error}");
    let after = snapshot(&t.docker, t.engine.journal(), &target, &images).await;
    assert_eq!(after, before, "old container {old_id} running, no -Next");
    let jobs = t
        .engine
        .journal()
        .list_jobs(&JobFilter {
            target: Some(other.clone()),
            include_dismissed: true,
            ..Default::default()
        })
        .unwrap();
    assert!(jobs.is_empty(), "{jobs:?}");
    assert!(containers_of(&t.docker, &other).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_submitted_while_the_daemon_is_down_is_refused_and_creates_nothing() {
    let mut pd = PrivateDaemon::start().await;
    let endpoint = pd.endpoint();
    pd.kill9();
    let target = unique_target("ddown");
    let img = image("outage:1");

    // The CLI says so in one line, and creates no job.
    let dir = cli_data_dir();
    let out = run_cli_env(
        dir.path(),
        &["install", &target, &img, "--network", "none"],
        None,
        &[("DOCKER_HOST", &endpoint)],
    );
    let text = cli_text(&out);
    assert!(!out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {text}");
    assert!(
        lines[0].contains("not reachable") && lines[0].contains("DOCKER_HOST"),
        "{text}"
    );
    let journal_file = dir.path().join(Journal::FILE_NAME);
    if journal_file.exists() {
        let jobs = Journal::open(&journal_file)
            .unwrap()
            .list_jobs(&JobFilter {
                include_dismissed: true,
                ..Default::default()
            })
            .unwrap();
        assert!(jobs.is_empty(), "{jobs:?}");
    }

    // The API answers 503 docker-unavailable, and creates no job.
    let journal_dir = tempfile::tempdir().unwrap();
    let executor = executor_on(
        &journal_dir.path().join(Journal::FILE_NAME),
        &endpoint,
        quick_settings(),
    );
    let api = Api::serve(&executor).await;
    let (status, retry_after, problem) = api
        .post_job(
            json!({"workflow": "install", "target": target, "params": {"image": img, "network": "none"}}),
        )
        .await;
    assert_refused_for_now(
        status,
        retry_after.as_deref(),
        &problem,
        503,
        "docker-unavailable",
    );
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("no job was created"), "{problem}");
    let (_, page) = api.get("/v1/jobs?all=true").await;
    assert_eq!(page["jobs"], json!([]), "{page}");
    let (status, ready) = api.get("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(
        ready,
        json!({"ready": false, "journal": "writable", "disk_full": false, "docker": "unreachable"})
    );

    // Nothing reached the daemon either.
    pd.restart().await;
    assert!(containers_of(&pd.docker(), &target).await.is_empty());
    let (status, ready) = api.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
}

/// An upgrade whose rollback gives up: the daemon is killed at the new
/// container's start and stays away past the 2 s retry deadline.
async fn failed_upgrade(prefix: &str) -> (OnPrivateDaemon, String, Snapshot, JobId, Vec<String>) {
    let mut t = OnPrivateDaemon::start(Duration::from_secs(2)).await;
    let target = unique_target(prefix);
    let (before, _old_id, job, images) = t.upgrade_and_kill_the_daemon_at_its_start(&target).await;
    let done = tokio::time::timeout(Duration::from_secs(60), t.executor().wait(&job))
        .await
        .expect("the rollback gives up within 60 s")
        .unwrap();
    assert_eq!(done.state, JobState::Failed, "{:?}", done.error);
    let error = done.error.unwrap_or_default();
    assert!(
        error.contains("rollback incomplete") && error.contains("not reachable"),
        "{error}"
    );
    (t, target, before, job, images)
}

/// Wait until the background retry of `job` made `n` attempts (the daemon
/// still away); the JSON of the job then.
async fn wait_for_attempts(api: &Api, job: &JobId, n: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let v = api.job(job).await;
        assert_eq!(v["state"], "failed", "{v}");
        // The retry is planned just after the failure is journaled.
        if v["auto_retry"]["attempts"].as_u64().unwrap_or(0) >= n {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "attempt {n} never came (auto_retry: {}): {v}",
            v["auto_retry"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_failed_while_the_daemon_was_away_is_retried_by_itself_once_it_is_back() {
    let (mut t, target, before, job, images) = failed_upgrade("dretry").await;
    // Listed as needing attention, with the retry the engine plans.
    let v = t.api.job(&job).await;
    let next_at = v["auto_retry"]["next_at"]
        .as_u64()
        .expect("auto_retry.next_at");
    assert!(next_at + 1_000 >= now_ms(), "{v}");
    // An attempt while the daemon is still away changes nothing.
    let v = wait_for_attempts(&t.api, &job, 1).await;
    eprintln!("while the daemon is away: auto_retry = {}", v["auto_retry"]);

    t.pd.restart().await;
    let back = Instant::now();
    let deadline = back + Duration::from_secs(90);
    let v = loop {
        let v = t.api.job(&job).await;
        if v["state"] != "failed" && v["state"] != "rolling_back" {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "not retried within 90 s of the daemon's return: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "background retry: job {job} {} {:.1} s after the daemon came back",
        v["state"],
        back.elapsed().as_secs_f64()
    );
    assert_eq!(v["state"], "rolled_back", "{v}");
    assert!(v["auto_retry"].is_null(), "{v}");
    let after = snapshot(&t.docker, t.engine.journal(), &target, &images).await;
    assert_eq!(
        after, before,
        "the old container runs with the same id, no -Next"
    );
}

/// Let the first background attempt pass with the daemon away, then bring
/// it back: the next attempt is ≥ 10 s away, time to act on the failed job.
async fn daemon_back_between_attempts(t: &mut OnPrivateDaemon, job: &JobId) {
    wait_for_attempts(&t.api, job, 1).await;
    t.pd.restart().await;
    let v = t.api.job(job).await;
    assert_eq!(v["state"], "failed", "{v}");
    let left = v["auto_retry"]["next_at"].as_u64().unwrap_or(0) as i64 - now_ms() as i64;
    assert!(
        left > 3_000,
        "the next background attempt is too close: {v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_job_on_a_target_with_an_unfinished_failed_job_is_refused_naming_it() {
    let (mut t, target, _before, job, _images) = failed_upgrade("dattn").await;
    daemon_back_between_attempts(&mut t, &job).await;
    let (status, _, problem) = t
        .api
        .post_job(json!({"workflow": "upgrade", "target": target, "params": {"image": image("outage:2")}}))
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        problem["type"],
        format!("{PROBLEMS}target-needs-attention"),
        "{problem}"
    );
    assert_eq!(problem["failed_job"], job.to_string(), "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&job.to_string()) && detail.contains("retry"),
        "{problem}"
    );
    let state = t.engine.journal().job(&job).unwrap().unwrap();
    assert_eq!(state.state, JobState::Failed);
    assert!(!state.dismissed);

    // Once the failed job is finished (here by its background retry), the
    // target takes jobs again.
    let deadline = Instant::now() + Duration::from_secs(60);
    while t.engine.journal().job(&job).unwrap().unwrap().state == JobState::Failed
        || t.executor().is_running(&job)
    {
        assert!(Instant::now() < deadline, "the failed job was not retried");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let retried = t.executor().wait(&job).await.unwrap();
    assert_eq!(retried.state, JobState::RolledBack, "{:?}", retried.error);
    let (status, _, v) = t
        .api
        .post_job(json!({"workflow": "upgrade", "target": target, "params": {"image": image("outage:2")}}))
        .await;
    assert_eq!(status, 202, "{v}");
    let id: JobId = serde_json::from_value(v["id"].clone()).unwrap();
    let done = t.executor().wait(&id).await.unwrap();
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forced_job_records_the_operators_decision_on_the_failed_job() {
    let (mut t, target, _before, job, _images) = failed_upgrade("dforce").await;
    daemon_back_between_attempts(&mut t, &job).await;
    let (status, _, v) = t
        .api
        .post_job(json!({"workflow": "teardown", "target": target, "force": true}))
        .await;
    assert_eq!(status, 202, "{v}");
    let forced: JobId = serde_json::from_value(v["id"].clone()).unwrap();

    let failed = t.engine.journal().job(&job).unwrap().unwrap();
    assert_eq!(failed.state, JobState::Failed, "it stays failed");
    assert!(failed.dismissed, "and is dismissed");
    let warned = t.engine.journal().events(&job, 0).unwrap().iter().any(|e| {
        matches!(&e.event, Event::Log { level, message }
            if level == "warn" && message.contains("superseded") && message.contains(&forced.to_string()))
    });
    assert!(warned, "the failed job's timeline records the decision");
    let (status, problem) = t.api.post(&format!("/v1/jobs/{job}/retry")).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        problem["type"],
        format!("{PROBLEMS}not-retryable"),
        "{problem}"
    );
    // Not listed as needing attention any more.
    let (_, page) = t.api.get("/v1/jobs?state=failed").await;
    assert!(
        !page["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == job.to_string()),
        "{page}"
    );

    let done = tokio::time::timeout(Duration::from_secs(60), t.executor().wait(&forced))
        .await
        .expect("the forced job ends")
        .unwrap();
    eprintln!(
        "forced teardown over the failed upgrade: {} {:?}",
        done.state, done.error
    );
    assert!(done.state.is_terminal());
    // Past the background retry's next attempt: it no longer touches the job.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let v = t.api.job(&job).await;
    assert_eq!(v["state"], "failed", "{v}");
    assert!(v["auto_retry"].is_null(), "{v}");
}

/// The rollback of an upgrade killed in the middle of its stop of the old
/// app (which ignores SIGTERM, so the stop lasts its 10 s) first waits the
/// stop out; the daemon is `kill -9`ed during that wait and back 2 s later.
/// The wait is a call like any other: it is tried again while the daemon
/// is away, and the job ends `rolled_back` with the app running, not
/// `failed`. (Live restore: the app survives the daemon's restart, and the
/// stop the dead daemon was carrying out never ends.)
#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_restart_while_the_rollback_waits_out_an_interrupted_stop_ends_rolled_back() {
    let mut pd = PrivateDaemon::start_live_restore().await;
    let docker = pd.docker();
    let endpoint = pd.endpoint();
    let dir = cli_data_dir();
    let target = unique_target("dwait");
    let (v1, v2) = (image("outage-stubborn:1"), image("outage-stubborn:2"));
    let env = [("DOCKER_HOST", endpoint.as_str())];
    let out = run_cli_env(
        dir.path(),
        &["install", &target, &v1, "--network", "none"],
        None,
        &env,
    );
    assert!(out.status.success(), "{}", cli_text(&out));
    let journal = Journal::open(dir.path().join(Journal::FILE_NAME)).unwrap();
    let images = vec![v1.clone(), v2.clone()];
    let before = snapshot(&docker, &journal, &target, &images).await;
    drop(journal);

    // The engine dies 0.5 s into the old app's stop.
    let out = run_cli_env(
        dir.path(),
        &["upgrade", &target, &v2],
        None,
        &[
            ("DOCKER_HOST", endpoint.as_str()),
            ("DECKHAND_FAULT_KILL_DURING", "stop_container:1:500"),
        ],
    );
    assert!(!out.status.success(), "{}", cli_text(&out));
    // Recovery waits the stop out; the daemon goes away meanwhile.
    let recover = std::process::Command::new(env!("CARGO_BIN_EXE_deckhand"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("recover")
        .env("DOCKER_HOST", &endpoint)
        .env("DECKHAND_SETTLE_MS", "300")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    pd.kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    pd.restart().await;
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || recover.wait_with_output()),
    )
    .await
    .expect("recovery ends within 120 s")
    .unwrap()
    .unwrap();
    let text = cli_text(&out);
    let journal = Journal::open(dir.path().join(Journal::FILE_NAME)).unwrap();
    let upgrade = journal
        .list_jobs(&JobFilter {
            target: Some(target.clone()),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .find(|j| j.workflow == "upgrade")
        .expect("the upgrade job");
    assert_eq!(
        upgrade.state,
        JobState::RolledBack,
        "{:?}\n{text}",
        upgrade.error
    );
    let after = snapshot(&docker, &journal, &target, &images).await;
    assert_eq!(after, before, "the old app runs with the same id, no -Next");
}

/// A refusal that asks the client to come back: `status`, the problem type
/// `kind`, and `Retry-After: 5`.
fn assert_refused_for_now(
    status: u16,
    retry_after: Option<&str>,
    problem: &Value,
    expected_status: u16,
    kind: &str,
) {
    assert_eq!(status, expected_status, "{problem}");
    assert_eq!(problem["type"], format!("{PROBLEMS}{kind}"), "{problem}");
    assert_eq!(retry_after, Some("5"), "{problem}");
}
