//! Compose files: [`parse_compose`] reads one (YAML, interpolated with the
//! params' `env`) into a validated [`Stack`] of [`Service`]s, each with
//! the [`Spec`] its container is created from, in the order they start;
//! [`StackParams`] are the `install`/`upgrade` params that carry one.
//!
//! A subset of Compose is read, strictly: a key Deckhand does not support
//! is an error that names its path (`` `services.web.build`: not supported
//! … ``), never silently ignored; `x-` extension keys are ignored at the
//! top level and in a service (their anchors can be merged with `<<:`).
//!
//! | Compose | [`Spec`] |
//! | --- | --- |
//! | `image` (required) | `image` |
//! | `command`, `entrypoint` (string, split as a shell would, or list) | `cmd`, `entrypoint` |
//! | `environment` (mapping or `K=V` list; a bare `K` takes `env`'s value) | `env` |
//! | `ports` (short, number or long form) | `ports` |
//! | `volumes` (`key:/path[:ro]` of a declared volume; host paths with `--allow-bind-mounts`) | `volumes` |
//! | `networks` (declared, or `default`; the service name is an alias) | `networks` |
//! | `healthcheck` | `health` |
//! | `restart`, `labels`, `user`, `working_dir` | `restart`, `labels`, `user`, `workdir` |
//! | `mem_limit`, `cpus`, `deploy.resources.limits` | `memory`, `cpus` |
//! | `stop_grace_period` | `stop_timeout_s` |
//! | `depends_on` | [`Service::depends_on`] |
//!
//! Volume and network names in the specs are the Compose keys; the
//! stack's [`StackVolume`]s and [`StackNetwork`]s say which are external
//! and what Docker name was given.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::text::check_text;
use crate::{Permissions, Spec, check_env_key};

mod duration;
mod interpolate;
mod model;
mod order;
mod translate;
mod yaml;

#[cfg(test)]
mod tests;

/// Longest Compose file, in bytes.
pub const MAX_COMPOSE_BYTES: usize = 256 * 1024;
/// Most services in a stack.
pub const MAX_SERVICES: usize = 32;
/// Most variables in a stack's `env` param.
const MAX_STACK_ENV: usize = 256;
/// The network a service joins when it lists none.
const DEFAULT_NETWORK: &str = "default";

/// A Compose file after interpolation and validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    /// The services, in start order: each after those it depends on, and
    /// among those ready together, by name.
    pub services: Vec<Service>,
    /// The top-level volumes, sorted by name.
    pub volumes: Vec<StackVolume>,
    /// The top-level networks, sorted by name, with `default` when a
    /// service is on it.
    pub networks: Vec<StackNetwork>,
}

/// One service of a [`Stack`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// The service's name (the Compose key): lowercase, a DNS label.
    pub name: String,
    /// Its container's spec; volume and network names in it are the
    /// stack's keys.
    pub spec: Spec,
    /// The services it waits for, sorted by name.
    pub depends_on: Vec<Dependency>,
}

/// A service another waits for before it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dependency {
    /// The service waited for.
    pub service: String,
    /// What it is waited for.
    pub condition: Condition,
}

/// What a dependency is waited for (Compose's `depends_on.*.condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    /// Its container has started (`service_started`, the default).
    #[serde(rename = "service_started")]
    Started,
    /// Its health check passes (`service_healthy`).
    #[serde(rename = "service_healthy")]
    Healthy,
    /// It has run to completion with exit code 0
    /// (`service_completed_successfully`).
    #[serde(rename = "service_completed_successfully")]
    CompletedSuccessfully,
}

/// A top-level volume of a [`Stack`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackVolume {
    /// The Compose key, as the services' `volumes` name it.
    pub name: String,
    /// It exists already and is not the stack's to create or remove.
    pub external: bool,
    /// The Docker name: `name:` when given, else the key for an external
    /// one; `None`: the plugin names it after the target.
    pub docker_name: Option<String>,
}

/// A top-level network of a [`Stack`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackNetwork {
    /// The Compose key, as the services' `networks` name it (`default`
    /// for the stack's own).
    pub name: String,
    /// It exists already and is not the stack's to create or remove.
    pub external: bool,
    /// The Docker name: `name:` when given, else the key for an external
    /// one; `None`: the plugin names it after the target.
    pub docker_name: Option<String>,
}

impl Stack {
    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The services in the order they stop: the reverse of start order.
    pub fn stop_order(&self) -> impl Iterator<Item = &Service> {
        self.services.iter().rev()
    }

