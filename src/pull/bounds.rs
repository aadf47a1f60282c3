//! The bounds on discovery (`--with-signatures`): what a registry's answers may make
//! one run ask for. Every request discovery makes goes through one [`Bounds`] per run,
//! which lets a few run at once and counts them against the run's cap; every manifest
//! an artifact brings is counted, once per digest, against its subject's cap
//! ([`Tally`]) as soon as a manifest or listing that names it arrives, so a listing of thousands is refused when it is
//! read, before any of it is fetched.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use oci_client::Reference;
use tokio::sync::Semaphore;

use super::{PullError, Source};
use crate::digest::Digest;
use crate::manifest::Manifest;
use crate::registry::BlobStream;

/// The artifacts (manifests) one subject may bring unless the user raises it.
pub const DEFAULT_MAX_REFERRERS: usize = 1000;

/// Discovery requests in flight at once, across the whole run.
const REQUESTS_AT_ONCE: usize = 16;

/// Requests the run may make per image of the definition and per artifact a subject
/// may bring: about what one subject at its cap costs (each artifact's own manifest,
/// then its cosign tags and referrers).
const REQUESTS_PER_ARTIFACT: usize = 8;

/// One run's discovery: its concurrency, its request count, and its caps.
pub struct Bounds {
    at_once: Semaphore,
    requests: AtomicUsize,
    max_requests: usize,
    max_per_subject: usize,
}

impl Bounds {
    /// The bounds of a run that discovers for `images` images, each subject bringing
    /// at most `max_per_subject` manifests.
    pub fn new(images: usize, max_per_subject: usize) -> Arc<Self> {
        let max_requests = max_per_subject
            .max(1)
            .saturating_mul(REQUESTS_PER_ARTIFACT)
            .saturating_mul(images.max(1));
        Arc::new(Self {
            at_once: Semaphore::new(REQUESTS_AT_ONCE),
            requests: AtomicUsize::new(0),
            max_requests,
            max_per_subject,
        })
    }

    pub fn max_per_subject(&self) -> usize {
        self.max_per_subject
    }

    /// Runs one request once a slot is free, if the run's cap allows one more.
    pub async fn request<T>(
        &self,
        request: impl std::future::Future<Output = Result<T, PullError>>,
    ) -> Result<T, PullError> {
        let _slot = self.at_once.acquire().await.map_err(|_| self.spent())?;
        if self.requests.fetch_add(1, Ordering::Relaxed) >= self.max_requests {
            return Err(self.spent());
        }
        request.await
    }

    fn spent(&self) -> PullError {
        PullError::DiscoveryRequests {
            limit: self.max_requests,
        }
    }
}

/// What one subject has brought so far: the manifests named for it, each once.
pub struct Tally {
    subject: Digest,
    /// The image whose discovery found the subject, for the message.
    reference: String,
    counted: Mutex<HashSet<Digest>>,
}

impl Tally {
    pub fn new(subject: Digest, reference: String) -> Arc<Self> {
        Arc::new(Self {
            subject,
            reference,
            counted: Mutex::new(HashSet::new()),
        })
    }

    /// Counts `digests` against the subject's cap, refusing the subject as soon as
    /// they take it past; a digest named twice counts once.
    pub fn count<'d>(
        &self,
        digests: impl IntoIterator<Item = &'d Digest>,
        bounds: &Bounds,
    ) -> Result<(), PullError> {
        let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
        for digest in digests {
            if counted.len() >= bounds.max_per_subject && !counted.contains(digest) {
                return Err(PullError::TooManyArtifacts {
                    subject: self.subject.clone(),
                    reference: self.reference.clone(),
                    limit: bounds.max_per_subject,
                });
            }
            counted.insert(digest.clone());
        }
        Ok(())
    }
}

/// An artifact's source as discovery sees it: each request bounded by the run, each
/// manifest counted against the subject's cap (the artifact's own once, and each
/// manifest it lists as soon as it arrives).
pub struct Counted {
    pub inner: Arc<dyn Source>,
    pub bounds: Arc<Bounds>,
    pub tally: Arc<Tally>,
}

impl Source for Counted {
    fn reference(&self) -> &Reference {
        self.inner.reference()
    }

    fn manifest<'a>(
        &'a self,
        digest: Option<&'a Digest>,
    ) -> BoxFuture<'a, Result<(Vec<u8>, Digest), PullError>> {
        Box::pin(async move {
            let (bytes, found) = self.bounds.request(self.inner.manifest(digest)).await?;
            // What it lists counts now, before any of it is fetched.
            let listed = Manifest::parse(&bytes)
                .map(|m| m.manifests)
                .unwrap_or_default();
            let named = std::iter::once(&found).chain(listed.iter().map(|d| &d.digest));
            self.tally.count(named, &self.bounds)?;
            Ok((bytes, found))
        })
    }

    fn blob<'a>(
        &'a self,
        digest: &'a Digest,
        offset: u64,
    ) -> BoxFuture<'a, Result<(BlobStream, bool), PullError>> {
        self.inner.blob(digest, offset)
    }

    fn sibling(&self, reference: Reference) -> Option<Arc<dyn Source>> {
        self.inner.sibling(reference)
    }

    fn referrers<'a>(
        &'a self,
        digest: &'a Digest,
        enough: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<Vec<u8>>>, PullError>> {
        Box::pin(self.bounds.request(self.inner.referrers(digest, enough)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subject_counts_each_digest_once_and_is_refused_past_its_cap() {
        let bounds = Bounds::new(1, 2);
        let tally = Tally::new(Digest::of(b"subject"), "registry.test/app:1".into());
        let [a, b, c] = [b"a", b"b", b"c"].map(|bytes| Digest::of(bytes));
        tally.count([&a, &b, &a], &bounds).unwrap();
        tally.count([&b], &bounds).unwrap();
        let err = tally.count([&c], &bounds).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} in registry.test/app:1 has more than 2 signatures, attestations, SBOMs and referrers, the most one image or artifact may bring",
                Digest::of(b"subject")
            )
        );
        assert_eq!(
            crate::hint::Hint::hint(&err),
            Some(crate::hint::Fix::RaiseMaxReferrers)
        );
    }

    #[tokio::test]
    async fn the_run_makes_no_request_past_its_cap() {
        // One image, one artifact a subject: eight requests in all.
        let bounds = Bounds::new(1, 1);
        for _ in 0..REQUESTS_PER_ARTIFACT {
            bounds.request(async { Ok(()) }).await.unwrap();
        }
        let refused: Result<(), PullError> = bounds
            .request(async { panic!("a request past the cap was made") })
            .await;
        assert!(matches!(
            refused,
            Err(PullError::DiscoveryRequests { limit: 8 })
        ));
    }
}
