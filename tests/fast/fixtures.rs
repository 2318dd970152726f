//! Journal fixtures (`journal-fixtures/`): recorded from real runs by the
//! ignored test `generate_journal_fixtures` (run it with
//! `cargo test --test e2e generate_journal_fixtures -- --ignored`), then
//! loaded by the tests below: import, recover on the in-memory runtime,
//! replay with no divergence, and round-trip byte for byte.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use deckhand::journal::{Event, JobFilter, JobState, Journal};
use deckhand::plugin::PluginHost;
use deckhand::runtime::MemoryRuntime;

use crate::harness::*;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../journal-fixtures")
}

/// Every fixture: (file, the state each of its jobs ends in after recovery).
const FIXTURES: &[(&str, &[JobState])] = &[
    ("clean-install.jsonl", &[JobState::Succeeded]),
    ("upgrade.jsonl", &[JobState::Succeeded, JobState::Succeeded]),
    (
        "upgrade-cancelled-mid-pull.jsonl",
        &[JobState::Succeeded, JobState::Cancelled],
    ),
    ("crash-after-intent.jsonl", &[JobState::RolledBack]),
    (
        "crash-during-commit.jsonl",
        &[JobState::Succeeded, JobState::Succeeded],
    ),
    (
        "failed-health-check.jsonl",
        &[JobState::Succeeded, JobState::RolledBack],
    ),
    (
        "plugin-trap.jsonl",
        &[JobState::Succeeded, JobState::RolledBack],
    ),
    ("torn-last-record.jsonl", &[JobState::RolledBack]),
    (
        "real-app.jsonl",
        &[
            JobState::Succeeded,
            JobState::Succeeded,
            JobState::Succeeded,
        ],
    ),
    (
        "real-app-crash-during-ensure-volume.jsonl",
        &[JobState::Succeeded, JobState::RolledBack],
    ),
    (
        "stack.jsonl",
        &[
            JobState::Succeeded,
            JobState::Succeeded,
            JobState::Succeeded,
        ],
    ),
    (
        "stack-crash-during-upgrade.jsonl",
        &[JobState::Succeeded, JobState::RolledBack],
    ),
];

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", cli_text(&o));
    o
}

fn export(dir: &Path, name: &str) -> String {
    let text = Journal::open(dir.join(Journal::FILE_NAME))
        .unwrap()
        .export(None)
        .unwrap();
    std::fs::write(fixtures_dir().join(name), &text).unwrap();
    text
}

fn last_event(dir: &Path) -> Event {
    let j = Journal::open(dir.join(Journal::FILE_NAME)).unwrap();
    let job = j.list_jobs(&JobFilter::default()).unwrap().remove(0);
    j.events(&job.id, 0).unwrap().pop().unwrap().event
}

/// Kill `args` after event 1, 2, … until the job's last event matches.
/// Remove the containers, then the volumes and networks, labelled as
/// `target`'s.
fn remove_labelled(target: &str) {
    let label = format!("label=io.deckhand.target={target}");
    for (list, remove) in [
        (vec!["ps", "-aq"], vec!["rm", "-f"]),
        (vec!["volume", "ls", "-q"], vec!["volume", "rm", "-f"]),
        (vec!["network", "ls", "-q"], vec!["network", "rm"]),
    ] {
        let ids = Command::new("docker")
            .args(&list)
            .args(["--filter", &label])
            .output()
            .unwrap();
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            Command::new("docker")
                .args(&remove)
                .arg(id)
                .output()
                .unwrap();
        }
    }
}

fn kill_where(
    dir_setup: impl Fn(&Path),
    args: &[&str],
    wanted: impl Fn(&Event) -> bool,
) -> tempfile::TempDir {
    for n in 1..200 {
        // What the last killed run left behind is not this run's prior state.
        remove_labelled(args[1]);
        let dir = tempfile::tempdir().unwrap();
        dir_setup(dir.path());
        let run = run_cli(dir.path(), args, Some(n));
        assert_eq!(
            run.status.signal(),
            Some(9),
            "ran to the end before the wanted event"
        );
        if wanted(&last_event(dir.path())) {
            return dir;
        }
    }
    panic!("never reached the wanted event");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "records the fixtures from real runs on Docker; run by hand"]
