//! The Docker runtime alone (no engine, no plugin) on the test daemon, for
//! what real apps need: a published port on a user-defined network, volumes
//! and networks with Docker's own semantics made safe (idempotent volume
//! create, no duplicate networks, nothing removed from under a stopped
//! container), copying a volume through the archive API, and pulls from a
//! registry that requires credentials without the credentials showing
//! anywhere. Every test uses names of its own, so they run in parallel.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptionsBuilder, ListNetworksOptionsBuilder};
use deckhand::runtime::{
    ContainerConfig, ContainerRuntime, DockerRuntime, HealthCheck, ImageSource, LABEL_HELPER,
    LABEL_JOB, LABEL_MANAGED, Mount, MountKind, NetworkAttachment, PortBinding, PullTracker,
    RegistryAuth, RestartPolicy, RuntimeError,
};
use tokio_util::sync::CancellationToken;

use crate::harness::*;

/// The runtime under test, after checking (through the harness) that the
/// daemon answers: without one the test fails, naming up.sh.
async fn runtime() -> (DockerRuntime, Docker) {
    let docker = docker().await;
    (DockerRuntime::connect().unwrap(), docker)
}

async fn pull(rt: &DockerRuntime, image: &str) -> Result<(), RuntimeError> {
    let (tx, _rx) = tokio::sync::watch::channel(PullTracker::new().progress());
    rt.pull_image(image, &tx, &CancellationToken::new()).await
}

async fn ensure_pulled(rt: &DockerRuntime, image: &str) {
    if !rt.image_present(image).await.unwrap() {
        pull(rt, image).await.unwrap();
    }
}

fn labels(job: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED.to_owned(), "true".to_owned()),
        (LABEL_JOB.to_owned(), job.to_owned()),
    ])
}

/// A container of the web image (busybox with every applet) that runs `script`.
fn shell(name: &str, script: &str, mounts: Vec<Mount>) -> ContainerConfig {
    ContainerConfig {
        name: name.to_owned(),
        image: image("web:1"),
        cmd: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
        network: Some("none".into()),
        mounts,
        labels: labels("runtime-real-apps"),
        ..Default::default()
    }
}

fn volume_at(volume: &str, target: &str) -> Mount {
    Mount {
        kind: MountKind::Volume,
        source: volume.to_owned(),
        target: target.to_owned(),
        read_only: false,
    }
}

/// Run a shell script to its end in a fresh container; its output.
async fn run_script(rt: &DockerRuntime, name: &str, script: &str, mounts: Vec<Mount>) -> String {
    let id = rt
        .create_container(&shell(name, script, mounts))
        .await
        .unwrap();
    rt.start_container(&id).await.unwrap();
    assert!(
        rt.wait_not_running(&id, Duration::from_secs(60))
            .await
            .unwrap()
    );
    let state = rt.inspect_container(&id).await.unwrap().unwrap();
    let out = rt.log_tail(&id, 1 << 20).await.unwrap();
    rt.remove_container(&id).await.unwrap();
    assert_eq!(state.exit_code, Some(0), "{script}: {out}");
    out
}

