//! Setting up a run's registry client: which registries get plain HTTP (all when the
//! run asks, else loopback ones whose port answers no TLS handshake), the CA file,
//! certificate checks, the connect timeout and the user agent; and rustls's crypto
//! provider (`ring`), which must be installed before any client is built.

use std::collections::BTreeSet;
use std::time::Duration;

use oci_client::client::ClientProtocol;
use oci_client::errors::OciDistributionError;

use super::direct::DirectClient;
use super::{retry, Credentials, Registry, RegistryError, Transport};

/// Whether `registry` (`host[:port]`) is a loopback address, which may use plain HTTP
/// without a flag.
fn is_loopback(registry: &str) -> bool {
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
            http_client(transport, ca.as_deref())?,
            transport.timeout,
        );
        Ok(Self {
            http,
            credentials,
            answered: retry::Answered::default(),
        })
    }

    /// Another source (create's Docker daemon) stands behind these registries: one that
    /// refuses its first connection is given up at once rather than retried, so the
    /// other source is asked without waiting out the backoff (see `retry`).
    pub fn backed_by_fallback(mut self) -> Self {
        self.answered.fallback_behind();
        self
    }
}

const USER_AGENT: &str = concat!("pkgr/", env!("CARGO_PKG_VERSION"));

/// Makes `ring` rustls's provider for the process, once: reqwest is built without a
/// provider of its own (see Cargo.toml), and panics on a client built before this.
pub fn install_tls_provider() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Err only when a provider is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The HTTP client for every request of the run, with its TLS settings.
fn http_client(transport: &Transport, ca: Option<&[u8]>) -> Result<reqwest::Client, RegistryError> {
    install_tls_provider();
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
    install_tls_provider();
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
