//! The crash and cancel matrices: kill the engine (SIGKILL, a real child
//! process) right after each journal append in turn, or cancel right after
//! each event in turn, and check that Docker and the target registry end
//! either exactly as before the job or with the complete new revision.
//!
//! "Exactly as before" is [`Snapshot`] equality: the target's containers
//! (ids, names, running flags), the images, the current revision, its
//! volumes (name, creation time, labels, and every entry's path, mode,
//! owner and checksum) and its networks (name, id). The real-app variants
//! run the `web` image with volumes, networks and `snapshot_volumes`.

use std::os::unix::process::ExitStatusExt;
use std::time::Instant;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use deckhand::executor::JobRequest;
use deckhand::journal::{JobFilter, JobState, Journal};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::harness::*;

/// The job a matrix interrupts, and the target it starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workflow {
    /// Install of a plain container (`network: none`).
    Install,
    /// Upgrade of such a target to another image.
    Upgrade,
    /// Teardown of such a target.
    Teardown,
    /// Install with a volume and a network, both created by the job.
    InstallVolumeNetwork,
    /// Upgrade of a target whose volume `data` holds [`DATA`], adding a
    /// volume and a network.
    UpgradeAddingVolumeNetwork,
    /// Upgrade with `snapshot_volumes` of a target whose volume `data`
    /// holds [`DATA`]; the new version rewrites `/data/db` as it starts.
    UpgradeSnapshot,
    /// Teardown with `remove_volumes` of a target with a network and a
    /// volume holding [`DATA`].
    TeardownRemovingVolumes,
}

/// Which matrix runs a case: each has image references of its own
/// (tests/env/up.sh), so that both can run at the same time.
#[derive(Clone, Copy, Debug)]
enum Matrix {
    Crash,
    Cancel,
}

/// What the setup writes into volume `data` (in `/data`) once installed.
const DATA: &str = "mkdir -p /data/sub && echo v1 > /data/db && echo keep > /data/sub/file \
                    && chmod 600 /data/sub/file && ln -s sub/file /data/link";

/// The new version of [`Workflow::UpgradeSnapshot`]: it migrates the data
/// (`/data/db` becomes `migrated`), then serves as the `web` image does.
const MIGRATE: &str = "echo migrated > /data/db; trap 'exit 0' TERM; httpd -f -p 80 -h /www & wait";

/// `md5sum` of `migrated\n`, the content [`MIGRATE`] leaves in `/data/db`.
const MIGRATED_MD5: &str = "7b47d5b154750a11fa76a782e196a2ad";

impl Workflow {
    /// The name of its image aliases, after `mx-` (crash) or `cmx-` (cancel).
    fn alias(self) -> &'static str {
        match self {
            Workflow::Install => "install",
            Workflow::Upgrade => "upgrade",
            Workflow::Teardown => "teardown",
            Workflow::InstallVolumeNetwork => "vol-install",
            Workflow::UpgradeAddingVolumeNetwork => "vol-upgrade",
            Workflow::UpgradeSnapshot => "snap-upgrade",
            Workflow::TeardownRemovingVolumes => "vol-teardown",
        }
    }

    /// The built-in workflow it runs.
    fn name(self) -> &'static str {
        match self {
            Workflow::Install | Workflow::InstallVolumeNetwork => "install",
            Workflow::Upgrade
            | Workflow::UpgradeAddingVolumeNetwork
            | Workflow::UpgradeSnapshot => "upgrade",
            Workflow::Teardown | Workflow::TeardownRemovingVolumes => "teardown",
        }
    }
}

/// One run of a matrix: a workflow on a fresh target.
struct Case {
    workflow: Workflow,
    target: String,
    v1: String,
    v2: String,
    /// The target's network, for the workflows that use one.
    network: String,
}

impl Case {
    fn new(workflow: Workflow, matrix: Matrix) -> Case {
        let prefix = match matrix {
            Matrix::Crash => "mx",
            Matrix::Cancel => "cmx",
        };
        let alias = format!("{prefix}-{}", workflow.alias());
        let target = unique_target(prefix);
        Case {
            workflow,
            v1: image(&format!("{alias}:1")),
            v2: image(&format!("{alias}:2")),
            network: format!("{target}-net"),
            target,
        }
    }

