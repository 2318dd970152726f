//! Commands that run a job in the foreground with a live progress bar:
//! `deckhand install|upgrade|teardown|rollback`, and their flags, which
//! mirror `docker run`'s and build the same params as the HTTP API takes.
//! Ctrl-C cancels the job (after saying so) and waits for its rollback.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use serde_json::{Value, json};

use super::live::{LiveView, summary_line};
use crate::executor::JobRequest;
use crate::journal::JobState;

/// Container settings shared by `install` and `upgrade`, named as
/// `docker run`'s; each builds the params field of the same name (see the
/// `deckhand-params` crate), and a flag not given leaves its field unset (an
/// upgrade then keeps the current revision's).
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Environment variable for the container (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Publish a container port (repeatable): `8080:80`,
    /// `127.0.0.1:8080:80/tcp`, `53:53/udp`, `80`, `127.0.0.1::80`.
    #[arg(short = 'p', long = "publish", value_name = "[IP:][HOST:]PORT[/PROTO]")]
    pub publish: Vec<String>,
    /// Mount a named volume or (if the server allows) a host path
    /// (repeatable): `data:/var/lib/x`, `/srv/conf:/etc/x:ro`.
    #[arg(short = 'v', long = "volume", value_name = "SOURCE:PATH[:ro|rw]")]
    pub volume: Vec<String>,
    /// Connect to a user-defined network, created when absent (repeatable);
    /// or, given once, a network mode: `none`, `bridge`, `host`, `container:…`.
    #[arg(long = "network", value_name = "NET")]
    pub network: Vec<String>,
    /// DNS alias of the container on the first `--network` (repeatable).
    #[arg(long = "network-alias", value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// Restart policy: `no`, `on-failure[:N]`, `unless-stopped`, `always`.
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Override the image's entrypoint (one executable; `""` resets it).
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// User to run as: `name|uid[:group|gid]`.
    #[arg(short = 'u', long, value_name = "USER")]
    pub user: Option<String>,
    /// Working directory in the container (absolute).
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Label for the container (repeatable; not under `io.deckhand.`).
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub label: Vec<(String, String)>,
    /// Memory limit: bytes, or with a unit: `512k`, `256m`, `1g`.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU limit, in CPUs: `0.5`.
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Seconds a stop waits before killing the container (`20` or `1m`).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub stop_timeout: Option<u32>,
    /// Health check, run by a shell in the container (`CMD-SHELL`).
    #[arg(long, value_name = "COMMAND", conflicts_with = "no_healthcheck")]
    pub health_cmd: Option<String>,
    /// Disable any health check, the image's included (`NONE`).
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Time between health probes (`10s`, `1m30s`).
    #[arg(long, value_name = "DURATION", value_parser = parse_seconds)]
    pub health_interval: Option<u32>,
    /// Time one health probe may take (Docker's `--health-timeout`; here
    /// that name is the job's wait, below).
    #[arg(long, value_name = "DURATION", value_parser = parse_seconds)]
    pub health_probe_timeout: Option<u32>,
    /// Consecutive failed probes that make the container unhealthy.
    #[arg(long, value_name = "N")]
    pub health_retries: Option<u32>,
    /// Time after start during which failed probes do not count.
    #[arg(long, value_name = "DURATION", value_parser = parse_seconds)]
    pub health_start_period: Option<u32>,
    /// How long the job waits for the container to run (and be healthy)
    /// before it fails: seconds, or a duration (`90`, `2m`).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub health_timeout: Option<u32>,
    /// Command and arguments for the container, after `--`.
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

/// Options of every command that submits a job.
#[derive(Debug, Args)]
pub struct JobOptions {
    /// Go ahead although a failed job on the target did not finish its
    /// rollback: its remaining undos are left undone (journaled on it).
    #[arg(long)]
    pub force: bool,
}

impl JobOptions {
    fn apply(&self, mut req: JobRequest) -> JobRequest {
        req.force = self.force;
        req
    }
}

/// `deckhand install TARGET IMAGE` or `deckhand install TARGET -f compose.yaml`
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Target name, e.g. `web`.
    pub target: String,
    /// Image reference, e.g. `127.0.0.1:5000/app:1`.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub image: Option<String>,
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub compose: ComposeArgs,
    #[command(flatten)]
    pub options: JobOptions,
}

