//! Sigstore bundles (v0.3) attached as OCI referrers, as cosign 3 stores them: a
//! manifest whose `subject` is the image and whose layer is the bundle's JSON. Either
//! a message signature over the image's manifest (its `messageDigest` is the manifest
//! digest) or a DSSE envelope whose in-toto statement names the manifest digest as a
//! subject; the DSSE signature covers the envelope's PAE encoding.

use base64::Engine;
use serde::Deserialize;

use super::{Finding, ImageKeys};
use crate::digest::Digest;

/// The media types a bundle's layer and its referrer manifest carry.
pub const BUNDLE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    #[serde(default)]
    verification_material: Material,
    message_signature: Option<MessageSignature>,
    dsse_envelope: Option<Envelope>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Material {
    certificate: Option<serde_json::Value>,
    x509_certificate_chain: Option<serde_json::Value>,
    #[serde(default)]
    tlog_entries: Vec<serde_json::Value>,
    public_key: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSignature {
    message_digest: MessageDigest,
    signature: String,
}

#[derive(Deserialize)]
struct MessageDigest {
    algorithm: String,
    digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Deserialize)]
struct Statement {
    #[serde(default)]
    subject: Vec<StatementSubject>,
}

#[derive(Deserialize)]
struct StatementSubject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// What one bundle's bytes say of `subject`. Bundles whose verification material is a
/// certificate are keyless, and so are those that carry only transparency-log entries:
/// neither is checked here. Entries beside a key are not checked either.
pub fn judge(bytes: &[u8], subject: &Digest, keys: &ImageKeys) -> Finding {
    let Ok(bundle) = serde_json::from_slice::<Bundle>(bytes) else {
        return Finding::Unreadable("the bundle is not Sigstore bundle JSON".into());
    };
    let material = &bundle.verification_material;
    if material.certificate.is_some() || material.x509_certificate_chain.is_some() {
        return Finding::Keyless("certificate");
    }
    if material.public_key.is_none() && !material.tlog_entries.is_empty() {
        return Finding::Keyless("transparency-log entry");
    }
    match (bundle.message_signature, bundle.dsse_envelope) {
        (Some(message), _) => judge_message(&message, subject, keys),
        (None, Some(envelope)) => judge_envelope(&envelope, subject, keys),
        (None, None) => Finding::Unreadable("the bundle holds no signature".into()),
    }
}

fn judge_message(message: &MessageSignature, subject: &Digest, keys: &ImageKeys) -> Finding {
    let digest = &message.message_digest;
    let (Some(named), Some(signature)) = (decode(&digest.digest), decode(&message.signature))
    else {
        return Finding::Unreadable("the bundle's message signature is not base64".into());
    };
    if digest.algorithm != "SHA2_256" || named.len() != 32 {
        return Finding::Unreadable(format!(
            "the bundle's message digest is {}, not SHA2_256",
            digest.algorithm
        ));
    }
    let Some(signer) = keys.signer_of_digest(&named, &signature) else {
        return Finding::OtherKey;
    };
    let named = format!("sha256:{}", hex(&named));
    if named == subject.to_string() {
        Finding::Valid(signer.to_owned())
    } else {
        Finding::OtherDigest(named)
    }
}

fn judge_envelope(envelope: &Envelope, subject: &Digest, keys: &ImageKeys) -> Finding {
    let Some(payload) = decode(&envelope.payload) else {
        return Finding::Unreadable("the bundle's DSSE payload is not base64".into());
    };
    let signed = pae(&envelope.payload_type, &payload);
    let signer = envelope
        .signatures
        .iter()
        .filter_map(|s| decode(&s.sig))
        .find_map(|sig| keys.signer_of(&signed, &sig));
    let Some(signer) = signer else {
        return Finding::OtherKey;
    };
    let Ok(statement) = serde_json::from_slice::<Statement>(&payload) else {
        return Finding::Unreadable("the bundle's DSSE payload is not an in-toto statement".into());
    };
    let names: Vec<&String> = statement
        .subject
        .iter()
        .filter_map(|s| s.digest.get("sha256"))
        .collect();
    if names.iter().any(|hex| hex.as_str() == subject.hex()) {
        Finding::Valid(signer.to_owned())
    } else {
        let named = names
            .first()
            .map_or("no sha256 digest".to_owned(), |h| format!("sha256:{h}"));
        Finding::OtherDigest(named)
    }
}

/// DSSE's pre-authentication encoding: what a DSSE signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut encoded = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    encoded.extend_from_slice(payload);
    encoded
}

fn decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
