//! Builds the plugins workspace in `../plugins` for `wasm32-wasip2` and
//! embeds the built-in workflows: `OUT_DIR/builtin_plugins.rs` defines
//! `BUILTIN_WORKFLOWS: &[(&str, &[u8])]`. The other components (examples,
//! test workflows) stay in `DECKHAND_PLUGIN_WASM_DIR`, which the tests read.
//!
//! The plugins get their own target directory (`target/plugins`), so they
//! are rebuilt only when their sources or the WIT contract change.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (workflow name, crate name) of every built-in.
const BUILTINS: &[(&str, &str)] = &[
    ("install", "deckhand-plugin-install"),
    ("upgrade", "deckhand-plugin-upgrade"),
    ("teardown", "deckhand-plugin-teardown"),
    ("rollback", "deckhand-plugin-rollback"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let plugins = root.join("plugins");
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    // Every source folder of the plugins workspace (not its own target/).
    for entry in std::fs::read_dir(&plugins)
        .expect("plugins/ exists")
        .flatten()
    {
        if entry.file_name() != "target" {
            println!("cargo:rerun-if-changed={}", entry.path().display());
        }
    }

    ensure_wasm_target(&root);

    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| if d.is_absolute() { d } else { root.join(d) })
        .unwrap_or_else(|| root.join("target"))
        .join("plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    cmd.arg("--workspace");
    // The outer build's flags are for the host, not for wasm.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo to build the plugins");
    assert!(
        status.success(),
        "building the built-in plugins for wasm32-wasip2 failed"
    );

    let mut src = String::from(
        "/// (workflow name, component bytes) of every built-in workflow.\npub const BUILTIN_WORKFLOWS: &[(&str, &[u8])] = &[\n",
    );
    for (name, krate) in BUILTINS {
        let wasm = target_dir
            .join("wasm32-wasip2/release")
            .join(format!("{}.wasm", krate.replace('-', "_")));
        assert!(wasm.exists(), "{} was not built", wasm.display());
        src += &format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            wasm.display().to_string()
        );
    }
    src += "];\n";
    println!(
        "cargo:rustc-env=DECKHAND_PLUGIN_WASM_DIR={}",
        target_dir.join("wasm32-wasip2/release").display()
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("builtin_plugins.rs");
    std::fs::write(out, src).unwrap();
}

/// Install the `wasm32-wasip2` standard library through rustup if it is
/// missing: a `rust-toolchain.toml` naming the target is not enough when the
/// toolchain itself is already installed.
fn ensure_wasm_target(root: &Path) {
    let sysroot = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if sysroot.is_some_and(|s| s.join("lib/rustlib/wasm32-wasip2").exists()) {
        return;
    }
    let ok = Command::new("rustup")
        .current_dir(root)
        .args(["target", "add", "wasm32-wasip2"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the wasm32-wasip2 target is missing and `rustup target add wasm32-wasip2` failed; install it and build again"
    );
}
