//! How a failed request becomes the [`RegistryError`] users see: by the registry's
//! error codes, the HTTP status, and the transport error's own type (a timeout, a
//! connection that failed, a TLS handshake answered in plain HTTP or with a
//! certificate no trusted root signed).

use std::error::Error;

use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::Reference;

use super::{direct, Registry, RegistryError};

impl Registry {
    /// The error users see for `err`, a failure while asking for `what` (of
    /// `reference`): by the registry's error codes, the HTTP status, and the type of
    /// the transport's error.
    pub fn classify(
        &self,
        reference: &Reference,
        what: &str,
        err: OciDistributionError,
    ) -> RegistryError {
        let registry = reference.registry().to_owned();
        if let OciDistributionError::AuthenticationFailure(message) = &err {
            if let Some(realm) = direct::plain_http_realm(message) {
                return RegistryError::PlainHttpTokenService {
                    registry,
                    realm: realm.to_owned(),
                };
            }
        }
        match &err {
            OciDistributionError::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|e| {
                    matches!(
                        e.code,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NotFound
                    )
                }) =>
            {
                RegistryError::NotFound {
                    reference: what.to_owned(),
                }
            }
            OciDistributionError::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|e| {
                    matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)
                }) =>
            {
                RegistryError::Unauthorized {
                    registry,
                    reference: reference.whole(),
                }
            }
            OciDistributionError::ServerError { code: 404, .. } => RegistryError::NotFound {
                reference: what.to_owned(),
            },
            OciDistributionError::AuthenticationFailure(message)
                if message == direct::NO_CREDENTIALS =>
            {
                RegistryError::NoCredentials {
                    registry,
                    reference: reference.whole(),
                }
            }
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => RegistryError::Unauthorized {
                registry,
                reference: reference.whole(),
            },
            OciDistributionError::RequestError(e)
                if e.status()
                    .is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403) =>
            {
                RegistryError::Unauthorized {
                    registry,
                    reference: reference.whole(),
                }
            }
            OciDistributionError::RequestError(e) if e.is_timeout() && !e.is_connect() => {
                RegistryError::Stalled {
                    registry,
                    what: what.to_owned(),
                    source: err,
                }
            }
            OciDistributionError::IoError(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                RegistryError::Stalled {
                    registry,
                    what: what.to_owned(),
                    source: err,
                }
            }
            OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
                match handshake_failure(e) {
                    Some(Handshake::PlainHttp) => RegistryError::PlainHttpPort {
                        registry,
                        source: err,
                    },
                    Some(Handshake::Certificate { signer_unknown }) => {
                        RegistryError::UntrustedCertificate {
                            registry,
                            signer_unknown,
                            source: err,
                        }
                    }
                    None => RegistryError::Unreachable {
                        registry,
                        source: err,
                    },
                }
            }
            _ => RegistryError::Other {
                what: what.to_owned(),
                source: err,
            },
        }
    }
}

/// A TLS handshake that failed in a way it will fail every time.
pub(super) enum Handshake {
    /// The port answered in plain HTTP: no TLS record (`InvalidContentType`).
    PlainHttp,
    /// The certificate was refused; `signer_unknown` when no trusted root signed it
    /// (a CA file may help), not when it is expired or for another name.
    Certificate { signer_unknown: bool },
}

/// How the TLS handshake of `err` failed, when it failed in a way that recurs.
pub(super) fn handshake_failure(err: &reqwest::Error) -> Option<Handshake> {
    match tls_failure(err)? {
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
            Some(Handshake::PlainHttp)
        }
        rustls::Error::InvalidCertificate(why) => Some(Handshake::Certificate {
            signer_unknown: matches!(
                why,
                rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature
            ),
        }),
        _ => None,
    }
}

/// Why the TLS handshake failed, when it did: rustls's error, found in the chain of
/// causes.
fn tls_failure(err: &reqwest::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // An `io::Error`'s `source()` skips the error it wraps: rustls's sits there.
        cause = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn Error + 'static)),
            None => e.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use oci_client::client::ClientProtocol;
    use oci_client::secrets::RegistryAuth;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::registry::direct::DirectClient;
    use crate::registry::Credentials;

    fn over_tls() -> Registry {
        crate::registry::install_tls_provider();
        let client = reqwest::Client::builder().build().unwrap();
        Registry {
            http: DirectClient::new(ClientProtocol::Https, client, Duration::from_secs(5)),
            credentials: Credentials::default(),
            answered: Default::default(),
        }
    }

    /// How asking `address` for a manifest fails.
    async fn manifest_error(registry: &Registry, address: std::net::SocketAddr) -> RegistryError {
        let reference: Reference = format!("{address}/app:1").parse().unwrap();
        let err = registry
            .http
            .manifest(&reference, &RegistryAuth::Anonymous)
            .await
            .err()
            .expect("the request succeeded");
        registry.classify(&reference, "the manifest", err)
    }

    #[tokio::test]
    async fn a_port_that_answers_tls_in_plain_http_is_told_apart_from_one_that_refuses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut hello = [0u8; 512];
                let _ = socket.read(&mut hello).await;
                let _ = socket
                    .write_all(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
                    .await;
            }
        });
        let registry = over_tls();
        let err = manifest_error(&registry, plain).await;
        assert!(
            matches!(err, RegistryError::PlainHttpPort { .. }),
            "{err:?}"
        );

        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let refusing = closed.local_addr().unwrap();
        drop(closed);
        let err = manifest_error(&registry, refusing).await;
        assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    }
}
