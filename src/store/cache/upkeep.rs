//! The cache's upkeep: what it holds (`ls`, read without a lock), and the two kinds of
//! maintenance that remove files under the exclusive lock: `prune` (stale partial
//! downloads and old lock files, and the blobs asked for) and `verify` (re-hash every
//! blob on all cores, evict the damaged).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::list::{list_blobs, list_ingest, BlobEntry, IngestFile, Usage};
use super::{blobs_dir, ingest_dir, Cache, CacheError};
use crate::cancel::Cancellable;
use crate::digest::{Digest, Hasher};
use crate::parallel::{self, Stopped};
use crate::progress::Reporter;

/// Which blobs a prune removes (stale partials and locks always go).
#[derive(Debug, Clone, Copy)]
pub enum PruneBlobs {
    None,
    All,
    /// Those not used for at least this long.
    UnusedFor(Duration),
}

/// What a prune removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub blobs: usize,
    pub blob_bytes: u64,
    pub partials: usize,
    pub partial_bytes: u64,
    pub locks: usize,
}

/// What a verify found. Damaged blobs have been evicted.
#[derive(Debug, Default)]
pub struct Verified {
    pub blobs: usize,
    pub bytes: u64,
    /// Sorted.
    pub damaged: Vec<Digest>,
}

impl Cache {
    /// Lists what the cache at `root` holds; an absent cache is an empty one.
    pub fn usage(root: &Path) -> Result<Usage, CacheError> {
        let mut usage = Usage {
            blobs: list_blobs(&blobs_dir(root))?,
            ..Usage::default()
        };
        for file in list_ingest(&ingest_dir(root))? {
            if let IngestFile::Partial { size, .. } = file {
                usage.partials += 1;
                usage.partial_bytes = usage.partial_bytes.saturating_add(size);
            }
        }
        Ok(usage)
    }

    /// Removes partial downloads (and old lock files) that no writer holds, and the blobs
    /// that `blobs` selects.
    pub fn prune(&self, blobs: PruneBlobs) -> Result<Pruned, CacheError> {
        let mut pruned = Pruned::default();
        let ingest = ingest_dir(&self.root);
        for file in list_ingest(&ingest)? {
            match file {
                IngestFile::Partial { hex, size } => {
                    let partial_path = ingest.join(format!("{hex}.partial"));
                    // Under the exclusive cache lock no create should be writing, but a
                    // partial still locked has a writer: it stays.
                    let Some(_held) = try_hold(&partial_path)? else {
                        continue;
                    };
                    if remove_if_present(&partial_path)?.is_some() {
                        pruned.partials += 1;
                        pruned.partial_bytes = pruned.partial_bytes.saturating_add(size);
                    }
                }
                IngestFile::Lock { hex } => {
                    // Builds before partials locked themselves left one lock file per
                    // blob; one still held belongs to such a build at work.
                    let lock_path = ingest.join(format!("{hex}.lock"));
                    let Some(_held) = try_hold(&lock_path)? else {
                        continue;
                    };
                    if remove_if_present(&lock_path)?.is_some() {
                        pruned.locks += 1;
                    }
                }
            }
        }

        if matches!(blobs, PruneBlobs::None) {
            return Ok(pruned);
        }
        let now = SystemTime::now();
        let goes = |blob: &BlobEntry| match blobs {
            PruneBlobs::None => false,
            PruneBlobs::All => true,
            // A last use in the future (a clock set back) counts as recent.
            PruneBlobs::UnusedFor(age) => now
                .duration_since(blob.last_used)
                .is_ok_and(|idle| idle >= age),
        };
        for blob in list_blobs(&blobs_dir(&self.root))? {
            if !goes(&blob) {
                continue;
            }
            if remove_if_present(&self.store.blob_path(&blob.digest))?.is_some() {
                pruned.blobs += 1;
                pruned.blob_bytes = pruned.blob_bytes.saturating_add(blob.size);
            }
        }
        Ok(pruned)
    }

