//! Networks on the daemon: creating one, never two of one name (a lock
//! per name within this process, and the oldest kept when another client
//! created one meanwhile), inspecting one (stopped containers configured
//! for it included), and removing one only when no container is on it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bollard::errors::Error as BollardError;
use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::{ListContainersOptionsBuilder, ListNetworksOptionsBuilder};

use super::DockerRuntime;
use crate::runtime::{NetworkState, Result, RuntimeError};

/// A filter value matching exactly `name` (Docker's name filters are
/// regular expressions matched anywhere in the name).
fn exact_name_filter(name: &str) -> String {
    let mut pattern = String::from("^");
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' && c != '-' {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('$');
    pattern
}

/// A network's creation time (RFC 3339, as the daemon writes it, with
/// 0–9 fraction digits and a zone) as nanoseconds since the epoch, to find
/// the oldest of several: the text itself does not sort (`.1Z` > `.12Z`).
fn created_ns(created: &str) -> Option<i128> {
    let b = created.as_bytes();
    let num = |from: usize, to: usize| -> Option<i64> { created.get(from..to)?.parse().ok() };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &created[start..i];
        let kept = &digits[..digits.len().min(9)];
        nanos = kept.parse::<i64>().ok()? * 10i64.pow(9 - kept.len() as u32);
    }
    let offset_s = match created.get(i..)? {
        "Z" | "z" => 0,
        zone => {
            let sign = match zone.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let h: i64 = zone.get(1..3)?.parse().ok()?;
            let m: i64 = zone.get(4..6)?.parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

/// The networks named exactly `name`, oldest first.
async fn networks_named(rt: &DockerRuntime, name: &str) -> Result<Vec<bollard::models::Network>> {
    let filters = HashMap::from([("name", vec![exact_name_filter(name)])]);
    let options = ListNetworksOptionsBuilder::default()
        .filters(&filters)
        .build();
    let mut found: Vec<_> = rt
        .docker
        .list_networks(Some(options))
        .await
        .map_err(|e| rt.map_err(&format!("list networks named {name}"), e))?
        .into_iter()
        .filter(|n| n.name.as_deref() == Some(name))
        .collect();
    found.sort_by_key(|n| {
        (
            n.created
                .as_deref()
                .and_then(created_ns)
                .unwrap_or(i128::MAX),
            n.id.clone(),
        )
    });
    Ok(found)
}

/// The per-name creation lock for `name`.
fn network_lock(rt: &DockerRuntime, name: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut locks = rt.network_locks.lock().expect("network locks");
    locks.entry(name.to_owned()).or_default().clone()
}

/// Forget `name`'s lock once no call holds or waits for it.
fn release_network_lock(rt: &DockerRuntime, name: &str, lock: Arc<tokio::sync::Mutex<()>>) {
    let mut locks = rt.network_locks.lock().expect("network locks");
    drop(lock);
    if locks.get(name).is_some_and(|l| Arc::strong_count(l) == 1) {
        locks.remove(name);
    }
}

async fn create_locked(
    rt: &DockerRuntime,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<NetworkState> {
    if let Some(existing) = networks_named(rt, name).await?.first() {
        let id = existing.id.clone().unwrap_or_default();
        return inspect(rt, &id).await?.ok_or_else(|| {
            RuntimeError::NotFound(format!("network {name} ({id}) vanished while used"))
        });
    }
    let request = NetworkCreateRequest {
        name: name.to_owned(),
        driver: Some("bridge".into()),
        labels: Some(labels.clone().into_iter().collect()),
        ..Default::default()
    };
    let created = rt
        .docker
        .create_network(request)
        .await
        .map_err(|e| rt.map_err(&format!("create network {name}"), e))?;
    // Another client (another engine, the CLI) may have created one of
    // the same name meanwhile: every creator keeps the oldest and
    // removes its own if it is not that one, so they all agree. (Within
    // this process the per-name lock makes it exact; across processes a
    // create still in flight when this lists can slip by: the daemon
    // offers nothing atomic.)
    let same = networks_named(rt, name).await?;
    let oldest = same.first().and_then(|n| n.id.clone());
    match oldest {
        Some(oldest) if oldest != created.id => {
            match rt.docker.remove_network(&created.id).await {
                Ok(())
                | Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(e) => {
                    return Err(rt.map_err(
                        &format!("remove duplicate network {name} ({})", created.id),
                        e,
                    ));
                }
            }
            inspect(rt, &oldest).await?.ok_or_else(|| {
                RuntimeError::NotFound(format!("network {name} ({oldest}) vanished while used"))
            })
        }
        _ => Ok(NetworkState {
            id: created.id,
            name: name.to_owned(),
            labels: labels.clone(),
            containers: Vec::new(),
        }),
    }
}

/// [`ContainerRuntime::create_network`](crate::runtime::ContainerRuntime::create_network).
pub(super) async fn create(
    rt: &DockerRuntime,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<NetworkState> {
    let lock = network_lock(rt, name);
    let result = {
        let _held = lock.lock().await;
        create_locked(rt, name, labels).await
    };
    release_network_lock(rt, name, lock);
    result
}

/// [`ContainerRuntime::inspect_network`](crate::runtime::ContainerRuntime::inspect_network).
pub(super) async fn inspect(rt: &DockerRuntime, name_or_id: &str) -> Result<Option<NetworkState>> {
    let network = match rt.docker.inspect_network(name_or_id, None).await {
        Ok(n) => n,
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => return Ok(None),
        Err(e) => return Err(rt.map_err(&format!("inspect network {name_or_id}"), e)),
    };
    let id = network.id.unwrap_or_default();
    let name = network.name.unwrap_or_default();
    // The network lists only running endpoints; a stopped container
    // configured for it counts too (it could not start without it).
    // By name and by id: a container that never started knows its
    // networks by name only (no network id yet), the daemon's filter
    // matches either.
    let filters = HashMap::from([("network", vec![id.clone(), name.clone()])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let listed = rt
        .docker
        .list_containers(Some(options))
        .await
        .map_err(|e| rt.map_err(&format!("list containers on network {name_or_id}"), e))?;
    let mut containers: Vec<String> = listed.into_iter().filter_map(|c| c.id).collect();
    containers.extend(network.containers.unwrap_or_default().into_keys());
    containers.sort();
    containers.dedup();
    Ok(Some(NetworkState {
        id,
        name,
        labels: network.labels.unwrap_or_default().into_iter().collect(),
        containers,
    }))
}

/// [`ContainerRuntime::remove_network`](crate::runtime::ContainerRuntime::remove_network).
pub(super) async fn remove(rt: &DockerRuntime, name_or_id: &str) -> Result<()> {
    let Some(network) = inspect(rt, name_or_id).await? else {
        return Ok(());
    };
    if !network.containers.is_empty() {
        let short: Vec<&str> = network
            .containers
            .iter()
            .map(|id| &id[..id.len().min(12)])
            .collect();
        return Err(RuntimeError::Conflict(format!(
            "network {} is in use by container(s) {}",
            network.name,
            short.join(", ")
        )));
    }
    match rt.docker.remove_network(&network.id).await {
        Ok(())
        | Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        // "has active endpoints": a container joined since the check.
        Err(BollardError::DockerResponseServerError {
            status_code: 403,
            message,
        }) => Err(RuntimeError::Conflict(format!(
            "network {}: {message}",
            network.name
        ))),
        Err(e) => Err(rt.map_err(&format!("remove network {}", network.name), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_filters_match_exactly() {
        assert_eq!(exact_name_filter("appnet"), "^appnet$");
        assert_eq!(exact_name_filter("a.b-c_d"), "^a\\.b-c_d$");
    }

    #[test]
    fn creation_times_compare_as_times_not_text() {
        let a = created_ns("2026-12-02T10:11:12.1Z").unwrap();
        let b = created_ns("2026-12-02T10:11:12.12Z").unwrap();
        assert!(a < b);
        assert_eq!(
            created_ns("2026-12-02T11:11:12.1+01:00"),
            Some(a),
            "zones are applied"
        );
        assert_eq!(created_ns("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(created_ns("1970-01-01T00:00:00.000000001Z"), Some(1));
        assert!(created_ns("2024-02-29T00:00:00Z") < created_ns("2024-03-01T00:00:00Z"));
        assert_eq!(created_ns("yesterday"), None);
    }
}
