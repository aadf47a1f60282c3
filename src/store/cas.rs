//! The content-addressed blob store: the only code that puts bytes under a digest's name.
//!
//! Every write streams into `ingest/<hex>.partial`, which is also its advisory lock, is
//! hashed on the way, and is renamed to `blobs/sha256/<hex>` only once its digest and
//! size match.
//! A peer (thread or process) that already placed the same digest is a success, and an
//! interrupted partial is resumed rather than thrown away.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::digest::{Digest, Hasher};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("blob {digest} is larger than the {expected} bytes its descriptor declares")]
    TooLarge { digest: Digest, expected: u64 },
    #[error("blob {digest} ended after {actual} of the {expected} bytes its descriptor declares")]
    TooShort {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {expected} arrived with the wrong content (its bytes hash to {actual})")]
    DigestMismatch { expected: Digest, actual: Digest },
    /// The stream handed to [`Store::put_unnamed`] failed: the store itself is fine.
    #[error("the bytes to be stored could not be read")]
    Read(#[source] io::Error),
}

impl StoreError {
    pub fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }

    /// The path being written when its filesystem filled up, if that is what failed.
    pub fn no_space(&self) -> Option<&Path> {
        match self {
            Self::Io { path, source, .. } if crate::space::is_out_of_space(source) => Some(path),
            _ => None,
        }
    }

    /// Whether fetching the bytes again could help.
    pub fn is_content_error(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }
}

/// A directory of verified blobs plus its ingest area.
///
/// No blob is synced to disk before its rename: a blob a power cut tears is caught when
/// the next create re-hashes it at seal time, evicted and fetched again, so a per-blob
/// fsync (0.7 s per 1,201 blobs on journaled ext4) would buy nothing the seal does not.
///
/// The store also remembers which blobs this process put in place itself, each hashed
/// as it was written ([`Store::hashed_here`]): the seal need not hash those again.
#[derive(Debug, Clone)]
pub struct Store {
    blobs: PathBuf,
    ingest: PathBuf,
    hashed_here: Arc<Mutex<BTreeSet<Digest>>>,
}

impl Store {
    /// A store whose blobs live in `blobs` (a `blobs/sha256` directory) and whose partial
    /// downloads live in `ingest`.
    pub fn at(blobs: PathBuf, ingest: PathBuf) -> Result<Self, StoreError> {
        for dir in [&blobs, &ingest] {
            fs::create_dir_all(dir).map_err(|e| StoreError::io("create directory", dir, e))?;
        }
        Ok(Self {
            blobs,
            ingest,
            hashed_here: Arc::default(),
        })
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// Whether a complete blob of this digest and size is in place.
    pub fn contains(&self, digest: &Digest, size: u64) -> bool {
        fs::metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Bytes of an interrupted download of `digest` waiting to be resumed.
    pub fn partial_len(&self, digest: &Digest) -> u64 {
        fs::metadata(self.partial_path(digest)).map_or(0, |m| m.len())
    }

    fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.ingest.join(format!("{}.partial", digest.hex()))
    }

    /// Removes a blob found to be damaged, so the next run fetches it again.
    pub fn evict(&self, digest: &Digest) {
        forget(&self.hashed_here, digest);
        let _ = fs::remove_file(self.blob_path(digest));
    }

    /// The blobs this process renamed into place after hashing the very bytes it wrote
    /// (a download, resumed or not, or an import): the same bytes under the same name
    /// as they were a moment ago. A blob found already in place is not among them.
    pub fn hashed_here(&self) -> BTreeSet<Digest> {
        self.hashed_here
            .lock()
            .map(|set| set.clone())
            .unwrap_or_default()
    }

    /// Stores bytes held in memory (manifests), verifying them like any other blob.
    pub fn put_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        match self.begin(digest, bytes.len() as u64)? {
            Ingest::Present => Ok(()),
            Ingest::Writer(mut writer) => {
                writer.restart()?;
                writer.write(bytes)?;
                writer.commit()
            }
        }
    }

