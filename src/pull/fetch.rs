//! Fetch: one bounded pool of downloads across all images, each digest once, streamed
//! through the store's verified writer and resumed with a Range request after a cut.

use futures_util::stream::{self, StreamExt, TryStreamExt};
use oci_client::Reference;

use super::PullError;
use crate::progress::Reporter;
use crate::registry::{backoff, Registry, MAX_ATTEMPTS};
use crate::store::{Digest, Ingest, Store, StoreError};

/// One unique blob to download, and a repository that has it.
#[derive(Debug, Clone)]
pub struct BlobJob {
    pub digest: Digest,
    pub size: u64,
    pub source: Reference,
}

/// Downloads every job into `store`, `concurrency` at a time, largest first so the
/// long downloads overlap the short ones. Stops at the first failure.
pub async fn fetch_all(
    registry: &Registry,
    store: &Store,
    mut jobs: Vec<BlobJob>,
    concurrency: usize,
    reporter: &dyn Reporter,
) -> Result<(), PullError> {
    jobs.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.digest.cmp(&b.digest)));
    stream::iter(jobs.into_iter().map(Ok))
        .try_for_each_concurrent(concurrency.max(1), |job| async move {
            fetch_one(registry, store, &job, reporter).await
        })
        .await
}

async fn fetch_one(
    registry: &Registry,
    store: &Store,
    job: &BlobJob,
    reporter: &dyn Reporter,
) -> Result<(), PullError> {
    let store_error = |source: StoreError| PullError::Store {
        what: format!("blob {} of {}", job.digest, job.source.whole()),
        source,
    };
    // Taking the partial's lock can wait on another pkgr process: keep it off the runtime.
    let begin = {
        let store = store.clone();
        let (digest, size) = (job.digest.clone(), job.size);
        tokio::task::spawn_blocking(move || store.begin(&digest, size))
            .await
            .expect("the store task does not panic")
    };
    let mut writer = match begin.map_err(store_error)? {
        Ingest::Present => return Ok(()),
        Ingest::Writer(writer) => writer,
    };
    reporter.blob_start(&job.digest, job.size);
    reporter.blob_progress(&job.digest, writer.offset());

    let mut attempt = 1;
    loop {
        let offset = writer.offset();
        let failure = if offset < job.size {
            let (mut body, from_offset) = registry.blob(&job.source, &job.digest, offset).await?;
            if !from_offset {
                writer.restart().map_err(store_error)?;
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
            None => match writer.commit() {
                Ok(()) => {
                    reporter.blob_done(&job.digest);
                    return Ok(());
                }
                Err(err @ (StoreError::TooShort { .. } | StoreError::DigestMismatch { .. })) => {
                    if attempt >= MAX_ATTEMPTS {
                        return Err(damaged(job, err));
                    }
                    std::io::Error::other(err.to_string())
                }
                Err(err) => return Err(store_error(err)),
            },
        };
        if attempt >= MAX_ATTEMPTS {
            return Err(PullError::Interrupted {
                reference: job.source.whole(),
                digest: job.digest.clone(),
                source: retry_reason,
            });
        }
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    }
}

fn damaged(job: &BlobJob, source: StoreError) -> PullError {
    if source.is_content_error() {
        PullError::Damaged {
            reference: job.source.whole(),
            digest: job.digest.clone(),
            source,
        }
    } else {
        PullError::Store {
            what: format!("blob {} of {}", job.digest, job.source.whole()),
            source,
        }
    }
}
