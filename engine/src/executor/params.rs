//! The params contract of the built-in workflows, checked when a job is
//! submitted so that bad params are refused before any job exists (the
//! plugins read the same JSON).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by serde only: the fields are the contract
struct Health {
    timeout_s: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Spec {
    image: Option<String>,
    env: Option<BTreeMap<String, String>>,
    cmd: Option<Vec<String>>,
    network: Option<String>,
    health: Option<Health>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Rollback {
    revision: u64,
}

/// Check `params` against the built-in `workflow`'s contract; other
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
    let p = params.clone();
    match workflow {
        "install" => {
            let spec: Spec = serde_json::from_value(p).map_err(|e| e.to_string())?;
            match spec.image.as_deref() {
                Some(i) if !i.trim().is_empty() => Ok(()),
                _ => Err("`image` is required".into()),
            }
        }
        "upgrade" => serde_json::from_value::<Spec>(p)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        "teardown" => serde_json::from_value::<Empty>(p)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        "rollback" => serde_json::from_value::<Rollback>(p)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        _ => Ok(()),
    }
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
