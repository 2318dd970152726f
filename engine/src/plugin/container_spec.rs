//! A plugin's `container-spec` made into the runtime's [`ContainerConfig`],
//! refusing what the job may not have: an oversized spec, the host's
//! network stack without the operator's consent, a label in the engine's
//! namespace, a volume or network the job did not make available, a bind
//! mount the server does not allow, ports nothing could publish. The host
//! adds the ownership labels last, so a plugin cannot set them.

use std::collections::BTreeMap;

use super::bindings::{self, ContainerSpec, HostError};
use super::scope::JobScope;
use crate::runtime::{
    ContainerConfig, HealthCheck, LABEL_JOB, LABEL_MANAGED, LABEL_SERVICE, LABEL_TARGET, Mount,
    MountKind, NetworkAttachment, PortBinding, RestartPolicy,
};

/// Prefix of the labels the engine sets.
const RESERVED_LABELS: &str = "io.deckhand.";
/// At most this many of each list.
const MAX_PORTS: usize = 64;
const MAX_MOUNTS: usize = 64;
const MAX_NETWORKS: usize = 16;
const MAX_ALIASES: usize = 16;
const MAX_LABELS: usize = 128;
/// The smallest memory limit the runtime accepts.
const MIN_MEMORY_BYTES: u64 = 6 << 20;

fn invalid(why: String) -> HostError {
    HostError::Invalid(why)
}

/// Every string a spec holds, to bound their total size.
fn spec_bytes(spec: &ContainerSpec) -> usize {
    let strings = |v: &[String]| v.iter().map(String::len).sum::<usize>();
    spec.env
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum::<usize>()
        + spec.cmd.as_deref().map_or(0, strings)
        + spec.entrypoint.as_deref().map_or(0, strings)
        + spec
            .labels
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
        + spec
            .mounts
            .iter()
            .map(|m| m.source.len() + m.target.len())
            .sum::<usize>()
        + spec
            .networks
            .iter()
            .map(|n| n.name.len() + strings(&n.aliases))
            .sum::<usize>()
        + spec.health_check.as_ref().map_or(0, |h| strings(&h.test))
        + [&spec.user, &spec.workdir, &spec.network]
            .iter()
            .map(|s| s.as_deref().map_or(0, str::len))
            .sum::<usize>()
}

fn absolute_clean(path: &str) -> bool {
    path.starts_with('/') && !path.split('/').any(|c| c == "..") && !path.contains('\0')
}

