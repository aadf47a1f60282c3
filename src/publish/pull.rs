//! `pull` of a published package: its layers brought into a staging directory beside
//! the output (each digest once, several at a time, in the package's order, every one
//! re-hashed as it arrives), while the package writer writes the package again from
//! those files in the artifact's order, taking each as soon as it is complete, hashed
//! as it is written; the file is kept only when that hash is the one published
//! (synced and renamed into place), else removed. A package published by a writer
//! other than this pkgr's is refused before anything is fetched.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::address::Address;
use super::artifact::{Artifact, Facts, PackageFile};
use super::fetch::{artifact, fetch};
use super::{blocking, PublishError};
use crate::digest::Hasher;
use crate::package::staging_dir::StagingDir;
use crate::package::writer::{self, encode_when_ready, identity, Entry};
use crate::progress::Reporter;
use crate::registry::{Credentials, Registry, Transport};

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
    // Removed when dropped, Ctrl-C included; swept by a later create after a crash.
    let staging = StagingDir::create(&output).map_err(out_error)?;
    // Each digest once, in the package's order: the writer waits for each in turn.
    let mut seen = HashSet::new();
    let unique: Vec<&PackageFile> = artifact
        .files
        .iter()
        .filter(|f| seen.insert(&f.digest))
        .collect();
    let bytes = unique.iter().fold(0u64, |a, f| a.saturating_add(f.size));
    reporter.blobs_planned("pulling", unique.len(), bytes);
    let path = output.join(&artifact.facts.file_name);
    let arrivals = Arc::new(Arrivals::default());
    let writing = {
        let entries = entries(&artifact, staging.path());
        let (temp_dir, out) = (staging.path().to_owned(), path.clone());
        let (facts, shown, arrivals) = (
            artifact.facts.clone(),
            address.to_string(),
            arrivals.clone(),
        );
        blocking("writing the package", move || {
            let ready = |entry: &Entry| arrivals.wait(&entry.source);
            write_verified(&entries, &temp_dir, &out, &facts, &shown, &ready)?;
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
    let fetched = stream::iter(fetches)
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await;
    if let Err(err) = fetched {
        arrivals.give_up();
        let _ = writing.await;
        return Err(err);
    }
    reporter.finish();
    reporter.step(&format!("writing {}", path.display()));
    let facts = writing.await?;
    drop(staging);
    Ok(PulledPackage { path, facts })
}

/// The staged files that are complete, for the writer that waits on each in turn.
#[derive(Default)]
struct Arrivals {
    /// The files complete, and whether the downloads stopped.
    state: Mutex<(HashSet<PathBuf>, bool)>,
    changed: Condvar,
}

impl Arrivals {
    fn arrived(&self, path: PathBuf) {
        self.lock().0.insert(path);
        self.changed.notify_all();
    }

    fn give_up(&self) {
        self.lock().1 = true;
        self.changed.notify_all();
    }

    /// Waits until `path` is complete; an error once the downloads stopped or Ctrl-C.
    fn wait(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        loop {
            if state.0.contains(path) {
                return Ok(());
            }
            if state.1 || crate::cancel::is_cancelled() {
                return Err(io::Error::other("the downloads stopped"));
            }
            // Timed, so that Ctrl-C is seen even with nothing arriving.
            state = match self.changed.wait_timeout(state, Duration::from_millis(100)) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HashSet<PathBuf>, bool)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
    let mut sink = std::fs::File::create(&path).map_err(|source| PublishError::Output {
        path: path.clone(),
        source,
    })?;
    reporter.blob_start(&file.digest, file.size);
    fetch(registry, address, file, &mut sink, reporter).await?;
    drop(sink);
    reporter.blob_done(&file.digest);
    arrivals.arrived(path);
    Ok(())
}

/// The package's entries, in the artifact's order, from the staged layers.
fn entries(artifact: &Artifact, staging: &Path) -> Vec<Entry> {
    artifact
        .files
        .iter()
        .map(|file| Entry {
            name: file.name.clone(),
            source: staging.join(file.digest.hex()),
        })
        .collect()
}

/// Writes the package into a temp file in `temp_dir`, hashing it as it goes, and
/// renames it to `out` only if it hashes to the published sha256 and size.
fn write_verified(
    entries: &[Entry],
    temp_dir: &Path,
    out: &Path,
    facts: &Facts,
    address: &str,
    ready: &dyn Fn(&Entry) -> io::Result<()>,
) -> Result<(), PublishError> {
    let failed = |source| PublishError::Output {
        path: out.to_owned(),
        source,
    };
    let temp = writer::partial_package_in(temp_dir).map_err(failed)?;
    let file = temp.as_file().try_clone().map_err(failed)?;
    let hashing = HashingWriter {
        inner: file,
        hasher: Hasher::default(),
    };
    let HashingWriter { inner, hasher } =
        encode_when_ready(entries, hashing, facts.compressed, ready).map_err(failed)?;
    let (size, actual) = (hasher.bytes_hashed(), hasher.finish());
    if actual != facts.sha256 || size != facts.size {
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

/// A writer that hashes what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
