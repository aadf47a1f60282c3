//! Registries that ask for no credentials: found by one `/v2/` probe each, at connect,
//! and read with plain requests. oci-client re-reads `/v2/` before every request to a
//! registry it holds credentials for (anonymous ones included) whenever that answer
//! carries no challenge, so going through it would double the requests of a run.

use std::collections::BTreeSet;

use oci_client::client::ClientProtocol;
use oci_client::errors::{OciDistributionError, OciEnvelope};
use oci_client::Reference;
use reqwest::header::{ACCEPT, WWW_AUTHENTICATE};
use reqwest::StatusCode;

use super::stall;
use crate::manifest::{ACCEPTED, MAX_MANIFEST_BYTES};

/// A manifest body as read from an open registry.
pub enum ManifestBody {
    Whole(Vec<u8>),
    /// The body ran past [`MAX_MANIFEST_BYTES`]; reading stopped after `read` bytes.
    TooLarge {
        read: u64,
    },
}

/// The open registries of a run, and the client that reads their manifests.
pub struct OpenRegistries {
    /// As written in references, with the scheme each one speaks.
    registries: BTreeSet<(String, &'static str)>,
    client: reqwest::Client,
    /// The window in which a body must make progress (see `stall`).
    timeout: std::time::Duration,
}

impl OpenRegistries {
    /// Probes each registry's `/v2/` concurrently, once. The probe accepts any
    /// certificate: it sends no credentials, and its answer can only withhold them.
    /// `client` (configured for TLS as the run asks) then reads their manifests.
    pub async fn probe(
        protocol: &ClientProtocol,
        registries: &BTreeSet<String>,
        client: reqwest::Client,
        user_agent: &str,
        timeout: std::time::Duration,
    ) -> Self {
        let Ok(probe) = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(std::time::Duration::from_secs(5))
            .user_agent(user_agent)
            .build()
        else {
            return Self {
                registries: BTreeSet::new(),
                client,
                timeout,
            };
        };
        let asks = registries.iter().map(|registry| {
            let probe = &probe;
            let scheme = scheme(protocol, registry);
            async move {
                let open = probe
                    .get(format!("{scheme}://{}/v2/", host(registry)))
                    .send()
                    .await
                    .is_ok_and(|r| !r.headers().contains_key(WWW_AUTHENTICATE));
                open.then(|| (registry.clone(), scheme))
            }
        });
        let registries = futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect();
        Self {
            registries,
            client,
            timeout,
        }
    }

    pub fn contains(&self, registry: &str) -> bool {
        self.scheme_of(registry).is_some()
    }

    fn scheme_of(&self, registry: &str) -> Option<&'static str> {
        self.registries
            .iter()
            .find(|(name, _)| name == registry)
            .map(|(_, scheme)| *scheme)
    }

    /// The body of the reference's manifest (by digest if it has one, else by tag),
    /// read no further than [`MAX_MANIFEST_BYTES`]; a failure is reported as
    /// oci-client reports it, so that retries and error sentences stay the same.
    /// Only for a registry this set [`contains`](Self::contains).
    pub async fn manifest(
        &self,
        reference: &Reference,
    ) -> Result<ManifestBody, OciDistributionError> {
        let scheme = self.scheme_of(reference.registry()).unwrap_or("https");
        let tag_or_digest = reference.digest().or(reference.tag()).unwrap_or("latest");
        let url = format!(
            "{scheme}://{}/v2/{}/manifests/{tag_or_digest}",
            host(reference.registry()),
            reference.repository()
        );
        self.read_manifest(&url).await
    }

    async fn read_manifest(&self, url: &str) -> Result<ManifestBody, OciDistributionError> {
        let mut response = self
            .client
            .get(url)
            .header(ACCEPT, ACCEPTED.join(", "))
            .send()
            .await
            .map_err(OciDistributionError::RequestError)?;
        let status = response.status();
        // An error body is read only as far as a message needs.
        let limit = if status == StatusCode::OK {
            MAX_MANIFEST_BYTES
        } else {
            ERROR_BODY_BYTES
        };
        if status == StatusCode::OK && response.content_length().is_some_and(|len| len > limit) {
            return Ok(ManifestBody::TooLarge {
                read: response.content_length().unwrap_or_default(),
            });
        }
        let mut body = Vec::new();
        // The same progress rule as blob bodies: MIN_PROGRESS bytes, or the end, in
        // every window.
        let mut window_start = tokio::time::Instant::now();
        let mut in_window = 0u64;
        loop {
            let next = tokio::time::timeout_at(window_start + self.timeout, response.chunk());
            let chunk = match next.await {
                Ok(chunk) => chunk.map_err(OciDistributionError::RequestError)?,
                Err(_) => return Err(OciDistributionError::IoError(stall::stalled(self.timeout))),
            };
            let Some(chunk) = chunk else { break };
            in_window += chunk.len() as u64;
            if in_window >= stall::MIN_PROGRESS {
                window_start = tokio::time::Instant::now();
                in_window = 0;
            }
            body.extend_from_slice(&chunk);
            if body.len() as u64 > limit {
                if status != StatusCode::OK {
                    break;
                }
                return Ok(ManifestBody::TooLarge {
                    read: body.len() as u64,
                });
            }
        }
        match status {
            StatusCode::OK => Ok(ManifestBody::Whole(body)),
            status => Err(refusal(status, &body, url)),
        }
    }
}

const ERROR_BODY_BYTES: u64 = 64 * 1024;

/// A registry's refusal, in the shape oci-client gives it.
fn refusal(status: StatusCode, body: &[u8], url: &str) -> OciDistributionError {
    if status == StatusCode::UNAUTHORIZED {
        return OciDistributionError::UnauthorizedError {
            url: url.to_owned(),
        };
    }
    if status.is_client_error() {
        if let Ok(envelope) = serde_json::from_slice::<OciEnvelope>(body) {
            return OciDistributionError::RegistryError {
                envelope,
                url: url.to_owned(),
            };
        }
    }
    OciDistributionError::ServerError {
        code: status.as_u16(),
        url: url.to_owned(),
        message: String::from_utf8_lossy(body).into_owned(),
    }
}

fn scheme(protocol: &ClientProtocol, registry: &str) -> &'static str {
    match protocol {
        ClientProtocol::Http => "http",
        ClientProtocol::HttpsExcept(plain) if plain.iter().any(|p| p == registry) => "http",
        _ => "https",
    }
}

/// Where a registry named in a reference is served, as oci-client's
/// `Reference::resolve_registry` has it.
fn host(registry: &str) -> &str {
    if registry == "docker.io" {
        "index.docker.io"
    } else {
        registry
    }
}
