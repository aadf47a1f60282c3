//! `pull` of a published package: its layers brought into a staging directory beside
//! the output (each digest once, several at a time, in the package's order, each
//! checked against its size as it arrives), while the package writer writes the package
//! again from those files in the artifact's order, reading each as it grows. The
//! package is hashed as it is written, on a thread of its own, and kept only when that
//! hash is the one published (synced and renamed into place): one hash that covers
//! every layer, so the layers are not hashed on their own. When it differs, the staged
//! layers are hashed to name the one that is wrong, and the file is removed. A package
//! published by a writer other than this pkgr's is refused before anything is fetched.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::address::Address;
use super::artifact::{Artifact, Facts, PackageFile};
use super::behind::HashBehind;
use super::fetch::{artifact, fetch, Check, Sink};
use super::{blocking, PublishError};
use crate::digest::hash_reader;
use crate::package::staging_dir::StagingDir;
use crate::package::writer::{self, encode_from, identity, Entry, Opened};
use crate::progress::Reporter;
use crate::registry::{Credentials, Registry, Transport};
use crate::space::{room_for, Place};

/// A pull to run.
pub struct PullRequest {
    /// With a tag or digest.
    pub address: Address,
    /// The directory the package file is written into.
    pub output: PathBuf,
    pub transport: Transport,
    pub credentials: Credentials,
    /// Downloads in flight.
    pub concurrency: usize,
}

/// The package file a pull wrote.
#[derive(Debug)]
pub struct PulledPackage {
    pub path: PathBuf,
    pub facts: Facts,
}

pub async fn pull_package(
    request: PullRequest,
    reporter: &dyn Reporter,
) -> Result<PulledPackage, PublishError> {
    let PullRequest {
        address,
        output,
        transport,
        credentials,
        concurrency,
    } = request;
    let registries = [address.registry().to_owned()].into();
    let registry = Registry::connect(&transport, &registries, credentials).await?;
    let artifact = artifact(&registry, &address).await?;
    let ours = identity(artifact.facts.compressed);
    if artifact.facts.writer != ours {
        return Err(PublishError::OtherWriter {
            address: address.to_string(),
            theirs: artifact.facts.writer,
            ours,
        });
    }
    let out_error = |source| PublishError::Output {
        path: output.clone(),
        source,
    };
    std::fs::create_dir_all(&output).map_err(out_error)?;
    // Each digest once, in the package's order: the writer reads each in turn.
    let mut seen = HashSet::new();
    let unique: Vec<&PackageFile> = artifact
        .files
        .iter()
        .filter(|f| seen.insert(&f.digest))
        .collect();
    let bytes = unique.iter().fold(0u64, |a, f| a.saturating_add(f.size));
    // The staged layers and the package sit side by side until the package is whole.
    let place = Place {
        dir: output.clone(),
        flag: "--output",
    };
    room_for(place, bytes.saturating_add(artifact.facts.size)).map_err(out_error)??;
    // Removed when dropped, Ctrl-C included; swept by a later create after a crash.
    let staging = StagingDir::create(&output).map_err(out_error)?;
    reporter.blobs_planned("pulling", unique.len(), bytes);
    let path = output.join(&artifact.facts.file_name);
    let arrivals = Arc::new(Arrivals::default());
    // However this function ends (an error, a panic, Ctrl-C dropping it), the writer
    // is told to stop waiting for bytes.
    let _stop_writer = GiveUpOnDrop(arrivals.clone());
    let writing = {
        let staged = staged_files(&artifact, &unique, staging.path());
        let (temp_dir, out) = (staging.path().to_owned(), path.clone());
        let (facts, shown, arrivals) = (
            artifact.facts.clone(),
            address.to_string(),
            arrivals.clone(),
        );
        blocking("writing the package", move || {
            let open = |entry: &Entry| -> io::Result<Opened> {
                let size = staged.sizes[&entry.source];
                let growing = Growing::new(&entry.source, size, arrivals.clone());
                Ok((size, Box::new(BufReader::with_capacity(1 << 20, growing))))
            };
            write_verified(&staged, &temp_dir, &out, &facts, &shown, &open)?;
            Ok(facts)
        })
    };
    // The futures made first: a stream mapping borrowed items through a closure trips
    // the compiler's lifetime inference inside a spawned task.
    let fetches: Vec<_> = unique
        .into_iter()
        .map(|file| {
            let path = staging.path().join(file.digest.hex());
            fetch_file(&registry, &address, file, path, &arrivals, reporter)
        })
        .collect();
    let mut downloads = stream::iter(fetches)
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>();
    let mut writing = std::pin::pin!(writing);
    // A writer that fails (no room for the package, say) stops the downloads at once.
    let facts = tokio::select! {
        fetched = &mut downloads => match fetched {
            Ok(_) => {
                arrivals.all_written();
                reporter.finish();
                reporter.step(&format!("writing {}", path.display()));
                writing.await?
            }
            Err(err) => {
                arrivals.give_up();
                let _ = writing.await;
                return Err(as_package_write(err, &path));
            }
        },
        written = &mut writing => {
            // The writer cannot end well before the last byte is in: only its error
            // gets here, or a race with the last download's end.
            let facts = written?;
            downloads.await?;
            reporter.finish();
            facts
        }
    };
    drop(staging);
    Ok(PulledPackage { path, facts })
}

