//! The HTTP job API against a real `deckhand serve` process.

use serde_json::{Value, json};

use crate::harness::*;

/// Events that carry a journal sequence number (not `snapshot` or `end`).
fn is_journal_event(e: &(String, String, Value)) -> bool {
    e.1 != "snapshot" && e.1 != "end"
}

fn http() -> reqwest::Client {
    http_client()
}

/// Read job `id`'s event stream from the start to `end`.
async fn events_to_end(s: &Server, id: &str) -> Vec<(String, String, Value)> {
    read_events(&http(), &s.at(&format!("/v1/jobs/{id}/events")), None).await
}

async fn job_count(s: &Server) -> usize {
    let page = s.get_json("/v1/jobs?all=true&limit=500").await;
    page["jobs"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn post_returns_202_with_location_and_the_event_stream_runs_to_end() {
    let docker = docker().await;
    let s = Server::start("docker", None);
    let target = unique_target("api");
    let resp = s.post_job(json!({"workflow": "install", "target": target, "params": {"image": image("cli:2"), "network": "none"}})).await;
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = resp.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/jobs/{}", job["id"].as_str().unwrap())
    );
    assert_eq!(job["state"], "queued");

    let events = read_events(&http(), &s.at(&format!("{location}/events")), None).await;
    assert_eq!(events[0].1, "snapshot");
    assert_eq!(events.last().unwrap().1, "end");
    assert_eq!(events.last().unwrap().2["state"], "succeeded");
    let kinds: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    for k in ["state", "step", "progress"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    // Ids are the journal's sequence numbers, strictly increasing.
    let ids: Vec<i64> = events
        .iter()
        .filter(|e| is_journal_event(e))
        .map(|e| e.0.parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    let full = s.get_json(&location).await;
    assert_eq!(full["state"], "succeeded");
    // The steps that change something carry their undo; reads do not.
    let steps = full["steps"].as_array().unwrap();
    let undo_of = |op: &str| {
        steps
            .iter()
            .find(|st| st["call"]["op"] == op)
            .map(|st| !st["undo"].is_null())
    };
    assert_eq!(undo_of("create_container"), Some(true));
    assert_eq!(undo_of("start_container"), Some(true));
    assert_eq!(undo_of("inspect_container"), Some(false));
    assert_eq!(undo_of("read_revision"), Some(false));
    let t = s.get_json(&format!("/v1/targets/{target}")).await;
    assert_eq!(t["revision"], 1);
    assert_eq!(t["history"].as_array().unwrap().len(), 1);
    remove_target_containers(&docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn last_event_id_resumes_with_exactly_the_remaining_events() {
    let s = Server::start("memory", None);
    let resp = s
        .post_job(json!({"workflow": "install", "target": "web", "params": {"image": "app:1"}}))
        .await;
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = s.at(&format!("/v1/jobs/{id}/events"));
    let all = read_events(&http(), &url, None).await;
    let numbered: Vec<&(String, String, Value)> =
        all.iter().filter(|e| is_journal_event(e)).collect();
    assert!(numbered.len() > 6);
    let cut = &numbered[4].0;
    let rest = read_events(&http(), &url, Some(cut)).await;
    let rest_ids: Vec<&String> = rest
        .iter()
        .filter(|e| is_journal_event(e))
        .map(|e| &e.0)
        .collect();
    let expected: Vec<&String> = numbered[5..].iter().map(|e| &e.0).collect();
    assert_eq!(rest_ids, expected, "nothing lost, nothing repeated");
    assert_ne!(rest[0].1, "snapshot", "a resumed stream has no snapshot");
    assert_eq!(rest.last().unwrap().1, "end");
}

#[tokio::test(flavor = "multi_thread")]
async fn busy_target_gets_409_naming_the_job_while_another_target_gets_202_and_cancel_works() {
    let docker = docker().await;
    let s = Server::start("docker", None);
    let hole = BlackHole::start().await;
    let (a, b) = (unique_target("busy-a"), unique_target("busy-b"));
    // A's install hangs in its pull.
    let first: Value = s
        .accepted(json!({"workflow": "install", "target": a, "params": {"image": hole.image()}}))
        .await;
    let busy = s
        .post_job(json!({"workflow": "install", "target": a, "params": {"image": hole.image()}}))
        .await;
    assert_eq!(busy.status(), 409);
    assert_eq!(busy.headers()["content-type"], "application/problem+json");
    let problem: Value = busy.json().await.unwrap();
    assert_eq!(problem["active_job"], first["id"]);
    let other = s.post_job(json!({"workflow": "install", "target": b, "params": {"image": image("cli:2"), "network": "none"}})).await;
    assert_eq!(other.status(), 202);
    let other: Value = other.json().await.unwrap();

    let first_id = first["id"].as_str().unwrap();
    let cancel: Value = http()
        .post(s.at(&format!("/v1/jobs/{first_id}/cancel")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cancel["cancelled"], true);
    let ended = events_to_end(&s, first_id).await;
    assert_eq!(ended.last().unwrap().2["state"], "cancelled");

    let other_id = other["id"].as_str().unwrap();
    let done = events_to_end(&s, other_id).await;
    assert_eq!(done.last().unwrap().2["state"], "succeeded");
    let late: Value = http()
        .post(s.at(&format!("/v1/jobs/{other_id}/cancel")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        late,
        json!({"cancelled": false, "state": "succeeded", "reason": "job already succeeded"})
    );
    remove_target_containers(&docker, &b).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_idempotency_key_returns_the_same_job() {
    let s = Server::start("memory", None);
    let body = json!({"workflow": "install", "target": "web", "params": {"image": "app:1"}});
    let send = || {
        http()
            .post(s.at("/v1/jobs"))
            .header("Idempotency-Key", "k-123")
            .json(&body)
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(second.status(), 202);
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(job_count(&s).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_input_gets_its_problem_status_and_changes_nothing() {
    let s = Server::start("memory", None);
    let ok = s
        .post_job(json!({"workflow": "install", "target": "web", "params": {"image": "app:1"}}))
        .await;
    assert_eq!(ok.status(), 202);
    let before = job_count(&s).await;
    let unknown = "01a20a62-8eb1-7550-a126-a831d6a53cfe";
    let raw = |body: &'static str| {
        http()
            .post(s.at("/v1/jobs"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases: Vec<(u16, reqwest::Response)> = vec![
        (400, raw("{not json").await.unwrap()),
        (
            422,
            s.post_job(json!({"workflow": "nope", "target": "web"}))
                .await,
        ),
        (
            422,
            s.post_job(
                json!({"workflow": "install", "target": "Bad Name", "params": {"image": "a"}}),
            )
            .await,
        ),
        (
            422,
            s.post_job(json!({"workflow": "install", "target": "api", "params": {"image": 5}}))
                .await,
        ),
        (
            422,
            s.post_job(json!({"workflow": "install", "target": "api", "params": {}}))
                .await,
        ),
        (
            422,
            s.post_job(json!({"workflow": "install", "target": "api", "params": "image"}))
                .await,
        ),
        (422, s.post_job(json!({"target": "api"})).await),
        (
            404,
            s.post_job(json!({"workflow": "teardown", "target": "never", "params": {}}))
                .await,
        ),
        (
            413,
            http()
                .post(s.at("/v1/jobs"))
                .header("content-type", "application/json")
                .body(format!("{{\"x\":\"{}\"}}", "a".repeat(100_000)))
                .send()
                .await
                .unwrap(),
        ),
        (
            415,
            http()
                .post(s.at("/v1/jobs"))
                .body("{}")
                .send()
                .await
                .unwrap(),
        ),
        (
            404,
            http()
                .get(s.at(&format!("/v1/jobs/{unknown}")))
                .send()
                .await
                .unwrap(),
        ),
        (
            404,
            http().get(s.at("/v1/jobs/not-an-id")).send().await.unwrap(),
        ),
        (
            404,
            http()
                .post(s.at(&format!("/v1/jobs/{unknown}/cancel")))
                .send()
                .await
                .unwrap(),
        ),
        (
            404,
            http()
                .get(s.at(&format!("/v1/jobs/{unknown}/events")))
                .send()
                .await
                .unwrap(),
        ),
        (
            404,
            http()
                .get(s.at("/v1/targets/nothing"))
                .send()
                .await
                .unwrap(),
        ),
        (404, http().get(s.at("/v1/nowhere")).send().await.unwrap()),
        (
            405,
            http()
                .get(s.at(&format!("/v1/jobs/{unknown}/cancel")))
                .send()
                .await
                .unwrap(),
        ),
        (405, http().put(s.at("/v1/jobs")).send().await.unwrap()),
        (
            400,
            http().get(s.at("/v1/jobs?limit=0")).send().await.unwrap(),
        ),
        (
            400,
            http()
                .get(s.at("/v1/jobs?state=sleeping"))
                .send()
                .await
                .unwrap(),
        ),
    ];
    for (i, (status, resp)) in cases.into_iter().enumerate() {
        assert_eq!(resp.status().as_u16(), status, "case {i}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/problem+json",
            "case {i}"
        );
        let p: Value = resp.json().await.unwrap();
        assert_eq!(p["status"], status, "case {i}");
        assert!(
            !p["detail"].as_str().unwrap().is_empty(),
            "case {i}: a useful detail"
        );
    }
    assert_eq!(job_count(&s).await, before, "no bad request created a job");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_token_every_endpoint_but_healthz_requires_it() {
    let s = Server::start("memory", Some("s3cret"));
    assert_eq!(
        http().get(s.at("/healthz")).send().await.unwrap().status(),
        200
    );
    for path in [
        "/v1/jobs",
        "/v1/targets",
        "/v1/plugins",
        "/metrics",
        "/v1/openapi.json",
    ] {
        let none = http().get(s.at(path)).send().await.unwrap();
        assert_eq!(none.status(), 401, "{path}");
        assert_eq!(none.headers()["content-type"], "application/problem+json");
        let wrong = http()
            .get(s.at(path))
            .bearer_auth("s3cre")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
        let right = http()
            .get(s.at(path))
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), 200, "{path}");
    }
    let post = http()
        .post(s.at("/v1/jobs"))
        .json(&json!({"workflow": "install", "target": "web", "params": {"image": "a:1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 401);
    assert_eq!(job_count_with(&s, "s3cret").await, 0);
}

async fn job_count_with(s: &Server, token: &str) -> usize {
    let page: Value = http()
        .get(s.at("/v1/jobs?all=true"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["jobs"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_started_without_a_token_refuses_strangers_and_the_cli_on_its_machine_needs_none()
{
    let s = Server::start_without_token("memory");
    // No token configured, yet nothing is open, loopback included.
    let anonymous = reqwest::Client::new()
        .get(s.at("/v1/jobs"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let token_file = s.dir.path().join("api-token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the token is its owner's only");
    // The CLI on the same machine (same data directory) just works.
    let list = s
        .client(s.dir.path())
        .args(["jobs", "list"])
        .output()
        .unwrap();
    assert!(list.status.success(), "{}", cli_text(&list));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_lists_every_route() {
    let s = Server::start("memory", None);
    let doc = s.get_json("/v1/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/jobs", "post"),
        ("/v1/jobs", "get"),
        ("/v1/jobs/{id}", "get"),
        ("/v1/jobs/{id}", "delete"),
        ("/v1/jobs/{id}/events", "get"),
        ("/v1/jobs/{id}/cancel", "post"),
        ("/v1/jobs/{id}/retry", "post"),
        ("/v1/targets", "get"),
        ("/v1/targets/{name}", "get"),
        ("/v1/plugins", "get"),
        ("/healthz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dismissing_hides_a_finished_job_from_default_listings_only() {
    let s = Server::start("memory", None);
    let job: Value = s
        .accepted(json!({"workflow": "install", "target": "web", "params": {"image": "app:1"}}))
        .await;
    let id = job["id"].as_str().unwrap();
    events_to_end(&s, id).await;
    assert_eq!(
        http()
            .delete(s.at(&format!("/v1/jobs/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let page = s.get_json("/v1/jobs").await;
    assert!(page["jobs"].as_array().unwrap().is_empty());
    let all = s.get_json("/v1/jobs?all=true").await;
    assert_eq!(all["jobs"][0]["id"], job["id"]);
    assert_eq!(
        http()
            .get(s.at(&format!("/v1/jobs/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "kept in the journal"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_filters_by_target_and_state_and_pages_newest_first() {
    let s = Server::start("memory", None);
    let mut ids = Vec::new();
    for t in ["a", "b", "c", "d", "e"] {
        let j: Value = s
            .accepted(json!({"workflow": "install", "target": t, "params": {"image": "app:1"}}))
            .await;
        ids.push(j["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        events_to_end(&s, id).await;
    }
    let p1 = s.get_json("/v1/jobs?limit=2").await;
    let p2: Value = http()
        .get(s.at(&format!(
            "/v1/jobs?limit=2&cursor={}",
            p1["next_cursor"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let p3: Value = http()
        .get(s.at(&format!(
            "/v1/jobs?limit=2&cursor={}",
            p2["next_cursor"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen: Vec<&str> = [&p1, &p2, &p3]
        .iter()
        .flat_map(|p| p["jobs"].as_array().unwrap())
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(seen, newest_first);
    assert!(p3["next_cursor"].is_null());
    let by_target = s.get_json("/v1/jobs?target=c").await;
    assert_eq!(by_target["jobs"].as_array().unwrap().len(), 1);
    let by_state = s.get_json("/v1/jobs?state=succeeded").await;
    assert_eq!(by_state["jobs"].as_array().unwrap().len(), 5);
    let active = s.get_json("/v1/jobs?active=true").await;
    assert!(
        active["jobs"].as_array().unwrap().is_empty(),
        "succeeded jobs leave the active list by themselves"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_expose_jobs_by_state_latencies_and_open_streams() {
    let s = Server::start("memory", None);
    let job: Value = s
        .accepted(json!({"workflow": "install", "target": "web", "params": {"image": "app:1"}}))
        .await;
    events_to_end(&s, job["id"].as_str().unwrap()).await;
    let text = http()
        .get(s.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "deckhand_jobs{state=\"succeeded\"} 1",
        "deckhand_step_duration_seconds_count",
        "deckhand_journal_append_seconds_count",
        "deckhand_sse_streams",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribers_that_drop_release_their_streams_and_never_affect_the_job() {
    let s = Server::start("docker", None);
    let hole = BlackHole::start().await;
    let job: Value = s.accepted(json!({"workflow": "install", "target": unique_target("drop"), "params": {"image": hole.image()}})).await;
    let id = job["id"].as_str().unwrap().to_owned();
    for _round in 0..5 {
        let mut open = Vec::new();
        for _ in 0..20 {
            let resp = http()
                .get(s.at(&format!("/v1/jobs/{id}/events")))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            open.push(resp);
        }
        drop(open);
    }
    // Streams are released once the server notices the clients are gone.
    let mut gauge = String::new();
    for _ in 0..50 {
        let text = http()
            .get(s.at("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        gauge = text
            .lines()
            .find(|l| l.starts_with("deckhand_sse_streams "))
            .unwrap_or_default()
            .to_owned();
        if gauge == "deckhand_sse_streams 0" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(gauge, "deckhand_sse_streams 0");
    let now = s.job(&id).await;
    assert_eq!(
        now["state"], "running",
        "disconnecting clients never cancel"
    );
    assert_eq!(now["cancel_requested"], false);
    http()
        .post(s.at(&format!("/v1/jobs/{id}/cancel")))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_talks_to_the_server_with_server_url() {
    let docker = docker().await;
    let s = Server::start("docker", None);
    let target = unique_target("remote");
    let work = tempfile::tempdir().unwrap();
    let out = s
        .client(work.path())
        .args(["install", &target, &image("cli:1"), "--network", "none"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(": pull_image image=") && stdout.contains("succeeded in"),
        "{stdout}"
    );
    assert!(
        !work.path().join("journal.sqlite").exists(),
        "nothing ran in-process"
    );
    let list = s.remote(&["jobs", "list", "--target", &target, "--json"]);
    let jobs: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(jobs[0]["state"], "succeeded");
    let id = jobs[0]["id"].as_str().unwrap();
    let watch = s.remote(&["jobs", "watch", id]);
    assert!(String::from_utf8_lossy(&watch.stdout).contains("succeeded in"));
    remove_target_containers(&docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn load_of_200_jobs_100_pollers_and_100_subscribers_has_no_errors() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let s = Arc::new(Server::start("memory", None));
    let client = http_client_builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let errors = Arc::new(AtomicUsize::new(0));
    let timed = |lat: &Arc<std::sync::Mutex<Vec<f64>>>, t: std::time::Instant| {
        lat.lock().unwrap().push(t.elapsed().as_secs_f64() * 1000.0)
    };

    // 200 jobs on 200 targets, submitted concurrently.
    let mut submits = Vec::new();
    for i in 0..200 {
        let (s, client, lat, errors) =
            (s.clone(), client.clone(), latencies.clone(), errors.clone());
        submits.push(tokio::spawn(async move {
            let t = std::time::Instant::now();
            let r = client.post(s.at("/v1/jobs")).json(&json!({"workflow": "install", "target": format!("load-{i}"), "params": {"image": "app:1"}})).send().await;
            timed(&lat, t);
            match r {
                Ok(r) if r.status() == 202 => Some(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()),
                _ => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    None
                }
            }
        }));
    }
    let mut ids = Vec::new();
    for h in submits {
        ids.extend(h.await.unwrap());
    }
    // 100 pollers until every job is done; 100 subscribers read a stream to its end.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for p in 0..100 {
        let (s, client, lat, errors, stop, id) = (
            s.clone(),
            client.clone(),
            latencies.clone(),
            errors.clone(),
            stop.clone(),
            ids[p % ids.len()].clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 200 {
                let t = std::time::Instant::now();
                let path = if n % 2 == 0 {
                    format!("/v1/jobs/{id}")
                } else {
                    "/v1/jobs?limit=20".to_owned()
                };
                match client.get(s.at(&path)).send().await {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                timed(&lat, t);
                n += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }));
    }
    let ends = Arc::new(AtomicUsize::new(0));
    let mut subscribers = Vec::new();
    for p in 0..100 {
        let (s, client, ends, id) = (
            s.clone(),
            client.clone(),
            ends.clone(),
            ids[(p * 2) % ids.len()].clone(),
        );
        subscribers.push(tokio::spawn(async move {
            let events = read_events(&client, &s.at(&format!("/v1/jobs/{id}/events")), None).await;
            if events.last().is_some_and(|e| e.1 == "end") {
                ends.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = std::time::Instant::now();
    for h in subscribers {
        tokio::time::timeout(std::time::Duration::from_secs(120), h)
            .await
            .expect("subscriber finished")
            .unwrap();
    }
    // Every job ends succeeded.
    loop {
        let page: Value = client
            .get(s.at("/v1/jobs?state=succeeded&limit=500"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["jobs"].as_array().unwrap().len() == 200 {
            break;
        }
        assert!(started.elapsed().as_secs() < 120, "jobs did not all finish");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for h in tasks {
        h.await.unwrap();
    }
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    eprintln!(
        "load: {} requests, {} errors, p50 {:.1} ms, p99 {:.1} ms, {} streams to end",
        lat.len(),
        errors.load(Ordering::Relaxed),
        pct(0.5),
        pct(0.99),
        ends.load(Ordering::Relaxed)
    );
    assert_eq!(errors.load(Ordering::Relaxed), 0);
    assert_eq!(ids.len(), 200);
    assert_eq!(ends.load(Ordering::Relaxed), 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_event_stream_gets_keep_alive_comments() {
    use futures_util::StreamExt;
    let s = Server::start_with("docker", None, &["--keep-alive-ms", "200"]);
    let hole = BlackHole::start().await;
    let job: Value = s.accepted(json!({"workflow": "install", "target": unique_target("idle"), "params": {"image": hole.image()}})).await;
    let id = job["id"].as_str().unwrap();
    let resp = http()
        .get(s.at(&format!("/v1/jobs/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let found = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if text.lines().any(|l| l.starts_with(':')) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{text}");
    http()
        .post(s.at(&format!("/v1/jobs/{id}/cancel")))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_watch_reconnects_after_the_server_restarts_and_sees_the_job_end() {
    use std::io::{BufRead, BufReader};
    let _docker = docker().await;
    let mut s = Server::start("docker", None);
    let hole = BlackHole::start().await;
    let job = s
        .accepted(json!({"workflow": "install", "target": unique_target("rewatch"), "params": {"image": hole.image()}}))
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let work = tempfile::tempdir().unwrap();
    let mut watch = s
        .client(work.path())
        .args(["jobs", "watch", &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains(": pull_image image=") {
            break;
        }
    }
    // The server dies mid-job and comes back (same URL); recovery rolls the
    // job back.
    s.restart();
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = watch.wait().unwrap();
    assert!(
        rest.iter().any(|l| l.contains("rolled_back after")),
        "{rest:?}"
    );
    assert!(
        !rest.iter().any(|l| l.contains(": pull_image image=")),
        "no event repeated after reconnecting: {rest:?}"
    );
    assert_eq!(status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_upload_validates_the_component_and_stores_nothing_on_error() {
    let s = Server::start("memory", None);
    let upload = |name: &str, bytes: Vec<u8>| {
        http()
            .post(s.at(&format!("/v1/plugins?name={name}")))
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
    };
    let empty_core_module = b"\0asm\x01\0\0\0".to_vec();
    let empty_component = b"\0asm\x0d\0\x01\0".to_vec();
    let cases: Vec<(u16, &str, Vec<u8>)> = vec![
        (422, "garbage", b"definitely not wasm".to_vec()),
        (422, "core", empty_core_module),
        (422, "no-exports", empty_component),
        (422, "wrong-world", plugin_wasm("deckhand-test-bad-import")),
        (409, "install", plugin_wasm("deckhand-test-hostile")),
        (400, "Bad_Name", plugin_wasm("deckhand-test-hostile")),
    ];
    for (status, name, bytes) in cases {
        let resp = upload(name, bytes).await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{name}");
        let p: Value = resp.json().await.unwrap();
        assert!(!p["detail"].as_str().unwrap().is_empty(), "{name}");
    }
    assert!(!s.dir.path().join("plugins").exists(), "nothing stored");
    let listed = s.get_json("/v1/plugins").await;
    assert_eq!(
        listed.as_array().unwrap().len(),
        4,
        "only the built-ins: {listed}"
    );

    // A good one is stored by digest and runs; replacing it keeps the old digest.
    let first = upload("custom", plugin_wasm("deckhand-test-hostile"))
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let digest = first["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    assert!(
        s.dir
            .path()
            .join("plugins")
            .join(format!("{digest}.wasm"))
            .exists()
    );
    let job: Value = s
        .accepted(json!({"workflow": "custom", "target": "web", "params": {"mode": "many-calls"}}))
        .await;
    assert_eq!(job["plugin_digest"], first["digest"]);
    let second: Value = upload("custom", plugin_wasm("deckhand-test-custom-undo"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(second["digest"], first["digest"]);
    let ended = events_to_end(&s, job["id"].as_str().unwrap()).await;
    assert_eq!(
        ended.last().unwrap().2["state"],
        "rolled_back",
        "the first job ran its own digest to the end"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_server_answers_while_a_slow_recovery_runs() {
    let mut s = Server::start_with_env(
        "memory",
        None,
        &[],
        &[
            ("DECKHAND_COMPENSATION_DEADLINE_S", "60"),
            ("DECKHAND_PLUGIN_CPU_MS", "120000"),
        ],
    );
    let registered = http()
        .post(s.at("/v1/plugins?name=hostile"))
        .header("content-type", "application/wasm")
        .body(plugin_wasm("deckhand-test-hostile"))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    // A job whose own compensation spins: its rollback takes a minute.
    let job = s.accepted(json!({"workflow": "hostile", "target": "slow", "params": {"mode": "slow-compensation"}}),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while s.job(&id).await["state"] != "rolling_back" {
        assert!(std::time::Instant::now() < deadline, "never rolled back");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Killed in the middle of the compensation: the next start recovers it.
    s.restart();
    let asked = std::time::Instant::now();
    let health = http().get(s.at("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(5),
        "the server answers at once, not after the recovery"
    );
    assert_eq!(
        s.job(&id).await["state"],
        "rolling_back",
        "recovery is still at work"
    );
    // The job being recovered still holds its target.
    let busy = s
        .post_job(json!({"workflow": "install", "target": "slow", "params": {"image": "app:1"}}))
        .await;
    assert_eq!(busy.status(), 409);
}

// ---- idempotency and connection hardening ---------------------------------

/// `host:port` of a server.
fn addr_of(s: &Server) -> String {
    s.url.trim_start_matches("http://").to_owned()
}

/// Send `request` on a new connection, and read until the server closes it
/// (or `within` passes): what came back, and whether it closed.
async fn raw_exchange(s: &Server, request: &[u8], within: std::time::Duration) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr_of(s)).await.unwrap();
    conn.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(within, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// The status and problem document of a raw answer.
fn raw_problem(answer: &str) -> (u16, Value) {
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer: {answer:?}"));
    let status = head[9..12].parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\ncontent-type: application/problem+json\r\n"),
        "{head}"
    );
    (status, serde_json::from_str(body).unwrap())
}

fn problem_type(kind: &str) -> String {
    format!("https://deckhand.dev/problems/{kind}")
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_submissions_with_one_idempotency_key_get_one_job() {
    let s = Server::start("memory", None);
    let body = json!({"workflow": "install", "target": "web", "params": {"image": "app:1"}});
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (url, body) = (s.at("/v1/jobs"), body.clone());
        tasks.push(tokio::spawn(async move {
            let resp = http_client()
                .post(url)
                .header("Idempotency-Key", "deploy-42")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let job: Value = resp.json().await.unwrap();
            (status, job)
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        let (status, job) = t.await.unwrap();
        assert!(status == 202 || status == 200, "{status}: {job}");
        ids.insert(job["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one job for every submission: {ids:?}");
    assert_eq!(job_count(&s).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_idempotency_key_with_another_request_is_refused_naming_its_job() {
    let s = Server::start("memory", None);
    let send = |body: Value| {
        http()
            .post(s.at("/v1/jobs"))
            .header("Idempotency-Key", "k-1")
            .json(&body)
            .send()
    };
    let first = send(json!({"workflow": "install", "target": "web", "params": {"image": "app:1", "env": {"A": "1", "B": "2"}}}))
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    // The same request (its members in another order) is the same job.
    let again = send(json!({"params": {"env": {"B": "2", "A": "1"}, "image": "app:1"}, "target": "web", "workflow": "install"}))
        .await
        .unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    for other in [
        json!({"workflow": "install", "target": "web", "params": {"image": "app:2", "env": {"A": "1", "B": "2"}}}),
        json!({"workflow": "install", "target": "api", "params": {"image": "app:1", "env": {"A": "1", "B": "2"}}}),
        json!({"workflow": "install", "target": "web", "params": {"image": "app:1", "env": {"A": "1", "B": "2"}}, "force": true}),
    ] {
        let resp = send(other.clone()).await.unwrap();
        assert_eq!(resp.status(), 422, "{other}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let p: Value = resp.json().await.unwrap();
        assert_eq!(p["type"], problem_type("idempotency-key-reused"));
        assert_eq!(p["existing_job"], first["id"], "{p}");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains(first["id"].as_str().unwrap()),
            "{p}"
        );
    }
    assert_eq!(job_count(&s).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_sending_its_headers_slowly_is_cut_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start_with_env("memory", None, &[], &[("DECKHAND_HEADER_TIMEOUT_S", "1")]);
    let mut conn = tokio::net::TcpStream::connect(addr_of(&s)).await.unwrap();
    let started = std::time::Instant::now();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        .await
        .unwrap();
    // One byte every 200 ms: never idle, never done.
    let cut = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut buf = [0u8; 64];
        loop {
            tokio::select! {
                r = conn.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { return },
                () = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                    if conn.write_all(b"a").await.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await;
    let after = started.elapsed();
    assert!(cut.is_ok(), "the connection stayed open for 10 s");
    assert!(
        after >= std::time::Duration::from_millis(900) && after < std::time::Duration::from_secs(4),
        "cut after {after:?}"
    );
    // The server still answers others.
    let health = http().get(s.at("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_connection_is_closed_but_an_event_stream_is_not() {
    let s = Server::start_with_env(
        "memory",
        None,
        &["--keep-alive-ms", "60000"],
        &[
            ("DECKHAND_IDLE_TIMEOUT_S", "1"),
            // The install waits this long with nothing to say.
            ("DECKHAND_SETTLE_MS", "3000"),
        ],
    );
    let (answer, closed) = raw_exchange(&s, b"", std::time::Duration::from_secs(5)).await;
    assert!(closed && answer.is_empty(), "{closed} {answer:?}");

    let job = s
        .accepted(json!({"workflow": "install", "target": "web", "params": {"image": "app:1"}}))
        .await;
    let started = std::time::Instant::now();
    let events = events_to_end(&s, job["id"].as_str().unwrap()).await;
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "the stream was silent for longer than the idle timeout"
    );
    assert_eq!(events.last().unwrap().1, "end");
    assert_eq!(events.last().unwrap().2["state"], "succeeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_content_length_is_refused_before_the_body_is_sent() {
    let s = Server::start("memory", None);
    for (path, size, limit) in [
        ("/v1/jobs", 10_000_000u64, 64u64 << 10),
        ("/v1/plugins?name=big", (16u64 << 20) + 1, 16 << 20),
    ] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
        );
        let (answer, _) =
            raw_exchange(&s, request.as_bytes(), std::time::Duration::from_secs(3)).await;
        let (status, p) = raw_problem(&answer);
        assert_eq!(status, 413, "{path}: {answer}");
        assert_eq!(p["type"], problem_type("body-too-large"), "{path}");
        assert!(
            p["detail"].as_str().unwrap().contains(&limit.to_string()),
            "{p}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_too_large_plugin_is_refused_as_body_too_large() {
    let s = Server::start("memory", None);
    // Chunked, so that only reading finds out.
    let too_large = (16usize << 20) + 1;
    let mut request = format!(
        "POST /v1/plugins?name=big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TEST_TOKEN}\r\nContent-Type: application/wasm\r\nTransfer-Encoding: chunked\r\n\r\n{too_large:x}\r\n"
    )
    .into_bytes();
    request.extend(std::iter::repeat_n(b'a', too_large));
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    let (answer, _) = raw_exchange(&s, &request, std::time::Duration::from_secs(10)).await;
    let (status, p) = raw_problem(&answer);
    assert_eq!(status, 413, "{answer}");
    assert_eq!(p["type"], problem_type("body-too-large"));
    assert!(!s.dir.path().join("plugins").exists(), "nothing stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_is_a_problem_document_down_to_unparsable_requests() {
    let s = Server::start("memory", None);
    // Answered by the router.
    let cases = [
        (http().get(s.at("/v1/nowhere")), 404, "not-found"),
        (
            http().delete(s.at("/v1/targets")),
            405,
            "method-not-allowed",
        ),
        (http().get(s.at("/v1/jobs/%ff")), 400, "invalid-path"),
        (http().get(s.at("/v1/targets/%ff")), 400, "invalid-path"),
        (
            http().post(s.at("/v1/jobs/%ff/cancel")),
            400,
            "invalid-path",
        ),
    ];
    for (req, status, kind) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{kind}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let p: Value = resp.json().await.unwrap();
        assert_eq!(p["type"], problem_type(kind));
        assert_eq!(p["status"], status);
    }
    // Answered before any route: requests that cannot be parsed.
    let auth = format!("Authorization: Bearer {TEST_TOKEN}\r\n");
    let cases = [
        (
            String::from("GET /healthz HTTP/1.1\r\nHost: x\r\nthis is no header\r\n\r\n"),
            400,
            "malformed-request",
        ),
        (
            String::from("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n"),
            400,
            "malformed-request",
        ),
        (
            format!(
                "GET /v1/jobs HTTP/1.1\r\nHost: x\r\n{auth}X-Big: {}\r\n\r\n",
                "a".repeat(40_000)
            ),
            431,
            "headers-too-large",
        ),
        (
            format!(
                "GET /v1/jobs HTTP/1.1\r\nHost: x\r\n{auth}{}\r\n",
                (0..200)
                    .map(|i| format!("X-{i}: a\r\n"))
                    .collect::<String>()
            ),
            431,
            "headers-too-large",
        ),
    ];
    for (request, status, kind) in cases {
        let (answer, closed) =
            raw_exchange(&s, request.as_bytes(), std::time::Duration::from_secs(3)).await;
        let (got, p) = raw_problem(&answer);
        assert_eq!(got, status, "{kind}: {answer}");
        assert_eq!(p["type"], problem_type(kind));
        assert!(!p["detail"].as_str().unwrap().is_empty());
        assert!(closed, "{kind}: the connection closes after");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let s = Server::start_with_env("memory", None, &[], &[("DECKHAND_MAX_CONNECTIONS", "2")]);
    let one = tokio::net::TcpStream::connect(addr_of(&s)).await.unwrap();
    let _two = tokio::net::TcpStream::connect(addr_of(&s)).await.unwrap();
    let fresh = || {
        http_client_builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let waiting = tokio::spawn({
        let url = s.at("/healthz");
        let client = fresh();
        async move {
            let sent = std::time::Instant::now();
            let resp = client.get(url).send().await.unwrap();
            (resp.status().as_u16(), sent.elapsed())
        }
    });
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection is not served yet"
    );
    drop(one);
    let (status, after) = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert_eq!(status, 200);
    assert!(after >= std::time::Duration::from_secs(1), "{after:?}");
}
