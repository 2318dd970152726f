//! From the Compose model to the stack: each service's [`Spec`], its
//! dependencies, and the stack's volumes and networks, every value checked
//! where it is written (errors name the Compose path, not the spec's).

use std::collections::{BTreeMap, BTreeSet};

use super::duration::duration_secs;
use super::model::{
    Declared, Healthcheck, ListOrMap, Mapping, PortItem, PortLong, ServiceDef, Text, VolumeItem,
    VolumeLong, Words,
};
use super::{Condition, DEFAULT_NETWORK, Dependency, Service, StackNetwork, StackVolume};
use crate::bounds::{MAX_NETWORKS, MAX_VOLUMES, bounded};
use crate::{
    Health, NetworkSpec, Permissions, Spec, check_alias, check_container_path, check_cpus,
    check_env_key, check_health_cmd, check_label_key, check_network_name, check_reference,
    check_shared_volume_name, check_user, check_volume_name, cpus_to_nano, is_network_mode,
    parse_memory, parse_port, parse_restart, parse_volume,
};

/// A key as it may be shown in a message: escaped, at most 64 characters.
pub(super) fn shown(key: &str) -> String {
    let short: String = key.chars().take(64).collect();
    let more = if short.len() < key.len() { "…" } else { "" };
    format!("{}{more}", short.escape_debug())
}

/// The top-level `volumes`, sorted by key.
pub(super) fn volumes(
    defs: Option<BTreeMap<String, Option<Mapping<Declared>>>>,
) -> Result<Vec<StackVolume>, String> {
    let defs = defs.unwrap_or_default();
    bounded("volumes", defs.len(), MAX_VOLUMES, "volumes")?;
    let mut out = Vec::new();
    for (key, def) in defs {
        let at = format!("volumes.{}", shown(&key));
        check_volume_name(&key).map_err(|e| format!("`{at}`: {e}"))?;
        let def = def.map(|m| m.0).unwrap_or_default();
        if let Some(name) = &def.name {
            check_shared_volume_name(name).map_err(|e| format!("`{at}.name`: {e}"))?;
        } else if def.external {
            check_shared_volume_name(&key).map_err(|e| format!("`{at}`: {e}"))?;
        }
        let docker_name = def.name.or_else(|| def.external.then(|| key.clone()));
        out.push(StackVolume {
            name: key,
            external: def.external,
            docker_name,
        });
    }
    Ok(out)
}

/// The top-level `networks`, sorted by key. `default` may be declared
/// (to make it external, or name it); other keys are network names.
pub(super) fn networks(
    defs: Option<BTreeMap<String, Option<Mapping<Declared>>>>,
) -> Result<Vec<StackNetwork>, String> {
    let defs = defs.unwrap_or_default();
    bounded("networks", defs.len(), MAX_NETWORKS, "networks")?;
    let mut out = Vec::new();
    for (key, def) in defs {
        let at = format!("networks.{}", shown(&key));
        if key != DEFAULT_NETWORK && is_network_mode(&key) {
            return Err(format!(
                "`{at}`: `{key}` is one of Docker's predefined networks, not one a stack can declare (network modes are not supported)"
            ));
        }
        if key != DEFAULT_NETWORK {
            check_network_name(&key).map_err(|e| format!("`{at}`: {e}"))?;
        }
        let def = def.map(|m| m.0).unwrap_or_default();
        if let Some(name) = &def.name {
            check_network_name(name).map_err(|e| format!("`{at}.name`: {e}"))?;
        }
        let docker_name = def.name.or_else(|| def.external.then(|| key.clone()));
        out.push(StackNetwork {
            name: key,
            external: def.external,
            docker_name,
        });
    }
    Ok(out)
}

