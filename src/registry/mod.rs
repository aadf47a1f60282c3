//! Registry access for pulls and pushes: the transport (TLS settings, and plain HTTP
//! for a loopback registry that speaks no TLS), credentials, retries with backoff,
//! and the errors users see. Every request is made by [`direct`], as plain HTTP
//! through reqwest; from oci-client come only `Reference`, `ClientProtocol`,
//! `RegistryAuth` and the error types (`OciDistributionError` and its envelope),
//! whose shapes retries and [`classify`] read.

pub mod auth;
mod classify;
mod direct;
mod retry;
pub mod stall;
mod upload;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use oci_client::client::ClientProtocol;
use oci_client::errors::OciDistributionError;
use oci_client::Reference;

/// A blob body as it arrives.
pub type BlobStream =
    futures_util::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>;

pub use auth::{AuthError, Credentials};
pub use retry::{backoff, MAX_ATTEMPTS};

use crate::digest::Digest;
use crate::manifest::MAX_MANIFEST_BYTES;
use direct::{DirectClient, ManifestBody};

/// How to reach registries, from the command line.
#[derive(Debug, Clone)]
pub struct Transport {
    pub plain_http: bool,
    pub insecure_skip_tls_verify: bool,
    pub ca_file: Option<PathBuf>,
    /// For connecting, for an answer to start, and for each window in which a body
    /// must make progress (see [`stall`]).
    pub timeout: Duration,
}

/// The most pages of one digest's referrers that are read: each may list up to 10,000
/// (`manifest::bounded`), far more artifacts than any image carries.
pub const MAX_REFERRER_PAGES: usize = 64;

/// `--timeout`'s default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Transport {
    fn default() -> Self {
        Self {
            plain_http: false,
            insecure_skip_tls_verify: false,
            ca_file: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{reference} was not found in its registry")]
    NotFound { reference: String },
    #[error("{registry} refused the credentials for {reference}")]
    Unauthorized { registry: String, reference: String },
    #[error("{registry} asks for credentials for {reference}, and none are configured for it")]
    NoCredentials { registry: String, reference: String },
    #[error("cannot reach the registry {registry}")]
    Unreachable {
        registry: String,
        #[source]
        source: OciDistributionError,
    },
    #[error("the TLS certificate of {registry} is not trusted")]
    UntrustedCertificate {
        registry: String,
        #[source]
        source: OciDistributionError,
    },
    #[error("{registry} does not speak TLS on that port")]
    PlainHttpPort {
        registry: String,
        #[source]
        source: OciDistributionError,
    },
    #[error(
        "the manifest of {reference} is over the {MAX_MANIFEST_BYTES}-byte limit (at least {size} bytes)"
    )]
    ManifestTooLarge { reference: String, size: u64 },
    #[error("the registry answered {reference} with content whose digest is not {expected}")]
    ManifestDigest { reference: String, expected: Digest },
    #[error("{registry} stalled while sending {what}")]
    Stalled {
        registry: String,
        what: String,
        #[source]
        source: OciDistributionError,
    },
    #[error("the request for {what} failed")]
    Other {
        what: String,
        #[source]
        source: OciDistributionError,
    },
    #[error("the bytes of blob {digest} could not be uploaded")]
    UploadSource {
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} run past {MAX_REFERRER_PAGES} pages")]
    TooManyReferrerPages { what: String },
    #[error("cannot read the CA file {}", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the HTTP client")]
    Setup(#[source] OciDistributionError),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl crate::hint::Hint for RegistryError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::NotFound { .. } => {
                Some("check the repository name and tag, and that the registry holds it".into())
            }
            Self::Unauthorized { .. } => Some(
                "log in with `docker login`, or check the credentials in Docker's config.json"
                    .into(),
            ),
            Self::NoCredentials { registry, .. } => Some(format!(
                "log in with `docker login {registry}` (pkgr reads Docker's config.json)"
            )),
            Self::Unreachable { .. } => {
                Some("check the host and port, and that the registry is running".into())
            }
            Self::UntrustedCertificate { .. } => Some(
                "pass --ca-file with the CA that signed it, or --insecure-skip-tls-verify".into(),
            ),
            Self::PlainHttpPort { .. } => {
                Some("the registry speaks plain HTTP: pass --plain-http".into())
            }
            Self::Stalled { .. } => Some(STALLED_HINT.into()),
            _ => None,
        }
    }
}

/// What to do about a registry that stalled.
pub const STALLED_HINT: &str =
    "it was retried and kept stalling; if the link is only slow, raise --timeout";

/// A registry client shared by every download of one run.
pub struct Registry {
    /// Every request (see [`direct`] for why not oci-client's client).
    http: DirectClient,
    credentials: Credentials,
}