    /// The services' names grouped in dependency levels: level 0 depends
    /// on nothing, each later level only on earlier ones, so the services
    /// of one level can be pulled and created together. Each level is
    /// sorted by name.
    pub fn layers(&self) -> Vec<Vec<&str>> {
        order::layers(&self.services)
    }
}

/// `install`/`upgrade` params of a stack:
/// `{"compose": "<yaml>", "env"?: {K: V}, "snapshot_volumes"?: bool,
/// "health_timeout_s"?: u32}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackParams {
    /// The Compose file's text.
    pub compose: String,
    /// The variables the file is interpolated with (and that a bare
    /// `environment` entry takes its value from).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Upgrade: a non-committed upgrade leaves every named volume's content
    /// as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_volumes: Option<bool>,
    /// Seconds to wait for each service to be running (and healthy, when
    /// it has a health check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_timeout_s: Option<u32>,
}

impl StackParams {
    /// The stack the params describe ([`parse_compose`] of `compose` with `env`).
    pub fn stack(&self, allow: &Permissions) -> Result<Stack, String> {
        parse_compose(&self.compose, &self.env, allow)
    }
}

/// Whether `params` are a stack's: an object with a `compose` key.
pub fn is_stack_params(params: &Value) -> bool {
    params
        .as_object()
        .is_some_and(|m| m.contains_key("compose"))
}

/// Check a stack's `install`/`upgrade` params: their shape (naming the
/// field at fault), the `env` (at most 256 variables, names as
/// [`check_env_key`], values at most
/// [`MAX_ENV_VALUE_BYTES`](crate::MAX_ENV_VALUE_BYTES) without line
/// breaks), then the Compose file ([`StackParams::stack`]): the stack it
/// describes.
pub fn check_stack_params(params: &Value, allow: &Permissions) -> Result<Stack, String> {
    let p: StackParams = serde_path_to_error::deserialize(params).map_err(describe)?;
    if p.env.len() > MAX_STACK_ENV {
        return Err(format!(
            "`env`: at most {MAX_STACK_ENV} variables (got {})",
            p.env.len()
        ));
    }
    for key in p.env.keys() {
        check_env_key(key).map_err(|e| format!("`env.{}`: {e}", translate::shown(key)))?;
    }
    // Names bounded, no line breaks, values at most MAX_ENV_VALUE_BYTES.
    let env = serde_json::to_value(&p.env).expect("a map of strings serializes");
    check_text(&env, "env")?;
    p.stack(allow)
}

/// The variables a Compose file refers to (`$VAR`, `${VAR:-…}`, …), so
/// that a client can pass those of its environment and no others. `Err`
/// when the text is no YAML mapping.
pub fn compose_variables(text: &str) -> Result<BTreeSet<String>, String> {
    if text.len() > MAX_COMPOSE_BYTES {
        return Err(format!(
            "the Compose file is {} bytes; at most {MAX_COMPOSE_BYTES} (256 KiB)",
            text.len()
        ));
    }
    let root = yaml::parse(text)?;
    let mut names = BTreeSet::new();
    interpolate::variables(&root, &mut names);
    Ok(names)
}

