//! Compose's variable interpolation, on every string value of the parsed
//! file (keys are left as they are): `$$`, `$VAR`, `${VAR}`,
//! `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`,
//! `${VAR?message}`, `${VAR:+alt}` and `${VAR+alt}`, defaults and messages
//! themselves interpolated. The variables come from the params' `env` only:
//! the engine is a server, its own environment is not the user's.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::bounds::MAX_ENV_VALUE_BYTES;

/// How deep `${A:-${B:-${C}}}` may nest.
const MAX_NESTING: usize = 8;
/// Longest string after interpolation: the longest environment value.
const MAX_EXPANDED_BYTES: usize = MAX_ENV_VALUE_BYTES;
/// Most text the whole file may hold after interpolation.
const MAX_TOTAL_BYTES: usize = 4 << 20;

/// Interpolate every string value in `value`, in place. `Err` names the
/// path of the string and what is wrong with it.
pub(super) fn interpolate(value: &mut Value, env: &BTreeMap<String, String>) -> Result<(), String> {
    let mut walker = Walker { env, total: 0 };
    walker.walk(value, "")
}

struct Walker<'a> {
    env: &'a BTreeMap<String, String>,
    /// Bytes of string values so far, after interpolation.
    total: usize,
}

impl Walker<'_> {
    fn walk(&mut self, value: &mut Value, path: &str) -> Result<(), String> {
        match value {
            Value::String(s) => {
                if s.contains('$') {
                    *s = expand(s, self.env, 0).map_err(|e| format!("`{path}`: {e}"))?;
                }
                self.total += s.len();
                if self.total > MAX_TOTAL_BYTES {
                    return Err(format!(
                        "the Compose file holds more than {} MiB of text after interpolation",
                        MAX_TOTAL_BYTES >> 20
                    ));
                }
                Ok(())
            }
            Value::Array(items) => items
                .iter_mut()
                .enumerate()
                .try_for_each(|(i, v)| self.walk(v, &format!("{path}[{i}]"))),
            Value::Object(map) => map.iter_mut().try_for_each(|(k, v)| {
                let at = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                self.walk(v, &at)
            }),
            _ => Ok(()),
        }
    }
}

/// The names of the variables the string values in `value` refer to
/// (`$VAR`, `${VAR…}`, also inside defaults), added to `names`. `$$` is
/// no reference.
pub(super) fn variables(value: &Value, names: &mut std::collections::BTreeSet<String>) {
    match value {
        Value::String(s) => {
            let b = s.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] != b'$' {
                    i += 1;
                    continue;
                }
                match b.get(i + 1) {
                    Some(b'$') => {
                        i += 2;
                        continue;
                    }
                    Some(b'{') => i += 2,
                    _ => i += 1,
                }
                let start = i;
                if b.get(i).copied().is_some_and(is_name_start) {
                    while b.get(i).copied().is_some_and(is_name_char) {
                        i += 1;
                    }
                    names.insert(s[start..i].to_owned());
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| variables(v, names)),
        Value::Object(map) => map.values().for_each(|v| variables(v, names)),
        _ => {}
    }
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn excerpt(s: &str) -> String {
    let short: String = s.chars().take(80).collect();
    if short.len() < s.len() {
        format!("{short}…")
    } else {
        short
    }
}

/// `s` with its variables replaced; `depth` is how deep in a default it is.
fn expand(s: &str, env: &BTreeMap<String, String>, depth: usize) -> Result<String, String> {
    if depth > MAX_NESTING {
        return Err(format!(
            "variables nested more than {MAX_NESTING} deep in their defaults"
        ));
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    // `$`, `{` and `}` are ASCII, so every index below is a char boundary.
    let (mut i, mut literal) = (0, 0);
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        out.push_str(&s[literal..i]);
        match b.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => {
                let end = closing_brace(b, i + 2).ok_or_else(|| {
                    format!(
                        "`{}`: `${{` is not closed (a literal `$` is written `$$`)",
                        excerpt(&s[i..])
                    )
                })?;
                braced(&s[i + 2..end], env, depth, &mut out)?;
                i = end + 1;
            }
            Some(&c) if is_name_start(c) => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && is_name_char(b[j]) {
                    j += 1;
                }
                out.push_str(env.get(&s[start..j]).map_or("", String::as_str));
                i = j;
            }
            _ => {
                return Err(format!(
                    "`{}`: a `$` starts a variable (`$VAR`, `${{VAR}}`); a literal `$` is written `$$`",
                    excerpt(s)
                ));
            }
        }
        literal = i;
        if out.len() > MAX_EXPANDED_BYTES {
            break;
        }
    }
    out.push_str(&s[literal.min(s.len())..]);
    if out.len() > MAX_EXPANDED_BYTES {
        return Err(format!(
            "longer than {MAX_EXPANDED_BYTES} bytes after interpolation"
        ));
    }
    Ok(out)
}

