//! Reading the cache's directories: its blobs with their size and last use, and the
//! partial downloads and old lock files of its ingest directory. Files that are not
//! the cache's own are passed over, never touched.

use std::fs;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use super::CacheError;
use crate::digest::Digest;

/// One blob in the cache.
#[derive(Debug, Clone)]
pub struct BlobEntry {
    pub digest: Digest,
    pub size: u64,
    pub last_used: SystemTime,
}

/// What the cache holds, read without a lock.
#[derive(Debug, Default)]
pub struct Usage {
    /// Sorted by digest.
    pub blobs: Vec<BlobEntry>,
    pub partials: usize,
    pub partial_bytes: u64,
}

impl Usage {
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.iter().fold(0, |a, b| a.saturating_add(b.size))
    }
}

/// The blobs of `dir`, sorted; files whose name is not a digest are not blobs and are
/// left alone. A missing directory holds nothing.
pub(super) fn list_blobs(dir: &Path) -> Result<Vec<BlobEntry>, CacheError> {
    let mut blobs = Vec::new();
    for (name, meta) in list_files(dir)? {
        let Ok(digest) = Digest::from_hex(&name) else {
            continue;
        };
        blobs.push(BlobEntry {
            digest,
            size: meta.len(),
            last_used: meta
                .modified()
                .map_err(|e| CacheError::io("read", &dir.join(&name), e))?,
        });
    }
    blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    Ok(blobs)
}

pub(super) enum IngestFile {
    Partial { hex: String, size: u64 },
    Lock { hex: String },
}

/// The partials and digest locks of `dir`; other files are left alone.
pub(super) fn list_ingest(dir: &Path) -> Result<Vec<IngestFile>, CacheError> {
    let mut files = Vec::new();
    for (name, meta) in list_files(dir)? {
        let (hex, is_lock) = if let Some(hex) = name.strip_suffix(".partial") {
            (hex, false)
        } else if let Some(hex) = name.strip_suffix(".lock") {
            (hex, true)
        } else {
            continue;
        };
        if Digest::from_hex(hex).is_err() {
            continue;
        }
        let hex = hex.to_owned();
        files.push(if is_lock {
            IngestFile::Lock { hex }
        } else {
            IngestFile::Partial {
                hex,
                size: meta.len(),
            }
        });
    }
    Ok(files)
}

/// The regular files of `dir` with their metadata; a missing directory is empty, and a
/// file removed while listing is skipped.
fn list_files(dir: &Path) -> Result<Vec<(String, fs::Metadata)>, CacheError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CacheError::io("read directory", dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CacheError::io("read directory", dir, e))?;
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(CacheError::io("read", &entry.path(), e)),
        };
        if meta.is_file() {
            files.push((entry.file_name().to_string_lossy().into_owned(), meta));
        }
    }
    Ok(files)
}