    fn images(&self) -> Vec<String> {
        vec![self.v1.clone(), self.v2.clone()]
    }

    /// The Docker name of the target's volume `name`.
    fn volume(&self, name: &str) -> String {
        format!("deckhand-{}-V-{name}", self.target)
    }

    /// The install the job starts from: `None` for an install.
    fn initial(&self) -> Option<Value> {
        let v1 = &self.v1;
        match self.workflow {
            Workflow::Install | Workflow::InstallVolumeNetwork => None,
            Workflow::Upgrade | Workflow::Teardown => Some(json!({"image": v1, "network": "none"})),
            Workflow::UpgradeAddingVolumeNetwork | Workflow::UpgradeSnapshot => {
                Some(json!({"image": v1, "network": "none", "volumes": ["data:/data"]}))
            }
            Workflow::TeardownRemovingVolumes => {
                Some(json!({"image": v1, "volumes": ["data:/data"], "networks": [self.network]}))
            }
        }
    }

    /// The job's params.
    fn params(&self) -> Value {
        let (v1, v2) = (&self.v1, &self.v2);
        match self.workflow {
            Workflow::Install => json!({"image": v1, "network": "none"}),
            Workflow::Upgrade => json!({"image": v2}),
            Workflow::Teardown => json!({}),
            Workflow::InstallVolumeNetwork => {
                json!({"image": v1, "volumes": ["data:/data"], "networks": [self.network]})
            }
            Workflow::UpgradeAddingVolumeNetwork => json!({
                "image": v2,
                "volumes": ["data:/data", "cache:/cache"],
                "networks": [self.network],
            }),
            Workflow::UpgradeSnapshot => json!({
                "image": v2,
                "snapshot_volumes": true,
                "cmd": ["sh", "-c", MIGRATE],
            }),
            Workflow::TeardownRemovingVolumes => json!({"remove_volumes": true}),
        }
    }

    /// The job, for an engine in this process.
    fn request(&self) -> JobRequest {
        JobRequest::new(self.workflow.name(), &self.target, self.params())
    }

    /// `deckhand run` arguments for `workflow` with `params` on the target.
    fn cli(&self, workflow: &str, params: &Value) -> Vec<String> {
        let target = &self.target;
        ["run", workflow, target, "--params", &params.to_string()]
            .map(str::to_owned)
            .to_vec()
    }

    /// After the initial install: write [`DATA`] into volume `data`, if the
    /// target has one.
    async fn write_data(&self, docker: &Docker) {
        let Some(initial) = self.initial() else {
            return;
        };
        if initial.get("volumes").is_none() {
            return;
        }
        let containers = containers_of(docker, &self.target).await;
        assert_eq!(containers.len(), 1, "{containers:?}");
        let id = containers[0].id.clone().unwrap();
        let exec = docker
            .create_exec(
                &id,
                CreateExecOptions {
                    cmd: Some(vec!["sh".to_owned(), "-c".to_owned(), DATA.to_owned()]),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut out = String::new();
        if let StartExecResults::Attached { mut output, .. } =
            docker.start_exec(&exec.id, None).await.unwrap()
        {
            while let Some(Ok(chunk)) = output.next().await {
                out.push_str(&chunk.to_string());
            }
        }
        let done = docker.inspect_exec(&exec.id).await.unwrap();
        assert_eq!(done.exit_code, Some(0), "writing the data: {out}");
    }

    /// The volume of `snapshot` named `name`.
    fn volume_in<'a>(snapshot: &'a Snapshot, name: &str) -> &'a VolumeSnapshot {
        snapshot
            .volumes
            .iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no volume {name} in {snapshot:?}"))
    }

