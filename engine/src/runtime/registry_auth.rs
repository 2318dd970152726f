//! Registry credentials, read the Docker way: the `auths` of a Docker
//! `config.json` (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`, or a file the operator names), answered per
//! registry host for an image reference.
//!
//! Secrets never leave this module in text: [`RegistryAuth`] and
//! [`Credential`] have hand-written `Debug` impls that name hosts and the
//! kind of credential only, and [`AuthError`] never quotes the file's
//! content (a JSON error's message may quote a value, so only its position is
//! kept). bollard's own `DockerCredentials` prints the password in `Debug`:
//! it is built only at the moment of a request and never logged.
//!
//! Two facts about dockerd 20.10 (API 1.41) shape how credentials are sent
//! (see [`url_safe_registry_auth`]): it reads only `username`/`password` or
//! `identitytoken` from `X-Registry-Auth` (not `auth`, so `auth` is decoded
//! here), and it decodes that header with the URL-safe base64 alphabet,
//! silently using no credentials when that fails.
//!
//! Credential helpers (`credsStore`, `credHelpers`) are external programs and
//! are not run; [`RegistryAuth::unsupported`] says which were configured so
//! that the operator can be told.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The canonical host of Docker Hub, which `config.json` may also spell
/// `https://index.docker.io/v1/`, `index.docker.io` or `registry-1.docker.io`.
pub const DOCKER_HUB: &str = "docker.io";

/// The key Docker itself writes for Docker Hub in `config.json`, and the
/// server address the daemon expects for it.
const DOCKER_HUB_ADDRESS: &str = "https://index.docker.io/v1/";

/// The credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    username: Option<String>,
    password: Option<String>,
    identity_token: Option<String>,
}

impl Credential {
    /// A user name and password.
    pub fn basic(username: &str, password: &str) -> Credential {
        Credential {
            username: Some(username.to_owned()),
            password: Some(password.to_owned()),
            identity_token: None,
        }
    }

    /// What kind of credential it is, in words that reveal nothing of it.
    pub fn kind(&self) -> &'static str {
        match (&self.identity_token, &self.password) {
            (Some(_), _) => "identity token",
            (None, Some(_)) => "username/password",
            (None, None) => "username only",
        }
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The user name counts as part of the secret: none of it is shown.
        f.debug_struct("Credential")
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

/// Registry credentials by registry host.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    by_host: BTreeMap<String, Credential>,
    source: Option<PathBuf>,
    unsupported: Vec<String>,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts: Vec<String> = self
            .by_host
            .iter()
            .map(|(host, c)| format!("{host} ({})", c.kind()))
            .collect();
        f.debug_struct("RegistryAuth")
            .field("source", &self.source)
            .field("hosts", &hosts)
            .field("unsupported", &self.unsupported)
            .finish()
    }
}

/// Why credentials could not be loaded. Never contains any of the file's
/// content beyond registry host names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The file could not be read.
    #[error("cannot read registry credentials from {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The file is not a Docker `config.json`.
    #[error("registry credentials file {path} is not valid: {reason}")]
    Invalid {
        /// The file (or `<text>` when parsed from memory).
        path: String,
        /// What is wrong, by position or by registry host, never by value.
        reason: String,
    },
}

/// An entry of `auths`; every field is optional in Docker's format.
#[derive(serde::Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

impl RegistryAuth {
    /// No credentials: every pull is anonymous.
    pub fn none() -> RegistryAuth {
        RegistryAuth::default()
    }

