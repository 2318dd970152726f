//! The params contract of Deckhand's built-in workflows, in one place: the
//! plugins read their params with these types (re-exported by
//! `deckhand-sdk`) and turn its strings into structures with its parsers
//! ([`parse_port`], [`parse_volume`], [`parse_restart`], [`parse_memory`],
//! [`cpus_to_nano`], or the [`Spec`] methods that return the parsed lists);
//! the engine checks a job's params with [`check`] before the job exists, so
//! that what it accepts is exactly what the plugins can read.
//!
//! | workflow | params |
//! | --- | --- |
//! | `install` | [`Spec`] with `image` |
//! | `upgrade` | [`Spec`]; unset fields keep the current revision's ([`Spec::over`]) |
//! | `teardown` | [`Teardown`] (`{remove_volumes?}`) |
//! | `rollback` | [`Rollback`] (`{revision}`) |
//!
//! [`Spec`] fields (all optional; `install` needs `image`):
//!
//! | field | syntax | example |
//! | --- | --- | --- |
//! | `image` | Docker reference | `"nginx:1.27"` |
//! | `env` | `{K: V}` | `{"TZ": "UTC"}` |
//! | `cmd`, `entrypoint` | `[..]` | `["nginx", "-g", "daemon off;"]` |
//! | `user` | `name\|uid[:group\|gid]` | `"1000:1000"` |
//! | `workdir` | absolute path | `"/srv"` |
//! | `ports` | `[[IP:][HOST]:]CONTAINER[/tcp\|udp\|sctp]` | `["127.0.0.1:8080:80", "53:53/udp", "80"]` |
//! | `volumes` | `NAME:/path[:ro\|rw]`, `/host/path:/path[:ro\|rw]` | `["data:/var/lib/x", "/etc/app:/etc/app:ro"]` |
//! | `network` | network mode (`none`, `bridge`, `host`, …) | `"none"` |
//! | `networks` | names, or `{name, aliases}` | `["appnet", {"name": "back", "aliases": ["db"]}]` |
//! | `restart` | `no`, `on-failure[:N]`, `unless-stopped`, `always` | `"on-failure:3"` |
//! | `labels` | `{k: v}`, not under `io.deckhand.` | `{"team": "web"}` |
//! | `memory` | bytes, or `k`/`m`/`g`/`t` (binary), ≥ 6 MiB | `"256m"` |
//! | `cpus` | number > 0 (3 decimals) | `0.5` |
//! | `stop_timeout_s` | seconds | `20` |
//! | `health` | `{timeout_s, cmd, interval_s, probe_timeout_s, retries, start_period_s}` | `{"cmd": ["CMD-SHELL", "wget -qO- localhost"], "interval_s": 5}` |
//! | `snapshot_volumes` | bool (upgrade) | `true` |
//! | `strategy` | `stop-first` (default) \| `start-first` (upgrade) | `"start-first"` |
//!
//! Errors name the field path (`` `ports[1]`: port 70000 is out of range
//! 1–65535 ``). The parsers' own errors say only what is wrong; the
//! [`Spec`] methods and [`check`] add the path. Params are hostile input:
//! lists, maps and strings are bounded ([`MAX_PORTS`] and the others).
//!
//! Its tests are the engine's (`engine/src/executor/params.rs`), which
//! build it natively; the plugins build it for `wasm32-wasip2`.

#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// At most this many `ports`.
pub const MAX_PORTS: usize = 64;
/// At most this many `volumes`.
pub const MAX_VOLUMES: usize = 64;
/// At most this many `networks`.
pub const MAX_NETWORKS: usize = 16;
/// At most this many aliases per network.
pub const MAX_ALIASES: usize = 16;
/// At most this many `labels`.
pub const MAX_LABELS: usize = 128;
/// Longest string (or map key) anywhere in the params, in bytes, but
/// environment values.
pub const MAX_STRING_BYTES: usize = 4096;
/// Longest environment value, in bytes: certificates and JSON configs are
/// passed this way, so more room than other strings.
pub const MAX_ENV_VALUE_BYTES: usize = 32 << 10;
/// Docker's smallest memory limit (its "Minimum memory limit allowed is 6MB").
pub const MIN_MEMORY_BYTES: u64 = 6 << 20;
/// Largest `cpus`: keeps nano-CPUs well inside Docker's `i64`.
pub const MAX_CPUS: f64 = 1_000_000.0;
/// Longest volume or network name (Docker's logical names).
pub const MAX_NAME_LEN: usize = 64;

/// What the server allows beyond the default, as the engine passes it to
/// [`check`] and the plugins to [`Spec::validate`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Host paths may be mounted (`serve --allow-bind-mounts`): a bind
    /// mount reaches the machine's files, so it is off by default.
    pub bind_mounts: bool,
}

/// Health-check settings of a spec. In an upgrade, each unset field keeps
/// the current revision's ([`Health::over`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Seconds to wait for the container to be running (and healthy, when it
    /// has a health check) before the job fails. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    /// The check, in Compose form: `["CMD", prog, args..]`,
    /// `["CMD-SHELL", "shell command"]`, `["NONE"]` (no check, even the
    /// image's), or `[]` (the image's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Seconds between probes (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_s: Option<u32>,
    /// Seconds one probe may take (at least 1); Docker's `--health-timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_timeout_s: Option<u32>,
    /// Consecutive failures that make the container unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Seconds after start during which failures do not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period_s: Option<u32>,
}

