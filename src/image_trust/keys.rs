//! The public keys given with `--image-key`: PEM SPKI ECDSA P-256 keys, as `openssl`
//! and `cosign` write them, read and checked by `trust`'s own key loading, each named
//! by the path it was read from.

use std::path::PathBuf;

use crate::trust::{PublicKey, TrustError};

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the --image-key {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the --image-key {} is not a PEM ECDSA P-256 public key (SPKI, as `openssl pkey -pubout` and `cosign generate-key-pair` write it): {reason}", path.display())]
    NotAKey { path: PathBuf, reason: String },
}

/// The keys an image may be signed by, in the order given.
#[derive(Debug, Clone)]
pub struct ImageKeys {
    keys: Vec<(String, PublicKey)>,
}

impl ImageKeys {
    /// Reads each key file; the first that cannot be used is the error.
    pub fn load(paths: &[PathBuf]) -> Result<Self, KeyError> {
        let keys = paths
            .iter()
            .map(|path| {
                let key = PublicKey::load(path).map_err(|e| match e {
                    TrustError::Io { path, source } => KeyError::Read { path, source },
                    TrustError::NotAKey { reason, .. } => KeyError::NotAKey {
                        path: path.clone(),
                        reason,
                    },
                    other => KeyError::NotAKey {
                        path: path.clone(),
                        reason: other.to_string(),
                    },
                })?;
                Ok((path.display().to_string(), key))
            })
            .collect::<Result<_, KeyError>>()?;
        Ok(Self { keys })
    }

    /// The keys of PEM texts, each with a name: for tests and callers that hold keys.
    pub fn from_pems(pems: &[(&str, &str)]) -> Option<Self> {
        let keys = pems
            .iter()
            .map(|(name, pem)| Some(((*name).to_owned(), PublicKey::from_pem(pem)?)))
            .collect::<Option<_>>()?;
        Some(Self { keys })
    }

    /// The name of the first key under which the DER `signature` verifies over `message`.
    pub fn signer_of(&self, message: &[u8], signature: &[u8]) -> Option<&str> {
        self.keys
            .iter()
            .find(|(_, key)| key.verifies(message, signature))
            .map(|(name, _)| name.as_str())
    }

    /// As [`Self::signer_of`], for a message known only by its SHA-256 `digest`.
    pub fn signer_of_digest(&self, digest: &[u8], signature: &[u8]) -> Option<&str> {
        self.keys
            .iter()
            .find(|(_, key)| key.verifies_prehash(digest, signature))
            .map(|(name, _)| name.as_str())
    }
}
