//! Test workflow for custom compensations. Params: `{image, blocker}`.
//!
//! `run` registers the compensation `note` (data: `blocker`), pulls `image`
//! and fails on purpose, so the job rolls back. `compensate` logs that it
//! ran, and fails while the image `blocker` is present — which lets a test
//! make a rollback fail and then succeed on retry.

use deckhand_sdk::{LogLevel, Workflow, container, export, job};
use serde::Deserialize;

struct CustomUndo;

#[derive(Deserialize)]
struct Params {
    image: String,
    blocker: String,
}

impl Workflow for CustomUndo {
    fn describe() -> deckhand_sdk::PluginInfo {
        deckhand_sdk::info("custom-undo", "test: a compensation of the plugin's own")
    }

    fn run() -> Result<String, String> {
        let p: Params = deckhand_sdk::params()?;
        job::register_compensation("note", &p.blocker)?;
        container::pull_image(&p.image)?;
        Err("failing on purpose after the pull".into())
    }

    fn compensate(action: String, data: String) -> Result<(), String> {
        job::log(LogLevel::Info, &format!("compensating {action} (compensating={})", job::compensating()));
        // A compensation may not register another one.
        if let Err(e) = job::register_compensation("again", "") {
            job::log(LogLevel::Info, &format!("nested registration refused: {}", deckhand_sdk::describe(&e)));
        }
        if container::image_present(&data)? {
            return Err(format!("{data} is present; cannot undo {action}"));
        }
        Ok(())
    }
}

export!(CustomUndo);