    /// The complete new state after the job committed, from `before` (the
    /// state the job started from).
    async fn assert_committed(
        &self,
        docker: &Docker,
        before: &Snapshot,
        after: &Snapshot,
        context: &str,
    ) {
        let (target, v1, v2) = (&self.target, &self.v1, &self.v2);
        let present = |r: &str| after.images.iter().any(|(i, p)| i == r && *p);
        let volumes: Vec<&str> = after.volumes.iter().map(|v| v.name.as_str()).collect();
        let networks: Vec<&str> = after.networks.iter().map(|(n, _)| n.as_str()).collect();
        let data = self.volume("data");
        // The volumes and networks of the new revision, and what its
        // container mounts (volume, path) and joins.
        let (expect_volumes, expect_networks, mounts, joins): (
            Vec<String>,
            Vec<&str>,
            Vec<(String, &str)>,
            Vec<&str>,
        ) = match self.workflow {
            Workflow::Install | Workflow::Upgrade => (vec![], vec![], vec![], vec!["none"]),
            Workflow::Teardown | Workflow::TeardownRemovingVolumes => {
                (vec![], vec![], vec![], vec![])
            }
            Workflow::InstallVolumeNetwork => (
                vec![data.clone()],
                vec![&self.network],
                vec![(data.clone(), "/data")],
                vec![&self.network],
            ),
            Workflow::UpgradeAddingVolumeNetwork => (
                vec![self.volume("cache"), data.clone()],
                vec![&self.network],
                vec![(self.volume("cache"), "/cache"), (data.clone(), "/data")],
                vec![&self.network],
            ),
            Workflow::UpgradeSnapshot => {
                // The copy, `deckhand-<target>-V<generation>-data`; the
                // original went at commit.
                assert_eq!(after.volumes.len(), 1, "{context}: {after:?}");
                let copy = after.volumes[0].name.clone();
                let generation = copy
                    .strip_prefix(&format!("deckhand-{target}-V"))
                    .and_then(|rest| rest.strip_suffix("-data"))
                    .unwrap_or_else(|| panic!("{context}: {copy} is not a copy of {data}"));
                assert!(
                    !generation.is_empty() && generation.chars().all(|c| c.is_ascii_hexdigit()),
                    "{context}: {copy}"
                );
                (
                    vec![copy.clone()],
                    vec![],
                    vec![(copy, "/data")],
                    vec!["none"],
                )
            }
        };
        assert_eq!(volumes, expect_volumes, "{context}: volumes");
        assert_eq!(networks, expect_networks, "{context}: networks");
        match self.workflow {
            Workflow::InstallVolumeNetwork => {
                let content = &Self::volume_in(after, &data).content;
                assert!(
                    content.len() == 1 && content[0].starts_with(". "),
                    "{context}: a new volume is empty: {content:?}"
                );
            }
            Workflow::UpgradeAddingVolumeNetwork => {
                // The same volume, its data untouched.
                assert_eq!(
                    Self::volume_in(after, &data),
                    Self::volume_in(before, &data),
                    "{context}"
                );
                let cache = &Self::volume_in(after, &self.volume("cache")).content;
                assert_eq!(
                    cache.len(),
                    1,
                    "{context}: a new volume is empty: {cache:?}"
                );
            }
            Workflow::UpgradeSnapshot => {
                // Everything copied as it was, `db` migrated.
                let expected: Vec<String> = Self::volume_in(before, &data)
                    .content
                    .iter()
                    .map(|line| match line.strip_prefix("./db ") {
                        Some(rest) => {
                            let f: Vec<&str> = rest.split(' ').collect();
                            format!("./db {} {} {} 9 {MIGRATED_MD5}", f[0], f[1], f[2])
                        }
                        None => line.clone(),
                    })
                    .collect();
                assert_eq!(after.volumes[0].content, expected, "{context}: the copy");
            }
            _ => {}
        }
        match self.workflow.name() {
            "install" | "upgrade" => {
                let (rev, image) = if self.workflow.name() == "install" {
                    (1, v1)
                } else {
                    (2, v2)
                };
                assert_eq!(after.containers.len(), 1, "{context}: {after:?}");
                let (id, name, running) = &after.containers[0];
                assert_eq!(name, &format!("deckhand-{target}"), "{context}");
                assert!(running, "{context}: the new revision runs");
                assert_eq!(after.revision, Some((rev, id.clone())), "{context}");
                assert!(present(image), "{context}: {image} present");
                if self.workflow.name() == "upgrade" {
                    assert!(!present(v1), "{context}: v1 image removed at commit");
                    assert!(
                        before.containers.iter().all(|(old, ..)| old != id),
                        "{context}: a new container"
                    );
                }
                let c = docker.inspect_container(id, None).await.unwrap();
                let mut mounted: Vec<(String, String)> = c
                    .mounts
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| {
                        (
                            m.name.unwrap_or_default(),
                            m.destination.unwrap_or_default(),
                        )
                    })
                    .collect();
                mounted.sort();
                let mounts: Vec<(String, String)> =
                    mounts.into_iter().map(|(v, p)| (v, p.to_owned())).collect();
                assert_eq!(mounted, mounts, "{context}: mounts");
                let mut joined: Vec<String> = c
                    .network_settings
                    .and_then(|n| n.networks)
                    .unwrap_or_default()
                    .into_keys()
                    .collect();
                joined.sort();
                assert_eq!(joined, joins, "{context}: networks joined");
            }
            _ => {
                assert!(after.containers.is_empty(), "{context}: {after:?}");
                assert_eq!(after.revision, None, "{context}");
                assert!(!present(v1), "{context}: image removed at commit");
            }
        }
    }
}

