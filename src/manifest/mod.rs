//! Reading manifests and indexes without ever re-serializing them: the registry's bytes
//! are kept as they are, and this model only looks inside. [`walk`] is the one way to
//! follow the graph they form.

pub mod bounded;
pub mod parsed;
pub mod walk;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::digest::Digest;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Every manifest type pkgr accepts; registries answer a narrower list badly.
pub const ACCEPTED: &[&str] = &[OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// Manifests larger than this are refused, so a hostile registry cannot exhaust memory.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

pub const OCI_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// An uncompressed layer, in OCI's words and in Docker's.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
const DOCKER_IMAGE_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const COSIGN_SIGNATURE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const IN_TOTO: &str = "application/vnd.dsse.envelope.v1+json";

/// Marks the attestation manifests that buildx adds to an index beside each platform.
const DOCKER_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
const DOCKER_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// The largest size a descriptor may declare: OCI sizes are int64. Below it, the sum
/// of two sizes still fits a `u64`, and totals are checked against it too.
pub const MAX_SIZE: u64 = i64::MAX as u64;

/// Reads a descriptor's size, refusing one that is over [`MAX_SIZE`].
pub fn oci_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let size = u64::deserialize(deserializer)?;
    if size > MAX_SIZE {
        return Err(serde::de::Error::custom(format_args!(
            "a descriptor declares {size} bytes, more than the 2^63-1 that OCI allows"
        )));
    }
    Ok(size)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    #[serde(deserialize_with = "oci_size")]
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }

    /// Whether this index entry is a buildx attestation manifest (platform
    /// `unknown/unknown`), which describes a platform rather than being one.
    pub fn is_attestation(&self) -> bool {
        self.annotations
            .get(DOCKER_REFERENCE_TYPE)
            .is_some_and(|t| t == "attestation-manifest")
    }

    /// The manifest an attestation entry describes.
    pub fn attests(&self) -> Option<&str> {
        self.annotations
            .get(DOCKER_REFERENCE_DIGEST)
            .map(String::as_str)
    }

    /// Whether the descriptor itself says it names an index.
    pub fn names_index(&self) -> bool {
        matches!(self.media_type.as_str(), OCI_INDEX | DOCKER_LIST)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Whether this is `linux/<architecture>`, where the architecture may name a
    /// variant as in `arm/v7`.
    pub fn matches_linux(&self, architecture: &str) -> bool {
        let (arch, variant) = match architecture.split_once('/') {
            Some((a, v)) => (a, Some(v)),
            None => (architecture, None),
        };
        self.os == "linux"
            && self.architecture == arch
            && variant.is_none_or(|v| self.variant.as_deref() == Some(v))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// The parts of a manifest or index that pkgr reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default, deserialize_with = "bounded::at_most_max_entries")]
    pub layers: Vec<Descriptor>,
    #[serde(default, deserialize_with = "bounded::at_most_max_entries")]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers); not a child.
    #[serde(default)]
    pub subject: Option<Descriptor>,
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn is_index(&self) -> bool {
        match self.media_type.as_deref() {
            Some(OCI_INDEX | DOCKER_LIST) => true,
            Some(_) => false,
            None => self.config.is_none() && !self.manifests.is_empty(),
        }
    }

    /// The media type to record, falling back to the shape of the document.
    pub fn effective_media_type(&self) -> &str {
        match self.media_type.as_deref() {
            Some(media_type) => media_type,
            None if self.is_index() => OCI_INDEX,
            None => OCI_MANIFEST,
        }
    }

    pub fn kind(&self) -> Kind {
        if self.is_index() {
            return Kind::Index;
        }
        let config = self.config.as_ref().map(|c| c.media_type.as_str());
        if config == Some(HELM_CONFIG) {
            Kind::HelmChart
        } else if self.layers.iter().any(|l| l.media_type == COSIGN_SIGNATURE) {
            Kind::Signature
        } else if self.layers.iter().any(|l| l.media_type == IN_TOTO) {
            Kind::Attestation
        } else if self.artifact_type.is_none()
            && matches!(config, Some(OCI_IMAGE_CONFIG | DOCKER_IMAGE_CONFIG))
        {
            Kind::ContainerImage
        } else {
            // An artifactType, the empty config, or any config type pkgr does not know.
            Kind::Artifact
        }
    }
}

/// What a manifest holds, for people reading a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    ContainerImage,
    Index,
    HelmChart,
    Signature,
    Attestation,
    Artifact,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::ContainerImage => "container image",
            Kind::Index => "index",
            Kind::HelmChart => "Helm chart",
            Kind::Signature => "signature",
            Kind::Attestation => "attestation",
            Kind::Artifact => "artifact",
        })
    }
}

pub fn is_manifest_media_type(media_type: &str) -> bool {
    ACCEPTED.contains(&media_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_layer_size(size: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{0}","size":2}},"layers":[{{"mediaType":"x","digest":"{0}","size":{size}}}]}}"#,
            Digest::of(b"{}")
        )
    }

    #[test]
    fn a_size_over_int64_is_refused_and_int64_max_is_not() {
        let max = Manifest::parse(with_layer_size("9223372036854775807").as_bytes()).unwrap();
        assert_eq!(max.layers[0].size, MAX_SIZE);
        let err = Manifest::parse(with_layer_size("9223372036854775808").as_bytes()).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "a descriptor declares 9223372036854775808 bytes, more than the 2^63-1 that OCI allows"
            ),
            "{err}"
        );
    }
}
