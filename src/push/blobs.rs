//! The blob step: every blob the images need, each digest once across all images,
//! skipped where the registry has it, else mounted from a repository that has just
//! received it or uploaded straight from the package (hashed again as it streams). A
//! blob a differential package leaves out is skipped or mounted, never uploaded.

use std::collections::BTreeMap;

use oci_client::Reference;

use super::order::largest_first;
use super::plan::PlannedImage;
use super::present::Present;
use super::{BlobOutcome, BlobRecord, Layout, PushReport};
use crate::digest::Digest;
use crate::progress::Reporter;
use crate::registry::{Registry, RegistryError};

/// Pushes every blob `images` need and counts each outcome into `report`; returns the
/// blobs that could not be pushed, with their error.
pub(super) async fn push_blobs(
    registry: &Registry,
    layout: &Layout<'_>,
    images: &[PlannedImage],
    present: &Present,
    concurrency: usize,
    reporter: &dyn Reporter,
    report: &mut PushReport,
) -> BTreeMap<Digest, RegistryError> {
    let needed = repositories_by_blob(images);
    announce(&needed, layout, present, reporter);
    let mut in_order: Vec<(Digest, Vec<Reference>)> = needed.into_iter().collect();
    in_order.sort_by_key(|(digest, _)| layout.offsets.get(digest).copied());
    let outcomes = largest_first(
        &in_order,
        layout.package.is_random_access(),
        concurrency,
        |(digest, _)| layout.size_of(digest),
        |(digest, repos)| async move {
            let result = push_blob(registry, layout, present, digest, repos, reporter).await;
            (digest.clone(), repos.clone(), result)
        },
    )
    .await;
    reporter.finish();
    tally(outcomes, layout, report)
}

/// Each digest once: the repositories that need it, in a fixed order.
fn repositories_by_blob(images: &[PlannedImage]) -> BTreeMap<Digest, Vec<Reference>> {
    let mut needed: BTreeMap<Digest, Vec<Reference>> = BTreeMap::new();
    for image in images {
        for digest in &image.blobs {
            let repos = needed.entry(digest.clone()).or_default();
            if !repos
                .iter()
                .any(|r| r.repository() == image.target.repository())
            {
                repos.push(image.target.clone());
            }
        }
    }
    needed
}

/// Tells the reporter how many blobs, and bytes, some repository still lacks.
fn announce(
    needed: &BTreeMap<Digest, Vec<Reference>>,
    layout: &Layout<'_>,
    present: &Present,
    reporter: &dyn Reporter,
) {
    let (mut sending, mut missing) = (0, 0u64);
    for (digest, repos) in needed {
        if repos.iter().any(|repo| !present.has_blob(digest, repo)) {
            sending += 1;
            missing = missing.saturating_add(layout.size_of(digest));
        }
    }
    reporter.blobs_planned("pushing", sending, missing);
}

/// One blob pushed into the repositories that needed it: each one's outcome, in
/// order, or the error that stopped it.
type Pushed = (
    Digest,
    Vec<Reference>,
    Result<Vec<BlobOutcome>, RegistryError>,
);

/// Counts each blob's outcomes into `report`, records each, and keeps the errors of
/// those that failed.
fn tally(
    outcomes: impl IntoIterator<Item = Pushed>,
    layout: &Layout<'_>,
    report: &mut PushReport,
) -> BTreeMap<Digest, RegistryError> {
    let mut failed_blobs = BTreeMap::new();
    for (digest, repos, outcome) in outcomes {
        let size = layout.size_of(&digest);
        match outcome {
            Ok(outcomes) => {
                for (outcome, repo) in outcomes.into_iter().zip(&repos) {
                    match outcome {
                        BlobOutcome::Sent => report.uploaded.add(size),
                        BlobOutcome::Present => report.skipped.add(size),
                        BlobOutcome::Mounted => report.mounted.add(size),
                    }
                    report.blobs.push(BlobRecord {
                        digest: digest.clone(),
                        repository: format!("{}/{}", repo.registry(), repo.repository()),
                        outcome,
                        bytes: size,
                    });
                }
            }
            Err(err) => {
                failed_blobs.insert(digest, err);
            }
        }
    }
    failed_blobs
}

/// Pushes one blob into each repository that needs it: the first upload is the source
/// of a mount into the next.
async fn push_blob(
    registry: &Registry,
    layout: &Layout<'_>,
    present: &Present,
    digest: &Digest,
    repos: &[Reference],
    reporter: &dyn Reporter,
) -> Result<Vec<BlobOutcome>, RegistryError> {
    let mut outcomes = Vec::new();
    // A blob a differential package leaves out cannot be uploaded, and one push did not
    // read is better not: each is mounted from the repository the registry has it in.
    let unsent = layout.left_out.contains_key(digest) || layout.not_read.contains_key(digest);
    let mut holder: Option<&Reference> = match unsent {
        true => present.holder(digest),
        false => None,
    };
    for repo in repos {
        if let Some(err) = present.blob_failure(digest, repo) {
            return Err(err);
        }
        let outcome = if present.has_blob(digest, repo) {
            BlobOutcome::Present
        } else if let Some(from) = holder {
            if registry.mount(repo, from, digest).await? {
                BlobOutcome::Mounted
            } else {
                upload(registry, layout, repo, digest, reporter).await?
            }
        } else {
            upload(registry, layout, repo, digest, reporter).await?
        };
        outcomes.push(outcome);
        holder = Some(repo);
    }
    Ok(outcomes)
}

/// Uploads a blob straight from the package.
async fn upload(
    registry: &Registry,
    layout: &Layout<'_>,
    repo: &Reference,
    digest: &Digest,
    reporter: &dyn Reporter,
) -> Result<BlobOutcome, RegistryError> {
    let size = layout.size_of(digest);
    let offset = layout.offsets.get(digest).copied();
    let open = || match offset {
        Some(offset) => layout.package.read_at(offset, size),
        None => Err(std::io::Error::other(format!(
            "blob {digest} is not in the package"
        ))),
    };
    reporter.blob_start(digest, size);
    registry.upload(repo, digest, size, &open).await?;
    reporter.blob_progress(digest, size);
    reporter.blob_done(digest);
    Ok(BlobOutcome::Sent)
}
