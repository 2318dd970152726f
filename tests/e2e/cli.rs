//! The `deckhand` binary as a user runs it.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn cli_install_shows_steps_and_jobs_show_prints_the_journal() {
    let docker = docker().await;
    let dir = tempfile::tempdir().unwrap();
    let target = unique_target("cli");
    let out = deckhand(dir.path())
        .args(["install", &target, &image("app:2"), "--network", "none"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(": pull_image image="), "{stdout}");
    assert!(stdout.contains("succeeded in"), "{stdout}");

    let list = deckhand(dir.path())
        .args(["jobs", "list", "--json"])
        .output()
        .unwrap();
    let jobs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let id = jobs[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(jobs[0]["state"], "succeeded");

    let show = deckhand(dir.path())
        .args(["jobs", "show", &id])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    for expected in [
        "intent  1: read_revision",
        "intent  3: pull_image",
        "result  3: ok",
        "intent  4: create_container",
        "state   succeeded",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    remove_target_containers(&docker, &target).await;
}

#[test]
fn cli_without_a_reachable_daemon_says_so_in_one_line_naming_docker_host() {
    let dir = tempfile::tempdir().unwrap();
    let out = deckhand(dir.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["install", "web", "app:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DOCKER_HOST"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_install_of_an_image_that_cannot_be_had_is_refused_in_one_clear_line_and_creates_no_job()
 {
    let _docker = docker().await;
    let dir = tempfile::tempdir().unwrap();
    let img = image("no-such-image:1");
    let out = deckhand(dir.path())
        .args(["install", &unique_target("noimg"), &img])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = cli_text(&out);
    assert_eq!(text.trim().lines().count(), 1, "one line:\n{text}");
    assert!(
        text.contains(&img) && text.contains("cannot be pulled"),
        "{text}"
    );
    assert_eq!(text.matches("manifest unknown").count(), 1, "{text}");
    let list = deckhand(dir.path())
        .args(["jobs", "list", "--all"])
        .output()
        .unwrap();
    let rows = String::from_utf8_lossy(&list.stdout)
        .lines()
        .skip(1)
        .count();
    assert_eq!(rows, 0, "no job:\n{}", cli_text(&list));
}

#[test]
fn cli_refuses_an_invalid_target_name_before_creating_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let out = deckhand(dir.path())
        .args(["install", "Bad Name", "app:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid target name"));
    assert!(
        !dir.path().join("journal.sqlite").exists(),
        "no journal was even created"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_of_a_foreground_upgrade_says_so_cancels_and_rolls_back() {
    use std::io::{BufRead, BufReader};
    let docker = docker().await;
    let dir = tempfile::tempdir().unwrap();
    let target = unique_target("ctrlc");
    let out = deckhand(dir.path())
        .args(["install", &target, &image("cli:1"), "--network", "none"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = containers_of(&docker, &target).await[0].id.clone();

    let hole = BlackHole::start().await;
    let mut child = deckhand(dir.path())
        .args(["upgrade", &target, &hole.image()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Wait until the pull is under way, then press Ctrl-C.
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains(": pull_image image=") {
            break;
        }
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    seen.extend(lines.map(|l| l.unwrap()));
    let status = child.wait().unwrap();
    let all = seen.join("\n");
    assert!(!status.success(), "{all}");
    assert!(all.contains("Ctrl-C: cancelling job"), "{all}");
    assert!(all.contains("cancelled after"), "{all}");
    let after = containers_of(&docker, &target).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, before, "the old container runs on, same id");
    assert_eq!(
        after[0].state.map(|s| s.to_string()).as_deref(),
        Some("running")
    );
    remove_target_containers(&docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_cancel_from_another_terminal_cancels_a_foreground_job_and_one_process_owns_the_data_dir()
 {
    use std::io::{BufRead, BufReader};
    let docker = docker().await;
    let dir = tempfile::tempdir().unwrap();
    let target = unique_target("xcancel");
    let hole = BlackHole::start().await;
    let mut child = deckhand(dir.path())
        .args(["install", &target, &hole.image()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let id = first.split_whitespace().nth(1).unwrap().to_owned();
    for line in lines.by_ref() {
        if line.unwrap().contains(": pull_image image=") {
            break;
        }
    }
    // A second engine on the same data directory is refused.
    let second = deckhand(dir.path())
        .args(["install", "other", &image("cli:1")])
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another deckhand process"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    let cancel = deckhand(dir.path())
        .args(["jobs", "cancel", &id])
        .output()
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&cancel.stdout).unwrap();
    assert_eq!(answer["cancelled"], true, "{answer}");
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(child.wait().unwrap().code() == Some(1));
    assert!(
        rest.iter().any(|l| l.contains("cancelled after")),
        "{rest:?}"
    );
    assert!(containers_of(&docker, &target).await.is_empty());
}

#[test]
fn plugin_new_scaffolds_a_crate_that_builds_and_passes_plugin_test() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let out = deckhand(data.path())
        .args(["plugin", "new", "hello-world", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let krate = dir.path().join("hello-world");
    let target_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold");
    let build =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&krate)
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm = target_dir.join("wasm32-wasip2/release/hello_world.wasm");
    let test = deckhand(data.path())
        .args(["plugin", "test"])
        .arg(&wasm)
        .args(["--params", r#"{"image": "app:1"}"#])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(
        stdout.contains("deckhand-web app:1 running=true"),
        "{stdout}"
    );
    let add = deckhand(data.path())
        .args(["plugin", "add", "hello-world"])
        .arg(&wasm)
        .output()
        .unwrap();
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let list = deckhand(data.path())
        .args(["plugin", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("hello-world"));
}

#[test]
fn plugin_test_with_an_injected_fault_shows_the_rollback() {
    let data = tempfile::tempdir().unwrap();
    let wasm =
        std::path::Path::new(env!("DECKHAND_PLUGIN_WASM_DIR")).join("deckhand_plugin_upgrade.wasm");
    let out = deckhand(data.path())
        .args(["plugin", "test"])
        .arg(&wasm)
        .args([
            "--install",
            "app:1",
            "--params",
            r#"{"image": "app:2"}"#,
            "--fail",
            "start",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("rolled_back: container runtime: injected by deckhand plugin test"),
        "{stdout}"
    );
    assert!(
        stdout.contains("deckhand-web app:1 running=true"),
        "the old container runs again: {stdout}"
    );
}

// ---- the CLI as a new user meets it (in-memory runtime, no Docker) ----------

fn stdout_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A memory server whose containers take a minute to count as up: an
/// install stays `running` in `waiting_healthy` until cancelled.
fn slow_server() -> Server {
    Server::start_with_env("memory", None, &[], &[("DECKHAND_SETTLE_MS", "60000")])
}

async fn submit_install(s: &Server, target: &str) -> String {
    let job = s
        .accepted(serde_json::json!({
            "workflow": "install",
            "target": target,
            "params": {"image": "app:1", "health": {"timeout_s": 120}},
        }))
        .await;
    job["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_never_makes_the_cli_panic() {
    use deckhand::journal::{JobId, Journal, NewJob};
    use std::io::{BufRead, BufReader};
    // Enough jobs that the listing overflows a pipe's buffer.
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = Journal::open(dir.path().join(Journal::FILE_NAME)).unwrap();
        let creates: Vec<_> = (0..1500)
            .map(|i| {
                let journal = journal.clone();
                tokio::spawn(async move {
                    journal
                        .create_job(NewJob {
                            id: JobId::new(),
                            workflow: "install".into(),
                            target: format!("web{}", i % 50),
                            params: serde_json::json!({"image": "app:1"}),
                            plugin_digest: "sha256:00".into(),
                            idempotency_key: None,
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        for c in creates {
            c.await.unwrap();
        }
    }
    for args in [
        &["jobs", "list", "--limit", "5000"][..],
        &["jobs", "list", "--limit", "5000", "--json"][..],
        &["journal", "export"][..],
    ] {
        let mut child = deckhand(dir.path())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Read one line, then go away, as `| head -1` does.
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty(), "{args:?}");
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        use std::os::unix::process::ExitStatusExt;
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?} {stderr}",
            out.status
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_cancel_answers_the_same_json_in_process_and_through_a_server() {
    let s = slow_server();
    let id = submit_install(&s, "web").await;
    s.wait_for_job(&id, |j| j["phase"] == "waiting_healthy")
        .await;

    // In-process, while the server runs the job: journaled, the server acts.
    let first = s.local(&["jobs", "cancel", &id]);
    assert!(first.status.success(), "{}", cli_text(&first));
    assert_eq!(
        stdout_of(&first).trim(),
        r#"{"cancelled":true,"state":"running"}"#
    );
    s.wait_for_job(&id, is_terminal).await;

    // Cancelling the cancelled job: `cancelled: false`, its state and why,
    // word for word the same through the server and in-process.
    let expected = r#"{"cancelled":false,"state":"cancelled","reason":"job already cancelled"}"#;
    let through_server = s.remote(&["jobs", "cancel", &id]);
    assert!(
        through_server.status.success(),
        "{}",
        cli_text(&through_server)
    );
    assert_eq!(stdout_of(&through_server).trim(), expected);
    let in_process = s.local(&["jobs", "cancel", &id]);
    assert_eq!(
        stdout_of(&in_process).trim(),
        expected,
        "{}",
        cli_text(&in_process)
    );

    // In-process with no server on the data directory (the journal copied
    // elsewhere): no engine is needed to answer for a finished job.
    let copy = tempfile::tempdir().unwrap();
    let file = copy.path().join("journal.jsonl");
    let export = s.local(&["journal", "export", "-o", file.to_str().unwrap()]);
    assert!(export.status.success(), "{}", cli_text(&export));
    let alone = tempfile::tempdir().unwrap();
    let import = deckhand(alone.path())
        .args(["journal", "import", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", cli_text(&import));
    let unlocked = deckhand(alone.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["jobs", "cancel", &id])
        .output()
        .unwrap();
    assert_eq!(
        stdout_of(&unlocked).trim(),
        expected,
        "{}",
        cli_text(&unlocked)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn server_output_is_the_same_tables_as_local_output_and_replay_through_a_server_is_refused() {
    let s = Server::start("memory", None);
    let id = submit_install(&s, "web").await;
    let job = s.wait_for_job(&id, is_terminal).await;
    assert_eq!(job["state"], "succeeded", "{job}");

    for args in [
        &["targets", "list"][..],
        &["targets", "show", "web"][..],
        &["jobs", "show", &id][..],
        &["jobs", "list"][..],
    ] {
        let (r, l) = (s.remote(args), s.local(args));
        assert!(r.status.success(), "{args:?}: {}", cli_text(&r));
        assert!(l.status.success(), "{args:?}: {}", cli_text(&l));
        let text = stdout_of(&r);
        assert!(
            !text.trim_start().starts_with(['{', '[']),
            "{args:?} prints text, not JSON:\n{text}"
        );
        assert_eq!(text, stdout_of(&l), "{args:?}: the same through the server");
    }
    let targets = stdout_of(&s.remote(&["targets", "list"]));
    assert!(targets.starts_with("TARGET"), "{targets}");
    assert!(targets.contains("app:1"), "{targets}");
    let show = stdout_of(&s.remote(&["jobs", "show", &id]));
    for expected in [
        "state     succeeded",
        "journal:",
        "intent  ",
        "state   succeeded",
    ] {
        assert!(show.contains(expected), "missing `{expected}` in:\n{show}");
    }
    // `--json` still gives the API's JSON.
    let json: serde_json::Value =
        serde_json::from_slice(&s.remote(&["targets", "show", "web", "--json"]).stdout).unwrap();
    assert_eq!(json["revision"], 1);

    // Commands that work on a journal file say so instead of ignoring the URL.
    for args in [
        &["replay", &id][..],
        &["journal", "export"][..],
        &["recover"][..],
    ] {
        let out = s.remote(args);
        assert!(!out.status.success(), "{args:?}: {}", cli_text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("does not work through a server") && stderr.contains(&s.url),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// The length of the longest common start of two strings.
fn common_start(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

/// The shortest start of `id` that no other of `ids` shares (hyphen-safe).
fn unique_start<'a>(id: &'a str, others: &[&str]) -> &'a str {
    let mut n = others
        .iter()
        .map(|o| common_start(id, o))
        .max()
        .unwrap_or(0)
        + 1;
    n = n.max(4);
    if id.as_bytes()[n - 1] == b'-' {
        n += 1;
    }
    &id[..n]
}

#[tokio::test(flavor = "multi_thread")]
async fn short_job_ids_name_a_job_everywhere_an_id_does() {
    let s = Server::start("memory", None);
    let a = submit_install(&s, "web").await;
    s.wait_for_job(&a, is_terminal).await;
    let b = submit_install(&s, "api").await;
    s.wait_for_job(&b, is_terminal).await;
    let short_a = unique_start(&a, &[&b]);
    let short_b = unique_start(&b, &[&a]);
    // Ids are UUIDv7: jobs made moments apart share their first digits.
    let shared = &a[..common_start(&a, &b)];
    assert!(shared.len() >= 4, "{a} {b}");

    for (short, full) in [(short_a, &a), (short_b, &b)] {
        for out in [
            s.local(&["jobs", "show", short]),
            s.remote(&["jobs", "show", short]),
        ] {
            assert!(out.status.success(), "{short}: {}", cli_text(&out));
            assert!(
                stdout_of(&out).starts_with(&format!("job {full}\n")),
                "{}",
                cli_text(&out)
            );
        }
    }
    // Cancel, watch, replay and export take one too.
    let expected = r#"{"cancelled":false,"state":"succeeded","reason":"job already succeeded"}"#;
    assert_eq!(
        stdout_of(&s.local(&["jobs", "cancel", short_a])).trim(),
        expected
    );
    assert_eq!(
        stdout_of(&s.remote(&["jobs", "cancel", short_a])).trim(),
        expected
    );
    for out in [
        s.local(&["jobs", "watch", short_b]),
        s.remote(&["jobs", "watch", short_b]),
    ] {
        assert!(
            stdout_of(&out).contains("succeeded in"),
            "{}",
            cli_text(&out)
        );
    }
    let replay = s.local(&["replay", short_a, "--timeline"]);
    assert!(
        stdout_of(&replay).starts_with(&format!("job {a}\n")),
        "{}",
        cli_text(&replay)
    );
    let export = stdout_of(&s.local(&["journal", "export", "--job", short_b]));
    assert!(export.contains(&b) && !export.contains(&a), "{export}");

    // A start that several ids share is refused, listing them; so is one too
    // short to mean anything, and one that names no job.
    for out in [
        s.local(&["jobs", "show", shared]),
        s.remote(&["jobs", "show", shared]),
    ] {
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("more than one job"), "{stderr}");
        assert!(stderr.contains(&a) && stderr.contains(&b), "{stderr}");
        assert!(
            stderr.contains("install web") && stderr.contains("install api"),
            "{stderr}"
        );
    }
    for out in [
        s.local(&["jobs", "show", &a[..3]]),
        s.remote(&["jobs", "cancel", &a[..3]]),
    ] {
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("too short"), "{stderr}");
    }
    let nobody = if a.starts_with('f') { "0000" } else { "ffff" };
    for out in [
        s.local(&["jobs", "show", nobody]),
        s.remote(&["jobs", "show", nobody]),
    ] {
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("no job with id starting with {nobody}")),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_show_of_a_running_job_shows_its_live_phase() {
    let s = slow_server();
    let id = submit_install(&s, "web").await;
    s.wait_for_job(&id, |j| j["phase"] == "waiting_healthy")
        .await;
    for out in [
        s.local(&["jobs", "show", &id]),
        s.remote(&["jobs", "show", &id]),
    ] {
        let text = stdout_of(&out);
        assert!(out.status.success(), "{}", cli_text(&out));
        assert!(text.contains("  state     running\n"), "{text}");
        assert!(text.contains("  phase     waiting_healthy\n"), "{text}");
        assert!(text.contains("wait_healthy"), "the step under way: {text}");
    }
    assert!(stdout_of(&s.remote(&["jobs", "show", &id])).contains("the job goes on"));

    // Once it is over, no phase is shown as if it were still under way.
    let cancel = s.remote(&["jobs", "cancel", &id]);
    assert!(cancel.status.success(), "{}", cli_text(&cancel));
    s.wait_for_job(&id, is_terminal).await;
    for out in [
        s.local(&["jobs", "show", &id]),
        s.remote(&["jobs", "show", &id]),
    ] {
        let text = stdout_of(&out);
        assert!(text.contains("  state     cancelled\n"), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("  phase ")), "{text}");
        assert!(!text.contains("the job goes on"), "{text}");
    }
}
