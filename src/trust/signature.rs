//! Signing a file and checking its signature, in cosign's two offline forms: the
//! detached signature (base64 of the DER ECDSA signature, as `cosign sign-blob`
//! writes it) and the Sigstore bundle. ECDSA with SHA-256 over the file's bytes, made
//! deterministic by RFC 6979 (RustCrypto's `p256` signs no other way), so signing the
//! same file with the same key gives the same bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, Signature};
use sha2::{Digest as _, Sha256};

use super::bundle::{
    Bundle, MessageDigest, MessageSignature, PublicKeyHint, VerificationMaterial, BUNDLE_MEDIA_TYPE,
};
use super::{PublicKey, SigningKey, TrustError};

/// A file's signature in both forms, ready to be written.
pub struct Signed {
    /// The detached signature's file content.
    pub detached: Vec<u8>,
    /// The Sigstore bundle's file content.
    pub bundle: Vec<u8>,
}

/// Signs `message` (the signed file's bytes).
pub fn sign(key: &SigningKey, message: &[u8]) -> Signed {
    let signature: Signature = key.0.sign(message);
    let der: DerSignature = signature.to_der();
    let encoded = STANDARD.encode(der.as_bytes());
    let bundle = Bundle {
        media_type: BUNDLE_MEDIA_TYPE.to_owned(),
        verification_material: VerificationMaterial {
            // sigstore-go names a key by the base64 of its SPKI DER's SHA-256.
            public_key: PublicKeyHint {
                hint: STANDARD.encode(Sha256::digest(key.public_key().to_der())),
            },
            tlog_entries: Vec::new(),
        },
        message_signature: MessageSignature {
            message_digest: MessageDigest {
                algorithm: "SHA2_256".to_owned(),
                digest: STANDARD.encode(Sha256::digest(message)),
            },
            signature: encoded.clone(),
        },
    };
    let mut bundle = serde_json::to_vec(&bundle).expect("a bundle always serializes");
    bundle.push(b'\n');
    Signed {
        detached: encoded.into_bytes(),
        bundle,
    }
}

/// Checks a detached signature file (base64 of a DER signature) over `message`.
pub fn verify_detached(key: &PublicKey, message: &[u8], file: &[u8]) -> Result<(), TrustError> {
    let text = std::str::from_utf8(file)
        .map_err(|_| TrustError::Malformed("the signature is not base64".to_owned()))?;
    let der = STANDARD
        .decode(text.trim())
        .map_err(|_| TrustError::Malformed("the signature is not base64".to_owned()))?;
    verify_der(key, message, &der)
}

/// Checks a Sigstore bundle over `message`: its media type, that its digest is the
/// message's SHA-256, and its signature.
pub fn verify_bundle(key: &PublicKey, message: &[u8], file: &[u8]) -> Result<(), TrustError> {
    let malformed = |what: &str| TrustError::Malformed(format!("the bundle {what}"));
    let bundle: Bundle = serde_json::from_slice(file)
        .map_err(|e| TrustError::Malformed(format!("the bundle cannot be read: {e}")))?;
    if !bundle
        .media_type
        .starts_with("application/vnd.dev.sigstore.bundle")
    {
        return Err(malformed("is not a Sigstore bundle"));
    }
    if !bundle.verification_material.tlog_entries.is_empty() {
        return Err(malformed(
            "carries transparency-log entries: keyless signatures are not checked here",
        ));
    }
    let digest = &bundle.message_signature.message_digest;
    if digest.algorithm != "SHA2_256" {
        return Err(malformed("digest is not SHA2_256"));
    }
    let claimed = STANDARD
        .decode(&digest.digest)
        .map_err(|_| malformed("digest is not base64"))?;
    if claimed != Sha256::digest(message).as_slice() {
        return Err(malformed("digest is not the signed file's"));
    }
    let der = STANDARD
        .decode(&bundle.message_signature.signature)
        .map_err(|_| malformed("signature is not base64"))?;
    verify_der(key, message, &der)
}

fn verify_der(key: &PublicKey, message: &[u8], der: &[u8]) -> Result<(), TrustError> {
    let signature = Signature::from_der(der)
        .map_err(|_| TrustError::Malformed("the signature is not DER ECDSA".to_owned()))?;
    key.0
        .verify(message, &signature)
        .map_err(|_| TrustError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey(p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).unwrap())
    }

    #[test]
    fn signatures_are_deterministic_and_verify_in_both_forms() {
        let (one, other) = (key(7), key(9));
        let signed = sign(&one, b"pkgr.yaml bytes");
        let again = sign(&one, b"pkgr.yaml bytes");
        assert_eq!(signed.detached, again.detached);
        assert_eq!(signed.bundle, again.bundle);
        let public = one.public_key();
        verify_detached(&public, b"pkgr.yaml bytes", &signed.detached).unwrap();
        verify_bundle(&public, b"pkgr.yaml bytes", &signed.bundle).unwrap();
        assert!(matches!(
            verify_detached(&public, b"pkgr.yaml byteS", &signed.detached),
            Err(TrustError::BadSignature)
        ));
        assert!(verify_bundle(&public, b"pkgr.yaml byteS", &signed.bundle).is_err());
        assert!(matches!(
            verify_detached(&other.public_key(), b"pkgr.yaml bytes", &signed.detached),
            Err(TrustError::BadSignature)
        ));
    }
}