/// A service's name: it becomes part of a container's name and is the
/// service's DNS name on the stack's networks.
pub(super) fn check_service_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = (1..=63).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.-".contains(c));
    if !ok {
        return Err(format!(
            "`services.{}`: a service name is 1–63 lowercase letters, digits, `_`, `.` and `-`, starting with a letter or digit (it becomes the container name `deckhand-<target>-<service>`)",
            shown(name)
        ));
    }
    // Every service joins a network with its name as an alias.
    check_alias(name).map_err(|_| {
        format!(
            "`services.{name}`: other services reach a service by its name, so it must be a DNS label: letters, digits and inner `-` (no `_` or `.`)"
        )
    })
}

/// What a service may refer to, and what it is given.
pub(super) struct Context<'a> {
    pub env: &'a BTreeMap<String, String>,
    pub allow: &'a Permissions,
    pub volumes: BTreeSet<&'a str>,
    pub networks: BTreeSet<&'a str>,
    pub services: BTreeSet<&'a str>,
}

/// One service, translated and checked.
pub(super) fn service(name: &str, def: ServiceDef, cx: &Context) -> Result<Service, String> {
    let at = |field: &str| format!("services.{name}.{field}");
    let image = def.image.ok_or_else(|| {
        format!(
            "`{}`: required (Deckhand runs images from a registry; `build` is not supported)",
            at("image")
        )
    })?;
    check_reference(&image).map_err(|e| format!("`{}`: {e}", at("image")))?;
    let mut spec = Spec {
        image: Some(image),
        ..Spec::default()
    };
    spec.cmd = def.command.map(|w| words(w, &at("command"))).transpose()?;
    spec.entrypoint = def
        .entrypoint
        .map(|w| words(w, &at("entrypoint")))
        .transpose()?
        // An empty entrypoint resets the image's, which a spec says `[""]`.
        .map(|e| if e.is_empty() { vec![String::new()] } else { e });
    if let Some(environment) = def.environment {
        spec.env = Some(environment_map(environment, cx.env, &at("environment"))?);
    }
    if let Some(ports) = def.ports {
        let mut out = Vec::with_capacity(ports.len());
        for (i, port) in ports.into_iter().enumerate() {
            out.push(service_port(port, &at(&format!("ports[{i}]")))?);
        }
        spec.ports = Some(out);
    }
    if let Some(volumes) = def.volumes {
        let mut out = Vec::with_capacity(volumes.len());
        for (i, volume) in volumes.into_iter().enumerate() {
            out.push(service_volume(volume, &at(&format!("volumes[{i}]")), cx)?);
        }
        spec.volumes = Some(out);
    }
    spec.networks = Some(service_networks(name, def.networks, cx)?);
    if let Some(restart) = def.restart {
        parse_restart(&restart).map_err(|e| format!("`{}`: {e}", at("restart")))?;
        spec.restart = Some(restart);
    }
    if let Some(labels) = def.labels {
        spec.labels = Some(label_map(labels, &at("labels"))?);
    }
    if let Some(Text(user)) = def.user {
        check_user(&user).map_err(|e| format!("`{}`: {e}", at("user")))?;
        spec.user = Some(user);
    }
    if let Some(dir) = def.working_dir {
        check_container_path(&dir).map_err(|e| format!("`{}`: {e}", at("working_dir")))?;
        spec.workdir = Some(dir);
    }
    let limits = def
        .deploy
        .and_then(|d| d.0.resources)
        .and_then(|r| r.0.limits);
    let (deploy_memory, deploy_cpus) = match limits {
        Some(Mapping(l)) => (l.memory, l.cpus),
        None => (None, None),
    };
    spec.memory = memory(
        def.mem_limit,
        deploy_memory,
        &at("mem_limit"),
        &at("deploy.resources.limits.memory"),
    )?;
    spec.cpus = cpus(
        def.cpus,
        deploy_cpus,
        &at("cpus"),
        &at("deploy.resources.limits.cpus"),
    )?;
    if let Some(Text(period)) = def.stop_grace_period {
        let at = at("stop_grace_period");
        let secs = duration_secs(&period).map_err(|e| format!("`{at}`: {e}"))?;
        spec.stop_timeout_s = Some(secs as u32);
    }
    if let Some(Mapping(check)) = def.healthcheck {
        spec.health = health(check, &at("healthcheck"))?;
    }
    let depends_on = dependencies(name, def.depends_on, cx)?;
    validate(name, &spec, cx.allow)?;
    Ok(Service {
        name: name.to_owned(),
        spec,
        depends_on,
    })
}

