//! The params of the built-in workflows, checked when a job is submitted so
//! that bad params are refused before any job exists. The contract itself
//! is the `deckhand-params` crate, which the plugins read their params with;
//! this adds what only the server knows (whether it allows a shared
//! network stack, and bind mounts). The crate's own tests live here, since
//! the engine builds it natively.

use serde_json::Value;

use crate::plugin::HostSettings;

/// Check `params` against the built-in `workflow`'s contract
/// ([`deckhand_params::check`], the types the plugins read them with); other
/// workflows' params are theirs to check. Returns the stack a stack's
/// params describe (read once, by the check, for the other checks of a
/// submit), or a message naming the field and the problem. From `settings`: whether the server lets
/// containers share the host's (or another container's) network stack, and
/// mount host paths.
pub fn check(
    workflow: &str,
    params: &Value,
    settings: &HostSettings,
) -> Result<Option<deckhand_params::Stack>, String> {
    if matches!(workflow, "install" | "upgrade")
        && let Some(network) = params.get("network").and_then(Value::as_str)
    {
        crate::runtime::check_network_mode(network, settings.allow_host_network)
            .map_err(|e| format!("`network`: {e}"))?;
    }
    let allow = deckhand_params::Permissions {
        bind_mounts: settings.allow_bind_mounts,
    };
    deckhand_params::check(workflow, params, &allow)
}

