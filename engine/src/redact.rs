//! Secrets out of what is shown: environment values whose name looks
//! secret (`*PASSWORD*`, `*TOKEN*`, `*SECRET*`, `*KEY*` by default;
//! `DECKHAND_SECRET_KEYS` lists others) are replaced by `***` in job JSON,
//! timelines, log lines, summaries, errors and exports — under any `env`
//! object (a job's params, a container's config, a revision's spec), and
//! wherever such a value appears verbatim in text (a plugin that logs it).
//!
//! The journal itself keeps them: recovery and retries re-create containers
//! from the recorded calls, and a secret the engine forgot could not be
//! put back. So the journal file (`journal.sqlite` in the data directory,
//! mode of the directory) is as sensitive as the params; everything read
//! out of it for people goes through a [`Redaction`].

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What stands for a hidden value.
pub const MASK: &str = "***";

/// Values shorter than this are not searched for in text (masking every
/// `1` a log line holds would hide more than the secret).
const MIN_SECRET_LEN: usize = 4;

/// Which names mark a secret, and which secret values are known.
#[derive(Debug, Clone)]
pub struct Redaction {
    /// Upper-case fragments of names that mark a secret.
    markers: Vec<String>,
    /// Secret values seen so far, longest first.
    values: Vec<String>,
}

impl Default for Redaction {
    fn default() -> Self {
        Redaction::with_markers(["PASSWORD", "TOKEN", "SECRET", "KEY"])
    }
}

impl Redaction {
    /// A redaction marking names that contain any of `markers` (any case).
    pub fn with_markers<S: AsRef<str>>(markers: impl IntoIterator<Item = S>) -> Self {
        Redaction {
            markers: markers
                .into_iter()
                .map(|m| m.as_ref().trim().to_ascii_uppercase())
                .filter(|m| !m.is_empty())
                .collect(),
            values: Vec::new(),
        }
    }

    /// The markers of `DECKHAND_SECRET_KEYS` (comma-separated), or the
    /// default ones.
    pub fn from_env() -> Self {
        match std::env::var("DECKHAND_SECRET_KEYS") {
            Ok(list) if !list.trim().is_empty() => Redaction::with_markers(list.split(',')),
            _ => Redaction::default(),
        }
    }

    /// Whether an environment variable called `name` holds a secret.
    pub fn is_secret(&self, name: &str) -> bool {
        let name = name.to_ascii_uppercase();
        self.markers.iter().any(|m| name.contains(m.as_str()))
    }

