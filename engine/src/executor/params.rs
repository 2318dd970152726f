//! The params of the built-in workflows, checked when a job is submitted so
//! that bad params are refused before any job exists. The contract itself
//! is the `deckhand-params` crate, which the plugins read their params with;
//! this adds what only the server knows (whether it allows a shared
//! network stack).

use serde_json::Value;

/// Check `params` against the built-in `workflow`'s contract
/// ([`deckhand_params::check`], the types the plugins read them with); other
/// workflows' params are theirs to check. Returns a message naming the
/// problem. `allow_host_network`: the server lets containers share the
/// host's (or another container's) network stack.
pub fn check(workflow: &str, params: &Value, allow_host_network: bool) -> Result<(), String> {
    if matches!(workflow, "install" | "upgrade")
        && let Some(network) = params.get("network").and_then(Value::as_str)
    {
        crate::runtime::check_network_mode(network, allow_host_network)
            .map_err(|e| format!("`network`: {e}"))?;
    }
    deckhand_params::check(workflow, params)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    fn check(workflow: &str, params: &Value) -> Result<(), String> {
        super::check(workflow, params, false)
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
    fn an_upgrade_keeps_what_its_params_do_not_set() {
        let base = deckhand_params::Spec {
            image: Some("a:1".into()),
            cmd: Some(vec!["run".into()]),
            ..Default::default()
        };
        let params: deckhand_params::Spec =
            serde_json::from_value(json!({"image": "a:2"})).unwrap();
        let spec = params.over(&base);
        assert_eq!(spec.image.as_deref(), Some("a:2"));
        assert_eq!(spec.cmd, Some(vec!["run".to_owned()]));
        assert!(
            check("install", &json!({"image": " "})).is_err(),
            "blank image"
        );
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
    }

    #[test]
    fn rollback_needs_a_revision_number_and_teardown_nothing() {
        assert!(check("rollback", &json!({"revision": 2})).is_ok());
        assert!(check("rollback", &json!({"revision": "2"})).is_err());
        assert!(check("teardown", &json!({})).is_ok());
        assert!(check("teardown", &json!({"force": true})).is_err());
        assert!(check("custom", &json!({"anything": 1})).is_ok());
    }

    #[test]
    fn a_network_sharing_the_hosts_stack_is_refused_unless_the_server_allows_it() {
        let host = json!({"image": "a:1", "network": "host"});
        assert!(check("install", &host).unwrap_err().contains("`network`"));
        assert!(check("upgrade", &json!({"network": "container:x"})).is_err());
        assert!(super::check("install", &host, true).is_ok());
        assert!(check("install", &json!({"image": "a:1", "network": "none"})).is_ok());
    }
}
