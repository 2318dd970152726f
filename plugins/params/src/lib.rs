//! The params contract of Deckhand's built-in workflows, in one place: the
//! plugins read their params with these types (re-exported by
//! `deckhand-sdk`) and turn its strings into structures with its parsers
//! ([`parse_port`], [`parse_volume`], [`parse_restart`], [`parse_memory`],
//! [`cpus_to_nano`], or the [`Spec`] methods that return the parsed lists);
//! the engine checks a job's params with [`check`] before the job exists, so
//! that what it accepts is exactly what the plugins can read.
//!
//! | workflow | params |
//! | --- | --- |
//! | `install` | [`Spec`] with `image` |
//! | `upgrade` | [`Spec`]; unset fields keep the current revision's ([`Spec::over`]) |
//! | `install`/`upgrade` of a stack | [`StackParams`] (`{compose, env?, snapshot_volumes?, health_timeout_s?}`): a Compose file read by [`parse_compose`] into a [`Stack`] ([`is_stack_params`], [`check_stack_params`]) |
//! | `teardown` | [`Teardown`] (`{remove_volumes?}`) |
//! | `rollback` | [`Rollback`] (`{revision}`) |
//!
//! [`Spec`] fields (all optional; `install` needs `image`):
//!
//! | field | syntax | example |
//! | --- | --- | --- |
//! | `image` | Docker reference | `"nginx:1.27"` |
//! | `env` | `{K: V}` | `{"TZ": "UTC"}` |
//! | `cmd`, `entrypoint` | `[..]` | `["nginx", "-g", "daemon off;"]` |
//! | `user` | `name\|uid[:group\|gid]` | `"1000:1000"` |
//! | `workdir` | absolute path | `"/srv"` |
//! | `ports` | `[[IP:][HOST]:]CONTAINER[/tcp\|udp\|sctp]` | `["127.0.0.1:8080:80", "53:53/udp", "80"]` |
//! | `volumes` | `NAME:/path[:ro\|rw]`, `/host/path:/path[:ro\|rw]` | `["data:/var/lib/x", "/etc/app:/etc/app:ro"]` |
//! | `network` | network mode (`none`, `bridge`, `host`, …) | `"none"` |
//! | `networks` | names, or `{name, aliases}` | `["appnet", {"name": "back", "aliases": ["db"]}]` |
//! | `restart` | `no`, `on-failure[:N]`, `unless-stopped`, `always` | `"on-failure:3"` |
//! | `labels` | `{k: v}`, not under `io.deckhand.` | `{"team": "web"}` |
//! | `memory` | bytes, or `k`/`m`/`g`/`t` (binary), ≥ 6 MiB | `"256m"` |
//! | `cpus` | number > 0 (3 decimals) | `0.5` |
//! | `stop_timeout_s` | seconds | `20` |
//! | `health` | `{timeout_s, cmd, interval_s, probe_timeout_s, retries, start_period_s}` | `{"cmd": ["CMD-SHELL", "wget -qO- localhost"], "interval_s": 5}` |
//! | `snapshot_volumes` | bool (upgrade) | `true` |
//! | `strategy` | `stop-first` (default) \| `start-first` (upgrade) | `"start-first"` |
//!
//! Errors name the field path (`` `ports[1]`: port 70000 is out of range
//! 1–65535 ``). The parsers' own errors say only what is wrong; the
//! [`Spec`] methods and [`check`] add the path. Params are hostile input:
//! lists, maps and strings are bounded ([`MAX_PORTS`] and the others).
//!
//! Its tests are the engine's (`engine/src/executor/params.rs`), which
//! build it natively; the plugins build it for `wasm32-wasip2`.

#![deny(missing_docs)]

mod bounds;
mod compose;
mod health;
mod limits;
mod networks;
mod ports;
mod reference;
mod restart;
mod spec;
mod text;
mod volumes;
mod workflows;

pub use bounds::{
    MAX_ALIASES, MAX_ENV_VALUE_BYTES, MAX_LABELS, MAX_NAME_LEN, MAX_NETWORKS, MAX_PORTS,
    MAX_STRING_BYTES, MAX_VOLUMES,
};
pub use compose::{
    Condition, Dependency, MAX_COMPOSE_BYTES, MAX_SERVICES, Service, Stack, StackNetwork,
    StackParams, StackVolume, check_stack_params, compose_variables, is_stack_params,
    parse_compose,
};
pub use health::{Health, check_health_cmd};
pub use limits::{MAX_CPUS, MIN_MEMORY_BYTES, check_cpus, cpus_to_nano, parse_memory};
pub use networks::{NetworkSpec, check_alias, check_network_name, is_network_mode};
pub use ports::{PortSpec, parse_port};
pub use reference::check_reference;
pub use restart::{RestartPolicy, RestartSpec, parse_restart};
pub use spec::{Permissions, Spec, Strategy};
pub use text::{check_container_path, check_env_key, check_label_key, check_user};
pub use volumes::{
    VolumeSource, VolumeSpec, check_shared_volume_name, check_volume_name, parse_volume,
};
pub use workflows::{Rollback, Teardown, check};
