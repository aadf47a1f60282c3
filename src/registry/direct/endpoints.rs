//! The pull endpoints: a manifest read no further than its cap, the referrers API's
//! pages, and a blob streamed from an offset under the progress rule of `stall`.

use futures_util::StreamExt;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use reqwest::header::{ACCEPT, RANGE};
use reqwest::{Response, StatusCode};

use super::proof::Access;
use super::{url, DirectClient};
use crate::digest::Digest;
use crate::manifest::{ACCEPTED, MAX_MANIFEST_BYTES};
use crate::registry::stall;
use crate::registry::BlobStream;

/// A manifest body as read.
pub enum ManifestBody {
    Whole(Vec<u8>),
    /// The body ran past [`MAX_MANIFEST_BYTES`]; reading stopped after `read` bytes.
    TooLarge {
        read: u64,
    },
}

impl DirectClient {
    /// The body of the reference's manifest (by digest if it has one, else by tag),
    /// read no further than [`MAX_MANIFEST_BYTES`].
    pub async fn manifest(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
    ) -> Result<ManifestBody, OciDistributionError> {
        let tag_or_digest = reference.digest().or(reference.tag()).unwrap_or("latest");
        let url = self.url(reference, &format!("manifests/{tag_or_digest}"));
        let response = self
            .send(reference, Access::Pull, auth, || {
                self.client.get(&url).header(ACCEPT, ACCEPTED.join(", "))
            })
            .await?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(self.refusal(response, &url).await);
        }
        self.read_manifest(response).await
    }

    /// One page of the referrers index of `digest` (OCI 1.1 referrers API), read as a
    /// manifest is, with the next page's URL if its `Link` header names one; `None`
    /// when the registry answers 404, as one without the API does. `page` is that URL
    /// for every page after the first.
    pub async fn referrers(
        &self,
        reference: &Reference,
        digest: &Digest,
        page: Option<&str>,
        auth: &RegistryAuth,
    ) -> Result<Option<(ManifestBody, Option<String>)>, OciDistributionError> {
        let url = match page {
            Some(url) => url.to_owned(),
            None => self.url(reference, &format!("referrers/{digest}")),
        };
        let response = self
            .send(reference, Access::Pull, auth, || {
                self.client
                    .get(&url)
                    .header(ACCEPT, crate::manifest::OCI_INDEX)
            })
            .await?;
        match response.status() {
            StatusCode::OK => {
                let next = response
                    .headers()
                    .get(reqwest::header::LINK)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|link| url::next_page(response.url(), link));
                Ok(Some((self.read_manifest(response).await?, next)))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.refusal(response, &url).await),
        }
    }

    /// A manifest-sized body, read no further than [`MAX_MANIFEST_BYTES`].
    async fn read_manifest(
        &self,
        response: Response,
    ) -> Result<ManifestBody, OciDistributionError> {
        if let Some(len) = response
            .content_length()
            .filter(|l| *l > MAX_MANIFEST_BYTES)
        {
            return Ok(ManifestBody::TooLarge { read: len });
        }
        let mut body = Vec::new();
        let mut chunks = stall::guard(
            response
                .bytes_stream()
                .map(|c| c.map_err(std::io::Error::other))
                .boxed(),
            self.timeout,
        );
        while let Some(chunk) = chunks.next().await {
            body.extend_from_slice(&chunk.map_err(OciDistributionError::IoError)?);
            if body.len() as u64 > MAX_MANIFEST_BYTES {
                return Ok(ManifestBody::TooLarge {
                    read: body.len() as u64,
                });
            }
        }
        Ok(ManifestBody::Whole(body))
    }

    /// Streams a blob from `offset`. The second value says whether the stream starts
    /// at `offset` (true) or the registry ignored the range and sends it all (false).
    /// A range is asked for even at offset 0, so that the answer says which.
    pub async fn blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        offset: u64,
        auth: &RegistryAuth,
    ) -> Result<(BlobStream, bool), OciDistributionError> {
        let url = self.url(reference, &format!("blobs/{digest}"));
        let response = self
            .send(reference, Access::Pull, auth, || {
                self.client
                    .get(&url)
                    .header(RANGE, format!("bytes={offset}-"))
            })
            .await?;
        let from_offset = match response.status() {
            StatusCode::PARTIAL_CONTENT => true,
            StatusCode::OK => false,
            _ => return Err(self.refusal(response, &url).await),
        };
        let body = response
            .bytes_stream()
            .map(|c| c.map_err(std::io::Error::other))
            .boxed();
        Ok((stall::guard(body, self.timeout), from_offset))
    }
}
