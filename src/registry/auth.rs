//! Credentials per registry, looked up once a run: those given to the run, else
//! Docker's `config.json` (`credHelpers`, `auths`, then `credsStore`), else none.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read Docker credentials from {}", path.display())]
    Config {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the credential helper `docker-credential-{helper}` failed for {registry}: {message}")]
    Helper {
        helper: String,
        registry: String,
        message: String,
    },
}

/// Looks up credentials per registry host, once: a credential helper is a process to
/// spawn, and every request of a run needs the answer.
#[derive(Debug, Default)]
pub struct Credentials {
    config: DockerConfig,
    /// Credentials given on the command line win over the config file.
    explicit: Option<(String, String)>,
    resolved: std::sync::Mutex<HashMap<String, RegistryAuth>>,
}

impl Credentials {
    /// Reads `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`; a missing file
    /// means anonymous access.
    pub fn from_docker_config() -> Result<Self, AuthError> {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")));
        let Some(path) = dir.map(|d| d.join("config.json")) else {
            return Ok(Self::default());
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(AuthError::Config {
                    path,
                    source: e.into(),
                })
            }
        };
        let config = serde_json::from_str(&text).map_err(|e| AuthError::Config {
            path,
            source: e.into(),
        })?;
        Ok(Self {
            config,
            ..Self::default()
        })
    }

    pub fn with_explicit(mut self, username: String, password: String) -> Self {
        self.explicit = Some((username, password));
        self
    }

    /// The credentials for `registry` (a `host[:port]` as written in references).
    pub fn for_registry(&self, registry: &str) -> Result<RegistryAuth, AuthError> {
        let mut resolved = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(auth) = resolved.get(registry) {
            return Ok(auth.clone());
        }
        let auth = self.look_up(registry)?;
        resolved.insert(registry.to_owned(), auth.clone());
        Ok(auth)
    }

    fn look_up(&self, registry: &str) -> Result<RegistryAuth, AuthError> {
        if let Some((user, pass)) = &self.explicit {
            return Ok(RegistryAuth::Basic(user.clone(), pass.clone()));
        }
        let keys = config_keys(registry);
        for key in &keys {
            if let Some(helper) = self.config.cred_helpers.get(key) {
                return run_helper(helper, key);
            }
        }
        for (key, entry) in &self.config.auths {
            let host = key
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default();
            if keys.iter().any(|k| k == host) {
                if let Some(auth) = decode_entry(entry) {
                    return Ok(auth);
                }
            }
        }
        if let Some(helper) = &self.config.creds_store {
            let key = if registry == "docker.io" {
                "https://index.docker.io/v1/"
            } else {
                registry
            };
            // A store that knows nothing of this registry means anonymous access.
            return Ok(run_helper(helper, key).unwrap_or(RegistryAuth::Anonymous));
        }
        Ok(RegistryAuth::Anonymous)
    }
}

/// The names a registry may be filed under in `config.json`.
fn config_keys(registry: &str) -> Vec<String> {
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
        vec![
            "index.docker.io".into(),
            "docker.io".into(),
            "registry-1.docker.io".into(),
        ]
    } else {
        vec![registry.to_owned()]
    }
}

fn decode_entry(entry: &AuthEntry) -> Option<RegistryAuth> {
    if let (Some(user), Some(pass)) = (&entry.username, &entry.password) {
        return Some(RegistryAuth::Basic(user.clone(), pass.clone()));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.auth.as_deref()?.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some(RegistryAuth::Basic(user.to_owned(), pass.to_owned()))
}

fn run_helper(helper: &str, registry: &str) -> Result<RegistryAuth, AuthError> {
    let fail = |message: String| AuthError::Helper {
        helper: helper.to_owned(),
        registry: registry.to_owned(),
        message,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(registry.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(String::from_utf8_lossy(&out.stdout).trim().to_owned()));
    }
    let answer: HelperAnswer =
        serde_json::from_slice(&out.stdout).map_err(|e| fail(e.to_string()))?;
    Ok(RegistryAuth::Basic(answer.username, answer.secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_auths_by_host() {
        let creds = Credentials {
            config: serde_json::from_str(
                r#"{"auths":{"https://reg.example:5000/v1/":{"auth":"dXNlcjpwYXNz"}}}"#,
            )
            .unwrap(),
            ..Credentials::default()
        };
        match creds.for_registry("reg.example:5000").unwrap() {
            RegistryAuth::Basic(u, p) => assert_eq!((u.as_str(), p.as_str()), ("user", "pass")),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            creds.for_registry("other.example").unwrap(),
            RegistryAuth::Anonymous
        ));
    }
}
