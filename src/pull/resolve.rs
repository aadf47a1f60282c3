//! Resolve: a reference becomes its manifest's exact bytes, with the index policy
//! applied, and the list of blobs it needs. Indexes are followed with the manifest
//! walker, so an index of indexes is descended like any other.
//!
//! The policy: a tag on an index takes the `linux/<arch>` image, searching nested
//! indexes; a reference pinned to an index digest is refused with a listing of its
//! platforms (buildx attestation manifests are named beside the platform they
//! describe, never counted as platforms); `--allow-index` keeps everything.

use std::sync::Arc;

use super::{PullError, Source};
use crate::digest::Digest;
use crate::manifest::walk::{Node, Role, Walk};
use crate::manifest::{Descriptor, Kind, Manifest, Platform, MAX_MANIFEST_BYTES};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct ResolveOptions {
    pub architecture: String,
    pub allow_index: bool,
}

/// One image reference, resolved.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    pub component: String,
    pub reference: oci_client::Reference,
    pub source: Arc<dyn Source>,
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub platform: Option<Platform>,
    pub kind: Kind,
    /// Every manifest and index kept, root included.
    pub manifests: Vec<(Digest, u64)>,
    /// Configs and layers of every manifest kept.
    pub blobs: Vec<Descriptor>,
}

/// One platform of an index, for the refusal's listing.
#[derive(Debug, Clone)]
pub struct IndexPlatform {
    pub platform: Option<Platform>,
    pub digest: Digest,
    /// Attestation manifests that describe this platform's manifest.
    pub attestations: Vec<Digest>,
}

/// Resolves one reference; manifests are written to `store` as they arrive.
pub async fn resolve(
    source: Arc<dyn Source>,
    store: &Store,
    options: &ResolveOptions,
) -> Result<ResolvedImage, PullError> {
    let reference = source.reference().clone();
    let (bytes, digest) = source.manifest(None).await?;
    let manifest = parse(&source, &digest, &bytes)?;
    put(store, &source, &digest, &bytes)?;
    let size = bytes.len() as u64;
    let root = Descriptor::new(manifest.effective_media_type(), digest.clone(), size);
    let mut image = ResolvedImage {
        component: String::new(),
        reference,
        media_type: manifest.effective_media_type().to_owned(),
        kind: manifest.kind(),
        manifests: vec![(digest.clone(), size)],
        blobs: Vec::new(),
        digest,
        size,
        platform: None,
        source: source.clone(),
    };

    if !manifest.is_index() {
        image.blobs = manifest.blobs().cloned().collect();
        return Ok(image);
    }
    if options.allow_index {
        keep_whole_index(&source, store, root, &manifest, &mut image).await?;
        return Ok(image);
    }
    let platforms = platforms(&source, store, root, &manifest).await?;
    if image.reference.digest().is_some() {
        let pinned = platforms
            .into_iter()
            .map(|p| {
                let pin = crate::reference::Target::pinned(&image.reference, &p.digest).whole();
                (p, pin)
            })
            .collect();
        return Err(PullError::IndexRefused {
            reference: image.reference.whole(),
            architecture: options.architecture.clone(),
            platforms: pinned,
        });
    }
    let Some((picked, picked_manifest)) = pick(&source, store, &platforms, options).await? else {
        return Err(PullError::PlatformMissing {
            reference: image.reference.whole(),
            architecture: options.architecture.clone(),
            available: platforms
                .iter()
                .filter_map(|p| p.platform.as_ref().map(ToString::to_string))
                .collect(),
        });
    };
    Ok(ResolvedImage {
        media_type: picked_manifest.effective_media_type().to_owned(),
        kind: picked_manifest.kind(),
        blobs: picked_manifest.blobs().cloned().collect(),
        manifests: vec![(picked.digest.clone(), picked.size)],
        digest: picked.digest.clone(),
        size: picked.size,
        platform: picked.platform.clone(),
        ..image
    })
}

/// Every manifest below an index, fetched, with the blobs of each.
async fn keep_whole_index(
    source: &Arc<dyn Source>,
    store: &Store,
    root: Descriptor,
    manifest: &Manifest,
    image: &mut ResolvedImage,
) -> Result<(), PullError> {
    let mut walk = Walk::from_root(root).map_err(|e| walk_error(source, e))?;
    let Some(root_node) = walk.next_node() else {
        return Ok(());
    };
    walk.descend(&root_node, manifest)
        .map_err(|e| walk_error(source, e))?;
    while let Some(node) = walk.next_node() {
        match node.role {
            Role::Manifest => {
                let child = fetch_child(source, store, &node).await?;
                image
                    .manifests
                    .push((node.digest().clone(), node.descriptor.size));
                walk.descend(&node, &child)
                    .map_err(|e| walk_error(source, e))?;
            }
            Role::Config | Role::Layer => image.blobs.push(node.descriptor),
        }
    }
    Ok(())
}

