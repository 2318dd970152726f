//! A Docker daemon of a test's own, for faults that must not touch the
//! shared daemon of `tests/env/up.sh`: `kill -9` of `dockerd`, a restart on
//! the same data root, a daemon that stays away.
//!
//! Each [`PrivateDaemon`] runs `dockerd` with the flags of `tests/env/up.sh`
//! (no iptables, no bridge, the `vfs` storage driver) on its own short
//! directory `/tmp/dhpdXXXXXX` (data root, exec root, pid file and socket:
//! unix socket paths must stay under ~100 bytes), so that several tests can
//! run one each at the same time. `dockerd` starts its own `containerd`
//! (config, socket and pid file under the exec root); that `containerd` dies
//! with `dockerd` (the daemon starts it with a parent-death signal), the
//! `containerd-shim`s of its containers survive and are found again by the
//! restarted daemon.
//!
//! Live restore decides what a daemon restart does to running containers:
//! - without it ([`PrivateDaemon::start`]) a restarted daemon stops every
//!   container that was running: the restart itself changes the world under
//!   the engine, which the rollback of an interrupted job must cope with.
//!   Fits tests whose app is already stopped by the job when the daemon goes
//!   away (an upgrade past its stop step), and tests of the daemon's being
//!   away at all.
//! - with it ([`PrivateDaemon::start_live_restore`]) containers keep running
//!   across the restart, as on a production host configured so: an app at
//!   rest survives, and only the engine's own calls in flight are hit. Fits
//!   the randomized test, whose after-round check expects every installed
//!   app to run.
//!
//! Images come from the test registry (`127.0.0.1:5000`, allowed without
//! TLS as a loopback address): the engine pulls what a job needs, and
//! [`PrivateDaemon::pull`] pre-pulls for a test that wants an image present
//! before a job.
//!
//! Dropping it removes its containers, stops `dockerd`, kills whatever of
//! its own is left (its `containerd`, shims and container processes, found
//! by its directory in their command lines — never the shared daemon's),
//! unmounts what it mounted under its directory, and removes the directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::Docker;
use futures_util::StreamExt;

/// How long a (re)started daemon may take to answer.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A `dockerd` of one test, on its own directory.
pub struct PrivateDaemon {
    dir: PathBuf,
    live_restore: bool,
    child: Option<Child>,
    starts: u32,
}

impl PrivateDaemon {
    /// Start one without live restore (a restart stops running containers).
    pub async fn start() -> PrivateDaemon {
        Self::launch(false).await
    }

    /// Start one with `--live-restore` (containers survive a restart).
    #[allow(dead_code)]
    pub async fn start_live_restore() -> PrivateDaemon {
        Self::launch(true).await
    }

    async fn launch(live_restore: bool) -> PrivateDaemon {
        let dir = tempfile::Builder::new()
            .prefix("dhpd")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        let mut d = PrivateDaemon {
            dir,
            live_restore,
            child: None,
            starts: 0,
        };
        d.spawn();
        d.wait_ready().await;
        d
    }

    /// Its directory (data root `data/`, exec root `exec/`, `dockerd.log`).
    #[allow(dead_code)]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// `unix:///tmp/dhpd…/docker.sock`, for `DOCKER_HOST` or
    /// [`deckhand::runtime::DockerRuntime::connect_to`].
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// A client of this daemon (for checks and set-up).
    pub fn docker(&self) -> Docker {
        Docker::connect_with_socket(
            &self.socket().to_string_lossy(),
            120,
            bollard::API_DEFAULT_VERSION,
        )
        .unwrap()
    }

