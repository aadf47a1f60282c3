//! Sealing a staged layout before it ships: every blob is re-hashed in parallel, a
//! misnamed file is renamed to its true digest, and every descriptor reachable from
//! `index.json` must then be present with the right size.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::digest::hash_file;
use super::layout::LayoutIndex;
use super::Digest;
use crate::manifest::{is_manifest_media_type, Manifest};

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{reference}: blob {digest} is missing from the package")]
    Missing { reference: String, digest: Digest },
    #[error("{reference}: blob {digest} holds {actual} bytes, but its descriptor says {expected}")]
    WrongSize {
        reference: String,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("{reference}: manifest {digest} cannot be read: {message}")]
    BadManifest {
        reference: String,
        digest: Digest,
        message: String,
    },
    #[error("blob {} does not hold the bytes its name says", misnamed[0])]
    Misnamed { misnamed: Vec<Digest> },
    #[error("{} has a file whose name is not a sha256 digest", path.display())]
    StrayFile { path: PathBuf },
}

/// What the seal proved: each blob's digest and size, and which blobs are manifests
/// or configs rather than layers.
#[derive(Debug, Default)]
pub struct Sealed {
    pub blobs: BTreeMap<Digest, u64>,
    /// Manifests and indexes.
    pub manifests: BTreeSet<Digest>,
    /// Configs.
    pub configs: BTreeSet<Digest>,
}

/// Seals the layout rooted at `root` (holding `index.json` and `blobs/sha256`).
/// Misnamed files are renamed to their true digest and reported with their old names,
/// so that whoever supplied them (a cache) can evict them.
pub fn seal(root: &Path) -> Result<Sealed, SealError> {
    let blobs_dir = root.join("blobs").join("sha256");
    let mut sealed = Sealed::default();
    let mut misnamed = Vec::new();
    let hashed = hash_all(&blobs_dir)?;
    for (name, (digest, size)) in hashed {
        if name != digest.hex() {
            let from = blobs_dir.join(&name);
            let to = blobs_dir.join(digest.hex());
            if to.exists() {
                let _ = fs::remove_file(&from);
            } else {
                fs::rename(&from, &to).map_err(|source| SealError::Io { path: from, source })?;
            }
            if let Ok(named) = Digest::from_hex(&name) {
                misnamed.push(named);
            }
        }
        sealed.blobs.insert(digest, size);
    }
    if !misnamed.is_empty() {
        return Err(SealError::Misnamed { misnamed });
    }

    let index_path = root.join("index.json");
    let index_bytes = fs::read(&index_path).map_err(|source| SealError::Io {
        path: index_path.clone(),
        source,
    })?;
    let index: LayoutIndex = serde_json::from_slice(&index_bytes).map_err(|e| SealError::Io {
        path: index_path,
        source: e.into(),
    })?;
    // A worklist rather than recursion: a hostile chain of nested indexes cannot
    // overflow the stack.
    let mut reached = BTreeSet::new();
    for entry in &index.manifests {
        let reference = entry.reference().unwrap_or("(unnamed)");
        let root_is_manifest = is_manifest_media_type(&entry.media_type);
        let mut queue = vec![(entry.digest.clone(), entry.size, root_is_manifest)];
        while let Some((digest, size, is_manifest)) = queue.pop() {
            let Some(&actual) = sealed.blobs.get(&digest) else {
                return Err(SealError::Missing {
                    reference: reference.to_owned(),
                    digest,
                });
            };
            if actual != size {
                return Err(SealError::WrongSize {
                    reference: reference.to_owned(),
                    digest,
                    expected: size,
                    actual,
                });
            }
            reached.insert(digest.clone());
            if !is_manifest || !sealed.manifests.insert(digest.clone()) {
                continue;
            }
            let path = blobs_dir.join(digest.hex());
            let bytes = fs::read(&path).map_err(|source| SealError::Io { path, source })?;
            let manifest = Manifest::parse(&bytes).map_err(|e| SealError::BadManifest {
                reference: reference.to_owned(),
                digest: digest.clone(),
                message: e.to_string(),
            })?;
            if let Some(config) = &manifest.config {
                sealed.configs.insert(config.digest.clone());
            }
            // An index's children are manifests whatever media type they claim.
            for child in &manifest.manifests {
                queue.push((child.digest.clone(), child.size, true));
            }
            for blob in manifest.blobs() {
                queue.push((blob.digest.clone(), blob.size, false));
            }
        }
    }
    // Only what index.json reaches is packaged: a stored root index whose platform
    // manifest was picked must not ride along.
    for digest in sealed.blobs.keys().filter(|d| !reached.contains(*d)) {
        let _ = fs::remove_file(blobs_dir.join(digest.hex()));
    }
    sealed.blobs.retain(|digest, _| reached.contains(digest));
    Ok(sealed)
}

/// Hashes every file of `dir` on all cores; returns name → (true digest, size).
fn hash_all(dir: &Path) -> Result<BTreeMap<String, (Digest, u64)>, SealError> {
    let io = |source| SealError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if Digest::from_hex(&name).is_err() {
            return Err(SealError::StrayFile { path: entry.path() });
        }
        names.push(name);
    }
    let next = AtomicUsize::new(0);
    let results = Mutex::new(BTreeMap::new());
    let first_error = Mutex::new(None);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(name) = names.get(i) else { break };
                let path = dir.join(name);
                match hash_file(&path) {
                    Ok(hashed) => {
                        results.lock().unwrap().insert(name.clone(), hashed);
                    }
                    Err(source) => {
                        first_error
                            .lock()
                            .unwrap()
                            .get_or_insert(SealError::Io { path, source });
                    }
                }
            });
        }
    });
    if let Some(err) = first_error.into_inner().unwrap() {
        return Err(err);
    }
    Ok(results.into_inner().unwrap())
}
