//! Secrets in params: env values whose name looks secret are masked in
//! everything shown or exported, and kept in the journal for recovery.

use std::sync::Arc;

use deckhand::journal::JobState;
use deckhand::runtime::MemoryRuntime;
use serde_json::json;

use crate::harness::*;

const SECRET: &str = "hunter2-s3cr3t";

#[tokio::test(flavor = "multi_thread")]
async fn secret_env_values_are_masked_in_timelines_headers_and_exports_but_kept_in_the_journal() {
    let rt = Arc::new(MemoryRuntime::new());
    let (dir, executor) = memory_engine(rt.clone());
    let job = submit_and_wait(
        &executor,
        "install",
        "web",
        json!({"image": "app:1", "env": {"DB_PASSWORD": SECRET, "MODE": "prod"}}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let events = executor.journal().events(&job.id, 0).unwrap();

    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_deckhand"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", cli_text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let id = job.id.to_string();
    let header = cli(&["jobs", "show", &id]);
    let timeline = cli(&["replay", &id, "--timeline"]);
    let export = cli(&["journal", "export"]);
    for (what, text) in [
        ("header", &header),
        ("timeline", &timeline),
        ("export", &export),
    ] {
        assert!(!text.contains(SECRET), "{what} shows the secret:\n{text}");
    }
    assert!(header.contains(r#""DB_PASSWORD":"***""#), "{header}");
    assert!(export.contains(r#""DB_PASSWORD":"***""#) && export.contains(r#""MODE":"prod""#));

    // The journal keeps it: the container was created with it, and a
    // recovery or retry would need it.
    let container = rt.containers().into_values().next().unwrap();
    assert_eq!(container.name, "deckhand-web");
    let raw = serde_json::to_string(&events).unwrap();
    assert!(raw.contains(SECRET), "the journal keeps the value");
    // The export still imports.
    let other = tempfile::tempdir().unwrap();
    let journal = deckhand::journal::Journal::open(other.path().join("j.sqlite")).unwrap();
    journal.import(&export).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_env_values_are_masked_in_the_apis_job_json_listings_and_event_stream() {
    let (_dir, executor) = memory_engine(Arc::new(MemoryRuntime::new()));
    let job = submit_and_wait(
        &executor,
        "install",
        "web",
        json!({"image": "app:1", "env": {"API_TOKEN": SECRET, "MODE": "prod"}}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let base = deckhand::api::serve_on_loopback(executor.clone(), Default::default())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move {
            let resp = http.get(path).send().await.unwrap();
            assert!(resp.status().is_success(), "{}", resp.status());
            resp.text().await.unwrap()
        }
    };
    let one = get(format!("{base}/v1/jobs/{}", job.id)).await;
    let list = get(format!("{base}/v1/jobs")).await;
    let events = get(format!("{base}/v1/jobs/{}/events", job.id)).await;
    for (what, text) in [("job", &one), ("list", &list), ("events", &events)] {
        assert!(!text.contains(SECRET), "{what} shows the secret:\n{text}");
        assert!(
            text.contains(r#""API_TOKEN":"***""#),
            "{what} masks it:\n{text}"
        );
        assert!(
            text.contains(r#""MODE":"prod""#),
            "{what} shows the rest:\n{text}"
        );
    }
    let steps: serde_json::Value = serde_json::from_str(&one).unwrap();
    let created = steps["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["call"]["op"] == "create_container")
        .expect("a create step");
    assert_eq!(created["call"]["config"]["env"]["API_TOKEN"], "***");
}
