//! Restart policies: [`parse_restart`] reads Docker's names (`no`,
//! `on-failure[:N]`, `unless-stopped`, `always`) into a [`RestartSpec`].

use std::fmt;

/// A restart policy's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never restart.
    No,
    /// Restart when it exits with an error.
    OnFailure,
    /// Always, unless stopped by hand (or by the engine).
    UnlessStopped,
    /// Always.
    Always,
}

impl RestartPolicy {
    /// Docker's name for it (`RestartPolicy.Name`).
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::UnlessStopped => "unless-stopped",
            RestartPolicy::Always => "always",
        }
    }
}

/// A restart policy, from [`parse_restart`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartSpec {
    /// The policy.
    pub policy: RestartPolicy,
    /// `on-failure:N`: at most N restarts (`MaximumRetryCount`).
    pub max_retries: Option<u32>,
}

/// Written back as given: `on-failure:3`.
impl fmt::Display for RestartSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.policy.as_str())?;
        match self.max_retries {
            Some(n) => write!(f, ":{n}"),
            None => Ok(()),
        }
    }
}

/// Parse a restart policy: `no`, `on-failure`, `on-failure:N`,
/// `unless-stopped` or `always`.
pub fn parse_restart(s: &str) -> Result<RestartSpec, String> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (s, None),
    };
    let policy = match name {
        "no" => RestartPolicy::No,
        "on-failure" => RestartPolicy::OnFailure,
        "unless-stopped" => RestartPolicy::UnlessStopped,
        "always" => RestartPolicy::Always,
        _ => {
            return Err(format!(
                "unknown restart policy `{s}` (use no, on-failure[:N], unless-stopped, always)"
            ));
        }
    };
    let max_retries = match count {
        None => None,
        Some(_) if policy != RestartPolicy::OnFailure => {
            return Err(format!("only on-failure takes a retry count (`{s}`)"));
        }
        Some(c) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) => Some(
            c.parse::<u32>()
                .map_err(|_| format!("retry count `{c}` is too large"))?,
        ),
        Some(c) => return Err(format!("`{c}` is not a retry count (on-failure:N)")),
    };
    Ok(RestartSpec {
        policy,
        max_retries,
    })
}
