//! User-defined networks: a spec's [`NetworkSpec`] (a bare name or a name
//! with aliases, in JSON), the checks of a network's name and of an alias,
//! and [`is_network_mode`], which tells a network mode from a network.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::bounds::MAX_NAME_LEN;
use crate::text::docker_name_ok;

/// One user-defined network of a spec, with the container's aliases on it.
/// In JSON a bare name (`"appnet"`) or `{"name": "appnet", "aliases":
/// ["db"]}`; it is written back as a bare name when it has no aliases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    /// The network's name.
    pub name: String,
    /// DNS names the container answers to on it.
    pub aliases: Vec<String>,
}

impl Serialize for NetworkSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.aliases.is_empty() {
            s.serialize_str(&self.name)
        } else {
            #[derive(Serialize)]
            struct Full<'a> {
                name: &'a str,
                aliases: &'a [String],
            }
            Full {
                name: &self.name,
                aliases: &self.aliases,
            }
            .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for NetworkSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            name: String,
            #[serde(default)]
            aliases: Vec<String>,
        }
        // Through a `Value`, so that a wrong shape gets a message saying
        // both forms rather than serde's "did not match any variant".
        match Value::deserialize(d)? {
            Value::String(name) => Ok(NetworkSpec {
                name,
                aliases: Vec::new(),
            }),
            v @ Value::Object(_) => {
                let full = Full::deserialize(v).map_err(D::Error::custom)?;
                Ok(NetworkSpec {
                    name: full.name,
                    aliases: full.aliases,
                })
            }
            _ => Err(D::Error::custom(
                "a network is a name or {\"name\": …, \"aliases\": […]}",
            )),
        }
    }
}

/// Whether `network` is a network mode (`none`, `host`, `bridge`,
/// `default`, `container:…`) rather than a user-defined network's name.
pub fn is_network_mode(network: &str) -> bool {
    matches!(network, "none" | "host" | "bridge" | "default") || network.starts_with("container:")
}

/// A user-defined network's name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 64,
/// and not one of Docker's predefined networks (`host` there would share
/// the host's stack, bypassing the `network` mode check).
pub fn check_network_name(name: &str) -> Result<(), String> {
    if is_network_mode(name) {
        Err(format!(
            "`{name}` is a network mode, not a user-defined network: use `network`"
        ))
    } else if docker_name_ok(name) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a network name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most {MAX_NAME_LEN} characters)",
            name.chars().take(80).collect::<String>()
        ))
    }
}

/// A network alias: a DNS label (letters, digits and inner dashes, 1–63).
pub fn check_alias(alias: &str) -> Result<(), String> {
    let b = alias.as_bytes();
    let ok = (1..=63).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a DNS label (letters, digits and inner `-`, at most 63)",
            alias.chars().take(80).collect::<String>()
        ))
    }
}
