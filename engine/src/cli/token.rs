//! The API token: the server's (configured, or generated at first start and
//! kept in the data directory, readable by its owner only) and the one the
//! CLI presents (configured, or read from the same data directory, so that
//! the CLI on the server's machine needs no token typed).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The file in the data directory that keeps a generated token.
pub(crate) const TOKEN_FILE: &str = "api-token";

fn configured() -> Option<String> {
    std::env::var("DECKHAND_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
}

fn token_file(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKEN_FILE)
}

fn read_token(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// The token the server requires: `DECKHAND_TOKEN`, else the one kept in
/// `data_dir`, else a new one (256 random bits) written there with mode
/// 0600 — the API is never open.
pub(crate) fn server_token(data_dir: &Path) -> anyhow::Result<String> {
    if let Some(t) = configured() {
        return Ok(t);
    }
    let path = token_file(data_dir);
    if let Some(t) = read_token(&path) {
        return Ok(t);
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading random bytes for the API token")?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(token.as_bytes()));
    match written {
        Ok(()) => {
            errln!(
                "generated an API token in {} (the CLI on this machine reads it; others set DECKHAND_TOKEN)",
                path.display()
            );
            Ok(token)
        }
        // Another process wrote one first: use that.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_token(&path)
            .with_context(|| format!("reading the API token in {}", path.display())),
        Err(e) => Err(e).with_context(|| format!("writing the API token to {}", path.display())),
    }
}

/// The token the CLI presents to a server: `DECKHAND_TOKEN`, else the one a
/// server on this machine keeps in `data_dir`, else none.
pub(crate) fn client_token(data_dir: &Path) -> Option<String> {
    configured().or_else(|| read_token(&token_file(data_dir)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_generated_token_is_kept_readable_by_its_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        // Only when DECKHAND_TOKEN is not set (it is not, in unit tests).
        if configured().is_some() {
            return;
        }
        let first = server_token(dir.path()).unwrap();
        assert_eq!(first.len(), 64);
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(server_token(dir.path()).unwrap(), first);
        assert_eq!(client_token(dir.path()), Some(first));
    }
}