/// `deckhand upgrade TARGET [IMAGE]`
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Target name.
    pub target: String,
    /// New image reference; omitted, the current one is kept.
    #[arg(conflicts_with = "file")]
    pub image: Option<String>,
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub compose: ComposeArgs,
    /// If the upgrade does not commit, every named volume is left as it
    /// was before it (`--snapshot-volumes=false` turns a revision's off).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub snapshot_volumes: Option<bool>,
    /// `stop-first` (the default), or `start-first`: the new container runs
    /// and is healthy before the old one stops (no fixed host ports).
    #[arg(long, value_name = "STRATEGY", value_parser = ["stop-first", "start-first"])]
    pub strategy: Option<String>,
    #[command(flatten)]
    pub options: JobOptions,
}

/// A stack from a Compose file, instead of one image.
#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Run the services of this Compose file as one stack. Its `${VAR}`s
    /// take their values from `-e KEY=VALUE`, then this shell's environment
    /// (only the variables the file names), then a `.env` file beside it.
    /// `--health-timeout` is how long each service may take to run and be
    /// healthy (default 60 s).
    #[arg(short = 'f', long = "file", value_name = "COMPOSE_FILE")]
    pub file: Option<std::path::PathBuf>,
}

impl ComposeArgs {
    /// Stack params (`{compose, env, …}`) when a file was given: `spec`'s
    /// `-e` values set variables; its other flags do not apply.
    fn params(&self, spec: &SpecArgs) -> Option<Result<Value, String>> {
        let file = self.file.as_ref()?;
        Some((|| {
            let mut given = spec.params(None)?;
            let vars = given
                .as_object_mut()
                .and_then(|m| m.remove("env"))
                .unwrap_or(json!({}));
            let timeout = match given.as_object_mut().and_then(|m| m.remove("health")) {
                Some(Value::Object(h)) if h.len() == 1 && h.contains_key("timeout_s") => {
                    h.get("timeout_s").cloned()
                }
                Some(_) => {
                    return Err("with -f the health checks are the Compose file's; only --health-timeout applies".into());
                }
                None => None,
            };
            if given.as_object().is_some_and(|m| !m.is_empty()) {
                return Err(
                    "with -f the Compose file describes the services: only -e (variables for the file) applies".into(),
                );
            }
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let mut env: BTreeMap<String, String> = BTreeMap::new();
            let dotenv = file
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join(".env");
            if let Ok(lines) = std::fs::read_to_string(&dotenv) {
                env.extend(dotenv_pairs(&lines));
            }
            for name in deckhand_params::compose_variables(&text)? {
                if let Ok(value) = std::env::var(&name) {
                    env.insert(name, value);
                }
            }
            if let Value::Object(vars) = vars {
                for (k, v) in vars {
                    env.insert(k, v.as_str().unwrap_or_default().to_owned());
                }
            }
            let mut p = json!({"compose": text});
            if !env.is_empty() {
                p["env"] = json!(env);
            }
            if let Some(t) = timeout {
                p["health_timeout_s"] = t;
            }
            Ok(p)
        })())
    }
}

/// `KEY=VALUE` lines of a `.env` file (blank lines and `#` comments
/// skipped, one level of matching quotes around the value removed).
fn dotenv_pairs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| v.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
                .unwrap_or(v);
            (k.trim().to_owned(), unquoted.to_owned())
        })
        .collect()
}

/// `deckhand run WORKFLOW TARGET [--params JSON]`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Workflow name (built-in or registered with `deckhand plugin add`).
    pub workflow: String,
    /// Target name.
    pub target: String,
    /// Params as a JSON object.
    #[arg(long, default_value = "{}")]
    pub params: String,
    #[command(flatten)]
    pub options: JobOptions,
}