/// `command` / `entrypoint`: a string is split as a shell would.
fn words(w: Words, at: &str) -> Result<Vec<String>, String> {
    match w {
        Words::List(list) => Ok(list),
        Words::Line(line) => shlex::split(&line).ok_or_else(|| {
            format!(
                "`{at}`: cannot be split into words (an unclosed quote or a trailing `\\`?); give a list instead"
            )
        }),
    }
}

/// `environment`, in either form; a variable without a value takes the
/// params' `env` value of the same name, or is left out.
fn environment_map(
    environment: ListOrMap<Option<Text>>,
    env: &BTreeMap<String, String>,
    at: &str,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut put = |key: String, value: Option<String>, at: String| -> Result<(), String> {
        check_env_key(&key).map_err(|e| format!("`{at}`: {e}"))?;
        match value.or_else(|| env.get(&key).cloned()) {
            Some(v) => {
                out.insert(key, v);
            }
            None => {
                out.remove(&key);
            }
        }
        Ok(())
    };
    match environment {
        ListOrMap::List(items) => {
            for (i, item) in items.into_iter().enumerate() {
                let (key, value) = match item.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                    None => (item, None),
                };
                put(key, value, format!("{at}[{i}]"))?;
            }
        }
        ListOrMap::Map(entries) => {
            for (key, value) in entries {
                let here = format!("{at}.{}", shown(&key));
                put(key, value.map(|t| t.0), here)?;
            }
        }
    }
    Ok(out)
}

/// `labels`, in either form; a label without a value is empty.
fn label_map(
    labels: ListOrMap<Option<Text>>,
    at: &str,
) -> Result<BTreeMap<String, String>, String> {
    let entries: Vec<(String, String, String)> = match labels {
        ListOrMap::List(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                (k.to_owned(), v.to_owned(), format!("{at}[{i}]"))
            })
            .collect(),
        ListOrMap::Map(entries) => entries
            .into_iter()
            .map(|(k, v)| {
                let here = format!("{at}.{}", shown(&k));
                (k, v.map(|t| t.0).unwrap_or_default(), here)
            })
            .collect(),
    };
    let mut out = BTreeMap::new();
    for (key, value, here) in entries {
        check_label_key(&key).map_err(|e| format!("`{here}`: {e}"))?;
        out.insert(key, value);
    }
    Ok(out)
}

/// One port, as `docker run -p` syntax: a short one as written, a long one
/// written short.
fn service_port(port: PortItem, at: &str) -> Result<String, String> {
    let short = match port {
        PortItem::Short(s) => s,
        PortItem::Long(long) => long_port(long, at)?,
    };
    parse_port(&short).map_err(|e| format!("`{at}`: {e}"))?;
    Ok(short)
}

fn long_port(long: PortLong, at: &str) -> Result<String, String> {
    if let Some(mode) = &long.mode
        && !matches!(mode.as_str(), "ingress" | "host")
    {
        return Err(format!(
            "`{at}.mode`: `{}` is not `ingress` or `host`",
            shown(mode)
        ));
    }
    let mut s = String::new();
    if let Some(ip) = &long.host_ip {
        if ip.contains(':') && !ip.starts_with('[') {
            s.push_str(&format!("[{ip}]:"));
        } else {
            s.push_str(&format!("{ip}:"));
        }
    }
    match &long.published {
        Some(Text(p)) => s.push_str(&format!("{p}:")),
        None if long.host_ip.is_some() => s.push(':'),
        None => {}
    }
    s.push_str(&long.target.0);
    if let Some(proto) = &long.protocol {
        s.push_str(&format!("/{proto}"));
    }
    Ok(s)
}

