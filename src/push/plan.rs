//! Planning: each entry of a package's index mapped onto the target, with its manifests
//! in push order (children first, each with the media type to push it with), its blobs,
//! and the places its manifests go. `serve` plans the same way, to name its
//! repositories and tags as a push would.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use oci_client::Reference;

use super::PushError;
use crate::digest::Digest;
use crate::manifest::parsed::ParsedManifests;
use crate::manifest::walk::{Role, Walk, WalkError};
use crate::manifest::{is_manifest_media_type, Descriptor};
use crate::reference::{parse_reference, Target};
use crate::store::layout::{IndexEntry, LayoutIndex};

/// One image of the package, planned for its target.
pub(crate) struct PlannedImage {
    pub source: String,
    pub target: Reference,
    /// Manifests in push order: children first, the root last.
    pub manifests: Vec<(Digest, String)>,
    pub blobs: BTreeSet<Digest>,
}

/// Where one manifest of an image goes: by digest in the image's repository, or (the
/// root) under the image's tag.
pub(super) struct ManifestPlace<'a> {
    pub at: Reference,
    /// How a manifest there is recorded as present or sent: (repository, digest) by
    /// digest, (whole reference, digest) under a tag.
    pub key: (String, Digest),
    pub media_type: &'a str,
}

impl PlannedImage {
    /// Every place this image's manifests go, in push order: each by digest, children
    /// first, then the root under the target's tag, if it has one.
    pub(super) fn manifest_places(&self) -> Vec<ManifestPlace<'_>> {
        let repository = self.target.repository();
        let mut places: Vec<ManifestPlace<'_>> = self
            .manifests
            .iter()
            .map(|(digest, media_type)| ManifestPlace {
                at: Reference::with_digest(
                    self.target.registry().to_owned(),
                    repository.to_owned(),
                    digest.to_string(),
                ),
                key: (repository.to_owned(), digest.clone()),
                media_type,
            })
            .collect();
        // The root comes last in children-first order.
        if let (Some(_), Some((root, media_type))) = (self.target.tag(), self.manifests.last()) {
            places.push(ManifestPlace {
                at: self.target.clone(),
                key: (self.target.whole(), root.clone()),
                media_type,
            });
        }
        places
    }
}

/// Each entry of the package's index, planned for `target`; an entry that cannot be is
/// recorded as failed. Entries that name one digest are walked once.
pub(crate) fn plan_images(
    index: &LayoutIndex,
    manifests: &BTreeMap<Digest, Vec<u8>>,
    target: &Target,
    failed: &mut Vec<(String, PushError)>,
) -> Vec<PlannedImage> {
    let parsed = ParsedManifests::new(manifests);
    let mut collected: HashMap<&Digest, Collected> = HashMap::new();
    let mut images = Vec::new();
    // A manifest with a subject goes after its subject: entries that describe another
    // (linked by `--with-signatures`, or whose manifest names a `subject`) come after
    // every other entry, in index order, where a signature of an attestation already
    // follows the attestation.
    let describes = |entry: &&IndexEntry| {
        entry.link().is_some()
            || parsed
                .get(&entry.digest)
                .is_some_and(|m| m.subject.is_some())
    };
    let subjects_first = index
        .manifests
        .iter()
        .filter(|e| !describes(e))
        .chain(index.manifests.iter().filter(describes));
    for entry in subjects_first {
        let source = entry.reference().unwrap_or("(unnamed)").to_owned();
        let source_ref = match parse_reference(&source) {
            Ok(reference) => reference,
            Err(err) => {
                failed.push((source, err.into()));
                continue;
            }
        };
        let walked = match collected.get(&entry.digest) {
            Some(done) => Ok(done.clone()),
            None => collect(&parsed, entry.descriptor()),
        };
        match walked {
            Ok((manifests, blobs)) => {
                collected.insert(&entry.digest, (manifests.clone(), blobs.clone()));
                images.push(PlannedImage {
                    target: target_of(entry, &source_ref, target),
                    source,
                    manifests,
                    blobs,
                });
            }
            Err(err) => failed.push((source, err.into())),
        }
    }
    images
}

/// Where an entry goes on `target`. An image taken by `platformFromIndex` from an index
/// its reference pins goes by its own digest: the index itself is not in the package.
fn target_of(entry: &IndexEntry, source: &Reference, target: &Target) -> Reference {
    let mapped = target.map(source);
    match (entry.from_index(), mapped.digest()) {
        (Some(_), Some(_)) => Target::pinned(&mapped, &entry.digest),
        _ => mapped,
    }
}

/// An image's manifests in push order, each with its media type, and its blobs.
type Collected = (Vec<(Digest, String)>, BTreeSet<Digest>);

/// Walks an image's graph: its manifests children-first, each with the media type to
/// push it with, and every config and layer. An index's children are manifests
/// whatever media type their descriptor claims; each manifest is pushed with the media
/// type its own bytes declare.
fn collect(parsed: &ParsedManifests<'_>, root: Descriptor) -> Result<Collected, WalkError> {
    let root_digest = root.digest.clone();
    let mut walk = Walk::from_root(root)?;
    let mut media_types: HashMap<Digest, String> = HashMap::new();
    let mut blobs = BTreeSet::new();
    while let Some(node) = walk.next_node() {
        parsed.spend(1)?;
        if node.role != Role::Manifest {
            blobs.insert(node.digest().clone());
            continue;
        }
        let manifest = parsed.get(node.digest());
        let declared = &node.descriptor.media_type;
        let media_type = match &manifest {
            Some(m) if m.media_type.is_some() => m.effective_media_type().to_owned(),
            Some(m) if !is_manifest_media_type(declared) => m.effective_media_type().to_owned(),
            _ => declared.clone(),
        };
        if let Some(manifest) = manifest {
            walk.descend(&node, manifest)?;
        }
        media_types.insert(node.digest().clone(), media_type);
    }
    let manifests = walk
        .children_first(&root_digest)
        .into_iter()
        .map(|digest| {
            let media_type = media_types.get(&digest).cloned().unwrap_or_default();
            (digest, media_type)
        })
        .collect();
    Ok((manifests, blobs))
}