    /// Whether its `dockerd` process runs (answering or not).
    #[allow(dead_code)]
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Remove pid files naming a process that is not (or no longer) ours.
    /// A `containerd` that died with its `dockerd` is reparented to PID 1,
    /// which may leave it a zombie for a while: a restarted `dockerd` would
    /// take it for alive, wait for its socket and give up.
    fn clear_stale_pid_files(&self) {
        let mine = format!("{}/", self.dir.display());
        for file in [
            self.dir.join("dockerd.pid"),
            self.dir
                .join("exec")
                .join("containerd")
                .join("containerd.pid"),
        ] {
            let Ok(pid) = std::fs::read_to_string(&file) else {
                continue;
            };
            let proc = PathBuf::from(format!("/proc/{}", pid.trim()));
            let stat = std::fs::read_to_string(proc.join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_none_or(|(_, rest)| rest.trim_start().starts_with('Z'));
            let cmdline = std::fs::read(proc.join("cmdline")).unwrap_or_default();
            let ours = String::from_utf8_lossy(&cmdline).contains(&mine);
            if zombie || !ours {
                let _ = std::fs::remove_file(&file);
            }
        }
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "dockerd already runs");
        self.clear_stale_pid_files();
        self.starts += 1;
        let log_path = self.dir.join("dockerd.log");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        use std::io::Write;
        writeln!(log, "--- start {}", self.starts).unwrap();
        let d = &self.dir;
        let mut cmd = Command::new("dockerd");
        cmd.args([
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--storage-driver=vfs",
        ])
        .arg(format!("--data-root={}", d.join("data").display()))
        .arg(format!("--exec-root={}", d.join("exec").display()))
        .arg(format!("--pidfile={}", d.join("dockerd.pid").display()))
        .arg("-H")
        .arg(self.endpoint());
        if self.live_restore {
            cmd.arg("--live-restore");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd (docker.io) is installed");
        self.child = Some(child);
    }

    /// Wait until the daemon answers a ping.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "private dockerd (start {}) exited: {status}\n{}",
                    self.starts,
                    self.log_tail(30)
                );
            }
            if self.socket().exists() && self.docker().ping().await.is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "private dockerd (start {}) did not answer within {START_DEADLINE:?}\n{}",
                    self.starts,
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9` the `dockerd` process (only it: its `containerd` goes with
    /// it, container shims stay) and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start `dockerd` again on the same data root (after [`Self::kill9`]
    /// or [`Self::stop`]) and wait until it answers.
    pub async fn restart(&mut self) {
        if self.child.is_some() {
            self.stop().await;
        }
        self.spawn();
        self.wait_ready().await;
    }

    /// Stop `dockerd` the ordinary way (SIGTERM; it stops its containers
    /// unless live restore is on), waiting at most 20 s before a SIGKILL.
    pub async fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Pull these images into this daemon.
    #[allow(dead_code)]
    pub async fn pull(&self, images: &[String]) {
        let docker = self.docker();
        for image in images {
            let options = bollard::query_parameters::CreateImageOptionsBuilder::default()
                .from_image(image)
                .build();
            let mut stream = docker.create_image(Some(options), None, None);
            while let Some(item) = stream.next().await {
                if let Err(e) = item {
                    panic!("pull {image} into the private daemon: {e}");
                }
            }
        }
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Remove every container, through the daemon (which also unmounts
    /// their network namespaces and cgroups the ordinary way).
    fn remove_all_containers(&self) {
        let host = self.endpoint();
        let ids = Command::new("timeout")
            .args(["20", "docker", "-H", &host, "ps", "-aq"])
            .stderr(Stdio::null())
            .output();
        let Ok(ids) = ids else { return };
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if ids.is_empty() {
            return;
        }
        let _ = Command::new("timeout")
            .args(["30", "docker", "-H", &host, "rm", "-f"])
            .args(&ids)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// SIGKILL every process left of this daemon: anything whose command
    /// line names its directory (a `containerd`, container shims) and their
    /// descendants (container processes), children first.
    fn kill_leftovers(&self) {
        let mine = self.dir.to_string_lossy().into_owned();
        let mut parent_of = Vec::new();
        let mut roots = Vec::new();
        let me = std::process::id() as i32;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == me {
                continue;
            }
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&format!("{mine}/")) {
                roots.push(pid);
            }
        }
        // Descendants, level by level; killed deepest first.
        let mut levels = vec![roots];
        loop {
            let last = levels.last().unwrap();
            let next: Vec<i32> = parent_of
                .iter()
                .filter(|(_, pp)| last.contains(pp))
                .map(|(p, _)| *p)
                .filter(|p| !levels.iter().any(|l| l.contains(p)))
                .collect();
            if next.is_empty() {
                break;
            }
            levels.push(next);
        }
        let all: Vec<i32> = levels.iter().rev().flatten().copied().collect();
        for pid in &all {
            // SAFETY: a signal to a process of this test's own daemon.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && all.iter().any(|p| {
                std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .is_ok_and(|s| !s.contains(") Z "))
            })
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Unmount (lazily) every mount point under its directory, deepest first.
    fn unmount_all(&self) {
        let prefix = format!("{}/", self.dir.display());
        for _ in 0..10 {
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            let mut points: Vec<String> = info
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .map(unescape_mount_point)
                .filter(|p| p.starts_with(&prefix))
                .collect();
            if points.is_empty() {
                return;
            }
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            points.dedup();
            for p in points {
                let c = std::ffi::CString::new(p).unwrap();
                // SAFETY: unmounting a path under this test's own directory.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }

    /// Remove the cgroups its containers left (cgroup v1 and v2 layouts).
    fn remove_cgroups(&self) {
        let containers = self.dir.join("data").join("containers");
        let ids: Vec<String> = std::fs::read_dir(&containers)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.len() == 64)
            .collect();
        let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
        roots.extend(
            std::fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path()),
        );
        for root in roots {
            for id in &ids {
                let _ = std::fs::remove_dir(root.join("docker").join(id));
            }
        }
    }
}

/// `/proc/self/mountinfo` escapes spaces and a few others as `\ooo`.
fn unescape_mount_point(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(digits) = std::str::from_utf8(&bytes[i + 1..i + 4])
            && let Ok(v) = u8::from_str_radix(digits, 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.remove_all_containers();
            if let Some(mut c) = self.child.take() {
                // SAFETY: sending a signal to our own child process.
                unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
                let deadline = Instant::now() + Duration::from_secs(15);
                while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        self.kill_leftovers();
        self.unmount_all();
        self.remove_cgroups();
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("private daemon: cannot remove {}: {e}", self.dir.display());
        }
    }
}
