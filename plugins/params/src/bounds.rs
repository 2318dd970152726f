//! How large params may be: the bounds on lists, maps, strings and names
//! that keep hostile input small, and [`bounded`], which checks a list's.

/// At most this many `ports`.
pub const MAX_PORTS: usize = 64;
/// At most this many `volumes`.
pub const MAX_VOLUMES: usize = 64;
/// At most this many `networks`.
pub const MAX_NETWORKS: usize = 16;
/// At most this many aliases per network.
pub const MAX_ALIASES: usize = 16;
/// At most this many `labels`.
pub const MAX_LABELS: usize = 128;
/// Longest string (or map key) anywhere in the params, in bytes, but
/// environment values.
pub const MAX_STRING_BYTES: usize = 4096;
/// Longest environment value, in bytes: certificates and JSON configs are
/// passed this way, so more room than other strings.
pub const MAX_ENV_VALUE_BYTES: usize = 32 << 10;
/// Longest volume or network name (Docker's logical names).
pub const MAX_NAME_LEN: usize = 64;

/// `Err` when a list has more than `max` items.
pub(crate) fn bounded(path: &str, len: usize, max: usize, what: &str) -> Result<(), String> {
    if len > max {
        Err(format!("`{path}`: at most {max} {what} (got {len})"))
    } else {
        Ok(())
    }
}
