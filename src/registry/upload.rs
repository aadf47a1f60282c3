//! The push side of registry access: existence checks, cross-repository mounts,
//! streamed monolithic uploads and byte-exact manifest puts.

use std::path::Path;

use futures_util::stream;
use oci_client::errors::OciDistributionError;
use oci_client::Reference;
use reqwest::header::HeaderValue;
use tokio::io::AsyncReadExt;

use super::{retry, Registry, RegistryError};
use crate::digest::Digest;

/// Upload chunk size: large enough that a 1 GB layer is a thousand reads, small enough
/// that memory stays flat whatever the blob size.
const UPLOAD_CHUNK: usize = 1 << 20;

impl Registry {
    pub async fn blob_exists(
        &self,
        target: &Reference,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        self.auth_for(target).await?;
        let digest_text = digest.to_string();
        retry::with_retry(|| self.client.blob_exists(target, &digest_text))
            .await
            .map_err(|e| self.classify(target, &format!("blob {digest} in {}", target.whole()), e))
    }

    /// Mounts a blob from another repository of the same registry. `false` means the
    /// registry declined (it answers 202, which oci-client reports as a spec
    /// violation), and the blob must be uploaded instead.
    pub async fn mount(
        &self,
        target: &Reference,
        source: &Reference,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        self.auth_for(target).await?;
        match self
            .client
            .mount_blob(target, source, &digest.to_string())
            .await
        {
            Ok(()) => Ok(true),
            Err(OciDistributionError::SpecViolationError(_)) => Ok(false),
            Err(e) if retry::is_transient(&e) => Ok(false),
            Err(e) => Err(self.classify(
                target,
                &format!("mounting blob {digest} into {}", target.whole()),
                e,
            )),
        }
    }

    /// Uploads a blob from a file in one streamed PUT; memory stays flat.
    pub async fn upload(
        &self,
        target: &Reference,
        digest: &Digest,
        path: &Path,
        size: u64,
    ) -> Result<(), RegistryError> {
        self.auth_for(target).await?;
        let digest_text = digest.to_string();
        retry::with_retry(|| async {
            let file = tokio::fs::File::open(path).await?;
            let body = stream::try_unfold(file, |mut file| async move {
                let mut chunk = vec![0u8; UPLOAD_CHUNK];
                let n = file.read(&mut chunk).await?;
                if n == 0 {
                    return Ok::<_, OciDistributionError>(None);
                }
                chunk.truncate(n);
                Ok(Some((bytes::Bytes::from(chunk), file)))
            });
            self.client
                .push_blob_stream(target, body, &digest_text, Some(size))
                .await
                .map(drop)
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
        self.auth_for(target).await?;
        let content_type = HeaderValue::from_str(media_type).map_err(|_| RegistryError::Other {
            what: format!("the manifest for {}", target.whole()),
            source: OciDistributionError::UnsupportedMediaTypeError(media_type.to_owned()),
        })?;
        let body = bytes::Bytes::copy_from_slice(bytes);
        retry::with_retry(|| {
            self.client
                .push_manifest_raw(target, body.clone(), content_type.clone())
        })
        .await
        .map(drop)
        .map_err(|e| self.classify(target, &format!("the manifest for {}", target.whole()), e))
    }
}
