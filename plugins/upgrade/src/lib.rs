//! The built-in `upgrade` workflow.
//!
//! Params: `{image?, env?, cmd?, network?, health?}`; unset fields keep the
//! current revision's. Steps (see `deckhand_sdk::recipes::replace`): pull the
//! new image → create it as `deckhand-<target>-Next` → stop the old container
//! → swap names → start the new one → wait healthy → record the revision. At
//! commit the old container is removed, and its image if the engine pulled
//! it and no target still uses it. Any failure before that — including a
//! health check — rolls back to the old container, same id, running.

use deckhand_sdk::{Spec, SpecExt, Workflow, export, job, recipes, stack, state};

struct Upgrade;

impl Workflow for Upgrade {
    fn describe() -> deckhand_sdk::PluginInfo {
        deckhand_sdk::info("upgrade", "replace the target's container with a new image or config, atomically")
    }

    fn compensate(action: String, data: String) -> Result<(), String> {
        deckhand_sdk::no_compensations(&action, &data)
    }

    fn run() -> Result<String, String> {
        let target = job::target();
        let current = state::current_revision().ok_or_else(|| format!("target `{target}` is not installed; use install"))?;
        // A stack's revision names no container of its own (and only then
        // are its services read: a one-container upgrade makes the calls
        // it always made).
        let is_stack = current.container_id.is_empty();
        if let Some(params) = stack::params()? {
            if !is_stack {
                return Err(format!("target `{target}` runs one container, not a stack: tear it down and install the stack"));
            }
            let before = stack::StackRecord::of_revision(&current)?;
            let record = stack::read(&params)?.over(before.as_ref());
            let revision = stack::upgrade(&state::revision_services(None), &record)?;
            return Ok(format!("upgraded the stack `{target}` from revision {} to revision {revision}", current.number));
        }
        if is_stack {
            return Err(format!("target `{target}` is a stack: upgrade it with a Compose file (`compose`)"));
        }
        let params: Spec = deckhand_sdk::params()?;
        let spec = params.over(&Spec::of_revision(&current)?);
        // Some conflicts only show once merged (the old ports, a new
        // `network: none`). Bind mounts are the host's to allow or refuse.
        spec.validate(&deckhand_sdk::Permissions { bind_mounts: true })?;
        let revision = recipes::replace(&current, &spec)?;
        Ok(format!(
            "upgraded `{target}` from revision {} ({}) to revision {revision} ({})",
            current.number,
            current.image,
            spec.require_image()?
        ))
    }
}

export!(Upgrade);
