//! Hostile plugins: each misbehaves in one way; the engine keeps serving,
//! the job ends `rolled_back` with a clear error (or, where the attack is
//! to commit, succeeds with each host call refused), and the prior state
//! stays. `attack_<letter>_…` tests replay the attacks A–J of the security
//! review: host network (A), adopted look-alike containers (B), images the
//! engine does not own (C), huge names (D), endless compensations (E),
//! WASI sleeps (F, J), names of other targets (G), what inspecting reveals
//! (H), unbounded sizes and leftovers (I). All on the in-memory runtime;
//! the cases that need Docker (B on real containers, a trap mid-upgrade)
//! are in `tests/e2e/hostile.rs`.

use std::sync::Arc;
use std::time::Instant;

use deckhand::executor::{Executor, JobRequest};
use deckhand::journal::{Event, JobState};
use deckhand::runtime::MemoryRuntime;
use serde_json::json;

use crate::harness::*;

fn hostile_engine() -> (tempfile::TempDir, Executor, Arc<MemoryRuntime>) {
    let rt = Arc::new(MemoryRuntime::new());
    let (dir, executor) = memory_engine(rt.clone());
    executor
        .host()
        .register("hostile", &plugin_wasm("deckhand-test-hostile"), false)
        .unwrap();
    (dir, executor, rt)
}

/// Run a hostile mode on target `web` (installed first) while a normal
/// install on another target must still finish promptly.
async fn hostile(mode: &str, expected_error: &str) -> std::time::Duration {
    let (_dir, executor, rt) = hostile_engine();
    assert_eq!(
        submit_and_wait(&executor, "install", "web", json!({"image": "app:1"}))
            .await
            .state,
        JobState::Succeeded
    );
    let before = (rt.containers(), rt.images());
    let started = Instant::now();
    let bad = executor
        .submit(JobRequest::new("hostile", "web", json!({"mode": mode})))
        .await
        .unwrap();
    let other = submit_and_wait(&executor, "install", "other", json!({"image": "app:2"})).await;
    assert_eq!(other.state, JobState::Succeeded, "other jobs go on");
    assert!(
        started.elapsed().as_secs() < 5,
        "{mode}: other job waited {:?}",
        started.elapsed()
    );
    let done = executor.wait(&bad.id).await.unwrap();
    let took = started.elapsed();
    assert_eq!(done.state, JobState::RolledBack, "{mode}");
    let error = done.error.unwrap();
    assert!(error.contains(expected_error), "{mode}: {error}");
    let web: std::collections::BTreeMap<_, _> = rt
        .containers()
        .into_iter()
        .filter(|(_, c)| c.label("io.deckhand.target") == Some("web"))
        .collect();
    let web_before: std::collections::BTreeMap<_, _> = before
        .0
        .into_iter()
        .filter(|(_, c)| c.label("io.deckhand.target") == Some("web"))
        .collect();
    assert_eq!(web, web_before, "{mode}: prior state intact");
    took
}