    /// Learn the secret values under any `env` object of `value` (so that
    /// they are masked in text too).
    pub fn learn(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "env"
                        && let Value::Object(env) = v
                    {
                        for (name, secret) in env {
                            if let Value::String(s) = secret
                                && self.is_secret(name)
                                && s.len() >= MIN_SECRET_LEN
                                && !self.values.contains(s)
                            {
                                self.values.push(s.clone());
                            }
                        }
                    }
                    if k == "compose"
                        && let Value::String(text) = v
                    {
                        self.learn_compose(text, map.get("env"));
                    }
                    self.learn(v);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.learn(v)),
            _ => {}
        }
        self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }

    /// Learn the secret values a stack's Compose file gives its services'
    /// `environment` (written in the file, or interpolated from `env`), so
    /// that the file's text is masked where it holds them.
    fn learn_compose(&mut self, text: &str, env: Option<&Value>) {
        let env: std::collections::BTreeMap<String, String> = env
            .and_then(|e| serde_json::from_value(e.clone()).ok())
            .unwrap_or_default();
        let allow = deckhand_params::Permissions { bind_mounts: true };
        if let Ok(stack) = deckhand_params::parse_compose(text, &env, &allow) {
            for service in stack.services {
                self.learn(&serde_json::json!({ "env": service.spec.env }));
            }
        }
    }

    /// Mask, in place, secret values under `env` objects and known secret
    /// values in every string.
    pub fn value(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if k == "env"
                        && let Value::Object(env) = v
                    {
                        for (name, secret) in env.iter_mut() {
                            if self.is_secret(name) && secret.is_string() {
                                *secret = Value::String(MASK.into());
                            }
                        }
                    }
                    self.value(v);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::String(s) if self.values.iter().any(|secret| s.contains(secret.as_str())) => {
                *s = self.text(s);
            }
            _ => {}
        }
    }

    /// The redaction for what is shown of `job`: the default markers (or
    /// `DECKHAND_SECRET_KEYS`) and the secret values of its params.
    pub fn for_job(job: &crate::journal::JobRecord) -> Self {
        let mut redaction = Redaction::from_env();
        redaction.learn(&job.params);
        redaction
    }

    /// Learn the secret values in `value`'s JSON form (see [`Self::learn`]).
    pub fn learn_from<T: Serialize>(&mut self, value: &T) {
        if let Ok(v) = serde_json::to_value(value) {
            self.learn(&v);
        }
    }

    /// `value` with its secrets masked, through its JSON form.
    pub fn masked<T: Serialize + DeserializeOwned + Clone>(&self, value: &T) -> T {
        let Ok(mut v) = serde_json::to_value(value) else {
            return value.clone();
        };
        self.value(&mut v);
        serde_json::from_value(v).unwrap_or_else(|_| value.clone())
    }

    /// `text` with every known secret value masked.
    pub fn text(&self, text: &str) -> String {
        self.values.iter().fold(text.to_owned(), |t, secret| {
            t.replace(secret.as_str(), MASK)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_looking_env_values_are_masked_wherever_they_stand() {
        let mut r = Redaction::default();
        let params = json!({"image": "app:1", "env": {"DB_PASSWORD": "hunter22", "MODE": "prod", "api_key": "k-123456"}});
        r.learn(&params);
        let mut shown = json!({
            "params": params,
            "call": {"op": "create_container", "config": {"env": {"DB_PASSWORD": "hunter22", "MODE": "prod"}}},
            "message": "connecting with hunter22 as admin",
        });
        r.value(&mut shown);
        assert_eq!(shown["params"]["env"]["DB_PASSWORD"], MASK);
        assert_eq!(shown["params"]["env"]["api_key"], MASK);
        assert_eq!(shown["params"]["env"]["MODE"], "prod");
        assert_eq!(shown["call"]["config"]["env"]["DB_PASSWORD"], MASK);
        assert_eq!(shown["message"], "connecting with *** as admin");
        assert_eq!(r.text("token k-123456."), "token ***.");
    }

    #[test]
    fn secrets_a_compose_file_writes_in_its_environment_are_masked_in_its_text() {
        let mut r = Redaction::default();
        let compose = "services:\n  db:\n    image: pg:15\n    environment:\n      POSTGRES_PASSWORD: hunter22\n      API_TOKEN: ${TOKEN}\n      MODE: prod\n";
        let mut params = json!({"compose": compose, "env": {"TOKEN": "t-98765"}});
        r.learn(&params);
        r.value(&mut params);
        let shown = params["compose"].as_str().unwrap();
        assert!(!shown.contains("hunter22"), "{shown}");
        assert!(shown.contains("POSTGRES_PASSWORD: ***"), "{shown}");
        assert!(shown.contains("MODE: prod"), "{shown}");
        assert_eq!(r.text("token t-98765"), "token ***", "an interpolated one too");
    }

    #[test]
    fn the_markers_are_configurable_and_short_values_are_not_searched_in_text() {
        let mut r = Redaction::with_markers(["CERT"]);
        assert!(r.is_secret("TLS_CERT") && !r.is_secret("DB_PASSWORD"));
        r.learn(&json!({"env": {"TLS_CERT": "abc"}}));
        assert_eq!(r.text("abc"), "abc", "too short to search for");
        let mut v = json!({"env": {"TLS_CERT": "abc"}});
        r.value(&mut v);
        assert_eq!(v["env"]["TLS_CERT"], MASK, "but masked where it is a value");
    }
}
