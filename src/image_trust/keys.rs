//! The public keys given with `--image-key`: PEM SPKI ECDSA P-256 keys, as `openssl`
//! and `cosign` write them, each named by the path it was read from.

use std::path::{Path, PathBuf};

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the --image-key {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the --image-key {} is not a PEM ECDSA P-256 public key (SPKI, as `openssl pkey -pubout` and `cosign generate-key-pair` write it)", path.display())]
    NotAKey { path: PathBuf },
}

/// The keys an image may be signed by, in the order given.
#[derive(Debug, Clone)]
pub struct ImageKeys {
    keys: Vec<(String, VerifyingKey)>,
}

impl ImageKeys {
    /// Reads each key file; the first that cannot be used is the error.
    pub fn load(paths: &[PathBuf]) -> Result<Self, KeyError> {
        let keys = paths
            .iter()
            .map(|path| Ok((path.display().to_string(), read_key(path)?)))
            .collect::<Result<_, KeyError>>()?;
        Ok(Self { keys })
    }

    /// The keys of PEM texts, each with a name: for tests and callers that hold keys.
    pub fn from_pems(pems: &[(&str, &str)]) -> Option<Self> {
        let keys = pems
            .iter()
            .map(|(name, pem)| {
                Some((
                    (*name).to_owned(),
                    VerifyingKey::from_public_key_pem(pem).ok()?,
                ))
            })
            .collect::<Option<_>>()?;
        Some(Self { keys })
    }

    /// The name of the first key under which the DER `signature` verifies over `message`.
    pub fn signer_of(&self, message: &[u8], signature: &[u8]) -> Option<&str> {
        let signature = parse(signature)?;
        self.keys
            .iter()
            .find(|(_, key)| key.verify(message, &signature).is_ok())
            .map(|(name, _)| name.as_str())
    }

    /// As [`Self::signer_of`], for a message known only by its SHA-256 `digest`.
    pub fn signer_of_digest(&self, digest: &[u8], signature: &[u8]) -> Option<&str> {
        let signature = parse(signature)?;
        self.keys
            .iter()
            .find(|(_, key)| key.verify_prehash(digest, &signature).is_ok())
            .map(|(name, _)| name.as_str())
    }
}

/// A DER signature, its `s` made low: ECDSA accepts either half, and some signers
/// (openssl among them) leave a high `s`.
fn parse(der: &[u8]) -> Option<Signature> {
    let signature = Signature::from_der(der).ok()?;
    Some(signature.normalize_s().unwrap_or(signature))
}

fn read_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    VerifyingKey::from_public_key_pem(text.trim()).map_err(|_| KeyError::NotAKey {
        path: path.to_owned(),
    })
}
