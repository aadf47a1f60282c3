//! The referrers API (`/v2/<name>/referrers/<digest>`): an image index of the
//! descriptors of the manifests that describe a subject, optionally filtered by
//! `artifactType` (then said in `OCI-Filters-Applied`). A referrer is a manifest
//! `--with-signatures` packaged: one whose bytes name a `subject`, and cosign's
//! signatures, attestations and SBOMs, which name theirs only by their tag
//! (`sha256-<hex>.sig`) and are linked to it in `index.json`. The `sha256-<hex>` index
//! that stands in for the API where a registry lacks it is served by its tag only.

use std::collections::BTreeMap;

use hyper::header::HeaderValue;
use serde_json::{json, Value};

use super::answer::{json_response, Response};
use crate::digest::Digest;
use crate::manifest::{Manifest, OCI_INDEX};
use crate::reference::{parse_reference, Target};
use crate::store::layout::LayoutIndex;

/// Each subject's referrers, as descriptors, in the package's order.
#[derive(Debug, Default)]
pub struct Referrers(BTreeMap<Digest, Vec<Value>>);

impl Referrers {
    pub fn add(&mut self, subject: Digest, descriptor: Value) {
        let listed = self.0.entry(subject).or_default();
        if !listed.contains(&descriptor) {
            listed.push(descriptor);
        }
    }

    /// The index listing `subject`'s referrers of `artifact_type` (all, if `None`).
    pub fn answer(&self, subject: &Digest, artifact_type: Option<&str>) -> Response {
        let manifests: Vec<&Value> = self
            .0
            .get(subject)
            .into_iter()
            .flatten()
            .filter(|d| artifact_type.is_none_or(|wanted| d["artifactType"] == wanted))
            .collect();
        let body = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        let mut response = json_response(hyper::StatusCode::OK, &body, OCI_INDEX);
        if artifact_type.is_some() {
            response.headers_mut().insert(
                "OCI-Filters-Applied",
                HeaderValue::from_static("artifactType"),
            );
        }
        response
    }
}

/// Relations (`dev.pkgr.relation`) whose artifacts are listed as referrers.
const LISTED: &[&str] = &["signature", "attestation", "sbom", "referrer"];

/// Every referrer in the package: (repository, subject, descriptor).
pub fn referrers_of(
    index: &LayoutIndex,
    manifests: &BTreeMap<Digest, Vec<u8>>,
    target: &Target,
) -> Vec<(String, Digest, Value)> {
    let mut found = Vec::new();
    for entry in &index.manifests {
        let Some(bytes) = manifests.get(&entry.digest) else {
            continue;
        };
        let Ok(manifest) = Manifest::parse(bytes) else {
            continue;
        };
        let linked = entry
            .link()
            .filter(|(_, relation)| LISTED.contains(relation))
            .and_then(|(subject, _)| subject.parse::<Digest>().ok());
        let Some(subject) = manifest
            .subject
            .as_ref()
            .map(|s| s.digest.clone())
            .or(linked)
        else {
            continue;
        };
        let Some(reference) = entry.reference().and_then(|r| parse_reference(r).ok()) else {
            continue;
        };
        let repository = target.map(&reference).repository().to_owned();
        found.push((
            repository,
            subject,
            descriptor(&entry.digest, bytes, &manifest),
        ));
    }
    found
}

/// A referrer's descriptor as the spec lists it: its `artifactType` is the manifest's,
/// else its config's media type; its annotations are the manifest's own.
fn descriptor(digest: &Digest, bytes: &[u8], manifest: &Manifest) -> Value {
    let artifact_type = manifest
        .artifact_type
        .clone()
        .or_else(|| manifest.config.as_ref().map(|c| c.media_type.clone()));
    let mut descriptor = json!({
        "mediaType": manifest.effective_media_type(),
        "digest": digest.to_string(),
        "size": bytes.len(),
    });
    if let Some(artifact_type) = artifact_type {
        descriptor["artifactType"] = Value::String(artifact_type);
    }
    let annotations = serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.get("annotations").cloned())
        .filter(Value::is_object);
    if let Some(annotations) = annotations {
        descriptor["annotations"] = annotations;
    }
    descriptor
}
