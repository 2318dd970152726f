//! End-to-end tests of Deckhand on a real Docker daemon and registry.
//!
//! Start the environment with `eval "$(tests/env/up.sh)"` (or run
//! `scripts/test.sh`, which does it). A test that finds no daemon fails.
//! One module per topic.

mod harness;

mod api;
mod atomic;
mod chaos;
mod cli;
mod compensation;
mod crash;
mod daemon_away;
mod examples;
mod fixtures;
mod install;
mod interrupted;
mod memory;
mod midcall;
mod outage;
mod private_daemon;
mod sandbox;
mod slow_docker;
