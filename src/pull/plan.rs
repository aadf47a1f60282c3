//! Plan: the unique blobs (configs and layers) that resolved images need, each with one
//! source that serves it. Built incrementally, so fetching an image's blobs can start
//! as soon as that image is resolved. A differential package's plan leaves out the
//! blobs its base holds: they are never downloaded, only recorded.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{PullError, ResolvedImage, Source};
use crate::digest::Digest;
use crate::manifest::MAX_SIZE;

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

#[derive(Debug)]
pub struct Plan {
    jobs: BTreeMap<Digest, BlobJob>,
    /// The sizes of all jobs, kept at most [`MAX_SIZE`] so no total of them can wrap.
    bytes: u64,
    /// The most one blob may declare (`--max-blob-size`).
    max_blob_size: u64,
    /// Blobs another package holds (a differential package's base), with their sizes.
    held_elsewhere: Arc<BTreeMap<Digest, u64>>,
    /// Those of them that images needed: left out, not downloaded.
    left_out: BTreeMap<Digest, u64>,
}

impl Plan {
    /// An empty plan that refuses any blob declaring more than `max_blob_size` bytes.
    pub fn new(max_blob_size: u64) -> Self {
        Self {
            jobs: BTreeMap::new(),
            bytes: 0,
            max_blob_size,
            held_elsewhere: Arc::default(),
            left_out: BTreeMap::new(),
        }
    }

    /// Leaves out every blob `held` lists with the same size: it is recorded in
    /// [`Plan::left_out`] and never becomes a job.
    pub fn leaving_out(mut self, held: Arc<BTreeMap<Digest, u64>>) -> Self {
        self.held_elsewhere = held;
        self
    }

    /// The blobs images needed that are held elsewhere, with their sizes.
    pub fn left_out(&self) -> &BTreeMap<Digest, u64> {
        &self.left_out
    }

    /// Adds an image's blobs; returns the ones no earlier image needed, largest first,
    /// so that the longest downloads start before the download slots fill up.
    ///
    /// Sizes come from descriptors a registry wrote: blobs that declare more than
    /// [`MAX_SIZE`] bytes in all are refused here, so that the totals reported and
    /// printed later never wrap. One blob that declares more than the plan's bound is
    /// refused before that, whatever the totals.
    pub fn add(&mut self, image: &ResolvedImage) -> Result<Vec<BlobJob>, PullError> {
        if let Some(blob) = image.blobs.iter().find(|b| b.size > self.max_blob_size) {
            return Err(PullError::BlobTooLarge {
                reference: image.reference.whole(),
                digest: blob.digest.clone(),
                size: blob.size,
                limit: self.max_blob_size,
            });
        }
        let within = |total: u64, size: u64| total.checked_add(size).filter(|t| *t <= MAX_SIZE);
        image
            .blobs
            .iter()
            .try_fold(0, |total, blob| within(total, blob.size))
            .ok_or_else(|| PullError::ImageTooLarge {
                reference: image.reference.whole(),
            })?;
        let mut new = Vec::new();
        for blob in image.blobs.iter() {
            if self.held_elsewhere.get(&blob.digest) == Some(&blob.size) {
                self.left_out.insert(blob.digest.clone(), blob.size);
                continue;
            }
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
                    new.push(job);
                }
            }
        }
        let bytes = new
            .iter()
            .try_fold(self.bytes, |total, job| within(total, job.size))
            .ok_or_else(|| PullError::PlanTooLarge {
                reference: image.reference.whole(),
            })?;
        for job in &new {
            self.jobs.insert(job.digest.clone(), job.clone());
        }
        self.bytes = bytes;
        new.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.digest.cmp(&b.digest)));
        Ok(new)
    }

    pub fn job(&self, digest: &Digest) -> Option<&BlobJob> {
        self.jobs.get(digest)
    }

    pub fn jobs(&self) -> impl Iterator<Item = &BlobJob> {
        self.jobs.values()
    }
}

#[cfg(test)]
mod tests {
    use futures_util::future::BoxFuture;
    use oci_client::Reference;

    use super::*;
    use crate::manifest::{Descriptor, Kind};
    use crate::registry::BlobStream;

    /// A source that is never asked for anything: planning only reads descriptors.
    struct Unused(Reference);

