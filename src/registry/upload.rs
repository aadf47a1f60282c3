//! The push side of registry access: existence checks, cross-repository mounts,
//! streamed monolithic uploads and byte-exact manifest puts, over the same requests
//! (and answers to challenges) as pulls.

use std::path::Path;
use std::sync::Arc;

use oci_client::errors::OciDistributionError;
use oci_client::Reference;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;

use super::direct::Access;
use super::stall::Progress;
use super::{retry, Registry, RegistryError};
use crate::digest::Digest;

impl Registry {
    pub async fn blob_exists(
        &self,
        target: &Reference,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let auth = self.credentials.for_registry(target.registry())?;
        let url = self.http.url(target, &format!("blobs/{digest}"));
        retry::with_retry(|| async {
            let response = self
                .http
                .send(target, Access::Push, &auth, || self.http.http().head(&url))
                .await?;
            match response.status() {
                StatusCode::OK => Ok(true),
                StatusCode::NOT_FOUND => Ok(false),
                _ => Err(self.http.refusal(response, &url).await),
            }
        })
        .await
        .map_err(|e| self.classify(target, &format!("blob {digest} in {}", target.whole()), e))
    }

    /// Mounts a blob from another repository of the same registry. `false` means the
    /// registry declined (202: it opened an upload instead), and the blob must be
    /// uploaded.
    pub async fn mount(
        &self,
        target: &Reference,
        source: &Reference,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let auth = self.credentials.for_registry(target.registry())?;
        let url = self.http.url(target, "blobs/uploads/");
        let query = [
            ("mount", digest.to_string()),
            ("from", source.repository().to_owned()),
        ];
        let sent = self
            .http
            .send(target, Access::Push, &auth, || {
                self.http
                    .http()
                    .post(&url)
                    .query(&query)
                    .header(CONTENT_LENGTH, 0)
            })
            .await;
        let err = match sent {
            Ok(response) if response.status() == StatusCode::CREATED => return Ok(true),
            Ok(response) if response.status().is_success() => return Ok(false),
            Ok(response) => self.http.refusal(response, &url).await,
            Err(err) => err,
        };
        // A mount is an optimisation: a failure that may pass is left to the upload.
        if retry::is_transient(&err) {
            return Ok(false);
        }
        Err(self.classify(
            target,
            &format!("mounting blob {digest} into {}", target.whole()),
            err,
        ))
    }

    /// Uploads a blob from a file: one POST for an upload session, then one streamed
    /// PUT of the whole file; memory stays flat.
    pub async fn upload(
        &self,
        target: &Reference,
        digest: &Digest,
        path: &Path,
        size: u64,
    ) -> Result<(), RegistryError> {
        let auth = self.credentials.for_registry(target.registry())?;
        let start_url = self.http.url(target, "blobs/uploads/");
        retry::with_retry(|| async {
            let started = self
                .http
                .send(target, Access::Push, &auth, || {
                    self.http.http().post(&start_url).header(CONTENT_LENGTH, 0)
                })
                .await?;
            if started.status() != StatusCode::ACCEPTED {
                return Err(self.http.refusal(started, &start_url).await);
            }
            let location = started
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| {
                    OciDistributionError::SpecViolationError(
                        "the registry opened an upload without a Location".into(),
                    )
                })?;
            let put_url = reqwest::Url::parse(&start_url)
                .and_then(|base| base.join(location))
                .map_err(|e| OciDistributionError::UrlParseError(e.to_string()))?;
            // Each chunk the registry takes counts as progress, so a long upload is
            // never mistaken for a stall.
            let progress = Arc::new(Progress::default());
            let done = self
                .http
                .send_watched(target, Access::Push, &auth, &progress, || {
                    let mut url = put_url.clone();
                    url.query_pairs_mut()
                        .append_pair("digest", &digest.to_string());
                    let body = match std::fs::File::open(path) {
                        Ok(file) => {
                            reqwest::Body::wrap_stream(file_chunks(file, size, progress.clone()))
                        }
                        // An empty body, which the registry refuses for its digest.
                        Err(_) => reqwest::Body::from(Vec::new()),
                    };
                    self.http
                        .http()
                        .put(url)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, size)
                        .body(body)
                })
                .await?;
            if done.status() != StatusCode::CREATED {
                return Err(self.http.refusal(done, put_url.as_str()).await);
            }
            Ok(())
        })
        .await
        .map_err(|e| {
            self.classify(
                target,
                &format!("uploading blob {digest} to {}", target.whole()),
                e,
            )
        })
    }

    /// Puts a manifest's exact bytes under the target's tag or digest, with the
    /// manifest's own media type (registries reject Docker bytes sent as OCI).
    pub async fn put_manifest(
        &self,
        target: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let auth = self.credentials.for_registry(target.registry())?;
        let tag_or_digest = target.digest().or(target.tag()).unwrap_or("latest");
        let url = self.http.url(target, &format!("manifests/{tag_or_digest}"));
        let body = bytes::Bytes::copy_from_slice(bytes);
        retry::with_retry(|| async {
            let response = self
                .http
                .send(target, Access::Push, &auth, || {
                    self.http
                        .http()
                        .put(&url)
                        .header(CONTENT_TYPE, media_type)
                        .body(body.clone())
                })
                .await?;
            if response.status() != StatusCode::CREATED {
                return Err(self.http.refusal(response, &url).await);
            }
            Ok(())
        })
        .await
        .map_err(|e| self.classify(target, &format!("the manifest for {}", target.whole()), e))
    }
}

/// `size` bytes of the file as a stream of slices. Each slice taken counts as
/// progress (the registry took the one before it), and handing over the last one
/// allows the drain: hyper stops at the declared length and never asks for the end.
fn file_chunks(
    file: std::fs::File,
    size: u64,
    progress: Arc<Progress>,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    let state = (
        tokio::fs::File::from_std(file),
        progress,
        bytes::Bytes::new(),
        0u64,
    );
    futures_util::stream::try_unfold(
        state,
        move |(mut file, progress, mut read, mut handed)| async move {
            progress.touch();
            if read.is_empty() {
                let mut chunk = vec![0u8; UPLOAD_CHUNK];
                let n = file.read(&mut chunk).await?;
                if n == 0 {
                    progress.allow_windows(DRAIN_WINDOWS);
                    return Ok(None);
                }
                chunk.truncate(n);
                read = bytes::Bytes::from(chunk);
            }
            let slice = read.split_to(read.len().min(UPLOAD_SLICE));
            handed += slice.len() as u64;
            if handed >= size {
                progress.allow_windows(DRAIN_WINDOWS);
            }
            Ok(Some((slice, (file, progress, read, handed))))
        },
    )
}

/// Windows of quiet allowed once the whole body is handed over: what the kernel still
/// buffers (megabytes on a fast link's socket) has to reach the registry, which then
/// checks the digest before it answers.
const DRAIN_WINDOWS: u32 = 8;
/// What the body hands over at a time, without copying: small enough that a slow but
/// live link shows progress well within a timeout window.
const UPLOAD_SLICE: usize = 64 * 1024;
/// Upload read size: large enough that a 1 GB layer is a thousand reads, small enough
/// that memory stays flat whatever the blob size.
const UPLOAD_CHUNK: usize = 1 << 20;
