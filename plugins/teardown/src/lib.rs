//! The built-in `teardown` workflow. Params: `{remove_volumes?}`.
//!
//! Stops the target's container now (undo: start it again); at commit the
//! container is removed, the target's registry entry is cleared (its
//! revision history stays), and its image is removed if the engine pulled it
//! and no other target uses it. The networks the engine created for it go
//! too once no container is on them; its volumes stay (its data), unless
//! `remove_volumes` asks for the ones the engine created.

use deckhand_sdk::{HostError, Spec, SpecExt, Workflow, container, export, job, network, stack, state, volume};

struct Teardown;

impl Workflow for Teardown {
    fn describe() -> deckhand_sdk::PluginInfo {
        deckhand_sdk::info("teardown", "stop and remove the target's container and forget the target")
    }

    fn compensate(action: String, data: String) -> Result<(), String> {
        deckhand_sdk::no_compensations(&action, &data)
    }

    fn run() -> Result<String, String> {
        let params: deckhand_sdk::Teardown = deckhand_sdk::params()?;
        let target = job::target();
        let current = state::current_revision().ok_or_else(|| format!("target `{target}` is not installed"))?;
        // A stack's revision names no container of its own.
        if current.container_id.is_empty() {
            let services = state::revision_services(None);
            stack::teardown(&current, &services, params.remove_volumes)?;
            return Ok(format!("tore down the stack `{target}` (revision {}, {} services)", current.number, services.len()));
        }
        // The container may already be gone (removed by hand); the target still goes.
        if let Some(c) = container::inspect_container(&current.container_id)? {
            if c.running {
                container::stop_container(&c.id, Spec::of_revision(&current)?.stop_timeout_s.unwrap_or(10))?;
            }
            container::remove_container_at_commit(&c.id)?;
        }
        // Forget the target first, so that at commit its image is no longer
        // in use by a current revision and can go.
        state::delete_target_at_commit()?;
        container::remove_image_at_commit(&current.image)?;
        // After the containers (deferred before them): a network is removed
        // only once nothing is on it, and only if the engine created it.
        for n in Spec::of_revision(&current)?.network_specs()? {
            match network::remove_network_at_commit(&n.name) {
                Ok(()) | Err(HostError::Denied(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if params.remove_volumes {
            for v in volume::list_volumes()? {
                volume::remove_volume_at_commit(&v.docker_name)?;
            }
        }
        Ok(format!("tore down `{target}` (revision {}, {})", current.number, current.image))
    }
}

export!(Teardown);
