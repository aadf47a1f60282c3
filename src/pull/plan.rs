//! Plan: the unique blobs (configs and layers) that resolved images need, each with one
//! source that serves it. Built incrementally, so fetching an image's blobs can start
//! as soon as that image is resolved.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{PullError, ResolvedImage, Source};
use crate::digest::Digest;

/// One unique blob to download, and a source that has it.
#[derive(Debug, Clone)]
pub struct BlobJob {
    pub digest: Digest,
    pub size: u64,
    pub source: Arc<dyn Source>,
}

impl BlobJob {
    /// The reference the blob is fetched for, for messages.
    pub fn owner(&self) -> String {
        self.source.reference().whole()
    }
}

#[derive(Debug, Default)]
pub struct Plan {
    jobs: BTreeMap<Digest, BlobJob>,
}

impl Plan {
    /// Adds an image's blobs; returns the ones no earlier image needed.
    pub fn add(&mut self, image: &ResolvedImage) -> Result<Vec<BlobJob>, PullError> {
        let mut new = Vec::new();
        for blob in &image.blobs {
            match self.jobs.get(&blob.digest) {
                Some(job) if job.size != blob.size => {
                    return Err(PullError::ConflictingSizes {
                        digest: blob.digest.clone(),
                        first: job.size,
                        second: blob.size,
                        reference: image.reference.whole(),
                    })
                }
                Some(_) => {}
                None => {
                    let job = BlobJob {
                        digest: blob.digest.clone(),
                        size: blob.size,
                        source: image.source.clone(),
                    };
                    self.jobs.insert(blob.digest.clone(), job.clone());
                    new.push(job);
                }
            }
        }
        Ok(new)
    }

    pub fn job(&self, digest: &Digest) -> Option<&BlobJob> {
        self.jobs.get(digest)
    }

    pub fn jobs(&self) -> impl Iterator<Item = &BlobJob> {
        self.jobs.values()
    }
}

/// Plans every image at once.
pub fn plan(images: &[ResolvedImage]) -> Result<Plan, PullError> {
    let mut plan = Plan::default();
    for image in images {
        plan.add(image)?;
    }
    Ok(plan)
}
