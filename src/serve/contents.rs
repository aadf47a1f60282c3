//! What a package offers as a registry: its repositories (each image's own repository
//! without its registry host, behind `--prefix` if given, mapped as push maps them),
//! their tags, manifests, blobs and referrers; the manifests' bytes, kept in memory
//! once they hash to their digests; and where each blob lies in the package.
//!
//! Without `--verify` only the package's head is trusted for the layout: `index.json`
//! and the manifests, each checked against its digest as it is read. The other blobs
//! are checked in the background or on their first request (`verified`).

use std::collections::{BTreeMap, BTreeSet};

use super::referrers::{referrers_of, Referrers};
use super::ServeError;
use crate::digest::Digest;
use crate::manifest::MAX_MANIFEST_BYTES;
use crate::package::reader::{for_each_entry, read_bounded, Flow, Known, PackageBytes};
use crate::package::scan::scan_package;
use crate::package::PackageError;
use crate::push::plan::plan_images;
use crate::reference::Target;
use crate::store::layout::LayoutIndex;

/// Manifests kept in memory at most, in all: a package whose head holds more is refused
/// rather than let grow the server past its memory bound.
const MAX_KEPT_MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// Where a blob's bytes lie in the package's tar.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    pub offset: u64,
    pub size: u64,
}

/// One repository of the served registry.
#[derive(Debug, Default)]
pub struct Repository {
    pub tags: BTreeMap<String, Digest>,
    /// Every manifest reachable in this repository, with the media type to serve it with.
    pub manifests: BTreeMap<Digest, String>,
    /// Configs and layers reachable in this repository.
    pub blobs: BTreeSet<Digest>,
    pub referrers: Referrers,
}

/// The whole registry a package makes.
#[derive(Debug, Default)]
pub struct Contents {
    pub repositories: BTreeMap<String, Repository>,
    /// Manifest bytes that hashed to their digests.
    pub manifests: BTreeMap<Digest, Vec<u8>>,
    pub places: BTreeMap<Digest, Place>,
    /// Whether every blob was verified before serving (`--verify`).
    pub all_verified: bool,
    /// Index entries that could not be served (a reference that does not parse, a graph
    /// that cannot be walked), with why.
    pub left_out: Vec<String>,
}

/// What a read of the package gave, before the repositories are built.
struct Read {
    index: LayoutIndex,
    manifests: BTreeMap<Digest, Vec<u8>>,
    places: BTreeMap<Digest, Place>,
}

impl Contents {
    /// Reads the package: its head only, or (`verify`) all of it, refusing a package
    /// that does not verify.
    pub fn read(
        package: &PackageBytes,
        prefix: Option<String>,
        verify: bool,
    ) -> Result<Self, ServeError> {
        let read = if verify {
            read_verified(package)?
        } else {
            read_head(package)?
        };
        let mut contents = Self::build(read, prefix);
        contents.all_verified = verify;
        Ok(contents)
    }

    fn build(read: Read, prefix: Option<String>) -> Self {
        let target = Target {
            registry: "pkgr-serve".to_owned(),
            prefix,
        };
        let mut failed = Vec::new();
        let images = plan_images(&read.index, &read.manifests, &target, &mut failed);
        let mut repositories: BTreeMap<String, Repository> = BTreeMap::new();
        for image in images {
            let repository = repositories
                .entry(image.target.repository().to_owned())
                .or_default();
            if let (Some(tag), Some((root, _))) = (image.target.tag(), image.manifests.last()) {
                repository.tags.insert(tag.to_owned(), root.clone());
            }
            repository.manifests.extend(image.manifests);
            repository.blobs.extend(image.blobs);
        }
        for (name, subject, descriptor) in referrers_of(&read.index, &read.manifests, &target) {
            if let Some(repository) = repositories.get_mut(&name) {
                repository.referrers.add(subject, descriptor);
            }
        }
        Self {
            repositories,
            manifests: read.manifests,
            places: read.places,
            all_verified: false,
            left_out: failed
                .into_iter()
                .map(|(source, err)| format!("{source}: {err}"))
                .collect(),
        }
    }
}

/// The whole package verified, as `inspect --verify` and push verify it.
fn read_verified(package: &PackageBytes) -> Result<Read, ServeError> {
    let scan = scan_package(package)?;
    if !scan.problems.is_empty() {
        return Err(ServeError::Verification {
            problems: scan.problems,
        });
    }
    let index = scan.index.ok_or(PackageError::NoIndex)?;
    let places = scan
        .offsets
        .iter()
        .filter_map(|(digest, &offset)| {
            let (_, size) = scan
                .files
                .get(&format!("images/blobs/sha256/{}", digest.hex()))?;
            Some((
                digest.clone(),
                Place {
                    offset,
                    size: *size,
                },
            ))
        })
        .collect();
    Ok(Read {
        index,
        manifests: scan.manifests,
        places,
    })
}

/// `index.json`, each blob's place, and the manifests whose bytes hash to their names;
/// other blobs are passed over unread where the package allows.
fn read_head(package: &PackageBytes) -> Result<Read, ServeError> {
    let mut index = None;
    let mut manifests = BTreeMap::new();
    let mut places = BTreeMap::new();
    let mut kept = 0u64;
    for_each_entry(package, |entry| {
        match &entry.known {
            Known::Index => {
                let bytes = read_bounded(
                    entry.reader,
                    entry.name,
                    entry.size,
                    crate::package::reader::MAX_METADATA_BYTES,
                )?;
                index = Some(serde_json::from_slice(&bytes).map_err(PackageError::BadIndex)?);
            }
            Known::Blob(digest) => {
                let (offset, size) = (entry.offset, entry.size);
                places.insert(digest.clone(), Place { offset, size });
                if size <= MAX_MANIFEST_BYTES && kept + size <= MAX_KEPT_MANIFEST_BYTES {
                    let bytes = read_bounded(entry.reader, entry.name, size, MAX_MANIFEST_BYTES)?;
                    if looks_like_manifest(&bytes) && Digest::of(&bytes) == *digest {
                        kept += size;
                        manifests.insert(digest.clone(), bytes);
                    }
                }
            }
            _ => {}
        }
        Ok(Flow::Continue)
    })?;
    Ok(Read {
        index: index.ok_or(PackageError::NoIndex)?,
        manifests,
        places,
    })
}

/// A JSON object that declares layers, manifests or a config descriptor: configs and
/// other small JSON blobs are not kept.
fn looks_like_manifest(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b'{')
        && crate::manifest::Manifest::parse(bytes)
            .is_ok_and(|m| m.config.is_some() || !m.layers.is_empty() || !m.manifests.is_empty())
}
