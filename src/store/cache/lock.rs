//! Finding the cache and opening it under its lock: the root lookup, the shared open of
//! a run that uses the cache, the exclusive open of maintenance, and the wait between
//! them.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{blobs_dir, ingest_dir, Cache, CacheError};
use crate::cancel;
use crate::progress::Reporter;
use crate::store::Store;

const LOCK_FILE: &str = "lock";
const TAG_FILE: &str = "CACHEDIR.TAG";
/// Backup tools skip directories with this signature (https://bford.info/cachedir/).
const TAG: &str =
    "Signature: 8a477f597d28d172789f06886806bc55\n# This directory is the pkgr blob cache.\n";
/// How often a waiter retries a busy lock; polling rather than blocking keeps Ctrl-C
/// working, since a thread blocked in flock(2) would never see the cancel flag.
const LOCK_POLL: Duration = Duration::from_millis(100);

impl Cache {
    /// `flag`, else `$PKGR_CACHE_DIR`, else `$XDG_CACHE_HOME/pkgr`, else `~/.cache/pkgr`.
    pub fn default_root(flag: Option<&Path>) -> Result<PathBuf, CacheError> {
        if let Some(dir) = flag {
            return Ok(dir.to_owned());
        }
        let env = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        env("PKGR_CACHE_DIR")
            .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("pkgr")))
            .or_else(|| env("HOME").map(|d| d.join(".cache").join("pkgr")))
            .ok_or(CacheError::NoRoot)
    }

    /// Opens (creating if needed) the cache at `root` for use, holding its lock shared
    /// until dropped. Calls `on_wait` with the lock's path, once, before waiting for a
    /// maintainer that holds it.
    pub fn open_shared(root: &Path, on_wait: impl FnOnce(&Path)) -> Result<Self, CacheError> {
        fs::create_dir_all(root).map_err(|e| CacheError::io("create directory", root, e))?;
        let lock = acquire(&root.join(LOCK_FILE), Mode::Shared, on_wait)?;
        let store = Store::at(blobs_dir(root), ingest_dir(root))?;
        let tag = root.join(TAG_FILE);
        if !tag.exists() {
            // Only a courtesy to backup tools: a cache without it works the same.
            let _ = fs::write(&tag, TAG);
        }
        Ok(Self {
            root: root.to_owned(),
            store,
            opened_at: SystemTime::now(),
            _lock: lock,
        })
    }

    /// [`Cache::open_shared`] off the async threads, as a build opens the cache: held
    /// shared until the `Cache` is dropped, so that a prune or verify waits for the
    /// build instead of removing blobs it has counted on. A wait is told to `reporter`.
    pub async fn open_shared_reporting(
        root: &Path,
        reporter: &dyn Reporter,
    ) -> Result<Self, CacheError> {
        let root = root.to_owned();
        let (waiting_tx, waiting_rx) = tokio::sync::oneshot::channel();
        let opening = tokio::task::spawn_blocking(move || {
            Self::open_shared(&root, |lock| {
                let _ = waiting_tx.send(lock.to_owned());
            })
        });
        // Resolves at once either way: the sender is used or dropped before any wait.
        if let Ok(lock) = waiting_rx.await {
            reporter.step(&waiting_message(&lock));
        }
        opening.await.map_err(|source| CacheError::Internal {
            what: "opening the cache",
            source,
        })?
    }

    /// Opens the cache at `root` for maintenance, holding its lock exclusively until
    /// dropped; `None` when there is no cache there (nothing is created). Calls
    /// `on_wait` with the lock's path, once, before waiting for the runs that hold it.
    pub fn open_exclusive(
        root: &Path,
        on_wait: impl FnOnce(&Path),
    ) -> Result<Option<Self>, CacheError> {
        if !blobs_dir(root).is_dir() {
            return Ok(None);
        }
        let lock = acquire(&root.join(LOCK_FILE), Mode::Exclusive, on_wait)?;
        let store = Store::at(blobs_dir(root), ingest_dir(root))?;
        Ok(Some(Self {
            root: root.to_owned(),
            store,
            opened_at: SystemTime::now(),
            _lock: lock,
        }))
    }
}

/// What a run says while it waits for another to release the lock at `lock`.
pub fn waiting_message(lock: &Path) -> String {
    format!(
        "waiting for another pkgr process to release the cache lock {}",
        lock.display()
    )
}

#[derive(Clone, Copy)]
enum Mode {
    Shared,
    Exclusive,
}

/// Opens (creating) the lock file and takes it in `mode`, polling while it is busy.
fn acquire(path: &Path, mode: Mode, on_wait: impl FnOnce(&Path)) -> Result<File, CacheError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| CacheError::io("open the cache lock", path, e))?;
    let mut on_wait = Some(on_wait);
    loop {
        let attempt = match mode {
            Mode::Shared => file.try_lock_shared(),
            Mode::Exclusive => file.try_lock(),
        };
        match attempt {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) => {
                if let Some(on_wait) = on_wait.take() {
                    on_wait(path);
                }
                if cancel::is_cancelled() {
                    return Err(CacheError::Cancelled {
                        path: path.to_owned(),
                    });
                }
                std::thread::sleep(LOCK_POLL);
            }
            Err(TryLockError::Error(e)) => {
                return Err(CacheError::io("lock the cache lock", path, e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exclusive_open_waits_for_shared_holders() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Cache::open_shared(dir.path(), |_| panic!("nobody holds the lock")).unwrap();
        let second = Cache::open_shared(dir.path(), |_| panic!("shared locks coexist")).unwrap();

        let (waited_tx, waited_rx) = std::sync::mpsc::channel();
        let root = dir.path().to_owned();
        let maintainer = std::thread::spawn(move || {
            let cache = Cache::open_exclusive(&root, |path| {
                waited_tx.send(path.to_owned()).unwrap();
            });
            cache.map(|c| c.is_some())
        });
        let waited_on = waited_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(waited_on, dir.path().join("lock"));
        drop(shared);
        std::thread::sleep(LOCK_POLL * 3);
        assert!(
            !maintainer.is_finished(),
            "one shared holder is still there"
        );
        drop(second);
        assert!(maintainer.join().unwrap().unwrap());
    }

    #[test]
    fn a_maintainer_holds_off_users() {
        let dir = tempfile::tempdir().unwrap();
        drop(Cache::open_shared(dir.path(), |_| {}).unwrap());
        let exclusive = Cache::open_exclusive(dir.path(), |_| panic!("free"))
            .unwrap()
            .unwrap();
        let (waited_tx, waited_rx) = std::sync::mpsc::channel();
        let root = dir.path().to_owned();
        let user = std::thread::spawn(move || {
            Cache::open_shared(&root, |_| waited_tx.send(()).unwrap()).map(drop)
        });
        waited_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        drop(exclusive);
        user.join().unwrap().unwrap();
    }
}