async fn generate_journal_fixtures() {
    let docker = docker().await;
    let (v1, v2, bad) = (image("fx:1"), image("fx:2"), image("fx:crash"));
    let install = |dir: &Path| {
        ok(run_cli(
            dir,
            &["install", "web", &v1, "--network", "none"],
            None,
        ));
    };
    let cleanup = || async {
        remove_target_containers(&docker, "web").await;
    };

    cleanup().await;
    let d = tempfile::tempdir().unwrap();
    install(d.path());
    export(d.path(), "clean-install.jsonl");
    // The same journal as an older Deckhand (schema 1) would have written it.
    {
        let journal = Journal::open(d.path().join(Journal::FILE_NAME)).unwrap();
        drop(journal);
        let old = fixtures_dir().join("schema-v1.sqlite");
        let _ = std::fs::remove_file(&old);
        let c = rusqlite::Connection::open(d.path().join(Journal::FILE_NAME)).unwrap();
        c.execute_batch(&format!(
            "DROP INDEX jobs_by_idempotency_key; ALTER TABLE jobs DROP COLUMN idempotency_key;
             ALTER TABLE jobs DROP COLUMN idempotency_fingerprint; DROP TABLE plugins;
             DROP TABLE resources; DELETE FROM events WHERE kind IN ('acquired', 'released');
             PRAGMA user_version = 1; PRAGMA journal_mode = DELETE; VACUUM INTO '{}';",
            old.display()
        ))
        .unwrap();
    }
    cleanup().await;

    let d = tempfile::tempdir().unwrap();
    install(d.path());
    ok(run_cli(d.path(), &["upgrade", "web", &v2], None));
    export(d.path(), "upgrade.jsonl");
    cleanup().await;

    // An upgrade cancelled (Ctrl-C) while its pull crawls through a slow link.
    let d = tempfile::tempdir().unwrap();
    install(d.path());
    let proxy = SlowProxy::start(2 << 20).await;
    let big = proxy.image("big:2");
    ensure_image_absent(&docker, &big).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_deckhand"))
        .arg("--data-dir")
        .arg(d.path())
        .args(["upgrade", "web", &big])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("pull_image") {
            break;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    lines.for_each(drop);
    child.wait().unwrap();
    export(d.path(), "upgrade-cancelled-mid-pull.jsonl");
    cleanup().await;

    // Killed right after the intent to create the container, before its result.
    let d = kill_where(
        |_| {},
        &["install", "web", &v1, "--network", "none"],
        |e| matches!(e, Event::Intent { call, .. } if call["op"] == "create_container"),
    );
    let text = export(d.path(), "crash-after-intent.jsonl");
    // The same record, its last line torn as by a crash while writing the file.
    let cut = text.trim_end_matches('\n');
    let torn_at = cut.rfind('\n').unwrap() + 1 + (cut.len() - cut.rfind('\n').unwrap()) / 2;
    std::fs::write(
        fixtures_dir().join("torn-last-record.jsonl"),
        &cut[..torn_at],
    )
    .unwrap();
    cleanup().await;

    // Killed in the commit of an upgrade, after the intent to remove the old container.
    let d = kill_where(
        install,
        &["upgrade", "web", &v2],
        |e| matches!(e, Event::CommitIntent { effect, .. } if effect["op"] == "remove_container"),
    );
    export(d.path(), "crash-during-commit.jsonl");
    cleanup().await;

    let d = tempfile::tempdir().unwrap();
    install(d.path());
    assert!(
        !run_cli(d.path(), &["upgrade", "web", &bad], None)
            .status
            .success()
    );
    export(d.path(), "failed-health-check.jsonl");
    cleanup().await;

    let d = tempfile::tempdir().unwrap();
    install(d.path());
    let hostile = Path::new(env!("DECKHAND_PLUGIN_WASM_DIR")).join("deckhand_test_hostile.wasm");
    ok(run_cli(
        d.path(),
        &["plugin", "add", "hostile", hostile.to_str().unwrap()],
        None,
    ));
    let params = format!(r#"{{"mode": "trap-mid-upgrade", "image": "{v2}"}}"#);
    assert!(
        !run_cli(
            d.path(),
            &["run", "hostile", "web", "--params", &params],
            None
        )
        .status
        .success()
    );
    export(d.path(), "plugin-trap.jsonl");
    cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "records the real-app fixtures (workflow 0.2.0) from real runs on Docker; run by hand"]
async fn generate_real_app_fixtures() {
    let _docker = docker().await;
    let (w1, w2) = (image("web:1"), image("web:2"));
    let install = |dir: &Path| {
        ok(run_cli(
            dir,
            &[
                "install",
                "shop",
                &w1,
                "-p",
                "127.0.0.1::80",
                "-v",
                "data:/data",
                "--network",
                "shopnet",
            ],
            None,
        ));
    };
    remove_labelled("shop");
    let d = tempfile::tempdir().unwrap();
    install(d.path());
    ok(run_cli(
        d.path(),
        &["upgrade", "shop", &w2, "--snapshot-volumes"],
        None,
    ));
    ok(run_cli(
        d.path(),
        &["teardown", "shop", "--remove-volumes"],
        None,
    ));
    export(d.path(), "real-app.jsonl");
    remove_labelled("shop");

    // Killed right after the intent to create the volume an upgrade adds,
    // before its result.
    let d = kill_where(
        install,
        &[
            "upgrade",
            "shop",
            &w2,
            "-v",
            "data:/data",
            "-v",
            "cache:/cache",
        ],
        |e| matches!(e, Event::Intent { call, .. } if call["op"] == "ensure_volume"),
    );
    export(d.path(), "real-app-crash-during-ensure-volume.jsonl");
    remove_labelled("shop");
}

/// The two-service stack of the fixtures ([`web_db_compose`] with `web`
/// and the `web:1` image for `db`), written to a file in `dir`.
fn fixture_stack(dir: &Path, web: &str) -> String {
    let file = dir.join(format!("compose-{}.yaml", web.rsplit(':').next().unwrap()));
    std::fs::write(&file, web_db_compose(web, &image("web:1"))).unwrap();
    file.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "records the stack fixtures (workflow 0.2.2) from real runs on Docker; run by hand"]
async fn generate_stack_fixtures() {
    let _docker = docker().await;
    let files = tempfile::tempdir().unwrap();
    let v1 = fixture_stack(files.path(), &image("web:1"));
    let v2 = fixture_stack(files.path(), &image("web:2"));
    let install = |dir: &Path| {
        ok(run_cli(dir, &["install", "shop", "-f", &v1], None));
    };
    remove_labelled("shop");
    let d = tempfile::tempdir().unwrap();
    install(d.path());
    ok(run_cli(d.path(), &["upgrade", "shop", "-f", &v2], None));
    ok(run_cli(
        d.path(),
        &["teardown", "shop", "--remove-volumes"],
        None,
    ));
    export(d.path(), "stack.jsonl");
    remove_labelled("shop");

    // Killed right after the intent to create web's new container (db,
    // unchanged, is not touched).
    let d = kill_where(install, &["upgrade", "shop", "-f", &v2], |e| {
        matches!(e, Event::Intent { call, .. }
                if call["op"] == "create_container"
                    && call["config"]["name"] == "deckhand-shop-web-Next")
    });
    export(d.path(), "stack-crash-during-upgrade.jsonl");
    remove_labelled("shop");
}

/// Import a fixture into a fresh journal.
async fn load(
    name: &str,
) -> (
    tempfile::TempDir,
    Journal,
    deckhand::journal::export::ImportReport,
    String,
) {
    let text = std::fs::read_to_string(fixtures_dir().join(name)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path().join(Journal::FILE_NAME)).unwrap();
    let report = journal
        .import(&text)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    (dir, journal, report, text)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fixture_recovers_to_terminal_states_on_the_memory_runtime() {
    for (name, expected) in FIXTURES {
        let (_dir, journal, _, _) = load(name).await;
        let host = Arc::new(PluginHost::with_builtins(Some(compiled_plugin_cache())).unwrap());
        let executor = deckhand::executor::Executor::new(
            journal.clone(),
            Arc::new(MemoryRuntime::new()),
            host,
            quick_settings(),
        );
        executor
            .recover()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut jobs = journal
            .list_jobs(&JobFilter {
                include_dismissed: true,
                ..Default::default()
            })
            .unwrap();
        jobs.reverse();
        let states: Vec<JobState> = jobs.iter().map(|j| j.state).collect();
        let errors: Vec<&Option<String>> = jobs.iter().map(|j| &j.error).collect();
        assert_eq!(&states, expected, "{name}: {errors:?}");
        // Recovery is idempotent: a second pass finds nothing to do.
        assert!(executor.recover().await.unwrap().jobs.is_empty(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_during_commit_is_committed_by_recovery() {
    let (_dir, journal, _, _) = load("crash-during-commit.jsonl").await;
    let upgrade = journal.list_jobs(&JobFilter::default()).unwrap().remove(0);
    assert_eq!(upgrade.state, JobState::Committing, "killed in the commit");
    let pending = deckhand::executor::plan::commit_plan(&journal.events(&upgrade.id, 0).unwrap());
    assert!(
        !pending.is_empty(),
        "the old container's removal had not completed"
    );
    let host = Arc::new(PluginHost::with_builtins(Some(compiled_plugin_cache())).unwrap());
    let executor = deckhand::executor::Executor::new(
        journal.clone(),
        Arc::new(MemoryRuntime::new()),
        host,
        quick_settings(),
    );
    executor.recover().await.unwrap();
    assert_eq!(
        journal.job(&upgrade.id).unwrap().unwrap().state,
        JobState::Succeeded,
        "recovery goes forward, not back"
    );
    assert!(
        deckhand::executor::plan::commit_plan(&journal.events(&upgrade.id, 0).unwrap()).is_empty()
    );
    assert_eq!(
        journal
            .target("web")
            .unwrap()
            .unwrap()
            .current
            .unwrap()
            .revision,
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fixture_replays_with_the_current_plugins_without_divergence() {
    let host = PluginHost::with_builtins(Some(compiled_plugin_cache())).unwrap();
    let hostile = host
        .register("hostile", &plugin_wasm("deckhand-test-hostile"), false)
        .unwrap();
    for (name, _) in FIXTURES {
        let (_dir, journal, _, _) = load(name).await;
        for job in journal
            .list_jobs(&JobFilter {
                include_dismissed: true,
                ..Default::default()
            })
            .unwrap()
        {
            let plugin = if job.workflow == "hostile" {
                hostile.clone()
            } else {
                host.get(&job.workflow).unwrap()
            };
            let events = journal.events(&job.id, 0).unwrap().len();
            let started = std::time::Instant::now();
            let report = deckhand::replay::replay(&host, &journal, &job, Some(plugin), None)
                .await
                .unwrap();
            let took = started.elapsed();
            eprintln!(
                "replayed {name} {} ({events} events, {} steps) in {took:?}: {:.0} events/s",
                job.workflow,
                report.recorded_steps,
                events as f64 / took.as_secs_f64()
            );
            assert!(
                report.divergence.is_none(),
                "{name} {}: {:?}",
                job.workflow,
                report.divergence
            );
            assert!(
                report.same_outcome,
                "{name} {}: {:?}",
                job.workflow, report.end
            );
            assert!(report.matched_steps > 0, "{name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_plugin_replayed_against_a_fixture_reports_where_it_diverges() {
    let (_dir, journal, _, _) = load("upgrade.jsonl").await;
    let host = PluginHost::with_builtins(Some(compiled_plugin_cache())).unwrap();
    let bg = host
        .register(
            "blue-green",
            &std::fs::read(
                Path::new(env!("DECKHAND_PLUGIN_WASM_DIR"))
                    .join("deckhand_example_blue_green.wasm"),
            )
            .unwrap(),
            false,
        )
        .unwrap();
    let upgrade = journal
        .list_jobs(&JobFilter {
            target: Some("web".into()),
            ..Default::default()
        })
        .unwrap()
        .remove(0);
    assert_eq!(upgrade.workflow, "upgrade");
    let report = deckhand::replay::replay(&host, &journal, &upgrade, Some(bg), None)
        .await
        .unwrap();
    let d = report
        .divergence
        .expect("blue-green names its new container differently");
    let expected = serde_json::to_value(d.expected.unwrap()).unwrap();
    let actual = serde_json::to_value(d.actual.unwrap()).unwrap();
    assert_eq!(expected["call"]["op"], "create_container");
    assert_eq!(expected["call"]["config"]["name"], "deckhand-web-Next");
    assert_eq!(actual["call"]["config"]["name"], "deckhand-web-Green");
    assert_eq!(
        report.matched_steps as u32,
        d.step - 1,
        "every step before it matched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn export_import_export_is_byte_identical_for_every_fixture() {
    for (name, _) in FIXTURES
        .iter()
        .filter(|(n, _)| *n != "torn-last-record.jsonl")
    {
        let (_dir, journal, _, text) = load(name).await;
        assert_eq!(journal.export(None).unwrap(), text, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_without_layers_still_reads_and_a_pulls_layers_survive_export_and_import() {
    use deckhand::journal::{JobId, LayerProgress, NewJob, Progress};
    // Every fixture was written before per-layer progress: it reads, with
    // no layers (and exports byte for byte, above).
    let mut progress_events = 0;
    for (name, _) in FIXTURES
        .iter()
        .filter(|(n, _)| *n != "torn-last-record.jsonl")
    {
        let (_dir, journal, _, _) = load(name).await;
        for job in journal.list_jobs(&JobFilter::default()).unwrap() {
            assert!(job.progress.layers.is_empty(), "{name}");
            for rec in journal.events(&job.id, 0).unwrap() {
                if let Event::Progress(p) = rec.event {
                    progress_events += 1;
                    assert!(p.layers.is_empty(), "{name}");
                }
            }
        }
    }
    assert!(progress_events > 0);

    // A pull's layers are journaled, kept as the job's progress, and come
    // through an export and an import unchanged.
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path().join(Journal::FILE_NAME)).unwrap();
    let job = journal
        .create_job(NewJob {
            id: JobId::new(),
            workflow: "install".into(),
            target: "web".into(),
            params: serde_json::json!({"image": "app:1"}),
            plugin_digest: "sha256:00".into(),
            idempotency_key: None,
        })
        .await
        .unwrap();
    let progress = Progress {
        fraction: Some(0.4),
        layers_done: 1,
        layers_total: 2,
        bytes_done: 15_728_322,
        bytes_total: 30_009_415,
        layers: vec![
            LayerProgress {
                id: "d367b91f526b".into(),
                state: "already_present".into(),
                current: 0,
                total: None,
            },
            LayerProgress {
                id: "2444352a396d".into(),
                state: "downloading".into(),
                current: 15_728_322,
                total: Some(30_009_415),
            },
        ],
        pulls: Vec::new(),
    };
    let phase = Event::Phase {
        phase: "pulling".into(),
    };
    journal.append(&job.id, phase).await.unwrap();
    journal
        .append(&job.id, Event::Progress(progress.clone()))
        .await
        .unwrap();
    assert_eq!(journal.job(&job.id).unwrap().unwrap().progress, progress);
    let text = journal.export(None).unwrap();
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = Journal::open(copy_dir.path().join(Journal::FILE_NAME)).unwrap();
    copy.import(&text).await.unwrap();
    assert_eq!(copy.job(&job.id).unwrap().unwrap().progress, progress);
    let events = copy.events(&job.id, 0).unwrap();
    assert!(
        events
            .iter()
            .any(|r| r.event == Event::Progress(progress.clone()))
    );
    assert_eq!(copy.export(None).unwrap(), text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_journal_from_an_older_schema_is_migrated_on_open_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(Journal::FILE_NAME);
    std::fs::copy(fixtures_dir().join("schema-v1.sqlite"), &path).unwrap();
    let version = |p: &Path| {
        rusqlite::Connection::open(p)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get::<_, u32>(0))
            .unwrap()
    };
    assert_eq!(version(&path), 1);
    let journal = Journal::open(&path).unwrap();
    assert_eq!(version(&path), deckhand::journal::SCHEMA_VERSION);
    let jobs = journal.list_jobs(&JobFilter::default()).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, JobState::Succeeded);
    assert!(journal.target("web").unwrap().unwrap().current.is_some());
    // Features of the newer schemas work on it.
    assert!(journal.plugin_registrations().unwrap().is_empty());
    assert!(journal.job_by_idempotency_key("k").unwrap().is_none());
    // The install's container counts as the engine's: migration derives
    // what the engine owns from the create steps of the old journal.
    let current = journal.target("web").unwrap().unwrap().current.unwrap();
    let owned = journal.owned_by_target("container", "web").unwrap();
    assert_eq!(
        owned.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        [current.container_id.as_str()]
    );
    let host = PluginHost::with_builtins(Some(compiled_plugin_cache())).unwrap();
    let report = deckhand::replay::replay(&host, &journal, &jobs[0], host.get("install"), None)
        .await
        .unwrap();
    assert!(report.divergence.is_none(), "{:?}", report.divergence);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_of_an_older_schema_imports_with_its_created_containers_owned() {
    let text = std::fs::read_to_string(fixtures_dir().join("schema-v3-upgrade.jsonl")).unwrap();
    assert!(
        text.starts_with(r#"{"type":"header","format":"deckhand-journal","version":1,"schema":3}"#)
    );
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path().join(Journal::FILE_NAME)).unwrap();
    journal.import(&text).await.unwrap();
    let web = journal.target("web").unwrap().unwrap();
    let owned: Vec<String> = journal
        .owned_by_target("container", "web")
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    // The install's container and the upgrade's both were created by jobs
    // the journal records; the first was removed at commit, but a journal of
    // this age did not record releases, so both still count.
    assert_eq!(owned.len(), 2, "{owned:?}");
    for revision in &web.history {
        assert!(owned.contains(&revision.container_id), "{revision:?}");
    }
    // No image ids were recorded then: none is the engine's to remove.
    let images = journal.owned_named("image", &web.current.unwrap().image);
    assert!(images.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_last_record_is_detected_and_left_out() {
    let (_dir, journal, report, _) = load("torn-last-record.jsonl").await;
    let whole = std::fs::read_to_string(fixtures_dir().join("crash-after-intent.jsonl")).unwrap();
    assert_eq!(report.torn_last_line, Some(whole.lines().count()));
    let (_d2, full, _, _) = load("crash-after-intent.jsonl").await;
    let count = |j: &Journal| {
        j.list_jobs(&JobFilter::default())
            .unwrap()
            .iter()
            .map(|job| j.events(&job.id, 0).unwrap().len())
            .sum::<usize>()
    };
    assert_eq!(
        count(&journal) + 1,
        count(&full),
        "only the torn record is missing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn import_refuses_out_of_order_or_corrupt_input_with_the_line_number_and_imports_nothing() {
    let text = std::fs::read_to_string(fixtures_dir().join("upgrade.jsonl")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let first_event = lines
        .iter()
        .position(|l| l.starts_with(r#"{"type":"event""#))
        .unwrap();
    lines.swap(first_event + 3, first_event + 4);
    let swapped = lines.join("\n") + "\n";
    let corrupt = text.replacen(r#""type":"event""#, r#""type":"evnet""#, 2);
    for (input, line, what) in [
        (swapped, first_event + 5, "out of order"),
        (corrupt, first_event + 1, "not a journal record"),
        ("garbage\n".to_owned(), 1, "not a journal record"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path().join(Journal::FILE_NAME)).unwrap();
        let err = journal.import(&input).await.unwrap_err();
        assert_eq!(err.line, line, "{err}");
        assert!(err.to_string().contains(what), "{err}");
        assert!(
            journal.list_jobs(&JobFilter::default()).unwrap().is_empty(),
            "nothing imported"
        );
    }
}

fn job_ids(name: &str) -> Vec<String> {
    std::fs::read_to_string(fixtures_dir().join(name))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with(r#"{"type":"job""#))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn replay_cli(args: &[&str]) -> Output {
    let data = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_deckhand"))
        .arg("--data-dir")
        .arg(data.path())
        .arg("replay")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn replay_cli_reads_an_exported_file_and_reports_no_divergence_without_docker() {
    let file = fixtures_dir().join("failed-health-check.jsonl");
    let upgrade = job_ids("failed-health-check.jsonl").pop().unwrap();
    let wasm = Path::new(env!("DECKHAND_PLUGIN_WASM_DIR")).join("deckhand_plugin_upgrade.wasm");
    let out = Command::new(env!("CARGO_BIN_EXE_deckhand"))
        .args(["replay", &upgrade, "--from"])
        .arg(&file)
        .arg("--plugin")
        .arg(&wasm)
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("no divergence"), "{stdout}");
    assert!(
        stdout.contains("the plugin failed: container runtime: container deckhand-web exited"),
        "{stdout}"
    );
}

#[test]
fn replay_plan_lists_the_undos_a_recovery_would_run_without_running_them() {
    let id = job_ids("crash-after-intent.jsonl").pop().unwrap();
    let out = replay_cli(&[
        &id,
        "--from",
        fixtures_dir()
            .join("crash-after-intent.jsonl")
            .to_str()
            .unwrap(),
        "--plan",
        "--json",
    ]);
    assert!(out.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["plan"], "rollback");
    let ops: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["effect"]["op"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops.first(),
        Some(&"remove_created_container"),
        "last step first: {ops:?}"
    );
    // Nothing ran: the fixture still imports to an unfinished job.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("undone"));
}

#[test]
fn replay_writes_a_self_contained_html_timeline() {
    let id = job_ids("upgrade-cancelled-mid-pull.jsonl").pop().unwrap();
    let html = tempfile::NamedTempFile::new().unwrap();
    let out = replay_cli(&[
        &id,
        "--from",
        fixtures_dir()
            .join("upgrade-cancelled-mid-pull.jsonl")
            .to_str()
            .unwrap(),
        "--timeline",
        "--html",
        html.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(html.path()).unwrap();
    assert!(page.starts_with("<!doctype html>"));
    assert!(
        page.contains("pull_image")
            && page.contains("undo remove_image")
            && page.contains("cancel requested"),
        "{page}"
    );
    assert!(
        !page.contains("<script src") && !page.contains("<link"),
        "self-contained"
    );
}

#[test]
fn replay_until_stops_at_the_step_and_shows_the_state_so_far() {
    let ids = job_ids("upgrade.jsonl");
    let upgrade = ids.last().unwrap();
    let wasm = Path::new(env!("DECKHAND_PLUGIN_WASM_DIR")).join("deckhand_plugin_upgrade.wasm");
    let out = replay_cli(&[
        upgrade,
        "--from",
        fixtures_dir().join("upgrade.jsonl").to_str().unwrap(),
        "--plugin",
        wasm.to_str().unwrap(),
        "--until",
        "5",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["end"]["ended"], "stopped");
    assert_eq!(report["end"]["step"], 5);
    assert_eq!(report["matched_steps"], 5);
    assert!(report["divergence"].is_null());
}
