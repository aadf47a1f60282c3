//! The judgement on signatures built in memory with keys made from fixed scalars.

use std::collections::BTreeMap;

use base64::Engine;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};

use super::*;

fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).unwrap()
}

fn keys_of(seeds: &[u8]) -> ImageKeys {
    let pems: Vec<(String, String)> = seeds
        .iter()
        .map(|s| {
            let pem = signing_key(*s)
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap();
            (format!("key{s}.pub"), pem)
        })
        .collect();
    let borrowed: Vec<(&str, &str)> = pems.iter().map(|(n, p)| (n.as_str(), p.as_str())).collect();
    ImageKeys::from_pems(&borrowed).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn der(signature: Signature) -> Vec<u8> {
    signature.to_der().as_bytes().to_vec()
}

fn payload_for(digest: &Digest) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": {"docker-reference": "registry.test/app"},
            "image": {"docker-manifest-digest": digest.to_string()},
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .unwrap()
}

fn cosign_layer(payload: &[u8], annotations: &[(&str, String)]) -> Descriptor {
    let mut layer = Descriptor::new(
        cosign::SIMPLE_SIGNING,
        Digest::of(payload),
        payload.len() as u64,
    );
    layer.annotations = annotations
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect::<BTreeMap<_, _>>();
    layer
}

fn sign_payload(seed: u8, payload: &[u8]) -> String {
    b64(&der(signing_key(seed).sign(payload)))
}

#[test]
fn a_simple_signing_payload_is_valid_only_by_a_key_and_for_its_digest() {
    let image = Digest::of(b"image manifest");
    let keys = keys_of(&[1, 2]);
    let payload = payload_for(&image);
    let signed = |seed| {
        cosign_layer(
            &payload,
            &[(
                "dev.cosignproject.cosign/signature",
                sign_payload(seed, &payload),
            )],
        )
    };
    let by = |layer: &Descriptor, subject: &Digest| {
        judge(Form::SimpleSigning, layer, &payload, subject, &keys)
    };

    assert_eq!(by(&signed(2), &image), Finding::Valid("key2.pub".into()));
    assert_eq!(by(&signed(3), &image), Finding::OtherKey);
    let other = Digest::of(b"another image");
    assert_eq!(
        by(&signed(1), &other),
        Finding::OtherDigest(image.to_string())
    );
    let keyless = cosign_layer(
        &payload,
        &[
            (
                "dev.cosignproject.cosign/signature",
                sign_payload(1, &payload),
            ),
            (
                "dev.sigstore.cosign/certificate",
                "-----BEGIN CERTIFICATE-----".into(),
            ),
        ],
    );
    assert_eq!(by(&keyless, &image), Finding::Keyless("certificate"));
    assert!(matches!(
        by(&cosign_layer(&payload, &[]), &image),
        Finding::Unreadable(_)
    ));
}

fn message_bundle(seed: u8, digest: &Digest, material: serde_json::Value) -> Vec<u8> {
    let raw: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&digest.hex()[i * 2..i * 2 + 2], 16).unwrap())
        .collect();
    let signature: Signature = signing_key(seed).sign_prehash(&raw).unwrap();
    serde_json::to_vec(&serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": material,
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": b64(&raw)},
            "signature": b64(&der(signature)),
        },
    }))
    .unwrap()
}

fn dsse_bundle(seed: u8, digest: &Digest) -> Vec<u8> {
    let statement = serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "registry.test/app", "digest": {"sha256": digest.hex()}}],
        "predicateType": "https://sigstore.dev/cosign/sign/v1",
        "predicate": {},
    }))
    .unwrap();
    let payload_type = "application/vnd.in-toto+json";
    let signature: Signature = signing_key(seed).sign(&bundle::pae(payload_type, &statement));
    serde_json::to_vec(&serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "k"}},
        "dsseEnvelope": {
            "payload": b64(&statement),
            "payloadType": payload_type,
            "signatures": [{"sig": b64(&der(signature)), "keyid": ""}],
        },
    }))
    .unwrap()
}