/// Kill the engine after event 1, 2, … of the job until it completes
/// without being killed; after each kill, recover and compare. Returns the
/// number of kill points.
async fn crash_matrix(workflow: Workflow) -> usize {
    let docker = docker().await;
    let started = Instant::now();
    let mut kill_points = 0;
    for n in 1.. {
        let dir = tempfile::tempdir().unwrap();
        let case = Case::new(workflow, Matrix::Crash);
        let images = case.images();
        for i in &images {
            ensure_image_absent(&docker, i).await;
        }
        if let Some(initial) = case.initial() {
            let args = case.cli("install", &initial);
            cli_ok(
                dir.path(),
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            case.write_data(&docker).await;
        }
        let target = &case.target;
        let before = snapshot_in(&docker, dir.path(), target, &images).await;
        let args = case.cli(workflow.name(), &case.params());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = run_cli(dir.path(), &args, Some(n));
        if run.status.success() {
            assert!(
                n > 3,
                "{workflow:?} finished before the kill point {n}: {}",
                cli_text(&run)
            );
            let after = snapshot_in(&docker, dir.path(), target, &images).await;
            case.assert_committed(&docker, &before, &after, "uninterrupted run")
                .await;
            remove_target_resources(&docker, target).await;
            break;
        }
        assert_eq!(
            run.status.signal(),
            Some(9),
            "kill point {n}: expected SIGKILL, got {:?}: {}",
            run.status,
            cli_text(&run)
        );
        kill_points += 1;

        let recover = run_cli(dir.path(), &["recover"], None);
        assert!(
            recover.status.success(),
            "recover after kill point {n}: {}",
            cli_text(&recover)
        );
        let journal = Journal::open(dir.path().join(Journal::FILE_NAME)).unwrap();
        let jobs = journal
            .list_jobs(&JobFilter {
                target: Some(target.clone()),
                ..Default::default()
            })
            .unwrap();
        let job = &jobs[0];
        assert!(
            job.state.is_terminal(),
            "kill point {n}: job left {}",
            job.state
        );
        drop(journal);
        let after = snapshot_in(&docker, dir.path(), target, &images).await;
        let context = format!(
            "{workflow:?} killed after event {n}, recovered to {}",
            job.state
        );
        match job.state {
            JobState::Succeeded => {
                case.assert_committed(&docker, &before, &after, &context)
                    .await
            }
            JobState::RolledBack => assert_eq!(after, before, "{context}"),
            other => panic!("{context}: unexpected state {other} ({:?})", job.error),
        }
        remove_target_resources(&docker, target).await;
    }
    eprintln!(
        "crash matrix {workflow:?}: {kill_points} kill points, all recovered, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    kill_points
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_matrix_install_recovers_to_before_or_complete_at_every_kill_point() {
    assert!(crash_matrix(Workflow::Install).await >= 15);
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_matrix_upgrade_recovers_to_before_or_complete_at_every_kill_point() {
    assert!(crash_matrix(Workflow::Upgrade).await >= 25);
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_matrix_teardown_recovers_to_before_or_complete_at_every_kill_point() {
    assert!(crash_matrix(Workflow::Teardown).await >= 8);
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_matrix_install_with_a_volume_and_a_network_recovers_to_before_or_complete() {
    assert!(crash_matrix(Workflow::InstallVolumeNetwork).await >= 15);
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_matrix_upgrade_adding_a_volume_and_a_network_recovers_to_before_or_complete() {
    assert!(crash_matrix(Workflow::UpgradeAddingVolumeNetwork).await >= 25);
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_matrix_snapshot_upgrade_recovers_to_the_old_data_or_the_migrated_copy() {
    assert!(crash_matrix(Workflow::UpgradeSnapshot).await >= 25);
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_matrix_teardown_removing_volumes_recovers_to_before_or_complete() {
    assert!(crash_matrix(Workflow::TeardownRemovingVolumes).await >= 8);
}

/// Cancel right after event 1, 2, … of the job; each must end cancelled
/// with the state exactly as before, or — when the cancel came at or after
/// the commit point — succeeded with `cancelled: false`.
async fn cancel_matrix(workflow: Workflow) -> (usize, usize) {
    let started = Instant::now();
    let (mut cancelled, mut too_late) = (0, 0);
    for n in 1.. {
        // A fresh journal each time: earlier targets' revisions would keep
        // using the images, and rightly stop their removal.
        let t0 = Instant::now();
        let engine = TestEngine::with_settings(quick_settings()).await;
        let case = Case::new(workflow, Matrix::Cancel);
        let (target, images) = (&case.target, case.images());
        for i in &images {
            ensure_image_absent(&engine.docker, i).await;
        }
        if let Some(initial) = case.initial() {
            let job = run_job(&engine, "install", target, initial).await;
            assert_eq!(job.state, JobState::Succeeded, "{:?}", job.error);
            case.write_data(&engine.docker).await;
        }
        let t1 = t0.elapsed();
        let before = snapshot(&engine.docker, engine.journal(), target, &images).await;
        let t2 = t0.elapsed();
        let mut live = engine.journal().subscribe();
        let job = engine.executor.submit(case.request()).await.unwrap();
        let mut seen = 2; // created + queued are appended by submit itself
        let mut outcome = None;
        if seen >= n {
            outcome = Some(engine.executor.cancel(&job.id, None).await.unwrap());
        }
        while outcome.is_none() {
            let ev = live.recv().await.unwrap();
            if ev.job_id != job.id {
                continue;
            }
            seen += 1;
            if seen >= n {
                outcome = Some(engine.executor.cancel(&job.id, None).await.unwrap());
            }
            if matches!(ev.event, deckhand::journal::Event::State { state, .. } if state.is_terminal())
            {
                break;
            }
        }
        let done = engine.executor.wait(&job.id).await.unwrap();
        let t3 = t0.elapsed();
        let after = snapshot(&engine.docker, engine.journal(), target, &images).await;
        eprintln!("TIMING n={n} setup={t1:?} snap={:?} job={:?} snap={:?}", t2 - t1, t3 - t2, t0.elapsed() - t3);
        if std::env::var("MAXN").ok().and_then(|v| v.parse::<usize>().ok()).is_some_and(|m| n >= m) { break; }
        let context = format!("{workflow:?} cancelled after event {n}: {}", done.state);
        match (done.state, outcome) {
            (JobState::Cancelled, Some(o)) => {
                assert!(o.cancelled, "{context}");
                assert_eq!(after, before, "{context}");
                cancelled += 1;
            }
            (JobState::Succeeded, Some(o)) => {
                assert!(
                    !o.cancelled,
                    "{context}: a cancel that is honoured never ends in success"
                );
                case.assert_committed(&engine.docker, &before, &after, &context)
                    .await;
                too_late += 1;
            }
            (JobState::Succeeded, None) => {
                // The job ended before event n: the matrix is complete.
                case.assert_committed(&engine.docker, &before, &after, &context)
                    .await;
                remove_target_resources(&engine.docker, target).await;
                break;
            }
            (state, _) => panic!("{context}: unexpected {state} ({:?})", done.error),
        }
        remove_target_resources(&engine.docker, target).await;
    }
    eprintln!(
        "cancel matrix {workflow:?}: {cancelled} cancelled, {too_late} too late (committing), in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    (cancelled, too_late)
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_matrix_install_restores_the_prior_state_at_every_point_before_commit() {
    let (cancelled, _) = cancel_matrix(Workflow::Install).await;
    assert!(cancelled >= 10, "{cancelled}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_matrix_upgrade_restores_v1_at_every_point_before_commit() {
    let (cancelled, _) = cancel_matrix(Workflow::Upgrade).await;
    assert!(cancelled >= 20, "{cancelled}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_matrix_install_with_a_volume_and_a_network_leaves_neither_before_commit() {
    let (cancelled, _) = cancel_matrix(Workflow::InstallVolumeNetwork).await;
    assert!(cancelled >= 10, "{cancelled}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_matrix_upgrade_adding_a_volume_and_a_network_restores_v1_and_its_data() {
    let (cancelled, _) = cancel_matrix(Workflow::UpgradeAddingVolumeNetwork).await;
    assert!(cancelled >= 20, "{cancelled}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_matrix_snapshot_upgrade_restores_the_old_data_and_container() {
    let (cancelled, _) = cancel_matrix(Workflow::UpgradeSnapshot).await;
    assert!(cancelled >= 20, "{cancelled}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_matrix_teardown_removing_volumes_keeps_them_before_commit() {
    let (cancelled, _) = cancel_matrix(Workflow::TeardownRemovingVolumes).await;
    assert!(cancelled >= 3, "{cancelled}");
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_killed_again_and_again_still_ends_in_the_prior_state() {
    let docker = docker().await;
    let (v1, v2) = (image("rmx:1"), image("rmx:2"));
    let images = vec![v1.clone(), v2.clone()];
    let dir = tempfile::tempdir().unwrap();
    let target = unique_target("rmx");
    cli_ok(dir.path(), &["install", &target, &v1, "--network", "none"]);
    let before = snapshot_in(&docker, dir.path(), &target, &images).await;
    // Kill the upgrade once the new container has been swapped in and started.
    let run = run_cli(dir.path(), &["upgrade", &target, &v2], Some(22));
    assert_eq!(run.status.signal(), Some(9), "{}", cli_text(&run));
    {
        let journal = Journal::open(dir.path().join(Journal::FILE_NAME)).unwrap();
        let jobs = journal
            .list_jobs(&JobFilter {
                target: Some(target.clone()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            jobs[0].state,
            JobState::Running,
            "killed before the commit point"
        );
    }
    let mut recovery_kills = 0;
    for k in 1.. {
        let recover = run_cli(dir.path(), &["recover"], Some(k));
        if recover.status.success() {
            break;
        }
        assert_eq!(recover.status.signal(), Some(9), "{}", cli_text(&recover));
        recovery_kills += 1;
    }
    assert!(
        recovery_kills >= 3,
        "recovery was interrupted {recovery_kills} times"
    );
    let journal = Journal::open(dir.path().join(Journal::FILE_NAME)).unwrap();
    let jobs = journal
        .list_jobs(&JobFilter {
            target: Some(target.clone()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(jobs[0].state, JobState::RolledBack, "{:?}", jobs[0].error);
    drop(journal);
    assert_eq!(
        snapshot_in(&docker, dir.path(), &target, &images).await,
        before
    );
    remove_target_containers(&docker, &target).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_recorded_before_a_crash_ends_cancelled_after_recovery() {
    let docker = docker().await;
    let (v1, v2) = (image("ccrash:1"), image("ccrash:2"));
    let dir = tempfile::tempdir().unwrap();
    let target = unique_target("ccrash");
    cli_ok(dir.path(), &["install", &target, &v1, "--network", "none"]);
    // An upgrade killed mid-way, then a cancel recorded for it in the journal
    // (as `POST /cancel` would before answering), then recovery.
    let run = run_cli(dir.path(), &["upgrade", &target, &v2], Some(12));
    assert_eq!(run.status.signal(), Some(9), "{}", cli_text(&run));
    let journal = Journal::open(dir.path().join(Journal::FILE_NAME)).unwrap();
    let job = journal
        .list_jobs(&JobFilter {
            target: Some(target.clone()),
            ..Default::default()
        })
        .unwrap()[0]
        .clone();
    assert!(!job.state.is_terminal());
    assert!(
        journal
            .request_cancel(&job.id, Some("test".into()))
            .await
            .unwrap()
            .1
    );
    drop(journal);
    cli_ok(dir.path(), &["recover"]);
    let journal = Journal::open(dir.path().join(Journal::FILE_NAME)).unwrap();
    let after = journal.job(&job.id).unwrap().unwrap();
    assert_eq!(
        after.state,
        JobState::Cancelled,
        "a cancel is never overwritten by a failure record"
    );
    assert!(after.cancel_requested);
    remove_target_containers(&docker, &target).await;
}
