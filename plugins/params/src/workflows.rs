//! The params of each built-in workflow as a whole: [`Teardown`],
//! [`Rollback`], and [`check`], which checks a job's params against its
//! workflow's contract (`install` and `upgrade` take a [`Spec`], or a
//! stack's [`StackParams`](crate::StackParams)), naming
//! the field at fault.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::text::check_text;
use crate::{Health, Permissions, Spec, Stack};

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
/// `Ok` carries the stack a stack's `install`/`upgrade` params describe, as
/// read for the check. `Err` names the field and the problem
/// (`` `env.A=B`: … ``).
pub fn check(workflow: &str, params: &Value, allow: &Permissions) -> Result<Option<Stack>, String> {
    match workflow {
        "install" | "upgrade" if crate::is_stack_params(params) => {
            crate::check_stack_params(params, allow).map(Some)
        }
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
            spec.validate(allow).map(|()| None)
        }
        "teardown" => read_named::<Teardown>(params, "").map(|_| None),
        "rollback" => Rollback::deserialize(params)
            .map(|_| None)
            .map_err(|e| e.to_string()),
        _ => Ok(None),
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
