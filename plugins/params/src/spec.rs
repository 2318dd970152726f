//! The container spec of `install` and `upgrade` ([`Spec`]): its fields,
//! how an upgrade's spec goes over the current revision's, the parsed views
//! of its lists, and [`Spec::validate`], which checks every field and how
//! they go together; with [`Strategy`] and the server's [`Permissions`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bounds::{MAX_ALIASES, MAX_LABELS, MAX_NETWORKS, MAX_PORTS, MAX_VOLUMES, bounded};
use crate::limits::MIN_MEMORY_BYTES;
use crate::text::check_text;
use crate::{
    Health, NetworkSpec, PortSpec, RestartSpec, VolumeSource, VolumeSpec, check_alias,
    check_container_path, check_cpus, check_env_key, check_label_key, check_network_name,
    check_reference, check_user, cpus_to_nano, parse_memory, parse_port, parse_restart,
    parse_volume,
};

/// What the server allows beyond the default, as the engine passes it to
/// [`check`](crate::check) and the plugins to [`Spec::validate`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Host paths may be mounted (`serve --allow-bind-mounts`): a bind
    /// mount reaches the machine's files, so it is off by default.
    pub bind_mounts: bool,
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
