//! Resolve: a reference becomes its manifest's exact bytes, with the index policy
//! applied, and the list of blobs it needs. Indexes are followed with the manifest
//! walker, so an index of indexes is descended like any other.
//!
//! The policy: a tag on an index takes the `linux/<arch>` image, searching nested
//! indexes; a reference pinned to an index digest is refused with a listing of its
//! platforms (buildx attestation manifests are named beside the platform they
//! describe, never counted as platforms); `--allow-index` keeps everything.
//! `platformFromIndex` takes the `linux/<arch>` image from an index, pinned or not, and
//! records the index's digest: a pinned index's bytes must hash to the pin, and the
//! image is one the index lists, so the pin still fixes the content.

use std::sync::Arc;

use super::link::Link;
use super::{PullError, Source};
use crate::digest::Digest;
use crate::manifest::walk::{Role, Walk};
use crate::manifest::{Descriptor, Kind, Manifest, Platform, MAX_MANIFEST_BYTES};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct ResolveOptions {
    pub architecture: String,
    pub allow_index: bool,
    /// Take the platform's image from an index, even one the reference pins (and even
    /// with `allow_index`), and record the index's digest.
    pub platform_from_index: bool,
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
    /// Configs and layers of every manifest kept, by the walker's rule. Shared by every
    /// reference that resolves to the same manifest (see `pull::resolve_all`): a
    /// definition may name one image under thousands of tags.
    pub blobs: Arc<Vec<Descriptor>>,
    /// The buildx attestation manifests that the index a tag resolved through holds
    /// for the platform picked (found there, not fetched).
    pub buildx_attestations: Vec<Digest>,
    /// For an artifact that discovery brought: its subject and how it relates.
    pub link: Option<Link>,
    /// With `platformFromIndex`, the index the platform's image was taken from.
    pub from_index: Option<Digest>,
}

/// One platform of an index, for the refusal's listing.
#[derive(Debug, Clone)]
pub struct IndexPlatform {
    pub platform: Option<Platform>,
    pub digest: Digest,
    /// The size its index entry declares.
    pub size: u64,
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
    let from_index = options.platform_from_index && manifest.is_index();
    if from_index {
        check_pin(&source, &bytes)?;
    }
    let size = bytes.len() as u64;
    store_manifest(store, &source, &digest, bytes).await?;
    let root = Descriptor::new(manifest.effective_media_type(), digest.clone(), size);
    let image = ResolvedImage {
        component: String::new(),
        reference,
        media_type: manifest.effective_media_type().to_owned(),
        kind: manifest.kind(),
        manifests: Vec::new(),
        blobs: Arc::default(),
        digest,
        size,
        platform: None,
        source: source.clone(),
        buildx_attestations: Vec::new(),
        link: None,
        from_index: None,
    };

