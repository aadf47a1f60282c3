//! The shared blob cache: how it is laid out, its errors, and the open `Cache` handle.
//! Finding and opening it under its lock is `lock`; what it holds is `list`; its upkeep
//! (`ls`, `prune`, `verify`) is `upkeep`.
//!
//! ```text
//! <root>/blobs-v1/sha256/<hex>   verified blobs (written only through [`Store`])
//! <root>/ingest-v1/<hex>.partial downloads in progress, resumable; each is locked by
//!                                 its one writer
//! <root>/lock                    one maintainer, or any number of users
//! <root>/CACHEDIR.TAG            keeps backup tools out
//! ```
//!
//! Runs that use the cache (`create`) hold `<root>/lock` shared for as long as they
//! count on its blobs; maintenance that removes anything (`prune`, `verify`) holds it
//! exclusively, so no blob disappears under a build that has already found it present.
//! Reading the cache's size (`ls`) takes no lock: it is a snapshot.
//!
//! A blob's modification time is its "last used" time: `create` sets it when it takes
//! the blob into a package, and `prune --older-than` reads it.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{Store, StoreError};
use crate::digest::Digest;

mod list;
mod lock;
mod upkeep;

pub use list::{BlobEntry, Usage};
pub use lock::waiting_message;
pub use upkeep::{PruneBlobs, Pruned, Verified};

/// Names the layout; a format change gets new directories rather than a migration.
pub const LAYOUT_VERSION: &str = "v1";

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(
        "no cache directory: none of --cache, $PKGR_CACHE_DIR, $XDG_CACHE_HOME and $HOME is set"
    )]
    NoRoot,
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("interrupted while waiting for the cache lock {}", path.display())]
    Cancelled { path: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The thread that waited for the lock panicked: a bug in pkgr.
    #[error("internal error while {what}")]
    Internal {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}

impl CacheError {
    /// The path being written when its filesystem filled up, if that is what failed.
    pub fn no_space(&self) -> Option<&Path> {
        match self {
            Self::Io { path, source, .. } if crate::space::is_out_of_space(source) => Some(path),
            Self::Store(e) => e.no_space(),
            _ => None,
        }
    }

    fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

impl crate::hint::Hint for CacheError {
    fn hint(&self) -> Option<crate::hint::Fix> {
        match self {
            Self::NoRoot => Some(crate::hint::Fix::NameCache),
            Self::Internal { .. } => Some(crate::hint::Fix::ReportBug),
            _ => None,
        }
    }
}

/// An open cache and its lock, released when the `Cache` is dropped.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    store: Store,
    /// When this run took the lock: a blob changed since needs no "used" mark.
    opened_at: SystemTime,
    _lock: File,
}

impl Cache {
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The blob store inside the cache.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Records that a blob was just used, so `prune --older-than` keeps it. Best
    /// effort: a blob that cannot be touched is only at risk of an early prune. One
    /// written since the cache was opened (downloaded by this run, most often) is
    /// left as it is: opening each file again is most of a small blob's cost.
    pub fn mark_used(&self, digest: &Digest) {
        let path = self.store.blob_path(digest);
        let fresh = fs::metadata(&path)
            .and_then(|meta| meta.modified())
            .is_ok_and(|at| at >= self.opened_at);
        if fresh {
            return;
        }
        if let Ok(file) = File::open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
    }
}

fn blobs_dir(root: &Path) -> PathBuf {
    root.join(format!("blobs-{LAYOUT_VERSION}")).join("sha256")
}

fn ingest_dir(root: &Path) -> PathBuf {
    root.join(format!("ingest-{LAYOUT_VERSION}"))
}
