//! The health-check settings of a spec ([`Health`]), how an upgrade's go
//! over the current revision's, and the check of a health command in
//! Compose form ([`check_health_cmd`]).

use serde::{Deserialize, Serialize};

/// Health-check settings of a spec. In an upgrade, each unset field keeps
/// the current revision's ([`Health::over`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Seconds to wait for the container to be running (and healthy, when it
    /// has a health check) before the job fails. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    /// The check, in Compose form: `["CMD", prog, args..]`,
    /// `["CMD-SHELL", "shell command"]`, `["NONE"]` (no check, even the
    /// image's), or `[]` (the image's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Seconds between probes (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_s: Option<u32>,
    /// Seconds one probe may take (at least 1); Docker's `--health-timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_timeout_s: Option<u32>,
    /// Consecutive failures that make the container unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Seconds after start during which failures do not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period_s: Option<u32>,
}

impl Health {
    /// The timeout to use.
    pub fn timeout(&self) -> u32 {
        self.timeout_s.unwrap_or(30)
    }

    /// Fields set in `self` win; the others come from `base`.
    pub fn over(self, base: &Health) -> Health {
        Health {
            timeout_s: self.timeout_s.or(base.timeout_s),
            cmd: self.cmd.or_else(|| base.cmd.clone()),
            interval_s: self.interval_s.or(base.interval_s),
            probe_timeout_s: self.probe_timeout_s.or(base.probe_timeout_s),
            retries: self.retries.or(base.retries),
            start_period_s: self.start_period_s.or(base.start_period_s),
        }
    }

    /// Check every field; `Err` names it (`` `health.cmd`: … ``).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(cmd) = &self.cmd {
            check_health_cmd(cmd).map_err(|e| format!("`health.cmd`: {e}"))?;
        }
        // 0 would mean "Docker's default" to the daemon, not "never": refuse
        // it rather than let it mean something else than it says.
        for (name, value) in [
            ("interval_s", self.interval_s),
            ("probe_timeout_s", self.probe_timeout_s),
        ] {
            if value == Some(0) {
                return Err(format!("`health.{name}`: must be at least 1 second"));
            }
        }
        Ok(())
    }
}

/// A health check in Compose form: `["CMD", prog, args..]`,
/// `["CMD-SHELL", "command"]`, `["NONE"]`, or `[]` (the image's own).
pub fn check_health_cmd(cmd: &[String]) -> Result<(), String> {
    match cmd.first().map(String::as_str) {
        None => Ok(()),
        Some("NONE") if cmd.len() == 1 => Ok(()),
        Some("NONE") => Err("`NONE` takes no arguments".into()),
        Some("CMD") if cmd.len() >= 2 && !cmd[1].is_empty() => Ok(()),
        Some("CMD") => Err(
            "`CMD` needs the program to run: [\"CMD\", \"wget\", \"-qO-\", \"http://localhost/\"]"
                .into(),
        ),
        Some("CMD-SHELL") if cmd.len() == 2 && !cmd[1].trim().is_empty() => Ok(()),
        Some("CMD-SHELL") => Err(
            "`CMD-SHELL` takes one shell command: [\"CMD-SHELL\", \"wget -qO- http://localhost/ || exit 1\"]"
                .into(),
        ),
        Some(other) => Err(format!(
            "a health check starts with `CMD`, `CMD-SHELL` or `NONE`, not `{}`",
            other.chars().take(80).collect::<String>()
        )),
    }
}
