//! A differential package's left-out blobs, checked on the target before anything is
//! sent: each config and layer the base holds must be in the repository of every image
//! that needs it, or in some repository the package maps to, from which push mounts it
//! (`blobs`). The registry was asked about all of them, in parallel, with everything
//! else (`present`).

use std::collections::BTreeMap;

use super::plan::PlannedImage;
use super::present::Present;
use super::PushPackageError;
use crate::digest::Digest;
use crate::package::built::Differential;

/// How many of the images that need a missing blob the error names.
const IMAGES_NAMED: usize = 3;

/// Refuses the push when the target has some left-out blob in no repository the
/// package maps to. A question that failed for such a blob is its error instead.
pub(super) fn check_left_out(
    differential: &Differential,
    left_out: &BTreeMap<Digest, u64>,
    images: &[PlannedImage],
    present: &mut Present,
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
            if present.asking_failed(digest, &image.target) {
                if let Some(err) = present.blob_failure(digest, &image.target) {
                    return Err(err.into());
                }
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