impl Health {
    /// The timeout to use.
    pub fn timeout(&self) -> u32 {
        self.timeout_s.unwrap_or(30)
    }

    /// Fields set in `self` win; the others come from `base`.
    pub fn over(self, base: &Health) -> Health {
        Health {
            timeout_s: self.timeout_s.or(base.timeout_s),
            cmd: self.cmd.or_else(|| base.cmd.clone()),
            interval_s: self.interval_s.or(base.interval_s),
            probe_timeout_s: self.probe_timeout_s.or(base.probe_timeout_s),
            retries: self.retries.or(base.retries),
            start_period_s: self.start_period_s.or(base.start_period_s),
        }
    }

    /// Check every field; `Err` names it (`` `health.cmd`: … ``).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(cmd) = &self.cmd {
            check_health_cmd(cmd).map_err(|e| format!("`health.cmd`: {e}"))?;
        }
        // 0 would mean "Docker's default" to the daemon, not "never": refuse
        // it rather than let it mean something else than it says.
        for (name, value) in [
            ("interval_s", self.interval_s),
            ("probe_timeout_s", self.probe_timeout_s),
        ] {
            if value == Some(0) {
                return Err(format!("`health.{name}`: must be at least 1 second"));
            }
        }
        Ok(())
    }
}

/// How an upgrade replaces the container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Stop the old container, then start the new one (the default).
    #[default]
    StopFirst,
    /// Start the new one and wait until it is healthy before stopping the
    /// old one; needs ports without a fixed host port.
    StartFirst,
}

/// One user-defined network of a spec, with the container's aliases on it.
/// In JSON a bare name (`"appnet"`) or `{"name": "appnet", "aliases":
/// ["db"]}`; it is written back as a bare name when it has no aliases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    /// The network's name.
    pub name: String,
    /// DNS names the container answers to on it.
    pub aliases: Vec<String>,
}

impl Serialize for NetworkSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.aliases.is_empty() {
            s.serialize_str(&self.name)
        } else {
            #[derive(Serialize)]
            struct Full<'a> {
                name: &'a str,
                aliases: &'a [String],
            }
            Full {
                name: &self.name,
                aliases: &self.aliases,
            }
            .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for NetworkSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            name: String,
            #[serde(default)]
            aliases: Vec<String>,
        }
        // Through a `Value`, so that a wrong shape gets a message saying
        // both forms rather than serde's "did not match any variant".
        match Value::deserialize(d)? {
            Value::String(name) => Ok(NetworkSpec {
                name,
                aliases: Vec::new(),
            }),
            v @ Value::Object(_) => {
                let full = Full::deserialize(v).map_err(D::Error::custom)?;
                Ok(NetworkSpec {
                    name: full.name,
                    aliases: full.aliases,
                })
            }
            _ => Err(D::Error::custom(
                "a network is a name or {\"name\": …, \"aliases\": […]}",
            )),
        }
    }
}

/// The container spec of `install` and `upgrade` params, and of a revision.
/// In an upgrade, unset fields keep the current revision's value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Image reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Command and arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Entrypoint (`[""]` resets the image's, as `docker run --entrypoint ""`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// User (`name|uid[:group|gid]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Working directory, absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Published ports, `docker run -p` syntax ([`parse_port`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<String>>,
    /// Named volumes and bind mounts, `docker run -v` syntax ([`parse_volume`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<String>>,
    /// Network mode (`none`, `bridge`, `host`, `container:…`, or one
    /// existing network); not together with `networks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// User-defined networks, created when absent; the first is the one the
    /// container is created on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<NetworkSpec>>,
    /// Restart policy ([`parse_restart`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// User labels; keys under `io.deckhand.` are the engine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Memory limit ([`parse_memory`]), at least 6 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// CPU limit, in CPUs ([`cpus_to_nano`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Seconds a stop waits before killing the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout_s: Option<u32>,
    /// Health-check settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Upgrade: a non-committed upgrade leaves every named volume's content
    /// as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_volumes: Option<bool>,
    /// Upgrade: how the container is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
}

impl Spec {
    /// Fields set in `self` win; the others come from `base`. `health` is
    /// merged field by field. `network` and `networks` are two ways to say
    /// one thing: setting either replaces both.
    pub fn over(self, base: &Spec) -> Spec {
        let (network, networks) = if self.network.is_some() || self.networks.is_some() {
            (self.network, self.networks)
        } else {
            (base.network.clone(), base.networks.clone())
        };
        Spec {
            image: self.image.or_else(|| base.image.clone()),
            env: self.env.or_else(|| base.env.clone()),
            cmd: self.cmd.or_else(|| base.cmd.clone()),
            entrypoint: self.entrypoint.or_else(|| base.entrypoint.clone()),
            user: self.user.or_else(|| base.user.clone()),
            workdir: self.workdir.or_else(|| base.workdir.clone()),
            ports: self.ports.or_else(|| base.ports.clone()),
            volumes: self.volumes.or_else(|| base.volumes.clone()),
            network,
            networks,
            restart: self.restart.or_else(|| base.restart.clone()),
            labels: self.labels.or_else(|| base.labels.clone()),
            memory: self.memory.or_else(|| base.memory.clone()),
            cpus: self.cpus.or(base.cpus),
            stop_timeout_s: self.stop_timeout_s.or(base.stop_timeout_s),
            health: match (self.health, &base.health) {
                (Some(h), Some(b)) => Some(h.over(b)),
                (h, b) => h.or_else(|| b.clone()),
            },
            snapshot_volumes: self.snapshot_volumes.or(base.snapshot_volumes),
            strategy: self.strategy.or(base.strategy),
        }
    }