    /// Stores bytes whose digest is not known in advance (a `docker save` stream, a
    /// layer pkgr compresses), hashing them as they arrive, and names them by that
    /// hash at the end. The bytes are written once, into a temp file in the ingest
    /// directory that is removed if anything fails; a copy already in place wins.
    pub fn put_unnamed(&self, mut reader: impl Read) -> Result<(Digest, u64), StoreError> {
        let mut tmp = tempfile::Builder::new()
            .prefix("unnamed-")
            .suffix(".tmp")
            .tempfile_in(&self.ingest)
            .map_err(|e| StoreError::io("create a file in", &self.ingest, e))?;
        let mut hasher = Hasher::default();
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::Read(e)),
            };
            tmp.as_file_mut()
                .write_all(&buf[..n])
                .map_err(|e| StoreError::io("write", tmp.path(), e))?;
            hasher.update(&buf[..n]);
        }
        let size = hasher.bytes_hashed();
        let digest = hasher.finish();
        if self.contains(&digest, size) {
            return Ok((digest, size));
        }
        let path = self.blob_path(&digest);
        // A rename over a peer's copy of the same digest replaces equal bytes.
        tmp.persist(&path)
            .map_err(|e| StoreError::io("rename into place", &path, e.error))?;
        remember(&self.hashed_here, &digest);
        Ok((digest, size))
    }

    /// Starts (or resumes) writing a blob. Blocks while another process writes the same
    /// digest, then reports `Present` if that process finished it.
    pub fn begin(&self, digest: &Digest, size: u64) -> Result<Ingest, StoreError> {
        let partial_path = self.partial_path(digest);
        // The partial is its own lock, so a blob costs one new file, not two. A peer
        // that held the lock may have renamed the file into place (or a prune removed
        // it) before this process got the lock: the lock counts only while the path
        // still names the file it is held on.
        let mut file = loop {
            if self.contains(digest, size) {
                return Ok(Ingest::Present);
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&partial_path)
                .map_err(|e| StoreError::io("open", &partial_path, e))?;
            file.lock()
                .map_err(|e| StoreError::io("lock", &partial_path, e))?;
            if names_file(&partial_path, &file)? {
                break file;
            }
        };
        if self.contains(digest, size) {
            // A peer finished between the first look and the open, which then created
            // an empty partial: nothing will resume it.
            let _ = fs::remove_file(&partial_path);
            return Ok(Ingest::Present);
        }
        let mut hasher = Hasher::default();
        let on_disk = file
            .metadata()
            .map_err(|e| StoreError::io("read", &partial_path, e))?
            .len();
        if on_disk > size {
            file.set_len(0)
                .map_err(|e| StoreError::io("truncate", &partial_path, e))?;
        } else if on_disk > 0 {
            // Resume: the bytes already on disk count toward the digest.
            hasher
                .update_from(&mut file, &mut vec![0u8; 1 << 20], |_| {})
                .map_err(|e| StoreError::io("read", &partial_path, e))?;
        }
        file.seek(SeekFrom::End(0))
            .map_err(|e| StoreError::io("seek", &partial_path, e))?;
        Ok(Ingest::Writer(Box::new(BlobWriter {
            file,
            partial_path,
            final_path: self.blob_path(digest),
            digest: digest.clone(),
            size,
            hasher,
            hashed_here: self.hashed_here.clone(),
        })))
    }
}

/// The outcome of [`Store::begin`].
pub enum Ingest {
    /// The blob is already in place.
    Present,
    /// The caller should write the remaining bytes.
    Writer(Box<BlobWriter>),
}

/// A locked partial blob being written. Dropping it without `commit` keeps the partial
/// for a later resume.
pub struct BlobWriter {
    /// Locked until the writer is dropped: closing the file releases the lock.
    file: File,
    partial_path: PathBuf,
    final_path: PathBuf,
    digest: Digest,
    size: u64,
    hasher: Hasher,
    hashed_here: Arc<Mutex<BTreeSet<Digest>>>,
}

impl BlobWriter {
    /// Bytes already on disk; a download resumes from here.
    pub fn offset(&self) -> u64 {
        self.hasher.bytes_hashed()
    }

    /// Throws away what is on disk and starts from zero (the server ignored a Range
    /// request, or the content was wrong).
    pub fn restart(&mut self) -> Result<(), StoreError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)).map(drop))
            .map_err(|e| StoreError::io("truncate", &self.partial_path, e))?;
        self.hasher = Hasher::default();
        Ok(())
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if self.hasher.bytes_hashed() + bytes.len() as u64 > self.size {
            return Err(StoreError::TooLarge {
                digest: self.digest.clone(),
                expected: self.size,
            });
        }
        // Hashed once written: a write that fails leaves the hash covering only
        // what the file holds.
        self.file
            .write_all(bytes)
            .map_err(|e| StoreError::io("write", &self.partial_path, e))?;
        self.hasher.update(bytes);
        Ok(())
    }

    /// Verifies size and digest and renames the bytes into place (unsynced: see
    /// [`Store`]).
    /// On a digest mismatch the partial is emptied so that no resume builds on bad bytes;
    /// a short blob is kept so that the next attempt resumes it.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        let actual_len = self.hasher.bytes_hashed();
        if actual_len != self.size {
            return Err(StoreError::TooShort {
                digest: self.digest.clone(),
                expected: self.size,
                actual: actual_len,
            });
        }
        let actual = self.hasher.clone().finish();
        if actual != self.digest {
            let _ = self.restart();
            return Err(StoreError::DigestMismatch {
                expected: self.digest.clone(),
                actual,
            });
        }
        // A rename over a peer's copy of the same digest replaces equal bytes: harmless.
        fs::rename(&self.partial_path, &self.final_path)
            .map_err(|e| StoreError::io("rename into place", &self.final_path, e))?;
        remember(&self.hashed_here, &self.digest);
        Ok(())
    }
}

