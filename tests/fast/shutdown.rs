//! `deckhand serve` stops cleanly on SIGTERM: it says so, stops accepting,
//! gives running jobs a moment, exits 0, and the next start finishes what
//! was left, as after a crash.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::harness::*;

fn serve(dir: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_deckhand"))
        .arg("--data-dir")
        .arg(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--runtime", "memory"])
        .env("DECKHAND_TOKEN", TEST_TOKEN)
        // The job waits in its health check: still running when asked to stop.
        .env("DECKHAND_SETTLE_MS", "60000")
        .env("DECKHAND_SHUTDOWN_GRACE_S", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    (child, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_server_cleanly_and_the_next_start_finishes_the_running_job() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = serve(dir.path());
    let job: Value = http_client()
        .post(format!("{url}/v1/jobs"))
        .json(&json!({"workflow": "install", "target": "web", "params": {"image": "app:1"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let asked = std::time::Instant::now();
    let signalled = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exits 0: {status:?}");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("deckhand stopping (SIGTERM)"), "{stderr}");
    assert!(stderr.contains("1 job(s) still running"), "{stderr}");

    // The next start recovers it: rolled back before its commit point.
    let (mut again, url) = serve(dir.path());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let state = loop {
        let job: Value = http_client()
            .get(format!("{url}/v1/jobs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let state = job["state"].as_str().unwrap_or_default().to_owned();
        if ["rolled_back", "succeeded", "cancelled", "failed"].contains(&state.as_str())
            || std::time::Instant::now() > deadline
        {
            break state;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(state, "rolled_back");
    let _ = again.kill();
}