    /// The image, or an error saying it is required.
    pub fn require_image(&self) -> Result<&str, String> {
        self.image
            .as_deref()
            .filter(|i| !i.trim().is_empty())
            .ok_or_else(|| "invalid params: `image` is required".to_owned())
    }

    /// This spec as the JSON a revision stores.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("spec serializes")
    }

    /// The published ports, parsed; `Err` names the item (`` `ports[1]`: … ``).
    pub fn port_specs(&self) -> Result<Vec<PortSpec>, String> {
        let ports = self.ports.as_deref().unwrap_or_default();
        bounded("ports", ports.len(), MAX_PORTS, "ports")?;
        let mut out: Vec<PortSpec> = Vec::with_capacity(ports.len());
        for (i, p) in ports.iter().enumerate() {
            let port = parse_port(p).map_err(|e| format!("`ports[{i}]`: {e}"))?;
            if let Some(j) = out.iter().position(|o| o.same_host_port(&port)) {
                return Err(format!(
                    "`ports[{i}]`: host port {}/{} is already published by `ports[{j}]`",
                    port.host_port.unwrap_or_default(),
                    port.protocol
                ));
            }
            out.push(port);
        }
        Ok(out)
    }

    /// The volumes, parsed; `Err` names the item. Bind mounts are parsed
    /// here whatever the server allows ([`Spec::validate`] checks that).
    pub fn volume_specs(&self) -> Result<Vec<VolumeSpec>, String> {
        let volumes = self.volumes.as_deref().unwrap_or_default();
        bounded("volumes", volumes.len(), MAX_VOLUMES, "volumes")?;
        let mut out: Vec<VolumeSpec> = Vec::with_capacity(volumes.len());
        for (i, v) in volumes.iter().enumerate() {
            let volume = parse_volume(v).map_err(|e| format!("`volumes[{i}]`: {e}"))?;
            let norm = |t: &str| t.trim_end_matches('/').to_owned();
            if let Some(j) = out
                .iter()
                .position(|o| norm(&o.target) == norm(&volume.target))
            {
                return Err(format!(
                    "`volumes[{i}]`: `{}` is already mounted by `volumes[{j}]`",
                    volume.target
                ));
            }
            out.push(volume);
        }
        Ok(out)
    }

    /// The user-defined networks, checked; `Err` names the item
    /// (`` `networks[0].aliases[1]`: … ``).
    pub fn network_specs(&self) -> Result<Vec<NetworkSpec>, String> {
        let networks = self.networks.as_deref().unwrap_or_default();
        bounded("networks", networks.len(), MAX_NETWORKS, "networks")?;
        for (i, n) in networks.iter().enumerate() {
            check_network_name(&n.name).map_err(|e| format!("`networks[{i}]`: {e}"))?;
            if let Some(j) = networks[..i].iter().position(|o| o.name == n.name) {
                return Err(format!(
                    "`networks[{i}]`: `{}` is already listed as `networks[{j}]`",
                    n.name
                ));
            }
            let at = format!("networks[{i}].aliases");
            bounded(&at, n.aliases.len(), MAX_ALIASES, "aliases")?;
            for (k, alias) in n.aliases.iter().enumerate() {
                check_alias(alias).map_err(|e| format!("`{at}[{k}]`: {e}"))?;
            }
        }
        Ok(networks.to_vec())
    }

    /// The restart policy, parsed (`None`: Docker's default, `no`).
    pub fn restart_spec(&self) -> Result<Option<RestartSpec>, String> {
        self.restart
            .as_deref()
            .map(|r| parse_restart(r).map_err(|e| format!("`restart`: {e}")))
            .transpose()
    }

    /// The memory limit in bytes, at least [`MIN_MEMORY_BYTES`].
    pub fn memory_bytes(&self) -> Result<Option<u64>, String> {
        let Some(memory) = self.memory.as_deref() else {
            return Ok(None);
        };
        let bytes = parse_memory(memory).map_err(|e| format!("`memory`: {e}"))?;
        if bytes < MIN_MEMORY_BYTES {
            return Err(format!(
                "`memory`: `{memory}` is below Docker's minimum of 6 MiB (`6m`)"
            ));
        }
        Ok(Some(bytes))
    }

    /// The CPU limit in nano-CPUs (Docker's `NanoCpus`).
    pub fn nano_cpus(&self) -> Result<Option<u64>, String> {
        let Some(cpus) = self.cpus else {
            return Ok(None);
        };
        check_cpus(cpus).map_err(|e| format!("`cpus`: {e}"))?;
        Ok(Some(cpus_to_nano(cpus)))
    }

    /// The labels, checked: none under `io.deckhand.`.
    pub fn user_labels(&self) -> Result<BTreeMap<String, String>, String> {
        let labels = self.labels.clone().unwrap_or_default();
        bounded("labels", labels.len(), MAX_LABELS, "labels")?;
        for key in labels.keys() {
            check_label_key(key).map_err(|e| format!("`labels.{key}`: {e}"))?;
        }
        Ok(labels)
    }

    /// The upgrade strategy to use.
    pub fn strategy(&self) -> Strategy {
        self.strategy.unwrap_or_default()
    }

    /// Check every field and how they go together, as `allow` permits. The
    /// engine calls it on a job's params; a plugin calls it on the spec it
    /// runs (an upgrade's params merged over the current revision, where
    /// fields from both meet). `Err` names the field.
    pub fn validate(&self, allow: &Permissions) -> Result<(), String> {
        check_text(&serde_json::to_value(self).expect("spec serializes"), "")?;
        if let Some(image) = &self.image {
            check_reference(image).map_err(|e| format!("`image`: {e}"))?;
        }
        for key in self.env.iter().flatten().map(|(k, _)| k) {
            check_env_key(key).map_err(|e| format!("`env.{key}`: {e}"))?;
        }
        if let Some(user) = &self.user {
            check_user(user).map_err(|e| format!("`user`: {e}"))?;
        }
        if let Some(workdir) = &self.workdir {
            check_container_path(workdir).map_err(|e| format!("`workdir`: {e}"))?;
        }
        let ports = self.port_specs()?;
        for (i, volume) in self.volume_specs()?.iter().enumerate() {
            if matches!(volume.source, VolumeSource::Bind(_)) && !allow.bind_mounts {
                return Err(format!(
                    "`volumes[{i}]`: bind mounts (host paths) are not allowed on this server; it must be started with `--allow-bind-mounts` (or DECKHAND_ALLOW_BIND_MOUNTS=1)"
                ));
            }
        }
        self.network_specs()?;
        if self.network.is_some() && self.networks.is_some() {
            return Err(
                "`networks`: cannot be used together with `network` (the network mode): give one of them"
                    .into(),
            );
        }
        if let (Some(mode), false) = (&self.network, ports.is_empty()) {
            let why = match mode.as_str() {
                "none" => Some("a container on network `none` has no network to publish on"),
                "host" => Some(
                    "a container on network `host` uses the host's ports directly and Docker ignores published ones",
                ),
                m if m.starts_with("container:") => {
                    Some("a container sharing another's network publishes nothing of its own")
                }
                _ => None,
            };
            if let Some(why) = why {
                return Err(format!("`ports`: {why} (network mode `{mode}`)"));
            }
        }
        self.restart_spec()?;
        self.user_labels()?;
        self.memory_bytes()?;
        self.nano_cpus()?;
        if let Some(health) = &self.health {
            health.validate()?;
        }
        if self.strategy() == Strategy::StartFirst
            && let Some(i) = ports.iter().position(|p| p.host_port.is_some())
        {
            return Err(format!(
                "`strategy`: start-first runs the old and the new container together, so no port may have a fixed host port (`ports[{i}]` has one; leave it out to let Docker pick, or use stop-first)"
            ));
        }
        Ok(())
    }
}