    if !manifest.is_index() || (options.allow_index && !from_index) {
        let (manifests, blobs) = keep_all(&source, store, root, &manifest).await?;
        return Ok(ResolvedImage {
            manifests,
            blobs: Arc::new(blobs),
            ..image
        });
    }
    let platforms = platforms(&source, store, root, &manifest).await?;
    if image.reference.digest().is_some() && !from_index {
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
    let (manifests, blobs) = keep_all(&source, store, picked.clone(), &picked_manifest).await?;
    let buildx_attestations = platforms
        .iter()
        .find(|p| p.digest == picked.digest)
        .map(|p| p.attestations.clone())
        .unwrap_or_default();
    Ok(ResolvedImage {
        buildx_attestations,
        media_type: picked_manifest.effective_media_type().to_owned(),
        kind: picked_manifest.kind(),
        manifests,
        blobs: Arc::new(blobs),
        digest: picked.digest,
        size: picked.size,
        platform: picked.platform,
        from_index: from_index.then(|| image.digest.clone()),
        ..image
    })
}

/// Refuses an index whose bytes do not hash to the digest the reference pins: its
/// listing is what vouches for the platform's image. A registry source checks this
/// already; any source is held to it here.
fn check_pin(source: &Arc<dyn Source>, bytes: &[u8]) -> Result<(), PullError> {
    let reference = source.reference();
    let Some(pinned) = reference.digest() else {
        return Ok(());
    };
    let served = Digest::of(bytes);
    if served.to_string() == pinned {
        return Ok(());
    }
    Err(PullError::IndexPinMismatch {
        reference: reference.whole(),
        served,
    })
}

/// Everything the walker reaches from `root` (whose manifest is already in hand): its
/// manifests, root first, each fetched, and the configs and layers they name. What the
/// seal will require is decided by the same walker, so nothing it needs is missed.
async fn keep_all(
    source: &Arc<dyn Source>,
    store: &Store,
    root: Descriptor,
    manifest: &Manifest,
) -> Result<(Vec<(Digest, u64)>, Vec<Descriptor>), PullError> {
    let mut manifests = vec![(root.digest.clone(), root.size)];
    let mut blobs = Vec::new();
    let mut walk = Walk::from_root(root).map_err(|e| walk_error(source, e))?;
    let Some(root_node) = walk.next_node() else {
        return Ok((manifests, blobs));
    };
    walk.descend(&root_node, manifest)
        .map_err(|e| walk_error(source, e))?;
    while let Some(node) = walk.next_node() {
        match node.role {
            Role::Manifest => {
                let child = fetch_child(source, store, &node.descriptor).await?;
                manifests.push((node.digest().clone(), node.descriptor.size));
                walk.descend(&node, &child)
                    .map_err(|e| walk_error(source, e))?;
            }
            Role::Config | Role::Layer => blobs.push(node.descriptor),
        }
    }
    Ok((manifests, blobs))
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
            None if node.descriptor.names_index() => {
                Some(fetch_child(source, store, &node.descriptor).await?)
            }
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
                size: node.descriptor.size,
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

/// The first platform that matches the package's architecture, with its manifest
/// (from the store when a good copy is there, else fetched).
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
    // The entry's own media type may be wrong: the manifest's bytes say what it is.
    let entry = Descriptor::new("", platform.digest.clone(), platform.size);
    let manifest = fetch_child(source, store, &entry).await?;
    if manifest.is_index() {
        return Err(PullError::BadManifest {
            reference: source.reference().whole(),
            digest: platform.digest.clone(),
            message: "a platform entry points at another index".into(),
        });
    }
    let mut descriptor = Descriptor::new(
        manifest.effective_media_type(),
        platform.digest.clone(),
        platform.size,
    );
    descriptor.platform = platform.platform.clone();
    Ok(Some((descriptor, manifest)))
}

/// The manifest a descriptor names, held to the descriptor's digest and size. A copy
/// already in the store is used instead of asking the source again, but only once its
/// bytes hash to the digest: a file of the right size can still be damaged, and a
/// damaged copy is evicted so that the source's bytes replace it.
async fn fetch_child(
    source: &Arc<dyn Source>,
    store: &Store,
    child: &Descriptor,
) -> Result<Manifest, PullError> {
    if child.size > MAX_MANIFEST_BYTES {
        return Err(PullError::ChildTooLarge {
            reference: source.reference().whole(),
            digest: child.digest.clone(),
            size: child.size,
        });
    }
    if store.contains(&child.digest, child.size) {
        match std::fs::read(store.blob_path(&child.digest)) {
            Ok(bytes) if Digest::of(&bytes) == child.digest => {
                return parse(source, &child.digest, &bytes)
            }
            Ok(_) => store.evict(&child.digest),
            // Unreadable: let the source's answer decide.
            Err(_) => {}
        }
    }
    let (bytes, digest) = source.manifest(Some(&child.digest)).await?;
    if Digest::of(&bytes) != child.digest {
        return Err(PullError::BadManifest {
            reference: source.reference().whole(),
            digest: child.digest.clone(),
            message: format!("its bytes hash to {}", Digest::of(&bytes)),
        });
    }
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
    store_manifest(store, source, &digest, bytes).await?;
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

/// Writes a manifest's bytes into the store on a blocking thread: creating the file
/// can be slow, and its lock may be held by another pkgr process.
pub(super) async fn store_manifest(
    store: &Store,
    source: &Arc<dyn Source>,
    digest: &Digest,
    bytes: Vec<u8>,
) -> Result<(), PullError> {
    // Many references may name one manifest: once it is in place, as the writer would
    // find too, there is nothing to hand to a blocking thread.
    if store.contains(digest, bytes.len() as u64) {
        return Ok(());
    }
    let (store, wanted) = (store.clone(), digest.clone());
    tokio::task::spawn_blocking(move || store.put_bytes(&wanted, &bytes))
        .await
        .map_err(|join| PullError::Internal {
            what: format!("storing the manifest {digest}"),
            source: join,
        })?
        .map_err(|err| PullError::Store {
            what: format!("the manifest {digest} of {}", source.reference().whole()),
            source: err,
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use futures_util::future::BoxFuture;
    use oci_client::Reference;

    use super::*;
    use crate::manifest::walk::LIMITS;
    use crate::registry::BlobStream;

    /// Manifests held in memory: the tag's, and others by digest.
    struct Memory {
        reference: Reference,
        tagged: Vec<u8>,
        by_digest: HashMap<Digest, Vec<u8>>,
    }

    impl Source for Memory {
        fn reference(&self) -> &Reference {
            &self.reference
        }
        fn manifest<'a>(
            &'a self,
            digest: Option<&'a Digest>,
        ) -> BoxFuture<'a, Result<(Vec<u8>, Digest), PullError>> {
            let bytes = match digest {
                None => self.tagged.clone(),
                Some(d) => self.by_digest[d].clone(),
            };
            Box::pin(async move {
                let digest = Digest::of(&bytes);
                Ok((bytes, digest))
            })
        }
        fn blob<'a>(
            &'a self,
            _: &'a Digest,
            _: u64,
        ) -> BoxFuture<'a, Result<(BlobStream, bool), PullError>> {
            unreachable!("resolving never asks for a blob")
        }
    }

    fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
        serde_json::json!({
            "mediaType": media_type,
            "digest": Digest::of(bytes).to_string(),
            "size": bytes.len(),
        })
    }

    /// An image manifest whose config and layer are named after `arch`.
    fn platform_image(arch: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::manifest::OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", arch.as_bytes()),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", arch.as_bytes())],
        }))
        .unwrap()
    }

    /// An index listing each child as `linux/<arch>`.
    fn index_of(children: &[(&str, &[u8])]) -> Vec<u8> {
        let manifests: Vec<serde_json::Value> = children
            .iter()
            .map(|(arch, bytes)| {
                let mut entry = descriptor(crate::manifest::OCI_MANIFEST, bytes);
                entry["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
                entry
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::manifest::OCI_INDEX,
            "manifests": manifests,
        }))
        .unwrap()
    }

    /// Resolves `served` as the answer for a reference pinned to `pinned`, taking the
    /// platform from the index.
    async fn from_index(
        pinned: &[u8],
        served: Vec<u8>,
        children: &[&[u8]],
    ) -> Result<ResolvedImage, PullError> {
        let source: Arc<dyn Source> = Arc::new(Memory {
            reference: format!("registry.test/app@{}", Digest::of(pinned))
                .parse()
                .unwrap(),
            tagged: served,
            by_digest: children
                .iter()
                .map(|c| (Digest::of(c), c.to_vec()))
                .collect(),
        });
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("blobs"), dir.path().join("ingest")).unwrap();
        let options = ResolveOptions {
            architecture: "amd64".into(),
            allow_index: false,
            platform_from_index: true,
        };
        resolve(source, &store, &options).await
    }

    #[tokio::test]
    async fn a_pinned_index_gives_the_platform_it_lists_and_is_recorded() {
        let (amd, arm) = (platform_image("amd64"), platform_image("arm64"));
        let index = index_of(&[("arm64", &arm), ("amd64", &amd)]);
        let image = from_index(&index, index.clone(), &[&amd, &arm])
            .await
            .unwrap();
        assert_eq!(image.digest, Digest::of(&amd));
        assert_eq!(image.from_index, Some(Digest::of(&index)));
        assert_eq!(image.platform.unwrap().to_string(), "linux/amd64");
        assert_eq!(image.manifests, [(Digest::of(&amd), amd.len() as u64)]);
    }

    #[tokio::test]
    async fn an_index_whose_bytes_are_not_the_pinned_ones_is_refused() {
        let (amd, other) = (platform_image("amd64"), platform_image("other"));
        let pinned = index_of(&[("amd64", &amd)]);
        let served = index_of(&[("amd64", &other)]);
        let err = from_index(&pinned, served.clone(), &[&amd, &other])
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the index registry.test/app@{} was served with bytes that hash to {}, so the platform it lists cannot be trusted",
                Digest::of(&pinned),
                Digest::of(&served)
            )
        );
    }

    #[tokio::test]
    async fn a_child_whose_bytes_are_not_the_listed_ones_is_refused() {
        let amd = platform_image("amd64");
        let index = index_of(&[("amd64", &amd)]);
        let source: Arc<dyn Source> = Arc::new(Memory {
            reference: format!("registry.test/app@{}", Digest::of(&index))
                .parse()
                .unwrap(),
            tagged: index.clone(),
            by_digest: HashMap::from([(Digest::of(&amd), platform_image("amd65"))]),
        });
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("blobs"), dir.path().join("ingest")).unwrap();
        let options = ResolveOptions {
            architecture: "amd64".into(),
            allow_index: false,
            platform_from_index: true,
        };
        let err = resolve(source, &store, &options).await.unwrap_err();
        assert!(
            matches!(err, PullError::BadManifest { ref digest, .. } if *digest == Digest::of(&amd)),
            "{err}"
        );
        assert!(!store.contains(&Digest::of(&amd), amd.len() as u64));
    }

    #[tokio::test]
    async fn a_pinned_index_without_the_platform_lists_what_it_has() {
        let arm = platform_image("arm64");
        let index = index_of(&[("arm64", &arm)]);
        let err = from_index(&index, index.clone(), &[&arm])
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "registry.test/app@{} has no linux/amd64 image (it has linux/arm64)",
                Digest::of(&index)
            )
        );
    }

    #[tokio::test]
    async fn resolve_keeps_what_the_walker_reaches() {
        // Outside the spec but inside the walker's rule (registries refuse to store it):
        // an image manifest that also lists a manifest. The seal walks into the child,
        // so resolve must fetch it and plan its blobs.
        let oci = crate::manifest::OCI_MANIFEST;
        let child = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci,
            "config": descriptor("application/vnd.oci.image.config.v1+json", b"child config"),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", b"child layer")],
        }))
        .unwrap();
        let parent = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci,
            "config": descriptor("application/vnd.oci.image.config.v1+json", b"config"),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", b"layer")],
            "manifests": [descriptor(oci, &child)],
        }))
        .unwrap();
        let source: Arc<dyn Source> = Arc::new(Memory {
            reference: "registry.test/odd:1".parse().unwrap(),
            tagged: parent.clone(),
            by_digest: HashMap::from([(Digest::of(&child), child.clone())]),
        });
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("blobs"), dir.path().join("ingest")).unwrap();
        let options = ResolveOptions {
            architecture: "amd64".into(),
            allow_index: false,
            platform_from_index: false,
        };
        let image = resolve(source, &store, &options).await.unwrap();

        // What the walker reaches from the same root, from the bytes resolve stored.
        let mut walk = Walk::new(LIMITS);
        walk.add_root(Descriptor::new(oci, image.digest.clone(), image.size), 0)
            .unwrap();
        let (mut manifests, mut blobs) = (Vec::new(), Vec::new());
        while let Some(node) = walk.next_node() {
            if node.role == Role::Manifest {
                let bytes = std::fs::read(store.blob_path(node.digest())).unwrap();
                walk.descend(&node, &Manifest::parse(&bytes).unwrap())
                    .unwrap();
                manifests.push((node.digest().clone(), node.descriptor.size));
            } else {
                blobs.push(node.digest().clone());
            }
        }
        assert_eq!(
            manifests,
            vec![
                (Digest::of(&parent), parent.len() as u64),
                (Digest::of(&child), child.len() as u64)
            ]
        );
        assert_eq!(image.manifests, manifests);
        let planned: Vec<Digest> = image.blobs.iter().map(|b| b.digest.clone()).collect();
        assert_eq!(planned, blobs);
        assert_eq!(planned.len(), 4, "both configs and both layers");
    }
}