    impl Source for Unused {
        fn reference(&self) -> &Reference {
            &self.0
        }
        fn manifest<'a>(
            &'a self,
            _: Option<&'a Digest>,
        ) -> BoxFuture<'a, Result<(Vec<u8>, Digest), PullError>> {
            unreachable!("planning never asks a source for anything")
        }
        fn blob<'a>(
            &'a self,
            _: &'a Digest,
            _: u64,
        ) -> BoxFuture<'a, Result<(BlobStream, bool), PullError>> {
            unreachable!("planning never asks a source for anything")
        }
    }

    fn image(name: &str, blobs: &[(&[u8], u64)]) -> ResolvedImage {
        let reference: Reference = format!("registry.test/{name}:1").parse().unwrap();
        ResolvedImage {
            component: "c".into(),
            source: Arc::new(Unused(reference.clone())),
            reference,
            media_type: crate::manifest::OCI_MANIFEST.into(),
            digest: Digest::of(name.as_bytes()),
            size: 1,
            platform: None,
            kind: Kind::ContainerImage,
            manifests: Vec::new(),
            blobs: std::sync::Arc::new(
                blobs
                    .iter()
                    .map(|(bytes, size)| Descriptor::new("x", Digest::of(bytes), *size))
                    .collect(),
            ),
            buildx_attestations: Vec::new(),
            link: None,
            from_index: None,
        }
    }

    #[test]
    fn each_digest_is_planned_once_with_its_first_source() {
        let mut plan = Plan::new(MAX_SIZE);
        let first = plan.add(&image("a", &[(b"a", 1), (b"base", 4)])).unwrap();
        let second = plan.add(&image("b", &[(b"base", 4), (b"b", 1)])).unwrap();
        let digests: Vec<Digest> = first.iter().map(|j| j.digest.clone()).collect();
        assert_eq!(
            digests,
            [Digest::of(b"base"), Digest::of(b"a")],
            "largest first"
        );
        assert_eq!(second.len(), 1, "the shared base is not planned again");
        assert_eq!(second[0].digest, Digest::of(b"b"));
        let base = plan.job(&Digest::of(b"base")).unwrap();
        assert_eq!(base.owner(), "registry.test/a:1");
        assert_eq!(plan.jobs().count(), 3);
    }

    #[test]
    fn blobs_held_elsewhere_with_the_same_size_are_left_out_not_planned() {
        let held = BTreeMap::from([(Digest::of(b"base"), 4), (Digest::of(b"b"), 99)]);
        let mut plan = Plan::new(MAX_SIZE).leaving_out(Arc::new(held));
        let jobs = plan
            .add(&image("a", &[(b"base", 4), (b"a", 1), (b"b", 1)]))
            .unwrap();
        let digests: std::collections::BTreeSet<Digest> =
            jobs.iter().map(|j| j.digest.clone()).collect();
        // `b` is held with another size: not the same blob to the descriptor, so fetched.
        assert_eq!(
            digests,
            [Digest::of(b"a"), Digest::of(b"b")].into_iter().collect()
        );
        assert_eq!(plan.left_out(), &BTreeMap::from([(Digest::of(b"base"), 4)]));
        assert!(plan.job(&Digest::of(b"base")).is_none());
    }

    #[test]
    fn blobs_that_declare_more_than_2_63_bytes_in_all_are_refused() {
        let half = MAX_SIZE / 2 + 1;
        let mut plan = Plan::new(MAX_SIZE);
        let err = plan
            .add(&image("a", &[(b"x", half), (b"y", half)]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the blobs of registry.test/a:1 declare more than 2^63 bytes in all"
        );
        assert_eq!(plan.jobs().count(), 0, "a refused image plans nothing");

        plan.add(&image("b", &[(b"x", half)])).unwrap();
        let err = plan.add(&image("c", &[(b"y", half)])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the blobs of registry.test/c:1 and of the images planned before it declare more than 2^63 bytes in all"
        );
        // A blob already planned costs nothing more.
        assert_eq!(plan.add(&image("d", &[(b"x", half)])).unwrap().len(), 0);
    }

    #[test]
    fn a_blob_that_declares_more_than_the_bound_is_refused_and_the_bound_can_be_raised() {
        let big = 64 << 30;
        let err = Plan::new(big)
            .add(&image("a", &[(b"x", 1), (b"y", big + 1)]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "blob {} of registry.test/a:1 declares 68719476737 bytes (64.0 GiB), more than the 64.0 GiB allowed for one blob",
                Digest::of(b"y")
            )
        );
        assert_eq!(
            crate::hint::Hint::hint(&err),
            Some(crate::hint::Fix::RaiseMaxBlobSize)
        );
        let mut plan = Plan::new(big + 1);
        assert_eq!(
            plan.add(&image("a", &[(b"x", 1), (b"y", big + 1)]))
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn one_digest_with_two_sizes_is_refused() {
        let mut plan = Plan::new(MAX_SIZE);
        plan.add(&image("a", &[(b"base", 4)])).unwrap();
        let err = plan.add(&image("b", &[(b"base", 5)])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "blob {} is listed with two sizes (4 and 5 bytes) by registry.test/b:1",
                Digest::of(b"base")
            )
        );
    }
}