/// `Err` when a list has more than `max` items.
fn bounded(path: &str, len: usize, max: usize, what: &str) -> Result<(), String> {
    if len > max {
        Err(format!("`{path}`: at most {max} {what} (got {len})"))
    } else {
        Ok(())
    }
}

/// `teardown` params.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Teardown {
    /// Also remove the volumes the engine created for the target (those
    /// that existed before are never removed). Default: keep them.
    #[serde(default)]
    pub remove_volumes: bool,
}

/// `rollback` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The earlier revision whose image and spec come back.
    pub revision: u64,
}

/// Check `params` against the contract of the built-in `workflow`, with
/// what the server `allow`s; other workflows' params are theirs to check.
/// `Err` names the field and the problem (`` `env.A=B`: … ``).
pub fn check(workflow: &str, params: &Value, allow: &Permissions) -> Result<(), String> {
    match workflow {
        "install" | "upgrade" => {
            let spec: Spec = read_named(params, "")?;
            if workflow == "install" {
                spec.require_image()
                    .map_err(|_| "`image` is required".to_owned())?;
            }
            // On the params as sent too: a map key the typed spec would
            // keep (env, labels) is checked either way, but this also
            // names the exact path of an oversized or forged string.
            check_text(params, "")?;
            spec.validate(allow)
        }
        "teardown" => read_named::<Teardown>(params, "").map(|_| ()),
        "rollback" => Rollback::deserialize(params)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        _ => Ok(()),
    }
}

/// Deserialize `T` (whose fields are all optional) from `value`, naming the
/// field at fault: serde's own error says what is wrong but not where. Each
/// field is tried alone to find it; `health` one level deeper.
fn read_named<T: DeserializeOwned>(value: &Value, path: &str) -> Result<T, String> {
    T::deserialize(value).map_err(|whole| {
        let Value::Object(map) = value else {
            return whole.to_string();
        };
        for (key, v) in map {
            let at = match path {
                "" => key.clone(),
                p => format!("{p}.{key}"),
            };
            let alone = Value::Object([(key.clone(), v.clone())].into_iter().collect());
            if let Err(e) = T::deserialize(&alone) {
                if at == "health"
                    && v.is_object()
                    && let Err(inner) = read_named::<Health>(v, "health")
                {
                    return inner;
                }
                return format!("`{at}`: {e}");
            }
        }
        whole.to_string()
    })
}

