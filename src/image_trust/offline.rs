//! The same judgement as at create, from a package file alone: the images of its
//! `index.json` (entries that describe no other), each with the signatures the package
//! carries for it (entries linked to it by `dev.pkgr.subject`, or, in a package that
//! does not record links, by a cosign `.sig` tag or a manifest's `subject`). The
//! package is read in a few passes, each keeping only the small blobs it needs.

use std::collections::{BTreeMap, BTreeSet};

use super::MAX_SIGNATURE_BYTES;
use super::{candidates, judge, needing_signatures, verdict, Finding, ImageKeys, ImageVerdict};
use crate::digest::Digest;
use crate::manifest::{Manifest, MAX_MANIFEST_BYTES};
use crate::package::reader::MAX_METADATA_BYTES;
use crate::package::reader::{for_each_entry, read_bounded, Flow, Known, PackageBytes};
use crate::package::PackageError;
use crate::store::layout::{IndexEntry, LayoutIndex};

/// Rounds of nested indexes followed below an image's entry.
const MAX_NESTING: usize = 8;

/// Why a package's image signatures could not be judged at all.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("the package has no index.json")]
    NoIndex,
    #[error("the package's index.json cannot be read")]
    BadIndex(#[source] serde_json::Error),
    #[error("the manifest {0} is not in the package")]
    Missing(Digest),
    #[error("the manifest {digest} in the package cannot be read: {message}")]
    BadManifest { digest: Digest, message: String },
    #[error("the blob {0} in the package does not match its digest")]
    Damaged(Digest),
}

/// One verdict per image of the package, in `index.json` order.
pub fn check_package(
    package: &PackageBytes,
    keys: &ImageKeys,
) -> Result<Vec<ImageVerdict>, OfflineError> {
    let index = read_index(package)?;
    let manifests = read_manifests(package, &index)?;
    let links: Vec<Option<Digest>> = index
        .manifests
        .iter()
        .map(|entry| subject_of(entry, &manifests[&entry.digest]))
        .collect();
    let wanted: BTreeSet<Digest> = index
        .manifests
        .iter()
        .zip(&links)
        .filter(|(_, link)| link.is_some())
        .flat_map(|(entry, _)| candidates(&manifests[&entry.digest]))
        .filter(|(_, layer)| layer.size <= MAX_SIGNATURE_BYTES)
        .map(|(_, layer)| layer.digest)
        .collect();
    let layers = read_blobs(package, &wanted, MAX_SIGNATURE_BYTES)?;
    let mut verdicts = Vec::new();
    for (n, entry) in index.manifests.iter().enumerate() {
        if links[n].is_some() {
            continue;
        }
        let kept = kept_under(&entry.digest, &manifests);
        let mut judged = Vec::new();
        for subject in needing_signatures(&kept) {
            let mut findings = Vec::new();
            for (artifact, _) in index
                .manifests
                .iter()
                .zip(&links)
                .filter(|(_, link)| link.as_ref() == Some(&subject))
            {
                for (form, layer) in candidates(&manifests[&artifact.digest]) {
                    findings.push(match layers.get(&layer.digest) {
                        Some(bytes) => judge(form, &layer, bytes, &subject, keys),
                        None if layer.size > MAX_SIGNATURE_BYTES => {
                            judge(form, &layer, &[], &subject, keys)
                        }
                        None => Finding::Unreadable(format!(
                            "its layer {} is not in the package",
                            layer.digest
                        )),
                    });
                }
            }
            judged.push((subject, verdict(findings)));
        }
        verdicts.push(ImageVerdict {
            reference: index.reference_of(n),
            digest: entry.digest.clone(),
            manifests: judged,
        });
    }
    Ok(verdicts)
}

