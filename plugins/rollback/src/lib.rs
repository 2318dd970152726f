//! The built-in `rollback` workflow: an upgrade whose new spec is an earlier
//! revision's. Params: `{revision: N}`.

use deckhand_sdk::{Spec, SpecExt, Workflow, export, job, recipes, stack, state};

struct Rollback;

impl Workflow for Rollback {
    fn describe() -> deckhand_sdk::PluginInfo {
        deckhand_sdk::info("rollback", "bring back an earlier revision's image and config, atomically")
    }

    fn compensate(action: String, data: String) -> Result<(), String> {
        deckhand_sdk::no_compensations(&action, &data)
    }

    fn run() -> Result<String, String> {
        let params: deckhand_sdk::Rollback = deckhand_sdk::params()?;
        let target = job::target();
        let current = state::current_revision().ok_or_else(|| format!("target `{target}` is not installed"))?;
        let earlier = state::lookup_revision(params.revision)
            .ok_or_else(|| format!("target `{target}` has no revision {}", params.revision))?;
        // A stack's revision names no container of its own.
        match (stack::StackRecord::of_revision(&earlier)?, current.container_id.is_empty()) {
            (Some(record), true) => {
                let revision = stack::upgrade(&state::revision_services(None), &record)?;
                return Ok(format!("rolled the stack `{target}` back to revision {}'s as revision {revision}", earlier.number));
            }
            (None, false) => {}
            _ => return Err(format!("revision {} and the current one are not both stacks (or both one container): tear down and install instead", earlier.number)),
        }
        let spec = Spec::of_revision(&earlier)?;
        let revision = recipes::replace(&current, &spec)?;
        Ok(format!("rolled `{target}` back to revision {}'s spec as revision {revision}", earlier.number))
    }
}

export!(Rollback);
