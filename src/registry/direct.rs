//! Registry requests, pulls and pushes alike, as plain HTTP: manifests read no further
//! than their cap, blobs streamed from an offset under the progress rule of `stall`,
//! uploads streamed from files.
//!
//! oci-client reads a manifest whole before its size can be checked (an endless body
//! took all of memory), probes `/v2/` before requests, and starts its token flow only
//! when `/v2/` itself asks. Here a request goes out as it is, and a 401 on any request
//! is answered once with what its challenge asks for: the credentials (Basic), or a
//! token from the challenge's realm for the scope it names (Bearer), kept for the run.
//! Failures take the shapes oci-client gives them, so that retries and error sentences
//! read them as before.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::ClientProtocol;
use oci_client::errors::{OciDistributionError, OciEnvelope};
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, RANGE, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};

use super::challenge::{self, Challenge};
use super::stall::{self, Progress};
use super::BlobStream;
use crate::digest::Digest;
use crate::manifest::{ACCEPTED, MAX_MANIFEST_BYTES};

/// A manifest body as read.
pub enum ManifestBody {
    Whole(Vec<u8>),
    /// The body ran past [`MAX_MANIFEST_BYTES`]; reading stopped after `read` bytes.
    TooLarge {
        read: u64,
    },
}

/// The failure when a registry asks for credentials and the run has none for it,
/// told apart from credentials it refused.
pub const NO_CREDENTIALS: &str = "the registry asks for credentials and none are configured";

/// How the next request to a registry should prove itself.
#[derive(Default)]
struct Proofs {
    /// Registries that asked for Basic credentials.
    basic: HashSet<String>,
    /// Tokens by (registry, scope).
    tokens: HashMap<(String, String), String>,
    /// Held while a token for (registry, scope) is being fetched.
    fetching: HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>,
}

/// What a request needs to be allowed to do with its repository.
#[derive(Clone, Copy)]
pub enum Access {
    Pull,
    Push,
}

pub struct DirectClient {
    protocol: ClientProtocol,
    client: reqwest::Client,
    /// The window in which a body must make progress (see `stall`).
    timeout: Duration,
    proofs: Mutex<Proofs>,
}

impl DirectClient {
    pub fn new(protocol: ClientProtocol, client: reqwest::Client, timeout: Duration) -> Self {
        Self {
            protocol,
            client,
            timeout,
            proofs: Mutex::default(),
        }
    }

