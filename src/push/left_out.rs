//! A differential package's left-out blobs, checked on the target before anything is
//! sent: each config and layer the base holds must be in the repository of every image
//! that needs it, or in some repository the package maps to, from which push mounts it
//! (`blobs`). The registry was asked about all of them, in parallel, with everything
//! else (`present`); one found in none of the repositories that need it is then asked
//! about in the package's other repositories, a bounded number of questions in all.

use std::collections::BTreeMap;

use oci_client::Reference;

use super::plan::PlannedImage;
use super::present::Present;
use super::PushPackageError;
use crate::digest::Digest;
use crate::package::built::Differential;
use crate::registry::Registry;

/// How many of the images that need a missing blob the error names.
const IMAGES_NAMED: usize = 3;

/// The most questions asked about left-out blobs in repositories that do not need
/// them: an empty target would otherwise be asked blobs × repositories.
const MAX_QUESTIONS_ELSEWHERE: usize = 4096;

/// Asks the package's other repositories about each left-out blob that no repository
/// needing it has, so it can be mounted from where it is.
pub(super) async fn look_elsewhere(
    registry: &Registry,
    left_out: &BTreeMap<Digest, u64>,
    images: &[PlannedImage],
    present: &mut Present,
    concurrency: usize,
) {
    let unheld: Vec<&Digest> = left_out
        .keys()
        .filter(|digest| present.holder(digest).is_none())
        .collect();
    let mut repos: Vec<&Reference> = Vec::new();
    for image in images {
        if !repos
            .iter()
            .any(|r| r.repository() == image.target.repository())
        {
            repos.push(&image.target);
        }
    }
    if unheld.is_empty() || unheld.len().saturating_mul(repos.len()) > MAX_QUESTIONS_ELSEWHERE {
        return;
    }
    present
        .ask_elsewhere(registry, &unheld, &repos, concurrency)
        .await;
}

/// Refuses the push when the target has some left-out blob in no repository the
/// package maps to. A question that failed for such a blob is its error instead.
pub(super) fn check_left_out(
    differential: &Differential,
    left_out: &BTreeMap<Digest, u64>,
    images: &[PlannedImage],
    present: &Present,
) -> Result<(), PushPackageError> {
    let mut missing: BTreeMap<&Digest, u64> = BTreeMap::new();
    let mut needing = Vec::new();
    for image in images {
        let lacking = left_out
            .iter()
            .filter(|(digest, _)| image.blobs.contains(*digest))
            .filter(|(digest, _)| present.holder(digest).is_none());
        let mut needs = false;
        for (digest, size) in lacking {
            if let Some(err) = present.blob_failure(digest, &image.target) {
                return Err(err.into());
            }
            missing.insert(digest, *size);
            needs = true;
        }
        if needs && !needing.contains(&image.source) {
            needing.push(image.source.clone());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let base = &differential.base;
    Err(PushPackageError::BaseMissing {
        base: match &base.version {
            Some(version) => format!("{} {version} ({})", base.name, base.sha256),
            None => format!("{} ({})", base.name, base.sha256),
        },
        blobs: missing.len(),
        bytes: missing.values().fold(0, |a, b| a.saturating_add(*b)),
        more_images: needing.len().saturating_sub(IMAGES_NAMED),
        images: needing.into_iter().take(IMAGES_NAMED).collect(),
    })
}
