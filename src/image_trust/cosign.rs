//! cosign's own signature form: a `sha256-<hex>.sig` manifest whose layers are
//! simple-signing payloads. The payload names the image's manifest digest; the layer's
//! `dev.cosignproject.cosign/signature` annotation is the base64 DER ECDSA signature
//! over the payload's exact bytes.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

use super::{Finding, ImageKeys};
use crate::digest::Digest;

/// The media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// Set when the signer held a Fulcio certificate rather than a key: keyless.
const CERTIFICATE: &str = "dev.sigstore.cosign/certificate";

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: Image,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// What one simple-signing layer (its annotations and payload bytes) says of `subject`.
pub fn judge(
    annotations: &BTreeMap<String, String>,
    payload: &[u8],
    subject: &Digest,
    keys: &ImageKeys,
) -> Finding {
    if annotations.get(CERTIFICATE).is_some_and(|c| !c.is_empty()) {
        return Finding::Keyless("certificate");
    }
    let Some(signature) = annotations.get(SIGNATURE) else {
        return Finding::Unreadable(format!("its layer has no {SIGNATURE} annotation"));
    };
    let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return Finding::Unreadable(format!("its {SIGNATURE} annotation is not base64"));
    };
    let Ok(payload_json) = serde_json::from_slice::<Payload>(payload) else {
        return Finding::Unreadable("its payload is not a simple-signing document".into());
    };
    let Some(signer) = keys.signer_of(payload, &signature) else {
        return Finding::OtherKey;
    };
    let named = payload_json.critical.image.docker_manifest_digest;
    if named == subject.to_string() {
        Finding::Valid(signer.to_owned())
    } else {
        Finding::OtherDigest(named)
    }
}
