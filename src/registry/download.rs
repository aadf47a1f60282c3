//! The pull side of registry access: a manifest's exact bytes (checked against a
//! pinned digest), a blob streamed from an offset, and the referrers API's pages, each
//! retried while failures may pass and sorted into a [`RegistryError`].

use oci_client::Reference;

use super::direct::ManifestBody;
use super::{retry, BlobStream, Registry, RegistryError, MAX_REFERRER_PAGES};
use crate::digest::Digest;

impl Registry {
    /// The exact bytes of a manifest, checked against the reference's digest if it has one.
    pub async fn manifest(
        &self,
        reference: &Reference,
    ) -> Result<(Vec<u8>, Digest), RegistryError> {
        let too_large = |size| RegistryError::ManifestTooLarge {
            reference: reference.whole(),
            size,
        };
        let auth = self.credentials.for_registry(reference.registry())?;
        let body = retry::with_retry(&self.answered, reference.registry(), || {
            self.http.manifest(reference, &auth)
        })
        .await
        .map_err(|e| self.classify(reference, &reference.whole(), e))?;
        let bytes = match body {
            ManifestBody::Whole(bytes) => bytes,
            ManifestBody::TooLarge { read } => return Err(too_large(read)),
        };
        let digest = Digest::of(&bytes);
        if let Some(pinned) = reference.digest() {
            if pinned != digest.to_string() {
                return Err(RegistryError::ManifestDigest {
                    reference: reference.whole(),
                    expected: pinned.parse().unwrap_or(digest),
                });
            }
        }
        Ok((bytes, digest))
    }

    /// Streams a blob from `offset`. The second value says whether the stream starts at
    /// `offset` (true) or the server ignored the range and sends the whole blob (false).
    ///
    /// Foreign-layer `urls` are never followed: only the registry itself is asked.
    pub async fn blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        offset: u64,
    ) -> Result<(BlobStream, bool), RegistryError> {
        let auth = self.credentials.for_registry(reference.registry())?;
        retry::with_retry(&self.answered, reference.registry(), || {
            self.http.blob(reference, digest, offset, &auth)
        })
        .await
        .map_err(|e| {
            self.classify(
                reference,
                &format!("blob {digest} of {}", reference.whole()),
                e,
            )
        })
    }

    /// The referrers API's answer for `digest` in the reference's repository: each
    /// page's exact bytes (an index), following `Link: <…>; rel="next"` for at most
    /// [`MAX_REFERRER_PAGES`] pages, or `None` when the registry answers 404 (it has no
    /// such API, as docker-registry 2.8 has not). Any other failure is an error. No
    /// further page is asked for once the pages read list `enough` referrers: the
    /// caller refuses that many anyway.
    pub async fn referrers(
        &self,
        reference: &Reference,
        digest: &Digest,
        enough: usize,
    ) -> Result<Option<Vec<Vec<u8>>>, RegistryError> {
        let what = format!("the referrers of {digest} in {}", reference.whole());
        let auth = self.credentials.for_registry(reference.registry())?;
        let mut pages = Vec::new();
        let mut listed = 0usize;
        let mut next: Option<String> = None;
        loop {
            let page = next.as_deref();
            let answer = retry::with_retry(&self.answered, reference.registry(), || {
                self.http.referrers(reference, digest, page, &auth)
            })
            .await
            .map_err(|e| self.classify(reference, &what, e))?;
            let (body, following) = match answer {
                // A 404 on a later page is a registry that lost its place: an error.
                None if pages.is_empty() => return Ok(None),
                None => {
                    return Err(RegistryError::NotFound {
                        reference: format!("{what}, page {}", pages.len() + 1),
                    })
                }
                Some(answer) => answer,
            };
            match body {
                ManifestBody::Whole(bytes) => {
                    listed = listed.saturating_add(listed_in(&bytes));
                    pages.push(bytes);
                }
                ManifestBody::TooLarge { read } => {
                    return Err(RegistryError::ManifestTooLarge {
                        reference: what,
                        size: read,
                    })
                }
            }
            match following {
                _ if listed >= enough => return Ok(Some(pages)),
                Some(url) if pages.len() < MAX_REFERRER_PAGES => next = Some(url),
                Some(_) => return Err(RegistryError::TooManyReferrerPages { what }),
                None => return Ok(Some(pages)),
            }
        }
    }
}

/// How many referrers a page lists; a page that is not an index lists none here, and
/// its reader says what is wrong with it.
fn listed_in(page: &[u8]) -> usize {
    #[derive(serde::Deserialize)]
    struct Listing {
        #[serde(default)]
        manifests: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Listing>(page).map_or(0, |l| l.manifests.len())
}