#[test]
fn bundles_verify_by_message_digest_or_dsse_subject() {
    let image = Digest::of(b"image manifest");
    let other = Digest::of(b"another image");
    let keys = keys_of(&[1]);
    let key = serde_json::json!({"publicKey": {"hint": "k"}});
    let layer = Descriptor::new(
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        image.clone(),
        1,
    );
    let by = |bytes: &[u8]| judge(Form::Bundle, &layer, bytes, &image, &keys);

    assert_eq!(
        by(&message_bundle(1, &image, key.clone())),
        Finding::Valid("key1.pub".into())
    );
    assert_eq!(
        by(&message_bundle(2, &image, key.clone())),
        Finding::OtherKey
    );
    assert_eq!(
        by(&message_bundle(1, &other, key)),
        Finding::OtherDigest(other.to_string())
    );
    assert_eq!(
        by(&dsse_bundle(1, &image)),
        Finding::Valid("key1.pub".into())
    );
    assert_eq!(by(&dsse_bundle(2, &image)), Finding::OtherKey);
    assert_eq!(
        by(&dsse_bundle(1, &other)),
        Finding::OtherDigest(other.to_string())
    );

    let certificate = serde_json::json!({"certificate": {"rawBytes": "MIIB"}, "tlogEntries": [{}]});
    assert_eq!(
        by(&message_bundle(1, &image, certificate)),
        Finding::Keyless("certificate")
    );
    let tlog_only = serde_json::json!({"tlogEntries": [{"logIndex": "1"}]});
    assert_eq!(
        by(&message_bundle(1, &image, tlog_only)),
        Finding::Keyless("transparency-log entry")
    );
    assert!(matches!(by(b"not json"), Finding::Unreadable(_)));
}

#[test]
fn the_verdict_takes_any_valid_signature_else_the_weightiest_refusal() {
    assert_eq!(verdict([]), Err(Refusal::NoSignature));
    assert_eq!(
        verdict([Finding::OtherKey, Finding::Valid("k".into())]),
        Ok("k".to_owned())
    );
    assert_eq!(
        verdict([
            Finding::Keyless("certificate"),
            Finding::OtherKey,
            Finding::Unreadable("x".into())
        ]),
        Err(Refusal::OtherKey)
    );
    assert_eq!(
        verdict([Finding::OtherKey, Finding::OtherDigest("sha256:ab".into())]),
        Err(Refusal::OtherDigest("sha256:ab".into()))
    );
    assert_eq!(
        Refusal::Keyless("certificate").to_string(),
        "keyless signature (certificate) is not supported; sign with a key"
    );
}

#[test]
fn attestation_manifests_an_index_names_need_no_signature() {
    let platform = Digest::of(b"platform");
    let attestation = Digest::of(b"attestation");
    let index: Manifest = serde_json::from_value(serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::manifest::OCI_INDEX,
        "manifests": [
            {"mediaType": crate::manifest::OCI_MANIFEST, "digest": platform.to_string(), "size": 1,
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": crate::manifest::OCI_MANIFEST, "digest": attestation.to_string(), "size": 1,
             "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                             "vnd.docker.reference.digest": platform.to_string()}},
        ],
    }))
    .unwrap();
    let image: Manifest =
        serde_json::from_value(serde_json::json!({"schemaVersion": 2, "layers": []})).unwrap();
    let root = Digest::of(b"index");
    let kept = vec![
        (root.clone(), index),
        (platform.clone(), image.clone()),
        (attestation, image),
    ];
    assert_eq!(needing_signatures(&kept), vec![root, platform]);
}

#[test]
fn a_verdict_words_its_keys_or_each_failed_manifest() {
    let (index, platform) = (Digest::of(b"index"), Digest::of(b"platform"));
    let mut verdict = ImageVerdict {
        reference: "registry.test/app:1".into(),
        digest: index.clone(),
        manifests: vec![
            (index.clone(), Ok("a.pub".into())),
            (platform.clone(), Ok("a.pub".into())),
        ],
    };
    assert!(verdict.passed());
    assert_eq!(verdict.detail(), "all 2 manifests signed by a.pub");
    verdict.manifests[1].1 = Err(Refusal::NoSignature);
    assert!(!verdict.passed());
    assert_eq!(
        verdict.detail(),
        format!("its manifest {platform}: no signature found")
    );
    assert_eq!(
        verdict.refused().unwrap().to_string(),
        format!("registry.test/app:1 has no valid signature by an --image-key: its manifest {platform}: no signature found")
    );
    verdict.manifests = vec![(index, Err(Refusal::OtherKey))];
    assert_eq!(verdict.detail(), "signed by another key");
}
