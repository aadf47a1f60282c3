//! What ties an artifact that discovery brought (a signature, an attestation, a
//! referrer) to the image it describes. Resolve carries it on each
//! [`super::ResolvedImage`] and discovery fills it in, so it lives apart from both.

use crate::digest::Digest;

/// How an artifact relates to its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// cosign's `sha256-<hex>.sig`.
    Signature,
    /// cosign's `sha256-<hex>.att`.
    Attestation,
    /// cosign's `sha256-<hex>.sbom`.
    Sbom,
    /// An OCI 1.1 manifest whose `subject` is the digest.
    Referrer,
    /// The `sha256-<hex>` index that lists the referrers where the registry has no API.
    ReferrersTag,
    /// The attestation manifest buildx puts beside the platform in the image's index.
    BuildxAttestation,
}

impl Relation {
    /// The name written to `index.json` (`dev.pkgr.relation`) and shown by `inspect`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Attestation => "attestation",
            Self::Sbom => "sbom",
            Self::Referrer => "referrer",
            Self::ReferrersTag => "referrers-tag",
            Self::BuildxAttestation => "buildx-attestation",
        }
    }
}

/// An artifact's subject: the digest it describes, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub subject: Digest,
    pub relation: Relation,
}