/// The platform manifests of an index, nested indexes included (they are fetched and
/// descended; image manifests are not fetched), each with its attestations.
async fn platforms(
    source: &Arc<dyn Source>,
    store: &Store,
    root: Descriptor,
    manifest: &Manifest,
) -> Result<Vec<IndexPlatform>, PullError> {
    let mut found: Vec<IndexPlatform> = Vec::new();
    let mut attestations: Vec<(String, Digest)> = Vec::new();
    let mut walk = Walk::from_root(root).map_err(|e| walk_error(source, e))?;
    let mut current = Some(manifest.clone());
    while let Some(node) = walk.next_node() {
        let index = match current.take() {
            Some(root) => Some(root),
            None if node.descriptor.names_index() => Some(fetch_child(source, store, &node).await?),
            None => None,
        };
        match index {
            Some(index) if index.is_index() => walk
                .descend(&node, &index)
                .map_err(|e| walk_error(source, e))?,
            _ if node.descriptor.is_attestation() => {
                if let Some(subject) = node.descriptor.attests() {
                    attestations.push((subject.to_owned(), node.digest().clone()));
                }
            }
            _ => found.push(IndexPlatform {
                platform: node.descriptor.platform.clone(),
                digest: node.digest().clone(),
                attestations: Vec::new(),
            }),
        }
    }
    for (subject, attestation) in attestations {
        if let Some(platform) = found.iter_mut().find(|p| p.digest.to_string() == subject) {
            platform.attestations.push(attestation);
        }
    }
    Ok(found)
}

/// The first platform that matches the package's architecture, fetched.
async fn pick(
    source: &Arc<dyn Source>,
    store: &Store,
    platforms: &[IndexPlatform],
    options: &ResolveOptions,
) -> Result<Option<(Descriptor, Manifest)>, PullError> {
    let Some(platform) = platforms.iter().find(|p| {
        p.platform
            .as_ref()
            .is_some_and(|p| p.matches_linux(&options.architecture))
    }) else {
        return Ok(None);
    };
    let (bytes, digest) = source.manifest(Some(&platform.digest)).await?;
    let manifest = parse(source, &digest, &bytes)?;
    if manifest.is_index() {
        return Err(PullError::BadManifest {
            reference: source.reference().whole(),
            digest,
            message: "a platform entry points at another index".into(),
        });
    }
    put(store, source, &digest, &bytes)?;
    let mut descriptor =
        Descriptor::new(manifest.effective_media_type(), digest, bytes.len() as u64);
    descriptor.platform = platform.platform.clone();
    Ok(Some((descriptor, manifest)))
}

/// Fetches the manifest at a walker node, holding it to its descriptor's size. A
/// manifest already in the store (pinned by digest, so it cannot have changed) is read
/// from there instead of asked for again.
async fn fetch_child(
    source: &Arc<dyn Source>,
    store: &Store,
    node: &Node,
) -> Result<Manifest, PullError> {
    let child = &node.descriptor;
    if child.size > MAX_MANIFEST_BYTES {
        return Err(PullError::ChildTooLarge {
            reference: source.reference().whole(),
            digest: child.digest.clone(),
            size: child.size,
        });
    }
    if store.contains(&child.digest, child.size) {
        if let Ok(bytes) = std::fs::read(store.blob_path(&child.digest)) {
            return parse(source, &child.digest, &bytes);
        }
    }
    let (bytes, digest) = source.manifest(Some(&child.digest)).await?;
    if bytes.len() as u64 != child.size {
        return Err(PullError::BadManifest {
            reference: source.reference().whole(),
            digest,
            message: format!(
                "it is {} bytes, but its descriptor says {}",
                bytes.len(),
                child.size
            ),
        });
    }
    let manifest = parse(source, &digest, &bytes)?;
    put(store, source, &digest, &bytes)?;
    Ok(manifest)
}

fn walk_error(source: &Arc<dyn Source>, error: crate::manifest::walk::WalkError) -> PullError {
    PullError::Walk {
        reference: source.reference().whole(),
        source: error,
    }
}

fn parse(source: &Arc<dyn Source>, digest: &Digest, bytes: &[u8]) -> Result<Manifest, PullError> {
    Manifest::parse(bytes).map_err(|e| PullError::BadManifest {
        reference: source.reference().whole(),
        digest: digest.clone(),
        message: e.to_string(),
    })
}

fn put(
    store: &Store,
    source: &Arc<dyn Source>,
    digest: &Digest,
    bytes: &[u8],
) -> Result<(), PullError> {
    store
        .put_bytes(digest, bytes)
        .map_err(|err| PullError::Store {
            what: format!("the manifest {digest} of {}", source.reference().whole()),
            source: err,
        })
}
