//! Volumes and bind mounts: [`parse_volume`] reads `docker run -v` syntax
//! into a [`VolumeSpec`], which is written back the same way, and
//! [`check_volume_name`] checks a named volume's name.

use std::fmt;

use crate::bounds::MAX_NAME_LEN;
use crate::text::{check_container_path, docker_name_ok};

/// Where a volume's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A named volume (Docker's logical name, before any prefixing).
    Named(String),
    /// A host path (a bind mount).
    Bind(String),
}

/// A volume of a spec, from [`parse_volume`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    /// The named volume or host path.
    pub source: VolumeSource,
    /// The absolute path in the container.
    pub target: String,
    /// Mounted read-only (`:ro`).
    pub read_only: bool,
}

/// Written back in `-v` syntax: `SOURCE:TARGET[:ro]`.
impl fmt::Display for VolumeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (VolumeSource::Named(s) | VolumeSource::Bind(s)) = &self.source;
        write!(f, "{s}:{}", self.target)?;
        if self.read_only {
            write!(f, ":ro")?;
        }
        Ok(())
    }
}

/// Parse a volume in `docker run -v` syntax: `SOURCE:TARGET[:ro|rw]`, where
/// `SOURCE` is a volume name (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 64
/// characters) or an absolute host path without `..` (a bind mount), and
/// `TARGET` an absolute container path. Anonymous volumes (`-v /data`) are
/// not supported: a volume the engine cannot name it cannot keep across an
/// upgrade.
pub fn parse_volume(s: &str) -> Result<VolumeSpec, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, read_only) = match parts.as_slice() {
        [source, target] => (*source, *target, false),
        [source, target, "ro"] => (*source, *target, true),
        [source, target, "rw"] => (*source, *target, false),
        [_, _, option] => {
            return Err(format!("unknown volume option `{option}` (use ro or rw)"));
        }
        [_] => {
            return Err(format!(
                "`{s}` is not `SOURCE:TARGET[:ro|rw]` (anonymous volumes are not supported: name the volume, e.g. `data:{s}`)"
            ));
        }
        _ => return Err(format!("`{s}` is not `SOURCE:TARGET[:ro|rw]`")),
    };
    let source = if source.is_empty() {
        return Err("the source (a volume name or host path) is empty".into());
    } else if source.starts_with('/') {
        if source.split('/').any(|c| c == "..") {
            return Err(format!(
                "a bind mount source must not contain `..` (`{source}`)"
            ));
        }
        VolumeSource::Bind(source.to_owned())
    } else if source.contains('/') || source.starts_with(['.', '~']) {
        // Docker would take it relative to wherever its CLI ran; here there
        // is no such place.
        return Err(format!(
            "a bind mount source must be an absolute path (`{source}`)"
        ));
    } else {
        check_volume_name(source)?;
        VolumeSource::Named(source.to_owned())
    };
    check_container_path(target)?;
    if target.trim_end_matches('/').is_empty() {
        return Err("a volume cannot be mounted over `/`".into());
    }
    Ok(VolumeSpec {
        source,
        target: target.to_owned(),
        read_only,
    })
}

/// The Docker name of a volume shared beyond one target (a Compose
/// volume's `name:`, or an external one's): a volume name outside the
/// engine's own `deckhand-` names, which are each target's.
pub fn check_shared_volume_name(name: &str) -> Result<(), String> {
    check_volume_name(name)?;
    if name.starts_with("deckhand-") {
        return Err(format!(
            "`{name}`: names starting with `deckhand-` are the engine's own volumes"
        ));
    }
    Ok(())
}

/// A named volume's logical name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 64.
pub fn check_volume_name(name: &str) -> Result<(), String> {
    if docker_name_ok(name) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most {MAX_NAME_LEN} characters)",
            name.chars().take(80).collect::<String>()
        ))
    }
}
