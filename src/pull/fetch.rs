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

async fn fetch_one(store: &Store, job: &BlobJob, reporter: &dyn Reporter) -> Result<(), PullError> {
    let store_error = |source: StoreError| PullError::Store {
        what: format!("blob {} of {}", job.digest, job.owner()),
        source,
    };
    // Off the runtime: creating the partial is the costliest step of a small blob on
    // some filesystems, and taking its lock can wait on another pkgr process.
    let begin = {
        let store = store.clone();
        let (digest, size) = (job.digest.clone(), job.size);
        tokio::task::spawn_blocking(move || store.begin(&digest, size))
            .await
            .map_err(|source| PullError::Internal {
                what: format!("storing blob {}", job.digest),
                source,
            })?
    };
    let mut writer = match begin.map_err(store_error)? {
        Ingest::Present => {
            reporter.blob_cached(job.size);
            return Ok(());
        }
        Ingest::Writer(writer) => writer,
    };
    reporter.blob_start(&job.digest, job.size);
    reporter.blob_progress(&job.digest, writer.offset());

    let mut attempt = 1;
    loop {
        let offset = writer.offset();
        let failure = if offset < job.size {
            let (mut body, from_offset) = job.source.blob(&job.digest, offset).await?;
            if !from_offset {
                writer.restart().map_err(store_error)?;
                // The whole blob comes again: the partial must not be counted twice.
                if offset > 0 {
                    reporter.blob_discarded(&job.digest, offset);
                }
            }
            let mut failure = None;
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(bytes) => {
                        writer
                            .write(&bytes)
                            .map_err(|source| damaged(job, source))?;
                        reporter.blob_progress(&job.digest, bytes.len() as u64);
                    }
                    // Stop at the first error: some streams repeat it forever.
                    Err(err) => {
                        failure = Some(err);
                        break;
                    }
                }
            }
            failure
        } else {
            None
        };
        let retry_reason = match failure {
            Some(err) => err,
            None => {
                let reported = writer.offset();
                let (handed_back, committed) = commit(writer, &job.digest).await?;
                writer = handed_back;
                // A digest mismatch empties the partial; those bytes will move again.
                let discarded = reported.saturating_sub(writer.offset());
                if discarded > 0 {
                    reporter.blob_discarded(&job.digest, discarded);
                }
                match committed {
                    Ok(()) => {
                        reporter.blob_done(&job.digest);
                        return Ok(());
                    }
                    Err(
                        err @ (StoreError::TooShort { .. } | StoreError::DigestMismatch { .. }),
                    ) => {
                        if attempt >= MAX_ATTEMPTS {
                            return Err(damaged(job, err));
                        }
                        std::io::Error::other(err.to_string())
                    }
                    Err(err) => return Err(store_error(err)),
                }
            }
        };
        if attempt >= MAX_ATTEMPTS {
            let (reference, digest) = (job.owner(), job.digest.clone());
            return Err(if retry_reason.kind() == std::io::ErrorKind::TimedOut {
                PullError::Stalled {
                    reference,
                    digest,
                    source: retry_reason,
                }
            } else {
                PullError::Interrupted {
                    reference,
                    digest,
                    source: retry_reason,
                }
            });
        }
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
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
        PullError::Store {
            what: format!("blob {} of {}", job.digest, job.owner()),
            source,
        }
    }
}
