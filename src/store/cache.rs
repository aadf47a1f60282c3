//! The shared blob cache: where it lives, how it is laid out, and who may change it.
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

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::{Store, StoreError};
use crate::cancel::{self, Cancellable};
use crate::digest::{Digest, Hasher};
use crate::progress::Reporter;

/// Names the layout; a format change gets new directories rather than a migration.
pub const LAYOUT_VERSION: &str = "v1";

const LOCK_FILE: &str = "lock";
const TAG_FILE: &str = "CACHEDIR.TAG";
/// Backup tools skip directories with this signature (https://bford.info/cachedir/).
const TAG: &str =
    "Signature: 8a477f597d28d172789f06886806bc55\n# This directory is the pkgr blob cache.\n";
/// How often a waiter retries a busy lock; polling rather than blocking keeps Ctrl-C
/// working, since a thread blocked in flock(2) would never see the cancel flag.
const LOCK_POLL: Duration = Duration::from_millis(100);

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
        let store = Store::at(blobs_dir(root), ingest_dir(root))?.durable();
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
        let store = Store::at(blobs_dir(root), ingest_dir(root))?.durable();
        Ok(Some(Self {
            root: root.to_owned(),
            store,
            opened_at: SystemTime::now(),
            _lock: lock,
        }))
    }

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

        let next = AtomicUsize::new(0);
        let damaged = Mutex::new(Vec::new());
        let first_error = Mutex::new(None);
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    let mut buf = vec![0u8; 1 << 20];
                    while let Some(blob) = blobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let path = dir.join(blob.digest.hex());
                        match hash_reporting(&path, &blob.digest, &mut buf, reporter) {
                            Ok(Some(actual)) if actual != blob.digest => {
                                lock_ignoring_poison(&damaged).push(blob.digest.clone());
                            }
                            Ok(_) => {}
                            Err(e) => {
                                lock_ignoring_poison(&first_error)
                                    .get_or_insert(CacheError::io("read", &path, e));
                                break;
                            }
                        }
                    }
                });
            }
        });
        reporter.finish();
        if let Some(err) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(err);
        }
        let mut damaged = damaged.into_inner().unwrap_or_else(|e| e.into_inner());
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

fn blobs_dir(root: &Path) -> PathBuf {
    root.join(format!("blobs-{LAYOUT_VERSION}")).join("sha256")
}

fn ingest_dir(root: &Path) -> PathBuf {
    root.join(format!("ingest-{LAYOUT_VERSION}"))
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

/// The blobs of `dir`, sorted; files whose name is not a digest are not blobs and are
/// left alone. A missing directory holds nothing.
fn list_blobs(dir: &Path) -> Result<Vec<BlobEntry>, CacheError> {
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

enum IngestFile {
    Partial { hex: String, size: u64 },
    Lock { hex: String },
}

/// The partials and digest locks of `dir`; other files are left alone.
fn list_ingest(dir: &Path) -> Result<Vec<IngestFile>, CacheError> {
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

fn lock_ignoring_poison<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `--older-than` value that is not an age.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an age: write a number and a unit, such as 30d, 12h, 90m, 45s or 2w")]
pub struct InvalidAge(pub String);

/// Parses an age such as `30d`, `12h`, `90m`, `45s` or `2w` (humantime's syntax, so
/// `1h 30m` works too).
pub fn parse_age(text: &str) -> Result<Duration, InvalidAge> {
    humantime::parse_duration(text).map_err(|_| InvalidAge(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_and_reject() {
        assert_eq!(parse_age("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_age("90m"), Ok(Duration::from_secs(90 * 60)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * 86400)));
        assert_eq!(parse_age("0d"), Ok(Duration::ZERO));
        assert_eq!(parse_age("1h 30m"), Ok(Duration::from_secs(90 * 60)));
        assert_eq!(parse_age("1.5h"), Ok(Duration::from_secs(90 * 60)));
        for bad in ["", "30", "d", "-1d", "1dd", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad:?} accepted");
        }
    }

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
                super::super::Ingest::Writer(mut w) => {
                    w.write(b"12345").unwrap();
                    writers.push(w);
                }
                super::super::Ingest::Present => panic!("nothing is present"),
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