/// The runtime's config for `spec`, created by `scope`'s job.
pub(super) fn config_of(
    spec: ContainerSpec,
    service: Option<&str>,
    scope: &JobScope,
) -> Result<ContainerConfig, HostError> {
    let settings = &scope.settings;
    let bytes = spec_bytes(&spec);
    if bytes > settings.max_arg_bytes {
        return Err(invalid(format!(
            "the container spec holds {bytes} bytes of text; the limit is {}",
            settings.max_arg_bytes
        )));
    }
    for (what, n, max) in [
        ("ports", spec.ports.len(), MAX_PORTS),
        ("mounts", spec.mounts.len(), MAX_MOUNTS),
        ("networks", spec.networks.len(), MAX_NETWORKS),
        ("labels", spec.labels.len(), MAX_LABELS),
    ] {
        if n > max {
            return Err(invalid(format!("{n} {what}; at most {max}")));
        }
    }
    if let Some(network) = spec.network.as_deref() {
        crate::runtime::check_network_mode(network, settings.allow_host_network)
            .map_err(HostError::Denied)?;
        if !spec.networks.is_empty() {
            return Err(invalid(
                "`network` (a mode) and `networks` exclude each other".into(),
            ));
        }
    }
    let networks = spec
        .networks
        .into_iter()
        .map(|n| {
            if !scope.networks.contains(&n.name) {
                return Err(HostError::Denied(format!(
                    "network `{}` was not made available in this job (network.ensure-network)",
                    n.name
                )));
            }
            if n.aliases.len() > MAX_ALIASES {
                return Err(invalid(format!(
                    "network `{}`: at most {MAX_ALIASES} aliases",
                    n.name
                )));
            }
            for alias in &n.aliases {
                deckhand_params::check_alias(alias).map_err(invalid)?;
            }
            Ok(NetworkAttachment {
                name: n.name,
                aliases: n.aliases,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let on_own_network = !networks.is_empty()
        || spec.network.as_deref().is_some_and(|n| {
            !["none", "host", "bridge", "default"].contains(&n) && !n.starts_with("container:")
        });
    if !spec.ports.is_empty() && !on_own_network {
        return Err(invalid(
            "published ports need a user-defined network (`networks`): nothing listens for them otherwise".into(),
        ));
    }
    let ports = spec
        .ports
        .into_iter()
        .map(|p| {
            if p.container_port == 0 || p.host_port == Some(0) {
                return Err(invalid("port 0 is not a port".into()));
            }
            if !["tcp", "udp", "sctp"].contains(&p.protocol.as_str()) {
                return Err(invalid(format!(
                    "port protocol `{}`: use tcp, udp or sctp",
                    p.protocol
                )));
            }
            if let Some(ip) = &p.host_ip
                && ip.parse::<std::net::IpAddr>().is_err()
            {
                return Err(invalid(format!("host address `{ip}` is not an IP address")));
            }
            Ok(PortBinding {
                host_ip: p.host_ip,
                host_port: p.host_port,
                container_port: p.container_port,
                protocol: p.protocol,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mounts = spec
        .mounts
        .into_iter()
        .map(|m| {
            if !absolute_clean(&m.target) {
                return Err(invalid(format!(
                    "mount target `{}` must be an absolute path without `..`",
                    m.target
                )));
            }
            let kind = match m.kind {
                bindings::MountKind::Volume => {
                    if !scope.volumes.contains(&m.source) {
                        return Err(HostError::Denied(format!(
                            "volume `{}` was not made available in this job (volume.ensure-volume or volume.snapshot-volume)",
                            m.source
                        )));
                    }
                    MountKind::Volume
                }
                bindings::MountKind::Bind => {
                    if !settings.allow_bind_mounts {
                        return Err(HostError::Denied(format!(
                            "bind mount of `{}`: the server does not allow bind mounts (start it with --allow-bind-mounts)",
                            m.source
                        )));
                    }
                    if !absolute_clean(&m.source) {
                        return Err(invalid(format!(
                            "bind mount source `{}` must be an absolute path without `..`",
                            m.source
                        )));
                    }
                    MountKind::Bind
                }
            };
            Ok(Mount {
                kind,
                source: m.source,
                target: m.target,
                read_only: m.read_only,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in spec.labels {
        if k.starts_with(RESERVED_LABELS) {
            return Err(HostError::Denied(format!(
                "label `{k}`: keys under `{RESERVED_LABELS}` are the engine's"
            )));
        }
        labels.insert(k, v);
    }
    // Last: the ownership labels are the host's.
    labels.insert(LABEL_MANAGED.to_owned(), "true".to_owned());
    labels.insert(LABEL_TARGET.to_owned(), scope.target.clone());
    labels.insert(LABEL_JOB.to_owned(), scope.job_id.to_string());
    if let Some(service) = service {
        labels.insert(LABEL_SERVICE.to_owned(), service.to_owned());
    }
    if spec.memory_bytes.is_some_and(|m| m < MIN_MEMORY_BYTES) {
        return Err(invalid(format!(
            "memory limit below the runtime's minimum of {} MiB",
            MIN_MEMORY_BYTES >> 20
        )));
    }
    if spec.nano_cpus == Some(0) {
        return Err(invalid("a CPU limit of 0".into()));
    }
    let health_check = spec
        .health_check
        .map(|h| {
            // An empty test keeps the image's, with these timings.
            if !h.test.is_empty() {
                deckhand_params::check_health_cmd(&h.test)
                    .map_err(|e| invalid(format!("health check: {e}")))?;
            }
            Ok(HealthCheck {
                test: h.test,
                interval_ms: h.interval_ms,
                timeout_ms: h.timeout_ms,
                retries: h.retries,
                start_period_ms: h.start_period_ms,
            })
        })
        .transpose()?;
    for (what, path) in [("workdir", &spec.workdir)] {
        if let Some(p) = path
            && !absolute_clean(p)
        {
            return Err(invalid(format!("{what} `{p}` must be an absolute path")));
        }
    }
    Ok(ContainerConfig {
        name: spec.name,
        image: spec.image,
        env: spec.env.into_iter().collect(),
        cmd: spec.cmd,
        network: spec.network,
        labels,
        entrypoint: spec.entrypoint,
        user: spec.user,
        workdir: spec.workdir,
        ports,
        mounts,
        networks,
        restart: spec.restart.map(|r| match r {
            bindings::RestartPolicy::No => RestartPolicy::No,
            bindings::RestartPolicy::Always => RestartPolicy::Always,
            bindings::RestartPolicy::UnlessStopped => RestartPolicy::UnlessStopped,
            bindings::RestartPolicy::OnFailure(max_retries) => {
                RestartPolicy::OnFailure { max_retries }
            }
        }),
        memory_bytes: spec.memory_bytes,
        nano_cpus: spec.nano_cpus,
        health_check,
        stop_timeout_s: spec.stop_timeout_s,
    })
}
