//! Example workflow: a blue-green upgrade.
//!
//! Unlike the built-in `upgrade`, which stops the old container before
//! starting the new one, this starts the new version (green) beside the old
//! one (blue), waits until it is healthy, and only then stops blue and moves
//! the name over: the app is never without a running container. Params are
//! the same as `upgrade`'s (`{image?, env?, cmd?, network?, health?}`).
//!
//! Register and run it:
//!
//! ```sh
//! deckhand plugin add blue-green target/plugins/wasm32-wasip2/release/deckhand_example_blue_green.wasm
//! deckhand run blue-green web --params '{"image": "registry.example/app:2"}'
//! ```
//!
//! Every call below is journaled with its undo by the host; a failure,
//! cancel or crash before the commit leaves blue running under its name,
//! with the same container id.

use deckhand_sdk::{Spec, SpecExt, Workflow, container, export, job, live_name, state};

struct BlueGreen;

impl Workflow for BlueGreen {
    fn describe() -> deckhand_sdk::PluginInfo {
        deckhand_sdk::info("blue-green", "start the new version beside the old one, switch once it is healthy")
    }

    fn run() -> Result<String, String> {
        let params: Spec = deckhand_sdk::params()?;
        let target = job::target();
        let blue = state::current_revision().ok_or_else(|| format!("`{target}` is not installed"))?;
        let spec = params.over(&Spec::of_revision(&blue)?);
        let image = spec.require_image()?.to_owned();
        let live = live_name(&target);

        container::pull_image(&image)?;
        let green = container::create_container(&spec.container(format!("{live}-Green"))?)?;
        container::start_container(&green)?;
        job::set_phase("green_health");
        container::wait_healthy(&green, spec.health.clone().unwrap_or_default().timeout())?;

        // Green is healthy: switch.
        job::set_phase("switching");
        container::stop_container(&blue.container_id, 10)?;
        container::rename_container(&blue.container_id, &format!("{live}-Blue"))?;
        container::rename_container(&green, &live)?;

        let revision = state::record_revision(&image, &green, &spec.to_json())?;
        container::remove_container_at_commit(&blue.container_id)?;
        if blue.image != image {
            container::remove_image_at_commit(&blue.image)?;
        }
        Ok(format!("`{target}` switched from {} to {image} (revision {revision}) with no downtime", blue.image))
    }

    fn compensate(action: String, data: String) -> Result<(), String> {
        deckhand_sdk::no_compensations(&action, &data)
    }
}

export!(BlueGreen);