    /// Docker's default file: `$DOCKER_CONFIG/config.json`, else
    /// `$HOME/.docker/config.json`. A missing file means no credentials (as
    /// for the Docker CLI); an unreadable or malformed one is an error.
    pub fn from_docker_config() -> Result<RegistryAuth, AuthError> {
        let dir = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".docker"),
                None => return Ok(RegistryAuth::none()),
            },
        };
        let path = dir.join("config.json");
        if !path.exists() {
            return Ok(RegistryAuth::none());
        }
        Self::from_file(&path)
    }

    /// The `auths` of the Docker `config.json` at `path`, which must exist.
    pub fn from_file(path: &Path) -> Result<RegistryAuth, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut auth = Self::parse(&text, &path.display().to_string())?;
        auth.source = Some(path.to_owned());
        Ok(auth)
    }

    /// The `auths` of a Docker `config.json` given as text.
    pub fn from_json(text: &str) -> Result<RegistryAuth, AuthError> {
        Self::parse(text, "<text>")
    }

    /// Add (or replace) the credentials for a registry host (any spelling
    /// `config.json` accepts as a key).
    pub fn insert(&mut self, registry: &str, credential: Credential) {
        self.by_host.insert(normalize_host(registry), credential);
    }

    fn parse(text: &str, path: &str) -> Result<RegistryAuth, AuthError> {
        let invalid = |reason: String| AuthError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let file: ConfigFile = serde_json::from_str(text).map_err(|e| {
            // serde_json's message may quote the offending value (a
            // password): keep only where and what kind of error it was.
            invalid(format!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        let mut auth = RegistryAuth::default();
        for (key, entry) in file.auths {
            let host = normalize_host(&key);
            let (mut username, mut password) = (entry.username, entry.password);
            if let Some(encoded) = entry.auth.filter(|a| !a.is_empty()) {
                let decoded = decode_base64(encoded.trim())
                    .and_then(|raw| String::from_utf8(raw).ok())
                    .ok_or_else(|| {
                        invalid(format!(
                            "auths[\"{host}\"].auth is not base64 of `user:password`"
                        ))
                    })?;
                let (user, pass) = decoded.split_once(':').ok_or_else(|| {
                    invalid(format!(
                        "auths[\"{host}\"].auth does not decode to `user:password`"
                    ))
                })?;
                username = Some(user.to_owned());
                password = Some(pass.to_owned());
            }
            let identity_token = entry.identitytoken.filter(|t| !t.is_empty());
            if username.is_none() && identity_token.is_none() {
                // `{}`: the secret lives in a credential helper.
                continue;
            }
            auth.by_host.insert(
                host,
                Credential {
                    username,
                    password,
                    identity_token,
                },
            );
        }
        if let Some(store) = file.creds_store.filter(|s| !s.is_empty()) {
            auth.unsupported.push(format!(
                "credsStore `{store}` (credential helpers are not run)"
            ));
        }
        for (registry, helper) in file.cred_helpers {
            auth.unsupported.push(format!(
                "credHelpers[\"{}\"] = `{helper}` (credential helpers are not run)",
                normalize_host(&registry)
            ));
        }
        Ok(auth)
    }

    /// Where the credentials were read from, when from a file.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The registry hosts there are credentials for.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.by_host.keys().map(String::as_str)
    }

    /// Whether there are no credentials at all.
    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }

    /// What the file configured that is not used (credential helpers), in
    /// words fit for a warning.
    pub fn unsupported(&self) -> &[String] {
        &self.unsupported
    }

    /// The credentials for the registry `image` comes from, if any.
    pub fn for_image(&self, image: &str) -> Option<&Credential> {
        self.by_host.get(&registry_host(image))
    }

    /// bollard's form of the credentials for `image`, built for one request
    /// and never logged (its `Debug` shows the password).
    pub(crate) fn docker_credentials(
        &self,
        image: &str,
    ) -> Option<bollard::auth::DockerCredentials> {
        let host = registry_host(image);
        let c = self.by_host.get(&host)?;
        Some(bollard::auth::DockerCredentials {
            username: c.username.clone(),
            password: c.password.clone(),
            identitytoken: c.identity_token.clone(),
            serveraddress: Some(if host == DOCKER_HUB {
                DOCKER_HUB_ADDRESS.to_owned()
            } else {
                host
            }),
            ..Default::default()
        })
    }
}

/// A registry as `config.json` may name it (`https://host:port/v1/`,
/// `HOST`, a Docker Hub alias), as the bare lower-case `host[:port]` used
/// for lookups; every Docker Hub alias becomes [`DOCKER_HUB`].
pub fn normalize_host(registry: &str) -> String {
    let s = registry.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_owned()
        }
        _ => host,
    }
}

/// The registry host of an image reference, by Docker's rule: the first
/// path component when it has a `.` or `:` or is `localhost`, else Docker
/// Hub.
pub fn registry_host(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            normalize_host(first)
        }
        _ => DOCKER_HUB.to_owned(),
    }
}

/// Rewrite a request's `X-Registry-Auth` header from the standard base64
/// alphabet bollard uses to the URL-safe one dockerd decodes with: without
/// it, a header containing `+` or `/` makes the daemon pull with no
/// credentials at all ("no basic auth credentials"). Installed on every
/// client with [`bollard::Docker::with_request_modifier`]; requests without
/// the header pass unchanged.
pub(crate) fn url_safe_registry_auth(mut req: bollard::BollardRequest) -> bollard::BollardRequest {
    const HEADER: &str = "X-Registry-Auth";
    let rewritten = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(to_url_safe_alphabet);
    if let Some(value) = rewritten
        && let Ok(value) = hyper::header::HeaderValue::from_str(&value)
    {
        req.headers_mut().insert(HEADER, value);
    }
    req
}

