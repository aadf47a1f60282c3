//! The check at create: each image, once resolved and its signatures discovered, is
//! judged before any of its blobs is planned. The signature layers themselves are
//! fetched here (a few kilobytes each, held to [`MAX_SIGNATURE_BYTES`]) and stored,
//! so that packaging them later downloads nothing again.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::StreamExt;

use super::MAX_SIGNATURE_BYTES;
use super::{candidates, judge, needing_signatures, verdict, ImageKeys, ImageVerdict};
use crate::digest::Digest;
use crate::manifest::{Descriptor, Manifest};
use crate::pull::{Admit, PullError, ResolvedImage, Source};
use crate::store::{Store, StoreError};

/// Admits only images signed by one of its keys.
#[derive(Debug)]
pub struct SignatureGate {
    keys: ImageKeys,
}

impl SignatureGate {
    pub fn new(keys: ImageKeys) -> Self {
        Self { keys }
    }

    /// The verdict on `image`, from the `artifacts` discovery found for it.
    pub async fn judge(
        &self,
        image: &ResolvedImage,
        artifacts: &[ResolvedImage],
        store: &Store,
    ) -> Result<ImageVerdict, PullError> {
        let manifests = image
            .manifests
            .iter()
            .map(|(digest, _)| Ok((digest.clone(), stored_manifest(store, digest)?)))
            .collect::<Result<Vec<_>, PullError>>()?;
        let mut judged = Vec::new();
        for subject in needing_signatures(&manifests) {
            let mut findings = Vec::new();
            let found = artifacts
                .iter()
                .filter(|a| a.link.as_ref().is_some_and(|l| l.subject == subject));
            for artifact in found {
                let manifest = stored_manifest(store, &artifact.digest)?;
                for (form, layer) in candidates(&manifest) {
                    let finding = match layer_bytes(&artifact.source, store, &layer).await? {
                        Some(bytes) => judge(form, &layer, &bytes, &subject, &self.keys),
                        None => judge(form, &layer, &[], &subject, &self.keys),
                    };
                    findings.push(finding);
                }
            }
            judged.push((subject, verdict(findings)));
        }
        Ok(ImageVerdict {
            reference: image.reference.whole(),
            digest: image.digest.clone(),
            manifests: judged,
        })
    }
}

impl Admit for SignatureGate {
    fn admit<'a>(
        &'a self,
        image: &'a ResolvedImage,
        artifacts: &'a [ResolvedImage],
        store: &'a Store,
    ) -> BoxFuture<'a, Result<(), PullError>> {
        Box::pin(async move {
            let verdict = self.judge(image, artifacts, store).await?;
            match verdict.refused() {
                Some(refused) => Err(PullError::Refused(Box::new(refused))),
                None => Ok(()),
            }
        })
    }
}

/// A manifest resolve or discovery stored.
fn stored_manifest(store: &Store, digest: &Digest) -> Result<Manifest, PullError> {
    let path = store.blob_path(digest);
    let bytes = std::fs::read(&path).map_err(|e| PullError::Store {
        what: format!("the manifest {digest}"),
        source: StoreError::io("read", &path, e),
    })?;
    Manifest::parse(&bytes).map_err(|e| PullError::BadManifest {
        reference: digest.to_string(),
        digest: digest.clone(),
        message: e.to_string(),
    })
}

/// A signature layer's bytes, from the store or else from `source` (then stored);
/// `None` for one too large to read, which [`judge`] refuses by its size.
async fn layer_bytes(
    source: &Arc<dyn Source>,
    store: &Store,
    layer: &Descriptor,
) -> Result<Option<Vec<u8>>, PullError> {
    if layer.size > MAX_SIGNATURE_BYTES {
        return Ok(None);
    }
    if store.contains(&layer.digest, layer.size) {
        let path = store.blob_path(&layer.digest);
        if let Ok(bytes) = std::fs::read(&path) {
            if Digest::of(&bytes) == layer.digest {
                return Ok(Some(bytes));
            }
        }
    }
    let (mut stream, _) = source.blob(&layer.digest, 0).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| damaged(source, layer, e))?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > layer.size {
            break;
        }
    }
    if bytes.len() as u64 != layer.size || Digest::of(&bytes) != layer.digest {
        let e = std::io::Error::other("its bytes do not match its descriptor");
        return Err(damaged(source, layer, e));
    }
    let (owned, digest, copy) = (store.clone(), layer.digest.clone(), bytes.clone());
    tokio::task::spawn_blocking(move || owned.put_bytes(&digest, &copy))
        .await
        .map_err(|join| PullError::Internal {
            what: format!("storing the signature {}", layer.digest),
            source: join,
        })?
        .map_err(|source| PullError::Store {
            what: format!("the signature {}", layer.digest),
            source,
        })?;
    Ok(Some(bytes))
}

fn damaged(source: &Arc<dyn Source>, layer: &Descriptor, e: std::io::Error) -> PullError {
    PullError::Interrupted {
        reference: source.reference().whole(),
        digest: layer.digest.clone(),
        source: e,
    }
}
