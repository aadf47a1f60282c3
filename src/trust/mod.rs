//! Package signatures, with RustCrypto's primitives and none written here: ECDSA P-256
//! keys (`keys`: an openssl PKCS#8 private key, cosign's encrypted key file opened by
//! `cosign_key`, SPKI public keys), deterministic RFC 6979 signatures over a file in the
//! two forms cosign reads offline (`signature`: the detached base64 DER signature, and
//! a Sigstore bundle from `bundle`), and their verification; these know nothing of
//! packages. Image signatures (`--image-key`) are `image_trust`'s, higher up.

mod bundle;
mod cosign_key;
mod keys;
mod signature;

pub use bundle::BUNDLE_MEDIA_TYPE;
pub use keys::{PublicKey, SigningKey, PASSWORD_ENV};
pub use signature::{sign, verify_bundle, verify_detached, Signed};

/// Why a key could not be loaded, or a signature does not verify. Every text is one
/// sentence that names the file it is about where there is one.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read the key {}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not {expected}: {reason}", path.display())]
    NotAKey {
        path: std::path::PathBuf,
        expected: &'static str,
        reason: String,
    },
    #[error("{} is a cosign key encrypted with a password: set {PASSWORD_ENV} or run on a terminal to be asked for it", path.display())]
    NoPassword { path: std::path::PathBuf },
    #[error("cannot open {}: the password is wrong, or the file is damaged", path.display())]
    WrongPassword { path: std::path::PathBuf },
    #[error("cannot read the password for {}", path.display())]
    PasswordUnreadable {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A signature file that is not what its form says.
    #[error("{0}")]
    Malformed(String),
    #[error("the signature does not verify with this key")]
    BadSignature,
}
