//! Deckhand's benchmarks: each figure beside a baseline measured in the same
//! run, and their ratio. Run with `bash scripts/bench.sh` (which starts the
//! Docker test environment for the figures on a real daemon: 4, 12, 13, 14) or
//! `cargo bench -p deckhand --bench deckhand`; figure numbers after the
//! command (`bash scripts/bench.sh 2 4`) run only those. The journals live in
//! a temporary directory under `DECKHAND_BENCH_DIR` (default: the current
//! directory, so the figures measure the disk the engine would use).
//!
//! These print; they never fail on speed.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deckhand::executor::{Executor, JobRequest};
use deckhand::journal::{Event, JobId, JobState, Journal, NewJob};
use deckhand::plugin::{HostSettings, JobScope, PluginHost};
use deckhand::runtime::{ContainerRuntime, MemoryRuntime};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

fn row(name: &str, value: String, baseline: Option<(String, f64)>) {
    match baseline {
        Some((b, ratio)) => {
            // Tiny ratios keep two significant digits.
            let ratio = if ratio >= 0.01 {
                format!("{ratio:.2}")
            } else {
                format!("{ratio:.1e}")
            };
            println!("{name:<44} {value:>16}   baseline {b:>16}   ratio {ratio:>7}×")
        }
        None => println!("{name:<44} {value:>16}"),
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn per_s(n: f64) -> String {
    format!("{n:.0}/s")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn new_job(target: &str) -> NewJob {
    NewJob {
        id: JobId::new(),
        workflow: "install".into(),
        target: target.into(),
        params: serde_json::json!({"image": "app:1"}),
        plugin_digest: "sha256:bench".into(),
        idempotency_key: None,
    }
}

fn intent(step: u32) -> Event {
    Event::Intent {
        step,
        call: serde_json::json!({"op": "start_container", "id": "0123456789abcdef"}),
        undo: None,
    }
}

/// Figure 1: A durable step vs a bare fdatasync of an append of the same size.
async fn durable_step(dir: &std::path::Path) {
    const N: usize = 400;
    let journal = Journal::open(dir.join("step.sqlite")).unwrap();
    let job = journal.create_job(new_job("web")).await.unwrap();
    let mut steps = Vec::with_capacity(N);
    for i in 0..N {
        let t = Instant::now();
        journal.append(&job.id, intent(i as u32)).await.unwrap();
        steps.push(t.elapsed());
    }
    let record = serde_json::to_string(&intent(1)).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("bare.log"))
        .unwrap();
    let mut bare = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        file.write_all(record.as_bytes()).unwrap();
        file.sync_data().unwrap();
        bare.push(t.elapsed());
    }
    let (s, b) = (median(steps), median(bare));
    row(
        "1. durable step (median)",
        us(s),
        Some((us(b) + " fdatasync", s.as_secs_f64() / b.as_secs_f64())),
    );
}

/// SQLite's own insert rate into the journal's `events` table: `batch` rows
/// per transaction, FULL sync, prepared statement, one thread.
async fn sqlite_batched_rate(path: &std::path::Path, batch: usize, rows: usize) -> f64 {
    let journal = Journal::open(path).unwrap();
    let job = journal.create_job(new_job("web")).await.unwrap();
    drop(journal);
    let c = rusqlite::Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    let data = serde_json::to_string(&intent(1)).unwrap();
    let batches = rows.div_ceil(batch);
    let t = Instant::now();
    for b in 0..batches {
        let tx = c.unchecked_transaction().unwrap();
        let mut insert = tx
            .prepare("INSERT INTO events (job_id, at, kind, data) VALUES (?1, ?2, 'intent', ?3)")
            .unwrap();
        for i in 0..batch {
            insert
                .execute(rusqlite::params![
                    job.id.as_str(),
                    (b * batch + i) as i64,
                    data
                ])
                .unwrap();
        }
        drop(insert);
        tx.commit().unwrap();
    }
    (batches * batch) as f64 / t.elapsed().as_secs_f64()
}

/// Figure 2: Journal throughput with 1, 8, 64 concurrent appenders vs SQLite's
/// batched insert rate (same schema, FULL sync): 256 rows a transaction, and
/// as many rows a transaction as there are appenders — the most a group
/// commit can reach when each appender waits for its own write to be durable.
async fn throughput(dir: &std::path::Path) {
    let batched = sqlite_batched_rate(&dir.join("batched.sqlite"), 256, 20_000).await;
    for writers in [1usize, 8, 64] {
        let per_writer = (6_000 / writers).max(200);
        // As many rows as the appenders write: the WAL's growth (and the
        // file-size updates each fsync then carries) matches.
        let same_size = sqlite_batched_rate(
            &dir.join(format!("batched{writers}.sqlite")),
            writers,
            writers * per_writer,
        )
        .await;
        let journal = Journal::open(dir.join(format!("tp{writers}.sqlite"))).unwrap();
        let mut jobs = Vec::new();
        for w in 0..writers {
            jobs.push(
                journal
                    .create_job(new_job(&format!("t{w}")))
                    .await
                    .unwrap()
                    .id,
            );
        }
        let t = Instant::now();
        let tasks: Vec<_> = jobs
            .into_iter()
            .map(|id| {
                let j = journal.clone();
                tokio::spawn(async move {
                    for i in 0..per_writer {
                        j.append(&id, intent(i as u32)).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let rate = (writers * per_writer) as f64 / t.elapsed().as_secs_f64();
        row(
            &format!("2. journal appends, {writers} concurrent jobs"),
            per_s(rate),
            Some((per_s(batched) + " batched", rate / batched)),
        );
        row(
            "",
            String::new(),
            Some((
                format!("{} batched {writers}", per_s(same_size)),
                rate / same_size,
            )),
        );
    }
}

fn scope(
    journal: &Journal,
    job: &JobId,
    runtime: Arc<dyn ContainerRuntime>,
    settings: HostSettings,
    params: &str,
) -> JobScope {
    JobScope::live(
        job.clone(),
        "web".into(),
        params.into(),
        journal.clone(),
        runtime,
        CancellationToken::new(),
        settings,
    )
}

/// Figure 3: Plugin instantiation per job, and the cost of host calls through the
/// sandbox vs the same journaled calls made by native code.
async fn plugin_costs(dir: &std::path::Path) {
    let journal = Journal::open(dir.join("plugin.sqlite")).unwrap();
    let job = journal.create_job(new_job("web")).await.unwrap();
    let host = PluginHost::with_builtins(Some(dir.join("cache"))).unwrap();
    let install = host.get("install").unwrap();
    let rt: Arc<dyn ContainerRuntime> = Arc::new(MemoryRuntime::new());
    // Bad params: the plugin returns at its first line, so this is an instantiation and one call.
    let mut inst = Vec::new();
    for _ in 0..300 {
        let s = scope(&journal, &job.id, rt.clone(), HostSettings::default(), "{}");
        let t = Instant::now();
        let _ = host.run(&install, s).await;
        inst.push(t.elapsed());
    }
    // Baseline: what each job would pay without the compiled, pre-linked
    // component — compiling it from its bytes.
    let bytes = include_bytes!(concat!(
        env!("DECKHAND_PLUGIN_WASM_DIR"),
        "/deckhand_plugin_install.wasm"
    ));
    let uncached = PluginHost::new(None).unwrap();
    let mut compile = Vec::new();
    for i in 0..3 {
        let t = Instant::now();
        uncached
            .register(&format!("install-{i}"), bytes, false)
            .unwrap();
        compile.push(t.elapsed());
    }
    let (i, c) = (median(inst), median(compile));
    row(
        "3a. instantiate + run an empty job (median)",
        us(i),
        Some((
            format!("{:.1} ms compile", c.as_secs_f64() * 1e3),
            i.as_secs_f64() / c.as_secs_f64(),
        )),
    );

    let hostile = host
        .register(
            "hostile",
            include_bytes!(concat!(
                env!("DECKHAND_PLUGIN_WASM_DIR"),
                "/deckhand_test_hostile.wasm"
            )),
            false,
        )
        .unwrap();
    // The plugin calls `cancel-requested` until the host-call cap stops it.
    let calls = 10_000u32;
    let settings = HostSettings {
        max_host_calls: calls,
        ..HostSettings::default()
    };
    let s = scope(
        &journal,
        &job.id,
        rt.clone(),
        settings,
        r#"{"mode": "many-calls"}"#,
    );
    let t = Instant::now();
    let _ = host.run(&hostile, s).await;
    let through_plugin = t.elapsed();
    // Native: the same records, written the same way (a read's question
    // and answer need no fsync of their own: they go with the next durable
    // write, here the one at the end of the run).
    let t = Instant::now();
    let mut events = Vec::with_capacity(2 * calls as usize);
    for i in 0..calls {
        events.push(Event::Intent {
            step: i,
            call: serde_json::json!({"op": "read_cancel_requested"}),
            undo: None,
        });
        events.push(Event::Result {
            step: i,
            outcome: deckhand::journal::Outcome::Ok {
                value: serde_json::json!(false),
            },
        });
    }
    journal.append_all(&job.id, events).await.unwrap();
    let native = t.elapsed();
    let per = |d: Duration| us(d / calls);
    row(
        "3b. journaled host call from a plugin",
        per(through_plugin),
        Some((
            per(native) + " native",
            through_plugin.as_secs_f64() / native.as_secs_f64(),
        )),
    );
}

/// Install `config` with the runtime's Docker calls made directly: those the
/// install workflow makes — image check, pull, create, start, and with
/// `host_checks` the calls the host adds (the ping before a job is accepted;
/// after create and after start, the inspection that records the settled
/// result; the ownership inspections before start, before the health wait,
/// the health check at settle time 0, and when the revision is recorded),
/// else the one inspection a script would make. No journal, no sandbox.
/// Returns how long it took; the container is removed after.
async fn direct_install(
    docker: &dyn ContainerRuntime,
    config: &deckhand::runtime::ContainerConfig,
    host_checks: bool,
) -> Duration {
    let (tx, _rx) = tokio::sync::watch::channel(deckhand::runtime::PullTracker::new().progress());
    let t = Instant::now();
    if host_checks {
        docker.ping().await.unwrap();
    }
    let _ = docker.image_present(&config.image).await.unwrap();
    docker
        .pull_image(&config.image, &tx, &CancellationToken::new())
        .await
        .unwrap();
    let id = docker.create_container(config).await.unwrap();
    for _ in 0..if host_checks { 2 } else { 0 } {
        let _ = docker.inspect_container(&id).await.unwrap();
    }
    docker.start_container(&id).await.unwrap();
    for _ in 0..if host_checks { 4 } else { 1 } {
        let _ = docker.inspect_container(&id).await.unwrap();
    }
    let took = t.elapsed();
    docker.remove_container(&id).await.unwrap();
    took
}

/// How many installs of each kind figure 4 takes its medians over.
const RUNS: usize = 15;

/// Figure 4: A real install through Deckhand vs the same Docker calls made directly.
async fn real_install(dir: &std::path::Path) {
    let Ok(docker) = deckhand::runtime::DockerRuntime::connect() else {
        row("4. real install", "no Docker".into(), None);
        return;
    };
    if docker.ping().await.is_err() {
        row(
            "4. real install",
            "no Docker (run scripts/bench.sh)".into(),
            None,
        );
        return;
    }
    let registry =
        std::env::var("DECKHAND_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into());
    let image = format!("{registry}/deckhand-test/app:1");
    let docker: Arc<dyn ContainerRuntime> = Arc::new(docker);
    let settings = HostSettings {
        settle_time: Duration::from_millis(0),
        ..HostSettings::default()
    };
    let journal = Journal::open(dir.join("real.sqlite")).unwrap();
    let host = Arc::new(PluginHost::with_builtins(Some(dir.join("cache"))).unwrap());
    let executor = Executor::new(journal.clone(), docker.clone(), host, settings);
    // The same engine behind the HTTP API on loopback.
    let base = deckhand::api::serve_on_loopback(executor.clone(), Default::default())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let remove_installed = |target: String| {
        let (journal, docker) = (journal.clone(), docker.clone());
        async move {
            let record = journal.target(&target).unwrap().unwrap();
            let id = record.current.unwrap().container_id;
            docker.remove_container(&id).await.unwrap();
        }
    };
    let (mut through, mut api) = (Vec::new(), Vec::new());
    let (mut direct, mut minimal) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        // Each kind takes each place in the order equally often, and the
        // daemon gets a moment after each removal (it deletes the
        // container's files in the background).
        let config = deckhand::runtime::ContainerConfig {
            name: format!("direct-{i}-{}", std::process::id()),
            image: image.clone(),
            network: Some("none".into()),
            ..Default::default()
        };
        for kind in 0..4 {
            match (i + kind) % 4 {
                0 => {
                    // Deckhand in-process: pull (present), create, start, wait, commit.
                    let target = format!("bench-{i}-{}", std::process::id());
                    let t = Instant::now();
                    let job = executor
                        .submit(JobRequest::new(
                            "install",
                            target.clone(),
                            serde_json::json!({"image": image, "network": "none"}),
                        ))
                        .await
                        .unwrap();
                    let done = executor.wait(&job.id).await.unwrap();
                    through.push(t.elapsed());
                    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
                    remove_installed(target).await;
                }
                1 => {
                    // Deckhand over HTTP: POST the job, follow its event stream to `end`.
                    let target = format!("bench-api-{i}-{}", std::process::id());
                    let t = Instant::now();
                    let accepted: serde_json::Value = http
                        .post(format!("{base}/v1/jobs"))
                        .json(&serde_json::json!({
                            "workflow": "install",
                            "target": target,
                            "params": {"image": image, "network": "none"},
                        }))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    let id = accepted["id"].as_str().unwrap();
                    let mut events = http
                        .get(format!("{base}/v1/jobs/{id}/events"))
                        .header("accept", "text/event-stream")
                        .send()
                        .await
                        .unwrap()
                        .bytes_stream()
                        .eventsource();
                    let mut end = None;
                    while let Some(ev) = events.next().await {
                        let ev = ev.unwrap();
                        if ev.event == "end" {
                            end =
                                Some(serde_json::from_str::<serde_json::Value>(&ev.data).unwrap());
                            break;
                        }
                    }
                    api.push(t.elapsed());
                    let end = end.expect("the event stream ends with `end`");
                    assert_eq!(end["state"], "succeeded", "{end}");
                    remove_installed(target).await;
                }
                2 => direct.push(direct_install(docker.as_ref(), &config, true).await),
                3 => minimal.push(direct_install(docker.as_ref(), &config, false).await),
                _ => unreachable!(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let spread = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        format!(
            "{:.0}–{:.0} ms",
            v[0].as_secs_f64() * 1e3,
            v[v.len() - 1].as_secs_f64() * 1e3
        )
    };
    let (t, a, d, m) = (
        median(through.clone()),
        median(api.clone()),
        median(direct.clone()),
        median(minimal.clone()),
    );
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    let ratio = |x: Duration, y: Duration| x.as_secs_f64() / y.as_secs_f64();
    row(
        "4. real install, in-process (median of 15)",
        ms(t),
        Some((ms(d) + " direct", ratio(t, d))),
    );
    row(
        "4. real install, HTTP API (median of 15)",
        ms(a),
        Some((ms(d) + " direct", ratio(a, d))),
    );
    row(
        "   direct, without the host's checks",
        ms(m),
        Some((ms(d) + " direct", ratio(m, d))),
    );
    row(
        "   spread in-process / HTTP API / direct",
        format!(
            "{} / {} / {}",
            spread(&through),
            spread(&api),
            spread(&direct)
        ),
        None,
    );
}

/// Figure 5: Recovery of 10,000 interrupted jobs on the memory runtime.
async fn recovery(dir: &std::path::Path) {
    const N: usize = 10_000;
    let journal = Journal::open(dir.join("recovery.sqlite")).unwrap();
    let mut text = String::from(
        "{\"type\":\"header\",\"format\":\"deckhand-journal\",\"version\":1,\"schema\":3}\n",
    );
    let mut events = String::new();
    let mut seq = 0;
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        let id = JobId::new();
        ids.push(id.clone());
        text += &format!(
            "{{\"type\":\"job\",\"id\":\"{id}\",\"workflow\":\"install\",\"target\":\"t{i}\",\"params\":{{}},\"plugin_digest\":\"x\",\"state\":\"running\",\"phase\":null,\"progress\":{{}},\"error\":null,\"summary\":null,\"cancel_requested\":false,\"dismissed\":false,\"created_at\":0,\"updated_at\":0}}\n"
        );
        for e in [
            serde_json::json!({"kind": "intent", "step": 1, "call": {"op": "create_container"}, "undo": {"op": "remove_created_container", "name": format!("deckhand-t{i}"), "job": id.to_string()}}),
            serde_json::json!({"kind": "result", "step": 1, "outcome": "ok", "value": "c"}),
        ] {
            seq += 1;
            events += &format!(
                "{{\"type\":\"event\",\"seq\":{seq},\"job_id\":\"{id}\",\"at\":0,\"event\":{e}}}\n"
            );
        }
    }
    text += &events;
    journal.import(&text).await.unwrap();
    let host = Arc::new(PluginHost::with_builtins(Some(dir.join("cache"))).unwrap());
    let executor = Executor::new(
        journal.clone(),
        Arc::new(MemoryRuntime::new()),
        host,
        HostSettings::default(),
    );
    let t = Instant::now();
    let report = executor.recover().await.unwrap();
    let took = t.elapsed();
    assert_eq!(report.jobs.len(), N);
    // Baseline: the events recovery wrote, written directly on a copy of the
    // same interrupted journal — each job's in one durable write, 64 jobs at
    // a time as recovery runs them: the least journal work a recovery can do.
    let written: Vec<(JobId, Vec<Event>)> = ids
        .iter()
        .map(|id| {
            let events = journal.events(id, 0).unwrap();
            (
                id.clone(),
                events.into_iter().skip(2).map(|e| e.event).collect(),
            )
        })
        .collect();
    let appended: usize = written.iter().map(|(_, e)| e.len()).sum();
    let copy = Journal::open(dir.join("recovery-baseline.sqlite")).unwrap();
    copy.import(&text).await.unwrap();
    let written = Arc::new(written);
    let t = Instant::now();
    let writers: Vec<_> = (0..64)
        .map(|w| {
            let (copy, written) = (copy.clone(), written.clone());
            tokio::spawn(async move {
                for (id, events) in written.iter().skip(w).step_by(64) {
                    copy.append_all(id, events.clone()).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let direct = t.elapsed();
    row(
        "5. recover 10,000 interrupted jobs",
        format!("{:.2} s", took.as_secs_f64()),
        Some((
            format!("{:.2} s its writes", direct.as_secs_f64()),
            took.as_secs_f64() / direct.as_secs_f64(),
        )),
    );
    row(
        &format!("   per job ({} journal events)", appended / N),
        us(took / N as u32),
        None,
    );
}

/// Figure 6: Replay speed on the largest fixture.
async fn replay_speed(dir: &std::path::Path) {
    let text = include_str!("../../journal-fixtures/upgrade.jsonl");
    let journal = Journal::open(dir.join("replay.sqlite")).unwrap();
    journal.import(text).await.unwrap();
    let host = PluginHost::with_builtins(Some(dir.join("cache"))).unwrap();
    let upgrade = journal
        .list_jobs(&Default::default())
        .unwrap()
        .into_iter()
        .find(|j| j.workflow == "upgrade")
        .unwrap();
    let events = journal.events(&upgrade.id, 0).unwrap().len();
    let plugin = host.get("upgrade");
    let rounds = 200;
    let t = Instant::now();
    for _ in 0..rounds {
        let r = deckhand::replay::replay(&host, &journal, &upgrade, plugin.clone(), None)
            .await
            .unwrap();
        assert!(r.divergence.is_none());
    }
    let rate = (events * rounds) as f64 / t.elapsed().as_secs_f64();
    // Baseline: reading and decoding the same events, which any replay does.
    let t = Instant::now();
    for _ in 0..rounds {
        assert_eq!(journal.events(&upgrade.id, 0).unwrap().len(), events);
    }
    let read = (events * rounds) as f64 / t.elapsed().as_secs_f64();
    row(
        "6. replay of upgrade.jsonl",
        format!("{rate:.0} events/s"),
        Some((format!("{read:.0}/s read"), rate / read)),
    );
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    rss_kib_of(std::process::id()) as f64 / 1024.0
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resident memory in KiB, as MiB for a row.
fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A `deckhand serve` child process (memory runtime, token
/// [`ServeChild::TOKEN`]) on a free loopback port, for figures 10 and 11:
/// idle connections stay open while measured, and this process may hold as
/// many as it may open files. Killed when dropped.
struct ServeChild {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    base: String,
    /// `127.0.0.1:<port>`.
    addr: String,
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServeChild {
    const TOKEN: &str = "bench";

    /// Start one on data directory `dir` with these extra environment
    /// variables.
    fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> ServeChild {
        use std::io::{BufRead, BufReader};
        // The connections are this process's files too.
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only access `limit`.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_deckhand"))
            .arg("--data-dir")
            .arg(dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--runtime", "memory"])
            .env("DECKHAND_TOKEN", Self::TOKEN)
            // Long enough that none closes while measured.
            .env("DECKHAND_IDLE_TIMEOUT_S", "600")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("deckhand listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        let addr = base.trim_start_matches("http://").to_owned();
        std::thread::spawn(move || for _ in out.lines() {});
        ServeChild { child, base, addr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory in KiB once it has settled: 2 s from now.
    async fn settled_rss_kib(&self) -> u64 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        rss_kib_of(self.pid())
    }

    /// A new connection to it, silent so far.
    fn connect(&self) -> std::net::TcpStream {
        std::net::TcpStream::connect(&self.addr).unwrap()
    }

    /// A client presenting its token.
    fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .default_headers(
                [(
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {}", Self::TOKEN).parse().unwrap(),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .unwrap()
    }
}

/// Ask `GET /healthz` on connection `c`, which stays open (kept alive).
fn ask_healthz(c: &mut std::net::TcpStream) {
    use std::io::Read;
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(c.read(&mut buf).unwrap() > 0);
}

/// Figure 10: Resident memory of `deckhand serve` (memory runtime) holding
/// 1,000 idle connections: silent ones, then ones that made a request each
/// and stay open (keep-alive).
async fn idle_connections(dir: &std::path::Path) {
    const N: usize = 1000;
    let server = ServeChild::start(&dir.join("serve"), &[]);
    // Warm up: a few requests, then the resident memory settles.
    for _ in 0..20 {
        ask_healthz(&mut server.connect());
    }
    let idle = server.settled_rss_kib().await;
    let mut silent: Vec<_> = (0..N).map(|_| server.connect()).collect();
    let with_silent = server.settled_rss_kib().await;
    for c in &mut silent {
        ask_healthz(c);
    }
    let with_kept = server.settled_rss_kib().await;
    drop(silent);
    drop(server);
    let idle_mib = mib(idle) + " idle";
    row(
        "10. RSS of the server, idle (memory runtime)",
        mib(idle),
        None,
    );
    for (name, rss) in [
        ("   RSS with 1,000 silent connections", with_silent),
        ("   RSS with 1,000 kept-alive connections", with_kept),
    ] {
        row(
            name,
            mib(rss),
            Some((idle_mib.clone(), rss as f64 / idle as f64)),
        );
        let above = rss.saturating_sub(idle);
        row(
            "   above idle / per connection",
            format!("{} / {:.1} KiB", mib(above), above as f64 / N as f64),
            None,
        );
    }
}

/// An engine on the in-memory runtime with a fresh journal at `path`.
fn memory_executor(path: &std::path::Path, host: &Arc<PluginHost>) -> Executor {
    Executor::new(
        Journal::open(path).unwrap(),
        Arc::new(MemoryRuntime::new()),
        host.clone(),
        HostSettings {
            settle_time: Duration::ZERO,
            ..HostSettings::default()
        },
    )
}

/// Figures 7 and 8: Memory with 1,000 concurrent jobs, and jobs/s as concurrency grows.
async fn memory_and_scaling(dir: &std::path::Path) {
    let journal = Journal::open(dir.join("scale.sqlite")).unwrap();
    let host = Arc::new(PluginHost::with_builtins(Some(dir.join("cache"))).unwrap());
    let idle = rss_mib();
    let slow = Arc::new(MemoryRuntime::new().with_pull_time(Duration::from_secs(3)));
    let executor = Executor::new(
        journal.clone(),
        slow,
        host.clone(),
        HostSettings {
            settle_time: Duration::ZERO,
            ..HostSettings::default()
        },
    );
    let mut ids = Vec::new();
    for i in 0..1000 {
        ids.push(
            executor
                .submit(JobRequest::new(
                    "install",
                    format!("m{i}"),
                    serde_json::json!({"image": "app:1"}),
                ))
                .await
                .unwrap()
                .id,
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let busy = rss_mib();
    for id in &ids {
        executor.wait(id).await.unwrap();
    }
    row(
        "7. RSS idle (engine, journal, 4 plugins)",
        format!("{idle:.1} MiB"),
        None,
    );
    row(
        "   RSS with 1,000 jobs in flight",
        format!("{busy:.1} MiB"),
        Some((format!("{idle:.1} MiB idle"), busy / idle)),
    );
    row(
        "   per job in flight",
        format!("{:.0} KiB", (busy - idle) * 1024.0 / 1000.0),
        None,
    );

    let (mut first, mut last) = (None, 0.0);
    for concurrency in [1usize, 10, 100, 1000] {
        let executor = memory_executor(&dir.join(format!("scale{concurrency}.sqlite")), &host);
        let total = (concurrency * 3).max(60);
        let t = Instant::now();
        let mut next = 0;
        let mut inflight = Vec::new();
        while next < total || !inflight.is_empty() {
            while inflight.len() < concurrency && next < total {
                let req = JobRequest::new(
                    "install",
                    format!("s{next}"),
                    serde_json::json!({"image": "app:1"}),
                );
                inflight.push(executor.submit(req).await.unwrap().id);
                next += 1;
            }
            let id = inflight.remove(0);
            executor.wait(&id).await.unwrap();
        }
        let rate = total as f64 / t.elapsed().as_secs_f64();
        let base = *first.get_or_insert(rate);
        row(
            &format!("8. jobs/s at {concurrency} concurrent"),
            per_s(rate),
            Some((per_s(base) + " at 1", rate / base)),
        );
        last = rate;
    }

    // As behind the API, where each client follows its own job: 1,000 jobs
    // at a time, each awaited by its own task.
    let executor = memory_executor(&dir.join("scale-watched.sqlite"), &host);
    let total = 3000;
    let slots = Arc::new(tokio::sync::Semaphore::new(1000));
    let t = Instant::now();
    let mut clients = Vec::new();
    for i in 0..total {
        let permit = slots.clone().acquire_owned().await.unwrap();
        let req = JobRequest::new(
            "install",
            format!("w{i}"),
            serde_json::json!({"image": "app:1"}),
        );
        let id = executor.submit(req).await.unwrap().id;
        let executor = executor.clone();
        clients.push(tokio::spawn(async move {
            executor.wait(&id).await.unwrap();
            drop(permit);
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let rate = total as f64 / t.elapsed().as_secs_f64();
    row(
        "8. jobs/s at 1000 concurrent, each awaited",
        per_s(rate),
        Some((per_s(last) + " one waiter", rate / last)),
    );
}

/// Figure 9: the rollback of a job that registered N compensations of its
/// own (each runs the plugin's `compensate` in a fresh instance and is
/// journaled), at N = 1,000 and 10,000 on the memory runtime: time per
/// compensation at 10,000 against the same at 1,000. Linear rollback keeps
/// the ratio near 1; reading the job's events again for each compensation
/// (as the engine once did) makes it grow with N.
async fn rollback_scaling(dir: &std::path::Path) {
    let per_compensation = |n: u32| {
        let dir = dir.join(format!("rollback-{n}"));
        async move {
            std::fs::create_dir_all(&dir).unwrap();
            let journal = Journal::open(dir.join("journal.sqlite")).unwrap();
            let host = Arc::new(PluginHost::with_builtins(Some(dir.join("cache"))).unwrap());
            host.register(
                "hostile",
                &std::fs::read(concat!(
                    env!("DECKHAND_PLUGIN_WASM_DIR"),
                    "/deckhand_test_hostile.wasm"
                ))
                .unwrap(),
                false,
            )
            .unwrap();
            let settings = HostSettings {
                max_compensations_per_job: n,
                max_host_calls: n + 100,
                ..HostSettings::default()
            };
            let executor = Executor::new(
                journal.clone(),
                Arc::new(MemoryRuntime::new()),
                host,
                settings,
            );
            let job = executor
                .submit(JobRequest::new(
                    "hostile",
                    "many",
                    serde_json::json!({"mode": "many-compensations", "n": n}),
                ))
                .await
                .unwrap();
            let done = executor.wait(&job.id).await.unwrap();
            assert_eq!(done.state, JobState::RolledBack, "{:?}", done.error);
            // From the rollback's first record to its last.
            let events = journal.events(&job.id, 0).unwrap();
            let first = events
                .iter()
                .find(|e| matches!(e.event, Event::UndoIntent { .. }))
                .unwrap()
                .at;
            let last = events.last().unwrap().at;
            Duration::from_millis((last - first).max(1) as u64) / n
        }
    };
    let small = per_compensation(1_000).await;
    let large = per_compensation(10_000).await;
    let us = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6);
    row(
        "9. rollback of 10,000 compensations, per one",
        us(large),
        Some((
            us(small) + " at 1,000",
            large.as_secs_f64() / small.as_secs_f64(),
        )),
    );
    row(
        "   the whole rollback of 10,000",
        format!("{:.1} s", (large * 10_000).as_secs_f64()),
        None,
    );
}

/// Figure 11: a load test of `deckhand serve` (memory runtime): 1,000 idle
/// connections held open (each made one request, kept alive) while 200
/// job submissions arrive at once, 150 with distinct `Idempotency-Key`s
/// (and targets) and 50 repeating one of those keys with the same request.
/// Prints the answers by status (no 5xx), the jobs made per key (exactly
/// one), and the server's resident memory at rest and at its peak under
/// the load.
async fn load_test(dir: &std::path::Path) {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const IDLE: usize = 1000;
    const KEYS: usize = 150;
    const REPEATS: usize = 50;
    let server = ServeChild::start(
        &dir.join("load"),
        // Every connection served at once: the idle ones do not keep the
        // submissions waiting for a slot (the default is 1,024).
        &[("DECKHAND_MAX_CONNECTIONS", "2048")],
    );
    let (base, pid, http) = (server.base.clone(), server.pid(), server.http());
    // Warm up: a few requests of each kind, then the resident memory settles.
    for _ in 0..20 {
        let r = http.get(format!("{base}/v1/jobs")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let rest = server.settled_rss_kib().await;
    // The idle connections: one request each, then silence (kept alive).
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        let mut c = server.connect();
        ask_healthz(&mut c);
        idle.push(c);
    }
    let with_idle = server.settled_rss_kib().await;
    // The peak while the submissions are answered and their jobs run.
    let peak = Arc::new(AtomicU64::new(with_idle));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib_of(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // Key k (and its target) for every k, and again for the first REPEATS.
    let keys: Vec<usize> = (0..KEYS)
        .flat_map(|k| std::iter::repeat_n(k, if k < REPEATS { 2 } else { 1 }))
        .collect();
    let start = Arc::new(tokio::sync::Barrier::new(keys.len()));
    let t = Instant::now();
    let tasks: Vec<_> = keys
        .iter()
        .map(|&k| {
            let (http, base, start) = (http.clone(), base.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let sent = Instant::now();
                let resp = http
                    .post(format!("{base}/v1/jobs"))
                    .header("idempotency-key", format!("fig11-{k}"))
                    .json(&serde_json::json!({
                        "workflow": "install",
                        "target": format!("load-{k}"),
                        "params": {"image": "registry.example/app:1"},
                    }))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let body: serde_json::Value = resp.json().await.unwrap_or_default();
                let job = body["id"].as_str().map(str::to_owned);
                (k, status, job, sent.elapsed())
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let submitted = t.elapsed();
    // Until every job has ended.
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    let mut listed = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let page: serde_json::Value = http
            .get(format!("{base}/v1/jobs?all=true&limit=500"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jobs = page["jobs"].as_array().cloned().unwrap_or_default();
        listed = jobs.len();
        states.clear();
        for j in &jobs {
            *states
                .entry(j["state"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
        }
        let finished = ["succeeded", "cancelled", "rolled_back", "failed"];
        if states.keys().all(|s| finished.contains(&s.as_str())) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let finished = t.elapsed();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);
    drop(idle);
    drop(server);

    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    let mut jobs_of_key: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (k, status, job, _) in &answers {
        *by_status.entry(*status).or_default() += 1;
        if let Some(job) = job {
            jobs_of_key.entry(*k).or_default().insert(job.clone());
        }
    }
    let server_errors: usize = by_status
        .iter()
        .filter(|(s, _)| **s >= 500)
        .map(|(_, n)| n)
        .sum();
    let per_key: BTreeSet<usize> = (0..KEYS)
        .map(|k| jobs_of_key.get(&k).map_or(0, |j| j.len()))
        .collect();
    let mut latencies: Vec<Duration> = answers.iter().map(|a| a.3).collect();
    latencies.sort();
    let list = |m: &BTreeMap<String, usize>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    row(
        "11. 200 submissions at once, answered 5xx",
        format!("{server_errors} of {}", answers.len()),
        None,
    );
    row(
        "   answers by status",
        by_status
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        None,
    );
    row(
        "   jobs per key (150 keys, 50 sent twice)",
        per_key
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join("–"),
        None,
    );
    row(
        "   jobs in the journal / ended",
        format!("{listed} / {}", list(&states)),
        None,
    );
    row(
        "   answer time, median / slowest",
        format!(
            "{:.0} / {:.0} ms",
            median(latencies.clone()).as_secs_f64() * 1e3,
            latencies.last().unwrap().as_secs_f64() * 1e3
        ),
        None,
    );
    row(
        "   all answered / all jobs ended",
        format!(
            "{:.2} s / {:.2} s",
            submitted.as_secs_f64(),
            finished.as_secs_f64()
        ),
        None,
    );
    let rest_mib = mib(rest) + " at rest";
    row("   RSS of the server at rest", mib(rest), None);
    row(
        "   RSS with 1,000 idle connections",
        mib(with_idle),
        Some((rest_mib.clone(), with_idle as f64 / rest as f64)),
    );
    row(
        "   RSS under load (peak)",
        mib(peak),
        Some((rest_mib, peak as f64 / rest as f64)),
    );
    row(
        "   under load − at rest",
        mib(peak.saturating_sub(rest)),
        None,
    );
    assert_eq!(server_errors, 0, "5xx answers: {by_status:?}");
    assert_eq!(
        per_key,
        BTreeSet::from([1]),
        "jobs per key: {jobs_of_key:?}"
    );
    assert_eq!(listed, KEYS, "jobs in the journal");
}

// ---- Figures 12 and 13: a real app (a published port, a volume, a network) ----

/// How many times figure 13 upgrades with each of its three methods.
const DOWNTIME_RUNS: usize = 7;

/// The test daemon through bollard itself, for the baselines that bypass
/// Deckhand: `DOCKER_HOST`, or the default socket.
fn raw_docker() -> bollard::Docker {
    let endpoint =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    match endpoint.strip_prefix("unix://") {
        Some(path) => bollard::Docker::connect_with_socket(path, 120, bollard::API_DEFAULT_VERSION),
        None => bollard::Docker::connect_with_http(&endpoint, 120, bollard::API_DEFAULT_VERSION),
    }
    .unwrap()
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Seconds since the epoch, the clock of the pollers' samples.
fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Send `GET /` to `127.0.0.1:port` every 5 ms (each within 500 ms) until
/// it is answered, at most for `limit`: the body.
async fn until_answers(port: u16, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        let answer = tokio::time::timeout(Duration::from_millis(500), http_probe(addr))
            .await
            .ok()
            .flatten();
        if answer.is_some() || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What figures 12 and 13 share: Deckhand on the test daemon (settle time
/// 0, as in figure 4), the daemon through bollard, and the web images
/// (busybox httpd answering its version, `1` or `2`).
struct RealApps {
    docker: bollard::Docker,
    runtime: Arc<dyn ContainerRuntime>,
    executor: Executor,
    web1: String,
    web2: String,
}

impl RealApps {
    /// `None` (and a row saying so, named `figure`) without a daemon.
    async fn connect(dir: &std::path::Path, journal: &str, figure: &str) -> Option<RealApps> {
        let Ok(docker) = deckhand::runtime::DockerRuntime::connect() else {
            row(figure, "no Docker".into(), None);
            return None;
        };
        if docker.ping().await.is_err() {
            row(figure, "no Docker (run scripts/bench.sh)".into(), None);
            return None;
        }
        let registry =
            std::env::var("DECKHAND_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into());
        let runtime: Arc<dyn ContainerRuntime> = Arc::new(docker);
        let settings = HostSettings {
            settle_time: Duration::from_millis(0),
            ..HostSettings::default()
        };
        let host = Arc::new(PluginHost::with_builtins(Some(dir.join("cache"))).unwrap());
        let executor = Executor::new(
            Journal::open(dir.join(journal)).unwrap(),
            runtime.clone(),
            host,
            settings,
        );
        Some(RealApps {
            docker: raw_docker(),
            runtime,
            executor,
            web1: format!("{registry}/deckhand-test/web:1"),
            web2: format!("{registry}/deckhand-test/web:2"),
        })
    }

    /// Both web images in the daemon's store, so that no timed install or
    /// upgrade pulls a layer (Deckhand still asks the registry, as a
    /// `docker pull` would; compose and `docker run` do not).
    async fn pull_web_images(&self) {
        let (tx, _rx) =
            tokio::sync::watch::channel(deckhand::runtime::PullTracker::new().progress());
        for image in [&self.web1, &self.web2] {
            self.runtime
                .pull_image(image, &tx, &CancellationToken::new())
                .await
                .unwrap();
        }
    }

    /// Run a Deckhand job to its end; it must succeed.
    async fn run_job(&self, workflow: &str, target: &str, params: serde_json::Value) {
        let job = self
            .executor
            .submit(JobRequest::new(workflow, target.to_owned(), params))
            .await
            .unwrap();
        let done = self.executor.wait(&job.id).await.unwrap();
        assert_eq!(
            done.state,
            JobState::Succeeded,
            "{workflow} {target}: {:?}",
            done.error
        );
    }

    async fn create_network(&self, name: &str) {
        self.docker
            .create_network(bollard::models::NetworkCreateRequest {
                name: name.to_owned(),
                driver: Some("bridge".into()),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    /// Remove containers (stopping them), then volumes, then a network;
    /// missing ones are fine.
    async fn remove(&self, containers: &[String], volumes: &[String], network: Option<&str>) {
        use bollard::query_parameters::RemoveContainerOptionsBuilder;
        for c in containers {
            let options = RemoveContainerOptionsBuilder::default().force(true).build();
            let _ = self.docker.remove_container(c, Some(options)).await;
        }
        for v in volumes {
            let _ = self
                .docker
                .remove_volume(v, None::<bollard::query_parameters::RemoveVolumeOptions>)
                .await;
        }
        if let Some(n) = network {
            let _ = self.docker.remove_network(n).await;
        }
    }
}

/// The elapsed times' median and range, in ms.
fn ms_spread(v: &[Duration]) -> String {
    let mut v = v.to_vec();
    v.sort();
    format!(
        "{:.0}–{:.0} ms",
        v[0].as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3
    )
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Figure 12: install a web server with a published port, a named volume
/// and a user-defined network until the port answers HTTP: through
/// Deckhand (in-process), against `docker run -d -p … -v … --network …`
/// (the docker CLI) and against the same create + start made directly
/// with bollard. `RUNS` of each, interleaved.
async fn install_port_volume(dir: &std::path::Path) {
    let Some(env) = RealApps::connect(dir, "ports.sqlite", "12. install with port + volume").await
    else {
        return;
    };
    let pid = std::process::id();
    let net = format!("deckhand-bench-{pid}");
    env.create_network(&net).await;
    env.pull_web_images().await;
    let (mut through, mut cli, mut direct) = (Vec::new(), Vec::new(), Vec::new());
    let limit = Duration::from_secs(30);
    for i in 0..RUNS {
        for kind in 0..3 {
            let port = free_port();
            let publish = format!("127.0.0.1:{port}:80");
            let (container, volume) = match (i + kind) % 3 {
                0 => {
                    let target = format!("bench-pv-{i}-{pid}");
                    let params = serde_json::json!({
                        "image": env.web1,
                        "ports": [publish],
                        "volumes": ["data:/www-data"],
                        "networks": [net],
                    });
                    let t = Instant::now();
                    env.run_job("install", &target, params).await;
                    let answer = until_answers(port, limit).await;
                    let took = t.elapsed();
                    assert_eq!(answer.as_deref(), Some("1"), "Deckhand's web:1 on {port}");
                    through.push(took);
                    let volume = deckhand::ownership::volume_docker_name(&target, None, "data");
                    (format!("deckhand-{target}"), volume)
                }
                1 => {
                    let name = format!("bench-run-{i}-{pid}");
                    let volume = format!("{name}-data");
                    let t = Instant::now();
                    let out = tokio::process::Command::new("docker")
                        .args(["run", "-d", "--name", &name, "-p", &publish])
                        .args(["-v", &format!("{volume}:/www-data"), "--network", &net])
                        .arg(&env.web1)
                        .output()
                        .await
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "docker run: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let answer = until_answers(port, limit).await;
                    let took = t.elapsed();
                    assert_eq!(answer.as_deref(), Some("1"), "docker run's web:1 on {port}");
                    cli.push(took);
                    (name, volume)
                }
                2 => {
                    use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
                    let name = format!("bench-direct-{i}-{pid}");
                    let volume = format!("{name}-data");
                    // What `docker run` sends: -p as a port binding, -v as a bind entry
                    // (the daemon creates the named volume), --network as the mode.
                    let body = ContainerCreateBody {
                        image: Some(env.web1.clone()),
                        exposed_ports: Some(vec!["80/tcp".into()]),
                        host_config: Some(HostConfig {
                            network_mode: Some(net.clone()),
                            port_bindings: Some(std::collections::HashMap::from([(
                                "80/tcp".to_owned(),
                                Some(vec![PortBinding {
                                    host_ip: Some("127.0.0.1".into()),
                                    host_port: Some(port.to_string()),
                                }]),
                            )])),
                            binds: Some(vec![format!("{volume}:/www-data")]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    let options =
                        bollard::query_parameters::CreateContainerOptionsBuilder::default()
                            .name(&name)
                            .build();
                    let t = Instant::now();
                    let id = env
                        .docker
                        .create_container(Some(options), body)
                        .await
                        .unwrap()
                        .id;
                    env.docker.start_container(&id, None).await.unwrap();
                    let answer = until_answers(port, limit).await;
                    let took = t.elapsed();
                    assert_eq!(answer.as_deref(), Some("1"), "bollard's web:1 on {port}");
                    direct.push(took);
                    (name, volume)
                }
                _ => unreachable!(),
            };
            env.remove(&[container], &[volume], None).await;
            // The daemon deletes a removed container's files in the background.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    env.remove(&[], &[], Some(&net)).await;
    let (d, c, b) = (
        median(through.clone()),
        median(cli.clone()),
        median(direct.clone()),
    );
    let ratio = |x: Duration, y: Duration| x.as_secs_f64() / y.as_secs_f64();
    row(
        &format!("12. install, port + volume (median of {RUNS})"),
        ms(d),
        Some((ms(c) + " docker run", ratio(d, c))),
    );
    row("", String::new(), Some((ms(b) + " bollard", ratio(d, b))));
    row(
        "   docker's create + start via bollard",
        ms(b),
        Some((ms(c) + " docker run", ratio(b, c))),
    );
    row(
        "   spread Deckhand / docker run / bollard",
        format!(
            "{} / {} / {}",
            ms_spread(&through),
            ms_spread(&cli),
            ms_spread(&direct)
        ),
        None,
    );
}

/// One probe of a poller: when it was sent and when it ended (seconds since
/// the epoch), and what it got: the body of a `200` answer, or `None`.
#[derive(Debug, Clone)]
struct Sample {
    start: f64,
    end: f64,
    answer: Option<String>,
}

/// How a poller reaches the app.
#[derive(Clone)]
enum Probe {
    /// A fixed published port on the host's loopback.
    Port(u16),
    /// The published port of the container of this name, asked of the
    /// daemon for each probe: a client that finds the app by its name.
    Named(String),
    /// From inside the network namespace of the container whose process is
    /// `pid`, on the app's network: resolve `alias` through Docker's DNS
    /// (127.0.0.11) for each probe and send the request to the first
    /// address, port 80, as a client in the network without a DNS cache.
    Alias { pid: i64, alias: String },
}

/// How often the host-side poller of figure 13 sends a request.
const HOST_PROBE_EVERY: Duration = Duration::from_millis(5);
/// How often the in-network poller does: less often, since busybox httpd
/// forks for each request and queues at most 9 connections: on 2 cores,
/// 200 more requests a second would be load the upgrade itself feels.
const ALIAS_PROBE_EVERY: Duration = Duration::from_millis(20);

/// How long the pollers of figure 13 watch the app before each upgrade.
const QUIET: Duration = Duration::from_secs(2);

/// A request's time limit: longer than the kernel's 1 s before it sends a
/// lost SYN again, so such a request counts as slow, not failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /` at `addr`: the body (trimmed) of a `200` answer; `None` for
/// anything else (refused, reset, closed by docker-proxy without an
/// answer).
async fn http_probe(addr: std::net::SocketAddr) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    (head.split(' ').nth(1) == Some("200")).then(|| body.trim().to_owned())
}

/// The first IPv4 address Docker's embedded DNS gives for `name`: one `A`
/// query over UDP to 127.0.0.11 (from a thread inside a container's
/// network namespace).
async fn resolve_in_network(name: &str) -> Option<std::net::Ipv4Addr> {
    let sock = tokio::net::UdpSocket::bind("0.0.0.0:0").await.ok()?;
    sock.connect("127.0.0.11:53").await.ok()?;
    let id: u16 = rand::random();
    let mut query = id.to_be_bytes().to_vec();
    // Recursion desired, one question, no other records.
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]); // end of name, type A, class IN
    sock.send(&query).await.ok()?;
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).await.ok()?;
    let r = &buf[..n];
    let u16_at = |i: usize| Some(u16::from_be_bytes([*r.get(i)?, *r.get(i + 1)?]));
    if u16_at(0)? != id {
        return None;
    }
    // Past a (possibly compressed) name.
    let skip_name = |mut i: usize| loop {
        let len = *r.get(i)?;
        if len == 0 {
            return Some(i + 1);
        }
        if len & 0xc0 == 0xc0 {
            return Some(i + 2);
        }
        i += 1 + len as usize;
    };
    let mut i = 12;
    for _ in 0..u16_at(4)? {
        i = skip_name(i)? + 4;
    }
    for _ in 0..u16_at(6)? {
        i = skip_name(i)?;
        let (kind, len) = (u16_at(i)?, u16_at(i + 8)? as usize);
        i += 10;
        if kind == 1 && len == 4 {
            let a = r.get(i..i + 4)?;
            return Some(std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]));
        }
        i += len;
    }
    None
}

/// Probes the app over HTTP at a fixed interval, each probe on its own
/// (open loop: one that hangs does not delay the next), on a thread and
/// runtime of its own.
struct Poller {
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// In the order the probes ended.
    samples: Arc<std::sync::Mutex<Vec<Sample>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Poller {
    /// `Err` when the thread cannot enter the network namespace of
    /// [`Probe::Alias`] (that needs `CAP_SYS_ADMIN`).
    fn start(probe: Probe, every: Duration) -> Result<Poller, String> {
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let samples = Arc::new(std::sync::Mutex::new(Vec::<Sample>::new()));
        let (s, seen) = (stop.clone(), samples.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            if let Probe::Alias { pid, .. } = &probe {
                use std::os::fd::AsRawFd;
                // Only this thread moves: sockets it creates live in the
                // container's network namespace.
                let entered = std::fs::File::open(format!("/proc/{pid}/ns/net"))
                    .map_err(|e| e.to_string())
                    .and_then(|ns| {
                        // SAFETY: setns on a namespace file descriptor we own.
                        match unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } {
                            0 => Ok(()),
                            _ => Err(std::io::Error::last_os_error().to_string()),
                        }
                    });
                if let Err(e) = entered {
                    let _ = ready_tx.send(Err(format!("enter the network namespace: {e}")));
                    return;
                }
            }
            let _ = ready_tx.send(Ok(()));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let docker = Arc::new(raw_docker());
                let mut probes = tokio::task::JoinSet::new();
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                while !s.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let (probe, docker, seen) = (probe.clone(), docker.clone(), seen.clone());
                    probes.spawn(async move {
                        let start = epoch_now();
                        let answer = tokio::time::timeout(PROBE_TIMEOUT, async {
                            let addr = match &probe {
                                Probe::Port(p) => std::net::SocketAddr::from(([127, 0, 0, 1], *p)),
                                Probe::Named(name) => {
                                    let c = docker.inspect_container(name, None).await.ok()?;
                                    let ports = c.network_settings?.ports?;
                                    let bound = ports.get("80/tcp")?.as_ref()?.first()?.clone();
                                    let port: u16 = bound.host_port?.parse().ok()?;
                                    std::net::SocketAddr::from(([127, 0, 0, 1], port))
                                }
                                Probe::Alias { alias, .. } => {
                                    (resolve_in_network(alias).await?, 80).into()
                                }
                            };
                            http_probe(addr).await
                        })
                        .await
                        .ok()
                        .flatten();
                        seen.lock().unwrap().push(Sample {
                            start,
                            end: epoch_now(),
                            answer,
                        });
                    });
                    while probes.try_join_next().is_some() {}
                }
                while probes.join_next().await.is_some() {}
            });
        });
        ready_rx.recv().unwrap()?;
        Ok(Poller {
            stop,
            samples,
            thread,
        })
    }

    /// The answer of the probe that ended last.
    fn last(&self) -> Option<String> {
        self.samples
            .lock()
            .unwrap()
            .last()
            .and_then(|s| s.answer.clone())
    }

    /// Stop, once the probes in flight have ended.
    fn finish(self) -> Vec<Sample> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap();
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

/// Until every poller's last answer is `version` (at most 30 s).
async fn until_all_see(pollers: &[&Poller], version: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let last: Vec<Option<String>> = pollers.iter().map(|p| p.last()).collect();
        if last.iter().all(|l| l.as_deref() == Some(version)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waiting for version {version}: the pollers' last answers {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An upgrade as one poller saw it.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// The longest time the app did not answer: between two answers
    /// received, the later one after the upgrade began (seconds). With
    /// nothing lost it is the probe interval.
    gap: f64,
    /// Requests sent after the upgrade began that got no answer (in 2 s).
    failed: usize,
    /// The slowest answer to a request sent after the upgrade began (s).
    slowest: f64,
    /// The median interval between answers in the 2 s before (s).
    period: f64,
    /// The longest interval between answers in the 2 s before: what the
    /// machine alone does, with no upgrade (s).
    quiet: f64,
}

/// What `samples` say about an upgrade that began at `t0`. Checks that
/// the first request sent was answered by version 1 and the last by 2.
fn seen(mut samples: Vec<Sample>, t0: f64) -> Seen {
    samples.sort_by(|a, b| a.start.total_cmp(&b.start));
    let answered = |s: Option<&Sample>| s.and_then(|s| s.answer.clone());
    let first = samples.iter().find(|s| s.answer.is_some());
    assert_eq!(answered(first).as_deref(), Some("1"), "{samples:?}");
    assert_eq!(
        answered(samples.last()).as_deref(),
        Some("2"),
        "{samples:?}"
    );
    let mut ends: Vec<f64> = samples
        .iter()
        .filter(|s| s.answer.is_some())
        .map(|s| s.end)
        .collect();
    ends.sort_by(f64::total_cmp);
    let (mut gap, mut before) = (0.0f64, Vec::new());
    for w in ends.windows(2) {
        if w[1] > t0 {
            gap = gap.max(w[1] - w[0]);
        } else if w[1] > t0 - QUIET.as_secs_f64() {
            before.push(w[1] - w[0]);
        }
    }
    before.sort_by(f64::total_cmp);
    let after = || samples.iter().filter(|s| s.start > t0);
    Seen {
        gap,
        failed: after().filter(|s| s.answer.is_none()).count(),
        slowest: after()
            .filter(|s| s.answer.is_some())
            .map(|s| s.end - s.start)
            .fold(0.0, f64::max),
        period: before[before.len() / 2],
        quiet: before[before.len() - 1],
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Upgrade {
    Compose,
    StopFirst,
    StartFirst,
}

/// One upgrade of figure 13.
struct Downtime {
    /// On the host: the fixed published port (compose, stop-first), or for
    /// start-first the daemon-picked port of `deckhand-<target>`.
    host: Seen,
    /// Through the network alias `web`, from inside the network; `None`
    /// when this process may not enter a network namespace.
    alias: Option<Seen>,
    /// The upgrade command or job, start to end.
    took: Duration,
}

/// The compose file of figure 13: the same image, port, volume, network
/// (with the alias `web`, compose's own for the service) and health check
/// as the Deckhand target.
const COMPOSE_FILE: &str = r#"version: "2.4"
services:
  web:
    image: ${WEB_IMAGE}
    ports: ["127.0.0.1:${WEB_PORT}:80"]
    volumes: ["data:/www-data"]
    networks: [net]
    healthcheck:
      test: ["CMD-SHELL", "nc -w 1 127.0.0.1 80 </dev/null"]
      interval: 1s
    stop_grace_period: 10s
volumes:
  data: {}
networks:
  net:
    external: true
    name: ${WEB_NET}
"#;

/// Whether `docker-compose` runs (figures 13 and 14 need it); if not, a
/// row saying so, named `figure`.
fn compose_installed(figure: &str) -> bool {
    let ok = std::process::Command::new("docker-compose")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        row(figure, "no docker-compose".into(), None);
    }
    ok
}

/// A directory of its own under `dir` for compose project `project`, with
/// `file` as its `docker-compose.yml`: the `dir` argument of [`compose`].
fn compose_project(dir: &std::path::Path, project: &str, file: &str) -> std::path::PathBuf {
    let project_dir = dir.join(project);
    std::fs::create_dir_all(&project_dir).unwrap();
    std::fs::write(project_dir.join("docker-compose.yml"), file).unwrap();
    project_dir
}

/// Run `docker-compose <args>` for project `project` with the file in
/// `dir`; it must succeed.
async fn compose(dir: &std::path::Path, project: &str, env: &[(&str, String)], args: &[&str]) {
    let out = tokio::process::Command::new("docker-compose")
        .arg("-f")
        .arg(dir.join("docker-compose.yml"))
        .args(["-p", project])
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "docker-compose {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl RealApps {
    /// A container on `network` that only sleeps: the in-network poller
    /// runs in its network namespace. Returns its process id.
    async fn start_netns_holder(&self, name: &str, network: &str) -> i64 {
        let body = bollard::models::ContainerCreateBody {
            image: Some(self.web1.clone()),
            cmd: Some(vec!["sleep".into(), "100000".into()]),
            host_config: Some(bollard::models::HostConfig {
                network_mode: Some(network.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = bollard::query_parameters::CreateContainerOptionsBuilder::default()
            .name(name)
            .build();
        let id = self
            .docker
            .create_container(Some(options), body)
            .await
            .unwrap()
            .id;
        self.docker.start_container(&id, None).await.unwrap();
        let c = self.docker.inspect_container(&id, None).await.unwrap();
        c.state.and_then(|s| s.pid).unwrap()
    }

    /// Install web:1 with `how`, start the pollers, upgrade to web:2, and
    /// clean up.
    async fn downtime_run(&self, dir: &std::path::Path, how: Upgrade, i: usize) -> Downtime {
        let pid = std::process::id();
        let tag = match how {
            Upgrade::Compose => "c",
            Upgrade::StopFirst => "s",
            Upgrade::StartFirst => "f",
        };
        let net = format!("deckhand-bench-dt-{pid}-{i}{tag}");
        let holder = format!("deckhand-bench-netns-{pid}-{i}{tag}");
        self.create_network(&net).await;
        self.pull_web_images().await;
        let port = free_port();
        let target = format!("bench-dt-{i}{tag}-{pid}");
        let live = format!("deckhand-{target}");
        let project = format!("deckhandbench{pid}r{i}");
        let compose_dir = match how {
            Upgrade::Compose => compose_project(dir, &project, COMPOSE_FILE),
            _ => dir.join(&project),
        };
        let compose_env = |image: &str| {
            vec![
                ("WEB_IMAGE", image.to_owned()),
                ("WEB_PORT", port.to_string()),
                ("WEB_NET", net.clone()),
            ]
        };
        let host_probe = match how {
            Upgrade::Compose => {
                compose(
                    &compose_dir,
                    &project,
                    &compose_env(&self.web1),
                    &["up", "-d"],
                )
                .await;
                Probe::Port(port)
            }
            Upgrade::StopFirst | Upgrade::StartFirst => {
                // Start-first refuses a fixed host port: the daemon picks one.
                let publish = if how == Upgrade::StartFirst {
                    "127.0.0.1::80".to_owned()
                } else {
                    format!("127.0.0.1:{port}:80")
                };
                let params = serde_json::json!({
                    "image": self.web1,
                    "ports": [publish],
                    "volumes": ["data:/www-data"],
                    "networks": [{"name": net, "aliases": ["web"]}],
                    "health": {"cmd": ["CMD-SHELL", "nc -w 1 127.0.0.1 80 </dev/null"], "interval_s": 1},
                });
                self.run_job("install", &target, params).await;
                if how == Upgrade::StartFirst {
                    Probe::Named(live.clone())
                } else {
                    Probe::Port(port)
                }
            }
        };
        let netns = self.start_netns_holder(&holder, &net).await;
        let host = Poller::start(host_probe, HOST_PROBE_EVERY).unwrap();
        let alias = Poller::start(
            Probe::Alias {
                pid: netns,
                alias: "web".into(),
            },
            ALIAS_PROBE_EVERY,
        )
        .ok();
        let pollers: Vec<&Poller> = std::iter::once(&host).chain(alias.as_ref()).collect();
        until_all_see(&pollers, "1").await;
        // Answers before the upgrade: the probe interval, and what the
        // machine does with no upgrade.
        tokio::time::sleep(QUIET + Duration::from_millis(100)).await;
        let t0 = epoch_now();
        let t = Instant::now();
        match how {
            Upgrade::Compose => {
                compose(
                    &compose_dir,
                    &project,
                    &compose_env(&self.web2),
                    &["up", "-d"],
                )
                .await
            }
            Upgrade::StopFirst => {
                self.run_job("upgrade", &target, serde_json::json!({"image": self.web2}))
                    .await
            }
            Upgrade::StartFirst => {
                self.run_job(
                    "upgrade",
                    &target,
                    serde_json::json!({"image": self.web2, "strategy": "start-first"}),
                )
                .await
            }
        }
        let took = t.elapsed();
        until_all_see(&pollers, "2").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let host = host.finish();
        let alias = alias.map(Poller::finish);
        if std::env::var_os("DECKHAND_BENCH_TRACE").is_some() {
            trace(&format!("{how:?} run {i} host"), &host, t0, took);
            if let Some(alias) = &alias {
                trace(&format!("{how:?} run {i} alias"), alias, t0, took);
            }
        }
        // Clean up.
        if how == Upgrade::Compose {
            compose(
                &compose_dir,
                &project,
                &compose_env(&self.web2),
                &["down", "-v"],
            )
            .await;
        }
        let containers = [
            holder,
            live.clone(),
            format!("{live}-Prev"),
            format!("{live}-Next"),
        ];
        let volumes = [deckhand::ownership::volume_docker_name(
            &target, None, "data",
        )];
        self.remove(&containers, &volumes, Some(&net)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        Downtime {
            host: seen(host, t0),
            alias: alias.map(|a| seen(a, t0)),
            took,
        }
    }
}

/// With `DECKHAND_BENCH_TRACE` set: on stderr, one run as a poller saw it
/// (times in ms after the upgrade began): its longest time without an
/// answer, the requests sent after the upgrade began that got none, and
/// those answered slower than 100 ms.
fn trace(what: &str, samples: &[Sample], t0: f64, took: Duration) {
    let ms = |t: f64| (t - t0) * 1e3;
    let mut ends: Vec<f64> = samples
        .iter()
        .filter(|s| s.answer.is_some())
        .map(|s| s.end)
        .collect();
    ends.sort_by(f64::total_cmp);
    let (from, to) = ends
        .windows(2)
        .filter(|w| w[1] > t0)
        .map(|w| (w[0], w[1]))
        .max_by(|a, b| (a.1 - a.0).total_cmp(&(b.1 - b.0)))
        .unwrap_or((t0, t0));
    let after: Vec<&Sample> = samples.iter().filter(|s| s.start > t0).collect();
    let sent = |v: &[&&Sample]| match (
        v.iter().map(|s| s.start).reduce(f64::min),
        v.iter().map(|s| s.start).reduce(f64::max),
    ) {
        (Some(a), Some(b)) => format!("sent {:+.0}..{:+.0}", ms(a), ms(b)),
        _ => "none".into(),
    };
    let failed: Vec<&&Sample> = after.iter().filter(|s| s.answer.is_none()).collect();
    let slow: Vec<&&Sample> = after
        .iter()
        .filter(|s| s.answer.is_some() && s.end - s.start > 0.1)
        .collect();
    let slowest = slow.iter().map(|s| s.end - s.start).fold(0.0, f64::max);
    eprintln!(
        "{what}: took {:.0}; no answer {:+.0}..{:+.0} ({:.0}); of {} requests {} unanswered ({}), {} slower than 100 ({}, slowest {:.0})",
        took.as_secs_f64() * 1e3,
        ms(from),
        ms(to),
        (to - from) * 1e3,
        after.len(),
        failed.len(),
        sent(&failed),
        slow.len(),
        sent(&slow),
        slowest * 1e3,
    );
}

/// Figure 13: the downtime of an upgrade web:1 → web:2 of the app of
/// figure 12 (with a health check): Deckhand stop-first and start-first
/// against `docker-compose up -d` recreating the same service,
/// `DOWNTIME_RUNS` of each, interleaved. Two pollers send `GET /`, each
/// request on its own (2 s limit): one on the host every 5 ms, to the fixed
/// published port (for start-first, which cannot have one, to the
/// daemon-picked port of the container named `deckhand-<target>`, asked of
/// the daemon for each request), and one inside the app's network every
/// 20 ms (a thread in a sleeping container's network namespace) through
/// the alias `web`, resolved by Docker's DNS for each request. The
/// downtime is the longest time between two answers received.
async fn upgrade_downtime(dir: &std::path::Path) {
    let figure = "13. upgrade downtime";
    if !compose_installed(figure) {
        return;
    }
    let Some(env) = RealApps::connect(dir, "downtime.sqlite", figure).await else {
        return;
    };
    let kinds = [Upgrade::Compose, Upgrade::StopFirst, Upgrade::StartFirst];
    let mut runs: Vec<Vec<Downtime>> = vec![Vec::new(), Vec::new(), Vec::new()];
    for i in 0..DOWNTIME_RUNS {
        for k in 0..kinds.len() {
            let kind = (i + k) % kinds.len();
            runs[kind].push(env.downtime_run(dir, kinds[kind], i).await);
        }
    }
    let n = DOWNTIME_RUNS;
    // Median and max over the runs of one kind.
    let stat = |kind: usize, f: &dyn Fn(&Downtime) -> Option<f64>| {
        let mut v: Vec<f64> = runs[kind].iter().filter_map(f).collect();
        v.sort_by(f64::total_cmp);
        (!v.is_empty()).then(|| (v[v.len() / 2], v[v.len() - 1]))
    };
    let show = |s: Option<(f64, f64)>| match s {
        Some((m, max)) => format!("{:.0} ms (max {:.0})", m * 1e3, max * 1e3),
        None => "no netns (root?)".into(),
    };
    let vs = |s: Option<(f64, f64)>, base: Option<(f64, f64)>| {
        s.zip(base)
            .map(|(s, b)| (format!("{:.0} ms compose", b.0 * 1e3), s.0 / b.0))
    };
    let host = |kind: usize| stat(kind, &|d| Some(d.host.gap));
    let alias = |kind: usize| stat(kind, &|d| d.alias.map(|a| a.gap));
    row(
        &format!("13. downtime, host port: compose (median of {n})"),
        show(host(0)),
        None,
    );
    row(
        "13. downtime, host port: Deckhand stop-first",
        show(host(1)),
        vs(host(1), host(0)),
    );
    row(
        "   start-first, by name (daemon-picked port)",
        show(host(2)),
        vs(host(2), host(0)),
    );
    row("13. downtime, network alias: compose", show(alias(0)), None);
    row(
        "13. downtime, network alias: stop-first",
        show(alias(1)),
        vs(alias(1), alias(0)),
    );
    row(
        "13. downtime, network alias: start-first",
        show(alias(2)),
        vs(alias(2), alias(0)),
    );
    let total = |kind: usize, f: &dyn Fn(&Downtime) -> Option<usize>| -> String {
        runs[kind].iter().filter_map(f).sum::<usize>().to_string()
    };
    let slowest = |kind: usize, f: &dyn Fn(&Downtime) -> Option<f64>| {
        stat(kind, f).map_or("-".into(), |s| format!("{:.0}", s.1 * 1e3))
    };
    row(
        "   unanswered, host: compose / stop / start",
        format!(
            "{} / {} / {}",
            total(0, &|d| Some(d.host.failed)),
            total(1, &|d| Some(d.host.failed)),
            total(2, &|d| Some(d.host.failed))
        ),
        None,
    );
    row(
        "   unanswered, alias: compose / stop / start",
        format!(
            "{} / {} / {}",
            total(0, &|d| d.alias.map(|a| a.failed)),
            total(1, &|d| d.alias.map(|a| a.failed)),
            total(2, &|d| d.alias.map(|a| a.failed))
        ),
        None,
    );
    row(
        "   slowest answer, host (ms, max of runs)",
        format!(
            "{} / {} / {}",
            slowest(0, &|d| Some(d.host.slowest)),
            slowest(1, &|d| Some(d.host.slowest)),
            slowest(2, &|d| Some(d.host.slowest))
        ),
        None,
    );
    row(
        "   slowest answer, alias (ms, max of runs)",
        format!(
            "{} / {} / {}",
            slowest(0, &|d| d.alias.map(|a| a.slowest)),
            slowest(1, &|d| d.alias.map(|a| a.slowest)),
            slowest(2, &|d| d.alias.map(|a| a.slowest))
        ),
        None,
    );
    let took = |kind: usize| median(runs[kind].iter().map(|d| d.took).collect());
    row(
        "   upgrade took, compose / stop / start",
        format!(
            "{:.2} / {:.2} / {:.2} s",
            took(0).as_secs_f64(),
            took(1).as_secs_f64(),
            took(2).as_secs_f64()
        ),
        None,
    );
    let period = |f: &dyn Fn(&Downtime) -> Option<f64>| {
        let mut v: Vec<f64> = runs.iter().flatten().filter_map(f).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2)
            .map_or("-".into(), |p| format!("{:.1}", p * 1e3))
    };
    let stat_all = |f: &dyn Fn(&Downtime) -> Option<f64>| {
        let mut v: Vec<f64> = runs.iter().flatten().filter_map(f).collect();
        v.sort_by(f64::total_cmp);
        (!v.is_empty()).then(|| (v[v.len() / 2], v[v.len() - 1]))
    };
    row(
        "   no upgrade (2 s before each), host",
        show(stat_all(&|d| Some(d.host.quiet))),
        None,
    );
    row(
        "   no upgrade (2 s before each), alias",
        show(stat_all(&|d| d.alias.map(|a| a.quiet))),
        None,
    );
    row(
        "   answer interval before, host / alias",
        format!(
            "{} / {} ms",
            period(&|d| Some(d.host.period)),
            period(&|d| d.alias.map(|a| a.period))
        ),
        None,
    );
}

// ---- Figure 14: a stack of 5 services, Deckhand against docker-compose ----

/// How many times figure 14 installs and upgrades the stack with each tool.
const STACK_RUNS: usize = 7;

/// The stack of figure 14, the same file for both tools: `db` (a volume
/// and a health check), `web` (the published port) once `db` is healthy,
/// and three services on their own. Every image is web:1 (`BASE_IMAGE`)
/// except `web`'s (`WEB_IMAGE`), the one the upgrade changes. The check:
/// this busybox's `nc` has no `-z`, and its `wget` crashes.
const STACK_FILE: &str = r#"version: "2.4"
services:
  db:
    image: ${BASE_IMAGE}
    volumes: ["data:/data"]
    healthcheck:
      test: ["CMD-SHELL", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 127.0.0.1 80 | grep -q OK"]
      interval: 1s
      retries: 30
  web:
    image: ${WEB_IMAGE}
    ports: ["127.0.0.1:${WEB_PORT}:80"]
    depends_on:
      db: {condition: service_healthy}
  cache:
    image: ${BASE_IMAGE}
  queue:
    image: ${BASE_IMAGE}
  worker:
    image: ${BASE_IMAGE}
volumes:
  data: {}
"#;

/// The services of [`STACK_FILE`].
const STACK_SERVICES: [&str; 5] = ["cache", "db", "queue", "web", "worker"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum StackTool {
    Deckhand,
    Compose,
}

/// One stack of figure 14: its target (Deckhand) or project (compose).
struct StackUnder {
    tool: StackTool,
    /// The target, or the compose project.
    name: String,
    /// The compose project's directory (compose only).
    project_dir: std::path::PathBuf,
    port: u16,
}

/// One install and upgrade of figure 14, each from its start until the
/// command or job returned, and until the stack was ready (see
/// [`RealApps::until_stack_ready`]).
struct StackRun {
    install_returned: Duration,
    install_ready: Duration,
    upgrade_returned: Duration,
    upgrade_ready: Duration,
    /// The services whose container the upgrade replaced.
    replaced: Vec<&'static str>,
}

impl StackUnder {
    fn new(dir: &std::path::Path, tool: StackTool, i: usize) -> StackUnder {
        let pid = std::process::id();
        let name = match tool {
            StackTool::Deckhand => format!("bench-st-{i}-{pid}"),
            // compose 1.29 keeps only `[-_a-z0-9]` of a project name.
            StackTool::Compose => format!("deckhandstack{pid}r{i}"),
        };
        let project_dir = match tool {
            StackTool::Compose => compose_project(dir, &name, STACK_FILE),
            StackTool::Deckhand => dir.to_owned(),
        };
        StackUnder {
            tool,
            name,
            project_dir,
            port: free_port(),
        }
    }

    /// The container that runs `service` (compose 1.29 numbers them).
    fn container(&self, service: &str) -> String {
        match self.tool {
            StackTool::Deckhand => format!("deckhand-{}-{service}", self.name),
            StackTool::Compose => format!("{}_{service}_1", self.name),
        }
    }

    fn vars(&self, apps: &RealApps, web: &str) -> Vec<(&'static str, String)> {
        vec![
            ("BASE_IMAGE", apps.web1.clone()),
            ("WEB_IMAGE", web.to_owned()),
            ("WEB_PORT", self.port.to_string()),
        ]
    }

    /// `install` or `upgrade` to the stack with `web` as web's image: a
    /// Deckhand job to its end, or `docker-compose up -d`.
    async fn up(&self, apps: &RealApps, workflow: &str, web: &str) {
        let vars = self.vars(apps, web);
        match self.tool {
            StackTool::Deckhand => {
                let env: serde_json::Map<String, serde_json::Value> = vars
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.into()))
                    .collect();
                let params = serde_json::json!({"compose": STACK_FILE, "env": env});
                apps.run_job(workflow, &self.name, params).await
            }
            StackTool::Compose => {
                compose(&self.project_dir, &self.name, &vars, &["up", "-d"]).await
            }
        }
    }

    /// Remove everything: Deckhand's teardown with its volumes, or
    /// `docker-compose down -v`; then whatever either left.
    async fn down(&self, apps: &RealApps) {
        let (volume, network) = match self.tool {
            StackTool::Deckhand => {
                let params = serde_json::json!({"remove_volumes": true});
                apps.run_job("teardown", &self.name, params).await;
                (
                    format!("deckhand-{}-V-data", self.name),
                    format!("deckhand-{}-N-default", self.name),
                )
            }
            StackTool::Compose => {
                let vars = self.vars(apps, &apps.web2);
                compose(&self.project_dir, &self.name, &vars, &["down", "-v"]).await;
                (
                    format!("{}_data", self.name),
                    format!("{}_default", self.name),
                )
            }
        };
        let containers: Vec<String> = STACK_SERVICES
            .iter()
            .flat_map(|s| {
                let c = self.container(s);
                [format!("{c}-Next"), format!("{c}-Prev"), c]
            })
            .collect();
        apps.remove(&containers, &[volume], Some(&network)).await;
        // The daemon deletes a removed container's files in the background.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl RealApps {
    /// Poll the stack's containers with `docker inspect` every 20 ms, all
    /// five in turn, until each runs, `db` is healthy and `web` runs the
    /// image `web` (at most 60 s): each service's container id.
    async fn until_stack_ready(
        &self,
        stack: &StackUnder,
        web: &str,
    ) -> std::collections::BTreeMap<&'static str, String> {
        let web_id = self.docker.inspect_image(web).await.unwrap().id.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut ids = std::collections::BTreeMap::new();
            let mut waiting = None;
            for service in STACK_SERVICES {
                let c = self
                    .docker
                    .inspect_container(&stack.container(service), None)
                    .await
                    .ok();
                let state = c.as_ref().and_then(|c| c.state.as_ref());
                let running = state.and_then(|s| s.running) == Some(true);
                let healthy = service != "db"
                    || state.and_then(|s| s.health.as_ref()).and_then(|h| h.status)
                        == Some(bollard::models::HealthStatusEnum::HEALTHY);
                let image_ok =
                    service != "web" || c.as_ref().and_then(|c| c.image.as_ref()) == Some(&web_id);
                match c.and_then(|c| c.id) {
                    Some(id) if running && healthy && image_ok => {
                        ids.insert(service, id);
                    }
                    _ => {
                        waiting = Some(service);
                        break;
                    }
                }
            }
            let Some(service) = waiting else {
                return ids;
            };
            assert!(
                Instant::now() < deadline,
                "{:?} {}: `{service}` not ready in 60 s",
                stack.tool,
                stack.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Install the stack with `tool` (web:1), upgrade web to web:2, and
    /// clean up.
    async fn stack_run(&self, dir: &std::path::Path, tool: StackTool, i: usize) -> StackRun {
        // Both images present, so that no timed step downloads a layer
        // (Deckhand removes at commit only images it pulled itself).
        self.pull_web_images().await;
        let stack = StackUnder::new(dir, tool, i);
        let t = Instant::now();
        stack.up(self, "install", &self.web1).await;
        let install_returned = t.elapsed();
        let before = self.until_stack_ready(&stack, &self.web1).await;
        let install_ready = t.elapsed();
        let answer = until_answers(stack.port, Duration::from_secs(10)).await;
        assert_eq!(answer.as_deref(), Some("1"), "{tool:?}: web:1");
        // Again: tests running beside the benchmark may remove web:2.
        self.pull_web_images().await;
        let t = Instant::now();
        stack.up(self, "upgrade", &self.web2).await;
        let upgrade_returned = t.elapsed();
        let after = self.until_stack_ready(&stack, &self.web2).await;
        let upgrade_ready = t.elapsed();
        let answer = until_answers(stack.port, Duration::from_secs(10)).await;
        assert_eq!(answer.as_deref(), Some("2"), "{tool:?}: web:2");
        let replaced: Vec<&'static str> = STACK_SERVICES
            .into_iter()
            .filter(|s| before[s] != after[s])
            .collect();
        if tool == StackTool::Deckhand {
            assert_eq!(
                replaced,
                ["web"],
                "Deckhand replaces only the changed service"
            );
        }
        stack.down(self).await;
        StackRun {
            install_returned,
            install_ready,
            upgrade_returned,
            upgrade_ready,
            replaced,
        }
    }
}

/// Figure 14: a stack of 5 services (`STACK_FILE`) installed from nothing
/// and then upgraded with one service's image changed (web:1 → web:2):
/// through Deckhand (in-process, the same file and variables as params)
/// against `docker-compose up -d`, `STACK_RUNS` of each, interleaved. Each
/// time runs until the job or command returned and `docker inspect` of
/// every container (polled the same way for both) shows it running, `db`
/// healthy and `web` on its new image; and the containers the upgrade
/// replaced are counted.
async fn stack_vs_compose(dir: &std::path::Path) {
    let figure = "14. stack of 5 services";
    if !compose_installed(figure) {
        return;
    }
    let Some(env) = RealApps::connect(dir, "stacks.sqlite", figure).await else {
        return;
    };
    let tools = [StackTool::Deckhand, StackTool::Compose];
    let mut runs: Vec<Vec<StackRun>> = vec![Vec::new(), Vec::new()];
    // What `docker-compose version` takes: the start-up (Python, its
    // imports) in each of compose's times.
    let mut startup = Vec::new();
    for i in 0..STACK_RUNS {
        for k in 0..tools.len() {
            let tool = (i + k) % tools.len();
            runs[tool].push(env.stack_run(dir, tools[tool], i).await);
        }
        let t = Instant::now();
        assert!(compose_installed(figure));
        startup.push(t.elapsed());
    }
    let n = STACK_RUNS;
    let times = |tool: usize, f: fn(&StackRun) -> Duration| -> Vec<Duration> {
        runs[tool].iter().map(f).collect()
    };
    let ratio = |x: Duration, y: Duration| x.as_secs_f64() / y.as_secs_f64();
    let vs = |what: &str, f: fn(&StackRun) -> Duration| {
        let (d, c) = (median(times(0, f)), median(times(1, f)));
        row(what, ms(d), Some((ms(c) + " compose", ratio(d, c))));
    };
    let spread = |what: &str, f: fn(&StackRun) -> Duration| {
        row(
            what,
            format!("{} / {}", ms_spread(&times(0, f)), ms_spread(&times(1, f))),
            None,
        );
    };
    vs(
        &format!("14. stack install, 5 services (median of {n})"),
        |r| r.install_ready,
    );
    vs("   install returned (job / up -d)", |r| r.install_returned);
    vs("14. stack upgrade, web:1 → web:2", |r| r.upgrade_ready);
    vs("   upgrade returned (job / up -d)", |r| r.upgrade_returned);
    // How many containers each upgrade replaced (which services), and in
    // how many of the runs.
    let replaced = |tool: usize| {
        let mut counts = std::collections::BTreeMap::<(usize, String), usize>::new();
        for r in &runs[tool] {
            let which = if r.replaced.is_empty() {
                "none".to_owned()
            } else {
                r.replaced.join(", ")
            };
            *counts.entry((r.replaced.len(), which)).or_default() += 1;
        }
        let each = counts
            .iter()
            .map(|((n, which), k)| format!("{n} ({which}) ×{k}"));
        each.collect::<Vec<_>>().join(", ")
    };
    row(
        "   replaced per upgrade, Deckhand / compose",
        format!("{} / {}", replaced(0), replaced(1)),
        None,
    );
    row(
        "   docker-compose start-up (`version`)",
        ms(median(startup)),
        None,
    );
    spread("   spread install, Deckhand / compose", |r| r.install_ready);
    spread("   spread upgrade, Deckhand / compose", |r| r.upgrade_ready);
}

#[tokio::main]
async fn main() {
    let dir =
        tempfile::tempdir_in(std::env::var("DECKHAND_BENCH_DIR").unwrap_or_else(|_| ".".into()))
            .unwrap();
    if std::env::var_os("DECKHAND_BENCH_CHILD").is_none() {
        println!(
            "Deckhand benchmarks — {} cores; journal in {}",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            dir.path().display()
        );
    }
    // `cargo bench -p deckhand --bench deckhand -- 2 4` runs figures 2 and 4
    // only; no figure numbers runs them all. (cargo adds `--bench`.)
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |figure: &str| chosen.is_empty() || chosen.iter().any(|c| c == figure);
    if wanted("1") {
        durable_step(dir.path()).await;
    }
    if wanted("2") {
        throughput(dir.path()).await;
    }
    if wanted("3") {
        plugin_costs(dir.path()).await;
    }
    if wanted("4") {
        real_install(dir.path()).await;
    }
    if wanted("5") {
        recovery(dir.path()).await;
    }
    if wanted("6") {
        replay_speed(dir.path()).await;
    }
    if wanted("9") {
        rollback_scaling(dir.path()).await;
    }
    if wanted("10") {
        idle_connections(dir.path()).await;
    }
    if wanted("11") {
        load_test(dir.path()).await;
    }
    if wanted("12") {
        install_port_volume(dir.path()).await;
    }
    if wanted("13") {
        upgrade_downtime(dir.path()).await;
    }
    if wanted("14") {
        stack_vs_compose(dir.path()).await;
    }
    if wanted("7") || wanted("8") {
        if chosen.iter().all(|c| c == "7" || c == "8") && !chosen.is_empty() {
            memory_and_scaling(dir.path()).await;
        } else {
            // A fresh process, so the resident memory is the engine's alone
            // and not what the figures before it left allocated.
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["7", "8"])
                .env("DECKHAND_BENCH_DIR", dir.path())
                .env("DECKHAND_BENCH_CHILD", "1")
                .status()
                .unwrap();
            assert!(status.success(), "figures 7 and 8: {status}");
        }
    }
}
