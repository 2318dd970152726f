//! Host side of `wasi:clocks`: time stands still inside a plugin.
//!
//! The wall clock and the monotonic clock always read zero, and a timer —
//! `monotonic-clock.subscribe-duration` / `subscribe-instant`, behind every
//! `sleep` and every poll timeout of a guest — is due at once. So a run
//! depends on nothing but the host's answers: a replay takes the same path
//! as the recorded run, and no guest can hold its job (or the cancel of it)
//! by sleeping. A plugin that has to wait for something asks the host, whose
//! waits (`wait-healthy`, pulls) are bounded and journaled; real time is
//! read only through the journaled `job.now-ms`.

use std::time::Duration;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use super::host_state::HostState;

/// A clock that always reads zero (the epoch).
pub(super) struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Replace WASI's `monotonic-clock` (linked before, with real timers) with
/// the frozen one.
pub(super) fn link_frozen_timers(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked =
        monotonic_clock::add_to_linker::<HostState, FrozenTimers>(linker, |s| FrozenTimersView {
            table: &mut s.table,
        });
    linker.allow_shadowing(false);
    linked
}

/// [`HasData`] for the frozen `monotonic-clock`.
struct FrozenTimers;

impl HasData for FrozenTimers {
    type Data<'a> = FrozenTimersView<'a>;
}

/// What the frozen `monotonic-clock` needs of the store: its resource table.
struct FrozenTimersView<'a> {
    table: &'a mut ResourceTable,
}

impl monotonic_clock::Host for FrozenTimersView<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(0)
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(1)
    }

    fn subscribe_instant(
        &mut self,
        _when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let due = self.table.push(Due { yielded: false })?;
        subscribe(self.table, due)
    }

    fn subscribe_duration(
        &mut self,
        _duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let due = self.table.push(Due { yielded: false })?;
        subscribe(self.table, due)
    }
}

/// A timer that is due at once. Its first poll yields to the runtime once,
/// as WASI's own zero-length timer does, so that a guest polling in a loop
/// cannot starve other tasks.
struct Due {
    yielded: bool,
}

#[async_trait::async_trait]
impl Pollable for Due {
    async fn ready(&mut self) {
        if !self.yielded {
            self.yielded = true;
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frozen_clocks_read_zero() {
        use wasmtime_wasi::{HostMonotonicClock, HostWallClock};
        assert_eq!(HostWallClock::now(&FrozenClock), Duration::ZERO);
        assert_eq!(HostMonotonicClock::now(&FrozenClock), 0);
    }
}
