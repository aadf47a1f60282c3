//! The manifest step: an image's manifests put byte-exact, by digest children first,
//! then its tag, each skipped where the registry has it or this run has put it.

use std::collections::HashSet;

use super::plan::PlannedImage;
use super::{Layout, PushError};
use crate::digest::Digest;
use crate::registry::Registry;

/// Puts an image's manifests in push order. A manifest this run has already put into
/// the same repository (or tag) is not sent again: entries that share an index would
/// otherwise send it once per entry.
pub(super) async fn push_manifests(
    registry: &Registry,
    layout: &Layout<'_>,
    image: &PlannedImage,
    sent: &mut HashSet<(String, Digest)>,
) -> Result<(), PushError> {
    for place in image.manifest_places() {
        if sent.contains(&place.key) {
            continue;
        }
        let (_, digest) = &place.key;
        let bytes = layout
            .manifests
            .get(digest)
            .ok_or_else(|| PushError::MissingManifest {
                digest: digest.clone(),
            })?;
        registry
            .put_manifest(&place.at, bytes, place.media_type)
            .await?;
        sent.insert(place.key);
    }
    Ok(())
}