/// Refuse a stack whose network names, scoped to `target`
/// (`deckhand-<target>-N-<name>`), would be longer than a network name may
/// be: the job could only fail when it made them.
pub fn check_stack_for_target(target: &str, stack: &deckhand_params::Stack) -> Result<(), String> {
    for n in stack.networks.iter().filter(|n| n.docker_name.is_none()) {
        let docker = format!("deckhand-{target}-N-{}", n.name);
        deckhand_params::check_network_name(&docker).map_err(|_| {
            format!(
                "`networks.{}`: its network would be `{docker}`, {} characters; the most is {}: shorten the target or network name, or give the network a `name:`",
                n.name,
                docker.chars().count(),
                deckhand_params::MAX_NAME_LEN
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use deckhand_params::{
        NetworkSpec, PortSpec, RestartPolicy, RestartSpec, Spec, VolumeSource, VolumeSpec,
    };
    use serde_json::{Value, json};

    use crate::plugin::HostSettings;

    fn check(workflow: &str, params: &Value) -> Result<(), String> {
        super::check(workflow, params, &HostSettings::default()).map(|_| ())
    }

    /// `install` params: an image plus `extra`'s fields.
    fn install(extra: Value) -> Result<(), String> {
        let mut p = json!({"image": "a:1"});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        check("install", &p)
    }

    /// The error of an install with `extra`, which must be refused.
    fn refused(extra: Value) -> String {
        install(extra.clone()).expect_err(&format!("accepted: {extra}"))
    }

    fn with_binds() -> HostSettings {
        HostSettings {
            allow_bind_mounts: true,
            ..HostSettings::default()
        }
    }

    fn port(s: &str) -> PortSpec {
        deckhand_params::parse_port(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn install_needs_an_image_and_known_fields_of_the_right_type() {
        assert!(
            check(
                "install",
                &json!({"image": "a:1", "env": {"K": "V"}, "health": {"timeout_s": 5}})
            )
            .is_ok()
        );
        assert!(check("install", &json!({})).unwrap_err().contains("image"));
        assert!(check("install", &json!({"image": 7})).is_err());
        assert!(check("install", &json!({"image": "a", "env": ["K=V"]})).is_err());
        assert!(
            check("install", &json!({"image": "a", "colour": "red"}))
                .unwrap_err()
                .contains("colour")
        );
    }

    #[test]
    fn a_wrongly_typed_field_is_refused_naming_it() {
        let e = refused(json!({"ports": "80:80"}));
        assert!(e.starts_with("`ports`: invalid type"), "{e}");
        let e = refused(json!({"cpus": "0.5"}));
        assert!(e.starts_with("`cpus`: "), "{e}");
        let e = refused(json!({"health": {"retries": "3"}}));
        assert!(e.starts_with("`health.retries`: "), "{e}");
        let e = refused(json!({"health": {"cmnd": ["NONE"]}}));
        assert!(e.starts_with("`health.cmnd`: unknown field"), "{e}");
        let e = refused(json!({"networks": [7]}));
        assert!(
            e.starts_with("`networks`: ") && e.contains("a name or"),
            "{e}"
        );
        let e = refused(json!({"networks": [{"name": "n", "alias": ["x"]}]}));
        assert!(e.starts_with("`networks`: unknown field `alias`"), "{e}");
    }

    #[test]
    fn an_upgrade_keeps_what_its_params_do_not_set() {
        let base = Spec {
            image: Some("a:1".into()),
            cmd: Some(vec!["run".into()]),
            ..Default::default()
        };
        let params: Spec = serde_json::from_value(json!({"image": "a:2"})).unwrap();
        let spec = params.over(&base);
        assert_eq!(spec.image.as_deref(), Some("a:2"));
        assert_eq!(spec.cmd, Some(vec!["run".to_owned()]));
        assert!(
            check("install", &json!({"image": " "})).is_err(),
            "blank image"
        );
    }

    #[test]
    fn an_upgrade_keeps_every_new_field_it_does_not_set() {
        let full = json!({
            "image": "a:1", "entrypoint": ["/init"], "user": "1000:1000", "workdir": "/srv",
            "ports": ["8080:80"], "volumes": ["data:/data"], "networks": [{"name": "n", "aliases": ["db"]}],
            "restart": "always", "labels": {"team": "web"}, "memory": "256m", "cpus": 0.5,
            "stop_timeout_s": 20,
            "health": {"timeout_s": 60, "cmd": ["CMD", "true"], "interval_s": 2, "probe_timeout_s": 3, "retries": 4, "start_period_s": 5},
            "snapshot_volumes": true, "strategy": "stop-first",
        });
        assert_eq!(check("install", &full), Ok(()));
        let base: Spec = serde_json::from_value(full.clone()).unwrap();
        // Nothing set: everything kept.
        assert_eq!(Spec::default().over(&base), base);
        // Each field set alone: that one changes, the others are kept.
        let changes = json!({
            "entrypoint": ["/other"], "user": "app", "workdir": "/app", "ports": ["9090:90"],
            "volumes": ["logs:/logs"], "networks": ["m"], "restart": "no", "labels": {"x": "y"},
            "memory": "1g", "cpus": 2.0, "stop_timeout_s": 1, "snapshot_volumes": false,
            "strategy": "start-first", "health": {"retries": 9},
        });
        for (field, value) in changes.as_object().unwrap() {
            let params: Spec = serde_json::from_value(json!({ field: value })).unwrap();
            let merged = serde_json::to_value(params.over(&base)).unwrap();
            for (k, v) in full.as_object().unwrap() {
                if k == field && k == "health" {
                    let mut health = v.clone();
                    health["retries"] = json!(9);
                    assert_eq!(merged[k], health, "health is merged field by field");
                } else if k == field {
                    assert_eq!(&merged[k], value, "{field} set");
                } else {
                    assert_eq!(&merged[k], v, "{k} kept when only {field} is set");
                }
            }
        }
    }

    #[test]
    fn an_upgrade_setting_network_or_networks_replaces_both() {
        let base: Spec =
            serde_json::from_value(json!({"image": "a:1", "network": "none"})).unwrap();
        let params: Spec = serde_json::from_value(json!({"networks": ["appnet"]})).unwrap();
        let merged = params.over(&base);
        assert_eq!(merged.network, None);
        assert_eq!(merged.networks.as_ref().unwrap()[0].name, "appnet");
        let back: Spec = serde_json::from_value(json!({"network": "none"})).unwrap();
        let merged = back.over(&merged);
        assert_eq!(
            (merged.network.as_deref(), merged.networks),
            (Some("none"), None)
        );
    }

    #[test]
    fn validating_a_merged_spec_catches_what_no_params_alone_show() {
        let base: Spec =
            serde_json::from_value(json!({"image": "a:1", "ports": ["127.0.0.1:8080:80"]}))
                .unwrap();
        let params: Spec = serde_json::from_value(json!({"network": "none"})).unwrap();
        assert_eq!(check("upgrade", &json!({"network": "none"})), Ok(()));
        let e = params
            .over(&base)
            .validate(&Default::default())
            .unwrap_err();
        assert!(e.starts_with("`ports`: "), "{e}");
        let params: Spec = serde_json::from_value(json!({"strategy": "start-first"})).unwrap();
        let e = params
            .over(&base)
            .validate(&Default::default())
            .unwrap_err();
        assert!(e.starts_with("`strategy`: "), "{e}");
    }

    #[test]
    fn image_references_follow_dockers_grammar() {
        for ok in [
            "busybox",
            "busybox:1.36",
            "library/busybox:latest",
            "127.0.0.1:5000/deckhand-test/app:1",
            "localhost/app",
            "registry.example.com:443/team/app__x.y-z:v1.2_3",
            "ghcr.io/o/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "app:2@sha256:0123456789abcdef0123456789abcdef",
        ] {
            assert!(check("install", &json!({ "image": ok })).is_ok(), "{ok}");
        }
        for bad in [
            "Busybox",
            "app:",
            "app::1",
            "app:-1",
            "/app",
            "app/",
            "a..b",
            "app@sha256:12",
            "app name",
            "reg:port/app",
            "app:1.0:2",
        ] {
            let e = check("install", &json!({ "image": bad })).unwrap_err();
            assert!(e.starts_with("`image`: "), "{bad}: {e}");
        }
        let long = format!("a/{}", "b".repeat(300));
        assert!(check("upgrade", &json!({ "image": long })).is_err());
    }

    #[test]
    fn env_names_and_every_string_are_checked_naming_the_field() {
        let e = check("install", &json!({"image": "a", "env": {"A=B": "1"}})).unwrap_err();
        assert!(e.starts_with("`env.A=B`") && e.contains("`=`"), "{e}");
        let e = check("install", &json!({"image": "a", "env": {"A": "1\nforged"}})).unwrap_err();
        assert!(e.starts_with("`env.A`") && e.contains("line breaks"), "{e}");
        let e = check("install", &json!({"image": "a", "cmd": ["sh", "x\u{0}"]})).unwrap_err();
        assert!(e.starts_with("`cmd[1]`"), "{e}");
        let e = check("upgrade", &json!({"image": "a\r"})).unwrap_err();
        assert!(e.starts_with("`image`"), "{e}");
        assert!(check("install", &json!({"image": "a", "env": {"": "1"}})).is_err());
        let e = refused(json!({"labels": {"a": "x\ny"}}));
        assert!(e.starts_with("`labels.a`"), "{e}");
    }

    #[test]
    fn rollback_needs_a_revision_number_and_teardown_at_most_remove_volumes() {
        assert!(check("rollback", &json!({"revision": 2})).is_ok());
        assert!(check("rollback", &json!({"revision": "2"})).is_err());
        assert!(check("teardown", &json!({})).is_ok());
        assert!(check("teardown", &json!({"remove_volumes": true})).is_ok());
        let e = check("teardown", &json!({"remove_volumes": "yes"})).unwrap_err();
        assert!(e.starts_with("`remove_volumes`: "), "{e}");
        assert!(check("teardown", &json!({"force": true})).is_err());
        assert!(check("custom", &json!({"anything": 1})).is_ok());
        let t: deckhand_params::Teardown = serde_json::from_value(json!({})).unwrap();
        assert!(!t.remove_volumes, "volumes are kept by default");
    }

    #[test]
    fn a_network_sharing_the_hosts_stack_is_refused_unless_the_server_allows_it() {
        let host = json!({"image": "a:1", "network": "host"});
        assert!(check("install", &host).unwrap_err().contains("`network`"));
        assert!(check("upgrade", &json!({"network": "container:x"})).is_err());
        let allowed = HostSettings {
            allow_host_network: true,
            ..HostSettings::default()
        };
        assert!(super::check("install", &host, &allowed).is_ok());
        assert!(check("install", &json!({"image": "a:1", "network": "none"})).is_ok());
    }

    // ---- ports ----

    #[test]
    fn every_port_form_of_docker_run_is_accepted() {
        let p = |ip: Option<&str>, host: Option<u16>, container: u16, proto: &str| PortSpec {
            host_ip: ip.map(str::to_owned),
            host_port: host,
            container_port: container,
            protocol: proto.into(),
        };
        for (s, want) in [
            ("80", p(None, None, 80, "tcp")),
            ("8080:80", p(None, Some(8080), 80, "tcp")),
            (
                "127.0.0.1:8080:80/tcp",
                p(Some("127.0.0.1"), Some(8080), 80, "tcp"),
            ),
            ("53:53/udp", p(None, Some(53), 53, "udp")),
            ("9:9/SCTP", p(None, Some(9), 9, "sctp")),
            ("127.0.0.1::80", p(Some("127.0.0.1"), None, 80, "tcp")),
            ("0:80", p(None, None, 80, "tcp")),
            ("[::1]:8080:80", p(Some("::1"), Some(8080), 80, "tcp")),
            ("[::1]::80/udp", p(Some("::1"), None, 80, "udp")),
            ("65535:1", p(None, Some(65535), 1, "tcp")),
        ] {
            assert_eq!(port(s), want, "{s}");
        }
        assert_eq!(port("127.0.0.1::80").to_string(), "127.0.0.1::80/tcp");
        assert_eq!(port("[::1]:8080:80").to_string(), "[::1]:8080:80/tcp");
        assert_eq!(
            install(
                json!({"ports": ["80", "8080:81", "127.0.0.1::82", "53:53/udp"], "networks": ["n"]})
            ),
            Ok(())
        );
        let spec: Spec = serde_json::from_value(json!({"ports": ["127.0.0.1:8080:80"]})).unwrap();
        assert_eq!(spec.port_specs().unwrap()[0].host_port, Some(8080));
    }

    #[test]
    fn a_port_out_of_range_is_refused_naming_it() {
        assert_eq!(
            refused(json!({"ports": ["80", "70000:80"]})),
            "`ports[1]`: port 70000 is out of range 1–65535"
        );
        assert_eq!(
            refused(json!({"ports": ["8080:0"]})),
            "`ports[0]`: port 0 is out of range 1–65535"
        );
        let e = refused(json!({"ports": ["99999999999999999999999:80"]}));
        assert!(
            e.starts_with("`ports[0]`: port ") && e.contains("out of range"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_port_protocol_is_refused() {
        let e = refused(json!({"ports": ["80/icmp"]}));
        assert!(
            e.starts_with("`ports[0]`: unknown protocol `icmp`") && e.contains("tcp, udp or sctp"),
            "{e}"
        );
        assert!(refused(json!({"ports": ["80/"]})).starts_with("`ports[0]`: "));
    }

    #[test]
    fn malformed_ports_are_refused() {
        for bad in [
            "",
            "http",
            "8000-8010:80",
            "1.2.3.4:80",
            "localhost:8080:80",
            "::1:8080:80",
            "[::1]:80",
            "[::1:8080:80",
            ":80:80",
            "+80",
        ] {
            let e = refused(json!({ "ports": [bad] }));
            assert!(e.starts_with("`ports[0]`: "), "{bad}: {e}");
        }
        assert!(refused(json!({"ports": ["8000-8010:80"]})).contains("ranges"));
    }

    #[test]
    fn a_host_port_published_twice_is_refused() {
        let e = refused(json!({"ports": ["8080:80", "127.0.0.1:8080:81"]}));
        assert!(e.starts_with("`ports[1]`: host port 8080/tcp"), "{e}");
        // Another protocol, another address, or daemon-picked ports do not clash.
        assert_eq!(
            install(
                json!({"ports": ["53:53", "53:53/udp", "127.0.0.1:80:80", "127.0.0.2:80:80", "80", "80"]})
            ),
            Ok(())
        );
    }

    #[test]
    fn ports_with_network_mode_none_host_or_container_are_refused() {
        let allowed = HostSettings {
            allow_host_network: true,
            ..HostSettings::default()
        };
        for mode in ["none", "host", "container:db"] {
            let p = json!({"image": "a:1", "network": mode, "ports": ["8080:80"]});
            let e = super::check("install", &p, &allowed).unwrap_err();
            assert!(
                e.starts_with("`ports`: ") && e.contains(mode),
                "{mode}: {e}"
            );
        }
        assert_eq!(
            install(json!({"network": "bridge", "ports": ["8080:80"]})),
            Ok(())
        );
        assert_eq!(install(json!({"network": "none", "ports": []})), Ok(()));
    }

    // ---- volumes ----

    #[test]
    fn named_volumes_and_bind_mounts_parse_with_their_mode() {
        let v = |s: &str| deckhand_params::parse_volume(s).unwrap();
        assert_eq!(
            v("data:/var/lib/x"),
            VolumeSpec {
                source: VolumeSource::Named("data".into()),
                target: "/var/lib/x".into(),
                read_only: false
            }
        );
        assert_eq!(
            v("/abs/host:/etc/x:ro"),
            VolumeSpec {
                source: VolumeSource::Bind("/abs/host".into()),
                target: "/etc/x".into(),
                read_only: true
            }
        );
        assert!(!v("my.data_1-x:/d:rw").read_only);
        assert_eq!(v("/abs/host:/etc/x:ro").to_string(), "/abs/host:/etc/x:ro");
        assert_eq!(
            install(json!({"volumes": ["data:/var/lib/x", "logs:/logs:ro", "cache:/c:rw"]})),
            Ok(())
        );
        let binds = json!({"image": "a:1", "volumes": ["/abs/host:/etc/x:ro", "data:/d"]});
        assert_eq!(super::check("install", &binds, &with_binds()), Ok(None));
    }

    #[test]
    fn a_relative_bind_source_is_refused() {
        for rel in ["./data:/d", "data/x:/d", "~/x:/d", "..:/d", ".:/d"] {
            let e = super::check(
                "install",
                &json!({"image": "a:1", "volumes": [rel]}),
                &with_binds(),
            )
            .unwrap_err();
            assert!(
                e.starts_with("`volumes[0]`: a bind mount source must be an absolute path"),
                "{rel}: {e}"
            );
        }
        let e = super::check(
            "install",
            &json!({"image": "a:1", "volumes": ["/srv/../etc:/d"]}),
            &with_binds(),
        )
        .unwrap_err();
        assert!(e.starts_with("`volumes[0]`: ") && e.contains("`..`"), "{e}");
    }

    #[test]
    fn a_bind_mount_is_refused_unless_the_server_allows_it() {
        let e = refused(json!({"volumes": ["data:/d", "/etc:/host-etc:ro"]}));
        assert!(
            e.starts_with("`volumes[1]`: bind mounts") && e.contains("--allow-bind-mounts"),
            "{e}"
        );
        let p = json!({"image": "a:1", "volumes": ["/etc:/host-etc:ro"]});
        assert_eq!(super::check("install", &p, &with_binds()), Ok(None));
        let spec: Spec = serde_json::from_value(p).unwrap();
        let allow = deckhand_params::Permissions { bind_mounts: true };
        assert_eq!(spec.validate(&allow), Ok(()));
        assert!(spec.validate(&Default::default()).is_err());
    }

    #[test]
    fn a_relative_or_escaping_container_path_is_refused() {
        for (bad, why) in [
            ("data:d", "must be absolute"),
            ("data:/a/../b", "`..`"),
            ("data:/", "over `/`"),
        ] {
            let e = refused(json!({ "volumes": [bad] }));
            assert!(
                e.starts_with("`volumes[0]`: ") && e.contains(why),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn bad_volume_names_options_and_anonymous_volumes_are_refused() {
        for (bad, why) in [
            ("-data:/d", "not a volume name"),
            ("da ta:/d", "not a volume name"),
            ("data:/d:z", "unknown volume option `z`"),
            ("data:/d:ro:rw", "SOURCE:TARGET"),
            ("/data", "anonymous volumes"),
            (":/d", "empty"),
        ] {
            let e = refused(json!({ "volumes": [bad] }));
            assert!(
                e.starts_with("`volumes[0]`: ") && e.contains(why),
                "{bad}: {e}"
            );
        }
        let long = format!("{}:/d", "v".repeat(65));
        assert!(refused(json!({ "volumes": [long] })).contains("at most 64"));
    }

    #[test]
    fn a_path_mounted_twice_is_refused() {
        let e = refused(json!({"volumes": ["a:/data", "b:/data/"]}));
        assert!(
            e.starts_with("`volumes[1]`: `/data/` is already mounted"),
            "{e}"
        );
    }

    // ---- networks ----

    #[test]
    fn networks_are_names_or_objects_with_aliases() {
        let p = json!({"networks": ["front", {"name": "back", "aliases": ["db", "db-1"]}]});
        assert_eq!(install(p.clone()), Ok(()));
        let spec: Spec = serde_json::from_value(p.clone()).unwrap();
        assert_eq!(
            spec.network_specs().unwrap(),
            vec![
                NetworkSpec {
                    name: "front".into(),
                    aliases: vec![]
                },
                NetworkSpec {
                    name: "back".into(),
                    aliases: vec!["db".into(), "db-1".into()]
                },
            ]
        );
        // Written back as given: a bare name without aliases.
        assert_eq!(serde_json::to_value(&spec).unwrap(), p);
        assert_eq!(install(json!({"networks": [{"name": "n"}]})), Ok(()));
    }

    #[test]
    fn network_together_with_networks_is_refused() {
        let e = refused(json!({"network": "none", "networks": ["appnet"]}));
        assert!(
            e.starts_with("`networks`: ") && e.contains("`network`"),
            "{e}"
        );
    }

    #[test]
    fn network_modes_and_bad_names_in_networks_are_refused() {
        for mode in ["host", "none", "bridge", "default", "container:x"] {
            let e = refused(json!({ "networks": [mode] }));
            assert!(e.starts_with("`networks[0]`: "), "{mode}: {e}");
        }
        assert!(refused(json!({"networks": ["host"]})).contains("network mode"));
        for bad in ["_n", "a b", "", &"n".repeat(65)] {
            let e = refused(json!({ "networks": ["ok", bad] }));
            assert!(e.starts_with("`networks[1]`: "), "{bad}: {e}");
        }
        let e = refused(json!({"networks": ["n", "n"]}));
        assert!(
            e.starts_with("`networks[1]`: ") && e.contains("already listed"),
            "{e}"
        );
    }

    #[test]
    fn aliases_must_be_dns_labels() {
        for bad in ["-db", "db-", "d_b", "d.b", "", &"a".repeat(64)] {
            let e = refused(json!({"networks": [{"name": "n", "aliases": ["ok", bad]}]}));
            assert!(e.starts_with("`networks[0].aliases[1]`: "), "{bad}: {e}");
        }
    }

    // ---- restart ----

    #[test]
    fn every_restart_policy_is_accepted() {
        let r = |policy, max_retries| RestartSpec {
            policy,
            max_retries,
        };
        for (s, want) in [
            ("no", r(RestartPolicy::No, None)),
            ("on-failure", r(RestartPolicy::OnFailure, None)),
            ("on-failure:3", r(RestartPolicy::OnFailure, Some(3))),
            ("unless-stopped", r(RestartPolicy::UnlessStopped, None)),
            ("always", r(RestartPolicy::Always, None)),
        ] {
            assert_eq!(deckhand_params::parse_restart(s), Ok(want), "{s}");
            assert_eq!(want.to_string(), s);
            assert_eq!(install(json!({ "restart": s })), Ok(()));
        }
    }

    #[test]
    fn an_unknown_restart_policy_is_refused() {
        assert_eq!(
            refused(json!({"restart": "sometimes"})),
            "`restart`: unknown restart policy `sometimes` (use no, on-failure[:N], unless-stopped, always)"
        );
        for bad in [
            "always:3",
            "on-failure:",
            "on-failure:-1",
            "on-failure:x",
            "Always",
        ] {
            let e = refused(json!({ "restart": bad }));
            assert!(e.starts_with("`restart`: "), "{bad}: {e}");
        }
    }

    // ---- labels ----

    #[test]
    fn user_labels_are_accepted_and_io_deckhand_keys_reserved() {
        assert_eq!(
            install(
                json!({"labels": {"team": "web", "com.example.tier": "front", "io.deckhandx": "1"}})
            ),
            Ok(())
        );
        assert_eq!(
            refused(json!({"labels": {"io.deckhand.x": "1"}})),
            "`labels.io.deckhand.x`: keys under `io.deckhand.` are reserved"
        );
        for key in ["io.deckhand.target", "IO.Deckhand.managed", "io.deckhand"] {
            let e = refused(json!({"labels": { key: "y" }}));
            assert!(e.contains("reserved"), "{key}: {e}");
        }
        assert!(refused(json!({"labels": {"": "y"}})).starts_with("`labels.`: "));
    }

    // ---- memory, cpus ----

    #[test]
    fn memory_sizes_parse_in_binary_units() {
        let m = |s: &str| deckhand_params::parse_memory(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(m("256m"), 256 << 20);
        assert_eq!(m("1g"), 1 << 30);
        assert_eq!(m("1G"), 1 << 30);
        assert_eq!(m("512k"), 512 << 10);
        assert_eq!(m("268435456"), 268_435_456);
        assert_eq!(m("100b"), 100);
        assert_eq!(m("256MiB"), 256 << 20);
        assert_eq!(m("256mb"), 256 << 20);
        assert_eq!(m("1.5g"), 3 << 29);
        assert_eq!(m("1t"), 1 << 40);
        assert_eq!(install(json!({"memory": "6m"})), Ok(()));
        let spec: Spec = serde_json::from_value(json!({"memory": "256m"})).unwrap();
        assert_eq!(spec.memory_bytes(), Ok(Some(256 << 20)));
    }

    #[test]
    fn memory_below_6_mib_or_unparsable_is_refused() {
        let e = refused(json!({"memory": "5m"}));
        assert!(
            e.starts_with("`memory`: `5m` is below") && e.contains("6 MiB"),
            "{e}"
        );
        assert!(refused(json!({"memory": "6291455"})).contains("below"));
        for bad in [
            "",
            "m",
            "lots",
            "1.g",
            "1..5m",
            "-1g",
            "1 g",
            "1p",
            "1gg",
            "99999999999t",
        ] {
            let e = refused(json!({ "memory": bad }));
            assert!(e.starts_with("`memory`: "), "{bad}: {e}");
        }
    }

    #[test]
    fn cpus_become_nano_cpus_to_a_thousandth() {
        assert_eq!(deckhand_params::cpus_to_nano(0.5), 500_000_000);
        assert_eq!(deckhand_params::cpus_to_nano(2.0), 2_000_000_000);
        assert_eq!(deckhand_params::cpus_to_nano(0.0015), 2_000_000);
        assert_eq!(deckhand_params::cpus_to_nano(1.23456), 1_235_000_000);
        assert_eq!(install(json!({"cpus": 0.5})), Ok(()));
        assert_eq!(install(json!({"cpus": 2})), Ok(()));
        let spec: Spec = serde_json::from_value(json!({"cpus": 0.25})).unwrap();
        assert_eq!(spec.nano_cpus(), Ok(Some(250_000_000)));
    }

    #[test]
    fn cpus_zero_negative_or_too_small_are_refused() {
        for bad in [json!(0), json!(-1.5), json!(0.0004), json!(2e6)] {
            let e = refused(json!({ "cpus": bad }));
            assert!(e.starts_with("`cpus`: "), "{bad}: {e}");
        }
        assert!(refused(json!({"cpus": 0})).contains("more than 0"));
    }

    // ---- entrypoint, user, workdir, stop timeout ----

    #[test]
    fn entrypoint_user_workdir_and_stop_timeout_are_accepted() {
        for user in ["app", "1000", "1000:1000", "www-data:www-data", "app:0"] {
            assert_eq!(install(json!({ "user": user })), Ok(()), "{user}");
        }
        assert_eq!(
            install(
                json!({"entrypoint": ["/bin/sh", "-c"], "workdir": "/srv/app", "stop_timeout_s": 30})
            ),
            Ok(())
        );
        assert_eq!(install(json!({"entrypoint": [""]})), Ok(()), "reset");
    }

    #[test]
    fn a_relative_workdir_or_malformed_user_is_refused() {
        let e = refused(json!({"workdir": "srv"}));
        assert!(
            e.starts_with("`workdir`: ") && e.contains("absolute"),
            "{e}"
        );
        for bad in ["", "a b", "a:", ":g", "a:b:c"] {
            let e = refused(json!({ "user": bad }));
            assert!(e.starts_with("`user`: "), "{bad:?}: {e}");
        }
        assert!(refused(json!({"stop_timeout_s": -1})).starts_with("`stop_timeout_s`: "));
    }

    // ---- health ----

    #[test]
    fn health_cmd_forms_of_compose_are_accepted() {
        for cmd in [
            json!(["CMD", "wget", "-qO-", "http://localhost/"]),
            json!(["CMD-SHELL", "wget -qO- localhost || exit 1"]),
            json!(["NONE"]),
            json!([]),
        ] {
            let p = json!({"health": {"cmd": cmd, "interval_s": 2, "probe_timeout_s": 1, "retries": 3, "start_period_s": 0, "timeout_s": 60}});
            assert_eq!(install(p), Ok(()), "{cmd}");
        }
    }

    #[test]
    fn a_malformed_health_cmd_or_zero_interval_is_refused() {
        for bad in [
            json!(["wget", "localhost"]),
            json!(["CMD"]),
            json!(["CMD-SHELL"]),
            json!(["CMD-SHELL", "a", "b"]),
            json!(["NONE", "x"]),
            json!(["cmd", "true"]),
        ] {
            let e = refused(json!({"health": {"cmd": bad}}));
            assert!(e.starts_with("`health.cmd`: "), "{bad}: {e}");
        }
        for field in ["interval_s", "probe_timeout_s"] {
            let e = refused(json!({"health": { field: 0 }}));
            assert!(e.starts_with(&format!("`health.{field}`: ")), "{e}");
        }
    }

    // ---- upgrade: snapshots, strategy ----

    #[test]
    fn snapshot_volumes_and_both_strategies_are_accepted() {
        for strategy in ["stop-first", "start-first"] {
            let p = json!({"snapshot_volumes": true, "strategy": strategy, "ports": ["80"], "networks": ["n"]});
            assert_eq!(check("upgrade", &p), Ok(()), "{strategy}");
        }
        let spec: Spec = serde_json::from_value(json!({})).unwrap();
        assert_eq!(spec.strategy(), deckhand_params::Strategy::StopFirst);
    }

    #[test]
    fn an_unknown_strategy_is_refused() {
        let e = check("upgrade", &json!({"strategy": "blue-green"})).unwrap_err();
        assert!(
            e.starts_with("`strategy`: unknown variant `blue-green`"),
            "{e}"
        );
    }

    #[test]
    fn start_first_with_a_fixed_host_port_is_refused() {
        let e = check(
            "upgrade",
            &json!({"strategy": "start-first", "ports": ["80", "8080:80"]}),
        )
        .unwrap_err();
        assert!(
            e.starts_with("`strategy`: ") && e.contains("`ports[1]`"),
            "{e}"
        );
    }

    // ---- bounds (params are hostile) ----

    #[test]
    fn too_many_items_are_refused() {
        let many = |n: usize, f: &dyn Fn(usize) -> Value| (0..n).map(f).collect::<Vec<_>>();
        let ports = many(65, &|i| json!(format!("{}", 1000 + i)));
        assert_eq!(
            refused(json!({ "ports": ports })),
            "`ports`: at most 64 ports (got 65)"
        );
        assert_eq!(install(json!({ "ports": ports[..64] })), Ok(()));
        let volumes = many(65, &|i| json!(format!("v{i}:/v{i}")));
        assert!(refused(json!({ "volumes": volumes })).starts_with("`volumes`: at most 64"));
        let networks = many(17, &|i| json!(format!("n{i}")));
        assert!(refused(json!({ "networks": networks })).starts_with("`networks`: at most 16"));
        let aliases = many(17, &|i| json!(format!("a{i}")));
        let e = refused(json!({"networks": [{"name": "n", "aliases": aliases}]}));
        assert!(e.starts_with("`networks[0].aliases`: at most 16"), "{e}");
        let labels: serde_json::Map<String, Value> =
            (0..129).map(|i| (format!("l{i}"), json!("v"))).collect();
        assert!(refused(json!({ "labels": labels })).starts_with("`labels`: at most 128"));
    }

    #[test]
    fn oversized_strings_are_refused() {
        let big = "a".repeat(4097);
        let e = refused(json!({ "user": big }));
        assert!(e.starts_with("`user`: at most 4096 bytes"), "{e}");
        let e = refused(json!({ "cmd": ["sh", big] }));
        assert!(e.starts_with("`cmd[1]`: at most 4096 bytes"), "{e}");
        let e = refused(json!({"labels": { big.clone(): "v" }}));
        assert!(
            e.starts_with("`labels.aaaa") && e.contains("at most 4096"),
            "{e}"
        );
        // An environment value has more room (certificates), but not unbounded.
        assert_eq!(install(json!({"env": {"CERT": big}})), Ok(()));
        let e = refused(json!({"env": {"CERT": "a".repeat(32 * 1024 + 1)}}));
        assert!(e.starts_with("`env.CERT`: at most 32768 bytes"), "{e}");
    }
}
