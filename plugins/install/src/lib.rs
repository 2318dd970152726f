//! The built-in `install` workflow.
//!
//! Params: the `deckhand-params` `Spec` (`image` required; ports, volumes,
//! networks, limits, health, …).
//! Steps: make its volumes and networks available → pull the image →
//! create `deckhand-<target>` → start it → wait until
//! it runs (and is healthy, when the image has a health check) → record the
//! revision. Each step is journaled by the host with its undo, so a failure
//! at any point leaves the target as it was.

use deckhand_sdk::{Spec, SpecExt, Workflow, container, export, job, stack, state};

struct Install;

impl Workflow for Install {
    fn describe() -> deckhand_sdk::PluginInfo {
        deckhand_sdk::info("install", "pull an image and run it as the target's container")
    }

    fn compensate(action: String, data: String) -> Result<(), String> {
        deckhand_sdk::no_compensations(&action, &data)
    }

    fn run() -> Result<String, String> {
        let target = job::target();
        if let Some(rev) = state::current_revision() {
            return Err(format!("target `{target}` is already installed (revision {}); use upgrade", rev.number));
        }
        if let Some(params) = stack::params()? {
            let record = stack::read(&params)?;
            let revision = stack::install(&record)?;
            let names: Vec<&str> = record.stack.services.iter().map(|s| s.name.as_str()).collect();
            return Ok(format!("installed the stack {} on `{target}` as revision {revision}", names.join(", ")));
        }
        let spec: Spec = deckhand_sdk::params()?;
        let image = spec.require_image()?.to_owned();

        let prepared = deckhand_sdk::prepare(&spec)?;
        container::pull_image(&image)?;
        let id = container::create_container(&spec.container_on(deckhand_sdk::live_name(&target), &prepared)?)?;
        container::start_container(&id)?;
        let timeout = spec.health.clone().unwrap_or_default().timeout();
        container::wait_healthy(&id, timeout)?;
        let revision = state::record_revision(&image, &id, &spec.to_json())?;
        Ok(format!("installed {image} on `{target}` as revision {revision}"))
    }
}

export!(Install);