/// No string anywhere in `value` (keys included) may hold a line break or a
/// NUL: they would forge lines in logs and summaries, and no Docker field
/// the built-ins set needs one. None may be longer than
/// [`MAX_STRING_BYTES`] ([`MAX_ENV_VALUE_BYTES`] for an `env` value). `Err`
/// names the path of the first.
fn check_text(value: &Value, path: &str) -> Result<(), String> {
    let bad = |s: &str| s.contains(['\r', '\n', '\0']);
    let at = |key: &str| match path {
        "" => key.to_owned(),
        p => format!("{p}.{key}"),
    };
    match value {
        Value::String(s) if bad(s) => Err(format!(
            "`{path}`: line breaks and NUL characters are not allowed"
        )),
        Value::String(s) => {
            let max = if path.starts_with("env.") {
                MAX_ENV_VALUE_BYTES
            } else {
                MAX_STRING_BYTES
            };
            if s.len() > max {
                Err(format!("`{path}`: at most {max} bytes (got {})", s.len()))
            } else {
                Ok(())
            }
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_text(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            if k.len() > MAX_STRING_BYTES {
                let start: String = k.chars().take(32).collect();
                return Err(format!(
                    "`{}…`: a name is at most {MAX_STRING_BYTES} bytes (got {})",
                    at(&start.escape_debug().to_string()),
                    k.len()
                ));
            }
            if bad(k) {
                return Err(format!(
                    "`{}`: line breaks and NUL characters are not allowed in names",
                    at(&k.escape_debug().to_string())
                ));
            }
            check_text(v, &at(k))
        }),
        _ => Ok(()),
    }
}

/// A published port, from [`parse_port`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// The host address to bind (without brackets for IPv6); `None`: all.
    pub host_ip: Option<String>,
    /// The host port; `None` (absent or 0): the daemon picks one.
    pub host_port: Option<u16>,
    /// The container's port.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

impl PortSpec {
    /// Whether both bind the same fixed host port (an address left open
    /// binds every address, so it meets any other).
    fn same_host_port(&self, other: &PortSpec) -> bool {
        let wildcard = |ip: &Option<String>| {
            ip.as_deref()
                .is_none_or(|ip| ip.parse::<IpAddr>().is_ok_and(|a| a.is_unspecified()))
        };
        self.host_port.is_some()
            && self.host_port == other.host_port
            && self.protocol == other.protocol
            && (self.host_ip == other.host_ip
                || wildcard(&self.host_ip)
                || wildcard(&other.host_ip))
    }
}

/// Written back in `-p` syntax: `[IP:][HOST:]CONTAINER/PROTO`.
impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = &self.host_ip {
            if ip.contains(':') {
                write!(f, "[{ip}]:")?;
            } else {
                write!(f, "{ip}:")?;
            }
        }
        match self.host_port {
            Some(p) => write!(f, "{p}:")?,
            None if self.host_ip.is_some() => write!(f, ":")?,
            None => {}
        }
        write!(f, "{}/{}", self.container_port, self.protocol)
    }
}

/// Parse a published port in `docker run -p` syntax:
/// `[[IP:][HOST]:]CONTAINER[/PROTO]` (`80`, `8080:80`, `127.0.0.1:8080:80/tcp`,
/// `127.0.0.1::80`, `[::1]:8080:80`, `53:53/udp`). Ports are 1–65535; a
/// host port of 0 or none lets the daemon pick; the protocol is tcp (the
/// default), udp or sctp. Ranges (`8000-8010:80-90`) are not supported.
pub fn parse_port(s: &str) -> Result<PortSpec, String> {
    let (rest, protocol) = match s.rsplit_once('/') {
        Some((rest, proto)) => {
            let proto = proto.to_ascii_lowercase();
            if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                return Err(format!(
                    "unknown protocol `{proto}` in `{s}` (use tcp, udp or sctp)"
                ));
            }
            (rest, proto)
        }
        None => (s, "tcp".to_owned()),
    };
    let (host_ip, ports) = if let Some(bracketed) = rest.strip_prefix('[') {
        let Some((ip, after)) = bracketed.split_once(']') else {
            return Err(format!("`{s}`: an IPv6 address is written `[addr]`"));
        };
        let Some(ports) = after.strip_prefix(':') else {
            return Err(format!(
                "`{s}` is not `[IP]:HOST:CONTAINER` (use `[IP]::CONTAINER` to let Docker pick the host port)"
            ));
        };
        if !ports.contains(':') {
            return Err(format!(
                "`{s}` is not `[IP]:HOST:CONTAINER` (use `[IP]::CONTAINER` to let Docker pick the host port)"
            ));
        }
        (Some(ip), ports)
    } else {
        match rest.matches(':').count() {
            0 | 1 => (None, rest),
            2 => {
                let (ip, ports) = rest.split_once(':').expect("two colons");
                (Some(ip), ports)
            }
            _ => {
                return Err(format!(
                    "`{s}` is not `[IP:][HOST:]CONTAINER[/PROTO]` (write an IPv6 address in brackets)"
                ));
            }
        }
    };
    let host_ip = match host_ip {
        None => None,
        Some(ip) => match ip.parse::<IpAddr>() {
            Ok(addr) => Some(addr.to_string()),
            Err(_) => {
                return Err(format!("`{ip}` is not an IP address"));
            }
        },
    };
    let (host, container) = match ports.split_once(':') {
        Some((h, c)) => (Some(h), c),
        None => (None, ports),
    };
    let container_port = port_number(container)?;
    let host_port = match host {
        None | Some("") => None,
        Some(h) if h.bytes().all(|b| b == b'0') => None,
        Some(h) => Some(port_number(h)?),
    };
    Ok(PortSpec {
        host_ip,
        host_port,
        container_port,
        protocol,
    })
}