/// Read a Compose file into a [`Stack`]: at most [`MAX_COMPOSE_BYTES`],
/// one YAML document (anchors and `<<:` merge keys allowed, within
/// bounds), interpolated with `env` (the only source of variables), every
/// key supported and every value checked, each service's spec validated
/// with what the server `allow`s. `Err` names the path at fault
/// (`` `services.web.ports[0]`: … ``).
pub fn parse_compose(
    text: &str,
    env: &BTreeMap<String, String>,
    allow: &Permissions,
) -> Result<Stack, String> {
    if text.len() > MAX_COMPOSE_BYTES {
        return Err(format!(
            "the Compose file is {} bytes; at most {MAX_COMPOSE_BYTES} (256 KiB)",
            text.len()
        ));
    }
    let mut root = yaml::parse(text)?;
    let Value::Object(top) = &mut root else {
        return Err("the Compose file must be a mapping with `services`".into());
    };
    check_top_level(top)?;
    interpolate::interpolate(&mut root, env)?;
    let file: model::File = serde_path_to_error::deserialize(&root).map_err(describe)?;

    let volumes = translate::volumes(file.volumes)?;
    let mut networks = translate::networks(file.networks)?;
    let names: Vec<String> = file.services.keys().cloned().collect();
    let cx = translate::Context {
        env,
        allow,
        volumes: volumes.iter().map(|v| v.name.as_str()).collect(),
        networks: networks.iter().map(|n| n.name.as_str()).collect(),
        services: names.iter().map(String::as_str).collect(),
    };
    let mut services = Vec::with_capacity(names.len());
    for (name, def) in file.services {
        services.push(translate::service(&name, def.0, &cx)?);
    }
    let uses_default = services.iter().any(|s| {
        s.spec
            .networks
            .iter()
            .flatten()
            .any(|n| n.name == DEFAULT_NETWORK)
    });
    if uses_default && !networks.iter().any(|n| n.name == DEFAULT_NETWORK) {
        networks.push(StackNetwork {
            name: DEFAULT_NETWORK.to_owned(),
            external: false,
            docker_name: None,
        });
        networks.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(Stack {
        services: order::start_order(services)?,
        volumes,
        networks,
    })
}

/// Keys refused with a reason of their own, at the top level.
const TOP_LEVEL_REFUSED: &[(&str, &str)] = &[
    ("name", "the project name is the Deckhand target's"),
    (
        "include",
        "not supported: the server reads no other files; put the services in this one",
    ),
    (
        "secrets",
        "not supported: the server reads no files; pass values in `environment`",
    ),
    (
        "configs",
        "not supported: the server reads no files; pass values in `environment`",
    ),
];

/// Keys refused with a reason of their own, in a service.
const SERVICE_REFUSED: &[(&str, &str)] = &[
    (
        "build",
        "not supported: Deckhand runs images from a registry; build and push the image, then set `image`",
    ),
    (
        "env_file",
        "not supported: the server reads no files; put the variables in `environment`",
    ),
    (
        "container_name",
        "not supported: a service's container is named `deckhand-<target>-<service>`",
    ),
    ("profiles", "not supported: every service of a stack runs"),
    (
        "extends",
        "not supported: write the service out in full (`x-` fields and `<<:` merge keys can share settings)",
    ),
    (
        "secrets",
        "not supported: the server reads no files; pass values in `environment`",
    ),
    (
        "configs",
        "not supported: the server reads no files; pass values in `environment`",
    ),
    (
        "network_mode",
        "not supported: a stack's services join its `networks`",
    ),
    (
        "links",
        "not supported: services reach each other by name on the stack's networks",
    ),
    (
        "external_links",
        "not supported: services reach each other by name on the stack's networks",
    ),
    (
        "volumes_from",
        "not supported: share a named volume instead",
    ),
    ("scale", "not supported: a service runs one container"),
];

/// Before interpolation: drop the `x-` keys, refuse the keys with a reason
/// of their own (whatever their values), bound the services and check
/// their names.
fn check_top_level(top: &mut serde_json::Map<String, Value>) -> Result<(), String> {
    top.retain(|k, _| !k.starts_with("x-"));
    for (key, why) in TOP_LEVEL_REFUSED {
        if top.contains_key(*key) {
            return Err(format!("`{key}`: {why}"));
        }
    }
    let services = match top.get_mut("services") {
        Some(Value::Object(services)) => services,
        Some(Value::Null) | None => {
            return Err("`services`: required: a Compose file has at least one service".into());
        }
        Some(_) => return Err("`services`: must be a mapping of services by name".into()),
    };
    if services.is_empty() {
        return Err("`services`: a Compose file has at least one service".into());
    }
    if services.len() > MAX_SERVICES {
        return Err(format!(
            "`services`: at most {MAX_SERVICES} services (got {})",
            services.len()
        ));
    }
    let names: BTreeSet<String> = services.keys().cloned().collect();
    for name in &names {
        translate::check_service_name(name)?;
    }
    for (name, service) in services.iter_mut() {
        let Value::Object(service) = service else {
            continue;
        };
        service.retain(|k, _| !k.starts_with("x-"));
        for (key, why) in SERVICE_REFUSED {
            if service.contains_key(*key) {
                return Err(format!("`services.{name}.{key}`: {why}"));
            }
        }
    }
    Ok(())
}

/// A serde error with its path: `` `services.web.ports[0]`: … ``; an
/// unknown key is "not supported", with the keys that are.
fn describe(e: serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    let inner = e.inner().to_string();
    let msg = match inner.strip_prefix("unknown field `") {
        Some(rest) => {
            let expected = rest.split_once("`, ").map(|(_, e)| e).unwrap_or_default();
            match expected.strip_prefix("expected ") {
                Some(keys) => {
                    let keys = keys.strip_prefix("one of ").unwrap_or(keys);
                    format!("not supported (supported here: {keys})")
                }
                None => "not supported".to_owned(),
            }
        }
        None => inner,
    };
    if path == "." {
        msg
    } else {
        format!("`{path}`: {msg}")
    }
}