/// A staged layer is part of the package being written: a write that fails there (a
/// full disk, say) is told as the package's, not as a hidden staging file's.
fn as_package_write(err: PublishError, package: &Path) -> PublishError {
    match err {
        PublishError::Output { source, .. } => PublishError::Output {
            path: package.to_owned(),
            source,
        },
        other => other,
    }
}

/// Tells the writer to stop waiting when dropped.
struct GiveUpOnDrop(Arc<Arrivals>);

impl Drop for GiveUpOnDrop {
    fn drop(&mut self) {
        self.0.give_up();
    }
}

/// How much of each staged file is written, for the writer that reads each as it grows.
#[derive(Default)]
struct Arrivals {
    state: Mutex<ArrivalState>,
    changed: Condvar,
}

#[derive(Default)]
struct ArrivalState {
    written: HashMap<PathBuf, u64>,
    /// Every download ended well: no file grows any more.
    all_written: bool,
    /// The downloads stopped on an error, or the pull ended.
    stopped: bool,
}

/// Bytes a download writes between two words to the writer.
const TELL_EVERY: u64 = 1 << 20;

impl Arrivals {
    fn grew_to(&self, path: &Path, bytes: u64) {
        self.lock().written.insert(path.to_owned(), bytes);
        self.changed.notify_all();
    }

    fn all_written(&self) {
        self.lock().all_written = true;
        self.changed.notify_all();
    }

    fn give_up(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    /// Waits until more than `at` bytes of `path` are written, and says how many are;
    /// an error once the downloads stopped, when every download ended with fewer, or
    /// on Ctrl-C.
    fn wait_past(&self, path: &Path, at: u64) -> io::Result<u64> {
        let mut state = self.lock();
        loop {
            let written = state.written.get(path).copied().unwrap_or(0);
            if written > at {
                return Ok(written);
            }
            if state.all_written {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} ends after {written} bytes", path.display()),
                ));
            }
            if state.stopped || crate::cancel::is_cancelled() {
                return Err(io::Error::other("the downloads stopped"));
            }
            // Timed, so that Ctrl-C is seen even with nothing arriving.
            state = match self.changed.wait_timeout(state, Duration::from_millis(100)) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ArrivalState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A staged file as its download writes it, telling the writer as it grows.
struct Staging<'a> {
    file: File,
    path: PathBuf,
    written: u64,
    told: u64,
    arrivals: &'a Arrivals,
}

impl Sink for Staging<'_> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.written += bytes.len() as u64;
        if self.written - self.told >= TELL_EVERY {
            self.arrivals.grew_to(&self.path, self.written);
            self.told = self.written;
        }
        Ok(())
    }

    fn restart(&mut self) -> io::Result<()> {
        // Told first: the writer must not read what is about to be cut away.
        self.arrivals.grew_to(&self.path, 0);
        (self.written, self.told) = (0, 0);
        self.file.set_len(0)?;
        self.file.rewind()
    }
}

/// A staged file read as its download writes it: each read waits for bytes past its
/// position, and ends at the file's declared size.
struct Growing {
    path: PathBuf,
    file: Option<File>,
    at: u64,
    size: u64,
    arrivals: Arc<Arrivals>,
}

impl Growing {
    fn new(path: &Path, size: u64, arrivals: Arc<Arrivals>) -> Self {
        Self {
            path: path.to_owned(),
            file: None,
            at: 0,
            size,
            arrivals,
        }
    }
}