    /// The body of the reference's manifest (by digest if it has one, else by tag),
    /// read no further than [`MAX_MANIFEST_BYTES`].
    pub async fn manifest(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
    ) -> Result<ManifestBody, OciDistributionError> {
        let tag_or_digest = reference.digest().or(reference.tag()).unwrap_or("latest");
        let url = self.url(reference, &format!("manifests/{tag_or_digest}"));
        let response = self
            .send(reference, Access::Pull, auth, || {
                self.client.get(&url).header(ACCEPT, ACCEPTED.join(", "))
            })
            .await?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(self.refusal(response, &url).await);
        }
        self.read_manifest(response).await
    }

    /// One page of the referrers index of `digest` (OCI 1.1 referrers API), read as a
    /// manifest is, with the next page's URL if its `Link` header names one; `None`
    /// when the registry answers 404, as one without the API does. `page` is that URL
    /// for every page after the first.
    pub async fn referrers(
        &self,
        reference: &Reference,
        digest: &Digest,
        page: Option<&str>,
        auth: &RegistryAuth,
    ) -> Result<Option<(ManifestBody, Option<String>)>, OciDistributionError> {
        let url = match page {
            Some(url) => url.to_owned(),
            None => self.url(reference, &format!("referrers/{digest}")),
        };
        let response = self
            .send(reference, Access::Pull, auth, || {
                self.client
                    .get(&url)
                    .header(ACCEPT, crate::manifest::OCI_INDEX)
            })
            .await?;
        match response.status() {
            StatusCode::OK => {
                let next = response
                    .headers()
                    .get(reqwest::header::LINK)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|link| next_page(response.url(), link));
                Ok(Some((self.read_manifest(response).await?, next)))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.refusal(response, &url).await),
        }
    }

    /// A manifest-sized body, read no further than [`MAX_MANIFEST_BYTES`].
    async fn read_manifest(
        &self,
        response: Response,
    ) -> Result<ManifestBody, OciDistributionError> {
        if let Some(len) = response
            .content_length()
            .filter(|l| *l > MAX_MANIFEST_BYTES)
        {
            return Ok(ManifestBody::TooLarge { read: len });
        }
        let mut body = Vec::new();
        let mut chunks = stall::guard(
            response
                .bytes_stream()
                .map(|c| c.map_err(std::io::Error::other))
                .boxed(),
            self.timeout,
        );
        while let Some(chunk) = chunks.next().await {
            body.extend_from_slice(&chunk.map_err(OciDistributionError::IoError)?);
            if body.len() as u64 > MAX_MANIFEST_BYTES {
                return Ok(ManifestBody::TooLarge {
                    read: body.len() as u64,
                });
            }
        }
        Ok(ManifestBody::Whole(body))
    }

    /// Streams a blob from `offset`. The second value says whether the stream starts
    /// at `offset` (true) or the registry ignored the range and sends it all (false).
    /// A range is asked for even at offset 0, so that the answer says which.
    pub async fn blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        offset: u64,
        auth: &RegistryAuth,
    ) -> Result<(BlobStream, bool), OciDistributionError> {
        let url = self.url(reference, &format!("blobs/{digest}"));
        let response = self
            .send(reference, Access::Pull, auth, || {
                self.client
                    .get(&url)
                    .header(RANGE, format!("bytes={offset}-"))
            })
            .await?;
        let from_offset = match response.status() {
            StatusCode::PARTIAL_CONTENT => true,
            StatusCode::OK => false,
            _ => return Err(self.refusal(response, &url).await),
        };
        let body = response
            .bytes_stream()
            .map(|c| c.map_err(std::io::Error::other))
            .boxed();
        Ok((stall::guard(body, self.timeout), from_offset))
    }

    /// The plain client, for the requests that `send` makes.
    pub fn http(&self) -> &reqwest::Client {
        &self.client
    }

    /// `https://host/v2/<repository>/<path>` for the reference's registry.
    pub fn url(&self, reference: &Reference, path: &str) -> String {
        format!(
            "{}://{}/v2/{}/{path}",
            scheme(&self.protocol, reference.registry()),
            host(reference.registry()),
            reference.repository()
        )
    }

    /// Sends the request that `build` makes (called again for a second try, so that a
    /// streamed body can be made afresh), answering one 401 with what its challenge
    /// asks for.
    pub async fn send(
        &self,
        reference: &Reference,
        access: Access,
        auth: &RegistryAuth,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, OciDistributionError> {
        self.send_watched(reference, access, auth, &Progress::default(), build)
            .await
    }

    /// As [`send`](Self::send), given up on when `progress` (which an upload's body
    /// touches) sees a whole timeout window pass without any.
    pub async fn send_watched(
        &self,
        reference: &Reference,
        access: Access,
        auth: &RegistryAuth,
        progress: &Progress,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, OciDistributionError> {
        let registry = reference.registry().to_owned();
        let actions = match access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
        };
        let scope = format!("repository:{}:{actions}", reference.repository());
        let whole = reference.whole();
        let url = whole.as_str();
        let origin = reqwest::Url::parse(&self.url(reference, "")).ok();
        let request = |proof: Option<Proof>| {
            let mut request = build()
                .build()
                .map_err(OciDistributionError::RequestError)?;
            // Proof goes only to the registry itself, never to another host that an
            // upload's Location names.
            let to_registry = origin
                .as_ref()
                .is_some_and(|o| same_origin(o, request.url()));
            if let Some(proof) = proof.filter(|_| to_registry) {
                let value = proof.header().ok_or_else(|| {
                    OciDistributionError::AuthenticationFailure(
                        "the credentials or token cannot be sent in a header".into(),
                    )
                })?;
                request.headers_mut().insert(AUTHORIZATION, value);
            }
            Ok::<_, OciDistributionError>(request)
        };
        let known = self.known_proof(&registry, &scope, auth);
        let sent_token = match &known {
            Some(Proof::Bearer(token)) => Some(token.clone()),
            _ => None,
        };
        let response = self.watched(request(known)?, progress).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(challenge::parse);
        let proof = match challenge {
            Some(Challenge::Basic) => match auth {
                RegistryAuth::Basic(user, password) => {
                    self.lock().basic.insert(registry.clone());
                    Proof::Basic(user.clone(), password.clone())
                }
                RegistryAuth::Anonymous => {
                    return Err(OciDistributionError::AuthenticationFailure(
                        NO_CREDENTIALS.into(),
                    ))
                }
                RegistryAuth::Bearer(_) => return Err(unauthorized(url)),
            },
            Some(Challenge::Bearer {
                realm,
                service,
                scope: asked,
            }) => {
                let key = (registry.clone(), asked.unwrap_or(scope));
                // One token request per scope: requests refused at the same moment (a
                // run's first burst of downloads) wait for it instead of each asking.
                let gate = self.lock().fetching.entry(key.clone()).or_default().clone();
                let _turn = gate.lock().await;
                let cached = self.lock().tokens.get(&key).cloned();
                let token = match cached {
                    // Fetched while this request waited: not the one just refused.
                    Some(token) if Some(&token) != sent_token.as_ref() => token,
                    _ => {
                        let token = self.token(&realm, service.as_deref(), &key.1, auth).await?;
                        self.lock().tokens.insert(key, token.clone());
                        token
                    }
                };
                Proof::Bearer(token)
            }
            None => return Err(unauthorized(url)),
        };
        let response = self.watched(request(Some(proof))?, progress).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(unauthorized(url));
        }
        Ok(response)
    }

    /// Sends `request`, failing as stalled once `progress` has been idle for a window.
    /// reqwest's own read timeout is not used: it also runs while a long upload is
    /// still being sent, and would cut it off.
    async fn watched(
        &self,
        request: reqwest::Request,
        progress: &Progress,
    ) -> Result<Response, OciDistributionError> {
        tokio::select! {
            sent = self.client.execute(request) => sent.map_err(OciDistributionError::RequestError),
            () = progress.idle_for(self.timeout) => {
                Err(OciDistributionError::IoError(stall::stalled(self.timeout)))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Proofs> {
        self.proofs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What this run already knows the registry wants, to send with the first try.
    fn known_proof(&self, registry: &str, scope: &str, auth: &RegistryAuth) -> Option<Proof> {
        let proofs = self.lock();
        if let Some(token) = proofs.tokens.get(&(registry.to_owned(), scope.to_owned())) {
            return Some(Proof::Bearer(token.clone()));
        }
        match auth {
            RegistryAuth::Basic(user, password) if proofs.basic.contains(registry) => {
                Some(Proof::Basic(user.clone(), password.clone()))
            }
            RegistryAuth::Bearer(token) => Some(Proof::Bearer(token.clone())),
            _ => None,
        }
    }

    /// A token from `realm` for `scope`, asked for with the credentials if there are
    /// any (anonymously otherwise, as public images on real registries are).
    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        auth: &RegistryAuth,
    ) -> Result<String, OciDistributionError> {
        let mut query = vec![("scope", scope)];
        if let Some(service) = service {
            query.push(("service", service));
        }
        let mut request = self.client.get(realm).query(&query);
        if let RegistryAuth::Basic(user, password) = auth {
            request = request.basic_auth(user, Some(password));
        }
        let request = request
            .build()
            .map_err(OciDistributionError::RequestError)?;
        let response = self.watched(request, &Progress::default()).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(match auth {
                    RegistryAuth::Anonymous => {
                        OciDistributionError::AuthenticationFailure(NO_CREDENTIALS.into())
                    }
                    _ => unauthorized(realm),
                })
            }
            _ => return Err(self.refusal(response, realm).await),
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = tokio::time::timeout(self.timeout, read_capped(response, TOKEN_BYTES))
            .await
            .map_err(|_| OciDistributionError::IoError(stall::stalled(self.timeout)))??;
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            OciDistributionError::AuthenticationFailure(format!(
                "the token service at {realm} answered without a token: {e}"
            ))
        })?;
        answer.token.or(answer.access_token).ok_or_else(|| {
            OciDistributionError::AuthenticationFailure(format!(
                "the token service at {realm} answered without a token"
            ))
        })
    }

    /// A registry's refusal, in the shape oci-client gives it; the body is read only
    /// as far as a message needs.
    pub async fn refusal(&self, response: Response, url: &str) -> OciDistributionError {
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return unauthorized(url);
        }
        // A body that does not come within a window is left out of the message.
        let body = tokio::time::timeout(self.timeout, read_capped(response, ERROR_BODY_BYTES))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        if status.is_client_error() {
            if let Ok(envelope) = serde_json::from_slice::<OciEnvelope>(&body) {
                return OciDistributionError::RegistryError {
                    envelope,
                    url: url.to_owned(),
                };
            }
        }
        OciDistributionError::ServerError {
            code: status.as_u16(),
            url: url.to_owned(),
            message: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

/// The `rel="next"` target of a `Link` header (`<url>; rel="next"`), resolved against
/// the URL it came with. Only a page on the same origin is followed: credentials go
/// with it.
fn next_page(current: &reqwest::Url, link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let url = current.join(target).ok()?;
        (next && same_origin(current, &url)).then(|| url.to_string())
    })
}

fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

enum Proof {
    Basic(String, String),
    Bearer(String),
}

impl Proof {
    /// The Authorization value; `None` if a token holds bytes a header cannot.
    fn header(&self) -> Option<HeaderValue> {
        let text = match self {
            Self::Basic(user, password) => {
                use base64::Engine;
                let pair = format!("{user}:{password}");
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
            Self::Bearer(token) => format!("Bearer {token}"),
        };
        let mut value = HeaderValue::from_str(&text).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

const ERROR_BODY_BYTES: u64 = 64 * 1024;
const TOKEN_BYTES: u64 = 1024 * 1024;

fn unauthorized(url: &str) -> OciDistributionError {
    OciDistributionError::UnauthorizedError {
        url: url.to_owned(),
    }
}

/// At most `limit` bytes of a body.
async fn read_capped(mut response: Response, limit: u64) -> Result<Vec<u8>, OciDistributionError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(OciDistributionError::RequestError)?
    {
        body.extend_from_slice(&chunk);
        if body.len() as u64 >= limit {
            body.truncate(limit as usize);
            break;
        }
    }
    Ok(body)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_of_referrers_is_the_link_header_s_rel_next_on_the_same_origin() {
        let current =
            reqwest::Url::parse("http://127.0.0.1:5000/v2/app/referrers/sha256:ab").unwrap();
        assert_eq!(
            next_page(
                &current,
                r#"</v2/app/referrers/sha256:ab?n=1&last=x>; rel="next""#
            )
            .as_deref(),
            Some("http://127.0.0.1:5000/v2/app/referrers/sha256:ab?n=1&last=x")
        );
        assert_eq!(next_page(&current, r#"</elsewhere>; rel="prev""#), None);
        assert_eq!(
            next_page(&current, r#"<http://other.example/v2/x>; rel="next""#),
            None
        );
    }

    #[test]
    fn proof_goes_to_the_registry_s_own_scheme_host_and_port_only() {
        let registry = reqwest::Url::parse("https://registry.example/v2/app/").unwrap();
        let same =
            reqwest::Url::parse("https://registry.example:443/v2/app/blobs/uploads/1").unwrap();
        assert!(same_origin(&registry, &same));
        for other in [
            "https://storage.example/upload/1",
            "http://registry.example/v2/app/blobs/uploads/1",
            "https://registry.example:5000/v2/app/blobs/uploads/1",
        ] {
            assert!(
                !same_origin(&registry, &reqwest::Url::parse(other).unwrap()),
                "{other}"
            );
        }
    }
}