fn remember(set: &Mutex<BTreeSet<Digest>>, digest: &Digest) {
    if let Ok(mut set) = set.lock() {
        set.insert(digest.clone());
    }
}

fn forget(set: &Mutex<BTreeSet<Digest>>, digest: &Digest) {
    if let Ok(mut set) = set.lock() {
        set.remove(digest);
    }
}

/// Whether `path` still names `file` (same device and inode).
fn names_file(path: &Path, file: &File) -> Result<bool, StoreError> {
    use std::os::unix::fs::MetadataExt;
    let held = file
        .metadata()
        .map_err(|e| StoreError::io("read", path, e))?;
    match fs::metadata(path) {
        Ok(named) => Ok(named.dev() == held.dev() && named.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io("read", path, e)),
    }
}

/// Places `src` at `dst` by hard link, or by copy where linking is not possible
/// (another filesystem). An existing `dst` is left as it is.
pub fn link_or_copy(src: &Path, dst: &Path) -> Result<(), StoreError> {
    if dst.exists() {
        return Ok(());
    }
    match fs::hard_link(src, dst) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(_) => {
            // The copy is made beside `blobs/sha256`, not in it, so nothing half-copied
            // ever sits under a digest's name; the temp file is removed on failure.
            let dir = dst
                .parent()
                .and_then(Path::parent)
                .unwrap_or(Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .map_err(|e| StoreError::io("create a file in", dir, e))?;
            let mut from = File::open(src).map_err(|e| StoreError::io("open", src, e))?;
            copy(&mut from, src, tmp.as_file_mut(), dst)?;
            tmp.persist(dst)
                .map(drop)
                .map_err(|e| StoreError::io("rename into place", dst, e.error))
        }
    }
}

