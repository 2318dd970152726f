//! Checks of strings in params: no line breaks or NULs anywhere, and
//! bounded lengths ([`check_text`]); Docker's logical names; and the
//! single-string fields that are checked but not parsed: the user, container
//! paths, environment variable names and label keys.

use serde_json::Value;

use crate::bounds::{MAX_ENV_VALUE_BYTES, MAX_NAME_LEN, MAX_STRING_BYTES};

/// No string anywhere in `value` (keys included) may hold a line break or a
/// NUL: they would forge lines in logs and summaries, and no Docker field
/// the built-ins set needs one. None may be longer than
/// [`MAX_STRING_BYTES`] ([`MAX_ENV_VALUE_BYTES`] for an `env` value). `Err`
/// names the path of the first.
pub(crate) fn check_text(value: &Value, path: &str) -> Result<(), String> {
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

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most [`MAX_NAME_LEN`] characters.
pub(crate) fn docker_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_NAME_LEN
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
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
