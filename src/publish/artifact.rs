//! The shape of a published package: one OCI image manifest of pkgr's own
//! `artifactType`, whose config is the empty descriptor and whose layers are the
//! package's files in the package's order, each titled with its path; the manifest's
//! annotations carry the package's metadata and what a pull needs to write the same
//! file again (its name, size, sha256, and the identity of the writer that made it).
//! Written one fixed way, and read back refusing anything that is not that shape.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::manifest::OCI_MANIFEST;
use crate::package::reader::{classify, Known};

/// The manifest's `artifactType`: a pkgr package.
pub const ARTIFACT_TYPE: &str = "application/vnd.pkgr.package.v1";
/// Every layer's media type: one file of the package, bytes as they are in its tar.
pub const FILE_MEDIA_TYPE: &str = "application/vnd.pkgr.package.file.v1";
/// The OCI empty descriptor, the config of an artifact that has none.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_CONFIG: &[u8] = b"{}";
/// A layer's path inside the package.
pub const TITLE: &str = "org.opencontainers.image.title";

const FILE_NAME: &str = "dev.pkgr.package.file";
const NAME: &str = "dev.pkgr.package.name";
const VERSION: &str = "dev.pkgr.package.version";
const ARCHITECTURE: &str = "dev.pkgr.package.architecture";
const SHA256: &str = "dev.pkgr.package.sha256";
const SIZE: &str = "dev.pkgr.package.size";
const COMPRESSED: &str = "dev.pkgr.package.compressed";
const WRITER: &str = "dev.pkgr.package.writer";

/// One file of the package, in the package's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFile {
    /// Its path inside the package (`pkgr.yaml`, `images/blobs/sha256/…`).
    pub name: String,
    pub digest: Digest,
    pub size: u64,
}

/// What the manifest's annotations say of the package file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The package file's own name (a split package's, without `.partNNN`).
    pub file_name: String,
    pub name: String,
    pub version: Option<String>,
    pub architecture: String,
    /// Of the whole file (a split package's parts joined).
    pub sha256: Digest,
    pub size: u64,
    /// zstd (seekable) or a plain tar.
    pub compressed: bool,
    /// `package::writer::identity` of the writer that made it.
    pub writer: String,
}

/// A published package: its facts and its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub facts: Facts,
    pub files: Vec<PackageFile>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    artifact_type: String,
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: Digest,
    #[serde(deserialize_with = "crate::manifest::oci_size")]
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// Why a manifest is not a package pkgr published.
#[derive(Debug, thiserror::Error)]
pub enum NotAPackage {
    #[error("it does not parse as an OCI image manifest: {0}")]
    Unparsed(String),
    #[error("its artifactType is `{0}`, not {ARTIFACT_TYPE}")]
    OtherType(String),
    #[error("its annotation {0} is missing or malformed")]
    Annotation(&'static str),
    #[error("its package file name `{0}` is not a plain file name")]
    FileName(String),
    #[error("layer {0} has no usable title: {1}")]
    Layer(usize, String),
}

impl Artifact {
    /// The manifest's bytes: compact JSON, fields and annotations in a fixed order.
    pub fn to_manifest(&self) -> Vec<u8> {
        let facts = &self.facts;
        let mut annotations = BTreeMap::from([
            (TITLE.to_owned(), facts.file_name.clone()),
            (FILE_NAME.to_owned(), facts.file_name.clone()),
            (NAME.to_owned(), facts.name.clone()),
            (ARCHITECTURE.to_owned(), facts.architecture.clone()),
            (SHA256.to_owned(), facts.sha256.to_string()),
            (SIZE.to_owned(), facts.size.to_string()),
            (COMPRESSED.to_owned(), facts.compressed.to_string()),
            (WRITER.to_owned(), facts.writer.clone()),
        ]);
        if let Some(version) = &facts.version {
            annotations.insert(VERSION.to_owned(), version.clone());
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: OCI_MANIFEST.to_owned(),
            artifact_type: ARTIFACT_TYPE.to_owned(),
            config: Descriptor {
                media_type: EMPTY_MEDIA_TYPE.to_owned(),
                digest: Digest::of(EMPTY_CONFIG),
                size: EMPTY_CONFIG.len() as u64,
                annotations: BTreeMap::new(),
            },
            layers: self
                .files
                .iter()
                .map(|file| Descriptor {
                    media_type: FILE_MEDIA_TYPE.to_owned(),
                    digest: file.digest.clone(),
                    size: file.size,
                    annotations: BTreeMap::from([(TITLE.to_owned(), file.name.clone())]),
                })
                .collect(),
            annotations,
        };
        serde_json::to_vec(&manifest).expect("a manifest serializes")
    }

