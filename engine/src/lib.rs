//! Deckhand installs, upgrades and tears down containerized apps atomically.
//!
//! Workflows are sandboxed WebAssembly components (the `deckhand:workflow`
//! WIT world in `wit/`) that reach Docker only through host calls. Every call
//! that changes the world is written to a SQLite journal, with how to undo
//! it, before it happens; so a failure, a cancel or a crash ends in the job's
//! complete result or the exact state before it.
//!
//! The crate's modules follow the data flow, one concern each:
//!
//! - [`api`] — the HTTP job API (axum), with Server-Sent Events and OpenAPI;
//! - [`executor`] — job lifecycle: submit, run, commit, cancel, rollback, recovery;
//! - [`plugin`] — the wasmtime host: adapts WIT calls to the runtime and the journal;
//! - [`runtime`] — the container runtime (Docker through bollard) and pull progress;
//! - [`journal`] — the durable event log and its projections (knows no Docker, no WASM);
//! - [`steps`] — the typed calls, compensations and deferred effects the journal stores;
//! - [`ownership`] — the one rule for what the engine may stop, rename or remove;
//! - [`redact`] — secrets masked in everything shown or exported;
//! - [`cli`] — the `deckhand` command line;
//! - [`fault`] — fault injection for the crash tests (off unless asked for).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use deckhand::{executor::{Executor, JobRequest}, journal::Journal, plugin::{HostSettings, PluginHost}, runtime::DockerRuntime};
//!
//! let journal = Journal::open("data/journal.sqlite")?;
//! let runtime = Arc::new(DockerRuntime::connect()?);
//! let host = Arc::new(PluginHost::with_builtins(None)?);
//! let executor = Executor::new(journal, runtime, host, HostSettings::default());
//! executor.recover().await?;
//! let job = executor
//!     .submit(JobRequest::new("install", "web", serde_json::json!({"image": "nginx:1.27"})))
//!     .await?;
//! let done = executor.wait(&job.id).await?;
//! println!("{}", done.state);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod api;
pub mod cli;
pub mod executor;
pub mod fault;
pub mod journal;
pub mod ownership;
pub mod plugin;
pub mod redact;
pub mod replay;
pub mod runtime;
pub mod steps;