/// The index of the `}` that closes a `${` whose body starts at `start`,
/// skipping nested `${…}` and `$$`.
fn closing_brace(b: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = start;
    while j < b.len() {
        match (b[j], b.get(j + 1)) {
            (b'$', Some(b'$')) => j += 2,
            (b'$', Some(b'{')) => {
                depth += 1;
                j += 2;
            }
            (b'}', _) if depth == 0 => return Some(j),
            (b'}', _) => {
                depth -= 1;
                j += 1;
            }
            _ => j += 1,
        }
    }
    None
}

/// Expand the body of `${…}` (without the braces) onto `out`.
fn braced(
    body: &str,
    env: &BTreeMap<String, String>,
    depth: usize,
    out: &mut String,
) -> Result<(), String> {
    let b = body.as_bytes();
    let name_len = b.iter().take_while(|c| is_name_char(**c)).count();
    let (name, rest) = body.split_at(name_len);
    if name.is_empty() {
        return Err(format!(
            "`${{{}}}`: the variable name is missing",
            excerpt(body)
        ));
    }
    if !is_name_start(b[0]) {
        return Err(format!(
            "`${{{}}}`: `{}` is not a variable name ([A-Za-z_][A-Za-z0-9_]*)",
            excerpt(body),
            excerpt(name)
        ));
    }
    let (op, word) = ["-", "?", "+"]
        .iter()
        .flat_map(|op| [format!(":{op}"), (*op).to_owned()])
        .find_map(|op| rest.strip_prefix(op.as_str()).map(|w| (op, w)))
        .unwrap_or_else(|| (String::new(), rest));
    if op.is_empty() && !rest.is_empty() {
        return Err(format!(
            "`${{{}}}`: unknown syntax after the variable name (use `${{{name}}}`, `${{{name}:-default}}`, `${{{name}:?message}}` or `${{{name}:+alt}}`)",
            excerpt(body)
        ));
    }
    let value = env.get(name);
    let set = value.is_some();
    let non_empty = value.is_some_and(|v| !v.is_empty());
    let current = value.map_or("", String::as_str);
    match op.as_str() {
        "" => out.push_str(current),
        ":-" | "-" => {
            if (op == ":-" && non_empty) || (op == "-" && set) {
                out.push_str(current);
            } else {
                out.push_str(&expand(word, env, depth + 1)?);
            }
        }
        ":?" | "?" => {
            if (op == ":?" && non_empty) || (op == "?" && set) {
                out.push_str(current);
            } else {
                let message = expand(word, env, depth + 1)?;
                return Err(if message.is_empty() {
                    format!("required variable {name} is missing a value")
                } else {
                    format!("required variable {name} is missing a value: {message}")
                });
            }
        }
        _ => {
            // `:+` and `+`: the alternative when set (and not empty).
            if (op == ":+" && non_empty) || (op == "+" && set) {
                out.push_str(&expand(word, env, depth + 1)?);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) fn expand_for_test(s: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    expand(s, env, 0)
}