/// One volume, as `docker run -v` syntax, with the Compose volume's key as
/// its name: `data:/var/lib/x:ro`.
fn service_volume(volume: VolumeItem, at: &str, cx: &Context) -> Result<String, String> {
    let short = match volume {
        VolumeItem::Short(s) => s,
        VolumeItem::Long(long) => long_volume(long, at)?,
    };
    let Some((source, _)) = short.split_once(':') else {
        return Err(format!(
            "`{at}`: anonymous volumes are not supported: name the volume (`data:{}`) and declare it in the top-level `volumes`",
            shown(&short)
        ));
    };
    if source.starts_with(['.', '~']) {
        return Err(format!(
            "`{at}`: `{}` is a relative path: relative paths need files on the server, which Deckhand does not read; use a named volume",
            shown(source)
        ));
    }
    if source.starts_with('/') {
        if !cx.allow.bind_mounts {
            return Err(format!(
                "`{at}`: bind mounts (host paths) are not allowed on this server; it must be started with `--allow-bind-mounts` (or DECKHAND_ALLOW_BIND_MOUNTS=1)"
            ));
        }
    } else if !source.is_empty() && !source.contains('/') && !cx.volumes.contains(source) {
        return Err(format!(
            "`{at}`: volume `{}` is not declared in the top-level `volumes`",
            shown(source)
        ));
    }
    parse_volume(&short).map_err(|e| format!("`{at}`: {e}"))?;
    Ok(short)
}

fn long_volume(long: VolumeLong, at: &str) -> Result<String, String> {
    match long.kind.as_str() {
        "volume" | "bind" => {}
        other => {
            return Err(format!(
                "`{at}.type`: `{}` is not supported (use `volume` or `bind`)",
                shown(other)
            ));
        }
    }
    let Some(source) = long.source.filter(|s| !s.is_empty()) else {
        return Err(if long.kind == "volume" {
            format!(
                "`{at}.source`: required: anonymous volumes are not supported; name the volume and declare it in the top-level `volumes`"
            )
        } else {
            format!("`{at}.source`: required: the host path to mount")
        });
    };
    match (long.kind.as_str(), source.starts_with('/')) {
        ("volume", true) => {
            return Err(format!(
                "`{at}.source`: a `volume` source is a volume's name, not a path (use `type: bind` for a host path)"
            ));
        }
        ("bind", false) if !source.starts_with(['.', '~']) => {
            return Err(format!(
                "`{at}.source`: a `bind` source is an absolute host path"
            ));
        }
        _ => {}
    }
    let ro = if long.read_only { ":ro" } else { "" };
    Ok(format!("{source}:{}{ro}", long.target))
}

/// The service's networks: those listed, or `default`; the service's name
/// is always its first alias (as in Compose).
fn service_networks(
    name: &str,
    networks: Option<ListOrMap<Option<Mapping<super::model::NetworkAttach>>>>,
    cx: &Context,
) -> Result<Vec<NetworkSpec>, String> {
    let at = format!("services.{name}.networks");
    let attached: Vec<(String, Vec<String>, String)> = match networks {
        None => Vec::new(),
        Some(ListOrMap::List(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, key)| (key, Vec::new(), format!("{at}[{i}]")))
            .collect(),
        Some(ListOrMap::Map(entries)) => entries
            .into_iter()
            .map(|(key, attach)| {
                let here = format!("{at}.{}", shown(&key));
                (key, attach.map(|a| a.0.aliases).unwrap_or_default(), here)
            })
            .collect(),
    };
    let attached = if attached.is_empty() {
        vec![(DEFAULT_NETWORK.to_owned(), Vec::new(), at.clone())]
    } else {
        attached
    };
    let mut out: Vec<NetworkSpec> = Vec::with_capacity(attached.len());
    for (key, given, here) in attached {
        if key != DEFAULT_NETWORK && !cx.networks.contains(key.as_str()) {
            return Err(format!(
                "`{here}`: network `{}` is not declared in the top-level `networks`",
                shown(&key)
            ));
        }
        if out.iter().any(|n| n.name == key) {
            return Err(format!(
                "`{here}`: network `{}` is listed twice",
                shown(&key)
            ));
        }
        let mut aliases = vec![name.to_owned()];
        for (i, alias) in given.into_iter().enumerate() {
            check_alias(&alias).map_err(|e| format!("`{here}.aliases[{i}]`: {e}"))?;
            if !aliases.contains(&alias) {
                aliases.push(alias);
            }
        }
        out.push(NetworkSpec { name: key, aliases });
    }
    Ok(out)
}

