//! The push side of registry access: existence checks (HEAD), cross-repository
//! mounts, monolithic uploads streamed from a file and byte-exact manifest puts,
//! through the same client (and answers to challenges) as pulls. An upload's bytes
//! are read on a blocking thread and hashed as they go; the last chunk is held back
//! until they hash to the digest.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use oci_client::errors::OciDistributionError;
use oci_client::Reference;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{RequestBuilder, Response, StatusCode};

use super::direct::Access;
use super::stall::Progress;
use super::{retry, Registry, RegistryError};
use crate::chunks::ChunkPool;
use crate::digest::{Digest, Hasher};
use crate::manifest::ACCEPTED;

impl Registry {
    /// Whether the target's repository holds the blob.
    pub async fn blob_exists(
        &self,
        target: &Reference,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let url = self.http.url(target, &format!("blobs/{digest}"));
        let found = self
            .head(
                target,
                &url,
                || self.http.http().head(&url),
                |_| (),
                || format!("blob {digest} in {}", target.whole()),
            )
            .await?;
        Ok(found.is_some())
    }

    /// The digest of the manifest the target's tag (or digest) names there, or `None`
    /// when the registry does not have it (or does not say which it is).
    pub async fn manifest_digest(
        &self,
        target: &Reference,
    ) -> Result<Option<Digest>, RegistryError> {
        let tag_or_digest = target.digest().or(target.tag()).unwrap_or("latest");
        let url = self.http.url(target, &format!("manifests/{tag_or_digest}"));
        let found = self
            .head(
                target,
                &url,
                || {
                    self.http
                        .http()
                        .head(&url)
                        .header(ACCEPT, ACCEPTED.join(", "))
                },
                |response| {
                    response
                        .headers()
                        .get("Docker-Content-Digest")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<Digest>().ok())
                },
                || format!("the manifest for {}", target.whole()),
            )
            .await?;
        Ok(found.flatten())
    }

    /// Asks with the HEAD that `request` makes (with push access, retried while
    /// failures may pass) whether `url` is there: what `read` takes from a 200, `None`
    /// for a 404, and any other answer an error about `what`.
    async fn head<T>(
        &self,
        target: &Reference,
        url: &str,
        request: impl Fn() -> RequestBuilder,
        read: impl Fn(&Response) -> T,
        what: impl FnOnce() -> String,
    ) -> Result<Option<T>, RegistryError> {
        let auth = self.credentials.for_registry(target.registry())?;
        retry::with_retry(&self.answered, target.registry(), || async {
            let response = self
                .http
                .send(target, Access::Push, &auth, &request)
                .await?;
            match response.status() {
                StatusCode::OK => Ok(Some(read(&response))),
                StatusCode::NOT_FOUND => Ok(None),
                _ => Err(self.http.refusal(response, url).await),
            }
        })
        .await
        .map_err(|e| self.classify(target, &what(), e))
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

    /// Uploads a blob: one POST for an upload session, then one streamed PUT of the
    /// bytes `open` gives (called again for each attempt), hashed as they go; memory
    /// stays flat. Bytes that do not hash to `digest`, or that cannot be read, fail the
    /// upload before its last chunk is sent, and are not tried again.
    pub async fn upload(
        &self,
        target: &Reference,
        digest: &Digest,
        size: u64,
        open: &OpenBody<'_>,
    ) -> Result<(), RegistryError> {
        let auth = self.credentials.for_registry(target.registry())?;
        let start_url = self.http.url(target, "blobs/uploads/");
        let failure = BodyFailure::default();
        let result = retry::with_retry(&self.answered, target.registry(), || async {
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
            let sent = self
                .http
                .send_watched(target, Access::Push, &auth, &progress, || {
                    let mut url = put_url.clone();
                    url.query_pairs_mut()
                        .append_pair("digest", &digest.to_string());
                    let chunks = verified_chunks(open(), digest.clone(), size, failure.clone());
                    let body = reqwest::Body::wrap_stream(sliced(chunks, size, progress.clone()));
                    self.http
                        .http()
                        .put(url)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, size)
                        .body(body)
                })
                .await;
            // What the source could not give is not the registry's fault, and no retry
            // would change it.
            if failure.is_set() {
                return Err(OciDistributionError::GenericError(None));
            }
            let done = sent?;
            if done.status() != StatusCode::CREATED {
                return Err(self.http.refusal(done, put_url.as_str()).await);
            }
            Ok(())
        })
        .await;
        if let Some(source) = failure.take() {
            return Err(RegistryError::UploadSource {
                digest: digest.clone(),
                source,
            });
        }
        result.map_err(|e| {
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
        retry::with_retry(&self.answered, target.registry(), || async {
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

/// Opens a blob's bytes for one upload attempt: exactly its size, from its start.
pub type OpenBody<'a> = dyn Fn() -> io::Result<Box<dyn Read + Send>> + Sync + 'a;

/// Why the bytes of an upload could not be sent, kept for the caller: the HTTP error
/// that ends the request only says the body failed.
#[derive(Clone, Default)]
pub struct BodyFailure(Arc<Mutex<Option<io::Error>>>);

impl BodyFailure {
    fn set(&self, err: io::Error) -> io::Error {
        let echo = io::Error::new(err.kind(), err.to_string());
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(err);
        }
        echo
    }

    fn is_set(&self) -> bool {
        self.0.lock().is_ok_and(|slot| slot.is_some())
    }

    fn take(&self) -> Option<io::Error> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// The bytes of `opened` in chunks, read and hashed on a blocking thread. The last
/// chunk is held back until the whole blob has hashed to `digest` (with exactly
/// `size` bytes), so bytes that changed since they were verified never complete an
/// upload: the stream ends with an error instead, also recorded in `failure`. The
/// source is dropped before the last chunk goes, so a one-pass source is free for
/// the next blob before the registry can answer this one.
pub fn verified_chunks(
    opened: io::Result<Box<dyn Read + Send>>,
    digest: Digest,
    size: u64,
    failure: BodyFailure,
) -> impl futures_util::Stream<Item = io::Result<bytes::Bytes>> + Send + 'static {
    let (sender, receiver) = tokio::sync::mpsc::channel::<io::Result<bytes::Bytes>>(QUEUED_CHUNKS);
    tokio::task::spawn_blocking(move || {
        let outcome = opened.and_then(|reader| send_verified(reader, &digest, size, &sender));
        match outcome {
            Ok(Some(last)) => {
                let _ = sender.blocking_send(Ok(last));
            }
            Ok(None) => {}
            Err(err) => {
                let _ = sender.blocking_send(Err(failure.set(err)));
            }
        }
    });
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

/// Sends every chunk but the last, which it returns once the bytes have verified
/// (`None` when the receiver has gone or the blob is empty).
fn send_verified(
    mut reader: Box<dyn Read + Send>,
    digest: &Digest,
    size: u64,
    sender: &tokio::sync::mpsc::Sender<io::Result<bytes::Bytes>>,
) -> io::Result<Option<bytes::Bytes>> {
    let mut hasher = Hasher::default();
    let mut held: Option<bytes::Bytes> = None;
    let chunks = ChunkPool::new(UPLOAD_CHUNK);
    loop {
        let chunk = chunks.fill(&mut *reader, UPLOAD_CHUNK)?;
        if chunk.is_empty() {
            break;
        }
        hasher.update(&chunk);
        if hasher.bytes_hashed() > size {
            return Err(io::Error::other(format!(
                "the package holds more than the {size} bytes verified for blob {digest}"
            )));
        }
        if let Some(previous) = held.replace(chunk) {
            if sender.blocking_send(Ok(previous)).is_err() {
                return Ok(None);
            }
        }
    }
    drop(reader);
    let read = hasher.bytes_hashed();
    if read != size {
        return Err(io::Error::other(format!(
            "the package holds {read} bytes for blob {digest}, not the {size} verified"
        )));
    }
    let actual = hasher.finish();
    if &actual != digest {
        return Err(io::Error::other(format!(
            "the package's bytes for blob {digest} now hash to {actual}: it changed after it was verified"
        )));
    }
    Ok(held)
}

/// The chunks as a stream of slices of at most `UPLOAD_SLICE`. Each slice taken counts
/// as progress (the registry took the one before it), and handing over the last byte
/// allows the drain: hyper stops at the declared length and never asks for the end.
fn sliced(
    chunks: impl futures_util::Stream<Item = io::Result<bytes::Bytes>> + Send + 'static,
    size: u64,
    progress: Arc<Progress>,
) -> impl futures_util::Stream<Item = io::Result<bytes::Bytes>> + Send + 'static {
    use futures_util::StreamExt;
    let state = (Box::pin(chunks), progress, bytes::Bytes::new(), 0u64);
    futures_util::stream::try_unfold(
        state,
        move |(mut chunks, progress, mut read, mut handed)| async move {
            progress.touch();
            if read.is_empty() {
                match chunks.next().await {
                    Some(chunk) => read = chunk?,
                    None => {
                        progress.allow_windows(DRAIN_WINDOWS);
                        return Ok(None);
                    }
                }
            }
            let slice = read.split_to(read.len().min(UPLOAD_SLICE));
            handed += slice.len() as u64;
            if handed >= size {
                progress.allow_windows(DRAIN_WINDOWS);
            }
            Ok(Some((slice, (chunks, progress, read, handed))))
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
/// Upload read size. Each upload holds a few of these (one being read, the queue, the
/// one held back, the one being sliced), and eight run at once: 256 KiB keeps that
/// near 10 MiB in all, while a 1 GB layer is still only four thousand reads.
const UPLOAD_CHUNK: usize = 256 * 1024;
/// Chunks read ahead of the network, so a slow read does not idle the connection.
const QUEUED_CHUNKS: usize = 2;

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    /// Every item of the stream: the bytes it handed over, and its error if it ended
    /// with one.
    async fn drain(
        bytes: Vec<u8>,
        digest: Digest,
        size: u64,
        failure: BodyFailure,
    ) -> (Vec<u8>, Option<String>) {
        let reader: Box<dyn Read + Send> = Box::new(io::Cursor::new(bytes));
        let mut stream = Box::pin(verified_chunks(Ok(reader), digest, size, failure));
        let mut sent = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => sent.extend_from_slice(&chunk),
                Err(err) => return (sent, Some(err.to_string())),
            }
        }
        (sent, None)
    }

    /// Three and a half chunks, so that several go before the end is reached.
    fn blob() -> Vec<u8> {
        (0..UPLOAD_CHUNK * 7 / 2).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test]
    async fn bytes_that_hash_to_the_digest_are_sent_whole() {
        let bytes = blob();
        let failure = BodyFailure::default();
        let (sent, err) = drain(
            bytes.clone(),
            Digest::of(&bytes),
            bytes.len() as u64,
            failure.clone(),
        )
        .await;
        assert_eq!(err, None);
        assert_eq!(sent, bytes);
        assert!(!failure.is_set());
    }

    #[tokio::test]
    async fn changed_bytes_never_complete_the_upload() {
        let verified = blob();
        let mut changed = verified.clone();
        // The last byte: only the end of the stream can tell.
        *changed.last_mut().unwrap() ^= 1;
        let failure = BodyFailure::default();
        let (sent, err) = drain(
            changed.clone(),
            Digest::of(&verified),
            verified.len() as u64,
            failure.clone(),
        )
        .await;
        let err = err.expect("the stream ended without an error");
        assert!(
            err.contains(&format!("now hash to {}", Digest::of(&changed))),
            "{err}"
        );
        // The last chunk was held back, so the registry never has the whole length.
        assert!(sent.len() < verified.len(), "{} bytes sent", sent.len());
        assert_eq!(sent[..], verified[..sent.len()]);
        assert!(failure.take().is_some(), "the failure was not recorded");
    }

    #[tokio::test]
    async fn a_short_blob_fails_before_its_end() {
        let verified = blob();
        let short = verified[..verified.len() - 10].to_vec();
        let (sent, err) = drain(
            short,
            Digest::of(&verified),
            verified.len() as u64,
            BodyFailure::default(),
        )
        .await;
        assert!(err.is_some_and(|e| e.contains("not the")));
        assert!(sent.len() < verified.len() - 10);
    }
}
