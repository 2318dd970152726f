//! Tests of the engine that need no Docker: the executor, the plugin host
//! and the journal on the in-memory runtime (faults injected at will), the
//! hostile-plugin suite, and the recorded journal fixtures. They run in
//! seconds: `cargo test --test fast`. The tests on a real daemon are the
//! `e2e` binary.

// Shared with the `e2e` binary; each uses part of it.
#[path = "../e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

mod daemon_away;
mod evidence;
mod fixtures;
mod interrupted;
mod memory;
mod real_apps;
mod sandbox;
mod secrets;
mod shutdown;
mod stacks;
mod worlds;