/// Whether `registry` (`host[:port]`) is a loopback address, which may use plain HTTP
/// without a flag.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Registry {
    /// Builds one client for the given registries (as written in references).
    /// Loopback registries are probed: one that answers a TLS handshake gets HTTPS
    /// (verified as usual), any other gets plain HTTP without a flag.
    pub async fn connect(
        transport: &Transport,
        registries: &BTreeSet<String>,
        credentials: Credentials,
    ) -> Result<Self, RegistryError> {
        let protocol = if transport.plain_http {
            ClientProtocol::Http
        } else {
            let mut plain = Vec::new();
            for registry in registries.iter().filter(|r| is_loopback(r)) {
                if !speaks_tls(registry).await {
                    plain.push(registry.clone());
                }
            }
            // `direct::url` matches the exception list against `host[:port]` exactly.
            ClientProtocol::HttpsExcept(plain)
        };
        let ca = match &transport.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|source| RegistryError::CaFile {
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        let http = DirectClient::new(
            protocol.clone(),
            pull_client(transport, ca.as_deref())?,
            transport.timeout,
        );
        Ok(Self { http, credentials })
    }

    /// The exact bytes of a manifest, checked against the reference's digest if it has one.
    pub async fn manifest(
        &self,
        reference: &Reference,
    ) -> Result<(Vec<u8>, Digest), RegistryError> {
        let too_large = |size| RegistryError::ManifestTooLarge {
            reference: reference.whole(),
            size,
        };
        let auth = self.credentials.for_registry(reference.registry())?;
        let body = retry::with_retry(|| self.http.manifest(reference, &auth))
            .await
            .map_err(|e| self.classify(reference, &reference.whole(), e))?;
        let bytes = match body {
            ManifestBody::Whole(bytes) => bytes,
            ManifestBody::TooLarge { read } => return Err(too_large(read)),
        };
        let digest = Digest::of(&bytes);
        if let Some(pinned) = reference.digest() {
            if pinned != digest.to_string() {
                return Err(RegistryError::ManifestDigest {
                    reference: reference.whole(),
                    expected: pinned.parse().unwrap_or(digest),
                });
            }
        }
        Ok((bytes, digest))
    }

    /// Streams a blob from `offset`. The second value says whether the stream starts at
    /// `offset` (true) or the server ignored the range and sends the whole blob (false).
    ///
    /// Foreign-layer `urls` are never followed: only the registry itself is asked.
    pub async fn blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        offset: u64,
    ) -> Result<(BlobStream, bool), RegistryError> {
        let auth = self.credentials.for_registry(reference.registry())?;
        retry::with_retry(|| self.http.blob(reference, digest, offset, &auth))
            .await
            .map_err(|e| {
                self.classify(
                    reference,
                    &format!("blob {digest} of {}", reference.whole()),
                    e,
                )
            })
    }

    /// The referrers API's answer for `digest` in the reference's repository: each
    /// page's exact bytes (an index), following `Link: <…>; rel="next"` for at most
    /// [`MAX_REFERRER_PAGES`] pages, or `None` when the registry answers 404 (it has no
    /// such API, as docker-registry 2.8 has not). Any other failure is an error.
    pub async fn referrers(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<Option<Vec<Vec<u8>>>, RegistryError> {
        let what = format!("the referrers of {digest} in {}", reference.whole());
        let auth = self.credentials.for_registry(reference.registry())?;
        let mut pages = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = next.as_deref();
            let answer = retry::with_retry(|| self.http.referrers(reference, digest, page, &auth))
                .await
                .map_err(|e| self.classify(reference, &what, e))?;
            let (body, following) = match answer {
                // A 404 on a later page is a registry that lost its place: an error.
                None if pages.is_empty() => return Ok(None),
                None => {
                    return Err(RegistryError::NotFound {
                        reference: format!("{what}, page {}", pages.len() + 1),
                    })
                }
                Some(answer) => answer,
            };
            match body {
                ManifestBody::Whole(bytes) => pages.push(bytes),
                ManifestBody::TooLarge { read } => {
                    return Err(RegistryError::ManifestTooLarge {
                        reference: what,
                        size: read,
                    })
                }
            }
            match following {
                Some(url) if pages.len() < MAX_REFERRER_PAGES => next = Some(url),
                Some(_) => return Err(RegistryError::TooManyReferrerPages { what }),
                None => return Ok(Some(pages)),
            }
        }
    }
}

const USER_AGENT: &str = concat!("pkgr/", env!("CARGO_PKG_VERSION"));

/// A plain HTTP client with the TLS settings of the run, for pulls.
fn pull_client(transport: &Transport, ca: Option<&[u8]>) -> Result<reqwest::Client, RegistryError> {
    let mut builder = reqwest::Client::builder()
        .danger_accept_invalid_certs(transport.insecure_skip_tls_verify)
        .connect_timeout(transport.timeout)
        .user_agent(USER_AGENT);
    if let Some(pem) = ca {
        let certificate =
            reqwest::Certificate::from_pem(pem).map_err(|source| RegistryError::CaFile {
                path: transport.ca_file.clone().unwrap_or_default(),
                source: std::io::Error::other(source),
            })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build()
        .map_err(|e| RegistryError::Setup(OciDistributionError::RequestError(e)))
}

/// Whether a loopback registry completes a TLS handshake. The probe accepts any
/// certificate because it only asks which protocol the port speaks; it sends no
/// credentials, and the real client verifies certificates as configured.
async fn speaks_tls(registry: &str) -> bool {
    let Ok(probe) = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
    else {
        return false;
    };
    probe
        .get(format!("https://{registry}/v2/"))
        .send()
        .await
        .is_ok()
}