impl Read for Growing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at < self.size && !buf.is_empty() {
            let written = self.arrivals.wait_past(&self.path, self.at)?;
            let file = match &mut self.file {
                Some(file) => file,
                // Opened once a byte is written: the download has created it by then.
                None => self.file.insert(File::open(&self.path)?),
            };
            let want = (written.min(self.size) - self.at).min(buf.len() as u64) as usize;
            // The file's own position is always `at`: it moves only by what is read.
            let n = file.read(&mut buf[..want])?;
            // Nothing there: a download that started over cut the file meanwhile.
            if n > 0 {
                self.at += n as u64;
                return Ok(n);
            }
        }
        Ok(0)
    }
}

/// One layer into a file of the staging directory.
async fn fetch_file(
    registry: &Registry,
    address: &Address,
    file: &PackageFile,
    path: PathBuf,
    arrivals: &Arrivals,
    reporter: &dyn Reporter,
) -> Result<(), PublishError> {
    let file_handle = File::create(&path).map_err(|source| PublishError::Output {
        path: path.clone(),
        source,
    })?;
    let mut sink = Staging {
        file: file_handle,
        path,
        written: 0,
        told: 0,
        arrivals,
    };
    reporter.blob_start(&file.digest, file.size);
    fetch(registry, address, file, &mut sink, Check::Size, reporter).await?;
    arrivals.grew_to(&sink.path, sink.written);
    reporter.blob_done(&file.digest);
    Ok(())
}

/// The package's entries, in the artifact's order, from the staged layers, with each
/// entry's digest; and each staged file's size, as its download was told to expect.
struct Staged {
    entries: Vec<Entry>,
    digests: Vec<crate::digest::Digest>,
    sizes: HashMap<PathBuf, u64>,
}

/// `downloaded`: the files fetched, one per digest. Another file with the same digest
/// shares its staged file and its size (if the artifact declares another size for it,
/// the rebuilt package differs from the published one, and is refused as such).
fn staged_files(artifact: &Artifact, downloaded: &[&PackageFile], staging: &Path) -> Staged {
    let source = |file: &PackageFile| staging.join(file.digest.hex());
    Staged {
        entries: artifact
            .files
            .iter()
            .map(|file| Entry {
                name: file.name.clone(),
                source: source(file),
            })
            .collect(),
        digests: artifact.files.iter().map(|f| f.digest.clone()).collect(),
        sizes: downloaded.iter().map(|f| (source(f), f.size)).collect(),
    }
}

/// Writes the package into a temp file in `temp_dir`, hashing it as it goes, and
/// renames it to `out` only if it hashes to the published sha256 and size.
fn write_verified(
    staged: &Staged,
    temp_dir: &Path,
    out: &Path,
    facts: &Facts,
    address: &str,
    open: &dyn Fn(&Entry) -> io::Result<Opened>,
) -> Result<(), PublishError> {
    let failed = |source| PublishError::Output {
        path: out.to_owned(),
        source,
    };
    let temp = writer::partial_package_in(temp_dir).map_err(failed)?;
    let file = temp.as_file().try_clone().map_err(failed)?;
    let hashing = encode_from(
        &staged.entries,
        HashBehind::new(file),
        facts.compressed,
        open,
    )
    .map_err(failed)?;
    let (inner, hasher) = hashing.finish().map_err(failed)?;
    let (size, actual) = (hasher.bytes_hashed(), hasher.finish());
    if actual != facts.sha256 || size != facts.size {
        if let Some((name, found)) = wrong_layer(staged) {
            return Err(PublishError::Damaged {
                address: address.to_owned(),
                name,
                found,
            });
        }
        return Err(PublishError::Rebuilt {
            address: address.to_owned(),
            expected: facts.sha256.clone(),
            actual,
        });
    }
    inner.sync_all().map_err(failed)?;
    if crate::cancel::is_cancelled() {
        return Err(failed(io::Error::other("interrupted")));
    }
    temp.persist(out).map_err(|e| failed(e.error))?;
    Ok(())
}

/// The first staged layer whose bytes do not hash to its digest, with what they hash to.
fn wrong_layer(staged: &Staged) -> Option<(String, String)> {
    let mut hashed = HashSet::new();
    staged
        .entries
        .iter()
        .zip(&staged.digests)
        .filter(|(_, digest)| hashed.insert(*digest))
        .find_map(|(entry, digest)| {
            let file = File::open(&entry.source).ok()?;
            match hash_reader(crate::cancel::Cancellable(file)) {
                Ok((actual, _)) if &actual != digest => {
                    Some((entry.name.clone(), format!("its bytes hash to {actual}")))
                }
                _ => None,
            }
        })
}