/// The same base64 text in the URL-safe alphabet (`-` for `+`, `_` for `/`);
/// padding is kept, which dockerd accepts.
fn to_url_safe_alphabet(standard: &str) -> String {
    standard
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

/// Decode base64 in either alphabet, padded or not. `None` when it is not
/// base64.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

#[cfg(test)]
fn encode_base64_standard(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "s3cr?t>~pw";

    fn config_with(user: &str, password: &str) -> String {
        let auth = encode_base64_standard(format!("{user}:{password}").as_bytes());
        format!(
            r#"{{"auths": {{
                "127.0.0.1:5001": {{"auth": "{auth}"}},
                "https://index.docker.io/v1/": {{"username": "hubuser", "password": "hubpass"}},
                "https://reg.example.com/v2/": {{"identitytoken": "tok-123"}},
                "helper.example.com": {{}}
            }},
            "credsStore": "desktop",
            "credHelpers": {{"gcr.io": "gcloud"}}}}"#
        )
    }

    #[test]
    fn base64_round_trips_in_both_alphabets() {
        for data in [
            &b""[..],
            b"a",
            b"ab",
            b"abc",
            b"abcd",
            b"\xfb\xff\xfe",
            PASSWORD.as_bytes(),
        ] {
            let std = encode_base64_standard(data);
            assert_eq!(decode_base64(&std).as_deref(), Some(data), "{std}");
            let url = to_url_safe_alphabet(&std);
            assert_eq!(decode_base64(&url).as_deref(), Some(data), "{url}");
            assert_eq!(
                decode_base64(std.trim_end_matches('=')).as_deref(),
                Some(data)
            );
        }
        assert_eq!(decode_base64("YWxpY2U6cHc="), Some(b"alice:pw".to_vec()));
        assert_eq!(decode_base64("a"), None);
        assert_eq!(decode_base64("ab!d"), None);
        assert_eq!(decode_base64("ab==="), None);
    }

    #[test]
    fn credentials_are_found_by_the_registry_host_of_an_image() {
        let auth = RegistryAuth::from_json(&config_with("alice", PASSWORD)).unwrap();
        let c = auth.for_image("127.0.0.1:5001/priv/app:1").unwrap();
        assert_eq!(c, &Credential::basic("alice", PASSWORD));
        // Docker Hub under every spelling, and images without a registry.
        let hub = Credential::basic("hubuser", "hubpass");
        assert_eq!(auth.for_image("busybox"), Some(&hub));
        assert_eq!(auth.for_image("library/busybox:1"), Some(&hub));
        assert_eq!(auth.for_image("docker.io/library/busybox"), Some(&hub));
        assert_eq!(auth.for_image("index.docker.io/x/y@sha256:ab"), Some(&hub));
        // A key with a scheme and path; host case does not matter.
        assert_eq!(
            auth.for_image("REG.example.com/team/app")
                .map(Credential::kind),
            Some("identity token")
        );
        // No credentials for other hosts, nor for an empty entry (a helper's).
        assert_eq!(auth.for_image("127.0.0.1:5000/priv/app:1"), None);
        assert_eq!(auth.for_image("helper.example.com/app"), None);
        assert_eq!(auth.for_image("localhost/app"), None);
        let hosts: Vec<&str> = auth.hosts().collect();
        assert_eq!(hosts, ["127.0.0.1:5001", "docker.io", "reg.example.com"]);
        assert_eq!(auth.unsupported().len(), 2, "{:?}", auth.unsupported());
    }

    #[test]
    fn registry_hosts_follow_dockers_rule() {
        assert_eq!(registry_host("busybox"), "docker.io");
        assert_eq!(registry_host("user/app:1"), "docker.io");
        assert_eq!(registry_host("localhost/app"), "localhost");
        assert_eq!(registry_host("localhost:5000/app"), "localhost:5000");
        assert_eq!(registry_host("ghcr.io/o/app"), "ghcr.io");
        assert_eq!(registry_host("registry-1.docker.io/library/x"), "docker.io");
        assert_eq!(normalize_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(
            normalize_host("http://Reg.Example:8443/v2"),
            "reg.example:8443"
        );
    }

    #[test]
    fn no_secret_shows_in_debug_or_errors() {
        let text = config_with("alice", PASSWORD);
        let auth = RegistryAuth::from_json(&text).unwrap();
        let encoded = encode_base64_standard(format!("alice:{PASSWORD}").as_bytes());
        let shown = format!(
            "{auth:?} {:?} {:#?}",
            auth.for_image("127.0.0.1:5001/x"),
            auth
        );
        for secret in [
            PASSWORD,
            encoded.as_str(),
            "alice",
            "hubpass",
            "hubuser",
            "tok-123",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("127.0.0.1:5001 (username/password)"),
            "{shown}"
        );

        // Malformed files: the error names the place, never the value.
        let bad_json =
            format!(r#"{{"auths": {{"r.io": {{"auth": 5, "password": "{PASSWORD}"}}}}}}"#);
        let bad_type = r#"{"auths": {"r.io": {"auth": ["s3cr?t>~pw"]}}}"#;
        let not_base64 = format!(r#"{{"auths": {{"r.io": {{"auth": "{PASSWORD}"}}}}}}"#);
        let no_colon = format!(
            r#"{{"auths": {{"r.io": {{"auth": "{}"}}}}}}"#,
            encode_base64_standard(PASSWORD.as_bytes())
        );
        for text in [
            bad_json.as_str(),
            bad_type,
            &not_base64,
            &no_colon,
            "{",
            "[1]",
        ] {
            let e = RegistryAuth::from_json(text).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(
                !shown.contains(PASSWORD) && !shown.contains("s3cr"),
                "{shown}"
            );
        }
        let e = RegistryAuth::from_json(&not_base64)
            .unwrap_err()
            .to_string();
        assert!(e.contains("auths[\"r.io\"].auth"), "{e}");
    }

    #[test]
    fn files_are_read_from_docker_config_or_an_explicit_path() {
        let dir = std::env::temp_dir().join(format!("deckhand-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.json");
        std::fs::write(&path, config_with("bob", "pw")).unwrap();
        let auth = RegistryAuth::from_file(&path).unwrap();
        assert_eq!(auth.source(), Some(path.as_path()));
        assert_eq!(
            auth.for_image("127.0.0.1:5001/a"),
            Some(&Credential::basic("bob", "pw"))
        );
        let missing = RegistryAuth::from_file(&dir.join("nope.json")).unwrap_err();
        assert!(matches!(missing, AuthError::Read { .. }), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_header_is_rewritten_to_the_url_safe_alphabet() {
        // With the test registry's password, bollard's standard base64 of
        // the credentials has characters the daemon cannot decode.
        let mut auth = RegistryAuth::none();
        auth.insert("127.0.0.1:5001", Credential::basic("deckhand", PASSWORD));
        let creds = auth
            .docker_credentials("127.0.0.1:5001/deckhand-test/private:1")
            .unwrap();
        let json = serde_json::to_string(&creds).unwrap();
        let standard = encode_base64_standard(json.as_bytes());
        assert!(standard.contains(['+', '/']), "{standard}");

        let req = hyper::Request::builder()
            .uri("/images/create")
            .header("X-Registry-Auth", &standard)
            .body(bollard::body_full(Default::default()))
            .unwrap();
        let req = url_safe_registry_auth(req);
        let sent = req.headers()["X-Registry-Auth"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!sent.contains(['+', '/']), "{sent}");
        assert_eq!(decode_base64(&sent), Some(json.into_bytes()));

        let plain = hyper::Request::builder()
            .uri("/containers/json")
            .body(bollard::body_full(Default::default()))
            .unwrap();
        assert!(url_safe_registry_auth(plain).headers().is_empty());
    }

    #[test]
    fn credentials_go_to_the_daemon_as_username_and_password() {
        let auth = RegistryAuth::from_json(&config_with("alice", PASSWORD)).unwrap();
        let c = auth.docker_credentials("127.0.0.1:5001/priv/app").unwrap();
        assert_eq!(c.username.as_deref(), Some("alice"));
        assert_eq!(c.password.as_deref(), Some(PASSWORD));
        assert_eq!(c.auth, None);
        assert_eq!(c.serveraddress.as_deref(), Some("127.0.0.1:5001"));
        let hub = auth.docker_credentials("busybox").unwrap();
        assert_eq!(
            hub.serveraddress.as_deref(),
            Some("https://index.docker.io/v1/")
        );
        assert!(auth.docker_credentials("quay.io/x/y").is_none());
    }
}