/// A memory limit from `mem_limit` and/or `deploy.resources.limits.memory`
/// (which must then agree).
fn memory(
    mem_limit: Option<Text>,
    deploy: Option<Text>,
    at: &str,
    deploy_at: &str,
) -> Result<Option<String>, String> {
    let read = |t: &Text, at: &str| parse_memory(&t.0).map_err(|e| format!("`{at}`: {e}"));
    match (mem_limit, deploy) {
        (None, None) => Ok(None),
        (Some(m), None) => read(&m, at).map(|_| Some(m.0)),
        (None, Some(d)) => read(&d, deploy_at).map(|_| Some(d.0)),
        (Some(m), Some(d)) => {
            if read(&m, at)? != read(&d, deploy_at)? {
                return Err(format!(
                    "`{deploy_at}`: `{}` disagrees with `mem_limit` (`{}`): give one of them",
                    d.0, m.0
                ));
            }
            Ok(Some(m.0))
        }
    }
}

/// A CPU limit from `cpus` and/or `deploy.resources.limits.cpus` (which
/// must then agree).
fn cpus(
    cpus: Option<Text>,
    deploy: Option<Text>,
    at: &str,
    deploy_at: &str,
) -> Result<Option<f64>, String> {
    let read = |t: &Text, at: &str| -> Result<f64, String> {
        let n: f64 = t.0.trim().parse().map_err(|_| {
            format!(
                "`{at}`: `{}` is not a number of CPUs (e.g. 0.5)",
                shown(&t.0)
            )
        })?;
        check_cpus(n).map_err(|e| format!("`{at}`: {e}"))?;
        Ok(n)
    };
    match (cpus, deploy) {
        (None, None) => Ok(None),
        (Some(c), None) => read(&c, at).map(Some),
        (None, Some(d)) => read(&d, deploy_at).map(Some),
        (Some(c), Some(d)) => {
            let (c, d) = (read(&c, at)?, read(&d, deploy_at)?);
            if cpus_to_nano(c) != cpus_to_nano(d) {
                return Err(format!(
                    "`{deploy_at}`: {d} disagrees with `cpus` ({c}): give one of them"
                ));
            }
            Ok(Some(c))
        }
    }
}

/// `healthcheck`; durations in whole seconds, rounded up, at least 1.
fn health(check: Healthcheck, at: &str) -> Result<Option<Health>, String> {
    let secs = |d: Option<Text>, field: &str| -> Result<Option<u32>, String> {
        d.map(|Text(d)| {
            duration_secs(&d)
                .map(|s| s.max(1) as u32)
                .map_err(|e| format!("`{at}.{field}`: {e}"))
        })
        .transpose()
    };
    let test = check.test.map(|w| match w {
        Words::Line(line) => vec!["CMD-SHELL".to_owned(), line.trim_end().to_owned()],
        Words::List(list) => list,
    });
    let cmd = if check.disable == Some(true) {
        if test.as_ref().is_some_and(|t| t != &["NONE"]) {
            return Err(format!(
                "`{at}.disable`: cannot be used together with `test`: give one of them"
            ));
        }
        Some(vec!["NONE".to_owned()])
    } else {
        test
    };
    if let Some(cmd) = &cmd {
        check_health_cmd(cmd).map_err(|e| format!("`{at}.test`: {e}"))?;
    }
    let health = Health {
        timeout_s: None,
        cmd,
        interval_s: secs(check.interval, "interval")?,
        probe_timeout_s: secs(check.timeout, "timeout")?,
        retries: check.retries,
        start_period_s: secs(check.start_period, "start_period")?,
    };
    Ok((health != Health::default()).then_some(health))
}