impl RunArgs {
    /// The job this command asks for.
    pub fn request(self) -> anyhow::Result<JobRequest> {
        let params: Value = serde_json::from_str(&self.params)
            .map_err(|e| anyhow::anyhow!("--params is not JSON: {e}"))?;
        Ok(self
            .options
            .apply(JobRequest::new(self.workflow, self.target, params)))
    }
}

/// `deckhand teardown TARGET`
#[derive(Debug, Args)]
pub struct TeardownArgs {
    /// Target name.
    pub target: String,
    /// Also remove the volumes the engine created for the target (kept by
    /// default; volumes that existed before are never removed).
    #[arg(long)]
    pub remove_volumes: bool,
    #[command(flatten)]
    pub options: JobOptions,
}

/// `deckhand rollback TARGET REVISION`
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Target name.
    pub target: String,
    /// The earlier revision whose image and config to bring back.
    pub revision: u64,
    #[command(flatten)]
    pub options: JobOptions,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

/// `KEY=VALUE`, or `KEY` alone for an empty value (as `docker run -l`).
fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    if k.is_empty() {
        return Err(format!("`{s}` is not KEY=VALUE"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// Whole seconds, from a number of seconds or a duration as Docker writes
/// them (`10s`, `1m30s`, `2h`): the params count in seconds.
fn parse_seconds(s: &str) -> Result<u32, String> {
    let secs = match s.parse::<u64>() {
        Ok(n) => n,
        Err(_) => {
            let d = humantime::parse_duration(s)
                .map_err(|e| format!("`{s}` is not a duration like 10s or 1m30s ({e})"))?;
            if d.subsec_nanos() != 0 {
                return Err(format!("`{s}` is not a whole number of seconds"));
            }
            d.as_secs()
        }
    };
    u32::try_from(secs).map_err(|_| format!("`{s}` is too long"))
}

/// Refuse the command line as clap refuses a bad flag: a combination of
/// flags no single flag's parser can see.
fn usage_error(message: String) -> ! {
    clap::Error::raw(
        clap::error::ErrorKind::ArgumentConflict,
        format!("{message}\n"),
    )
    .exit()
}

impl SpecArgs {
    /// Params with the fields that were given; `image` first when given.
    /// `Err` says which flags do not go together.
    fn params(&self, image: Option<&str>) -> Result<Value, String> {
        let mut p = json!({});
        if let Some(image) = image {
            p["image"] = json!(image);
        }
        if !self.env.is_empty() {
            p["env"] = json!(self.env.iter().cloned().collect::<BTreeMap<_, _>>());
        }
        if let Some(entrypoint) = &self.entrypoint {
            // Docker's `--entrypoint` is one executable, not split; `""`
            // resets the image's (`[""]` in the API).
            p["entrypoint"] = json!([entrypoint]);
        }
        if let Some(user) = &self.user {
            p["user"] = json!(user);
        }
        if let Some(workdir) = &self.workdir {
            p["workdir"] = json!(workdir);
        }
        if !self.publish.is_empty() {
            p["ports"] = json!(self.publish);
        }
        if !self.volume.is_empty() {
            p["volumes"] = json!(self.volume);
        }
        self.network_params(&mut p)?;
        if let Some(restart) = &self.restart {
            p["restart"] = json!(restart);
        }
        if !self.label.is_empty() {
            p["labels"] = json!(self.label.iter().cloned().collect::<BTreeMap<_, _>>());
        }
        if let Some(memory) = &self.memory {
            p["memory"] = json!(memory);
        }
        if let Some(cpus) = self.cpus {
            p["cpus"] = json!(cpus);
        }
        if let Some(secs) = self.stop_timeout {
            p["stop_timeout_s"] = json!(secs);
        }
        let mut health = serde_json::Map::new();
        let mut set = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                health.insert(k.to_owned(), v);
            }
        };
        set("timeout_s", self.health_timeout.map(Value::from));
        set(
            "cmd",
            match (&self.health_cmd, self.no_healthcheck) {
                (Some(cmd), _) => Some(json!(["CMD-SHELL", cmd])),
                (None, true) => Some(json!(["NONE"])),
                (None, false) => None,
            },
        );
        set("interval_s", self.health_interval.map(Value::from));
        set(
            "probe_timeout_s",
            self.health_probe_timeout.map(Value::from),
        );
        set("retries", self.health_retries.map(Value::from));
        set("start_period_s", self.health_start_period.map(Value::from));
        if !health.is_empty() {
            p["health"] = Value::Object(health);
        }
        if !self.cmd.is_empty() {
            p["cmd"] = json!(self.cmd);
        }
        Ok(p)
    }

    /// `--network` as Docker reads it: one network mode (`none`, `host`, …:
    /// the `network` field), or user-defined networks (`networks`), the
    /// `--network-alias`es going to the first.
    fn network_params(&self, p: &mut Value) -> Result<(), String> {
        let mode = self
            .network
            .iter()
            .find(|n| deckhand_params::is_network_mode(n));
        match (mode, self.network.len()) {
            (Some(mode), 1) => {
                if !self.network_alias.is_empty() {
                    return Err(format!(
                        "--network-alias needs a user-defined network, not network mode `{mode}`"
                    ));
                }
                p["network"] = json!(mode);
            }
            (Some(mode), _) => {
                return Err(format!(
                    "--network {mode} is a network mode: it cannot be combined with other --network values"
                ));
            }
            (None, 0) if !self.network_alias.is_empty() => {
                return Err("--network-alias needs a user-defined network (--network NAME)".into());
            }
            (None, 0) => {}
            (None, _) => {
                let mut networks: Vec<Value> = self.network.iter().map(|n| json!(n)).collect();
                if !self.network_alias.is_empty() {
                    networks[0] = json!({"name": self.network[0], "aliases": self.network_alias});
                }
                p["networks"] = Value::Array(networks);
            }
        }
        Ok(())
    }
}

impl InstallArgs {
    /// Params: a stack's from `-f`, else the image's spec.
    fn params(&self) -> Result<Value, String> {
        self.compose
            .params(&self.spec)
            .unwrap_or_else(|| self.spec.params(self.image.as_deref()))
    }

    /// The job this command asks for.
    pub fn request(self) -> JobRequest {
        let params = self.params().unwrap_or_else(|e| usage_error(e));
        self.options
            .apply(JobRequest::new("install", self.target, params))
    }
}

impl UpgradeArgs {
    /// Params: the spec's, and how to upgrade.
    fn params(&self) -> Result<Value, String> {
        if let Some(stack) = self.compose.params(&self.spec) {
            let mut p = stack?;
            if self.strategy.is_some() {
                return Err("--strategy applies to one container, not to a stack".into());
            }
            if let Some(snapshot) = self.snapshot_volumes {
                p["snapshot_volumes"] = json!(snapshot);
            }
            return Ok(p);
        }
        let mut p = self.spec.params(self.image.as_deref())?;
        if let Some(snapshot) = self.snapshot_volumes {
            p["snapshot_volumes"] = json!(snapshot);
        }
        if let Some(strategy) = &self.strategy {
            p["strategy"] = json!(strategy);
        }
        Ok(p)
    }

    /// The job this command asks for.
    pub fn request(self) -> JobRequest {
        let params = self.params().unwrap_or_else(|e| usage_error(e));
        self.options
            .apply(JobRequest::new("upgrade", self.target, params))
    }
}

impl TeardownArgs {
    /// Params: `{}`, or `{"remove_volumes": true}`.
    fn params(&self) -> Value {
        if self.remove_volumes {
            json!({ "remove_volumes": true })
        } else {
            json!({})
        }
    }

    /// The job this command asks for.
    pub fn request(self) -> JobRequest {
        let params = self.params();
        self.options
            .apply(JobRequest::new("teardown", self.target, params))
    }
}

impl RollbackArgs {
    /// The job this command asks for.
    pub fn request(self) -> JobRequest {
        let req = JobRequest::new(
            "rollback",
            self.target,
            json!({ "revision": self.revision }),
        );
        self.options.apply(req)
    }
}

/// Submit a job, show its progress until it ends, and print a summary.
pub async fn foreground(data_dir: &Path, req: JobRequest) -> anyhow::Result<ExitCode> {
    // Refuse a bad name before touching the journal or Docker.
    if !crate::executor::valid_target_name(&req.target) {
        return Err(crate::executor::SubmitError::InvalidTarget(req.target).into());
    }
    // Bad params too (`-p 70000:80`), with this process's permissions: the
    // engine checks them again at submit, with the host-network rule.
    let allow = deckhand_params::Permissions {
        bind_mounts: super::host_settings()?.allow_bind_mounts,
    };
    if let Err(e) = deckhand_params::check(&req.workflow, &req.params, &allow) {
        return Err(crate::executor::SubmitError::InvalidParams(e).into());
    }
    let executor = super::engine(data_dir).await?;
    let mut live = executor.journal().subscribe();
    let job = executor.submit(req).await?;
    outln!("job {} ({} {}) accepted", job.id, job.workflow, job.target);

    let view = LiveView::new();
    let mut health = executor.journal().watch_health();
    let mut ctrl_c_pressed = false;
    // One listener for the whole wait: a Ctrl-C between two polls is not lost.
    let mut interrupts = super::live::interrupts()?;
    loop {
        tokio::select! {
            ev = live.recv() => match ev {
                Ok(ev) if ev.job_id == job.id => {
                    if view.show(&ev.event).is_some() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            Ok(()) = health.changed() => {
                let now = health.borrow_and_update().clone();
                view.line(match now {
                    crate::journal::JournalHealth::Unwritable { error, .. } => format!(
                        "the journal cannot be written ({error}): the job is paused and is finished (rolled back, or committed after its commit point) as soon as it can be"
                    ),
                    crate::journal::JournalHealth::Writable => {
                        "the journal can be written again: finishing the job".to_owned()
                    }
                });
            }
            // The run ended without a terminal state (the journal failed).
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)), if !executor.is_running(&job.id) => break,
            _ = interrupts.recv(), if !ctrl_c_pressed => {
                ctrl_c_pressed = true;
                view.line(format!("Ctrl-C: cancelling job {} and rolling back…", job.id));
                let outcome = executor.cancel(&job.id, Some("Ctrl-C in the foreground CLI".into())).await?;
                if !outcome.cancelled {
                    view.line(format!("not cancelled: {}", outcome.reason.unwrap_or_default()));
                }
            }
        }
    }
    view.finish();
    let done = executor.wait(&job.id).await?;
    let secs = (done.updated_at - done.created_at) as f64 / 1000.0;
    outln!(
        "{}",
        summary_line(
            done.state,
            secs,
            done.summary.as_deref(),
            done.error.as_deref()
        )
    );
    outln!(
        "journal: {}  (deckhand jobs show {})",
        executor.journal().path().display(),
        done.id
    );
    Ok(if done.state == JobState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::{Value, json};

    use super::super::{Cli, Command};

    /// The params `deckhand ARGS…` submits, or the flag error.
    fn params(args: &[&str]) -> Result<Value, String> {
        let cli = Cli::try_parse_from(std::iter::once("deckhand").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        match cli.command {
            Command::Install(a) => a.params(),
            Command::Upgrade(a) => a.params(),
            Command::Teardown(a) => Ok(a.params()),
            other => panic!("not a job command: {other:?}"),
        }
    }

    /// The params must also be what the server accepts.
    fn accepted(workflow: &str, p: &Value) {
        let allow = deckhand_params::Permissions { bind_mounts: true };
        assert!(deckhand_params::check(workflow, p, &allow).is_ok(), "{p}");
    }

    #[test]
    fn docker_run_flags_build_the_documented_params() {
        let p = params(&[
            "install",
            "web",
            "app:1",
            "-p",
            "127.0.0.1:8080:80",
            "-v",
            "data:/d",
            "--restart",
            "on-failure:3",
        ])
        .unwrap();
        assert_eq!(
            p,
            json!({"image": "app:1", "ports": ["127.0.0.1:8080:80"], "volumes": ["data:/d"], "restart": "on-failure:3"})
        );
        accepted("install", &p);
    }

    #[test]
    fn every_spec_flag_sets_its_params_field() {
        let p = params(&[
            "install",
            "web",
            "app:1",
            "-e",
            "A=1",
            "--env",
            "B=2",
            "-p",
            "8080:80",
            "--publish",
            "53:53/udp",
            "-v",
            "data:/var/lib/x",
            "--volume",
            "/srv/conf:/etc/x:ro",
            "--network",
            "front",
            "--network",
            "back",
            "--network-alias",
            "web",
            "--network-alias",
            "www",
            "--restart",
            "unless-stopped",
            "--entrypoint",
            "/init",
            "-u",
            "1000:1000",
            "-w",
            "/srv",
            "-l",
            "team=web",
            "--label",
            "flag",
            "--memory",
            "256m",
            "--cpus",
            "0.5",
            "--stop-timeout",
            "20",
            "--health-cmd",
            "wget -qO- localhost || exit 1",
            "--health-interval",
            "10s",
            "--health-probe-timeout",
            "3s",
            "--health-retries",
            "5",
            "--health-start-period",
            "1m30s",
            "--health-timeout",
            "2m",
            "--",
            "nginx",
            "-g",
            "daemon off;",
        ])
        .unwrap();
        assert_eq!(
            p,
            json!({
                "image": "app:1",
                "env": {"A": "1", "B": "2"},
                "ports": ["8080:80", "53:53/udp"],
                "volumes": ["data:/var/lib/x", "/srv/conf:/etc/x:ro"],
                "networks": [{"name": "front", "aliases": ["web", "www"]}, "back"],
                "restart": "unless-stopped",
                "entrypoint": ["/init"],
                "user": "1000:1000",
                "workdir": "/srv",
                "labels": {"team": "web", "flag": ""},
                "memory": "256m",
                "cpus": 0.5,
                "stop_timeout_s": 20,
                "health": {
                    "cmd": ["CMD-SHELL", "wget -qO- localhost || exit 1"],
                    "interval_s": 10, "probe_timeout_s": 3, "retries": 5,
                    "start_period_s": 90, "timeout_s": 120,
                },
                "cmd": ["nginx", "-g", "daemon off;"],
            })
        );
        accepted("install", &p);
    }

    #[test]
    fn no_flags_leave_every_field_unset_for_an_upgrade() {
        assert_eq!(params(&["upgrade", "web"]).unwrap(), json!({}));
        assert_eq!(
            params(&["upgrade", "web", "app:2"]).unwrap(),
            json!({"image": "app:2"})
        );
    }

    #[test]
    fn one_network_mode_is_the_network_field_and_names_are_networks() {
        assert_eq!(
            params(&["install", "w", "a", "--network", "none"]).unwrap(),
            json!({"image": "a", "network": "none"})
        );
        assert_eq!(
            params(&["install", "w", "a", "--network", "appnet"]).unwrap(),
            json!({"image": "a", "networks": ["appnet"]})
        );
        for bad in [
            &["--network", "host", "--network", "appnet"][..],
            &["--network", "none", "--network-alias", "db"],
            &["--network-alias", "db"],
        ] {
            let args = [&["install", "w", "a"][..], bad].concat();
            let e = params(&args).unwrap_err();
            assert!(e.contains("--network"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn entrypoint_is_one_executable_and_empty_resets_it() {
        assert_eq!(
            params(&["install", "w", "a", "--entrypoint", "/bin/sh -c"]).unwrap()["entrypoint"],
            json!(["/bin/sh -c"])
        );
        assert_eq!(
            params(&["install", "w", "a", "--entrypoint", ""]).unwrap()["entrypoint"],
            json!([""])
        );
    }

    #[test]
    fn no_healthcheck_sets_none_and_conflicts_with_health_cmd() {
        assert_eq!(
            params(&["install", "w", "a", "--no-healthcheck"]).unwrap()["health"],
            json!({"cmd": ["NONE"]})
        );
        assert!(
            params(&[
                "install",
                "w",
                "a",
                "--no-healthcheck",
                "--health-cmd",
                "true"
            ])
            .is_err()
        );
    }

    #[test]
    fn durations_are_whole_seconds_as_docker_writes_them() {
        assert_eq!(super::parse_seconds("30"), Ok(30));
        assert_eq!(super::parse_seconds("10s"), Ok(10));
        assert_eq!(super::parse_seconds("1m30s"), Ok(90));
        assert_eq!(super::parse_seconds("2h"), Ok(7200));
        assert!(super::parse_seconds("500ms").is_err());
        assert!(super::parse_seconds("soon").is_err());
        assert!(super::parse_seconds("99999999999").is_err());
        assert!(params(&["install", "w", "a", "--health-interval", "1.5s"]).is_err());
    }

    #[test]
    fn upgrade_flags_set_snapshot_volumes_and_strategy() {
        assert_eq!(
            params(&[
                "upgrade",
                "web",
                "--snapshot-volumes",
                "--strategy",
                "start-first"
            ])
            .unwrap(),
            json!({"snapshot_volumes": true, "strategy": "start-first"})
        );
        // The image after the flag is not taken for its value.
        assert_eq!(
            params(&["upgrade", "web", "--snapshot-volumes", "app:2"]).unwrap(),
            json!({"image": "app:2", "snapshot_volumes": true})
        );
        assert_eq!(
            params(&["upgrade", "web", "--snapshot-volumes=false"]).unwrap(),
            json!({"snapshot_volumes": false})
        );
        assert!(params(&["upgrade", "web", "--strategy", "blue-green"]).is_err());
        assert!(params(&["install", "w", "a", "--snapshot-volumes"]).is_err());
        accepted(
            "upgrade",
            &params(&[
                "upgrade",
                "web",
                "--snapshot-volumes",
                "--strategy",
                "stop-first",
            ])
            .unwrap(),
        );
    }

    #[test]
    fn teardown_keeps_volumes_unless_remove_volumes() {
        assert_eq!(params(&["teardown", "web"]).unwrap(), json!({}));
        let p = params(&["teardown", "web", "--remove-volumes"]).unwrap();
        assert_eq!(p, json!({"remove_volumes": true}));
        accepted("teardown", &p);
    }

    #[test]
    fn serve_takes_allow_bind_mounts() {
        let cli = Cli::try_parse_from(["deckhand", "serve", "--allow-bind-mounts"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert!(args.allow_bind_mounts);
    }

    #[test]
    fn install_with_a_compose_file_sends_its_text_and_the_variables_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("compose.yaml");
        let text =
            "services:\n  web:\n    image: app:${TAG}\n    environment:\n      A: ${FROM_DOTENV}\n";
        std::fs::write(&file, text).unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "# comment\nFROM_DOTENV=\"x y\"\nTAG=0\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let p = params(&["install", "shop", "-f", path, "-e", "TAG=2"]).unwrap();
        assert_eq!(
            p,
            json!({"compose": text, "env": {"FROM_DOTENV": "x y", "TAG": "2"}})
        );
        accepted("install", &p);
        let upgrade = params(&["upgrade", "shop", "-f", path, "--health-timeout", "9"]).unwrap();
        assert_eq!(upgrade["health_timeout_s"], 9);
        let e = params(&["install", "shop", "-f", path, "-p", "80"]).unwrap_err();
        assert!(e.contains("only -e"), "{e}");
        assert!(params(&["install", "shop", "app:1", "-f", path]).is_err());
        assert!(params(&["install", "shop"]).is_err(), "an image or a file");
    }
}