/// A port number 1–65535.
fn port_number(s: &str) -> Result<u16, String> {
    if s.is_empty() {
        return Err("a port number is missing".into());
    }
    if s.contains('-') {
        return Err(format!(
            "port ranges (`{s}`) are not supported: list each port"
        ));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{s}` is not a port number"));
    }
    match s.parse::<u64>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        _ => Err(format!("port {s} is out of range 1–65535")),
    }
}

/// Where a volume's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A named volume (Docker's logical name, before any prefixing).
    Named(String),
    /// A host path (a bind mount).
    Bind(String),
}

/// A volume of a spec, from [`parse_volume`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    /// The named volume or host path.
    pub source: VolumeSource,
    /// The absolute path in the container.
    pub target: String,
    /// Mounted read-only (`:ro`).
    pub read_only: bool,
}

/// Written back in `-v` syntax: `SOURCE:TARGET[:ro]`.
impl fmt::Display for VolumeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (VolumeSource::Named(s) | VolumeSource::Bind(s)) = &self.source;
        write!(f, "{s}:{}", self.target)?;
        if self.read_only {
            write!(f, ":ro")?;
        }
        Ok(())
    }
}

/// Parse a volume in `docker run -v` syntax: `SOURCE:TARGET[:ro|rw]`, where
/// `SOURCE` is a volume name (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 64
/// characters) or an absolute host path without `..` (a bind mount), and
/// `TARGET` an absolute container path. Anonymous volumes (`-v /data`) are
/// not supported: a volume the engine cannot name it cannot keep across an
/// upgrade.
pub fn parse_volume(s: &str) -> Result<VolumeSpec, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, read_only) = match parts.as_slice() {
        [source, target] => (*source, *target, false),
        [source, target, "ro"] => (*source, *target, true),
        [source, target, "rw"] => (*source, *target, false),
        [_, _, option] => {
            return Err(format!("unknown volume option `{option}` (use ro or rw)"));
        }
        [_] => {
            return Err(format!(
                "`{s}` is not `SOURCE:TARGET[:ro|rw]` (anonymous volumes are not supported: name the volume, e.g. `data:{s}`)"
            ));
        }
        _ => return Err(format!("`{s}` is not `SOURCE:TARGET[:ro|rw]`")),
    };
    let source = if source.is_empty() {
        return Err("the source (a volume name or host path) is empty".into());
    } else if source.starts_with('/') {
        if source.split('/').any(|c| c == "..") {
            return Err(format!(
                "a bind mount source must not contain `..` (`{source}`)"
            ));
        }
        VolumeSource::Bind(source.to_owned())
    } else if source.contains('/') || source.starts_with(['.', '~']) {
        // Docker would take it relative to wherever its CLI ran; here there
        // is no such place.
        return Err(format!(
            "a bind mount source must be an absolute path (`{source}`)"
        ));
    } else {
        check_volume_name(source)?;
        VolumeSource::Named(source.to_owned())
    };
    check_container_path(target)?;
    if target.trim_end_matches('/').is_empty() {
        return Err("a volume cannot be mounted over `/`".into());
    }
    Ok(VolumeSpec {
        source,
        target: target.to_owned(),
        read_only,
    })
}

/// A path in the container: absolute, without `..`.
pub fn check_container_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        Err(format!("the container path `{path}` must be absolute"))
    } else if path.split('/').any(|c| c == "..") {
        Err(format!("the container path `{path}` must not contain `..`"))
    } else {
        Ok(())
    }
}

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most [`MAX_NAME_LEN`] characters.
fn docker_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_NAME_LEN
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// A named volume's logical name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 64.
pub fn check_volume_name(name: &str) -> Result<(), String> {
    if docker_name_ok(name) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most {MAX_NAME_LEN} characters)",
            name.chars().take(80).collect::<String>()
        ))
    }
}

/// Whether `network` is a network mode (`none`, `host`, `bridge`,
/// `default`, `container:…`) rather than a user-defined network's name.
pub fn is_network_mode(network: &str) -> bool {
    matches!(network, "none" | "host" | "bridge" | "default") || network.starts_with("container:")
}

/// A user-defined network's name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 64,
/// and not one of Docker's predefined networks (`host` there would share
/// the host's stack, bypassing the `network` mode check).
pub fn check_network_name(name: &str) -> Result<(), String> {
    if is_network_mode(name) {
        Err(format!(
            "`{name}` is a network mode, not a user-defined network: use `network`"
        ))
    } else if docker_name_ok(name) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a network name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most {MAX_NAME_LEN} characters)",
            name.chars().take(80).collect::<String>()
        ))
    }
}

/// A network alias: a DNS label (letters, digits and inner dashes, 1–63).
pub fn check_alias(alias: &str) -> Result<(), String> {
    let b = alias.as_bytes();
    let ok = (1..=63).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a DNS label (letters, digits and inner `-`, at most 63)",
            alias.chars().take(80).collect::<String>()
        ))
    }
}

/// A user label's key: not empty, not under `io.deckhand.` (the engine's,
/// which say what it owns; any case, so none can pass for one).
pub fn check_label_key(key: &str) -> Result<(), String> {
    let lower = key.to_ascii_lowercase();
    if key.is_empty() {
        Err("a label key cannot be empty".into())
    } else if lower == "io.deckhand" || lower.starts_with("io.deckhand.") {
        Err("keys under `io.deckhand.` are reserved".into())
    } else {
        Ok(())
    }
}

/// A user: `name|uid[:group|gid]`, without spaces.
pub fn check_user(user: &str) -> Result<(), String> {
    let ok = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-$".contains(c))
    };
    let valid = match user.split_once(':') {
        Some((u, g)) => ok(u) && ok(g),
        None => ok(user),
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{user}` is not `name|uid[:group|gid]` (letters, digits, `_`, `.`, `-`)"
        ))
    }
}