    /// Re-hashes every blob on all cores and evicts each one whose bytes do not match
    /// its name. Progress goes to `reporter`.
    pub fn verify(&self, reporter: &dyn Reporter) -> Result<Verified, CacheError> {
        let dir = blobs_dir(&self.root);
        let blobs = list_blobs(&dir)?;
        let bytes = blobs.iter().fold(0u64, |a, b| a.saturating_add(b.size));
        reporter.blobs_planned("verifying", blobs.len(), bytes);

        let hashed = parallel::try_map_init(
            &blobs,
            || vec![0u8; 1 << 20],
            |buf, blob| {
                let path = dir.join(blob.digest.hex());
                match hash_reporting(&path, &blob.digest, buf, reporter) {
                    Ok(Some(actual)) if actual != blob.digest => Ok(Some(blob.digest.clone())),
                    Ok(_) => Ok(None),
                    Err(e) => Err(CacheError::io("read", &path, e)),
                }
            },
        );
        reporter.finish();
        let mut damaged: Vec<Digest> = hashed
            .map_err(Stopped::or_resume_panic)?
            .into_iter()
            .flatten()
            .collect();
        damaged.sort();
        for digest in &damaged {
            let path = self.store.blob_path(digest);
            remove_if_present(&path)?;
        }
        Ok(Verified {
            blobs: blobs.len(),
            bytes,
            damaged,
        })
    }
}

/// Locks an ingest file (a partial, or an old lock file) if no writer holds it; `None`
/// if one does, or if the file is already gone.
fn try_hold(path: &Path) -> Result<Option<File>, CacheError> {
    let file = match OpenOptions::new().write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CacheError::io("open", path, e)),
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(CacheError::io("lock", path, e)),
    }
}

/// Removes a file, returning its size, or `None` if it was already gone.
fn remove_if_present(path: &Path) -> Result<Option<u64>, CacheError> {
    let size = match fs::symlink_metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CacheError::io("read", path, e)),
    };
    match fs::remove_file(path) {
        Ok(()) => Ok(Some(size)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CacheError::io("remove", path, e)),
    }
}

/// Hashes a blob, reporting bytes as they are read; `None` if it vanished meanwhile.
fn hash_reporting(
    path: &Path,
    digest: &Digest,
    buf: &mut [u8],
    reporter: &dyn Reporter,
) -> io::Result<Option<Digest>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut hasher = Hasher::default();
    hasher.update_from(&mut Cancellable(file), buf, |chunk| {
        reporter.blob_progress(digest, chunk.len() as u64);
    })?;
    Ok(Some(hasher.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_cache_no_maintenance_and_nothing_created() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("absent");
        assert!(Cache::open_exclusive(&root, |_| {}).unwrap().is_none());
        assert!(!root.exists());
        let usage = Cache::usage(&root).unwrap();
        assert_eq!((usage.blobs.len(), usage.partials), (0, 0));
    }

    #[test]
    fn prune_keeps_what_a_writer_holds() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open_shared(dir.path(), |_| {}).unwrap();
        let busy = Digest::of(b"busy");
        let stale = Digest::of(b"stale");
        let ingest = ingest_dir(dir.path());
        let mut writers = Vec::new();
        for digest in [&busy, &stale] {
            match cache.store().begin(digest, 100).unwrap() {
                crate::store::Ingest::Writer(mut w) => {
                    w.write(b"12345").unwrap();
                    writers.push(w);
                }
                crate::store::Ingest::Present => panic!("nothing is present"),
            }
        }
        drop(writers.pop()); // the stale one: its writer went away
        let orphan = Digest::of(b"orphan");
        fs::write(ingest.join(format!("{}.partial", orphan.hex())), b"123").unwrap();
        fs::write(ingest.join("not-ours.txt"), b"x").unwrap();
        // Left by a build from before partials locked themselves.
        fs::write(ingest.join(format!("{}.lock", orphan.hex())), b"").unwrap();
        drop(cache);

        let cache = Cache::open_exclusive(dir.path(), |_| {}).unwrap().unwrap();
        let pruned = cache.prune(PruneBlobs::None).unwrap();
        assert_eq!(
            pruned,
            Pruned {
                partials: 2,
                partial_bytes: 8,
                locks: 1,
                ..Pruned::default()
            }
        );
        let mut left: Vec<String> = fs::read_dir(&ingest)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut expected = vec![format!("{}.partial", busy.hex()), "not-ours.txt".to_owned()];
        expected.sort();
        assert_eq!(left, expected);
    }
}
