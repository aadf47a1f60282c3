//! The hashing pass: the blobs the scan pass left, too large to be manifests in a
//! package that can be read from any offset, hashed on all cores, largest first. And
//! [`hash_stream`], how the scan hashes any entry.

use std::io::Read;
use std::path::Path;

use crate::digest::{Digest, Hasher};
use crate::package::reader::PackageBytes;
use crate::package::PackageError;
use crate::parallel::{self, Stopped};
use crate::store::StoreError;

/// A blob left for the hashing pass.
pub(super) struct Deferred {
    /// Its place among the package's entries, so problems keep the package's order.
    pub order: usize,
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

/// An entry hashed, by either pass.
pub(super) struct Hashed {
    /// Its place among the package's entries.
    pub order: usize,
    pub name: String,
    /// The digest of its bytes.
    pub actual: Digest,
    /// How many bytes it really had.
    pub read: u64,
}

/// Hashes the deferred entries, largest first, one per core at a time.
pub(super) fn hash_deferred(
    package: &PackageBytes,
    mut deferred: Vec<Deferred>,
) -> Result<Vec<Hashed>, PackageError> {
    deferred.sort_by_key(|entry| std::cmp::Reverse(entry.size));
    let hashed = parallel::try_map_init(
        &deferred,
        || vec![0u8; 1 << 20],
        |buf, entry| {
            let mut reader = package
                .read_at(entry.offset, entry.size)
                .map_err(|e| StoreError::io("read", package.path(), e))?;
            let (actual, read) = hash_stream(&mut reader, buf, None, &entry.name)?;
            Ok(Hashed {
                order: entry.order,
                name: entry.name.clone(),
                actual,
                read,
            })
        },
    );
    hashed.map_err(|stopped| match stopped {
        Stopped::Failed(e) => e,
        Stopped::Panicked(source) => PackageError::Panicked {
            what: "hashing the package's blobs",
            source,
        },
    })
}

/// Hashes an entry to its end, keeping its bytes in `keep` if given; returns its
/// digest and how many bytes it really had.
pub(super) fn hash_stream(
    reader: &mut dyn Read,
    buf: &mut [u8],
    mut keep: Option<&mut Vec<u8>>,
    name: &str,
) -> Result<(Digest, u64), PackageError> {
    let mut hasher = Hasher::default();
    hasher
        .update_from(reader, buf, |chunk| {
            if let Some(kept) = keep.as_deref_mut() {
                kept.extend_from_slice(chunk);
            }
        })
        .map_err(|e| StoreError::io("read", Path::new(name), e))?;
    let read = hasher.bytes_hashed();
    Ok((hasher.finish(), read))
}
