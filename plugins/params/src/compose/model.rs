//! The Compose file as Deckhand reads it: strict serde structs (an unknown
//! key is an error that names its path) and the few shapes Compose allows
//! in more than one form (a string or a list, a list or a mapping, a short
//! string or a long mapping), each read by a visitor so that an error
//! inside keeps its path.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Condition;

/// The whole file (after interpolation, without its `x-` keys).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub services: BTreeMap<String, Mapping<ServiceDef>>,
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, Option<Mapping<Declared>>>>,
    #[serde(default)]
    pub networks: Option<BTreeMap<String, Option<Mapping<Declared>>>>,
    /// Obsolete in Compose; accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    pub version: Option<IgnoredAny>,
}

/// A top-level volume or network: `null` or `{external, name}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Declared {
    #[serde(default)]
    pub external: bool,
    pub name: Option<String>,
}

/// One service (without its `x-` keys).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServiceDef {
    pub image: Option<String>,
    pub command: Option<Words>,
    pub entrypoint: Option<Words>,
    pub environment: Option<ListOrMap<Option<Text>>>,
    pub ports: Option<Vec<PortItem>>,
    pub volumes: Option<Vec<VolumeItem>>,
    pub networks: Option<ListOrMap<Option<Mapping<NetworkAttach>>>>,
    pub depends_on: Option<ListOrMap<Option<Mapping<DependsOn>>>>,
    pub healthcheck: Option<Mapping<Healthcheck>>,
    pub restart: Option<String>,
    pub labels: Option<ListOrMap<Option<Text>>>,
    pub user: Option<Text>,
    pub working_dir: Option<String>,
    pub mem_limit: Option<Text>,
    pub cpus: Option<Text>,
    pub deploy: Option<Mapping<Deploy>>,
    pub stop_grace_period: Option<Text>,
}

/// Long-form port: `{target, published, host_ip, protocol, mode}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PortLong {
    pub target: Text,
    pub published: Option<Text>,
    pub host_ip: Option<String>,
    pub protocol: Option<String>,
    pub mode: Option<String>,
}

/// Long-form volume: `{type, source, target, read_only}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VolumeLong {
    #[serde(rename = "type")]
    pub kind: String,
    pub source: Option<String>,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

/// A service's settings on one network: `{aliases}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NetworkAttach {
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// Long-form dependency: `{condition, restart, required}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DependsOn {
    pub condition: Option<Condition>,
    /// Restart the dependent when this one restarts: Deckhand restarts
    /// nothing on its own, so it is accepted and has no effect.
    #[allow(dead_code)]
    pub restart: Option<bool>,
    pub required: Option<bool>,
}

/// `healthcheck`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Healthcheck {
    pub test: Option<Words>,
    pub interval: Option<Text>,
    pub timeout: Option<Text>,
    pub retries: Option<u32>,
    pub start_period: Option<Text>,
    pub disable: Option<bool>,
}

/// `deploy`: only `resources.limits.{memory, cpus}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Deploy {
    pub resources: Option<Mapping<Resources>>,
}

/// `deploy.resources`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Resources {
    pub limits: Option<Mapping<Limits>>,
}

/// `deploy.resources.limits`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Limits {
    pub memory: Option<Text>,
    pub cpus: Option<Text>,
}

/// What a model struct is, for the message when something else is given.
pub(super) trait Shape {
    const EXPECTING: &'static str;
}

macro_rules! shapes {
    ($($t:ty => $what:literal,)*) => {
        $(impl Shape for $t {
            const EXPECTING: &'static str = $what;
        })*
    };
}

shapes! {
    ServiceDef => "a service: a mapping with `image`",
    Declared => "null or a mapping with `external` and/or `name`",
    PortLong => "a port: `{target, published, host_ip, protocol, mode}`",
    VolumeLong => "a volume: `{type, source, target, read_only}`",
    NetworkAttach => "null or a mapping with `aliases`",
    DependsOn => "a mapping with `condition` (and optionally `restart`, `required`)",
    Healthcheck => "a mapping with `test`, `interval`, `timeout`, `retries`, `start_period` or `disable`",
    Deploy => "a mapping with `resources`",
    Resources => "a mapping with `limits`",
    Limits => "a mapping with `memory` and/or `cpus`",
}

/// A model struct, read from a mapping only: serde's derived structs also
/// take a list (fields by position), which Compose never means.
#[derive(Debug)]
pub(super) struct Mapping<T>(pub T);

impl<'de, T: Deserialize<'de> + Shape> Deserialize<'de> for Mapping<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Shape> Visitor<'de> for V<T> {
            type Value = Mapping<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(T::EXPECTING)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Mapping)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// A scalar read as text: a string, a number or a boolean (`PORT: 8080`,
/// `DEBUG: true`), as Compose reads scalars into strings.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                // As written in YAML (`1.0` stays `1.0`), as Compose does.
                Ok(Text(
                    serde_json::Number::from_f64(v)
                        .map_or_else(|| v.to_string(), |n| n.to_string()),
                ))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A command: one string (split as a shell would) or a list of words.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Words {
    /// `command: nginx -g "daemon off;"`
    Line(String),
    /// `command: ["nginx", "-g", "daemon off;"]`
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for Words {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Words;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Words, E> {
                Ok(Words::Line(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Words, A::Error> {
                let mut words = Vec::new();
                while let Some(Text(word)) = seq.next_element()? {
                    words.push(word);
                }
                Ok(Words::List(words))
            }
        }
        d.deserialize_any(V)
    }
}

/// Compose's "list or mapping": `["A=1", "B"]` or `{A: 1, B: null}`.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ListOrMap<T> {
    /// The list form, each item as written.
    List(Vec<String>),
    /// The mapping form, in key order.
    Map(Vec<(String, T)>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ListOrMap<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = ListOrMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list or a mapping")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(Text(item)) = seq.next_element()? {
                    items.push(item);
                }
                Ok(ListOrMap::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, T>()? {
                    entries.push(entry);
                }
                Ok(ListOrMap::Map(entries))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// One of a service's `ports`: short (`"8080:80"`, `80`) or long.
#[derive(Debug)]
pub(super) enum PortItem {
    Short(String),
    Long(PortLong),
}

impl<'de> Deserialize<'de> for PortItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PortItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a port: `[[IP:]HOST:]CONTAINER[/PROTO]`, a number, or `{target, published, host_ip, protocol}`",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortItem, E> {
                Ok(PortItem::Short(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortItem, E> {
                Ok(PortItem::Short(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortItem, E> {
                Ok(PortItem::Short(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PortItem, A::Error> {
                PortLong::deserialize(MapAccessDeserializer::new(map)).map(PortItem::Long)
            }
        }
        d.deserialize_any(V)
    }
}

/// One of a service's `volumes`: short (`"data:/var/lib/x:ro"`) or long.
#[derive(Debug)]
pub(super) enum VolumeItem {
    Short(String),
    Long(VolumeLong),
}

impl<'de> Deserialize<'de> for VolumeItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = VolumeItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a volume: `SOURCE:TARGET[:ro]` or `{type, source, target, read_only}`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<VolumeItem, E> {
                Ok(VolumeItem::Short(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<VolumeItem, A::Error> {
                VolumeLong::deserialize(MapAccessDeserializer::new(map)).map(VolumeItem::Long)
            }
        }
        d.deserialize_any(V)
    }
}
