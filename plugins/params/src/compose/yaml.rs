//! Reading a Compose file's YAML into a [`Value`], with bounds that keep a
//! hostile file (deep nesting, alias bombs, huge scalars) cheap to refuse.

use serde_json::Value;
use serde_saphyr::{Budget, Options};

/// The YAML reader's limits. A Compose file is at most
/// [`MAX_COMPOSE_BYTES`](super::MAX_COMPOSE_BYTES) long and a few levels
/// deep; anchors are used for a handful of shared blocks, not thousands.
fn options() -> Options {
    let mut budget = Budget::default();
    budget.max_depth = 32;
    budget.flow_nesting_limit = 32;
    budget.max_documents = 1;
    budget.max_events = 200_000;
    budget.max_nodes = 100_000;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_merge_keys = 1_000;
    budget.max_recorded_anchor_events = 100_000;
    budget.max_recorded_anchor_bytes = 1 << 20;
    budget.max_total_scalar_bytes = 1 << 20;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = 20_000;
    options.alias_limits.max_replay_stack_depth = 16;
    // YAML 1.2 booleans, as Compose reads them: `restart: no` is a string.
    options.strict_booleans = true;
    // `ZIP: 01234` keeps its zero, as a string.
    options.leading_zero_numbers_as_strings = true;
    options.with_snippet = false;
    options
}

/// Parse `text` (one YAML document) into a JSON value.
pub(super) fn parse(text: &str) -> Result<Value, String> {
    serde_saphyr::from_str_with_options::<Value>(text, options()).map_err(|e| {
        // The message names the line and column; keep it on one line.
        let msg = e.to_string();
        let msg = msg
            .lines()
            .next()
            .unwrap_or_default()
            .replace(", set DuplicateKeyPolicy in Options if acceptable", "");
        if msg.contains("Documents {") || msg.contains("multiple documents") {
            "the Compose file must be one YAML document (no `---` between documents)".to_owned()
        } else if msg.contains("budget breached") || msg.contains("limit exceeded") {
            format!("the Compose file is too large, too deep or expands too much: {msg}")
        } else {
            format!("the Compose file is not valid YAML: {msg}")
        }
    })
}