/// `depends_on`, sorted by service; each must be a service of the file
/// (a `required: false` one that is not is left out, as in Compose).
fn dependencies(
    name: &str,
    depends_on: Option<ListOrMap<Option<Mapping<super::model::DependsOn>>>>,
    cx: &Context,
) -> Result<Vec<Dependency>, String> {
    let entries: Vec<(String, Condition, bool)> = match depends_on {
        None => Vec::new(),
        Some(ListOrMap::List(items)) => items
            .into_iter()
            .map(|s| (s, Condition::Started, true))
            .collect(),
        Some(ListOrMap::Map(entries)) => entries
            .into_iter()
            .map(|(s, d)| {
                let (condition, required) = d
                    .map(|Mapping(d)| (d.condition, d.required))
                    .unwrap_or_default();
                (
                    s,
                    condition.unwrap_or(Condition::Started),
                    required.unwrap_or(true),
                )
            })
            .collect(),
    };
    let mut out: Vec<Dependency> = Vec::new();
    for (service, condition, required) in entries {
        if !cx.services.contains(service.as_str()) {
            if !required {
                continue;
            }
            return Err(format!(
                "`services.{name}.depends_on.{}`: no service `{}`",
                shown(&service),
                shown(&service)
            ));
        }
        if !out.iter().any(|d| d.service == service) {
            out.push(Dependency { service, condition });
        }
    }
    out.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(out)
}

/// [`Spec::validate`] on the translated spec, its errors turned to the
/// Compose path. The `default` network is the stack's own (named by the
/// plugin); a stand-in name is checked in its place.
fn validate(name: &str, spec: &Spec, allow: &Permissions) -> Result<(), String> {
    let mut checked = spec.clone();
    if let Some(networks) = &mut checked.networks {
        let taken: Vec<String> = networks.iter().map(|n| n.name.clone()).collect();
        let stand_in = (0..)
            .map(|i| format!("stack-default-{i}"))
            .find(|n| !taken.contains(n))
            .expect("a free name");
        for n in networks.iter_mut().filter(|n| n.name == DEFAULT_NETWORK) {
            n.name = stand_in.clone();
        }
    }
    checked.validate(allow).map_err(|e| spec_error(name, &e))
}

/// A [`Spec`] error (`` `ports[1]`: … ``) as the service's Compose path.
fn spec_error(name: &str, e: &str) -> String {
    const FIELDS: [(&str, &str); 10] = [
        ("health.cmd", "healthcheck.test"),
        ("health.interval_s", "healthcheck.interval"),
        ("health.probe_timeout_s", "healthcheck.timeout"),
        ("health.start_period_s", "healthcheck.start_period"),
        ("health", "healthcheck"),
        ("env", "environment"),
        ("cmd", "command"),
        ("workdir", "working_dir"),
        ("memory", "mem_limit"),
        ("stop_timeout_s", "stop_grace_period"),
    ];
    if let Some((path, msg)) = e.strip_prefix('`').and_then(|r| r.split_once('`')) {
        let path = FIELDS
            .iter()
            .find_map(|(from, to)| {
                let rest = path.strip_prefix(from)?;
                (rest.is_empty() || rest.starts_with(['.', '['])).then(|| format!("{to}{rest}"))
            })
            .unwrap_or_else(|| path.to_owned());
        let path = path.trim_start_matches('.');
        if path.is_empty() {
            return format!("`services.{name}`{msg}");
        }
        return format!("`services.{name}.{path}`{msg}");
    }
    format!("`services.{name}`: {e}")
}