/// A restart policy's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never restart.
    No,
    /// Restart when it exits with an error.
    OnFailure,
    /// Always, unless stopped by hand (or by the engine).
    UnlessStopped,
    /// Always.
    Always,
}

impl RestartPolicy {
    /// Docker's name for it (`RestartPolicy.Name`).
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::UnlessStopped => "unless-stopped",
            RestartPolicy::Always => "always",
        }
    }
}

/// A restart policy, from [`parse_restart`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartSpec {
    /// The policy.
    pub policy: RestartPolicy,
    /// `on-failure:N`: at most N restarts (`MaximumRetryCount`).
    pub max_retries: Option<u32>,
}

/// Written back as given: `on-failure:3`.
impl fmt::Display for RestartSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.policy.as_str())?;
        match self.max_retries {
            Some(n) => write!(f, ":{n}"),
            None => Ok(()),
        }
    }
}

/// Parse a restart policy: `no`, `on-failure`, `on-failure:N`,
/// `unless-stopped` or `always`.
pub fn parse_restart(s: &str) -> Result<RestartSpec, String> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (s, None),
    };
    let policy = match name {
        "no" => RestartPolicy::No,
        "on-failure" => RestartPolicy::OnFailure,
        "unless-stopped" => RestartPolicy::UnlessStopped,
        "always" => RestartPolicy::Always,
        _ => {
            return Err(format!(
                "unknown restart policy `{s}` (use no, on-failure[:N], unless-stopped, always)"
            ));
        }
    };
    let max_retries = match count {
        None => None,
        Some(_) if policy != RestartPolicy::OnFailure => {
            return Err(format!("only on-failure takes a retry count (`{s}`)"));
        }
        Some(c) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) => Some(
            c.parse::<u32>()
                .map_err(|_| format!("retry count `{c}` is too large"))?,
        ),
        Some(c) => return Err(format!("`{c}` is not a retry count (on-failure:N)")),
    };
    Ok(RestartSpec {
        policy,
        max_retries,
    })
}

/// Parse a memory size as Docker does, in bytes: a number (decimals
/// allowed) with an optional binary unit `b`, `k`, `m`, `g`, `t` (any case,
/// optionally followed by `i` and/or `b`: `256m`, `256MiB`, `1.5g`,
/// `268435456`). At most `i64::MAX`. The 6 MiB minimum is
/// [`Spec::memory_bytes`]'s.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a memory size (bytes, or with a unit: 512k, 256m, 1g)");
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(end);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() || frac.contains('.') || (number.contains('.') && frac.is_empty()) {
        return Err(bad());
    }
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "ki" | "kib" => 10,
        "m" | "mb" | "mi" | "mib" => 20,
        "g" | "gb" | "gi" | "gib" => 30,
        "t" | "tb" | "ti" | "tib" => 40,
        _ => return Err(bad()),
    };
    let too_large = || format!("`{s}` is too large");
    // u128 holds 20 digits shifted by 40 bits with room to spare.
    if int.len() > 20 || frac.len() > 18 {
        return Err(too_large());
    }
    let whole: u128 = int.parse().map_err(|_| bad())?;
    let mut bytes = whole << shift;
    if !frac.is_empty() {
        let f: u128 = frac.parse().map_err(|_| bad())?;
        bytes += (f << shift) / 10u128.pow(frac.len() as u32);
    }
    if bytes > i64::MAX as u128 {
        return Err(too_large());
    }
    Ok(bytes as u64)
}

