//! The order services start in: level by level — first every service that
//! depends on none, then every service whose dependencies are all in
//! earlier levels, … — and by name within a level, so that a service that
//! waits for nothing never waits behind another's health check; a
//! dependency cycle is an error that shows the cycle. And the dependency
//! levels ([`layers`]).

use std::collections::{BTreeMap, BTreeSet};

use super::Service;

/// `services` (sorted by name, every dependency one of them) in start order.
pub(super) fn start_order(services: Vec<Service>) -> Result<Vec<Service>, String> {
    let index: BTreeMap<&str, usize> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let deps: Vec<BTreeSet<usize>> = services
        .iter()
        .map(|s| {
            s.depends_on
                .iter()
                .filter_map(|d| index.get(d.service.as_str()).copied())
                .collect()
        })
        .collect();
    let mut waiting: Vec<usize> = deps.iter().map(BTreeSet::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); services.len()];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    // Indices follow names, so a level in index order is in name order.
    let mut level: BTreeSet<usize> = (0..services.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(services.len());
    while !level.is_empty() {
        let mut next = BTreeSet::new();
        for i in level {
            order.push(i);
            for &j in &dependents[i] {
                waiting[j] -= 1;
                if waiting[j] == 0 {
                    next.insert(j);
                }
            }
        }
        level = next;
    }
    if order.len() < services.len() {
        let started: BTreeSet<usize> = order.iter().copied().collect();
        let cycle = find_cycle(&deps, &started);
        let names: Vec<&str> = cycle.iter().map(|&i| services[i].name.as_str()).collect();
        return Err(format!(
            "`services`: dependency cycle {}",
            names.join(" -> ")
        ));
    }
    let mut slots: Vec<Option<Service>> = services.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .map(|i| slots[i].take().expect("each service once"))
        .collect())
}

/// A cycle among the services that could not start: from the first of
/// them by name, follow the first unstarted dependency until a service
/// comes back; the cycle is written from that service back to itself.
fn find_cycle(deps: &[BTreeSet<usize>], started: &BTreeSet<usize>) -> Vec<usize> {
    let mut path: Vec<usize> = Vec::new();
    let mut current = (0..deps.len())
        .find(|i| !started.contains(i))
        .expect("a service that could not start");
    loop {
        if let Some(pos) = path.iter().position(|&p| p == current) {
            let mut cycle = path.split_off(pos);
            cycle.push(current);
            return cycle;
        }
        path.push(current);
        // Every service left waits on one that is left too.
        current = *deps[current]
            .iter()
            .find(|d| !started.contains(d))
            .expect("a waiting service has an unstarted dependency");
    }
}

/// `services` (in start order) grouped by dependency level: level 0 has
/// no dependencies, each later level depends only on earlier ones; each
/// level sorted by name. A dependency on a service not in the list (a
/// stored stack edited by hand) is ignored.
pub(super) fn layers(services: &[Service]) -> Vec<Vec<&str>> {
    let mut level: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out: Vec<Vec<&str>> = Vec::new();
    for s in services {
        let l = s
            .depends_on
            .iter()
            .filter_map(|d| level.get(d.service.as_str()).map(|l| l + 1))
            .max()
            .unwrap_or(0);
        level.insert(&s.name, l);
        if out.len() <= l {
            out.resize_with(l + 1, Vec::new);
        }
        out[l].push(&s.name);
    }
    for layer in &mut out {
        layer.sort_unstable();
    }
    out
}
