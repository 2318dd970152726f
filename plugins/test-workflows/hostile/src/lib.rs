//! Test workflow that misbehaves on purpose. Params: `{mode, ...}`:
//! `loop` (never returns), `memory` (allocates without end), `recursion`
//! (overflows the stack), `huge-string` (passes a 32 MiB string to the
//! host), `many-calls` (makes 20,000 host calls), `trap-mid-upgrade`
//! (starts an upgrade and panics half-way), `foreign` (tries to stop and
//! remove the container named `container`, which is not its target's),
//! `foreign-image` (asks for the image `image`, not its target's, to be
//! removed at commit), `network` (creates a container on the network mode
//! `network`, e.g. `host` or `container:<name>`), `inspect` (inspects the
//! container `container` and reports what it learnt), `adopt` (tries to
//! inspect, stop, rename, remove at commit and record as a revision the
//! container `container`, and succeeds with what each answered),
//! `fake-revision` (creates a container from `image`, records it as a
//! revision running `claimed`, asks for `claimed` to be removed at commit,
//! and succeeds with the answers), `extra-containers` (creates `n`
//! containers besides the live one and succeeds), `name` (pulls `image`,
//! creates a container named `name` and succeeds with what the host said),
//! `resources` (tries, with `image`, to mount the volume `volume` it did not
//! make available, to snapshot it, to have it removed at commit, to bind
//! mount `/etc`, to set an `io.deckhand.` label, to join the network
//! `network` it did not ensure and to have it removed at commit; succeeds
//! with what each answered, one per line).

use deckhand_sdk::{Spec, SpecExt, Workflow, container, export, job, network, state, volume};
use serde::Deserialize;

struct Hostile;

#[derive(Deserialize)]
struct Params {
    mode: String,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    container: Option<String>,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    claimed: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    n: u32,
    #[serde(default)]
    volume: Option<String>,
}

/// What a host call answered, in a word or the host's message.
fn answer<T>(r: Result<T, deckhand_sdk::HostError>) -> String {
    match r {
        Ok(_) => "allowed".into(),
        Err(e) => deckhand_sdk::describe(&e),
    }
}

/// A container of the job's target named `deckhand-<target>-<suffix>`.
fn extra_container(image: &str, suffix: &str) -> deckhand_sdk::ContainerSpec {
    deckhand_sdk::ContainerSpec {
        network: Some("none".into()),
        ..deckhand_sdk::container_spec(format!("deckhand-{}-{suffix}", job::target()), image.to_owned())
    }
}

fn recurse(n: u64, pad: &mut [u8; 1024]) -> u64 {
    pad[(n % 1024) as usize] = n as u8;
    let mut next = [0u8; 1024];
    recurse(n + 1, &mut next) + pad[0] as u64
}

impl Workflow for Hostile {
    fn describe() -> deckhand_sdk::PluginInfo {
        deckhand_sdk::info("hostile", "test: misbehaves on purpose")
    }

