//! The `pkgr.yaml` written into a package: the definition as built, with each image's
//! resolved digest and platform. Serialized one way, so it never varies between builds.
//! Read back with [`read_definition`], the one reader of a package's definition, which
//! bounds its nesting, parses it and checks its name.
//!
//! A differential package (`create --differential BASE`) records its base here, under
//! `differential`: the base's name, version, architecture and sha256, and every config
//! and layer left out because the base holds it, with its size. `pkgr.yaml` is the
//! first entry and is covered by `checksums.txt`, so a reader knows what to expect
//! elsewhere before it meets a blob. A package without a base has no such key, byte
//! for byte as before.
//!
//! A signed package (`create --signing-key`) records the sha256 of its `checksums.txt`
//! under `build.aggregateChecksum`, as Zarf does: the signature over `pkgr.yaml` then
//! covers `checksums.txt`, which covers every other file, and `pkgr.yaml` itself is not
//! listed in it. An unsigned package has no `build` key and lists `pkgr.yaml`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::definition::{is_valid_name, Metadata};
use crate::digest::Digest;
use crate::nesting::{check_flow_depth, TooDeep, MAX_FLOW_DEPTH};
use crate::pull::ResolvedImage;

#[derive(Debug, Serialize, Deserialize)]
pub struct BuiltDefinition {
    pub kind: String,
    pub metadata: BuiltMetadata,
    pub components: Vec<BuiltComponent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differential: Option<Differential>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildRecord>,
}

/// What a signed package's definition says of the package as built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildRecord {
    /// The sha256 hex of `checksums.txt`.
    pub aggregate_checksum: String,
}

/// What a differential package leaves to its base.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Differential {
    pub base: BaseRecord,
    /// Every config and layer the package's images need that the base holds, sorted
    /// by digest: expected on the target, not in the package.
    pub left_out: Vec<LeftOut>,
}

/// The package a differential package was made against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRecord {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// As the base says; a Zarf package may not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// The sha256 of the base file, or for a split base the `sha256Sum` its first part
    /// declares (the digest of the joined parts, which reading it checked).
    pub sha256: Digest,
}

/// One blob left out of a differential package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOut {
    pub digest: Digest,
    pub size: u64,
}

impl Differential {
    /// The left-out blobs as a map, for the graph check.
    pub fn left_out_map(&self) -> std::collections::BTreeMap<Digest, u64> {
        self.left_out
            .iter()
            .map(|blob| (blob.digest.clone(), blob.size))
            .collect()
    }

    /// How many bytes are left out in all.
    pub fn left_out_bytes(&self) -> u64 {
        self.left_out
            .iter()
            .fold(0, |total, blob| total.saturating_add(blob.size))
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BuiltMetadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BuiltComponent {
    pub name: String,
    pub images: Vec<BuiltImage>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuiltImage {
    pub reference: String,
    pub digest: Digest,
    pub media_type: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// For an artifact brought with `--with-signatures`: the digest it describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
    /// How it relates to that digest (`signature`, `attestation`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
}

impl BuiltDefinition {
    pub fn new(metadata: &Metadata, component_order: &[String], images: &[ResolvedImage]) -> Self {
        let components = component_order
            .iter()
            .map(|name| BuiltComponent {
                name: name.clone(),
                images: images
                    .iter()
                    .filter(|image| &image.component == name)
                    .map(|image| BuiltImage {
                        reference: image.reference.whole(),
                        digest: image.digest.clone(),
                        media_type: image.media_type.clone(),
                        kind: image.kind.to_string(),
                        platform: image.platform.as_ref().map(ToString::to_string),
                        subject: image.link.as_ref().map(|l| l.subject.clone()),
                        relation: image.link.as_ref().map(|l| l.relation.as_str().to_owned()),
                    })
                    .collect(),
            })
            .collect();
        Self {
            kind: "PkgrPackage".into(),
            metadata: BuiltMetadata {
                name: metadata.name.clone(),
                version: metadata.version.clone(),
                architecture: metadata.architecture.clone(),
                description: metadata.description.clone(),
            },
            components,
            differential: None,
            build: None,
        }
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("the built definition always serializes")
    }
}

impl BuiltDefinition {
    /// Reads the `pkgr.yaml` of a package.
    pub fn read(bytes: &[u8]) -> Result<Self, Unreadable> {
        read_definition(bytes, |definition: &Self| &definition.metadata.name)
    }
}

/// Why a definition in a package was refused; the texts are the scan's.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error("it nests more than {MAX_FLOW_DEPTH} levels deep (line {line})")]
    TooDeep { line: usize },
    #[error("{0}")]
    Parse(serde_yaml_ng::Error),
    /// The name as written, unescaped.
    #[error("`{name}` is not a valid package name")]
    InvalidName { name: String },
}

/// Reads a definition from a package (`pkgr.yaml`, or the parts of a `zarf.yaml` the
/// caller's type names): its nesting is bounded before the parser sees it, and the
/// package name that `name_of` finds must be valid.
pub fn read_definition<D: DeserializeOwned>(
    bytes: &[u8],
    name_of: impl Fn(&D) -> &str,
) -> Result<D, Unreadable> {
    check_flow_depth(bytes).map_err(|TooDeep { line, .. }| Unreadable::TooDeep { line })?;
    let definition: D = serde_yaml_ng::from_slice(bytes).map_err(Unreadable::Parse)?;
    let name = name_of(&definition);
    if !is_valid_name(name) {
        return Err(Unreadable::InvalidName {
            name: name.to_owned(),
        });
    }
    Ok(definition)
}
