//! Fetch: every config and layer download of a run goes through one [`Fetcher`],
//! which holds the per-digest table (manifests are fetched by resolve, outside it). A
//! second asker for a digest in flight awaits the first one's result and never starts
//! its own download; across processes, the store's file lock and atomic rename do the
//! same job. Downloads are bounded by one semaphore, stream through the store's
//! verified writer, and resume with a Range request after a cut.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use tokio::sync::{OnceCell, Semaphore};

use super::{BlobJob, PullError, Source};
use crate::cancel::Cancellable;
use crate::digest::{hash_reader, Digest};
use crate::progress::Reporter;
use crate::registry::{backoff, MAX_ATTEMPTS};
use crate::store::{BlobWriter, Ingest, Store, StoreError};

/// The shared outcome of one digest's download.
type Outcome = Arc<OnceCell<Result<(), Arc<PullError>>>>;

pub struct Fetcher<'r> {
    store: Store,
    downloads: Semaphore,
    table: Mutex<HashMap<Digest, Outcome>>,
    reporter: &'r dyn Reporter,
}

impl<'r> Fetcher<'r> {
    /// A fetcher writing into `store`, with at most `concurrency` downloads in flight.
    pub fn new(store: Store, concurrency: usize, reporter: &'r dyn Reporter) -> Self {
        Self {
            store,
            downloads: Semaphore::new(concurrency.max(1)),
            table: Mutex::new(HashMap::new()),
            reporter,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn reporter(&self) -> &'r dyn Reporter {
        self.reporter
    }

    /// Makes sure the job's blob is in the store, downloading it at most once per run.
    pub async fn fetch(&self, job: &BlobJob) -> Result<(), PullError> {
        let outcome = self.outcome(&job.digest, false);
        let result = outcome.get_or_init(|| self.download(job)).await;
        result.clone().map_err(PullError::Shared)
    }

    /// Makes the job's blob good again after it turned out damaged once stored,
    /// whatever an earlier fetch in this run found. The store's copy is evicted and
    /// downloaded anew only if it is still bad: a peer process may have replaced it
    /// with a good one since, and that one is kept.
    pub async fn refetch(&self, job: &BlobJob) -> Result<(), PullError> {
        let outcome = self.outcome(&job.digest, true);
        let result = outcome
            .get_or_init(|| async {
                self.evict_if_damaged(&job.digest, job.size)
                    .await
                    .map_err(Arc::new)?;
                self.download(job).await
            })
            .await;
        result.clone().map_err(PullError::Shared)
    }

    /// [`Self::refetch`] for a manifest: fetched from `source` by digest, outside the
    /// per-digest table (resolve fetches manifests the same way).
    pub async fn refetch_manifest(
        &self,
        source: &Arc<dyn Source>,
        digest: &Digest,
        size: u64,
    ) -> Result<(), PullError> {
        self.evict_if_damaged(digest, size).await?;
        if self.store.contains(digest, size) {
            return Ok(());
        }
        let (bytes, _) = source.manifest(Some(digest)).await?;
        super::resolve::store_manifest(&self.store, source, digest, bytes).await
    }

    /// Removes the store's copy of `digest` if hashing it proves it wrong. A copy that
    /// cannot be read is left alone: the seal judges it again.
    async fn evict_if_damaged(&self, digest: &Digest, size: u64) -> Result<(), PullError> {
        let (store, wanted) = (self.store.clone(), digest.clone());
        tokio::task::spawn_blocking(move || {
            let hashed = File::open(store.blob_path(&wanted))
                .and_then(|file| hash_reader(Cancellable(file)));
            if hashed.is_ok_and(|(found, len)| found != wanted || len != size) {
                store.evict(&wanted);
            }
        })
        .await
        .map_err(|source| PullError::Internal {
            what: format!("checking blob {digest}"),
            source,
        })
    }

    fn outcome(&self, digest: &Digest, fresh: bool) -> Outcome {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if fresh {
            table.remove(digest);
        }
        table.entry(digest.clone()).or_default().clone()
    }

    async fn download(&self, job: &BlobJob) -> Result<(), Arc<PullError>> {
        if self.store.contains(&job.digest, job.size) {
            self.reporter.blob_cached(job.size);
            return Ok(());
        }
        let _permit = self
            .downloads
            .acquire()
            .await
            .expect("the download semaphore is never closed");
        fetch_one(&self.store, job, self.reporter)
            .await
            .map_err(Arc::new)
    }
}

/// Downloads one blob into the store: streamed from where the partial stops, then
/// committed, and both tried again (after a pause) until [`MAX_ATTEMPTS`] is reached.
async fn fetch_one(store: &Store, job: &BlobJob, reporter: &dyn Reporter) -> Result<(), PullError> {
    let Some(mut writer) = begin(store, job, reporter).await? else {
        return Ok(());
    };
    reporter.blob_start(&job.digest, job.size);
    reporter.blob_progress(&job.digest, writer.offset());

    let mut attempt = 1;
    loop {
        let failure = if writer.offset() < job.size {
            stream_once(&mut writer, job, reporter).await?
        } else {
            None
        };
        let retry_reason = match failure {
            Some(err) => err,
            None => match commit_or_retry(writer, job, reporter, attempt).await? {
                Commit::Stored => return Ok(()),
                Commit::Retry(handed_back, reason) => {
                    writer = handed_back;
                    reason
                }
            },
        };
        if attempt >= MAX_ATTEMPTS {
            return Err(gave_up(job, retry_reason));
        }
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    }
}

/// Takes the blob's partial in the store, or `None` when the blob is there already.
/// Off the runtime: creating the partial is the costliest step of a small blob on
/// some filesystems, and taking its lock can wait on another pkgr process.
async fn begin(
    store: &Store,
    job: &BlobJob,
    reporter: &dyn Reporter,
) -> Result<Option<Box<BlobWriter>>, PullError> {
    let begun = {
        let store = store.clone();
        let (digest, size) = (job.digest.clone(), job.size);
        tokio::task::spawn_blocking(move || store.begin(&digest, size))
            .await
            .map_err(|source| PullError::Internal {
                what: format!("storing blob {}", job.digest),
                source,
            })?
    };
    match begun.map_err(|source| store_failed(job, source))? {
        Ingest::Present => {
            reporter.blob_cached(job.size);
            Ok(None)
        }
        Ingest::Writer(writer) => Ok(Some(writer)),
    }
}

/// One request for the rest of the blob, written as it streams. Returns the error
/// that cut the stream, if one did, for the caller to retry.
async fn stream_once(
    writer: &mut BlobWriter,
    job: &BlobJob,
    reporter: &dyn Reporter,
) -> Result<Option<std::io::Error>, PullError> {
    let offset = writer.offset();
    let (mut body, from_offset) = job.source.blob(&job.digest, offset).await?;
    if !from_offset {
        writer
            .restart()
            .map_err(|source| store_failed(job, source))?;
        // The whole blob comes again: the partial must not be counted twice.
        if offset > 0 {
            reporter.blob_discarded(&job.digest, offset);
        }
    }
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => {
                writer
                    .write(&bytes)
                    .map_err(|source| damaged(job, source))?;
                reporter.blob_progress(&job.digest, bytes.len() as u64);
            }
            // Stop at the first error: some streams repeat it forever.
            Err(err) => return Ok(Some(err)),
        }
    }
    Ok(None)
}

