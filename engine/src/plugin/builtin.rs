//! The built-in workflow components, compiled by `build.rs` from `plugins/`
//! for `wasm32-wasip2` and embedded in the engine.

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));
