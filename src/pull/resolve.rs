//! Resolve: each reference becomes its manifest's exact bytes, with the index policy
//! applied, and the list of blobs it needs.

use std::collections::{BTreeMap, VecDeque};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use oci_client::Reference;

use super::PullError;
use crate::definition::Definition;
use crate::manifest::{Descriptor, Kind, Manifest, Platform, MAX_MANIFEST_BYTES};
use crate::progress::Reporter;
use crate::registry::Registry;
use crate::store::{Digest, Store};

pub struct ResolveOptions {
    pub architecture: String,
    pub allow_index: bool,
    pub concurrency: usize,
}

/// One image line of the definition, resolved.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    pub component: String,
    pub reference: Reference,
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub platform: Option<Platform>,
    pub kind: Kind,
    /// Every manifest and index reachable from the root, root included.
    pub manifests: Vec<(Digest, u64)>,
    /// Configs and layers of every manifest.
    pub blobs: Vec<Descriptor>,
}

/// Resolves every image of the definition, several at a time; manifests are written
/// to `store` as they arrive.
pub async fn resolve_all(
    registry: &Registry,
    store: &Store,
    definition: &Definition,
    options: &ResolveOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<ResolvedImage>, PullError> {
    let mut unique: BTreeMap<String, Reference> = BTreeMap::new();
    for image in definition.components.iter().flat_map(|c| &c.images) {
        unique
            .entry(image.full())
            .or_insert_with(|| image.reference.clone());
    }
    reporter.step(&format!("resolving {} image references", unique.len()));
    let resolved: BTreeMap<String, ResolvedImage> = stream::iter(unique)
        .map(|(full, reference)| async move {
            let image = resolve_one(registry, store, reference, options).await?;
            Ok::<_, PullError>((full, image))
        })
        .buffer_unordered(options.concurrency.max(1))
        .try_collect()
        .await?;

    let mut images = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for component in &definition.components {
        for image in &component.images {
            // A reference listed twice is packaged once, under its first component.
            if seen.insert(image.full()) {
                let mut entry = resolved[&image.full()].clone();
                entry.component = component.name.clone();
                images.push(entry);
            }
        }
    }
    Ok(images)
}

async fn resolve_one(
    registry: &Registry,
    store: &Store,
    reference: Reference,
    options: &ResolveOptions,
) -> Result<ResolvedImage, PullError> {
    let (bytes, digest) = registry.manifest(&reference).await?;
    let manifest = parse(&reference, &digest, &bytes)?;
    put(store, &reference, &digest, &bytes)?;
    let size = bytes.len() as u64;

    if !manifest.is_index() {
        return Ok(ResolvedImage {
            component: String::new(),
            media_type: manifest.effective_media_type().to_owned(),
            kind: manifest.kind(),
            blobs: manifest.blobs().cloned().collect(),
            manifests: vec![(digest.clone(), size)],
            digest,
            size,
            platform: None,
            reference,
        });
    }

    if options.allow_index {
        let mut image = ResolvedImage {
            component: String::new(),
            media_type: manifest.effective_media_type().to_owned(),
            kind: Kind::Index,
            blobs: Vec::new(),
            manifests: vec![(digest.clone(), size)],
            digest,
            size,
            platform: None,
            reference: reference.clone(),
        };
        let mut queue: VecDeque<Descriptor> = manifest.manifests.into_iter().collect();
        while let Some(child) = queue.pop_front() {
            if image.manifests.iter().any(|(d, _)| *d == child.digest) {
                continue;
            }
            let child_manifest = fetch_child(registry, store, &reference, &child).await?;
            image.manifests.push((child.digest.clone(), child.size));
            queue.extend(child_manifest.manifests.iter().cloned());
            image.blobs.extend(child_manifest.blobs().cloned());
        }
        return Ok(image);
    }

    if reference.digest().is_some() {
        return Err(PullError::IndexRefused {
            reference: reference.whole(),
            architecture: options.architecture.clone(),
            platforms: manifest
                .manifests
                .iter()
                .map(|m| {
                    let pinned = Reference::with_digest(
                        reference.registry().to_owned(),
                        reference.repository().to_owned(),
                        m.digest.to_string(),
                    );
                    (m.platform.clone(), pinned.whole())
                })
                .collect(),
        });
    }

    let Some(child) = manifest.manifests.iter().find(|m| {
        m.platform
            .as_ref()
            .is_some_and(|p| p.matches_linux(&options.architecture))
    }) else {
        return Err(PullError::PlatformMissing {
            reference: reference.whole(),
            architecture: options.architecture.clone(),
            available: manifest
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref().map(ToString::to_string))
                .collect(),
        });
    };
    let child_manifest = fetch_child(registry, store, &reference, child).await?;
    if child_manifest.is_index() {
        return Err(PullError::BadManifest {
            reference: reference.whole(),
            digest: child.digest.clone(),
            message: "a platform entry points at another index".into(),
        });
    }
    Ok(ResolvedImage {
        component: String::new(),
        media_type: child_manifest.effective_media_type().to_owned(),
        kind: child_manifest.kind(),
        blobs: child_manifest.blobs().cloned().collect(),
        manifests: vec![(child.digest.clone(), child.size)],
        digest: child.digest.clone(),
        size: child.size,
        platform: child.platform.clone(),
        reference,
    })
}

/// Fetches a manifest named by a descriptor, holding it to the descriptor's size.
async fn fetch_child(
    registry: &Registry,
    store: &Store,
    parent: &Reference,
    child: &Descriptor,
) -> Result<Manifest, PullError> {
    if child.size > MAX_MANIFEST_BYTES {
        return Err(PullError::ChildTooLarge {
            reference: parent.whole(),
            digest: child.digest.clone(),
            size: child.size,
        });
    }
    let pinned = parent.clone_with_digest(child.digest.to_string());
    let (bytes, digest) = registry.manifest(&pinned).await?;
    if bytes.len() as u64 != child.size {
        return Err(PullError::BadManifest {
            reference: parent.whole(),
            digest,
            message: format!(
                "it is {} bytes, but its descriptor says {}",
                bytes.len(),
                child.size
            ),
        });
    }
    let manifest = parse(parent, &digest, &bytes)?;
    put(store, parent, &digest, &bytes)?;
    Ok(manifest)
}

fn parse(reference: &Reference, digest: &Digest, bytes: &[u8]) -> Result<Manifest, PullError> {
    Manifest::parse(bytes).map_err(|e| PullError::BadManifest {
        reference: reference.whole(),
        digest: digest.clone(),
        message: e.to_string(),
    })
}

fn put(
    store: &Store,
    reference: &Reference,
    digest: &Digest,
    bytes: &[u8],
) -> Result<(), PullError> {
    store
        .put_bytes(digest, bytes)
        .map_err(|source| PullError::Store {
            what: format!("the manifest {digest} of {}", reference.whole()),
            source,
        })
}
