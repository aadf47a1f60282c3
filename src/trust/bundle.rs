//! The Sigstore bundle (v0.3) of a message signature made with a key: the digest of
//! the signed file and the signature, the key named only by a hint, and no
//! transparency-log entry. Serialized one fixed way, so the same key and file give the
//! same bytes.

use serde::{Deserialize, Serialize};

pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Bundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    pub message_signature: MessageSignature,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct VerificationMaterial {
    pub public_key: PublicKeyHint,
    /// Always empty here (keyed signatures, checked offline), and then left out, as
    /// protobuf's JSON leaves out an empty list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tlog_entries: Vec<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct PublicKeyHint {
    #[serde(default)]
    pub hint: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MessageSignature {
    pub message_digest: MessageDigest,
    /// Base64 of the DER ECDSA signature.
    pub signature: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct MessageDigest {
    /// `SHA2_256`.
    pub algorithm: String,
    /// Base64 of the digest's bytes.
    pub digest: String,
}
