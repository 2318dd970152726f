//! End-to-end tests of Deckhand on a real Docker daemon and registry (the
//! tests that need no Docker are the `fast` binary, `tests/fast/`).
//!
//! Start the environment with `eval "$(tests/env/up.sh)"` (or run
//! `scripts/test.sh`, which does it). A test that finds no daemon fails.
//! One module per topic.

// Shared with the `fast` binary; each uses part of it.
#[allow(dead_code)]
mod harness;

mod api;
mod atomic;
mod chaos;
mod cli;
mod compensation;
mod crash;
mod evidence;
mod examples;
mod hostile;
mod install;
mod interrupted;
mod midcall;
mod openapi;
mod outage;
mod private_daemon;
mod real_apps;
mod runtime_real_apps;
mod slow_docker;
mod stacks;
