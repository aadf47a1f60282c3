//! `--tls-cert`/`--tls-key`: a certificate chain and its private key, both PEM, made
//! into a rustls acceptor (on ring, the provider the registry client uses too).

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{crypto, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::ServeError;

pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, ServeError> {
    let refused = |path: &Path, reason: String| ServeError::Tls {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| refused(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(refused(cert, "it holds no PEM certificate".to_owned()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| refused(key, e.to_string()))?;
    let provider = Arc::new(crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| refused(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| refused(key, e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
