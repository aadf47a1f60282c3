//! Registry access for pulls and pushes, through one client per run: `connect` sets it
//! up, `download` and `upload` are the pull and push sides, each retried (`retry`) and
//! watched for stalls ([`stall`]), [`auth`] finds the credentials, and `classify` sorts
//! failures into the [`RegistryError`]s users see. Every request is made by `direct`,
//! as plain HTTP through reqwest; from oci-client come only `Reference`,
//! `ClientProtocol`, `RegistryAuth` and the error types (`OciDistributionError` and its
//! envelope), whose shapes retries and `classify` read.

pub mod auth;
mod classify;
mod connect;
pub(crate) mod direct;
mod download;
pub mod request_log;
mod retry;
pub mod stall;
mod upload;

use std::path::PathBuf;
use std::time::Duration;

use oci_client::errors::OciDistributionError;

/// A blob body as it arrives.
pub type BlobStream =
    futures_util::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>;

pub use auth::{AuthError, Credentials};
pub use connect::install_tls_provider;
pub use retry::{backoff, MAX_ATTEMPTS};

use crate::digest::Digest;
use crate::manifest::MAX_MANIFEST_BYTES;
use direct::DirectClient;

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
    #[error(
        "the credentials for {registry} were not sent to its token service {realm}: over plain HTTP they go only to the registry's own host, when the registry itself is plain HTTP"
    )]
    PlainHttpTokenService { registry: String, realm: String },
    #[error("cannot reach the registry {registry}")]
    Unreachable {
        registry: String,
        #[source]
        source: OciDistributionError,
    },
    #[error("the TLS certificate of {registry} is not trusted")]
    UntrustedCertificate {
        registry: String,
        /// No trusted root signed it (a CA file may help); else it is expired, for
        /// another name, or otherwise bad, which its cause says.
        signer_unknown: bool,
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
    fn hint(&self) -> Option<crate::hint::Fix> {
        use crate::hint::Fix;
        match self {
            Self::NotFound { .. } => Some(Fix::CheckName),
            Self::Unauthorized { .. } => Some(Fix::CheckCredentials),
            Self::NoCredentials { registry, .. } => Some(Fix::LogIn {
                registry: registry.clone(),
            }),
            Self::PlainHttpTokenService { .. } => Some(Fix::TokenServiceOverHttps),
            Self::Unreachable { .. } => Some(Fix::CheckHost),
            Self::UntrustedCertificate {
                signer_unknown: true,
                ..
            } => Some(Fix::TrustCa),
            Self::PlainHttpPort { .. } => Some(Fix::PlainHttp),
            Self::Stalled { .. } => Some(Fix::RaiseTimeout),
            _ => None,
        }
    }
}

/// The registry client of one run, shared by all its requests, pulls and pushes.
pub struct Registry {
    /// Every request (see [`direct`] for why not oci-client's client).
    http: DirectClient,
    credentials: Credentials,
    /// Which registries have answered, for [`retry::with_retry`].
    answered: retry::Answered,
}