/// How a commit ended: the blob is stored, or its bytes were short or wrong and the
/// writer (emptied by a digest mismatch) is handed back to download them again.
enum Commit {
    Stored,
    Retry(Box<BlobWriter>, std::io::Error),
}

/// Commits the downloaded blob. Bytes that do not hash to the digest are worth
/// another download until the last attempt, when the blob is called damaged.
async fn commit_or_retry(
    writer: Box<BlobWriter>,
    job: &BlobJob,
    reporter: &dyn Reporter,
    attempt: u32,
) -> Result<Commit, PullError> {
    let reported = writer.offset();
    let (writer, committed) = commit(writer, &job.digest).await?;
    // A digest mismatch empties the partial; those bytes will move again.
    let discarded = reported.saturating_sub(writer.offset());
    if discarded > 0 {
        reporter.blob_discarded(&job.digest, discarded);
    }
    match committed {
        Ok(()) => {
            reporter.blob_done(&job.digest);
            Ok(Commit::Stored)
        }
        Err(err @ (StoreError::TooShort { .. } | StoreError::DigestMismatch { .. })) => {
            if attempt >= MAX_ATTEMPTS {
                return Err(damaged(job, err));
            }
            Ok(Commit::Retry(
                writer,
                std::io::Error::other(err.to_string()),
            ))
        }
        Err(err) => Err(store_failed(job, err)),
    }
}

/// The error of a download still cut after its last attempt: a stall if the last cut
/// was a timeout, an interruption otherwise.
fn gave_up(job: &BlobJob, reason: std::io::Error) -> PullError {
    let (reference, digest) = (job.owner(), job.digest.clone());
    if reason.kind() == std::io::ErrorKind::TimedOut {
        PullError::Stalled {
            reference,
            digest,
            source: reason,
        }
    } else {
        PullError::Interrupted {
            reference,
            digest,
            source: reason,
        }
    }
}

/// Commits a finished blob on a blocking thread, handing the writer back for a retry.
/// Every download of a run is driven from one task, and a commit waits for the disk
/// (a sync in the cache, a rename between directories everywhere): a thousand small
/// blobs committed one after another there would stall them all.
async fn commit(
    mut writer: Box<BlobWriter>,
    digest: &Digest,
) -> Result<(Box<BlobWriter>, Result<(), StoreError>), PullError> {
    tokio::task::spawn_blocking(move || {
        let result = writer.commit();
        (writer, result)
    })
    .await
    .map_err(|source| PullError::Internal {
        what: format!("storing blob {digest}"),
        source,
    })
}

fn damaged(job: &BlobJob, source: StoreError) -> PullError {
    if source.is_content_error() {
        PullError::Damaged {
            reference: job.owner(),
            digest: job.digest.clone(),
            source,
        }
    } else {
        store_failed(job, source)
    }
}

fn store_failed(job: &BlobJob, source: StoreError) -> PullError {
    PullError::Store {
        what: format!("blob {} of {}", job.digest, job.owner()),
        source,
    }
}