    /// Reads a manifest as [`to_manifest`](Self::to_manifest) writes it, refusing
    /// another artifact, an unsafe file name and any layer whose title is not a path a
    /// package may hold (or is there twice).
    pub fn from_manifest(bytes: &[u8]) -> Result<Self, NotAPackage> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| NotAPackage::Unparsed(e.to_string()))?;
        if manifest.artifact_type != ARTIFACT_TYPE {
            return Err(NotAPackage::OtherType(manifest.artifact_type));
        }
        let get = |key: &'static str| {
            manifest
                .annotations
                .get(key)
                .cloned()
                .ok_or(NotAPackage::Annotation(key))
        };
        let parse = |key: &'static str| {
            let text = get(key)?;
            Ok::<_, NotAPackage>((key, text))
        };
        let (key, sha256) = parse(SHA256)?;
        let sha256 = sha256.parse().map_err(|_| NotAPackage::Annotation(key))?;
        let (key, size) = parse(SIZE)?;
        let size = size.parse().map_err(|_| NotAPackage::Annotation(key))?;
        let (key, compressed) = parse(COMPRESSED)?;
        let compressed = compressed
            .parse()
            .map_err(|_| NotAPackage::Annotation(key))?;
        let file_name = get(FILE_NAME)?;
        if !is_plain_file_name(&file_name) {
            return Err(NotAPackage::FileName(file_name));
        }
        let facts = Facts {
            file_name,
            name: get(NAME)?,
            version: manifest.annotations.get(VERSION).cloned(),
            architecture: get(ARCHITECTURE)?,
            sha256,
            size,
            compressed,
            writer: get(WRITER)?,
        };
        let files = files_of(manifest.layers)?;
        Ok(Self { facts, files })
    }

    /// The first file named `name`.
    pub fn file(&self, name: &str) -> Option<&PackageFile> {
        self.files.iter().find(|file| file.name == name)
    }
}

fn files_of(layers: Vec<Descriptor>) -> Result<Vec<PackageFile>, NotAPackage> {
    let mut seen = HashSet::new();
    let mut sizes = HashMap::new();
    let mut files = Vec::with_capacity(layers.len());
    for (n, layer) in layers.into_iter().enumerate() {
        let bad = |reason: &str| NotAPackage::Layer(n, reason.to_owned());
        let name = layer
            .annotations
            .get(TITLE)
            .ok_or_else(|| bad("no title"))?;
        match classify(name) {
            Ok(Known::ZarfExtra) | Err(_) => return Err(bad("not a file a pkgr package holds")),
            Ok(Known::Blob(digest)) if digest != layer.digest => {
                return Err(bad("a blob's path names another digest"))
            }
            Ok(_) => {}
        }
        if !seen.insert(name.clone()) {
            return Err(bad("a path given twice"));
        }
        // Files with one digest share one download: they must agree on its size.
        if *sizes.entry(layer.digest.clone()).or_insert(layer.size) != layer.size {
            return Err(bad("a digest given with two sizes"));
        }
        files.push(PackageFile {
            name: name.clone(),
            digest: layer.digest,
            size: layer.size,
        });
    }
    Ok(files)
}

/// A name that stays inside the directory it is written to.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact() -> Artifact {
        let file = |name: &str, bytes: &[u8]| PackageFile {
            name: name.to_owned(),
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
        };
        let blob = b"layer";
        Artifact {
            facts: Facts {
                file_name: "pkgr-package-demo-amd64-1.0.tar.zst".into(),
                name: "demo".into(),
                version: Some("1.0".into()),
                architecture: "amd64".into(),
                sha256: Digest::of(b"package"),
                size: 1234,
                compressed: true,
                writer: crate::package::writer::identity(true),
            },
            files: vec![
                file("pkgr.yaml", b"kind: PkgrPackage"),
                file(
                    &format!("images/blobs/sha256/{}", Digest::of(blob).hex()),
                    blob,
                ),
            ],
        }
    }

    #[test]
    fn a_manifest_reads_back_as_it_was_written() {
        let artifact = artifact();
        let bytes = artifact.to_manifest();
        assert_eq!(Artifact::from_manifest(&bytes).unwrap(), artifact);
        assert_eq!(bytes, artifact.to_manifest(), "two writes differ");
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["artifactType"], ARTIFACT_TYPE);
        assert_eq!(value["config"]["mediaType"], EMPTY_MEDIA_TYPE);
        assert_eq!(value["layers"][0]["annotations"][TITLE], "pkgr.yaml");
    }

    #[test]
    fn another_shape_is_refused() {
        let mut value: serde_json::Value =
            serde_json::from_slice(&artifact().to_manifest()).unwrap();
        value["annotations"][FILE_NAME] = "../escape.tar.zst".into();
        let err = Artifact::from_manifest(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert!(matches!(err, NotAPackage::FileName(_)), "{err}");

        let mut value: serde_json::Value =
            serde_json::from_slice(&artifact().to_manifest()).unwrap();
        value["layers"][1]["annotations"][TITLE] = "../../etc/passwd".into();
        let err = Artifact::from_manifest(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert!(matches!(err, NotAPackage::Layer(1, _)), "{err}");

        let mut value: serde_json::Value =
            serde_json::from_slice(&artifact().to_manifest()).unwrap();
        value["layers"][0]["digest"] = value["layers"][1]["digest"].clone();
        let err = Artifact::from_manifest(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            NotAPackage::Layer(1, "a digest given with two sizes".into()).to_string()
        );

        value["artifactType"] = "application/vnd.other".into();
        let err = Artifact::from_manifest(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "its artifactType is `application/vnd.other`, not application/vnd.pkgr.package.v1"
        );
    }
}