/// What an entry describes: its recorded subject, else the subject a cosign tag
/// (`sha256-<hex>.sig`) or the manifest's own `subject` names.
fn subject_of(entry: &IndexEntry, manifest: &Manifest) -> Option<Digest> {
    if let Some((subject, _)) = entry.link() {
        return subject.parse().ok();
    }
    if let Some(subject) = &manifest.subject {
        return Some(subject.digest.clone());
    }
    let reference = entry.reference()?;
    let tag = reference.rsplit_once(':')?.1;
    let hex = tag.strip_prefix("sha256-")?.strip_suffix(".sig")?;
    Digest::from_hex(hex).ok()
}

/// `root` and every manifest below it that the package holds, root first.
fn kept_under(root: &Digest, manifests: &BTreeMap<Digest, Manifest>) -> Vec<(Digest, Manifest)> {
    let mut kept = Vec::new();
    let mut next = vec![root.clone()];
    let mut seen = BTreeSet::new();
    while let Some(digest) = next.pop() {
        let Some(manifest) = manifests.get(&digest) else {
            continue;
        };
        if !seen.insert(digest.clone()) {
            continue;
        }
        next.extend(manifest.manifests.iter().rev().map(|c| c.digest.clone()));
        kept.push((digest, manifest.clone()));
    }
    kept
}

fn read_index(package: &PackageBytes) -> Result<LayoutIndex, OfflineError> {
    let mut index = None;
    for_each_entry(package, |entry| {
        if entry.known != Known::Index {
            return Ok(Flow::Continue);
        }
        index = Some(read_bounded(
            entry.reader,
            entry.name,
            entry.size,
            MAX_METADATA_BYTES,
        )?);
        Ok(Flow::Stop)
    })?;
    serde_json::from_slice(&index.ok_or(OfflineError::NoIndex)?).map_err(OfflineError::BadIndex)
}

/// Every entry's manifest, and below each image's entry the manifests its indexes
/// name, a level per pass.
fn read_manifests(
    package: &PackageBytes,
    index: &LayoutIndex,
) -> Result<BTreeMap<Digest, Manifest>, OfflineError> {
    let mut manifests = BTreeMap::new();
    let mut wanted: BTreeSet<Digest> = index.manifests.iter().map(|e| e.digest.clone()).collect();
    for round in 0..MAX_NESTING {
        if wanted.is_empty() {
            break;
        }
        let found = read_blobs(package, &wanted, MAX_MANIFEST_BYTES)?;
        let mut children = BTreeSet::new();
        for digest in wanted {
            let Some(bytes) = found.get(&digest) else {
                // A child absent from the package was not kept (one platform of an
                // index); an entry's own manifest must be there.
                if round == 0 {
                    return Err(OfflineError::Missing(digest));
                }
                continue;
            };
            let manifest = Manifest::parse(bytes).map_err(|e| OfflineError::BadManifest {
                digest: digest.clone(),
                message: e.to_string(),
            })?;
            children.extend(manifest.manifests.iter().map(|c| c.digest.clone()));
            manifests.insert(digest, manifest);
        }
        wanted = children
            .into_iter()
            .filter(|c| !manifests.contains_key(c))
            .collect();
    }
    Ok(manifests)
}

/// The blobs of `wanted` the package holds, each of at most `limit` bytes and checked
/// against its digest; the walk stops once all are read.
fn read_blobs(
    package: &PackageBytes,
    wanted: &BTreeSet<Digest>,
    limit: u64,
) -> Result<BTreeMap<Digest, Vec<u8>>, OfflineError> {
    let mut found = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(found);
    }
    let mut damaged = None;
    for_each_entry(package, |entry| {
        if let Known::Blob(digest) = entry.known {
            if wanted.contains(&digest) && entry.size <= limit {
                let bytes = read_bounded(entry.reader, entry.name, entry.size, limit)?;
                if Digest::of(&bytes) != digest {
                    damaged = Some(digest);
                    return Ok(Flow::Stop);
                }
                found.insert(digest, bytes);
            }
        }
        Ok(if found.len() == wanted.len() {
            Flow::Stop
        } else {
            Flow::Continue
        })
    })?;
    match damaged {
        Some(digest) => Err(OfflineError::Damaged(digest)),
        None => Ok(found),
    }
}
