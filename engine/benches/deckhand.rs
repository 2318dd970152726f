//! Deckhand's benchmarks: each figure beside a baseline measured in the same
//! run, and their ratio. Run with `bash scripts/bench.sh` (which starts the
//! Docker test environment for the real-install figure) or
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