/// The containers that use volume `name`, whatever their state.
async fn volume_users(docker: &Docker, name: &str) -> Vec<String> {
    let filters = HashMap::from([("volume", vec![name.to_owned()])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let listed = docker.list_containers(Some(options)).await.unwrap();
    listed.into_iter().filter_map(|c| c.id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_web_server_on_user_defined_networks_answers_on_a_published_loopback_port() {
    let (rt, docker) = runtime().await;
    let name = unique_target("rt-web");
    let (net, net2) = (format!("{name}-front"), format!("{name}-back"));
    let web = image("web:1");
    ensure_pulled(&rt, &web).await;
    rt.create_network(&net, &labels("j")).await.unwrap();
    rt.create_network(&net2, &labels("j")).await.unwrap();
    let port = free_port();
    let config = ContainerConfig {
        name: format!("deckhand-{name}"),
        image: web.clone(),
        labels: labels("j"),
        ports: vec![PortBinding {
            host_ip: Some("127.0.0.1".into()),
            host_port: Some(port),
            container_port: 80,
            protocol: "tcp".into(),
        }],
        networks: vec![
            NetworkAttachment {
                name: net.clone(),
                aliases: vec!["web".into()],
            },
            NetworkAttachment {
                name: net2.clone(),
                aliases: vec!["web-back".into()],
            },
        ],
        restart: Some(RestartPolicy::OnFailure {
            max_retries: Some(2),
        }),
        memory_bytes: Some(64 * 1024 * 1024),
        nano_cpus: Some(500_000_000),
        health_check: Some(HealthCheck {
            test: vec![
                "CMD-SHELL".into(),
                "wget -q -O /dev/null http://127.0.0.1/".into(),
            ],
            interval_ms: Some(500),
            timeout_ms: Some(2_000),
            retries: Some(3),
            start_period_ms: Some(200),
        }),
        stop_timeout_s: Some(7),
        workdir: Some("/www".into()),
        ..Default::default()
    };
    let id = rt.create_container(&config).await.unwrap();

    // What the daemon recorded.
    let inspected = docker.inspect_container(&id, None).await.unwrap();
    let host = inspected.host_config.clone().unwrap();
    assert_eq!(host.memory, Some(64 * 1024 * 1024));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.network_mode.as_deref(), Some(net.as_str()));
    let policy = host.restart_policy.unwrap();
    assert_eq!(policy.name.unwrap().to_string(), "on-failure");
    assert_eq!(policy.maximum_retry_count, Some(2));
    let bound = &host.port_bindings.unwrap()["80/tcp"];
    let bound = bound.as_ref().unwrap();
    assert_eq!(bound[0].host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(bound[0].host_port, Some(port.to_string()));
    let cfg = inspected.config.unwrap();
    assert_eq!(cfg.stop_timeout, Some(7));
    assert_eq!(cfg.working_dir.as_deref(), Some("/www"));
    assert_eq!(cfg.healthcheck.unwrap().interval, Some(500_000_000));
    // Both networks, each with its alias, before it ever started.
    let networks = inspected
        .network_settings
        .unwrap()
        .networks
        .unwrap_or_default();
    assert!(
        networks[&net]
            .aliases
            .as_ref()
            .is_some_and(|a| a.contains(&"web".to_string())),
        "{networks:?}"
    );
    assert!(
        networks[&net2]
            .aliases
            .as_ref()
            .is_some_and(|a| a.contains(&"web-back".to_string())),
        "{networks:?}"
    );

    rt.start_container(&id).await.unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => break r.text().await.unwrap(),
            other => {
                assert!(Instant::now() < deadline, "{url} never answered: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(body.trim(), "1");
    // The daemon's health check (wget inside it) passes.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = rt.inspect_container(&id).await.unwrap().unwrap();
        if state.health.as_deref() == Some("healthy") {
            break;
        }
        assert!(Instant::now() < deadline, "never healthy: {state:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Both networks list it.
    for n in [&net, &net2] {
        let state = rt.inspect_network(n).await.unwrap().unwrap();
        assert_eq!(state.containers, vec![id.clone()], "{n}");
    }
    // The shell's trap makes a stop prompt, well within its grace.
    let t = Instant::now();
    rt.stop_container(&id, 7).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    rt.remove_container(&id).await.unwrap();
    rt.remove_network(&net).await.unwrap();
    rt.remove_network(&net2).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_whose_second_network_is_missing_is_not_left_behind() {
    let (rt, _docker) = runtime().await;
    let name = unique_target("rt-halfnet");
    let web = image("web:1");
    ensure_pulled(&rt, &web).await;
    let net = format!("{name}-net");
    rt.create_network(&net, &labels("j")).await.unwrap();
    let config = ContainerConfig {
        name: format!("deckhand-{name}"),
        image: web,
        networks: vec![
            NetworkAttachment {
                name: net.clone(),
                aliases: vec![],
            },
            NetworkAttachment {
                name: format!("{name}-missing"),
                aliases: vec![],
            },
        ],
        ..Default::default()
    };
    let e = rt.create_container(&config).await.unwrap_err();
    assert!(e.to_string().contains("-missing"), "{e}");
    assert_eq!(rt.inspect_container(&config.name).await.unwrap(), None);
    // Nothing on the network any more: it can go.
    rt.remove_network(&net).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn create_volume_is_idempotent_and_answers_the_first_creators_labels() {
    let (rt, _docker) = runtime().await;
    let vol = unique_target("rt-vol");
    let first = rt.create_volume(&vol, &labels("job-1")).await.unwrap();
    assert_eq!(first.name, vol);
    assert_eq!(first.labels, labels("job-1"));
    let again = rt.create_volume(&vol, &labels("job-2")).await.unwrap();
    assert_eq!(
        again.labels,
        labels("job-1"),
        "an existing volume is untouched"
    );
    assert_eq!(
        rt.inspect_volume(&vol).await.unwrap().map(|v| v.labels),
        Some(labels("job-1"))
    );

    // In use by a container that never ran: not removed.
    let web = image("web:1");
    ensure_pulled(&rt, &web).await;
    let id = rt
        .create_container(&shell(&vol, "true", vec![volume_at(&vol, "/data")]))
        .await
        .unwrap();
    let e = rt.remove_volume(&vol).await.unwrap_err();
    assert!(matches!(e, RuntimeError::Conflict(_)), "{e}");
    assert!(rt.inspect_volume(&vol).await.unwrap().is_some());
    rt.remove_container(&id).await.unwrap();

    rt.remove_volume(&vol).await.unwrap();
    assert_eq!(rt.inspect_volume(&vol).await.unwrap(), None);
    rt.remove_volume(&vol).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn create_network_never_makes_two_of_one_name_under_concurrent_calls() {
    let (_, docker) = runtime().await;
    let net = unique_target("rt-dup");
    // Calls sharing one runtime (serialized by its per-name lock) and calls
    // from separate runtimes (as separate processes would: deduplicated
    // after the fact).
    let runtimes: Vec<DockerRuntime> = (0..3).map(|_| DockerRuntime::connect().unwrap()).collect();
    let calls = runtimes.iter().enumerate().flat_map(|(r, rt)| {
        let net = net.clone();
        (0..4).map(move |i| {
            let net = net.clone();
            async move {
                rt.create_network(&net, &labels(&format!("job-{r}-{i}")))
                    .await
            }
        })
    });
    let results = futures_util::future::join_all(calls).await;
    let states: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    let first = &states[0];
    for s in &states {
        assert_eq!(s.id, first.id, "every caller got the one network");
        assert_eq!(s.labels, first.labels, "with the creator's labels");
    }
    let filters = HashMap::from([("name", vec![net.clone()])]);
    let listed = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap();
    let same: Vec<_> = listed
        .iter()
        .filter(|n| n.name.as_deref() == Some(net.as_str()))
        .collect();
    assert_eq!(same.len(), 1, "{same:?}");
    assert_eq!(same[0].id.as_ref(), Some(&first.id));

    let rt = &runtimes[0];
    assert_eq!(
        rt.create_network(&net, &labels("later")).await.unwrap().id,
        first.id
    );
    rt.remove_network(&net).await.unwrap();
    assert_eq!(rt.inspect_network(&net).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_network_refuses_while_a_stopped_container_is_on_it() {
    let (rt, _docker) = runtime().await;
    let net = unique_target("rt-busy");
    let web = image("web:1");
    ensure_pulled(&rt, &web).await;
    let created = rt.create_network(&net, &labels("j")).await.unwrap();
    let mut config = shell(&net, "true", vec![]);
    config.network = None;
    config.networks = vec![NetworkAttachment {
        name: net.clone(),
        aliases: vec![],
    }];
    let id = rt.create_container(&config).await.unwrap();
    // Created, never started: on it all the same.
    let state = rt.inspect_network(&net).await.unwrap().unwrap();
    assert_eq!(state.id, created.id);
    assert_eq!(state.containers, vec![id.clone()]);
    let e = rt.remove_network(&net).await.unwrap_err();
    assert!(matches!(e, RuntimeError::Conflict(_)), "{e}");
    // Ran and exited: still on it, still refused.
    rt.start_container(&id).await.unwrap();
    assert!(
        rt.wait_not_running(&id, Duration::from_secs(30))
            .await
            .unwrap()
    );
    let e = rt.remove_network(&created.id).await.unwrap_err();
    assert!(matches!(e, RuntimeError::Conflict(_)), "{e}");
    // And it can start again, its network being there.
    rt.start_container(&id).await.unwrap();
    assert!(
        rt.wait_not_running(&id, Duration::from_secs(30))
            .await
            .unwrap()
    );
    let state = rt.inspect_container(&id).await.unwrap().unwrap();
    assert_eq!(state.exit_code, Some(0));

    rt.remove_container(&id).await.unwrap();
    rt.remove_network(&net).await.unwrap();
    assert_eq!(rt.inspect_network(&net).await.unwrap(), None);
    rt.remove_network(&net).await.unwrap();
}

/// Every entry of the volume mounted at /data: path, mode, owner, type,
/// symlink target, and a checksum of each file.
const LISTING: &str = "cd /data && find . | sort | while read -r f; do \
    if [ -L \"$f\" ]; then echo \"$f $(stat -c '%a %u %g' \"$f\") link $(readlink \"$f\")\"; \
    elif [ -d \"$f\" ]; then echo \"$f $(stat -c '%a %u %g' \"$f\") dir\"; \
    else echo \"$f $(stat -c '%a %u %g %s' \"$f\") $(md5sum < \"$f\")\"; fi; done";

#[tokio::test(flavor = "multi_thread")]
async fn copy_volume_copies_content_modes_owners_and_symlinks() {
    let (rt, docker) = runtime().await;
    let base = unique_target("rt-copy");
    let (src, dst) = (format!("{base}-src"), format!("{base}-dst"));
    let helper = image("web:1");
    ensure_pulled(&rt, &helper).await;
    rt.create_volume(&src, &labels("j")).await.unwrap();
    run_script(
        &rt,
        &format!("{base}-fill"),
        "set -e; chmod 750 /data; chown 99:98 /data; mkdir -p /data/sub/deep; \
         echo hello > /data/sub/f; chmod 640 /data/sub/f; chown 1000:1001 /data/sub/f; \
         chmod 700 /data/sub/deep; chown 5:6 /data/sub/deep; \
         ln -s sub/f /data/link; head -c 3000000 /dev/urandom > /data/big; \
         touch /data/empty; chmod 4755 /data/empty",
        vec![volume_at(&src, "/data")],
    )
    .await;
    let before = run_script(
        &rt,
        &format!("{base}-list1"),
        LISTING,
        vec![volume_at(&src, "/data")],
    )
    .await;
    assert!(before.contains(". 750 99 98 dir"), "{before}");
    assert!(before.contains("./link 777 0 0 link sub/f"), "{before}");
    assert!(before.contains("./sub/f 640 1000 1001 6"), "{before}");

    // Into a missing volume: refused.
    let e = rt.copy_volume(&src, &dst, &helper).await.unwrap_err();
    assert!(matches!(e, RuntimeError::NotFound(_)), "{e}");

    rt.create_volume(&dst, &labels("j")).await.unwrap();
    rt.copy_volume(&src, &dst, &helper).await.unwrap();
    let copied = run_script(
        &rt,
        &format!("{base}-list2"),
        LISTING,
        vec![volume_at(&dst, "/data")],
    )
    .await;
    assert_eq!(copied, before, "the copy is the same, byte for byte");
    let source_after = run_script(
        &rt,
        &format!("{base}-list3"),
        LISTING,
        vec![volume_at(&src, "/data")],
    )
    .await;
    assert_eq!(source_after, before, "the source is untouched");

    // Into a volume with content: refused, and the content stays.
    let e = rt.copy_volume(&src, &dst, &helper).await.unwrap_err();
    assert!(matches!(e, RuntimeError::Conflict(_)), "{e}");
    // An image that is not there: refused before anything is copied.
    let empty = format!("{base}-empty");
    rt.create_volume(&empty, &labels("j")).await.unwrap();
    let e = rt
        .copy_volume(&src, &empty, &image("web:no-such-tag"))
        .await
        .unwrap_err();
    assert!(matches!(e, RuntimeError::NotFound(_)), "{e}");

    // The helpers are gone: nothing uses the volumes any more.
    for v in [&src, &dst, &empty] {
        assert_eq!(volume_users(&docker, v).await, Vec::<String>::new(), "{v}");
    }
    let filters = HashMap::from([("label", vec![format!("{LABEL_HELPER}=copy-volume")])]);
    let helpers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .unwrap();
    for h in &helpers {
        let mounts = h.mounts.clone().unwrap_or_default();
        assert!(
            !mounts
                .iter()
                .any(|m| [&src, &dst, &empty].contains(&&m.name.clone().unwrap_or_default())),
            "a helper of this test is left: {h:?}"
        );
    }
    for v in [&src, &dst, &empty] {
        rt.remove_volume(v).await.unwrap();
    }
}

/// The test registry with basic auth, from up.sh's exports.
struct AuthRegistry {
    address: String,
    config: std::path::PathBuf,
    user: String,
    password: String,
    /// The config.json `auth` value (base64 of `user:password`).
    encoded: String,
}

fn auth_registry() -> AuthRegistry {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run `eval \"$(tests/env/up.sh)\"` first (it starts the registry with basic auth)")
        })
    };
    let config = std::path::PathBuf::from(var("DECKHAND_TEST_AUTH_CONFIG"));
    let address = var("DECKHAND_TEST_AUTH_REGISTRY");
    let text = std::fs::read_to_string(&config).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let encoded = json["auths"][&address]["auth"]
        .as_str()
        .expect("an auth entry for the registry")
        .to_owned();
    AuthRegistry {
        address,
        config,
        user: var("DECKHAND_TEST_AUTH_USER"),
        password: var("DECKHAND_TEST_AUTH_PASSWORD"),
        encoded,
    }
}

impl AuthRegistry {
    /// Assert none of the credentials is in `text`.
    fn assert_absent(&self, what: &str, text: &str) {
        for secret in [&self.password, &self.encoded] {
            assert!(
                !text.contains(secret.as_str()),
                "a secret in {what}: {text}"
            );
        }
        assert!(
            !text.contains(&format!("{}:", self.user)),
            "user:… in {what}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_registry_pull_uses_config_json_credentials_and_fails_clearly_without() {
    let (anonymous, docker) = runtime().await;
    let reg = auth_registry();
    let private = format!("{}/deckhand-test/private:1", reg.address);
    ensure_image_absent(&docker, &private).await;

    // Without credentials: the registry's refusal, said plainly.
    match anonymous.resolve_image(&private).await.unwrap() {
        ImageSource::Unavailable(reason) => {
            reg.assert_absent("the anonymous resolve", &reason);
            assert!(
                reason.contains("no basic auth credentials") || reason.contains("unauthorized"),
                "{reason}"
            );
        }
        other => panic!("resolved without credentials: {other:?}"),
    }
    let e = pull(&anonymous, &private).await.unwrap_err();
    let text = format!("{e} {e:?}");
    reg.assert_absent("the anonymous pull's error", &text);
    assert!(
        text.contains(&private)
            && (text.contains("no basic auth credentials") || text.contains("unauthorized")),
        "{text}"
    );
    assert!(!image_present(&docker, &private).await);

    // A wrong password: refused, and neither password shows.
    let wrong_password = format!("{}-wrong", reg.password);
    let mut wrong = RegistryAuth::none();
    wrong.insert(
        &reg.address,
        deckhand::runtime::Credential::basic(&reg.user, &wrong_password),
    );
    let wrong_rt = DockerRuntime::connect().unwrap().with_registry_auth(wrong);
    let e = pull(&wrong_rt, &private).await.unwrap_err();
    let text = format!("{e} {e:?} {wrong_rt:?}");
    reg.assert_absent("the wrong password's error", &text);
    assert!(!text.contains(&wrong_password), "{text}");
    assert!(!image_present(&docker, &private).await);

    // With the config.json of up.sh: found in the registry, then pulled.
    let auth = RegistryAuth::from_file(&reg.config).unwrap();
    assert!(auth.for_image(&private).is_some());
    let rt = DockerRuntime::connect().unwrap().with_registry_auth(auth);
    reg.assert_absent("the runtime's Debug", &format!("{rt:?} {rt:#?}"));
    reg.assert_absent(
        "the credentials' Debug",
        &format!("{:?}", rt.registry_auth().for_image(&private)),
    );
    assert_eq!(
        rt.resolve_image(&private).await.unwrap(),
        ImageSource::Registry
    );
    pull(&rt, &private).await.unwrap();
    assert!(image_present(&docker, &private).await);
    // The pull of an image present still asks the registry, so it still
    // needs the credentials.
    pull(&rt, &private).await.unwrap();
    ensure_image_absent(&docker, &private).await;
}
