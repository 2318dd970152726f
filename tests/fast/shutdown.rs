//! `deckhand serve` stops cleanly on SIGTERM: it says so, stops accepting,
//! gives running jobs a moment, exits 0, and the next start finishes what
//! was left, as after a crash.

use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_server_cleanly_and_the_next_start_finishes_the_running_job() {
    let mut s = Server::start_with_env(
        "memory",
        None,
        &[],
        &[
            // The job waits in its health check: still running when asked to stop.
            ("DECKHAND_SETTLE_MS", "60000"),
            ("DECKHAND_SHUTDOWN_GRACE_S", "1"),
        ],
    );
    let job = s
        .accepted(json!({"workflow": "install", "target": "web", "params": {"image": "app:1"}}))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let asked = std::time::Instant::now();
    s.sigterm();
    let status = s.wait();
    assert!(status.success(), "exits 0: {status:?}");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    let stderr = s.stderr();
    assert!(stderr.contains("deckhand stopping (SIGTERM)"), "{stderr}");
    assert!(stderr.contains("1 job(s) still running"), "{stderr}");

    // The next start recovers it: rolled back before its commit point.
    s.restart();
    let job = s.wait_for_job(&id, is_terminal).await;
    assert_eq!(job["state"], "rolled_back");
}
