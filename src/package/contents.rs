//! What a package holds and in which order: `checksums.txt` over every other file, and
//! the tar order (metadata, then manifests, configs and layers, each sorted by name),
//! so that a reader finds every manifest before the configs it names and needs only
//! the head of the package. A package to be signed leaves `pkgr.yaml` (which records
//! the sha256 of `checksums.txt` instead) and the signature files out of
//! `checksums.txt`, and carries the signatures right after it.

use std::collections::BTreeMap;
use std::path::Path;

use super::writer::Entry;
use super::{PackageError, BUNDLE, CHECKSUMS, DEFINITION, LAYOUT_DIR, SIGNATURE};
use crate::cancel::Cancellable;
use crate::digest::{hash_reader, Digest};
use crate::store::seal::Sealed;
use crate::store::StoreError;

/// Writes `checksums.txt` into `staging` and returns every entry in tar order.
pub fn entries(staging: &Path, sealed: &Sealed) -> Result<Vec<Entry>, PackageError> {
    entries_listing(staging, sealed, false)
}

/// As [`entries`], for a package to be signed: `pkgr.yaml` is not listed in
/// `checksums.txt`, and `pkgr.yaml.sig` and `pkgr.bundle.sig` follow it. The caller
/// writes `pkgr.yaml` and the signatures into `staging` before the package is written.
pub fn signed_entries(staging: &Path, sealed: &Sealed) -> Result<Vec<Entry>, PackageError> {
    entries_listing(staging, sealed, true)
}

fn entries_listing(
    staging: &Path,
    sealed: &Sealed,
    signed: bool,
) -> Result<Vec<Entry>, PackageError> {
    let layout_files = [
        format!("{LAYOUT_DIR}/oci-layout"),
        format!("{LAYOUT_DIR}/index.json"),
    ];
    let listed_definition = (!signed).then(|| DEFINITION.to_owned());
    let meta_files: Vec<String> = listed_definition
        .into_iter()
        .chain(layout_files.iter().cloned())
        .collect();
    let blob_name = |digest: &Digest| format!("{LAYOUT_DIR}/blobs/sha256/{}", digest.hex());

    let mut checksums: BTreeMap<String, String> = BTreeMap::new();
    for name in &meta_files {
        let path = staging.join(name);
        let (digest, _) = std::fs::File::open(&path)
            .and_then(|file| hash_reader(Cancellable(file)))
            .map_err(|e| StoreError::io("read", &path, e))?;
        checksums.insert(name.clone(), digest.hex().to_owned());
    }
    for digest in sealed.blobs.keys() {
        checksums.insert(blob_name(digest), digest.hex().to_owned());
    }
    let checksums_path = staging.join(CHECKSUMS);
    let text: String = checksums
        .iter()
        .map(|(name, hex)| format!("{hex} {name}\n"))
        .collect();
    std::fs::write(&checksums_path, text)
        .map_err(|e| StoreError::io("write", &checksums_path, e))?;

    let entry = |name: String| Entry {
        source: staging.join(&name),
        name,
    };
    let mut entries = vec![entry(DEFINITION.to_owned()), entry(CHECKSUMS.to_owned())];
    if signed {
        entries.extend([SIGNATURE, BUNDLE].map(|name| entry(name.to_owned())));
    }
    entries.extend(layout_files.into_iter().map(entry));
    let group = |d: &Digest| {
        if sealed.manifests.contains(d) {
            0
        } else if sealed.configs.contains(d) {
            1
        } else {
            2
        }
    };
    let mut blobs: Vec<&Digest> = sealed.blobs.keys().collect();
    blobs.sort_by_key(|d| (group(d), *d));
    entries.extend(blobs.into_iter().map(|d| entry(blob_name(d))));
    Ok(entries)
}