/// `cpus` as Docker's nano-CPUs, rounded to a thousandth of a CPU (finer
/// shares mean nothing to the kernel's scheduler at its default period).
pub fn cpus_to_nano(cpus: f64) -> u64 {
    ((cpus * 1000.0).round().max(0.0) as u64).saturating_mul(1_000_000)
}

/// A CPU limit: a finite number, at least 0.001 and at most [`MAX_CPUS`]
/// (the daemon refuses more CPUs than the machine has).
pub fn check_cpus(cpus: f64) -> Result<(), String> {
    if !cpus.is_finite() || cpus <= 0.0 {
        Err(format!(
            "{cpus} is not a CPU limit: it must be more than 0 (e.g. 0.5)"
        ))
    } else if cpus_to_nano(cpus) == 0 {
        Err(format!("{cpus} is below the smallest limit, 0.001"))
    } else if cpus > MAX_CPUS {
        Err(format!("{cpus} is above {MAX_CPUS}"))
    } else {
        Ok(())
    }
}

/// A health check in Compose form: `["CMD", prog, args..]`,
/// `["CMD-SHELL", "command"]`, `["NONE"]`, or `[]` (the image's own).
pub fn check_health_cmd(cmd: &[String]) -> Result<(), String> {
    match cmd.first().map(String::as_str) {
        None => Ok(()),
        Some("NONE") if cmd.len() == 1 => Ok(()),
        Some("NONE") => Err("`NONE` takes no arguments".into()),
        Some("CMD") if cmd.len() >= 2 && !cmd[1].is_empty() => Ok(()),
        Some("CMD") => Err(
            "`CMD` needs the program to run: [\"CMD\", \"wget\", \"-qO-\", \"http://localhost/\"]"
                .into(),
        ),
        Some("CMD-SHELL") if cmd.len() == 2 && !cmd[1].trim().is_empty() => Ok(()),
        Some("CMD-SHELL") => Err(
            "`CMD-SHELL` takes one shell command: [\"CMD-SHELL\", \"wget -qO- http://localhost/ || exit 1\"]"
                .into(),
        ),
        Some(other) => Err(format!(
            "a health check starts with `CMD`, `CMD-SHELL` or `NONE`, not `{}`",
            other.chars().take(80).collect::<String>()
        )),
    }
}

/// An environment variable name: not empty, no `=` (it would split the
/// name), printable ASCII.
pub fn check_env_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        Err("a variable name cannot be empty".into())
    } else if key.contains('=') {
        Err("a variable name cannot contain `=`".into())
    } else if !key.bytes().all(|b| b.is_ascii_graphic()) {
        Err("a variable name is printable ASCII without spaces".into())
    } else {
        Ok(())
    }
}

/// An image reference in Docker's grammar: `[host[:port]/]path[:tag][@digest]`,
/// path components lowercase alphanumerics joined by `.`, `_`, `__` or
/// dashes, a tag of at most 128 word characters, dots and dashes, a digest
/// `algorithm:hex` (at least 32 hex digits), the name at most 255
/// characters. `Err` says what is wrong.
pub fn check_reference(reference: &str) -> Result<(), String> {
    let invalid = |why: &str| Err(format!("`{reference}` is not an image reference: {why}"));
    if reference.is_empty() {
        return invalid("it is empty");
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        let Some((algorithm, hex)) = digest.split_once(':') else {
            return invalid("a digest is `algorithm:hex`");
        };
        let algorithm_ok = algorithm.split(['+', '.', '-', '_']).all(|c| {
            c.chars().next().is_some_and(|f| f.is_ascii_alphabetic())
                && c.chars().all(|ch| ch.is_ascii_alphanumeric())
        });
        if !algorithm_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return invalid("a digest is `algorithm:hex` with at least 32 hex digits");
        }
    }
    // The tag follows the last `:` after the last `/` (a `:` before it is a port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let mut chars = tag.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !first_ok
            || tag.len() > 128
            || !tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return invalid(
                "a tag is 1–128 letters, digits, `_`, `.`, `-`, not starting with `.` or `-`",
            );
        }
    }
    if name.is_empty() || name.len() > 255 {
        return invalid("the name is 1–255 characters");
    }
    let mut components: Vec<&str> = name.split('/').collect();
    // A first component with a `.` or a `:`, or `localhost`, is a registry host.
    if components.len() > 1 && (components[0].contains(['.', ':']) || components[0] == "localhost")
    {
        let host = components.remove(0);
        let (domain, port) = match host.rsplit_once(':') {
            Some((d, p)) => (d, Some(p)),
            None => (host, None),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if !domain.split('.').all(label_ok)
            || port.is_some_and(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
        {
            return invalid("the registry is `host` or `host:port`");
        }
    }
    for component in components {
        if !path_component_ok(component) {
            return invalid(
                "each path component is lowercase letters and digits, joined by `.`, `_`, `__` or dashes",
            );
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn path_component_ok(c: &str) -> bool {
    let bytes = c.as_bytes();
    if bytes.is_empty()
        || !bytes[0].is_ascii_alphanumeric()
        || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
    {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator: `.`, `_`, `__` or one or more `-`.
        let start = i;
        match b {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start
            || !bytes
                .get(i)
                .is_some_and(|n| n.is_ascii_lowercase() || n.is_ascii_digit())
        {
            return false;
        }
    }
    true
}
