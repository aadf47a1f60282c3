//! The head of a package, read for push before it is verified: `index.json` and the
//! small blobs that may be manifests.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::manifest::MAX_MANIFEST_BYTES;
use crate::package::kept::Kept;
use crate::package::reader::{
    for_each_entry, read_bounded, Flow, Known, PackageBytes, MAX_METADATA_BYTES,
};
use crate::package::PackageError;
use crate::store::layout::LayoutIndex;

/// The package's `index.json` and the blobs that may be manifests, read without
/// verifying anything: enough to know what a push will need, so that the registry can
/// be asked while the package is verified. Large blobs are passed over, so this is
/// quick only where the package can be read from any offset.
pub fn head(package: &PackageBytes) -> Result<Head, PackageError> {
    let mut index = None;
    let mut manifests = BTreeMap::new();
    let mut kept = Kept::default();
    for_each_entry(package, |entry| {
        match &entry.known {
            Known::Index => {
                let bytes = read_bounded(entry.reader, entry.name, entry.size, MAX_METADATA_BYTES)?;
                index = serde_json::from_slice(&bytes).ok();
            }
            Known::Blob(digest) if entry.size <= MAX_MANIFEST_BYTES => {
                kept.add(entry.size)?;
                let bytes = read_bounded(entry.reader, entry.name, entry.size, MAX_MANIFEST_BYTES)?;
                if bytes.first() == Some(&b'{') {
                    manifests.insert(digest.clone(), bytes);
                }
            }
            _ => {}
        }
        Ok(Flow::Continue)
    })?;
    Ok(Head { index, manifests })
}

/// What [`head`] read, unverified.
pub struct Head {
    pub index: Option<LayoutIndex>,
    pub manifests: BTreeMap<Digest, Vec<u8>>,
}
