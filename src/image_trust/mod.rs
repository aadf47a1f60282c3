//! Image signatures checked against the keys given with `--image-key`. Every image
//! (with `--allow-index`, the index and each platform manifest; buildx attestation
//! manifests aside) must carry at least one signature that verifies with one of the
//! keys and names that manifest's digest: a cosign simple-signing `.sig` (`cosign`) or
//! a Sigstore bundle attached as a referrer (`bundle`). Keyless signatures are met
//! and named, never checked. The same judgement runs at create, before any layer is
//! fetched (`gate`), and offline on a package that carries its signatures (`offline`).

mod bundle;
mod cosign;
mod gate;
mod keys;
mod offline;

use std::collections::HashSet;
use std::fmt;

pub use gate::SignatureGate;
pub use keys::{ImageKeys, KeyError};
pub use offline::{check_package, OfflineError};

use crate::digest::Digest;
use crate::manifest::{Descriptor, Manifest};

/// Signature layers larger than this are not read: simple-signing payloads and
/// bundles are a few kilobytes, and a hostile registry must not fill memory.
pub const MAX_SIGNATURE_BYTES: u64 = 1024 * 1024;

/// What one signature says of one manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// It verifies with the named key and names the manifest's digest.
    Valid(String),
    /// It verifies with none of the keys.
    OtherKey,
    /// It verifies, but names another digest (copied from another image).
    OtherDigest(String),
    /// It was made without a key (certificate or transparency log only).
    Keyless(&'static str),
    /// It cannot be read at all.
    Unreadable(String),
}

/// Why a manifest has no valid signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no signature found")]
    NoSignature,
    #[error("signed by another key")]
    OtherKey,
    #[error("signature over another digest ({0})")]
    OtherDigest(String),
    #[error("keyless signature ({0}) is not supported; sign with a key")]
    Keyless(&'static str),
    #[error("its signature cannot be read: {0}")]
    Unreadable(String),
}

impl Refusal {
    /// Which of several refusals is shown: the one that tells the user most.
    fn weight(&self) -> u8 {
        match self {
            Self::NoSignature => 0,
            Self::Unreadable(_) => 1,
            Self::Keyless(_) => 2,
            Self::OtherKey => 3,
            Self::OtherDigest(_) => 4,
        }
    }
}

/// The key of the first valid finding, or the weightiest refusal among them all.
pub fn verdict(findings: impl IntoIterator<Item = Finding>) -> Result<String, Refusal> {
    let mut refusal = Refusal::NoSignature;
    for finding in findings {
        let found = match finding {
            Finding::Valid(key) => return Ok(key),
            Finding::OtherKey => Refusal::OtherKey,
            Finding::OtherDigest(named) => Refusal::OtherDigest(named),
            Finding::Keyless(what) => Refusal::Keyless(what),
            Finding::Unreadable(why) => Refusal::Unreadable(why),
        };
        if found.weight() > refusal.weight() {
            refusal = found;
        }
    }
    Err(refusal)
}

/// How a signature layer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    SimpleSigning,
    Bundle,
}

/// The layers of an artifact found for a manifest that may sign it, with their form.
pub fn candidates(artifact: &Manifest) -> Vec<(Form, Descriptor)> {
    let bundle_artifact = artifact
        .artifact_type
        .as_deref()
        .is_some_and(|t| t.starts_with(bundle::BUNDLE_PREFIX));
    artifact
        .layers
        .iter()
        .filter_map(|layer| {
            let form = if layer.media_type == cosign::SIMPLE_SIGNING {
                Form::SimpleSigning
            } else if layer.media_type.starts_with(bundle::BUNDLE_PREFIX) || bundle_artifact {
                Form::Bundle
            } else {
                return None;
            };
            Some((form, layer.clone()))
        })
        .collect()
}

/// What one candidate layer, whose bytes are `bytes`, says of `subject`.
pub fn judge(
    form: Form,
    layer: &Descriptor,
    bytes: &[u8],
    subject: &Digest,
    keys: &ImageKeys,
) -> Finding {
    if layer.size > MAX_SIGNATURE_BYTES {
        return Finding::Unreadable(format!(
            "its layer {} declares {} bytes, more than a signature may have",
            layer.digest, layer.size
        ));
    }
    match form {
        Form::SimpleSigning => cosign::judge(&layer.annotations, bytes, subject, keys),
        Form::Bundle => bundle::judge(bytes, subject, keys),
    }
}

/// The manifests of an image that need a signature, in order: all kept, except the
/// buildx attestation manifests an index among them names.
pub fn needing_signatures(manifests: &[(Digest, Manifest)]) -> Vec<Digest> {
    let attestations: HashSet<&Digest> = manifests
        .iter()
        .flat_map(|(_, m)| m.manifests.iter())
        .filter(|entry| entry.is_attestation())
        .map(|entry| &entry.digest)
        .collect();
    manifests
        .iter()
        .map(|(digest, _)| digest)
        .filter(|digest| !attestations.contains(digest))
        .cloned()
        .collect()
}

/// One image's signatures, judged: each manifest that needs one, with the key that
/// signed it or why none did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageVerdict {
    pub reference: String,
    pub digest: Digest,
    pub manifests: Vec<(Digest, Result<String, Refusal>)>,
}

impl ImageVerdict {
    /// Every manifest that needs a signature has a valid one.
    pub fn passed(&self) -> bool {
        self.manifests.iter().all(|(_, result)| result.is_ok())
    }

    /// What a report line says after the image's name: the keys that signed, or why
    /// not (as [`ImageRefused`] words it, without the name).
    pub fn detail(&self) -> String {
        if let Some(refused) = self.refused() {
            return refused.reasons();
        }
        let mut keys: Vec<&str> = Vec::new();
        for key in self.manifests.iter().filter_map(|(_, r)| r.as_deref().ok()) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        match self.manifests.len() {
            1 => format!("signed by {}", keys.join(", ")),
            n => format!("all {n} manifests signed by {}", keys.join(", ")),
        }
    }

    /// The refusal of the image, if any of its manifests has no valid signature.
    pub fn refused(&self) -> Option<ImageRefused> {
        let failed: Vec<(Digest, Refusal)> = self
            .manifests
            .iter()
            .filter_map(|(digest, result)| Some((digest.clone(), result.clone().err()?)))
            .collect();
        (!failed.is_empty()).then(|| ImageRefused {
            reference: self.reference.clone(),
            digest: self.digest.clone(),
            failed,
        })
    }
}

/// An image refused for want of a valid signature by an `--image-key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRefused {
    pub reference: String,
    pub digest: Digest,
    pub failed: Vec<(Digest, Refusal)>,
}

impl ImageRefused {
    /// Why, manifest by manifest: the image's own refusal alone, or each of its
    /// manifests' named by digest.
    pub fn reasons(&self) -> String {
        let reasons: Vec<String> = self
            .failed
            .iter()
            .map(|(digest, refusal)| match *digest == self.digest {
                true => refusal.to_string(),
                false => format!("its manifest {digest}: {refusal}"),
            })
            .collect();
        reasons.join("; ")
    }
}

impl fmt::Display for ImageRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} has no valid signature by an --image-key: {}",
            self.reference,
            self.reasons()
        )
    }
}

impl std::error::Error for ImageRefused {}

#[cfg(test)]
mod tests;
