//! Pushing a verified package's images, in named steps: plan each image onto the
//! target, ask the registry what it still has not been asked, push the blobs, then put
//! each image's manifests, unless one of its blobs failed.

use std::collections::BTreeMap;

use super::blobs::push_blobs;
use super::manifests::push_manifests;
use super::plan::{plan_images, PlannedImage};
use super::present::Present;
use super::{Layout, PushError, PushReport, PushedImage};
use crate::digest::Digest;
use crate::progress::Reporter;
use crate::reference::Target;
use crate::registry::{Registry, RegistryError};

/// Pushes every image of the verified package. `present` holds what the registry was
/// already asked while the package was verified; what it lacks is asked now.
pub(super) async fn push_images(
    registry: &Registry,
    layout: &Layout<'_>,
    target: &Target,
    concurrency: usize,
    reporter: &dyn Reporter,
    mut present: Present,
) -> PushReport {
    let mut report = PushReport::default();
    let images = plan_images(layout.index, layout.manifests, target, &mut report.failed);
    present.ask(registry, &images, concurrency).await;
    let mut failed_blobs = push_blobs(
        registry,
        layout,
        &images,
        &present,
        concurrency,
        reporter,
        &mut report,
    )
    .await;
    // What the registry has counts as sent.
    let mut manifests_sent = present.manifests();
    for image in images {
        let pushed = match blob_failure(&image, &mut failed_blobs) {
            Some(err) => Err(err),
            None => push_manifests(registry, layout, &image, &mut manifests_sent).await,
        };
        match pushed {
            Ok(()) => {
                reporter.step(&format!(
                    "pushed {} to {}",
                    image.source,
                    image.target.whole()
                ));
                let digest = image.manifests.last().map(|(digest, _)| digest.clone());
                report.pushed.extend(digest.map(|digest| PushedImage {
                    target: image.target.whole(),
                    source: image.source,
                    digest,
                }));
            }
            Err(err) => report.failed.push((image.source, err)),
        }
    }
    report
}

/// Why an image cannot be completed, if one of its blobs failed: the blob's own error
/// for the first image that needs it, a plain "could not be pushed" for the others.
fn blob_failure(
    image: &PlannedImage,
    failed_blobs: &mut BTreeMap<Digest, RegistryError>,
) -> Option<PushError> {
    let digest = image.blobs.iter().find(|d| failed_blobs.contains_key(*d))?;
    Some(failed_blobs.remove(digest).map_or_else(
        || PushError::BlobFailed {
            digest: digest.clone(),
        },
        PushError::from,
    ))
}
