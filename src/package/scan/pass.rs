//! The scan pass: the package's entries read once, in order. The definition,
//! `checksums.txt`, `index.json`, `oci-layout` and the signatures are kept; every blob's offset is
//! recorded; blobs are hashed as they stream past, small ones that look like
//! manifests kept, unless the package can be read from any offset and the blob is too
//! large to be a manifest: those are left for the hashing pass. Blobs the caller
//! names as not needed (push's, already on the target) are passed over unread.

use std::collections::BTreeSet;

use super::hashing::{hash_stream, Deferred, Hashed};
use super::{Problem, Scan};
use crate::digest::Digest;
use crate::manifest::MAX_MANIFEST_BYTES;
use crate::package::kept::Kept;
use crate::package::reader::{
    for_each_entry, read_bounded, Entry, Flow, Known, PackageBytes, MAX_METADATA_BYTES,
    MAX_SIGNATURE_BYTES,
};
use crate::package::PackageError;

/// What the scan pass read.
pub(super) struct Pass {
    /// The kept files and offsets; blobs are not in its `files` yet.
    pub scan: Scan,
    pub hashed: Vec<Hashed>,
    pub deferred: Vec<Deferred>,
}

/// Reads every entry but the blobs named in `unread`, which are passed over: recorded
/// under the digest their name claims and the size their header gives, and listed in
/// the scan's `not_read`.
pub(super) fn read_entries(
    package: &PackageBytes,
    unread: &BTreeSet<Digest>,
) -> Result<Pass, PackageError> {
    let mut pass = Pass {
        scan: Scan::default(),
        hashed: Vec::new(),
        deferred: Vec::new(),
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut kept_bytes = Kept::default();
    let mut order = 0usize;
    for_each_entry(package, |entry| {
        order += 1;
        let Entry {
            known,
            name,
            size,
            offset,
            reader,
        } = entry;
        if let Known::Blob(digest) = &known {
            pass.scan.offsets.insert(digest.clone(), offset);
            if unread.contains(digest) {
                pass.scan.not_read.insert(digest.clone(), size);
                pass.scan
                    .files
                    .insert(name.to_owned(), (digest.clone(), size));
                return Ok(Flow::Continue);
            }
        }
        match &known {
            Known::PkgrDefinition
            | Known::ZarfDefinition
            | Known::Checksums
            | Known::Index
            | Known::OciLayout => {
                let bytes = read_bounded(reader, name, size, MAX_METADATA_BYTES)?;
                pass.scan.keep_metadata(known, name, bytes);
            }
            Known::Signature => {
                let bytes = read_bounded(reader, name, size, MAX_SIGNATURE_BYTES)?;
                pass.scan.keep_metadata(known, name, bytes);
            }
            Known::Blob(_) | Known::ZarfExtra
                if package.is_random_access() && size > MAX_MANIFEST_BYTES =>
            {
                pass.deferred.push(Deferred {
                    order,
                    name: name.to_owned(),
                    offset,
                    size,
                });
            }
            Known::Blob(_) | Known::ZarfExtra => {
                // Only a blob small enough to be a manifest may be kept.
                let keepable = match &known {
                    Known::Blob(digest) if size <= MAX_MANIFEST_BYTES => Some(digest),
                    _ => None,
                };
                let mut kept = Vec::new();
                let (actual, read) =
                    hash_stream(reader, &mut buf, keepable.map(|_| &mut kept), name)?;
                let looks_like_manifest = kept.first() == Some(&b'{');
                if let Some(digest) = keepable.filter(|d| looks_like_manifest && actual == **d) {
                    kept_bytes.add(kept.len() as u64)?;
                    pass.scan.manifests.insert(digest.clone(), kept);
                }
                pass.hashed.push(Hashed {
                    order,
                    name: name.to_owned(),
                    actual,
                    read,
                });
            }
        }
        Ok(Flow::Continue)
    })?;
    Ok(pass)
}

impl Scan {
    /// Keeps one of the package's own files (never a blob) and its digest.
    fn keep_metadata(&mut self, known: Known, name: &str, bytes: Vec<u8>) {
        self.files
            .insert(name.to_owned(), (Digest::of(&bytes), bytes.len() as u64));
        match known {
            Known::PkgrDefinition => self.definition = Some(bytes),
            Known::ZarfDefinition => {
                self.zarf = true;
                self.definition = Some(bytes);
            }
            Known::Checksums => self.checksums = Some(String::from_utf8_lossy(&bytes).into_owned()),
            Known::Signature => {
                self.signatures.insert(name.to_owned(), bytes);
            }
            Known::Index => match serde_json::from_slice(&bytes) {
                Ok(index) => self.index = Some(index),
                Err(e) => self.problems.push(Problem::IndexUnreadable {
                    message: e.to_string(),
                }),
            },
            _ => {}
        }
    }
}
