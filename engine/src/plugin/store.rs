//! The plugin store: uploaded components kept by digest in a directory,
//! their registrations (name → digest, newest wins) in the journal. A
//! component is validated against the workflow world before anything is
//! written, and every digest ever registered stays loadable, so jobs and
//! replays run the exact bytes they recorded.

use std::path::Path;
use std::sync::Arc;

use super::{Plugin, PluginError, PluginHost, digest_of};
use crate::journal::{Journal, JournalError};

/// Why a plugin could not be registered or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginStoreError {
    /// The component was refused.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The store could not be read or written.
    #[error("plugin store: {0}")]
    Io(String),
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

fn file_of(dir: &Path, digest: &str) -> std::path::PathBuf {
    dir.join(format!("{}.wasm", digest.trim_start_matches("sha256:")))
}

/// Load every registered plugin from `dir` into `host`, oldest first, so the
/// newest registration of each name is current. Returns how many.
pub fn load(host: &PluginHost, journal: &Journal, dir: &Path) -> Result<usize, PluginStoreError> {
    let registrations = journal.plugin_registrations()?;
    for (name, digest, _) in &registrations {
        let file = file_of(dir, digest);
        let bytes = std::fs::read(&file)
            .map_err(|e| PluginStoreError::Io(format!("{}: {e}", file.display())))?;
        if digest_of(&bytes) != *digest {
            return Err(PluginStoreError::Io(format!(
                "{} does not match its digest",
                file.display()
            )));
        }
        host.register_upload(name, &bytes)?;
    }
    Ok(registrations.len())
}

/// Validate `bytes`, store them in `dir` (if given) and record the
/// registration. Nothing changes on error.
pub async fn register(
    host: &PluginHost,
    journal: &Journal,
    dir: Option<&Path>,
    name: &str,
    bytes: &[u8],
) -> Result<Arc<Plugin>, PluginStoreError> {
    let previous = host.get(name);
    let plugin = host.register_upload(name, bytes)?;
    let saved = async {
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir).map_err(|e| PluginStoreError::Io(e.to_string()))?;
            let file = file_of(dir, &plugin.digest);
            std::fs::write(&file, bytes)
                .map_err(|e| PluginStoreError::Io(format!("{}: {e}", file.display())))?;
        }
        journal.record_plugin(name, &plugin.digest).await?;
        Ok::<(), PluginStoreError>(())
    }
    .await;
    if let Err(e) = saved {
        match previous {
            Some(p) => host.reinstate(p),
            None => host.forget(name),
        }
        return Err(e);
    }
    Ok(plugin)
}
