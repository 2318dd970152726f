//! The mapping of a [`ContainerConfig`] to the daemon's create request
//! ([`create_body`]): pure, so that what reaches the daemon can be checked
//! without one.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, Mount as DockerMount,
    MountType, NetworkingConfig, PortBinding as DockerPortBinding,
    RestartPolicy as DockerRestartPolicy, RestartPolicyNameEnum,
};

use crate::runtime::{
    ContainerConfig, MountKind, RestartPolicy, Result, RuntimeError, with_default_tag,
};

/// Nanoseconds, as the daemon takes every health check duration, from
/// milliseconds.
fn ms_to_ns(ms: u64) -> i64 {
    i64::try_from(ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The daemon's create request for `config`: a pure mapping, so that what
/// reaches the daemon can be checked without one. Only the first of
/// `config.networks` is in it (API 1.41 takes one network at create); the
/// others are connected after ([`containers::create`](super::containers::create)).
pub(crate) fn create_body(config: &ContainerConfig) -> Result<ContainerCreateBody> {
    if config.network.is_some() && !config.networks.is_empty() {
        return Err(RuntimeError::Daemon(format!(
            "container {}: a network mode (`{}`) and user-defined networks exclude each other",
            config.name,
            config.network.as_deref().unwrap_or_default()
        )));
    }
    // `80/tcp` → every host binding of it, in the order given.
    let mut exposed: Vec<String> = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<DockerPortBinding>>> = HashMap::new();
    for p in &config.ports {
        let key = format!("{}/{}", p.container_port, p.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(DockerPortBinding {
                host_ip: p.host_ip.clone(),
                host_port: p.host_port.map(|port| port.to_string()),
            });
    }
    let mounts: Vec<DockerMount> = config
        .mounts
        .iter()
        .map(|m| DockerMount {
            typ: Some(match m.kind {
                MountKind::Volume => MountType::VOLUME,
                MountKind::Bind => MountType::BIND,
            }),
            source: Some(m.source.clone()),
            target: Some(m.target.clone()),
            read_only: m.read_only.then_some(true),
            ..Default::default()
        })
        .collect();
    let restart_policy = config.restart.map(|r| match r {
        RestartPolicy::No => DockerRestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        },
        RestartPolicy::Always => DockerRestartPolicy {
            name: Some(RestartPolicyNameEnum::ALWAYS),
            maximum_retry_count: None,
        },
        RestartPolicy::UnlessStopped => DockerRestartPolicy {
            name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
            maximum_retry_count: None,
        },
        RestartPolicy::OnFailure { max_retries } => DockerRestartPolicy {
            name: Some(RestartPolicyNameEnum::ON_FAILURE),
            maximum_retry_count: max_retries.map(i64::from),
        },
    });
    let healthcheck = config.health_check.as_ref().map(|h| HealthConfig {
        test: Some(h.test.clone()),
        interval: h.interval_ms.map(ms_to_ns),
        timeout: h.timeout_ms.map(ms_to_ns),
        retries: h.retries.map(i64::from),
        start_period: h.start_period_ms.map(ms_to_ns),
        // API 1.44+: a 1.41 daemon ignores it.
        start_interval: None,
    });
    let (network_mode, networking_config) = match config.networks.first() {
        Some(first) => (
            Some(first.name.clone()),
            Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    first.name.clone(),
                    EndpointSettings {
                        aliases: (!first.aliases.is_empty()).then(|| first.aliases.clone()),
                        ..Default::default()
                    },
                )])),
            }),
        ),
        None => (config.network.clone(), None),
    };
    Ok(ContainerCreateBody {
        image: Some(with_default_tag(&config.image)),
        env: Some(config.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        cmd: config.cmd.clone(),
        entrypoint: config.entrypoint.clone(),
        user: config.user.clone(),
        working_dir: config.workdir.clone(),
        labels: Some(config.labels.clone().into_iter().collect::<HashMap<_, _>>()),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck,
        stop_timeout: config.stop_timeout_s.map(i64::from),
        host_config: Some(HostConfig {
            network_mode,
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            mounts: (!mounts.is_empty()).then_some(mounts),
            restart_policy,
            memory: config.memory_bytes.map(to_i64),
            nano_cpus: config.nano_cpus.map(to_i64),
            ..Default::default()
        }),
        networking_config,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::runtime::{HealthCheck, LABEL_MANAGED, Mount, NetworkAttachment, PortBinding};

    fn config() -> ContainerConfig {
        ContainerConfig {
            name: "deckhand-web".into(),
            image: "127.0.0.1:5000/web".into(),
            env: BTreeMap::from([("K".into(), "V".into())]),
            cmd: Some(vec!["serve".into()]),
            labels: BTreeMap::from([(LABEL_MANAGED.into(), "true".into())]),
            ..Default::default()
        }
    }

    #[test]
    fn a_plain_config_maps_as_it_always_did() {
        let mut c = config();
        c.network = Some("none".into());
        let body = create_body(&c).unwrap();
        assert_eq!(body.image.as_deref(), Some("127.0.0.1:5000/web:latest"));
        assert_eq!(body.env, Some(vec!["K=V".to_string()]));
        assert_eq!(body.cmd, Some(vec!["serve".to_string()]));
        assert_eq!(body.entrypoint, None);
        assert_eq!(body.user, None);
        assert_eq!(body.working_dir, None);
        assert_eq!(body.exposed_ports, None);
        assert_eq!(body.healthcheck, None);
        assert_eq!(body.stop_timeout, None);
        assert_eq!(body.networking_config, None);
        let host = body.host_config.unwrap();
        assert_eq!(
            host,
            HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }
        );
    }

    #[test]
    fn every_field_of_a_real_app_reaches_the_create_request() {
        let c = ContainerConfig {
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            user: Some("1000:1000".into()),
            workdir: Some("/www".into()),
            ports: vec![
                PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(8080),
                    container_port: 80,
                    protocol: "tcp".into(),
                },
                PortBinding {
                    host_ip: None,
                    host_port: Some(8443),
                    container_port: 80,
                    protocol: "tcp".into(),
                },
                PortBinding {
                    host_ip: None,
                    host_port: None,
                    container_port: 53,
                    protocol: "udp".into(),
                },
            ],
            mounts: vec![
                Mount {
                    kind: MountKind::Volume,
                    source: "deckhand-web-data".into(),
                    target: "/var/lib/x".into(),
                    read_only: false,
                },
                Mount {
                    kind: MountKind::Bind,
                    source: "/abs/host".into(),
                    target: "/etc/app".into(),
                    read_only: true,
                },
            ],
            networks: vec![
                NetworkAttachment {
                    name: "appnet".into(),
                    aliases: vec!["web".into()],
                },
                NetworkAttachment {
                    name: "backend".into(),
                    aliases: vec![],
                },
            ],
            restart: Some(RestartPolicy::OnFailure {
                max_retries: Some(3),
            }),
            memory_bytes: Some(256 * 1024 * 1024),
            nano_cpus: Some(500_000_000),
            health_check: Some(HealthCheck {
                test: vec![
                    "CMD-SHELL".into(),
                    "wget -q -O /dev/null http://127.0.0.1/".into(),
                ],
                interval_ms: Some(1_000),
                timeout_ms: Some(2_500),
                retries: Some(3),
                start_period_ms: Some(500),
            }),
            stop_timeout_s: Some(10),
            ..config()
        };
        let body = create_body(&c).unwrap();
        assert_eq!(
            body.entrypoint,
            Some(vec!["/bin/sh".to_string(), "-c".to_string()])
        );
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(body.working_dir.as_deref(), Some("/www"));
        assert_eq!(
            body.exposed_ports,
            Some(vec!["80/tcp".to_string(), "53/udp".to_string()])
        );
        assert_eq!(body.stop_timeout, Some(10));
        assert_eq!(
            body.healthcheck,
            Some(HealthConfig {
                test: Some(vec![
                    "CMD-SHELL".into(),
                    "wget -q -O /dev/null http://127.0.0.1/".into()
                ]),
                interval: Some(1_000_000_000),
                timeout: Some(2_500_000_000),
                retries: Some(3),
                start_period: Some(500_000_000),
                start_interval: None,
            })
        );
        let host = body.host_config.clone().unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("appnet"));
        let bindings = host.port_bindings.unwrap();
        assert_eq!(bindings.len(), 2);
        assert_eq!(
            bindings["80/tcp"],
            Some(vec![
                DockerPortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some("8080".into())
                },
                DockerPortBinding {
                    host_ip: None,
                    host_port: Some("8443".into())
                },
            ])
        );
        assert_eq!(
            bindings["53/udp"],
            Some(vec![DockerPortBinding {
                host_ip: None,
                host_port: None
            }])
        );
        assert_eq!(
            host.mounts,
            Some(vec![
                DockerMount {
                    typ: Some(MountType::VOLUME),
                    source: Some("deckhand-web-data".into()),
                    target: Some("/var/lib/x".into()),
                    ..Default::default()
                },
                DockerMount {
                    typ: Some(MountType::BIND),
                    source: Some("/abs/host".into()),
                    target: Some("/etc/app".into()),
                    read_only: Some(true),
                    ..Default::default()
                },
            ])
        );
        assert_eq!(
            host.restart_policy,
            Some(DockerRestartPolicy {
                name: Some(RestartPolicyNameEnum::ON_FAILURE),
                maximum_retry_count: Some(3)
            })
        );
        assert_eq!(host.memory, Some(268_435_456));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        // Only the first network at create, with its aliases.
        let endpoints = body
            .networking_config
            .clone()
            .unwrap()
            .endpoints_config
            .unwrap();
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints["appnet"].aliases, Some(vec!["web".to_string()]));

        // On the wire: exposed ports as Docker's `{"80/tcp": {}}` map.
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json["ExposedPorts"],
            serde_json::json!({"80/tcp": {}, "53/udp": {}})
        );
        assert_eq!(json["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    }

    #[test]
    fn restart_policies_map_to_dockers_names() {
        for (policy, name, retries) in [
            (RestartPolicy::No, "no", None),
            (RestartPolicy::Always, "always", None),
            (RestartPolicy::UnlessStopped, "unless-stopped", None),
            (
                RestartPolicy::OnFailure { max_retries: None },
                "on-failure",
                None,
            ),
        ] {
            let body = create_body(&ContainerConfig {
                restart: Some(policy),
                ..config()
            })
            .unwrap();
            let r = body.host_config.unwrap().restart_policy.unwrap();
            assert_eq!(r.name.unwrap().to_string(), name);
            assert_eq!(r.maximum_retry_count, retries);
        }
    }

    #[test]
    fn a_network_mode_and_networks_exclude_each_other() {
        let c = ContainerConfig {
            network: Some("none".into()),
            networks: vec![NetworkAttachment {
                name: "appnet".into(),
                aliases: vec![],
            }],
            ..config()
        };
        let e = create_body(&c).unwrap_err();
        assert!(
            matches!(&e, RuntimeError::Daemon(m) if m.contains("exclude each other")),
            "{e}"
        );
    }
}