/// Copies `from` to `to`, blaming a failure on the side that failed: a full disk is
/// where the copy was going, not where it came from.
fn copy(from: &mut File, src: &Path, to: &mut File, dst: &Path) -> Result<(), StoreError> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StoreError::io("read", src, e)),
        };
        to.write_all(&buf[..n])
            .map_err(|e| StoreError::io("write", dst, e))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(ingest: Ingest) -> BlobWriter {
        match ingest {
            Ingest::Writer(w) => *w,
            Ingest::Present => panic!("blob unexpectedly present"),
        }
    }

    #[test]
    fn put_unnamed_names_bytes_by_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("blobs"), dir.path().join("ingest")).unwrap();
        let (digest, size) = store.put_unnamed(&b"some bytes"[..]).unwrap();
        assert_eq!(digest, Digest::of(b"some bytes"));
        assert_eq!(size, 10);
        assert_eq!(fs::read(store.blob_path(&digest)).unwrap(), b"some bytes");
        // Twice is a success, and leaves no temp file behind.
        assert_eq!(
            store.put_unnamed(&b"some bytes"[..]).unwrap(),
            (digest, size)
        );
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn only_what_this_store_hashed_as_it_wrote_counts_as_hashed_here() {
        let dir = tempfile::tempdir().unwrap();
        let open = || Store::at(dir.path().join("blobs"), dir.path().join("ingest")).unwrap();
        let (earlier_run, store) = (open(), open());
        let old = Digest::of(b"from an earlier run");
        earlier_run.put_bytes(&old, b"from an earlier run").unwrap();
        let written = Digest::of(b"written now");
        store.put_bytes(&written, b"written now").unwrap();
        store.put_bytes(&old, b"from an earlier run").unwrap();
        let (imported, _) = store.put_unnamed(&b"imported now"[..]).unwrap();
        // An import whose copy is already in place keeps that copy, which was not
        // hashed here.
        earlier_run.put_unnamed(&b"imported earlier"[..]).unwrap();
        store.put_unnamed(&b"imported earlier"[..]).unwrap();
        assert_eq!(
            store.hashed_here(),
            BTreeSet::from([written.clone(), imported])
        );
        // Clones share what they know; an evicted blob is forgotten.
        let clone = store.clone();
        clone.evict(&written);
        assert!(!store.hashed_here().contains(&written));
        // A write whose bytes do not match is not remembered.
        let wrong = Digest::of(b"expected");
        let mut w = writer(store.begin(&wrong, 8).unwrap());
        w.write(b"received").unwrap();
        assert!(w.commit().is_err());
        assert!(!store.hashed_here().contains(&wrong));
    }

    #[test]
    fn verified_write_and_resume() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("blobs"), dir.path().join("ingest")).unwrap();
        let data = b"hello, air gap";
        let digest = Digest::of(data);

        let mut w = writer(store.begin(&digest, data.len() as u64).unwrap());
        w.write(&data[..5]).unwrap();
        drop(w); // interrupted

        let mut w = writer(store.begin(&digest, data.len() as u64).unwrap());
        assert_eq!(w.offset(), 5);
        w.write(&data[5..]).unwrap();
        w.commit().unwrap();
        assert_eq!(fs::read(store.blob_path(&digest)).unwrap(), data);
        assert!(matches!(
            store.begin(&digest, data.len() as u64).unwrap(),
            Ingest::Present
        ));
    }

    #[test]
    fn a_waiter_for_a_digest_finds_it_present_once_the_writer_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("blobs"), dir.path().join("ingest")).unwrap();
        let data = b"written once";
        let digest = Digest::of(data);
        let mut first = writer(store.begin(&digest, data.len() as u64).unwrap());

        let waiter = {
            let (store, digest) = (store.clone(), digest.clone());
            std::thread::spawn(move || store.begin(&digest, data.len() as u64))
        };
        // The waiter blocks on the partial's lock; give it time to get there, so that
        // it holds the very file that is about to be renamed into place.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            !waiter.is_finished(),
            "a second writer must wait for the first"
        );
        first.write(data).unwrap();
        first.commit().unwrap();
        drop(first);

        assert!(matches!(waiter.join().unwrap().unwrap(), Ingest::Present));
        assert_eq!(fs::read(store.blob_path(&digest)).unwrap(), data);
        assert!(
            names_in(&dir.path().join("ingest")).is_empty(),
            "nothing is left in ingest"
        );
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A layout's `blobs/sha256` in a fresh temp dir on the default filesystem.
    fn blobs_dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs/sha256");
        fs::create_dir_all(&blobs).unwrap();
        (dir, blobs)
    }

    #[test]
    fn link_or_copy_links_on_one_filesystem() {
        use std::os::unix::fs::MetadataExt;
        let (_dir, blobs) = blobs_dir();
        let src = blobs.parent().unwrap().join("source");
        fs::write(&src, b"bytes").unwrap();
        let dst = blobs.join("a");
        link_or_copy(&src, &dst).unwrap();
        assert_eq!(
            fs::metadata(&src).unwrap().ino(),
            fs::metadata(&dst).unwrap().ino()
        );
    }

    #[test]
    fn link_or_copy_copies_across_filesystems_and_never_leaves_a_partial() {
        use std::os::unix::fs::MetadataExt;
        // /dev/shm is a tmpfs: a hard link from there to the temp dir must fail.
        let shm = tempfile::tempdir_in("/dev/shm").expect("this test needs /dev/shm");
        let (_dir, blobs) = blobs_dir();
        let src = shm.path().join("source");
        fs::write(&src, b"bytes across filesystems").unwrap();
        assert_ne!(
            fs::metadata(&src).unwrap().dev(),
            fs::metadata(&blobs).unwrap().dev(),
            "the test needs two filesystems"
        );
        let dst = blobs.join("a");
        link_or_copy(&src, &dst).unwrap();
        assert_eq!(fs::read(&dst).unwrap(), b"bytes across filesystems");
        assert_ne!(
            fs::metadata(&src).unwrap().ino(),
            fs::metadata(&dst).unwrap().ino()
        );
        assert_eq!(names_in(&blobs), ["a"]);
        assert_eq!(names_in(blobs.parent().unwrap()), ["sha256"]);

        // A copy that fails (its source cannot be read) leaves no file behind.
        let missing = blobs.join("b");
        assert!(link_or_copy(&shm.path().join("gone"), &missing).is_err());
        assert_eq!(names_in(&blobs), ["a"]);
        assert_eq!(names_in(blobs.parent().unwrap()), ["sha256"]);
    }

    #[test]
    fn wrong_bytes_never_reach_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("blobs"), dir.path().join("ingest")).unwrap();
        let digest = Digest::of(b"right");
        let mut w = writer(store.begin(&digest, 5).unwrap());
        w.write(b"wrong").unwrap();
        assert!(matches!(w.commit(), Err(StoreError::DigestMismatch { .. })));
        assert!(!store.blob_path(&digest).exists());
        drop(w);

        let mut w = writer(store.begin(&digest, 5).unwrap());
        assert_eq!(w.offset(), 0, "a bad partial must not be resumed");
        assert!(matches!(
            w.write(b"right!"),
            Err(StoreError::TooLarge { .. })
        ));
    }
}
