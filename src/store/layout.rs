//! The OCI image layout inside a package: `oci-layout`, `index.json` and `blobs/`.
//! pkgr writes `index.json` itself, so it is serialized one deterministic way.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::digest::Digest;
use crate::manifest::{Descriptor, Platform, OCI_INDEX};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
/// On an artifact's entry (`--with-signatures`): the digest of the manifest it describes.
pub const SUBJECT: &str = "dev.pkgr.subject";
/// On an artifact's entry: how it relates to its subject (`signature`, `attestation`,
/// `sbom`, `referrer`, `referrers-tag`, `buildx-attestation`).
pub const RELATION: &str = "dev.pkgr.relation";
/// On an image taken from an index by `platformFromIndex`: the digest of that index.
pub const FROM_INDEX: &str = "dev.pkgr.index";
const OCI_LAYOUT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";

/// One image reference in `index.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    pub media_type: String,
    pub digest: Digest,
    #[serde(deserialize_with = "crate::manifest::oci_size")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl IndexEntry {
    /// The full reference the entry was created from.
    pub fn reference(&self) -> Option<&str> {
        self.annotations
            .get(BASE_NAME)
            .or_else(|| self.annotations.get(REF_NAME))
            .map(String::as_str)
    }

    /// For an artifact brought with its image: its subject's digest and relation.
    pub fn link(&self) -> Option<(&str, &str)> {
        Some((
            self.annotations.get(SUBJECT)?.as_str(),
            self.annotations.get(RELATION).map_or("", String::as_str),
        ))
    }

    /// For an image taken from an index by `platformFromIndex`: the index's digest.
    pub fn from_index(&self) -> Option<&str> {
        self.annotations.get(FROM_INDEX).map(String::as_str)
    }

    /// The entry as a root for the manifest walker.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            platform: self.platform.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutIndex {
    pub schema_version: u32,
    /// Optional in the OCI image layout; skopeo 1.9 and so some Zarf packages omit it.
    #[serde(default = "index_media_type")]
    pub media_type: String,
    #[serde(deserialize_with = "crate::manifest::bounded::at_most_max_entries")]
    pub manifests: Vec<IndexEntry>,
}

fn index_media_type() -> String {
    crate::manifest::OCI_INDEX.to_owned()
}

impl LayoutIndex {
    /// The reference of the entry at `root` (a walker root), for error messages.
    pub fn reference_of(&self, root: usize) -> String {
        self.manifests
            .get(root)
            .and_then(IndexEntry::reference)
            .unwrap_or("(unnamed)")
            .to_owned()
    }
}

/// An OCI layout directory (the `images/` folder of a package).
pub struct Layout {
    root: PathBuf,
    store: Store,
}

impl Layout {
    pub fn create(root: &Path) -> Result<Self, StoreError> {
        let store = Store::at(
            root.join("blobs").join("sha256"),
            root.parent().unwrap_or(root).join("ingest"),
        )?;
        let path = root.join("oci-layout");
        fs::write(&path, OCI_LAYOUT).map_err(|e| StoreError::io("write", &path, e))?;
        Ok(Self {
            root: root.to_owned(),
            store,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn write_index(&self, manifests: Vec<IndexEntry>) -> Result<(), StoreError> {
        let index = LayoutIndex {
            schema_version: 2,
            media_type: OCI_INDEX.to_owned(),
            manifests,
        };
        let path = self.root.join("index.json");
        let bytes = serde_json::to_vec_pretty(&index).expect("index.json always serializes");
        fs::write(&path, bytes).map_err(|e| StoreError::io("write", &path, e))
    }
}

pub fn annotations_for(reference: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (BASE_NAME.to_owned(), reference.to_owned()),
        (REF_NAME.to_owned(), reference.to_owned()),
    ])
}