#[tokio::test(flavor = "multi_thread")]
async fn an_infinite_loop_ends_the_job_not_the_engine() {
    let took = hostile("loop", "CPU time limit").await;
    eprintln!("infinite loop → rolled back in {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_bomb_hits_the_memory_limit() {
    hostile("memory", "memory").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_recursion_traps_cleanly() {
    hostile("recursion", "plugin trapped").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_string_is_refused_by_the_host() {
    hostile("huge-string", "limit is 65536").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_host_calls_hit_the_call_limit() {
    hostile("many-calls", "limit of 10000 host calls").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_h_inspecting_another_targets_container_answers_as_for_a_missing_one_and_journals_nothing_of_it()
 {
    let (_dir, executor, rt) = hostile_engine();
    let other = submit_and_wait(&executor, "install", "other", json!({"image": "app:1"})).await;
    assert_eq!(other.state, JobState::Succeeded);
    let (other_id, other_state) = rt.containers().into_iter().next().unwrap();
    let probe = |container: &str| {
        let executor = executor.clone();
        let container = container.to_owned();
        async move {
            submit_and_wait(
                &executor,
                "hostile",
                "spy",
                json!({"mode": "inspect", "container": container}),
            )
            .await
        }
    };
    let foreign = probe("deckhand-other").await;
    let missing = probe("deckhand-nobody").await;
    let answer = |job: &deckhand::journal::JobRecord, name: &str| {
        job.error.clone().unwrap().replace(name, "NAME")
    };
    assert_eq!(
        answer(&foreign, "deckhand-other"),
        answer(&missing, "deckhand-nobody"),
        "a foreign container is answered exactly like a missing one"
    );
    let events = executor.journal().events(&foreign.id, 0).unwrap();
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(&other_id), "its id is not journaled");
    for (k, v) in &other_state.labels {
        if k == "io.deckhand.job" {
            assert!(!text.contains(v.as_str()), "nor its labels");
        }
    }
    assert!(rt.containers()[&other_id].running, "and it still runs");
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_a_a_plugin_cannot_put_a_container_on_the_hosts_network_unless_the_server_allows_it()
{
    for network in ["host", "container:deckhand-other"] {
        let (_dir, executor, rt) = hostile_engine();
        let job = submit_and_wait(
            &executor,
            "hostile",
            "web",
            json!({"mode": "network", "image": "app:1", "network": network}),
        )
        .await;
        assert_eq!(job.state, JobState::RolledBack, "{network}");
        let error = job.error.unwrap();
        assert!(
            error.contains("denied") && error.contains("DECKHAND_ALLOW_HOST_NETWORK"),
            "{network}: {error}"
        );
        assert!(rt.containers().is_empty(), "{network}: nothing created");
    }
    // An operator who allows it gets it.
    let rt = std::sync::Arc::new(deckhand::runtime::MemoryRuntime::new());
    let settings = deckhand::plugin::HostSettings {
        allow_host_network: true,
        ..quick_settings()
    };
    let (_dir, executor) = memory_engine_with(rt.clone(), settings);
    executor
        .host()
        .register("hostile", &plugin_wasm("deckhand-test-hostile"), false)
        .unwrap();
    let job = submit_and_wait(
        &executor,
        "hostile",
        "web",
        json!({"mode": "network", "image": "app:1", "network": "host"}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_a_an_install_asking_for_the_hosts_network_is_refused_before_a_job_exists() {
    let (_dir, executor, _rt) = hostile_engine();
    let refused = executor
        .submit(JobRequest::new(
            "install",
            "web",
            json!({"image": "app:1", "network": "host"}),
        ))
        .await;
    match refused {
        Err(deckhand::executor::SubmitError::InvalidParams(m)) => {
            assert!(m.contains("`network`"), "{m}")
        }
        other => panic!("expected invalid params, got {other:?}"),
    }
    assert_no_jobs(executor.journal());
}

#[test]
fn a_component_importing_an_interface_the_host_does_not_provide_is_rejected_at_registration() {
    let host = deckhand::plugin::PluginHost::new(None).unwrap();
    let err = host
        .register("bad", &plugin_wasm("deckhand-test-bad-import"), false)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("not a valid Deckhand workflow component"),
        "{err}"
    );
    assert!(host.get("bad").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_c_a_plugin_cannot_have_an_image_it_does_not_own_removed() {
    let (_dir, executor, rt) = hostile_engine();
    rt.add_image("users-own:1");
    assert_eq!(
        submit_and_wait(&executor, "install", "web", json!({"image": "app:1"}))
            .await
            .state,
        JobState::Succeeded
    );
    let job = submit_and_wait(
        &executor,
        "hostile",
        "web",
        json!({"mode": "foreign-image", "image": "users-own:1"}),
    )
    .await;
    assert_eq!(job.state, JobState::RolledBack);
    assert!(
        job.error
            .as_deref()
            .unwrap()
            .contains("denied: image users-own:1 is not `web`'s"),
        "{:?}",
        job.error
    );
    assert!(
        rt.images().contains("users-own:1"),
        "the user's image stays"
    );
}

/// Attacks F and J: WASI timers are frozen like the clocks. A guest's
/// 90 s sleep is due at once (it cannot hold its job, nor a cancel of it),
/// its clock does not move, and a replay takes the same path.
#[tokio::test(flavor = "multi_thread")]
async fn attack_f_j_a_wasi_sleep_takes_no_time_and_the_guest_clock_stands_still_so_replay_agrees() {
    let (_dir, executor, rt) = hostile_engine();
    let before = (rt.containers(), rt.images());
    let started = Instant::now();
    let done = submit_and_wait(&executor, "hostile", "web", json!({"mode": "sleep"})).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the sleep took {:?}",
        started.elapsed()
    );
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    let summary = done.summary.clone().unwrap();
    assert_eq!(summary, "slept 90 s; the guest's clock moved 0ns");
    assert_eq!((rt.containers(), rt.images()), before, "nothing changed");
    let host = executor.host();
    let report = deckhand::replay::replay(host, executor.journal(), &done, None, None)
        .await
        .unwrap();
    assert!(report.divergence.is_none(), "{:?}", report.divergence);
    assert!(report.same_outcome);
    assert_eq!(
        report.end,
        deckhand::replay::ReplayEnd::Finished { summary }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_e_a_compensation_past_its_deadline_ends_the_job_failed_with_its_undo_kept() {
    let rt = std::sync::Arc::new(deckhand::runtime::MemoryRuntime::new());
    // Guest CPU time would stop the spinning compensation too; the
    // wall-clock deadline comes first here.
    let settings = deckhand::plugin::HostSettings {
        max_compensation_time: std::time::Duration::from_secs(1),
        max_guest_time: std::time::Duration::from_secs(600),
        ..quick_settings()
    };
    let (_dir, executor) = memory_engine_with(rt, settings);
    executor
        .host()
        .register("hostile", &plugin_wasm("deckhand-test-hostile"), false)
        .unwrap();
    let started = Instant::now();
    let done = submit_and_wait(
        &executor,
        "hostile",
        "web",
        json!({"mode": "slow-compensation"}),
    )
    .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(done.state, JobState::Failed);
    let error = done.error.unwrap();
    assert!(error.contains("deadline"), "{error}");
    let plan =
        deckhand::executor::plan::rollback_plan(&executor.journal().events(&done.id, 0).unwrap());
    assert_eq!(plan.len(), 1, "the compensation is still to run");
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_i_a_job_creating_more_containers_than_its_cap_is_refused_and_leaves_none() {
    let (_dir, executor, rt) = hostile_engine();
    let done = submit_and_wait(
        &executor,
        "hostile",
        "web",
        json!({"mode": "many-containers", "image": "app:1", "n": 40}),
    )
    .await;
    assert_eq!(done.state, JobState::RolledBack);
    let error = done.error.unwrap();
    assert!(
        error.contains("at most 16 containers") && error.contains("DECKHAND_MAX_CONTAINERS"),
        "{error}"
    );
    assert!(rt.containers().is_empty(), "{:?}", rt.containers());
    assert!(rt.images().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_i_a_job_registering_more_compensations_than_its_cap_is_refused_and_rolls_back() {
    let (_dir, executor, _rt) = hostile_engine();
    let done = submit_and_wait(
        &executor,
        "hostile",
        "web",
        json!({"mode": "many-compensations", "n": 1500}),
    )
    .await;
    assert_eq!(done.state, JobState::RolledBack, "{:?}", done.error);
    let error = done.error.unwrap();
    assert!(error.contains("at most 1000 compensations"), "{error}");
    let undone = executor
        .journal()
        .events(&done.id, 0)
        .unwrap()
        .iter()
        .filter(|e| matches!(e.event, deckhand::journal::Event::UndoResult { .. }))
        .count();
    assert_eq!(undone, 1000, "every registered compensation ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_d_a_container_name_with_a_huge_suffix_is_refused_before_anything_is_created() {
    let (_dir, executor, rt) = hostile_engine();
    let installed = submit_and_wait(&executor, "install", "web", json!({"image": "app:1"})).await;
    assert_eq!(installed.state, JobState::Succeeded);
    let before = rt.containers();
    let done = submit_and_wait(
        &executor,
        "hostile",
        "web",
        json!({"mode": "long-name", "image": "app:1", "n": 70_000}),
    )
    .await;
    assert_eq!(done.state, JobState::RolledBack);
    let error = done.error.unwrap();
    assert!(error.contains("invalid argument"), "{error}");
    assert!(
        error.len() < 4096,
        "the refusal is short: {} bytes",
        error.len()
    );
    assert_eq!(rt.containers(), before, "the live container is untouched");
}

/// Containers of `target` by their labels (what a label-trusting engine
/// would have taken for the target's).
fn labelled(
    rt: &MemoryRuntime,
    target: &str,
) -> std::collections::BTreeMap<String, deckhand::runtime::ContainerState> {
    rt.containers()
        .into_iter()
        .filter(|(_, c)| c.label("io.deckhand.target") == Some(target))
        .collect()
}

/// Attack C, first half: an image the engine pulled and removed again (a
/// rolled-back job), then pulled by the user, is the user's: a revision
/// cannot claim it for a container made from another image, and a removal
/// at commit is refused.
#[tokio::test(flavor = "multi_thread")]
async fn attack_c_an_image_the_user_pulled_after_the_engine_removed_it_cannot_be_claimed_or_removed()
 {
    let (_dir, executor, rt) = hostile_engine();
    let failed = submit_and_wait(
        &executor,
        "hostile",
        "web",
        json!({"mode": "many-containers", "n": 0, "image": "v:1"}),
    )
    .await;
    assert_eq!(failed.state, JobState::RolledBack);
    assert!(!rt.images().contains("v:1:latest") && !rt.images().contains("v:1"));
    rt.add_image("v:1");
    let install = submit_and_wait(&executor, "install", "web", json!({"image": "app:1"})).await;
    assert_eq!(install.state, JobState::Succeeded);

    let job = submit_and_wait(
        &executor,
        "hostile",
        "web",
        json!({"mode": "fake-revision", "image": "app:2", "claimed": "v:1"}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let answers = job.summary.unwrap();
    assert!(
        answers.contains("record-revision: invalid") && answers.contains("runs image app:2"),
        "{answers}"
    );
    assert!(
        answers.contains("remove-image-at-commit: denied"),
        "{answers}"
    );
    assert!(rt.images().contains("v:1"), "the user's image stays");
    let web = executor.journal().target("web").unwrap().unwrap();
    assert_eq!(web.current.unwrap().image, "app:1", "no revision claims it");

    let teardown = submit_and_wait(&executor, "teardown", "web", json!({})).await;
    assert_eq!(teardown.state, JobState::Succeeded, "{:?}", teardown.error);
    assert!(rt.images().contains("v:1"), "teardown leaves it too");
}

/// Attack C, second half: the engine pulled an image, then the user pulled
/// a newer one under the same name. The name is the user's now: teardown
/// removes only the image id the engine brought.
#[tokio::test(flavor = "multi_thread")]
async fn attack_c_teardown_leaves_an_image_whose_name_was_moved_to_another_pull() {
    let (_dir, executor, rt) = hostile_engine();
    let install = submit_and_wait(&executor, "install", "web", json!({"image": "app:1"})).await;
    assert_eq!(install.state, JobState::Succeeded);
    rt.retag_image("app:1", "sha256:users-newer-pull");
    let teardown = submit_and_wait(&executor, "teardown", "web", json!({})).await;
    assert_eq!(teardown.state, JobState::Succeeded, "{:?}", teardown.error);
    assert!(rt.images().contains("app:1"), "the moved name stays");
    assert!(labelled(&rt, "web").is_empty(), "the container went");

    // Unmoved, the engine's own pull goes with the target.
    let install = submit_and_wait(&executor, "install", "api", json!({"image": "app:3"})).await;
    assert_eq!(install.state, JobState::Succeeded);
    let teardown = submit_and_wait(&executor, "teardown", "api", json!({})).await;
    assert_eq!(teardown.state, JobState::Succeeded, "{:?}", teardown.error);
    assert!(
        !rt.images().contains("app:3"),
        "the engine's pull is removed"
    );
}

/// Attack I: a plugin that leaves extra containers behind in a committed
/// job does not leave them for good: the commit removes every container the
/// job made that the target's revision does not run, and teardown every
/// container the engine created for the target, and only those.
#[tokio::test(flavor = "multi_thread")]
async fn attack_i_teardown_removes_every_container_the_engine_created_for_the_target() {
    let (_dir, executor, rt) = hostile_engine();
    for target in ["web", "other"] {
        let install =
            submit_and_wait(&executor, "install", target, json!({"image": "app:1"})).await;
        assert_eq!(install.state, JobState::Succeeded);
    }
    let extra = submit_and_wait(
        &executor,
        "hostile",
        "web",
        json!({"mode": "extra-containers", "n": 3, "image": "app:1"}),
    )
    .await;
    assert_eq!(extra.state, JobState::Succeeded, "{:?}", extra.error);
    assert_eq!(labelled(&rt, "web").len(), 1, "the extras went at commit");
    assert!(
        executor
            .journal()
            .events(&extra.id, 0)
            .unwrap()
            .iter()
            .filter(|e| matches!(e.event, Event::Released { .. }))
            .count()
            >= 3,
        "and the journal released them"
    );
    let other_before = labelled(&rt, "other");

    let teardown = submit_and_wait(&executor, "teardown", "web", json!({})).await;
    assert_eq!(teardown.state, JobState::Succeeded, "{:?}", teardown.error);
    assert!(
        labelled(&rt, "web").is_empty(),
        "{:?}",
        labelled(&rt, "web")
    );
    assert_eq!(
        labelled(&rt, "other"),
        other_before,
        "another target's stay"
    );
    assert!(
        executor
            .journal()
            .owned_by_target("container", "web")
            .unwrap()
            .is_empty(),
        "and the journal no longer counts them as the engine's"
    );
}

/// The names target `p`'s hostile plugin tries: `deckhand-p-q` is target
/// `p-q`'s live name, `deckhand-p-q-Web` another of its names, and
/// `deckhand-p-next` target `p-next`'s.
const SQUATTED: [&str; 3] = ["deckhand-p-q", "deckhand-p-next", "deckhand-p-q-Web"];

/// Run the hostile plugin on `p` asking for a container named `name`; its
/// answer.
async fn ask_for_name(executor: &deckhand::executor::Executor, name: &str) -> String {
    let job = submit_and_wait(
        executor,
        "hostile",
        "p",
        json!({"mode": "name", "image": "app:1", "name": name}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    job.summary.unwrap()
}

/// Attack G: target `p`'s plugin asks for the names of targets `p-q` and
/// `p-next`. Before those exist, each is a name of a service of `p`'s
/// (`q`, `next`), which `p` may run — but a container a job made that its
/// revision does not run is removed at commit, so `p` keeps none of them
/// and `p-q` and `p-next` install as usual. Once they are installed, the
/// names are theirs and `p`'s plugin is denied them; `p` upgrades as usual.
#[tokio::test(flavor = "multi_thread")]
async fn attack_g_no_name_of_one_target_can_be_a_name_of_another() {
    let (_dir, executor, rt) = hostile_engine();
    let install = submit_and_wait(&executor, "install", "p", json!({"image": "app:1"})).await;
    assert_eq!(install.state, JobState::Succeeded);
    let before = rt.containers();
    for squatted in SQUATTED {
        let answer = ask_for_name(&executor, squatted).await;
        assert_eq!(answer, "create: allowed", "{squatted}");
        assert_eq!(
            rt.containers(),
            before,
            "{squatted} did not outlive the job"
        );
    }
    for target in ["p-q", "p-next"] {
        let install =
            submit_and_wait(&executor, "install", target, json!({"image": "app:1"})).await;
        assert_eq!(install.state, JobState::Succeeded, "{:?}", install.error);
    }
    let before = rt.containers();
    for squatted in SQUATTED {
        let answer = ask_for_name(&executor, squatted).await;
        let holder = if squatted.contains("next") {
            "p-next"
        } else {
            "p-q"
        };
        assert!(
            answer.contains(&format!("denied: the name `deckhand-{holder}`"))
                && answer.contains(&format!("is target `{holder}`'s")),
            "{squatted}: {answer}"
        );
        assert_eq!(rt.containers(), before, "nothing was created");
    }
    let upgrade = submit_and_wait(&executor, "upgrade", "p", json!({"image": "app:2"})).await;
    assert_eq!(upgrade.state, JobState::Succeeded, "{:?}", upgrade.error);
    let names: std::collections::BTreeSet<String> =
        rt.containers().into_values().map(|c| c.name).collect();
    assert_eq!(
        names,
        ["deckhand-p", "deckhand-p-next", "deckhand-p-q"]
            .map(String::from)
            .into()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_k_a_plugin_cannot_use_or_remove_volumes_and_networks_it_did_not_make_available() {
    let (_dir, executor, rt) = hostile_engine();
    let other = submit_and_wait(
        &executor,
        "install",
        "other",
        json!({"image": "app:1", "volumes": ["data:/d"], "networks": ["othernet"]}),
    )
    .await;
    assert_eq!(other.state, JobState::Succeeded, "{:?}", other.error);
    let victim = "deckhand-other-V-data";
    rt.write_volume_file(victim, "secret", b"theirs").unwrap();
    let web = submit_and_wait(&executor, "install", "web", json!({"image": "app:1"})).await;
    assert_eq!(web.state, JobState::Succeeded, "{:?}", web.error);
    let (containers, volumes, networks) = (rt.containers(), rt.volumes(), rt.networks());
    let job = submit_and_wait(
        &executor,
        "hostile",
        "web",
        json!({"mode": "resources", "image": "app:1", "volume": victim, "network": "othernet"}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let answers = job.summary.unwrap();
    for what in [
        "mount",
        "snapshot",
        "remove-volume",
        "bind",
        "label",
        "join",
        "remove-network",
    ] {
        let line = answers
            .lines()
            .find(|l| l.starts_with(&format!("{what}: ")))
            .unwrap_or_else(|| panic!("no answer for {what}: {answers}"));
        assert!(line.contains("denied"), "{line}");
    }
    assert_eq!(rt.volumes(), volumes);
    assert_eq!(rt.networks(), networks);
    assert_eq!(rt.volume_files(victim).unwrap()["secret"], b"theirs");
    assert_eq!(rt.containers(), containers, "nothing left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn attack_l_batched_calls_are_bounded_and_checked_one_by_one_and_create_nothing_when_refused()
{
    let (_dir, executor, rt) = hostile_engine();
    let other = submit_and_wait(
        &executor,
        "install",
        "other",
        json!({"image": "app:1", "volumes": ["data:/d"]}),
    )
    .await;
    assert_eq!(other.state, JobState::Succeeded, "{:?}", other.error);
    let (containers, volumes, images) = (rt.containers(), rt.volumes(), rt.images());
    let job = submit_and_wait(
        &executor,
        "hostile",
        "web",
        json!({"mode": "batches", "image": "app:1", "volume": "deckhand-other-V-data"}),
    )
    .await;
    assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
    let answers = job.summary.unwrap();
    for (what, says) in [
        ("duplicate-names", "asked for twice"),
        ("too-many-creates", "the most is 32"),
        ("foreign-label-in-batch", "denied"),
        ("too-many-pulls", "more than 32 images"),
        ("long-label", "the most is 64"),
        ("engine-volume", "engine's own"),
    ] {
        let line = answers
            .lines()
            .find(|l| l.starts_with(&format!("{what}: ")))
            .unwrap_or_else(|| panic!("no answer for {what}: {answers}"));
        assert!(line.contains(says), "{line}");
    }
    assert_eq!(rt.containers(), containers, "nothing was created");
    assert_eq!(rt.volumes(), volumes);
    assert_eq!(rt.images(), images);
}
