//! The params contract of Deckhand's built-in workflows, in one place: the
//! plugins read their params with these types (re-exported by
//! `deckhand-sdk`), and the engine checks a job's params with
//! [`check`] before the job exists, so that what it accepts is exactly
//! what the plugins can read.
//!
//! | workflow | params |
//! | --- | --- |
//! | `install` | [`Spec`] with `image` |
//! | `upgrade` | [`Spec`]; unset fields keep the current revision's |
//! | `teardown` | [`Teardown`] (`{}`) |
//! | `rollback` | [`Rollback`] (`{revision}`) |
//!
//! Its tests are the engine's (`engine/src/executor/params.rs`), which
//! build it natively; the plugins build it for `wasm32-wasip2`.

#![deny(missing_docs)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Health-check settings of a spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Seconds to wait for the container to be running (and healthy, when the
    /// image has a health check) before the job fails. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
}

impl Health {
    /// The timeout to use.
    pub fn timeout(&self) -> u32 {
        self.timeout_s.unwrap_or(30)
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
    /// Network mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Health-check settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

impl Spec {
    /// Fields set in `self` win; the others come from `base`.
    pub fn over(self, base: &Spec) -> Spec {
        Spec {
            image: self.image.or_else(|| base.image.clone()),
            env: self.env.or_else(|| base.env.clone()),
            cmd: self.cmd.or_else(|| base.cmd.clone()),
            network: self.network.or_else(|| base.network.clone()),
            health: self.health.or_else(|| base.health.clone()),
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
}

/// `teardown` params: none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Teardown {}

/// `rollback` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// The earlier revision whose image and spec come back.
    pub revision: u64,
}

/// Check `params` against the contract of the built-in `workflow`; other
/// workflows' params are theirs to check. `Err` names the field and the
/// problem (`` `env.A=B`: … ``).
pub fn check(workflow: &str, params: &serde_json::Value) -> Result<(), String> {
    fn read<T: serde::de::DeserializeOwned>(params: &serde_json::Value) -> Result<T, String> {
        T::deserialize(params).map_err(|e| e.to_string())
    }
    match workflow {
        "install" | "upgrade" => {
            let spec: Spec = read(params)?;
            if workflow == "install" {
                spec.require_image()
                    .map_err(|_| "`image` is required".to_owned())?;
            }
            check_text(params, "")?;
            if let Some(image) = &spec.image {
                check_reference(image).map_err(|e| format!("`image`: {e}"))?;
            }
            for key in spec.env.iter().flatten().map(|(k, _)| k) {
                check_env_key(key).map_err(|e| format!("`env.{key}`: {e}"))?;
            }
            Ok(())
        }
        "teardown" => read::<Teardown>(params).map(|_| ()),
        "rollback" => read::<Rollback>(params).map(|_| ()),
        _ => Ok(()),
    }
}

/// No string anywhere in `value` (keys included) may hold a line break or a
/// NUL: they would forge lines in logs and summaries, and no Docker field
/// the built-ins set needs one. `Err` names the path of the first.
fn check_text(value: &serde_json::Value, path: &str) -> Result<(), String> {
    let bad = |s: &str| s.contains(['\r', '\n', '\0']);
    let at = |key: &str| match path {
        "" => key.to_owned(),
        p => format!("{p}.{key}"),
    };
    match value {
        serde_json::Value::String(s) if bad(s) => Err(format!(
            "`{path}`: line breaks and NUL characters are not allowed"
        )),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_text(v, &format!("{path}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().try_for_each(|(k, v)| {
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