    fn run() -> Result<String, String> {
        let p: Params = deckhand_sdk::params()?;
        match p.mode.as_str() {
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard = Vec::new();
                loop {
                    hoard.push(vec![7u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recursion" => {
                let mut pad = [0u8; 1024];
                Ok(recurse(0, &mut pad).to_string())
            }
            "huge-string" => {
                let huge = "x".repeat(32 << 20);
                container::pull_image(&huge)?;
                Ok("the host took it".into())
            }
            "many-calls" => {
                for _ in 0..20_000 {
                    job::cancel_requested();
                }
                Ok("made them all".into())
            }
            "trap-mid-upgrade" => {
                let current = state::current_revision().ok_or("not installed")?;
                let image = p.image.ok_or("image needed")?;
                let spec = Spec { image: Some(image.clone()), ..Spec::of_revision(&current)? };
                let target = job::target();
                container::pull_image(&image)?;
                let next = container::create_container(&spec.container(format!("deckhand-{target}-Next"))?)?;
                container::stop_container(&current.container_id, 10)?;
                container::rename_container(&current.container_id, &format!("deckhand-{target}-Prev"))?;
                container::rename_container(&next, &format!("deckhand-{target}"))?;
                panic!("trap in the middle of an upgrade");
            }
            "foreign" => {
                let victim = p.container.ok_or("container needed")?;
                let stop = container::stop_container(&victim, 1);
                let remove = container::remove_container(&victim);
                Err(format!(
                    "stop: {}; remove: {}",
                    stop.err().map(|e| deckhand_sdk::describe(&e)).unwrap_or("allowed".into()),
                    remove.err().map(|e| deckhand_sdk::describe(&e)).unwrap_or("allowed".into())
                ))
            }
            "foreign-image" => {
                let image = p.image.ok_or("image needed")?;
                container::remove_image_at_commit(&image).map_err(|e| deckhand_sdk::describe(&e))?;
                Ok("asked for it".into())
            }
            "network" => {
                let target = job::target();
                let image = p.image.ok_or("image needed")?;
                container::pull_image(&image)?;
                let spec = deckhand_sdk::ContainerSpec {
                    network: p.network,
                    ..deckhand_sdk::container_spec(format!("deckhand-{target}"), image)
                };
                let id = container::create_container(&spec).map_err(|e| deckhand_sdk::describe(&e))?;
                Ok(format!("created {id}"))
            }
            "inspect" => {
                let name = p.container.ok_or("container needed")?;
                let seen = container::inspect_container(&name).map_err(|e| deckhand_sdk::describe(&e))?;
                let stop = container::stop_container(&name, 1).err().map(|e| deckhand_sdk::describe(&e));
                Err(format!("inspect: {:?}; stop: {}", seen.map(|c| c.id), stop.unwrap_or("allowed".into())))
            }
            "sleep" => {
                let started = std::time::Instant::now();
                std::thread::sleep(std::time::Duration::from_secs(90));
                Ok(format!("slept 90 s; the guest's clock moved {:?}", started.elapsed()))
            }
            "slow-compensation" => {
                job::register_compensation("spin", "")?;
                Err("failing so that the compensation runs".into())
            }
            "many-compensations" => {
                for i in 0..p.n {
                    job::register_compensation("nothing", &i.to_string()).map_err(|e| deckhand_sdk::describe(&e))?;
                }
                Err(format!("registered {}; failing so that they run", p.n))
            }
            "many-containers" => {
                let target = job::target();
                let image = p.image.ok_or("image needed")?;
                container::pull_image(&image)?;
                for i in 0..p.n {
                    let spec = deckhand_sdk::ContainerSpec {
                        network: Some("none".into()),
                        ..deckhand_sdk::container_spec(format!("deckhand-{target}-C{i}"), image.clone())
                    };
                    container::create_container(&spec).map_err(|e| deckhand_sdk::describe(&e))?;
                }
                Err(format!("created {}; failing so that they go", p.n))
            }
            "long-name" => {
                let target = job::target();
                let image = p.image.ok_or("image needed")?;
                container::pull_image(&image)?;
                let spec = deckhand_sdk::ContainerSpec {
                    network: Some("none".into()),
                    ..deckhand_sdk::container_spec(format!("deckhand-{target}-{}", "X".repeat(p.n as usize)), image)
                };
                container::create_container(&spec).map_err(|e| deckhand_sdk::describe(&e))?;
                Ok("created".into())
            }
            "adopt" => {
                let victim = p.container.ok_or("container needed")?;
                let image = p.image.ok_or("image needed")?;
                let seen = container::inspect_container(&victim).map(|c| c.map(|c| c.id));
                Ok(format!(
                    "inspect: {seen:?}; stop: {}; rename: {}; remove-at-commit: {}; record-revision: {}",
                    answer(container::stop_container(&victim, 1)),
                    answer(container::rename_container(&victim, &format!("deckhand-{}-Mine", job::target()))),
                    answer(container::remove_container_at_commit(&victim)),
                    answer(state::record_revision(&image, &victim, "{}")),
                ))
            }
            "fake-revision" => {
                let image = p.image.ok_or("image needed")?;
                let claimed = p.claimed.ok_or("claimed needed")?;
                container::pull_image(&image)?;
                let id = container::create_container(&extra_container(&image, "Fake"))?;
                Ok(format!(
                    "record-revision: {}; remove-image-at-commit: {}",
                    answer(state::record_revision(&claimed, &id, "{}")),
                    answer(container::remove_image_at_commit(&claimed)),
                ))
            }
            "extra-containers" => {
                let image = p.image.ok_or("image needed")?;
                container::pull_image(&image)?;
                for i in 0..p.n {
                    container::create_container(&extra_container(&image, &format!("X{i}")))?;
                }
                Ok(format!("created {} extra containers", p.n))
            }
            "name" => {
                let image = p.image.ok_or("image needed")?;
                let name = p.name.ok_or("name needed")?;
                container::pull_image(&image)?;
                let spec = deckhand_sdk::ContainerSpec { name, ..extra_container(&image, "Unused") };
                Ok(format!("create: {}", answer(container::create_container(&spec))))
            }
            "resources" => {
                use deckhand_sdk::bindings::deckhand::workflow::types as t;
                let image = p.image.ok_or("image needed")?;
                let victim = p.volume.ok_or("volume needed")?;
                let net = p.network.ok_or("network needed")?;
                container::pull_image(&image)?;
                let mount = |kind, source: &str| t::Mount { kind, source: source.into(), target: "/x".into(), read_only: false };
                let with = |spec: deckhand_sdk::ContainerSpec| container::create_container(&spec);
                let base = || extra_container(&image, "R");
                let answers = [
                    ("mount", answer(with(deckhand_sdk::ContainerSpec { mounts: vec![mount(t::MountKind::Volume, &victim)], ..base() }))),
                    ("snapshot", answer(volume::snapshot_volume("data", &victim))),
                    ("remove-volume", answer(volume::remove_volume_at_commit(&victim))),
                    ("bind", answer(with(deckhand_sdk::ContainerSpec { mounts: vec![mount(t::MountKind::Bind, "/etc")], ..base() }))),
                    ("label", answer(with(deckhand_sdk::ContainerSpec { labels: vec![("io.deckhand.target".into(), "other".into())], ..base() }))),
                    ("join", answer(with(deckhand_sdk::ContainerSpec { network: None, networks: vec![t::NetworkAttachment { name: net.clone(), aliases: vec![] }], ..base() }))),
                    ("remove-network", answer(network::remove_network_at_commit(&net))),
                ];
                Ok(answers.iter().map(|(what, a)| format!("{what}: {a}")).collect::<Vec<_>>().join("\n"))
            }
            "batches" => {
                use deckhand_sdk::ImagePull;
                let image = p.image.ok_or("image needed")?;
                let victim = p.volume.ok_or("volume needed")?;
                container::pull_image(&image)?;
                let pull = |image: String, label: String| ImagePull { image, label };
                let labelled = deckhand_sdk::ContainerSpec {
                    labels: vec![("io.deckhand.target".into(), "other".into())],
                    ..extra_container(&image, "B")
                };
                let answers = [
                    ("duplicate-names", answer(container::create_containers(&[extra_container(&image, "Dup"), extra_container(&image, "Dup")]))),
                    ("too-many-creates", answer(container::create_containers(&(0..33).map(|i| extra_container(&image, &format!("M{i}"))).collect::<Vec<_>>()))),
                    ("foreign-label-in-batch", answer(container::create_containers(&[extra_container(&image, "A"), labelled]))),
                    ("too-many-pulls", answer(container::pull_images(&(0..33).map(|i| pull(format!("img{i}:1"), "x".into())).collect::<Vec<_>>()))),
                    ("long-label", answer(container::pull_images(&[pull(image.clone(), "x".repeat(65))]))),
                    ("engine-volume", answer(volume::use_named_volume(&victim, false))),
                ];
                Ok(answers.iter().map(|(what, a)| format!("{what}: {a}")).collect::<Vec<_>>().join("\n"))
            }
            other => Err(format!("unknown mode {other}")),
        }
    }

    fn compensate(action: String, data: String) -> Result<(), String> {
        if action == "nothing" {
            return Ok(());
        }
        if action == "spin" {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        deckhand_sdk::no_compensations(&action, &data)
    }
}

export!(Hostile);
