//! Image sources: where an image's manifests and blobs come from. A source is one
//! image reference in one place; it hands out exact manifest bytes and blob streams
//! from an offset. The registry is one source; the Docker daemon (`pull::daemon`) is
//! the other, tried when the registry cannot serve an image.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use oci_client::Reference;

use super::PullError;
use crate::digest::Digest;
use crate::registry::{BlobStream, Registry};

/// What every image source can do. Methods return boxed futures so that sources of
/// different kinds can sit behind one `Arc<dyn Source>` in the same run.
pub trait Source: Send + Sync {
    /// The reference as the user wrote it, normalized: `127.0.0.1:5000/app:1`.
    fn reference(&self) -> &Reference;

    /// The exact bytes of the manifest the reference names (`None`), or of the
    /// manifest `digest` in the same repository, with the digest of those bytes.
    fn manifest<'a>(
        &'a self,
        digest: Option<&'a Digest>,
    ) -> BoxFuture<'a, Result<(Vec<u8>, Digest), PullError>>;

    /// A blob's bytes from `offset`. The flag says whether the stream starts at
    /// `offset` (true) or the source sends the whole blob anyway (false).
    fn blob<'a>(
        &'a self,
        digest: &'a Digest,
        offset: u64,
    ) -> BoxFuture<'a, Result<(BlobStream, bool), PullError>>;

    /// The same place, for another reference in the same repository: what discovery
    /// reads signatures and referrers through. `None` (the default) for a source that
    /// holds only the images it was asked for, which then gets no discovery.
    fn sibling(&self, _reference: Reference) -> Option<Arc<dyn Source>> {
        None
    }

    /// The OCI referrers API's answer for `digest` (each page's exact bytes, an index),
    /// or `None` where the source has no such API (a registry that answers 404). No
    /// page is asked for once those read list `enough` referrers.
    fn referrers<'a>(
        &'a self,
        _digest: &'a Digest,
        _enough: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<Vec<u8>>>, PullError>> {
        Box::pin(async { Ok(None) })
    }
}

impl std::fmt::Debug for dyn Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Source({})", self.reference().whole())
    }
}

/// An image in a registry.
pub struct RegistryImage {
    registry: Arc<Registry>,
    reference: Reference,
}

impl RegistryImage {
    /// The image `reference` in `registry`, as a shareable source.
    pub fn open(registry: Arc<Registry>, reference: Reference) -> Arc<dyn Source> {
        Arc::new(Self {
            registry,
            reference,
        })
    }
}

impl Source for RegistryImage {
    fn reference(&self) -> &Reference {
        &self.reference
    }

    fn manifest<'a>(
        &'a self,
        digest: Option<&'a Digest>,
    ) -> BoxFuture<'a, Result<(Vec<u8>, Digest), PullError>> {
        Box::pin(async move {
            let pinned;
            let reference = match digest {
                Some(digest) => {
                    pinned = crate::reference::Target::pinned(&self.reference, digest);
                    &pinned
                }
                None => &self.reference,
            };
            Ok(self.registry.manifest(reference).await?)
        })
    }

    fn blob<'a>(
        &'a self,
        digest: &'a Digest,
        offset: u64,
    ) -> BoxFuture<'a, Result<(BlobStream, bool), PullError>> {
        Box::pin(async move { Ok(self.registry.blob(&self.reference, digest, offset).await?) })
    }

    fn sibling(&self, reference: Reference) -> Option<Arc<dyn Source>> {
        Some(Self::open(self.registry.clone(), reference))
    }

    fn referrers<'a>(
        &'a self,
        digest: &'a Digest,
        enough: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<Vec<u8>>>, PullError>> {
        Box::pin(async move {
            Ok(self
                .registry
                .referrers(&self.reference, digest, enough)
                .await?)
        })
    }
}
